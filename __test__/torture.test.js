'use strict'
// The torture suite of issue 16, item 5, on Node's libuv driver and on the I/O thread
// (FERRISESSION_NO_LIBUV=1), every store in a child process so that an abort shows as a child's
// signal instead of taking the runner down:
//  - 50 process lives of a cluster store beside a connected node-redis cluster client (the
//    `HandleScope` abort of item 1): every life must exit by itself with code 0, no signal;
//  - a schedule of faults under load (8 lanes of set/get/destroy per store, a store with
//    commandTimeout 3000 and one with 6000): CLIENT KILL, a restart, SIGSTOP/SIGCONT on one
//    server; a primary killed (its replica promoted) and slot migrations on a cluster; a
//    Sentinel failover. No abort, no call past its commandTimeout + SLACK_MS, and every write
//    acknowledged and not later destroyed reads back afterwards. Exempt (counted and printed,
//    not asserted): keys whose last write was rejected, and writes acknowledged inside Redis's
//    own replication windows (500 ms before a cluster primary is killed; from SENTINEL FAILOVER
//    until 1 s after the promotion), which asynchronous replication may lose whatever the store
//    does. The one server runs with appendfsync always, so its restart loses nothing.
// Failover variants (which primary, SIGKILL or SIGSTOP, calls in flight, no replica) and the
// time until every key is served again are in cluster-failover.test.js.
// Bounded: about 2-3 minutes on 2 cores; each phase prints its timing.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis, startCluster, startSentinels, sleep, until } = require('./support/redis.js')
const { runNode, driverEnv, resultOf, describeRun, assertCleanExit } = require('./support/run-child.js')

const LIFE = path.join(__dirname, 'support', 'torture-life.js')
const LOAD = path.join(__dirname, 'support', 'torture-load.js')
const DRIVERS = ['libuv', 'thread']
const LIVES = 50
// Two at a time: this suite must run on a 2-core machine.
const LIFE_CONCURRENCY = 2
// A life takes well under a second; one still running after this did not exit by itself (its
// calls have settled or failed long before: connectTimeout 5000, commandTimeout 3000).
const LIFE_LIMIT_MS = 15000
const TIGHT_MS = 3000
const RIDE_MS = 6000
// What a call may take beyond its commandTimeout: timer granularity and event-loop lag of a
// child running 16 lanes on a busy 2-core machine.
const SLACK_MS = 1000
// Share of the calls of the commandTimeout-6000 store that must succeed through the schedule.
const RIDE_THROUGH_SHARE = 0.9

const suiteStarted = performance.now()
const elapsed = () => `${((performance.now() - suiteStarted) / 1000).toFixed(1)} s into the suite`

let livesCluster
before(async () => {
  livesCluster = await startCluster()
})
after(async () => {
  await livesCluster.close()
})

/** Runs LIVES lives of support/torture-life.js on `driver`, LIFE_CONCURRENCY at a time. */
async function lives(t, driver) {
  const t0 = performance.now()
  const results = []
  let next = 0
  const worker = async () => {
    while (next < LIVES) {
      const i = next++
      results[i] = await runNode(LIFE, [livesCluster.seeds[i % livesCluster.seeds.length], String(i)], { env: driverEnv(driver), timeoutMs: LIFE_LIMIT_MS })
    }
  }
  await Promise.all(Array.from({ length: LIFE_CONCURRENCY }, worker))
  const died = results.filter((r) => r.hung || r.signal !== null || r.code !== 0)
  const bySignal = died.filter((r) => !r.hung && r.signal !== null).length
  const hung = died.filter((r) => r.hung).length
  const fatal = died.filter((r) => /FATAL ERROR|HandleScope/.test(r.stderr)).length
  const ms = Math.round(performance.now() - t0)
  t.diagnostic(`${driver}: ${died.length} of ${LIVES} lives died (${bySignal} killed by a signal, ${fatal} with a V8 FATAL ERROR, ${hung} did not exit by themselves, ${died.length - bySignal - hung} exit code ≠ 0) in ${ms} ms; ${elapsed()}`)
  for (const r of died.slice(0, 3)) {
    const stages = r.stdout.split('\n').filter((l) => l.startsWith('stage ')).map((l) => l.slice(6))
    const why = r.hung ? `did not exit by itself (killed after ${LIFE_LIMIT_MS / 1000} s)` : `signal ${r.signal}, code ${r.code}`
    t.diagnostic(`a life that died: ${why} after ${r.ms} ms; it got to: ${stages.join(' → ') || 'nothing'}; stderr: ${r.stderr.trim().split('\n')[0] || '(empty)'}`)
  }
  for (const r of results) if (!r.hung && r.code === 0) assert.equal(resultOf(r).driver, driver)
  assert.equal(died.length, 0, `${died.length} of ${LIVES} lives died; the first: ${died[0] && describeRun(died[0])}`)
}

/**
 * Runs support/torture-load.js on `driver` with two stores (commandTimeout TIGHT_MS and RIDE_MS,
 * 8 lanes each) made from `storeOptions`, applies `schedule({windows, log})` meanwhile, then
 * has the child stop, read every key back and report; and asserts on the report.
 */
