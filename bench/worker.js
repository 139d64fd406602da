'use strict'
// One benchmark round for one store, in its own process so that CPU, RSS and JIT state are
// its own. Prints one JSON line: per phase ops/s and CPU µs per op.
const fs = require('node:fs')
const { STORES } = require('./stores.js')

// The target is the JSON of bench/stores.js's target: which servers, which topology.
// `phases` defaults to set,get,touch,destroy; `hot` reads 1,000 sessions over and over (`storm`
// too, named apart for when another process rewrites them meanwhile); `expiring` reads 1,000
// sessions that live 1 s, writing each again once it has expired.
//
// `shape` is how the calls are made (the same for every store):
// - `reused` (the default): 10,000 ids and 10,000 prebuilt sessions used over and over, after a
//   warm-up of one call of each of set, get and touch per lane (CONCURRENCY calls in flight,
//   no more than a phase has);
// - `plain`: what a user's first script does: OPS distinct ids per phase, a fresh session
//   object (with a new Date) on every set and touch, no warm-up, promise calls;
// - `callback`: `plain` made the way express-session calls a store: a callback per call
//   (`store.set(sid, sess, cb)`), no promise in the harness.
const [name, targetJson, opsArg, concArg, phasesArg, shapeArg] = process.argv.slice(2)
const SHAPE = shapeArg || 'reused'
if (!['reused', 'plain', 'callback'].includes(SHAPE)) throw new Error(`unknown shape ${SHAPE}`)
const PHASE_LIST = (phasesArg || 'set,get,touch,destroy').split(',')
const HOT = 1_000
const OPS = Number(opsArg) || 100_000
const CONCURRENCY = Number(concArg) || 64
const IDS = 10_000
// Phases that read the HOT sessions over and over, each read once first.
const HOT_READS = new Set(['hot', 'storm'])

function session(i, lifeMs = 86_400_000) {
  return {
    cookie: {
      originalMaxAge: lifeMs,
      // express-session hands stores a Date here.
      expires: new Date(Date.now() + lifeMs),
      secure: false,
      httpOnly: true,
      path: '/',
      sameSite: 'lax',
    },
    userId: `user-${String(i).padStart(7, '0')}`,
    csrfToken: 'b1946ac92492d2347c6235b4d2611184a8f3',
    cart: [
      { sku: 'SKU-1001', qty: 1, price: 19.99 },
      { sku: 'SKU-2002', qty: 2, price: 5.5 },
    ],
    flash: [],
  }
}

// utime + stime of the JS (main) thread, in µs, from the kernel's per-task accounting.
const TICK_US = 1e6 / 100
function mainThreadCpuUs() {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_US
}
function processCpuUs() {
  const u = process.cpuUsage()
  return u.user + u.system
}

/**
 * Whether the /proc reading is the JS thread's CPU in this runtime (Node, or Bun, whose
 * `process.pid` must also be its main thread's task id): 100 ms of busy JS must show on that
 * task, within the 10 ms ticks, and no more than the whole process used. If not (no /proc, or
 * a runtime that runs JS on another thread), the JS-thread column falls back to the whole
 * process's `process.cpuUsage()`, and the result says so.
 */
function probeJsThreadCpu() {
  try {
    const t0 = mainThreadCpuUs()
    const p0 = processCpuUs()
    const w0 = performance.now()
    while (performance.now() - w0 < 100);
    const thread = mainThreadCpuUs() - t0
    const whole = processCpuUs() - p0
    if (thread >= 0.5 * whole - 2 * TICK_US && thread <= whole + 2 * TICK_US && thread > 0) return { source: '/proc/self/task/<pid>/stat' }
    return { source: 'process.cpuUsage', why: `the main task's CPU (${thread} µs) did not match 100 ms of busy JS (whole process ${whole} µs)` }
  } catch (e) {
    return { source: 'process.cpuUsage', why: `/proc/self/task/<pid>/stat unreadable: ${e.message}` }
  }
}
const JS_CPU = probeJsThreadCpu()
const jsThreadCpuUs = JS_CPU.source === 'process.cpuUsage' ? processCpuUs : mainThreadCpuUs

// One session read and written by 50 lanes at once (a page firing parallel requests with one
// cookie): `hotwrite` is get + set per lane step, `hotread` get + touch. Each step counts two
// calls.
const HOT_LANES = 50

