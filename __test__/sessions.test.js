'use strict'
// ferrisession/sessions on real servers: tokens, validation, sliding expiry, user indexes across
// processes with the near cache, Cluster, Sentinel and a restart.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { createSessions } = require('../lib/sessions.js')
const { OP } = require('../lib/core/adapter.js')
const { startRedis, startCluster, startSentinels, storeProcess, until, sleep } = require('./support/redis.js')

const TOKEN = /^[A-Za-z0-9_-]{27}\.[A-Za-z0-9_-]{27}$/

/** Every key in the server with its value, as text. */
function dump(server) {
  return server
    .cli('--scan')
    .split('\n')
    .filter(Boolean)
    .map((k) => {
      const type = server.cli('TYPE', k)
      return `${k} => ${type === 'set' ? server.cli('SMEMBERS', k) : server.cli('GET', k)}`
    })
    .join('\n')
}

/** Calls of `command` the server has run so far. */
function calls(server, command) {
  const m = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(server.cli('INFO', 'commandstats'))
  return m ? Number(m[1]) : 0
}

function totalCalls(server) {
  return [...server.cli('INFO', 'commandstats').matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0)
}

/** Runs `work` with Date.now moved `offsetMs` ahead. */
async function at(offsetMs, work) {
  const real = Date.now
  Date.now = () => real() + offsetMs
  try {
    return await work()
  } finally {
    Date.now = real
  }
}

