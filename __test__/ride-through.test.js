'use strict'
// Restarts and failovers ridden through: with a commandTimeout longer than the fault, no call
// fails, service resumes with no manual step, and 'disconnect' is not sent for a blip.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { startRedis, startCluster, startSentinels, sleep, until, loadThroughFault } = require('./support/redis.js')

const execFileAsync = promisify(execFile)

function watchEvents(store) {
  const events = []
  store.on('connect', () => events.push('connect'))
  store.on('disconnect', () => events.push('disconnect'))
  return events
}

const WALKED = 20000

/** Writes WALKED sessions; `ready()` runs before the walk. */
async function fill(store, ready = () => {}) {
  for (let i = 0; i < WALKED; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => store.set(`w${i + j}`, { cookie: {}, i })))
  await ready()
}

/**
 * Runs `ids()` (with scanCount 5, thousands of SCAN round trips) and `fault()` 20 ms into it,
 * and checks the walk was still running then and lists every key once.
 */
async function walkThrough(store, fault) {
  let settled = false
  const walking = store.ids().finally(() => (settled = true))
  await sleep(20)
  await fault()
  assert.equal(settled, false, 'the walk was still running when the fault came')
  const ids = await walking
  assert.equal(new Set(ids).size, WALKED, 'every key')
  assert.equal(ids.length, WALKED, 'each key once')
}

describe('riding through faults (8 lanes of set + get)', () => {
  it('a 0.5 s server restart rejects no call', async (t) => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, commandTimeout: 6000 })
    const events = watchEvents(store)
    try {
      const r = await loadThroughFault(store, async () => {
        await redis.stop()
        await sleep(500)
        await redis.start()
      })
      t.diagnostic(`restart: ${r.ok} calls succeeded (${r.okAfter} after the restart), ${r.failed} rejected ${JSON.stringify(r.codes)}`)
      assert.equal(r.failed, 0, JSON.stringify(r.codes))
      assert.ok(r.okAfter > 0, 'calls succeed after the restart')
      assert.ok(!events.includes('disconnect'), `events: ${events}`)
      const { link } = store.stats()
      assert.ok(link.reconnects >= 1 && link.connects >= 2, `stats: ${JSON.stringify(link)}`)
      assert.equal(link.failovers, 0, 'the same server came back')
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('a keyspace walk goes on where it was after its connection is killed', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, scanCount: 5, commandTimeout: 6000 })
    try {
      await fill(store)
      await walkThrough(store, () => execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(redis.port), 'CLIENT', 'KILL', 'TYPE', 'normal']))
      assert.ok(store.stats().link.reconnects >= 1, JSON.stringify(store.stats().link))
      assert.equal(await store.length(), WALKED)
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('a keyspace walk lists every key once through a server restart in the middle of it', async () => {
    // Saved, killed and loaded again: the same keys in a new process, where the walk's SCAN
    // cursor means nothing.
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, scanCount: 5, commandTimeout: 8000 })
    try {
      await fill(store, () => redis.cli('SAVE'))
      await walkThrough(store, async () => {
        await redis.stop()
        await redis.start()
        assert.equal(redis.cli('DBSIZE'), String(WALKED), 'the keys came back with the server')
      })
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('a Cluster primary failover rejects no call and no MOVED reaches the caller', async (t) => {
    const cluster = await startCluster()
    const store = new RedisStore({ cluster: { nodes: cluster.seeds }, commandTimeout: 8000 })
    try {
      await store.set('lane-0-0', { cookie: {} })
      const r = await loadThroughFault(store, async () => {
        const victim = cluster.primaryFor('sess:lane-0-0')
        await victim.stop()
        // Lanes keep running until the cluster has promoted the replica.
        await sleep(3000)
      })
      t.diagnostic(`cluster failover: ${r.ok} calls succeeded (${r.okAfter} after it), ${r.failed} rejected ${JSON.stringify(r.codes)}`)
      assert.equal(r.failed, 0, JSON.stringify(r.codes))
      assert.ok(r.okAfter > 0, 'calls succeed after the failover')
      assert.ok(store.stats().link.failovers >= 1, `stats: ${JSON.stringify(store.stats().link)}`)
    } finally {
      store.close()
      await cluster.close()
    }
  })

  it('a Cluster keyspace walk lists every key once through a primary failover in the middle of it', async () => {
    const cluster = await startCluster()
    const store = new RedisStore({ cluster: { nodes: cluster.seeds }, scanCount: 5, commandTimeout: 8000 })
    try {
      await fill(store, async () => {
        // A replica still in its first sync acknowledges nothing; wait until each has every key.
        const primaries = cluster.nodes.filter((x) => x.proc && x.cli('ROLE').split('\n')[0] === 'master')
        for (const p of primaries) await until(() => p.cli('WAIT', '1', '1000') === '1', 30000, 'the replica to have every key before its primary goes')
      })
      await walkThrough(store, () => cluster.primaryFor('sess:w0').stop())
      assert.equal(await store.length(), WALKED)
      await store.clear()
      assert.equal(await store.length(), 0)
    } finally {
      store.close()
      await cluster.close()
    }
  })

  it('a Sentinel failover rejects no call', async (t) => {
    const group = await startSentinels()
    const store = new RedisStore({ sentinel: { nodes: group.sentinels.map((x) => x.url), name: 'mymaster' }, commandTimeout: 8000 })
    try {
      await store.set('warm', { cookie: {} })
      const oldPort = group.primary.port
      const r = await loadThroughFault(store, async () => {
        await group.primary.stop()
        await sleep(3500)
      })
      t.diagnostic(`sentinel failover: ${r.ok} calls succeeded (${r.okAfter} after it), ${r.failed} rejected ${JSON.stringify(r.codes)}`)
      assert.notEqual(group.masterPort(), oldPort, 'the sentinels promoted the replica')
      assert.equal(r.failed, 0, JSON.stringify(r.codes))
      assert.ok(r.okAfter > 0, 'calls succeed on the new primary')
      const { link } = store.stats()
      assert.ok(link.failovers >= 1 && link.reconnects >= 1, `stats: ${JSON.stringify(link)}`)
    } finally {
      store.close()
      await group.close()
    }
  })
})
