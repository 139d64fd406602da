'use strict'
// One process life with a panic injected inside the addon (FERRISESSION_INJECT_PANIC, see
// src/engine/fault.rs), for __test__/panic.test.js:
//   node panic-child.js <redis url> <pid of redis-server to stall, or 0>
// Four rounds of 20 sets; with a pid, the server is stopped (SIGSTOP) for 0.6 s during the
// second round, so that the calls' own timer fires. Prints `RESULT {...}` and exits by itself.
const { RedisStore } = require('../..')

const [url, pid] = process.argv.slice(2)
const stall = Number(pid) > 0
const store = new RedisStore({ url, commandTimeout: 300 })
const settle = (f) => new Promise((resolve) => f((err, v) => resolve(err ? { code: err.code } : { v })))

;(async () => {
  const rounds = []
  for (let round = 0; round < 4; round++) {
    if (stall && round === 1) {
      // The server answers nothing for 0.6 s: the calls' deadlines pass on the timer.
      process.kill(Number(pid), 'SIGSTOP')
      setTimeout(() => process.kill(Number(pid), 'SIGCONT'), 600)
    }
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => settle((cb) => store.set(`p${round}-${i}`, { cookie: {}, i }, cb))))
    rounds.push(replies.map((r) => r.code || 'ok'))
    if (stall && round === 1) await new Promise((r) => setTimeout(r, 700))
  }
  const read = await settle((cb) => store.get('p3-7', cb))
  const s = store.stats()
  process.stdout.write(`RESULT ${JSON.stringify({ rounds, read, link: s.link, errors: s.calls.set.errors, driver: s.driver })}\n`)
  store.close()
})()