/** Runs `lanes` copies of `lane` at once; ops/s and CPU per op for the `count()` ops they made. */
async function timed(lanes, lane, count) {
  const t0 = process.hrtime.bigint()
  const js0 = jsThreadCpuUs()
  const all0 = processCpuUs()
  await Promise.all(Array.from({ length: lanes }, lane))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const n = count()
  return {
    opsPerSec: n / seconds,
    jsCpuUsPerOp: (jsThreadCpuUs() - js0) / n,
    processCpuUsPerOp: (processCpuUs() - all0) / n,
  }
}

async function hotPhase(store, op, sessions) {
  const sess = sessions[0]
  await store.set('hot-session', sess)
  let next = 0
  return timed(
    HOT_LANES,
    async () => {
      while (next < OPS) {
        next += 2
        const got = await store.get('hot-session')
        if (op === 'hotwrite') await store.set('hot-session', got || sess)
        else await store.touch('hot-session', got || sess)
      }
    },
    () => next,
  )
}

/** A phase of the `plain` and `callback` shapes: ids `p-0` … `p-(OPS-1)`, fresh sessions. */
function freshPhase(store, op) {
  let next = 0
  const sid = (i) => `p-${i}`
  // Call `i` of the phase: a promise without `cb`, or `cb` called back.
  const call = (i, cb) => {
    if (op === 'set') return store.set(sid(i), session(i), cb)
    if (op === 'get') return store.get(sid(i), cb)
    if (op === 'touch') return store.touch(sid(i), session(i), cb)
    return store.destroy(sid(i), cb)
  }
  if (SHAPE === 'plain') {
    return timed(
      CONCURRENCY,
      async () => {
        while (next < OPS) await call(next++)
      },
      () => OPS,
    )
  }
  // Callbacks: each lane calls again from the previous call's callback.
  return timed(
    CONCURRENCY,
    () =>
      new Promise((resolve, reject) => {
        const step = () => {
          if (next >= OPS) return resolve()
          let sync = true
          call(next++, (err) => {
            if (err) return reject(err)
            // A store that calls back at once would grow the stack: go on from a fresh turn.
            if (sync) setImmediate(step)
            else step()
          })
          sync = false
        }
        step()
      }),
    () => OPS,
  )
}

function phase(store, op, sessions) {
  if (op === 'hotwrite' || op === 'hotread') return hotPhase(store, op, sessions)
  if (SHAPE !== 'reused') return freshPhase(store, op)
  let next = 0
  return timed(
    CONCURRENCY,
    async () => {
      while (next < OPS) {
        const i = next++
        const sid = `bench-${i % (HOT_READS.has(op) ? HOT : IDS)}`
        if (op === 'set') await store.set(sid, sessions[i % IDS])
        else if (op === 'get' || HOT_READS.has(op)) await store.get(sid)
        else if (op === 'expiring') {
          const id = `expiring-${i % HOT}`
          if ((await store.get(id)) === null) await store.set(id, session(i, 1000))
        }
        else if (op === 'touch') await store.touch(sid, sessions[i % IDS])
        else await store.destroy(sid)
      }
    },
    () => OPS,
  )
}

async function main() {
  const made = await STORES[name](JSON.parse(targetJson))
  // A callback-only store (express-session's MemoryStore) is called as it is in `callback`.
  const store = SHAPE === 'callback' && made.callbackStore ? made.callbackStore : made.store
  const close = made.close
  const sessions = SHAPE === 'reused' ? Array.from({ length: IDS }, (_, i) => session(i)) : []
  if (SHAPE === 'reused') {
    // Warm-up: connections and a first pass of JIT, one call per lane of each kind, the same
    // for every store (no more calls in flight than a phase has).
    for (const op of ['set', 'get', 'touch']) {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, (_, i) => (op === 'get' ? store.get(`bench-${i}`) : store[op](`bench-${i}`, sessions[i]))),
      )
    }
  }
  const result = {
    name,
    shape: SHAPE,
    // eslint-disable-next-line no-undef
    runtime: process.versions.bun ? `bun ${Bun.version}` : `node ${process.version}`,
    driver: typeof store.stats === 'function' ? store.stats().driver : undefined,
    jsCpu: JS_CPU,
    sessionBytes: JSON.stringify(session(0)).length,
    phases: {},
  }
  for (const op of PHASE_LIST) {
    // A hot session has been read before: one read of each first.
    if (HOT_READS.has(op)) await Promise.all(Array.from({ length: HOT }, (_, i) => store.get(`bench-${i}`)))
    result.phases[op] = await phase(store, op, sessions)
  }
  result.peakRssMb = process.resourceUsage().maxRSS / 1024
  await close()
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
