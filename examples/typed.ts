// A typed usage example; CI type-checks it with `tsc --strict --noEmit`.
import express from 'express'
import session from 'express-session'
import { createClient } from 'redis'
import { RedisStore, type RedisStoreOptions, type StoreError } from 'ferrisession'

declare module 'express-session' {
  interface SessionData {
    visits: number
  }
}

const options: RedisStoreOptions = {
  url: process.env.REDIS_URL ?? 'memory://',
  prefix: 'myapp:',
  ttl: (sess) => (sess.visits > 10 ? 3600 : 600),
  commandTimeout: 1000,
}
const store = new RedisStore(options)
const fromClient = new RedisStore({ client: createClient({ url: 'redis://127.0.0.1:6379' }) })
fromClient.close()

store.on('disconnect', (reason: string) => console.warn(reason))

const app = express()
app.use(session({ store, secret: 'x', resave: false, saveUninitialized: false }))
app.get('/', (req, res) => {
  req.session.visits = (req.session.visits ?? 0) + 1
  res.send(String(req.session.visits))
})

async function count(): Promise<number> {
  try {
    return (await store.length()) as number
  } catch (err) {
    const code: string = (err as StoreError).code
    console.error(code)
    return 0
  }
}
void count
