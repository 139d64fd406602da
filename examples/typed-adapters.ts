// Typed usage of the framework entry points; CI type-checks it with `tsc --strict --noEmit`.
import { Lucia, type Adapter } from 'lucia3'
import type { SessionStore } from '@curveball/session'
import { createStorage } from 'unstorage'
import { luciaAdapter, redis } from 'ferrisession/lucia'
import { RedisStore as CurveballStore } from 'ferrisession/curveball'
import ferrisessionDriver from 'ferrisession/unstorage'

const users = new Map([['u1', { id: 'u1', attributes: {} }]])
const adapter: Adapter = luciaAdapter({
  url: process.env.REDIS_URL ?? 'memory://',
  getUser: (id) => users.get(id) ?? null,
})
export const lucia = new Lucia(adapter)

export const v2SessionAdapter = redis({ url: 'memory://' }, { session: 'sess', userSessions: 'user_sess' })

// lucia-auth 0.x/1.x: two connections, the original layout.
export const luciaAuthSessionAdapter = redis(
  { session: { url: 'memory://' }, userSessions: { url: 'memory://' } },
  (err) => console.error('session adapter', err),
)

const store: SessionStore = new CurveballStore({ clientOptions: { url: 'redis://127.0.0.1:6379' }, prefix: 'cb' })
void store

export const storage = createStorage({ driver: ferrisessionDriver({ base: 'app', url: 'memory://', ttl: 60 }) })

// Koa: koa-session 7 takes the store as its external store.
import Koa from 'koa'
import koaSession from 'koa-session'
import koaRedisStore from 'ferrisession/koa'
const koa = new Koa()
koa.keys = ['secret']
koa.use(koaSession({ store: koaRedisStore({ url: 'memory://' }) }, koa))

// Hono: @hono/session's storage and hono-sessions' store.
import { Hono } from 'hono'
import { useSession, useSessionStorage } from '@hono/session'
import { sessionMiddleware, type Store as HonoSessionsStore } from 'hono-sessions'
import { storage as honoStorage, RedisStore as HonoSessionsRedisStore } from 'ferrisession/hono'
export const hono = new Hono()
hono.use(useSessionStorage(honoStorage<{ user: string }>({ url: 'memory://', ttl: 3600 })))
hono.use(useSession({ secret: 'a-secret-of-enough-length-for-the-example' }))
const honoSessionsStore: HonoSessionsStore = new HonoSessionsRedisStore({ url: 'memory://' })
export const hono2 = new Hono().use('*', sessionMiddleware({ store: honoSessionsStore, expireAfterSeconds: 900 }))
