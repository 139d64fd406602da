'use strict'
// Starts real redis-server processes on free loopback ports for the tests, and stops them.

const { spawn, execFileSync, fork } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

/** A TCP port nobody listens on now, at most `max` (a cluster node's bus port is port + 10000). */
async function freePort(max = 65535) {
  for (let i = 0; ; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.unref()
      srv.on('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (port <= max || i >= 200) return port
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

function cli(port, ...args) {
  return cliWithin(30000, port, ...args)
}

/** `cli`, killed after `ms` (something on the port that never answers must not hang a test). */
function cliWithin(ms, port, ...args) {
  const tls = cli.tls[port] || []
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...tls, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: ms,
  }).trim()
}

// redis-cli's TLS flags per port, for servers started with `tls`.
cli.tls = {}

// The server binary every start runs: redis-server on PATH, or another Redis-compatible server
// (scripts/platforms/server-suite.sh runs the server-facing tests against Valkey and Redis 6.2).
// `startRedis`'s `bin` names another for one server (__test__/old-server.test.js: Redis 6.0).
const SERVER_BIN = process.env.REDIS_SERVER_BIN || 'redis-server'

// How many times a server whose start failed is started again on a new free port (the port can
// be taken between choosing it and binding it), and how often a restart on its own port is tried.
const START_ATTEMPTS = 5
const RESTART_ATTEMPTS = 5

/** The last lines of a server's log file, for an error message. */
function logTail(file) {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ')
  } catch {
    return '(no log)'
  }
}

/**
 * Spawns `bin args` (redis-server) and waits until the process answers on `port` as itself (its
 * `INFO server` names its own pid: another server that took the port does not count). Rejects
 * early when the process exits (e.g. "Address already in use"), or after `timeoutMs`; the
 * process is killed then. Resolves with the child process.
 */
async function launch(args, port, logfile, bin = SERVER_BIN, timeoutMs = 10000) {
  const proc = spawn(bin, args, { stdio: 'ignore' })
  let spawnError = null
  proc.on('error', (e) => (spawnError = e))
  const deadline = Date.now() + timeoutMs
  let why = 'did not answer PING'
  for (;;) {
    if (spawnError) why = `could not be spawned: ${spawnError.message}`
    else if (proc.exitCode !== null || proc.signalCode !== null) why = `exited (${proc.exitCode ?? proc.signalCode}) before answering`
    else {
      try {
        const info = cliWithin(2000, port, 'INFO', 'server')
        const m = /process_id:(\d+)/.exec(info)
        if (m && Number(m[1]) === proc.pid) return proc
        if (m) why = `did not answer PING: port ${port} is answered by another redis-server (pid ${m[1]})`
      } catch {
        try {
          // INFO may be renamed away: a PONG while our process lives will do then.
          if (cliWithin(2000, port, 'PING') === 'PONG' && proc.exitCode === null) {
            await sleep(100)
            if (proc.exitCode === null && proc.signalCode === null) return proc
          }
        } catch {}
      }
      if (Date.now() <= deadline) {
        await sleep(50)
        continue
      }
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGKILL')
      await exited
    }
    throw new Error(`redis-server on ${port} ${why} (log: ${logTail(logfile)})`)
  }
}

/** Empties `dir` for a fresh start: a failed attempt may have left a nodes.conf naming its port. */
function emptyDir(dir) {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true })
}

/**
 * A redis-server of our own. `extraArgs` go on its command line. With `tls` ({cert, key, ca}
 * file paths, `authClients`), it listens with TLS only. `stop()` kills it; `restart()` starts
 * it again on the same port. A start that fails (the port was taken before the server bound
 * it, or it did not answer) is tried again on a new free port, up to START_ATTEMPTS times.
 * With `clusterBus`, the port is one whose bus port (port + 10000) exists. `bin` is the server
 * binary to run instead of REDIS_SERVER_BIN's.
 */
