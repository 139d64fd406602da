// unstorage's createStorage on our driver, data compatibility with unstorage's redis driver, and
// Lucia v2's unstorage session adapter on top.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createStorage } from 'unstorage'
import redisDriver from 'unstorage/drivers/redis'
import { unstorage as luciaUnstorage } from '@lucia-auth/adapter-session-unstorage'
import { lucia as luciaV2 } from 'lucia2'
import ferrisessionDriver from 'ferrisession/unstorage'
import support from './support/redis.js'
import { memoryUserAdapter } from './support/lucia-users.mjs'

const { startRedis } = support

describe('unstorage driver', () => {
  let server, storage, driver

  before(async () => {
    server = await startRedis()
    driver = ferrisessionDriver({ url: server.url, base: 'app' })
    storage = createStorage({ driver })
  })
  after(async () => {
    await storage.dispose()
    await server.close()
  })

  it('sets, gets, checks, lists and removes items under base:key', async () => {
    await storage.setItem('user:1', { name: 'Ann' })
    await storage.setItem('user:2', 'plain')
    assert.equal(server.cli('GET', 'app:user:1'), JSON.stringify({ name: 'Ann' }))
    assert.deepEqual(await storage.getItem('user:1'), { name: 'Ann' })
    assert.equal(await storage.hasItem('user:2'), true)
    assert.equal(await storage.hasItem('user:3'), false)
    assert.equal(await storage.getItem('user:3'), null)
    assert.deepEqual((await storage.getKeys('user')).sort(), ['user:1', 'user:2'])
    await storage.removeItem('user:2')
    assert.equal(await storage.hasItem('user:2'), false)
  })

  it('honours ttl per call and by default', async () => {
    await storage.setItem('short', 'x', { ttl: 60 })
    const ttl = Number(server.cli('TTL', 'app:short'))
    assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`)
    const withDefault = createStorage({ driver: ferrisessionDriver({ url: server.url, base: 'dflt', ttl: 30 }) })
    await withDefault.setItem('k', 'v')
    assert.equal(server.cli('TTL', 'dflt:k'), '30')
    await withDefault.dispose()
  })

  it('batches getItems and setItems', async () => {
    await storage.setItems([{ key: 'b:1', value: 'one' }, { key: 'b:2', value: 'two' }])
    const items = await storage.getItems(['b:1', 'b:2', 'b:3'])
    assert.deepEqual(items, [
      { key: 'b:1', value: 'one' },
      { key: 'b:2', value: 'two' },
      { key: 'b:3', value: null },
    ])
  })

  it('clears exactly the keys under a base', async () => {
    await storage.setItem('c:1', 'x')
    await storage.setItem('c:2', 'x')
    await storage.setItem('cc:1', 'keep')
    server.cli('SET', 'app:c', 'keep-the-bare-key')
    server.cli('SET', 'other:c:1', 'keep-other-app')
    // createStorage only forwards clear(base) to drivers mounted under that base, so the
    // driver is called directly, with the base in the form unstorage passes it.
    await driver.clear('c:')
    assert.deepEqual((await storage.getKeys('c')).sort(), [])
    assert.equal(await storage.getItem('cc:1'), 'keep')
    assert.equal(server.cli('GET', 'app:c'), 'keep-the-bare-key')
    assert.equal(server.cli('GET', 'other:c:1'), 'keep-other-app')
    await storage.clear()
    assert.deepEqual(await storage.getKeys(), [])
    assert.equal(server.cli('GET', 'other:c:1'), 'keep-other-app')
  })

  it('shares data with unstorage/drivers/redis both ways', async () => {
    const theirs = createStorage({ driver: redisDriver({ url: server.url, base: 'app' }) })
    try {
      await theirs.setItem('x:them', { v: 1 })
      await storage.setItem('x:us', { v: 2 })
      assert.deepEqual(await storage.getItem('x:them'), { v: 1 })
      assert.deepEqual(await theirs.getItem('x:us'), { v: 2 })
      assert.deepEqual((await storage.getKeys('x')).sort(), (await theirs.getKeys('x')).sort())
    } finally {
      await theirs.dispose()
    }
  })

  it('works under @lucia-auth/adapter-session-unstorage', async () => {
    const luciaStorage = createStorage({ driver: ferrisessionDriver({ url: server.url, base: 'lucia' }) })
    const auth = luciaV2({ env: 'DEV', adapter: { user: memoryUserAdapter(), session: luciaUnstorage(luciaStorage) } })
    try {
      await auth.createUser({ userId: 'ann', key: null, attributes: {} })
      const s = await auth.createSession({ userId: 'ann', attributes: {} })
      assert.equal((await auth.validateSession(s.sessionId)).user.userId, 'ann')
      assert.equal(server.cli('EXISTS', `lucia:session:${s.sessionId}`), '1')
      await auth.invalidateSession(s.sessionId)
      await assert.rejects(auth.validateSession(s.sessionId))
    } finally {
      await luciaStorage.dispose()
    }
  })
})
