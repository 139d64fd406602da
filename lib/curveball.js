'use strict'
// A @curveball/session store (a drop-in for @curveball/session-redis): `${prefix}-${id}` holds
// the session JSON until the absolute expiry Curveball passes.

const { randomBytes } = require('node:crypto')
const { promisify } = require('node:util')
const { Link, OP, checkId, parseStored } = require('./native.js')

const random = promisify(randomBytes)

class RedisStore {
  constructor(opts = {}) {
    this.opts = { clientOptions: {}, prefix: 'session', ...opts }
    this.link = new Link(this.opts, () => {})
  }
  key(id) {
    return `${this.opts.prefix}-${checkId(id)}`
  }
  /** `expire` is an absolute UNIX time in seconds; one in the past deletes the session. */
  async set(id, values, expire) {
    await this.link.call(OP.SET_UNTIL, this.key(id), JSON.stringify(values), expire)
  }
  async get(id) {
    const key = this.key(id)
    const raw = await this.link.call(OP.GET, key)
    return raw === null ? null : parseStored(JSON, raw, key)
  }
  async delete(id) {
    await this.link.call(OP.DESTROY, this.key(id))
  }
  async newSessionId() {
    return (await random(32)).toString('base64')
  }
  /** Releases the connection. */
  close() {
    this.link.close()
  }
}

module.exports = { RedisStore, default: RedisStore }
