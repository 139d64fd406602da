// 8 lanes of set + get while the parent restarts the server: `@@warm` tells it to start; it
// creates `flag` once the server is back. Every call must succeed (commandTimeout 6000).
import fs from 'node:fs'
import { main, RedisStore, config, sleep } from './child.mjs'

const { url, flag, lanes = 8, afterMs = 1500, callLimitMs = 15000 } = config

await main(async (opened) => {
  const store = opened(new RedisStore({ url, commandTimeout: 6000 }))
  const events = []
  store.on('connect', () => events.push('connect'))
  store.on('disconnect', () => events.push('disconnect'))
  let ok = 0
  let okAfter = 0
  let faultOver = false
  let stop = false
  const codes = {}
  const lane = async (l) => {
    for (let i = 0; !stop; i++) {
      const id = `lane-${l}-${i % 50}`
      for (const op of [() => store.set(id, { cookie: {}, l, i }), () => store.get(id)]) {
        let timer
        const limit = new Promise((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error('no reply'), { code: `NO_REPLY_IN_${callLimitMs}_MS` })), callLimitMs)
        })
        try {
          await Promise.race([op(), limit])
          ok++
          if (faultOver) okAfter++
        } catch (e) {
          const code = (e && e.code) || String(e)
          codes[code] = (codes[code] || 0) + 1
        } finally {
          clearTimeout(timer)
        }
      }
    }
  }
  await store.set('warm', { cookie: {} })
  const running = Array.from({ length: lanes }, (_, l) => lane(l))
  await sleep(300)
  console.log('@@warm')
  const deadline = Date.now() + 30_000
  while (!fs.existsSync(flag)) {
    if (Date.now() > deadline) throw new Error('the parent did not signal the restart within 30 s')
    await sleep(20)
  }
  faultOver = true
  await sleep(afterMs)
  stop = true
  await Promise.all(running)
  const failed = Object.values(codes).reduce((a, b) => a + b, 0)
  return { ok, okAfter, failed, codes, events, link: store.stats().link, driver: store.stats().driver }
})
