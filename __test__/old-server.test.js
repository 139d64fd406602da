'use strict'
// A server older than the store supports: Debian 11's redis-server 6.0.16, fetched into the
// platform cache by scripts/platforms/redis-6.0.sh (.ci/run runs it first). What needs Redis 6.2
// (`GETDEL`, `SET … EXAT`) rejects with ERR_SERVER_VERSION, naming the command, 6.2 and the
// server's version, on one server and on a cluster, alone and inside a transaction; everything
// else keeps working on the same connection, calls in flight beside a refused one included.
// The near cache on a server that refuses `HELLO 3` (this 6.0 with HELLO renamed away answers
// it as Redis 5 does, "unknown command") warns once and runs uncached. An absent server binary
// skips with the reason outside CI and fails in CI.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { RedisStore } = require('..')
const { createSessions } = require('../lib/sessions.js')
const { redisStorage } = require('../lib/better-auth.js')
const { startRedis, startCluster } = require('./support/redis.js')
const { cacheDir } = require('../scripts/platforms/cache.js')

const inCI = Boolean(process.env.CI)
const BIN = path.join(cacheDir(), 'redis-6.0', 'redis-server')
const PREPARE = 'run bash scripts/platforms/redis-6.0.sh'

/** Why the old server cannot run here, or null. */
function missing() {
  if (process.platform !== 'linux') return 'Debian\'s redis-server 6.0 runs on linux hosts only'
  if (!fs.existsSync(BIN)) return `no Redis 6.0 at ${BIN}: ${PREPARE}`
  const version = spawnSync(BIN, ['--version'], { encoding: 'utf8' })
  if (!/v=6\.0\./.test(version.stdout)) return `${BIN} is not Redis 6.0: ${version.stdout || version.stderr || version.error}`
  return null
}

const why = missing()
if (why && inCI) {
  it('Redis 6.0 is here', () => assert.fail(why))
} else if (why) {
  console.log(`# skipped: ${why}`)
}

/** A rejection with ERR_SERVER_VERSION that names `what`, Redis 6.2 and the server's version. */
function needs62(what) {
  return (e) => {
    assert.equal(e.code, 'ERR_SERVER_VERSION', `${e.code}: ${e.message}`)
    assert.equal(e.message, `${what} needs Redis 6.2 or newer; this server is Redis 6.0.16`)
    return true
  }
}

const sess = (user, n) => ({ cookie: { originalMaxAge: 600_000, expires: new Date(Date.now() + 600_000).toISOString() }, user, n })

describe('a server older than 6.2 (Redis 6.0.16)', { skip: why || false }, () => {
  let server

  before(async () => {
    server = await startRedis([], { bin: BIN })
    assert.match(server.cli('INFO', 'server'), /redis_version:6\.0\.16/, 'the harness started Redis 6.0')
  })
  after(async () => {
    if (server) await server.close()
  })

  it('Better Auth: getAndDelete (GETDEL) rejects naming 6.2; the value stays, and the other calls work', async () => {
    const storage = redisStorage({ url: server.url, keyPrefix: 'ba:' })
    try {
      await storage.set('v', 'one', 60)
      await assert.rejects(storage.getAndDelete('v'), needs62('GETDEL'))
      assert.equal(await storage.get('v'), 'one', 'nothing was deleted')
      assert.equal(await storage.increment('n', 60), 1)
      await storage.delete('v')
      assert.equal(await storage.get('v'), null)
      // A refused call among others in flight on the same connection: each gets its own reply.
      await storage.set('w', 'two')
      const out = await Promise.allSettled([storage.get('w'), storage.getAndDelete('w'), storage.set('x', 'three'), storage.get('w'), storage.increment('n', 60)])
      assert.deepEqual(
        out.map((r) => (r.status === 'fulfilled' ? r.value : r.reason.code)),
        ['two', 'ERR_SERVER_VERSION', undefined, 'two', 2],
      )
      assert.equal(server.cli('GET', 'ba:x'), 'three')
    } finally {
      storage.close?.()
    }
  })

  it('ferrisession/sessions: create (SET … EXAT) rejects naming 6.2, and writes nothing', async () => {
    const sessions = createSessions({ url: server.url, expiresIn: 3600 })
    try {
      await assert.rejects(sessions.create('u1', { a: 1 }), needs62('SET … EXAT'))
      assert.equal(server.cli('--scan', '--pattern', 'session:*'), '', 'no session stored')
      assert.equal(await sessions.validate('not.a-token'), null, 'reads go on')
    } finally {
      sessions.close()
    }
  })

  it('express-session: set, get, touch and destroy work (SET … EX); userId\'s index write (SET … EXAT in a transaction) rejects naming 6.2', async () => {
    const plain = new RedisStore({ url: server.url })
    const indexed = new RedisStore({ url: server.url, prefix: 'ix:', userId: (s) => s.user })
    try {
      const s1 = sess('ada', 1)
      await plain.set('s1', s1)
      assert.deepEqual(await plain.get('s1'), s1)
      await plain.touch('s1', s1)
      const ttl = Number(server.cli('TTL', 'sess:s1'))
      assert.ok(ttl > 590 && ttl <= 600, `ttl ${ttl}`)
      await assert.rejects(indexed.set('s2', sess('bob', 2)), needs62('SET … EXAT'))
      assert.equal(server.cli('EXISTS', 'ix:s2'), '0', 'the session was not stored')
      // The connection goes on: the same store reads, and the plain one writes.
      assert.equal(await indexed.get('s2'), null)
      await plain.destroy('s1')
      assert.equal(await plain.get('s1'), null)
      // stats() counts the code like any other.
      assert.deepEqual(indexed.stats().calls.indexedSet.errors, { ERR_SERVER_VERSION: 1 })
    } finally {
      plain.close()
      indexed.close()
    }
  })

  it('the near cache runs on 6.0 (RESP3 tracking is there)', async () => {
    const store = new RedisStore({ url: server.url, cache: true })
    try {
      const c1 = sess('ada', 1)
      await store.set('c1', c1)
      // The first read after this process's own write goes uncached, the second refills.
      for (let i = 0; i < 3; i++) assert.deepEqual(await store.get('c1'), c1)
      assert.ok(store.stats().cache.hits >= 1, JSON.stringify(store.stats().cache))
    } finally {
      store.close()
    }
  })
})

