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
const { Link, OP, checkId, parseStored } = require('./native.js')

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
    if (typeof this.prefix !== 'string') throw new TypeError('prefix must be a string')
    this.link = new Link(opts, (name, detail) => this.emit(name, detail))
  }

  // The hot methods chain one .then onto the core's promise instead of using async functions:
  // one promise and one microtask fewer per call.
  get(sid, cb) {
    return settle(
      this.#start(sid, (key) => {
        const hit = this.link.cached(key)
        if (hit !== undefined) return Promise.resolve(parseStored(this.serializer, hit, key))
        return this.link.call(OP.GET, key).then((data) => (data ? parseStored(this.serializer, data, key) : null))
      }),
      cb,
    )
  }

  set(sid, sess, cb) {
    return settle(
      this.#start(sid, (key) => {
        const ttl = this.getTTL(sess)
        if (!(ttl > 0)) return this.link.call(OP.DESTROY, key).then(this.#done('destroy', sid))
        const value = this.serializer.stringify(sess)
        if (typeof value !== 'string') throw new TypeError('serializer.stringify must return a string')
        return this.link.call(OP.SET, key, value, this.disableTTL ? undefined : ttl).then(this.#done('set', sid))
      }),
      cb,
    )
  }

  touch(sid, sess, cb) {
    return settle(
      this.#start(sid, (key) => {
        if (this.disableTouch || this.disableTTL) return Promise.resolve(null)
        return this.link.call(OP.TOUCH, key, undefined, this.getTTL(sess)).then(this.#done('touch', sid))
      }),
      cb,
    )
  }

  destroy(sid, cb) {
    return settle(
      this.#start(sid, (key) => this.link.call(OP.DESTROY, key).then(this.#done('destroy', sid))),
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

  /** Runs `work(key)`; a bad id or a throwing serializer becomes a rejected promise. */
  #start(sid, work) {
    try {
      return work(this.prefix + checkId(sid))
    } catch (err) {
      return Promise.reject(err)
    }
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

  /** Counters an operator can watch: `{cache: {hits, misses, invalidations, entries} | null}`. */
  stats() {
    return { cache: this.link.cacheStats() }
  }

  /** Releases the connection; calls in flight still settle. */
  close() {
    this.link.close()
  }
}

module.exports = { RedisStore }
