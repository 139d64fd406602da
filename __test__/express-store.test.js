'use strict'
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const Redis = require('ioredis')
const { RedisStore } = require('..')
const { startRedis, within } = require('./support/redis.js')

const sess = (extra = {}) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('RedisStore against redis-server', () => {
  let redis
  const stores = []
  const open = (opts) => {
    const s = new RedisStore({ url: redis.url, ...opts })
    stores.push(s)
    return s
  }

  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    for (const s of stores) s.close()
    await redis.close()
  })

  it('exposes every option as a property with connect-redis defaults', () => {
    const s = open()
    assert.equal(s.prefix, 'sess:')
    assert.equal(s.ttl, 86400)
    assert.equal(s.scanCount, 100)
    assert.equal(s.serializer, JSON)
    assert.equal(s.disableTTL, false)
    assert.equal(s.disableTouch, false)
    const ttl = () => 5
    const serializer = { stringify: JSON.stringify, parse: JSON.parse }
    const t = open({ prefix: 'p:', ttl, scanCount: 7, serializer, disableTTL: true, disableTouch: true })
    assert.deepEqual(
      [t.prefix, t.ttl, t.scanCount, t.serializer, t.disableTTL, t.disableTouch],
      ['p:', ttl, 7, serializer, true, true],
    )
  })

  it('runs the full lifecycle with promises', async () => {
    const s = open({ prefix: 'life:' })
    assert.equal(await s.get('nope'), null)
    await s.set('123', sess({ foo: 'bar' }))
    assert.deepEqual(await s.get('123'), sess({ foo: 'bar' }))
    const ttl = Number(redis.cli('TTL', 'life:123'))
    assert.ok(ttl >= 86399 && ttl <= 86400, `ttl ${ttl}`)
    assert.equal(await s.length(), 1)
    assert.deepEqual(await s.ids(), ['123'])
    assert.deepEqual(await s.all(), [{ ...sess({ foo: 'bar' }), id: '123' }])

    const expires = new Date(Date.now() + 30_000)
    await s.touch('123', { cookie: { expires } })
    const touched = Number(redis.cli('TTL', 'life:123'))
    assert.ok(touched >= 29 && touched <= 30, `touched ttl ${touched}`)

    await s.destroy('123')
    assert.equal(await s.get('123'), null)
    assert.equal(await s.length(), 0)
  })

  it('runs the full lifecycle with callbacks', async () => {
    const s = open({ prefix: 'cb:' })
    const cb = (fn, ...args) => new Promise((resolve, reject) => fn.call(s, ...args, (err, data) => (err ? reject(err) : resolve(data))))
    assert.equal(await cb(s.set, 'x', sess({ n: 1 })), null)
    assert.deepEqual(await cb(s.get, 'x'), sess({ n: 1 }))
    assert.equal(await cb(s.touch, 'x', sess()), null)
    assert.equal(await cb(s.length), 1)
    assert.deepEqual(await cb(s.ids), ['x'])
    assert.deepEqual(await cb(s.all), [{ ...sess({ n: 1 }), id: 'x' }])
    assert.equal(await cb(s.destroy, 'x'), null)
    assert.equal(await cb(s.get, 'x'), null)
    await cb(s.set, 'y', sess())
    assert.equal(await cb(s.clear), null)
    assert.equal(await cb(s.length), 0)
    const err = await new Promise((resolve) => s.get(42, (e) => resolve(e)))
    assert.equal(err.code, 'ERR_BAD_ARGUMENT')
  })

  it('handles 1000 sessions and clears them in bounded batches', async () => {
    const s = open({ prefix: 'many:', scanCount: 50 })
    await Promise.all(Array.from({ length: 1000 }, (_, i) => s.set(`id${i}`, sess({ i }))))
    assert.equal(await s.length(), 1000)
    const ids = await s.ids()
    assert.equal(new Set(ids).size, 1000)
    assert.ok(ids.includes('id999'))
    const all = await s.all()
    assert.equal(all.length, 1000)
    assert.deepEqual(all.find((x) => x.id === 'id7'), { ...sess({ i: 7 }), id: 'id7' })
    await s.clear()
    assert.equal(await s.length(), 0)
  })

  it('deletes the key when the cookie has already expired', async () => {
    const s = open({ prefix: 'past:' })
    await s.set('old', sess())
    assert.notEqual(redis.cli('EXISTS', 'past:old'), '0')
    await s.set('old', { cookie: { expires: new Date(Date.now() - 10_000) } })
    assert.equal(redis.cli('EXISTS', 'past:old'), '0')
  })

  it('takes the TTL from a ttl function, and stores no TTL with disableTTL', async () => {
    const seen = []
    const s = open({ prefix: 'fn:', ttl: (x) => (seen.push(x), 77) })
    await s.set('a', sess({ k: 1 }))
    assert.equal(redis.cli('TTL', 'fn:a'), '77')
    assert.deepEqual(seen[0], sess({ k: 1 }))

    const n = open({ prefix: 'nottl:', disableTTL: true })
    await n.set('a', sess())
    assert.equal(redis.cli('TTL', 'nottl:a'), '-1')
    await n.touch('a', { cookie: { expires: new Date(Date.now() + 5000) } })
    assert.equal(redis.cli('TTL', 'nottl:a'), '-1')
  })

  it('does not touch with disableTouch', async () => {
    const s = open({ prefix: 'notouch:', ttl: 100, disableTouch: true })
    await s.set('a', sess())
    await s.touch('a', { cookie: { expires: new Date(Date.now() + 5000) } })
    const ttl = Number(redis.cli('TTL', 'notouch:a'))
    assert.ok(ttl > 90, `ttl ${ttl}`)
  })

  it('uses a custom serializer, whose parse may be async', async () => {
    const serializer = {
      stringify: (o) => 'X' + JSON.stringify(o),
      parse: async (s) => JSON.parse(s.slice(1)),
    }
    const s = open({ prefix: 'ser:', serializer })
    await s.set('a', sess({ v: 'é' }))
    assert.equal(redis.cli('GET', 'ser:a'), 'X' + JSON.stringify(sess({ v: 'é' })))
    assert.deepEqual(await s.get('a'), sess({ v: 'é' }))
    assert.deepEqual(await s.all(), [{ ...sess({ v: 'é' }), id: 'a' }])
  })

  it('escapes glob characters in the prefix for bulk operations', async () => {
    const s = open({ prefix: 'a*[x]:' })
    redis.cli('SET', 'ab[x]:other-app', 'keep')
    redis.cli('SET', 'aZx:other-app', 'keep')
    redis.cli('SET', 'a*[x]-other-app', 'keep')
    await s.set('mine', sess())
    assert.deepEqual(await s.ids(), ['mine'])
    assert.equal(await s.length(), 1)
    await s.clear()
    assert.equal(redis.cli('GET', 'ab[x]:other-app'), 'keep')
    assert.equal(redis.cli('GET', 'aZx:other-app'), 'keep')
    assert.equal(redis.cli('GET', 'a*[x]-other-app'), 'keep')
    assert.equal(redis.cli('EXISTS', 'a*[x]:mine'), '0')
  })

  it('rejects non-string and empty ids with a TypeError and writes nothing', async () => {
    const s = open({ prefix: 'bad:' })
    for (const id of [42, null, undefined, {}, ['a'], '']) {
      await assert.rejects(s.get(id), (e) => e instanceof TypeError && e.code === 'ERR_BAD_ARGUMENT')
      await assert.rejects(s.set(id, sess()), TypeError)
      await assert.rejects(s.destroy(id), TypeError)
    }
    assert.equal(await s.length(), 0)
  })

  it('rejects a circular session with a TypeError and keeps the old value', async () => {
    const s = open({ prefix: 'circ:' })
    await s.set('a', sess({ ok: true }))
    const bad = sess()
    bad.self = bad
    await assert.rejects(s.set('a', bad), TypeError)
    assert.deepEqual(await s.get('a'), sess({ ok: true }))
  })

  it('reports a WRONGTYPE key with a coded error', async () => {
    const s = open({ prefix: 'wt:' })
    redis.cli('SADD', 'wt:set', 'x')
    await assert.rejects(s.get('set'), (e) => e.code === 'ERR_WRONG_TYPE' && /WRONGTYPE/.test(e.message))
  })

  it('reads connection settings from a node-redis client that is not connected', async () => {
    const client = createClient({ url: `${redis.url}/3` })
    const s = new RedisStore({ client, prefix: 'nr:' })
    stores.push(s)
    assert.equal(s.client, client)
    await s.set('a', sess())
    assert.equal(client.isOpen, false)
    assert.equal(redis.cli('-n', '3', 'EXISTS', 'nr:a'), '1')
    assert.equal(redis.cli('EXISTS', 'nr:a'), '0')
  })

  it('reads connection settings from an ioredis client that is not connected', async () => {
    const client = new Redis({ host: '127.0.0.1', port: redis.port, db: 5, lazyConnect: true })
    const s = new RedisStore({ client, prefix: 'io:' })
    stores.push(s)
    await s.set('a', sess())
    assert.equal(client.status, 'wait')
    assert.equal(redis.cli('-n', '5', 'EXISTS', 'io:a'), '1')
    client.disconnect()
  })

  it('rejects bad options with a coded TypeError', () => {
    assert.throws(() => new RedisStore({ url: 'http://nope' }), (e) => e instanceof TypeError && e.code === 'ERR_BAD_ARGUMENT')
    assert.throws(() => new RedisStore({ url: redis.url, commandTimeout: -5 }), (e) => e.code === 'ERR_BAD_ARGUMENT')
    assert.throws(() => new RedisStore({ client: {} }), (e) => e.code === 'ERR_BAD_ARGUMENT')
  })

  it('rejects calls after close()', async () => {
    const s = open({ prefix: 'closed:' })
    await s.set('a', sess())
    s.close()
    await assert.rejects(s.get('a'), (e) => e.code === 'ERR_CLOSED')
  })

  it('close() releases every connection so the process can exit', async () => {
    const { execFile } = require('node:child_process')
    const own = await startRedis()
    try {
      const script = `
        const { RedisStore } = require(${JSON.stringify(require.resolve('..'))})
        ;(async () => {
          const open = []
          for (let i = 0; i < 50; i++) {
            const s = new RedisStore({ url: ${JSON.stringify(own.url)}, prefix: 'exit:' })
            await s.set('k' + i, { cookie: {} })
            await new Promise((r) => setTimeout(r, 5))
            await s.get('k' + i)
            s.close()
          }
          // Closed stores must leave nothing behind on the server while this process lives.
          await new Promise((r) => setTimeout(r, 1500))
          const { execFileSync } = require('node:child_process')
          const list = execFileSync('redis-cli', ['-p', '${own.port}', 'CLIENT', 'LIST'], { encoding: 'utf8' })
          process.stdout.write(String(list.trim().split('\\n').length))
        })()`
      const t0 = Date.now()
      const out = await new Promise((resolve, reject) =>
        execFile(process.execPath, ['-e', script], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
      )
      assert.ok(Date.now() - t0 < 10_000, 'the child exited by itself')
      assert.equal(out, '1', 'only the CLIENT LIST connection itself is left')
      assert.equal(own.cli('EVAL', "return #redis.call('KEYS', 'exit:*')", '0'), '50')
    } finally {
      await own.close()
    }
  })

  it('emits connect once the connection is up', async () => {
    const s = new RedisStore({ url: redis.url })
    stores.push(s)
    const connected = new Promise((resolve) => s.once('connect', resolve))
    await within(connected, 5000, 'connect event')
  })
})
