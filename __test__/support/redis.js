'use strict'
// Starts real redis-server processes on free loopback ports for the tests, and stops them.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

function cli(port, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

async function waitForPing(port, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (cli(port, 'PING') === 'PONG') return
    } catch {}
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING`)
    await sleep(50)
  }
}

/**
 * A redis-server of our own. `extraArgs` go on its command line. `stop()` kills it;
 * `restart()` starts it again on the same port.
 */
async function startRedis(extraArgs = []) {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-redis-'))
  const server = {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    proc: null,
    async start() {
      this.proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
        { stdio: 'ignore' },
      )
      this.proc.on('error', () => {})
      await waitForPing(port)
    },
    cli(...args) {
      return cli(port, ...args)
    },
    async stop() {
      const p = this.proc
      this.proc = null
      if (!p || p.exitCode !== null) return
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
    },
  }
  await server.start()
  return server
}

module.exports = { startRedis, freePort, sleep, cli }

/** Resolves with `promise`, or rejects if it has not settled within `ms`. */
function within(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

module.exports.within = within
