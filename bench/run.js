'use strict'
// `npm run bench`: ferrisession against connect-redis 10 + node-redis 5 (the anchor) on every
// topology users run (plain TCP, TLS, Cluster, Sentinel; servers this script starts), against
// express-session's MemoryStore on memory://, in alternating rounds; plus connect-redis 8 +
// ioredis and a pure-JS floor on plain TCP, an end-to-end Express run, and calls rejected per
// fault (restart, failovers); and under Bun (the devDependency's binary), ours against
// connect-redis + node-redis and against a hand-written store over Bun's own Redis client.
// Writes bench/results.md, bench/results.json and bench/chart.svg, and the Bun section also to
// bench/results-bun.md and bench/results-bun.json; `BENCH_ONLY=bun` writes only those two.
// `BENCH_ONLY` names sections: the topologies (plain, tls, cluster, sentinel, memory, bun) and
// e2e, fastify, latency, hot, options, faults, sessions.
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { startRedis, startCluster, startSentinels, makeCertificates, loadThroughFault, sleep } = require('../__test__/support/redis.js')
const { STORES: FACTORIES } = require('./stores.js')
const net = require('node:net')

const ROUNDS = Number(process.env.BENCH_ROUNDS) || 5
const OPS = Number(process.env.BENCH_OPS) || 100_000
const CONCURRENCY = 64
const E2E_SECONDS = Number(process.env.BENCH_E2E_SECONDS) || 5
const E2E_ROUNDS = Number(process.env.BENCH_E2E_ROUNDS) || 3
const STORES = ['ferrisession', 'connect-redis', 'connect-redis8-ioredis', 'connect-redis-redis6', 'ioredis6-auto', 'floor']
const STORE_LABEL = {
  ferrisession: 'ferrisession',
  'connect-redis': 'connect-redis 10 + node-redis 5',
  'connect-redis8-ioredis': 'connect-redis 8 + ioredis',
  'connect-redis-redis6': `connect-redis 10 + node-redis ${peerVersions()['node-redis 6']}`,
  'ioredis6-auto': `ioredis ${peerVersions()['ioredis 6']} auto-pipelined store`,
  floor: 'pure-JS floor',
}
const PHASES = ['set', 'get', 'touch', 'destroy']
const OURS = 'ferrisession'
const ANCHOR = 'connect-redis'
// The connect-redis-shaped store a Bun user could write over Bun's built-in client.
const BUN_STORE = 'bun-redis'
const TARGET = 1.3
// How the calls are made (bench/worker.js): `plain` (distinct ids, a fresh session per call,
// no warm-up, promises), `callback` (the same through express-session's callbacks) and `reused`
// (10,000 ids and prebuilt sessions over and over, after a warm-up of one call per lane).
// `BENCH_SHAPES=plain,…` runs some of them.
const SHAPES = process.env.BENCH_SHAPES ? process.env.BENCH_SHAPES.split(',') : ['plain', 'callback', 'reused']
const SHAPE_LABEL = {
  plain: 'a. distinct ids, fresh sessions, no warm-up, promises',
  callback: "b. as a, with express-session's callbacks",
  reused: 'c. 10,000 reused ids and sessions, after a warm-up',
}
// The peers of the plain-TCP row in the `plain` and `callback` shapes: the anchor, the newest
// node-redis and ioredis, and the pure-JS floor.
const FRESH_STORES = ['ferrisession', 'connect-redis', 'connect-redis-redis6', 'ioredis6-auto', 'floor']
// `BENCH_ONLY=plain,bun,…`: the sections to run (all when unset).
const ONLY = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : null

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const geomean = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length)

function runWorker(store, target, phases = PHASES, runtime = process.execPath, shape = 'reused') {
  const out = execFileSync(runtime, [path.join(__dirname, 'worker.js'), store, JSON.stringify(target), String(OPS), String(CONCURRENCY), phases.join(','), shape], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop())
}

function ceiling(port) {
  const out = execFileSync('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-P', '16', '-t', 'set,get', '-d', '300', '-n', '200000', '-q'], {
    encoding: 'utf8',
  })
  const rate = (cmd) => Number((new RegExp(`${cmd}: ([\\d.]+) requests per second`).exec(out) || [])[1])
  return { set: rate('SET'), get: rate('GET') }
}

async function startApp(store, url, appFile = 'app.js') {
  const child = spawn(process.execPath, [path.join(__dirname, appFile), store, url], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())))
    child.once('exit', (code) => reject(new Error(`app for ${store} exited with ${code}`)))
  })
  return { port, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) }
}

function login(port) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/login', method: 'POST' }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.headers['set-cookie'][0].split(';')[0]))
    })
    req.on('error', reject)
    req.end()
  })
}

/** autocannon on /read and /write of `appFile` on `store`: 50 connections over `sessions` sessions. */
async function endToEnd(store, url, appFile = 'app.js', sessions = 50) {
  const app = await startApp(store, url, appFile)
  try {
    const cookies = []
    for (let i = 0; i < sessions; i++) cookies.push(await login(app.port))
    const result = {}
    for (const route of ['read', 'write']) {
      let n = 0
      const load = (duration) =>
        autocannon({
          url: `http://127.0.0.1:${app.port}`,
          connections: 50,
          duration,
          requests: [{ method: 'GET', path: `/${route}`, setupRequest: (req) => ({ ...req, headers: { cookie: cookies[n++ % cookies.length] } }) }],
        })
      await load(1) // warm-up: JIT in the app and in the load generator
      const r = await load(E2E_SECONDS)
      result[route] = { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.non2xx }
    }
    return result
  } finally {
    await app.stop()
  }
}

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—')

function chart(summary, file) {
  const W = 760
  const H = 340
  const left = 60
  const groupW = (W - left - 20) / PHASES.length
  const max = Math.max(...PHASES.flatMap((p) => [summary[OURS][p].opsPerSec, summary[ANCHOR][p].opsPerSec])) * 1.15
  const y = (v) => H - 40 - (v / max) * (H - 80)
  const bars = []
  PHASES.forEach((p, i) => {
    const x0 = left + i * groupW + 20
    const bw = (groupW - 50) / 2
    for (const [j, name, color] of [[0, OURS, '#d2691e'], [1, ANCHOR, '#4682b4']]) {
      const v = summary[name][p].opsPerSec
      bars.push(`<rect x="${x0 + j * (bw + 6)}" y="${y(v)}" width="${bw}" height="${H - 40 - y(v)}" fill="${color}"/>`)
      bars.push(`<text x="${x0 + j * (bw + 6) + bw / 2}" y="${y(v) - 4}" font-size="11" text-anchor="middle">${fmt(v / 1000)}k</text>`)
    }
    const floor = summary.floor[p].opsPerSec
    if (floor < max) bars.push(`<line x1="${x0 - 6}" x2="${x0 + 2 * bw + 12}" y1="${y(floor)}" y2="${y(floor)}" stroke="#333" stroke-dasharray="4 3"/>`)
    bars.push(`<text x="${x0 + bw + 3}" y="${H - 22}" font-size="13" text-anchor="middle">${p}</text>`)
  })
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${left}" y="20" font-size="14">Store operations per second (64 in flight, ~300-byte session), median of ${ROUNDS} rounds</text>
<line x1="${left}" x2="${W - 10}" y1="${H - 40}" y2="${H - 40}" stroke="#333"/>
${bars.join('\n')}
<rect x="${left}" y="${H - 14}" width="10" height="10" fill="#d2691e"/><text x="${left + 14}" y="${H - 5}" font-size="12">ferrisession</text>
<rect x="${left + 110}" y="${H - 14}" width="10" height="10" fill="#4682b4"/><text x="${left + 124}" y="${H - 5}" font-size="12">connect-redis 10 + node-redis 5</text>
<line x1="${left + 330}" x2="${left + 355}" y1="${H - 9}" y2="${H - 9}" stroke="#333" stroke-dasharray="4 3"/><text x="${left + 360}" y="${H - 5}" font-size="12">pure-JS floor (off scale when not drawn)</text>
</svg>
`
  fs.writeFileSync(file, svg)
}

/**
 * Runs the phases for `stores` on one topology, rounds alternating; returns medians. `runtime`
 * is the binary each worker runs under (Node by default).
 */
/**
 * What a redis-server this bench started has done so far: read events it processed (each is
 * one or more client writes that arrived together, so per call it is at most the client's
 * socket writes per call) and its CPU time in µs (from /proc/<pid>/stat).
 */
function serverCounters(redis) {
  const reads = Number(/total_reads_processed:(\d+)/.exec(redis.cli('INFO', 'stats'))?.[1] ?? NaN)
  let cpuUs = NaN
  try {
    const stat = fs.readFileSync(`/proc/${redis.proc.pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    cpuUs = (Number(f[11]) + Number(f[12])) * (1e6 / 100)
  } catch {}
  return { reads, cpuUs }
}