async function startRedis(extraArgs = [], { tls, clusterBus = false, bin = SERVER_BIN } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-redis-'))
  const logfile = path.join(os.tmpdir(), `${path.basename(dir)}.log`)
  const server = {
    port: 0,
    dir,
    logfile,
    url: '',
    proc: null,
    args() {
      const port = this.port
      let listen = ['--port', String(port)]
      if (tls) {
        listen = ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', tls.authClients ? 'yes' : 'no']
      }
      return [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logfile, ...extraArgs]
    },
    /** Starts the server on its port (again); a port still held is tried a few times. */
    async start() {
      let last
      for (let i = 0; i < RESTART_ATTEMPTS; i++) {
        try {
          this.proc = await launch(this.args(), this.port, logfile, bin)
          return
        } catch (e) {
          last = e
          this.proc = null
          await sleep(200 * (i + 1))
        }
      }
      throw last
    },
    cli(...args) {
      return cli(this.port, ...args)
    },
    async stop() {
      const p = this.proc
      this.proc = null
      if (!p || p.exitCode !== null || p.signalCode !== null) return
      const exited = new Promise((r) => p.once('exit', r))
      p.kill('SIGKILL')
      await exited
    },
    async restart() {
      await this.stop()
      await this.start()
    },
    async close() {
      await this.stop()
      fs.rmSync(dir, { recursive: true, force: true })
      fs.rmSync(logfile, { force: true })
    },
  }
  const errors = []
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort(clusterBus ? 55535 : 65535)
    server.port = port
    server.url = `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`
    if (tls) cli.tls[port] = ['--tls', '--cacert', tls.ca, ...(tls.clientCert ? ['--cert', tls.clientCert, '--key', tls.clientKey] : [])]
    try {
      server.proc = await launch(server.args(), port, logfile, bin)
      return server
    } catch (e) {
      errors.push(e.message)
      delete cli.tls[port]
      emptyDir(dir)
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  fs.rmSync(logfile, { force: true })
  throw new Error(`redis-server did not start in ${START_ATTEMPTS} attempts: ${errors.join('; ')}`)
}

/** Runs `attempt()` up to `times` times, calling `cleanup()` after each failure; rethrows the last. */
async function retried(what, times, attempt) {
  const errors = []
  for (let i = 0; i < times; i++) {
    const cleanups = []
    try {
      return await attempt((f) => cleanups.push(f))
    } catch (e) {
      errors.push(e.message)
      for (const f of cleanups.reverse()) await f().catch(() => {})
    }
  }
  throw new Error(`${what} failed ${times} times: ${errors.join('; ')}`)
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/**
 * A 6-node Redis Cluster (3 primaries, 3 replicas) on loopback, with a 1 s node timeout (or
 * `nodeTimeout` ms) so failovers happen within seconds. `close()` stops every node. A cluster that does not come
 * up (a node that would not start, `--cluster create` failing, no `cluster_state:ok`) is torn
 * down and started again on new ports, up to 3 times. `bin` as `startRedis` takes it.
 */
async function startCluster({ nodeTimeout = 1000, bin } = {}) {
  const nodes = await retried('starting a cluster', 3, async (onFailure) => {
    const nodes = []
    onFailure(async () => {
      for (const n of nodes) await n.close()
    })
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await startRedis(
          [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', 'nodes.conf',
            '--cluster-node-timeout', String(nodeTimeout),
            '--cluster-replica-validity-factor', '0',
            // A replica's first sync starts at once (Redis waits 5 s by default), so a test
            // can wait for it instead of writing into a window with no copy.
            '--repl-diskless-sync-delay', '0',
          ],
          { clusterBus: true, bin },
        ),
      )
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], {
      stdio: 'ignore',
      timeout: 60000,
    })
    for (const n of nodes) {
      await until(() => /cluster_state:ok/.test(n.cli('CLUSTER', 'INFO')) && /cluster_slots_ok:16384/.test(n.cli('CLUSTER', 'INFO')), 20000, `cluster state ok on ${n.port}`)
    }
    await replicasInSync(nodes)
    return nodes
  })
  return {
    nodes,
    /** Waits until every running replica has its primary's data (see `replicasInSync`). */
    inSync: () => replicasInSync(nodes),
    seeds: nodes.slice(0, 3).map((n) => n.url),
    /** The node currently serving `key` as primary. */
    primaryFor(key) {
      const slot = Number(nodes.find((n) => n.proc).cli('CLUSTER', 'KEYSLOT', key))
      for (const n of nodes) {
        if (!n.proc) continue
        const role = n.cli('ROLE').split('\n')[0]
        if (role !== 'master') continue
        const lines = n.cli('CLUSTER', 'NODES').split('\n').find((l) => l.includes('myself'))
        const ranges = lines.split(' ').slice(8)
        for (const r of ranges) {
          const [a, b] = r.split('-').map(Number)
          if (slot >= a && slot <= (Number.isNaN(b) ? a : b)) return n
        }
      }
      return null
    },
    async close() {
      for (const n of nodes) await n.close()
    },
  }
}

