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
import { defaultTtl, noRefresh, sessionCycle } from './support/astro-cases.mjs'

const { startRedis } = support

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

  it('keeps a session across requests, refreshes its TTL, regenerates and destroys it', async () => {
    const config = manifest({ driver: redisDriver({ url: server.url, prefix: 'astro:', ttl: 600 }) }, 'cycle')
    assert.equal(config.options.url, server.url, "Astro's manifest carries the driver config")
    await sessionCycle(server, requestSession, config, 'astro:')
  })

  it('gives every write a TTL: one day by default, whatever Astro passes', async () => {
    // Astro's own session ttl expires values inside the session; it reaches no driver call.
    await defaultTtl(server, requestSession, manifest({ driver: redisDriver({ url: server.url }), ttl: 30 }, 'default-ttl'))
  })

  it('leaves the TTL alone on reads with refreshOnRead: false', async () => {
    const config = manifest({ driver: redisDriver({ url: server.url, prefix: 'astro-nr:', ttl: 600, refreshOnRead: false }) }, 'no-refresh')
    await noRefresh(server, requestSession, config, 'astro-nr:')
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