// The calls a worker makes before its phases: in the `reused` shape, one set, get and touch
// per lane; none in the others.
const warmupCalls = (shape) => (shape === 'reused' ? 3 * CONCURRENCY : 0)

function measure(title, stores, target, flush, phases = PHASES, runtime = process.execPath, server = null, shape = 'reused') {
  const runs = Object.fromEntries(stores.map((s) => [s, []]))
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so drift and warm-up favour no store.
    for (const store of stores.map((_, i) => stores[(i + round) % stores.length])) {
      flush()
      const before = server && serverCounters(server)
      const r = runWorker(store, target, phases, runtime, shape)
      if (server) {
        const after = serverCounters(server)
        const calls = warmupCalls(shape) + phases.length * OPS
        r.server = { readsPerCall: (after.reads - before.reads) / calls, cpuUsPerCall: (after.cpuUs - before.cpuUs) / calls }
      }
      runs[store].push(r)
      console.log(`${title}${shape === 'reused' ? '' : ` (${shape})`} round ${round + 1} ${store}: ` + phases.map((p) => `${p} ${fmt(r.phases[p].opsPerSec)}/s`).join(', '))
    }
  }
  const summary = {}
  for (const store of stores) {
    const first = runs[store][0]
    summary[store] = { peakRssMb: Math.max(...runs[store].map((r) => r.peakRssMb)), sessionBytes: first.sessionBytes, runtime: first.runtime, driver: first.driver }
    // Where the JS-thread column came from in each round (the worker falls back if /proc fails).
    const sources = [...new Set(runs[store].map((r) => r.jsCpu && r.jsCpu.source))]
    summary[store].jsCpuSource = sources.join(', ')
    const why = runs[store].map((r) => r.jsCpu && r.jsCpu.why).find(Boolean)
    if (why) summary[store].jsCpuFallback = why
    if (runs[store][0].server) {
      summary[store].server = Object.fromEntries(['readsPerCall', 'cpuUsPerCall'].map((k) => [k, median(runs[store].map((r) => r.server[k]))]))
    }
    for (const p of phases) {
      summary[store][p] = Object.fromEntries(
        ['opsPerSec', 'jsCpuUsPerOp', 'processCpuUsPerOp'].map((k) => [k, median(runs[store].map((r) => r.phases[p][k]))]),
      )
    }
  }
  return summary
}

/**
 * The near cache against no cache, shape by shape, on server `r`: distinct keys (the usual
 * phases, 10,000 keys reused), 1,000 hot keys, keys that expire, and 1,000 hot keys that
 * another process rewrites in a loop meanwhile (`storm-writer.js`, a storm of invalidations).
 * Calls per second, medians of alternating rounds.
 */
async function nearCacheShapes(r) {
  const stores = [OURS, 'ferrisession-cache']
  const target = { kind: 'plain', url: r.url }
  const shapes = measure('near cache', stores, target, () => r.cli('FLUSHALL'), ['set', 'get', 'touch', 'destroy', 'hot', 'expiring'])
  const storm = Object.fromEntries(stores.map((s) => [s, []]))
  const writerRounds = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const store of stores.map((_, i) => stores[(i + round) % stores.length])) {
      r.cli('FLUSHALL')
      const writer = spawn(process.execPath, [path.join(__dirname, 'storm-writer.js'), r.url], { stdio: ['ignore', 'pipe', 'inherit'] })
      let said = ''
      writer.stdout.on('data', (d) => (said += d))
      await new Promise((resolve, reject) => {
        writer.stdout.once('data', resolve)
        writer.once('exit', (code) => reject(new Error(`the storm writer exited with ${code}`)))
      })
      const started = performance.now()
      const res = runWorker(store, target, ['storm'])
      const seconds = (performance.now() - started) / 1000
      await new Promise((resolve) => (writer.removeAllListeners('exit'), writer.once('exit', resolve), writer.kill('SIGTERM')))
      writerRounds.push(Number(said.trim().split('\n').pop()) / seconds)
      storm[store].push(res.phases.storm.opsPerSec)
      console.log(`near cache storm round ${round + 1} ${store}: ${fmt(res.phases.storm.opsPerSec)}/s`)
    }
  }
  for (const store of stores) shapes[store].storm = { opsPerSec: median(storm[store]) }
  return { shapes, writerRoundsPerSec: median(writerRounds) }
}

/** The Bun binary the devDependency `bun` installed: {bin, version} or {skip: why}. */
function locateBun() {
  const root = path.join(__dirname, '..')
  const nm = path.join(root, 'node_modules')
  const exe = process.platform === 'win32' ? '.exe' : ''
  // node_modules/.bin/bun links to bun/bin/bun.exe, a placeholder until bun's postinstall
  // puts the platform binary there; without install scripts it is still in @oven/bun-<platform>.
  const oven = path.join(nm, '@oven')
  const candidates = [
    path.join(nm, '.bin', `bun${exe}`),
    path.join(nm, 'bun', 'bin', 'bun.exe'),
    ...(fs.existsSync(oven) ? fs.readdirSync(oven).map((p) => path.join(oven, p, 'bin', `bun${exe}`)) : []),
  ]
  const failures = []
  for (const bin of candidates) {
    if (!fs.existsSync(bin)) continue
    try {
      const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe'] })
      const version = /\d+\.\d+\.\d+\S*/.exec(out)
      if (version) return { bin, version: version[0] }
      failures.push(`${path.relative(root, bin)}: printed no version`)
    } catch (e) {
      failures.push(`${path.relative(root, bin)}: ${String(e.stderr || '').trim().split('\n')[0] || e.message}`)
    }
  }
  const where = `${process.platform}-${process.arch}`
  if (failures.length) return { skip: `Bun cannot run on ${where}: ${failures.join('; ')}` }
  return { skip: `no Bun binary for ${where} in node_modules (the devDependency bun installs it with npm ci)` }
}

const ratios = (summary, ours, anchor, key) => PHASES.map((p) => summary[ours][p][key] / summary[anchor][p][key])

/** The servers of one topology: {target, flush(), close()}. */
const TOPOLOGIES = [
  {
    name: 'plain',
    title: 'one server, plain TCP',
    stores: STORES,
    anchor: ANCHOR,
    async setup() {
      const r = await startRedis()
      return { target: { kind: 'plain', url: r.url }, flush: () => r.cli('FLUSHALL'), close: () => r.close(), redis: r }
    },
  },
  {
    name: 'tls',
    title: 'one server, TLS',
    stores: [OURS, ANCHOR],
    anchor: ANCHOR,
    async setup() {
      const certs = makeCertificates()
      const r = await startRedis([], { tls: certs })
      return {
        target: { kind: 'tls', url: r.url, ca: certs.ca },
        flush: () => r.cli('FLUSHALL'),
        close: async () => {
          await r.close()
          certs.remove()
        },
      }
    },
  },
  {
    name: 'cluster',
    title: 'Redis Cluster, 3 primaries + 3 replicas',
    stores: [OURS, ANCHOR],
    anchor: ANCHOR,
    async setup() {
      const c = await startCluster()
      return { target: { kind: 'cluster', nodes: c.seeds }, flush: () => {}, close: () => c.close() }
    },
  },
  {
    name: 'sentinel',
    title: 'Sentinel, 1 primary + 1 replica, 3 sentinels',
    stores: [OURS, ANCHOR],
    anchor: ANCHOR,
    async setup() {
      const g = await startSentinels()
      return {
        target: { kind: 'sentinel', sentinels: g.sentinels.map((x) => x.url), name: 'mymaster' },
        flush: () => g.primary.cli('FLUSHALL'),
        close: () => g.close(),
      }
    },
  },
  {
    name: 'memory',
    title: 'embedded memory:// against express-session MemoryStore',
    stores: [OURS, 'memorystore'],
    anchor: 'memorystore',
    async setup() {
      return { target: { kind: 'memory', url: 'memory://' }, flush: () => {}, close: async () => {} }
    },
  },
  {
    // Every store of this one runs under the Bun binary, not Node; two anchors.
    name: 'bun',
    title: 'under Bun, one server, plain TCP',
    stores: [OURS, ANCHOR, BUN_STORE],
    anchor: ANCHOR,
    anchors: [ANCHOR, BUN_STORE],
    async setup() {
      const bun = locateBun()
      if (bun.skip) return { skip: bun.skip }
      const r = await startRedis()
      return { target: { kind: 'plain', url: r.url }, flush: () => r.cli('FLUSHALL'), close: () => r.close(), runtime: bun.bin, runtimeVersion: bun.version }
    },
  },
]

