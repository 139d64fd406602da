'use strict'
// The stores the benchmark compares. Each factory takes a target (which servers, one topology)
// and returns {store, close}; ours and the anchor always get the same servers.
//
// A target: {kind: 'plain' | 'tls' | 'cluster' | 'sentinel' | 'memory', url?, ca?, nodes?,
// sentinels?, name?, commandTimeout?}.

const { EventEmitter } = require('node:events')
const fs = require('node:fs')

/**
 * A pure-JS in-memory store with the same JSON work: what the harness itself costs. A promise
 * per call, or, given a callback, the callback on a microtask and no promise.
 */
class FloorStore extends EventEmitter {
  constructor() {
    super()
    this.map = new Map()
  }
  #reply(v, cb) {
    if (!cb) return Promise.resolve(v)
    queueMicrotask(() => cb(null, v))
  }
  get(sid, cb) {
    const v = this.map.get(sid)
    return this.#reply(v === undefined ? null : JSON.parse(v), cb)
  }
  set(sid, sess, cb) {
    this.map.set(sid, JSON.stringify(sess))
    return this.#reply(undefined, cb)
  }
  touch(sid, sess, cb) {
    this.map.has(sid)
    return this.#reply(undefined, cb)
  }
  destroy(sid, cb) {
    this.map.delete(sid)
    return this.#reply(undefined, cb)
  }
  close() {}
}

/**
 * What a user could write by hand over Bun's built-in Redis client (`Bun.RedisClient`,
 * auto-pipelining on, its default) or ioredis (`set(k, v, 'EX', ttl)`, `expire`, `del`): connect-redis 10's behaviour mirrored line for line (see
 * node_modules/connect-redis/dist/connect-redis.cjs): key `sess:` + sid, JSON values, SET EX
 * with the TTL from `cookie.expires` (else `ttl`, 86400 s), a TTL <= 0 destroys, touch is
 * EXPIRE, destroy is DEL, an optional callback. Only the methods the benchmark calls.
 */
function bunRedisStore(client, opts = {}) {
  const { Store } = require('express-session')
  const optionalCb = (err, data, cb) => {
    if (cb) return cb(err, data)
    if (err) throw err
    return data
  }
  class BunRedisStore extends Store {
    constructor() {
      super()
      this.client = client
      this.prefix = opts.prefix == null ? 'sess:' : opts.prefix
      this.serializer = opts.serializer || JSON
      this.ttl = opts.ttl || 86400
    }
    async get(sid, cb) {
      try {
        const data = await this.client.get(this.prefix + sid)
        if (!data) return optionalCb(null, null, cb)
        return optionalCb(null, await this.serializer.parse(data), cb)
      } catch (err) {
        return optionalCb(err, null, cb)
      }
    }
    async set(sid, sess, cb) {
      const ttl = this.getTTL(sess)
      try {
        if (ttl > 0) {
          await this.client.set(this.prefix + sid, this.serializer.stringify(sess), 'EX', ttl)
          return optionalCb(null, null, cb)
        }
        return this.destroy(sid, cb)
      } catch (err) {
        return optionalCb(err, null, cb)
      }
    }
    async touch(sid, sess, cb) {
      try {
        await this.client.expire(this.prefix + sid, this.getTTL(sess))
        return optionalCb(null, null, cb)
      } catch (err) {
        return optionalCb(err, null, cb)
      }
    }
    async destroy(sid, cb) {
      try {
        await this.client.del(this.prefix + sid)
        return optionalCb(null, null, cb)
      } catch (err) {
        return optionalCb(err, null, cb)
      }
    }
    getTTL(sess) {
      if (typeof this.ttl === 'function') return this.ttl(sess)
      if (sess?.cookie?.expires) return Math.ceil((Number(new Date(sess.cookie.expires)) - Date.now()) / 1000)
      return this.ttl
    }
  }
  return new BunRedisStore()
}

// A fixed key: the benchmark's sessions are throwaway.
const BENCH_KEY = Buffer.alloc(32, 7)

