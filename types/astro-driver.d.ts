import type { StoreStats } from './common.js'
import type { AstroDriverOptions } from './astro.js'

/** What Astro calls: its session driver (Astro 6); Astro 5 wraps it in unstorage, calling only getItem, setItem and removeItem. */
export interface AstroSessionDriver {
  name: 'ferrisession'
  options: AstroDriverOptions
  getItem(key: string): Promise<string | null>
  setItem(key: string, value: string): Promise<void>
  removeItem(key: string): Promise<void>
  hasItem(key: string): Promise<boolean>
  dispose(): void
  stats(): StoreStats
}

/** The entry Astro loads: makes the driver from the config `redisDriver()` gave. */
declare function createDriver(config?: AstroDriverOptions): AstroSessionDriver
export default createDriver
