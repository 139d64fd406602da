// hashIds and encryption on a real redis-server: what a dump of the server shows, key rotation,
// tampered and moved values, plain values from before, and the move from plain keys.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { RedisStore } from 'ferrisession'
import { luciaAdapter } from 'ferrisession/lucia'
import { RedisStore as CurveballStore } from 'ferrisession/curveball'
import unstorageDriver from 'ferrisession/unstorage'
import support from './support/redis.js'

const { startRedis } = support

const K1 = randomBytes(32)
const K2 = randomBytes(32).toString('hex')
const hashed = (id) => createHash('sha256').update(id).digest('base64url')
const session = (fields) => ({ cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000) }, ...fields })

/** The server's whole dataset as an RDB file, uncompressed, through `redis-cli --rdb`. */
function dump(server) {
  const file = path.join(server.dir, `dump-${Date.now()}-${Math.random()}.rdb`)
  execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), '--rdb', file], { stdio: 'ignore' })
  const bytes = fs.readFileSync(file)
  fs.unlinkSync(file)
  return bytes
}

function occurrences(bytes, text) {
  const needle = Buffer.from(text)
  let n = 0
  for (let i = bytes.indexOf(needle); i !== -1; i = bytes.indexOf(needle, i + 1)) n++
  return n
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, err.message)
    return true
  })
}

