'use strict'
// Shared glue between every adapter and the Rust core: turns options and existing clients into
// the core's connection options, batches calls made in the same tick into one native call, and
// settles promises from the core's replies.

const { NativeStore, opCodes } = require('../native.js')

// The op codes of the batch format (`src/batch.rs` holds the one table).
const OP = Object.freeze(opCodes())

// Calls that read or change a whole keyspace (SCAN walks). Each waits for every earlier call
// of its store to settle, and later calls wait for it: no call overtakes another across one,
// so an un-awaited set() followed by ids() is seen, and clear() never deletes a later set().
const KEYSPACE_OPS = new Set([OP.COUNT, OP.IDS, OP.ENTRIES, OP.CLEAR, OP.PRUNE_INDEXES])

// Single-key calls that a memory:// store answers inside the call (`Link#now`).
const DIRECT_OPS = new Set([OP.GET, OP.SET, OP.SET_UNTIL, OP.TOUCH, OP.DESTROY, OP.EXISTS])

// Calls made until the event loop's check phase are handed to Rust together (setImmediate, so
// calls from every request handled in one loop turn share a write), at most `batchCap` per
// native call (the core's advice: 16 per connection, so Redis starts on the first calls while
// JS makes the next; more for a cluster's several nodes and for memory://). Flushing per
// microtask instead sent one write per HTTP request under Express and cost redis-server 4x the
// CPU.

// Option names copied from a cluster client's shared options. Anything else (modules, scripts,
// sockets, functions) is left behind.
const CLIENT_KEYS = ['url', 'socket', 'host', 'port', 'path', 'username', 'password', 'database', 'db', 'tls', 'sentinels', 'name', 'sentinelUsername', 'sentinelPassword']
// Fields of a client's options copied whatever their value, so that the core can refuse one it
// cannot read instead of falling back to the default address. Other fields are copied only when
// they are plain strings, numbers or booleans.
const SERVER_KEYS = ['url', 'host', 'port', 'path', 'socket', 'sentinels', 'db', 'database']
const SOCKET_KEYS = ['host', 'port', 'path', 'tls', 'ca', 'cert', 'key', 'servername', 'rejectUnauthorized']
const TLS_KEYS = ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized']
const CONNECTION_KEYS = ['url', 'host', 'port', 'path', 'username', 'password', 'db', 'tls', 'connectTimeout', 'commandTimeout', 'maxPending', 'touchAfter', 'cache', 'cluster', 'sentinel', 'hashIds', 'encryption']

function pemText(v) {
  if (v == null) return undefined
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('utf8')
  if (Array.isArray(v)) return v.map(pemText).join('\n')
  return typeof v === 'string' ? v : undefined
}

function pick(source, keys) {
  const out = {}
  if (!source || typeof source !== 'object') return out
  for (const k of keys) {
    const v = source[k]
    if (v === undefined || typeof v === 'function') continue
    out[k] = v
  }
  return out
}

/** `keys` of `source`, with PEM material (Buffers, arrays) turned into strings. */
function pickWithPem(source, keys) {
  const out = pick(source, keys)
  for (const k of ['ca', 'cert', 'key']) if (k in out) out[k] = pemText(out[k])
  return out
}

function plainTls(tls) {
  if (tls === true || tls === false) return tls
  if (!tls || typeof tls !== 'object') return undefined
  return pickWithPem(tls, TLS_KEYS)
}

const plainSocket = (socket) => pickWithPem(socket, SOCKET_KEYS)

/** `encryption` with its keys as base64 text: Buffers and Uint8Arrays are encoded, strings kept. */
function plainEncryption(enc) {
  if (!enc || typeof enc !== 'object' || !enc.keys || typeof enc.keys !== 'object') return enc
  const keys = {}
  for (const [id, k] of Object.entries(enc.keys)) keys[id] = k instanceof Uint8Array ? Buffer.from(k).toString('base64') : k
  return { ...enc, keys }
}

