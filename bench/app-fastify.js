'use strict'
// The end-to-end app on Fastify: @fastify/cookie + @fastify/session on one store (the
// express-session store API). /read reads the session, /write changes it. Prints its port once
// listening.
const Fastify = require('fastify')
const { STORES } = require('./stores.js')

const [name, url] = process.argv.slice(2)

async function main() {
  let store
  let close = async () => {}
  if (name !== 'memory-floor') ({ store, close } = await STORES[name]({ kind: 'plain', url }))
  const app = Fastify()
  app.register(require('@fastify/cookie'))
  // No store: @fastify/session's own in-memory store, the floor.
  app.register(require('@fastify/session'), { secret: 'a-bench-secret-of-at-least-32-characters', store, saveUninitialized: false, cookie: { secure: false, maxAge: 3_600_000 } })
  app.post('/login', async (req) => {
    req.session.set('userId', `user-${Math.random().toString(36).slice(2)}`)
    req.session.set('csrf', 'b1946ac92492d2347c6235b4d2611184a8f3')
    req.session.set('cart', [{ sku: 'SKU-1001', qty: 1, price: 19.99 }])
    return 'ok'
  })
  app.get('/read', async (req) => req.session.get('userId') || 'anon')
  app.get('/write', async (req) => {
    const hits = (req.session.get('hits') || 0) + 1
    req.session.set('hits', hits)
    return String(hits)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.stdout.write(`${app.server.address().port}\n`)
  process.on('SIGINT', () => process.emit('SIGTERM'))
  process.on('SIGTERM', async () => {
    await app.close()
    await close()
    process.exit(0)
  })
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
