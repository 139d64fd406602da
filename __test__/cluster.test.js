'use strict'
// Redis Cluster: 6 real nodes, every entry point's bulk operation across all primaries,
// cross-slot work without CROSSSLOT, clients as settings sources, and a primary failover.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { createCluster } = require('redis')
const Redis = require('ioredis')
const { RedisStore } = require('..')
const { luciaAdapter } = require('../lib/lucia.js')
const unstorageDriver = require('../lib/unstorage.js')
const { startCluster, sleep, measureRecovery } = require('./support/redis.js')

describe('Redis Cluster', () => {
  let cluster
  const stores = []
  const open = (opts) => {
    const s = new RedisStore({ cluster: { nodes: cluster.seeds }, commandTimeout: 2000, ...opts })
    stores.push(s)
    return s
  }

  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    for (const s of stores) s.close()
    await cluster.close()
  })

  it('runs the store lifecycle with keys spread over every primary', async () => {
    const s = open({ prefix: 'c:' })
    await Promise.all(Array.from({ length: 300 }, (_, i) => s.set(`id${i}`, { cookie: {}, i })))
    assert.deepEqual(await s.get('id7'), { cookie: {}, i: 7 })
    const perNode = cluster.nodes.filter((n) => n.cli('ROLE').startsWith('master')).map((n) => Number(n.cli('DBSIZE')))
    assert.equal(perNode.length, 3)
    assert.ok(perNode.every((n) => n > 0), `keys on every primary: ${perNode}`)
    assert.equal(await s.length(), 300)
    assert.equal(new Set(await s.ids()).size, 300)
    assert.equal((await s.all()).length, 300)
    await s.destroy('id7')
    assert.equal(await s.get('id7'), null)
    await s.clear()
    assert.equal(await s.length(), 0)
  })

  it('a keyspace walk made before the first slot map arrives still covers every primary', async () => {
    // Until its first full slot map comes back, a new store knows only its seeds and the slots
    // MOVED replies named: a walk started then must wait for the map, not take those nodes for
    // all the primaries.
    const writer = open({ prefix: 'early:' })
    const ids = Array.from({ length: 30 }, (_, i) => `s${i}`)
    await Promise.all(ids.map((id) => writer.set(id, { cookie: { maxAge: 60_000 }, n: id })))
    for (let round = 0; round < 10; round++) {
      const s = new RedisStore({ cluster: { nodes: [cluster.seeds[round % 3]] }, commandTimeout: 2000, prefix: 'early:' })
      try {
        // Asked at once: no slot map can have arrived yet.
        const listed = s.ids()
        // And after a write that a MOVED reply may answer, while the map may still be out.
        const wrote = s.set(`w${round}`, { cookie: { maxAge: 60_000 } }).then(() => s.ids())
        assert.deepEqual((await listed).sort(), [...ids].sort(), `round ${round}, at once`)
        assert.ok((await wrote).length >= ids.length, `round ${round}, after a write`)
        await s.destroy(`w${round}`)
      } finally {
        s.close()
      }
    }
    await writer.clear()
  })

  it('deletes and reads keys of many slots in one call without CROSSSLOT', async () => {
    const driver = unstorageDriver({ cluster: { nodes: cluster.seeds }, base: 'u' })
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
      await Promise.all(keys.map((k) => driver.setItem(k, `v-${k}`)))
      const items = await driver.getItems(keys.map((key) => ({ key })))
      assert.deepEqual(items.map((x) => x.value), keys.map((k) => `v-${k}`))
      assert.deepEqual((await driver.getKeys('')).sort(), [...keys].sort())
      await driver.clear('')
      assert.deepEqual(await driver.getKeys(''), [])
    } finally {
      driver.dispose()
    }
  })

  it('keeps the Lucia user index working across slots, and prunes on every primary', async () => {
    const users = new Map([['u1', { id: 'u1', attributes: {} }]])
    const adapter = luciaAdapter({ cluster: { nodes: cluster.seeds }, getUser: (id) => users.get(id) ?? null })
    try {
      const expiresAt = new Date(Date.now() + 60_000)
      for (const id of ['a', 'b', 'c', 'd']) await adapter.setSession({ id, userId: 'u1', expiresAt, attributes: {} })
      assert.equal((await adapter.getUserSessions('u1')).length, 4)
      const [session, user] = await adapter.getSessionAndUser('c')
      assert.equal(session.id, 'c')
      assert.equal(user.id, 'u1')
      await adapter.deleteSession('a')
      assert.deepEqual((await adapter.getUserSessions('u1')).map((s) => s.id).sort(), ['b', 'c', 'd'])
      await adapter.deleteUserSessions('u1')
      assert.deepEqual(await adapter.getUserSessions('u1'), [])
      await adapter.deleteExpiredSessions()
    } finally {
      adapter.close()
    }
  })

  it('offers a hash-tagged Lucia layout that keeps a session and its index in one slot', async () => {
    const adapter = luciaAdapter({ cluster: { nodes: cluster.seeds }, hashTag: true, getUser: () => null })
    try {
      await adapter.setSession({ id: 's1', userId: 'u9', expiresAt: new Date(Date.now() + 60_000), attributes: {} })
      const slot = (k) => cluster.nodes[0].cli('CLUSTER', 'KEYSLOT', k)
      assert.equal(slot('{session}:session:s1'), slot('{session}:user_sessions:u9'))
      const owner = cluster.primaryFor('{session}:session:s1')
      assert.equal(owner.cli('EXISTS', '{session}:session:s1'), '1')
      assert.equal(owner.cli('SISMEMBER', '{session}:user_sessions:u9', 's1'), '1')
      assert.equal((await adapter.getUserSessions('u9')).length, 1)
      await adapter.deleteSession('s1')
      assert.equal(owner.cli('EXISTS', '{session}:user_sessions:u9'), '0')
    } finally {
      adapter.close()
    }
  })

  it('changes a Shopify shop index with one-key scripts, its sessions in other slots', async () => {
    const { Session } = require('@shopify/shopify-api')
    const { RedisSessionStorage } = require('../lib/shopify.js')
    const a = new RedisSessionStorage({ cluster: { nodes: cluster.seeds } }, { sessionKeyPrefix: 'shop' })
    const b = new RedisSessionStorage({ cluster: { nodes: cluster.seeds } }, { sessionKeyPrefix: 'shop' })
    try {
      const shop = 'cluster.myshopify.com'
      const sessions = Array.from({ length: 30 }, (_, i) => new Session({ id: `${shop}_${i}`, shop, state: 's', isOnline: true, expires: new Date(Date.now() + 60_000) }))
      await Promise.all(sessions.map((s, i) => (i % 2 ? a : b).storeSession(s)))
      const indexKey = `shop_${shop}`
      const slots = new Set(sessions.map((s) => cluster.nodes[0].cli('CLUSTER', 'KEYSLOT', `shop_${s.id}`)))
      assert.ok(slots.size > 1, 'the sessions spread over several slots')
      const owner = cluster.primaryFor(indexKey)
      assert.deepEqual(JSON.parse(owner.cli('GET', indexKey)).sort(), sessions.map((s) => `shop_${s.id}`).sort())
      await Promise.all(sessions.slice(0, 10).map((s, i) => (i % 2 ? b : a).deleteSession(s.id)))
      assert.equal((await a.findSessionsByShop(shop)).length, 20)
      assert.equal(JSON.parse(owner.cli('GET', indexKey)).length, 20)
    } finally {
      a.close()
      b.close()
    }
  })

  it('reads the nodes from node-redis and ioredis cluster clients', async () => {
    const nr = open({ client: createCluster({ rootNodes: cluster.seeds.map((url) => ({ url })) }), prefix: 'nr:' })
    const io = open({ client: new Redis.Cluster(cluster.nodes.slice(0, 2).map((n) => ({ host: '127.0.0.1', port: n.port })), { lazyConnect: true }), prefix: 'io:' })
    await nr.set('x', { cookie: {} })
    await io.set('y', { cookie: {} })
    assert.deepEqual(await nr.get('x'), { cookie: {} })
    assert.deepEqual(await io.get('y'), { cookie: {} })
  })

  it('follows ASK during a slot migration and MOVED after it', async () => {
    const s = open({ prefix: 'mig:' })
    const key = 'mig:moving'
    await s.set('before', { cookie: {}, v: 0 })
    const slot = cluster.nodes[0].cli('CLUSTER', 'KEYSLOT', key)
    const src = cluster.primaryFor(key)
    const dst = cluster.nodes.find((n) => n.proc && n !== src && n.cli('ROLE').split('\n')[0] === 'master')
    const id = (n) => n.cli('CLUSTER', 'MYID')
    dst.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', id(src))
    src.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', id(dst))
    // The key is not on the source, so the source answers ASK: the store must follow it.
    await s.set('moving', { cookie: {}, v: 1 })
    assert.equal(dst.cli('CLUSTER', 'COUNTKEYSINSLOT', slot), '1', 'the write landed on the importing node')
    assert.equal(src.cli('CLUSTER', 'COUNTKEYSINSLOT', slot), '0')
    assert.deepEqual(await s.get('moving'), { cookie: {}, v: 1 })
    // Finish the migration: now the source answers MOVED.
    for (const n of cluster.nodes) if (n.proc) n.cli('CLUSTER', 'SETSLOT', slot, 'NODE', id(dst))
    assert.deepEqual(await s.get('moving'), { cookie: {}, v: 1 })
    await s.set('moving', { cookie: {}, v: 2 })
    assert.deepEqual(await s.get('moving'), { cookie: {}, v: 2 })
    assert.deepEqual(await s.get('before'), { cookie: {}, v: 0 })
  })

  it('follows a failover when a primary is killed', async (t) => {
    const s = open({ prefix: 'fo:', commandTimeout: 1000 })
    await s.set('key', { cookie: {}, v: 1 })
    await sleep(500) // let the replica receive the write
    const victim = cluster.primaryFor('fo:key')
    assert.ok(victim, 'a primary serves the key')
    const t0 = Date.now()
    await victim.stop()
    const { recovered, errors } = await measureRecovery(s, 'key', t0, 30_000)
    assert.ok(recovered !== null, 'reads and writes succeed again')
    t.diagnostic(`cluster failover: writes succeeded again ${recovered} ms after the primary was killed (${errors} calls rejected meanwhile)`)
  })
})
