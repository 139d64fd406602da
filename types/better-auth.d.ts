import type { ConnectionOptions, StoreStats } from './common.js'

export interface RedisStorageOptions extends Omit<ConnectionOptions, 'hashIds'> {
  /**
   * A node-redis (v3 to v5) or ioredis client, standalone, cluster or sentinel, whose settings
   * are copied; it is never used for commands. Its own key prefix (ioredis `keyPrefix`) comes
   * before `keyPrefix`.
   */
  client?: unknown
  /** Before every key Better Auth names. Default `"better-auth:"`. */
  keyPrefix?: string
  /** Not available: keys are listed by name and stay those of @better-auth/redis-storage. */
  hashIds?: never
}

/** A Better Auth `SecondaryStorage`, with the key layout and bytes of @better-auth/redis-storage. */
export interface RedisStorage {
  /** The value at `key`, or null; with `cache`, a hot key is read with no round trip. */
  get(key: string): Promise<string | null>
  /** Writes `value`; `ttl` in seconds above zero expires it, anything else does not. */
  set(key: string, value: string, ttl?: number): Promise<void>
  delete(key: string): Promise<void>
  /** The value at `key`, or null, and the key gone, in one step (`GETDEL`, Redis 6.2+). */
  getAndDelete(key: string): Promise<string | null>
  /**
   * Adds one to the counter at `key` and resolves to the new value. A counter this creates
   * expires in `ttl` seconds (a positive integer, else a TypeError); later calls never move it.
   */
  increment(key: string, ttl: number): Promise<number>
  /** The keys under `keyPrefix`, with it stripped, each once, in no set order. */
  listKeys(): Promise<string[]>
  /** Deletes every key under `keyPrefix`, and nothing else. */
  clear(): Promise<void>
  /** Numbers an operator can watch; `cache` is null when the near cache is off. */
  stats(): StoreStats
  /** Releases the connection; calls in flight still settle. */
  close(): void
}

/** `secondaryStorage: redisStorage({client})`, as `@better-auth/redis-storage` takes it. */
export declare function redisStorage(options?: RedisStorageOptions): RedisStorage
export default redisStorage
