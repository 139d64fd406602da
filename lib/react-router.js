'use strict'
// Session storage for React Router 7 and Remix v2: the framework's own `createSessionStorage`
// (cookie handling, flash, the Session object) over our keys. The cookie holds only the id;
// `prefix + id` holds the session data as JSON and expires with the cookie.

const { OP, attempt, millisUntil, newSessionId, openLink, readValue, toJson } = require('./core/adapter.js')
const { badArgument } = require('./core/errors.js')
const { ttlSeconds } = require('./core/options.js')

// Where `createSessionStorage` is looked for when none is given: React Router 7 first, then
// Remix v2 on Node. React Router 6 (which a Remix v2 app also installs) has none.
const FRAMEWORKS = ['react-router', '@remix-run/node']

function findCreateSessionStorage() {
  for (const name of FRAMEWORKS) {
    let framework
    try {
      framework = require(name)
    } catch {
      continue
    }
    if (framework && typeof framework.createSessionStorage === 'function') return framework.createSessionStorage
  }
  throw badArgument(`no createSessionStorage found in ${FRAMEWORKS.join(' or ')}: install one, or pass the framework's createSessionStorage as an option`)
}

const usable = (id) => typeof id === 'string' && id.length > 0

/**
 * `createRedisSessionStorage({cookie, prefix, ttl, createSessionStorage, ...connection})`:
 * the framework's SessionStorage (`getSession`, `commitSession`, `destroySession`) plus
 * `stats()` and `close()`. A session expires with the `expires` the framework gives (the
 * cookie's `maxAge`/`expires`, or `commitSession`'s options); with none, `ttl` seconds after
 * its last commit (default 86400).
 */
function createRedisSessionStorage(options = {}) {
  if (!options || typeof options !== 'object') throw badArgument('options must be an object')
  const { cookie, prefix = 'sess:', ttl, createSessionStorage, ...connection } = options
  if (typeof prefix !== 'string') throw badArgument('prefix must be a string')
  if (createSessionStorage !== undefined && typeof createSessionStorage !== 'function') {
    throw badArgument("createSessionStorage must be the framework's createSessionStorage function")
  }
  const defaultTtl = ttlSeconds(ttl, 86400)
  const create = createSessionStorage || findCreateSessionStorage()
  const link = openLink(connection, 'react-router')

  /** Writes `data` for `id` until `expires` (to the millisecond), or `ttl` from now; a past date deletes. */
  function write(id, data, expires) {
    const ms = expires === undefined ? defaultTtl * 1000 : millisUntil(expires)
    if (ms === 0) return link.writeId(OP.DESTROY, prefix, id)
    return link.writeId(OP.SET_MS, prefix, id, toJson(data), ms)
  }

  const storage = create({
    cookie,
    createData: (data, expires) =>
      attempt(() => {
        const id = newSessionId()
        return write(id, data, expires).then(() => id)
      }),
    // The cookie may be unsigned (or carry anything JSON can hold): an id that is not a
    // non-empty string is one this storage never issued, so it holds nothing.
    readData: (id) => (usable(id) ? readValue(link, prefix, id) : Promise.resolve(null)),
    // The framework keeps a cookie's id even when `readData` found nothing: a plain SET then
    // creates the key.
    updateData: (id, data, expires) =>
      attempt(() => {
        if (!usable(id)) throw badArgument('session id must be a non-empty string')
        return write(id, data, expires).then(() => undefined)
      }),
    // A session that was never committed has the id "": nothing to delete.
    deleteData: (id) => (usable(id) ? link.writeId(OP.DESTROY, prefix, id).then(() => undefined) : Promise.resolve()),
  })
  storage.stats = () => link.stats()
  storage.close = () => link.close()
  return storage
}

module.exports = { createRedisSessionStorage, default: createRedisSessionStorage }
