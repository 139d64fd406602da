'use strict'
// A Better Auth `secondaryStorage` (a drop-in for @better-auth/redis-storage): `keyPrefix + key`
// holds the string Better Auth gives, as it gives it; a write with a TTL above zero expires
// (SET EX), any other write does not; a counter expires a window after it was created.

const { OP, attempt, openLink, readValue } = require('./core/adapter.js')
const { badArgument, checkId } = require('./core/errors.js')
const { isClient } = require('./core/options.js')

// Values are Better Auth's own strings, stored and read back byte for byte.
const AS_IS = { parse: (s) => s }

// SCAN COUNT per page for `listKeys` and `clear`, as the official package uses.
const SCAN_COUNT = 100

/**
 * `redisStorage({client, keyPrefix, ...connection})`: `client` is a node-redis or ioredis client
 * (standalone, cluster or sentinel) whose settings are copied; it is never used for commands.
 * Or our connection options (`url`, `cluster`, `sentinel`, `tls`, `cache`, …). Every method is a
 * closure: Better Auth calls some of them unbound.
 */
function redisStorage(options = {}) {
  const opts = isClient(options) ? { client: options } : options || {}
  const { keyPrefix = 'better-auth:', ...connection } = opts
  if (typeof keyPrefix !== 'string') throw badArgument('keyPrefix must be a string')
  if (connection.hashIds) {
    throw badArgument('hashIds does not apply to better-auth: its keys are listed by name and must stay those of @better-auth/redis-storage')
  }
  const link = openLink(connection, 'better-auth')
  const keyOf = (key) => keyPrefix + checkId(key, 'key')

  return {
    /** The value at `key`, or null; with `cache`, a hot key needs no round trip. */
    get(key) {
      return attempt(() => readValue(link, keyPrefix, checkId(key, 'key'), AS_IS))
    },
    /** Writes `value`; `ttl` in seconds, and none (or 0 or less) for no expiry. */
    set(key, value, ttl) {
      return attempt(() => {
        const text = typeof value === 'string' ? value : String(value)
        const seconds = typeof ttl === 'number' && ttl > 0 ? ttl : undefined
        return link.call(OP.SET, keyOf(key), text, seconds).then(() => undefined)
      })
    },
    delete(key) {
      return attempt(() => link.call(OP.DESTROY, keyOf(key)).then(() => undefined))
    },
    /** The value at `key`, or null, and the key gone, in one step (`GETDEL`). */
    getAndDelete(key) {
      return attempt(() => link.call(OP.GET_DEL, keyOf(key)))
    },
    /**
     * Adds one to the counter at `key` and resolves to the new value. A counter this creates
     * expires in `ttl` seconds; later calls never move that expiry.
     */
    increment(key, ttl) {
      if (!Number.isInteger(ttl) || ttl <= 0) {
        return Promise.reject(new TypeError('Redis storage increment ttl must be a positive integer'))
      }
      return attempt(() => link.call(OP.INCREMENT, keyOf(key), undefined, ttl))
    },
    /** The keys under `keyPrefix`, without it (SCAN: each once, in no set order). */
    listKeys() {
      return link.call(OP.IDS, keyPrefix, undefined, SCAN_COUNT)
    },
    /** Deletes every key under `keyPrefix`, and nothing else. */
    clear() {
      return link.call(OP.CLEAR, keyPrefix, undefined, SCAN_COUNT).then(() => undefined)
    },
    /** Numbers an operator can watch: see docs/observability.md. */
    stats() {
      return link.stats()
    },
    /** Releases the connection; calls in flight still settle. */
    close() {
      link.close()
    },
  }
}

module.exports = { redisStorage, default: redisStorage }
