'use strict'
// A recipe to copy into an application: exports a store's stats() through prom-client, read
// at scrape time. prom-client is the application's dependency, not ferrisession's, so the
// module is passed in.
//
//   const client = require('prom-client')
//   const { sessionStoreMetrics } = require('./prometheus.js')   // this file, copied
//   sessionStoreMetrics(client, store)                           // the default registry
//   app.get('/metrics', async (req, res) => res.type(client.register.contentType).send(await client.register.metrics()))

/**
 * Registers gauges that read `store.stats()` on each scrape. Totals only grow, but are
 * gauges here because prom-client counters cannot be set to a value read elsewhere; use
 * `rate()` on them as on counters. `labels` are added to every series (for example
 * `{store: 'sessions'}` when a process has several stores).
 */
function sessionStoreMetrics(client, store, { registry = client.register, prefix = 'session_store_', labels = {} } = {}) {
  const extra = Object.keys(labels)
  const gauge = (name, help, labelNames, read) =>
    new client.Gauge({
      name: prefix + name,
      help,
      labelNames: [...labelNames, ...extra],
      registers: [registry],
      collect() {
        this.reset()
        const stats = store.stats()
        if (stats) read(stats, (values, v) => this.set({ ...values, ...labels }, v))
      },
    })
  gauge('calls_total', 'Calls settled, per operation', ['op'], (s, set) => {
    for (const [op, c] of Object.entries(s.calls)) set({ op }, c.calls)
  })
  gauge('errors_total', 'Calls rejected, per operation and error code', ['op', 'code'], (s, set) => {
    for (const [op, c] of Object.entries(s.calls)) for (const [code, n] of Object.entries(c.errors)) set({ op, code }, n)
  })
  gauge('latency_seconds', 'Call latency percentiles since the store opened', ['op', 'quantile'], (s, set) => {
    for (const [op, c] of Object.entries(s.calls)) {
      for (const [q, name] of [['0.5', 'p50'], ['0.9', 'p90'], ['0.99', 'p99'], ['1', 'max']]) set({ op, quantile: q }, c.latency[name] / 1000)
    }
  })
  gauge('in_flight', 'Calls started and not yet settled', [], (s, set) => set({}, s.inFlight))
  gauge('connection_events_total', 'Connects, reconnects and failovers followed', ['event'], (s, set) => {
    for (const [event, n] of Object.entries(s.link)) set({ event }, n)
  })
  gauge('cache_total', 'Near cache hits, misses and invalidations', ['result'], (s, set) => {
    if (!s.cache) return
    for (const result of ['hits', 'misses', 'invalidations']) set({ result }, s.cache[result])
  })
}

module.exports = { sessionStoreMetrics }