describe('hashIds and encryption', () => {
  let server
  before(async () => {
    server = await startRedis()
    // Strings in the RDB as written: a compressed dump would hide plaintext from the search.
    server.cli('CONFIG', 'SET', 'rdbcompression', 'no')
  })
  after(async () => {
    await server.close()
  })

  it('a dump shows no session id and no field value with both on; without them it shows both', async () => {
    const sid = 'cookie-sid-' + randomBytes(8).toString('hex')
    const secret = 'secret-field-' + randomBytes(8).toString('hex')
    const plain = new RedisStore({ url: server.url, prefix: 'plain:' })
    const sealed = new RedisStore({ url: server.url, prefix: 'sealed:', hashIds: true, encryption: { keys: { k1: K1 } }, userId: (s) => s.user })
    try {
      await plain.set(sid + '-p', session({ note: secret + '-p' }))
      await sealed.set(sid, session({ note: secret, user: 'ada' }))
      const rdb = dump(server)
      // The control: the same search finds what the plain store wrote.
      assert.ok(rdb.includes(sid + '-p'), 'the plain store left its id in the dump')
      assert.ok(rdb.includes(secret + '-p'), 'the plain store left its value in the dump')
      // The sealed store: neither the id (as key or index member) nor the value. Every copy of
      // either in the dump is the plain store's.
      assert.equal(occurrences(rdb, sid), occurrences(rdb, sid + '-p'), 'a sealed session id is in the dump')
      assert.equal(occurrences(rdb, secret), occurrences(rdb, secret + '-p'), 'a sealed field value is in the dump')
      assert.ok(rdb.includes(`sealed:${hashed(sid)}`), 'the hashed key is there')
      // KEYS + GET say the same.
      const raw = server.cli('GET', `sealed:${hashed(sid)}`)
      assert.match(raw, /^fs1\$k1\$[A-Za-z0-9_-]+$/)
      assert.deepEqual(server.cli('SMEMBERS', 'sealed-users:ada'), hashed(sid))
      // And the store reads its own.
      const back = await sealed.get(sid)
      assert.equal(back.note, secret)
      assert.equal(typeof back.cookie.expires, 'string')
    } finally {
      plain.close()
      sealed.close()
    }
  })

  it('express: every call works on hashed keys; ids() gives hashed ids; log out everywhere with except', async () => {
    const store = new RedisStore({ url: server.url, prefix: 'h:', hashIds: true, userId: (s) => s.user, events: true })
    try {
      await store.set('a1', session({ user: 'bo', n: 1 }))
      await store.set('a2', session({ user: 'bo', n: 2 }))
      await store.set('a3', session({ user: 'bo', n: 3 }))
      assert.equal(server.cli('EXISTS', 'h:a1'), '0')
      assert.equal((await store.get('a2')).n, 2)
      assert.equal(await store.touch('a2', session({})), null)
      assert.ok(Number(server.cli('TTL', `h:${hashed('a2')}`)) > 3500)
      assert.deepEqual((await store.ids()).sort(), ['a1', 'a2', 'a3'].map(hashed).sort())
      assert.equal(await store.length(), 3)
      const mine = await store.userSessions('bo')
      assert.deepEqual(mine.map((s) => s.id).sort(), ['a1', 'a2', 'a3'].map(hashed).sort())
      assert.equal(await store.destroyUserSessions('bo', { except: 'a2' }), 2)
      assert.equal(await store.get('a1'), null)
      assert.equal(await store.get('a3'), null)
      assert.equal((await store.get('a2')).n, 2)
      await store.destroy('a2')
      assert.equal(await store.get('a2'), null)
      assert.equal(await store.length(), 0)
    } finally {
      store.close()
    }
  })

  it('rotation: old values open after a new current key; new writes use it; a store without the key gets ERR_BAD_DATA', async () => {
    const before = new RedisStore({ url: server.url, prefix: 'rot:', encryption: { keys: { k1: K1 } } })
    const after = new RedisStore({ url: server.url, prefix: 'rot:', encryption: { keys: { k1: K1, k2: K2 }, current: 'k2' } })
    try {
      await before.set('old', session({ v: 'old' }))
      assert.match(server.cli('GET', 'rot:old'), /^fs1\$k1\$/)
      assert.equal((await after.get('old')).v, 'old')
      await after.set('new', session({ v: 'new' }))
      assert.match(server.cli('GET', 'rot:new'), /^fs1\$k2\$/)
      assert.equal((await after.get('new')).v, 'new')
      // Rewriting an old session moves it to the current key.
      await after.set('old', session({ v: 'old2' }))
      assert.match(server.cli('GET', 'rot:old'), /^fs1\$k2\$/)
      await rejectsWith(before.get('new'), 'ERR_BAD_DATA')
      // all() opens each value under its own key.
      const all = await after.all()
      assert.deepEqual(all.map((s) => s.v).sort(), ['new', 'old2'])
    } finally {
      before.close()
      after.close()
    }
  })

  it('a tampered value, a value copied to another id and a plain value are ERR_BAD_DATA; the store goes on', async () => {
    const store = new RedisStore({ url: server.url, prefix: 't:', encryption: { keys: { k1: K1 } } })
    const lenient = new RedisStore({ url: server.url, prefix: 't:', encryption: { keys: { k1: K1 }, acceptPlaintext: true } })
    try {
      await store.set('victim', session({ admin: false }))
      const raw = server.cli('GET', 't:victim')
      const body = raw.slice('fs1$k1$'.length)
      const flipped = body.slice(0, 20) + (body[20] === 'A' ? 'B' : 'A') + body.slice(21)
      server.cli('SET', 't:tampered', 'fs1$k1$' + flipped)
      await rejectsWith(store.get('tampered'), 'ERR_BAD_DATA')
      server.cli('SET', 't:copied', raw)
      await rejectsWith(store.get('copied'), 'ERR_BAD_DATA')
      server.cli('SET', 't:unknown-key', raw.replace('fs1$k1$', 'fs1$k9$'))
      await rejectsWith(store.get('unknown-key'), 'ERR_BAD_DATA')
      server.cli('SET', 't:garbage', 'fs1$k1$@@@')
      await rejectsWith(store.get('garbage'), 'ERR_BAD_DATA')
      // A value from before encryption (connect-redis's JSON).
      server.cli('SET', 't:legacy', JSON.stringify({ cookie: {}, legacy: true }))
      await rejectsWith(store.get('legacy'), 'ERR_BAD_DATA')
      assert.equal((await lenient.get('legacy')).legacy, true)
      // all() with a bad value in the keyspace rejects with the same code; nothing crashed.
      await rejectsWith(store.all(), 'ERR_BAD_DATA')
      assert.equal((await store.get('victim')).admin, false)
      assert.equal(server.cli('GET', 't:victim'), raw, 'nothing was lost')
    } finally {
      store.close()
      lenient.close()
    }
  })

  it("hashIds: 'migrate' moves plain sessions to hashed keys with their TTL, and destroy removes both", async () => {
    const old = new RedisStore({ url: server.url, prefix: 'm:' })
    const store = new RedisStore({ url: server.url, prefix: 'm:', hashIds: 'migrate', encryption: { keys: { k1: K1 }, acceptPlaintext: true } })
    try {
      await old.set('s1', { cookie: { expires: new Date(Date.now() + 600_000) }, v: 1 })
      await old.set('s2', session({ v: 2 }))
      await old.set('s3', session({ v: 3 }))
      const got = await store.get('s1')
      assert.equal(got.v, 1)
      assert.equal(server.cli('EXISTS', 'm:s1'), '0', 'the plain key is gone')
      const moved = server.cli('GET', `m:${hashed('s1')}`)
      assert.match(moved, /^fs1\$k1\$/, 'moved, and sealed on the way')
      const ttl = Number(server.cli('TTL', `m:${hashed('s1')}`))
      assert.ok(ttl > 590 && ttl <= 600, `TTL kept: ${ttl}`)
      assert.equal((await store.get('s1')).v, 1)
      // A destroy of a session never read still removes its plain key, so no later read brings it back.
      await store.destroy('s2')
      assert.equal(server.cli('EXISTS', 'm:s2'), '0')
      assert.equal(await store.get('s2'), null)
      assert.equal(await store.get('missing'), null)
      // Writes go to the hashed key.
      await store.set('s3', session({ v: 33 }))
      assert.equal((await store.get('s3')).v, 33)
    } finally {
      old.close()
      store.close()
    }
  })

  it('lucia v3 with hashIds and encryption: sessions, user lists and deletes', async () => {
    const adapter = luciaAdapter({ url: server.url, hashIds: true, encryption: { keys: { k1: K1 } }, getUser: async (id) => ({ id, attributes: {} }) })
    try {
      const expiresAt = new Date(Date.now() + 3_600_000)
      for (const id of ['L1', 'L2', 'L3']) await adapter.setSession({ id, userId: 'u1', expiresAt, attributes: { tag: id } })
      assert.equal(server.cli('EXISTS', 'session:L1'), '0')
      assert.match(server.cli('GET', `session:${hashed('L1')}`), /^fs1\$k1\$/)
      const [s, user] = await adapter.getSessionAndUser('L1')
      assert.equal(s.id, 'L1')
      assert.equal(user.id, 'u1')
      assert.deepEqual((await adapter.getUserSessions('u1')).map((x) => x.id).sort(), ['L1', 'L2', 'L3'])
      await adapter.updateSessionExpiration('L2', new Date(Date.now() + 7_200_000))
      assert.ok(Number(server.cli('TTL', `session:${hashed('L2')}`)) > 3600)
      await adapter.deleteSession('L1')
      assert.deepEqual((await adapter.getUserSessions('u1')).map((x) => x.id).sort(), ['L2', 'L3'])
      await adapter.deleteUserSessions('u1')
      assert.deepEqual(await adapter.getUserSessions('u1'), [])
      assert.deepEqual(await adapter.getSessionAndUser('L2'), [null, null])
    } finally {
      adapter.close()
    }
  })

  it('curveball and unstorage: values sealed, ids hashed where ids are sessions; unstorage refuses hashIds', async () => {
    const cb = new CurveballStore({ url: server.url, hashIds: true, encryption: { keys: { k1: K1 } } })
    const driver = unstorageDriver({ url: server.url, base: 'kv', encryption: { keys: { k1: K1 } } })
    try {
      await cb.set('c1', { n: 1 }, Math.floor(Date.now() / 1000) + 600)
      assert.equal(server.cli('EXISTS', 'session-c1'), '0')
      assert.match(server.cli('GET', `session-${hashed('c1')}`), /^fs1\$/)
      assert.deepEqual(await cb.get('c1'), { n: 1 })
      await cb.delete('c1')
      assert.equal(await cb.get('c1'), null)
      await driver.setItem('a', 'alpha')
      await driver.setItem('b', 'beta')
      assert.match(server.cli('GET', 'kv:a'), /^fs1\$/)
      assert.equal(await driver.getItem('a'), 'alpha')
      assert.deepEqual(await driver.getItems([{ key: 'a' }, { key: 'b' }, { key: 'c' }]), [
        { key: 'a', value: 'alpha' },
        { key: 'b', value: 'beta' },
        { key: 'c', value: null },
      ])
      assert.throws(() => unstorageDriver({ url: server.url, hashIds: true }), { code: 'ERR_BAD_ARGUMENT' })
    } finally {
      cb.close()
      driver.dispose && (await driver.dispose())
    }
  })

  it('memory:// and the near cache seal and open the same way', async () => {
    const mem = new RedisStore({ url: 'memory://', hashIds: true, encryption: { keys: { k1: K1 } } })
    const cached = new RedisStore({ url: server.url, prefix: 'nc:', cache: true, encryption: { keys: { k1: K1 } } })
    try {
      await mem.set('m1', session({ v: 'mem' }))
      assert.equal((await mem.get('m1')).v, 'mem')
      assert.deepEqual(await mem.ids(), [hashed('m1')])
      await cached.set('n1', session({ v: 'near' }))
      for (let i = 0; i < 3; i++) assert.equal((await cached.get('n1')).v, 'near')
      assert.ok(cached.stats().cache.hits >= 1, 'a hit was opened from the near cache')
      server.cli('SET', 'nc:n1', 'fs1$k1$AAAA')
      await new Promise((r) => setTimeout(r, 50))
      await rejectsWith(cached.get('n1'), 'ERR_BAD_DATA')
    } finally {
      mem.close()
      cached.close()
    }
  })

  it('bad encryption and hashIds options are refused at construction', () => {
    for (const opts of [
      { encryption: { keys: { k1: randomBytes(16) } } },
      { encryption: { keys: {} } },
      { encryption: { keys: { k1: K1, k2: K2 } } },
      { encryption: { keys: { k1: K1 }, current: 'k2' } },
      { encryption: 'secret' },
      { hashIds: 'yes' },
    ]) {
      assert.throws(() => new RedisStore({ url: server.url, ...opts }), { code: 'ERR_BAD_ARGUMENT' }, JSON.stringify(opts))
    }
  })
})
