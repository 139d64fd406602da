import { EventEmitter } from 'node:events'
import { SessionData, Store } from 'express-session'
import type { ConnectionOptions, StoreStats } from './types/common.js'

export type * from './types/common.js'

export interface Serializer {
  parse(s: string): SessionData | Promise<SessionData>
  stringify(s: SessionData): string
}

export interface RedisStoreOptions extends ConnectionOptions {
  /** Key prefix. Default `"sess:"`. */
  prefix?: string
  /** SCAN COUNT hint for bulk operations. Default 100. */
  scanCount?: number
  /** Default: the global `JSON`. */
  serializer?: Serializer
  /** Seconds, or a function of the session. Default 86400; the cookie's expiry wins when set. */
  ttl?: number | ((sess: SessionData) => number)
  disableTTL?: boolean
  disableTouch?: boolean
  /** Emit `'set'`, `'destroy'` and `'touch'` (with the session id) after each succeeds. Default false. */
  events?: boolean
  /** Log out everywhere: the user a session belongs to, if any; indexes sessions by user. */
  userId?: (sess: SessionData) => string | number | undefined | null
  /** Where the user indexes live. Default: `prefix` without its trailing `:`, plus `-users:`. */
  userPrefix?: string
}

type Callback = (err?: unknown, data?: any) => any

/** An express-session store with connect-redis's options, keys and stored values. */
export declare class RedisStore extends Store {
  client: unknown
  prefix: string
  scanCount: number
  serializer: Serializer
  ttl: number | ((sess: SessionData) => number)
  disableTTL: boolean
  disableTouch: boolean
  constructor(opts?: RedisStoreOptions)
  /** With a callback, the callback is the answer and nothing is returned. */
  get(sid: string, cb: Callback): void
  get(sid: string): Promise<any>
  /** With a callback, the callback is the answer and nothing is returned. */
  set(sid: string, sess: SessionData, cb: Callback): void
  set(sid: string, sess: SessionData): Promise<any>
  /** With a callback, the callback is the answer and nothing is returned. */
  touch(sid: string, sess: SessionData, cb: Callback): void
  touch(sid: string, sess: SessionData): Promise<any>
  /** With a callback, the callback is the answer and nothing is returned. */
  destroy(sid: string, cb: Callback): void
  destroy(sid: string): Promise<any>
  clear(cb?: Callback): Promise<any>
  length(cb?: Callback): Promise<any>
  ids(cb?: Callback): Promise<any>
  all(cb?: Callback): Promise<any>
  /** Seconds the session should live. */
  getTTL(sess: SessionData): number
  /** The user's live sessions, each with its `id` (needs `userId`). */
  userSessions(userId: string, cb?: Callback): Promise<Array<SessionData & { id: string }>>
  /** Destroys the user's sessions but `except`; resolves to how many (needs `userId`). */
  destroyUserSessions(userId: string, opts?: { except?: string }, cb?: Callback): Promise<number>
  /** Counters an operator can watch; `cache` is null when the near cache is off. */
  stats(): StoreStats
  /** Releases the connection; calls in flight still settle. */
  close(): void
  on(event: 'connect', listener: () => void): this
  on(event: 'disconnect', listener: (reason: string) => void): this
  on(event: 'set' | 'destroy' | 'touch', listener: (sid: string) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export default RedisStore
export type { EventEmitter }
