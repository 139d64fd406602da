// examples/sessions-hono.ts as it is, driven through app.request(): login, the protected page,
// a cross-site post refused, logout. Copied into an installed project (see runtimes.test.js),
// so it reports by itself instead of through child.mjs.
import assert from 'node:assert/strict'
import process from 'node:process'

const config = JSON.parse(process.argv[2] || '{}')
const runtime = process.versions.bun ? `bun ${process.versions.bun}` : `deno ${process.versions.deno}`
async function main(body) {
  const opened = []
  try {
    const result = await body((r) => opened.push(r))
    for (const r of opened) r.close()
    console.log(`@@result ${JSON.stringify({ runtime, ...result, closedAt: Date.now() })}`)
  } catch (e) {
    console.error(`FAILED under ${runtime}:`, e && e.stack ? e.stack : e)
    process.exit(1)
  }
}

process.env.REDIS_URL = config.url
const { default: app, sessions } = await import(new URL('./examples/sessions-hono.ts', import.meta.url).href)

await main(async (opened) => {
  opened(sessions)
  const anonymous = await app.request('/')
  assert.match(await anonymous.text(), /Log in/)
  const refused = await app.request('/login', { method: 'POST', body: new URLSearchParams({ user: 'ann' }), headers: { 'sec-fetch-site': 'cross-site' } })
  assert.equal(refused.status, 403)
  const login = await app.request('/login', { method: 'POST', body: new URLSearchParams({ user: 'ann' }), headers: { 'sec-fetch-site': 'same-origin' } })
  assert.equal(login.status, 303)
  const cookie = login.headers.get('set-cookie').split(';')[0]
  const page = await (await app.request('/', { headers: { cookie } })).text()
  assert.match(page, /Hello ann/)
  const token = cookie.slice(cookie.indexOf('=') + 1)
  const out = await app.request('/logout', { method: 'POST', headers: { cookie, 'sec-fetch-site': 'same-origin' } })
  assert.match(out.headers.get('set-cookie'), /Max-Age=0/)
  assert.match(await (await app.request('/', { headers: { cookie } })).text(), /Log in/)
  return { driver: sessions.stats().driver, sessionId: token.split('.')[0] }
})
