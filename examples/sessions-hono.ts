// Sessions with Hono and ferrisession/sessions: login, a protected page and logout, served by
// `app.fetch` (Bun: `bun examples/sessions-hono.ts`; Deno: `deno serve`; Node: @hono/node-server).
import { Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import { createSessions, type Session } from 'ferrisession/sessions'

type Attributes = { loggedInAt: string }
const sessions = createSessions<Attributes>({ url: process.env.REDIS_URL ?? 'memory://', expiresIn: 7 * 86400 })

const app = new Hono<{ Variables: { session: Session<Attributes> | null } }>()

// Every request: the session, if its cookie holds a valid token.
app.use(async (c, next) => {
  c.set('session', await sessions.validate(getCookie(c, sessions.cookieName)))
  await next()
})

// The CSRF check the app owes for form posts: refuse cross-site ones.
app.use(async (c, next) => {
  const site = c.req.header('sec-fetch-site')
  if (c.req.method === 'POST' && site && site !== 'same-origin' && site !== 'none') return c.text('cross-site request refused', 403)
  await next()
})

app.post('/login', async (c) => {
  const form = await c.req.parseBody()
  const user = typeof form.user === 'string' ? form.user : ''
  if (!user) return c.text('a user name is needed', 400)
  const { token } = await sessions.create(user, { loggedInAt: new Date().toISOString() })
  c.header('set-cookie', sessions.cookie(token))
  return c.redirect('/', 303)
})

app.post('/logout', async (c) => {
  const session = c.get('session')
  if (session) await sessions.invalidate(session.id)
  c.header('set-cookie', sessions.blankCookie())
  return c.redirect('/', 303)
})

const escape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)

app.get('/', (c) => {
  const session = c.get('session')
  if (!session) return c.html('<form method="post" action="/login"><input name="user"><button>Log in</button></form>')
  return c.html(`<p>Hello ${escape(session.userId)}, logged in at ${escape(session.attributes.loggedInAt)}.</p><form method="post" action="/logout"><button>Log out</button></form>`)
})

export default app
export { sessions }
