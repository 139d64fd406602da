'use strict'
// The near cache (cache: true) on real processes: a second process sees every write within
// 5 ms, a process reads its own writes at once, entries expire with the key, and on a cluster
// the cache follows a primary failover.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis, startCluster, sleep, storeProcess } = require('./support/redis.js')

/** Store options → a store in another process: `get(sid)` and `stats()` over IPC. */
async function otherProcess(options) {
  const child = storeProcess(options)
  await child.ready
  return {
    get: (sid) => child.call('get', sid),
    stats: () => child.call('stats'),
    close: () => child.stop(),
  }
}

/** A writes (or destroys); 5 ms after A's call resolved, B must read exactly that. */
async function trials(a, b, count) {
  let stale = 0
  for (let i = 0; i < count; i++) {
    const sid = `t${i % 10}`
    await b.get(sid) // B has the key cached (or its absence) before A changes it
    if (i % 10 === 9) {
      await a.destroy(sid)
      await sleep(5)
      if ((await b.get(sid)) !== null) stale++
    } else {
      await a.set(sid, { cookie: {}, i })
      await sleep(5)
      const seen = await b.get(sid)
      if (!seen || seen.i !== i) stale++
    }
  }
  return stale
}

describe('near cache', () => {
  it('two processes, one Redis: every write and destroy is seen within 5 ms (1000 trials)', async (t) => {
    const redis = await startRedis()
    const a = new RedisStore({ url: redis.url, cache: true })
    const b = await otherProcess({ url: redis.url, cache: true })
    try {
      const stale = await trials(a, b, 1000)
      const stats = await b.stats()
      t.diagnostic(`stale reads: ${stale}; reader's cache: ${JSON.stringify(stats.cache)}`)
      assert.equal(stale, 0)
      assert.ok(stats.cache.hits > 0, 'the reader served reads from its cache')
      assert.ok(stats.cache.invalidations >= 900, 'Redis invalidated the reader on each write')
    } finally {
      a.close()
      await b.close()
      await redis.close()
    }
  })

  it('a process reads its own writes at once', async () => {
    const redis = await startRedis()
    const a = new RedisStore({ url: redis.url, cache: true })
    try {
      await a.set('own', { cookie: {}, v: 1 })
      // The first read after our own write goes to Redis uncached, the second fills, the third hits.
      for (let i = 0; i < 3; i++) assert.deepEqual(await a.get('own'), { cookie: {}, v: 1 })
      const hits = a.stats().cache.hits
      assert.ok(hits >= 1, 'the third read was a hit')
      await a.set('own', { cookie: {}, v: 2 })
      assert.deepEqual(await a.get('own'), { cookie: {}, v: 2 })
      await a.destroy('own')
      assert.equal(await a.get('own'), null)
      // Un-awaited: the read after a write still sees it, whether or not it was cached.
      for (let i = 0; i < 50; i++) {
        await a.get('own')
        const write = a.set('own', { cookie: {}, v: 100 + i })
        const read = a.get('own')
        await write
        assert.deepEqual(await read, { cookie: {}, v: 100 + i })
      }
    } finally {
      a.close()
      await redis.close()
    }
  })

  it('an entry expires with the key in Redis', async () => {
    const redis = await startRedis()
    const a = new RedisStore({ url: redis.url, cache: true })
    try {
      redis.cli('SET', 'sess:short', '{"v":1}', 'PX', '300')
      assert.deepEqual(await a.get('short'), { v: 1 })
      assert.deepEqual(await a.get('short'), { v: 1 })
      assert.ok(a.stats().cache.hits >= 1)
      await sleep(400)
      assert.equal(await a.get('short'), null)
    } finally {
      a.close()
      await redis.close()
    }
  })

  it('through a cluster, and across a primary failover', async (t) => {
    const cluster = await startCluster()
    const options = { cluster: { nodes: cluster.seeds }, cache: true, commandTimeout: 8000 }
    const a = new RedisStore(options)
    const b = await otherProcess(options)
    try {
      assert.equal(await trials(a, b, 200), 0, 'no stale read before the failover')
      await a.set('t0', { cookie: {}, i: -1 })
      // Seen within 5 ms, like every write in the trials.
      await sleep(5)
      assert.equal((await b.get('t0')).i, -1)
      await cluster.primaryFor('sess:t0').stop()
      // Written through the failover: B's cache was flushed when its connection was lost.
      await a.set('t0', { cookie: {}, i: -2 })
      await sleep(5)
      assert.equal((await b.get('t0')).i, -2)
      const stale = await trials(a, b, 100)
      t.diagnostic(`stale reads after the failover: ${stale}`)
      assert.equal(stale, 0)
    } finally {
      a.close()
      await b.close()
      await cluster.close()
    }
  })

  it('a hot key read and written at once costs no TTL reads: a miss with our write in flight is not refilled', async () => {
    const server = await startRedis()
    const store = new RedisStore({ url: server.url, cache: true })
    try {
      const sess = { cookie: {}, user: 'hot' }
      await store.set('hot', sess)
      server.cli('CONFIG', 'RESETSTAT')
      let running = true
      let rounds = 0
      const lanes = Array.from({ length: 50 }, async () => {
        while (running) {
          const s = await store.get('hot')
          assert.equal(s.user, 'hot')
          await store.set('hot', s)
          rounds++
        }
      })
      await sleep(500)
      running = false
      await Promise.all(lanes)
      const stat = (cmd) => Number((new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(server.cli('INFO', 'commandstats')) || [0, 0])[1])
      const gets = stat('get')
      const pttls = stat('pttl')
      assert.ok(rounds > 1000, `${rounds} rounds`)
      // Only a GET sent while no write of the key was in flight fills (and reads the TTL).
      assert.ok(pttls < gets / 10, `${pttls} PTTL for ${gets} GET`)
    } finally {
      store.close()
      await server.close()
    }
  })

  it('remembers that a key is absent until it is written, here or in another process', async () => {
    const server = await startRedis()
    const store = new RedisStore({ url: server.url, cache: true })
    try {
      assert.equal(await store.get('nobody'), null)
      server.cli('CONFIG', 'RESETSTAT')
      for (let i = 0; i < 20; i++) assert.equal(await store.get('nobody'), null)
      assert.doesNotMatch(server.cli('INFO', 'commandstats'), /cmdstat_get:/, 'a known absence needs no round trip')
      const child = storeProcess({ url: server.url })
      await child.ready
      await child.call('set', 'nobody', { cookie: {}, v: 'there' })
      await child.stop()
      await sleep(5)
      assert.equal((await store.get('nobody')).v, 'there', 'another process wrote it: seen within 5 ms')
      await store.destroy('nobody')
      assert.equal(await store.get('nobody'), null, 'our own destroy is read at once')
    } finally {
      store.close()
      await server.close()
    }
  })

  it('refuses a bad cache option with a coded error', () => {
    assert.throws(() => new RedisStore({ url: 'redis://127.0.0.1:1', cache: { maxEntries: -1 } }), (e) => e.code === 'ERR_BAD_ARGUMENT')
    assert.throws(() => new RedisStore({ url: 'redis://127.0.0.1:1', cache: 'yes' }), (e) => e.code === 'ERR_BAD_ARGUMENT')
  })
})