const OPTION_STORES = [OURS, ANCHOR, 'ferrisession-untraced', 'ferrisession-traced', 'ferrisession-hashids', 'ferrisession-encrypted', 'ferrisession-hashids-encrypted', 'ferrisession-userid']
const OPTION_LABEL = {
  [OURS]: 'ferrisession, no option',
  'ferrisession-untraced': 'ferrisession, tracing channel left out (FERRISESSION_TRACING=off)',
  'ferrisession-traced': 'ferrisession, a subscriber on ferrisession:call',
  [ANCHOR]: 'connect-redis 10 + node-redis 5',
  'ferrisession-hashids': 'ferrisession, hashIds',
  'ferrisession-encrypted': 'ferrisession, encryption (AES-256-GCM)',
  'ferrisession-hashids-encrypted': 'ferrisession, hashIds + encryption',
  'ferrisession-userid': 'ferrisession, userId (log out everywhere index)',
}

const ANCHOR_LABEL = {
  'connect-redis': 'connect-redis 10 + node-redis 5',
  memorystore: 'express-session MemoryStore',
  'bun-redis': 'hand-written store over Bun.redis',
}

/** Faults ridden through by 8 lanes of set + get; each store gets fresh servers. */
const FAULTS = [
  {
    name: 'restart 0.5 s',
    async setup() {
      const r = await startRedis()
      return {
        target: { kind: 'plain', url: r.url, commandTimeout: 6000 },
        fault: async () => {
          await r.stop()
          await sleep(500)
          await r.start()
        },
        close: () => r.close(),
      }
    },
  },
  {
    name: 'Cluster primary failover',
    async setup() {
      const c = await startCluster()
      return {
        target: { kind: 'cluster', nodes: c.seeds, commandTimeout: 8000 },
        fault: async () => {
          await c.primaryFor('sess:lane-0-0').stop()
          await sleep(3000)
        },
        close: () => c.close(),
      }
    },
  },
  {
    name: 'Sentinel failover',
    async setup() {
      const g = await startSentinels()
      return {
        target: { kind: 'sentinel', sentinels: g.sentinels.map((x) => x.url), name: 'mymaster', commandTimeout: 8000 },
        fault: async () => {
          await g.primary.stop()
          await sleep(3500)
        },
        close: () => g.close(),
      }
    },
  },
]

async function faults() {
  const out = {}
  for (const f of FAULTS) {
    out[f.name] = {}
    for (const store of [OURS, ANCHOR]) {
      const env = await f.setup()
      const { store: s, close } = await FACTORIES[store](env.target)
      try {
        const r = await loadThroughFault(s, env.fault)
        out[f.name][store] = r
        console.log(`fault ${f.name}, ${store}: ${r.failed} rejected ${JSON.stringify(r.codes)}, ${r.ok} succeeded (${r.okAfter} after)`)
      } finally {
        // A client that never recovered may never finish closing either.
        await Promise.race([close(), sleep(3000)])
        await env.close()
      }
    }
  }
  return out
}

/**
 * A TCP proxy to `port` that holds every chunk `delayMs` before passing it on, both ways: a
 * network round trip on loopback. Node's timers fire on whole milliseconds, so the delay is
 * at least 1 ms each way; the round trip is measured and reported.
 */
function delayProxy(port, delayMs) {
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const pipe = (from, to) => {
      from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs))
      from.on('close', () => setTimeout(() => to.destroy(), delayMs))
      from.on('error', () => {})
    }
    pipe(client, upstream)
    pipe(upstream, client)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, close: () => server.close() })))
}

/** Median of 200 PINGs through the proxy, in ms. */
function measuredRoundTrip(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const times = []
    let t0 = 0
    const ping = () => {
      t0 = process.hrtime.bigint()
      socket.write('*1\r\n$4\r\nPING\r\n')
    }
    socket.on('data', () => {
      times.push(Number(process.hrtime.bigint() - t0) / 1e6)
      if (times.length === 200) {
        socket.destroy()
        resolve(median(times))
      } else ping()
    })
    socket.on('error', reject)
    socket.on('connect', ping)
  })
}

const LATENCY_STORES = ['connect-redis', 'ferrisession', 'ferrisession-near']
const LATENCY_RATE = 500
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS) || 5

/**
 * GETs `path` at a fixed `rate` for `seconds`, each request sent on schedule whether or not
 * earlier ones have been answered (keep-alive sockets, as many as needed), and its latency
 * timed with hrtime from the moment it was sent to the end of its response. Percentiles in ms.
 */
function fixedRate(port, path, cookies, rate, seconds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const latencies = []
  let sent = 0
  let errors = 0
  const total = Math.round(rate * seconds)
  const start = process.hrtime.bigint()
  return new Promise((resolve) => {
    let answered = 0
    const one = () => {
      const t0 = process.hrtime.bigint()
      const req = http.get({ host: '127.0.0.1', port, path, agent, headers: { cookie: cookies[sent % cookies.length] } }, (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode !== 200) errors++
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6)
          if (++answered === total) finish()
        })
      })
      req.on('error', () => {
        errors++
        if (++answered === total) finish()
      })
      sent++
    }
    const tick = () => {
      const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate) + 1)
      while (sent < due) one()
      if (sent < total) setTimeout(tick, 1)
    }
    const finish = () => {
      agent.destroy()
      latencies.sort((a, b) => a - b)
      const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
      resolve({ p50: Number(at(0.5).toFixed(2)), p99: Number(at(0.99).toFixed(2)), requests: latencies.length, errors })
    }
    tick()
  })
}

/** Redis commands run since the last CONFIG RESETSTAT, less the INFO that reads them. */
function commandsRun(redis) {
  let total = 0
  for (const line of redis.cli('INFO', 'commandstats').split('\n')) {
    const m = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line)
    if (m && m[1] !== 'info' && m[1] !== 'config') total += Number(m[2])
  }
  return total
}

const SESSION_IMPLEMENTATIONS = ['ferrisession', 'ferrisession-cache', 'hand-written']

/**
 * One round of bench/sessions-worker.js: validate throughput per shape, and Redis commands per
 * validate read from INFO commandstats around each shape (the worker waits for each reading).
 */
function sessionsRound(name, redis) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'sessions-worker.js'), name, redis.url, String(OPS), String(CONCURRENCY)], { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    let mark = 0
    const commands = {}
    child.stdout.on('data', (chunk) => {
      out += chunk
      let i
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i)
        out = out.slice(i + 1)
        if (line === '@@reused' || line === '@@fresh') {
          mark = commandsRun(redis)
          child.stdin.write('\n')
        } else if (line === '@@reused-done') {
          commands.reused = (commandsRun(redis) - mark) / OPS
          child.stdin.write('\n')
        } else if (line.startsWith('{')) {
          const r = JSON.parse(line)
          commands.fresh = (commandsRun(redis) - mark) / OPS
          for (const shape of Object.keys(r.phases)) r.phases[shape].commandsPerValidate = commands[shape]
          child.stdin.end()
          resolve(r)
        }
      }
    })
    child.once('exit', (code) => code !== 0 && reject(new Error(`sessions worker ${name} exited with ${code}`)))
  })
}