describe('ferrisession/sessions', () => {
  let server, sessions

  before(async () => {
    server = await startRedis()
    sessions = createSessions({ url: server.url, expiresIn: 10 * 86400, refreshAfter: 3600 })
  })
  after(async () => {
    sessions.close()
    await server.close()
  })

  it('mints <id>.<secret> tokens of 160 random bits each, and stores neither the secret nor the token', async () => {
    const made = []
    for (let i = 0; i < 20; i++) made.push(await sessions.create('u-dump', { n: i }))
    for (const { token, session } of made) {
      assert.match(token, TOKEN)
      assert.equal(token.split('.')[0], session.id)
      assert.equal(Buffer.from(token.split('.')[1], 'base64url').length, 20)
    }
    assert.equal(new Set(made.map((m) => m.token.split('.')[1])).size, 20)
    const everything = dump(server)
    for (const { token } of made) {
      assert.ok(!everything.includes(token), 'no token in Redis')
      assert.ok(!everything.includes(token.split('.')[1]), 'no secret in Redis')
    }
    const stored = JSON.parse(server.cli('GET', `session:${made[0].session.id}`))
    assert.deepEqual(Object.keys(stored).sort(), ['attributes', 'createdAt', 'expiresAt', 'id', 'secretHash', 'userId'])
  })

  it('validates a good token, and gives null for every bad one without throwing', async () => {
    const { token, session } = await sessions.create('u1', { role: 'admin' })
    const ok = await sessions.validate(token)
    assert.equal(ok.id, session.id)
    assert.equal(ok.userId, 'u1')
    assert.deepEqual(ok.attributes, { role: 'admin' })
    assert.ok(ok.createdAt instanceof Date && ok.expiresAt instanceof Date)
    assert.equal(ok.expiresAt.getTime(), session.expiresAt.getTime())
    const [id, secret] = token.split('.')
    const flip = (s) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
    const other = (await sessions.create('u2')).token
    for (const bad of [`${id}.${flip(secret)}`, `${flip(id)}.${secret}`, `${id}.${other.split('.')[1]}`, `${other.split('.')[0]}.${secret}`, `${id}${secret}`, `${id}.${secret}.x`, 'not a token', '', ' '.repeat(55), undefined, null, 42, {}, [], Symbol('t')]) {
      assert.equal(await sessions.validate(bad), null, `bad token ${String(bad)}`)
    }
    server.cli('SET', `session:${'B'.repeat(27)}`, '{not json')
    assert.equal(await sessions.validate(`${'B'.repeat(27)}.${secret}`), null, 'a damaged record is no session')
  })

  it('costs one GET per validate when no refresh is due', async () => {
    const { token } = await sessions.create('u-count')
    await sessions.validate(token)
    const gets = calls(server, 'get')
    const all = totalCalls(server)
    for (let i = 0; i < 50; i++) assert.ok(await sessions.validate(token))
    assert.equal(calls(server, 'get') - gets, 50)
    // INFO itself is counted once per reading.
    assert.ok(totalCalls(server) - all <= 50 + 2, `${totalCalls(server) - all} commands for 50 validates`)
  })

  it('slides the expiry: validates spaced under expiresIn keep a session past it, a longer gap ends it', async () => {
    const day = 86400_000
    const { token } = await sessions.create('u-slide')
    for (const d of [6, 12, 18, 24, 30]) {
      const s = await at(d * day, () => sessions.validate(token))
      assert.ok(s, `alive on day ${d}`)
      assert.equal(Math.round((s.expiresAt.getTime() - Date.now()) / day), d + 10)
    }
    assert.equal(await at(41 * day, () => sessions.validate(token)), null, 'an 11-day gap ends it')
    const fresh = await sessions.create('u-slide')
    const before = await sessions.validate(fresh.token)
    const soon = await at(60_000, () => sessions.validate(fresh.token))
    assert.equal(soon.expiresAt.getTime(), before.expiresAt.getTime(), 'no refresh before refreshAfter')
  })

  it('refreshes with the Redis TTL following expiresAt, and a refresh never brings back an invalidated session', async () => {
    const { token, session } = await sessions.create('u-ttl')
    const key = `session:${session.id}`
    assert.ok(Math.abs(Number(server.cli('TTL', key)) - 10 * 86400) <= 2)
    await at(2 * 86400_000, () => sessions.validate(token))
    await until(() => Math.abs(Number(server.cli('TTL', key)) - 12 * 86400) <= 2, 2000, 'the TTL follows the slid expiry')
    await sessions.invalidate(session.id)
    // The refresh op replaces only a session that still exists.
    await sessions.link.callId(OP.REPLACE_UNTIL, 'session:', session.id, server.cli('GET', key) || '{}', Date.now() / 1000 + 3600)
    assert.equal(server.cli('EXISTS', key), '0')
    assert.equal(await sessions.validate(token), null)
  })

  it('ends a session past maxLifetime even if it was active', async () => {
    const capped = createSessions({ url: server.url, prefix: 'capped:', expiresIn: 86400, refreshAfter: 60, maxLifetime: 3 * 86400 })
    try {
      const { token } = await capped.create('u-cap')
      for (const h of [20, 40, 60]) assert.ok(await at(h * 3600_000, () => capped.validate(token)), `alive at ${h} h`)
      const last = await at(70 * 3600_000, () => capped.validate(token))
      assert.equal(last.expiresAt.getTime(), last.createdAt.getTime() + 3 * 86400_000, 'the expiry stops at the cap')
      assert.equal(await at(72 * 3600_000 + 1000, () => capped.validate(token)), null)
    } finally {
      capped.close()
    }
  })

  it('lists, invalidates one and invalidates a user except one', async () => {
    const made = []
    for (let i = 0; i < 3; i++) made.push(await sessions.create('u-list', { i }))
    assert.deepEqual((await sessions.list('u-list')).map((s) => s.id).sort(), made.map((m) => m.session.id).sort())
    await sessions.invalidate(made[0].session.id)
    assert.equal(await sessions.validate(made[0].token), null)
    assert.equal(await sessions.invalidateUser('u-list', { except: made[1].session.id }), 1)
    assert.ok(await sessions.validate(made[1].token))
    assert.equal(await sessions.validate(made[2].token), null)
    assert.equal(await sessions.invalidateUser('u-list'), 1)
    assert.deepEqual(await sessions.list('u-list'), [])
    assert.equal(server.cli('EXISTS', 'session-users:u-list'), '0')
  })

  it('writes cookies', async () => {
    const { token } = await sessions.create('u-cookie')
    assert.equal(sessions.cookie(token), `session=${token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=864000; Secure`)
    assert.equal(sessions.cookie(token, { secure: false, domain: 'example.com' }), `session=${token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=864000; Domain=example.com`)
    assert.equal(sessions.blankCookie(), 'session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure')
    assert.throws(() => sessions.cookie('x; Path=/evil'), { code: 'ERR_BAD_ARGUMENT' })
  })

  it('refuses bad options with coded errors', () => {
    for (const opts of [{ expiresIn: 0 }, { refreshAfter: -1 }, { expiresIn: 60, refreshAfter: 120 }, { maxLifetime: 'x' }, { prefix: '' }, { hashIds: true }, { cookieName: 'a b' }]) {
      assert.throws(() => createSessions({ url: 'memory://', ...opts }), { code: 'ERR_BAD_ARGUMENT' }, JSON.stringify(opts))
    }
  })
})

describe('sessions across processes, with the near cache in both', () => {
  let server, ours, other

  before(async () => {
    server = await startRedis()
    ours = createSessions({ url: server.url, cache: true })
    other = storeProcess({ kind: 'sessions', url: server.url, cache: true })
    await other.ready
  })
  after(async () => {
    ours.close()
    await other.stop()
    await server.close()
  })

  it('serves a hot validate with no round trip, and hears invalidateUser from the other process', async () => {
    const made = []
    for (let i = 0; i < 3; i++) made.push(await ours.create('u-x'))
    for (const m of made) {
      // Created here: the first validate after our own write goes uncached, the second fills.
      assert.ok(await ours.validate(m.token))
      assert.ok(await ours.validate(m.token))
      assert.ok(await other.call('validate', m.token))
    }
    const gets = calls(server, 'get')
    for (let i = 0; i < 20; i++) for (const m of made) assert.ok(await ours.validate(m.token))
    assert.equal(calls(server, 'get'), gets, 'hot validates are served by the near cache')
    assert.equal(await other.call('invalidateUser', 'u-x', { except: made[0].session.id }), 2)
    await until(async () => (await ours.validate(made[1].token)) === null && (await ours.validate(made[2].token)) === null, 2000, 'the invalidation reaches the cache')
    assert.ok(await ours.validate(made[0].token))
    assert.deepEqual((await ours.list('u-x')).map((s) => s.id), [made[0].session.id])
  })
})

