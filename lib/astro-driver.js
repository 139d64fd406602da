'use strict'
// The runtime half of the Astro session driver: Astro loads this entry (`ferrisession/astro/driver`)
// and calls its default export with the driver's config. Astro 6 wraps the result in unstorage;
// Astro 5 takes it as an unstorage driver. Sessions live at `prefix + id` as Astro's text.

const { OP, attempt, openLink, readValue } = require('./core/adapter.js')
const { badArgument } = require('./core/errors.js')
const { ttlSeconds } = require('./core/options.js')

// Astro's serialized session, stored and read back as given.
const AS_IS = { parse: (s) => s }

/**
 * `createDriver({prefix, ttl, refreshOnRead, ...connection})`. Astro passes no TTL, so every
 * write expires `ttl` seconds later (default 86400); with `refreshOnRead` (default true) every
 * read moves the expiry too, in the same round trip, so a session lives `ttl` after its last use
 * rather than after its last change.
 */
function createDriver(config = {}) {
  if (!config || typeof config !== 'object') throw badArgument('the driver config must be an object')
  const { prefix = 'astro-session:', ttl, refreshOnRead = true, ...connection } = config
  if (typeof prefix !== 'string') throw badArgument('prefix must be a string')
  if (typeof refreshOnRead !== 'boolean') throw badArgument('refreshOnRead must be a boolean')
  const seconds = ttlSeconds(ttl, 86400)
  const link = openLink(connection, 'astro')
  return {
    name: 'ferrisession',
    options: config,
    getItem(key) {
      return attempt(() => {
        const value = readValue(link, prefix, key, AS_IS)
        if (!refreshOnRead) return value
        // EXPIRE of a missing key changes nothing.
        return Promise.all([value, link.callId(OP.TOUCH, prefix, key, undefined, seconds)]).then(([v]) => v)
      })
    },
    setItem(key, value) {
      return attempt(() => link.writeId(OP.SET, prefix, key, typeof value === 'string' ? value : String(value), seconds)).then(() => undefined)
    },
    removeItem(key) {
      return attempt(() => link.writeId(OP.DESTROY, prefix, key)).then(() => undefined)
    },
    hasItem(key) {
      return attempt(() => link.callId(OP.EXISTS, prefix, key)).then((n) => n > 0)
    },
    dispose() {
      link.close()
    },
    stats() {
      return link.stats()
    },
  }
}

module.exports = createDriver
module.exports.default = createDriver
