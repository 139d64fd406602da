// unstorage's createStorage on ferrisession's driver: items under base:key, ttl, batches,
// listing and clearing.
import { createStorage } from 'unstorage'
import { main, require, assert, config } from './child.mjs'

const driver = require('../../lib/unstorage.js')

await main(async (opened) => {
  const ours = driver({ url: config.url, base: 'app' })
  const storage = opened(createStorage({ driver: ours }))
  await storage.setItem('user:1', { name: 'Ann' })
  await storage.setItem('user:2', 'plain')
  assert.deepEqual(await storage.getItem('user:1'), { name: 'Ann' })
  assert.equal(await storage.getItem('user:2'), 'plain')
  assert.equal(await storage.hasItem('user:2'), true)
  assert.equal(await storage.hasItem('user:3'), false)
  assert.equal(await storage.getItem('user:3'), null)
  assert.deepEqual((await storage.getKeys('user')).sort(), ['user:1', 'user:2'])
  await storage.removeItem('user:2')
  assert.equal(await storage.hasItem('user:2'), false)

  await storage.setItem('short', 'x', { ttl: 60 })
  await storage.setItems([{ key: 'b:1', value: 'one' }, { key: 'b:2', value: 'two' }])
  assert.deepEqual(await storage.getItems(['b:1', 'b:2', 'b:3']), [
    { key: 'b:1', value: 'one' },
    { key: 'b:2', value: 'two' },
    { key: 'b:3', value: null },
  ])
  await storage.setItem('c:1', 'x')
  await storage.setItem('c:2', 'x')
  // As the Node suite does: createStorage forwards clear(base) only to drivers mounted there.
  await ours.clear('c:')
  assert.deepEqual(await storage.getKeys('c'), [])
  return { keys: (await storage.getKeys()).sort() }
})