async function sessionsBench() {
  const redis = await startRedis()
  try {
    const runs = Object.fromEntries(SESSION_IMPLEMENTATIONS.map((s) => [s, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of SESSION_IMPLEMENTATIONS.map((_, i) => SESSION_IMPLEMENTATIONS[(i + round) % SESSION_IMPLEMENTATIONS.length])) {
        redis.cli('FLUSHALL')
        const r = await sessionsRound(name, redis)
        runs[name].push(r)
        console.log(`sessions round ${round + 1} ${name}: ` + Object.entries(r.phases).map(([k, v]) => `${k} ${fmt(v.opsPerSec)}/s, ${fmt(v.commandsPerValidate, 3)} cmd`).join('; '))
      }
    }
    const summary = {}
    for (const name of SESSION_IMPLEMENTATIONS) {
      summary[name] = {}
      for (const shape of ['reused', 'fresh']) {
        summary[name][shape] = Object.fromEntries(['opsPerSec', 'processCpuUsPerOp', 'commandsPerValidate'].map((k) => [k, median(runs[name].map((r) => r.phases[shape][k]))]))
      }
    }
    return summary
  } finally {
    await redis.close()
  }
}

/** Express at a fixed rate through the delay proxy: p50/p99 and Redis commands per request. */
async function latency(redis) {
  const proxy = await delayProxy(redis.port, 0.5)
  const rtt = await measuredRoundTrip(proxy.port)
  const out = { rttMs: rtt, rate: LATENCY_RATE, seconds: LATENCY_SECONDS, stores: {} }
  // Store-level gets of hot sessions (1,000 sessions, each read before, then read over and
  // over), cache on against connect-redis, on the plain server without the proxy.
  const hot = { 'ferrisession-near': [], [ANCHOR]: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const store of round % 2 ? [ANCHOR, 'ferrisession-near'] : ['ferrisession-near', ANCHOR]) {
      redis.cli('FLUSHALL')
      const r = runWorker(store, { kind: 'plain', url: redis.url }, ['set', 'hot']).phases.hot
      hot[store].push(r)
      console.log(`hot get round ${round + 1} ${store}: ${fmt(r.opsPerSec)}/s`)
    }
  }
  const med = (runs) => ({ opsPerSec: median(runs.map((r) => r.opsPerSec)), processCpuUsPerOp: median(runs.map((r) => r.processCpuUsPerOp)) })
  out.hotGet = { ours: med(hot['ferrisession-near']), anchor: med(hot[ANCHOR]) }
  try {
    for (const store of LATENCY_STORES) {
      redis.cli('FLUSHALL')
      const app = await startApp(store, `redis://127.0.0.1:${proxy.port}`)
      try {
        const cookies = []
        for (let i = 0; i < 50; i++) cookies.push(await login(app.port))
        out.stores[store] = {}
        for (const route of ['read', 'write']) {
          const load = (duration) => fixedRate(app.port, `/${route}`, cookies, LATENCY_RATE, duration)
          await load(1) // warm-up: JIT, and the near cache filled
          redis.cli('CONFIG', 'RESETSTAT')
          const r = await load(LATENCY_SECONDS)
          const commands = commandsRun(redis)
          out.stores[store][route] = { p50: r.p50, p99: r.p99, requests: r.requests, commandsPerRequest: commands / r.requests, errors: r.errors }
          console.log(`latency ${store} /${route}: p50 ${r.p50} ms, p99 ${r.p99} ms, ${(commands / r.requests).toFixed(2)} Redis commands per request`)
        }
      } finally {
        await app.stop()
      }
    }
  } finally {
    proxy.close()
  }
  return out
}

function topologyTable(lines, topo, summary, anchor = topo.anchor, title = topo.title) {
  const label = ANCHOR_LABEL[anchor]
  lines.push(`### ${title}`, '')
  lines.push(`| phase | ferrisession ops/s | ${label} ops/s | throughput ours / theirs | whole-process CPU µs/op, ours | theirs | CPU ours / theirs | JS-thread CPU ours / theirs |`)
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|')
  const t = ratios(summary, OURS, anchor, 'opsPerSec')
  const c = ratios(summary, OURS, anchor, 'processCpuUsPerOp')
  const j = ratios(summary, OURS, anchor, 'jsCpuUsPerOp')
  PHASES.forEach((p, i) => {
    lines.push(`| ${p} | ${fmt(summary[OURS][p].opsPerSec)} | ${fmt(summary[anchor][p].opsPerSec)} | **${fmt(t[i], 2)}×** | ${fmt(summary[OURS][p].processCpuUsPerOp, 2)} | ${fmt(summary[anchor][p].processCpuUsPerOp, 2)} | **${fmt(c[i], 2)}×** | ${fmt(j[i], 2)}× |`)
  })
  lines.push(`| geometric mean | | | **${fmt(geomean(t), 2)}×** | | | **${fmt(geomean(c), 2)}×** | ${fmt(geomean(j), 2)}× |`, '')
}

/**
 * Every topology in every shape: ours against each anchor, phase by phase, throughput and
 * whole-process CPU per call; then the headline, the lowest geomean of the shapes.
 */
function shapesSection(shapes, runtimes) {
  const lines = ['## Every shape, every topology', '']
  const anchorsOf = (topo, sm) => (topo.name === 'plain' ? ['connect-redis', 'connect-redis-redis6', 'ioredis6-auto'] : [topo.anchor]).filter((a) => sm[a])
  lines.push(
    'Ours against each anchor on the same servers in the same run, rounds alternating, each store in a fresh process. ' +
      'Shapes (`bench/worker.js`): ' + SHAPES.map((sh) => SHAPE_LABEL[sh]).join('; ') + '. ' +
      'Throughput is ours / theirs (above 1 is faster); CPU is whole-process CPU per call, ours / theirs (below 1 is cheaper).',
    '',
  )
  lines.push('| topology | against | shape | set | get | touch | destroy | geomean | CPU set | get | touch | destroy |')
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const headline = []
  for (const topo of TOPOLOGIES) {
    const byShape = shapes[topo.name]
    if (!byShape || topo.name === 'bun') continue
    for (const anchor of anchorsOf(topo, Object.values(byShape)[0])) {
      let lowest = null
      for (const [shape, sm] of Object.entries(byShape)) {
        if (!sm[anchor]) continue
        const t = ratios(sm, OURS, anchor, 'opsPerSec')
        const c = ratios(sm, OURS, anchor, 'processCpuUsPerOp')
        lines.push(`| ${topo.title} | ${ANCHOR_LABEL[anchor] || STORE_LABEL[anchor]} | ${shape} | ${t.map((x) => `${fmt(x, 2)}×`).join(' | ')} | **${fmt(geomean(t), 2)}×** | ${c.map((x) => `${fmt(x, 2)}×`).join(' | ')} |`)
        if (!lowest || geomean(t) < lowest.g) lowest = { g: geomean(t), shape, min: Math.min(...t), cpu: Math.max(...c) }
      }
      if (lowest) headline.push(`${topo.title} against ${ANCHOR_LABEL[anchor] || STORE_LABEL[anchor]}: **${fmt(lowest.g, 2)}×** (shape ${lowest.shape}; lowest phase ${fmt(lowest.min, 2)}×, highest CPU ratio ${fmt(lowest.cpu, 2)}×)`)
    }
  }
  lines.push('', 'Headline, the lowest geomean of the shapes:', '', ...headline.map((h) => `- ${h}`), '')
  return lines
}

/** The exact peer releases measured (package.json pins them). */
function peerVersions() {
  const v = (pkg) => JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'node_modules', pkg, 'package.json'), 'utf8')).version
  return { 'connect-redis': v('connect-redis'), 'node-redis 5': v('redis'), 'node-redis 6': v('redis6'), 'ioredis 6': v('ioredis6'), ioredis: v('ioredis'), 'express-session': v('express-session') }
}

function machine() {
  return {
    date: new Date().toISOString().slice(0, 10),
    cores: os.cpus().length,
    cpu: os.cpus()[0].model,
    redisServer: execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)[1],
  }
}

/** The results' first line: when, on what machine, which runtime, what workload. */
function machineLine(runtime, sessionBytes, fresh) {
  const m = machine()
  const peers = Object.entries(peerVersions()).map(([k, ver]) => `${k} ${ver}`).join(', ')
  return `Generated by \`${ONLY ? `BENCH_ONLY=${ONLY.join(',')} ` : ''}npm run bench\` on ${m.date}: ${m.cores} cores (${m.cpu}), ${runtime}, redis-server ${m.redisServer} on the same machine. Peers: ${peers}. ${ROUNDS} alternating rounds, each store in a fresh ${fresh}; medians shown. Workload: ${OPS.toLocaleString('en-US')} operations per phase, ${CONCURRENCY} calls in flight, a ${sessionBytes}-byte session whose \`cookie.expires\` is a Date, as express-session hands it.`
}

