// 8 lanes of set + get while the parent restarts the server (the harness's loadThroughFault):
// `@@warm` tells it to start; it creates `flag` once the server is back. Every call must
// succeed (commandTimeout 6000).
import fs from 'node:fs'
import { main, RedisStore, config, sleep, require } from './child.mjs'

const { loadThroughFault } = require('../support/redis.js')
const { url, flag, lanes = 8, afterMs = 1500, callLimitMs = 15000 } = config

await main(async (opened) => {
  const store = opened(new RedisStore({ url, commandTimeout: 6000 }))
  const events = []
  store.on('connect', () => events.push('connect'))
  store.on('disconnect', () => events.push('disconnect'))
  await store.set('warm', { cookie: {} })
  const restart = async () => {
    console.log('@@warm')
    const deadline = Date.now() + 30_000
    while (!fs.existsSync(flag)) {
      if (Date.now() > deadline) throw new Error('the parent did not signal the restart within 30 s')
      await sleep(20)
    }
  }
  const load = await loadThroughFault(store, restart, { lanes, afterMs, callLimitMs })
  return { ...load, events, link: store.stats().link, driver: store.stats().driver }
})
