'use strict'
// One re-entrancy case in a process of its own, for __test__/reentrancy.test.js:
//   node reentrancy-child.js <case> '<store options as JSON>'
// JS re-enters the store from inside a delivery (a node-style callback, a promise reaction, a
// 'connect' listener): it makes new calls, closes the store, or throws. The child checks what
// it can see, prints one line `RESULT {...}` and must then exit by itself: nothing here calls
// process.exit on success, so a store that keeps the loop alive after close() hangs the child,
// which the parent reports. The exit code stays 1 unless the case passed.
const assert = require('node:assert/strict')
const { RedisStore } = require('../..')

process.exitCode = 1
const [which, optionsJson] = process.argv.slice(2)
const options = JSON.parse(optionsJson)
const expectedDriver = process.env.FERRISESSION_NO_LIBUV === '1' ? 'thread' : 'libuv'
const sess = (v) => ({ cookie: {}, v })
const isCoded = (e) => !!e && typeof e.code === 'string' && e.code.startsWith('ERR_')
const DEADLINE_MS = 10000 // commandTimeout is 3000: every call settles well within this

function report(result) {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
}

/** Fails the case: prints why and leaves (a hang must not hide the reason). */
function fail(why) {
  process.stdout.write(`FAIL ${why}\n`)
  process.exit(1)
}

// Checks made inside callbacks: a throw there would be the case's own uncaughtException.
const problems = []
function check(ok, what) {
  if (!ok) problems.push(what)
}

/** Resolves once `count()` reaches `n`; fails the case if it has not within DEADLINE_MS. */
function whenCount(count, n, what) {
  return new Promise((resolve) => {
    const started = Date.now()
    const tick = () => {
      if (count() >= n) return resolve()
      if (Date.now() - started > DEADLINE_MS) fail(`${typeof what === 'function' ? what() : what}: ${count()} of ${n} within ${DEADLINE_MS} ms`)
      setTimeout(tick, 5)
    }
    tick()
  })
}

/** A promise that fails the case if `p` has not settled within DEADLINE_MS. */
function bounded(p, what) {
  let timer
  return Promise.race([
    p,
    new Promise(() => {
      timer = setTimeout(() => fail(`${what}: not settled within ${DEADLINE_MS} ms`), DEADLINE_MS)
    }),
  ]).finally(() => clearTimeout(timer))
}

function open() {
  return new RedisStore({ commandTimeout: 3000, ...options })
}

