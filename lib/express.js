'use strict'
// express-session store with connect-redis's options, defaults, keys and stored values.

const { EventEmitter } = require('node:events')

// express-session is a peer dependency: when it is absent (Lucia, Curveball or unstorage users)
// the store is still an EventEmitter, which is all express-session's Store adds to a store.
let Store
try {
  Store = require('express-session').Store
} catch {
  Store = EventEmitter
}
const { Link, OP, badArgument, checkId, parseStored } = require('./native.js')

const toNull = () => null

function settle(promise, cb) {
  if (typeof cb !== 'function') return promise
  return promise.then(
    (data) => cb(null, data),
    (err) => cb(err, null),
  )
}

class RedisStore extends Store {
  constructor(opts = {}) {
    super()
    this.prefix = opts.prefix == null ? 'sess:' : opts.prefix
    this.scanCount = opts.scanCount || 100
    this.serializer = opts.serializer || JSON
    this.ttl = opts.ttl || 86400
    this.disableTTL = opts.disableTTL || false
    this.disableTouch = opts.disableTouch || false
    this.client = opts.client
    // Opt-in 'set', 'destroy' and 'touch' events (with the session id) after each succeeds,
    // for audit logs.
    this.events = opts.events === true
    // Log out everywhere: with `userId(sess)`, each session joins its user's index (a SET at
    // `userPrefix + userId`) as it is written. Readers check each member's owner and skip the
    // dead, so a destroy, an expiry or a change of owner needs no index write.
    this.userId = opts.userId
    this.userPrefix = opts.userPrefix == null ? `${this.prefix.replace(/:$/, '')}-users:` : opts.userPrefix
    if (typeof this.prefix !== 'string') throw new TypeError('prefix must be a string')
    if (this.userId !== undefined && typeof this.userId !== 'function') throw badArgument('userId must be a function of the session')
    if (this.userId && this.disableTTL) throw badArgument('userId needs session TTLs (it cannot be used with disableTTL)')
    if (this.userId && this.prefix && this.userPrefix.startsWith(this.prefix)) throw badArgument('userPrefix must not start with prefix: the index would be listed as sessions')
    this.link = new Link(opts, (name, detail) => this.emit(name, detail))
  }

