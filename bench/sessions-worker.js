'use strict'
// One round of `validate` for one implementation of the session design Lucia's site teaches,
// in its own process: ferrisession/sessions, or the same design written by hand over
// node-redis 5 as the guide has readers write it. Prints one JSON line.
//
// Shapes: `reused` validates 1,000 sessions over and over (created and validated once before);
// `fresh` validates each of OPS sessions created just before, once.
const { createClient } = require('redis')

const [name, url, opsArg, concArg] = process.argv.slice(2)
const OPS = Number(opsArg) || 50_000
const CONCURRENCY = Number(concArg) || 64
const REUSED = 1_000
const EXPIRES_IN = 30 * 86400
// Longer than a round: no refresh is due, so the common case is measured (one GET).
const REFRESH_AFTER = 86400

/** The guide's design over node-redis: Web Crypto for randomness and SHA-256, as it writes it. */
async function handWritten() {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789'
  const randomString = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(24))
    let s = ''
    for (const b of bytes) s += alphabet[b >> 3]
    return s
  }
  const hash = async (secret) => new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret)))
  const equal = (a, b) => {
    if (a.byteLength !== b.byteLength) return false
    let c = 0
    for (let i = 0; i < a.byteLength; i++) c |= a[i] ^ b[i]
    return c === 0
  }
  return {
    async create(userId) {
      const id = randomString()
      const secret = randomString()
      const now = Date.now()
      const session = { id, userId, secretHash: Buffer.from(await hash(secret)).toString('base64'), createdAt: now, lastVerifiedAt: now }
      await client.set(`session:${id}`, JSON.stringify(session), { EXAT: Math.floor(now / 1000) + EXPIRES_IN })
      return `${id}.${secret}`
    },
    async validate(token) {
      const parts = typeof token === 'string' ? token.split('.') : []
      if (parts.length !== 2) return null
      const [id, secret] = parts
      const raw = await client.get(`session:${id}`)
      if (raw === null) return null
      const session = JSON.parse(raw)
      const now = Date.now()
      if (now - session.lastVerifiedAt >= EXPIRES_IN * 1000) return null
      if (!equal(await hash(secret), new Uint8Array(Buffer.from(session.secretHash, 'base64')))) return null
      if (now - session.lastVerifiedAt >= REFRESH_AFTER * 1000) {
        session.lastVerifiedAt = now
        await client.set(`session:${id}`, JSON.stringify(session), { EXAT: Math.floor(now / 1000) + EXPIRES_IN })
      }
      return session
    },
    close: () => client.close(),
  }
}

async function ours(extra) {
  const { createSessions } = require('../lib/sessions.js')
  const sessions = createSessions({ url, expiresIn: EXPIRES_IN, refreshAfter: REFRESH_AFTER, ...extra })
  return {
    create: async (userId) => (await sessions.create(userId)).token,
    validate: (token) => sessions.validate(token),
    close: async () => sessions.close(),
  }
}

const IMPLEMENTATIONS = {
  ferrisession: () => ours({}),
  'ferrisession-cache': () => ours({ cache: true }),
  'hand-written': handWritten,
}

async function run(impl, tokens, count) {
  let next = 0
  let invalid = 0
  const t0 = process.hrtime.bigint()
  const cpu0 = process.cpuUsage()
  async function lane() {
    while (next < count) {
      const i = next++
      if ((await impl.validate(tokens[i % tokens.length])) === null) invalid++
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  if (invalid > 0) throw new Error(`${name}: ${invalid} valid tokens did not validate`)
  return { opsPerSec: count / seconds, processCpuUsPerOp: (cpu.user + cpu.system) / count }
}

async function main() {
  const impl = await IMPLEMENTATIONS[name]()
  const reused = []
  for (let i = 0; i < REUSED; i++) reused.push(await impl.create(`user-${i % 100}`))
  for (const t of reused) await impl.validate(t)
  const result = { name, phases: {} }
  // Commands per validate are read by the parent from INFO commandstats around this mark.
  process.stdout.write('@@reused\n')
  await new Promise((r) => process.stdin.once('data', r))
  result.phases.reused = await run(impl, reused, OPS)
  process.stdout.write('@@reused-done\n')
  await new Promise((r) => process.stdin.once('data', r))
  const fresh = new Array(OPS)
  let made = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (made < OPS) {
        const i = made++
        fresh[i] = await impl.create(`user-${i % 1000}`)
      }
    }),
  )
  process.stdout.write('@@fresh\n')
  await new Promise((r) => process.stdin.once('data', r))
  result.phases.fresh = await run(impl, fresh, OPS)
  await impl.close()
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
