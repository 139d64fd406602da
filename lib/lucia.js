'use strict'
// Lucia adapters over the shared core: a v2 session adapter (a drop-in for
// @lucia-auth/adapter-session-redis) and a full v3 adapter. Both use the same key layout:
// `session:<id>` holds the session JSON and expires with it; `user_sessions:<userId>` is a SET
// of the user's session ids.

const { Link, OP, checkId, isClient, parseStored } = require('./native.js')

const DEFAULT_PREFIXES = { session: 'session', userSessions: 'user_sessions' }

// With `hashTag`, every key carries the same `{tag}`, so on a cluster a session and its user
// index live in one slot and are written atomically; the price is that all of this adapter's
// keys live on one shard.
function layout(prefixes, hashTag) {
  const session = (prefixes && prefixes.session) || DEFAULT_PREFIXES.session
  const userSessions = (prefixes && prefixes.userSessions) || DEFAULT_PREFIXES.userSessions
  if (!hashTag) return { sessionPrefix: `${session}:`, userPrefix: `${userSessions}:` }
  const tag = typeof hashTag === 'string' ? hashTag : session
  return { sessionPrefix: `{${tag}}:${session}:`, userPrefix: `{${tag}}:${userSessions}:` }
}

function linkFor(clientOrOptions) {
  const opts = isClient(clientOrOptions) ? { client: clientOrOptions } : clientOrOptions || {}
  return new Link(opts, () => {})
}

/** Session key/index operations shared by both Lucia versions. */
class SessionIndex {
  constructor(link, prefixes, ownerField, hashTag) {
    this.link = link
    this.ownerField = ownerField
    Object.assign(this, layout(prefixes, hashTag))
  }
  async read(sessionId) {
    const key = this.sessionPrefix + checkId(sessionId)
    const raw = await this.link.call(OP.GET, key)
    return raw ? parseStored(JSON, raw, key) : null
  }
  write(sessionId, ownerId, json, expiresAtSeconds) {
    return this.link.call(OP.INDEXED_SET, this.sessionPrefix + checkId(sessionId), json, expiresAtSeconds, [
      this.userPrefix + checkId(String(ownerId), 'user id'),
      sessionId,
    ])
  }
  remove(sessionId) {
    return this.link.call(OP.INDEXED_DELETE, this.sessionPrefix + checkId(sessionId), undefined, undefined, [
      sessionId,
      this.userPrefix,
      this.ownerField,
    ])
  }
  async listByUser(userId) {
    const key = this.userPrefix + checkId(String(userId), 'user id')
    const values = await this.link.call(OP.INDEX_READ, key, this.sessionPrefix)
    return Promise.all(values.map((v) => parseStored(JSON, v, key)))
  }
  removeByUser(userId) {
    return this.link.call(OP.INDEX_DROP, this.userPrefix + checkId(String(userId), 'user id'), this.sessionPrefix)
  }
  prune() {
    return this.link.call(OP.PRUNE_INDEXES, this.userPrefix, this.sessionPrefix, 100)
  }
}

/**
 * Lucia v2 session adapter: `lucia({adapter: {user, session: redis(client)}})`.
 * `clientOrOptions` is a node-redis/ioredis client (its settings are copied) or our
 * connection options (`url`, …).
 */
function redis(clientOrOptions, prefixes) {
  let index
  return () => {
    const hashTag = !isClient(clientOrOptions) && clientOrOptions && clientOrOptions.hashTag
    if (!index) index = new SessionIndex(linkFor(clientOrOptions), prefixes, 'user_id', hashTag)
    const v2Expiry = (s) => Math.floor(Number(s.idle_expires) / 1000)
    return {
      getSession: (sessionId) => index.read(sessionId),
      getSessionsByUserId: (userId) => index.listByUser(userId),
      setSession: async (session) => {
        await index.write(session.id, session.user_id, JSON.stringify(session), v2Expiry(session))
      },
      updateSession: async (sessionId, partial) => {
        const current = await index.read(sessionId)
        if (!current) return
        const updated = { ...current, ...partial }
        await index.write(sessionId, updated.user_id, JSON.stringify(updated), v2Expiry(updated))
      },
      deleteSession: async (sessionId) => {
        await index.remove(sessionId)
      },
      deleteSessionsByUserId: async (userId) => {
        await index.removeByUser(userId)
      },
    }
  }
}

/**
 * Lucia v3 adapter. Stored JSON: `{"id", "userId", "expiresAt": <ms since epoch>, "attributes"}`.
 * `getUser(userId)` returns the `DatabaseUser` or `null`.
 */
class LuciaAdapter {
  constructor(opts = {}) {
    const { prefixes, getUser, hashTag, ...connection } = opts
    if (typeof getUser !== 'function') throw new TypeError('luciaAdapter needs getUser(userId)')
    this.getUser = getUser
    this.index = new SessionIndex(linkFor(connection), prefixes, 'userId', hashTag)
  }
  static decode(stored) {
    return { id: stored.id, userId: stored.userId, expiresAt: new Date(stored.expiresAt), attributes: stored.attributes || {} }
  }
  #save(session) {
    const expiresAt = session.expiresAt.getTime()
    if (!Number.isFinite(expiresAt)) return Promise.reject(new TypeError('session.expiresAt must be a valid Date'))
    const json = JSON.stringify({ id: session.id, userId: session.userId, expiresAt, attributes: session.attributes || {} })
    return this.index.write(session.id, session.userId, json, Math.ceil(expiresAt / 1000))
  }
  async getSessionAndUser(sessionId) {
    const stored = await this.index.read(sessionId)
    if (!stored) return [null, null]
    const user = (await this.getUser(stored.userId)) || null
    return [LuciaAdapter.decode(stored), user]
  }
  async getUserSessions(userId) {
    const now = Date.now()
    return (await this.index.listByUser(userId)).filter((s) => s.expiresAt > now).map(LuciaAdapter.decode)
  }
  async setSession(session) {
    await this.#save(session)
  }
  async updateSessionExpiration(sessionId, expiresAt) {
    const stored = await this.index.read(sessionId)
    if (!stored) return
    await this.#save({ ...LuciaAdapter.decode(stored), expiresAt })
  }
  async deleteSession(sessionId) {
    await this.index.remove(sessionId)
  }
  async deleteUserSessions(userId) {
    await this.index.removeByUser(userId)
  }
  async deleteExpiredSessions() {
    await this.index.prune()
  }
  /** Releases the connection. */
  close() {
    this.index.link.close()
  }
}

function luciaAdapter(opts) {
  return new LuciaAdapter(opts)
}

module.exports = { redis, ioredis: redis, luciaAdapter, LuciaAdapter, default: redis }
