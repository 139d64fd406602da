// Lucia 2 and Lucia 3, the real packages, on our adapters against redis-server; and data
// compatibility with @lucia-auth/adapter-session-redis both ways.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { lucia as luciaV2 } from 'lucia2'
import { Lucia, TimeSpan } from 'lucia3'
import Redis from 'ioredis'
import { ioredis as theirRedisAdapter } from '@lucia-auth/adapter-session-redis'
import { redis, luciaAdapter } from 'ferrisession/lucia'
import defaultExport from 'ferrisession/lucia'
import support from './support/redis.js'
import { memoryUserAdapter } from './support/lucia-users.mjs'

const { startRedis, sleep } = support

describe('Lucia v2 session adapter', () => {
  let server, auth, ioClient
  const adapters = []

  before(async () => {
    server = await startRedis()
    ioClient = new Redis(server.url)
    auth = luciaV2({
      env: 'DEV',
      adapter: { user: memoryUserAdapter(), session: redis({ url: server.url }) },
      getSessionAttributes: (data) => ({ device: data.device }),
    })
    await auth.createUser({ userId: 'alice', key: null, attributes: {} })
    await auth.createUser({ userId: 'bob', key: null, attributes: {} })
  })
  after(async () => {
    ioClient.disconnect()
    await server.close()
  })

  it('is also the default export and the ioredis export', async () => {
    const mod = await import('ferrisession/lucia')
    assert.equal(defaultExport, redis)
    assert.equal(mod.ioredis, redis)
  })

  it('creates, validates, lists, updates and invalidates sessions', async () => {
    const s1 = await auth.createSession({ userId: 'alice', attributes: { device: 'phone' } })
    const s2 = await auth.createSession({ userId: 'alice', attributes: { device: 'laptop' } })
    await auth.createSession({ userId: 'bob', attributes: { device: 'tv' } })

    const raw = JSON.parse(server.cli('GET', `session:${s1.sessionId}`))
    assert.equal(raw.user_id, 'alice')
    assert.equal(raw.device, 'phone')
    const ttl = Number(server.cli('TTL', `session:${s1.sessionId}`))
    assert.ok(ttl > 0, `session key expires (ttl ${ttl})`)
    assert.deepEqual(server.cli('SMEMBERS', 'user_sessions:alice').split('\n').sort(), [s1.sessionId, s2.sessionId].sort())

    const valid = await auth.validateSession(s1.sessionId)
    assert.equal(valid.user.userId, 'alice')
    assert.equal(valid.device, 'phone')

    const list = await auth.getAllUserSessions('alice')
    assert.deepEqual(list.map((s) => s.device).sort(), ['laptop', 'phone'])

    const updated = await auth.updateSessionAttributes(s1.sessionId, { device: 'tablet' })
    assert.equal(updated.device, 'tablet')
    assert.equal((await auth.validateSession(s1.sessionId)).device, 'tablet')

    await auth.invalidateSession(s1.sessionId)
    await assert.rejects(auth.validateSession(s1.sessionId))
    assert.deepEqual(server.cli('SMEMBERS', 'user_sessions:alice').split('\n'), [s2.sessionId])

    await auth.invalidateAllUserSessions('alice')
    assert.deepEqual(await auth.getAllUserSessions('alice'), [])
    assert.equal(server.cli('EXISTS', 'user_sessions:alice'), '0')
    assert.equal((await auth.getAllUserSessions('bob')).length, 1)
  })

  it('prunes ids of expired sessions from the user set when read, and ignores unknown deletes', async () => {
    const adapter = redis({ url: server.url })()
    adapters.push(adapter)
    const now = Date.now()
    await adapter.setSession({ id: 'short', user_id: 'carol', active_expires: now + 500, idle_expires: now + 1000 })
    await adapter.setSession({ id: 'long', user_id: 'carol', active_expires: now + 60_000, idle_expires: now + 120_000 })
    server.cli('DEL', 'session:short')
    const sessions = await adapter.getSessionsByUserId('carol')
    assert.deepEqual(sessions.map((s) => s.id), ['long'])
    assert.deepEqual(server.cli('SMEMBERS', 'user_sessions:carol').split('\n'), ['long'])
    await adapter.deleteSession('never-existed')
  })

  it('reads sessions written by @lucia-auth/adapter-session-redis, and the reverse', async () => {
    const theirs = theirRedisAdapter(ioClient)()
    const ours = redis(ioClient)()
    const now = Date.now()
    const a = { id: 'from-them', user_id: 'dave', active_expires: now + 60_000, idle_expires: now + 120_000, device: 'x' }
    const b = { id: 'from-us', user_id: 'dave', active_expires: now + 60_000, idle_expires: now + 120_000, device: 'y' }
    await theirs.setSession(a)
    await ours.setSession(b)
    assert.deepEqual(await ours.getSession('from-them'), a)
    assert.deepEqual(await theirs.getSession('from-us'), b)
    assert.deepEqual((await ours.getSessionsByUserId('dave')).map((s) => s.id).sort(), ['from-them', 'from-us'])
    assert.deepEqual((await theirs.getSessionsByUserId('dave')).map((s) => s.id).sort(), ['from-them', 'from-us'])
    // The absolute expiry, so two readings cannot fall either side of a second boundary.
    assert.equal(server.cli('EXPIRETIME', 'session:from-them'), server.cli('EXPIRETIME', 'session:from-us'))
    assert.ok(Number(server.cli('EXPIRETIME', 'session:from-us')) > now / 1000)
    await ours.deleteSession('from-them')
    assert.equal(await theirs.getSession('from-them'), null)
    await theirs.deleteSessionsByUserId('dave')
    assert.equal(await ours.getSession('from-us'), null)
  })
})

