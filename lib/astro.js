'use strict'
// The Astro session driver, as Astro's config takes it: `session: { driver: redisDriver({...}) }`
// (Astro 6's SessionDriverConfig). The config is written into the build, so it must be plain
// data; Astro loads `ferrisession/astro/driver` at run time and makes the driver from it.

const { badArgument } = require('./core/errors.js')
const { ttlSeconds } = require('./core/options.js')

const ENTRYPOINT = 'ferrisession/astro/driver'

/** Throws unless `value` survives JSON as it is (no client objects, functions or Buffers). */
function checkPlain(value, path) {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return
  if (Array.isArray(value)) return value.forEach((v, i) => checkPlain(v, `${path}[${i}]`))
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) if (v !== undefined) checkPlain(v, `${path}.${k}`)
    return
  }
  throw badArgument(`${path} must be plain data (strings, numbers, booleans, arrays, objects): Astro writes the driver config into the build`)
}

/**
 * `redisDriver({url, prefix, ttl, refreshOnRead, ...connection})`: `{entrypoint, config}` for
 * Astro's `session.driver`.
 */
function redisDriver(options = {}) {
  if (!options || typeof options !== 'object') throw badArgument('options must be an object')
  checkPlain(options, 'options')
  if (options.ttl !== undefined) ttlSeconds(options.ttl)
  return { entrypoint: ENTRYPOINT, config: { ...options } }
}

module.exports = { redisDriver, entrypoint: ENTRYPOINT, default: redisDriver }
