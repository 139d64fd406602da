// express-session's store API on RedisStore, promises and node-style callbacks, and call order:
// an un-awaited set() is seen by the ids() after it, a destroy() by the ids() after it.
import { main, RedisStore, assert, config } from './child.mjs'

const { url, prefix } = config

/** `store[method](...args, cb)` as express-session calls it. */
function viaCallback(store, method, ...args) {
  return new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))))
}

await main(async (opened) => {
  const store = opened(new RedisStore({ url, prefix, ttl: 600 }))
  const expires = new Date(Date.now() + 120_000)
  const sess = (v) => ({ cookie: { originalMaxAge: 120_000, expires, httpOnly: true, path: '/' }, v })

  await store.set('a', sess(1))
  assert.deepEqual(await store.get('a'), JSON.parse(JSON.stringify(sess(1))))
  await viaCallback(store, 'set', 'b', sess(2))
  assert.equal((await viaCallback(store, 'get', 'b')).v, 2)
  assert.equal(await store.get('missing'), null)
  assert.equal(await viaCallback(store, 'get', 'missing'), null)

  // touch moves the expiry to the cookie's new one without changing the value.
  const later = new Date(Date.now() + 300_000)
  await viaCallback(store, 'touch', 'a', { ...sess(1), cookie: { ...sess(1).cookie, expires: later } })
  assert.equal((await store.get('a')).v, 1)

  assert.deepEqual((await store.ids()).sort(), ['a', 'b'])
  assert.deepEqual((await viaCallback(store, 'all')).map((s) => s.id).sort(), ['a', 'b'])
  assert.equal(await store.length(), 2)
  await viaCallback(store, 'destroy', 'b')
  assert.equal(await store.get('b'), null)
  assert.equal(await viaCallback(store, 'length'), 1)

  // Call order, 20 rounds: nothing awaited between the calls.
  for (let round = 0; round < 20; round++) {
    const p = `r${round}-`
    const writes = Array.from({ length: 10 }, (_, i) => store.set(`${p}${i}`, sess(i)))
    const ids = store.ids()
    const removal = store.destroy(`${p}0`)
    const afterRemoval = store.ids()
    const count = store.length()
    await Promise.all([...writes, removal])
    const mine = (list) => list.filter((id) => id.startsWith(p))
    assert.equal(mine(await ids).length, 10, `round ${round}: ids() sees the 10 un-awaited writes before it`)
    assert.equal(mine(await afterRemoval).length, 9, `round ${round}: ids() sees the destroy before it`)
    assert.ok((await count) >= 10, `round ${round}: length() counts them`)
  }
  // Un-awaited writes and reads of one key settle in order.
  const writes = Array.from({ length: 50 }, (_, i) => store.set('hot', sess(i)))
  const read = store.get('hot')
  await Promise.all(writes)
  assert.equal((await read).v, 49)

  await store.clear()
  assert.equal(await store.length(), 0)
  await store.set('kept', sess('kept'))
  await store.touch('kept', { ...sess('kept'), cookie: { ...sess('kept').cookie, expires: later } })
  const stats = store.stats()
  return { driver: stats.driver, calls: Object.keys(stats.calls).sort(), laterMs: later.getTime() }
})