/**
 * Waits until every running replica among `nodes` is linked to its primary with no sync under
 * way and the primary's replication offset reached. Before that a killed primary's writes
 * exist nowhere else (a replica promoted before its first sync comes up empty), so a failover
 * test that did not wait would see keys missing that no client could serve.
 */
async function replicasInSync(nodes, timeoutMs = 30000) {
  const info = (n) => Object.fromEntries(n.cli('INFO', 'replication').split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.split(':')))
  await until(() => {
    const live = nodes.filter((n) => n.proc)
    const byPort = new Map(live.map((n) => [n.port, info(n)]))
    return live.every((n) => {
      const r = byPort.get(n.port)
      if (r.role !== 'slave') return true
      const primary = byPort.get(Number(r.master_port))
      return r.master_link_status === 'up' && r.master_sync_in_progress === '0' && primary !== undefined && Number(r.slave_repl_offset) >= Number(primary.master_repl_offset)
    })
  }, timeoutMs, 'replicas in sync with their primaries')
}

/** A sentinel monitoring `primaryPort` as `mymaster`; a start that fails is tried on a new port. */
async function startSentinel(primaryPort) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-sentinel-'))
  const conf = path.join(dir, 'sentinel.conf')
  const logfile = path.join(dir, 'sentinel.log')
  const errors = []
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort()
    emptyDir(dir)
    fs.writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `logfile ${logfile}`,
        `sentinel monitor mymaster 127.0.0.1 ${primaryPort} 2`,
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 5000',
        'sentinel parallel-syncs mymaster 1',
        '',
      ].join('\n'),
    )
    let proc
    try {
      proc = await launch([conf, '--sentinel'], port, logfile)
    } catch (e) {
      errors.push(e.message)
      continue
    }
    return {
      port,
      proc,
      url: `redis://127.0.0.1:${port}`,
      cli: (...args) => cli(port, ...args),
      async close() {
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise((r) => proc.once('exit', r))
          proc.kill('SIGKILL')
          await exited
        }
        fs.rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`a sentinel did not start in ${START_ATTEMPTS} attempts: ${errors.join('; ')}`)
}

/**
 * A primary, one replica and three sentinels monitoring them as `mymaster`, with a 1 s
 * down-after so failover takes seconds. A group that does not come up is torn down and
 * started again on new ports, up to 3 times.
 */
async function startSentinels({ primaryArgs = [] } = {}) {
  return retried('starting a sentinel group', 3, async (onFailure) => {
    const servers = []
    const sentinels = []
    onFailure(async () => {
      for (const s of sentinels) await s.close()
      for (const s of servers) await s.close()
    })
    const primary = await startRedis(primaryArgs)
    servers.push(primary)
    const replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)])
    servers.push(replica)
    await until(() => /master_link_status:up/.test(replica.cli('INFO', 'replication')), 10000, 'replica sync')
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(primary.port))
    const otherSentinels = (s) => {
      const lines = s.cli('SENTINEL', 'MASTER', 'mymaster').split('\n')
      return Number(lines[lines.indexOf('num-other-sentinels') + 1])
    }
    for (const s of sentinels) await until(() => otherSentinels(s) === 2, 15000, 'sentinels to see each other')
    return {
      primary,
      replica,
      sentinels,
      masterPort: () => Number(sentinels[0].cli('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster').split('\n')[1]),
      async close() {
        for (const s of sentinels) await s.close()
        await primary.close()
        await replica.close()
      },
    }
  })
}

