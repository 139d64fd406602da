// Hono through app.request(): @hono/session over storage() and hono-sessions over RedisStore,
// each logging in, counting and logging out.
import { main, require, assert, config, sleep } from './child.mjs'
import { browser, honoSessionApp, honoSessionsApp } from '../support/hono-apps.mjs'

const { storage, RedisStore } = require('../../lib/hono.js')

await main(async (opened) => {
  // @hono/session (the app passes its secret, so Deno needs no AUTH_SECRET from the environment).
  const kept = opened(storage({ url: config.url, ttl: 600 }))
  const one = honoSessionApp(kept)
  const a = browser(one)
  const { id: loggedOut } = (await a.request('POST', '/login')).body
  assert.deepEqual((await a.request('POST', '/count')).body, { user: 'alice', n: 1 })
  assert.deepEqual((await a.request('GET', '/me')).body, { user: 'alice', n: 1 })
  await a.request('POST', '/logout')
  for (let i = 0; i < 100 && (await kept.get(loggedOut)) !== null; i++) await sleep(10)
  assert.equal((await a.request('GET', '/me')).body, null)
  const b = browser(one)
  const { id: honoSession } = (await b.request('POST', '/login')).body
  await b.request('POST', '/count')

  // hono-sessions
  const store = opened(new RedisStore({ url: config.url }))
  const c = browser(honoSessionsApp(store, 900, 'bob'))
  await c.request('POST', '/login')
  assert.deepEqual((await c.request('POST', '/count')).body, { n: 1 })
  assert.deepEqual((await c.request('GET', '/me')).body, { user: 'bob', n: 1 })
  return { driver: store.stats().driver, loggedOut, honoSession }
})
