import type { ConnectionOptions, StoreStats } from './common.js'

export interface LuciaPrefixes {
  /** Default `"session"`: sessions live at `session:<id>`. */
  session?: string
  /** Default `"user_sessions"`: a SET of session ids at `user_sessions:<userId>`. */
  userSessions?: string
}

/** Lucia v2's `SessionSchema`. */
export interface SessionSchemaV2 {
  id: string
  user_id: string
  active_expires: number
  idle_expires: number
  [attribute: string]: unknown
}

export interface SessionAdapterV2 {
  getSession(sessionId: string): Promise<SessionSchemaV2 | null>
  getSessionsByUserId(userId: string): Promise<SessionSchemaV2[]>
  setSession(session: SessionSchemaV2): Promise<void>
  updateSession(sessionId: string, partialSession: Partial<SessionSchemaV2>): Promise<void>
  deleteSession(sessionId: string): Promise<void>
  deleteSessionsByUserId(userId: string): Promise<void>
}

/** lucia-auth's (0.x/1.x) `SessionSchema`; `expires` is the 0.x name of `active_expires`. */
export interface SessionSchemaLuciaAuth {
  id: string
  user_id: string
  active_expires?: number | bigint
  expires?: number | bigint
  idle_expires: number | bigint
}

/** The lucia-auth era adapter returned by `redis({session, userSessions}, handleError?)`. */
export interface SessionAdapterLuciaAuth {
  getSession(sessionId: string): Promise<SessionSchemaLuciaAuth | null>
  getSessionsByUserId(userId: string): Promise<SessionSchemaLuciaAuth[]>
  setSession(session: SessionSchemaLuciaAuth): Promise<void>
  /** One or many ids, as arguments or arrays. */
  deleteSession(...sessionIds: Array<string | string[]>): Promise<void>
  deleteSessionsByUserId(userId: string): Promise<void>
  /** Releases both connections. */
  close(): void
}

/** Two clients (or our connection options), which may be two databases or two servers. */
export interface LuciaAuthClients {
  /** Holds `<sessionId>` → SessionSchema JSON. */
  session: unknown
  /** Holds `<userId>` → LIST of session ids. */
  userSessions: unknown
}

/** lucia-auth (0.x/1.x) split session adapter, the original layout: `adapter: {user, session: redis({session, userSessions})}`. */
export declare function redis(clients: LuciaAuthClients, handleError?: (error: unknown) => void | Promise<void>): (errorConstructor?: unknown) => SessionAdapterLuciaAuth
/** Lucia v2 `InitializeAdapter<SessionAdapter>`; takes a node-redis/ioredis client or our connection options. */
export declare function redis(clientOrOptions: unknown, prefixes?: LuciaPrefixes): (errorConstructor?: unknown) => SessionAdapterV2
export declare const ioredis: typeof redis
export default redis

/** Lucia v3 `DatabaseSession`. */
export interface DatabaseSession {
  id: string
  userId: string
  expiresAt: Date
  attributes: Record<string, any>
}

/** Lucia v3 `DatabaseUser`. */
export interface DatabaseUser {
  id: string
  attributes: Record<string, any>
}

export interface LuciaAdapterOptions extends ConnectionOptions {
  prefixes?: LuciaPrefixes
  /**
   * Opt-in cluster layout: every key carries the hash tag `{tag}` (`true` uses the session
   * prefix), so a session and its user index share a slot and are written atomically. All of
   * the adapter's keys then live on one shard. Not compatible with the default layout.
   */
  hashTag?: boolean | string
  getUser(userId: string): DatabaseUser | null | Promise<DatabaseUser | null>
}

/** A full Lucia v3 `Adapter`. */
export declare class LuciaAdapter {
  constructor(opts: LuciaAdapterOptions)
  getSessionAndUser(sessionId: string): Promise<[session: DatabaseSession | null, user: DatabaseUser | null]>
  getUserSessions(userId: string): Promise<DatabaseSession[]>
  setSession(session: DatabaseSession): Promise<void>
  updateSessionExpiration(sessionId: string, expiresAt: Date): Promise<void>
  deleteSession(sessionId: string): Promise<void>
  deleteUserSessions(userId: string): Promise<void>
  deleteExpiredSessions(): Promise<void>
  /** Numbers an operator can watch, as the express store's. */
  stats(): StoreStats
  close(): void
}

export declare function luciaAdapter(opts: LuciaAdapterOptions): LuciaAdapter
