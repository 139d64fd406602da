'use strict'
// One connection to the core: batches calls made in the same loop turn into one native call,
// keeps calls in order across keyspace walks, and settles promises from the core's replies.

const { NativeStore, opCodes, cachedValue } = require('./binding.js')
const { checkId, closedError, nativeError } = require('./errors.js')
const { connectionOptions } = require('./options.js')
const tracing = require('./tracing.js')

// The op codes of the batch format (`src/batch.rs` holds the one table).
const OP = Object.freeze(opCodes())
const OPERATION = tracing.operationNames(OP)

// Calls that read or change a whole keyspace (SCAN walks). Each waits for every earlier call
// of its store to settle, and later calls wait for it: no call overtakes another across one,
// so an un-awaited set() followed by ids() is seen, and clear() never deletes a later set().
const KEYSPACE_OPS = opTable([OP.COUNT, OP.IDS, OP.ENTRIES, OP.CLEAR, OP.PRUNE_INDEXES])

// Calls that leave every stored value as it was: a near-cache copy may be served while they
// wait to be sent (`cached`). A touch counts when its TTL is positive (it only moves the
// expiry; one of 0 or less deletes).
const KEEPS_VALUES = opTable([OP.GET, OP.EXISTS, OP.MGET])

/** 1 at each op code of `ops`, 0 elsewhere: a set of op codes read with one array load. */
function opTable(ops) {
  const table = new Uint8Array(256)
  for (const op of ops) table[op] = 1
  return table
}

// Calls made until the event loop's check phase are handed to Rust together (setImmediate, so
// calls from every request handled in one loop turn share a write). Early only when the server
// has nothing else to do: the first `batchCap` calls (the core's advice: 16 per connection;
// more for a cluster's several nodes) then go at once, so Redis starts on
// them while JS makes the next. While calls are in flight, a loop turn's calls wait for its
// end: measured at 64 calls in flight, that halved redis-server's read events per call (0.062
// to 0.031) and was faster in every phase than a write per 16 calls. Flushing per microtask
// instead sent one write per HTTP request under Express and cost redis-server 4x the CPU.
// memory:// has no server to keep busy: its calls go over once per run of JS, on a microtask.
const BURST_BATCHES = 4

const RESOLVED = Promise.resolve()

// Ids of calls in the table run from 1 to MAX_ID; the core reads them as u32.
const MAX_ID = 0xfffffff0

/**
 * One connection to the core. `onEvent(name, detail)` hears 'connect' and 'disconnect'.
 *
 * Calls are written into a reused Float64Array of records plus one string of text arguments
 * (the format `src/batch.rs` reads), and handed to Rust once per loop turn (sooner while the server is idle; see above).
 */
class Link {
  constructor(opts, adapter, onEvent = () => {}) {
    // The adapter's name, as tracing reports it.
    this.adapter = adapter
    // `[address, port, database, namespace]`, read from the core when tracing first needs it.
    this.server = undefined
    // Calls sent and not yet answered, by id: the call with id `id` sits at `slots[id & mask]`
    // (ids that would land on a taken slot are skipped), and the table doubles before it is
    // half full, so a lookup is one array read and the calls need no Map.
    this.slots = new Array(64).fill(null)
    this.mask = 63
    this.inflight = 0
    this.nextId = 1
    this.nums = new Float64Array(256)
    this.used = 0
    this.text = ''
    this.count = 0
    // How many of those `count` calls may change a stored value (see KEEPS_VALUES).
    this.changes = 0
    this.flushScheduled = false
    this.onEvent = onEvent
    this.closed = false
    // Calls held back behind a keyspace call, in call order; null when nothing is held.
    this.held = null
    // The near cache's change count, the time left of its last hit and its entry count,
    // written by the core (see `cached`).
    this.shared = new Float64Array(3)
    try {
      this.native = new NativeStore(JSON.stringify(connectionOptions(opts)), (payload) => this.receive(payload), this.shared)
    } catch (err) {
      throw nativeError(err)
    }
    // The near cache's per-read native function (cachedValue) finds the store by this number.
    this.number = this.native.number
    this.batchCap = this.native.batchCap
    // memory:// answers inside `submit`; its batches go over on a microtask (see `push`).
    this.direct = this.native.inline
    this.cacheOn = !!opts.cache
    // Copies of near-cache hits, valid while the core's cache has not changed since (shared[0])
    // and the key's TTL has not run out: a hot read then needs no native call at all.
    // Bounded like the core's cache (entries and characters), and emptied whole when full.
    // Keyed by prefix, then id: both strings the caller holds, whose hashes V8 keeps, where
    // `prefix + id` would be a new string to hash on every read.
    this.mirror = new Map()
    this.mirrorSize = 0
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
    if (tracing.listening()) return this.traced(op, key, value, num, list, 0, false)
    return this.ordered(op, key, value, num, list, 0, false)
  }

