import type { ConnectionOptions } from './common.js'

export interface UnstorageDriverOptions extends ConnectionOptions {
  /** Key prefix; keys are stored as `base:key`. */
  base?: string
  /** Default TTL in seconds for `setItem`. */
  ttl?: number
  /** SCAN COUNT hint for `getKeys` and `clear`. Default 100. */
  scanCount?: number
}

export interface FerrisessionDriver {
  name: 'ferrisession'
  options: UnstorageDriverOptions
  hasItem(key: string): Promise<boolean>
  getItem(key: string): Promise<string | null>
  getItems(items: { key: string }[]): Promise<{ key: string; value: string | null }[]>
  setItem(key: string, value: string, opts?: { ttl?: number }): Promise<void>
  setItems(items: { key: string; value: string; options?: { ttl?: number } }[], commonOptions?: { ttl?: number }): Promise<void>
  removeItem(key: string): Promise<void>
  getKeys(base?: string): Promise<string[]>
  clear(base?: string): Promise<void>
  dispose(): void
}

/** An unstorage driver factory, compatible with `unstorage/drivers/redis`. */
declare function ferrisessionDriver(opts?: UnstorageDriverOptions): FerrisessionDriver
export default ferrisessionDriver