/** A client's options as JSON for the core: see SERVER_KEYS. */
function plainOptions(options) {
  const out = {}
  for (const [k, v] of Object.entries(options)) {
    if (v == null || typeof v === 'function') continue
    if (SERVER_KEYS.includes(k) || typeof v !== 'object') out[k] = v
  }
  if (out.socket && typeof out.socket === 'object') out.socket = plainSocket(out.socket)
  if ('tls' in options) out.tls = plainTls(options.tls)
  if (Array.isArray(out.sentinels)) out.sentinels = out.sentinels.map((n) => pick(n, ['host', 'port']))
  return out
}

/** The settings of a node-redis or ioredis client (standalone, cluster or sentinel), as plain JSON for the core. */
function clientSettings(client) {
  if (!client || typeof client !== 'object') {
    throw badArgument('client must be a node-redis or ioredis client')
  }
  // node-redis createCluster keeps its options in `_options`; ioredis marks a Cluster.
  const clusterOptions = client._options && client._options.rootNodes ? client._options : null
  if (clusterOptions) {
    const defaults = pick(clusterOptions.defaults, CLIENT_KEYS)
    if (defaults.socket) defaults.socket = plainSocket(defaults.socket)
    const rootNodes = clusterOptions.rootNodes.map((n) => ({ url: n.url, socket: n.socket && plainSocket(n.socket) }))
    return { flavor: 'node-redis-cluster', options: { rootNodes, defaults } }
  }
  if (client.isCluster === true) {
    const redisOptions = pick(client.options && client.options.redisOptions, CLIENT_KEYS)
    if ('tls' in redisOptions) redisOptions.tls = plainTls(redisOptions.tls)
    const startupNodes = (client.startupNodes || []).map((n) => (typeof n === 'object' ? pick(n, ['host', 'port']) : n))
    return { flavor: 'ioredis-cluster', options: { startupNodes, redisOptions } }
  }
  const options = client.options
  if (!options || typeof options !== 'object') {
    throw badArgument('client has no readable options: pass a node-redis (v3 to v5) or ioredis client, or a url')
  }
  // node_redis v3 resolved its server into `connection_options`, its db into `selected_db`.
  if (client.connection_options && typeof client.connection_options === 'object') {
    const resolved = { ...plainOptions(options), ...pick(client.connection_options, ['host', 'port', 'path']) }
    delete resolved.url
    if (client.selected_db != null) resolved.db = client.selected_db
    if (resolved.password == null && typeof client.auth_pass === 'string') resolved.password = client.auth_pass
    if (resolved.user == null && typeof client.auth_user === 'string') resolved.user = client.auth_user
    return { flavor: 'node-redis-v3', options: resolved }
  }
  // ioredis keeps host/port at the top level and reports a `status`; node-redis has `socket`.
  const flavor = typeof client.status === 'string' && !('socket' in options) ? 'ioredis' : 'node-redis'
  return { flavor, options: plainOptions(options) }
}

/**
 * Our connection options (`url`, timeouts, …) plus, optionally, an existing client's settings
 * (`client`) or node-redis `createClient` options (`clientOptions`).
 */
function connectionOptions(opts = {}) {
  const out = pick(opts, CONNECTION_KEYS)
  const otherKeys = Object.keys(opts).filter((k) => !CONNECTION_KEYS.includes(k) && k !== 'client' && k !== 'clientOptions')
  if (otherKeys.length > 0) out.otherKeys = otherKeys
  if ('tls' in out) out.tls = plainTls(out.tls)
  if ('encryption' in out) out.encryption = plainEncryption(out.encryption)
  if (opts.client) out.client = clientSettings(opts.client)
  else if (opts.clientOptions != null) {
    if (typeof opts.clientOptions !== 'object') throw badArgument('clientOptions must be an object')
    out.client = { flavor: 'options', options: plainOptions(opts.clientOptions) }
  }
  return out
}

/** True for a node-redis or ioredis client, as opposed to a plain options object. */
function isClient(x) {
  return !!x && typeof x === 'object' && !!(x.options || x._options) && (typeof x.connect === 'function' || typeof x.sendCommand === 'function')
}

function badArgument(message) {
  const err = new TypeError(message)
  err.code = 'ERR_BAD_ARGUMENT'
  return err
}

