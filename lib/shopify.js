'use strict'
// A SessionStorage for Shopify apps (@shopify/shopify-app-session-storage) with the keys and
// values of @shopify/shopify-app-session-storage-redis, so an app can switch either way and keep
// its installs: `<prefix>_<session id>` holds `JSON.stringify(session.toPropertyArray(true))`,
// `<prefix>_<shop>` a JSON array of the full keys of that shop's sessions, and
// `<prefix>_migrations` the record of that package's migrations.

const { OP, attempt, openLink, readValue, secondsUntil } = require('./core/adapter.js')
const { badArgument, checkId, parseStored } = require('./core/errors.js')
const { isClient } = require('./core/options.js')

const DEFAULT_PREFIX = 'shopify_sessions'
// The migration the other package runs when it finds no record of it: it rebuilds the shop
// indexes from a KEYS walk. The indexes this storage keeps make it done already.
const MIGRATIONS = '{"migrateToVersion1_0_1":true}'
// A shop index is changed under a lock (see `ShopIndex`): the lock's lease in seconds, and how
// long a change waits for it before failing.
const LOCK_SECONDS = 5
const LOCK_WAIT_MS = 2 * LOCK_SECONDS * 1000

// The Session class of @shopify/shopify-api as CommonJS loads it; the ESM entry passes the ESM
// copy instead (`storageClass`), so sessions are instances of the class the app imported.
function requiredSession() {
  try {
    return require('@shopify/shopify-api').Session
  } catch (cause) {
    throw Object.assign(badArgument('ferrisession/shopify needs @shopify/shopify-api (its Session class) installed'), { cause })
  }
}

function badIndex(key, what) {
  const err = new Error(`the shop index at ${JSON.stringify(key)} is not a JSON array of keys: ${what}`)
  err.code = 'ERR_BAD_DATA'
  return err
}

const INDEX = {
  parse(raw) {
    const keys = JSON.parse(raw)
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new Error('not an array of strings')
    return keys
  },
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The per-shop indexes: `<prefix>_<shop>` is a JSON array of full session keys, as the other
 * package reads and writes it. The core has no server-side script for a JSON array, so a change
 * is a read, a rewrite, and no change by anyone else in between: changes from this process wait
 * for each other per shop, and processes take turns through a lock key outside the prefix
 * (INCR: the caller that makes it 1 holds it; it expires after LOCK_SECONDS should its holder
 * die). Entries whose session is gone (expired online sessions) are dropped as an entry is added.
 */
class ShopIndex {
  constructor(link, prefix) {
    this.link = link
    this.prefix = prefix
    this.queues = new Map()
  }

  key(shop) {
    return `${this.prefix}_${shop}`
  }

  /** The full session keys listed for `shop`. */
  async read(shop) {
    const key = this.key(shop)
    const raw = await this.link.call(OP.GET, key)
    if (raw === null) return []
    try {
      return parseStored(INDEX, raw, key)
    } catch (err) {
      throw badIndex(key, err.cause && err.cause.message)
    }
  }

  /** Lists `sessionKey` under `shop` once, dropping entries whose session is gone. */
  add(shop, sessionKey) {
    return this.change(shop, async (keys) => {
      if (keys.includes(sessionKey)) return null
      const live = await Promise.all(keys.map((k) => this.link.call(OP.EXISTS, k)))
      return [...keys.filter((_, i) => live[i] > 0), sessionKey]
    })
  }

  /** Takes `sessionKeys` out of `shop`'s list. */
  remove(shop, sessionKeys) {
    return this.change(shop, async (keys) => {
      const kept = keys.filter((k) => !sessionKeys.includes(k))
      return kept.length === keys.length ? null : kept
    })
  }

  /** Runs `edit(keys)` (new keys, or null for no change) on `shop`'s list, one change at a time. */
  change(shop, edit) {
    const key = this.key(shop)
    const before = this.queues.get(key) || Promise.resolve()
    const run = before.then(() => this.locked(key, shop, edit))
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.queues.set(key, settled)
    settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key)
    })
    return run
  }

  async locked(key, shop, edit) {
    const lock = `ferrisession-lock:${key}`
    const deadline = Date.now() + LOCK_WAIT_MS
    for (let wait = 1; (await this.link.call(OP.INCREMENT, lock, undefined, LOCK_SECONDS)) !== 1; wait = Math.min(wait * 2, 50)) {
      if (Date.now() > deadline) {
        const err = new Error(`the shop index ${JSON.stringify(key)} stayed locked for ${LOCK_WAIT_MS} ms`)
        err.code = 'ERR_TIMEOUT'
        throw err
      }
      await sleep(wait)
    }
    try {
      const keys = await edit(await this.read(shop))
      if (keys !== null) await this.link.call(OP.SET, key, JSON.stringify(keys))
    } finally {
      await this.link.call(OP.DESTROY, lock)
    }
  }
}

