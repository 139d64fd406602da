'use strict'
// A panic inside the addon does not take the process down: injected (FERRISESSION_INJECT_PANIC)
// while reading replies, in a call's timer and in submit, on libuv and on the engine's own
// thread, it fails the calls it concerns with ERR_INTERNAL, is counted in stats(), the
// connection starts again, later calls succeed, and the process exits by itself.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis } = require('./support/redis.js')
const { runNode, driverEnv, resultOf, assertCleanExit, describeRun } = require('./support/run-child.js')

const CHILD = path.join(__dirname, 'support', 'panic-child.js')

describe('panics inside the addon are contained', () => {
  let redis
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await redis.stop()
  })

  const SITES = [
    // The second read of the connection panics: the calls waiting on it fail.
    { site: 'read:2', stall: false },
    // The second batch from JS panics on its way in.
    { site: 'submit:2', stall: false },
    // The first timer firing (the stopped server's calls reaching their deadline) panics.
    { site: 'timer:1', stall: true },
  ]
  for (const driver of ['libuv', 'thread']) {
    for (const { site, stall } of SITES) {
      it(`${driver}: a panic at ${site} fails its calls with ERR_INTERNAL and the store serves on`, async () => {
        const run = await runNode(CHILD, [redis.url, String(stall ? redis.proc.pid : 0)], { env: { ...driverEnv(driver), FERRISESSION_INJECT_PANIC: site }, timeoutMs: 20000 })
        assertCleanExit(assert, run, site)
        const r = resultOf(run)
        assert.ok(r, describeRun(run))
        assert.equal(r.driver, driver)
        assert.match(run.stderr, /injected panic/, 'the panic happened')
        assert.equal(r.link.internalErrors, 1, describeRun(run))
        // One panic: the calls of one round fail with ERR_INTERNAL, the others do not fail.
        const hit = r.rounds.map((round) => round.filter((c) => c === 'ERR_INTERNAL').length)
        assert.equal(hit.filter((n) => n > 0).length, 1, `one round has ERR_INTERNAL: ${JSON.stringify(r.rounds)}`)
        const internal = Math.max(...hit)
        for (const round of r.rounds) assert.ok(round.every((c) => c === 'ERR_INTERNAL' || c === 'ok'), `no other error: ${round}`)
        assert.equal(r.errors.ERR_INTERNAL, internal, 'counted per operation')
        // The connection started again: the last rounds and a read all succeed.
        assert.deepEqual(r.rounds[3], Array(20).fill('ok'))
        assert.deepEqual(r.read, { v: { cookie: {}, i: 7 } })
      })
    }
  }
})
