'use strict'
// Lucia adapters over the shared core: a v2 session adapter (a drop-in for
// @lucia-auth/adapter-session-redis) and a full v3 adapter, which share one key layout:
// `session:<id>` holds the session JSON and expires with it; `user_sessions:<userId>` is a SET
// of the user's session ids. `redis({session, userSessions})` is the lucia-auth era adapter,
// with that adapter's own layout (see `originalAdapter`).

const { OP, openLink, readValue, UserIndex, withLink } = require('./core/adapter.js')
const { badArgument, checkId, parseStored } = require('./core/errors.js')
const { isClient } = require('./core/options.js')

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

/** Session key/index operations shared by both Lucia versions; `ownerField` names the user. */
class SessionIndex extends UserIndex {
  constructor(link, prefixes, ownerField, hashTag) {
    super(link, { ...layout(prefixes, hashTag), ownerOf: (s) => s[ownerField] })
    this.ownerField = ownerField
  }
  read(sessionId) {
    return readValue(this.link, this.sessionPrefix, sessionId)
  }
  async listByUser(userId) {
    return (await this.list(userId)).map((s) => s.value)
  }
}

/** `{session, userSessions}`: the lucia-auth era form, two clients or option objects. */
function isClientPair(x) {
  return !!x && typeof x === 'object' && !isClient(x) && 'session' in x && 'userSessions' in x
}

/** lucia-auth's SessionSchema with `bigint` expiries made numbers, the rest as given. */
function plainSchema(session) {
  if (!session || typeof session !== 'object') throw badArgument('session must be a SessionSchema object')
  checkId(session.id)
  checkId(String(session.user_id), 'user id')
  const out = {}
  for (const [k, v] of Object.entries(session)) out[k] = typeof v === 'bigint' ? Number(v) : v
  const idle = Number(out.idle_expires ?? out.expires)
  if (!Number.isFinite(idle)) throw badArgument('session.idle_expires must be a number of milliseconds')
  return { schema: out, expiresAt: idle / 1000 }
}

/**
 * The lucia-auth (0.x/1.x) adapter: `redis({session, userSessions}, handleError?)`. The key
 * `<sessionId>` in the `session` connection holds the SessionSchema JSON; the key `<userId>` in
 * the `userSessions` connection is a LIST of the user's session ids. A session expires at its
 * `idle_expires`; ids whose session is gone are pruned from the LIST as it is read.
 */
function originalAdapter(clients, handleError) {
  let adapter
  return () => {
    if (adapter) return adapter
    for (const c of [clients.session, clients.userSessions]) {
      if (c && !isClient(c) && c.hashIds) throw badArgument('hashIds is not available in the lucia-auth layout: its user lists hold session ids')
    }
    const sessions = openLink(clients.session, 'lucia')
    const users = clients.userSessions === clients.session ? sessions : openLink(clients.userSessions, 'lucia')
    const read = async (ids) => {
      const values = ids.length === 0 ? [] : await sessions.call(OP.MGET, '', undefined, undefined, ids)
      return values.map((v, i) => (v === null ? null : parseStored(JSON, v, ids[i])))
    }
    const api = {
      getSession: async (sessionId) => (await read([checkId(sessionId)]))[0],
      getSessionsByUserId: async (userId) => {
        const key = checkId(String(userId), 'user id')
        const ids = await users.call(OP.LIST_READ, key)
        const found = await read(ids)
        const gone = ids.filter((_, i) => found[i] === null)
        await Promise.all(gone.map((id) => users.call(OP.LIST_REMOVE, key, id)))
        return found.filter((s) => s !== null)
      },
      // The session is written before its id joins the LIST, so an id whose session is missing
      // is always a dead one, safe to prune.
      setSession: async (session) => {
        const { schema, expiresAt } = plainSchema(session)
        await sessions.call(OP.SET_UNTIL, schema.id, JSON.stringify(schema), expiresAt)
        await users.call(OP.LIST_PUSH, String(schema.user_id), schema.id)
      },
      deleteSession: async (...args) => {
        const ids = args.flat().map((id) => checkId(id))
        if (ids.length === 0) return
        const found = await read(ids)
        await Promise.all([
          ...found.filter((s) => s !== null).map((s) => users.call(OP.LIST_REMOVE, String(s.user_id), s.id)),
          sessions.call(OP.DESTROY, '', undefined, undefined, ids),
        ])
      },
      deleteSessionsByUserId: async (userId) => {
        const key = checkId(String(userId), 'user id')
        const ids = await users.call(OP.LIST_READ, key)
        if (ids.length > 0) await sessions.call(OP.DESTROY, '', undefined, undefined, ids)
        await users.call(OP.DESTROY, key)
      },
      /** Releases both connections. */
      close: () => {
        sessions.close()
        users.close()
      },
    }
    adapter = {}
    for (const [name, fn] of Object.entries(api)) {
      adapter[name] =
        typeof handleError !== 'function' || name === 'close'
          ? fn
          : async (...args) => {
              try {
                return await fn(...args)
              } catch (err) {
                await handleError(err)
                throw err
              }
            }
    }
    return adapter
  }
}

/**
 * Lucia v2 session adapter: `lucia({adapter: {user, session: redis(client)}})`.
 * `clientOrOptions` is a node-redis/ioredis client (its settings are copied) or our
 * connection options (`url`, …). Given `{session, userSessions}` instead, it is the lucia-auth
 * era adapter (`originalAdapter`), and the second argument is its `handleError`.
 */
function redis(clientOrOptions, prefixes) {
  if (isClientPair(clientOrOptions)) return originalAdapter(clientOrOptions, prefixes)
  let index
  return () => {
    const hashTag = !isClient(clientOrOptions) && clientOrOptions && clientOrOptions.hashTag
    if (!index) index = new SessionIndex(openLink(clientOrOptions, 'lucia'), prefixes, 'user_id', hashTag)
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
        await index.remove(sessionId, index.ownerField)
      },
      deleteSessionsByUserId: async (userId) => {
        await index.drop(userId)
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
    this.index = new SessionIndex(openLink(connection, 'lucia'), prefixes, 'userId', hashTag)
    this.link = this.index.link
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
    await this.index.remove(sessionId, this.index.ownerField)
  }
  async deleteUserSessions(userId) {
    await this.index.drop(userId)
  }
  async deleteExpiredSessions() {
    await this.index.prune()
  }
}
withLink(LuciaAdapter)

function luciaAdapter(opts) {
  return new LuciaAdapter(opts)
}

module.exports = { redis, ioredis: redis, luciaAdapter, LuciaAdapter, default: redis }
