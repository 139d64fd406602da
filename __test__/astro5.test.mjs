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

const { startRedis, until } = support

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

  const ttl = (key) => Number(server.cli('TTL', key))
  const idOf = (setCookie) => /^astro-session=([0-9a-f-]{36});/.exec(setCookie)?.[1]

  it('takes the driver by entrypoint and options, not the Astro 6 config object', () => {
    const parsed = AstroConfigSchema.shape.session.parse({ driver: entrypoint, options: { url: server.url } })
    assert.equal(parsed.driver, 'ferrisession/astro/driver')
    assert.throws(() => AstroConfigSchema.shape.session.parse({ driver: { entrypoint, config: {} } }), /Expected string/)
  })

  it('keeps a session across requests, refreshes its TTL, regenerates and destroys it', async () => {
    const config = sessionConfig({ driver: entrypoint, options: { url: server.url, prefix: 'astro5:', ttl: 600 } }, 'cycle')

    // Request 1: log in.
    const first = requestSession(config)
    first.session.set('user', { name: 'Ann', since: new Date('2024-01-02T03:04:05Z') })
    first.session.set('cart', [1, 2, 3])
    const setCookies = await first.persist()
    assert.equal(setCookies.length, 1)
    const id = idOf(setCookies[0])
    assert.ok(id, setCookies[0])
    assert.match(server.cli('GET', `astro5:${id}`), /Ann/)
    const written = ttl(`astro5:${id}`)
    assert.ok(written > 595 && written <= 600, `TTL after the write: ${written}`)

    // Request 2: a read, with the key's TTL run down meanwhile; the read moves it back.
    server.cli('EXPIRE', `astro5:${id}`, '100')
    const second = requestSession(config, `astro-session=${id}`)
    const user = await second.session.get('user')
    assert.equal(user.name, 'Ann')
    assert.ok(user.since instanceof Date && user.since.toISOString() === '2024-01-02T03:04:05.000Z')
    assert.deepEqual(await second.session.get('cart'), [1, 2, 3])
    assert.deepEqual(await second.persist(), [], 'a read sets no cookie')
    const refreshed = ttl(`astro5:${id}`)
    assert.ok(refreshed > 595 && refreshed <= 600, `TTL after the read: ${refreshed}`)

    // Request 3: a new id for the same data; the old key goes. Astro 5 saves a regenerated
    // session only once something in it changes, as a login does.
    const third = requestSession(config, `astro-session=${id}`)
    await third.session.regenerate()
    third.session.set('role', 'admin')
    const regenerated = await third.persist()
    const newId = idOf(regenerated[0])
    assert.ok(newId && newId !== id, regenerated[0])
    const fresh = requestSession(config, `astro-session=${newId}`).session
    assert.equal((await fresh.get('user')).name, 'Ann')
    assert.equal(await fresh.get('role'), 'admin')
    await until(() => server.cli('EXISTS', `astro5:${id}`) === '0', 5000, 'the old key is removed')
    assert.ok(ttl(`astro5:${newId}`) > 595)

    // Request 4: log out.
    const fourth = requestSession(config, `astro-session=${newId}`)
    fourth.session.destroy()
    const cleared = await fourth.persist()
    assert.match(cleared[0], /^astro-session=deleted; .*Expires=Thu, 01 Jan 1970/)
    assert.equal(server.cli('EXISTS', `astro5:${newId}`), '0')
    assert.equal(await requestSession(config, `astro-session=${newId}`).session.get('user'), undefined)
  })

  it('gives every write a TTL: one day by default, whatever Astro passes', async () => {
    // Astro's own session ttl expires values inside the session; it reaches no driver call.
    const config = sessionConfig({ driver: entrypoint, options: { url: server.url }, ttl: 30 }, 'default-ttl')
    const req = requestSession(config)
    req.session.set('k', 'v')
    const id = idOf((await req.persist())[0])
    assert.equal(ttl(`astro-session:${id}`), 86400)
  })

  it('leaves the TTL alone on reads with refreshOnRead: false', async () => {
    const config = sessionConfig({ driver: entrypoint, options: { url: server.url, prefix: 'astro5-nr:', ttl: 600, refreshOnRead: false } }, 'no-refresh')
    const req = requestSession(config)
    req.session.set('k', 'v')
    const id = idOf((await req.persist())[0])
    server.cli('EXPIRE', `astro5-nr:${id}`, '100')
    assert.equal(await requestSession(config, `astro-session=${id}`).session.get('k'), 'v')
    assert.ok(ttl(`astro5-nr:${id}`) <= 100)
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
