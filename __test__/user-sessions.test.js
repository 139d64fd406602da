'use strict'
// Log out everywhere for express-session: with userId(sess), a user's sessions can be listed
// and destroyed, on memory://, one server and a cluster (keys without hash tags).
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis, startCluster, storeProcess } = require('./support/redis.js')

const sess = (user, n) => ({ cookie: { originalMaxAge: 600_000, expires: new Date(Date.now() + 600_000) }, user, n })

async function logOutEverywhere(store) {
  await store.set('s1', sess('u1', 1))
  await store.set('s2', sess('u1', 2))
  await store.set('s3', sess('u1', 3))
  await store.set('s4', sess('u2', 4))
  await store.set('anon', { cookie: {} })
  assert.deepEqual((await store.userSessions('u1')).map((s) => s.id).sort(), ['s1', 's2', 's3'])
  assert.equal((await store.userSessions('u1'))[0].user, 'u1')
  assert.deepEqual((await store.ids()).sort(), ['anon', 's1', 's2', 's3', 's4'], 'the index is not listed as sessions')

  // A session that changes owner leaves its old user's list.
  await store.set('s3', sess('u3', 3))
  assert.deepEqual((await store.userSessions('u1')).map((s) => s.id).sort(), ['s1', 's2'])
  assert.deepEqual((await store.userSessions('u3')).map((s) => s.id), ['s3'])

  // Password changed in session s2: every other session of u1 goes.
  assert.equal(await store.destroyUserSessions('u1', { except: 's2' }), 1)
  assert.equal(await store.get('s1'), null)
  assert.equal((await store.get('s2')).n, 2)
  assert.equal((await store.get('s4')).n, 4, "another user's session stays")
  assert.equal((await store.get('s3')).n, 3, 'the session that changed owner stays')
  await store.destroy('s2')
  assert.deepEqual(await store.userSessions('u1'), [], 'a destroyed session is not listed')
  assert.equal(await store.destroyUserSessions('u1'), 0)
}

describe('log out everywhere (userId)', () => {
  it('memory://', async () => {
    const store = new RedisStore({ url: 'memory://', userId: (s) => s.user })
    try {
      await logOutEverywhere(store)
    } finally {
      store.close()
    }
  })

  it('one server: keys and stored bytes stay connect-redis\'s', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, userId: (s) => s.user })
    try {
      await logOutEverywhere(store)
      assert.equal(JSON.parse(redis.cli('GET', 'sess:s4')).user, 'u2')
      const ttl = Number(redis.cli('TTL', 'sess:s4'))
      assert.ok(ttl > 590 && ttl <= 601, `ttl ${ttl}`)
      assert.equal(redis.cli('TYPE', 'sess-users:u2'), 'set')
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('three processes: sessions written by each are destroyed from one, and none of them reads one again', async () => {
    const redis = await startRedis()
    // The near cache on: each process has read its sessions, and must not serve them after.
    const options = { url: redis.url, userField: 'user', cache: true, hashIds: true }
    const procs = [0, 1, 2].map(() => storeProcess(options))
    try {
      await Promise.all(procs.map((p) => p.ready))
      const ids = (k) => [0, 1, 2].map((i) => `p${k}-s${i}`)
      for (const [k, p] of procs.entries()) {
        for (const sid of ids(k)) await p.call('set', sid, sess('ada', k))
        await p.call('set', `p${k}-other`, sess('bob', k))
        for (const sid of ids(k)) assert.equal((await p.call('get', sid)).n, k)
      }
      assert.equal((await procs[1].call('userSessions', 'ada')).length, 9)
      // Process 2 logs ada out everywhere but its own first session.
      assert.equal(await procs[2].call('destroyUserSessions', 'ada', { except: 'p2-s0' }), 8)
      await new Promise((r) => setTimeout(r, 20))
      for (const [k, p] of procs.entries()) {
        for (const sid of ids(k)) {
          const got = await p.call('get', sid)
          if (sid === 'p2-s0') assert.equal(got.n, 2, 'the session kept')
          else assert.equal(got, null, `${sid} is still readable in process ${k}`)
        }
        assert.equal((await p.call('get', `p${k}-other`)).n, k, "bob's session stays")
      }
      assert.equal((await procs[0].call('userSessions', 'ada')).length, 1)
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await redis.close()
    }
  })

  it('an index write that Redis refuses rejects with its error, and the next ones go on', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, userId: (s) => s.user })
    try {
      // The index key holds a string: SADD fails inside the transaction with WRONGTYPE.
      redis.cli('SET', 'sess-users:mallory', 'not a set')
      await assert.rejects(store.set('w1', sess('mallory', 1)), (e) => e.code === 'ERR_WRONG_TYPE')
      await store.set('w2', sess('eve', 2))
      assert.deepEqual((await store.userSessions('eve')).map((s) => s.id), ['w2'])
      assert.equal(redis.cli('SISMEMBER', 'sess-users:eve', 'w2'), '1')
      const ttl = Number(redis.cli('TTL', 'sess:w2'))
      assert.ok(ttl > 590 && ttl <= 601, `ttl ${ttl}`)
    } finally {
      store.close()
      await redis.close()
    }
  })

  it('Cluster, keys without hash tags', async () => {
    const cluster = await startCluster()
    const store = new RedisStore({ cluster: { nodes: cluster.seeds }, userId: (s) => s.user })
    try {
      await logOutEverywhere(store)
    } finally {
      store.close()
      await cluster.close()
    }
  })

  it('refuses a userId that is not a function, and userSessions without it', async () => {
    assert.throws(() => new RedisStore({ url: 'memory://', userId: 'user' }), (e) => e.code === 'ERR_BAD_ARGUMENT')
    const store = new RedisStore({ url: 'memory://' })
    await assert.rejects(store.userSessions('u1'), (e) => e.code === 'ERR_BAD_ARGUMENT')
    store.close()
  })
})