const cases = {
  /**
   * A node-style callback of set() makes 40 sets from inside itself (more than the 16 calls
   * of a batch, so a batch is handed to the core from inside the delivery); each of their
   * callbacks goes on get → destroy → get, each call made inside the previous call's callback.
   */
  async callback() {
    const store = open()
    const N = 40
    let done = 0
    store.set('cb-root', sess('root'), (err) => {
      check(err === null, `root set: ${err}`)
      for (let j = 0; j < N; j++) {
        const id = `cb-${j}`
        store.set(id, sess(j), (err) => {
          check(err === null, `set ${id}: ${err}`)
          store.get(id, (err, v) => {
            check(err === null && v && v.v === j, `get ${id}: ${err} ${JSON.stringify(v)}`)
            store.destroy(id, (err) => {
              check(err === null, `destroy ${id}: ${err}`)
              store.get(id, (err, v) => {
                check(err === null && v === null, `get after destroy ${id}: ${err} ${JSON.stringify(v)}`)
                done++
              })
            })
          })
        })
      }
      store.get('cb-root', (err, v) => {
        check(err === null && v && v.v === 'root', `root get: ${err} ${JSON.stringify(v)}`)
        done++
      })
    })
    await whenCount(() => done, N + 1, 'callback chains finished')
    assert.deepEqual(problems, [])
    const driver = store.stats().driver
    assert.equal(driver, expectedDriver)
    assert.equal(await store.length(), 1, 'only cb-root is left')
    store.close()
    return { chains: done, calls: 1 + 4 * N + 1, driver }
  },

  /**
   * Promise reactions: `await store.get()` and then, in the same reaction, 40 sets and 40 gets;
   * 20 rounds. Then 64 gets whose own reactions each make a new call: 64 calls made in one
   * microtask checkpoint of one delivery.
   */
  async promise() {
    const store = open()
    const ROUNDS = 20
    const N = 40
    await store.set('p-root', sess(-1))
    let calls = 1
    for (let r = 0; r < ROUNDS; r++) {
      const root = await store.get('p-root')
      assert.equal(root.v, r - 1)
      const writes = []
      for (let j = 0; j < N; j++) writes.push(store.set(`p-${j}`, sess(r * 1000 + j)))
      const reads = []
      for (let j = 0; j < N; j++) reads.push(store.get(`p-${j}`))
      writes.push(store.set('p-root', sess(r)))
      calls += 1 + 2 * N + 1
      assert.deepEqual(await bounded(Promise.all(writes), `round ${r} writes`), Array(N + 1).fill(null))
      const got = await bounded(Promise.all(reads), `round ${r} reads`)
      assert.deepEqual(got.map((x) => x.v), Array.from({ length: N }, (_, j) => r * 1000 + j), `round ${r}: each get sees the set before it`)
    }
    const chained = await bounded(
      Promise.all(
        Array.from({ length: 64 }, (_, j) =>
          store.get(`p-${j % N}`).then((v) => store.set(`q-${j}`, sess(v.v)).then(() => store.get(`q-${j}`))),
        ),
      ),
      'chained reactions',
    )
    calls += 64 * 3
    assert.deepEqual(chained.map((x) => x.v), Array.from({ length: 64 }, (_, j) => (ROUNDS - 1) * 1000 + (j % N)))
    const driver = store.stats().driver
    assert.equal(driver, expectedDriver)
    store.close()
    return { rounds: ROUNDS, calls, driver }
  },

  /**
   * close() from inside the node-style callback of the first call to settle, while 3000 more
   * are in flight: each of them settles (resolves, or rejects with a coded error); calls made
   * after close(), in the same callback, reject with ERR_CLOSED; close() again is harmless.
   */
  async 'close-callback'() {
    return closeWhileInFlight((store, first, afterClose) => {
      store.get('c-first', (err) => {
        check(err === null, `first get: ${err}`)
        first.inFlight = store.stats().inFlight
        store.close()
        store.close()
        afterClose()
      })
    })
  },

  /** The same, with close() in a promise reaction of the first call. */
  async 'close-promise'() {
    return closeWhileInFlight((store, first, afterClose) => {
      store.get('c-first').then(() => {
        first.inFlight = store.stats().inFlight
        store.close()
        afterClose()
      })
    })
  },

  /**
   * For comparison, not re-entrant: close() from a timer 1 ms after the calls were made,
   * outside any delivery, while they are in flight.
   */
  async 'close-outside'() {
    return closeWhileInFlight((store, first, afterClose) => {
      setTimeout(() => {
        first.inFlight = store.stats().inFlight
        store.close()
        afterClose()
      }, 1)
    })
  },

  /** The same, with close() inside the store's own 'connect' event, which the engine delivers. */
  async 'close-event'() {
    return closeWhileInFlight((store, first, afterClose) => {
      store.once('connect', () => {
        first.inFlight = store.stats().inFlight
        store.close()
        afterClose()
      })
    })
  },

  /**
   * A 'connect' listener (run by the engine's delivery, not by a promise) makes 40 sets and
   * 40 gets; their callbacks make more calls.
   */
  async event() {
    const store = open()
    const N = 40
    let done = 0
    let connects = 0
    store.on('connect', () => {
      connects++
      if (connects > 1) return
      for (let j = 0; j < N; j++) {
        store.set(`e-${j}`, sess(j), (err) => {
          check(err === null, `set e-${j}: ${err}`)
          store.get(`e-${j}`, (err, v) => {
            check(err === null && v && v.v === j, `get e-${j}: ${err} ${JSON.stringify(v)}`)
            done++
          })
        })
      }
      for (let j = 0; j < N; j++) store.get(`e-${j}`).then((v) => check(v && v.v === j, `get e-${j} in the listener: ${JSON.stringify(v)}`), (e) => check(false, `get e-${j}: ${e}`))
    })
    await whenCount(() => done, N, 'calls made in the connect listener')
    assert.deepEqual(problems, [])
    const driver = store.stats().driver
    assert.equal(driver, expectedDriver)
    store.close()
    return { calls: 3 * N, connects, driver }
  },

  /**
   * Node-style callbacks that throw, in one delivery with 20 calls whose callbacks do not:
   * each thrown error reaches process 'uncaughtException' exactly once, each callback runs
   * once, the other calls settle, and the store serves 200 calls afterwards.
   */
  async throw() {
    const caught = []
    process.on('uncaughtException', (err, origin) => caught.push({ err, origin }))
    const store = open()
    await store.set('t-warm', sess('warm'))
    // A value this store cannot parse, written by one whose serializer writes it.
    const writer = new RedisStore({ ...options, serializer: { stringify: () => '{not json', parse: JSON.parse } })
    await writer.set('t-bad', sess('bad'))
    writer.close()
    const booms = {
      get: new Error('boom from a get callback'),
      set: new Error('boom from a set callback'),
      after: new Error('boom after making a call'),
      error: new Error('boom from the callback of a reply that failed (ERR_BAD_DATA)'),
      refused: new Error('boom from the callback of a refused call (a bad id)'),
    }
    const calledBack = { get: 0, set: 0, after: 0, error: 0, refused: 0 }
    let normal = 0
    let madeInThrower = null
    store.set('t-a', sess('a'), () => {
      calledBack.set++
      throw booms.set
    })
    store.get('t-warm', () => {
      calledBack.get++
      throw booms.get
    })
    for (let j = 0; j < 20; j++) {
      store.set(`t-${j}`, sess(j), (err) => {
        check(err === null, `set t-${j}: ${err}`)
        normal++
      })
    }
    store.get('t-a', (err, v) => {
      calledBack.after++
      check(err === null && v && v.v === 'a', `get t-a: ${err} ${JSON.stringify(v)}`)
      madeInThrower = store.set('t-made', sess('made')).then(() => store.get('t-made'))
      throw booms.after
    })
    // Error callbacks that throw: a reply that fails to parse, and a call refused at once.
    store.get('t-bad', (err) => {
      calledBack.error++
      check(err && err.code === 'ERR_BAD_DATA', `get t-bad: ${err && err.code}`)
      throw booms.error
    })
    store.get('', (err) => {
      calledBack.refused++
      check(err && err.code === 'ERR_BAD_ARGUMENT', `get '': ${err && err.code}`)
      throw booms.refused
    })
    const nBooms = Object.keys(booms).length
    await whenCount(() => caught.length + normal, nBooms + 20, 'thrown errors caught and other calls settled')
    await new Promise((r) => setTimeout(r, 200)) // a second delivery of a callback would show here
    assert.deepEqual(problems, [])
    assert.equal(normal, 20)
    assert.deepEqual(calledBack, { get: 1, set: 1, after: 1, error: 1, refused: 1 }, 'each throwing callback ran once')
    for (const [name, boom] of Object.entries(booms)) {
      assert.equal(caught.filter((c) => c.err === boom).length, 1, `${name}: the thrown error reached uncaughtException once`)
    }
    assert.equal(caught.length, nBooms, `only the thrown errors: ${caught.map((c) => c.err && c.err.message)}`)
    assert.deepEqual(await bounded(madeInThrower, 'the call made before the throw'), sess('made'))
    // The store keeps serving.
    const later = []
    for (let j = 0; j < 100; j++) later.push(store.set(`after-${j}`, sess(j)).then(() => store.get(`after-${j}`)))
    const got = await bounded(Promise.all(later), 'calls after the throws')
    assert.deepEqual(got.map((x) => x.v), Array.from({ length: 100 }, (_, j) => j))
    const driver = store.stats().driver
    assert.equal(driver, expectedDriver)
    assert.equal(store.stats().inFlight, 0)
    store.close()
    return { origins: caught.map((c) => c.origin), calledBack, driver }
  },

  /**
   * A 'connect' listener that throws, inside the engine's delivery of the event: the error
   * reaches 'uncaughtException' once and the store then serves calls.
   */
  async 'event-throw'() {
    const caught = []
    process.on('uncaughtException', (err, origin) => caught.push({ err, origin }))
    const store = open()
    const boom = new Error('boom from a connect listener')
    let heard = 0
    store.on('connect', () => {
      heard++
      throw boom
    })
    const first = store.set('et-0', sess(0))
    await whenCount(() => caught.length, 1, 'the thrown error caught')
    assert.equal(caught[0].err, boom)
    const outcome = await bounded(first.then(() => 'ok', (e) => (isCoded(e) ? e.code : `uncoded ${e}`)), 'the call made before')
    assert.ok(outcome === 'ok' || outcome.startsWith('ERR_'), outcome)
    const later = []
    for (let j = 0; j < 100; j++) later.push(store.set(`et-${j}`, sess(j)).then(() => store.get(`et-${j}`)))
    const got = await bounded(Promise.all(later), 'calls after the throw')
    assert.deepEqual(got.map((x) => x.v), Array.from({ length: 100 }, (_, j) => j))
    assert.equal(caught.length, 1)
    const driver = store.stats().driver
    assert.equal(driver, expectedDriver)
    store.close()
    return { heard, firstCall: outcome, origin: caught[0].origin, driver }
  },
}

