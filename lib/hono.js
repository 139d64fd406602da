'use strict'
// Hono session storage over the shared core: `storage()` for @hono/session's
// `useSessionStorage`, and `RedisStore` for hono-sessions' `store` option. Sessions are JSON at
// `prefix + id`.

const { OP, attempt, openLink, readValue, withLink } = require('./core/adapter.js')
const { badArgument } = require('./core/errors.js')
const { ttlSeconds } = require('./core/options.js')

/**
 * The `{get, set, delete}` storage of @hono/session. @hono/session passes no TTL, so every entry
 * lives `ttl` seconds (default 86400: match it to `useSession`'s `duration`) from its last write.
 * @hono/session does not await `set` and `delete`: their failures go to `onError` (default: a
 * warning on stderr), never to an unhandled rejection.
 */
function storage(opts = {}) {
  const { prefix = 'hono-session:', ttl, onError = reportError, ...connection } = opts
  if (typeof prefix !== 'string') throw badArgument('prefix must be a string')
  if (typeof onError !== 'function') throw badArgument('onError must be a function')
  const seconds = ttlSeconds(ttl, 86400)
  const link = openLink(connection, 'hono')
  const quietly = (promise) => promise.then(
    () => undefined,
    (err) => onError(err),
  )
  return {
    get: (sid) => readValue(link, prefix, sid),
    set: (sid, value) => quietly(attempt(() => link.callId(OP.SET, prefix, sid, JSON.stringify(value), seconds))),
    delete: (sid) => quietly(attempt(() => link.callId(OP.DESTROY, prefix, sid))),
    stats: () => link.stats(),
    close: () => link.close(),
  }
}

function reportError(err) {
  process.emitWarning(`ferrisession/hono: a session write failed: ${err && err.message}`, { code: err && err.code })
}

/**
 * A hono-sessions store: each session lives until its own `_expire` (set by
 * `expireAfterSeconds`); one with no expiry lives `ttl` seconds (default 86400) from its last
 * write.
 */
class RedisStore {
  constructor(opts = {}) {
    const { prefix = 'hono-sessions:', ttl, ...connection } = opts
    if (typeof prefix !== 'string') throw badArgument('prefix must be a string')
    this.prefix = prefix
    this.ttl = ttlSeconds(ttl, 86400)
    this.link = openLink(connection, 'hono')
  }

  getSessionById(sessionId) {
    if (sessionId === undefined) return Promise.resolve(null)
    return readValue(this.link, this.prefix, sessionId)
  }

  createSession(sessionId, initialData) {
    return this.persistSessionData(sessionId, initialData)
  }

  async persistSessionData(sessionId, sessionData) {
    const json = JSON.stringify(sessionData)
    const expire = sessionData && sessionData._expire
    if (expire == null) return void (await this.link.callId(OP.SET, this.prefix, sessionId, json, this.ttl))
    const at = Date.parse(expire) / 1000
    if (!Number.isFinite(at)) throw badArgument('session _expire must be a date')
    // SET_UNTIL takes the absolute time; one already past deletes the session.
    await this.link.callId(OP.SET_UNTIL, this.prefix, sessionId, json, Math.ceil(at))
  }

  async deleteSession(sessionId) {
    await this.link.callId(OP.DESTROY, this.prefix, sessionId)
  }
}
withLink(RedisStore)

module.exports = { storage, RedisStore }
