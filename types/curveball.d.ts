import type { ConnectionOptions, StoreStats } from './common.js'

export interface CurveballStoreOptions extends ConnectionOptions {
  /** Default `"session"`: sessions live at `${prefix}-${id}`. */
  prefix?: string
  /**
   * Redis client options in node_redis v3 (`host`, `port`, `path`, `url`, `password`/`auth_pass`,
   * `db`, `tls`, `prefix`) or node-redis v4/v5 form (`url`, `socket.*`, `username`, `password`,
   * `database`). One that names a server in another form is refused with `ERR_BAD_ARGUMENT`.
   */
  clientOptions?: Record<string, unknown>
}

/** A `@curveball/session` store. */
export declare class RedisStore {
  constructor(opts?: CurveballStoreOptions)
  /** `expire` is an absolute UNIX time in seconds. */
  set(id: string, values: Record<string, any>, expire: number): Promise<void>
  get(id: string): Promise<Record<string, any> | null>
  delete(id: string): Promise<void>
  newSessionId(): Promise<string>
  /** Numbers an operator can watch, as the express store's. */
  stats(): StoreStats
  close(): void
}
export default RedisStore
