// The Astro session driver through Astro 5's own session runtime (devDependency `astro5`): the
// `session` config goes through Astro 5's config schema and, as its build writes the manifest,
// through JSON, with the driver module loaded from its entrypoint; each request is Astro 5's
// AstroSession over AstroCookies built from a real Request, against a real redis-server.
// Astro 5 wraps the driver in unstorage's createStorage itself.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { entrypoint } from 'ferrisession/astro'
import support from './support/redis.js'
import { defaultTtl, noRefresh, sessionCycle } from './support/astro-cases.mjs'

const { startRedis } = support

// AstroSession, AstroCookies and the config schema are internals: not in astro's package
// exports, so loaded by path.
const astroDir = path.dirname(createRequire(import.meta.url).resolve('astro5/package.json'))
const internal = (file) => import(pathToFileURL(path.join(astroDir, 'dist', file)).href)
const { version } = createRequire(import.meta.url)('astro5/package.json')
const { AstroSession, PERSIST_SYMBOL } = await internal('core/session.js')
const { AstroCookies } = await internal('core/cookies/cookies.js')
const { AstroConfigSchema } = await internal('core/config/schemas/base.js')

describe(`Astro ${version} session driver`, () => {
  let server
  const drivers = []

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    for (const d of drivers) d.dispose()
    await server.close()
  })

  /**
   * What Astro 5's server build holds for `session` config: the config as its schema leaves it,
   * written into the build as JSON, plus `driverModule`, which imports the `driver` entrypoint
   * (here it also keeps each driver made, to close it at the end). AstroSession shares one
   * storage per driver name in the whole process, so each variant gets a name of its own.
   */
  function sessionConfig(session, variant) {
    const parsed = JSON.parse(JSON.stringify(AstroConfigSchema.shape.session.parse(session)))
    const driverModule = async () => {
      const entry = await import(parsed.driver)
      return {
        default(options) {
          const driver = entry.default(options)
          drivers.push(driver)
          return driver
        },
      }
    }
    return { ...parsed, driver: `${parsed.driver}#${variant}`, driverModule }
  }

  /** One request: an AstroSession over the cookies of `request`; `persist()` ends it as Astro does. */
  function requestSession(config, cookie) {
    const request = new Request('https://shop.test/', { headers: cookie ? { cookie } : {} })
    const cookies = new AstroCookies(request)
    const session = new AstroSession(cookies, config, 'production')
    return {
      session,
      async persist() {
        await session[PERSIST_SYMBOL]()
        return [...AstroCookies.consume(cookies)]
      },
    }
  }

  it('takes the driver by entrypoint and options, not the Astro 6 config object', () => {
    const parsed = AstroConfigSchema.shape.session.parse({ driver: entrypoint, options: { url: server.url } })
    assert.equal(parsed.driver, 'ferrisession/astro/driver')
    assert.throws(() => AstroConfigSchema.shape.session.parse({ driver: { entrypoint, config: {} } }), /Expected string/)
  })

  it('keeps a session across requests, refreshes its TTL, regenerates and destroys it', async () => {
    const config = sessionConfig({ driver: entrypoint, options: { url: server.url, prefix: 'astro5:', ttl: 600 } }, 'cycle')
    // Astro 5 saves a regenerated session only once something in it changes, as a login does.
    await sessionCycle(server, requestSession, config, 'astro5:', { setOnRegenerate: true })
  })

  it('gives every write a TTL: one day by default, whatever Astro passes', async () => {
    // Astro's own session ttl expires values inside the session; it reaches no driver call.
    await defaultTtl(server, requestSession, sessionConfig({ driver: entrypoint, options: { url: server.url }, ttl: 30 }, 'default-ttl'))
  })

  it('leaves the TTL alone on reads with refreshOnRead: false', async () => {
    const config = sessionConfig({ driver: entrypoint, options: { url: server.url, prefix: 'astro5-nr:', ttl: 600, refreshOnRead: false } }, 'no-refresh')
    await noRefresh(server, requestSession, config, 'astro5-nr:')
  })

  it("answers bad options with Astro's storage error, caused by a coded one", async () => {
    for (const [variant, options] of [['bad-prefix', { prefix: 5 }], ['bad-ttl', { ttl: -1 }], ['bad-refresh', { refreshOnRead: 'yes' }]]) {
      const config = sessionConfig({ driver: entrypoint, options: { url: server.url, ...options } }, variant)
      await assert.rejects(requestSession(config, 'astro-session=x').session.get('k'), (err) => {
        assert.equal(err.name, 'SessionStorageInitError', variant)
        assert.equal(err.cause?.code, 'ERR_BAD_ARGUMENT', variant)
        return true
      })
    }
  })
})
