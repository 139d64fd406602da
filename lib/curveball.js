'use strict'
// A @curveball/session store (a drop-in for @curveball/session-redis): `${prefix}-${id}` holds
// the session JSON until the absolute expiry Curveball passes.

const { randomBytes } = require('node:crypto')
const { promisify } = require('node:util')
const { OP, openLink, readValue, withLink } = require('./core/adapter.js')

const random = promisify(randomBytes)

class RedisStore {
  constructor(opts = {}) {
    this.opts = { clientOptions: {}, prefix: 'session', ...opts }
    this.link = openLink(this.opts, 'curveball')
  }
  // Keys are `${prefix}-${id}`, through `link.callId` (the core hashes the id with `hashIds`).
  /** `expire` is an absolute UNIX time in seconds; one in the past deletes the session. */
  async set(id, values, expire) {
    await this.link.callId(OP.SET_UNTIL, `${this.opts.prefix}-`, id, JSON.stringify(values), expire)
  }
  get(id) {
    return readValue(this.link, `${this.opts.prefix}-`, id)
  }
  async delete(id) {
    await this.link.callId(OP.DESTROY, `${this.opts.prefix}-`, id)
  }
  async newSessionId() {
    return (await random(32)).toString('base64')
  }
}
withLink(RedisStore)

module.exports = { RedisStore, default: RedisStore }
