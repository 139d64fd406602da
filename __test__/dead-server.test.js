'use strict'
// Redis out of reach: every call settles in time with a coded error, events tell
// express-session, and the store reconnects by itself.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis, freePort, within, sleep } = require('./support/redis.js')

describe('a dead or lost server', () => {
  it('rejects within commandTimeout when nothing listens, and the process survives', async () => {
    const port = await freePort()
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, commandTimeout: 300, connectTimeout: 200 })
    const t0 = Date.now()
    const results = await Promise.allSettled([store.get('a'), store.set('b', { cookie: {} }), store.length()])
    const elapsed = Date.now() - t0
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.ok(['ERR_NOT_CONNECTED', 'ERR_TIMEOUT'].includes(r.reason.code), r.reason.code)
      assert.ok(r.reason instanceof Error)
    }
    assert.ok(elapsed < 1500, `settled in ${elapsed} ms`)
    const err = await new Promise((resolve) => store.get('c', (e) => resolve(e)))
    assert.ok(err instanceof Error && err.code)
    store.close()
  })

  it('emits disconnect and connect across a restart and reconnects by itself', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, commandTimeout: 500, connectTimeout: 300 })
    const events = []
    store.on('connect', () => events.push('connect'))
    store.on('disconnect', () => events.push('disconnect'))
    try {
      await store.set('a', { cookie: {}, v: 1 })
      // The drop may be noticed as soon as the process dies, so listen first.
      const down = new Promise((r) => store.once('disconnect', r))
      await redis.stop()
      const t0 = Date.now()
      await assert.rejects(store.get('a'), (e) => ['ERR_NOT_CONNECTED', 'ERR_TIMEOUT'].includes(e.code))
      assert.ok(Date.now() - t0 < 1000)
      await within(down, 3000, 'disconnect event')

      const up = new Promise((r) => store.once('connect', r))
      await redis.start()
      await within(up, 5000, 'connect event after restart')
      await store.set('b', { cookie: {}, v: 2 })
      assert.deepEqual(await store.get('b'), { cookie: {}, v: 2 })
      assert.deepEqual(events.slice(-3), ['connect', 'disconnect', 'connect'])
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('settles calls against a stalled server with ERR_TIMEOUT', async () => {
    const redis = await startRedis(['--enable-debug-command', 'yes'])
    const store = new RedisStore({ url: redis.url, commandTimeout: 300 })
    try {
      await store.set('a', { cookie: {} })
      const { spawn } = require('node:child_process')
      const sleeper = spawn('redis-cli', ['-p', String(redis.port), 'DEBUG', 'SLEEP', '1.5'], { stdio: 'ignore' })
      // Listen for the exit now: the sleep may end before the call below has settled.
      const slept = new Promise((r) => sleeper.on('exit', r))
      await sleep(100)
      const t0 = Date.now()
      await assert.rejects(store.get('a'), (e) => e.code === 'ERR_TIMEOUT')
      const elapsed = Date.now() - t0
      assert.ok(elapsed < 900, `settled in ${elapsed} ms`)
      await slept
      await sleep(200)
      assert.deepEqual(await store.get('a'), { cookie: {} })
    } finally {
      store.close()
      await redis.close()
    }
  })
})

describe('connections killed under load', () => {
  it('settles every call with a value or a coded error, and recovers', async (t) => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, commandTimeout: 1000 })
    try {
      await store.set('warm', { cookie: {} })
      await sleep(300)
      let failed = 0
      const codes = new Set()
      const acknowledged = []
      const calls = []
      for (let i = 0; i < 3000; i++) {
        calls.push(
          store.set(`k${i}`, { cookie: {}, i }).then(
            () => acknowledged.push(i),
            (e) => {
              failed++
              codes.add(e.code)
            },
          ),
        )
        if (i === 1500) redis.cli('CLIENT', 'KILL', 'TYPE', 'normal')
        if (i % 100 === 0) await sleep(1)
      }
      await within(Promise.all(calls), 5000, 'all calls settle')
      const ok = acknowledged.length
      assert.equal(ok + failed, 3000)
      t.diagnostic(`CLIENT KILL under load: ${ok} calls resolved, ${failed} rejected (${[...codes].join(', ')})`)
      assert.ok(ok > 0)
      for (const code of codes) assert.ok(['ERR_NOT_CONNECTED', 'ERR_TIMEOUT'].includes(code), code)
      // Every acknowledged write is really there.
      const present = Number(redis.cli('EXISTS', ...acknowledged.map((i) => `sess:k${i}`)))
      assert.equal(present, acknowledged.length, 'no acknowledged write was lost')
      // The store comes back by itself.
      let recovered = false
      for (let i = 0; i < 50 && !recovered; i++) {
        try {
          await store.set('after', { cookie: {}, v: 1 })
          recovered = true
        } catch {
          await sleep(100)
        }
      }
      assert.ok(recovered, 'writes succeed again after the kill')
      assert.deepEqual(await store.get('after'), { cookie: {}, v: 1 })
    } finally {
      store.close()
      await redis.close()
    }
  })
})
