// Better Auth itself (sign up, sign in, sessions, revocation, sign out, the rate limiter) on our
// secondaryStorage, on one server and on a cluster; data compatibility with the official
// @better-auth/redis-storage over ioredis, both ways; the near cache; memory://.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import Redis from 'ioredis'
import { redisStorage as officialStorage } from '@better-auth/redis-storage'
import { redisStorage } from 'ferrisession/better-auth'
import defaultExport from 'ferrisession/better-auth'
import support from './support/redis.js'

const { startRedis, startCluster, sleep } = support

const BASE = 'http://localhost:3000'
const SECRET = 'ferrisession-better-auth-test-secret-3f9c1a7e5b2d4c6e8a0b'

/** A Better Auth instance on `storage`, and a `call` that runs one request through its handler. */
function authOn(storage) {
  const auth = betterAuth({
    secret: SECRET,
    baseURL: BASE,
    trustedOrigins: [BASE],
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], rateLimit: [] }),
    secondaryStorage: storage,
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: true, storage: 'secondary-storage', window: 60, max: 100, customRules: { '/get-session': { window: 10, max: 3 } } },
    advanced: { ipAddress: { ipAddressHeaders: ['x-forwarded-for'] } },
    telemetry: { enabled: false },
  })
  let ip = 0
  const call = async (method, path, { body, cookie, from } = {}) => {
    // A fresh client address per request unless one is given, so the flow stays under the limits.
    const headers = new Headers({ origin: BASE, 'x-forwarded-for': from ?? `10.1.${(ip >> 8) & 255}.${ip++ & 255}` })
    if (body) headers.set('content-type', 'application/json')
    if (cookie) headers.set('cookie', cookie)
    const res = await auth.handler(new Request(`${BASE}/api/auth${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined }))
    const text = await res.text()
    let json
    try {
      json = JSON.parse(text)
    } catch {
      json = text
    }
    const token = res.headers.getSetCookie().find((c) => c.startsWith('better-auth.session_token='))
    return { status: res.status, json, cookie: token && token.split(';')[0] }
  }
  return { auth, call }
}

/**
 * The whole Better Auth flow on `storage`; `raw(key)` reads a full Redis key (`null` when
 * missing) and `ttl(key)`, when given, its TTL, from the server itself.
 */
async function authFlow(storage, { raw, ttl, prefix = 'better-auth:' }) {
  const { call } = authOn(storage)
  const creds = { email: `ada-${Math.random().toString(36).slice(2)}@example.com`, password: 's3cret-password!', name: 'Ada' }

  const up = await call('POST', '/sign-up/email', { body: creds })
  assert.equal(up.status, 200, JSON.stringify(up.json))
  assert.ok(up.cookie, 'sign-up sets the session cookie')
  const userId = up.json.user.id
  const stored = JSON.parse(await raw(prefix + up.json.token))
  assert.equal(stored.session.userId, userId, 'the session JSON lives at keyPrefix + token')
  assert.equal(stored.user.email, creds.email)
  if (ttl) {
    const sessionTtl = await ttl(prefix + up.json.token)
    assert.ok(sessionTtl > 600_000 && sessionTtl <= 604_800, `session key expires with the session (ttl ${sessionTtl})`)
  }

  const in1 = await call('POST', '/sign-in/email', { body: { email: creds.email, password: creds.password } })
  const in2 = await call('POST', '/sign-in/email', { body: { email: creds.email, password: creds.password } })
  assert.equal(in1.status, 200)
  assert.equal(in2.status, 200)
  assert.equal(JSON.parse(await raw(`${prefix}active-sessions-${userId}`)).length, 3, 'three sessions in the active list')

  const got = await call('GET', '/get-session', { cookie: in1.cookie })
  assert.equal(got.status, 200)
  assert.equal(got.json.user.email, creds.email)
  assert.equal(got.json.session.token, in1.json.token)

  const listed = await call('GET', '/list-sessions', { cookie: in1.cookie })
  assert.equal(listed.status, 200)
  assert.deepEqual(listed.json.map((s) => s.token).sort(), [up.json.token, in1.json.token, in2.json.token].sort())

  const revoked = await call('POST', '/revoke-session', { cookie: in1.cookie, body: { token: up.json.token } })
  assert.equal(revoked.status, 200)
  assert.equal(revoked.json.status, true)
  assert.equal(await raw(prefix + up.json.token), null, 'the revoked session key is gone')
  assert.equal((await call('GET', '/get-session', { cookie: up.cookie })).json, null)

  const others = await call('POST', '/revoke-other-sessions', { cookie: in1.cookie })
  assert.equal(others.status, 200)
  assert.equal(others.json.status, true)
  assert.equal(await raw(prefix + in2.json.token), null)
  assert.equal((await call('GET', '/get-session', { cookie: in2.cookie })).json, null)
  const left = await call('GET', '/list-sessions', { cookie: in1.cookie })
  assert.deepEqual(left.json.map((s) => s.token), [in1.json.token])

  const out = await call('POST', '/sign-out', { cookie: in1.cookie })
  assert.equal(out.status, 200)
  assert.equal(out.json.success, true)
  assert.equal(await raw(prefix + in1.json.token), null)
  assert.equal((await call('GET', '/get-session', { cookie: in1.cookie })).json, null)

  // The rate limiter counts in secondary storage: 3 per 10 s per address on /get-session.
  const from = `203.0.113.${Math.floor(Math.random() * 250) + 1}`
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await call('GET', '/get-session', { from })).status)
  assert.deepEqual(statuses, [200, 200, 200, 429, 429])
  assert.equal(await raw(`${prefix}${from}|/get-session`), '5')
  if (ttl) {
    const windowTtl = await ttl(`${prefix}${from}|/get-session`)
    assert.ok(windowTtl > 0 && windowTtl <= 10, `the counter expires with its window (ttl ${windowTtl})`)
  }
  return { userId }
}

/** Calls of `command` the server has run, from INFO commandstats. */
function calls(server, command) {
  const line = server.cli('INFO', 'commandstats').split('\n').find((l) => l.startsWith(`cmdstat_${command}:`))
  return line ? Number(/calls=(\d+)/.exec(line)[1]) : 0
}

describe('Better Auth on one server', () => {
  let server
  const stores = []
  const open = (opts) => {
    const s = redisStorage({ url: server.url, ...opts })
    stores.push(s)
    return s
  }

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    for (const s of stores) s.close()
    await server.close()
  })

  it('exports redisStorage, also as the default, from ESM and CJS', async () => {
    const { createRequire } = await import('node:module')
    const cjs = createRequire(import.meta.url)('ferrisession/better-auth')
    assert.equal(defaultExport, redisStorage)
    assert.equal(cjs.redisStorage, redisStorage)
    assert.equal(cjs.default, redisStorage)
  })

  it('runs sign-up, sign-in, sessions, revocation, sign-out and the rate limiter', async () => {
    const storage = open()
    const ttl = async (key) => Number(server.cli('TTL', key))
    const raw = async (key) => (server.cli('EXISTS', key) === '1' ? server.cli('GET', key) : null)
    await authFlow(storage, { raw, ttl })
    assert.ok(storage.stats().calls.increment.calls >= 5, 'the limiter counted through increment')
  })

  it('serves the per-request session read from the near cache with cache: true', async () => {
    const storage = open({ cache: true })
    const { call } = authOn(storage)
    const up = await call('POST', '/sign-up/email', { body: { email: 'cached@example.com', password: 's3cret-password!', name: 'C' } })
    assert.equal(up.status, 200)
    // Two reads warm it: the first read after this storage's own write goes uncached, the
    // second fills.
    for (let i = 0; i < 2; i++) assert.equal((await call('GET', '/get-session', { cookie: up.cookie })).json.user.email, 'cached@example.com')
    await sleep(20)
    const getsBefore = calls(server, 'get')
    const hitsBefore = storage.stats().cache.hits
    const n = 10
    for (let i = 0; i < n; i++) {
      const r = await call('GET', '/get-session', { cookie: up.cookie })
      assert.equal(r.json.session.token, up.json.token)
    }
    const gets = calls(server, 'get') - getsBefore
    const hits = storage.stats().cache.hits - hitsBefore
    // Each request reads the session and `revoked-sessions-before-<user>`, which does not
    // exist: the near cache knows both, the value and the absence.
    assert.ok(hits >= 2 * n, `every read is a hit (${hits} hits)`)
    assert.equal(gets, 0, `no GET reaches the server (${gets} GETs for ${n} requests)`)
  })

  it('refuses hashIds and a non-string keyPrefix', () => {
    assert.throws(() => redisStorage({ url: server.url, hashIds: true }), { code: 'ERR_BAD_ARGUMENT' })
    assert.throws(() => redisStorage({ url: server.url, keyPrefix: 5 }), { code: 'ERR_BAD_ARGUMENT' })
  })
})

describe('Better Auth on a cluster', () => {
  let cluster
  const stores = []

  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    for (const s of stores) s.close()
    await cluster.close()
  })

  const nodeFor = (key) => cluster.primaryFor(key)
  const raw = async (key) => {
    const node = nodeFor(key)
    return node.cli('EXISTS', key) === '1' ? node.cli('GET', key) : null
  }
  const ttl = async (key) => Number(nodeFor(key).cli('TTL', key))

  it('runs the same flow with keys spread over the primaries', async () => {
    const storage = redisStorage({ cluster: { nodes: cluster.seeds }, commandTimeout: 2000 })
    stores.push(storage)
    await authFlow(storage, { raw, ttl })
  })

  it('takes an ioredis Cluster client, and lists and clears keys on every primary', async () => {
    const client = new Redis.Cluster(cluster.seeds.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })), { lazyConnect: true })
    const storage = redisStorage({ client, keyPrefix: 'ba-c:' })
    stores.push(storage)
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`)
    await Promise.all(keys.map((k) => storage.set(k, `v-${k}`, 60)))
    await storage.set('outside', 'kept')
    const primaries = cluster.nodes.filter((n) => n.proc && n.cli('ROLE').startsWith('master'))
    assert.ok(primaries.every((n) => Number(n.cli('DBSIZE')) > 0), 'keys on every primary')
    assert.deepEqual((await storage.listKeys()).sort(), [...keys, 'outside'].sort())
    assert.equal(await storage.increment('n', 30), 1)
    assert.equal(await storage.increment('n', 30), 2)
    assert.equal(await storage.getAndDelete('k3'), 'v-k3')
    assert.equal(await raw('ba-c:k3'), null)
    await storage.clear()
    assert.deepEqual(await storage.listKeys(), [])
    client.disconnect()
  })
})

