// touchAfter: refreshes this process sent less than touchAfter ago are answered without a
// round trip, counted on a real redis-server with INFO commandstats.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { RedisStore } from 'ferrisession'
import unstorageDriver from 'ferrisession/unstorage'
import { luciaAdapter } from 'ferrisession/lucia'
import support from './support/redis.js'

const { startRedis } = support

/** How many times Redis ran `command` since the last CONFIG RESETSTAT. */
function calls(server, command) {
  const line = server.cli('INFO', 'commandstats').split('\n').find((l) => l.startsWith(`cmdstat_${command}:`))
  return line ? Number(/calls=(\d+)/.exec(line)[1]) : 0
}

const session = (ms) => ({ cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms) }, user: 'ada' })

describe('touchAfter', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.close()
  })

  it('express: touches within touchAfter of the last refresh send nothing', async () => {
    const store = new RedisStore({ url: server.url, touchAfter: 60 })
    try {
      await store.set('s1', session(3_600_000))
      server.cli('CONFIG', 'RESETSTAT')
      for (let i = 0; i < 10; i++) assert.equal(await store.touch('s1', session(3_600_000)), null)
      assert.equal(calls(server, 'expire'), 0)
      // A touch that would push the expiry further than touchAfter beyond the last one is sent.
      await store.touch('s1', session(3_600_000 + 120_000))
      assert.equal(calls(server, 'expire'), 1)
      const ttl = Number(server.cli('TTL', 'sess:s1'))
      assert.ok(ttl >= 3_600 + 120 - 60, `ttl ${ttl}`)
      // A destroy forgets the key: the next write and touch go through.
      await store.destroy('s1')
      await store.set('s1', session(3_600_000))
      assert.equal(server.cli('EXISTS', 'sess:s1'), '1')
    } finally {
      store.close()
    }
  })

  it('express: without touchAfter every touch is sent, as connect-redis does', async () => {
    const store = new RedisStore({ url: server.url })
    try {
      await store.set('s2', session(3_600_000))
      server.cli('CONFIG', 'RESETSTAT')
      for (let i = 0; i < 10; i++) await store.touch('s2', session(3_600_000))
      assert.equal(calls(server, 'expire'), 10)
    } finally {
      store.close()
    }
  })

  it('unstorage: setItem with the same value and ttl is written once', async () => {
    const driver = unstorageDriver({ url: server.url, base: 'u', touchAfter: 60 })
    try {
      server.cli('CONFIG', 'RESETSTAT')
      await driver.setItem('k', 'v1', { ttl: 600 })
      await driver.setItem('k', 'v1', { ttl: 600 })
      await driver.setItem('k', 'v1', { ttl: 600 })
      assert.equal(calls(server, 'set'), 1)
      await driver.setItem('k', 'v2', { ttl: 600 })
      assert.equal(calls(server, 'set'), 2)
      assert.equal(await driver.getItem('k'), 'v2')
    } finally {
      driver.dispose()
    }
  })

  it('Lucia v3: updateSessionExpiration within touchAfter of the last write sends no write', async () => {
    const adapter = luciaAdapter({ url: server.url, touchAfter: 60, getUser: () => null })
    try {
      const expiresAt = new Date(Date.now() + 3_600_000)
      await adapter.setSession({ id: 'l1', userId: 'u1', expiresAt, attributes: {} })
      server.cli('CONFIG', 'RESETSTAT')
      await adapter.updateSessionExpiration('l1', new Date(expiresAt.getTime() + 10_000))
      assert.equal(calls(server, 'set'), 0)
      await adapter.updateSessionExpiration('l1', new Date(expiresAt.getTime() + 3_600_000))
      assert.equal(calls(server, 'set'), 1)
      const ttl = Number(server.cli('TTL', 'session:l1'))
      assert.ok(ttl > 7_100, `ttl ${ttl}`)
    } finally {
      adapter.close()
    }
  })

  it('refuses a negative touchAfter with a coded error', () => {
    assert.throws(() => new RedisStore({ url: server.url, touchAfter: -1 }), (e) => e.code === 'ERR_BAD_ARGUMENT')
  })
})
