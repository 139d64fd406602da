// Hono through app.request(): @hono/session over storage() and hono-sessions over RedisStore,
// each logging in, counting and logging out.
import { Hono } from 'hono'
import { useSession, useSessionStorage } from '@hono/session'
import { sessionMiddleware } from 'hono-sessions'
import { main, require, assert, config, sleep } from './child.mjs'

const { storage, RedisStore } = require('../../lib/hono.js')

/** A cookie jar over `app.request()`. */
function browser(app) {
  const jar = new Map()
  return async (method, path) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await app.request(path, { method, headers: cookie ? { cookie } : {} })
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';')
      const i = pair.indexOf('=')
      if (pair.slice(i + 1) === '' || /max-age=0/i.test(c)) jar.delete(pair.slice(0, i))
      else jar.set(pair.slice(0, i), pair.slice(i + 1))
    }
    return res.json()
  }
}

await main(async (opened) => {
  // @hono/session; the secret is passed so that Deno needs no AUTH_SECRET from the environment.
  const kept = opened(storage({ url: config.url, ttl: 600 }))
  const one = new Hono()
  one.use(useSessionStorage(kept))
  one.use(useSession({ secret: 'a-test-secret-of-enough-length-for-hkdf', duration: { absolute: 600 } }))
  one.post('/login', async (c) => {
    await c.var.session.update({ user: 'alice', n: 0 })
    return c.json({ id: c.var.session.id })
  })
  one.post('/count', async (c) => {
    await c.var.session.update((prev) => ({ ...prev, n: (prev?.n ?? 0) + 1 }))
    return c.json(c.var.session.data)
  })
  one.get('/me', async (c) => c.json((await c.var.session.get()) ?? null))
  one.post('/logout', async (c) => {
    await c.var.session.get()
    c.var.session.delete()
    return c.json({ ok: true })
  })
  const a = browser(one)
  const { id: loggedOut } = await a('POST', '/login')
  assert.deepEqual(await a('POST', '/count'), { user: 'alice', n: 1 })
  assert.deepEqual(await a('GET', '/me'), { user: 'alice', n: 1 })
  await a('POST', '/logout')
  for (let i = 0; i < 100 && (await kept.get(loggedOut)) !== null; i++) await sleep(10)
  assert.equal(await a('GET', '/me'), null)
  const b = browser(one)
  const { id: honoSession } = await b('POST', '/login')
  await b('POST', '/count')

  // hono-sessions
  const store = opened(new RedisStore({ url: config.url }))
  const two = new Hono()
  two.use('*', sessionMiddleware({ store, expireAfterSeconds: 900, sessionCookieName: 'sess', encryptionKey: 'a-password-of-at-least-32-characters' }))
  two.post('/login', (c) => {
    c.get('session').set('user', 'bob')
    return c.json({ ok: true })
  })
  two.post('/count', (c) => {
    const s = c.get('session')
    s.set('n', (s.get('n') ?? 0) + 1)
    return c.json({ n: s.get('n') })
  })
  two.get('/me', (c) => c.json({ user: c.get('session').get('user') ?? null, n: c.get('session').get('n') ?? null }))
  const c = browser(two)
  await c('POST', '/login')
  assert.deepEqual(await c('POST', '/count'), { n: 1 })
  assert.deepEqual(await c('GET', '/me'), { user: 'bob', n: 1 })
  return { driver: store.stats().driver, loggedOut, honoSession }
})