/** Rejects ids that are not non-empty strings, the same way for every adapter. */
function checkId(id, what = 'session id') {
  if (typeof id !== 'string') throw badArgument(`${what} must be a string, got ${id === null ? 'null' : typeof id}`)
  if (id.length === 0) throw badArgument(`${what} must not be empty`)
  return id
}

function badData(key, cause) {
  const err = new Error(`the value stored at ${JSON.stringify(key)} could not be parsed: ${cause && cause.message}`, { cause })
  err.code = 'ERR_BAD_DATA'
  return err
}

/**
 * Parses a stored value; one that does not parse becomes a coded error, not a crash. Returns
 * the value, or a promise when the parser is async.
 */
function parseStored(serializer, raw, key) {
  let parsed
  try {
    parsed = serializer.parse(raw)
  } catch (cause) {
    throw badData(key, cause)
  }
  if (parsed && typeof parsed.then === 'function') {
    return Promise.resolve(parsed).catch((cause) => {
      throw badData(key, cause)
    })
  }
  return parsed
}

// Errors from the native constructor carry their code at the front of the message.
function nativeError(err) {
  const m = /^(ERR_[A-Z_]+): (.*)$/s.exec(err && err.message)
  if (!m) return err
  const e = m[1] === 'ERR_BAD_ARGUMENT' ? new TypeError(m[2]) : new Error(m[2])
  e.code = m[1]
  return e
}

/**
 * One connection to the core. `onEvent(name, detail)` hears 'connect' and 'disconnect'.
 *
 * Calls are written into a reused Float64Array of records plus one string of text arguments
 * (the format `src/batch.rs` reads), and handed to Rust once per loop turn or every `batchCap` calls.
 */
class Link {
  constructor(opts, onEvent) {
    this.pending = new Map()
    this.nextId = 1
    this.nums = new Float64Array(256)
    this.used = 0
    this.text = ''
    this.count = 0
    this.flushScheduled = false
    this.onEvent = onEvent
    this.closed = false
    // Calls held back behind a keyspace call, in call order; null when nothing is held.
    this.held = null
    // The near cache's change count and the time left of its last hit, written by the core
    // (see `cached`).
    this.shared = new Float64Array(2)
    try {
      this.native = new NativeStore(JSON.stringify(connectionOptions(opts)), (payload) => this.receive(payload), this.shared)
    } catch (err) {
      throw nativeError(err)
    }
    this.batchCap = this.native.batchCap
    // memory:// answers single-key calls on the spot (see `now`).
    this.direct = this.native.inline
    this.untimed = 0
    this.cacheOn = !!opts.cache
    // Copies of near-cache hits, valid while the core's cache has not changed since (shared[0])
    // and the key's TTL has not run out: a hot read then needs no native call at all.
    // Bounded like the core's cache (entries and characters), and emptied whole when full.
    this.mirror = new Map()
    this.mirrorCap = (opts.cache && opts.cache.maxEntries) || 10_000
    this.mirrorMaxChars = (opts.cache && opts.cache.maxBytes) || 32 * 1024 * 1024
    this.mirrorChars = 0
    this.mirrorHits = 0
    // Settled calls, handed to the core's histograms 256 at a time (see `note`).
    this.record = new Float64Array(3 * 256)
    this.recorded = 0
    this.batchStarted = 0
    this.errorCodes = this.native.errorCodes
    // The core has checked the option by now.
    this.migrating = opts.hashIds === 'migrate'
    this.flush = this.flush.bind(this)
  }

  /** A session id as keys and indexes hold it: checked, and hashed with `hashIds`. */
  sid(id) {
    return this.native.sealId(checkId(id))
  }

  /**
   * Reads session `id` under `prefix`: its stored text, or null. With `hashIds: 'migrate'`, a
   * session still under its plain key moves to its hashed key.
   */
  read(prefix, id) {
    const found = this.callId(OP.GET, prefix, id)
    if (!this.migrating) return found
    return found.then((v) => (v !== null ? v : this.callId(OP.ADOPT, prefix, id)))
  }