  // The hot methods chain one .then onto the core's promise instead of using async functions:
  // one promise and one microtask fewer per call.
  // Keys are `prefix + sid`; `callId` lets the core hash the id (`hashIds`) and seal the value
  // (`encryption`). Parse errors name the key as the caller knows it.
  get(sid, cb) {
    return settle(
      this.#start(sid, () => {
        const hit = this.link.cached(this.prefix, sid)
        if (hit !== undefined) return Promise.resolve(parseStored(this.serializer, hit, this.prefix + sid))
        return this.link.read(this.prefix, sid).then((data) => (data ? parseStored(this.serializer, data, this.prefix + sid) : null))
      }),
      cb,
    )
  }

  set(sid, sess, cb) {
    return settle(
      this.#start(sid, () => {
        const ttl = this.getTTL(sess)
        if (!(ttl > 0)) return this.link.callId(OP.DESTROY, this.prefix, sid).then(this.#done('destroy', sid))
        const value = this.serializer.stringify(sess)
        if (typeof value !== 'string') throw new TypeError('serializer.stringify must return a string')
        const owner = this.userId ? this.userId(sess) : undefined
        if (owner != null) {
          const at = Math.ceil(Date.now() / 1000) + ttl
          return this.link.callId(OP.INDEXED_SET, this.prefix, sid, value, at, [this.userPrefix + checkId(String(owner), 'user id'), sid]).then(this.#done('set', sid))
        }
        return this.link.callId(OP.SET, this.prefix, sid, value, this.disableTTL ? undefined : ttl).then(this.#done('set', sid))
      }),
      cb,
    )
  }

  touch(sid, sess, cb) {
    return settle(
      this.#start(sid, () => {
        if (this.disableTouch || this.disableTTL) return Promise.resolve(null)
        return this.link.callId(OP.TOUCH, this.prefix, sid, undefined, this.getTTL(sess)).then(this.#done('touch', sid))
      }),
      cb,
    )
  }

  destroy(sid, cb) {
    return settle(
      this.#start(sid, () => this.link.callId(OP.DESTROY, this.prefix, sid).then(this.#done('destroy', sid))),
      cb,
    )
  }

  /** What a write resolves through: null, after the event when `events` is on. */
  #done(event, sid) {
    if (!this.events) return toNull
    return () => {
      this.emit(event, sid)
      return null
    }
  }

  /** Runs `work()` on a checked id; a bad id or a throwing serializer becomes a rejected promise. */
  #start(sid, work) {
    try {
      checkId(sid)
      return work()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The user's live sessions, each with its `id` (needs the `userId` option). */
  userSessions(userId, cb) {
    return settle(this.#userSessions(userId), cb)
  }

  async #userSessions(userId) {
    if (!this.userId) throw badArgument('userSessions needs the userId option')
    const index = this.userPrefix + checkId(String(userId), 'user id')
    const flat = await this.link.call(OP.INDEX_READ, index, this.prefix, 1)
    const out = []
    for (let i = 0; i < flat.length; i += 2) {
      const sess = await parseStored(this.serializer, flat[i + 1], this.prefix + flat[i])
      // A session that changed owner stays in its old index until it goes; skip it there.
      if (String(this.userId(sess)) !== String(userId)) continue
      sess.id = flat[i]
      out.push(sess)
    }
    return out
  }

  /** Destroys the user's sessions but `except` (a session id); resolves to how many. */
  destroyUserSessions(userId, opts, cb) {
    if (typeof opts === 'function') [cb, opts] = [opts, undefined]
    return settle(this.#destroyUserSessions(userId, (opts && opts.except) || undefined), cb)
  }

  async #destroyUserSessions(userId, plainExcept) {
    // Index members are ids as keys hold them: hashed with `hashIds`.
    const except = plainExcept === undefined ? undefined : this.link.sid(plainExcept)
    const ids = (await this.#userSessions(userId)).map((s) => s.id).filter((id) => id !== except)
    if (ids.length === 0) return 0
    await this.link.call(OP.DESTROY, '', undefined, undefined, ids.map((id) => this.prefix + id))
    return ids.length
  }

  clear(cb) {
    return settle(this.link.call(OP.CLEAR, this.prefix, undefined, this.scanCount).then(() => null), cb)
  }

  length(cb) {
    return settle(this.link.call(OP.COUNT, this.prefix, undefined, this.scanCount), cb)
  }

  ids(cb) {
    return settle(this.link.call(OP.IDS, this.prefix, undefined, this.scanCount), cb)
  }

  all(cb) {
    return settle(this.#all(), cb)
  }

  async #all() {
    const flat = await this.link.call(OP.ENTRIES, this.prefix, undefined, this.scanCount)
    const out = []
    for (let i = 0; i < flat.length; i += 2) {
      const sess = await parseStored(this.serializer, flat[i + 1], this.prefix + flat[i])
      sess.id = flat[i]
      out.push(sess)
    }
    return out
  }

  /** Seconds the session should live: `ttl(sess)` if a function, else the cookie's expiry, else `ttl`. */
  getTTL(sess) {
    if (typeof this.ttl === 'function') return this.ttl(sess)
    if (sess && sess.cookie && sess.cookie.expires) {
      const ms = Number(new Date(sess.cookie.expires)) - Date.now()
      return Math.ceil(ms / 1000)
    }
    return this.ttl
  }

  /**
   * Numbers an operator can watch: `{calls: {op: {calls, errors: {code: n}, latency: {p50, p90,
   * p99, max}}}, inFlight, link: {connects, reconnects, failovers}, cache}` (latency in ms;
   * `cache` null when the near cache is off). Cheap enough to call on every scrape.
   */
  stats() {
    return this.link.stats()
  }

  /** Releases the connection; calls in flight still settle. */
  close() {
    this.link.close()
  }
}

module.exports = { RedisStore }
