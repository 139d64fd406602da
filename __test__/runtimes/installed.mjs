// Copied into a scratch project whose node_modules/ferrisession holds the package as npm would
// install it: every ESM entry point by its public name, as an app imports it.
import { RedisStore } from 'ferrisession'
import { luciaAdapter } from 'ferrisession/lucia'
import { RedisStore as CurveballStore } from 'ferrisession/curveball'
import unstorageDriver from 'ferrisession/unstorage'
import koaStore from 'ferrisession/koa'
import { storage as honoStorage } from 'ferrisession/hono'
import process from 'node:process'

const { url } = JSON.parse(process.argv[2])
const runtime = process.versions.bun ? `bun ${process.versions.bun}` : `deno ${process.versions.deno}`

try {
  const store = new RedisStore({ url })
  await store.set('i1', { cookie: {}, v: 'express' })
  const lucia = luciaAdapter({ url, getUser: async () => null })
  await lucia.setSession({ id: 'i2', userId: 'u', expiresAt: new Date(Date.now() + 60_000), attributes: {} })
  const curveball = new CurveballStore({ clientOptions: { url } })
  await curveball.set('i3', { v: 'curveball' }, Math.floor(Date.now() / 1000) + 60)
  const driver = unstorageDriver({ url, base: 'i4' })
  await driver.setItem('k', 'unstorage')
  const koa = koaStore({ url })
  await koa.set('i5', { v: 'koa' }, 60_000)
  const hono = honoStorage({ url })
  await hono.set('i6', { v: 'hono' })
  const result = {
    runtime,
    express: (await store.get('i1')).v,
    lucia: (await lucia.getSessionAndUser('i2'))[0].id,
    curveball: (await curveball.get('i3')).v,
    unstorage: await driver.getItem('k'),
    koa: (await koa.get('i5')).v,
    hono: (await hono.get('i6')).v,
    drivers: [store.stats().driver, lucia.stats().driver, curveball.stats().driver],
  }
  store.close()
  lucia.close()
  curveball.close()
  driver.dispose()
  koa.close()
  hono.close()
  console.log(`@@result ${JSON.stringify({ ...result, closedAt: Date.now() })}`)
} catch (e) {
  console.error(`FAILED under ${runtime}:`, e && e.stack ? e.stack : e)
  process.exit(1)
}
