'use strict'
// A server on a unix socket (`path`): every call on the engine's own connection, which rides
// through a killed connection like a TCP one.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RedisStore } = require('..')
const { startRedis, until } = require('./support/redis.js')

describe('unix socket', () => {
  it('runs get/set/touch/destroy and the keyspace calls over the socket, and reconnects', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-unix-'))
    const socket = path.join(dir, 'redis.sock')
    const unix = await startRedis(['--unixsocket', socket, '--unixsocketperm', '700'])
    const store = new RedisStore({ path: socket, prefix: 'u:' })
    try {
      await store.set('a', { cookie: {}, n: 1 })
      await store.set('b', { cookie: {}, n: 2 })
      assert.equal((await store.get('a')).n, 1)
      await store.touch('a', { cookie: {} })
      assert.deepEqual((await store.ids()).sort(), ['a', 'b'])
      assert.equal(await store.length(), 2)
      await store.destroy('b')
      assert.equal(unix.cli('EXISTS', 'u:b'), '0')
      assert.ok(JSON.parse(unix.cli('GET', 'u:a')).n === 1)
      // The calls came over the socket: the client that ran them has the U (unix) flag.
      const clients = unix.cli('CLIENT', 'LIST').split('\n')
      const worker = clients.find((l) => /cmd=(get|set|expire|del|scan|mget)\b/.test(l))
      assert.ok(worker && /flags=\S*U/.test(worker), worker)
      unix.cli('CLIENT', 'KILL', 'TYPE', 'normal')
      await until(async () => (await store.get('a')).n === 1, 5000, 'a read after the kill')
      assert.ok(store.stats().link.reconnects >= 1, JSON.stringify(store.stats().link))
    } finally {
      store.close()
      await unix.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
