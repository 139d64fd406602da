'use strict'
// A second process for the near-cache tests: a store with the cache on, answering `get`s that
// the test process sends over IPC.
const { RedisStore } = require('../..')

const store = new RedisStore(JSON.parse(process.argv[2]))
process.on('message', async ({ id, sid, stats }) => {
  if (stats) return process.send({ id, stats: store.stats() })
  try {
    process.send({ id, value: await store.get(sid) })
  } catch (e) {
    process.send({ id, error: `${e.code}: ${e.message}` })
  }
})
process.on('disconnect', () => {
  store.close()
  process.exit(0)
})
process.send({ ready: true })
