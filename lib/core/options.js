'use strict'
// Options and existing clients (node-redis v3 to v6, ioredis 5 and 6, their cluster and
// sentinel forms) turned into the one JSON the core's `src/config.rs` reads.

const { badArgument } = require('./errors.js')

// Option names copied from a cluster client's shared options. Anything else (modules, scripts,
// sockets, functions) is left behind.
const CLIENT_KEYS = ['url', 'keyPrefix', 'socket', 'host', 'port', 'path', 'username', 'password', 'database', 'db', 'tls', 'sentinels', 'name', 'sentinelUsername', 'sentinelPassword']
// Fields of a client's options copied whatever their value, so that the core can refuse one it
// cannot read instead of falling back to the default address. Other fields are copied only when
// they are plain strings, numbers or booleans.
const SERVER_KEYS = ['url', 'host', 'port', 'path', 'socket', 'sentinels', 'db', 'database']
const SOCKET_KEYS = ['host', 'port', 'path', 'tls', 'ca', 'cert', 'key', 'servername', 'rejectUnauthorized']
const TLS_KEYS = ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized']
const CONNECTION_KEYS = ['url', 'host', 'port', 'path', 'username', 'password', 'db', 'tls', 'connectTimeout', 'commandTimeout', 'maxPending', 'touchAfter', 'cache', 'cluster', 'sentinel', 'hashIds', 'encryption']

function pemText(v) {
  if (v == null) return undefined
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('utf8')
  if (Array.isArray(v)) return v.map(pemText).join('\n')
  return typeof v === 'string' ? v : undefined
}

const stringOrUndefined = (v) => (typeof v === 'string' ? v : undefined)

function pick(source, keys) {
  const out = {}
  if (!source || typeof source !== 'object') return out
  for (const k of keys) {
    const v = source[k]
    if (v === undefined || typeof v === 'function') continue
    out[k] = v
  }
  return out
}

/** `keys` of `source`, with PEM material (Buffers, arrays) turned into strings. */
function pickWithPem(source, keys) {
  const out = pick(source, keys)
  for (const k of ['ca', 'cert', 'key']) if (k in out) out[k] = pemText(out[k])
  return out
}

function plainTls(tls) {
  if (tls === true || tls === false) return tls
  if (!tls || typeof tls !== 'object') return undefined
  return pickWithPem(tls, TLS_KEYS)
}

const plainSocket = (socket) => pickWithPem(socket, SOCKET_KEYS)

/** `encryption` with its keys as base64 text: Buffers and Uint8Arrays are encoded, strings kept. */
function plainEncryption(enc) {
  if (!enc || typeof enc !== 'object' || !enc.keys || typeof enc.keys !== 'object') return enc
  const keys = {}
  for (const [id, k] of Object.entries(enc.keys)) keys[id] = k instanceof Uint8Array ? Buffer.from(k).toString('base64') : k
  return { ...enc, keys }
}

/** A client's options as JSON for the core: see SERVER_KEYS. */
function plainOptions(options) {
  const out = {}
  for (const [k, v] of Object.entries(options)) {
    if (v == null || typeof v === 'function') continue
    if (SERVER_KEYS.includes(k) || typeof v !== 'object') out[k] = v
  }
  if (out.socket && typeof out.socket === 'object') out.socket = plainSocket(out.socket)
  if ('tls' in options) out.tls = plainTls(options.tls)
  if (Array.isArray(out.sentinels)) out.sentinels = out.sentinels.map((n) => pick(n, ['host', 'port']))
  return out
}

