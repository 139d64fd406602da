'use strict'
// A per-session visit counter on Express. Uses REDIS_URL when set, the embedded memory://
// backend otherwise.
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')

const url = process.env.REDIS_URL || 'memory://'
const port = Number(process.env.PORT) || 3000

const store = new RedisStore({ url })
store.on('disconnect', (reason) => console.warn(`store disconnected: ${reason}`))
store.on('connect', () => console.log('store connected'))

const app = express()
app.use(
  session({
    store,
    secret: process.env.SESSION_SECRET || 'ferrisession demo secret',
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 30 * 60 * 1000 },
  }),
)

app.get('/', (req, res) => {
  req.session.visits = (req.session.visits || 0) + 1
  res.type('text/plain').send(`visits in this session: ${req.session.visits}\n`)
})

const server = app.listen(port, () => {
  const backend = url.startsWith('memory:') ? 'memory:// (embedded, set REDIS_URL to use Redis)' : url.replace(/\/\/[^@/]*@/, '//***@')
  console.log(`ferrisession demo on http://localhost:${server.address().port} using ${backend}`)
})

function shutdown() {
  server.close()
  store.close()
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
