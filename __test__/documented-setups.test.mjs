// The setups the replaced packages document, taken literally: Curveball's host/port
// clientOptions and node_redis v3 clients, client key prefixes (ioredis keyPrefix, node_redis v3
// prefix), lucia-auth's original two-client Redis adapter, and clients we cannot read.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import Redis from 'ioredis'
import { createClient } from 'redis'
import { RedisStore as ConnectRedis8 } from 'connect-redis-8'
import { RedisStore } from 'ferrisession'
import CurveballStore from 'ferrisession/curveball'
import { redis } from 'ferrisession/lucia'
import luciaAuth0 from 'lucia-auth-0'
import luciaAuth1 from 'lucia-auth-1'
import support from './support/redis.js'
import { lucia1UserAdapter } from './support/lucia-auth-users.mjs'

const require = createRequire(import.meta.url)
const redis3 = require('redis3')
const { startRedis } = support

/** express-session's shape: `cookie.expires` is a Date. */
function expressSession(user) {
  return {
    cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000), secure: false, httpOnly: true, path: '/' },
    user,
    visits: 3,
  }
}

const quit3 = (client) => new Promise((resolve) => client.quit(() => resolve()))

describe('Curveball as its documentation configures it', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.close()
  })

  it('clientOptions {host, port} reach the named server', async () => {
    const store = new CurveballStore({ prefix: 'mysess', clientOptions: { host: '127.0.0.1', port: server.port } })
    try {
      await store.set('abc', { user: 'ada' }, Math.floor(Date.now() / 1000) + 600)
      assert.equal(server.cli('GET', 'mysess-abc'), '{"user":"ada"}')
      assert.deepEqual(await store.get('abc'), { user: 'ada' })
    } finally {
      store.close()
    }
  })

  it('a node_redis v3 RedisClient: its server, db and prefix', async () => {
    const client = redis3.createClient({ host: '127.0.0.1', port: server.port, db: 2, prefix: 'v3:' })
    client.on('error', () => {})
    const store = new CurveballStore({ prefix: 'mysess', client })
    try {
      await store.set('id1', { user: 'bob' }, Math.floor(Date.now() / 1000) + 600)
      assert.equal(server.cli('-n', '2', 'GET', 'v3:mysess-id1'), '{"user":"bob"}')
      assert.equal(server.cli('-n', '0', 'EXISTS', 'v3:mysess-id1'), '0')
      // The v3 client itself reads what we wrote, through its own prefix and db.
      const seen = await new Promise((resolve, reject) => client.get('mysess-id1', (err, v) => (err ? reject(err) : resolve(v))))
      assert.equal(seen, '{"user":"bob"}')
      await store.delete('id1')
      assert.equal(server.cli('-n', '2', 'EXISTS', 'v3:mysess-id1'), '0')
    } finally {
      store.close()
      await quit3(client)
    }
  })

  it('a node_redis v3 client created from a url', async () => {
    const client = redis3.createClient(`redis://127.0.0.1:${server.port}/3`)
    client.on('error', () => {})
    const store = new CurveballStore({ prefix: 'u', client })
    try {
      await store.set('x', { n: 1 }, Math.floor(Date.now() / 1000) + 600)
      assert.equal(server.cli('-n', '3', 'GET', 'u-x'), '{"n":1}')
    } finally {
      store.close()
      await quit3(client)
    }
  })
})

describe('client key prefixes with RedisStore', () => {
  let server, client, ours, theirs
  before(async () => {
    server = await startRedis()
    client = new Redis({ host: '127.0.0.1', port: server.port, keyPrefix: 'app:' })
    await new Promise((resolve, reject) => client.once('ready', resolve).once('error', reject))
    ours = new RedisStore({ client })
    theirs = new ConnectRedis8({ client })
  })
  after(async () => {
    ours.close()
    await client.quit()
    await server.close()
  })

  it('writes app:sess:<sid>, byte-identical to connect-redis 8 with the same ioredis client', async () => {
    const sess = expressSession('ada')
    await ours.set('mine', sess)
    await new Promise((resolve, reject) => theirs.set('theirs', sess, (err) => (err ? reject(err) : resolve())))
    const mine = server.cli('GET', 'app:sess:mine')
    assert.ok(mine.length > 0, 'our key is app:sess:mine')
    assert.equal(mine, server.cli('GET', 'app:sess:theirs'))
    assert.equal(server.cli('EXISTS', 'sess:mine'), '0')
    const ttl = Number(server.cli('TTL', 'app:sess:mine'))
    assert.ok(ttl > 3590 && ttl <= 3600, `ttl ${ttl}`)
  })

  it('each reads the sessions the other wrote', async () => {
    const fromTheirs = await ours.get('theirs')
    assert.equal(fromTheirs.user, 'ada')
    const fromOurs = await new Promise((resolve, reject) => theirs.get('mine', (err, v) => (err ? reject(err) : resolve(v))))
    assert.equal(fromOurs.user, 'ada')
    assert.equal(fromOurs.visits, 3)
  })

  it('ids, length and clear stay inside the namespace', async () => {
    server.cli('SET', 'sess:outside', '{}')
    server.cli('SET', 'other:sess:x', '{}')
    assert.deepEqual((await ours.ids()).sort(), ['mine', 'theirs'])
    assert.equal(await ours.length(), 2)
    const all = await ours.all()
    assert.deepEqual(all.map((s) => s.id).sort(), ['mine', 'theirs'])
    await ours.clear()
    assert.equal(server.cli('EXISTS', 'app:sess:mine', 'app:sess:theirs'), '0')
    assert.equal(server.cli('EXISTS', 'sess:outside', 'other:sess:x'), '2')
  })

  it('a key prefix with glob characters is matched literally', async () => {
    const globby = new Redis({ host: '127.0.0.1', port: server.port, keyPrefix: 'a*[1]:', lazyConnect: true })
    const store = new RedisStore({ client: globby })
    try {
      server.cli('SET', 'ab[1]:sess:decoy', '{}')
      await store.set('s1', expressSession('x'))
      assert.deepEqual(await store.ids(), ['s1'])
      assert.ok(server.cli('GET', 'a*[1]:sess:s1').includes('"user":"x"'))
    } finally {
      store.close()
      globby.disconnect()
    }
  })
})