/** Geomeans over the phases of ours against each Bun anchor: throughput and CPU ratios. */
function bunGeomeans(sm) {
  const out = {}
  for (const anchor of [ANCHOR, BUN_STORE]) {
    out[anchor] = Object.fromEntries(['opsPerSec', 'processCpuUsPerOp', 'jsCpuUsPerOp'].map((k) => [k, geomean(ratios(sm, OURS, anchor, k))]))
  }
  return out
}

/** The Bun section: all three stores under the Bun binary, absolute numbers, then ratios. */
function bunSection(sm, rt) {
  const stores = [OURS, ANCHOR, BUN_STORE]
  const label = { [OURS]: 'ferrisession', [ANCHOR]: 'connect-redis 10 + node-redis 5', [BUN_STORE]: 'Bun.redis store' }
  const lines = [`## Under Bun ${rt.version}: one server, plain TCP`, '']
  lines.push(
    `Every store in its own \`${rt.bin}\` process (${rt.version}), rounds alternating, on one redis-server this run started. ` +
      `ferrisession (driver \`${sm[OURS].driver || '?'}\`: its engine on an I/O thread of its own, not the host's event loop); ` +
      `connect-redis 10 over node-redis 5, both running under Bun; and the connect-redis-shaped store a Bun user could write by hand over Bun's built-in client ` +
      '(`new Bun.RedisClient(url)`, auto-pipelining on by default: GET, SET EX from `cookie.expires`, EXPIRE, DEL, JSON values, prefix `sess:`; `bench/stores.js`).',
    '',
  )
  const sources = [...new Set(stores.map((s) => sm[s].jsCpuSource))]
  const fallback = stores.map((s) => sm[s].jsCpuFallback).find(Boolean)
  lines.push(
    sources.length === 1 && sources[0] === '/proc/self/task/<pid>/stat'
      ? "JS-thread CPU is Bun's main thread, from `/proc/self/task/<pid>/stat` (checked in each worker: 100 ms of busy JS shows on that task), " +
          `in 10 ms ticks, so ±${fmt(10_000 / OPS, 2)} µs per op at ${OPS.toLocaleString('en-US')} ops. ferrisession's I/O thread is not on it, so the JS-thread ratio flatters ours; the whole-process column (all threads, \`process.cpuUsage()\`) is the fair one.`
      : `JS-thread CPU: the /proc reading did not hold under Bun (${fallback || sources.join(', ')}); that column falls back to whole-process \`process.cpuUsage()\` and is the same as the CPU column.`,
    '',
  )
  lines.push('| phase | ferrisession ops/s | connect-redis 10 + node-redis 5 ops/s | Bun.redis store ops/s | whole-process CPU µs/op, ours | connect-redis | Bun.redis | JS-thread CPU µs/op, ours | connect-redis | Bun.redis |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const p of PHASES) {
    lines.push(`| ${p} | ${stores.map((s) => fmt(sm[s][p].opsPerSec)).join(' | ')} | ${stores.map((s) => fmt(sm[s][p].processCpuUsPerOp, 2)).join(' | ')} | ${stores.map((s) => fmt(sm[s][p].jsCpuUsPerOp, 2)).join(' | ')} |`)
  }
  lines.push('')
  lines.push('| phase | throughput ours / connect-redis | ours / Bun.redis | CPU ours / connect-redis | ours / Bun.redis | JS-thread CPU ours / connect-redis | ours / Bun.redis |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|')
  const r = Object.fromEntries(
    [ANCHOR, BUN_STORE].map((a) => [a, Object.fromEntries(['opsPerSec', 'processCpuUsPerOp', 'jsCpuUsPerOp'].map((k) => [k, ratios(sm, OURS, a, k)]))]),
  )
  const row = (i) => ['opsPerSec', 'processCpuUsPerOp', 'jsCpuUsPerOp'].flatMap((k) => [r[ANCHOR][k], r[BUN_STORE][k]].map((xs) => (k === 'opsPerSec' ? `**${fmt(xs[i], 2)}×**` : `${fmt(xs[i], 2)}×`)))
  PHASES.forEach((p, i) => lines.push(`| ${p} | ${row(i).join(' | ')} |`))
  const g = bunGeomeans(sm)
  const gm = ['opsPerSec', 'processCpuUsPerOp', 'jsCpuUsPerOp'].flatMap((k) => [g[ANCHOR][k], g[BUN_STORE][k]].map((x) => `**${fmt(x, 2)}×**`))
  lines.push(`| geometric mean | ${gm.join(' | ')} |`, '')
  const verdict = (a) => `${fmt(g[a].opsPerSec, 2)}× against ${label[a]}: ${g[a].opsPerSec >= TARGET ? 'met' : '**not met**'}`
  lines.push(`Target ≥ ${TARGET}× throughput on the geomean: ${verdict(ANCHOR)}; ${verdict(BUN_STORE)}.`, '')
  lines.push(`Peak RSS (MB): ${stores.map((s) => `${label[s]} ${fmt(sm[s].peakRssMb, 1)}`).join(', ')}.`, '')
  return lines
}

