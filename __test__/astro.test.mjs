// The Astro session driver through Astro's own session runtime: the config goes through Astro's
// sessionConfigToManifest, the driver is loaded from its entrypoint as Astro loads it, and each
// request is an AstroSession over AstroCookies built from a real Request, against a real
// redis-server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { redisDriver } from 'ferrisession/astro'
import support from './support/redis.js'

const { startRedis, until } = support

// AstroSession and AstroCookies are internals: not in astro's package exports, so loaded by path.
const astroDir = path.dirname(createRequire(import.meta.url).resolve('astro/package.json'))
const internal = (file) => import(pathToFileURL(path.join(astroDir, 'dist', file)).href)
const { AstroSession, PERSIST_SYMBOL } = await internal('core/session/runtime.js')
const { AstroCookies } = await internal('core/cookies/cookies.js')
const { sessionConfigToManifest } = await internal('core/session/utils.js')

describe('Astro session driver', () => {
  let server, factory
  const drivers = []

  before(async () => {
    server = await startRedis()
    // As Astro's pipeline does: the default export of the entrypoint module.
    const entry = await import(redisDriver().entrypoint)
    factory = (config) => {
      const driver = entry.default(config)
      drivers.push(driver)
      return driver
    }
  })
  after(async () => {
    for (const d of drivers) d.dispose()
    await server.close()
  })

  /**
   * Astro's manifest for `session` config. AstroSession shares one storage per driver name in
   * the whole process, so each variant gets a name of its own.
   */
  function manifest(session, variant) {
    const m = sessionConfigToManifest(session)
    return { ...m, driver: `${m.driver}#${variant}` }
  }

  /** One request: an AstroSession over the cookies of `request`; `persist()` ends it as Astro does. */
  function requestSession(config, cookie) {
    const request = new Request('https://shop.test/', { headers: cookie ? { cookie } : {} })
    const cookies = new AstroCookies(request)
    const session = new AstroSession({ cookies, config, runtimeMode: 'production', driverFactory: factory })
    return {
      session,
      async persist() {
        await session[PERSIST_SYMBOL]()
        return [...cookies.consume()]
      },
    }
  }

  const ttl = (key) => Number(server.cli('TTL', key))

  it('keeps a session across requests, refreshes its TTL, regenerates and destroys it', async () => {
    const config = manifest({ driver: redisDriver({ url: server.url, prefix: 'astro:', ttl: 600 }) }, 'cycle')
    assert.equal(config.options.url, server.url, "Astro's manifest carries the driver config")

    // Request 1: log in.
    const first = requestSession(config)
    first.session.set('user', { name: 'Ann', since: new Date('2024-01-02T03:04:05Z') })
    first.session.set('cart', [1, 2, 3])
    const setCookies = await first.persist()
    assert.equal(setCookies.length, 1)
    const m = /^astro-session=([0-9a-f-]{36});/.exec(setCookies[0])
    assert.ok(m, setCookies[0])
    const id = m[1]
    assert.match(server.cli('GET', `astro:${id}`), /Ann/)
    const written = ttl(`astro:${id}`)
    assert.ok(written > 595 && written <= 600, `TTL after the write: ${written}`)

    // Request 2: a read, with the key's TTL run down meanwhile; the read moves it back.
    server.cli('EXPIRE', `astro:${id}`, '100')
    const second = requestSession(config, `astro-session=${id}`)
    const user = await second.session.get('user')
    assert.equal(user.name, 'Ann')
    assert.ok(user.since instanceof Date && user.since.toISOString() === '2024-01-02T03:04:05.000Z')
    assert.deepEqual(await second.session.get('cart'), [1, 2, 3])
    assert.deepEqual(await second.persist(), [], 'a read sets no cookie')
    const refreshed = ttl(`astro:${id}`)
    assert.ok(refreshed > 595 && refreshed <= 600, `TTL after the read: ${refreshed}`)

    // Request 3: a new id for the same data; the old key goes.
    const third = requestSession(config, `astro-session=${id}`)
    await third.session.regenerate()
    const regenerated = await third.persist()
    const newId = /^astro-session=([0-9a-f-]{36});/.exec(regenerated[0])[1]
    assert.notEqual(newId, id)
    assert.equal((await requestSession(config, `astro-session=${newId}`).session.get('user')).name, 'Ann')
    await until(() => server.cli('EXISTS', `astro:${id}`) === '0', 5000, 'the old key is removed')
    assert.ok(ttl(`astro:${newId}`) > 595)

    // Request 4: log out.
    const fourth = requestSession(config, `astro-session=${newId}`)
    fourth.session.destroy()
    const cleared = await fourth.persist()
    assert.match(cleared[0], /^astro-session=deleted; .*Expires=Thu, 01 Jan 1970/)
    assert.equal(server.cli('EXISTS', `astro:${newId}`), '0')
    assert.equal(await requestSession(config, `astro-session=${newId}`).session.get('user'), undefined)
  })

  it('gives every write a TTL: one day by default, whatever Astro passes', async () => {
    // Astro's own session ttl expires values inside the session; it reaches no driver call.
    const config = manifest({ driver: redisDriver({ url: server.url }), ttl: 30 }, 'default-ttl')
    const req = requestSession(config)
    req.session.set('k', 'v')
    const id = /^astro-session=([^;]+);/.exec((await req.persist())[0])[1]
    assert.equal(ttl(`astro-session:${id}`), 86400)
  })

  it('leaves the TTL alone on reads with refreshOnRead: false', async () => {
    const config = manifest({ driver: redisDriver({ url: server.url, prefix: 'astro-nr:', ttl: 600, refreshOnRead: false }) }, 'no-refresh')
    const req = requestSession(config)
    req.session.set('k', 'v')
    const id = /^astro-session=([^;]+);/.exec((await req.persist())[0])[1]
    server.cli('EXPIRE', `astro-nr:${id}`, '100')
    assert.equal(await requestSession(config, `astro-session=${id}`).session.get('k'), 'v')
    assert.ok(ttl(`astro-nr:${id}`) <= 100)
  })

  it('answers a bad config with coded errors', async () => {
    for (const bad of [{ ttl: 0 }, { ttl: 'long' }, { url: new URL('redis://127.0.0.1:1') }, { socket: { connect() {} } }]) {
      assert.throws(() => redisDriver(bad), { code: 'ERR_BAD_ARGUMENT' }, String(Object.keys(bad)))
    }
    assert.throws(() => factory({ url: server.url, prefix: 5 }), { code: 'ERR_BAD_ARGUMENT' })
    assert.throws(() => factory({ url: server.url, refreshOnRead: 'yes' }), { code: 'ERR_BAD_ARGUMENT' })
    assert.throws(() => factory({ url: server.url, ttl: -1 }), { code: 'ERR_BAD_ARGUMENT' })
  })
})
