'use strict'
// A koa-session 7 external store with koa-redis 4's options and layout: the key exactly as
// koa-session gives it, the session as JSON, and a TTL of ceil(maxAge / 1000) seconds.

const { EventEmitter } = require('node:events')
const { OP, openLink, readValue, withLink } = require('./core/adapter.js')
const { badArgument } = require('./core/errors.js')

class RedisStore extends EventEmitter {
  /**
   * koa-redis's options (`client`, `url`, `db`, `password`, `isRedisCluster` + `nodes`,
   * `serialize`/`unserialize`, …) and ours (`cluster`, `sentinel`, `tls`, `cache`, …).
   * `sessionTtl` (seconds, default 86400) bounds a browser-session cookie's entry
   * (`maxAge: 'session'`), which koa-session hands over with no number.
   */
  constructor(opts = {}) {
    super()
    const { serialize = JSON.stringify, unserialize = JSON.parse, sessionTtl = 86400, isRedisCluster, nodes, clusterOptions, duplicate, ...connection } = opts
    if (typeof serialize !== 'function' || typeof unserialize !== 'function') throw badArgument('serialize and unserialize must be functions')
    if (!(sessionTtl > 0)) throw badArgument('sessionTtl must be a positive number of seconds')
    if (isRedisCluster) connection.cluster = { nodes: nodes || [] }
    this.serializer = { stringify: serialize, parse: unserialize }
    this.sessionTtl = sessionTtl
    this.link = openLink(connection, 'koa', (name, detail) => this.emit(name, detail))
  }

  /** The session stored at `key`, or null. */
  get(key) {
    return readValue(this.link, '', key, this.serializer)
  }

  /** `maxAge` in milliseconds, or `'session'`. */
  async set(key, sess, maxAge) {
    const value = this.serializer.stringify(sess)
    if (typeof value !== 'string') throw new TypeError('serialize must return a string')
    const ttl = typeof maxAge === 'number' ? Math.ceil(maxAge / 1000) : this.sessionTtl
    if (!(ttl > 0)) return this.link.callId(OP.DESTROY, '', key).then(() => undefined)
    await this.link.callId(OP.SET, '', key, value, ttl)
  }

  async destroy(key) {
    await this.link.callId(OP.DESTROY, '', key)
  }
}
withLink(RedisStore)

/** `redisStore(options)`, as koa-redis is called. */
function redisStore(opts) {
  return new RedisStore(opts)
}

module.exports = redisStore
module.exports.default = redisStore
module.exports.RedisStore = RedisStore
