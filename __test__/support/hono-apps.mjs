// The Hono apps the Hono tests drive (under Node in hono.test.mjs, under Bun and Deno in
// runtimes/hono.mjs): @hono/session over a storage, hono-sessions over a store, and a cookie
// jar over app.request().
import { Hono } from 'hono'
import { useSession, useSessionStorage } from '@hono/session'
import { sessionMiddleware } from 'hono-sessions'

/** A cookie jar over `app.request()`. */
export function browser(app) {
  const jar = new Map()
  return {
    jar,
    async request(method, path) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
      const res = await app.request(path, { method, headers: cookie ? { cookie } : {} })
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';')
        const i = pair.indexOf('=')
        if (pair.slice(i + 1) === '' || /max-age=0/i.test(c)) jar.delete(pair.slice(0, i))
        else jar.set(pair.slice(0, i), pair.slice(i + 1))
      }
      return { status: res.status, body: await res.json() }
    },
  }
}

export function honoSessionApp(store) {
  const app = new Hono()
  app.use(useSessionStorage(store))
  app.use(useSession({ secret: 'a-test-secret-of-enough-length-for-hkdf', duration: { absolute: 3600 } }))
  app.post('/login', async (c) => {
    await c.var.session.update({ user: 'alice', n: 0 })
    return c.json({ id: c.var.session.id })
  })
  app.post('/count', async (c) => {
    await c.var.session.update((prev) => ({ ...prev, n: (prev?.n ?? 0) + 1 }))
    return c.json(c.var.session.data)
  })
  app.get('/me', async (c) => c.json((await c.var.session.get()) ?? null))
  app.post('/logout', async (c) => {
    await c.var.session.get()
    c.var.session.delete()
    return c.json({ ok: true })
  })
  return app
}

export function honoSessionsApp(store, expireAfterSeconds, user = 'alice') {
  const app = new Hono()
  app.use('*', sessionMiddleware({ store, expireAfterSeconds, sessionCookieName: 'sess', encryptionKey: 'a-password-of-at-least-32-characters' }))
  app.post('/login', (c) => {
    c.get('session').set('user', user)
    return c.json({ ok: true })
  })
  app.post('/count', (c) => {
    const s = c.get('session')
    s.set('n', (s.get('n') ?? 0) + 1)
    return c.json({ n: s.get('n') })
  })
  app.get('/me', (c) => c.json({ user: c.get('session').get('user') ?? null, n: c.get('session').get('n') ?? null }))
  app.post('/logout', (c) => {
    c.get('session').deleteSession()
    return c.json({ ok: true })
  })
  return app
}
