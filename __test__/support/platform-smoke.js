'use strict'
// The store's everyday calls against one Redis URL, for a runtime other than the one running the
// tests (a musl Node, Node for Windows under Wine): the caller starts the server and reads the
// one JSON line this prints. Exits non-zero on the first wrong answer; exits by itself after
// close() (a handle left open would keep it running, and the caller counts that as a hang).
//
//   node platform-smoke.js <redis url> [prefix]

const assert = require('node:assert/strict')
const path = require('node:path')
const { RedisStore } = require(path.join(__dirname, '..', '..', 'lib', 'express.js'))

const url = process.argv[2]
const prefix = process.argv[3] || 'smoke:'
const sess = (extra = {}) => ({ cookie: { originalMaxAge: null }, ...extra })

async function main() {
  const steps = []
  const store = new RedisStore({ url, prefix })
  assert.equal(await store.get('absent'), null)
  await store.set('a', sess({ n: 1 }))
  assert.deepEqual(await store.get('a'), sess({ n: 1 }))
  steps.push('set/get')
  await store.touch('a', { cookie: { expires: new Date(Date.now() + 30_000) } })
  steps.push('touch')
  await store.set('b', sess({ n: 2 }))
  assert.equal(await store.length(), 2)
  assert.deepEqual((await store.ids()).sort(), ['a', 'b'])
  steps.push('length/ids')
  await store.destroy('a')
  assert.equal(await store.get('a'), null)
  steps.push('destroy')

  const total = 2000
  const inFlight = 64
  const started = process.hrtime.bigint()
  let next = 0
  const lane = async () => {
    while (next < total) {
      const i = next++
      await store.set(`k${i}`, sess({ i }))
    }
  }
  await Promise.all(Array.from({ length: inFlight }, lane))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  assert.equal(await store.length(), total + 1)
  assert.deepEqual(await store.get(`k${total - 1}`), sess({ i: total - 1 }))
  steps.push(`${total} sets at ${inFlight} in flight`)

  await store.clear()
  assert.equal(await store.length(), 0)
  steps.push('clear')
  store.close()
  steps.push('close')

  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
  const loaded = report ? report.sharedObjects.filter((f) => f.endsWith('.node')) : []
  const glibc = report ? report.header.glibcVersionRuntime || null : null
  console.log(JSON.stringify({ ok: true, steps, setsMs: Math.round(ms), loaded, glibc, platform: process.platform, arch: process.arch, version: process.version }))
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String((err && err.stack) || err) }))
  process.exitCode = 1
})
