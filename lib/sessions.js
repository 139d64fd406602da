'use strict'
// Sessions without a framework, in the design Lucia's site now teaches: a token `<id>.<secret>`,
// only a SHA-256 hash of the secret stored, a constant-time check, a sliding expiry, and every
// session of a user invalidated at once. The crypto is in Rust (`src/token.rs`); the record is
// JSON at `prefix + id`, indexed by user like every other adapter's sessions.

const { mintSessionToken, sessionSecretMatches } = require('./core/binding.js')
const { OP, openLink, readValue, UserIndex, withLink } = require('./core/adapter.js')
const { badArgument, checkId } = require('./core/errors.js')

const ID = /^[A-Za-z0-9_-]{27}$/
// What a token that does not parse is checked against, so that it costs what a real one does.
const DUMMY = { id: 'A'.repeat(27), secret: 'A'.repeat(27) }
const DUMMY_HASH = 'A'.repeat(43)
// A record read as it is stored; one that does not parse is treated as missing.
const RECORD = { parse: JSON.parse }

function seconds(value, name, { optional = false } = {}) {
  if (value === undefined && optional) return undefined
  if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) throw badArgument(`${name} must be a positive number of seconds`)
  return value
}

/** `<id>.<secret>` split, or the dummy pair with `ok: false`. */
function parseToken(token) {
  if (typeof token === 'string' && token.length === 55 && token[27] === '.') {
    const id = token.slice(0, 27)
    const secret = token.slice(28)
    if (ID.test(id) && ID.test(secret)) return { ok: true, id, secret }
  }
  return { ok: false, ...DUMMY }
}

function toSession(record) {
  return { id: record.id, userId: record.userId, createdAt: new Date(record.createdAt), expiresAt: new Date(record.expiresAt), attributes: record.attributes }
}

class Sessions {
  constructor(opts = {}) {
    const { prefix = 'session:', userPrefix, expiresIn = 30 * 86400, refreshAfter = 3600, maxLifetime, cookieName = 'session', ...connection } = opts
    if (typeof prefix !== 'string' || prefix === '') throw badArgument('prefix must be a non-empty string')
    this.prefix = prefix
    this.userPrefix = userPrefix === undefined ? `${prefix.replace(/:$/, '')}-users:` : userPrefix
    if (typeof this.userPrefix !== 'string' || this.userPrefix.startsWith(prefix)) throw badArgument('userPrefix must be a string that does not start with prefix')
    this.expiresIn = seconds(expiresIn, 'expiresIn')
    this.refreshAfter = seconds(refreshAfter, 'refreshAfter')
    if (this.refreshAfter > this.expiresIn) throw badArgument('refreshAfter must not exceed expiresIn')
    this.maxLifetime = seconds(maxLifetime, 'maxLifetime', { optional: true })
    if (typeof cookieName !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookieName)) throw badArgument('cookieName must be a cookie name token')
    this.cookieName = cookieName
    if (connection.hashIds) throw badArgument('hashIds does not apply: session ids are random and the secret is already hashed')
    this.link = openLink(connection, 'sessions')
    this.users = new UserIndex(this.link, { sessionPrefix: prefix, userPrefix: this.userPrefix, ownerOf: (r) => r.userId })
  }

  /** The expiry a session refreshed at `now` gets: `expiresIn` on, within `maxLifetime`. */
  #expiry(now, createdAt) {
    const sliding = now + this.expiresIn * 1000
    return this.maxLifetime === undefined ? sliding : Math.min(sliding, createdAt + this.maxLifetime * 1000)
  }

  #live(record, now) {
    return now < record.expiresAt && (this.maxLifetime === undefined || now < record.createdAt + this.maxLifetime * 1000)
  }

  /** A new session of `userId`; the token goes to the client (see `cookie`) and nowhere else. */
  async create(userId, attributes = {}) {
    const owner = checkId(String(userId), 'user id')
    const json = JSON.stringify(attributes)
    if (json === undefined) throw badArgument('attributes must be JSON')
    const [id, secret, secretHash] = mintSessionToken()
    const createdAt = Date.now()
    const record = { id, userId: owner, secretHash, createdAt, expiresAt: this.#expiry(createdAt, createdAt), attributes: JSON.parse(json) }
    await this.users.write(id, owner, JSON.stringify(record), record.expiresAt / 1000)
    return { token: `${id}.${secret}`, session: toSession(record) }
  }

  /**
   * The session a token stands for, or null for a malformed, unknown, tampered or expired one
   * (never an exception for a bad token; an unreachable Redis still rejects with its code).
   * One GET, or none on a near-cache hit. Past `refreshAfter`, the expiry slides: the
   * refresh is sent at once and not waited for, and it never brings back a session that was
   * invalidated meanwhile (it replaces only a session that still exists).
   */
  async validate(token) {
    const { ok, id, secret } = parseToken(token)
    let record = null
    try {
      record = await readValue(this.link, this.prefix, id, RECORD)
    } catch (err) {
      if (err.code !== 'ERR_BAD_DATA') throw err
    }
    const stored = record !== null && typeof record === 'object' && typeof record.secretHash === 'string'
    // Always one hash and one constant-time compare, whatever failed before it.
    const matches = sessionSecretMatches(secret, stored ? record.secretHash : DUMMY_HASH)
    if (!ok || !stored || !matches || record.id !== id) return null
    const now = Date.now()
    if (!this.#live(record, now)) return null
    if (now >= record.expiresAt - (this.expiresIn - this.refreshAfter) * 1000) {
      const expiresAt = this.#expiry(now, record.createdAt)
      if (expiresAt > record.expiresAt) {
        record.expiresAt = expiresAt
        this.link.callId(OP.REPLACE_UNTIL, this.prefix, id, JSON.stringify(record), expiresAt / 1000).catch(() => {})
      }
    }
    return toSession(record)
  }

  /** Ends one session (by its id, not its token). */
  async invalidate(sessionId) {
    await this.users.remove(checkId(sessionId), 'userId')
  }

  /** Ends every session of `userId` but `except` (a session id); resolves to how many. */
  invalidateUser(userId, { except } = {}) {
    return this.users.drop(userId, except)
  }

  /** The user's live sessions. */
  async list(userId) {
    const now = Date.now()
    return (await this.users.list(userId)).map((s) => s.value).filter((r) => this.#live(r, now)).map(toSession)
  }

  /** The `Set-Cookie` value carrying `token`: HttpOnly, SameSite=Lax, Path=/, Max-Age `expiresIn`, Secure unless `secure: false`. */
  cookie(token, { secure = true, domain, path = '/', sameSite = 'Lax' } = {}) {
    if (typeof token !== 'string' || !parseToken(token).ok) throw badArgument('cookie() takes a token from create()')
    return this.#cookie(token, Math.floor(this.expiresIn), { secure, domain, path, sameSite })
  }

  /** The `Set-Cookie` value that deletes the session cookie. */
  blankCookie({ secure = true, domain, path = '/', sameSite = 'Lax' } = {}) {
    return this.#cookie('', 0, { secure, domain, path, sameSite })
  }

  #cookie(value, maxAge, { secure, domain, path, sameSite }) {
    let c = `${this.cookieName}=${value}; HttpOnly; SameSite=${sameSite}; Path=${path}; Max-Age=${maxAge}`
    if (domain) c += `; Domain=${domain}`
    if (secure) c += '; Secure'
    return c
  }
}
withLink(Sessions)

function createSessions(opts) {
  return new Sessions(opts)
}

module.exports = { createSessions, Sessions }
