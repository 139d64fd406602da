// Express + express-session on RedisStore, served on port 0 by the runtime's node:http and
// called with real HTTP requests: the session cookie set by the first comes back on the next.
import express from 'express'
import session from 'express-session'
import { main, RedisStore, assert, config } from './child.mjs'

await main(async (opened) => {
  const store = opened(new RedisStore({ url: config.url, prefix: 'web:' }))
  const app = express()
  app.use(session({ store, secret: 'runtime test secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }))
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits || 0) + 1
    res.json({ visits: req.session.visits, id: req.sessionID })
  })
  app.get('/logout', (req, res) => req.session.destroy((err) => (err ? res.status(500).end(String(err)) : res.json({ out: true }))))
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
  opened({ close: () => new Promise((resolve) => server.close(resolve)) })
  const base = `http://127.0.0.1:${server.address().port}`

  const first = await fetch(`${base}/visit`)
  assert.equal(first.status, 200)
  const setCookie = first.headers.get('set-cookie')
  assert.match(setCookie || '', /^connect\.sid=/, 'the first response sets the session cookie')
  const cookie = setCookie.split(';')[0]
  const one = await first.json()
  assert.equal(one.visits, 1)
  const second = await (await fetch(`${base}/visit`, { headers: { cookie } })).json()
  assert.deepEqual(second, { visits: 2, id: one.id }, 'the cookie brings the same session back')
  const third = await (await fetch(`${base}/visit`, { headers: { cookie } })).json()
  assert.equal(third.visits, 3)
  assert.equal((await store.get(one.id)).visits, 3)

  // A second visitor, kept for the parent to find in Redis; the first logs out.
  const other = await fetch(`${base}/visit`)
  const otherId = (await other.json()).id
  assert.deepEqual(await (await fetch(`${base}/logout`, { headers: { cookie } })).json(), { out: true })
  assert.equal(await store.get(one.id), null)
  assert.equal((await (await fetch(`${base}/visit`, { headers: { cookie } })).json()).visits, 1, 'a destroyed session starts over')
  return { driver: store.stats().driver, loggedOut: one.id, kept: otherId }
})