const hostPort = (url) => {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

/** Our options for a target. */
function oursFor(t) {
  const extra = t.commandTimeout ? { commandTimeout: t.commandTimeout } : {}
  switch (t.kind) {
    case 'tls':
      return { url: t.url, tls: { ca: fs.readFileSync(t.ca) }, ...extra }
    case 'cluster':
      return { cluster: { nodes: t.nodes }, ...extra }
    case 'sentinel':
      return { sentinel: { nodes: t.sentinels, name: t.name }, ...extra }
    default:
      return { url: t.url, ...extra }
  }
}

/** A connected node-redis 5 client (standalone, TLS, cluster or sentinel) for a target. */
async function nodeRedisFor(t) {
  const { createClient, createCluster, createSentinel } = require('redis')
  let client
  if (t.kind === 'cluster') client = createCluster({ rootNodes: t.nodes.map((url) => ({ url })) })
  else if (t.kind === 'sentinel') client = createSentinel({ name: t.name, sentinelRootNodes: t.sentinels.map(hostPort) })
  else if (t.kind === 'tls') client = createClient({ url: t.url, socket: { tls: true, ca: fs.readFileSync(t.ca) } })
  else client = createClient({ url: t.url })
  // node-redis emits 'error' on every lost connection; without a listener it would crash.
  client.on('error', () => {})
  await client.connect()
  return client
}

const STORES = {
  async ferrisession(t) {
    const { RedisStore } = require('..')
    const store = new RedisStore(oursFor(t))
    return { store, close: async () => store.close() }
  },
  /** Ours with the round-trip savers on: touchAfter 60 s and the near cache. */
  async 'ferrisession-near'(t) {
    const { RedisStore } = require('..')
    const store = new RedisStore({ ...oursFor(t), touchAfter: 60, cache: true })
    return { store, close: async () => store.close() }
  },
  /** Ours with the tracing channel left out: what the no-subscriber check costs is ours / this. */
  async 'ferrisession-untraced'(t) {
    process.env.FERRISESSION_TRACING = 'off'
    const { RedisStore } = require('..')
    const store = new RedisStore(oursFor(t))
    return { store, close: async () => store.close() }
  },
  /** Ours with a subscriber on `ferrisession:call` that only counts: what tracing costs when on. */
  async 'ferrisession-traced'(t) {
    const dc = require('node:diagnostics_channel')
    let calls = 0
    const count = () => calls++
    dc.tracingChannel('ferrisession:call').subscribe({ start: count, end() {}, asyncStart() {}, asyncEnd() {}, error() {} })
    const { RedisStore } = require('..')
    const store = new RedisStore(oursFor(t))
    return { store, close: async () => store.close() }
  },
  /** Ours with each opt-in option of its own, for the cost of each (see OPTION_STORES). */
  ...Object.fromEntries(
    Object.entries({
      'ferrisession-hashids': { hashIds: true },
      'ferrisession-encrypted': { encryption: { keys: { k1: BENCH_KEY } } },
      'ferrisession-hashids-encrypted': { hashIds: true, encryption: { keys: { k1: BENCH_KEY } } },
      'ferrisession-userid': { userId: (sess) => sess.userId },
    }).map(([name, extra]) => [
      name,
      async (t) => {
        const { RedisStore } = require('..')
        const store = new RedisStore({ ...oursFor(t), ...extra })
        return { store, close: async () => store.close() }
      },
    ]),
  ),
  async 'connect-redis'(t) {
    const { RedisStore } = require('connect-redis')
    const client = await nodeRedisFor(t)
    return { store: new RedisStore({ client }), close: () => client.close() }
  },
  async 'connect-redis8-ioredis'(t) {
    const Redis = require('ioredis')
    const { RedisStore } = require('connect-redis-8')
    const client = new Redis(t.url)
    await new Promise((resolve, reject) => client.once('ready', resolve).once('error', reject))
    return { store: new RedisStore({ client }), close: () => client.quit() }
  },
  /** The newest peer: connect-redis 10 over node-redis 6 (RESP3 by default). */
  async 'connect-redis-redis6'(t) {
    const { createClient } = require('redis6')
    const { RedisStore } = require('connect-redis')
    const client = createClient({ url: t.url })
    client.on('error', () => {})
    await client.connect()
    return { store: new RedisStore({ client }), close: () => client.close() }
  },
  /**
   * The most used client in its fastest setting: a connect-redis-shaped store (the same one
   * as over Bun's client: connect-redis 10's behaviour line for line) over ioredis 6 with
   * `enableAutoPipelining: true`.
   */
  async 'ioredis6-auto'(t) {
    const Redis = require('ioredis6')
    const client = new Redis(t.url, { enableAutoPipelining: true })
    await new Promise((resolve, reject) => client.once('ready', resolve).once('error', reject))
    return { store: bunRedisStore(client), close: () => client.quit() }
  },
  /** Ours with the near cache alone (no touchAfter), for the hot-session row. */
  async 'ferrisession-cache'(t) {
    const { RedisStore } = require('..')
    const store = new RedisStore({ ...oursFor(t), cache: true })
    return { store, close: async () => store.close() }
  },
  /** The hand-written connect-redis-shaped store over Bun's own client; only under Bun. */
  async 'bun-redis'(t) {
    if (typeof Bun === 'undefined') throw new Error('the bun-redis store runs only under Bun')
    if (t.kind !== 'plain') throw new Error('the bun-redis store is benchmarked on plain TCP only')
    // eslint-disable-next-line no-undef
    const client = new Bun.RedisClient(t.url)
    await client.connect()
    return { store: bunRedisStore(client), close: async () => client.close() }
  },
  async memorystore() {
    // express-session's own in-memory store; callback-only, so each call is wrapped in one
    // promise, as ours returns one.
    const { MemoryStore } = require('express-session')
    const inner = new MemoryStore()
    const call = (method, ...args) => new Promise((resolve, reject) => inner[method](...args, (err, v) => (err ? reject(err) : resolve(v))))
    const store = {
      get: (sid) => call('get', sid),
      set: (sid, sess) => call('set', sid, sess),
      touch: (sid, sess) => call('touch', sid, sess),
      destroy: (sid) => call('destroy', sid),
    }
    return { store, callbackStore: inner, close: async () => {} }
  },
  async floor() {
    const store = new FloorStore()
    return { store, close: async () => {} }
  },
}

module.exports = { STORES, FloorStore, oursFor, bunRedisStore }
