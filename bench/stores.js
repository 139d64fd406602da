'use strict'
// The stores the benchmark compares, each built against the same Redis URL.

const { EventEmitter } = require('node:events')

/** A pure-JS in-memory store with the same JSON work: what the harness itself costs. */
class FloorStore extends EventEmitter {
  constructor() {
    super()
    this.map = new Map()
  }
  async get(sid) {
    const v = this.map.get(sid)
    return v === undefined ? null : JSON.parse(v)
  }
  async set(sid, sess) {
    this.map.set(sid, JSON.stringify(sess))
  }
  async touch(sid) {
    this.map.has(sid)
  }
  async destroy(sid) {
    this.map.delete(sid)
  }
  close() {}
}

const STORES = {
  async ferrisession(url) {
    const { RedisStore } = require('..')
    const store = new RedisStore({ url })
    return { store, close: async () => store.close() }
  },
  async 'connect-redis'(url) {
    const { createClient } = require('redis')
    const { RedisStore } = require('connect-redis')
    const client = createClient({ url })
    await client.connect()
    return { store: new RedisStore({ client }), close: () => client.quit() }
  },
  async 'connect-redis8-ioredis'(url) {
    const Redis = require('ioredis')
    const { RedisStore } = require('connect-redis-8')
    const client = new Redis(url)
    await new Promise((resolve, reject) => client.once('ready', resolve).once('error', reject))
    return { store: new RedisStore({ client }), close: () => client.quit() }
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
    return { store, close: async () => {} }
  },
  async floor() {
    const store = new FloorStore()
    return { store, close: async () => {} }
  },
}

module.exports = { STORES, FloorStore }
