// Hono apps through app.request(): @hono/session over storage(), hono-sessions over RedisStore.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { storage, RedisStore } from 'ferrisession/hono'
import support from './support/redis.js'
import { browser, honoSessionApp, honoSessionsApp } from './support/hono-apps.mjs'

const { startRedis, until } = support

const keysUnder = (server, prefix) => server.cli('--scan', '--pattern', `${prefix}*`).split('\n').filter(Boolean)

describe('@hono/session over storage()', () => {
  let server, store

  before(async () => {
    server = await startRedis()
    store = storage({ url: server.url, ttl: 3600 })
  })
  after(async () => {
    store.close()
    await server.close()
  })

  it('logs in, counts and logs out; the session is JSON at hono-session:<id> with the ttl', async () => {
    const app = honoSessionApp(store)
    const b = browser(app)
    const { body } = await b.request('POST', '/login')
    // @hono/session does not await set: the next request is ordered after it anyway.
    assert.deepEqual((await b.request('GET', '/me')).body, { user: 'alice', n: 0 })
    assert.deepEqual(JSON.parse(server.cli('GET', `hono-session:${body.id}`)), { user: 'alice', n: 0 })
    const ttl = Number(server.cli('TTL', `hono-session:${body.id}`))
    assert.ok(ttl > 3500 && ttl <= 3600, `ttl ${ttl}`)
    assert.deepEqual((await b.request('POST', '/count')).body, { user: 'alice', n: 1 })
    assert.deepEqual((await b.request('POST', '/count')).body, { user: 'alice', n: 2 })
    await b.request('POST', '/logout')
    await until(() => server.cli('EXISTS', `hono-session:${body.id}`) === '0', 2000, 'the delete lands')
    assert.equal((await b.request('GET', '/me')).body, null)
  })

  it('reports a failed un-awaited write to onError instead of an unhandled rejection', async () => {
    const errors = []
    const closed = storage({ url: server.url, onError: (err) => errors.push(err.code) })
    closed.close()
    const app = honoSessionApp(closed)
    const res = await browser(app).request('POST', '/login')
    assert.equal(res.status, 200)
    await until(() => errors.length > 0, 2000, 'onError hears the failure')
    assert.deepEqual(errors, ['ERR_CLOSED'])
  })

  it('serves hot reads from the near cache and still sees another process-like store write', async () => {
    const cached = storage({ url: server.url, cache: true })
    const other = storage({ url: server.url })
    try {
      await other.set('hot', { v: 1 })
      assert.deepEqual(await cached.get('hot'), { v: 1 })
      const hitsBefore = cached.stats().cache.hits
      for (let i = 0; i < 20; i++) assert.deepEqual(await cached.get('hot'), { v: 1 })
      assert.ok(cached.stats().cache.hits >= hitsBefore + 20)
      await other.set('hot', { v: 2 })
      await until(async () => (await cached.get('hot')).v === 2, 2000, 'the invalidation arrives')
    } finally {
      cached.close()
      other.close()
    }
  })
})

describe('hono-sessions over RedisStore', () => {
  let server, store

  before(async () => {
    server = await startRedis()
    store = new RedisStore({ url: server.url })
  })
  after(async () => {
    store.close()
    await server.close()
  })

  it('logs in, counts and logs out, with a Redis TTL that follows the session _expire', async () => {
    server.cli('FLUSHDB')
    const app = honoSessionsApp(store, 900)
    const b = browser(app)
    await b.request('POST', '/login')
    const [key] = keysUnder(server, 'hono-sessions:')
    assert.ok(key, 'the session is stored under hono-sessions:')
    const stored = JSON.parse(server.cli('GET', key))
    assert.equal(stored._data.user.value, 'alice')
    const ttl = Number(server.cli('TTL', key))
    const expected = Math.ceil((Date.parse(stored._expire) - Date.now()) / 1000)
    assert.ok(Math.abs(ttl - expected) <= 2 && ttl <= 901, `ttl ${ttl}, _expire says ${expected}`)
    assert.deepEqual((await b.request('POST', '/count')).body, { n: 1 })
    assert.deepEqual((await b.request('GET', '/me')).body, { user: 'alice', n: 1 })
    await b.request('POST', '/logout')
    assert.equal(server.cli('EXISTS', key), '0')
  })

  it('gives a session with no expiry the ttl option, and deletes one whose _expire has passed', async () => {
    const short = new RedisStore({ url: server.url, ttl: 60 })
    try {
      await short.persistSessionData('no-expiry', { _data: {}, _expire: null, _delete: false, _accessed: null })
      assert.equal(server.cli('TTL', 'hono-sessions:no-expiry'), '60')
      await short.persistSessionData('past', { _data: {}, _expire: new Date(Date.now() - 1000).toISOString(), _delete: false, _accessed: null })
      assert.equal(server.cli('EXISTS', 'hono-sessions:past'), '0')
      assert.equal(await short.getSessionById('past'), null)
      await assert.rejects(short.persistSessionData('bad', { _expire: 'not a date' }), { code: 'ERR_BAD_ARGUMENT' })
    } finally {
      short.close()
    }
  })

  it('starts a new session when the stored one has expired', async () => {
    server.cli('FLUSHDB')
    const app = honoSessionsApp(store, 900)
    const b = browser(app)
    await b.request('POST', '/login')
    const [key] = keysUnder(server, 'hono-sessions:')
    const stored = JSON.parse(server.cli('GET', key))
    stored._expire = new Date(Date.now() - 1000).toISOString()
    server.cli('SET', key, JSON.stringify(stored))
    assert.deepEqual((await b.request('GET', '/me')).body, { user: null, n: null })
    assert.equal(server.cli('EXISTS', key), '0')
  })
})
