// koa + koa-session 7 end to end on our store, and the same keys, values and TTLs as koa-redis 4
// over the same server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import Koa from 'koa'
import session from 'koa-session'
import koaRedis from 'koa-redis'
import Redis from 'ioredis'
import redisStore, { RedisStore } from 'ferrisession/koa'
import support from './support/redis.js'

const { startRedis, startCluster } = support

function koaApp(store, opts = {}) {
  const app = new Koa()
  app.keys = ['test-key']
  app.use(session({ store, ...opts }, app))
  app.use((ctx) => {
    if (ctx.path === '/login') {
      ctx.session.user = 'alice'
      ctx.body = { ok: true }
    } else if (ctx.path === '/count') {
      ctx.session.n = (ctx.session.n || 0) + 1
      ctx.body = { n: ctx.session.n }
    } else if (ctx.path === '/logout') {
      ctx.session = null
      ctx.body = { ok: true }
    } else {
      ctx.body = { user: ctx.session.user ?? null, n: ctx.session.n ?? null }
    }
  })
  return app
}

/** Serves `app` on a free loopback port; `request(path)` carries the cookies across calls. */
async function serve(app) {
  const server = http.createServer(app.callback())
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}`
  const client = (jar = new Map()) => ({
    jar,
    async request(path) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
      const res = await fetch(base + path, { headers: cookie ? { cookie } : {} })
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';')
        const i = pair.indexOf('=')
        const value = pair.slice(i + 1)
        if (value === '') jar.delete(pair.slice(0, i))
        else jar.set(pair.slice(0, i), value)
      }
      return { status: res.status, body: await res.json() }
    },
    key: () => jar.get('koa.sess'),
  })
  return { client, close: () => new Promise((resolve) => server.close(resolve)) }
}

describe('koa-session 7 store', () => {
  let server, store, web

  before(async () => {
    server = await startRedis()
    store = redisStore({ url: server.url })
    web = await serve(koaApp(store))
  })
  after(async () => {
    await web.close()
    store.close()
    await server.close()
  })

  it('is koa-redis-shaped: a factory, with the class as a named export', () => {
    assert.ok(store instanceof RedisStore)
    assert.equal(typeof store.get, 'function')
    assert.equal(store.get.constructor.name, 'Function', 'get is a plain method returning a promise, not a generator')
  })

  it('logs in, keeps the session across requests and logs out', async () => {
    const browser = web.client()
    assert.deepEqual((await browser.request('/login')).body, { ok: true })
    const key = browser.key()
    assert.ok(key, 'koa-session set its cookie')
    const stored = JSON.parse(server.cli('GET', key))
    assert.equal(stored.user, 'alice')
    assert.equal(stored._maxAge, 86400000)
    // koa-session asks for maxAge + 10 s, so the entry outlives the cookie.
    const ttl = Number(server.cli('TTL', key))
    assert.ok(ttl > 86400 && ttl <= 86410, `ttl ${ttl}`)

    assert.deepEqual((await browser.request('/count')).body, { n: 1 })
    assert.deepEqual((await browser.request('/count')).body, { n: 2 })
    assert.deepEqual((await browser.request('/')).body, { user: 'alice', n: 2 })

    await browser.request('/logout')
    assert.equal(server.cli('EXISTS', key), '0')
    assert.deepEqual((await browser.request('/')).body, { user: null, n: null })
  })

  it('bounds a browser-session cookie (maxAge "session") by sessionTtl', async () => {
    const short = redisStore({ url: server.url, sessionTtl: 120 })
    const app = await serve(koaApp(short, { maxAge: 'session' }))
    try {
      const browser = app.client()
      await browser.request('/login')
      const ttl = Number(server.cli('TTL', browser.key()))
      assert.ok(ttl > 100 && ttl <= 120, `ttl ${ttl}`)
      assert.deepEqual((await browser.request('/')).body, { user: 'alice', n: null })
    } finally {
      await app.close()
      short.close()
    }
  })

  it('rejects a bad key with a coded error, and a value that does not parse with ERR_BAD_DATA', async () => {
    await assert.rejects(store.get(''), { code: 'ERR_BAD_ARGUMENT' })
    server.cli('SET', 'broken', '{not json')
    await assert.rejects(store.get('broken'), { code: 'ERR_BAD_DATA' })
  })
})

describe('koa-redis 4 compatibility', () => {
  let server, ours, client, theirs

  before(async () => {
    server = await startRedis()
    ours = redisStore({ url: server.url })
    client = new Redis(server.url)
    theirs = koaRedis({ client })
  })
  after(async () => {
    ours.close()
    await theirs.quit()
    await server.close()
  })

  it('writes the same key, bytes and TTL as koa-redis for the same session', async () => {
    const sess = { user: 'bob', cart: [1, 2, { sku: 'é' }], _expire: Date.now() + 60000, _maxAge: 60000 }
    await theirs.set('theirs', sess, 70000)
    await ours.set('ours', sess, 70000)
    assert.equal(server.cli('GET', 'ours'), server.cli('GET', 'theirs'))
    assert.ok(Math.abs(Number(server.cli('TTL', 'ours')) - Number(server.cli('TTL', 'theirs'))) <= 1)
    assert.equal(server.cli('TTL', 'ours'), '70')
  })

  it('reads what koa-redis wrote and the other way round', async () => {
    await theirs.set('from-theirs', { a: 1 }, 30000)
    assert.deepEqual(await ours.get('from-theirs'), { a: 1 })
    await ours.set('from-ours', { b: 2 }, 30000)
    assert.deepEqual(await theirs.get('from-ours'), { b: 2 })
    await ours.destroy('from-theirs')
    assert.equal(await theirs.get('from-theirs'), null)
  })

  it('keeps users logged in when an app switches from koa-redis to ours', async () => {
    const before = await serve(koaApp(theirs))
    const browser = before.client()
    await browser.request('/login')
    await browser.request('/count')
    await before.close()
    const after = await serve(koaApp(ours))
    try {
      const same = after.client(browser.jar)
      assert.deepEqual((await same.request('/count')).body, { n: 2 })
      assert.deepEqual((await same.request('/')).body, { user: 'alice', n: 2 })
    } finally {
      await after.close()
    }
  })
})

describe('koa-session on a cluster', () => {
  let cluster, store, web

  before(async () => {
    cluster = await startCluster()
    store = redisStore({ isRedisCluster: true, nodes: cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) })
    web = await serve(koaApp(store))
  })
  after(async () => {
    await web.close()
    store.close()
    await cluster.close()
  })

  it('runs the same login flow, sessions spread over the shards', async () => {
    const keys = []
    for (let i = 0; i < 6; i++) {
      const browser = web.client()
      await browser.request('/login')
      assert.deepEqual((await browser.request('/count')).body, { n: 1 })
      keys.push(browser.key())
    }
    const owners = new Set(keys.map((k) => cluster.primaryFor(k).port))
    assert.ok(owners.size > 1, 'six random keys land on more than one primary')
  })
})