  /**
   * A call on session `id`'s key, `prefix + id`. The core hashes the id there (`hashIds`), in
   * the index member that repeats it, and in what a destroy or a move deletes; values are
   * sealed and opened in the core too (`encryption`), so this side never sees either.
   */
  callId(op, prefix, id, value, num, list) {
    return this.onId(op, prefix, id, value, num, list, false)
  }

  /**
   * `callId` for a write whose reply nobody reads: it resolves to null, so an adapter needs
   * no `.then` of its own (one promise and one microtask fewer per call).
   */
  writeId(op, prefix, id, value, num, list) {
    return this.onId(op, prefix, id, value, num, list, true)
  }

  /**
   * `callId` (`quiet`: `writeId`) for a caller that gave a Node-style callback
   * (express-session's way): on the common path (no tracing subscriber, nothing held back)
   * `cb(err, value)` is called when the core answers, and no promise is made;
   * elsewhere the promise path runs and settles `cb`. A bad id throws, as `callId` does.
   */
  onIdCb(op, prefix, id, value, num, quiet, cb) {
    checkId(id)
    if (this.closed || this.held !== null || tracing.listening()) {
      this.onId(op, prefix, id, value, num, undefined, quiet).then(
        (v) => cb(null, v),
        (err) => cb(err, null),
      )
      return
    }
    this.send(op, prefix + id, value, num, undefined, prefix.length + 1, quiet, cb)
  }

  /** `callId` and `writeId`: `quiet` resolves to null, whatever the reply. */
  onId(op, prefix, id, value, num, list, quiet) {
    checkId(id)
    if (tracing.listening()) return this.traced(op, prefix + id, value, num, list, prefix.length + 1, quiet)
    return this.ordered(op, prefix + id, value, num, list, prefix.length + 1, quiet)
  }

  /**
   * `ordered`, published on the `ferrisession:call` channel. `keys` are the keys as Redis holds
   * them: the copied client's prefix first, the session id hashed with `hashIds`; a keyspace
   * walk gives its pattern.
   */
  traced(op, key, value, num, list, mark, quiet) {
    if (this.server === undefined) this.server = this.native.server
    const [serverAddress, serverPort, database, namespace] = this.server
    let keys
    if (KEYSPACE_OPS[op] === 1) keys = [`${namespace}${key}*`]
    else if (list !== undefined && key === '') keys = list.map((k) => namespace + k)
    else if (mark > 0) keys = [namespace + key.slice(0, mark - 1) + this.native.sealId(key.slice(mark - 1))]
    else keys = [namespace + key]
    const context = { operation: OPERATION[op], adapter: this.adapter, keys, serverAddress, serverPort, database }
    return tracing.channel.tracePromise(this.ordered, context, this, op, key, value, num, list, mark, quiet)
  }

  /**
   * `mark`: 0, or 1 + the length of the prefix before a session id that ends `key`. `quiet`:
   * resolve to null, whatever the reply.
   */
  ordered(op, key, value, num, list, mark, quiet) {
    if (this.closed) return Promise.reject(closedError())
    if (this.held !== null || (KEYSPACE_OPS[op] === 1 && this.inflight > 0)) {
      if (this.held === null) this.held = []
      return new Promise((resolve, reject) => this.held.push({ op, key, value, num, list, mark, quiet, resolve, reject }))
    }
    if (KEYSPACE_OPS[op] === 1) this.held = []
    return this.send(op, key, value, num, list, mark, quiet)
  }

