'use strict'
// A @curveball/session store (a drop-in for @curveball/session-redis): `${prefix}-${id}` holds
// the session JSON until the absolute expiry Curveball passes.

const { randomBytes } = require('node:crypto')
const { promisify } = require('node:util')
const { Link, OP, parseStored } = require('./native.js')

const random = promisify(randomBytes)

class RedisStore {
  constructor(opts = {}) {
    this.opts = { clientOptions: {}, prefix: 'session', ...opts }
    this.link = new Link(this.opts, () => {})
  }
  // Keys are `${prefix}-${id}`, through `link.callId` (the core hashes the id with `hashIds`).
  /** `expire` is an absolute UNIX time in seconds; one in the past deletes the session. */
  async set(id, values, expire) {
    await this.link.callId(OP.SET_UNTIL, `${this.opts.prefix}-`, id, JSON.stringify(values), expire)
  }
  async get(id) {
    const raw = await this.link.read(`${this.opts.prefix}-`, id)
    return raw === null ? null : parseStored(JSON, raw, `${this.opts.prefix}-${id}`)
  }
  async delete(id) {
    await this.link.callId(OP.DESTROY, `${this.opts.prefix}-`, id)
  }
  async newSessionId() {
    return (await random(32)).toString('base64')
  }
  /** Numbers an operator can watch, as the express store's `stats()`. */
  stats() {
    return this.link.stats()
  }
  /** Releases the connection. */
  close() {
    this.link.close()
  }
}

module.exports = { RedisStore, default: RedisStore }