async function main() {
  const only = ONLY
  const results = {}
  const shapes = {}
  const runtimes = {}
  let plainRedis = null
  let ceil = null
  const envs = []
  try {
    for (const topo of TOPOLOGIES) {
      if (only && !only.includes(topo.name)) continue
      const env = await topo.setup()
      if (env.skip) {
        console.log(`${topo.title}: skipped: ${env.skip}`)
        continue
      }
      envs.push(env)
      if (topo.name === 'plain') {
        plainRedis = env.redis
        ceil = ceiling(plainRedis.port)
      }
      const runtime = env.runtime || process.execPath
      if (env.runtime) runtimes[topo.name] = { bin: path.relative(path.join(__dirname, '..'), env.runtime), version: env.runtimeVersion }
      console.log(`${topo.title}: ${ROUNDS} rounds × ${OPS} ops per phase${env.runtime ? ` (workers under ${runtimes[topo.name].bin}, ${env.runtimeVersion})` : ''}`)
      // Bun's row keeps the reused shape alone; every other topology runs each shape.
      for (const shape of topo.name === 'bun' ? ['reused'] : SHAPES) {
        const stores = shape === 'reused' || topo.name !== 'plain' ? topo.stores : FRESH_STORES
        const sm = measure(topo.name, stores, env.target, env.flush, PHASES, runtime, shape === 'reused' ? env.redis || null : null, shape)
        ;(shapes[topo.name] ||= {})[shape] = sm
        // Kept as it comes, so a run that fails later still leaves what it measured.
        fs.writeFileSync(path.join(os.tmpdir(), 'ferrisession-bench-shapes.json'), JSON.stringify({ peers: peerVersions(), shapes }, null, 2))
      }
      // The sections below read the reused shape (or the first that ran).
      results[topo.name] = shapes[topo.name].reused || Object.values(shapes[topo.name])[0]
      if (topo.name !== 'plain') {
        await env.close()
        envs.pop()
      }
    }
    const summary = results.plain

    const E2E_STORES = ['ferrisession', 'connect-redis', 'memory-floor']
    const e2e = {}
    if (plainRedis && (!only || only.includes('e2e'))) {
      const e2eRuns = Object.fromEntries(E2E_STORES.map((s) => [s, []]))
      for (let round = 0; round < E2E_ROUNDS; round++) {
        for (const store of E2E_STORES.map((_, i) => E2E_STORES[(i + round) % E2E_STORES.length])) {
          plainRedis.cli('FLUSHALL')
          const r = await endToEnd(store, plainRedis.url)
          e2eRuns[store].push(r)
          console.log(`e2e round ${round + 1} ${store}: read ${fmt(r.read.rps)} req/s p99 ${r.read.p99} ms, write ${fmt(r.write.rps)} req/s p99 ${r.write.p99} ms`)
        }
      }
      for (const store of E2E_STORES) {
        e2e[store] = {}
        for (const route of ['read', 'write']) {
          e2e[store][route] = {
            rps: median(e2eRuns[store].map((r) => r[route].rps)),
            p99: median(e2eRuns[store].map((r) => r[route].p99)),
          }
        }
      }
    }
    // Fastify + @fastify/session, over 50 sessions and over one session shared by all 50
    // connections (a page firing parallel requests with one cookie).
    const FASTIFY_STORES = process.env.BENCH_FASTIFY_STORES ? process.env.BENCH_FASTIFY_STORES.split(',') : [OURS, 'ferrisession-near', ANCHOR, 'memory-floor']
    let fastify = null
    if (!only || only.includes('fastify')) {
      const fastifyRedis = plainRedis || (await startRedis())
      envs.push({ close: () => (plainRedis ? undefined : fastifyRedis.close()) })
      fastify = {}
      for (const [shape, sessions] of [['50 sessions', 50], ['one session', 1]]) {
        const runs = Object.fromEntries(FASTIFY_STORES.map((st) => [st, []]))
        for (let round = 0; round < E2E_ROUNDS; round++) {
          for (const store of FASTIFY_STORES.map((_, i) => FASTIFY_STORES[(i + round) % FASTIFY_STORES.length])) {
            fastifyRedis.cli('FLUSHALL')
            const r = await endToEnd(store, fastifyRedis.url, 'app-fastify.js', sessions)
            runs[store].push(r)
            console.log(`fastify ${shape} round ${round + 1} ${store}: read ${fmt(r.read.rps)} req/s p99 ${r.read.p99} ms, write ${fmt(r.write.rps)} req/s p99 ${r.write.p99} ms`)
          }
        }
        fastify[shape] = {}
        for (const store of FASTIFY_STORES) {
          fastify[shape][store] = {}
          for (const route of ['read', 'write']) {
            fastify[shape][store][route] = { rps: median(runs[store].map((r) => r[route].rps)), p99: median(runs[store].map((r) => r[route].p99)), errors: runs[store].reduce((a, r) => a + r[route].errors, 0) }
          }
        }
      }
    }
    const latencyResults = plainRedis && !(only && !only.includes('latency')) ? await latency(plainRedis) : null
    const HOT_STORES = [OURS, 'ferrisession-cache', 'ferrisession-near', ANCHOR]
    let hotResults = null
    let cacheShapes = null
    if (!only || only.includes('hot')) {
      const r = plainRedis || (await startRedis())
      try {
        console.log(`hot session: ${ROUNDS} rounds × ${OPS} calls per phase, 50 lanes on one session`)
        hotResults = measure('hot', HOT_STORES, { kind: 'plain', url: r.url }, () => r.cli('FLUSHALL'), ['hotwrite', 'hotread'])
        console.log(`near cache shapes: ${ROUNDS} rounds × ${OPS} calls per phase`)
        cacheShapes = await nearCacheShapes(r)
      } finally {
        if (!plainRedis) await r.close()
      }
    }
    let optionResults = null
    if (!only || only.includes('options')) {
      // The cost of each opt-in option, on a plain server of its own: set and get only.
      const r = await startRedis()
      try {
        console.log(`options: ${ROUNDS} rounds × ${OPS} ops per phase`)
        optionResults = measure('options', OPTION_STORES, { kind: 'plain', url: r.url }, () => r.cli('FLUSHALL'), ['set', 'get'])
      } finally {
        await r.close()
      }
    }
    for (const env of envs) await env.close()
    envs.length = 0
    const faultResults = only && !only.includes('faults') ? null : await faults()
    const sessionsResults = only && !only.includes('sessions') ? null : await sessionsBench()

    const lines = []
    const anyRun = Object.values(results)[0]
    lines.push('# Benchmark results', '')
    lines.push(machineLine(`Node ${process.version}`, anyRun ? anyRun[OURS].sessionBytes : '—', 'process'), '')
    if (ceil) lines.push(`Machine ceiling (\`redis-benchmark -P 16 -t set,get -d 300\`, plain server): SET ${fmt(ceil.set)}/s, GET ${fmt(ceil.get)}/s.`, '')

    lines.push(...shapesSection(shapes, runtimes))
    lines.push('## Every topology, side by side (shape c)', '')
    lines.push('Ours against the anchor on the same servers in the same run: connect-redis 10 + node-redis 5 for Redis, express-session\'s MemoryStore for `memory://`.', '')
    lines.push('| topology | throughput, geomean of set/get/touch/destroy | lowest phase | whole-process CPU per op | JS-thread CPU per op |')
    lines.push('|---|---:|---:|---:|---:|')
    for (const topo of TOPOLOGIES) {
      const sm = results[topo.name]
      if (!sm) continue
      for (const anchor of topo.anchors || [topo.anchor]) {
        const t = ratios(sm, OURS, anchor, 'opsPerSec')
        const title = topo.anchors ? `${topo.name === 'bun' ? `under Bun ${runtimes.bun.version}` : topo.title}, plain TCP, against ${ANCHOR_LABEL[anchor]}` : topo.title
        lines.push(`| ${title} | **${fmt(geomean(t), 2)}×** | ${fmt(Math.min(...t), 2)}× (${PHASES[t.indexOf(Math.min(...t))]}) | ${fmt(geomean(ratios(sm, OURS, anchor, 'processCpuUsPerOp')), 2)}× | ${fmt(geomean(ratios(sm, OURS, anchor, 'jsCpuUsPerOp')), 2)}× |`)
      }
    }
    lines.push('')
    if (summary) {
      const above = (store) => geomean(PHASES.map((p) => Math.max(summary[store][p].jsCpuUsPerOp - summary.floor[p].jsCpuUsPerOp, 0.01)))
      lines.push(`Plain TCP, JS-thread CPU above the pure-JS floor (the harness's own JSON and promise work taken out), geomean: ours ${fmt(above(OURS), 2)} µs, connect-redis ${fmt(above(ANCHOR), 2)} µs, ratio **${fmt(above(OURS) / above(ANCHOR), 2)}×**.`, '')
    }
    for (const topo of TOPOLOGIES) if (results[topo.name] && topo.name !== 'bun') topologyTable(lines, topo, results[topo.name])
    const bunLines = results.bun ? bunSection(results.bun, runtimes.bun) : null
    if (bunLines) lines.push(...bunLines)

    if (latencyResults) {
      const L = latencyResults
      lines.push('## At a network round trip: round trips saved per request', '')
      lines.push(`Express + express-session behind a delay proxy (median round trip ${fmt(L.rttMs, 2)} ms, measured with PING through it; Node's timers add at least 1 ms each way), ${L.rate} requests/s for ${L.seconds} s per route over 50 sessions, each request sent on schedule and timed with hrtime from send to the end of its response. \`/read\` does get + touch, \`/write\` get + set. Commands per request from \`INFO commandstats\`, every command counted.`, '')
      lines.push('| store | /read p50 ms | /read p99 ms | Redis commands per /read | /write p50 ms | /write p99 ms | Redis commands per /write |')
      lines.push('|---|---:|---:|---:|---:|---:|---:|')
      const label = { 'connect-redis': 'connect-redis 10 + node-redis 5', ferrisession: 'ferrisession (defaults)', 'ferrisession-near': 'ferrisession, touchAfter: 60, cache: true' }
      for (const [store, r] of Object.entries(L.stores)) {
        lines.push(`| ${label[store]} | ${r.read.p50} | ${r.read.p99} | ${fmt(r.read.commandsPerRequest, 2)} | ${r.write.p50} | ${r.write.p99} | ${fmt(r.write.commandsPerRequest, 2)} |`)
      }
      const cr = L.stores['connect-redis']
      const near = L.stores['ferrisession-near']
      if (cr && near) lines.push('', `/read p50: ${fmt(cr.read.p50 - near.read.p50, 2)} ms lower with touchAfter + cache than connect-redis.`)
      const h = L.hotGet
      lines.push('', `Store-level \`get\` of hot sessions (plain harness, no proxy, 64 in flight, 1,000 sessions each read once before and then over and over, median of ${ROUNDS} rounds): ours with \`cache: true\` ${fmt(h.ours.opsPerSec)} ops/s, connect-redis ${fmt(h.anchor.opsPerSec)} ops/s, **${fmt(h.ours.opsPerSec / h.anchor.opsPerSec, 2)}×**; whole-process CPU per op ${fmt(h.ours.processCpuUsPerOp, 2)} µs against ${fmt(h.anchor.processCpuUsPerOp, 2)} µs.`)
      lines.push('')
    }

    if (optionResults) {
      const O = optionResults
      const ratio = (store, p) => O[store][p].opsPerSec / O[ANCHOR][p].opsPerSec
      const both = (store) => Math.sqrt(ratio(store, 'set') * ratio(store, 'get'))
      lines.push('## What each option costs', '')
      lines.push('Plain TCP, a server of its own, set and get only; each store in its own process, alternating rounds. The ratio column is against connect-redis 10 + node-redis 5 in the same run; the last column against ferrisession with no option.', '')
      lines.push('| store | set ops/s | get ops/s | set+get geomean vs connect-redis | whole-process CPU µs per set | per get | throughput vs no option |')
      lines.push('|---|---:|---:|---:|---:|---:|---:|')
      for (const store of OPTION_STORES) {
        lines.push(`| ${OPTION_LABEL[store]} | ${fmt(O[store].set.opsPerSec)} | ${fmt(O[store].get.opsPerSec)} | **${fmt(both(store), 2)}×** | ${fmt(O[store].set.processCpuUsPerOp, 2)} | ${fmt(O[store].get.processCpuUsPerOp, 2)} | ${fmt(both(store) / both(OURS), 2)}× |`)
      }
      lines.push('')
      const untraced = both('ferrisession-untraced')
      const cpu = (store) => Math.sqrt(O[store].set.processCpuUsPerOp * O[store].get.processCpuUsPerOp)
      lines.push(`Tracing with nobody subscribed (ours against ours with the channel left out): throughput ${fmt((both(OURS) / untraced - 1) * 100, 1)}%, whole-process CPU per call ${fmt((cpu(OURS) / cpu('ferrisession-untraced') - 1) * 100, 1)}% (target: within 1%; round-to-round noise is of the same order). With a subscriber: throughput ${fmt((both('ferrisession-traced') / untraced - 1) * 100, 1)}%.`, '')
    }

    if (faultResults) {
      lines.push('## Faults ridden through', '')
      lines.push('8 lanes of set + get run through each fault; each store gets fresh servers. Ours with `commandTimeout` 6 s (restart) or 8 s (failovers); connect-redis + node-redis 5 with its defaults (it has no command timeout; a call with no reply after 15 s would count as rejected).', '')
      lines.push('| fault | ferrisession: calls rejected | succeeded after the fault | connect-redis + node-redis: calls rejected | succeeded after the fault |')
      lines.push('|---|---:|---:|---:|---:|')
      for (const [name, r] of Object.entries(faultResults)) {
        const codes = (x) => (x.failed ? ` (${Object.entries(x.codes).map(([k, v]) => `${k} ${v}`).join(', ')})` : '')
        lines.push(`| ${name} | **${r[OURS].failed}**${codes(r[OURS])} | ${fmt(r[OURS].okAfter)} | ${r[ANCHOR].failed}${codes(r[ANCHOR])} | ${fmt(r[ANCHOR].okAfter)} |`)
      }
      lines.push('')
    }

    if (summary && summary['ioredis6-auto']) {
      const peers = ['connect-redis-redis6', 'ioredis6-auto']
      const peerLabel = { 'connect-redis-redis6': 'connect-redis 10 + node-redis 6 (RESP3)', 'ioredis6-auto': 'connect-redis-shaped store over ioredis 6, enableAutoPipelining' }
      lines.push('## Plain TCP against the newest peers', '')
      lines.push('Same run, same server: ops/s per phase, and our geomean ratio against each (target: ≥ 2× against the faster).', '')
      lines.push(`| store | ${PHASES.join(' | ')} | ours / this, geomean |`)
      lines.push(`|---|${PHASES.map(() => '---:').join('|')}|---:|`)
      lines.push(`| ferrisession | ${PHASES.map((p) => fmt(summary[OURS][p].opsPerSec)).join(' | ')} | |`)
      for (const peer of peers) lines.push(`| ${peerLabel[peer]} | ${PHASES.map((p) => fmt(summary[peer][p].opsPerSec)).join(' | ')} | **${fmt(geomean(ratios(summary, OURS, peer, 'opsPerSec')), 2)}×** |`)
      const worst = Math.min(...peers.map((peer) => geomean(ratios(summary, OURS, peer, 'opsPerSec'))))
      lines.push('', `Against the faster peer: **${fmt(worst, 2)}×**.`, '')
    }
    if (summary && summary[OURS].server) {
      lines.push('## Plain TCP: what each store costs the server', '')
      lines.push('From the redis-server this bench started, over each whole worker run (warm-up included), divided by the calls made: read events the server processed (each is one or more socket writes of the client that arrived together: at most the client\'s writes per call) and the server\'s CPU time (`/proc/<pid>/stat`).', '')
      lines.push('| store | server read events per call | redis-server CPU µs per call |')
      lines.push('|---|---:|---:|')
      for (const store of STORES) if (summary[store] && summary[store].server && store !== 'floor') lines.push(`| ${STORE_LABEL[store]} | ${fmt(summary[store].server.readsPerCall, 3)} | ${fmt(summary[store].server.cpuUsPerCall, 2)} |`)
      lines.push('')
    }
    if (fastify) {
      const label = { [OURS]: 'ferrisession (defaults)', 'ferrisession-near': 'ferrisession, touchAfter: 60, cache: true', [ANCHOR]: 'connect-redis 10 + node-redis 5', 'memory-floor': '@fastify/session in-memory store (floor)' }
      lines.push('## End to end: Fastify + @fastify/session', '')
      lines.push(`autocannon, 50 connections, ${E2E_SECONDS} s per route after a 1 s warm-up, median of ${E2E_ROUNDS} alternating rounds; the app is \`bench/app-fastify.js\`. \`/read\` reads the session, \`/write\` changes it. Over 50 sessions, and over one session that all 50 connections share.`, '')
      for (const [shape, F] of Object.entries(fastify)) {
        lines.push(`### ${shape}`, '')
        lines.push('| store | /read req/s | /read p99 ms | /write req/s | /write p99 ms | /read vs connect-redis | /write vs connect-redis |')
        lines.push('|---|---:|---:|---:|---:|---:|---:|')
        for (const store of FASTIFY_STORES) lines.push(`| ${label[store]} | ${fmt(F[store].read.rps)} | ${F[store].read.p99} | ${fmt(F[store].write.rps)} | ${F[store].write.p99} | ${fmt(F[store].read.rps / F[ANCHOR].read.rps, 2)}× | ${fmt(F[store].write.rps / F[ANCHOR].write.rps, 2)}× |`)
        const near = F['ferrisession-near']
        lines.push('', `touchAfter + cache: /read ${fmt(near.read.rps / F['memory-floor'].read.rps, 2)}× the in-memory floor, /write ${fmt(near.write.rps / F[OURS].write.rps, 2)}× ours with defaults.`, '')
      }
    }
    if (hotResults) {
      const H = hotResults
      const label = { [OURS]: 'ferrisession (defaults)', 'ferrisession-cache': 'ferrisession, cache: true', 'ferrisession-near': 'ferrisession, touchAfter: 60, cache: true', [ANCHOR]: 'connect-redis 10 + node-redis 5' }
      lines.push('## One hot session: 50 lanes on one cookie', '')
      lines.push(`Plain TCP; 50 lanes at once on one session, as a page firing parallel requests with one cookie. \`hotwrite\`: get + set per step; \`hotread\`: get + touch. Calls per second (each step is two), median of ${ROUNDS} rounds.`, '')
      lines.push('| store | hotwrite calls/s | vs ours uncached | hotread calls/s | vs ours uncached |')
      lines.push('|---|---:|---:|---:|---:|')
      for (const store of HOT_STORES) lines.push(`| ${label[store]} | ${fmt(H[store].hotwrite.opsPerSec)} | ${fmt(H[store].hotwrite.opsPerSec / H[OURS].hotwrite.opsPerSec, 2)}× | ${fmt(H[store].hotread.opsPerSec)} | ${fmt(H[store].hotread.opsPerSec / H[OURS].hotread.opsPerSec, 2)}× |`)
      lines.push('')
    }
    if (cacheShapes) {
      const C = cacheShapes.shapes
      const rows = [
        ['set, 10,000 keys reused', 'set'],
        ['get, 10,000 keys reused', 'get'],
        ['touch, 10,000 keys reused', 'touch'],
        ['destroy, 10,000 keys reused', 'destroy'],
        ['get, 1,000 hot keys', 'hot'],
        ['get of 1,000 keys that expire after 1 s (set again once gone)', 'expiring'],
        [`get of 1,000 hot keys while another process rewrites all of them (${fmt(cacheShapes.writerRoundsPerSec)} rounds/s: a storm of invalidations)`, 'storm'],
      ]
      if (hotResults) rows.push(['one hot session, get + set from 50 lanes', 'hotwrite'], ['one hot session, get + touch from 50 lanes', 'hotread'])
      const of = (store, p) => (p === 'hotwrite' || p === 'hotread' ? hotResults[store][p] : C[store][p]).opsPerSec
      lines.push('## The near cache against no cache, shape by shape', '')
      lines.push(`Plain TCP, ${CONCURRENCY} calls in flight (the hot session: 50 lanes), ours with and without \`cache: true\`, alternating rounds, medians of ${ROUNDS}. Calls per second.`, '')
      lines.push('| shape | no cache | cache: true | cache / no cache |', '|---|---:|---:|---:|')
      for (const [name, p] of rows) lines.push(`| ${name} | ${fmt(of(OURS, p))} | ${fmt(of('ferrisession-cache', p))} | **${fmt(of('ferrisession-cache', p) / of(OURS, p), 2)}×** |`)
      lines.push('')
    }
    if (sessionsResults) {
      const S = sessionsResults
      lines.push('## Sessions without a framework: validate', '')
      lines.push(`\`ferrisession/sessions\` against the same design written by hand over node-redis 5 as Lucia's guide has readers write it (Web Crypto SHA-256, GET + JSON.parse, a constant-time compare), plain TCP, ${CONCURRENCY} validates in flight, no refresh due. \`reused\`: 1,000 sessions validated over and over; \`fresh\`: ${OPS.toLocaleString('en-US')} sessions created just before, each validated once. Commands per validate from \`INFO commandstats\` around each shape.`, '')
      lines.push('| implementation | reused: validates/s | CPU µs per validate | commands per validate | fresh: validates/s | CPU µs per validate | commands per validate |')
      lines.push('|---|---:|---:|---:|---:|---:|---:|')
      const label = { ferrisession: 'ferrisession/sessions', 'ferrisession-cache': 'ferrisession/sessions, cache: true', 'hand-written': 'hand-written over node-redis 5' }
      for (const [name, r] of Object.entries(S)) {
        lines.push(`| ${label[name]} | ${fmt(r.reused.opsPerSec)} | ${fmt(r.reused.processCpuUsPerOp, 2)} | ${fmt(r.reused.commandsPerValidate, 3)} | ${fmt(r.fresh.opsPerSec)} | ${fmt(r.fresh.processCpuUsPerOp, 2)} | ${fmt(r.fresh.commandsPerValidate, 3)} |`)
      }
      const ratio = (name, shape) => S[name][shape].opsPerSec / S['hand-written'][shape].opsPerSec
      lines.push('', `Throughput against the hand-written one (target ≥ 2×): reused **${fmt(ratio('ferrisession', 'reused'), 2)}×**, fresh **${fmt(ratio('ferrisession', 'fresh'), 2)}×**; with \`cache: true\`, reused ${fmt(ratio('ferrisession-cache', 'reused'), 2)}×, fresh ${fmt(ratio('ferrisession-cache', 'fresh'), 2)}×.`, '')
    }

    if (summary) {
      const ratio = (store, key) => ratios(summary, store, ANCHOR, key)
      lines.push('## Plain TCP in detail', '')
      lines.push('### Throughput (ops/s)', '')
      lines.push('| phase | ferrisession | connect-redis 10 + node-redis 5 | ours / theirs | connect-redis 8 + ioredis | pure-JS floor |')
      lines.push('|---|---:|---:|---:|---:|---:|')
      PHASES.forEach((p, i) => {
        lines.push(`| ${p} | ${fmt(summary[OURS][p].opsPerSec)} | ${fmt(summary[ANCHOR][p].opsPerSec)} | **${fmt(ratio(OURS, 'opsPerSec')[i], 2)}×** | ${fmt(summary['connect-redis8-ioredis'][p].opsPerSec)} | ${fmt(summary.floor[p].opsPerSec)} |`)
      })
      lines.push(`| geometric mean | | | **${fmt(geomean(ratio(OURS, 'opsPerSec')), 2)}×** | | |`, '')
      for (const [key, title] of [
        ['jsCpuUsPerOp', 'JS-thread CPU per operation (µs; main thread only, from /proc/self/task/<pid>/stat)'],
        ['processCpuUsPerOp', 'Whole-process CPU per operation (µs; all threads)'],
      ]) {
        lines.push(`### ${title}`, '')
        lines.push('| phase | ferrisession | connect-redis 10 + node-redis 5 | ours / theirs | connect-redis 8 + ioredis | pure-JS floor |')
        lines.push('|---|---:|---:|---:|---:|---:|')
        PHASES.forEach((p, i) => {
          lines.push(`| ${p} | ${fmt(summary[OURS][p][key], 2)} | ${fmt(summary[ANCHOR][p][key], 2)} | **${fmt(ratio(OURS, key)[i], 2)}×** | ${fmt(summary['connect-redis8-ioredis'][p][key], 2)} | ${fmt(summary.floor[p][key], 2)} |`)
        })
        lines.push(`| geometric mean | | | **${fmt(geomean(ratio(OURS, key)), 2)}×** | | |`, '')
      }
      lines.push('### Peak RSS (MB)', '')
      lines.push(`| ${STORES.map((s) => STORE_LABEL[s]).join(' | ')} |`, `|${STORES.map(() => '---:|').join('')}`)
      lines.push(`| ${STORES.map((s) => fmt(summary[s].peakRssMb, 1)).join(' | ')} |`, '')
      if (e2e.ferrisession) {
        lines.push(`### End to end (Express + express-session, autocannon, 50 connections, ${E2E_SECONDS} s per route after a 1 s warm-up, median of ${E2E_ROUNDS} alternating rounds)`, '')
        lines.push('| store | /read req/s (get + touch) | /read p99 ms | /write req/s (get + set) | /write p99 ms |', '|---|---:|---:|---:|---:|')
        for (const [store, r] of Object.entries(e2e)) {
          lines.push(`| ${store === 'memory-floor' ? 'express-session MemoryStore (floor)' : store} | ${fmt(r.read.rps)} | ${r.read.p99} | ${fmt(r.write.rps)} | ${r.write.p99} |`)
        }
        lines.push('', `Ratios ours / connect-redis: /read ${fmt(e2e.ferrisession.read.rps / e2e['connect-redis'].read.rps, 2)}× req/s, p99 ${fmt(e2e.ferrisession.read.p99 / e2e['connect-redis'].read.p99, 2)}×; /write ${fmt(e2e.ferrisession.write.rps / e2e['connect-redis'].write.rps, 2)}× req/s, p99 ${fmt(e2e.ferrisession.write.p99 / e2e['connect-redis'].write.p99, 2)}×.`, '')
      }
      lines.push('![throughput chart](chart.svg)', '')
      chart(summary, path.join(__dirname, 'chart.svg'))
    }
    if (bunLines) {
      // The Bun section also has files of its own, so that `BENCH_ONLY=bun` can refresh it alone.
      const bunFile = [`# Benchmark results under Bun`, '', machineLine(`Bun ${runtimes.bun.version} (\`${runtimes.bun.bin}\`)`, results.bun[OURS].sessionBytes, 'Bun process'), '', ...bunLines]
      fs.writeFileSync(path.join(__dirname, 'results-bun.md'), bunFile.join('\n'))
      fs.writeFileSync(path.join(__dirname, 'results-bun.json'), JSON.stringify({ machine: machine(), runtime: runtimes.bun, rounds: ROUNDS, ops: OPS, concurrency: CONCURRENCY, stores: results.bun, geomean: bunGeomeans(results.bun) }, null, 2) + '\n')
    }
    // A run of the Bun section alone leaves the other topologies' committed results as they are.
    const bunOnly = only && only.every((name) => name === 'bun')
    if (bunOnly) {
      console.log('\n' + (bunLines || ['Bun section skipped: nothing written.']).join('\n'))
      if (bunLines) console.log('\nWrote bench/results-bun.md and bench/results-bun.json (bench/results.md and results.json left as they were).')
      return
    }
    fs.writeFileSync(path.join(__dirname, 'results.md'), lines.join('\n'))
    fs.writeFileSync(path.join(__dirname, 'results.json'), JSON.stringify({ peers: peerVersions(), shapes, ceiling: ceil, topologies: results, runtimes, e2e, latency: latencyResults, options: optionResults, faults: faultResults, sessions: sessionsResults, hot: hotResults, nearCache: cacheShapes, fastify }, null, 2) + '\n')
    console.log('\n' + lines.join('\n'))
  } finally {
    for (const env of envs) await env.close()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
