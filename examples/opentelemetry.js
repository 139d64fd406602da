'use strict'
// OpenTelemetry spans for every Redis call a ferrisession store makes, from its
// `ferrisession:call` TracingChannel, with the database semantic conventions for Redis.
//
//   const api = require('@opentelemetry/api')
//   const { traceFerrisession } = require('./opentelemetry.js')
//   const stop = traceFerrisession(api)            // or traceFerrisession(api, { tracer })
//
// `@opentelemetry/api` is passed in, so this file needs no dependency of its own. Run it
// (`node examples/opentelemetry.js`) to see the spans of a few calls on memory://.

const dc = require('node:diagnostics_channel')

// Errors that are Redis's own answer; their first word (WRONGTYPE, NOPERM, …) is the status code.
const REDIS_ANSWERS = new Set(['ERR_REDIS', 'ERR_WRONG_TYPE', 'ERR_AUTH'])

/** Subscribes to `ferrisession:call`; returns the function that unsubscribes. */
function traceFerrisession(api, { tracer = api.trace.getTracer('ferrisession') } = {}) {
  const channel = dc.tracingChannel('ferrisession:call')
  const spans = new WeakMap()
  const handlers = {
    start(ctx) {
      const attributes = {
        'db.system.name': 'redis',
        'db.operation.name': ctx.operation,
        'db.namespace': String(ctx.database),
        'server.address': ctx.serverAddress,
        'ferrisession.adapter': ctx.adapter,
      }
      if (ctx.serverPort != null) attributes['server.port'] = ctx.serverPort
      // Keys can hold session ids (unless the store hashes them with `hashIds`): left out.
      spans.set(ctx, tracer.startSpan(ctx.operation, { kind: api.SpanKind.CLIENT, attributes }, api.context.active()))
    },
    error(ctx) {
      const span = spans.get(ctx)
      if (!span) return
      const err = ctx.error
      const code = (err && err.code) || 'ERR_OTHER'
      const answer = REDIS_ANSWERS.has(code) && /^([A-Z][A-Z_-]+)\b/.exec(err.message)
      if (answer) span.setAttribute('db.response.status_code', answer[1])
      span.setAttribute('error.type', answer ? answer[1] : code)
      span.recordException(err)
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: err && err.message })
    },
    asyncEnd(ctx) {
      const span = spans.get(ctx)
      if (!span) return
      spans.delete(ctx)
      span.end()
    },
  }
  channel.subscribe(handlers)
  return () => channel.unsubscribe(handlers)
}

module.exports = { traceFerrisession }

if (require.main === module) {
  const api = require('@opentelemetry/api')
  const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base')
  const { RedisStore } = require('..')
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const stop = traceFerrisession(api, { tracer: provider.getTracer('example') })
  const store = new RedisStore({ url: process.env.REDIS_URL || 'memory://' })
  ;(async () => {
    await store.set('example', { cookie: { expires: new Date(Date.now() + 60_000) }, user: 'ada' })
    await store.get('example')
    await store.destroy('example')
    for (const s of exporter.getFinishedSpans()) console.log(s.name, JSON.stringify(s.attributes))
    stop()
    store.close()
  })()
}