  /** Sends what was held back once nothing is in flight, up to and including the next keyspace call. */
  release() {
    if (this.held === null || this.inflight > 0) return
    while (this.held.length > 0) {
      const keyspace = KEYSPACE_OPS[this.held[0].op] === 1
      if (keyspace && this.inflight > 0) return
      const c = this.held.shift()
      this.send(c.op, c.key, c.value, c.num, c.list, c.mark, c.quiet).then(c.resolve, c.reject)
      if (keyspace) return
    }
    this.held = null
  }

  /** Files `p` under a free id, which it returns. */
  admit(p) {
    if (2 * (this.inflight + 1) > this.slots.length) this.grow()
    let id = this.nextId
    while (this.slots[id & this.mask] !== null) id = id >= MAX_ID ? 1 : id + 1
    this.nextId = id >= MAX_ID ? 1 : id + 1
    p.id = id
    this.slots[id & this.mask] = p
    this.inflight++
    return id
  }

  grow() {
    const slots = new Array(this.slots.length * 2).fill(null)
    const mask = slots.length - 1
    // Ids apart in the low bits of the old mask stay apart in the new one.
    for (const p of this.slots) if (p !== null) slots[p.id & mask] = p
    this.slots = slots
    this.mask = mask
  }

  /** The unanswered call `id`, taken off the table; undefined if there is none. */
  take(id) {
    const slot = id & this.mask
    const p = this.slots[slot]
    if (p === null || p.id !== id) return undefined
    this.slots[slot] = null
    this.inflight--
    return p
  }

  /** Queues one call in the batch; with `cb`, no promise: the reply goes to `cb`. */
  send(op, key, value, num, list, mark, quiet, cb) {
    // Calls of one batch share a start time, and replies of one delivery an end time: two
    // clock reads per batch, not per call.
    if (this.count === 0) this.batchStarted = performance.now()
    const p = { id: 0, resolve: undefined, reject: undefined, cb, op, started: this.batchStarted, quiet }
    const id = this.admit(p)
    let promise
    if (cb === undefined) {
      promise = new Promise((resolve, reject) => {
        p.resolve = resolve
        p.reject = reject
      })
    }
    this.push(op, id, key, value, num, list, mark)
    return promise
  }

