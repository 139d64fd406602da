'use strict'
// What every adapter needs on top of a Link, written once: opening the link from a client or
// options, reading a stored value (near cache first), the user index behind "log out
// everywhere", and the `stats()`/`close()` pair.

const crypto = require('node:crypto')
const { Link, OP } = require('./link.js')
const { badArgument, checkId, parseStored } = require('./errors.js')
const { isClient } = require('./options.js')

/**
 * A Link for `adapter` (the name tracing reports) from a node-redis/ioredis client or our
 * connection options. `onEvent(name, detail)` hears 'connect' and 'disconnect'.
 */
function openLink(clientOrOptions, adapter, onEvent) {
  const opts = isClient(clientOrOptions) ? { client: clientOrOptions } : clientOrOptions || {}
  return new Link(opts, adapter, onEvent)
}

/**
 * The value stored for `id` under `prefix`, parsed with `serializer`, or null. A near-cache hit
 * needs no native call; a value that does not parse rejects with ERR_BAD_DATA.
 */
function readValue(link, prefix, id, serializer = JSON) {
  return attempt(() => {
    checkId(id)
    const hit = link.cached(prefix, id)
    // A known absence is an answer too, except while migrating to hashed ids: the session may
    // still be under its plain key.
    if (hit === null && !link.migrating) return Promise.resolve(null)
    if (typeof hit === 'string') return Promise.resolve(parseStored(serializer, hit, prefix + id))
    return link.read(prefix, id).then((raw) => (raw === null ? null : parseStored(serializer, raw, prefix + id)))
  })
}

/**
 * `readValue` for a caller with a Node-style callback, on a link with no near cache and no id
 * migration (the caller checks): `cb(err, session)` from the reply itself, with no promise
 * unless the serializer returns one. A bad id throws.
 */
function readValueCb(link, prefix, id, serializer, cb) {
  link.onIdCb(OP.GET, prefix, id, undefined, undefined, false, (err, raw) => {
    if (err) return cb(err, null)
    if (raw === null) return cb(null, null)
    let sess
    try {
      sess = parseStored(serializer, raw, prefix + id)
    } catch (parseErr) {
      return cb(parseErr, null)
    }
    if (sess && typeof sess.then === 'function') return sess.then((v) => cb(null, v), (e) => cb(e, null))
    cb(null, sess)
  })
}

/**
 * Sessions indexed by user: the session at `sessionPrefix + id` is written together with its
 * id's membership in the SET at `userPrefix + owner`, atomically. The index is never updated on
 * a destroy or an expiry: readers skip members whose session is gone (and the core prunes
 * them), and skip sessions whose `ownerOf(value)` is no longer that user.
 */
class UserIndex {
  constructor(link, { sessionPrefix, userPrefix, ownerOf, serializer = JSON }) {
    this.link = link
    this.sessionPrefix = sessionPrefix
    this.userPrefix = userPrefix
    this.ownerOf = ownerOf
    this.serializer = serializer
  }

  indexKey(owner) {
    return this.userPrefix + checkId(String(owner), 'user id')
  }

  /** Writes `value` (text) for session `id` of `owner` until the UNIX time `at` (seconds); resolves to null. */
  write(id, owner, value, at) {
    return this.link.writeId(OP.INDEXED_SET, this.sessionPrefix, id, value, at, [this.indexKey(owner), id])
  }

  /** The owner's live sessions as `[{id, value}]`, ids as keys hold them (hashed with `hashIds`). */
  async list(owner) {
    const flat = await this.link.call(OP.INDEX_READ, this.indexKey(owner), this.sessionPrefix, 1)
    const out = []
    for (let i = 0; i < flat.length; i += 2) {
      const value = await parseStored(this.serializer, flat[i + 1], this.sessionPrefix + flat[i])
      if (String(this.ownerOf(value)) === String(owner)) out.push({ id: flat[i], value })
    }
    return out
  }

  /**
   * Destroys the owner's sessions but `except` (a session id as the caller knows it); resolves
   * to how many. With no `except`, the index goes too.
   */
  async drop(owner, except) {
    const kept = except === undefined ? undefined : this.link.sid(except)
    const ids = (await this.list(owner)).map((s) => s.id).filter((id) => id !== kept)
    const keys = ids.map((id) => this.sessionPrefix + id)
    if (kept === undefined) keys.push(this.indexKey(owner))
    if (keys.length > 0) await this.link.call(OP.DESTROY, '', undefined, undefined, keys)
    return ids.length
  }

  /** Destroys session `id` and takes it out of its owner's index (`field` of the stored JSON). */
  async remove(id, field) {
    await this.link.callId(OP.INDEXED_DELETE, this.sessionPrefix, id, undefined, undefined, [id, this.userPrefix, field])
    // While migrating, the plain key goes too, or the next read would move it back.
    if (this.link.migrating) await this.link.callId(OP.DESTROY, this.sessionPrefix, id)
  }

  /** Removes members whose session has expired from every index; resolves to how many. */
  prune() {
    return this.link.call(OP.PRUNE_INDEXES, this.userPrefix, this.sessionPrefix, 100)
  }
}

/** Adds `stats()` and `close()` over `this.link` to an adapter class. */
function withLink(Adapter) {
  Object.defineProperties(Adapter.prototype, {
    stats: {
      /** Numbers an operator can watch: see docs/observability.md. */
      value: function stats() {
        return this.link.stats()
      },
      writable: true,
      configurable: true,
    },
    close: {
      /** Releases the connection; calls in flight still settle. */
      value: function close() {
        this.link.close()
      },
      writable: true,
      configurable: true,
    },
  })
  return Adapter
}

/** A new session id: 128 bits from the OS CSPRNG, as 22 base64url characters. */
function newSessionId() {
  return crypto.randomBytes(16).toString('base64url')
}

/**
 * Milliseconds from now until `date` (a Date); 0 when the date is not in the future (the caller
 * deletes instead of writing).
 */
function millisUntil(date, what = 'expires') {
  const at = date instanceof Date ? date.getTime() : NaN
  if (!Number.isFinite(at)) throw badArgument(`${what} must be a valid Date`)
  return Math.max(0, at - Date.now())
}

/**
 * `millisUntil` in whole seconds, rounded up, for a write whose TTL is in seconds: the key
 * outlives its date by less than a second, never dies before it.
 */
function secondsUntil(date, what = 'expires') {
  return Math.ceil(millisUntil(date, what) / 1000)
}

/** `value` as JSON text; a value JSON cannot write (a cycle, a BigInt) is a coded error. */
function toJson(value, what = 'session data') {
  let text
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    throw badArgument(`${what} must be JSON-serializable: ${cause && cause.message}`)
  }
  if (typeof text !== 'string') throw badArgument(`${what} must be JSON-serializable`)
  return text
}

/** `work()`, with a synchronous throw (a bad id, a serializer that throws) as a rejection. */
function attempt(work) {
  try {
    return work()
  } catch (err) {
    return Promise.reject(err)
  }
}

/** A promise, or its outcome handed to a Node-style callback when one is given. */
function settle(promise, cb) {
  if (typeof cb !== 'function') return promise
  return promise.then(
    (data) => cb(null, data),
    (err) => cb(err, null),
  )
}

module.exports = { openLink, readValue, readValueCb, UserIndex, withLink, attempt, settle, newSessionId, millisUntil, secondsUntil, toJson, OP }
