'use strict'
// The `ferrisession:call` TracingChannel, and examples/opentelemetry.js turning it into spans.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const dc = require('node:diagnostics_channel')
const api = require('@opentelemetry/api')
const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base')
const IORedis = require('ioredis')
const { RedisStore } = require('..')
const koaStore = require('../lib/koa.js')
const { storage } = require('../lib/hono.js')
const { traceFerrisession } = require('../examples/opentelemetry.js')
const { startRedis } = require('./support/redis.js')

const channel = dc.tracingChannel('ferrisession:call')

/** Records every event of the channel while `work()` runs. */
async function recorded(work) {
  const events = []
  const handlers = {}
  for (const name of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) handlers[name] = (ctx) => events.push({ name, ctx, code: ctx.error && ctx.error.code })
  channel.subscribe(handlers)
  try {
    await work()
  } finally {
    channel.unsubscribe(handlers)
  }
  return events
}

const session = () => ({ cookie: { expires: new Date(Date.now() + 60_000) }, user: 'ada' })

describe('the ferrisession:call channel', () => {
  let server

  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.close()
  })

  it('publishes each call with operation, adapter, keys, server and database', async () => {
    const store = new RedisStore({ url: `${server.url}/3` })
    try {
      const events = await recorded(async () => {
        await store.set('s1', session())
        await store.get('s1')
        await store.ids()
      })
      const starts = events.filter((e) => e.name === 'start').map((e) => e.ctx)
      assert.deepEqual(
        starts.map((c) => [c.operation, c.adapter, c.keys]),
        [
          ['set', 'express', ['sess:s1']],
          ['get', 'express', ['sess:s1']],
          ['ids', 'express', ['sess:*']],
        ],
      )
      for (const c of starts) {
        assert.equal(c.serverAddress, '127.0.0.1')
        assert.equal(c.serverPort, server.port)
        assert.equal(c.database, 3)
      }
      assert.deepEqual(
        events.filter((e) => e.ctx === starts[1]).map((e) => e.name),
        ['start', 'end', 'asyncStart', 'asyncEnd'],
      )
      assert.equal(JSON.parse(starts[1].result).user, 'ada')
    } finally {
      store.close()
    }
  })

  it('names the keys as Redis holds them: the client prefix first, ids hashed with hashIds', async () => {
    const client = new IORedis(server.url, { keyPrefix: 'app:', lazyConnect: true })
    const store = new RedisStore({ client, hashIds: true })
    try {
      const events = await recorded(() => store.set('s2', session()))
      const [start] = events.filter((e) => e.name === 'start')
      const [stored] = server.cli('--scan', '--pattern', 'app:sess:*').split('\n')
      assert.deepEqual(start.ctx.keys, [stored])
      assert.doesNotMatch(stored, /s2$/)
    } finally {
      store.close()
      client.disconnect()
    }
  })

  it('carries the error and its code on the error event', async () => {
    server.cli('RPUSH', 'sess:a-list', 'x')
    const store = new RedisStore({ url: server.url })
    try {
      const events = await recorded(() => assert.rejects(store.get('a-list'), { code: 'ERR_WRONG_TYPE' }))
      const error = events.find((e) => e.name === 'error')
      assert.ok(error, 'an error event')
      assert.equal(error.code, 'ERR_WRONG_TYPE')
      assert.equal(error.ctx.operation, 'get')
    } finally {
      store.close()
    }
  })

  it('names each adapter', async () => {
    const koa = koaStore({ url: server.url })
    const hono = storage({ url: server.url })
    try {
      const events = await recorded(async () => {
        await koa.set('k1', { a: 1 }, 60_000)
        await hono.get('h1')
      })
      assert.deepEqual(
        events.filter((e) => e.name === 'start').map((e) => e.ctx.adapter),
        ['koa', 'hono'],
      )
    } finally {
      koa.close()
      hono.close()
    }
  })

  it('publishes nothing once nobody listens', async () => {
    const store = new RedisStore({ url: server.url })
    const seen = []
    const handlers = { start: (ctx) => seen.push(ctx) }
    channel.subscribe(handlers)
    await store.get('x')
    channel.unsubscribe(handlers)
    assert.equal(channel.hasSubscribers ?? channel.start.hasSubscribers, false)
    await store.get('x')
    store.close()
    assert.equal(seen.length, 1)
  })
})

describe('examples/opentelemetry.js', () => {
  let server, exporter, provider, stop

  before(async () => {
    server = await startRedis()
    exporter = new InMemorySpanExporter()
    provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    stop = traceFerrisession(api, { tracer: provider.getTracer('test') })
  })
  after(async () => {
    stop()
    await provider.shutdown()
    await server.close()
  })

  it('turns calls into CLIENT spans with the Redis semantic conventions', async () => {
    exporter.reset()
    const store = new RedisStore({ url: `${server.url}/2` })
    try {
      await store.set('o1', session())
      await store.get('o1')
    } finally {
      store.close()
    }
    const spans = exporter.getFinishedSpans()
    assert.deepEqual(
      spans.map((s) => s.name),
      ['set', 'get'],
    )
    for (const s of spans) {
      assert.equal(s.kind, api.SpanKind.CLIENT)
      assert.equal(s.attributes['db.system.name'], 'redis')
      assert.equal(s.attributes['server.address'], '127.0.0.1')
      assert.equal(s.attributes['server.port'], server.port)
      assert.equal(s.attributes['db.namespace'], '2')
      assert.equal(s.status.code, api.SpanStatusCode.UNSET)
    }
    assert.equal(spans[1].attributes['db.operation.name'], 'get')
  })

  it('marks a Redis error with its status code', async () => {
    exporter.reset()
    server.cli('RPUSH', 'sess:wrong', 'x')
    const store = new RedisStore({ url: server.url })
    try {
      await assert.rejects(store.get('wrong'))
    } finally {
      store.close()
    }
    const [span] = exporter.getFinishedSpans()
    assert.equal(span.status.code, api.SpanStatusCode.ERROR)
    assert.equal(span.attributes['db.response.status_code'], 'WRONGTYPE')
    assert.equal(span.attributes['error.type'], 'WRONGTYPE')
    assert.equal(span.events[0].name, 'exception')
  })
})
