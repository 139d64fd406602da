'use strict'
// Sentinel: a primary, a replica and three real sentinels; the store finds the primary
// through them and follows a failover when the primary is killed.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const { RedisStore } = require('..')
const { startSentinels, sleep, measureRecovery, until } = require('./support/redis.js')

describe('Redis Sentinel', () => {
  let group
  const stores = []

  before(async () => {
    group = await startSentinels()
  })
  after(async () => {
    for (const s of stores) s.close()
    await group.close()
  })

  it('finds the primary through the sentinels, also from an ioredis sentinel client', async () => {
    const s = new RedisStore({ sentinel: { nodes: group.sentinels.map((x) => x.url), name: 'mymaster' } })
    stores.push(s)
    await s.set('a', { cookie: {}, v: 1 })
    assert.equal(group.primary.cli('EXISTS', 'sess:a'), '1')
    const io = new RedisStore({
      client: new Redis({ sentinels: group.sentinels.map((x) => ({ host: '127.0.0.1', port: x.port })), name: 'mymaster', lazyConnect: true }),
      prefix: 'io:',
    })
    stores.push(io)
    await io.set('b', { cookie: {} })
    assert.equal(group.primary.cli('EXISTS', 'io:b'), '1')
    assert.equal(await s.length(), 1)
  })

  it('follows the new primary after the old one is killed', async (t) => {
    const s = new RedisStore({ sentinel: { nodes: group.sentinels.map((x) => x.url), name: 'mymaster' }, commandTimeout: 1000, prefix: 'fo:' })
    stores.push(s)
    await s.set('key', { cookie: {}, v: 1 })
    await sleep(300)
    const oldPort = group.primary.port
    const t0 = Date.now()
    await group.primary.stop()
    const { recovered, errors } = await measureRecovery(s, 'key', t0, 60_000)
    assert.ok(recovered !== null, 'writes succeed on the new primary')
    assert.notEqual(group.masterPort(), oldPort)
    assert.equal(group.replica.cli('EXISTS', 'fo:key'), '1')
    t.diagnostic(`sentinel failover: writes succeeded again ${recovered} ms after the primary was killed (${errors} calls rejected meanwhile)`)
  })

  it('rejects bad sentinel options with a coded TypeError', () => {
    assert.throws(() => new RedisStore({ sentinel: { nodes: [] , name: 'x' } }), (e) => e.code === 'ERR_BAD_ARGUMENT')
    assert.throws(() => new RedisStore({ sentinel: { nodes: ['127.0.0.1:1'] } }), (e) => e.code === 'ERR_BAD_ARGUMENT')
  })
})

describe('Redis Sentinel, a failover the old primary does not hear of', () => {
  it('follows +switch-master to the new primary while the old one still answers as a primary', async () => {
    // The old primary cannot be told to become a replica (its REPLICAOF is renamed away), so
    // it keeps answering reads and writes: only the sentinels' announcement tells the store.
    const g = await startSentinels({ primaryArgs: ['--rename-command', 'REPLICAOF', '', '--rename-command', 'SLAVEOF', ''] })
    const store = new RedisStore({ sentinel: { nodes: g.sentinels.map((s) => s.url), name: 'mymaster' } })
    try {
      await store.set('k', { cookie: {}, n: 1 })
      assert.equal((await store.get('k')).n, 1)
      const oldPort = g.primary.port
      g.sentinels[0].cli('SENTINEL', 'FAILOVER', 'mymaster')
      await until(() => g.masterPort() === g.replica.port, 20000, 'the sentinels to promote the replica')
      assert.match(g.primary.cli('INFO', 'replication'), /role:master/, 'the old primary still thinks it is one')
      // A write on the new primary only: a store still on the old one never sees it.
      g.replica.cli('SET', 'sess:k', JSON.stringify({ cookie: {}, n: 2 }))
      let seen = null
      const deadline = Date.now() + 10000
      while (Date.now() < deadline) {
        seen = (await store.get('k')).n
        if (seen === 2) break
        await sleep(50)
      }
      assert.equal(seen, 2, `reads moved to the new primary (old ${oldPort}, new ${g.replica.port})`)
      await store.set('after', { cookie: {}, n: 3 })
      assert.ok(g.replica.cli('GET', 'sess:after').includes('"n":3'), 'writes go to the new primary')
      assert.equal(g.primary.cli('EXISTS', 'sess:after'), '0', 'and not to the old one')
      assert.ok(store.stats().link.failovers >= 1, JSON.stringify(store.stats().link))
    } finally {
      store.close()
      await g.close()
    }
  })
})
