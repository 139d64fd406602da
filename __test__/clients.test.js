'use strict'
// The newest clients passed as `client`: node-redis 6 (keyPrefix, RESP3 by default, cluster) and
// ioredis 6. Keys and bytes are compared with connect-redis over the same client, or with what
// the client itself writes where connect-redis cannot take it.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const redis6 = require('redis6')
const IORedis6 = require('ioredis6')
const ConnectRedis = require('connect-redis').RedisStore
const { RedisStore } = require('..')
const redis5 = require('redis')
const { startRedis, startCluster, startSentinels } = require('./support/redis.js')

const session = () => ({
  cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600_000).toISOString(), httpOnly: true, path: '/' },
  user: 'u-6',
  note: 'ünïcode',
})

describe('node-redis 6 as client', () => {
  let server, client, theirs, ours

  before(async () => {
    server = await startRedis()
    client = redis6.createClient({ url: server.url, keyPrefix: 'np:' })
    await client.connect()
    theirs = new ConnectRedis({ client })
    ours = new RedisStore({ client })
  })
  after(async () => {
    ours.close()
    await client.quit()
    await server.close()
  })

  it('speaks RESP3 by default, which does not change what we store', async () => {
    const hello = await client.hello()
    assert.equal(hello.proto, 3)
    await ours.set('resp3', session())
    assert.equal((await ours.get('resp3')).user, 'u-6')
  })

  it('puts its keyPrefix before every key, as connect-redis over the same client does', async () => {
    const s = session()
    await theirs.set('a', s)
    await ours.set('b', s)
    assert.equal(server.cli('EXISTS', 'sess:b'), '0', 'nothing is written outside the prefix')
    assert.equal(server.cli('GET', 'np:sess:b'), server.cli('GET', 'np:sess:a'))
    assert.ok(Math.abs(Number(server.cli('TTL', 'np:sess:a')) - Number(server.cli('TTL', 'np:sess:b'))) <= 1)
  })

  it('reads what connect-redis wrote through the prefix and the other way round', async () => {
    await theirs.set('from-them', session())
    assert.equal((await ours.get('from-them')).user, 'u-6')
    await ours.set('from-us', session())
    assert.equal((await theirs.get('from-us')).user, 'u-6')
    await ours.destroy('from-them')
    assert.equal(await theirs.get('from-them'), null)
  })

  it('lists its sessions inside the prefix (connect-redis 10 lists none there: its SCAN pattern is not prefixed)', async () => {
    const ids = await ours.ids()
    assert.ok(ids.includes('from-us') && ids.includes('a') && ids.includes('b'), `ids: ${ids}`)
    assert.equal(await ours.length(), ids.length)
    assert.equal(Number(server.cli('EVAL', "return #redis.call('KEYS', 'np:sess:*')", '0')), ids.length)
  })
})

describe('ioredis 6 as client', () => {
  let server, client, ours

  before(async () => {
    server = await startRedis()
    client = new IORedis6(server.url, { keyPrefix: 'io:', db: 2 })
    ours = new RedisStore({ client })
  })
  after(async () => {
    ours.close()
    client.disconnect()
    await server.close()
  })

  it('reads its keyPrefix and db, and stores where the client itself would', async () => {
    const s = session()
    await client.set('sess:by-client', JSON.stringify(s), 'EX', 3600)
    await ours.set('by-us', s)
    assert.equal(server.cli('-n', '2', 'GET', 'io:sess:by-us'), server.cli('-n', '2', 'GET', 'io:sess:by-client'))
    assert.equal(server.cli('-n', '2', 'TTL', 'io:sess:by-us'), '3600')
    assert.equal(server.cli('-n', '0', 'DBSIZE'), '0', 'nothing lands in db 0')
    assert.deepEqual(await ours.get('by-client'), s)
    assert.equal(await client.get('sess:by-us'), JSON.stringify(s))
  })
})

