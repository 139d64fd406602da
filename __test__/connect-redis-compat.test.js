'use strict'
// Data compatibility with connect-redis itself: the same keys, the same bytes, the same TTLs.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const ConnectRedis = require('connect-redis').RedisStore
const { RedisStore } = require('..')
const { startRedis } = require('./support/redis.js')

describe('data compatibility with connect-redis', () => {
  let redis, client, theirs, ours
  const session = () => ({
    cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600_000).toISOString(), httpOnly: true, path: '/' },
    userId: 'u-42',
    csrf: 'tok€n',
    cart: [{ sku: 'A1', qty: 2 }],
  })

  before(async () => {
    redis = await startRedis()
    client = createClient({ url: redis.url })
    await client.connect()
    theirs = new ConnectRedis({ client })
    ours = new RedisStore({ client })
  })
  after(async () => {
    ours.close()
    await client.quit()
    await redis.close()
  })

  it('reads sessions that connect-redis wrote', async () => {
    const s = session()
    await theirs.set('from-them', s)
    assert.deepEqual(await ours.get('from-them'), s)
    assert.deepEqual(await ours.ids(), await theirs.ids())
  })

  it('writes sessions that connect-redis reads', async () => {
    const s = session()
    await ours.set('from-us', s)
    assert.deepEqual(await theirs.get('from-us'), s)
    assert.deepEqual(
      (await theirs.all()).map((x) => x.id).sort(),
      (await ours.all()).map((x) => x.id).sort(),
    )
  })

  it('stores identical bytes under identical keys with the same TTL', async () => {
    const s = session()
    await theirs.set('same-a', s)
    await ours.set('same-b', s)
    assert.equal(redis.cli('GET', 'sess:same-b'), redis.cli('GET', 'sess:same-a'))
    const ta = Number(redis.cli('TTL', 'sess:same-a'))
    const tb = Number(redis.cli('TTL', 'sess:same-b'))
    assert.ok(Math.abs(ta - tb) <= 1, `ttl ${ta} vs ${tb}`)

    await theirs.touch('same-a', { cookie: { expires: new Date(Date.now() + 100_000) } })
    await ours.touch('same-b', { cookie: { expires: new Date(Date.now() + 100_000) } })
    assert.ok(Math.abs(Number(redis.cli('TTL', 'sess:same-a')) - Number(redis.cli('TTL', 'sess:same-b'))) <= 1)
  })

  it('agrees on length, destroy and clear', async () => {
    assert.equal(await ours.length(), await theirs.length())
    await ours.destroy('from-them')
    assert.equal(await theirs.get('from-them'), null)
    await theirs.clear()
    assert.equal(await ours.length(), 0)
  })
})