  /** `key` and `value` are strings (`value` may be undefined), `num` a number or undefined, `list` strings. */
  call(op, key, value, num, list) {
    return this.ordered(op, key, value, num, list, 0)
  }

  /**
   * A call on session `id`'s key, `prefix + id`. The core hashes the id there (`hashIds`), in
   * the index member that repeats it, and in what a destroy or a move deletes; values are
   * sealed and opened in the core too (`encryption`), so this side never sees either.
   */
  callId(op, prefix, id, value, num, list) {
    checkId(id)
    return this.ordered(op, prefix + id, value, num, list, prefix.length + 1)
  }

  /** `mark`: 0, or 1 + the length of the prefix before a session id that ends `key`. */
  ordered(op, key, value, num, list, mark) {
    if (this.closed) return Promise.reject(closedError())
    if (this.direct && this.count === 0 && this.held === null && list === undefined && DIRECT_OPS.has(op)) return this.now(op, key, value, num, mark)
    if (this.held !== null || (KEYSPACE_OPS.has(op) && this.pending.size > 0)) {
      if (this.held === null) this.held = []
      return new Promise((resolve, reject) => this.held.push({ op, key, value, num, list, mark, resolve, reject }))
    }
    if (KEYSPACE_OPS.has(op)) this.held = []
    return this.send(op, key, value, num, list, mark)
  }

  /**
   * A memory:// call answered inside the native call, with no batch: only when nothing of
   * this store waits to be sent or is held back, so no call overtakes an earlier one.
   */
  now(op, key, value, num, mark) {
    // Every call is counted; one in 16 is timed, since reading the clock costs as much as the
    // call itself here. -1 marks "not timed".
    const timed = (++this.untimed & 15) === 0
    const p = { op, started: timed ? performance.now() : 0 }
    let v
    try {
      v = this.native.runNow(op, key, value, num, mark)
    } catch (err) {
      v = nativeError(err)
    }
    const done = timed ? performance.now() : -1
    if (v instanceof Error) {
      this.note(p, v, done)
      return Promise.reject(v)
    }
    this.note(p, null, done)
    return Promise.resolve(v)
  }

  /** Sends what was held back once nothing is in flight, up to and including the next keyspace call. */
  release() {
    if (this.held === null || this.pending.size > 0) return
    while (this.held.length > 0) {
      const keyspace = KEYSPACE_OPS.has(this.held[0].op)
      if (keyspace && this.pending.size > 0) return
      const c = this.held.shift()
      this.send(c.op, c.key, c.value, c.num, c.list, c.mark).then(c.resolve, c.reject)
      if (keyspace) return
    }
    this.held = null
  }

