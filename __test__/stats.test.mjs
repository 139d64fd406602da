// store.stats() counts what the test did: calls and errors per operation and code, latency
// percentiles, calls in flight, on a real redis-server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { RedisStore } from 'ferrisession'
import { luciaAdapter } from 'ferrisession/lucia'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import support from './support/redis.js'

const execFileAsync = promisify(execFile)

const { startRedis } = support
const session = () => ({ cookie: { originalMaxAge: 600_000, expires: new Date(Date.now() + 600_000) }, n: 1 })

describe('stats()', () => {
  let server
  before(async () => {
    server = await startRedis(['--enable-debug-command', 'yes'])
  })
  after(async () => {
    await server.close()
  })

  it('counts calls and errors per operation and code', async () => {
    const store = new RedisStore({ url: server.url, prefix: 'st:', commandTimeout: 300 })
    try {
      assert.deepEqual(store.stats().calls, {})
      for (let i = 0; i < 10; i++) await store.set(`s${i}`, session())
      for (let i = 0; i < 7; i++) await store.get(`s${i}`)
      await Promise.all([store.destroy('s0'), store.destroy('s1'), store.destroy('s2')])
      // A key of another type: ERR_WRONG_TYPE.
      server.cli('HSET', 'st:hash', 'f', 'v')
      await assert.rejects(store.get('hash'), { code: 'ERR_WRONG_TYPE' })
      // A stalled server: ERR_TIMEOUT, and a latency near the timeout.
      const stall = execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), 'DEBUG', 'SLEEP', '0.6'])
      await new Promise((r) => setTimeout(r, 100))
      await assert.rejects(store.get('s5'), { code: 'ERR_TIMEOUT' })
      await stall
      const s = store.stats()
      assert.equal(s.calls.set.calls, 10)
      assert.deepEqual(s.calls.set.errors, {})
      assert.equal(s.calls.get.calls, 9)
      assert.deepEqual(s.calls.get.errors, { ERR_WRONG_TYPE: 1, ERR_TIMEOUT: 1 })
      assert.equal(s.calls.destroy.calls, 3)
      assert.equal(s.calls.touch, undefined)
      const lat = s.calls.get.latency
      assert.ok(lat.max >= 250 && lat.max < 2000, `max ${lat.max} ms is the timed-out call`)
      assert.ok(lat.p50 < 50 && lat.p50 <= lat.p90 && lat.p90 <= lat.p99 && lat.p99 <= lat.max, JSON.stringify(lat))
      assert.equal(s.inFlight, 0)
      assert.equal(s.cache, null)
      assert.ok(s.link.connects >= 1)
      assert.equal(s.driver, process.env.FERRISESSION_NO_LIBUV === '1' ? 'thread' : 'libuv', 'Node exports libuv')
    } finally {
      store.close()
    }
  })

  it('counts calls in flight, and the near cache beside', async () => {
    const store = new RedisStore({ url: server.url, prefix: 'st2:', cache: true })
    try {
      const writes = []
      for (let i = 0; i < 50; i++) writes.push(store.set(`w${i}`, session()))
      assert.equal(store.stats().inFlight, 50)
      await Promise.all(writes)
      assert.equal(store.stats().inFlight, 0)
      // The first read after our own write goes uncached, the second fills, the third hits.
      for (let i = 0; i < 3; i++) await store.get('w1')
      const s = store.stats()
      assert.equal(s.calls.set.calls, 50)
      assert.ok(s.cache.hits >= 1, JSON.stringify(s.cache))
    } finally {
      store.close()
    }
  })

  it('memory:// counts every call it answers on the spot, and times some of them', async () => {
    const store = new RedisStore({ url: 'memory://' })
    try {
      for (let i = 0; i < 40; i++) await store.set(`m${i}`, session())
      for (let i = 0; i < 40; i++) await store.get(`m${i}`)
      await assert.rejects(store.get(''), { code: 'ERR_BAD_ARGUMENT' })
      const s = store.stats()
      assert.equal(s.calls.set.calls, 40)
      assert.equal(s.calls.get.calls, 40, 'a bad id never reaches the core, so it is not a call')
      assert.ok(s.calls.set.latency.max > 0 && s.calls.set.latency.max < 100, JSON.stringify(s.calls.set.latency))
      assert.equal(s.inFlight, 0)
    } finally {
      store.close()
    }
  })

  it('the Lucia adapter reports the operations it runs', async () => {
    const adapter = luciaAdapter({ url: server.url, getUser: async () => null })
    try {
      await adapter.setSession({ id: 'x1', userId: 'u', expiresAt: new Date(Date.now() + 60_000), attributes: {} })
      await adapter.getUserSessions('u')
      const s = adapter.stats()
      assert.equal(s.calls.indexedSet.calls, 1)
      assert.equal(s.calls.indexRead.calls, 1)
    } finally {
      adapter.close()
    }
  })
})
