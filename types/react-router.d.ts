import type { ConnectionOptions, Linked } from './common.js'

/**
 * The strategy the framework's `createSessionStorage` takes (`SessionIdStorageStrategy` in
 * React Router 7 and Remix v2), as this storage fills it in.
 */
export interface RedisSessionIdStrategy {
  cookie?: any
  createData(data: any, expires?: Date): Promise<string>
  readData(id: string): Promise<any | null>
  updateData(id: string, data: any, expires?: Date): Promise<void>
  deleteData(id: string): Promise<void>
}

/** What React Router 7's and Remix v2's `SessionStorage` have in common. */
export interface FrameworkSessionStorage {
  getSession(cookieHeader?: string | null, options?: any): Promise<any>
  commitSession(session: any, options?: any): Promise<string>
  destroySession(session: any, options?: any): Promise<string>
}

export interface RedisSessionStorageOptions<S extends FrameworkSessionStorage = FrameworkSessionStorage> extends ConnectionOptions {
  /** The framework's `Cookie` (from its `createCookie`), or cookie options with a `name`. Sign it (`secrets`). */
  cookie?: any
  /** Default `"sess:"`: a session's data lives at `prefix + id`. */
  prefix?: string
  /** Seconds a session lives after its last commit when the framework gives no `expires`. Default 86400. */
  ttl?: number
  /**
   * The framework's `createSessionStorage` (from `react-router`, or `@remix-run/node` for
   * Remix v2). Default: the one found in `react-router`, else in `@remix-run/node`.
   */
  createSessionStorage?: (strategy: RedisSessionIdStrategy) => S
}

/**
 * The framework's `SessionStorage`, kept in Redis, with `stats()` and `close()`. Pass the
 * framework's `createSessionStorage` for its own types (or name them: `createRedisSessionStorage<SessionStorage<MyData>>(...)`).
 */
export declare function createRedisSessionStorage<S extends FrameworkSessionStorage = FrameworkSessionStorage>(options?: RedisSessionStorageOptions<S>): S & Linked
export default createRedisSessionStorage