describe('data compatibility with @better-auth/redis-storage', () => {
  let server, io, theirs, ours
  // Glob characters in the prefix: SCAN MATCH must escape them, in both packages.
  const prefix = 'ba*[1]:'

  before(async () => {
    server = await startRedis()
    io = new Redis(server.url)
    theirs = officialStorage({ client: io, keyPrefix: prefix })
    ours = redisStorage({ client: io, keyPrefix: prefix })
  })
  after(async () => {
    ours.close()
    io.disconnect()
    await server.close()
  })

  const bytes = async (key) => io.getBuffer(key)
  const ttlOf = async (key) => io.ttl(key)
  const value = JSON.stringify({ session: { token: 'tok' }, user: { name: 'Zoë 😀' } })

  it('writes the same bytes and TTL for a set with a TTL, and each reads the other', async () => {
    await theirs.set('t:a', value, 300)
    await ours.set('o:a', value, 300)
    assert.ok((await bytes(`${prefix}o:a`)).equals(await bytes(`${prefix}t:a`)))
    assert.equal((await bytes(`${prefix}o:a`)).toString('utf8'), value)
    const [a, b] = [await ttlOf(`${prefix}t:a`), await ttlOf(`${prefix}o:a`)]
    assert.ok(a > 295 && Math.abs(a - b) <= 1, `ttls ${a} and ${b}`)
    assert.equal(await ours.get('t:a'), value)
    assert.equal(await theirs.get('o:a'), value)
    assert.equal(await ours.get('missing'), null)
    assert.equal(await theirs.get('missing'), null)
  })

  it('writes with no TTL (none, 0 or negative) never expire, as theirs', async () => {
    for (const ttl of [undefined, 0, -5]) {
      await theirs.set(`t:none${ttl}`, 'v', ttl)
      await ours.set(`o:none${ttl}`, 'v', ttl)
      assert.equal(await ttlOf(`${prefix}t:none${ttl}`), -1)
      assert.equal(await ttlOf(`${prefix}o:none${ttl}`), -1, `ours with ttl ${ttl}`)
      assert.equal(await theirs.get(`o:none${ttl}`), 'v')
    }
  })

  it('deletes each other\'s keys', async () => {
    await theirs.set('t:del', 'v')
    await ours.set('o:del', 'v')
    await ours.delete('t:del')
    await theirs.delete('o:del')
    assert.equal(await io.exists(`${prefix}t:del`, `${prefix}o:del`), 0)
  })

  it('counts in the same counter, its TTL set only when created', async () => {
    assert.equal(await theirs.increment('t:n', 60), 1)
    assert.equal(await ours.increment('o:n', 60), 1)
    const [a, b] = [await ttlOf(`${prefix}t:n`), await ttlOf(`${prefix}o:n`)]
    assert.ok(a > 55 && Math.abs(a - b) <= 1, `ttls ${a} and ${b}`)
    // Each counts on in the other's counter; a later, longer TTL does not extend the window.
    assert.equal(await ours.increment('t:n', 3600), 2)
    assert.equal(await theirs.increment('o:n', 3600), 2)
    assert.ok((await ttlOf(`${prefix}t:n`)) <= 60)
    assert.ok((await ttlOf(`${prefix}o:n`)) <= 60)
    assert.ok((await bytes(`${prefix}t:n`)).equals(await bytes(`${prefix}o:n`)))
    assert.equal(await io.get(`${prefix}o:n`), '2')
    // Calls made at once all count, each once.
    const got = await Promise.all(Array.from({ length: 20 }, () => ours.increment('o:burst', 60)))
    assert.deepEqual(got.sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1))
  })

  it('rejects a TTL that is not a positive integer, with the same TypeError', async () => {
    for (const ttl of [0, -1, 1.5, undefined, '60', Number.NaN]) {
      const t = await theirs.increment('bad', ttl).then(() => null, (e) => e)
      const o = await ours.increment('bad', ttl).then(() => null, (e) => e)
      assert.ok(t instanceof TypeError && o instanceof TypeError, `ttl ${String(ttl)}`)
      assert.equal(o.message, t.message)
    }
    assert.equal(await io.exists(`${prefix}bad`), 0)
  })

  it('gets and deletes each other\'s values in one step', async () => {
    await theirs.set('t:once', 'otp-1', 60)
    await ours.set('o:once', 'otp-2', 60)
    assert.equal(await ours.getAndDelete('t:once'), 'otp-1')
    assert.equal(await theirs.getAndDelete('o:once'), 'otp-2')
    assert.equal(await io.exists(`${prefix}t:once`, `${prefix}o:once`), 0)
    assert.equal(await ours.getAndDelete('t:once'), null)
    assert.equal(await theirs.getAndDelete('t:once'), null)
  })

  it('lists the same keys, prefix stripped, and clears only inside the prefix', async () => {
    await theirs.clear()
    for (let i = 0; i < 150; i++) await (i % 2 ? theirs : ours).set(`key${i}`, `v${i}`, 600)
    // Would match the prefix as an unescaped glob (`ba*[1]:` matches `baX1:…`).
    await io.set('baX1:outside', 'kept')
    await io.set('other:key', 'kept')
    const mine = (await ours.listKeys()).sort()
    const official = (await theirs.listKeys()).sort()
    assert.equal(mine.length, 150)
    assert.deepEqual(mine, official)
    assert.ok(mine.includes('key7'))
    await ours.clear()
    assert.deepEqual(await theirs.listKeys(), [])
    assert.equal(await io.get('baX1:outside'), 'kept')
    assert.equal(await io.get('other:key'), 'kept')
    await ours.set('again', 'v')
    await theirs.clear()
    assert.deepEqual(await ours.listKeys(), [])
    assert.equal(await io.get('other:key'), 'kept')
  })

  it('puts a client\'s own keyPrefix first, as ioredis does for the official package', async () => {
    const prefixed = new Redis(server.url, { keyPrefix: 'app:' })
    const theirsPrefixed = officialStorage({ client: prefixed })
    const oursPrefixed = redisStorage({ client: prefixed })
    try {
      await theirsPrefixed.set('t:k', 'v', 60)
      await oursPrefixed.set('o:k', 'v', 60)
      assert.equal(await io.get('app:better-auth:o:k'), 'v')
      assert.equal(await oursPrefixed.get('t:k'), 'v')
      assert.deepEqual((await oursPrefixed.listKeys()).sort(), ['o:k', 't:k'])
      await oursPrefixed.clear()
      assert.equal(await io.exists('app:better-auth:o:k', 'app:better-auth:t:k'), 0)
    } finally {
      oursPrefixed.close()
      prefixed.disconnect()
    }
  })

  it('serves a hot get from the near cache, and sees a write by the other package', async () => {
    const cached = redisStorage({ url: server.url, keyPrefix: prefix, cache: true })
    try {
      await theirs.set('hot', 'v1', 600)
      assert.equal(await cached.get('hot'), 'v1')
      await sleep(20)
      const getsBefore = calls(server, 'get')
      const hitsBefore = cached.stats().cache.hits
      for (let i = 0; i < 50; i++) assert.equal(await cached.get('hot'), 'v1')
      assert.equal(calls(server, 'get') - getsBefore, 0, 'no GET reached the server')
      assert.ok(cached.stats().cache.hits - hitsBefore >= 50)
      await theirs.set('hot', 'v2', 600)
      let seen
      for (let i = 0; i < 100 && seen !== 'v2'; i++) {
        await sleep(5)
        seen = await cached.get('hot')
      }
      assert.equal(seen, 'v2', 'the invalidation reached the cache')
      assert.ok(cached.stats().cache.invalidations >= 1)
      // Its own getAndDelete drops the entry too.
      assert.equal(await cached.getAndDelete('hot'), 'v2')
      assert.equal(await cached.get('hot'), null)
    } finally {
      cached.close()
    }
  })
})

