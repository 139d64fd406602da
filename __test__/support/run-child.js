'use strict'
// Runs a Node script in a child process and says how it ended, for tests whose subject may
// abort or hang the process it runs in (a store crash must not take the test runner down).
const { spawn } = require('node:child_process')

// The child runs no test runner of its own that reports to ours.
const { NODE_TEST_CONTEXT, FERRISESSION_NO_LIBUV, ...inherited } = process.env

/** The environment for a child on `driver`: 'libuv' (Node's loop) or 'thread' (FERRISESSION_NO_LIBUV=1). */
function driverEnv(driver) {
  if (driver !== 'libuv' && driver !== 'thread') throw new Error(`no driver ${driver}`)
  return driver === 'thread' ? { ...inherited, FERRISESSION_NO_LIBUV: '1' } : { ...inherited }
}

/**
 * Runs `node script ...args`; resolves (never rejects) with `{code, signal, hung, ms, stdout,
 * stderr}` once it exits. A child still running after `timeoutMs` is killed with SIGKILL and
 * reported as `hung` (it did not exit by itself). `onMessage` hears IPC messages; `send` is
 * set on the returned handle for the other direction.
 */
function runNode(script, args, { env, timeoutMs = 30000, ipc = false, onMessage } = {}) {
  const started = performance.now()
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  if (onMessage) child.on('message', onMessage)
  let hung = false
  const timer = setTimeout(() => {
    hung = true
    child.kill('SIGKILL')
  }, timeoutMs)
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, hung, ms: Math.round(performance.now() - started), stdout, stderr, pid: child.pid })
    })
  })
  done.child = child
  return done
}

/** The JSON after `RESULT ` on the child's last such line, or null. */
function resultOf(run) {
  const line = run.stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '))
  return line ? JSON.parse(line.slice('RESULT '.length)) : null
}

/** A one-paragraph account of how a child ended, for assertion messages. */
function describeRun(run) {
  const tail = (s) => {
    const lines = s.trim().split('\n')
    return lines.length <= 24 ? lines.join('\n') : [...lines.slice(0, 8), `… ${lines.length - 20} lines …`, ...lines.slice(-12)].join('\n')
  }
  return `code ${run.code}, signal ${run.signal}${run.hung ? ', killed: it did not exit by itself' : ''}, ${run.ms} ms\nstdout: ${tail(run.stdout)}\nstderr: ${tail(run.stderr)}`
}

/** Asserts that a child exited by itself with code 0 and no signal (no abort, no hang). */
function assertCleanExit(assert, run, what) {
  assert.equal(run.hung, false, `${what}: did not exit by itself\n${describeRun(run)}`)
  assert.equal(run.signal, null, `${what}: killed by ${run.signal}\n${describeRun(run)}`)
  assert.equal(run.code, 0, `${what}: exit code ${run.code}\n${describeRun(run)}`)
}

module.exports = { runNode, driverEnv, resultOf, describeRun, assertCleanExit }
