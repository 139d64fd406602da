'use strict'
// The end-to-end app: Express + express-session on one store. /read does get + touch, /write
// does get + set. Prints its port once listening.
const express = require('express')
const session = require('express-session')
const { STORES } = require('./stores.js')

const [name, url] = process.argv.slice(2)

async function main() {
  let store
  let close = async () => {}
  if (name === 'memory-floor') store = new session.MemoryStore()
  else ({ store, close } = await STORES[name]({ kind: 'plain', url }))
  const app = express()
  app.use(session({ store, secret: 'bench', resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }))
  app.post('/login', (req, res) => {
    req.session.userId = `user-${Math.random().toString(36).slice(2)}`
    req.session.csrf = 'b1946ac92492d2347c6235b4d2611184a8f3'
    req.session.cart = [{ sku: 'SKU-1001', qty: 1, price: 19.99 }]
    res.send('ok')
  })
  app.get('/read', (req, res) => res.send(req.session.userId || 'anon'))
  app.get('/write', (req, res) => {
    req.session.hits = (req.session.hits || 0) + 1
    res.send(String(req.session.hits))
  })
  const server = app.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`))
  process.on('SIGINT', () => process.emit('SIGTERM'))
  process.on('SIGTERM', async () => {
    server.close()
    await close()
    process.exit(0)
  })
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
