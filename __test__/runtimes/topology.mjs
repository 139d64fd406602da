// The store on whatever `options` name (a cluster, sentinels, TLS): 200 un-awaited writes, the
// ids() after them, reads, a destroy and the counts. `tlsFiles` are read into `options.tls`.
import fs from 'node:fs'
import { main, RedisStore, assert, config } from './child.mjs'

const { options, tlsFiles, count = 200 } = config

await main(async (opened) => {
  if (tlsFiles) {
    options.tls = { ...options.tls }
    for (const [k, file] of Object.entries(tlsFiles)) options.tls[k] = fs.readFileSync(file)
  }
  const store = opened(new RedisStore(options))
  const expires = new Date(Date.now() + 600_000)
  const writes = Array.from({ length: count }, (_, i) => store.set(`t${i}`, { cookie: { expires }, i }))
  const ids = store.ids()
  await Promise.all(writes)
  assert.equal(new Set(await ids).size, count, 'ids() sees the un-awaited writes before it')
  assert.equal((await store.get('t7')).i, 7)
  await store.destroy('t8')
  assert.equal(await store.get('t8'), null)
  const length = await store.length()
  const all = await store.all()
  assert.equal(all.length, count - 1)
  return { driver: store.stats().driver, length, link: store.stats().link }
})
