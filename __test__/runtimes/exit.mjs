// close() lets the process exit by itself, whatever state the stores are in: never used,
// with calls in flight (each still settles), with the near cache on, connecting to a port where
// nothing listens, and every adapter. The parent measures the time from `closedAt` to the exit.
import { createStorage } from 'unstorage'
import { main, RedisStore, require, assert, config, within } from './child.mjs'

const { luciaAdapter } = require('../../lib/lucia.js')
const { RedisStore: CurveballStore } = require('../../lib/curveball.js')
const unstorageDriver = require('../../lib/unstorage.js')

const { url, deadUrl } = config

await main(async () => {
  // Never used: opened and closed at once, its connection perhaps not even made.
  new RedisStore({ url }).close()

  // Calls in flight when close() comes: each settles, resolved or with a coded error.
  const busy = new RedisStore({ url })
  await busy.set('warm', { cookie: {} })
  const inFlight = Array.from({ length: 100 }, (_, i) => busy.set(`f${i}`, { cookie: {}, i }))
  busy.close()
  const settled = await within(Promise.allSettled(inFlight), 10_000, 'calls in flight at close()')
  const rejected = settled.filter((s) => s.status === 'rejected')
  for (const r of rejected) assert.ok(typeof r.reason.code === 'string' && r.reason.code.startsWith('ERR_'), `a coded error: ${r.reason}`)

  // Near cache on: its tracking connection must not hold the process either.
  const cached = new RedisStore({ url, cache: true })
  await cached.set('c', { cookie: {}, v: 1 })
  // The first read after our own write goes uncached, the second fills, the third hits.
  for (let i = 0; i < 3; i++) await cached.get('c')
  assert.ok(cached.stats().cache.hits >= 1)
  cached.close()

  // Nothing listens: reconnect attempts under way when it is closed.
  const dead = new RedisStore({ url: deadUrl, connectTimeout: 500, commandTimeout: 1000 })
  const refused = await dead.get('x').then(() => null, (e) => e.code)
  assert.ok(typeof refused === 'string' && refused.startsWith('ERR_'), `a coded error from a dead server: ${refused}`)
  dead.close()

  // Every adapter, used then closed.
  const lucia = luciaAdapter({ url, getUser: async () => null })
  await lucia.setSession({ id: 'l1', userId: 'u', expiresAt: new Date(Date.now() + 60_000), attributes: {} })
  lucia.close()
  const curveball = new CurveballStore({ clientOptions: { url } })
  await curveball.set('cb1', { a: 1 }, Math.floor(Date.now() / 1000) + 60)
  curveball.close()
  const storage = createStorage({ driver: unstorageDriver({ url, base: 'u' }) })
  await storage.setItem('k', 'v')
  await storage.dispose()

  return { inFlightResolved: settled.length - rejected.length, inFlightRejected: rejected.length, refused }
})
