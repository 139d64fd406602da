'use strict'
// No call overtakes an earlier call on the same store, on every topology: an un-awaited write
// is seen by the keyspace call after it, and a write after clear() survives it.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { RedisStore } = require('..')
const { startRedis, startCluster, startSentinels, makeCertificates } = require('./support/redis.js')

async function checkOrder(store) {
  for (let round = 0; round < 20; round++) {
    const prefix = `r${round}-`
    const writes = []
    for (let i = 0; i < 10; i++) writes.push(store.set(`${prefix}${i}`, { cookie: {}, i }))
    const ids = store.ids()
    const count = store.length()
    const all = store.all()
    const removal = store.destroy(`${prefix}0`)
    const afterRemoval = store.ids()
    const cleared = store.clear()
    const late = store.set(`${prefix}late`, { cookie: {} })
    const final = store.ids()
    await Promise.all([...writes, removal, cleared, late])
    const mine = (list) => list.filter((id) => id.startsWith(prefix)).sort()
    assert.equal(mine(await ids).length, 10, `round ${round}: ids() sees the 10 writes before it`)
    assert.ok((await count) >= 10, `round ${round}: length() counts them`)
    assert.equal(mine((await all).map((s) => s.id)).length, 10)
    assert.ok(!(await afterRemoval).includes(`${prefix}0`), `round ${round}: the destroy before ids() is seen`)
    assert.deepEqual(await final, [`${prefix}late`], `round ${round}: the write after clear() survives it`)
    await store.clear()
  }
}

describe('call order on every topology', () => {
  it('memory://', async () => {
    const store = new RedisStore({ url: 'memory://' })
    try {
      await checkOrder(store)
    } finally {
      store.close()
    }
  })

  it('one server, plain TCP', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url })
    try {
      await checkOrder(store)
    } finally {
      store.close()
      await redis.close()
    }
  })

  describe('TLS', () => {
    let certs, redis
    before(async () => {
      certs = makeCertificates()
      redis = await startRedis([], { tls: certs })
    })
    after(async () => {
      await redis.close()
      certs.remove()
    })
    it('rediss://', async () => {
      const store = new RedisStore({ url: redis.url, tls: { ca: fs.readFileSync(certs.ca) } })
      try {
        await checkOrder(store)
      } finally {
        store.close()
      }
    })
  })

  it('Cluster', async () => {
    const cluster = await startCluster()
    const store = new RedisStore({ cluster: { nodes: cluster.seeds } })
    try {
      await checkOrder(store)
    } finally {
      store.close()
      await cluster.close()
    }
  })

  it('Sentinel', async () => {
    const group = await startSentinels()
    const store = new RedisStore({ sentinel: { nodes: group.sentinels.map((x) => x.url), name: 'mymaster' } })
    try {
      await checkOrder(store)
    } finally {
      store.close()
      await group.close()
    }
  })
})