describe('cluster clients of node-redis 6 and ioredis 6', () => {
  let cluster

  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    await cluster.close()
  })

  it('node-redis 6 createCluster with keyPrefix: the same keys and bytes as connect-redis over it', async () => {
    const client = redis6.createCluster({ rootNodes: cluster.seeds.map((url) => ({ url })), keyPrefix: 'nc:' })
    await client.connect()
    const theirs = new ConnectRedis({ client })
    const ours = new RedisStore({ client })
    try {
      const s = session()
      for (let i = 0; i < 5; i++) {
        await theirs.set(`t${i}`, s)
        await ours.set(`o${i}`, s)
      }
      for (let i = 0; i < 5; i++) {
        const mine = cluster.primaryFor(`nc:sess:o${i}`).cli('GET', `nc:sess:o${i}`)
        assert.equal(mine, cluster.primaryFor(`nc:sess:t${i}`).cli('GET', `nc:sess:t${i}`))
        assert.equal((await ours.get(`t${i}`)).user, 'u-6')
        assert.equal((await theirs.get(`o${i}`)).user, 'u-6')
      }
      assert.deepEqual((await ours.ids()).sort(), ['o0', 'o1', 'o2', 'o3', 'o4', 't0', 't1', 't2', 't3', 't4'])
    } finally {
      ours.close()
      await client.quit()
    }
  })

  it('ioredis 6 Cluster with keyPrefix: stores where the cluster client itself would', async () => {
    const client = new IORedis6.Cluster(cluster.seeds.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })), { keyPrefix: 'ic:' })
    const ours = new RedisStore({ client })
    try {
      const s = session()
      await ours.set('x', s)
      assert.equal(await client.get('sess:x'), JSON.stringify(s))
      await client.set('sess:y', JSON.stringify(s), 'EX', 60)
      assert.deepEqual(await ours.get('y'), s)
    } finally {
      ours.close()
      client.disconnect()
    }
  })
})

describe('node-redis createSentinel (v5 and v6) as client', () => {
  let group

  before(async () => {
    group = await startSentinels()
  })
  after(async () => {
    await group.close()
  })

  const sentinelClient = (lib, extra = {}) =>
    lib.createSentinel({ name: 'mymaster', sentinelRootNodes: group.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), ...extra })

  for (const [label, lib, extra, prefix] of [
    ['v5', redis5, {}, ''],
    ['v6 with keyPrefix', redis6, { keyPrefix: 'ns:' }, 'ns:'],
  ]) {
    it(`${label}: finds the one monitored primary and writes what connect-redis over it writes`, async () => {
      const client = sentinelClient(lib, extra)
      client.on('error', () => {})
      await client.connect()
      const theirs = new ConnectRedis({ client })
      const ours = new RedisStore({ client })
      try {
        const s = session()
        await theirs.set(`t-${label}`, s)
        await ours.set(`o-${label}`, s)
        const primary = group.masterPort()
        const cli = (...args) => require('node:child_process').execFileSync('redis-cli', ['-p', String(primary), ...args], { encoding: 'utf8' }).trim()
        assert.equal(cli('GET', `${prefix}sess:o-${label}`), cli('GET', `${prefix}sess:t-${label}`))
        assert.equal((await ours.get(`t-${label}`)).user, 'u-6')
        assert.equal((await theirs.get(`o-${label}`)).user, 'u-6')
      } finally {
        ours.close()
        await client.close()
      }
    })
  }

  it('asks which primary when the sentinels monitor several, and takes sentinel.name beside the client', async () => {
    const other = await startRedis()
    const first = group.sentinels[0]
    first.cli('SENTINEL', 'MONITOR', 'other', '127.0.0.1', String(other.port), '2')
    const client = sentinelClient(redis5)
    try {
      const ambiguous = new RedisStore({ client, commandTimeout: 1500, connectTimeout: 1000 })
      await assert.rejects(ambiguous.set('x', session()), (err) => {
        assert.equal(err.code, 'ERR_NOT_CONNECTED')
        assert.match(err.message, /monitor 2 primaries \((mymaster, other|other, mymaster)\): pass sentinel: \{ name \}/)
        return true
      })
      ambiguous.close()
      const named = new RedisStore({ client, sentinel: { name: 'mymaster' } })
      await named.set('named', session())
      assert.equal((await named.get('named')).user, 'u-6')
      named.close()
    } finally {
      first.cli('SENTINEL', 'REMOVE', 'other')
      await other.close()
    }
  })
})