/**
 * Writes and reads `key` through `store` until both succeed, after a primary was killed at
 * `t0`. Every failure on the way must be a coded error. Returns the recovery time in ms and
 * the number of rejected calls, or `recovered: null` after `limitMs`.
 */
async function measureRecovery(store, key, t0, limitMs) {
  let errors = 0
  while (Date.now() - t0 < limitMs) {
    try {
      await store.set(key, { cookie: {}, v: 2 })
      const back = await store.get(key)
      if (back && back.v === 2) return { recovered: Date.now() - t0, errors }
    } catch (e) {
      if (!(typeof e.code === 'string' && e.code.startsWith('ERR_'))) throw e
      errors++
      await sleep(100)
    }
  }
  return { recovered: null, errors }
}

/**
 * Runs `lanes` loops of set-then-get through `store` while `fault()` happens: `warmMs` of load
 * first, then the fault, then `afterMs` more. Returns how many calls succeeded and failed
 * (with their codes), and how many succeeded after the fault was over.
 */
async function loadThroughFault(store, fault, { lanes = 8, warmMs = 300, afterMs = 1500, prefix = 'lane', callLimitMs = 15000 } = {}) {
  let ok = 0
  let okAfter = 0
  let faultOver = false
  let stop = false
  const codes = {}
  const fail = (e) => {
    const code = (e && e.code) || String(e)
    codes[code] = (codes[code] || 0) + 1
  }
  const lane = async (l) => {
    for (let i = 0; !stop; i++) {
      const id = `${prefix}-${l}-${i % 50}`
      for (const op of [() => store.set(id, { cookie: {}, l, i }), () => store.get(id)]) {
        let timer
        // A client without a command timeout could wait forever; such a call counts as failed.
        const limit = new Promise((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error('no reply'), { code: `NO_REPLY_IN_${callLimitMs}_MS` })), callLimitMs)
        })
        try {
          await Promise.race([op(), limit])
          ok++
          if (faultOver) okAfter++
        } catch (e) {
          fail(e)
        } finally {
          clearTimeout(timer)
        }
      }
    }
  }
  const running = Array.from({ length: lanes }, (_, l) => lane(l))
  await sleep(warmMs)
  await fault()
  faultOver = true
  await sleep(afterMs)
  stop = true
  await Promise.all(running)
  const failed = Object.values(codes).reduce((a, b) => a + b, 0)
  return { ok, okAfter, failed, codes }
}

/** A throwaway CA, a server certificate for 127.0.0.1/localhost, and a client certificate. */
function makeCertificates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-tls-'))
  const f = (name) => path.join(dir, name)
  const ssl = (...args) => execFileSync('openssl', args, { stdio: 'ignore' })
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=ferrisession test CA', '-keyout', f('ca.key'), '-out', f('ca.crt'))
  fs.writeFileSync(f('san.cnf'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n')
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`))
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('san.cnf'), '-out', f(`${who}.crt`))
  }
  return {
    dir,
    ca: f('ca.crt'),
    cert: f('server.crt'),
    key: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

/** A store in a child process; `call(method, ...args)` runs `store[method](...args)` there. */
function storeProcess(options) {
  const child = fork(path.join(__dirname, 'store-process.js'), [JSON.stringify(options)], { stdio: 'inherit' })
  const waiting = new Map()
  let next = 1
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject)
    child.on('message', (m) => {
      if (m.ready) return resolve()
      const w = waiting.get(m.id)
      waiting.delete(m.id)
      if (m.error) w.reject(new Error(m.error))
      else w.resolve(m.value)
    })
  })
  return {
    ready,
    call(method, ...args) {
      const id = next++
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        child.send({ id, method, args })
      })
    },
    stop() {
      return new Promise((resolve) => {
        child.once('exit', resolve)
        child.disconnect()
      })
    },
  }
}

module.exports = { startRedis, startCluster, startSentinels, freePort, sleep, cli, makeCertificates, until, measureRecovery, loadThroughFault, storeProcess }

/** Resolves with `promise`, or rejects if it has not settled within `ms`. */
function within(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

module.exports.within = within