/** `{url}` from a URL, the settings of a node-redis/ioredis client, or our options. */
function connectionFrom(urlOrOptions) {
  if (typeof urlOrOptions === 'string' || urlOrOptions instanceof URL) return { url: String(urlOrOptions) }
  if (isClient(urlOrOptions)) return { client: urlOrOptions }
  if (urlOrOptions == null) return {}
  if (typeof urlOrOptions !== 'object') throw badArgument('pass a redis:// URL, a node-redis or ioredis client, or connection options')
  return urlOrOptions
}

/** The storage class, making sessions with `getSession()`'s class. */
function storageClass(getSession) {
  /**
   * `new RedisSessionStorage(url | client | options, {sessionKeyPrefix, ...connection})`. Online
   * sessions expire with their `expires`; offline sessions never expire here (an offline token
   * that expires comes with a refresh token, and the session is the app's record of the install).
   */
  class RedisSessionStorage {
    static withCredentials(host, db, username, password, opts) {
      return new RedisSessionStorage(new URL(`redis://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${host}/${db}`), opts)
    }

    constructor(urlOrOptions, opts = {}) {
      const merged = { ...connectionFrom(urlOrOptions), ...(opts || {}) }
      // The other package's options; its migrations are its own and its errors are thrown.
      const { sessionKeyPrefix = DEFAULT_PREFIX, migratorOptions, onError, ...connection } = merged
      if (typeof sessionKeyPrefix !== 'string' || sessionKeyPrefix === '') throw badArgument('sessionKeyPrefix must be a non-empty string')
      for (const refused of ['hashIds', 'encryption']) {
        if (connection[refused]) throw badArgument(`${refused} does not apply to shopify: keys and values must stay readable by @shopify/shopify-app-session-storage-redis`)
      }
      const Session = getSession()
      this.serializer = { parse: (raw) => Session.fromPropertyArray(JSON.parse(raw), true) }
      this.prefix = sessionKeyPrefix
      this.link = openLink(connection, 'shopify')
      this.index = new ShopIndex(this.link, sessionKeyPrefix)
      this.ready = Promise.resolve()
      this.marked = null
    }

    sessionKey(id) {
      return `${this.prefix}_${checkId(id)}`
    }

    async storeSession(session) {
      if (!session || typeof session.toPropertyArray !== 'function') throw badArgument('storeSession takes a Session of @shopify/shopify-api')
      checkId(session.id)
      checkId(session.shop, 'session shop')
      const key = this.sessionKey(session.id)
      const value = JSON.stringify(session.toPropertyArray(true))
      await this.markMigrated()
      const seconds = session.isOnline && session.expires != null ? secondsUntil(new Date(session.expires), 'session.expires') : undefined
      if (seconds === 0) {
        // An online session that has already expired: nothing to keep.
        await this.link.call(OP.DESTROY, key)
        await this.index.remove(session.shop, [key])
        return true
      }
      await this.link.call(OP.SET, key, value, seconds)
      await this.index.add(session.shop, key)
      return true
    }

    loadSession(id) {
      return attempt(() => readValue(this.link, `${this.prefix}_`, checkId(id), this.serializer)).then((s) => s ?? undefined)
    }

    async deleteSession(id) {
      const session = await this.loadSession(id)
      if (!session) return true
      const key = this.sessionKey(id)
      // The session goes first: an index entry left by a failure in between is skipped by
      // readers and dropped later, where a session left out of its index would be lost to
      // findSessionsByShop.
      await this.link.call(OP.DESTROY, key)
      await this.index.remove(session.shop, [key])
      return true
    }

    async deleteSessions(ids) {
      if (!Array.isArray(ids)) throw badArgument('deleteSessions takes an array of session ids')
      await Promise.all(ids.map((id) => this.deleteSession(id)))
      return true
    }

    async findSessionsByShop(shop) {
      checkId(shop, 'shop')
      const keys = await this.index.read(shop)
      if (keys.length === 0) return []
      const values = await this.link.call(OP.MGET, '', undefined, undefined, keys)
      const sessions = []
      for (let i = 0; i < keys.length; i++) {
        if (values[i] != null) sessions.push(await parseStored(this.serializer, values[i], keys[i]))
      }
      return sessions
    }

    /** Writes the other package's migration record once, where there is none. */
    markMigrated() {
      if (this.marked === null) {
        const key = `${this.prefix}_migrations`
        this.marked = this.link.call(OP.EXISTS, key).then((n) => (n > 0 ? undefined : this.link.call(OP.SET, key, MIGRATIONS)))
        this.marked.catch(() => (this.marked = null))
      }
      return this.marked
    }

    /** The other package's name for `close()`. */
    async disconnect() {
      this.link.close()
    }

    stats() {
      return this.link.stats()
    }

    close() {
      this.link.close()
    }
  }

  return RedisSessionStorage
}

const RedisSessionStorage = storageClass(requiredSession)

module.exports = { RedisSessionStorage, storageClass, default: RedisSessionStorage }
