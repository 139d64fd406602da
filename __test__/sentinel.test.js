'use strict'
// Sentinel: a primary, a replica and three real sentinels; the store finds the primary
// through them and follows a failover when the primary is killed.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const { RedisStore } = require('..')
const { startSentinels, sleep, measureRecovery } = require('./support/redis.js')

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