describe('Lucia v3 adapter', () => {
  let server, adapter, lucia
  const users = new Map([['u1', { id: 'u1', attributes: { name: 'Ann' } }]])

  before(async () => {
    server = await startRedis()
    adapter = luciaAdapter({ url: server.url, getUser: async (id) => users.get(id) ?? null })
    lucia = new Lucia(adapter, {
      sessionExpiresIn: new TimeSpan(10, 's'),
      getSessionAttributes: (attrs) => ({ device: attrs.device }),
      getUserAttributes: (attrs) => ({ name: attrs.name }),
    })
  })
  after(async () => {
    adapter.close()
    await server.close()
  })

  it('creates, validates, lists, extends and invalidates sessions', async () => {
    const s1 = await lucia.createSession('u1', { device: 'phone' })
    const s2 = await lucia.createSession('u1', { device: 'laptop' })
    const stored = JSON.parse(server.cli('GET', `session:${s1.id}`))
    assert.deepEqual(Object.keys(stored).sort(), ['attributes', 'expiresAt', 'id', 'userId'])
    assert.equal(stored.expiresAt, s1.expiresAt.getTime())

    const { session, user } = await lucia.validateSession(s1.id)
    assert.equal(session.device, 'phone')
    assert.equal(user.name, 'Ann')

    const [dbSession] = await adapter.getSessionAndUser(s2.id)
    assert.equal(dbSession.expiresAt.getTime(), s2.expiresAt.getTime())
    assert.deepEqual(dbSession.attributes, { device: 'laptop' })

    assert.equal((await lucia.getUserSessions('u1')).length, 2)

    // Past half its life, validation extends the session through updateSessionExpiration.
    await sleep(5200)
    const renewed = await lucia.validateSession(s2.id)
    assert.equal(renewed.session.fresh, true)
    const after = JSON.parse(server.cli('GET', `session:${s2.id}`))
    assert.ok(after.expiresAt > s2.expiresAt.getTime())

    await lucia.invalidateSession(s1.id)
    assert.deepEqual(await adapter.getSessionAndUser(s1.id), [null, null])
    await lucia.invalidateUserSessions('u1')
    assert.deepEqual(await lucia.getUserSessions('u1'), [])
    assert.equal(server.cli('EXISTS', 'user_sessions:u1'), '0')
  })

  it('gives [null, null] for unknown ids, leaves out expired sessions, prunes what TTL did not', async () => {
    assert.deepEqual(await adapter.getSessionAndUser('nope'), [null, null])
    const expiresAt = new Date(Date.now() + 60_000)
    await adapter.setSession({ id: 'live', userId: 'u1', expiresAt, attributes: {} })
    await adapter.setSession({ id: 'gone', userId: 'u1', expiresAt, attributes: {} })
    await adapter.setSession({ id: 'stale', userId: 'u1', expiresAt, attributes: {} })
    server.cli('DEL', 'session:gone')
    // A session whose expiresAt has passed but whose key is still there is left out.
    server.cli('SET', 'session:stale', JSON.stringify({ id: 'stale', userId: 'u1', expiresAt: Date.now() - 1000, attributes: {} }))
    assert.deepEqual((await adapter.getUserSessions('u1')).map((s) => s.id), ['live'])
    server.cli('SADD', 'user_sessions:u2', 'ghost')
    await adapter.deleteExpiredSessions()
    assert.equal(server.cli('EXISTS', 'user_sessions:u2'), '0')
    assert.deepEqual(server.cli('SMEMBERS', 'user_sessions:u1').split('\n').sort(), ['live', 'stale'])
    await adapter.deleteSession('unknown-id')
    await adapter.deleteUserSessions('u1')
  })

  it('round-trips expiresAt exactly and keeps attributes', async () => {
    const expiresAt = new Date(Date.now() + 3_600_123)
    await adapter.setSession({ id: 'exact', userId: 'u1', expiresAt, attributes: { a: 1, nested: { b: [1, 2] } } })
    const [s] = await adapter.getSessionAndUser('exact')
    assert.equal(s.expiresAt.getTime(), expiresAt.getTime())
    assert.deepEqual(s.attributes, { a: 1, nested: { b: [1, 2] } })
    const ttl = Number(server.cli('TTL', 'session:exact'))
    assert.ok(ttl >= 3599 && ttl <= 3601, `ttl ${ttl}`)
  })
})
