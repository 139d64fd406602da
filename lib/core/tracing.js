'use strict'
// The `ferrisession:call` TracingChannel (node:diagnostics_channel): every call a store makes to
// Redis, with `{operation, adapter, keys, serverAddress, serverPort, database}`, so that tracing
// and metrics built on it (see examples/opentelemetry.js) survive a switch from a client that
// publishes its own channel. Nothing is built per call unless someone subscribes.

const dc = require('node:diagnostics_channel')

// Node 18.19+ and 19.9+; Bun and Deno have it too. Without it, nothing is published.
// `FERRISESSION_TRACING=off` leaves the channel out altogether (the bench's baseline for what
// the check costs when nobody listens).
const channel = typeof dc.tracingChannel === 'function' && process.env.FERRISESSION_TRACING !== 'off' ? dc.tracingChannel('ferrisession:call') : null

const EVENTS = channel === null ? [] : [channel.start, channel.end, channel.asyncStart, channel.asyncEnd, channel.error]

/** True when something listens; `TracingChannel#hasSubscribers` where the runtime has it. */
const listening =
  channel === null
    ? () => false
    : 'hasSubscribers' in channel
      ? () => channel.hasSubscribers
      : () => EVENTS.some((c) => c.hasSubscribers)

/** `GET` → `get`, `SET_UNTIL` → `setUntil`: the names `stats()` uses. */
function operationNames(opCodes) {
  const names = []
  for (const [name, code] of Object.entries(opCodes)) {
    names[code] = name.toLowerCase().replace(/_([a-z])/g, (_, c) => c.toUpperCase())
  }
  return names
}

module.exports = { channel, listening, operationNames }
