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
  const err = new Error(`the shop index at ${JSON.stringify(key)} is not a JSON array of keys${what ? `: ${what}` : ''}`)
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

/**
 * The per-shop indexes: `<prefix>_<shop>` is a JSON array of full session keys, as the other
 * package reads and writes it. Each change is one script on the server (the core's
 * JSON_ARRAY_ADD and JSON_ARRAY_REMOVE), so concurrent changes from any number of processes
 * cannot lose each other's entries. Entries whose session is gone (expired online sessions) are
 * dropped each time a new entry is added.
 */
class ShopIndex {
  constructor(link, prefix) {
    this.link = link
    this.prefix = prefix
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

  /** Lists `sessionKey` under `shop` once; when that is new, drops entries whose session is gone. */
  async add(shop, sessionKey) {
    if ((await this.change(OP.JSON_ARRAY_ADD, shop, sessionKey)) === 1) await this.prune(shop, sessionKey)
  }

  /** Takes `sessionKeys` out of `shop`'s list, in one step. */
  remove(shop, sessionKeys) {
    return this.change(OP.JSON_ARRAY_REMOVE, shop, undefined, sessionKeys)
  }

  /**
   * Drops the entries of `shop` (but `kept`) whose session is gone. Whether a session exists is
   * read first and the entries removed after, since the sessions live in other slots than the
   * index on a cluster: an entry whose session was stored again in between is put back, so a
   * live session is never left out of its index.
   */
  async prune(shop, kept) {
    const { gone } = await this.partition((await this.read(shop)).filter((k) => k !== kept))
    if (gone.length === 0) return
    await this.remove(shop, gone)
    const { live: back } = await this.partition(gone)
    for (const key of back) await this.change(OP.JSON_ARRAY_ADD, shop, key)
  }

  /** `keys` split into those that hold a session now and those that do not. */
  async partition(keys) {
    const exists = await Promise.all(keys.map((k) => this.link.call(OP.EXISTS, k)))
    return { live: keys.filter((_, i) => exists[i] > 0), gone: keys.filter((_, i) => exists[i] === 0) }
  }

  /** One change of `shop`'s list; a list that is not a JSON array of strings is ERR_BAD_DATA. */
  async change(op, shop, member, members) {
    const key = this.key(shop)
    try {
      return await this.link.call(op, key, member, undefined, members)
    } catch (err) {
      throw err.code === 'ERR_BAD_DATA' ? badIndex(key) : err
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
