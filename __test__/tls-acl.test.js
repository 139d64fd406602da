'use strict'
// TLS (with certificates made here by openssl, including mutual TLS) and ACL users with db
// selection, against real redis-server processes.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { createClient } = require('redis')
const Redis = require('ioredis')
const { RedisStore } = require('..')
const { startRedis, makeCertificates } = require('./support/redis.js')

describe('TLS', () => {
  let certs, server, mutual

  before(async () => {
    certs = makeCertificates()
    server = await startRedis([], { tls: certs })
    mutual = await startRedis([], { tls: { ...certs, authClients: true } })
  })
  after(async () => {
    await server.close()
    await mutual.close()
    certs.remove()
  })

  it('connects over rediss:// with a CA from options', async () => {
    const store = new RedisStore({ url: server.url, tls: { ca: fs.readFileSync(certs.ca) }, prefix: 'tls:' })
    try {
      await store.set('a', { cookie: {}, secure: true })
      assert.deepEqual(await store.get('a'), { cookie: {}, secure: true })
      assert.equal(server.cli('EXISTS', 'tls:a'), '1')
    } finally {
      store.close()
    }
  })

  it('authenticates with a client certificate (mutual TLS)', async () => {
    const store = new RedisStore({
      url: mutual.url,
      tls: { ca: fs.readFileSync(certs.ca, 'utf8'), cert: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) },
    })
    try {
      await store.set('m', { cookie: {} })
      assert.equal(await store.length(), 1)
    } finally {
      store.close()
    }
  })

  it('refuses a server whose certificate it cannot verify', async () => {
    const store = new RedisStore({ url: server.url, commandTimeout: 1500, connectTimeout: 1000 })
    try {
      await assert.rejects(store.get('a'), (e) => typeof e.code === 'string' && e.code.startsWith('ERR_'))
    } finally {
      store.close()
    }
  })

  it('verifies the servername given instead of the host (SNI)', async () => {
    const ca = fs.readFileSync(certs.ca)
    // The certificate names 127.0.0.1 and localhost; we connect by IP in both cases.
    const named = new RedisStore({ url: server.url, tls: { ca, servername: 'localhost' }, prefix: 'sni:' })
    const wrong = new RedisStore({ url: server.url, tls: { ca, servername: 'cache.example.org' }, commandTimeout: 500 })
    try {
      await named.set('a', { cookie: {} })
      assert.equal(server.cli('EXISTS', 'sni:a'), '1')
      await assert.rejects(wrong.get('a'), (e) => e.code === 'ERR_NOT_CONNECTED' && /certificate|NotValidForName|name/i.test(e.message))
    } finally {
      named.close()
      wrong.close()
    }
  })

  it('skips verification only when asked (rejectUnauthorized: false)', async () => {
    const store = new RedisStore({ url: server.url, tls: { rejectUnauthorized: false }, prefix: 'insecure:' })
    try {
      await store.set('a', { cookie: {} })
      assert.equal(server.cli('EXISTS', 'insecure:a'), '1')
    } finally {
      store.close()
    }
  })

  it('reads TLS settings from node-redis and ioredis clients', async () => {
    const ca = fs.readFileSync(certs.ca)
    const nr = new RedisStore({ client: createClient({ url: server.url, socket: { tls: true, ca } }), prefix: 'nr:' })
    const io = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { tls: { ca }, lazyConnect: true }), prefix: 'io:' })
    try {
      await nr.set('x', { cookie: {} })
      await io.set('y', { cookie: {} })
      assert.equal(server.cli('EXISTS', 'nr:x'), '1')
      assert.equal(server.cli('EXISTS', 'io:y'), '1')
    } finally {
      nr.close()
      io.close()
    }
  })
})

describe('ACL users and db selection', () => {
  let server

  before(async () => {
    server = await startRedis()
    server.cli('ACL', 'SETUSER', 'app', 'on', '>s3cret', '~sess:*', '+@all')
    server.cli('ACL', 'SETUSER', 'readonly', 'on', '>r3ad', '~*', '+get', '+ping', '+select')
  })
  after(() => server.close())

  it('logs in as an ACL user and selects the db', async () => {
    const store = new RedisStore({ url: `redis://app:s3cret@127.0.0.1:${server.port}/2` })
    try {
      await store.set('acl', { cookie: {}, user: 'app' })
      assert.deepEqual(await store.get('acl'), { cookie: {}, user: 'app' })
      assert.equal(server.cli('-n', '2', 'EXISTS', 'sess:acl'), '1')
      assert.equal(server.cli('EXISTS', 'sess:acl'), '0')
    } finally {
      store.close()
    }
  })

  it('takes username, password and db as options too', async () => {
    const store = new RedisStore({ host: '127.0.0.1', port: server.port, username: 'app', password: 's3cret', db: 3 })
    try {
      await store.set('opt', { cookie: {} })
      assert.equal(server.cli('-n', '3', 'EXISTS', 'sess:opt'), '1')
    } finally {
      store.close()
    }
  })

  it('rejects with ERR_AUTH for a wrong password or a missing permission', async () => {
    const wrong = new RedisStore({ url: `redis://app:nope@127.0.0.1:${server.port}`, commandTimeout: 1500 })
    const limited = new RedisStore({ url: `redis://readonly:r3ad@127.0.0.1:${server.port}`, commandTimeout: 1500 })
    try {
      await assert.rejects(wrong.get('x'), (e) => e.code === 'ERR_AUTH' || e.code === 'ERR_NOT_CONNECTED')
      await assert.rejects(limited.set('x', { cookie: {} }), (e) => e.code === 'ERR_AUTH' && /NOPERM/.test(e.message))
      assert.equal(await limited.get('missing'), null)
    } finally {
      wrong.close()
      limited.close()
    }
  })
})