// lucia-auth 0.11 and 1.8 with the original adapter: sessions in one database, user LISTs in
// another, as the original documented.
for (const [version, lucia] of [
  ['0.11', luciaAuth0],
  ['1.8', luciaAuth1],
]) {
  describe(`lucia-auth ${version} with redis({session, userSessions})`, () => {
    let server, sessionClient, userClient, adapter, auth
    const errors = []
    before(async () => {
      server = await startRedis()
      sessionClient = createClient({ url: `${server.url}/4` })
      userClient = createClient({ url: server.url, database: 5 })
      const session = redis({ session: sessionClient, userSessions: userClient }, (err) => errors.push(err))
      adapter = session()
      auth = lucia({ adapter: { user: lucia1UserAdapter(), session }, env: 'DEV' })
    })
    after(async () => {
      adapter.close()
      await server.close()
    })

    it('creates, validates, lists and invalidates sessions', async () => {
      const user = await auth.createUser({ primaryKey: { providerId: 'email', providerUserId: 'ada@example.com', password: null }, attributes: {} })
      const a = await auth.createSession(user.userId)
      const b = await auth.createSession(user.userId)

      const raw = JSON.parse(server.cli('-n', '4', 'GET', a.sessionId))
      assert.deepEqual(Object.keys(raw).sort(), ['active_expires', 'id', 'idle_expires', 'user_id'])
      assert.equal(raw.user_id, user.userId)
      // Expires at idle_expires, not decades from now.
      const ttl = Number(server.cli('-n', '4', 'TTL', a.sessionId))
      const expected = Math.round((raw.idle_expires - Date.now()) / 1000)
      assert.ok(Math.abs(ttl - expected) <= 2, `ttl ${ttl}, expected about ${expected}`)
      assert.deepEqual(server.cli('-n', '5', 'LRANGE', user.userId, '0', '-1').split('\n').sort(), [a.sessionId, b.sessionId].sort())
      assert.equal(server.cli('-n', '4', 'EXISTS', user.userId), '0')

      const validated = await auth.validateSession(a.sessionId)
      assert.equal(validated.sessionId, a.sessionId)
      assert.equal(validated.state, 'active')
      assert.deepEqual((await auth.getAllUserSessions(user.userId)).map((s) => s.sessionId).sort(), [a.sessionId, b.sessionId].sort())

      await auth.invalidateSession(a.sessionId)
      assert.equal(server.cli('-n', '4', 'EXISTS', a.sessionId), '0')
      assert.equal(server.cli('-n', '5', 'LRANGE', user.userId, '0', '-1'), b.sessionId)
      await assert.rejects(auth.validateSession(a.sessionId), /AUTH_INVALID_SESSION_ID/)

      await auth.createSession(user.userId)
      await auth.invalidateAllUserSessions(user.userId)
      assert.equal(server.cli('-n', '4', 'DBSIZE'), '0')
      assert.equal(server.cli('-n', '5', 'EXISTS', user.userId), '0')
      assert.deepEqual(errors, [])
    })

    it('reads sessions that the original layout holds', async () => {
      const user = await auth.createUser({ primaryKey: { providerId: 'email', providerUserId: `old-${version}@example.com`, password: null }, attributes: {} })
      const id = 'o'.repeat(40)
      const now = Date.now()
      const stored = JSON.stringify({ id, user_id: user.userId, active_expires: now + 3_600_000, idle_expires: now + 7_200_000 })
      server.cli('-n', '4', 'SET', id, stored)
      server.cli('-n', '5', 'LPUSH', user.userId, id)
      const validated = await auth.validateSession(id)
      assert.equal(validated.userId, user.userId)
      assert.deepEqual((await auth.getAllUserSessions(user.userId)).map((s) => s.sessionId), [id])
    })
  })
}

