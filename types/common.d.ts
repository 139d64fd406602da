// Types every entry shares. Nothing here needs express-session's types.

/** Every Error the store produces carries one of these codes. */
export type ErrorCode =
  | 'ERR_NOT_CONNECTED'
  | 'ERR_TIMEOUT'
  | 'ERR_BAD_ARGUMENT'
  | 'ERR_REDIS'
  | 'ERR_WRONG_TYPE'
  | 'ERR_OVERLOADED'
  | 'ERR_CLOSED'
  | 'ERR_BAD_DATA'
  | 'ERR_AUTH'
  | 'ERR_INTERNAL'
  | 'ERR_SERVER_VERSION'

export interface StoreError extends Error {
  code: ErrorCode
}

export interface TlsOptions {
  ca?: string | Buffer | Array<string | Buffer>
  cert?: string | Buffer
  key?: string | Buffer
  /** The name verified against the certificate and sent as SNI, when not the host connected to (the keyspace calls' redis-rs connection verifies the host instead). */
  servername?: string
  rejectUnauthorized?: boolean
}

/** How to reach Redis. With none of these, the store connects to redis://127.0.0.1:6379. */
export interface ConnectionOptions {
  /** `redis://`, `rediss://` (TLS) or `memory://` (embedded, in-process). */
  url?: string
  /**
   * A node-redis (v3 to v5) or ioredis client whose settings are copied; it is never used for
   * commands. Its key prefix (ioredis `keyPrefix`, node_redis v3 `prefix`) comes before every key.
   */
  client?: unknown
  host?: string
  port?: number
  path?: string
  username?: string
  password?: string
  db?: number
  tls?: boolean | TlsOptions
  /**
   * Seconds: a TTL refresh (touch, or a write of the same value) this process sent less than
   * this long ago is answered without a round trip. Default 0 (every refresh is sent).
   */
  touchAfter?: number
  /**
   * The near cache: `get`s of keys this process read recently are answered from memory until
   * Redis (RESP3 client tracking) says they changed. Off by default.
   */
  cache?: boolean | { maxBytes?: number; maxEntries?: number }
  /**
   * Store `base64url(SHA-256(id))` in keys and indexes instead of session ids, so a dump
   * cannot be replayed as cookies. `'migrate'` also reads sessions still under their plain key
   * and moves them. `ids()` and `all()` then give hashed ids. Not for unstorage.
   */
  hashIds?: boolean | 'migrate'
  /** AES-256-GCM for stored values; see docs/security.md. */
  encryption?: EncryptionOptions
  /** Milliseconds allowed to open a connection. Default 5000. */
  connectTimeout?: number
  /** Milliseconds within which every call settles. Default 3000. */
  commandTimeout?: number
  /** Calls allowed in flight before new ones fail fast with ERR_OVERLOADED. Default 10000. */
  maxPending?: number
  /** Redis Cluster seed nodes: `"redis://host:port"`, `"host:port"` or `{host, port}`. */
  cluster?: { nodes: Array<string | { host: string; port: number }> }
  /** Find the primary through Redis Sentinel; `username`/`password` here are the sentinels' own. */
  sentinel?: {
    nodes: Array<string | { host: string; port: number }>
    name: string
    username?: string
    password?: string
  }
}

export interface EncryptionOptions {
  /** Key id (letters, digits, `_`, `-`, `.`) to 32-byte key: a Buffer, base64 or 64 hex digits. */
  keys: Record<string, Buffer | Uint8Array | string>
  /** The key id new writes use; may be left out when there is one key. */
  current?: string
  /** Read values stored before encryption was on, as they are. Default false. */
  acceptPlaintext?: boolean
}

/** Latency percentiles in milliseconds. */
export interface LatencyStats {
  p50: number
  p90: number
  p99: number
  max: number
}

/** What `stats()` returns; `calls` has an entry per operation used so far (get, set, touch, …). */
export interface StoreStats {
  calls: Record<string, { calls: number; errors: Partial<Record<ErrorCode | 'OTHER', number>>; latency: LatencyStats }>
  /** Calls started and not yet settled. */
  inFlight: number
  /** Connections established, established again after a loss, and new primaries followed. */
  link: { connects: number; reconnects: number; failovers: number }
  /**
   * What wakes the connection engine: `"libuv"` (Node), `"thread"` (a host without libuv, or
   * `FERRISESSION_NO_LIBUV=1`), `"none"` for memory://.
   */
  driver: 'libuv' | 'thread' | 'none'
  /** The near cache's counters; null when it is off. */
  cache: { hits: number; misses: number; invalidations: number; entries: number } | null
}

/** What every store and adapter has besides its framework's methods. */
export interface Linked {
  /** Numbers an operator can watch; `cache` is null when the near cache is off. */
  stats(): StoreStats
  /** Releases the connection; calls in flight still settle. */
  close(): void
}

/**
 * The context of each event on the `ferrisession:call` TracingChannel
 * (`diagnostics_channel.tracingChannel('ferrisession:call')`): one per call to Redis.
 */
export interface CallContext {
  /** The store operation: `get`, `set`, `touch`, `destroy`, `ids`, `indexedSet`, … */
  operation: string
  /** `express`, `lucia`, `curveball`, `unstorage`, `koa`, `hono`, `better-auth`. */
  adapter: string
  /** The keys as Redis holds them (client prefix first, ids hashed with `hashIds`); a walk gives its pattern. */
  keys: string[]
  /** The server (a cluster's first seed node, the first sentinel), or `"memory"`. */
  serverAddress: string
  /** `null` for a unix socket or memory://. */
  serverPort: number | null
  database: number
  /** Set on `asyncEnd`: the reply. */
  result?: unknown
  /** Set on `error`: the rejection, with its `code`. */
  error?: StoreError
}
