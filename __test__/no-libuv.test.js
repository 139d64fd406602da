'use strict'
// Hosts without libuv (Bun, Deno): the same engine runs, woken by its own I/O thread.
// FERRISESSION_NO_LIBUV=1 makes Node take that path, so it runs here on real servers.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { startRedis, startCluster } = require('./support/redis.js')

const run = promisify(execFile)
// The child runs its own test runner: it must not think it reports to this one.
const { NODE_TEST_CONTEXT, ...inherited } = process.env
const env = { ...inherited, FERRISESSION_NO_LIBUV: '1' }

// A script that runs in a child process with the variable set, and prints what it saw.
const script = `
const { RedisStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
const opts = JSON.parse(process.argv[1])
const store = new RedisStore(opts)
;(async () => {
  const writes = []
  for (let i = 0; i < 200; i++) writes.push(store.set('t' + i, { cookie: { expires: new Date(Date.now() + 60000) }, i }))
  const ids = store.ids()
  await Promise.all(writes)
  const got = await store.get('t7')
  await store.destroy('t8')
  const out = { ids: (await ids).length, got: got.i, length: await store.length(), driver: store.stats().driver }
  store.close()
  console.log(JSON.stringify(out))
})().catch((e) => { console.error(e); process.exit(1) })
`

async function inChild(opts) {
  try {
    const { stdout } = await run(process.execPath, ['-e', script, JSON.stringify(opts)], { env, timeout: 60000 })
    return JSON.parse(stdout.trim().split('\n').pop())
  } catch (e) {
    throw new Error(`the child failed: code ${e.code}, signal ${e.signal}, stderr ${e.stderr}, stdout ${e.stdout}`)
  }
}

describe('hosts without libuv: the engine on its own I/O thread', () => {
  it('one server: calls in order, and the process exits when the store is closed', async () => {
    const redis = await startRedis()
    try {
      const out = await inChild({ url: redis.url })
      assert.equal(out.driver, 'thread')
      assert.equal(out.ids, 200, 'ids() sees the un-awaited writes before it')
      assert.equal(out.got, 7)
      assert.equal(out.length, 199)
      assert.equal(redis.cli('DBSIZE'), '199')
    } finally {
      await redis.close()
    }
  })

  it('Cluster: walks over every primary', async () => {
    const cluster = await startCluster()
    try {
      const out = await inChild({ cluster: { nodes: cluster.seeds } })
      assert.equal(out.driver, 'thread')
      assert.equal(out.ids, 200)
      assert.equal(out.length, 199)
    } finally {
      await cluster.close()
    }
  })

  it('the call-order and ride-through suites pass on the thread', async () => {
    const files = ['call-order.test.js', 'ride-through.test.js'].map((f) => path.join(__dirname, f))
    const { stdout } = await run(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files], { env, timeout: 600000 })
    assert.match(stdout, /# fail 0/)
    assert.doesNotMatch(stdout, /# pass 0\n/)
  })
})