/** The settings of a node-redis or ioredis client (standalone, cluster or sentinel), as plain JSON for the core. */
function clientSettings(client) {
  if (!client || typeof client !== 'object') {
    throw badArgument('client must be a node-redis or ioredis client')
  }
  // node-redis createCluster keeps its options in `_options`; ioredis marks a Cluster.
  const clusterOptions = client._options && client._options.rootNodes ? client._options : null
  if (clusterOptions) {
    const defaults = pick(clusterOptions.defaults, CLIENT_KEYS)
    if (defaults.socket) defaults.socket = plainSocket(defaults.socket)
    const rootNodes = clusterOptions.rootNodes.map((n) => ({ url: n.url, socket: n.socket && plainSocket(n.socket) }))
    return { flavor: 'node-redis-cluster', options: { rootNodes, defaults, keyPrefix: stringOrUndefined(clusterOptions.keyPrefix) } }
  }
  // node-redis createSentinel (v5, v6) keeps its options private. Readable are the sentinel it
  // talks to once connected, the first root node (in its identity) and, in v6, its key prefix.
  if (typeof client.getMasterNode === 'function' && typeof client.getSentinelNode === 'function') {
    const sentinels = []
    const current = client.getSentinelNode()
    if (current && current.host) sentinels.push(pick(current, ['host', 'port']))
    const first = /^(.+):(\d+)\//.exec((client.identity && client.identity.id) || '')
    if (first && !sentinels.some((n) => n.host === first[1] && n.port === Number(first[2]))) sentinels.push({ host: first[1], port: Number(first[2]) })
    return { flavor: 'node-redis-sentinel', options: { sentinels, keyPrefix: stringOrUndefined(client._keyPrefix) } }
  }
  if (client.isCluster === true) {
    const redisOptions = pick(client.options && client.options.redisOptions, CLIENT_KEYS)
    if ('tls' in redisOptions) redisOptions.tls = plainTls(redisOptions.tls)
    const startupNodes = (client.startupNodes || []).map((n) => (typeof n === 'object' ? pick(n, ['host', 'port']) : n))
    return { flavor: 'ioredis-cluster', options: { startupNodes, redisOptions, keyPrefix: stringOrUndefined(client.options && client.options.keyPrefix) } }
  }
  const options = client.options
  if (!options || typeof options !== 'object') {
    throw badArgument('client has no readable options: pass a node-redis (v3 to v5) or ioredis client, or a url')
  }
  // node_redis v3 resolved its server into `connection_options`, its db into `selected_db`.
  if (client.connection_options && typeof client.connection_options === 'object') {
    const resolved = { ...plainOptions(options), ...pick(client.connection_options, ['host', 'port', 'path']) }
    delete resolved.url
    if (client.selected_db != null) resolved.db = client.selected_db
    if (resolved.password == null && typeof client.auth_pass === 'string') resolved.password = client.auth_pass
    if (resolved.user == null && typeof client.auth_user === 'string') resolved.user = client.auth_user
    return { flavor: 'node-redis-v3', options: resolved }
  }
  // ioredis keeps host/port at the top level and reports a `status`; node-redis has `socket`.
  const flavor = typeof client.status === 'string' && !('socket' in options) ? 'ioredis' : 'node-redis'
  return { flavor, options: plainOptions(options) }
}

/**
 * Our connection options (`url`, timeouts, …) plus, optionally, an existing client's settings
 * (`client`) or node-redis `createClient` options (`clientOptions`).
 */
function connectionOptions(opts = {}) {
  const out = pick(opts, CONNECTION_KEYS)
  const otherKeys = Object.keys(opts).filter((k) => !CONNECTION_KEYS.includes(k) && k !== 'client' && k !== 'clientOptions')
  if (otherKeys.length > 0) out.otherKeys = otherKeys
  if ('tls' in out) out.tls = plainTls(out.tls)
  if ('encryption' in out) out.encryption = plainEncryption(out.encryption)
  if (opts.client) out.client = clientSettings(opts.client)
  else if (opts.clientOptions != null) {
    if (typeof opts.clientOptions !== 'object') throw badArgument('clientOptions must be an object')
    out.client = { flavor: 'options', options: plainOptions(opts.clientOptions) }
  }
  return out
}

/** A TTL option in seconds: `value`, or `fallback` when it is undefined; above zero and finite. */
function ttlSeconds(value, fallback, what = 'ttl') {
  const seconds = value === undefined ? fallback : value
  if (!(typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0)) throw badArgument(`${what} must be a positive number of seconds`)
  return seconds
}

/** True for a node-redis or ioredis client, as opposed to a plain options object. */
function isClient(x) {
  if (!x || typeof x !== 'object' || (typeof x.connect !== 'function' && typeof x.sendCommand !== 'function')) return false
  return !!(x.options || x._options) || typeof x.getMasterNode === 'function'
}

module.exports = { connectionOptions, clientSettings, isClient, ttlSeconds }
