// Shopify's SessionStorage over our core, with @shopify/shopify-api's Session class, against a
// real redis-server: the session operations, the per-shop index under concurrent writers, and
// data shared both ways with @shopify/shopify-app-session-storage-redis on the same server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Session } from '@shopify/shopify-api'
import { RedisSessionStorage as OfficialStorage } from '@shopify/shopify-app-session-storage-redis'
import { RedisSessionStorage } from 'ferrisession/shopify'
import { createRequire } from 'node:module'
import dc from 'node:diagnostics_channel'
import support from './support/redis.js'

const { startRedis } = support

const SCOPE = 'read_products,write_orders'

function offlineSession(shop, extra = {}) {
  return new Session({ id: `offline_${shop}`, shop, state: 'state-offline', isOnline: false, scope: SCOPE, accessToken: 'shpat_offline', ...extra })
}

function onlineSession(shop, userId, expiresInMs = 3600_000) {
  return new Session({
    id: `${shop}_${userId}`,
    shop,
    state: `state-${userId}`,
    isOnline: true,
    scope: SCOPE,
    accessToken: `shpua_${userId}`,
    expires: new Date(Date.now() + expiresInMs),
    onlineAccessInfo: {
      expires_in: Math.round(expiresInMs / 1000),
      associated_user_scope: SCOPE,
      associated_user: { id: userId, first_name: 'Ann', last_name: 'Lee', email: `user${userId}@example.com`, email_verified: true, account_owner: userId === 1, locale: 'en', collaborator: false },
    },
  })
}

const sortedIds = (sessions) => sessions.map((s) => s.id).sort()

