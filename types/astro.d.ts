import type { ConnectionOptions, EncryptionOptions } from './common.js'

/**
 * The driver's options: `redisDriver(options)` on Astro 6, `session.options` beside
 * `driver: "ferrisession/astro/driver"` on Astro 5. Astro writes them into the build, so they are
 * plain data: a `url` (or host/port, cluster, sentinel, …), never a client object.
 */
export interface AstroDriverOptions extends Omit<ConnectionOptions, 'client' | 'encryption'> {
  /** Default `"astro-session:"`: a session lives at `prefix + id`. */
  prefix?: string
  /** Seconds a session lives after its last write (and read, with `refreshOnRead`). Default 86400. */
  ttl?: number
  /** Every read moves the expiry too. Default true. */
  refreshOnRead?: boolean
  /** AES-256-GCM for stored values, with keys as strings (base64 or hex) since the config is plain data. */
  encryption?: Omit<EncryptionOptions, 'keys'> & { keys: Record<string, string> }
}

/** Astro's `SessionDriverConfig`. */
export interface AstroSessionDriverConfig {
  entrypoint: 'ferrisession/astro/driver'
  config: AstroDriverOptions
}

/** For Astro's `session.driver`: `defineConfig({ session: { driver: redisDriver({ url }) } })`. */
export declare function redisDriver(options?: AstroDriverOptions): AstroSessionDriverConfig
/** The module Astro loads at run time to make the driver. */
export declare const entrypoint: 'ferrisession/astro/driver'
export default redisDriver
