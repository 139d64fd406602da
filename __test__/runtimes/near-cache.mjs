// The near cache (cache: true) invalidated by another client: a plain RESP connection of this
// script's own changes each key the store has cached; 5 ms after Redis acknowledged the change,
// the store must read the new value (or the deletion).
import net from 'node:net'
import { main, RedisStore, config, sleep } from './child.mjs'

const { port, trials = 200, withinMs = 5 } = config

/** A bare RESP client: one command at a time, replies read up to their first CRLF. */
function rawClient() {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let buffered = ''
  let waiting = null
  socket.on('data', (chunk) => {
    buffered += chunk.toString('utf8')
    const end = buffered.indexOf('\r\n')
    if (end >= 0 && waiting) {
      const line = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      const w = waiting
      waiting = null
      if (line.startsWith('-')) w.reject(new Error(line))
      else w.resolve(line)
    }
  })
  const ready = new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return {
    async command(...args) {
      await ready
      const frame = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject }
        socket.write(frame)
      })
    },
    close: () => socket.destroy(),
  }
}

await main(async (opened) => {
  const store = opened(new RedisStore({ url: `redis://127.0.0.1:${port}`, cache: true }))
  const other = opened(rawClient())
  let stale = 0
  let neverSeen = 0
  const lateBy = []
  for (let i = 0; i < trials; i++) {
    const sid = `t${i % 10}`
    const deleting = i % 10 === 9
    if (deleting) {
      // A key with a value to delete: written by the other client, then read until seen.
      await other.command('SET', `sess:${sid}`, JSON.stringify({ cookie: {}, i: -1 }), 'EX', '600')
      const until = Date.now() + 2000
      while ((await store.get(sid))?.i !== -1) {
        if (Date.now() > until) throw new Error(`the store never saw the write to ${sid}`)
        await sleep(1)
      }
    }
    await store.get(sid)
    await store.get(sid) // cached now (the value, or its absence before the first write)
    const expected = deleting ? null : { cookie: {}, i }
    if (deleting) await other.command('DEL', `sess:${sid}`)
    else await other.command('SET', `sess:${sid}`, JSON.stringify(expected), 'EX', '600')
    const changedAt = Date.now()
    await sleep(withinMs)
    const seen = (v) => (deleting ? v === null : v !== null && v.i === i)
    if (seen(await store.get(sid))) continue
    stale++
    // How late, if at all (at most 2 s more).
    let late = null
    while (Date.now() - changedAt < 2000) {
      await sleep(10)
      if (seen(await store.get(sid))) {
        late = Date.now() - changedAt
        break
      }
    }
    if (late === null) neverSeen++
    else lateBy.push(late)
  }
  const stats = store.stats()
  return { stale, neverSeen, lateBy, cache: stats.cache, driver: stats.driver }
})
