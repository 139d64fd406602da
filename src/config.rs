//! Options, URLs and the settings of an existing node-redis or ioredis client, resolved into one
//! `ConnectionSpec`. JS hands us plain JSON; everything that interprets it lives here.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{StoreError, StoreResult};

pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 3_000;
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// How much the near cache may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Everything needed to open the store's connection.
#[derive(Clone, Debug)]
pub struct ConnectionSpec {
    pub topology: Topology,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Calls allowed in flight at once; past that, calls fail fast with `ERR_OVERLOADED`.
    pub max_pending: usize,
    /// `touchAfter`: refreshes this process sent less than this long ago are skipped.
    pub touch_after: Option<Duration>,
    /// `cache`: the near cache's limits, when it is on.
    pub cache: Option<CacheLimits>,
    /// The key prefix of the client whose settings were copied (ioredis `keyPrefix`, node_redis
    /// v3 `prefix`): every key the store names lives under it, as the client would have put it.
    pub namespace: String,
    /// `hashIds` and `encryption`.
    pub seal: std::sync::Arc<crate::seal::Seal>,
    /// What every connection of the store adds to (`stats()`): created with the spec, shared by
    /// its clones.
    pub counters: std::sync::Arc<crate::stats::LinkCounters>,
}

#[derive(Clone, Debug)]
pub enum Topology {
    Memory,
    Standalone(Box<Endpoint>),
    Cluster(ClusterSpec),
    Sentinel(SentinelSpec),
}

/// Where a store's calls go, as tracing names it: the address and port of the server (for a
/// cluster its first seed node, behind Sentinel its first sentinel), and the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerName {
    pub address: String,
    pub port: Option<u16>,
    pub database: i64,
}

impl ServerName {
    fn unknown() -> Self {
        ServerName {
            address: String::new(),
            port: None,
            database: 0,
        }
    }
}

impl ConnectionSpec {
    pub fn server_name(&self) -> ServerName {
        let of = |info: &ConnectionInfo, database: i64| {
            let (address, port) = match info.addr() {
                ConnectionAddr::Tcp(h, p)
                | ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => (h.clone(), Some(*p)),
                ConnectionAddr::Unix(path) => (path.display().to_string(), None),
                _ => (String::new(), None),
            };
            ServerName {
                address,
                port,
                database,
            }
        };
        match &self.topology {
            Topology::Memory => ServerName {
                address: "memory".into(),
                port: None,
                database: 0,
            },
            Topology::Standalone(e) => of(&e.info, e.info.redis_settings().db()),
            Topology::Cluster(c) => c
                .nodes
                .first()
                .map_or_else(ServerName::unknown, |n| of(n, 0)),
            Topology::Sentinel(s) => s
                .sentinels
                .first()
                .map_or_else(ServerName::unknown, |n| of(n, s.node.db())),
        }
    }
}

/// A Redis Cluster: seed nodes to discover the topology from, and how to log in to every node.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub nodes: Vec<ConnectionInfo>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<TlsSettings>,
}

/// A primary found through Sentinel: the sentinels (with their own credentials in their
/// connection info), the service name, and how to log in to the primary.
#[derive(Clone, Debug)]
pub struct SentinelSpec {
    pub sentinels: Vec<ConnectionInfo>,
    /// The primary's name; `None`: the one primary the sentinels monitor.
    pub name: Option<String>,
    pub node: redis::RedisConnectionInfo,
    pub tls: Option<TlsSettings>,
}

/// One Redis server: where it is, how to log in, and the TLS material if any.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub info: ConnectionInfo,
    pub tls: Option<TlsSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub reject_unauthorized: bool,
    /// The name verified against the certificate and sent as SNI, when not the host.
    pub servername: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct RawOptions {
    url: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    username: Option<String>,
    password: Option<String>,
    db: Option<i64>,
    tls: Option<RawTls>,
    connect_timeout: Option<f64>,
    command_timeout: Option<f64>,
    max_pending: Option<f64>,
    /// Seconds.
    touch_after: Option<f64>,
    /// `true`, or `{maxBytes, maxEntries}`.
    cache: Option<Value>,
    /// `true`, `false` or `"migrate"`.
    hash_ids: Option<Value>,
    /// `{keys: {id: key}, current, acceptPlaintext}`.
    encryption: Option<Value>,
    /// Settings copied from a node-redis or ioredis client: `{flavor, options}`.
    client: Option<RawClient>,
    cluster: Option<RawCluster>,
    sentinel: Option<RawSentinel>,
    /// Only ever read from a client's settings, never from our own options.
    #[serde(skip)]
    key_prefix: Option<String>,
    /// The names of the caller's other options, to catch a server named in a form we do not read.
    other_keys: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Debug, Clone)]
