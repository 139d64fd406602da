import type { ConnectionOptions, Linked, StoreStats } from './common.js'

export interface SessionsOptions extends ConnectionOptions {
  /** Default `"session:"`: a session lives at `prefix + id`. */
  prefix?: string
  /** Where the user indexes live. Default: `prefix` without its trailing `:`, plus `-users:`. */
  userPrefix?: string
  /** Seconds a session lives without activity. Default 30 days. */
  expiresIn?: number
  /** A validate this long (seconds) after the last refresh slides the expiry. Default 3600. */
  refreshAfter?: number
  /** An absolute cap, seconds from creation; none by default. */
  maxLifetime?: number
  /** The cookie `cookie()` and `blankCookie()` write. Default `"session"`. */
  cookieName?: string
}

export interface Session<Attributes = Record<string, unknown>> {
  id: string
  userId: string
  createdAt: Date
  expiresAt: Date
  attributes: Attributes
}

export interface CookieOptions {
  /** Default true. */
  secure?: boolean
  domain?: string
  /** Default `"/"`. */
  path?: string
  /** Default `"Lax"`. */
  sameSite?: 'Lax' | 'Strict' | 'None'
}

export declare class Sessions<Attributes = Record<string, unknown>> implements Linked {
  /** The cookie `cookie()` writes. */
  readonly cookieName: string
  constructor(opts?: SessionsOptions)
  create(userId: string | number, attributes?: Attributes): Promise<{ token: string; session: Session<Attributes> }>
  /** The session, or null for a malformed, unknown, tampered or expired token; never throws on a bad token. */
  validate(token: unknown): Promise<Session<Attributes> | null>
  invalidate(sessionId: string): Promise<void>
  /** How many sessions were ended. */
  invalidateUser(userId: string | number, opts?: { except?: string }): Promise<number>
  list(userId: string | number): Promise<Array<Session<Attributes>>>
  /** A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Max-Age `expiresIn`. */
  cookie(token: string, opts?: CookieOptions): string
  /** The `Set-Cookie` value that deletes the cookie. */
  blankCookie(opts?: CookieOptions): string
  stats(): StoreStats
  close(): void
}

export declare function createSessions<Attributes = Record<string, unknown>>(opts?: SessionsOptions): Sessions<Attributes>
