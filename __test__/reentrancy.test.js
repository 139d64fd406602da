'use strict'
// JS that re-enters the store from inside a delivery (issue 16, item 2): a node-style callback,
// a promise reaction or a 'connect' listener that makes new calls, calls close(), or throws.
// Each case runs in a child process of its own (support/reentrancy-child.js), on Node's libuv
// driver and on the I/O thread (FERRISESSION_NO_LIBUV=1), against one real redis-server and a
// real 3-primary cluster. Every child must exit by itself with code 0 and no signal: an abort
// (SIGABRT from a Rust panic or a V8 fatal error) or a hang fails the case.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis, startCluster } = require('./support/redis.js')
const { runNode, driverEnv, resultOf, assertCleanExit } = require('./support/run-child.js')

const CHILD = path.join(__dirname, 'support', 'reentrancy-child.js')
const DRIVERS = ['libuv', 'thread']

// What each case checks inside the child (see support/reentrancy-child.js), and what the
// parent checks of its result.
const CASES = {
  callback: {
    title: 'node-style callbacks make new calls from inside themselves (set → get → destroy → get chains, 162 calls)',
    check: (r) => assert.equal(r.chains, 41),
  },
  promise: {
    title: 'promise reactions make new calls at once (await get, then 81 calls; 20 rounds; 64 chained reactions)',
    check: (r) => assert.equal(r.rounds, 20),
  },
  event: {
    title: "a 'connect' listener, run by the engine's delivery, makes 80 calls whose callbacks make 40 more",
    check: (r) => assert.equal(r.calls, 120),
  },
  'close-callback': {
    title: 'close() in a node-style callback while 3000 calls are in flight: each settles, later calls get ERR_CLOSED, the process exits',
    check: (r) => {
      assert.ok(r.inFlightAtClose > 0, `calls in flight at close(): ${r.inFlightAtClose}`)
      assert.equal(r.resolved + Object.values(r.rejected).reduce((a, b) => a + b, 0), 3001)
    },
  },
  'close-promise': {
    title: 'close() in a promise reaction while 3000 calls are in flight',
    check: (r) => assert.ok(r.inFlightAtClose > 0, `calls in flight at close(): ${r.inFlightAtClose}`),
  },
  'close-outside': {
    title: 'for comparison, not re-entrant: close() from a timer while 3000 calls are in flight',
    check: (r) => assert.ok(r.inFlightAtClose > 0, `calls in flight at close(): ${r.inFlightAtClose}`),
  },
  'close-event': {
    title: "close() in the 'connect' listener while 3000 calls wait",
    check: (r) => assert.equal(r.resolved + Object.values(r.rejected).reduce((a, b) => a + b, 0), 3001),
  },
  throw: {
    title: "throwing node-style callbacks (reply, error reply, refused call) reach 'uncaughtException' once each; the store serves on",
    check: (r) => assert.equal(r.origins.length, 5),
  },
  'event-throw': {
    title: "a throwing 'connect' listener reaches 'uncaughtException'; the store serves on",
    check: (r) => assert.equal(r.heard >= 1, true),
  },
}

async function runCase(t, which, options, driver) {
  const run = await runNode(CHILD, [which, JSON.stringify(options)], { env: driverEnv(driver), timeoutMs: 45000 })
  assertCleanExit(assert, run, `${which} on ${driver}`)
  const result = resultOf(run)
  assert.ok(result, `the child printed its result:\n${run.stdout}`)
  assert.equal(result.driver, driver)
  CASES[which].check(result)
  t.diagnostic(`${which} (${driver}): ${run.ms} ms, ${JSON.stringify(result)}`)
}

describe('re-entrancy: one server', () => {
  let redis
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await redis.close()
  })

  for (const driver of DRIVERS) {
    for (const [which, { title }] of Object.entries(CASES)) {
      it(`${driver}: ${title}`, async (t) => {
        await runCase(t, which, { url: redis.url, prefix: `${which}-${driver}:` }, driver)
      })
    }
  }
})

describe('re-entrancy: a 3-primary cluster (calls from a callback go to other slots and nodes)', () => {
  let cluster
  before(async () => {
    cluster = await startCluster()
  })
  after(async () => {
    await cluster.close()
  })

  it('the keys a callback calls on span all three primaries', () => {
    const owners = new Set()
    for (let j = 0; j < 40; j++) owners.add(cluster.primaryFor(`callback-libuv:cb-${j}`).port)
    assert.equal(owners.size, 3)
  })

  for (const driver of DRIVERS) {
    for (const [which, { title }] of Object.entries(CASES)) {
      it(`${driver}: ${title}`, async (t) => {
        await runCase(t, which, { cluster: { nodes: cluster.seeds }, prefix: `${which}-${driver}:` }, driver)
      })
    }
  }
})