describe('shopify session storage', () => {
  let server
  const opened = []
  const officials = []

  function ours(prefix) {
    const storage = new RedisSessionStorage(server.url, { sessionKeyPrefix: prefix })
    opened.push(storage)
    return storage
  }

  async function official(prefix) {
    const storage = new OfficialStorage(server.url, { sessionKeyPrefix: prefix })
    officials.push(storage)
    await storage.ready
    return storage
  }

  const index = (prefix, shop) => {
    const raw = server.cli('GET', `${prefix}_${shop}`)
    return raw === '' ? [] : JSON.parse(raw).sort()
  }

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    for (const s of opened) s.close()
    for (const s of officials) await s.disconnect()
    await server.close()
  })

  it('stores, loads, finds by shop and deletes sessions', async () => {
    const storage = ours('ops')
    const shop = 'ops-shop.myshopify.com'
    const offline = offlineSession(shop)
    const online = onlineSession(shop, 1)
    assert.equal(await storage.storeSession(offline), true)
    assert.equal(await storage.storeSession(online), true)
    await storage.storeSession(online) // a second store lists it once

    const loaded = await storage.loadSession(online.id)
    assert.ok(loaded instanceof Session)
    assert.ok(loaded.equals(online), 'the online session and its user come back whole')
    assert.equal(loaded.onlineAccessInfo.associated_user.email, 'user1@example.com')
    assert.equal(loaded.expires.getTime(), online.expires.getTime())
    assert.ok((await storage.loadSession(offline.id)).equals(offline))
    assert.equal(await storage.loadSession('offline_nobody.myshopify.com'), undefined)

    assert.deepEqual(index('ops', shop), [`ops_${offline.id}`, `ops_${online.id}`])
    assert.deepEqual(sortedIds(await storage.findSessionsByShop(shop)), [offline.id, online.id].sort())
    assert.deepEqual(await storage.findSessionsByShop('other.myshopify.com'), [])

    assert.equal(await storage.deleteSession(online.id), true)
    assert.equal(await storage.loadSession(online.id), undefined)
    assert.deepEqual(index('ops', shop), [`ops_${offline.id}`])
    assert.equal(await storage.deleteSession('never-stored'), true)

    const second = onlineSession(shop, 2)
    const third = onlineSession(shop, 3)
    await storage.storeSession(second)
    await storage.storeSession(third)
    assert.equal(await storage.deleteSessions([offline.id, second.id]), true)
    assert.deepEqual(sortedIds(await storage.findSessionsByShop(shop)), [third.id])
    assert.deepEqual(index('ops', shop), [`ops_${third.id}`])
  })

  it('keeps all 50 sessions of 50 concurrent stores for one shop in its index', async () => {
    const storage = ours('many')
    const shop = 'busy.myshopify.com'
    const sessions = Array.from({ length: 50 }, (_, i) => onlineSession(shop, 1000 + i))
    await Promise.all(sessions.map((s) => storage.storeSession(s)))
    assert.deepEqual(index('many', shop), sessions.map((s) => `many_${s.id}`).sort())
    assert.equal((await storage.findSessionsByShop(shop)).length, 50)
  })

  it('keeps every entry when two connections store 25 sessions each for one shop at once', async () => {
    const a = ours('pair')
    const b = ours('pair')
    const shop = 'pair.myshopify.com'
    const sessions = Array.from({ length: 50 }, (_, i) => onlineSession(shop, 2000 + i))
    await Promise.all(sessions.map((s, i) => (i % 2 ? a : b).storeSession(s)))
    assert.deepEqual(index('pair', shop), sessions.map((s) => `pair_${s.id}`).sort())
    // Deletes from both connections at once leave exactly the rest.
    await Promise.all(sessions.slice(0, 30).map((s, i) => (i % 2 ? b : a).deleteSession(s.id)))
    assert.deepEqual(index('pair', shop), sessions.slice(30).map((s) => `pair_${s.id}`).sort())
  })

  it('changes a shop index in one server-side step', async () => {
    // Two stores, two connections, no lock and no queue between them: only a change that is
    // one step on the server keeps every entry.
    const a = ours('atomic')
    const b = ours('atomic')
    const shop = 'atomic.myshopify.com'
    const sessions = Array.from({ length: 50 }, (_, i) => onlineSession(shop, 3000 + i))
    await Promise.all(sessions.map((s, i) => (i % 2 ? a : b).storeSession(s)))
    const keys = sessions.map((s) => `atomic_${s.id}`).sort()
    assert.deepEqual(index('atomic', shop), keys)
    const raw = server.cli('GET', `atomic_${shop}`)
    assert.equal(raw, JSON.stringify(JSON.parse(raw)), 'the index is written as JSON.stringify writes it')
    assert.equal(server.cli('KEYS', 'ferrisession-lock:*'), '', 'no lock key')

    const theirs = await official('atomic')
    assert.deepEqual(sortedIds(await theirs.findSessionsByShop(shop)), sessions.map((s) => s.id).sort())
  })

  it('answers the JSON array ops the same on memory:// as on Redis', async () => {
    const require = createRequire(import.meta.url)
    const { openLink, OP } = require('../lib/core/adapter.js')
    const onRedis = openLink({ url: server.url }, 'test')
    const inMemory = openLink({ url: 'memory://' }, 'test')
    try {
      const tricky = 'q"\\\n\t\u0001\u001f\u007f/é😀\u2028'
      const run = async (link) => {
        const out = []
        const step = async (what) => {
          try {
            out.push(await what())
          } catch (err) {
            out.push(err.code)
          }
        }
        const get = () => link.call(OP.GET, 'ja:k')
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:k', 'a'))
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:k', 'a'))
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:k', tricky))
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:k', 'b/c'))
        await step(get)
        await step(() => link.call(OP.TOUCH, 'ja:k', undefined, 100))
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:k', undefined, undefined, ['a', 'nope', tricky]))
        await step(get)
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:k', 'nope'))
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:k', 'b/c'))
        await step(() => link.call(OP.EXISTS, 'ja:k'))
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:k', 'a'))
        for (const bad of ['{"a":1}', '{}', '[1]', '[null]', 'nope', '']) {
          await step(() => link.call(OP.SET, 'ja:bad', bad))
          await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:bad', 'x'))
          await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:bad', 'x'))
          await step(() => link.call(OP.GET, 'ja:bad'))
        }
        await step(() => link.call(OP.SET, 'ja:e', ' [ ] '))
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:e', 'x'))
        await step(() => link.call(OP.GET, 'ja:e'))
        await step(() => link.call(OP.JSON_ARRAY_ADD, 'ja:e', undefined))
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:e', undefined))
        await step(() => link.call(OP.JSON_ARRAY_REMOVE, 'ja:e', undefined, undefined, []))
        return out
      }
      const [fromRedis, fromMemory] = await Promise.all([run(onRedis), run(inMemory)])
      assert.deepEqual(fromMemory, fromRedis)
      assert.deepEqual(fromRedis.slice(0, 5), [1, 0, 1, 1, JSON.stringify(['a', tricky, 'b/c'])])
      assert.deepEqual(fromRedis.slice(6, 12), [2, '["b/c"]', 0, 1, 0, 0], 'the last removal deletes the key')
      assert.deepEqual(fromRedis.slice(13, 16), ['ERR_BAD_DATA', 'ERR_BAD_DATA', '{"a":1}'], 'a bad value is left as it was')
      assert.deepEqual(fromRedis.slice(-5), [1, '["x"]', 'ERR_BAD_ARGUMENT', 'ERR_BAD_ARGUMENT', 'ERR_BAD_ARGUMENT'])

      // The TTL is kept through a change; another type is ERR_WRONG_TYPE.
      server.cli('SET', 'ja:ttl', '["a"]', 'EX', '100')
      assert.equal(await onRedis.call(OP.JSON_ARRAY_ADD, 'ja:ttl', 'b'), 1)
      assert.ok(Number(server.cli('PTTL', 'ja:ttl')) > 90_000)
      server.cli('SADD', 'ja:set', 'm')
      await assert.rejects(onRedis.call(OP.JSON_ARRAY_ADD, 'ja:set', 'x'), { code: 'ERR_WRONG_TYPE' })
    } finally {
      onRedis.close()
      inMemory.close()
    }
  })

  it('gives online sessions the TTL of their expires, and offline sessions none', async () => {
    const storage = ours('ttl')
    const shop = 'ttl.myshopify.com'
    const online = onlineSession(shop, 7, 600_000)
    await storage.storeSession(online)
    const pttl = Number(server.cli('PTTL', `ttl_${online.id}`))
    assert.ok(pttl > 595_000 && pttl <= 600_000, `online pttl ${pttl}`)
    const endsAt = Date.now() + pttl
    assert.ok(endsAt >= online.expires.getTime() - 50 && endsAt <= online.expires.getTime() + 1100, 'ends with expires')

    // An offline session with an expiring access token and a refresh token: no TTL.
    const offline = offlineSession(shop, { expires: new Date(Date.now() + 3600_000), refreshToken: 'shprt_1', refreshTokenExpires: new Date(Date.now() + 90 * 86400_000) })
    await storage.storeSession(offline)
    assert.equal(server.cli('TTL', `ttl_${offline.id}`), '-1')
    assert.equal((await storage.loadSession(offline.id)).refreshToken, 'shprt_1')
    assert.equal(server.cli('TTL', `ttl_${shop}`), '-1', 'the index does not expire')

    // Re-storing an online session moves its TTL; one already expired is deleted.
    online.expires = new Date(Date.now() + 120_000)
    await storage.storeSession(online)
    const moved = Number(server.cli('PTTL', `ttl_${online.id}`))
    assert.ok(moved > 115_000 && moved <= 120_000, `moved pttl ${moved}`)
    online.expires = new Date(Date.now() - 1000)
    await storage.storeSession(online)
    assert.equal(server.cli('EXISTS', `ttl_${online.id}`), '0')
    assert.deepEqual(index('ttl', shop), [`ttl_${offline.id}`])
  })

  it('drops index entries of expired sessions as it adds one', async () => {
    const storage = ours('prune')
    const shop = 'prune.myshopify.com'
    const soon = onlineSession(shop, 1, 1500)
    await storage.storeSession(soon)
    await storage.storeSession(offlineSession(shop))
    await new Promise((r) => setTimeout(r, 2600))
    assert.equal(server.cli('EXISTS', `prune_${soon.id}`), '0', 'the online session expired')
    assert.deepEqual(sortedIds(await storage.findSessionsByShop(shop)), [`offline_${shop}`])
    await storage.storeSession(onlineSession(shop, 2))
    assert.deepEqual(index('prune', shop), [`prune_${shop}_2`, `prune_offline_${shop}`].sort())
  })

  it('keeps an entry whose session is stored again while the entry is being dropped', async () => {
    const storage = ours('revive')
    const shop = 'revive.myshopify.com'
    const revived = offlineSession(shop)
    const key = `revive_${revived.id}`
    server.cli('SET', `revive_${shop}`, JSON.stringify([key])) // listed, but its session is gone
    // After the check that found it gone and before its removal, another writer stores it again
    // (its add is no change: the entry is there).
    const calls = dc.tracingChannel('ferrisession:call')
    const meanwhile = (call) => {
      if (call.operation === 'jsonArrayRemove') server.cli('SET', key, JSON.stringify(revived.toPropertyArray(true)))
    }
    calls.start.subscribe(meanwhile)
    try {
      await storage.storeSession(onlineSession(shop, 5))
    } finally {
      calls.start.unsubscribe(meanwhile)
    }
    assert.deepEqual(index('revive', shop), [key, `revive_${shop}_5`].sort())
  })

  it('reads what @shopify/shopify-app-session-storage-redis wrote, and it reads ours', async () => {
    // The default prefix on both sides; ours starts first, on an empty keyspace for it.
    const mine = new RedisSessionStorage({ url: server.url })
    opened.push(mine)
    const ourShop = 'ours.myshopify.com'
    const ourOffline = offlineSession(ourShop)
    const ourOnline = onlineSession(ourShop, 11)
    await mine.storeSession(ourOffline)
    await mine.storeSession(ourOnline)

    // The official package starts on our data: it must not run its migration over it.
    const theirs = await official('shopify_sessions')
    assert.equal(server.cli('EXISTS', 'shopify_sessions_undefined'), '0')
    assert.ok((await theirs.loadSession(ourOnline.id)).equals(ourOnline))
    assert.ok((await theirs.loadSession(ourOffline.id)).equals(ourOffline))
    assert.deepEqual(sortedIds(await theirs.findSessionsByShop(ourShop)), [ourOffline.id, ourOnline.id].sort())

    const theirShop = 'theirs.myshopify.com'
    const theirOffline = offlineSession(theirShop)
    const theirOnline = onlineSession(theirShop, 12)
    await theirs.storeSession(theirOffline)
    await theirs.storeSession(theirOnline)
    assert.ok((await mine.loadSession(theirOnline.id)).equals(theirOnline))
    assert.deepEqual(sortedIds(await mine.findSessionsByShop(theirShop)), [theirOffline.id, theirOnline.id].sort())

    // Each adds to the other's index, and deletes from it, writing the same bytes as the other.
    const shopKey = `shopify_sessions_${theirShop}`
    const fullKey = (s) => `shopify_sessions_${s.id}`
    assert.equal(server.cli('GET', shopKey), JSON.stringify([fullKey(theirOffline), fullKey(theirOnline)]))
    const added = onlineSession(theirShop, 13)
    await mine.storeSession(added)
    assert.equal(server.cli('GET', shopKey), JSON.stringify([fullKey(theirOffline), fullKey(theirOnline), fullKey(added)]))
    assert.deepEqual(sortedIds(await theirs.findSessionsByShop(theirShop)), [theirOffline.id, theirOnline.id, added.id].sort())
    await theirs.deleteSession(added.id)
    assert.deepEqual(sortedIds(await mine.findSessionsByShop(theirShop)), [theirOffline.id, theirOnline.id].sort())
    await mine.deleteSession(theirOnline.id)
    assert.equal(server.cli('GET', shopKey), JSON.stringify([fullKey(theirOffline)]))
    assert.equal(await theirs.loadSession(theirOnline.id), undefined)
    assert.deepEqual(sortedIds(await theirs.findSessionsByShop(theirShop)), [theirOffline.id])

    // Ours deletes an index it empties; the official package reads that as no sessions, and
    // starts the index again on its next store.
    await mine.deleteSession(theirOffline.id)
    assert.equal(server.cli('EXISTS', shopKey), '0')
    assert.deepEqual(await theirs.findSessionsByShop(theirShop), [])
    await theirs.storeSession(theirOffline)
    assert.deepEqual(sortedIds(await mine.findSessionsByShop(theirShop)), [theirOffline.id])

    // The stored bytes are the same for the same session.
    const twin = offlineSession('twin.myshopify.com')
    await theirs.storeSession(twin)
    const theirBytes = server.cli('GET', `shopify_sessions_${twin.id}`)
    await mine.storeSession(twin)
    assert.equal(server.cli('GET', `shopify_sessions_${twin.id}`), theirBytes)
  })

  it("makes sessions of the Session class of the app's module system", async () => {
    const require = createRequire(import.meta.url)
    const cjs = require('ferrisession/shopify')
    const CjsSession = require('@shopify/shopify-api').Session
    const viaRequire = new cjs.RedisSessionStorage(server.url, { sessionKeyPrefix: 'modules' })
    opened.push(viaRequire)
    const viaImport = ours('modules')
    const session = offlineSession('modules.myshopify.com')
    await viaImport.storeSession(session)
    assert.ok((await viaRequire.loadSession(session.id)) instanceof CjsSession)
    assert.ok((await viaImport.loadSession(session.id)) instanceof Session)
  })

  it('answers bad input with coded errors', async () => {
    const storage = ours('bad')
    await assert.rejects(storage.storeSession(null), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.storeSession({ id: 'x', shop: 'y' }), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.storeSession(new Session({ id: '', shop: 's.myshopify.com', state: 's', isOnline: false })), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.storeSession(new Session({ id: 'x', shop: undefined, state: 's', isOnline: false })), { code: 'ERR_BAD_ARGUMENT' })
    const badDate = onlineSession('d.myshopify.com', 1)
    badDate.expires = new Date('nope')
    await assert.rejects(storage.storeSession(badDate), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.loadSession(42), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.findSessionsByShop(undefined), { code: 'ERR_BAD_ARGUMENT' })
    await assert.rejects(storage.deleteSessions('x'), { code: 'ERR_BAD_ARGUMENT' })

    server.cli('SET', 'bad_garbage', 'not json')
    await assert.rejects(storage.loadSession('garbage'), { code: 'ERR_BAD_DATA' })
    server.cli('SET', 'bad_broken.myshopify.com', '{"not":"an array"}')
    await assert.rejects(storage.findSessionsByShop('broken.myshopify.com'), { code: 'ERR_BAD_DATA' })
    await assert.rejects(storage.storeSession(offlineSession('broken.myshopify.com')), { code: 'ERR_BAD_DATA' })
    assert.equal(server.cli('GET', 'bad_broken.myshopify.com'), '{"not":"an array"}', 'a bad index is left as it was')

    for (const bad of [{ hashIds: true }, { encryption: { keys: { a: 'x' } } }, { sessionKeyPrefix: '' }, { sessionKeyPrefix: 5 }]) {
      assert.throws(() => new RedisSessionStorage(server.url, bad), { code: 'ERR_BAD_ARGUMENT' }, JSON.stringify(bad))
    }
    assert.throws(() => new RedisSessionStorage(12), { code: 'ERR_BAD_ARGUMENT' })
  })
})
