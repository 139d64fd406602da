//! Dialing, off the JS thread: where a connection goes (one server, a unix socket, or the
//! primary the sentinels name), the TCP connect, the TLS handshake, `AUTH`, `SELECT`, the
//! role check after a failover, the server's version (`INFO server`), `HELLO 3` and
//! `CLIENT TRACKING` for the near cache, and a cluster's slot map (`CLUSTER SLOTS`).
//! Everything here blocks and runs on the runtime's threads; the JS thread only takes the
//! finished connection.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use redis::ConnectionAddr;

use super::resp;
use super::tls::{Socket, TlsTarget, Wire};
use crate::config::{ConnectionSpec, TlsSettings, Topology};
use crate::error::StoreError;

/// A server found by address, or the primary the sentinels name.
#[derive(Clone, Debug)]
pub(super) enum Place {
    Fixed {
        host: String,
        port: u16,
    },
    /// A unix socket.
    #[cfg(unix)]
    Unix(std::path::PathBuf),
    /// Asked anew on every connect, so a reconnect after a failover finds the new primary.
    Sentinel {
        sentinels: Vec<Sentinel>,
        name: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Sentinel {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

/// Where and how to connect: one server or the primary behind Sentinel, over plain TCP or
/// TLS.
#[derive(Clone, Debug)]
pub struct Target {
    pub(super) place: Place,
    tls: Option<TlsSettings>,
    /// The TLS configuration for a fixed server, built once so that reconnects resume the
    /// TLS session.
    tls_fixed: Option<TlsTarget>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
    /// Ask for RESP3 and `CLIENT TRACKING` (the near cache is on).
    pub(super) tracking: bool,
}

impl Target {
    /// One node of a cluster, with the credentials and TLS every node shares.
    pub fn node(
        host: &str,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        tls: Option<TlsSettings>,
        connect_timeout: Duration,
    ) -> Option<Target> {
        let tls_fixed = match &tls {
            Some(settings) => Some(TlsTarget::new(settings, host).ok()?),
            None => None,
        };
        Some(Target {
            place: Place::Fixed {
                host: host.to_string(),
                port,
            },
            tls,
            tls_fixed,
            username,
            password,
            db: 0,
            connect_timeout,
            tracking: false,
        })
    }

    pub fn from_spec(spec: &ConnectionSpec) -> Result<Target, StoreError> {
        let tcp = |info: &redis::ConnectionInfo| match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Ok((host.clone(), *port))
            }
            other => Err(StoreError::bad_argument(format!(
                "{other} is not a TCP address (a sentinel is reached over TCP)"
            ))),
        };
        let (place, r, tls) = match &spec.topology {
            #[cfg(unix)]
            Topology::Standalone(endpoint)
                if matches!(endpoint.info.addr(), ConnectionAddr::Unix(_)) =>
            {
                let ConnectionAddr::Unix(path) = endpoint.info.addr() else {
                    unreachable!("matched above");
                };
                if endpoint.tls.is_some() {
                    return Err(StoreError::bad_argument(
                        "TLS over a unix socket is not supported: give host and port for TLS",
                    ));
                }
                (
                    Place::Unix(path.clone()),
                    endpoint.info.redis_settings().clone(),
                    None,
                )
            }
            Topology::Standalone(endpoint) => {
                let (host, port) = tcp(&endpoint.info)?;
                (
                    Place::Fixed { host, port },
                    endpoint.info.redis_settings().clone(),
                    endpoint.tls.clone(),
                )
            }
            Topology::Sentinel(s) => {
                let sentinels = s
                    .sentinels
                    .iter()
                    .map(|info| {
                        let (host, port) = tcp(info)?;
                        let r = info.redis_settings();
                        Ok(Sentinel {
                            host,
                            port,
                            username: r.username().map(str::to_string),
                            password: r.password().map(str::to_string),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                (
                    Place::Sentinel {
                        sentinels,
                        name: s.name.clone(),
                    },
                    s.node.clone(),
                    s.tls.clone(),
                )
            }
            Topology::Memory | Topology::Cluster(_) => {
                return Err(StoreError::bad_argument(
                    "internal error: no single connection for this topology",
                ))
            }
        };
        let tls_fixed = match (&place, &tls) {
            (Place::Fixed { host, .. }, Some(settings)) => Some(
                TlsTarget::new(settings, host)
                    .map_err(|e| StoreError::bad_argument(format!("tls: {e}")))?,
            ),
            // Checked now, though used once the sentinels name the primary.
            (_, Some(settings)) => {
                TlsTarget::new(settings, "localhost")
                    .map_err(|e| StoreError::bad_argument(format!("tls: {e}")))?;
                None
            }
            _ => None,
        };
        Ok(Target {
            place,
            tls,
            tls_fixed,
            username: r.username().map(str::to_string),
            password: r.password().map(str::to_string),
            db: r.db(),
            connect_timeout: spec.connect_timeout,
            tracking: false,
        })
    }

    /// A blocking connection with the handshake's timeouts set.
    fn dial(&self, host: &str, port: u16) -> Result<(Socket, std::net::SocketAddr), String> {
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let mut last = format!("no address for {host}");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    let io = |e: std::io::Error| format!("handshake with {addr}: {e}");
                    stream.set_nodelay(true).map_err(io)?;
                    let socket = Socket::Tcp(stream);
                    socket.set_timeouts(self.connect_timeout).map_err(io)?;
                    return Ok((socket, addr));
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// The primary's address, as the first sentinel that answers names it. With no `name`, the
    /// sentinels must monitor exactly one primary.
    fn ask_sentinels(
        &self,
        sentinels: &[Sentinel],
        name: Option<&str>,
    ) -> Result<(String, u16), String> {
        let mut last = String::from("no sentinel answered");
        for s in sentinels {
            let asked = self.dial(&s.host, s.port).and_then(|(mut stream, addr)| {
                let io = |e: std::io::Error| format!("sentinel {addr}: {e}");
                if let Some(password) = &s.password {
                    let mut args: Vec<&[u8]> = vec![b"AUTH"];
                    if let Some(user) = &s.username {
                        args.push(user.as_bytes());
                    }
                    args.push(password.as_bytes());
                    resp::roundtrip(&mut stream, &args)
                        .map_err(io)?
                        .map_err(|e| format!("sentinel {addr} AUTH failed: {e}"))?;
                }
                let Some(name) = name else {
                    let masters = resp::query_tree(&mut stream, &[b"SENTINEL", b"MASTERS"])
                        .map_err(io)?
                        .map_err(|e| format!("sentinel {addr}: {e}"))?;
                    return only_primary(&masters).map_err(|e| format!("sentinel {addr}: {e}"));
                };
                let reply = resp::query(
                    &mut stream,
                    &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name.as_bytes()],
                )
                .map_err(io)?
                .map_err(|e| format!("sentinel {addr}: {e}"))?;
                match reply.as_slice() {
                    [host, port] => port
                        .parse()
                        .map(|port| (host.clone(), port))
                        .map_err(|_| format!("sentinel {addr} named port {port:?}")),
                    _ => Err(format!("sentinel {addr} knows no primary named {name:?}")),
                }
            });
            match asked {
                Ok(found) => return Ok(found),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Blocking connect and handshake, ready for the JS thread's poll; runs off the JS thread.
    /// Reads the server's version (`INFO server`), for the error of a call that needs a newer
    /// one. With `tracking`, also switches to RESP3 and turns on `CLIENT TRACKING`.
    pub fn open(&self) -> Result<Dialed, String> {
        let mut wire = self.open_blocking()?;
        let mut stream = wire.blocking();
        // Before `HELLO 3`: in RESP3 the reply is a verbatim string. A server that refuses
        // `INFO` (an ACL user without it) is simply not named.
        let server = match resp::query_tree(&mut stream, &[b"INFO", b"server"])
            .map_err(|e| format!("INFO: {e}"))?
        {
            Ok(resp::Tree::Text(info)) => server_of(&info),
            _ => None,
        };
        let tracking = self.tracking && {
            let hello = resp::query_tree(&mut stream, &[b"HELLO", b"3"])
                .map_err(|e| format!("HELLO: {e}"))?;
            hello.is_ok()
                && resp::roundtrip(&mut stream, &[b"CLIENT", b"TRACKING", b"ON", b"NOLOOP"])
                    .map_err(|e| format!("CLIENT TRACKING: {e}"))?
                    .is_ok()
        };
        wire.socket()
            .set_nonblocking(true)
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(Dialed {
            wire,
            tracking,
            server,
        })
    }

    /// The slot map as this node sees it (`CLUSTER SLOTS`): primaries only.
    pub fn cluster_slots(&self) -> Result<Vec<SlotRange>, String> {
        let Place::Fixed { host: asked, .. } = &self.place else {
            return Err("not a cluster node".into());
        };
        let mut wire = self.open_blocking()?;
        let tree = resp::query_tree(&mut wire.blocking(), &[b"CLUSTER", b"SLOTS"])
            .map_err(|e| format!("CLUSTER SLOTS: {e}"))??;
        let resp::Tree::List(ranges) = tree else {
            return Err("CLUSTER SLOTS: unexpected reply".into());
        };
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let resp::Tree::List(items) = range else {
                continue;
            };
            if let [resp::Tree::Int(start), resp::Tree::Int(end), resp::Tree::List(primary), ..] =
                items.as_slice()
            {
                if let [resp::Tree::Text(host), resp::Tree::Int(port), ..] = primary.as_slice() {
                    // An empty host means the node that answered.
                    let host = if host.is_empty() || host == "?" {
                        asked.clone()
                    } else {
                        host.clone()
                    };
                    out.push(SlotRange {
                        start: *start as u16,
                        end: *end as u16,
                        host,
                        port: *port as u16,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A blocking unix-socket connection with the handshake's timeouts set.
    #[cfg(unix)]
    fn dial_unix(&self, path: &std::path::Path) -> Result<Socket, String> {
        let io = |e: std::io::Error| format!("cannot connect to {}: {e}", path.display());
        let socket = Socket::Unix(std::os::unix::net::UnixStream::connect(path).map_err(io)?);
        socket.set_timeouts(self.connect_timeout).map_err(io)?;
        Ok(socket)
    }

    fn open_blocking(&self) -> Result<Wire, String> {
        let (host, port, from_sentinel) = match &self.place {
            Place::Fixed { host, port } => (host.clone(), *port, false),
            #[cfg(unix)]
            Place::Unix(path) => {
                let wire = Wire::Plain(self.dial_unix(path)?);
                return self.log_in(wire, &path.display().to_string(), false);
            }
            Place::Sentinel { sentinels, name } => {
                let (host, port) = self.ask_sentinels(sentinels, name.as_deref())?;
                (host, port, true)
            }
        };
        let (mut tcp, addr) = self.dial(&host, port)?;
        let wire = match (&self.tls_fixed, &self.tls) {
            (Some(t), _) => Wire::Tls(Box::new(t.handshake(&mut tcp)?), tcp),
            (None, Some(settings)) => {
                let t = TlsTarget::new(settings, &host)?;
                Wire::Tls(Box::new(t.handshake(&mut tcp)?), tcp)
            }
            (None, None) => Wire::Plain(tcp),
        };
        self.log_in(wire, &addr.to_string(), from_sentinel)
    }

    /// `AUTH`, `SELECT` and, for a primary the sentinels named, the `ROLE` check.
    fn log_in(&self, mut wire: Wire, addr: &str, from_sentinel: bool) -> Result<Wire, String> {
        let io = |e: std::io::Error| format!("handshake with {addr}: {e}");
        let mut stream = wire.blocking();
        if let Some(password) = &self.password {
            let reply = match &self.username {
                Some(user) => resp::roundtrip(
                    &mut stream,
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                ),
                None => resp::roundtrip(&mut stream, &[b"AUTH", password.as_bytes()]),
            };
            reply
                .map_err(io)?
                .map_err(|e| format!("AUTH failed: {e}"))?;
        }
        if self.db != 0 {
            resp::roundtrip(&mut stream, &[b"SELECT", resp::int_arg(self.db).as_bytes()])
                .map_err(io)?
                .map_err(|e| format!("SELECT failed: {e}"))?;
        }
        if from_sentinel {
            // Right after a failover a sentinel can still name the demoted primary.
            let role = resp::query(&mut stream, &[b"ROLE"])
                .map_err(io)?
                .map_err(|e| format!("ROLE failed: {e}"))?;
            if role.first().map(String::as_str) != Some("master") {
                return Err(format!("{addr} is not the primary yet"));
            }
        }
        Ok(wire)
    }
}

/// A connection, logged in and ready.
pub struct Dialed {
    pub wire: Wire,
    /// RESP3 and `CLIENT TRACKING` are on (asked for with the near cache; a server before
    /// Redis 6 has neither, and an ACL user may lack them).
    pub tracking: bool,
    /// The server's name and version (`Redis 6.0.16`, `Valkey 9.0.1`), when it told them.
    pub server: Option<String>,
}

/// The server's name and version from its `INFO server` text: Valkey names itself beside the
/// Redis version it stands for.
fn server_of(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match (field("valkey_version"), field("redis_version")) {
        (Some(v), _) => Some(format!("Valkey {v}")),
        (None, Some(v)) => Some(format!("Redis {v}")),
        (None, None) => None,
    }
}

/// Slots `start..=end` served by the primary at `host:port`.
#[derive(Clone, Debug)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub host: String,
    pub port: u16,
}

/// The address of the one primary in a `SENTINEL MASTERS` reply (each entry a flat list of
/// field names and values).
fn only_primary(masters: &crate::command::Tree) -> Result<(String, u16), String> {
    use crate::command::Tree;
    let Tree::List(entries) = masters else {
        return Err("SENTINEL MASTERS gave no list".into());
    };
    let field = |entry: &Tree, want: &str| -> Option<String> {
        let Tree::List(kv) = entry else { return None };
        kv.chunks(2).find_map(|pair| match pair {
            [Tree::Text(k), Tree::Text(v)] if k == want => Some(v.clone()),
            _ => None,
        })
    };
    match entries.as_slice() {
        [one] => {
            let host = field(one, "ip").ok_or("SENTINEL MASTERS gave no ip")?;
            let port = field(one, "port")
                .and_then(|p| p.parse().ok())
                .ok_or("SENTINEL MASTERS gave no port")?;
            Ok((host, port))
        }
        [] => Err("the sentinels monitor no primary".into()),
        many => {
            let names: Vec<String> = many.iter().filter_map(|e| field(e, "name")).collect();
            Err(format!(
                "the sentinels monitor {} primaries ({}): pass sentinel: {{ name }} to say which",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_of;

    #[test]
    fn names_the_server_from_info() {
        let redis = "# Server\r\nredis_version:6.0.16\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(server_of(redis).as_deref(), Some("Redis 6.0.16"));
        let valkey =
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\n";
        assert_eq!(server_of(valkey).as_deref(), Some("Valkey 9.1.2"));
        assert_eq!(server_of("# Server\r\nprocess_id:1\r\n"), None);
    }
}
