import type { ConnectionOptions, Linked, StoreStats } from './common.js'

export interface HonoStorageOptions extends ConnectionOptions {
  /** Default `"hono-session:"`: sessions live at `prefix + id`. */
  prefix?: string
  /** Seconds an entry lives from its last write (@hono/session passes none). Default 86400. */
  ttl?: number
  /** Hears failed writes, which @hono/session does not await. Default: a process warning. */
  onError?: (err: Error) => void
}

/** The storage of @hono/session's `useSessionStorage`. */
export interface HonoSessionStorage<Data = any> extends Linked {
  get(sid: string): Promise<Data | null>
  set(sid: string, value: Data): Promise<void>
  delete(sid: string): Promise<void>
}

export declare function storage<Data = any>(opts?: HonoStorageOptions): HonoSessionStorage<Data>

export interface HonoSessionsStoreOptions extends ConnectionOptions {
  /** Default `"hono-sessions:"`. */
  prefix?: string
  /** Seconds a session with no `_expire` lives from its last write. Default 86400. */
  ttl?: number
}

/** hono-sessions' `SessionData`, as the store keeps it. */
export interface HonoSessionsData {
  _data: Record<string, { value: unknown; flash: boolean }>
  _expire: string | null
  _delete: boolean
  _accessed: string | null
  [field: string]: unknown
}

/** A store for hono-sessions' `sessionMiddleware({store})`; the TTL follows each session's `_expire`. */
export declare class RedisStore implements Linked {
  constructor(opts?: HonoSessionsStoreOptions)
  getSessionById(sessionId?: string): Promise<HonoSessionsData | null>
  createSession(sessionId: string, initialData: HonoSessionsData): Promise<void>
  persistSessionData(sessionId: string, sessionData: HonoSessionsData): Promise<void>
  deleteSession(sessionId: string): Promise<void>
  stats(): StoreStats
  close(): void
}