async function underLoad(t, driver, storeOptions, schedule) {
  const t0 = performance.now()
  const config = {
    lanes: 8,
    keys: 25,
    stores: [
      { name: 'tight', options: { ...storeOptions, commandTimeout: TIGHT_MS, prefix: 'tight:' } },
      { name: 'ride', options: { ...storeOptions, commandTimeout: RIDE_MS, prefix: 'ride:' } },
    ],
  }
  let onReady
  let onReport
  const ready = new Promise((r) => (onReady = r))
  const reported = new Promise((r) => (onReport = r))
  const run = runNode(LOAD, [JSON.stringify(config)], {
    env: driverEnv(driver),
    ipc: true,
    timeoutMs: 180000,
    onMessage: (m) => {
      if (m.ready) onReady(m)
      if (m.report) onReport(m.report)
    },
  })
  const child = run.child
  child.on('error', () => {})
  const send = (m) => {
    if (child.connected) child.send(m)
  }
  const first = await Promise.race([ready, run.then((r) => ({ died: r }))])
  if (first.died) assert.fail(`the load child ended before it was ready: ${describeRun(first.died)}`)
  assert.equal(first.driver, driver)
  const log = []
  const windows = []
  send({ start: true })
  const faultsStarted = performance.now()
  await schedule({ windows, log: (what) => log.push(`${Math.round(performance.now() - faultsStarted)} ms ${what}`) })
  const faultsMs = Math.round(performance.now() - faultsStarted)
  send({ stop: true, windows })
  const report = await Promise.race([reported, run.then(() => null)])
  const end = await run
  t.diagnostic(`${driver}: faults ${log.join('; ')}; schedule ${faultsMs} ms, whole phase ${Math.round(performance.now() - t0)} ms; ${elapsed()}`)
  if (report) {
    for (const s of report.stores) {
      const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0)
      const v = s.verify
      t.diagnostic(
        `${driver} ${s.name} (commandTimeout ${s.commandTimeout}): ${s.ok} ok, ${rejected} rejected ${JSON.stringify(s.rejected)}; ` +
          `max call ${s.maxMs} ms (limit ${s.commandTimeout + SLACK_MS}; slowest ${JSON.stringify(s.slowest)}), ${s.overLimit} over it, ${s.hung} hung; ` +
          `read back ${v.readBack} of ${v.checked} keys (${v.uncertain} with a rejected last write, ${v.inWindow} written in a replication window of which ${v.inWindowLost} lost); ` +
          `online mismatches ${v.onlineMismatches} (+${v.onlineMismatchesInWindow} in windows); link ${JSON.stringify(s.link)}`,
      )
    }
  }
  assertCleanExit(assert, end, `the load child on ${driver}`)
  assert.ok(report, `the load child reported: ${describeRun(end)}`)
  for (const s of report.stores) {
    const what = `${driver} ${s.name}`
    const total = s.ok + Object.values(s.rejected).reduce((a, b) => a + b, 0)
    assert.equal(s.driver, driver)
    assert.deepEqual(s.uncoded, [], `${what}: every rejection carries an ERR_ code`)
    assert.equal(s.hung, 0, `${what}: calls that never settled`)
    assert.ok(s.maxMs <= s.commandTimeout + SLACK_MS, `${what}: a call took ${s.maxMs} ms, past commandTimeout ${s.commandTimeout} + ${SLACK_MS}: ${JSON.stringify(s.slowest)}`)
    assert.equal(s.overLimit, 0)
    assert.deepEqual(s.verify.unreadable, [], `${what}: keys unreadable after the faults`)
    assert.ok(s.verify.checked > 0, `${what}: keys to check`)
    assert.equal(s.verify.lostCount, 0, `${what}: acknowledged writes that did not read back: ${JSON.stringify(s.verify.lost)}`)
    assert.equal(s.verify.onlineMismatches, 0, `${what}: gets that did not see the last acknowledged write: ${JSON.stringify(s.verify.mismatchSamples)}`)
    assert.ok(total > 1000, `${what}: load ran (${total} calls)`)
    if (s.commandTimeout === RIDE_MS) {
      assert.ok(s.ok >= RIDE_THROUGH_SHARE * total, `${what}: ${s.ok} of ${total} calls succeeded; ${JSON.stringify(s.rejected)}`)
    }
  }
  return report
}

/**
 * Moves the slot of lane key `key` from its primary to another under load: 100 filler keys
 * (`{key}:filler:n`, same slot) are written first so that MIGRATE has keys to move besides the
 * lane's own; then IMPORTING/MIGRATING, MIGRATE 10 keys at a time (the lanes meet ASK
 * meanwhile), SETSLOT NODE on every primary. Returns how many keys MIGRATE moved.
 */