describe('better-auth storage on memory://', () => {
  let storage
  before(() => {
    storage = redisStorage({ url: 'memory://' })
  })
  after(() => storage.close())

  it('runs every method', async () => {
    await storage.set('a', 'v', 60)
    await storage.set('b', 'w')
    await storage.set('c', 'x', 0)
    assert.equal(await storage.get('a'), 'v')
    assert.equal(await storage.get('c'), 'x', 'a TTL of 0 writes with no expiry')
    assert.equal(await storage.get('nope'), null)
    assert.equal(await storage.getAndDelete('b'), 'w')
    assert.equal(await storage.getAndDelete('b'), null)
    assert.equal(await storage.increment('n', 1), 1)
    assert.equal(await storage.increment('n', 3600), 2)
    await assert.rejects(storage.increment('n', 0), TypeError)
    assert.deepEqual((await storage.listKeys()).sort(), ['a', 'c', 'n'])
    await storage.delete('a')
    assert.equal(await storage.get('a'), null)
    // The counter's window opened with the first call (1 s), not the second.
    await sleep(1100)
    assert.equal(await storage.get('n'), null)
    assert.equal(await storage.increment('n', 60), 1)
    await storage.clear()
    assert.deepEqual(await storage.listKeys(), [])
    assert.equal(storage.stats().calls.getDel.calls, 2)
    await assert.rejects(storage.get(''), { code: 'ERR_BAD_ARGUMENT' })
  })

  it('runs the Better Auth flow', async () => {
    const table = redisStorage({ url: 'memory://' })
    try {
      // Raw reads go through the store itself here: memory:// has no server to ask.
      const raw = (key) => table.get(key.slice('better-auth:'.length))
      await authFlow(table, { raw })
    } finally {
      table.close()
    }
  })
})
