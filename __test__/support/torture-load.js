'use strict'
// Load under a fault schedule, for __test__/torture.test.js: runs in a child process while the
// parent applies the faults (so a store that aborts takes down this child, not the runner).
//   node torture-load.js '<{stores: [{name, options}], lanes, keys}>'   (with an IPC channel)
// Each store gets `lanes` lanes; a lane loops over its own `keys` keys doing set, get and, on
// every 4th pass, destroy, one call at a time. Every call is timed with performance.now().
// A lane's calls are its own keys' only writers, so what each key must hold is known: the last
// write (set or destroy) acknowledged, unless a write after it was rejected.
//
// IPC: the child sends {ready}; the parent sends {start}, later {stop, windows}, where windows
// are [from, to] wall-clock ms (Date.now) in which Redis itself may lose an acknowledged write
// (asynchronous replication to a replica about to be promoted). The child stops its lanes,
// reads every key back, and sends {report}; then it closes its stores and must exit by itself.
const { RedisStore } = require('../..')

process.exitCode = 1
const config = JSON.parse(process.argv[2])
const LANES = config.lanes || 8
const KEYS = config.keys || 25
const PAD = 'x'.repeat(100)

const isCoded = (e) => !!e && typeof e.code === 'string' && e.code.startsWith('ERR_')

/** A call that has not settled this long after its commandTimeout is counted as hung and left behind. */
const HUNG_AFTER_MS = 10000

function makeRun({ name, options }) {
  const store = new RedisStore(options)
  const limit = options.commandTimeout
  const stats = { name, commandTimeout: limit, ok: 0, rejected: {}, maxMs: 0, slowest: null, overLimit: 0, hung: 0, uncoded: [], byOp: {} }
  // Per key: the last write acknowledged ({op, value, at}) or null; `uncertain` once a write
  // after it was rejected (it may or may not have been applied).
  const keys = new Map()
  // Gets that returned something else than the key's known state: checked against the windows at the end.
  const mismatches = []
  let stopping = false

  async function timed(op, key, call) {
    const t0 = performance.now()
    let watchdog
    const hung = new Promise((resolve) => {
      watchdog = setTimeout(() => resolve({ hung: true }), limit + HUNG_AFTER_MS)
    })
    const outcome = await Promise.race([
      call().then(
        (value) => ({ value }),
        (error) => ({ error }),
      ),
      hung,
    ])
    clearTimeout(watchdog)
    const ms = performance.now() - t0
    const o = (stats.byOp[op] ||= { ok: 0, rejected: 0, maxMs: 0 })
    if (ms > stats.maxMs) {
      stats.maxMs = ms
      stats.slowest = { op, key, ms: Math.round(ms), outcome: outcome.hung ? 'hung' : outcome.error ? outcome.error.code || String(outcome.error) : 'ok', at: Date.now() }
    }
    if (ms > o.maxMs) o.maxMs = ms
    if (ms > limit + 1000) stats.overLimit++
    if (outcome.hung) {
      stats.hung++
      return { ok: false, code: 'HUNG' }
    }
    if (outcome.error) {
      const e = outcome.error
      const code = isCoded(e) ? e.code : 'UNCODED'
      if (!isCoded(e) && stats.uncoded.length < 5) stats.uncoded.push(String(e && e.stack))
      stats.rejected[code] = (stats.rejected[code] || 0) + 1
      o.rejected++
      return { ok: false, code }
    }
    stats.ok++
    o.ok++
    return { ok: true, value: outcome.value }
  }

  function noteWrite(key, op, value, r) {
    const k = keys.get(key)
    if (r.ok) keys.set(key, { op, value, at: Date.now(), uncertain: false })
    else keys.set(key, { ...(k || { op: 'destroy', value: null, at: 0 }), uncertain: true })
  }

  async function lane(l) {
    for (let i = 0; !stopping; i++) {
      const key = `k-${l}-${i % KEYS}`
      const value = { cookie: {}, l, i, pad: PAD }
      const w = await timed('set', key, () => store.set(key, value))
      noteWrite(key, 'set', value, w)
      if (stopping) break
      const known = keys.get(key)
      const g = await timed('get', key, () => store.get(key))
      if (g.ok && known && !known.uncertain) {
        const want = known.op === 'set' ? known.value.i : null
        const got = g.value === null ? null : g.value.i
        if (got !== want) mismatches.push({ key, want, got, writeAckedAt: known.at, readAt: Date.now() })
      }
      if (i % 4 === 3 && !stopping) {
        const d = await timed('destroy', key, () => store.destroy(key))
        noteWrite(key, 'destroy', null, d)
      }
    }
  }

  let running = null
  return {
    stats,
    start() {
      running = Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)))
    },
    async stop() {
      stopping = true
      await running
    },
    /** Reads every key back and classifies what it finds. */
    async verify(windows) {
      const inWindow = (t) => windows.some(([a, b]) => t >= a && t <= b)
      const v = { checked: 0, readBack: 0, lostCount: 0, lost: [], uncertain: 0, inWindow: 0, inWindowLost: 0, unreadable: [], onlineMismatches: 0, onlineMismatchesInWindow: 0, mismatchSamples: [] }
      for (const m of mismatches) {
        if (inWindow(m.writeAckedAt)) v.onlineMismatchesInWindow++
        else {
          v.onlineMismatches++
          if (v.mismatchSamples.length < 10) v.mismatchSamples.push(m)
        }
      }
      for (const [key, k] of keys) {
        if (k.uncertain) {
          v.uncertain++
          continue
        }
        let got
        let read = null
        for (let attempt = 0; attempt < 3 && read === null; attempt++) {
          try {
            got = await store.get(key)
            read = true
          } catch (e) {
            if (attempt === 2) v.unreadable.push(`${key}: ${e.code || e}`)
            else await new Promise((r) => setTimeout(r, 500))
          }
        }
        if (!read) continue
        const want = k.op === 'set' ? k.value.i : null
        const have = got === null ? null : got.i
        if (inWindow(k.at)) {
          v.inWindow++
          if (have !== want) v.inWindowLost++
          continue
        }
        v.checked++
        if (have === want) v.readBack++
        else {
          v.lostCount++
          if (v.lost.length < 10) v.lost.push({ key, want, have, ackedAt: k.at })
        }
      }
      v.keys = keys.size
      return v
    },
    close() {
      store.close()
    },
    driver: () => store.stats().driver,
    link: () => store.stats().link,
  }
}

const runs = config.stores.map(makeRun)
process.on('message', async (m) => {
  if (m.start) {
    for (const r of runs) r.start()
    return
  }
  if (m.stop) {
    const t0 = performance.now()
    await Promise.all(runs.map((r) => r.stop()))
    const drained = Math.round(performance.now() - t0)
    const report = { drainedMs: drained, stores: [] }
    for (const r of runs) {
      report.stores.push({ ...r.stats, maxMs: Math.round(r.stats.maxMs), driver: r.driver(), link: r.link(), verify: await r.verify(m.windows) })
    }
    for (const r of runs) r.close()
    process.send({ report }, () => {
      process.exitCode = 0
      process.disconnect()
    })
  }
})
process.send({ ready: true, driver: runs[0].driver() })
