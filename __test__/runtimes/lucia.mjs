// Lucia v3 (the real package) on ferrisession's adapter: create, validate, list, extend,
// invalidate; stored JSON and the user index as the Node suite expects them.
import { Lucia, TimeSpan } from 'lucia3'
import { main, require, assert, config } from './child.mjs'

const { luciaAdapter } = require('../../lib/lucia.js')
const users = new Map([['u1', { id: 'u1', attributes: { name: 'Ann' } }]])

await main(async (opened) => {
  const adapter = opened(luciaAdapter({ url: config.url, getUser: async (id) => users.get(id) ?? null }))
  const lucia = new Lucia(adapter, {
    sessionExpiresIn: new TimeSpan(1, 'h'),
    getSessionAttributes: (attrs) => ({ device: attrs.device }),
    getUserAttributes: (attrs) => ({ name: attrs.name }),
  })
  const s1 = await lucia.createSession('u1', { device: 'phone' })
  const s2 = await lucia.createSession('u1', { device: 'laptop' })
  const { session, user } = await lucia.validateSession(s1.id)
  assert.equal(session.device, 'phone')
  assert.equal(user.name, 'Ann')
  assert.equal((await lucia.getUserSessions('u1')).length, 2)

  const [stored] = await adapter.getSessionAndUser(s2.id)
  assert.equal(stored.expiresAt.getTime(), s2.expiresAt.getTime())
  assert.deepEqual(stored.attributes, { device: 'laptop' })
  const extended = new Date(s2.expiresAt.getTime() + 60_000)
  await adapter.updateSessionExpiration(s2.id, extended)
  assert.equal((await adapter.getSessionAndUser(s2.id))[0].expiresAt.getTime(), extended.getTime())

  await lucia.invalidateSession(s1.id)
  assert.deepEqual(await adapter.getSessionAndUser(s1.id), [null, null])
  assert.deepEqual((await lucia.getUserSessions('u1')).map((s) => s.id), [s2.id])
  assert.deepEqual(await adapter.getSessionAndUser('nope'), [null, null])

  // What is left for the parent to check in Redis: one live session of u1, extended.
  const s3 = await lucia.createSession('u1', { device: 'tv' })
  await lucia.invalidateUserSessions('u1')
  assert.deepEqual(await lucia.getUserSessions('u1'), [])
  const kept = await lucia.createSession('u1', { device: 'watch' })
  await adapter.deleteExpiredSessions()
  return { driver: adapter.stats().driver, kept: kept.id, keptExpiresAt: kept.expiresAt.getTime(), gone: [s1.id, s2.id, s3.id] }
})