struct RawCluster {
    nodes: Vec<Value>,
}

#[derive(Deserialize, Default, Debug, Clone)]
struct RawSentinel {
    #[serde(default)]
    nodes: Vec<Value>,
    name: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// A client that hides the primary's name (node-redis `createSentinel`): with no `name`,
    /// the sentinels are asked for the one primary they monitor.
    #[serde(skip)]
    discover: bool,
}

impl RawSentinel {
    /// Our `sentinel` option over a client's: fields we were given win, the client's nodes
    /// stand in when we named none.
    fn over(self, client: RawSentinel) -> RawSentinel {
        if !self.nodes.is_empty() {
            return self;
        }
        RawSentinel {
            nodes: client.nodes,
            name: self.name.or(client.name),
            username: self.username.or(client.username),
            password: self.password.or(client.password),
            discover: client.discover,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawTls {
    Flag(bool),
    Settings(RawTlsSettings),
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct RawTlsSettings {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    reject_unauthorized: Option<bool>,
    servername: Option<String>,
}

#[derive(Deserialize, Debug)]
struct RawClient {
    flavor: String,
    options: Value,
}

fn str_field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn int_field(v: &Value, name: &str) -> Option<i64> {
    match v.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn tls_field(v: Option<&Value>) -> Option<RawTls> {
    match v? {
        Value::Bool(b) => Some(RawTls::Flag(*b)),
        obj @ Value::Object(_) => Some(RawTls::Settings(RawTlsSettings {
            ca: str_field(obj, "ca"),
            cert: str_field(obj, "cert"),
            key: str_field(obj, "key"),
            reject_unauthorized: obj.get("rejectUnauthorized").and_then(Value::as_bool),
            servername: str_field(obj, "servername"),
        })),
        _ => None,
    }
}

/// A cluster client's settings: its nodes, and the credentials and TLS every node shares.
/// `key_prefix` is the cluster client's own `keyPrefix` (node-redis 6, ioredis), else the one
/// its per-node options carry.
fn cluster_client(
    shared: &Value,
    tls: Option<&Value>,
    nodes: Vec<Value>,
    key_prefix: Option<String>,
) -> RawOptions {
    RawOptions {
        username: str_field(shared, "username"),
        password: str_field(shared, "password"),
        tls: tls_field(tls),
        cluster: Some(RawCluster { nodes }),
        key_prefix: key_prefix.or_else(|| str_field(shared, "keyPrefix")),
        ..RawOptions::default()
    }
}

/// Maps a client's own option object onto ours. node-redis keeps the socket under `socket` and
/// the database as `database`; ioredis keeps everything flat with `db`; node_redis v3 is flat too,
/// with `db`, `auth_pass` and a key `prefix`. `options` is a bare options object of any of them
/// (Curveball's `clientOptions`), read in the union of their forms.
fn client_options(client: &RawClient) -> StoreResult<RawOptions> {
    let o = &client.options;
    let what = match client.flavor.as_str() {
        "options" => "clientOptions",
        _ => "the client's options",
    };
    if !client.flavor.ends_with("-cluster") {
        check_server_fields(o, what)?;
    }
    match client.flavor.as_str() {
        "node-redis-v3" | "options" => Ok(any_client_options(o)),
        "node-redis" => {
            let socket = o.get("socket").cloned().unwrap_or(Value::Null);
            let mut tls = tls_field(socket.get("tls"));
            if matches!(tls, Some(RawTls::Flag(true))) {
                // node-redis puts the TLS material beside `tls: true` on the socket.
                tls = tls_field(Some(&socket)).map(|t| match t {
                    RawTls::Settings(s) => RawTls::Settings(s),
                    flag => flag,
                });
            }
            Ok(RawOptions {
                url: str_field(o, "url"),
                host: str_field(&socket, "host"),
                port: int_field(&socket, "port").map(|p| p as u16),
                path: str_field(&socket, "path"),
                username: str_field(o, "username"),
                password: str_field(o, "password"),
                db: int_field(o, "database"),
                tls,
                // node-redis 6.1 prefixes every key argument, as ioredis does.
                key_prefix: str_field(o, "keyPrefix"),
                ..RawOptions::default()
            })
        }
        "ioredis" => Ok(RawOptions {
            sentinel: o
                .get("sentinels")
                .and_then(Value::as_array)
                .map(|nodes| RawSentinel {
                    nodes: nodes.clone(),
                    name: str_field(o, "name"),
                    username: str_field(o, "sentinelUsername"),
                    password: str_field(o, "sentinelPassword"),
                    discover: false,
                }),
            host: str_field(o, "host"),
            port: int_field(o, "port").map(|p| p as u16),
            path: str_field(o, "path"),
            username: str_field(o, "username"),
            password: str_field(o, "password"),
            db: int_field(o, "db"),
            tls: tls_field(o.get("tls")),
            key_prefix: str_field(o, "keyPrefix"),
            ..RawOptions::default()
        }),
        // node-redis `createSentinel` keeps its options private: JS reads the sentinels it can
        // see, and the primary is the one they monitor unless `sentinel.name` says which.
        "node-redis-sentinel" => Ok(RawOptions {
            sentinel: Some(RawSentinel {
                nodes: o
                    .get("sentinels")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                discover: true,
                ..RawSentinel::default()
            }),
            key_prefix: str_field(o, "keyPrefix"),
            ..RawOptions::default()
        }),
        "node-redis-cluster" => {
            let defaults = o.get("defaults").cloned().unwrap_or(Value::Null);
            let socket = defaults.get("socket").cloned().unwrap_or(Value::Null);
            let nodes = o
                .get("rootNodes")
                .and_then(Value::as_array)
                .map(|roots| {
                    roots
                        .iter()
                        .map(|n| match str_field(n, "url") {
                            Some(url) => Value::String(url),
                            None => n.get("socket").cloned().unwrap_or(Value::Null),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(cluster_client(
                &defaults,
                socket.get("tls"),
                nodes,
                str_field(o, "keyPrefix"),
            ))
        }
        "ioredis-cluster" => {
            let redis_options = o.get("redisOptions").cloned().unwrap_or(Value::Null);
            let nodes = o
                .get("startupNodes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(cluster_client(
                &redis_options,
                redis_options.get("tls"),
                nodes,
                str_field(o, "keyPrefix"),
            ))
        }
        other => Err(StoreError::bad_argument(format!(
            "unsupported client flavor {other:?}: pass a node-redis or ioredis client, or a url"
        ))),
    }
}

/// node-redis v4/v5 (`url`, `socket.*`, `database`), node_redis v3 and ioredis (flat `host`,
/// `port`, `path`, `db`, `auth_pass`, `prefix`/`keyPrefix`), whichever fields are there.
fn any_client_options(o: &Value) -> RawOptions {
    let socket = o.get("socket").cloned().unwrap_or(Value::Null);
    let tls = match tls_field(socket.get("tls")) {
        Some(RawTls::Flag(true)) => tls_field(Some(&socket)),
        None => tls_field(o.get("tls")),
        other => other,
    };
    RawOptions {
        url: str_field(o, "url"),
        host: str_field(&socket, "host").or_else(|| str_field(o, "host")),
        port: int_field(&socket, "port")
            .or_else(|| int_field(o, "port"))
            .map(|p| p as u16),
        path: str_field(&socket, "path").or_else(|| str_field(o, "path")),
        username: str_field(o, "username").or_else(|| str_field(o, "user")),
        password: str_field(o, "password").or_else(|| str_field(o, "auth_pass")),
        db: int_field(o, "database").or_else(|| int_field(o, "db")),
        tls,
        key_prefix: str_field(o, "keyPrefix").or_else(|| str_field(o, "prefix")),
        ..RawOptions::default()
    }
}

/// Fields that name a server; at least one of them makes an options object readable.
const SERVER_FIELDS: [&str; 6] = ["url", "host", "port", "path", "socket", "sentinels"];

/// Refuses a client's options that name a server in a form we cannot read, so that such a
/// client is never silently replaced by the default address: a field of the wrong type, or
/// server-looking fields (`hostname`, `address`, `uri`, …) without any field we read.
fn check_server_fields(o: &Value, what: &str) -> StoreResult<()> {
    let Value::Object(map) = o else {
        return match o {
            Value::Null => Ok(()),
            other => Err(StoreError::bad_argument(format!(
                "{what} must be an object, got {other}"
            ))),
        };
    };
    let wrong = |field: &str, want: &str, got: &Value| {
        Err(StoreError::bad_argument(format!(
            "{what}.{field} must be {want}, got {got}"
        )))
    };
    let port_ok = |v: &Value| match v {
        Value::Number(n) => n.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
        Value::String(s) => s.parse::<u16>().is_ok_and(|p| p > 0),
        _ => false,
    };
    let db_ok = |v: &Value| match v {
        Value::Number(n) => n.as_u64().is_some(),
        Value::String(s) => s.parse::<u64>().is_ok(),
        _ => false,
    };
    let mut named = false;
    for (field, v) in map {
        if v.is_null() {
            continue;
        }
        named |= SERVER_FIELDS.contains(&field.as_str());
        match field.as_str() {
            "url" | "host" | "path" | "prefix" | "keyPrefix" | "username" | "password"
            | "auth_pass"
                if !v.is_string() =>
            {
                return wrong(field, "a string", v);
            }
            "port" if !port_ok(v) => return wrong(field, "a port number (1-65535)", v),
            "db" | "database" if !db_ok(v) => return wrong(field, "a database number", v),
            "socket" => {
                if !v.is_object() {
                    return wrong(field, "an object", v);
                }
                for inner in ["host", "path"] {
                    if let Some(x) = v.get(inner).filter(|x| !x.is_null() && !x.is_string()) {
                        return wrong(&format!("socket.{inner}"), "a string", x);
                    }
                }
                if let Some(x) = v.get("port").filter(|x| !x.is_null() && !port_ok(x)) {
                    return wrong("socket.port", "a port number (1-65535)", x);
                }
            }
            _ => {}
        }
    }
    if !named {
        let unknown = server_like(map.keys());
        if !unknown.is_empty() {
            return Err(StoreError::bad_argument(format!(
                "{what} names a server in a form we cannot read ({}): give url, host and port, path or socket",
                unknown.join(", ")
            )));
        }
    }
    Ok(())
}

/// The option names that look like they name a server (`hostname`, `address`, `uri`, …).
fn server_like<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    keys.map(String::as_str)
        .filter(|k| {
            let k = k.to_ascii_lowercase();
            [
                "host", "port", "addr", "server", "uri", "url", "endpoint", "node", "socket",
            ]
            .iter()
            .any(|w| k.contains(w))
        })
        .collect()
}

fn millis(value: Option<f64>, default: u64, name: &str) -> StoreResult<Duration> {
    match value {
        None => Ok(Duration::from_millis(default)),
        Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 86_400_000.0 => {
            Ok(Duration::from_millis(ms.ceil() as u64))
        }
        Some(ms) => Err(StoreError::bad_argument(format!(
            "{name} must be a positive number of milliseconds, got {ms}"
        ))),
    }
}

/// Parses the JSON options object that the JS layer passes to the native store.
pub fn parse(json: &str) -> StoreResult<ConnectionSpec> {
    let raw: RawOptions = serde_json::from_str(json)
        .map_err(|e| StoreError::bad_argument(format!("invalid store options: {e}")))?;
    resolve(raw)
}

fn resolve(raw: RawOptions) -> StoreResult<ConnectionSpec> {
    let connect_timeout = millis(
        raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT_MS,
        "connectTimeout",
    )?;
    let command_timeout = millis(
        raw.command_timeout,
        DEFAULT_COMMAND_TIMEOUT_MS,
        "commandTimeout",
    )?;
    let touch_after = match raw.touch_after {
        None => None,
        Some(0.0) => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 * 365.0 => {
            Some(Duration::from_secs_f64(s))
        }
        Some(s) => {
            return Err(StoreError::bad_argument(format!(
                "touchAfter must be a number of seconds >= 0, got {s}"
            )))
        }
    };
    let cache = match &raw.cache {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(CacheLimits {
            max_entries: DEFAULT_CACHE_ENTRIES,
            max_bytes: DEFAULT_CACHE_BYTES,
        }),
        Some(obj @ Value::Object(_)) => {
            let limit = |name: &str, default: usize| match obj.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
                    Ok(n.as_u64().unwrap_or(1) as usize)
                }
                Some(other) => Err(StoreError::bad_argument(format!(
                    "cache.{name} must be a positive whole number, got {other}"
                ))),
            };
            Some(CacheLimits {
                max_entries: limit("maxEntries", DEFAULT_CACHE_ENTRIES)?,
                max_bytes: limit("maxBytes", DEFAULT_CACHE_BYTES)?,
            })
        }
        Some(other) => {
            return Err(StoreError::bad_argument(format!(
                "cache must be true, false or {{maxBytes, maxEntries}}, got {other}"
            )))
        }
    };
    let seal = crate::seal::Seal::from_options(raw.hash_ids.as_ref(), raw.encryption.as_ref())?;
    let max_pending = match raw.max_pending {
        None => DEFAULT_MAX_PENDING,
        Some(n) if n.is_finite() && n >= 1.0 => n as usize,
        Some(n) => {
            return Err(StoreError::bad_argument(format!(
                "maxPending must be at least 1, got {n}"
            )))
        }
    };

    let names_server = raw.url.is_some()
        || raw.host.is_some()
        || raw.port.is_some()
        || raw.path.is_some()
        || raw.cluster.is_some()
        || raw.sentinel.is_some()
        || raw.client.is_some();
    if !names_server {
        let unknown = server_like(raw.other_keys.iter().flatten());
        if !unknown.is_empty() {
            return Err(StoreError::bad_argument(format!(
                "the options name a server in a form we cannot read ({}): give url, host and port, path, cluster, sentinel or client",
                unknown.join(", ")
            )));
        }
    }
    let base = match &raw.client {
        // A url of our own names the whole server, so nothing of the client's is kept.
        Some(_) if raw.url.is_some() => RawOptions::default(),
        Some(client) => client_options(client)?,
        None => RawOptions::default(),
    };
    // The client's key prefix applies even beside a url of our own: it is where the client's
    // application keeps its keys, not where the server is.
    let namespace = match &raw.client {
        Some(client) if raw.url.is_some() => client_options(client)?.key_prefix,
        _ => base.key_prefix.clone(),
    }
    .unwrap_or_default();
    let merged = RawOptions {
        url: raw.url.or(base.url),
        host: raw.host.or(base.host),
        port: raw.port.or(base.port),
        path: raw.path.or(base.path),
        username: raw.username.or(base.username),
        password: raw.password.or(base.password),
        db: raw.db.or(base.db),
        tls: raw.tls.or(base.tls),
        cluster: raw.cluster.or(base.cluster),
        sentinel: match (raw.sentinel, base.sentinel) {
            (Some(ours), Some(client)) => Some(ours.over(client)),
            (ours, client) => ours.or(client),
        },
        ..RawOptions::default()
    };

    let topology = if merged.url.as_deref().is_some_and(is_memory_url) {
        Topology::Memory
    } else if let Some(cluster) = merged.cluster.clone() {
        Topology::Cluster(cluster_spec(cluster, merged)?)
    } else if let Some(sentinel) = merged.sentinel.clone() {
        Topology::Sentinel(sentinel_spec(sentinel, merged)?)
    } else {
        Topology::Standalone(Box::new(endpoint(merged)?))
    };
    Ok(ConnectionSpec {
        topology,
        connect_timeout,
        command_timeout,
        max_pending,
        touch_after,
        cache,
        namespace,
        seal: std::sync::Arc::new(seal),
        counters: Default::default(),
    })
}

/// A node given as `"redis://host:port"`, `"host:port"` or `{host, port}`.
fn node_info(node: &Value, what: &str) -> StoreResult<ConnectionInfo> {
    let bad = || {
        StoreError::bad_argument(format!(
            "{what} must be \"redis://host:port\", \"host:port\" or {{host, port}}, got {node}"
        ))
    };
    match node {
        Value::String(s) if s.contains("://") => s
            .as_str()
            .into_connection_info()
            .map_err(|e| StoreError::bad_argument(format!("invalid {what} {:?}: {e}", redact(s)))),
        Value::String(s) => {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            (host.to_string(), port)
                .into_connection_info()
                .map_err(|_| bad())
        }
        Value::Object(_) => {
            let host = str_field(node, "host").unwrap_or_else(|| "127.0.0.1".into());
            let port = int_field(node, "port")
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(bad)?;
            (host, port as u16)
                .into_connection_info()
                .map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

fn tls_settings(tls: Option<RawTls>, implied: bool) -> Option<TlsSettings> {
    match tls {
        Some(RawTls::Flag(false)) => None,
        Some(RawTls::Flag(true)) => Some(TlsSettings {
            reject_unauthorized: true,
            ..TlsSettings::default()
        }),
        Some(RawTls::Settings(s)) => Some(TlsSettings {
            ca: s.ca,
            cert: s.cert,
            key: s.key,
            reject_unauthorized: s.reject_unauthorized.unwrap_or(true),
            servername: s.servername,
        }),
        None if implied => Some(TlsSettings {
            reject_unauthorized: true,
            ..TlsSettings::default()
        }),
        None => None,
    }
}

fn cluster_spec(cluster: RawCluster, o: RawOptions) -> StoreResult<ClusterSpec> {
    if cluster.nodes.is_empty() {
        return Err(StoreError::bad_argument(
            "cluster.nodes must list at least one node",
        ));
    }
    let nodes = cluster
        .nodes
        .iter()
        .map(|n| node_info(n, "a cluster node"))
        .collect::<StoreResult<Vec<_>>>()?;
    let implied = cluster
        .nodes
        .iter()
        .any(|n| n.as_str().is_some_and(|s| s.starts_with("rediss://")));
    Ok(ClusterSpec {
        nodes,
        username: o.username,
        password: o.password,
        tls: tls_settings(o.tls, implied),
    })
}

fn sentinel_spec(sentinel: RawSentinel, o: RawOptions) -> StoreResult<SentinelSpec> {
    if sentinel.nodes.is_empty() {
        return Err(StoreError::bad_argument(
            "sentinel.nodes must list at least one sentinel",
        ));
    }
    let name = match sentinel.name.filter(|n| !n.is_empty()) {
        Some(name) => Some(name),
        None if sentinel.discover => None,
        None => {
            return Err(StoreError::bad_argument(
                "sentinel.name (the monitored primary's name) is required",
            ))
        }
    };
    let sentinels = sentinel
        .nodes
        .iter()
        .map(|n| {
            let info = node_info(n, "a sentinel")?;
            let mut r = info.redis_settings().clone();
            if let Some(u) = &sentinel.username {
                r = r.set_username(u);
            }
            if let Some(p) = &sentinel.password {
                r = r.set_password(p);
            }
            Ok(info.set_redis_settings(r))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mut node = redis::RedisConnectionInfo::default();
    if let Some(u) = o.username {
        node = node.set_username(u);
    }
    if let Some(p) = o.password {
        node = node.set_password(p);
    }
    if let Some(db) = o.db {
        node = node.set_db(db);
    }
    Ok(SentinelSpec {
        sentinels,
        name,
        node,
        tls: tls_settings(o.tls, false),
    })
}

fn is_memory_url(url: &str) -> bool {
    url == "memory://" || url == "memory:" || url.starts_with("memory://")
}

fn endpoint(o: RawOptions) -> StoreResult<Endpoint> {
    let from_url = match &o.url {
        Some(url) => {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://")
                || url.starts_with("unix://"))
            {
                return Err(StoreError::bad_argument(format!(
                    "unsupported url {:?}: use redis://, rediss:// or memory://",
                    redact(url)
                )));
            }
            Some(url.as_str().into_connection_info().map_err(|e| {
                StoreError::bad_argument(format!("invalid url {:?}: {e}", redact(url)))
            })?)
        }
        None => None,
    };
    let url_tls = o.url.as_deref().is_some_and(|u| u.starts_with("rediss://"));

    let tls = tls_settings(o.tls, url_tls);

    let (url_host, url_port, url_settings) = match &from_url {
        Some(info) => {
            let (host, port) = match info.addr() {
                ConnectionAddr::Tcp(h, p) => (Some(h.clone()), Some(*p)),
                ConnectionAddr::TcpTls { host, port, .. } => (Some(host.clone()), Some(*port)),
                _ => (None, None),
            };
            (host, port, Some(info.redis_settings().clone()))
        }
        None => (None, None, None),
    };

    let addr = if let Some(path) = o.path {
        ConnectionAddr::Unix(path.into())
    } else if let Some(ConnectionAddr::Unix(p)) = from_url.as_ref().map(|i| i.addr()) {
        ConnectionAddr::Unix(p.clone())
    } else {
        let host = o.host.or(url_host).unwrap_or_else(|| "127.0.0.1".into());
        let port = o.port.or(url_port).unwrap_or(6379);
        if port == 0 {
            return Err(StoreError::bad_argument("port must be between 1 and 65535"));
        }
        match &tls {
            Some(t) => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: !t.reject_unauthorized,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host, port),
        }
    };

    let mut settings = url_settings.unwrap_or_default();
    if let Some(user) = o.username {
        settings = settings.set_username(user);
    }
    if let Some(pass) = o.password {
        settings = settings.set_password(pass);
    }
    if let Some(db) = o.db {
        if !(0..=1_000_000).contains(&db) {
            return Err(StoreError::bad_argument(format!(
                "db must be >= 0, got {db}"
            )));
        }
        settings = settings.set_db(db);
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| StoreError::bad_argument(e.to_string()))?
        .set_redis_settings(settings);
    Ok(Endpoint { info, tls })
}

/// A URL with its password replaced, fit for an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standalone(json: &str) -> Endpoint {
        match parse(json).unwrap().topology {
            Topology::Standalone(e) => *e,
            other => panic!("expected standalone, got {other:?}"),
        }
    }

    #[test]
    fn empty_options_mean_local_default() {
        let e = standalone("{}");
        assert_eq!(e.info.addr().to_string(), "127.0.0.1:6379");
        assert!(e.tls.is_none());
        let spec = parse("{}").unwrap();
        assert_eq!(
            spec.command_timeout,
            Duration::from_millis(DEFAULT_COMMAND_TIMEOUT_MS)
        );
    }

    #[test]
    fn url_carries_credentials_and_db() {
        let e = standalone(r#"{"url":"redis://alice:s3cret@10.1.2.3:6400/4"}"#);
        assert_eq!(e.info.addr().to_string(), "10.1.2.3:6400");
        let r = e.info.redis_settings();
        assert_eq!(r.username(), Some("alice"));
        assert_eq!(r.password(), Some("s3cret"));
        assert_eq!(r.db(), 4);
    }

    #[test]
    fn rediss_turns_tls_on() {
        let e = standalone(r#"{"url":"rediss://cache.example:6380"}"#);
        assert!(matches!(
            e.info.addr(),
            ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
        assert!(e.tls.unwrap().reject_unauthorized);
    }

    #[test]
    fn memory_url() {
        assert!(matches!(
            parse(r#"{"url":"memory://"}"#).unwrap().topology,
            Topology::Memory
        ));
    }

    #[test]
    fn node_redis_client_settings() {
        let e = standalone(
            r#"{"client":{"flavor":"node-redis","options":{"socket":{"host":"h1","port":7001,"tls":false},"username":"u","password":"p","database":3}}}"#,
        );
        assert_eq!(e.info.addr().to_string(), "h1:7001");
        assert_eq!(e.info.redis_settings().db(), 3);
        assert_eq!(e.info.redis_settings().username(), Some("u"));
    }

    #[test]
    fn ioredis_client_settings() {
        let e = standalone(
            r#"{"client":{"flavor":"ioredis","options":{"host":"h2","port":7002,"db":2,"password":"pw","tls":{"rejectUnauthorized":false}}}}"#,
        );
        assert!(matches!(
            e.info.addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        assert_eq!(e.info.redis_settings().db(), 2);
        assert_eq!(e.info.redis_settings().password(), Some("pw"));
    }

    #[test]
    fn explicit_options_override_client() {
        let e = standalone(
            r#"{"url":"redis://other:6000","client":{"flavor":"ioredis","options":{"host":"h2","port":7002}}}"#,
        );
        assert_eq!(e.info.addr().to_string(), "other:6000");
    }

    #[test]
    fn bad_input_is_a_bad_argument() {
        for json in [
            "not json",
            r#"{"url":"http://x"}"#,
            r#"{"url":"redis://"}"#,
            r#"{"commandTimeout":-1}"#,
            r#"{"connectTimeout":"soon"}"#,
            r#"{"client":{"flavor":"memcached","options":{}}}"#,
            r#"{"maxPending":0}"#,
            r#"{"db":-2}"#,
        ] {
            let err = parse(json).expect_err(json);
            assert_eq!(err.kind, crate::error::ErrorKind::BadArgument, "{json}");
        }
    }

    #[test]
    fn cluster_and_sentinel_options() {
        let spec = parse(r#"{"cluster":{"nodes":["redis://a:7000","b:7001",{"host":"c","port":7002}]},"password":"pw"}"#).unwrap();
        let Topology::Cluster(c) = spec.topology else {
            panic!("expected a cluster")
        };
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[1].addr().to_string(), "b:7001");
        assert_eq!(c.password.as_deref(), Some("pw"));

        let spec = parse(r#"{"sentinel":{"nodes":["127.0.0.1:26379"],"name":"mymaster","password":"sp"},"password":"np","db":2}"#).unwrap();
        let Topology::Sentinel(s) = spec.topology else {
            panic!("expected sentinel")
        };
        assert_eq!(s.name.as_deref(), Some("mymaster"));
        assert_eq!(s.sentinels[0].redis_settings().password(), Some("sp"));
        assert_eq!(s.node.password(), Some("np"));
        assert_eq!(s.node.db(), 2);

        for bad in [
            r#"{"cluster":{"nodes":[]}}"#,
            r#"{"cluster":{"nodes":["nohost"]}}"#,
            r#"{"cluster":{"nodes":[{"host":"a","port":0}]}}"#,
            r#"{"sentinel":{"nodes":["a:1"]}}"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err().kind,
                crate::error::ErrorKind::BadArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_node_redis_sentinel_client_discovers_its_primary_unless_named() {
        let client = r#""client":{"flavor":"node-redis-sentinel","options":{"sentinels":[{"host":"s","port":26379}],"keyPrefix":"ns:"}}"#;
        let spec = parse(&format!("{{{client}}}")).unwrap();
        let Topology::Sentinel(s) = &spec.topology else {
            panic!("expected sentinel")
        };
        assert_eq!(s.name, None);
        assert_eq!(spec.namespace, "ns:");
        let spec = parse(&format!(
            r#"{{{client},"sentinel":{{"name":"m","password":"sp"}}}}"#
        ))
        .unwrap();
        let Topology::Sentinel(s) = &spec.topology else {
            panic!("expected sentinel")
        };
        assert_eq!(s.name.as_deref(), Some("m"));
        assert_eq!(s.sentinels[0].addr().to_string(), "s:26379");
        assert_eq!(s.sentinels[0].redis_settings().password(), Some("sp"));
        // Our own sentinel option still needs its name.
        assert!(parse(r#"{"sentinel":{"nodes":["a:1"]}}"#).is_err());
    }

    #[test]
    fn cluster_and_sentinel_from_clients() {
        let spec = parse(r#"{"client":{"flavor":"node-redis-cluster","options":{"rootNodes":[{"url":"redis://h:7000"},{"socket":{"host":"h","port":7001}}],"defaults":{"password":"pw"}}}}"#).unwrap();
        let Topology::Cluster(c) = spec.topology else {
            panic!("expected a cluster")
        };
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.password.as_deref(), Some("pw"));
        let spec = parse(r#"{"client":{"flavor":"ioredis-cluster","options":{"startupNodes":[{"host":"h","port":7000}],"redisOptions":{"username":"u"}}}}"#).unwrap();
        assert!(matches!(spec.topology, Topology::Cluster(_)));
        let spec = parse(r#"{"client":{"flavor":"ioredis","options":{"sentinels":[{"host":"h","port":26379}],"name":"m","sentinelPassword":"sp"}}}"#).unwrap();
        assert!(matches!(spec.topology, Topology::Sentinel(_)));
    }

    #[test]
    fn client_key_prefixes_become_the_namespace() {
        let spec = parse(r#"{"client":{"flavor":"ioredis","options":{"host":"h","port":7000,"keyPrefix":"app:"}}}"#).unwrap();
        assert_eq!(spec.namespace, "app:");
        let spec = parse(r#"{"url":"redis://other:1","client":{"flavor":"node-redis-v3","options":{"host":"h","prefix":"v3:"}}}"#).unwrap();
        assert_eq!(spec.namespace, "v3:");
        assert_eq!(parse("{}").unwrap().namespace, "");
        // node-redis 6.1 and its cluster, and an ioredis Cluster's own or per-node keyPrefix.
        for (json, want) in [
            (
                r#"{"client":{"flavor":"node-redis","options":{"url":"redis://h:1","keyPrefix":"np:"}}}"#,
                "np:",
            ),
            (
                r#"{"client":{"flavor":"node-redis-cluster","options":{"rootNodes":[{"url":"redis://h:1"}],"defaults":{},"keyPrefix":"nc:"}}}"#,
                "nc:",
            ),
            (
                r#"{"client":{"flavor":"ioredis-cluster","options":{"startupNodes":[{"host":"h","port":1}],"redisOptions":{},"keyPrefix":"ic:"}}}"#,
                "ic:",
            ),
            (
                r#"{"client":{"flavor":"ioredis-cluster","options":{"startupNodes":[{"host":"h","port":1}],"redisOptions":{"keyPrefix":"in:"}}}}"#,
                "in:",
            ),
        ] {
            assert_eq!(parse(json).unwrap().namespace, want, "{json}");
        }
    }

    #[test]
    fn node_redis_v3_and_bare_client_options() {
        let e = standalone(
            r#"{"client":{"flavor":"options","options":{"host":"cache","port":"7001","auth_pass":"pw","db":4}}}"#,
        );
        assert_eq!(e.info.addr().to_string(), "cache:7001");
        assert_eq!(e.info.redis_settings().password(), Some("pw"));
        assert_eq!(e.info.redis_settings().db(), 4);
        let e = standalone(
            r#"{"client":{"flavor":"options","options":{"socket":{"host":"s","port":7002},"database":1}}}"#,
        );
        assert_eq!(e.info.addr().to_string(), "s:7002");
        assert_eq!(e.info.redis_settings().db(), 1);
    }

    #[test]
    fn unreadable_servers_are_refused() {
        for json in [
            r#"{"client":{"flavor":"options","options":{"hostname":"x"}}}"#,
            r#"{"client":{"flavor":"options","options":{"host":1}}}"#,
            r#"{"client":{"flavor":"ioredis","options":{"port":70000}}}"#,
            r#"{"client":{"flavor":"node-redis","options":{"socket":{"port":"x"}}}}"#,
            r#"{"client":{"flavor":"options","options":"redis://x"}}"#,
            r#"{"otherKeys":["address"]}"#,
        ] {
            let err = parse(json).expect_err(json);
            assert_eq!(err.kind, crate::error::ErrorKind::BadArgument, "{json}");
        }
        // Other option names beside a named server, or with none, are fine.
        assert!(parse(r#"{"otherKeys":["prefix","ttl","serializer"]}"#).is_ok());
        assert!(parse(r#"{"url":"redis://h:1","otherKeys":["address"]}"#).is_ok());
    }

    #[test]
    fn redaction_hides_password() {
        assert_eq!(redact("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
