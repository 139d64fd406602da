// @curveball/kernel + @curveball/session on ferrisession's store: log in, read back, log out
// through app.subRequest; absolute expiries and newSessionId.
import { Application } from '@curveball/kernel'
import session from '@curveball/session'
import { main, require, assert, config } from './child.mjs'

const { RedisStore } = require('../../lib/curveball.js')

await main(async (opened) => {
  const store = opened(new RedisStore({ clientOptions: { url: config.url } }))
  const app = new Application()
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
  const login = await app.subRequest('POST', '/login')
  const setCookie = login.headers.get('Set-Cookie')
  assert.match(setCookie, /^CB=/)
  const cookie = setCookie.split(';')[0]
  const id = decodeURIComponent(cookie.slice(3))
  assert.deepEqual(await store.get(id), { user: 'alice' })
  assert.deepEqual((await app.subRequest('GET', '/me', { Cookie: cookie })).body, { user: 'alice' })

  // A second login stays for the parent to check in Redis.
  const kept = decodeURIComponent((await app.subRequest('POST', '/login')).headers.get('Set-Cookie').split(';')[0].slice(3))
  await app.subRequest('POST', '/logout', { Cookie: cookie })
  assert.equal(await store.get(id), null)
  assert.deepEqual((await app.subRequest('GET', '/me', { Cookie: cookie })).body, { user: null })

  await store.set('x', { a: 1 }, Math.floor(Date.now() / 1000) + 100)
  assert.deepEqual(await store.get('x'), { a: 1 })
  await store.set('x', { a: 2 }, Math.floor(Date.now() / 1000) - 1)
  assert.equal(await store.get('x'), null, 'an expiry in the past deletes')
  const newId = await store.newSessionId()
  assert.equal(Buffer.from(newId, 'base64').length, 32)
  return { driver: store.stats().driver, loggedOut: id, kept }
})
