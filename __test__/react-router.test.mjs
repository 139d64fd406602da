// React Router 7's and Remix v2's own createSessionStorage and createCookie over our storage,
// through Request/Response cycles with signed cookies, against a real redis-server; what lands
// in Redis is read with a separate node-redis client.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as reactRouter from 'react-router'
import * as remix from '@remix-run/node'
import { createClient } from 'redis'
import createRedisSessionStorage from 'ferrisession/react-router'
import support from './support/redis.js'

const { startRedis } = support

const FRAMEWORKS = [
  ['react-router 7', reactRouter],
  ['Remix v2 (@remix-run/node)', remix],
]

/** The `name=value` pair a browser sends back for a Set-Cookie header. */
function cookieFrom(response) {
  const setCookie = response.headers.get('Set-Cookie')
  assert.ok(setCookie, 'the response sets a cookie')
  return setCookie.split(';')[0]
}

/** A request as a browser holding `cookie` (a `name=value` pair, or nothing) sends it. */
function requestWith(cookie, path = '/') {
  return new Request(`http://app.test${path}`, { headers: cookie ? { Cookie: cookie } : {} })
}

describe('react-router / Remix session storage', () => {
  let server, raw
  const storages = []

  function open(framework, options) {
    const storage = createRedisSessionStorage({ url: server.url, createSessionStorage: framework.createSessionStorage, ...options })
    storages.push(storage)
    return storage
  }

  before(async () => {
    server = await startRedis()
    raw = createClient({ url: server.url })
    await raw.connect()
  })
  after(async () => {
    for (const s of storages) s.close()
    await raw.quit()
    await server.close()
  })

  for (const [label, framework] of FRAMEWORKS) {
    describe(label, () => {
      const prefix = `${label.split(' ')[0]}:`
      const secrets = ['new-secret', 'old-secret']

      it('keeps a session across requests, flashes once, and destroys it', async () => {
        const cookie = framework.createCookie('__session', { secrets, maxAge: 3600, httpOnly: true, path: '/', sameSite: 'lax' })
        const storage = open(framework, { cookie, prefix })

        // First request: no cookie yet.
        const first = requestWith(null, '/login')
        const session = await storage.getSession(first.headers.get('Cookie'))
        assert.equal(session.id, '')
        session.set('user', 'ann')
        session.flash('notice', 'welcome back')
        const committedAt = Date.now()
        const loggedIn = new Response(null, { status: 302, headers: { 'Set-Cookie': await storage.commitSession(session), Location: '/' } })
        const browserCookie = cookieFrom(loggedIn)

        // The cookie is signed and holds only the id; the data and its expiry are in Redis.
        const id = await cookie.parse(browserCookie)
        assert.equal(typeof id, 'string')
        assert.equal(await framework.createCookie('__session', { secrets: ['wrong'] }).parse(browserCookie), null, 'the cookie is signed')
        const key = prefix + id
        assert.deepEqual(JSON.parse(await raw.get(key)), { user: 'ann', __flash_notice__: 'welcome back' })
        // The framework's expiry is the cookie's Max-Age from the commit; the key's TTL, in
        // whole seconds rounded up, ends with it.
        const maxAge = Number(/Max-Age=(\d+)/i.exec(loggedIn.headers.get('Set-Cookie'))[1])
        assert.equal(maxAge, 3600)
        const pttl = await raw.pTTL(key)
        const keyEnds = Date.now() + pttl
        assert.ok(keyEnds >= committedAt + maxAge * 1000 - 50 && keyEnds <= Date.now() + maxAge * 1000 + 1000, `key ends ${keyEnds - committedAt} ms after the commit`)
        assert.ok(pttl > 3595_000 && pttl <= 3600_000, `pttl ${pttl}`)

        // Second request: the flash is there once; committing consumes it.
        const second = await storage.getSession(requestWith(browserCookie).headers.get('Cookie'))
        assert.equal(second.id, id)
        assert.equal(second.get('user'), 'ann')
        assert.equal(second.get('notice'), 'welcome back')
        const afterFlash = new Response('home', { headers: { 'Set-Cookie': await storage.commitSession(second) } })
        assert.equal(await cookie.parse(cookieFrom(afterFlash)), id, 'the id stays the same')
        assert.deepEqual(JSON.parse(await raw.get(key)), { user: 'ann' })

        // Third request: the flash is gone, the rest stays.
        const third = await storage.getSession(requestWith(cookieFrom(afterFlash)).headers.get('Cookie'))
        assert.equal(third.get('notice'), undefined)
        assert.equal(third.has('notice'), false)
        assert.equal(third.get('user'), 'ann')

        // Logging out deletes the key and expires the cookie.
        const loggedOut = new Response(null, { headers: { 'Set-Cookie': await storage.destroySession(third) } })
        assert.match(loggedOut.headers.get('Set-Cookie'), /Expires=Thu, 01 Jan 1970/)
        assert.equal(await raw.exists(key), 0)
        const replayed = await storage.getSession(requestWith(browserCookie).headers.get('Cookie'))
        assert.equal(replayed.has('user'), false, 'the old cookie finds nothing')
      })

      it('takes the expiry from commitSession options, to the millisecond, and a past one deletes the key', async () => {
        const cookie = framework.createCookie('__exp', { secrets })
        const storage = open(framework, { cookie, prefix })
        const session = await storage.getSession(null)
        session.set('n', 1)
        // Half a second past a whole second: a TTL rounded up to seconds would end ~500 ms late.
        const committed = Date.now()
        const expires = new Date(committed + 90_500)
        const header = await storage.commitSession(session, { expires })
        const id = await cookie.parse(header.split(';')[0])
        const pttl = await raw.pTTL(prefix + id)
        const read = Date.now()
        // The key ends at `expires` plus the time from the storage's clock read to Redis's SET,
        // which lies between `committed` and `read`: so its PTTL, read then, lies in
        // [expires - read, expires - committed], however slow the machine is (5 ms spare for
        // the two clocks' rounding).
        const most = expires.getTime() - committed
        assert.ok(pttl <= most + 5 && pttl >= expires.getTime() - read - 5, `pttl ${pttl}, expected ${expires.getTime() - read}..${most}`)

        const again = await storage.getSession(header.split(';')[0])
        assert.equal(again.get('n'), 1)
        await storage.commitSession(again, { maxAge: 30 })
        const shorter = await raw.pTTL(prefix + id)
        assert.ok(shorter > 28_000 && shorter <= 30_000, `pttl after maxAge 30: ${shorter}`)

        await storage.commitSession(again, { expires: new Date(Date.now() - 1000) })
        assert.equal(await raw.exists(prefix + id), 0, 'a past expiry deletes the key')

        // A new session committed already expired leaves no key behind.
        const before = await raw.dbSize()
        const stillborn = await storage.getSession(null)
        stillborn.set('n', 2)
        await storage.commitSession(stillborn, { expires: new Date(Date.now() - 1) })
        assert.equal(await raw.dbSize(), before)
      })

      it('uses ttl when the framework gives no expiry (default one day)', async () => {
        const cookie = framework.createCookie('__ttl', { secrets })
        const byDefault = open(framework, { cookie, prefix })
        const s1 = await byDefault.getSession(null)
        s1.set('k', 'v')
        const id1 = await cookie.parse((await byDefault.commitSession(s1)).split(';')[0])
        assert.equal(await raw.ttl(prefix + id1), 86400)

        const custom = open(framework, { cookie, prefix, ttl: 120 })
        const s2 = await custom.getSession(null)
        s2.set('k', 'v')
        const id2 = await cookie.parse((await custom.commitSession(s2)).split(';')[0])
        assert.equal(await raw.ttl(prefix + id2), 120)
      })

      it('creates a missing key on update, keeping the cookie id', async () => {
        const cookie = framework.createCookie('__missing', { secrets, maxAge: 600 })
        const storage = open(framework, { cookie, prefix })
        // A signed cookie for an id whose data has expired (or was never written).
        const stale = (await cookie.serialize('expired-session-id')).split(';')[0]
        const session = await storage.getSession(stale)
        assert.equal(session.id, 'expired-session-id')
        assert.equal(session.has('user'), false)
        assert.equal(await raw.exists(`${prefix}expired-session-id`), 0)
        session.set('user', 'bob')
        await storage.commitSession(session)
        assert.deepEqual(JSON.parse(await raw.get(`${prefix}expired-session-id`)), { user: 'bob' })
        const ttl = await raw.ttl(`${prefix}expired-session-id`)
        assert.ok(ttl > 595 && ttl <= 600, `ttl ${ttl}`)
      })

      it('destroys a session that was never committed without error or change', async () => {
        const cookie = framework.createCookie('__fresh', { secrets })
        const storage = open(framework, { cookie, prefix })
        server.cli('SET', `${prefix}`, 'a key named like the empty id')
        const before = await raw.dbSize()
        const session = await storage.getSession(null)
        assert.equal(session.id, '')
        const header = await storage.destroySession(session)
        assert.match(header, /^__fresh=;/)
        assert.equal(await raw.dbSize(), before)
        assert.equal(await raw.get(prefix), 'a key named like the empty id')
        await raw.del(prefix)
      })

      it('makes ids of 128 random bits, base64url', async () => {
        const cookie = framework.createCookie('__ids', { secrets })
        const storage = open(framework, { cookie, prefix: `${prefix}ids:` })
        const ids = new Set()
        for (let i = 0; i < 200; i++) {
          const session = await storage.getSession(null)
          session.set('i', i)
          const id = await cookie.parse((await storage.commitSession(session)).split(';')[0])
          assert.match(id, /^[A-Za-z0-9_-]{22}$/)
          assert.equal(Buffer.from(id, 'base64url').length, 16)
          ids.add(id)
        }
        assert.equal(ids.size, 200)
        // Every bit position varies across 200 ids (a fixed or counter-like part would not).
        const bytes = [...ids].map((id) => Buffer.from(id, 'base64url'))
        for (let bit = 0; bit < 128; bit++) {
          const ones = bytes.filter((b) => (b[bit >> 3] >> (bit & 7)) & 1).length
          assert.ok(ones > 0 && ones < 200, `bit ${bit} is constant`)
        }
      })

      it('answers bad input with coded errors, and an unsigned forged cookie with an empty session', async () => {
        const unsigned = framework.createCookie('__plain')
        const storage = open(framework, { cookie: unsigned, prefix })
        // An unsigned cookie can carry any JSON: here an object where an id should be.
        const forged = `__plain=${Buffer.from(encodeURIComponent(JSON.stringify({ $ne: null }))).toString('base64')}`
        const session = await storage.getSession(forged)
        assert.equal(session.has('user'), false)
        session.set('user', 'mallory')
        await assert.rejects(storage.commitSession(session), { code: 'ERR_BAD_ARGUMENT' })

        const cookie = framework.createCookie('__bad', { secrets })
        const good = open(framework, { cookie, prefix })
        const s = await good.getSession(null)
        s.set('n', 10n)
        await assert.rejects(good.commitSession(s), { code: 'ERR_BAD_ARGUMENT', message: /JSON-serializable/ })
        const t = await good.getSession(null)
        await assert.rejects(good.commitSession(t, { expires: new Date('not a date') }), { code: 'ERR_BAD_ARGUMENT' })

        for (const bad of [{ ttl: 0 }, { ttl: -5 }, { ttl: '60' }, { prefix: 7 }, { createSessionStorage: 'react-router' }]) {
          assert.throws(() => createRedisSessionStorage({ url: server.url, cookie, createSessionStorage: framework.createSessionStorage, ...bad }), { code: 'ERR_BAD_ARGUMENT' }, JSON.stringify(bad))
        }
      })

      it('reads a stored value that is not JSON as a coded error', async () => {
        const cookie = framework.createCookie('__corrupt', { secrets })
        const storage = open(framework, { cookie, prefix })
        await raw.set(`${prefix}corrupt`, '{not json')
        await assert.rejects(storage.getSession((await cookie.serialize('corrupt')).split(';')[0]), { code: 'ERR_BAD_DATA' })
      })
    })
  }

  it("finds react-router's createSessionStorage when none is given", async () => {
    const cookie = reactRouter.createCookie('__found', { secrets: ['s'] })
    const storage = createRedisSessionStorage({ url: server.url, cookie, prefix: 'found:' })
    storages.push(storage)
    const session = await storage.getSession(null)
    session.set('ok', true)
    const id = await cookie.parse((await storage.commitSession(session)).split(';')[0])
    assert.equal(await raw.get(`found:${id}`), '{"ok":true}')
  })
})