  send(op, key, value, num, list, mark) {
    const id = this.nextId
    this.nextId = id >= 0xfffffff0 ? 1 : id + 1
    // Calls of one batch share a start time, and replies of one delivery an end time: two
    // clock reads per batch, not per call.
    if (this.count === 0) this.batchStarted = performance.now()
    const started = this.batchStarted
    const promise = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, op, started })
    })
    const listLength = list === undefined ? 0 : list.length
    if (this.used + 6 + listLength > this.nums.length) {
      const grown = new Float64Array(Math.max(this.nums.length * 2, this.used + 6 + listLength))
      grown.set(this.nums.subarray(0, this.used))
      this.nums = grown
    }
    const a = this.nums
    let n = this.used
    a[n] = op + 256 * mark
    a[n + 1] = id
    a[n + 2] = num === undefined ? NaN : Number(num)
    a[n + 3] = key.length
    a[n + 4] = typeof value === 'string' ? value.length : -1
    a[n + 5] = listLength
    n += 6
    this.text += key
    if (typeof value === 'string') this.text += value
    for (let i = 0; i < listLength; i++) {
      a[n++] = list[i].length
      this.text += list[i]
    }
    this.used = n
    if (++this.count >= this.batchCap) this.flush()
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flush)
    }
    return promise
  }

  flush() {
    this.flushScheduled = false
    if (this.count === 0) return
    const used = this.used
    const text = this.text
    this.used = 0
    this.text = ''
    this.count = 0
    let answered
    try {
      answered = this.native.submit(this.nums, used, text)
    } catch (err) {
      // The batch never started: settle every call in it.
      const e = nativeError(err)
      const now = performance.now()
      for (let i = 0; i < used; i += 6 + this.nums[i + 5]) {
        const p = this.pending.get(this.nums[i + 1])
        if (p) {
          this.pending.delete(this.nums[i + 1])
          this.note(p, e, now)
          p.reject(e)
        }
      }
      this.release()
      return
    }
    // A cluster's advice grows once its slot map shows all its primaries.
    this.batchCap = this.native.batchCap
    // memory:// answers inside submit; promise reactions still run later, as microtasks.
    if (answered) this.receive(answered)
    else this.release()
  }

  receive(payload) {
    if (typeof payload[0] === 'string') {
      this.onEvent(payload[0], payload[1])
      return
    }
    const now = performance.now()
    for (let i = 0; i < payload.length; i += 2) {
      const p = this.pending.get(payload[i])
      if (p === undefined) continue
      this.pending.delete(payload[i])
      const v = payload[i + 1]
      if (v instanceof Error) {
        this.note(p, v, now)
        p.reject(v)
      } else {
        this.note(p, null, now)
        p.resolve(v)
      }
    }
    if (this.held !== null) this.release()
  }

  /** Records a settled call for `stats()`: op, microseconds, error code number (0: none). */
  note(p, err, now) {
    const r = this.record
    let n = this.recorded
    r[n] = p.op
    r[n + 1] = now < 0 ? -1 : (now - p.started) * 1000
    r[n + 2] = err === null ? 0 : this.errorCodes.indexOf(err.code) + 1 || this.errorCodes.length + 1
    n += 3
    if (n === r.length) {
      this.native.record(r, n)
      n = 0
    }
    this.recorded = n
  }

  /**
   * What an operator watches: per operation, calls, errors by code and latency percentiles
   * (ms); calls in flight; connects, reconnects and failovers followed; the near cache.
   */
  stats() {
    if (this.closed) return null
    if (this.recorded > 0) this.native.record(this.record, this.recorded)
    this.recorded = 0
    const s = JSON.parse(this.native.statsJson())
    s.inFlight = this.pending.size + (this.held === null ? 0 : this.held.length)
    s.cache = this.cacheStats()
    return s
  }

  /**
   * The near cache's live value of session `id` under `prefix`, or undefined. Asked only when no call of this store
   * waits to be sent or is held back, so a read never overtakes an earlier write.
   */
  cached(prefix, id) {
    if (!this.cacheOn || this.count !== 0 || this.held !== null || this.closed) return undefined
    const key = prefix + id
    const copy = this.mirror.get(key)
    if (copy !== undefined) {
      if (copy.epoch === this.shared[0] && copy.until > Date.now()) {
        this.mirrorHits++
        return copy.value
      }
      this.mirror.delete(key)
    }
    let value
    try {
      value = this.native.cached(prefix, id)
    } catch (err) {
      throw nativeError(err)
    }
    if (value == null) return undefined
    if (this.mirror.size >= this.mirrorCap || this.mirrorChars + value.length > this.mirrorMaxChars) {
      this.mirror.clear()
      this.mirrorChars = 0
    }
    this.mirror.set(key, { value, epoch: this.shared[0], until: Date.now() + this.shared[1] })
    this.mirrorChars += value.length
    return value
  }

  /** The near cache's counters, or null when it is off. */
  cacheStats() {
    const s = this.closed ? null : this.native.cacheStats()
    return s ? { hits: s[0] + this.mirrorHits, misses: s[1], invalidations: s[2], entries: s[3] } : null
  }

  close() {
    if (this.closed) return
    this.mirror.clear()
    this.mirrorChars = 0
    this.flush()
    this.closed = true
    if (this.held !== null) {
      for (const c of this.held) c.reject(closedError())
      this.held = null
    }
    this.native.close()
  }
}

function closedError() {
  const err = new Error('the store is closed')
  err.code = 'ERR_CLOSED'
  return err
}

module.exports = { Link, OP, checkId, badArgument, connectionOptions, clientSettings, isClient, parseStored }
