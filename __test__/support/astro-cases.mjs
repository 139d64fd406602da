// The session cases both Astro versions run (astro.test.mjs for Astro 6, astro5.test.mjs for
// Astro 5). Each test file makes its config and its `requestSession(config, cookie)` (one
// request's AstroSession and its `persist()`) the way its Astro version does; the cases are
// the same.
import assert from 'node:assert/strict'
import support from './redis.js'

const { until } = support

/** The session id a Set-Cookie header gives, or undefined. */
export const idOf = (setCookie) => /^astro-session=([0-9a-f-]{36});/.exec(setCookie)?.[1]

/**
 * Log in, read (the key's TTL, run down meanwhile, moves back), regenerate, log out; keys under
 * `prefix`, TTL 600 s. `setOnRegenerate`: write something with the regenerate, for an Astro
 * that saves a regenerated session only once it changes (Astro 5, as a login would).
 */
export async function sessionCycle(server, requestSession, config, prefix, { setOnRegenerate = false } = {}) {
  const ttl = (key) => Number(server.cli('TTL', key))

  // Request 1: log in.
  const first = requestSession(config)
  first.session.set('user', { name: 'Ann', since: new Date('2024-01-02T03:04:05Z') })
  first.session.set('cart', [1, 2, 3])
  const setCookies = await first.persist()
  assert.equal(setCookies.length, 1)
  const id = idOf(setCookies[0])
  assert.ok(id, setCookies[0])
  assert.match(server.cli('GET', `${prefix}${id}`), /Ann/)
  const written = ttl(`${prefix}${id}`)
  assert.ok(written > 595 && written <= 600, `TTL after the write: ${written}`)

  // Request 2: a read, with the key's TTL run down meanwhile; the read moves it back.
  server.cli('EXPIRE', `${prefix}${id}`, '100')
  const second = requestSession(config, `astro-session=${id}`)
  const user = await second.session.get('user')
  assert.equal(user.name, 'Ann')
  assert.ok(user.since instanceof Date && user.since.toISOString() === '2024-01-02T03:04:05.000Z')
  assert.deepEqual(await second.session.get('cart'), [1, 2, 3])
  assert.deepEqual(await second.persist(), [], 'a read sets no cookie')
  const refreshed = ttl(`${prefix}${id}`)
  assert.ok(refreshed > 595 && refreshed <= 600, `TTL after the read: ${refreshed}`)

  // Request 3: a new id for the same data; the old key goes.
  const third = requestSession(config, `astro-session=${id}`)
  await third.session.regenerate()
  if (setOnRegenerate) third.session.set('role', 'admin')
  const regenerated = await third.persist()
  const newId = idOf(regenerated[0])
  assert.ok(newId && newId !== id, regenerated[0])
  const fresh = requestSession(config, `astro-session=${newId}`).session
  assert.equal((await fresh.get('user')).name, 'Ann')
  if (setOnRegenerate) assert.equal(await fresh.get('role'), 'admin')
  await until(() => server.cli('EXISTS', `${prefix}${id}`) === '0', 5000, 'the old key is removed')
  assert.ok(ttl(`${prefix}${newId}`) > 595)

  // Request 4: log out.
  const fourth = requestSession(config, `astro-session=${newId}`)
  fourth.session.destroy()
  const cleared = await fourth.persist()
  assert.match(cleared[0], /^astro-session=deleted; .*Expires=Thu, 01 Jan 1970/)
  assert.equal(server.cli('EXISTS', `${prefix}${newId}`), '0')
  assert.equal(await requestSession(config, `astro-session=${newId}`).session.get('user'), undefined)
}

/** A write whose config sets no `ttl` gets one day, under the default prefix. */
export async function defaultTtl(server, requestSession, config) {
  const req = requestSession(config)
  req.session.set('k', 'v')
  const id = idOf((await req.persist())[0])
  assert.equal(Number(server.cli('TTL', `astro-session:${id}`)), 86400)
}

/** With `refreshOnRead: false` (keys under `prefix`), a read leaves the TTL as it was. */
export async function noRefresh(server, requestSession, config, prefix) {
  const req = requestSession(config)
  req.session.set('k', 'v')
  const id = idOf((await req.persist())[0])
  server.cli('EXPIRE', `${prefix}${id}`, '100')
  assert.equal(await requestSession(config, `astro-session=${id}`).session.get('k'), 'v')
  assert.ok(Number(server.cli('TTL', `${prefix}${id}`)) <= 100)
}
