'use strict'
// Sessions with plain node:http and ferrisession/sessions: a login form, a protected page and
// logout. `node examples/sessions-node-http.js`, then open http://localhost:3001 (memory://
// unless REDIS_URL is set). Any user name logs in; a real app checks a password here.
const http = require('node:http')
const { createSessions } = require('../lib/sessions.js')

const sessions = createSessions({ url: process.env.REDIS_URL || 'memory://', expiresIn: 7 * 86400, refreshAfter: 3600 })
const PORT = Number(process.env.PORT) || 3001
// Secure cookies need https, except on localhost where browsers accept them over http.
const cookieOptions = { secure: process.env.INSECURE_COOKIES !== '1' }

function tokenOf(req) {
  for (const part of (req.headers.cookie || '').split(';')) {
    const [name, ...rest] = part.trim().split('=')
    if (name === sessions.cookieName) return rest.join('=')
  }
  return null
}

/** A form post from another site is refused: the CSRF check the app owes (see docs/sessions.md). */
function sameOrigin(req) {
  const site = req.headers['sec-fetch-site']
  if (site) return site === 'same-origin' || site === 'none'
  const origin = req.headers.origin
  return !origin || origin === `http://${req.headers.host}`
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers })
  res.end(body)
}

async function readForm(req) {
  let body = ''
  for await (const chunk of req) body += chunk
  return new URLSearchParams(body)
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && !sameOrigin(req)) return send(res, 403, 'cross-site request refused')
    if (req.method === 'POST' && req.url === '/login') {
      const user = (await readForm(req)).get('user')
      if (!user) return send(res, 400, 'a user name is needed')
      const { token } = await sessions.create(user, { loggedInAt: new Date().toISOString() })
      return send(res, 303, '', { location: '/', 'set-cookie': sessions.cookie(token, cookieOptions) })
    }
    if (req.method === 'POST' && req.url === '/logout') {
      const session = await sessions.validate(tokenOf(req))
      if (session) await sessions.invalidate(session.id)
      return send(res, 303, '', { location: '/', 'set-cookie': sessions.blankCookie(cookieOptions) })
    }
    if (req.method === 'POST' && req.url === '/logout-everywhere') {
      const session = await sessions.validate(tokenOf(req))
      if (session) await sessions.invalidateUser(session.userId)
      return send(res, 303, '', { location: '/', 'set-cookie': sessions.blankCookie(cookieOptions) })
    }
    if (req.method === 'GET' && req.url === '/') {
      const session = await sessions.validate(tokenOf(req))
      if (!session) {
        return send(res, 200, '<form method="post" action="/login"><input name="user" placeholder="user"><button>Log in</button></form>')
      }
      const count = (await sessions.list(session.userId)).length
      return send(
        res,
        200,
        `<p>Hello ${escape(session.userId)}: ${count} session(s), this one until ${session.expiresAt.toISOString()}.</p>` +
          '<form method="post" action="/logout"><button>Log out</button></form>' +
          '<form method="post" action="/logout-everywhere"><button>Log out everywhere</button></form>',
      )
    }
    send(res, 404, 'not found')
  } catch (err) {
    send(res, 503, `the session store failed: ${escape(err.code || 'error')}`)
  }
})

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

server.listen(PORT, () => console.log(`http://localhost:${PORT}`))
process.on('SIGINT', () => {
  server.close()
  sessions.close()
})
module.exports = { server, sessions }