/**
 * Starts 3001 calls (1500 sets and 1500 gets of distinct keys, 1 KB each) around `arm(store, first,
 * afterClose)`, which closes the store from inside some delivery and then calls `afterClose()`.
 * Every call must settle within the deadline, each resolved with the right value or rejected
 * with a coded error; calls made after close() reject with ERR_CLOSED.
 */
async function closeWhileInFlight(arm) {
  const store = open()
  const driver = store.stats().driver
  const first = { inFlight: null }
  const outcomes = { resolved: 0, rejected: {}, wrong: [] }
  let settled = 0
  const after = []
  const afterCodes = []
  let closedAt = null
  arm(store, first, () => {
    closedAt = settled
    // Calls made after close(), from the same callback: promise and node-style.
    after.push(store.get('c-late').then(() => 'resolved', (e) => e.code))
    after.push(store.set('c-late', sess(1)).then(() => 'resolved', (e) => e.code))
    store.destroy('c-late', (err) => afterCodes.push(err ? err.code : 'no error'))
  })
  // Enough calls, with replies big enough (1 KB), that the replies take many reads: the
  // first callback runs while most of the calls are still unanswered.
  const N = 1500
  const filler = 'x'.repeat(1024)
  const track = (p, expect) =>
    p.then(
      (v) => {
        settled++
        if (expect !== undefined && !(v === null || (v && v.v === expect))) outcomes.wrong.push(JSON.stringify(v))
        outcomes.resolved++
      },
      (e) => {
        settled++
        const code = isCoded(e) ? e.code : `uncoded: ${e}`
        outcomes.rejected[code] = (outcomes.rejected[code] || 0) + 1
      },
    )
  const all = []
  all.push(track(store.set('c-first', sess('first'))))
  for (let j = 0; j < N; j++) {
    all.push(track(store.set(`c-${j}`, { cookie: {}, v: j, filler })))
    all.push(track(store.get(`c-${j}`), j))
  }
  await whenCount(() => settled, 2 * N + 1, () => `calls settled after close() (${first.inFlight} were in flight at close(), ${closedAt} had settled)`)
  await bounded(Promise.all(all), 'calls in flight at close()')
  const late = await bounded(Promise.all(after), 'calls made after close()')
  await whenCount(() => afterCodes.length, 1, 'node-style callback of a call after close()')
  assert.ok(closedAt !== null, 'close() was called from inside a delivery')
  assert.ok(first.inFlight > 0, `calls were in flight at close() (${first.inFlight})`)
  assert.deepEqual(problems, [])
  assert.deepEqual(outcomes.wrong, [], 'no get resolved with another value')
  assert.equal(outcomes.resolved + Object.values(outcomes.rejected).reduce((a, b) => a + b, 0), 2 * N + 1)
  for (const code of Object.keys(outcomes.rejected)) assert.ok(code.startsWith('ERR_'), `rejected with a coded error, not ${code}`)
  assert.deepEqual(late, ['ERR_CLOSED', 'ERR_CLOSED'], 'calls after close() reject with ERR_CLOSED')
  assert.deepEqual(afterCodes, ['ERR_CLOSED'])
  assert.equal(driver, expectedDriver)
  return { driver, inFlightAtClose: first.inFlight, settledBeforeClose: closedAt, ...outcomes }
}

const run = cases[which]
if (!run) fail(`no case ${which}`)
run().then(
  (result) => {
    report(result)
    process.exitCode = 0
  },
  (err) => fail(err && err.stack ? err.stack : String(err)),
)
