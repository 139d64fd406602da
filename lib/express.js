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
const { OP, openLink, readValue, readValueCb, settle, UserIndex, withLink } = require('./core/adapter.js')
const { badArgument, checkId, parseStored } = require('./core/errors.js')

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
    this.link = openLink(opts, 'express', (name, detail) => this.emit(name, detail))
    this.users = this.userId && new UserIndex(this.link, { sessionPrefix: this.prefix, userPrefix: this.userPrefix, ownerOf: this.userId, serializer: this.serializer })
  }

  // The hot methods chain one .then onto the core's promise instead of using async functions:
  // one promise and one microtask fewer per call.
  // Keys are `prefix + sid`; `callId` lets the core hash the id (`hashIds`) and seal the value
  // (`encryption`). Parse errors name the key as the caller knows it.
  get(sid, cb) {
    // With a callback, and no near cache or id migration to ask first: no promise either.
    if (typeof cb === 'function' && !this.link.cacheOn && !this.link.migrating) {
      try {
        readValueCb(this.link, this.prefix, sid, this.serializer, cb)
      } catch (err) {
        later(cb, err)
      }
      return
    }
    // readValue checks the id and turns what throws into a rejection itself.
    return settle(readValue(this.link, this.prefix, sid, this.serializer), cb)
  }

  set(sid, sess, cb) {
    if (typeof cb === 'function' && !this.events && !this.userId) {
      let ttl, value
      try {
        checkId(sid)
        ttl = this.getTTL(sess)
        if (ttl > 0) value = this.#value(sess)
      } catch (err) {
        return later(cb, err)
      }
      if (!(ttl > 0)) return this.#writeCb(OP.DESTROY, sid, undefined, undefined, cb)
      return this.#writeCb(OP.SET, sid, value, this.disableTTL ? undefined : ttl, cb)
    }
    let written
    try {
      checkId(sid)
      const ttl = this.getTTL(sess)
      if (!(ttl > 0)) written = this.#write('destroy', OP.DESTROY, sid)
      else {
        const value = this.#value(sess)
        const owner = this.userId ? this.userId(sess) : undefined
        written =
          owner != null
            ? this.#announce('set', sid, this.users.write(sid, owner, value, Math.ceil(Date.now() / 1000) + ttl))
            : this.#write('set', OP.SET, sid, value, this.disableTTL ? undefined : ttl)
      }
    } catch (err) {
      written = Promise.reject(err)
    }
    return settle(written, cb)
  }

  touch(sid, sess, cb) {
    if (typeof cb === 'function' && !this.events && !this.disableTouch && !this.disableTTL) {
      let ttl
      try {
        checkId(sid)
        ttl = this.getTTL(sess)
      } catch (err) {
        return later(cb, err)
      }
      return this.#writeCb(OP.TOUCH, sid, undefined, ttl, cb)
    }
    let written
    try {
      checkId(sid)
      written = this.disableTouch || this.disableTTL ? Promise.resolve(null) : this.#write('touch', OP.TOUCH, sid, undefined, this.getTTL(sess))
    } catch (err) {
      written = Promise.reject(err)
    }
    return settle(written, cb)
  }

  destroy(sid, cb) {
    if (typeof cb === 'function' && !this.events) return this.#writeCb(OP.DESTROY, sid, undefined, undefined, cb)
    let written
    try {
      written = this.#write('destroy', OP.DESTROY, sid)
    } catch (err) {
      written = Promise.reject(err)
    }
    return settle(written, cb)
  }

  /** The session as stored: the serializer's string. */
  #value(sess) {
    const value = this.serializer.stringify(sess)
    if (typeof value !== 'string') throw new TypeError('serializer.stringify must return a string')
    return value
  }

  /**
   * A write on session `sid` for a caller with a callback (express-session's way): the link
   * calls `cb` when Redis answers, with no promise made on the common path.
   */
  #writeCb(op, sid, value, num, cb) {
    try {
      this.link.onIdCb(op, this.prefix, sid, value, num, true, cb)
    } catch (err) {
      later(cb, err)
    }
  }

  /**
   * A write on session `sid`, resolving to null: after the event `event` when `events` is on
   * (with no event to emit, the link resolves to null itself).
   */
  #write(event, op, sid, value, num) {
    return this.#announce(event, sid, this.link.writeId(op, this.prefix, sid, value, num))
  }

  /** `written` (a write resolving to null), followed by the event when `events` is on. */
  #announce(event, sid, written) {
    if (!this.events) return written
    return written.then(() => {
      this.emit(event, sid)
      return null
    })
  }

  /** The user's live sessions, each with its `id` (needs the `userId` option). */
  userSessions(userId, cb) {
    return settle(
      this.#withUsers(async () => (await this.users.list(userId)).map(({ id, value }) => Object.assign(value, { id }))),
      cb,
    )
  }

  /** Destroys the user's sessions but `except` (a session id); resolves to how many. */
  destroyUserSessions(userId, opts, cb) {
    if (typeof opts === 'function') [cb, opts] = [opts, undefined]
    return settle(
      this.#withUsers(() => this.users.drop(userId, (opts && opts.except) || undefined)),
      cb,
    )
  }

  #withUsers(work) {
    if (!this.users) return Promise.reject(badArgument('the user index needs the userId option'))
    return work()
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
    const expires = sess && sess.cookie && sess.cookie.expires
    if (expires) {
      // express-session hands a Date: read it, not a copy of it.
      const at = expires instanceof Date ? expires.getTime() : Number(new Date(expires))
      return Math.ceil((at - Date.now()) / 1000)
    }
    return this.ttl
  }
}

/** `cb(err, null)` on a later microtask: a callback is never called before its call returns. */
function later(cb, err) {
  queueMicrotask(() => cb(err, null))
}

// `stats()`: see docs/observability.md; `close()` releases the connection, calls in flight still settle.
withLink(RedisStore)

module.exports = { RedisStore, default: RedisStore }