async function migrateSlotOf(cluster, key) {
  const live = () => cluster.nodes.filter((n) => n.proc)
  const slot = live()[0].cli('CLUSTER', 'KEYSLOT', key)
  const src = cluster.primaryFor(key)
  const dst = live().find((n) => n !== src && n.cli('ROLE').split('\n')[0] === 'master')
  const fillers = Array.from({ length: 100 }, (_, i) => [`{${key}}:filler:${i}`, `f${i}`]).flat()
  src.cli('MSET', ...fillers)
  const id = (n) => n.cli('CLUSTER', 'MYID')
  const [srcId, dstId] = [id(src), id(dst)]
  dst.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', srcId)
  src.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dstId)
  let moved = 0
  for (let round = 0; round < 1000; round++) {
    const keys = src.cli('CLUSTER', 'GETKEYSINSLOT', slot, '10').split('\n').filter(Boolean)
    if (keys.length === 0) break
    src.cli('MIGRATE', '127.0.0.1', String(dst.port), '', '0', '5000', 'KEYS', ...keys)
    moved += keys.length
    await sleep(10)
  }
  const masters = live().filter((n) => n.cli('ROLE').split('\n')[0] === 'master')
  for (const n of [dst, src, ...masters.filter((m) => m !== src && m !== dst)]) n.cli('CLUSTER', 'SETSLOT', slot, 'NODE', dstId)
  assert.ok(moved >= 100, `MIGRATE moved the fillers of slot ${slot} (${moved})`)
  assert.equal(dst.cli('GET', `{${key}}:filler:99`), 'f99', 'the fillers are on the new owner')
  return moved
}

for (const driver of DRIVERS) {
  describe(`torture on the ${driver === 'libuv' ? 'libuv driver' : 'I/O thread (FERRISESSION_NO_LIBUV=1)'}`, () => {
    it(`${LIVES} process lives: a node-redis cluster client connected, a store from it and one from cluster nodes, set, get, close, exit`, async (t) => {
      await lives(t, driver)
    })

    it('one server under load: CLIENT KILL TYPE normal, a restart, SIGSTOP for 1 s', async (t) => {
      // Acknowledged writes survive a restart only if the server keeps them: fsync per write.
      const server = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'])
      try {
        await underLoad(t, driver, { url: server.url }, async ({ log }) => {
          await sleep(1000)
          log(`CLIENT KILL TYPE normal (${server.cli('CLIENT', 'KILL', 'TYPE', 'normal')} killed)`)
          await sleep(1500)
          await server.stop()
          log('killed')
          await sleep(500)
          await server.start()
          log('restarted')
          await sleep(1500)
          server.proc.kill('SIGSTOP')
          log('SIGSTOP')
          await sleep(1000)
          server.proc.kill('SIGCONT')
          log('SIGCONT')
          await sleep(2000)
        })
      } finally {
        if (server.proc) server.proc.kill('SIGCONT')
        await server.close()
      }
    })

    it('a cluster under load: a primary killed (its replica promoted), then 8 slots migrated', async (t) => {
      const cluster = await startCluster()
      try {
        await underLoad(t, driver, { cluster: { nodes: cluster.seeds } }, async ({ windows, log }) => {
          await sleep(1000)
          const victim = cluster.primaryFor('ride:k-0-0')
          const killedAt = Date.now()
          await victim.stop()
          // Replication is asynchronous: a write the victim acknowledged just before it died
          // may never have reached its replica. Writes acknowledged then are reported, not asserted.
          windows.push([killedAt - 500, Date.now() + 200])
          log(`primary ${victim.port} killed`)
          await until(() => cluster.primaryFor('ride:k-0-0') !== null, 30000, 'the replica to be promoted')
          log(`replica ${cluster.primaryFor('ride:k-0-0').port} promoted`)
          await sleep(2000)
          let moved = 0
          const keys = []
          for (let l = 0; l < 4; l++) keys.push(`ride:k-${l}-1`, `tight:k-${l}-1`)
          for (const key of keys) moved += await migrateSlotOf(cluster, key)
          log(`the slots of ${keys.length} lane keys migrated (MIGRATE moved ${moved} keys)`)
          await sleep(2000)
        })
      } finally {
        await cluster.close()
      }
    })

    it('Sentinel under load: SENTINEL FAILOVER', async (t) => {
      const group = await startSentinels()
      try {
        await underLoad(t, driver, { sentinel: { nodes: group.sentinels.map((s) => s.url), name: 'mymaster' } }, async ({ windows, log }) => {
          await sleep(1000)
          const startedAt = Date.now()
          group.sentinels[0].cli('SENTINEL', 'FAILOVER', 'mymaster')
          log('SENTINEL FAILOVER')
          await until(() => group.masterPort() === group.replica.port, 30000, 'the sentinels to promote the replica')
          // Until the store hears +switch-master it writes to the old primary, which takes the
          // writes and drops them when it is made a replica (Redis's own window). Writes
          // acknowledged from the FAILOVER until 1 s after the promotion are reported, not
          // asserted; a store still writing to the old primary later than that loses writes
          // the test counts.
          windows.push([startedAt - 100, Date.now() + 1000])
          log('replica promoted')
          await until(() => /role:slave/.test(group.primary.cli('INFO', 'replication')), 30000, 'the old primary to become a replica')
          log('old primary demoted')
          await sleep(2000)
        })
      } finally {
        await group.close()
      }
    })
  })
}