describe('a server that refuses HELLO 3, as Redis 5 does', { skip: why || false }, () => {
  it('the near cache warns once naming the server, and the store runs uncached', async () => {
    const server = await startRedis(['--rename-command', 'HELLO', ''], { bin: BIN })
    try {
      assert.match(server.cli('HELLO', '3'), /unknown command `HELLO`/)
      const script = `
        const { RedisStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
        const store = new RedisStore({ url: ${JSON.stringify(server.url)}, cache: true })
        ;(async () => {
          await store.set('h1', { cookie: {}, n: 1 })
          const got = []
          for (let i = 0; i < 3; i++) got.push((await store.get('h1')).n)
          console.log(JSON.stringify({ got, hits: store.stats().cache ? store.stats().cache.hits : 0 }))
          store.close()
        })().catch((e) => { console.error(e); process.exit(1) })`
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 })
      assert.equal(run.status, 0, run.stderr)
      assert.deepEqual(JSON.parse(run.stdout.trim()), { got: [1, 1, 1], hits: 0 })
      const warnings = run.stderr.split('\n').filter((l) => l.includes('near cache'))
      assert.deepEqual(warnings, [
        'ferrisession: the near cache is off: it needs RESP3 client tracking (HELLO 3 and CLIENT TRACKING, Redis 6.0 or newer), which Redis 6.0.16 refused; the store runs uncached',
      ])
    } finally {
      await server.close()
    }
  })
})

describe('a cluster of servers older than 6.2 (Redis 6.0.16)', { skip: why || false }, () => {
  let cluster

  before(async () => {
    cluster = await startCluster({ bin: BIN })
  })
  after(async () => {
    if (cluster) await cluster.close()
  })

  it('GETDEL, SET … EXAT alone, and SET … EXAT in a transaction on one slot or spread over two reject naming 6.2', async () => {
    const seeds = { cluster: { nodes: cluster.seeds } }
    const storage = redisStorage({ ...seeds, keyPrefix: 'ba:' })
    const sessions = createSessions({ ...seeds, expiresIn: 3600 })
    // No hash tags: the session and its user index hash to different slots (one command each).
    const spread = new RedisStore({ ...seeds, userId: (s) => s.user })
    // One hash tag: one slot, one transaction.
    const tagged = new RedisStore({ ...seeds, prefix: '{t}sess:', userPrefix: '{t}users:', userId: (s) => s.user })
    try {
      await storage.set('v', 'one')
      await assert.rejects(storage.getAndDelete('v'), needs62('GETDEL'))
      assert.equal(await storage.get('v'), 'one')
      await assert.rejects(sessions.create('u1'), needs62('SET … EXAT'))
      await assert.rejects(spread.set('s1', sess('ada', 1)), needs62('SET … EXAT'))
      await assert.rejects(tagged.set('s2', sess('bob', 2)), needs62('SET … EXAT'))
      await spread.set('s3', { cookie: {}, n: 3 })
      assert.deepEqual(await spread.get('s3'), { cookie: {}, n: 3 })
      assert.equal(await tagged.get('s2'), null)
    } finally {
      storage.close?.()
      sessions.close()
      spread.close()
      tagged.close()
    }
  })
})
