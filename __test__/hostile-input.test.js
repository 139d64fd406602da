'use strict'
// Hostile and broken input: each gets a clear, coded error and disturbs nothing else.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore } = require('..')
const { startRedis, sleep, within } = require('./support/redis.js')

describe('hostile and broken input', () => {
  let redis
  const stores = []
  const open = (opts) => {
    const s = new RedisStore({ url: redis.url, ...opts })
    stores.push(s)
    return s
  }

  before(async () => {
    redis = await startRedis(['--enable-debug-command', 'yes'])
  })
  after(async () => {
    for (const s of stores) s.close()
    await redis.close()
  })

  it('rejects invalid JSON at a key with ERR_BAD_DATA and keeps serving', async () => {
    const s = open({ prefix: 'bad:' })
    redis.cli('SET', 'bad:broken', '{not json')
    await s.set('fine', { cookie: {}, ok: 1 })
    await assert.rejects(s.get('broken'), (e) => e.code === 'ERR_BAD_DATA' && e.cause instanceof SyntaxError)
    await assert.rejects(s.all(), (e) => e.code === 'ERR_BAD_DATA')
    assert.deepEqual(await s.get('fine'), { cookie: {}, ok: 1 })
  })

  it('rejects BigInt-holding and circular sessions with a TypeError, writing nothing', async () => {
    const s = open({ prefix: 'big:' })
    await assert.rejects(s.set('b', { cookie: {}, n: 10n }), TypeError)
    const circular = { cookie: {} }
    circular.self = circular
    await assert.rejects(s.set('c', circular), TypeError)
    assert.equal(redis.cli('EXISTS', 'big:b'), '0')
    assert.equal(redis.cli('EXISTS', 'big:c'), '0')
  })

  it('round-trips an 8 MB session', async () => {
    const s = open({ prefix: 'huge:', commandTimeout: 10_000 })
    const blob = 'x'.repeat(8 * 1024 * 1024)
    await s.set('h', { cookie: {}, blob })
    const back = await s.get('h')
    assert.equal(back.blob.length, blob.length)
    assert.equal(back.blob, blob)
    assert.deepEqual(await s.get('h2'), null)
  })

  it('keeps unicode, whitespace and glob characters in ids and prefixes exact', async () => {
    const prefix = 'ü n*[i]? \\ '
    const s = open({ prefix })
    const ids = ['😀 emoji', ' leading space', 'tab\there', 'star*', 'q?', '[br]', 'back\\slash', 'ünï']
    for (const id of ids) await s.set(id, { cookie: {}, id })
    for (const id of ids) assert.deepEqual(await s.get(id), { cookie: {}, id })
    assert.equal(redis.cli('EXISTS', `${prefix}😀 emoji`), '1')
    assert.deepEqual((await s.ids()).sort(), [...ids].sort())
    redis.cli('SET', 'ü nX[i]? \\ other', 'keep')
    await s.clear()
    assert.equal(await s.length(), 0)
    assert.equal(redis.cli('GET', 'ü nX[i]? \\ other'), 'keep')
  })

  it('bounds the calls waiting on a stalled server and fails the rest fast', async () => {
    const s = open({ prefix: 'flood:', maxPending: 20, commandTimeout: 2000 })
    await s.set('warm', { cookie: {} })
    await sleep(300)
    const { spawn } = require('node:child_process')
    const sleeper = spawn('redis-cli', ['-p', String(redis.port), 'DEBUG', 'SLEEP', '1'], { stdio: 'ignore' })
    // Listen for the exit now: the sleep may end before the calls below have settled.
    const slept = new Promise((r) => sleeper.on('exit', r))
    await sleep(100)
    const t0 = Date.now()
    const calls = Array.from({ length: 200 }, (_, i) => s.get(`k${i}`).then(() => 'ok', (e) => e.code))
    const overloaded = []
    for (const c of calls) c.then((r) => r === 'ERR_OVERLOADED' && overloaded.push(Date.now() - t0))
    const results = await within(Promise.all(calls), 5000, 'flooded calls settle')
    const counts = results.reduce((m, r) => ((m[r] = (m[r] || 0) + 1), m), {})
    assert.ok(counts.ERR_OVERLOADED >= 150, JSON.stringify(counts))
    assert.ok(Math.max(...overloaded) < 500, 'overloaded calls fail fast')
    await slept
    assert.deepEqual(await s.get('warm'), { cookie: {} })
  })
})

describe('connection settings no connection can be made from', () => {
  it('are refused at construction with ERR_BAD_ARGUMENT, on every topology', () => {
    const bad = [
      [{ url: 'rediss://127.0.0.1:1', tls: { ca: 'not a certificate' } }, /tls\.ca holds no PEM certificate/],
      [{ url: 'rediss://127.0.0.1:1', tls: { cert: '-----BEGIN CERTIFICATE-----' } }, /tls\.cert and tls\.key must be given together/],
      [{ path: '/tmp/ferrisession-none.sock', tls: true }, /TLS over a unix socket/],
      [{ sentinel: { nodes: ['redis://127.0.0.1:1'], name: 'm' }, tls: { ca: 'x' } }, /tls\.ca/],
      [{ cluster: { nodes: ['redis://127.0.0.1:1'] }, tls: { ca: 'x' } }, /tls\.ca/],
    ]
    for (const [options, message] of bad) {
      assert.throws(() => new RedisStore(options), (e) => e.code === 'ERR_BAD_ARGUMENT' && message.test(e.message), JSON.stringify(options))
    }
  })
})
