'use strict'
// The embedded memory:// backend behaves like Redis for every store operation.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { sleep } = require('./support/redis.js')

describe('memory://', () => {
  it('runs the store lifecycle without Redis', async () => {
    const s = new RedisStore({ url: 'memory://' })
    try {
      await s.set('a', { cookie: {}, n: 1 })
      await s.set('b', { cookie: {}, n: 2 })
      assert.deepEqual(await s.get('a'), { cookie: {}, n: 1 })
      assert.equal(await s.length(), 2)
      assert.deepEqual((await s.ids()).sort(), ['a', 'b'])
      assert.deepEqual((await s.all()).map((x) => x.id).sort(), ['a', 'b'])
      await s.destroy('a')
      assert.equal(await s.get('a'), null)
      await s.clear()
      assert.equal(await s.length(), 0)
    } finally {
      s.close()
    }
  })

  it('expires sessions at their TTL', async () => {
    const s = new RedisStore({ url: 'memory://', ttl: 1 })
    try {
      await s.set('short', { cookie: {} })
      assert.notEqual(await s.get('short'), null)
      await sleep(1100)
      assert.equal(await s.get('short'), null)
      assert.equal(await s.length(), 0)
      await s.set('gone', { cookie: { expires: new Date(Date.now() - 1000) } })
      assert.equal(await s.get('gone'), null)
    } finally {
      s.close()
    }
  })

  it('answers calls in call order: an un-awaited write is seen by the bulk call after it', async () => {
    const s = new RedisStore({ url: 'memory://' })
    try {
      const writes = [s.set('w1', { cookie: {}, n: 1 }), s.set('w2', { cookie: {}, n: 2 })]
      const ids = s.ids()
      const count = s.length()
      const removal = s.destroy('w1')
      const after = s.all()
      await Promise.all([...writes, removal])
      assert.deepEqual((await ids).sort(), ['w1', 'w2'])
      assert.equal(await count, 2)
      assert.deepEqual((await after).map((x) => x.id), ['w2'])
    } finally {
      s.close()
    }
  })

  it('rejects calls after close with ERR_CLOSED', async () => {
    const s = new RedisStore({ url: 'memory://' })
    await s.set('a', { cookie: {} })
    s.close()
    await assert.rejects(s.get('a'), (err) => err.code === 'ERR_CLOSED')
  })

  it("emits 'set', 'touch' and 'destroy' only with events: true", async () => {
    const on = new RedisStore({ url: 'memory://', events: true })
    const off = new RedisStore({ url: 'memory://' })
    const seen = []
    for (const name of ['set', 'touch', 'destroy']) {
      on.on(name, (sid) => seen.push(`${name} ${sid}`))
      off.on(name, (sid) => seen.push(`off ${name} ${sid}`))
    }
    try {
      for (const s of [on, off]) {
        await s.set('a', { cookie: {} })
        await s.touch('a', { cookie: {} })
        await s.destroy('a')
        await s.set('gone', { cookie: { expires: new Date(Date.now() - 1000) } })
      }
      assert.deepEqual(seen, ['set a', 'touch a', 'destroy a', 'destroy gone'])
      await assert.rejects(on.set('', { cookie: {} }), (e) => e.code === 'ERR_BAD_ARGUMENT')
      assert.equal(seen.length, 4, 'a failed call sends no event')
    } finally {
      on.close()
      off.close()
    }
  })

  it('expires a TTL given in milliseconds (SET_MS) to the millisecond', async () => {
    const { openLink, OP } = require('../lib/core/adapter.js')
    const link = openLink({ url: 'memory://' }, 'test')
    try {
      const started = Date.now()
      await link.call(OP.SET_MS, 'ms', 'v', 300)
      const got = await link.call(OP.GET, 'ms')
      if (Date.now() - started < 250) assert.equal(got, 'v')
      await sleep(started + 700 - Date.now())
      assert.equal(await link.call(OP.GET, 'ms'), null, 'gone long before a whole second')
      await assert.rejects(link.call(OP.SET_MS, 'ms', 'v', NaN), { code: 'ERR_BAD_ARGUMENT' })
    } finally {
      link.close()
    }
  })

  it('keeps two stores apart', async () => {
    const a = new RedisStore({ url: 'memory://' })
    const b = new RedisStore({ url: 'memory://' })
    try {
      await a.set('x', { cookie: {} })
      assert.equal(await b.get('x'), null)
    } finally {
      a.close()
      b.close()
    }
  })

  // Per-call functions find a store by its number in its JS thread's table: numbers of
  // collected stores are reused, and each worker thread numbers its own stores.
  it('keeps stores apart across collected stores and worker threads', async () => {
    const { Worker } = require('node:worker_threads')
    const { spawnSync } = require('node:child_process')
    // Stores made, closed and collected, then new ones in their slots: a new store starts
    // empty (a reused number does not reach the old store's data) and reads only its own.
    const gc = spawnSync(process.execPath, ['--expose-gc', '-e', `
      const { RedisStore } = require(${JSON.stringify(require.resolve('..'))})
      const numbers = new Set()
      ;(async () => {
        for (let round = 0; round < 20; round++) {
          let stores = Array.from({ length: 50 }, () => new RedisStore({ url: 'memory://' }))
          for (const [i, s] of stores.entries()) {
            numbers.add(s.link.number)
            if ((await s.get('k')) !== null) throw new Error('a new store read an old one')
            await s.set('k', { cookie: {}, i })
          }
          for (const [i, s] of stores.entries()) if ((await s.get('k')).i !== i) throw new Error('store ' + i + ' read another store')
          for (const s of stores) s.close()
          stores = null
          for (let i = 0; i < 3; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)) }
        }
        console.log(numbers.size)
      })().catch((e) => { console.error(e); process.exit(1) })
    `], { encoding: 'utf8' })
    assert.equal(gc.status, 0, gc.stderr)
    // 1,000 stores made, their numbers reused once collected.
    assert.ok(Number(gc.stdout) < 200, `distinct numbers: ${gc.stdout}`)
    const worker = () =>
      new Promise((resolve, reject) => {
        const w = new Worker(`
          const { parentPort } = require('node:worker_threads')
          const { RedisStore } = require(${JSON.stringify(require.resolve('..'))})
          const s = new RedisStore({ url: 'memory://' })
          ;(async () => {
            const mine = String(Math.random())
            await s.set('x', { cookie: {}, mine })
            await new Promise((r) => setTimeout(r, 20))
            parentPort.postMessage({ number: s.link.number, same: (await s.get('x')).mine === mine })
            s.close()
          })()
        `, { eval: true })
        let result
        w.once('message', (m) => (result = m))
        w.once('error', reject)
        // Settled when the worker has exited (after its store's close()), with its exit code.
        w.once('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`worker exited with ${code}`))))
      })
    const main = new RedisStore({ url: 'memory://' })
    try {
      await main.set('x', { cookie: {}, mine: 'main' })
      const results = await Promise.all([worker(), worker(), worker()])
      // Each thread's first store is number 0 of its own table, and reads its own value.
      for (const r of results) assert.deepEqual(r, { number: 0, same: true })
      assert.equal((await main.get('x')).mine, 'main')
    } finally {
      main.close()
    }
  })
})
