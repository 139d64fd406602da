'use strict'
// Another process with its own express store (or, with `kind: 'sessions'`, its own
// ferrisession/sessions), for tests that span processes: the test sends `{id, method, args}`
// over IPC and gets `{id, value}` or `{id, error}` back. Options are JSON; `userField` names
// the session field `userId` reads.
const { RedisStore } = require('../..')
const { createSessions } = require('../../lib/sessions.js')

const { userField, kind, ...opts } = JSON.parse(process.argv[2])
if (userField) opts.userId = (sess) => sess[userField]
const store = kind === 'sessions' ? createSessions(opts) : new RedisStore(opts)
process.on('message', async ({ id, method, args }) => {
  try {
    process.send({ id, value: await store[method](...args) })
  } catch (e) {
    process.send({ id, error: `${e.code}: ${e.message}` })
  }
})
process.on('disconnect', () => {
  store.close()
  process.exit(0)
})
process.send({ ready: true })
