'use strict'
// express-session calls a store with callbacks. Reads and writes given a callback take the
// store's direct path (no promise is made): each callback is called once, after the call returns, in
// call order, with what Redis did; bad input reaches the callback as a coded error.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis } = require('./support/redis.js')

const sess = (v, ms = 60_000) => ({ cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms) }, v })
const call = (f) => new Promise((resolve) => f((err, value) => resolve({ err, value })))

describe('writes with callbacks', () => {
  let redis
  let store
  before(async () => {
    redis = await startRedis()
    store = new RedisStore({ url: redis.url, prefix: 'cb:' })
  })
  after(async () => {
    store.close()
    await redis.close()
  })

  it('set, touch and destroy call back once with (null, null) and do what they say', async () => {
    const r = await call((cb) => store.set('a', sess(1), cb))
    assert.deepEqual(r, { err: null, value: null })
    assert.equal(JSON.parse(redis.cli('GET', 'cb:a')).v, 1)
    const ttl = Number(redis.cli('TTL', 'cb:a'))
    assert.ok(ttl > 50 && ttl <= 60, `ttl ${ttl}`)
    assert.deepEqual(await call((cb) => store.touch('a', sess(1, 600_000), cb)), { err: null, value: null })
    assert.ok(Number(redis.cli('TTL', 'cb:a')) > 500)
    assert.deepEqual(await call((cb) => store.destroy('a', cb)), { err: null, value: null })
    assert.equal(redis.cli('EXISTS', 'cb:a'), '0')
    // An expired cookie destroys, as connect-redis does.
    await store.set('b', sess(2), () => {})
    assert.deepEqual(await call((cb) => store.set('b', sess(2, -1000), cb)), { err: null, value: null })
    assert.equal(redis.cli('EXISTS', 'cb:b'), '0')
  })

  it('every callback is called once, after its call returned, in call order', async () => {
    const seen = []
    let returned = false
    const done = new Promise((resolve) => {
      for (let i = 0; i < 500; i++) {
        const cb = (err) => {
          assert.ok(returned, 'a callback ran before its call returned')
          assert.equal(err, null)
          seen.push(i)
          if (seen.length === 500) resolve()
        }
        if (i % 3 === 0) store.set(`o${i}`, sess(i), cb)
        else if (i % 3 === 1) store.touch(`o${i - 1}`, sess(i), cb)
        else store.destroy(`o${i - 2}`, cb)
      }
      returned = true
    })
    await done
    assert.deepEqual(seen, Array.from({ length: 500 }, (_, i) => i))
  })

  it('a bad id or a throwing serializer reaches the callback, later, as a coded error; nothing is written', async () => {
    let returned = false
    const bad = await call((cb) => {
      store.set('', sess(1), (err, v) => {
        assert.ok(returned)
        cb(err, v)
      })
      returned = true
    })
    assert.equal(bad.err.code, 'ERR_BAD_ARGUMENT')
    assert.equal((await call((cb) => store.destroy(42, cb))).err.code, 'ERR_BAD_ARGUMENT')
    assert.equal((await call((cb) => store.touch(null, sess(1), cb))).err.code, 'ERR_BAD_ARGUMENT')
    await store.set('kept', sess('before'))
    const circular = sess('after')
    circular.self = circular
    const r = await call((cb) => store.set('kept', circular, cb))
    assert.ok(r.err instanceof TypeError)
    assert.equal((await store.get('kept')).v, 'before')
  })

  it('get calls back with the session, null for none, and a coded error for bad data', async () => {
    await store.set('g', sess('got'))
    const r = await call((cb) => store.get('g', cb))
    assert.equal(r.err, null)
    assert.equal(r.value.v, 'got')
    assert.ok(r.value.cookie.expires)
    assert.deepEqual(await call((cb) => store.get('absent', cb)), { err: null, value: null })
    redis.cli('SET', 'cb:broken', '{not json')
    const bad = await call((cb) => store.get('broken', cb))
    assert.equal(bad.err.code, 'ERR_BAD_DATA')
    assert.equal((await call((cb) => store.get('', cb))).err.code, 'ERR_BAD_ARGUMENT')
    // An async serializer's promise is awaited before the callback.
    const asyncStore = new RedisStore({ url: redis.url, prefix: 'cb:', serializer: { stringify: JSON.stringify, parse: async (t) => JSON.parse(t) } })
    try {
      assert.equal((await call((cb) => asyncStore.get('g', cb))).value.v, 'got')
    } finally {
      asyncStore.close()
    }
  })

  it('the same callbacks on memory:// and with the near cache', async () => {
    for (const opts of [{ url: 'memory://' }, { url: redis.url, cache: true, prefix: 'cbc:' }]) {
      const s = new RedisStore(opts)
      try {
        assert.deepEqual(await call((cb) => s.set('m', sess('mem'), cb)), { err: null, value: null })
        assert.equal((await call((cb) => s.get('m', cb))).value.v, 'mem')
        assert.equal((await call((cb) => s.get('m', cb))).value.v, 'mem')
        assert.deepEqual(await call((cb) => s.touch('m', sess('mem'), cb)), { err: null, value: null })
        assert.deepEqual(await call((cb) => s.destroy('m', cb)), { err: null, value: null })
        assert.deepEqual(await call((cb) => s.get('m', cb)), { err: null, value: null })
      } finally {
        s.close()
      }
    }
  })

  it('memory:// calls back after the call returns, in call order, and one throwing callback does not stop the rest', async () => {
    const s = new RedisStore({ url: 'memory://' })
    const thrown = []
    const onUncaught = (err) => thrown.push(err)
    // node:test's own handler would fail the test on the rethrown error; this test expects it.
    const others = process.listeners('uncaughtException')
    process.removeAllListeners('uncaughtException')
    process.on('uncaughtException', onUncaught)
    try {
      const seen = []
      let returned = false
      const done = new Promise((resolve) => {
        for (let i = 0; i < 300; i++) {
          const cb = (err, value) => {
            assert.ok(returned, 'a callback ran before its call returned')
            seen.push([i, err, i % 4 === 1 ? value.v : value])
            if (seen.length === 300) resolve()
            if (i === 7) throw new Error('thrown by callback 7')
          }
          if (i % 4 === 0) s.set(`m${i}`, sess(i), cb)
          else if (i % 4 === 1) s.get(`m${i - 1}`, cb)
          else if (i % 4 === 2) s.touch(`m${i - 2}`, sess(i), cb)
          else s.destroy(`m${i - 3}`, cb)
        }
        returned = true
      })
      await done
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(
        seen,
        Array.from({ length: 300 }, (_, i) => [i, null, i % 4 === 1 ? i - 1 : null]),
      )
      assert.deepEqual(thrown.map((e) => e.message), ['thrown by callback 7'])
      assert.equal((await s.length()), 0)
    } finally {
      process.removeListener('uncaughtException', onUncaught)
      for (const l of others) process.on('uncaughtException', l)
      s.close()
    }
  })

  it('memory:// calls made just before close() settle after close() returns, with what they did', async () => {
    const s = new RedisStore({ url: 'memory://' })
    const settled = []
    let closing = false
    await new Promise((resolve) => s.set('c1', sess(1), (err) => resolve(assert.equal(err, null))))
    s.set('c2', sess(2), (err, value) => settled.push(['set', err, value, closing]))
    s.get('c1', (err, value) => settled.push(['get', err, value.v, closing]))
    const read = s.get('c2').then((value) => settled.push(['get promise', null, value.v, closing]))
    closing = true
    s.close()
    closing = false
    await read
    assert.deepEqual(settled, [
      ['set', null, null, false],
      ['get', null, 1, false],
      ['get promise', null, 2, false],
    ])
  })

  it('memory:// replies known before the table (a touchAfter skip, a refused TTL) keep their place in call order', async () => {
    const s = new RedisStore({ url: 'memory://', touchAfter: 60, ttl: (sess) => sess.ttl })
    try {
      await new Promise((resolve, reject) => s.set('a', { ttl: 100, v: 1 }, (err) => (err ? reject(err) : resolve())))
      const order = []
      const settled = new Promise((resolve) => {
        s.get('a', (err, value) => order.push(['get', err, value.v]))
        // Touched just now: touchAfter answers this one before it reaches the table.
        s.touch('a', { ttl: 100, v: 1 }, (err) => order.push(['touch', err]))
        s.set('b', { ttl: 100, v: 2 }, (err) => order.push(['set b', err]))
        // A TTL the core refuses: answered before the table too.
        s.set('c', { ttl: Infinity, v: 3 }, (err) => order.push(['set c', err && err.code]))
        s.get('b', (err, value) => {
          order.push(['get b', err, value.v])
          resolve()
        })
        // Waiting in the batch, they count as in flight.
        assert.equal(s.stats().inFlight, 5)
      })
      await settled
      assert.deepEqual(order, [
        ['get', null, 1],
        ['touch', null],
        ['set b', null],
        ['set c', 'ERR_BAD_ARGUMENT'],
        ['get b', null, 2],
      ])
    } finally {
      s.close()
    }
  })

  it('after close(), a write with a callback gets ERR_CLOSED', async () => {
    const other = new RedisStore({ url: redis.url, prefix: 'cb2:' })
    await other.set('x', sess(1))
    other.close()
    assert.equal((await call((cb) => other.destroy('x', cb))).err.code, 'ERR_CLOSED')
    assert.equal(redis.cli('EXISTS', 'cb2:x'), '1')
  })
})
