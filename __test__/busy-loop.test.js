'use strict'
// A JS thread busy for longer than commandTimeout (a long synchronous task) does not turn replies
// that Redis sent meanwhile into ERR_TIMEOUT: the timer reads what arrived before it judges.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis } = require('./support/redis.js')

function busy(ms) {
  const until = Date.now() + ms
  while (Date.now() < until);
}

describe('replies that arrive while the JS thread is busy', () => {
  let server

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.close()
  })

  for (const cache of [false, true]) {
    it(`settle with their values after a 600 ms block, commandTimeout 200${cache ? ', near cache on' : ''}`, async () => {
      const store = new RedisStore({ url: server.url, commandTimeout: 200, cache })
      try {
        await store.set('busy', { cookie: {}, v: 1 })
        for (let round = 0; round < 5; round++) {
          const calls = [store.get('busy'), store.set(`busy-${round}`, { cookie: {}, round }), store.length()]
          // Runs after the batch above was handed to Rust (that is also a setImmediate).
          await new Promise((resolve) => setImmediate(() => resolve(busy(600))))
          const [got, , length] = await Promise.all(calls)
          assert.equal(got.v, 1)
          assert.ok(length >= 2)
        }
        assert.equal(store.stats().calls.get.errors.ERR_TIMEOUT, undefined)
      } finally {
        store.close()
      }
    })
  }
})
