import type { Session } from '@shopify/shopify-api'
import type { SessionStorage } from '@shopify/shopify-app-session-storage'
import type { ConnectionOptions, Linked, StoreStats } from './common.js'

export interface RedisSessionStorageOptions extends Omit<ConnectionOptions, 'hashIds' | 'encryption'> {
  /** Default `"shopify_sessions"`: sessions at `<prefix>_<id>`, shop indexes at `<prefix>_<shop>`. */
  sessionKeyPrefix?: string
  /** Accepted for compatibility and ignored: the migrations are the other package's own. */
  migratorOptions?: unknown
  /** Accepted for compatibility and ignored: errors reject the call that met them. */
  onError?: unknown
}

/**
 * A SessionStorage for Shopify apps with the keys and values of
 * `@shopify/shopify-app-session-storage-redis`. Online sessions expire with their `expires`;
 * offline sessions never expire.
 */
export declare class RedisSessionStorage implements SessionStorage, Linked {
  static withCredentials(host: string, db: number, username: string, password: string, opts?: RedisSessionStorageOptions): RedisSessionStorage
  /** A `redis://` URL, a node-redis or ioredis client whose settings are copied, or connection options. */
  constructor(urlOrOptions?: string | URL | RedisSessionStorageOptions | object, opts?: RedisSessionStorageOptions)
  readonly ready: Promise<void>
  storeSession(session: Session): Promise<boolean>
  loadSession(id: string): Promise<Session | undefined>
  deleteSession(id: string): Promise<boolean>
  deleteSessions(ids: string[]): Promise<boolean>
  findSessionsByShop(shop: string): Promise<Session[]>
  /** The same as `close()`. */
  disconnect(): Promise<void>
  stats(): StoreStats
  close(): void
}
export default RedisSessionStorage