describe('the original adapter over our core', () => {
  let server, adapter
  const errors = []
  before(async () => {
    server = await startRedis()
    adapter = redis({ session: { url: `${server.url}/1` }, userSessions: { url: `${server.url}/2` } }, (err) => errors.push(err))()
  })
  after(async () => {
    adapter.close()
    await server.close()
  })

  it('accepts bigint expiries and writes them as numbers', async () => {
    const idle = BigInt(Date.now() + 60_000)
    await adapter.setSession({ id: 'big', user_id: 'u1', active_expires: idle - 1000n, idle_expires: idle })
    assert.equal(server.cli('-n', '1', 'GET', 'big'), JSON.stringify({ id: 'big', user_id: 'u1', active_expires: Number(idle) - 1000, idle_expires: Number(idle) }))
    const ttl = Number(server.cli('-n', '1', 'TTL', 'big'))
    assert.ok(ttl > 55 && ttl <= 61, `ttl ${ttl}`) // EXAT rounds the millisecond expiry up to the second
  })

  it('accepts the older `expires` field', async () => {
    const s = { id: 'old', user_id: 'u1', expires: Date.now() + 10_000, idle_expires: undefined }
    delete s.idle_expires
    await adapter.setSession(s)
    const ttl = Number(server.cli('-n', '1', 'TTL', 'old'))
    assert.ok(ttl > 5 && ttl <= 11, `ttl ${ttl}`)
  })

  it('deleteSession takes many ids and removes them from the LIST', async () => {
    const idle = Date.now() + 60_000
    for (const id of ['d1', 'd2', 'd3']) await adapter.setSession({ id, user_id: 'u2', active_expires: idle, idle_expires: idle })
    await adapter.deleteSession('d1', 'd2')
    assert.equal(server.cli('-n', '2', 'LRANGE', 'u2', '0', '-1'), 'd3')
    assert.equal(server.cli('-n', '1', 'EXISTS', 'd1', 'd2', 'd3'), '1')
    await adapter.deleteSession(['d3', 'never-stored'])
    assert.equal(server.cli('-n', '2', 'EXISTS', 'u2'), '0')
  })

  it('prunes ids whose session has expired as the LIST is read', async () => {
    const idle = Date.now() + 60_000
    await adapter.setSession({ id: 'live', user_id: 'u3', active_expires: idle, idle_expires: idle })
    server.cli('-n', '2', 'LPUSH', 'u3', 'expired')
    const listed = await adapter.getSessionsByUserId('u3')
    assert.deepEqual(listed.map((s) => s.id), ['live'])
    assert.equal(server.cli('-n', '2', 'LRANGE', 'u3', '0', '-1'), 'live')
  })

  it('calls handleError before rethrowing', async () => {
    server.cli('-n', '2', 'SET', 'not-a-list', 'x')
    const before = errors.length
    await assert.rejects(adapter.getSessionsByUserId('not-a-list'), (err) => err.code === 'ERR_WRONG_TYPE')
    assert.equal(errors.length, before + 1)
    assert.equal(errors[before].code, 'ERR_WRONG_TYPE')
  })

  it('refuses a session without an id', async () => {
    await assert.rejects(adapter.setSession({ user_id: 'u', idle_expires: Date.now() }), (err) => err.code === 'ERR_BAD_ARGUMENT')
  })
})

describe('a client or options object whose server we cannot read', () => {
  const cases = [
    ['RedisStore, an options object naming `hostname`', () => new RedisStore({ client: { options: { hostname: 'cache.internal' }, connect() {} } })],
    ['RedisStore, a port that is not a number', () => new RedisStore({ client: { options: { host: 'h', port: 'six' }, connect() {} } })],
    ['Curveball clientOptions with `server`', () => new CurveballStore({ clientOptions: { server: 'cache.internal:7000' } })],
    ['Curveball clientOptions with a host of the wrong type', () => new CurveballStore({ clientOptions: { host: ['a', 'b'] } })],
    ['Curveball clientOptions.socket as a string', () => new CurveballStore({ clientOptions: { socket: 'cache:6379' } })],
    ['Lucia redis() with an object that is no client', () => redis({ address: 'cache.internal' })()],
    ['RedisStore with an object that has no options', () => new RedisStore({ client: {} })],
    ['RedisStore given node-redis socket options as its own', () => new RedisStore({ socket: { host: 'cache.internal', port: 7000 } })],
  ]
  for (const [name, make] of cases) {
    it(`${name}: ERR_BAD_ARGUMENT at construction, no store`, () => {
      let made
      assert.throws(
        () => {
          made = make()
        },
        (err) => err.code === 'ERR_BAD_ARGUMENT' && err instanceof TypeError,
      )
      assert.equal(made, undefined)
    })
  }

  it('the error says what was missing', () => {
    assert.throws(() => new CurveballStore({ clientOptions: { hostname: 'x' } }), /clientOptions names a server in a form we cannot read \(hostname\)/)
    assert.throws(() => new CurveballStore({ clientOptions: { port: 0 } }), /clientOptions\.port must be a port number/)
  })
})
