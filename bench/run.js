'use strict'
// `npm run bench`: ferrisession against connect-redis 10 + node-redis 5 (the anchor) on one
// redis-server this script starts, in alternating rounds, plus connect-redis 8 + ioredis and a
// pure-JS floor. Writes bench/results.md and bench/chart.svg.
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { startRedis } = require('../__test__/support/redis.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS) || 3
const OPS = Number(process.env.BENCH_OPS) || 100_000
const CONCURRENCY = 64
const E2E_SECONDS = Number(process.env.BENCH_E2E_SECONDS) || 5
const E2E_ROUNDS = Number(process.env.BENCH_E2E_ROUNDS) || 3
const STORES = ['ferrisession', 'connect-redis', 'connect-redis8-ioredis', 'floor']
const PHASES = ['set', 'get', 'touch', 'destroy']
const OURS = 'ferrisession'
const ANCHOR = 'connect-redis'

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const geomean = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length)

function runWorker(store, url) {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'worker.js'), store, url, String(OPS), String(CONCURRENCY)], {
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

async function startApp(store, url) {
  const child = spawn(process.execPath, [path.join(__dirname, 'app.js'), store, url], { stdio: ['ignore', 'pipe', 'inherit'] })
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

async function endToEnd(store, url) {
  const app = await startApp(store, url)
  try {
    const cookies = []
    for (let i = 0; i < 50; i++) cookies.push(await login(app.port))
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

async function main() {
  const redis = await startRedis()
  try {
    console.log(`redis-server on ${redis.port}; ${ROUNDS} rounds × ${OPS} ops per phase`)
    const ceil = ceiling(redis.port)
    const runs = Object.fromEntries(STORES.map((s) => [s, []]))
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so drift and warm-up favour no store.
      const order = STORES.map((_, i) => STORES[(i + round) % STORES.length])
      for (const store of order) {
        redis.cli('FLUSHALL')
        const r = runWorker(store, redis.url)
        runs[store].push(r)
        console.log(`round ${round + 1} ${store}: ` + PHASES.map((p) => `${p} ${fmt(r.phases[p].opsPerSec)}/s`).join(', '))
      }
    }
    const summary = {}
    for (const store of STORES) {
      summary[store] = { peakRssMb: Math.max(...runs[store].map((r) => r.peakRssMb)) }
      for (const p of PHASES) {
        summary[store][p] = Object.fromEntries(
          ['opsPerSec', 'jsCpuUsPerOp', 'processCpuUsPerOp'].map((k) => [k, median(runs[store].map((r) => r.phases[p][k]))]),
        )
      }
    }
    const ratio = (store, key) => PHASES.map((p) => summary[store][p][key] / summary[ANCHOR][p][key])

    const E2E_STORES = ['ferrisession', 'connect-redis', 'memory-floor']
    const e2eRuns = Object.fromEntries(E2E_STORES.map((s) => [s, []]))
    for (let round = 0; round < E2E_ROUNDS; round++) {
      for (const store of E2E_STORES.map((_, i) => E2E_STORES[(i + round) % E2E_STORES.length])) {
        redis.cli('FLUSHALL')
        const r = await endToEnd(store, redis.url)
        e2eRuns[store].push(r)
        console.log(`e2e round ${round + 1} ${store}: read ${fmt(r.read.rps)} req/s p99 ${r.read.p99} ms, write ${fmt(r.write.rps)} req/s p99 ${r.write.p99} ms`)
      }
    }
    const e2e = {}
    for (const store of E2E_STORES) {
      e2e[store] = {}
      for (const route of ['read', 'write']) {
        e2e[store][route] = {
          rps: median(e2eRuns[store].map((r) => r[route].rps)),
          p99: median(e2eRuns[store].map((r) => r[route].p99)),
        }
      }
    }

    const lines = []
    lines.push('# Benchmark results', '')
    lines.push(`Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores (${os.cpus()[0].model}), Node ${process.version}, redis-server ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)[1]} on the same machine. ${ROUNDS} alternating rounds; medians shown. Workload: ${OPS.toLocaleString('en-US')} operations per phase, ${CONCURRENCY} calls in flight, a ${runs[OURS][0].sessionBytes}-byte session.`, '')
    lines.push(`Machine ceiling (\`redis-benchmark -P 16 -t set,get -d 300\`, same server): SET ${fmt(ceil.set)}/s, GET ${fmt(ceil.get)}/s.`, '')
    lines.push('## Throughput (ops/s)', '')
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
      lines.push(`## ${title}`, '')
      lines.push('| phase | ferrisession | connect-redis 10 + node-redis 5 | ours / theirs | connect-redis 8 + ioredis | pure-JS floor |')
      lines.push('|---|---:|---:|---:|---:|---:|')
      PHASES.forEach((p, i) => {
        lines.push(`| ${p} | ${fmt(summary[OURS][p][key], 2)} | ${fmt(summary[ANCHOR][p][key], 2)} | **${fmt(ratio(OURS, key)[i], 2)}×** | ${fmt(summary['connect-redis8-ioredis'][p][key], 2)} | ${fmt(summary.floor[p][key], 2)} |`)
      })
      lines.push(`| geometric mean | | | **${fmt(geomean(ratio(OURS, key)), 2)}×** | | |`, '')
    }
    lines.push('## Peak RSS (MB)', '')
    lines.push('| ferrisession | connect-redis 10 + node-redis 5 | connect-redis 8 + ioredis | pure-JS floor |', '|---:|---:|---:|---:|')
    lines.push(`| ${STORES.map((s) => fmt(summary[s].peakRssMb, 1)).join(' | ')} |`, '')
    lines.push(`## End to end (Express + express-session, autocannon, 50 connections, ${E2E_SECONDS} s per route after a 1 s warm-up, median of ${E2E_ROUNDS} alternating rounds)`, '')
    lines.push('| store | /read req/s (get + touch) | /read p99 ms | /write req/s (get + set) | /write p99 ms |', '|---|---:|---:|---:|---:|')
    for (const [store, r] of Object.entries(e2e)) {
      lines.push(`| ${store === 'memory-floor' ? 'express-session MemoryStore (floor)' : store} | ${fmt(r.read.rps)} | ${r.read.p99} | ${fmt(r.write.rps)} | ${r.write.p99} |`)
    }
    lines.push('', `Ratios ours / connect-redis: /read ${fmt(e2e.ferrisession.read.rps / e2e['connect-redis'].read.rps, 2)}× req/s, p99 ${fmt(e2e.ferrisession.read.p99 / e2e['connect-redis'].read.p99, 2)}×; /write ${fmt(e2e.ferrisession.write.rps / e2e['connect-redis'].write.rps, 2)}× req/s, p99 ${fmt(e2e.ferrisession.write.p99 / e2e['connect-redis'].write.p99, 2)}×.`, '')
    lines.push('![throughput chart](chart.svg)', '')
    fs.writeFileSync(path.join(__dirname, 'results.md'), lines.join('\n'))
    fs.writeFileSync(path.join(__dirname, 'results.json'), JSON.stringify({ ceiling: ceil, summary, e2e }, null, 2) + '\n')
    chart(summary, path.join(__dirname, 'chart.svg'))
    console.log('\n' + lines.join('\n'))
  } finally {
    await redis.close()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
