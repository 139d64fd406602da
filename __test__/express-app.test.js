'use strict'
// An Express app end to end: login, read, logout, with the TTL following cookie.maxAge.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const express = require('express')
const session = require('express-session')
const request = require('supertest')
const { RedisStore } = require('..')
const { startRedis } = require('./support/redis.js')

describe('Express + express-session with RedisStore', () => {
  let redis, store, app

  before(async () => {
    redis = await startRedis()
    store = new RedisStore({ url: redis.url, prefix: 'app:' })
    app = express()
    app.use(session({ store, secret: 'test secret', resave: false, saveUninitialized: false, cookie: { maxAge: 120_000 } }))
    app.post('/login', (req, res) => {
      req.session.user = 'alice'
      res.send('ok')
    })
    app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
    app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.send('bye'))))
  })
  after(async () => {
    store.close()
    await redis.close()
  })

  it('logs in, reads the session back, and logs out', async () => {
    const agent = request.agent(app)
    assert.deepEqual((await agent.get('/me')).body, { user: null })
    assert.equal(JSON.parse(redis.cli('DBSIZE')), 0)

    await agent.post('/login').expect(200)
    assert.deepEqual((await agent.get('/me')).body, { user: 'alice' })
    const ids = await store.ids()
    assert.equal(ids.length, 1)
    const ttl = Number(redis.cli('TTL', `app:${ids[0]}`))
    assert.ok(ttl > 110 && ttl <= 120, `ttl follows cookie.maxAge: ${ttl}`)
    const stored = JSON.parse(redis.cli('GET', `app:${ids[0]}`))
    assert.equal(stored.user, 'alice')
    assert.equal(stored.cookie.originalMaxAge, 120_000)

    await agent.post('/logout').expect(200)
    assert.deepEqual((await agent.get('/me')).body, { user: null })
    assert.equal(await store.length(), 0)
  })

  it('keeps sessions apart between clients', async () => {
    const a = request.agent(app)
    const b = request.agent(app)
    await a.post('/login').expect(200)
    assert.deepEqual((await b.get('/me')).body, { user: null })
    assert.deepEqual((await a.get('/me')).body, { user: 'alice' })
  })
})