  /** Writes call `id`'s record into the batch, and hands the batch over when it is due. */
  push(op, id, key, value, num, list, mark) {
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
    if (KEEPS_VALUES[op] === 0 && !(op === OP.TOUCH && num > 0)) this.changes++
    // Handed over before the loop turn ends only while nothing else is in flight (the server
    // is idle: it starts on the first batchCap calls while JS makes the next ones), or when a
    // burst grows past BURST_BATCHES batches. Otherwise one write per loop turn.
    // memory:// (answered inside the native call) hands each run of JS's calls over whole
    // on a microtask, so their replies settle in call order.
    ++this.count
    if (this.direct) {
      if (!this.flushScheduled) {
        this.flushScheduled = true
        RESOLVED.then(this.flush)
      }
    } else if (this.count >= this.batchCap && (this.count >= this.inflight || this.count >= BURST_BATCHES * this.batchCap)) this.flush(true)
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flush)
    }
  }

  /**
   * Hands the batch to the core. `inCall`: from inside a store call (a full batch), so the
   * replies known at once settle on a microtask: no callback runs before its call returns.
   */
  flush(inCall) {
    this.flushScheduled = false
    if (this.count === 0) return
    const used = this.used
    const text = this.text
    this.used = 0
    this.text = ''
    this.count = 0
    this.changes = 0
    const settle = (payload) => {
      if (inCall === true) RESOLVED.then(() => this.receive(payload))
      else this.receive(payload)
    }
    let answered
    try {
      answered = this.native.submit(this.nums, used, text)
    } catch (err) {
      // The batch never started: every call in it fails with the same error.
      const failed = []
      for (let i = 0; i < used; i += 6 + this.nums[i + 5]) failed.push(this.nums[i + 1], 3, 0, 0)
      settle([failed, '', [nativeError(err)]])
      return
    }
    // A cluster's advice grows once its slot map shows all its primaries (memory:// takes
    // none: see `push`).
    if (!this.direct) this.batchCap = this.native.batchCap
    // memory:// answers inside submit; promise reactions still run later, as microtasks.
    if (answered) settle(answered)
    else this.release()
  }

  /** A delivery from the core: an event, or replies. */
  receive(payload) {
    if (typeof payload[0] === 'string') {
      this.onEvent(payload[0], payload[1])
      return
    }
    // [numbers, text, extras] (see the engine's `Scope::replies`): four numbers per reply,
    // id, kind, a, b; kind 0 is null, 1 the number a, 2 text.slice(a, b), 3 extras[a].
    const nums = payload[0]
    const text = payload[1]
    const extras = payload[2]
    const now = performance.now()
    // Callbacks run once every reply of the delivery is taken off the table, as promise
    // reactions would: the calls they make then see what is really in flight.
    let called = null
    for (let i = 0; i < nums.length; i += 4) {
      const p = this.take(nums[i])
      if (p === undefined) continue
      const kind = nums[i + 1]
      const v = kind === 0 ? null : kind === 2 ? text.slice(nums[i + 2], nums[i + 3]) : kind === 1 ? nums[i + 2] : extras[nums[i + 2]]
      const err = v instanceof Error ? v : null
      this.note(p, err, now)
      const value = err !== null || p.quiet ? null : v
      if (p.cb === undefined) finish(p, err, value)
      else (called ||= []).push(p.cb, err, value)
    }
    if (this.held !== null) this.release()
    if (called !== null) for (let i = 0; i < called.length; i += 3) call(called[i], called[i + 1], called[i + 2])
  }

  /** Records a settled call for `stats()`: op, microseconds, error code number (0: none). */
  note(p, err, now) {
    const r = this.record
    let n = this.recorded
    r[n] = p.op
    r[n + 1] = (now - p.started) * 1000
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
    s.inFlight = this.inflight + (this.held === null ? 0 : this.held.length)
    s.cache = this.cacheStats()
    return s
  }

  /**
   * The near cache's live value of session `id` under `prefix`, null when it knows the key is
   * absent, or undefined when it does not know. Asked only when no call of this store that may
   * change a value waits to be sent or is held back, so a read never overtakes an earlier
   * write; reads and positive touches waiting to be sent change no value.
   */
  cached(prefix, id) {
    if (!this.cacheOn || this.changes !== 0 || this.held !== null || this.closed) return undefined
    // An empty cache (a session rewritten on every request never stays in it): nothing to ask.
    if (this.shared[2] === 0) return undefined
    let copies = this.mirror.get(prefix)
    const copy = copies === undefined ? undefined : copies.get(id)
    if (copy !== undefined) {
      if (copy.epoch === this.shared[0] && copy.until > Date.now()) {
        this.mirrorHits++
        return copy.value
      }
      copies.delete(id)
      this.mirrorSize--
      this.mirrorChars -= copy.chars
    }
    let value
    try {
      value = cachedValue(this.number, prefix, id)
    } catch (err) {
      throw nativeError(err)
    }
    if (value == null) return undefined
    if (value === false) value = null
    const chars = value === null ? 0 : value.length
    if (this.mirrorSize >= this.mirrorCap || this.mirrorChars + chars > this.mirrorMaxChars) {
      this.mirror.clear()
      this.mirrorSize = 0
      this.mirrorChars = 0
      copies = undefined
    }
    if (copies === undefined) this.mirror.set(prefix, (copies = new Map()))
    copies.set(id, { value, chars, epoch: this.shared[0], until: Date.now() + this.shared[1] })
    this.mirrorSize++
    this.mirrorChars += chars
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
    this.mirrorSize = 0
    this.mirrorChars = 0
    // What memory:// answers now settles on a microtask: no callback runs inside close().
    this.flush(true)
    this.closed = true
    if (this.held !== null) {
      for (const c of this.held) c.reject(closedError())
      this.held = null
    }
    this.native.close()
  }
}

/**
 * Settles a pending call: its promise, or its callback called here. What a callback throws
 * becomes the app's uncaught exception (as it would from a promise reaction), and the other
 * replies of the delivery are still settled.
 */
function finish(p, err, value) {
  if (p.cb === undefined) {
    if (err !== null) p.reject(err)
    else p.resolve(value)
    return
  }
  call(p.cb, err, value)
}

/** `cb(err, value)`; what it throws is rethrown on a microtask, as in `finish`. */
function call(cb, err, value) {
  try {
    cb(err, value)
  } catch (thrown) {
    queueMicrotask(() => {
      throw thrown
    })
  }
}

module.exports = { Link, OP }
