'use strict'
// The prom-client recipe in docs/observability.md (examples/prometheus.js) against a store on a
// real redis-server: the scrape shows what the test did.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const client = require('prom-client')
const { RedisStore } = require('..')
const { sessionStoreMetrics } = require('../examples/prometheus.js')
const { startRedis } = require('./support/redis.js')

describe('stats() through prom-client', () => {
  it('exports calls, errors, latency, in-flight and connection counts', async () => {
    const redis = await startRedis()
    const store = new RedisStore({ url: redis.url, prefix: 'prom:' })
    const registry = new client.Registry()
    try {
      sessionStoreMetrics(client, store, { registry, labels: { store: 'web' } })
      for (let i = 0; i < 5; i++) await store.set(`s${i}`, { cookie: {}, n: i })
      for (let i = 0; i < 3; i++) await store.get(`s${i}`)
      redis.cli('HSET', 'prom:h', 'f', 'v')
      await assert.rejects(store.get('h'), { code: 'ERR_WRONG_TYPE' })
      const text = await registry.metrics()
      assert.match(text, /^session_store_calls_total\{op="set",store="web"\} 5$/m)
      assert.match(text, /^session_store_calls_total\{op="get",store="web"\} 4$/m)
      assert.match(text, /^session_store_errors_total\{op="get",code="ERR_WRONG_TYPE",store="web"\} 1$/m)
      assert.match(text, /^session_store_latency_seconds\{op="set",quantile="0.99",store="web"\} [0-9.e-]+$/m)
      assert.match(text, /^session_store_in_flight\{store="web"\} 0$/m)
      assert.match(text, /^session_store_connection_events_total\{event="connects",store="web"\} [1-9]/m)
      assert.doesNotMatch(text, /session_store_cache_total\{/, 'no cache series when the cache is off')
    } finally {
      store.close()
      await redis.close()
    }
  })
})