describe('sessions on a cluster and behind Sentinel, and through a restart', () => {
  it('works on a cluster: sessions spread over the primaries, the user index on its own slot', async () => {
    const cluster = await startCluster()
    const sessions = createSessions({ cluster: { nodes: cluster.seeds } })
    try {
      const made = []
      for (let i = 0; i < 8; i++) made.push(await sessions.create('u-c', { i }))
      const owners = new Set(made.map((m) => cluster.primaryFor(`session:${m.session.id}`).port))
      assert.ok(owners.size > 1)
      for (const m of made) assert.equal((await sessions.validate(m.token)).attributes.i, made.indexOf(m))
      assert.equal((await sessions.list('u-c')).length, 8)
      assert.equal(await sessions.invalidateUser('u-c', { except: made[0].session.id }), 7)
      assert.equal((await sessions.list('u-c')).length, 1)
    } finally {
      sessions.close()
      await cluster.close()
    }
  })

  it('works behind Sentinel', async () => {
    const group = await startSentinels()
    const sessions = createSessions({ sentinel: { name: 'mymaster', nodes: group.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })) } })
    try {
      const { token } = await sessions.create('u-s')
      assert.equal((await sessions.validate(token)).userId, 'u-s')
      assert.equal((await sessions.list('u-s')).length, 1)
    } finally {
      sessions.close()
      await group.close()
    }
  })

  it('rides through a 0.5 s restart with no call rejected and no session lost', async () => {
    // Every acknowledged write is on disk before its reply, so a session created before the
    // kill is still there after it.
    const server = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'])
    const sessions = createSessions({ url: server.url, commandTimeout: 6000 })
    let failed = 0
    let lost = 0
    let ok = 0
    let running = true
    const lanes = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          const { token } = await sessions.create('u-r')
          if (await sessions.validate(token)) ok++
          else lost++
        } catch {
          failed++
        }
      }
    })
    try {
      await sleep(300)
      await server.stop()
      await sleep(500)
      await server.start()
      await sleep(800)
    } finally {
      running = false
      await Promise.all(lanes)
      sessions.close()
      await server.close()
    }
    assert.equal(failed, 0)
    assert.equal(lost, 0)
    assert.ok(ok > 20, `${ok} create + validate pairs`)
  })
})

describe('examples/sessions-node-http.js', () => {
  it('logs in, shows the protected page, refuses a cross-site post and logs out', async () => {
    const { spawn } = require('node:child_process')
    const path = require('node:path')
    const { freePort } = require('./support/redis.js')
    const server = await startRedis()
    const port = await freePort()
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'sessions-node-http.js')], { env: { ...process.env, PORT: String(port), REDIS_URL: server.url }, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => String(d).includes(`:${port}`) && resolve())
        child.once('exit', (code) => reject(new Error(`the example exited with ${code}`)))
      })
      const base = `http://127.0.0.1:${port}`
      const same = { 'sec-fetch-site': 'same-origin' }
      assert.match(await (await fetch(base)).text(), /Log in/)
      const refused = await fetch(`${base}/login`, { method: 'POST', body: 'user=ann', headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' }, redirect: 'manual' })
      assert.equal(refused.status, 403)
      const login = await fetch(`${base}/login`, { method: 'POST', body: 'user=ann', headers: { 'content-type': 'application/x-www-form-urlencoded', ...same }, redirect: 'manual' })
      assert.equal(login.status, 303)
      const setCookie = login.headers.get('set-cookie')
      assert.match(setCookie, /^session=[A-Za-z0-9_-]{27}\.[A-Za-z0-9_-]{27}; HttpOnly; SameSite=Lax; Path=\/; Max-Age=604800; Secure$/)
      const cookie = setCookie.split(';')[0]
      assert.match(await (await fetch(base, { headers: { cookie } })).text(), /Hello ann: 1 session/)
      const out = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie, ...same }, redirect: 'manual' })
      assert.match(out.headers.get('set-cookie'), /^session=; .*Max-Age=0/)
      assert.match(await (await fetch(base, { headers: { cookie } })).text(), /Log in/)
      assert.equal(server.cli('SCARD', 'session-users:ann'), '0')
    } finally {
      child.kill('SIGINT')
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)))
      await server.close()
    }
  })
})
