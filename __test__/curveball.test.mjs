// @curveball/kernel + @curveball/session on our store, and data compatibility with
// @curveball/session-redis both ways.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Application } from '@curveball/kernel'
import session from '@curveball/session'
import TheirStore from '@curveball/session-redis'
import { RedisStore } from 'ferrisession/curveball'
import DefaultStore from 'ferrisession/curveball'
import support from './support/redis.js'

const { startRedis } = support

describe('Curveball session store', () => {
  let server, store, app

  before(async () => {
    server = await startRedis()
    store = new RedisStore({ clientOptions: { url: server.url } })
    app = new Application()
    app.use(session({ store, expiry: 600 }))
    app.use((ctx) => {
      if (ctx.path === '/login') {
        ctx.session.user = 'alice'
        ctx.response.body = 'ok'
      } else if (ctx.path === '/logout') {
        ctx.sessionId = null
        ctx.response.body = 'bye'
      } else {
        ctx.response.body = { user: ctx.session.user ?? null }
      }
    })
  })
  after(async () => {
    store.close()
    await server.close()
  })

  it('is the named and the default export', () => {
    assert.equal(DefaultStore, RedisStore)
  })

  it('logs in, reads back and logs out through app.subRequest', async () => {
    const login = await app.subRequest('POST', '/login')
    const setCookie = login.headers.get('Set-Cookie')
    assert.match(setCookie, /^CB=/)
    const cookie = setCookie.split(';')[0]
    const id = decodeURIComponent(cookie.slice(3))
    assert.deepEqual(JSON.parse(server.cli('GET', `session-${id}`)), { user: 'alice' })
    const ttl = Number(server.cli('TTL', `session-${id}`))
    assert.ok(ttl > 590 && ttl <= 600, `ttl ${ttl}`)

    const me = await app.subRequest('GET', '/me', { Cookie: cookie })
    assert.deepEqual(me.body, { user: 'alice' })

    await app.subRequest('POST', '/logout', { Cookie: cookie })
    assert.equal(server.cli('EXISTS', `session-${id}`), '0')
    const after = await app.subRequest('GET', '/me', { Cookie: cookie })
    assert.deepEqual(after.body, { user: null })
  })

  it('deletes on a past expiry, gives null when missing, and makes 32-byte ids', async () => {
    await store.set('x', { a: 1 }, Math.floor(Date.now() / 1000) + 100)
    await store.set('x', { a: 2 }, Math.floor(Date.now() / 1000) - 1)
    assert.equal(await store.get('x'), null)
    const id = await store.newSessionId()
    assert.equal(Buffer.from(id, 'base64').length, 32)
    assert.notEqual(id, await store.newSessionId())
  })

  it('shares data with @curveball/session-redis both ways', async () => {
    const theirs = new TheirStore({ clientOptions: { url: server.url } })
    try {
      const expire = Math.floor(Date.now() / 1000) + 300
      await theirs.set('t1', { from: 'them' }, expire)
      await store.set('o1', { from: 'us' }, expire)
      assert.deepEqual(await store.get('t1'), { from: 'them' })
      assert.deepEqual(await theirs.get('o1'), { from: 'us' })
      assert.equal(server.cli('GET', 'session-o1'), JSON.stringify({ from: 'us' }))
      await store.delete('t1')
      assert.equal(await theirs.get('t1'), null)
    } finally {
      await theirs.client.quit()
    }
  })
})
