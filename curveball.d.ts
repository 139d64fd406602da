import type { ConnectionOptions } from './index.js'

export interface CurveballStoreOptions extends ConnectionOptions {
  /** Default `"session"`: sessions live at `${prefix}-${id}`. */
  prefix?: string
  /** node-redis `createClient` options; url, socket and credentials are read from them. */
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
  close(): void
}
export default RedisStore
