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
  const tls = cli.tls[port] || []
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...tls, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

// redis-cli's TLS flags per port, for servers started with `tls`.
cli.tls = {}

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
 * A redis-server of our own. `extraArgs` go on its command line. With `tls` ({cert, key, ca}
 * file paths, `authClients`), it listens with TLS only. `stop()` kills it; `restart()` starts
 * it again on the same port.
 */
async function startRedis(extraArgs = [], { tls } = {}) {
  const port = await freePort()
  let listen = ['--port', String(port)]
  if (tls) {
    listen = ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', tls.authClients ? 'yes' : 'no']
    cli.tls[port] = ['--tls', '--cacert', tls.ca, ...(tls.clientCert ? ['--cert', tls.clientCert, '--key', tls.clientKey] : [])]
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-redis-'))
  const server = {
    port,
    dir,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    proc: null,
    async start() {
      this.proc = spawn(
        'redis-server',
        [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
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

module.exports = { startRedis, freePort, sleep, cli, makeCertificates }

/** Resolves with `promise`, or rejects if it has not settled within `ms`. */
function within(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

module.exports.within = within
