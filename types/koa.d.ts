import { EventEmitter } from 'node:events'
import type { ConnectionOptions, Linked, StoreStats } from './common.js'

export interface KoaStoreOptions extends ConnectionOptions {
  /** Default `JSON.stringify`. */
  serialize?: (sess: any) => string
  /** Default `JSON.parse`. */
  unserialize?: (text: string) => any
  /** Seconds a browser-session cookie's entry (`maxAge: 'session'`) lives. Default 86400. */
  sessionTtl?: number
  /** koa-redis's cluster form: with `nodes`, the same as `cluster: {nodes}`. */
  isRedisCluster?: boolean
  nodes?: Array<string | { host: string; port: number }>
}

/** A koa-session 7 external store (`session({store})`), with koa-redis 4's layout. */
export declare class RedisStore extends EventEmitter implements Linked {
  constructor(opts?: KoaStoreOptions)
  get(key: string, maxAge?: number | 'session', opts?: unknown): Promise<any>
  /** `maxAge` in milliseconds: the entry lives `ceil(maxAge / 1000)` seconds. */
  set(key: string, sess: any, maxAge?: number | 'session', opts?: unknown): Promise<void>
  destroy(key: string, opts?: unknown): Promise<void>
  stats(): StoreStats
  close(): void
}

/** `redisStore(options)`, called as koa-redis is. */
declare function redisStore(opts?: KoaStoreOptions): RedisStore
export default redisStore
