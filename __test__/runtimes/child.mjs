// What every script under Bun or Deno shares: its settings (JSON, the first argument), the
// package loaded through its CommonJS entry, and one way to report. (Deno takes the .js files
// of a checkout, whose package.json names no "type", for ES modules, so index.mjs cannot import
// index.js from here; from node_modules it can: installed.mjs checks the ESM entries there.)
// A script prints one line `@@result {...}` and then ends by itself: it never calls
// process.exit on success, so each run also checks that closing what it opened lets it exit.
import { createRequire } from 'node:module'
import process from 'node:process'
import assert from 'node:assert/strict'

export const require = createRequire(import.meta.url)
export const config = JSON.parse(process.argv[2] || '{}')
export const { RedisStore } = require('../..')
export { assert }

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The runtime this runs on, as the parent expects it in the result. */
export const runtime = process.versions.bun ? `bun ${process.versions.bun}` : process.versions.deno ? `deno ${process.versions.deno}` : `node ${process.versions.node}`

/**
 * Runs `body`, prints its result (with the runtime and when everything was closed), and lets
 * the process end. `body` gets `opened(x)` to register what `close()` or `dispose()` must
 * release; a failure prints its stack and exits 1 at once, so the parent need not wait.
 */
export async function main(body) {
  const resources = []
  const opened = (r) => (resources.push(r), r)
  try {
    const result = (await body(opened)) || {}
    for (const r of resources.reverse()) await (r.close ? r.close() : r.dispose())
    console.log(`@@result ${JSON.stringify({ runtime, ...result, closedAt: Date.now() })}`)
  } catch (e) {
    console.error(`FAILED under ${runtime}:`, e && e.stack ? e.stack : e, e && e.code ? `(code ${e.code})` : '')
    for (const r of resources) {
      try {
        r.close ? r.close() : r.dispose()
      } catch {}
    }
    process.exit(1)
  }
}

/** `promise`, or a rejection naming `what` when it has not settled within `ms`. */
export function within(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}
