//! The hot path for a plain-TCP standalone server: one connection owned by the JS thread,
//! polled by Node's own libuv loop. Simple calls (get, set, touch, destroy, exists, small mget)
//! are encoded straight into a journal and written in the same native call; replies are
//! decoded from its read buffer into JS values and handed to JS in one call per read.
//!
//! Riding through: the journal keeps every unanswered command until its reply arrives, so when
//! the connection drops (restart, `CLIENT KILL`) a new one starts at once and sends them again;
//! calls made meanwhile wait in the journal. Every command sent here is idempotent. A call
//! fails only when its own `commandTimeout` runs out.
//!
//! Why: with the I/O-thread path every call crossed threads twice (JS to tokio, tokio to JS).
//! Measured on a 2-core machine, those hand-offs cost more CPU per operation than the Redis
//! work itself, and end to end under Express the extra thread competed with Node for the two
//! cores. Connection setup (address resolution, the sentinels' answer, connect, the TLS
//! handshake, AUTH, SELECT) still happens off the JS thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::net::{TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use napi::sys;
use redis::ConnectionAddr;

use super::cache::NearCache;
use super::resp::Tree;
use super::resp::{self, Frame};
use super::tls::{Socket, TlsTarget, Wire};
use super::uv;
use super::{EngineReport, Reporter};
use crate::backend::{Command, Reply};
use crate::config::{ConnectionSpec, TlsSettings, Topology};
use crate::error::{ErrorKind, StoreError};
use crate::seal::{Opener, Seal};
use crate::stats::LinkCounters;
use crate::walk::{Step, Walk};
use redis::cluster_routing::Slot;

const READ_CHUNK: usize = 64 * 1024;
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A server found by address, or the primary the sentinels name.
#[derive(Clone, Debug)]
enum Place {
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
        name: String,
    },
}

#[derive(Clone, Debug)]
struct Sentinel {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

/// Where and how to connect: one server or the primary behind Sentinel, over plain TCP or
/// TLS.
#[derive(Clone, Debug)]
pub struct Target {
    place: Place,
    tls: Option<TlsSettings>,
    /// The TLS configuration for a fixed server, built once so that reconnects resume the
    /// TLS session.
    tls_fixed: Option<TlsTarget>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
    /// Ask for RESP3 and `CLIENT TRACKING` (the near cache is on).
    tracking: bool,
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

    /// The primary's address, as the first sentinel that answers names it.
    fn ask_sentinels(&self, sentinels: &[Sentinel], name: &str) -> Result<(String, u16), String> {
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
    /// With `tracking`, also switches to RESP3 and turns on `CLIENT TRACKING`; the flag says
    /// whether the server could (Redis before 6 cannot).
    fn open(&self) -> Result<(Wire, bool), String> {
        let mut wire = self.open_blocking()?;
        let tracking = self.tracking && {
            let mut stream = wire.blocking();
            let hello = resp::query_tree(&mut stream, &[b"HELLO", b"3"])
                .map_err(|e| format!("HELLO: {e}"))?;
            hello.is_ok()
                && resp::roundtrip(&mut stream, &[b"CLIENT", b"TRACKING", b"ON"])
                    .map_err(|e| format!("CLIENT TRACKING: {e}"))?
                    .is_ok()
        };
        wire.socket()
            .set_nonblocking(true)
            .map_err(|e| format!("handshake: {e}"))?;
        Ok((wire, tracking))
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
                let (host, port) = self.ask_sentinels(sentinels, name)?;
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

/// Slots `start..=end` served by the primary at `host:port`.
#[derive(Clone, Debug)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub host: String,
    pub port: u16,
}

/// What the connector thread reports back to the JS thread.
pub struct Opened {
    /// Which connection of the engine (a cluster has one per node; a single server, one).
    pub(crate) node: usize,
    generation: u64,
    /// The connection, and whether tracking is on for it.
    result: Result<(Wire, bool), String>,
}

/// Hears, on the JS thread, that the connection was established (`None`) or dropped.
pub type LinkHook = Rc<dyn Fn(Option<&str>)>;

/// A call this connection's server sent elsewhere (`MOVED`/`ASK`), handed to the cluster
/// router with its encoded command.
pub struct Redirect {
    /// One call; or a whole transaction, `MULTI` to `EXEC`, one entry per command.
    pub calls: Vec<Waiting>,
    pub to: (String, u16),
    pub ask: bool,
}

/// What a cluster node tells its router: calls redirected, or its connection lost (so the
/// slot map may have changed).
pub enum NodeEvent {
    Redirected(Vec<Redirect>),
    /// Walks' next steps, for the router to send where their keys live.
    Steps(Vec<(u32, Step)>),
    Lost,
}

pub type NodeHook = Rc<dyn Fn(NodeEvent)>;

/// A call taken out of a connection, to be sent to another.
pub struct Waiting {
    pub id: u32,
    pub deadline: Instant,
    pub bytes: Vec<u8>,
    pub slot: Option<Slot>,
    /// What its reply is opened with, under encryption.
    pub open: Option<Opener>,
    /// A command inside a transaction, or its `EXEC` (see `Pending`).
    lead: bool,
    exec: bool,
    /// A walk's step: the walk goes with it.
    pub walk: Option<Walk>,
}

impl Waiting {
    /// Whether this is a step of a walk that must run on the node it was on (a `SCAN`
    /// page, whose cursor means nothing elsewhere).
    pub fn pinned(&self) -> bool {
        self.walk.is_some() && self.slot.is_none()
    }
}

struct Conn {
    wire: Wire,
    poll: *mut uv::Handle,
    /// How much of the journal this connection has been sent.
    written: usize,
    inbuf: Vec<u8>,
    /// Where reads land before they join `inbuf`; allocated once, so no read clears 64 KiB.
    scratch: Box<[u8]>,
    want_write: bool,
    /// When this connection last delivered bytes (or was opened): a connection silent for a
    /// whole `commandTimeout` while calls wait is replaced.
    last_read: Instant,
}

/// A call waiting for its reply.
struct Pending {
    id: u32,
    /// The cluster slot of its keys, to route it again after the slot map changes.
    slot: Option<Slot>,
    deadline: Instant,
    /// Where its command ends in the journal; it starts where the previous one ends.
    end: usize,
    /// Its caller was already answered (it timed out); the reply is read and dropped.
    abandoned: bool,
    /// What its reply tells the near cache.
    cache: Fill,
    /// What its reply is opened with, under encryption.
    open: Option<Opener>,
    /// A leading command of a transaction (`push_atomic`): its reply is not the call's, but
    /// an error in it is.
    lead: bool,
    /// The `EXEC` of a transaction: the call's reply is `null`, or the first error in it.
    exec: bool,
    /// A keyspace walk's step: its reply gives the walk's next command or the call's reply.
    walk: Option<Walk>,
    /// For a SCAN page past the first: the same SCAN from cursor 0, sent in its place after
    /// a reconnect.
    rescan: Option<Box<[u8]>>,
}

impl Pending {
    /// This call as one to send elsewhere, with its encoded command.
    fn into_waiting(self, bytes: &[u8]) -> Waiting {
        Waiting {
            id: self.id,
            deadline: self.deadline,
            bytes: bytes.to_vec(),
            slot: self.slot,
            open: self.open,
            lead: self.lead,
            exec: self.exec,
            walk: self.walk,
        }
    }
}

/// How a reply feeds the near cache.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fill {
    None,
    /// A `GET` of this key: its value.
    Value(String),
    /// A `PTTL` of this key, sent beside the `GET`: when the value expires.
    Ttl(String),
    /// A write of these keys: answered, they may be cached again.
    Wrote(Vec<String>),
}

struct State {
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
    target: Target,
    command_timeout: Duration,
    max_pending: usize,
    conn: Option<Conn>,
    /// The RESP bytes of every call still waiting, from `journal_head` on, in call order. They
    /// outlive a connection: after a reconnect, whatever was not answered is sent again.
    journal: Vec<u8>,
    journal_head: usize,
    pending: VecDeque<Pending>,
    timer: *mut uv::Handle,
    timer_held: bool,
    connecting: bool,
    generation: u64,
    retry_at: Instant,
    backoff: Duration,
    /// A call has failed for want of a connection, and the store was told so.
    gave_up: bool,
    /// Why the last connection ended or the last attempt failed, for the calls that give up.
    last_loss: String,
    closing: bool,
    closed: bool,
    /// Connects, reconnects and failovers, for `stats()`.
    counters: std::sync::Arc<LinkCounters>,
    /// Opens what reads return, under encryption.
    seal: std::sync::Arc<Seal>,
    /// The error a leading command of call `.0` got, for its last command's reply.
    lead_error: Option<(u32, String)>,
    /// `counters.switches_announced` as last followed.
    switches_seen: u64,
    /// The server the last connection reached, to tell a failover from a reconnect.
    peer: Option<std::net::SocketAddr>,
    /// Whether a connection was ever established, to tell a reconnect from the first.
    connected_before: bool,
    /// False once JS may no longer be called (after close, or inside a finalizer).
    callback_live: bool,
    report: Option<Reporter>,
    /// Told when the connection comes up, and when calls start failing for want of one.
    on_link: Option<LinkHook>,
    /// Sockets of torn-down connections, closed once libuv has let go of their poll handle.
    graveyard: VecDeque<Wire>,
    /// This connection's index in its engine.
    node: usize,
    /// The near cache this connection fills and invalidates (shared by a cluster's nodes).
    cache: Option<Rc<RefCell<NearCache>>>,
    /// Told of redirects and lost connections when this connection is a cluster node.
    on_node: Option<NodeHook>,
}

/// The JS-thread connection. Every method must be called on the JS thread.
pub struct Direct {
    state: Rc<RefCell<State>>,
}

type Shared = RefCell<State>;

fn uvs() -> &'static uv::Uv {
    uv::get().expect("direct connections exist only when libuv was found")
}

impl Direct {
    /// `None` when the spec does not qualify or libuv is not reachable.
    ///
    /// # Safety
    /// `env` and `callback` must be the JS thread's env and a live JS function.
    pub unsafe fn new(
        env: sys::napi_env,
        callback: sys::napi_value,
        spec: &ConnectionSpec,
    ) -> Result<Direct, StoreError> {
        let target = Target::from_spec(spec)?;
        unsafe { Direct::with_target(env, callback, target, spec, 0) }.ok_or_else(|| {
            StoreError::new(
                ErrorKind::NotConnected,
                "the connection engine cannot run on this host (no event loop to poll on)",
            )
        })
    }

    /// A connection to `target`, the `node`-th of its engine.
    ///
    /// # Safety
    /// As `new`.
    pub unsafe fn with_target(
        env: sys::napi_env,
        callback: sys::napi_value,
        target: Target,
        spec: &ConnectionSpec,
        node: usize,
    ) -> Option<Direct> {
        let uv = uv::get()?;
        let mut target = target;
        target.tracking = spec.cache.is_some();
        unsafe {
            let loop_ = uv::event_loop(env)?;
            let mut callback_ref = std::ptr::null_mut();
            if sys::napi_create_reference(env, callback, 1, &mut callback_ref)
                != sys::Status::napi_ok
            {
                return None;
            }
            let mut name = std::ptr::null_mut();
            sys::napi_create_string_utf8(env, c"ferrisession".as_ptr(), 12, &mut name);
            let mut async_context = std::ptr::null_mut();
            sys::napi_async_init(env, std::ptr::null_mut(), name, &mut async_context);

            let timer = uv::alloc_handle(uv.timer_size);
            (uv.timer_init)(loop_, timer);
            (uv.unref)(timer);

            let state = Rc::new(RefCell::new(State {
                env,
                callback: callback_ref,
                async_context,
                target,
                command_timeout: spec.command_timeout,
                max_pending: spec.max_pending,
                conn: None,
                journal: Vec::with_capacity(16 * 1024),
                journal_head: 0,
                pending: VecDeque::new(),
                timer,
                timer_held: false,
                connecting: false,
                generation: 0,
                retry_at: Instant::now(),
                backoff: RETRY_MIN,
                gave_up: false,
                last_loss: String::new(),
                closing: false,
                closed: false,
                counters: spec.counters.clone(),
                seal: spec.seal.clone(),
                lead_error: None,
                switches_seen: 0,
                peer: None,
                connected_before: false,
                callback_live: true,
                report: None,
                on_link: None,
                graveyard: VecDeque::new(),
                node,
                on_node: None,
                cache: None,
            }));
            uv::set_data(timer, Rc::into_raw(state.clone()) as *mut c_void);
            Some(Direct { state })
        }
    }

    /// Starts the first connection attempt; `report` carries its outcome back, and `on_link`
    /// hears when the connection comes up or calls start failing without one.
    pub fn start(&self, report: Reporter, on_link: LinkHook) {
        {
            let mut s = self.state.borrow_mut();
            s.report = Some(report);
            s.on_link = Some(on_link);
        }
        connect(&self.state);
    }

    /// Whether calls can go through this connection: until it is closed they always can. While
    /// it reconnects they wait (within their own `commandTimeout`) and are sent once it is up.
    pub fn ready(&self) -> bool {
        let s = self.state.borrow();
        !(s.closed || s.closing)
    }

    /// Queues one command; `Err` gives it back when the store cannot take it.
    /// Queues one command; `Ok(Some(reply))` answers it at once from the near cache, `Err`
    /// gives it back when the store cannot take it.
    pub fn push(
        &self,
        id: u32,
        command: &Command,
    ) -> Result<Option<Reply>, crate::error::StoreError> {
        self.push_to_slot(id, command, None)
    }

    /// Queues one call made of several commands, sent as one transaction (`MULTI` … `EXEC`)
    /// on this connection: all of them apply, together, or (the connection lost before `EXEC`)
    /// none, and the whole transaction goes again on the next connection. Its reply is `null`,
    /// or the first error a command got.
    pub fn push_atomic(
        &self,
        id: u32,
        commands: &[Command],
    ) -> Result<(), crate::error::StoreError> {
        let mut s = self.state.borrow_mut();
        s.room_for(commands.len() + 2)?;
        queue_transaction(s.queue(), id, commands, None, None);
        Ok(())
    }

    /// Queues a keyspace walk (see `walk`): its first command now, each next one as the
    /// previous reply arrives, all on this connection.
    pub fn push_walk(
        &self,
        id: u32,
        command: &Command,
        walk: Walk,
    ) -> Result<(), crate::error::StoreError> {
        self.push_step(id, command, walk, None)
    }

    /// `push_walk` for a step whose keys hash to cluster slot `slot` (a cluster's walks run
    /// step by step wherever each step's keys live).
    pub fn push_step(
        &self,
        id: u32,
        command: &Command,
        walk: Walk,
        slot: Option<Slot>,
    ) -> Result<(), crate::error::StoreError> {
        let mut s = self.state.borrow_mut();
        s.room_for(1)?;
        queue_step(s.queue(), id, command, walk, slot);
        Ok(())
    }

    /// A transaction of one cluster slot, as a walk's step: `EXEC`'s reply goes on to `walk`.
    pub fn push_transaction(
        &self,
        id: u32,
        commands: &[Command],
        walk: Walk,
        slot: Slot,
    ) -> Result<(), crate::error::StoreError> {
        let mut s = self.state.borrow_mut();
        s.room_for(commands.len() + 2)?;
        queue_transaction(s.queue(), id, commands, Some(walk), Some(slot));
        Ok(())
    }

    /// Hands call `id` its reply (one the cluster router settled away from any connection).
    pub fn deliver(&self, id: u32, reply: Reply) {
        let env = self.state.borrow().env;
        unsafe {
            let mut scope = std::ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            let mut array = std::ptr::null_mut();
            sys::napi_create_array_with_length(env, 2, &mut array);
            let value = crate::reply_to_js(env, reply).unwrap_or_else(|_| null_js(env));
            set_reply(env, array, 0, id, value);
            call_js(&self.state, array);
            sys::napi_close_handle_scope(env, scope);
        }
    }

    /// `push`, remembering the cluster slot the command's keys hash to.
    pub fn push_to_slot(
        &self,
        id: u32,
        command: &Command,
        slot: Option<Slot>,
    ) -> Result<Option<Reply>, crate::error::StoreError> {
        let mut s = self.state.borrow_mut();
        let mut fill = Fill::None;
        if let Some(cache) = &s.cache {
            let mut cache = cache.borrow_mut();
            match command {
                Command::Get(key) => match cache.get(key) {
                    Some(value) => {
                        return Ok(Some(match s.seal.open(key, value) {
                            Ok(plain) => Reply::Text(plain),
                            Err(e) => Reply::Error(e),
                        }))
                    }
                    None => fill = Fill::Value(key.clone()),
                },
                // This process's own writes drop its entries until answered; Redis's
                // invalidations drop entries too.
                other => {
                    let keys: Vec<String> = other.keys().into_iter().map(str::to_string).collect();
                    keys.iter().for_each(|k| cache.writing(k));
                    fill = Fill::Wrote(keys);
                }
            }
        }
        s.room_for(1)?;
        let deadline = Instant::now() + s.command_timeout;
        resp::encode_command(&mut s.journal, command);
        let end = s.journal.len();
        let ttl_of = match &fill {
            Fill::Value(key) => Some(key.clone()),
            _ => None,
        };
        let open = s.seal.opener(command);
        s.pending.push_back(Pending {
            id,
            slot,
            deadline,
            end,
            abandoned: false,
            cache: fill,
            open,
            lead: false,
            exec: false,
            walk: None,
            rescan: None,
        });
        if let Some(key) = ttl_of {
            // The key's TTL, so the entry also expires locally; its reply goes only to the cache.
            resp::encode(&mut s.journal, &[b"PTTL", key.as_bytes()]);
            let end = s.journal.len();
            s.pending.push_back(Pending {
                id: 0,
                slot,
                deadline,
                end,
                abandoned: true,
                cache: Fill::Ttl(key),
                open: None,
                lead: false,
                exec: false,
                walk: None,
                rescan: None,
            });
        }
        Ok(None)
    }

    /// Queues a call another connection gave up (a redirect, or a slot that moved), keeping
    /// its deadline. With `asking`, an `ASKING` goes first, its reply dropped.
    pub fn push_waiting(&self, call: Waiting, asking: bool) {
        let mut s = self.state.borrow_mut();
        if asking {
            resp::encode(&mut s.journal, &[b"ASKING"]);
            let end = s.journal.len();
            s.pending.push_back(Pending {
                id: 0,
                slot: None,
                deadline: call.deadline,
                end,
                abandoned: true,
                cache: Fill::None,
                open: None,
                lead: false,
                exec: false,
                walk: None,
                rescan: None,
            });
        }
        s.journal.extend_from_slice(&call.bytes);
        let end = s.journal.len();
        s.pending.push_back(Pending {
            id: call.id,
            slot: call.slot,
            deadline: call.deadline,
            end,
            abandoned: false,
            cache: Fill::None,
            open: call.open,
            lead: call.lead,
            exec: call.exec,
            walk: call.walk,
            rescan: None,
        });
    }

    /// Takes every call still waiting out of a connection that is down, so the router can send
    /// them where their slots now live. A connected one keeps its calls (their replies are
    /// on the way, or a redirect will move them).
    pub fn take_waiting(&self) -> Vec<Waiting> {
        let mut s = self.state.borrow_mut();
        if s.conn.is_some() || s.pending.is_empty() {
            return Vec::new();
        }
        let mut start = s.journal_head;
        let mut out = Vec::new();
        let pending = std::mem::take(&mut s.pending);
        for p in pending {
            if !p.abandoned {
                let end = p.end;
                out.push(p.into_waiting(&s.journal[start..end]));
                start = end;
                continue;
            }
            start = p.end;
        }
        s.journal.clear();
        s.journal_head = 0;
        arm_timer(&mut s);
        out
    }

    /// Where this connection goes.
    pub fn target(&self) -> Target {
        self.state.borrow().target.clone()
    }

    /// The near cache's live value of `key`, if any.
    /// The near cache's live value of `key`, opened; `Err` when it does not open.
    pub fn cached(&self, key: &str) -> Option<Result<String, crate::error::StoreError>> {
        self.follow_switch();
        let s = self.state.borrow();
        let hit = s.cache.as_ref()?.borrow_mut().peek(key)?;
        Some(s.seal.open(key, hit))
    }

    /// The near cache's counters, when it is on.
    pub fn cache_stats(&self) -> Option<super::cache::CacheStats> {
        self.state
            .borrow()
            .cache
            .as_ref()
            .map(|c| c.borrow().stats())
    }

    /// Gives this connection the near cache to fill and invalidate.
    pub fn set_cache(&self, cache: Rc<RefCell<NearCache>>) {
        self.state.borrow_mut().cache = Some(cache);
    }

    /// Makes this connection a cluster node that tells its router of redirects and losses.
    pub fn set_node_hook(&self, hook: NodeHook) {
        self.state.borrow_mut().on_node = Some(hook);
    }

    /// Writes what `push` queued, or starts a connection for it. Replies arrive through the JS
    /// callback.
    pub fn flush(&self) {
        self.follow_switch();
        if self.state.borrow().pending.is_empty() {
            return;
        }
        if send_waiting(&self.state) && self.state.borrow().conn.is_none() {
            connect(&self.state);
        }
    }

    /// After the sentinels announced a new primary (`+switch-master`), the connection to the
    /// old one goes: calls in flight are sent again on a new connection, found anew, and the
    /// near cache is emptied. Checked before calls are sent and before the cache answers, and
    /// run as soon as the JS thread hears of the announcement.
    pub fn follow_switch(&self) {
        let switched = {
            let mut s = self.state.borrow_mut();
            let heard = s
                .counters
                .switches_announced
                .load(std::sync::atomic::Ordering::Relaxed);
            if heard == s.switches_seen {
                false
            } else {
                s.switches_seen = heard;
                s.conn.is_some() && matches!(s.target.place, Place::Sentinel { .. })
            }
        };
        if switched {
            lose_connection(&self.state, "the sentinels announced a new primary");
        }
    }

    /// Stops taking calls; the connection closes once calls in flight have settled.
    pub fn close(&self) {
        let idle = {
            let mut s = self.state.borrow_mut();
            s.closing = true;
            s.pending.is_empty()
        };
        if idle {
            shut_down(&self.state);
        }
    }

    /// Installs a finished connection attempt; called on the JS thread.
    pub fn opened(&self, opened: Opened) {
        install(&self.state, opened);
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // This can run in a GC finalizer, where JS must not be called: close without
        // notifying. Calls still in flight then have no one waiting on them.
        self.state.borrow_mut().callback_live = false;
        let conn = self.state.borrow_mut().conn.take();
        if let Some(conn) = conn {
            retire(&mut self.state.borrow_mut(), conn);
        }
        shut_down(&self.state);
    }
}

fn connect(state: &Rc<Shared>) {
    let (target, generation, report) = {
        let mut s = state.borrow_mut();
        if s.connecting || s.conn.is_some() || s.closed {
            return;
        }
        let Some(report) = s.report.clone() else {
            return;
        };
        s.connecting = true;
        s.generation += 1;
        (s.target.clone(), s.generation, report)
    };
    let node = state.borrow().node;
    crate::runtime::get().spawn_blocking(move || {
        let result = target.open();
        report(EngineReport::Opened(Opened {
            node,
            generation,
            result,
        }));
    });
}

/// Calls the link hook without holding the state borrowed, since it may reach JS.
fn tell_link(state: &Rc<Shared>, lost: Option<&str>) {
    let hook = state.borrow().on_link.clone();
    if let Some(tell) = hook {
        tell(lost);
    }
}

fn install(state: &Rc<Shared>, opened: Opened) {
    let installed = install_stream(state, opened);
    if installed {
        state.borrow_mut().gave_up = false;
        tell_link(state, None);
        // Whatever waited for this connection (or was in flight on the last one) goes now.
        send_waiting(state);
    } else {
        arm_timer(&mut state.borrow_mut());
        let failed = {
            let s = state.borrow();
            !s.connecting && s.conn.is_none() && !s.pending.is_empty()
        };
        if failed {
            tell_node(state, NodeEvent::Lost);
        }
    }
}

/// Puts a new connection in place; false when the attempt failed or is stale.
fn install_stream(state: &Rc<Shared>, opened: Opened) -> bool {
    let mut s = state.borrow_mut();
    if opened.generation != s.generation {
        return false;
    }
    s.connecting = false;
    let (wire, tracking) = match opened.result {
        Ok(opened) if !s.closed => opened,
        Ok(_) => return false,
        Err(e) => {
            s.last_loss = e;
            s.retry_at = Instant::now() + s.backoff;
            s.backoff = (s.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
            return false;
        }
    };
    let uv = uvs();
    unsafe {
        let loop_ = uv::event_loop(s.env).unwrap_or(std::ptr::null_mut());
        let poll = uv::alloc_handle(uv.poll_size);
        #[cfg(unix)]
        let socket = wire.socket().raw_fd();
        #[cfg(windows)]
        let socket = wire.socket().raw_socket();
        if (uv.poll_init_socket)(loop_, poll, socket) != 0 {
            uv::free_handle(poll, uv.poll_size);
            s.retry_at = Instant::now() + s.backoff;
            return false;
        }
        uv::set_data(poll, Rc::into_raw(state.clone()) as *mut c_void);
        (uv.poll_start)(poll, uv::READABLE, on_poll);
        (uv.unref)(poll);
        // The first reconnect after a healthy connection drops is immediate.
        s.backoff = Duration::ZERO;
        // A new connection tracks nothing yet: whatever was cached may have changed unseen.
        if let Some(cache) = &s.cache {
            cache.borrow_mut().clear();
            if !tracking {
                warn_uncached();
                s.cache = None;
            }
        }
        if s.connected_before {
            LinkCounters::add(&s.counters.reconnects);
        }
        s.connected_before = true;
        LinkCounters::add(&s.counters.connects);
        let peer = wire.socket().peer_addr();
        if let (Some(before), Some(now)) = (s.peer, peer) {
            if now != before {
                LinkCounters::add(&s.counters.failovers);
            }
        }
        s.peer = peer.or(s.peer);
        let written = s.journal_head;
        s.conn = Some(Conn {
            wire,
            poll,
            written,
            inbuf: Vec::with_capacity(READ_CHUNK),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            want_write: false,
            last_read: Instant::now(),
        });
    }
    true
}

/// Writes the journal to the connection, if there is one, and sets the timer; false when the
/// write lost the connection.
fn send_waiting(state: &Rc<Shared>) -> bool {
    let failure = {
        let mut s = state.borrow_mut();
        let s = &mut *s;
        let result = match s.conn.as_mut() {
            Some(conn) => write_out(conn, &s.journal),
            None => Ok(()),
        };
        arm_timer(s);
        result.err()
    };
    match failure {
        Some(reason) => {
            lose_connection(state, &reason);
            false
        }
        None => true,
    }
}

/// Sends the journal from where this connection stands; polls for writability when the
/// socket takes less than all of it.
fn write_out(conn: &mut Conn, journal: &[u8]) -> Result<(), String> {
    while conn.written < journal.len() {
        match conn.wire.send(&journal[conn.written..])? {
            0 => break,
            n => conn.written += n,
        }
    }
    conn.wire.flush()?;
    let drained = conn.written == journal.len() && !conn.wire.wants_write();
    if drained == conn.want_write {
        conn.want_write = !drained;
        let events = if drained {
            uv::READABLE
        } else {
            uv::READABLE | uv::WRITABLE
        };
        unsafe { (uvs().poll_start)(conn.poll, events, on_poll) };
    }
    Ok(())
}

/// Sets the timer for the next thing due: the first deadline of a call still waiting, or the
/// next reconnect attempt while calls wait for a connection. The timer and the poll handle
/// keep the process alive exactly while calls wait.
fn arm_timer(s: &mut State) {
    let uv = uvs();
    let next_deadline = s.pending.iter().find(|p| !p.abandoned).map(|p| p.deadline);
    // Calls already answered (timed out) do not keep the process alive.
    let waiting = next_deadline.is_some();
    // After giving up (JS heard 'disconnect'), reconnecting goes on with no call waiting, so
    // 'connect' follows when the server is back; that timer alone keeps no process alive.
    let reconnect = ((waiting || s.gave_up) && s.conn.is_none() && !s.connecting && !s.closed)
        .then_some(s.retry_at);
    let due = match (next_deadline, reconnect) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    unsafe {
        if let Some(conn) = s.conn.as_ref() {
            if waiting {
                (uv.ref_)(conn.poll);
            } else {
                (uv.unref)(conn.poll);
            }
        }
        match due {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                (uv.timer_start)(s.timer, on_timer, wait.as_millis() as u64 + 1, 0);
            }
            None => {
                (uv.timer_stop)(s.timer);
            }
        }
        if waiting != s.timer_held {
            s.timer_held = waiting;
            if waiting {
                (uv.ref_)(s.timer);
            } else {
                (uv.unref)(s.timer);
            }
        }
    }
}

unsafe fn borrow_state(handle: *mut uv::Handle) -> std::mem::ManuallyDrop<Rc<Shared>> {
    std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(uv::data(handle) as *const Shared) })
}

/// Answers calls whose `commandTimeout` ran out, replaces a connection that stayed silent for
/// a whole timeout while calls waited, and starts a reconnect that is due.
unsafe extern "C" fn on_timer(handle: *mut uv::Handle) {
    let state = unsafe { borrow_state(handle) };
    let now = Instant::now();
    let (expired, connected, silent, limit, reconnect) = {
        let mut s = state.borrow_mut();
        let connected = s.conn.is_some();
        let mut expired = Vec::new();
        for p in s.pending.iter_mut() {
            if p.deadline > now {
                break;
            }
            if !p.abandoned {
                p.abandoned = true;
                if !p.lead {
                    expired.push(p.id);
                }
            }
        }
        let limit = s.command_timeout;
        let silent = s
            .conn
            .as_ref()
            .is_some_and(|c| !s.pending.is_empty() && now.duration_since(c.last_read) >= limit);
        let reconnect = s.conn.is_none()
            && !s.connecting
            && !s.closing
            && (!s.pending.is_empty() || s.gave_up)
            && now >= s.retry_at;
        (expired, connected, silent, limit, reconnect)
    };
    if !expired.is_empty() {
        let (kind, reason) = if connected {
            (
                ErrorKind::Timeout,
                format!("no reply from Redis within {} ms", limit.as_millis()),
            )
        } else {
            (
                ErrorKind::NotConnected,
                format!(
                    "Redis could not be reached within {} ms: {}",
                    limit.as_millis(),
                    state.borrow().last_loss
                ),
            )
        };
        reject(&state, &expired, kind, &reason);
        if !connected {
            let first = !std::mem::replace(&mut state.borrow_mut().gave_up, true);
            if first {
                tell_link(&state, Some(&reason));
            }
        }
    }
    if silent {
        lose_connection(&state, "no reply from Redis within the command timeout");
    } else if reconnect {
        connect(&state);
    }
    settle_if_closing(&state);
    let mut s = state.borrow_mut();
    if !s.closed {
        arm_timer(&mut s);
    }
}

unsafe extern "C" fn on_poll(handle: *mut uv::Handle, status: c_int, events: c_int) {
    let state = unsafe { borrow_state(handle) };
    // A poll handle of a connection already torn down can still fire once.
    if state
        .borrow()
        .conn
        .as_ref()
        .is_none_or(|c| c.poll != handle)
    {
        return;
    }
    if status < 0 {
        lose_connection(&state, &format!("socket error {status}"));
        return;
    }
    if events & uv::WRITABLE != 0 {
        let failure = {
            let mut s = state.borrow_mut();
            let s = &mut *s;
            s.conn.as_mut().and_then(|c| write_out(c, &s.journal).err())
        };
        if let Some(reason) = failure {
            lose_connection(&state, &reason);
            return;
        }
    }
    if events & uv::READABLE != 0 {
        read_and_deliver(&state);
    }
}

fn read_and_deliver(state: &Rc<Shared>) {
    let mut lost: Option<String> = None;
    // A walk queued its next step: the journal has more to send.
    let mut more = false;
    let mut redirects = Vec::new();
    let mut routed = Vec::new();
    let env;
    let mut scope = std::ptr::null_mut();
    let mut array = std::ptr::null_mut();
    let mut delivered = 0usize;
    {
        let mut s = state.borrow_mut();
        let s = &mut *s;
        env = s.env;
        let Some(conn) = s.conn.as_mut() else { return };
        let before = conn.inbuf.len();
        match conn.wire.receive(&mut conn.scratch, &mut conn.inbuf) {
            Ok(true) => lost = Some("the server closed the connection".into()),
            Ok(false) => {}
            Err(e) => lost = Some(e),
        }
        if conn.inbuf.len() > before {
            conn.last_read = Instant::now();
        }
        unsafe {
            sys::napi_open_handle_scope(env, &mut scope);
            sys::napi_create_array(env, &mut array);
        }
        let mut used = 0;
        let mut index = 0u32;
        while !s.pending.is_empty() || (s.cache.is_some() && used < conn.inbuf.len()) {
            match resp::decode(&conn.inbuf[used..]) {
                Ok(Some((Frame::Push(items), n))) => {
                    used += n;
                    if let Some(cache) = &s.cache {
                        invalidate(&mut cache.borrow_mut(), &items);
                    }
                }
                Ok(Some(_)) if s.pending.is_empty() => {
                    lost = Some("a reply came for no call".into());
                    break;
                }
                Ok(Some((Frame::Error(e), n)))
                    if s.on_node.is_some() && redirect_of(e).is_some() =>
                {
                    // Slot `slot` lives elsewhere now (MOVED) or for this call (ASK).
                    let (ask, to) = redirect_of(e).expect("checked");
                    used += n;
                    let start = s.journal_head;
                    let p = s.pending.pop_front().expect("checked non-empty");
                    let end = p.end;
                    s.journal_head = end;
                    if p.abandoned {
                        continue;
                    }
                    let mut calls = Vec::new();
                    if p.lead && !ask {
                        // A command of a transaction: its keys share one slot, so this is the
                        // first command after `MULTI`, and the server will abort the rest. The
                        // whole transaction goes to the slot's owner; the replies still due
                        // here are read and dropped.
                        let mut multi = Vec::new();
                        resp::encode(&mut multi, &[b"MULTI"]);
                        calls.push(Waiting {
                            id: p.id,
                            deadline: p.deadline,
                            bytes: multi,
                            slot: p.slot,
                            open: None,
                            lead: true,
                            exec: false,
                            walk: None,
                        });
                        let id = p.id;
                        calls.push(p.into_waiting(&s.journal[start..end]));
                        let mut from = end;
                        for q in s.pending.iter_mut().take_while(|q| q.id == id) {
                            let bytes = &s.journal[from..q.end];
                            from = q.end;
                            q.abandoned = true;
                            let last = !q.lead;
                            calls.push(Waiting {
                                id,
                                deadline: q.deadline,
                                bytes: bytes.to_vec(),
                                slot: q.slot,
                                open: None,
                                lead: q.lead,
                                exec: q.exec,
                                walk: q.walk.take(),
                            });
                            if last {
                                break;
                            }
                        }
                    } else {
                        calls.push(p.into_waiting(&s.journal[start..end]));
                    }
                    redirects.push(Redirect { calls, to, ask });
                }
                Ok(Some((Frame::Error(e), _))) if is_moving(e) => {
                    // A demoted primary (READONLY) or a server still loading: the call stays
                    // in the journal and goes again on a new connection, found anew.
                    lost = Some(String::from_utf8_lossy(e).into_owned());
                    break;
                }
                Ok(Some((frame, n))) => {
                    used += n;
                    let p = s.pending.pop_front().expect("checked non-empty");
                    s.journal_head = p.end;
                    match (&s.cache, &p.cache) {
                        (Some(cache), Fill::Ttl(key)) => {
                            if let Frame::Int(ms) = frame {
                                cache.borrow_mut().set_ttl(key, ms);
                            }
                        }
                        (Some(cache), Fill::Wrote(keys)) => {
                            let mut cache = cache.borrow_mut();
                            keys.iter().for_each(|k| cache.written(k));
                        }
                        _ => {}
                    }
                    if p.abandoned {
                        continue;
                    }
                    if let Some(walk) = p.walk {
                        let failed = |e: &[u8]| {
                            crate::error::StoreError::new(
                                error_kind(e),
                                String::from_utf8_lossy(e).into_owned(),
                            )
                        };
                        let lead_failed = match s.lead_error.take() {
                            Some((id, e)) if id == p.id => Some(e),
                            other => {
                                s.lead_error = other;
                                None
                            }
                        };
                        let reply = match (&lead_failed, &frame) {
                            (Some(e), _) => Err(failed(e.as_bytes())),
                            (None, Frame::Error(e)) => Err(failed(e)),
                            // A command of a transaction failed inside it.
                            (None, Frame::Array(Some(items)))
                                if items.iter().any(|f| matches!(f, Frame::Error(_))) =>
                            {
                                match items.iter().find(|f| matches!(f, Frame::Error(_))) {
                                    Some(Frame::Error(e)) => Err(failed(e)),
                                    _ => Ok(Tree::of(&frame)),
                                }
                            }
                            (None, other) => Ok(Tree::of(other)),
                        };
                        // A cluster node keeps only the steps that must run on it (the next
                        // page of its SCAN); the router sends the others where their keys live.
                        let local = s.on_node.is_none();
                        let q = Queue {
                            journal: &mut s.journal,
                            pending: &mut s.pending,
                            cache: &s.cache,
                            timeout: s.command_timeout,
                        };
                        match walk.resume(reply) {
                            Step::Send(command, next)
                                if local || crate::walk::is_page(&command) =>
                            {
                                queue_step(q, p.id, &command, next, None);
                                more = true;
                            }
                            Step::Atomic(commands, next) if local => {
                                queue_transaction(q, p.id, &commands, Some(next), None);
                                more = true;
                            }
                            Step::Wait => {}
                            step @ (Step::Send(..) | Step::Atomic(..)) => routed.push((p.id, step)),
                            Step::Done(reply) => unsafe {
                                let value =
                                    crate::reply_to_js(env, reply).unwrap_or_else(|_| null_js(env));
                                set_reply(env, array, index, p.id, value);
                                index += 2;
                                delivered += 1;
                            },
                        }
                        continue;
                    }
                    if p.lead {
                        if let Frame::Error(e) = frame {
                            s.lead_error = Some((p.id, String::from_utf8_lossy(e).into_owned()));
                        }
                        continue;
                    }
                    let mut lead_error = match s.lead_error.take() {
                        Some((id, e)) if id == p.id => Some(e),
                        other => {
                            s.lead_error = other;
                            None
                        }
                    };
                    // A transaction answers null, or its first error.
                    let null = Frame::Bulk(None);
                    let frame = if p.exec {
                        if let Frame::Array(Some(items)) = &frame {
                            if let Some(Frame::Error(e)) =
                                items.iter().find(|f| matches!(f, Frame::Error(_)))
                            {
                                lead_error
                                    .get_or_insert_with(|| String::from_utf8_lossy(e).into_owned());
                            }
                        }
                        match frame {
                            Frame::Error(_) => frame,
                            _ => null,
                        }
                    } else {
                        frame
                    };
                    if let (Some(cache), Fill::Value(key), Frame::Bulk(Some(b))) =
                        (&s.cache, &p.cache, &frame)
                    {
                        if let Ok(text) = std::str::from_utf8(b) {
                            cache.borrow_mut().fill(key, text);
                        }
                    }
                    unsafe {
                        let value = match (&lead_error, &p.open) {
                            (Some(e), _) => frame_to_js(env, &Frame::Error(e.as_bytes())),
                            (None, Some(opener)) => opened_to_js(env, &s.seal, opener, &frame),
                            (None, None) => frame_to_js(env, &frame),
                        };
                        set_reply(env, array, index, p.id, value);
                    }
                    index += 2;
                    delivered += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    lost = Some(format!("protocol error: {}", e.0));
                    break;
                }
            }
        }
        conn.inbuf.drain(..used);
        if s.pending.is_empty() && conn.written == s.journal.len() {
            s.journal.clear();
            s.journal_head = 0;
            conn.written = 0;
        } else if s.journal_head > 64 * 1024 && s.journal_head * 2 > s.journal.len() {
            compact(s);
        }
        arm_timer(s);
    }
    if more && lost.is_none() && !send_waiting(state) {
        lost = Some(state.borrow().last_loss.clone());
    }
    if delivered > 0 {
        call_js(state, array);
    }
    unsafe { sys::napi_close_handle_scope(env, scope) };
    if !redirects.is_empty() {
        tell_node(state, NodeEvent::Redirected(redirects));
    }
    if !routed.is_empty() {
        tell_node(state, NodeEvent::Steps(routed));
    }
    if let Some(reason) = lost {
        lose_connection(state, &reason);
    } else {
        settle_if_closing(state);
    }
}

/// `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>`: whether it is an ASK, and where.
fn redirect_of(error: &[u8]) -> Option<(bool, (String, u16))> {
    let text = std::str::from_utf8(error).ok()?;
    let mut parts = text.split(' ');
    let ask = match parts.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let _slot = parts.next()?;
    let (host, port) = parts.next()?.rsplit_once(':')?;
    Some((ask, (host.to_string(), port.parse().ok()?)))
}

/// A RESP3 push: `["invalidate", [keys…]]`, or `["invalidate", nil]` for everything.
fn invalidate(cache: &mut NearCache, items: &[Frame<'_>]) {
    if !matches!(items.first(), Some(Frame::Bulk(Some(b)) | Frame::Simple(b)) if *b == b"invalidate")
    {
        return;
    }
    let keys = match items.get(1) {
        Some(Frame::Array(Some(keys))) => Some(
            keys.iter()
                .filter_map(|k| match k {
                    Frame::Bulk(Some(b)) | Frame::Simple(b) => {
                        Some(String::from_utf8_lossy(b).into_owned())
                    }
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    };
    cache.invalidate(keys);
}

/// Redis before 6 has no RESP3: said once per process, and the store runs uncached.
fn warn_uncached() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!("ferrisession: this Redis has no RESP3 client tracking (Redis 6+); the near cache is off");
    });
}

/// Calls the cluster router's hook, if any, without holding the state borrowed.
fn tell_node(state: &Rc<Shared>, event: NodeEvent) {
    let hook = state.borrow().on_node.clone();
    if let Some(hook) = hook {
        hook(event);
    }
}

/// Replies that say the server cannot take the call right now but another (or it, shortly)
/// will: a failover or restart under way.
fn is_moving(error: &[u8]) -> bool {
    [
        &b"READONLY"[..],
        b"LOADING",
        b"MASTERDOWN",
        b"TRYAGAIN",
        b"CLUSTERDOWN",
    ]
    .iter()
    .any(|p| error.starts_with(p))
}

/// Drops the answered part of the journal.
fn compact(s: &mut State) {
    let head = s.journal_head;
    s.journal.drain(..head);
    for p in s.pending.iter_mut() {
        p.end -= head;
    }
    if let Some(conn) = s.conn.as_mut() {
        conn.written -= head;
    }
    s.journal_head = 0;
}

/// After a connection is lost, keeps only the calls still waiting for an answer, so a new
/// connection sends exactly those again.
fn rebuild_journal(s: &mut State) {
    let mut journal = Vec::with_capacity(s.journal.len() - s.journal_head);
    let mut start = s.journal_head;
    let mut kept = VecDeque::with_capacity(s.pending.len());
    let pending = std::mem::take(&mut s.pending);
    for mut p in pending {
        if !p.abandoned {
            match p.rescan.take() {
                Some(first) => journal.extend_from_slice(&first),
                None => journal.extend_from_slice(&s.journal[start..p.end]),
            }
            start = p.end;
            p.end = journal.len();
            kept.push_back(p);
        } else {
            start = p.end;
            // A write nobody waits for any more is not sent again: its keys may be cached.
            if let (Some(cache), Fill::Wrote(keys)) = (&s.cache, &p.cache) {
                let mut cache = cache.borrow_mut();
                keys.iter().for_each(|k| cache.written(k));
            }
        }
    }
    s.pending = kept;
    s.journal = journal;
    s.journal_head = 0;
}

/// Puts call `id` and its reply at `index` and `index + 1` of a delivery array.
///
/// # Safety
/// `env` is the JS thread's, inside a handle scope; `array` is a live JS array.
unsafe fn set_reply(
    env: sys::napi_env,
    array: sys::napi_value,
    index: u32,
    id: u32,
    value: sys::napi_value,
) {
    unsafe {
        let mut js_id = std::ptr::null_mut();
        sys::napi_create_uint32(env, id, &mut js_id);
        sys::napi_set_element(env, array, index, js_id);
        sys::napi_set_element(env, array, index + 1, value);
    }
}

fn error_to_js(env: sys::napi_env, kind: ErrorKind, message: &str) -> sys::napi_value {
    unsafe {
        let code = kind.code();
        let mut js_code = std::ptr::null_mut();
        let mut js_msg = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut js_code);
        sys::napi_create_string_utf8(
            env,
            message.as_ptr().cast(),
            message.len() as isize,
            &mut js_msg,
        );
        sys::napi_create_error(env, js_code, js_msg, &mut err);
        err
    }
}

/// A JS string for valid UTF-8, else `None`.
fn str_to_js(env: sys::napi_env, bytes: &[u8]) -> Option<sys::napi_value> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut v = std::ptr::null_mut();
    unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
    Some(v)
}

fn null_js(env: sys::napi_env) -> sys::napi_value {
    let mut v = std::ptr::null_mut();
    unsafe { sys::napi_get_null(env, &mut v) };
    v
}

fn text_to_js(env: sys::napi_env, bytes: &[u8]) -> sys::napi_value {
    str_to_js(env, bytes)
        .unwrap_or_else(|| error_to_js(env, ErrorKind::Redis, "stored value is not valid UTF-8"))
}

/// The parts of a connection's state that queueing a call touches, borrowed apart from the
/// connection itself (which may be reading at the time).
struct Queue<'a> {
    journal: &'a mut Vec<u8>,
    pending: &'a mut VecDeque<Pending>,
    cache: &'a Option<Rc<RefCell<NearCache>>>,
    timeout: Duration,
}

impl State {
    /// `ERR_OVERLOADED` when `more` commands would exceed `maxPending`.
    fn room_for(&self, more: usize) -> Result<(), crate::error::StoreError> {
        if self.pending.len() + more > self.max_pending {
            let max = self.max_pending;
            return Err(crate::error::StoreError::new(
                ErrorKind::Overloaded,
                format!("more than {max} calls are waiting on Redis"),
            ));
        }
        Ok(())
    }

    fn queue(&mut self) -> Queue<'_> {
        Queue {
            journal: &mut self.journal,
            pending: &mut self.pending,
            cache: &self.cache,
            timeout: self.command_timeout,
        }
    }
}

/// Queues `commands` as one transaction for call `id`: `MULTI`, each command and `EXEC`, back
/// to back. With no `walk`, the call answers `null` or the first error; with one, the `EXEC`
/// reply goes on to it. Every key is this process's write, for the near cache.
fn queue_transaction(
    q: Queue<'_>,
    id: u32,
    commands: &[Command],
    walk: Option<Walk>,
    slot: Option<Slot>,
) {
    let mut fill = Fill::None;
    if let Some(cache) = q.cache {
        let mut cache = cache.borrow_mut();
        let keys: Vec<String> = commands
            .iter()
            .flat_map(|c| c.keys())
            .map(str::to_string)
            .collect();
        keys.iter().for_each(|k| cache.writing(k));
        fill = Fill::Wrote(keys);
    }
    let deadline = Instant::now() + q.timeout;
    let lead = |end: usize| Pending {
        id,
        slot,
        deadline,
        end,
        abandoned: false,
        cache: Fill::None,
        open: None,
        lead: true,
        exec: false,
        walk: None,
        rescan: None,
    };
    resp::encode(q.journal, &[b"MULTI"]);
    q.pending.push_back(lead(q.journal.len()));
    for command in commands {
        resp::encode_command(q.journal, command);
        q.pending.push_back(lead(q.journal.len()));
    }
    resp::encode(q.journal, &[b"EXEC"]);
    q.pending.push_back(Pending {
        id,
        slot,
        deadline,
        end: q.journal.len(),
        abandoned: false,
        cache: fill,
        open: None,
        lead: false,
        exec: walk.is_none(),
        walk,
        rescan: None,
    });
}

/// The error code of a Redis error reply.
fn error_kind(text: &[u8]) -> ErrorKind {
    if text.starts_with(b"WRONGTYPE") {
        ErrorKind::WrongType
    } else if text.starts_with(b"NOPERM") || text.starts_with(b"NOAUTH") {
        ErrorKind::Auth
    } else {
        ErrorKind::Redis
    }
}

/// Queues a walk's next command for call `id`, with a deadline of its own: a walk of a large
/// keyspace is bounded per round trip, not as a whole. A write is this process's write for the
/// near cache, as for any call.
fn queue_step(q: Queue<'_>, id: u32, command: &Command, walk: Walk, slot: Option<Slot>) {
    // A SCAN cursor means nothing to a restarted server: after a reconnect the page goes
    // again from cursor 0 (the walk counts each key once).
    let rescan = match command {
        Command::Scan {
            cursor,
            pattern,
            count,
        } if cursor != "0" => {
            let mut first = Vec::new();
            resp::encode_command(
                &mut first,
                &Command::Scan {
                    cursor: "0".into(),
                    pattern: pattern.clone(),
                    count: *count,
                },
            );
            Some(first.into_boxed_slice())
        }
        _ => None,
    };
    let mut fill = Fill::None;
    if let (Some(cache), true) = (q.cache, command.writes()) {
        let mut cache = cache.borrow_mut();
        let keys: Vec<String> = command.keys().into_iter().map(str::to_string).collect();
        keys.iter().for_each(|k| cache.writing(k));
        fill = Fill::Wrote(keys);
    }
    resp::encode_command(q.journal, command);
    let end = q.journal.len();
    let deadline = Instant::now() + q.timeout;
    q.pending.push_back(Pending {
        id,
        slot,
        deadline,
        end,
        abandoned: false,
        cache: fill,
        open: None,
        lead: false,
        exec: false,
        walk: Some(walk),
        rescan,
    });
}

/// A read's reply with its values opened (`encryption`); one that does not open makes the
/// reply an `ERR_BAD_DATA` error.
fn opened_to_js(
    env: sys::napi_env,
    seal: &Seal,
    opener: &Opener,
    frame: &Frame<'_>,
) -> sys::napi_value {
    let open = |key: &str, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => seal.open_str(key, text),
        Err(_) => Err(crate::error::StoreError::new(
            ErrorKind::Redis,
            "stored value is not valid UTF-8",
        )),
    };
    match (opener, frame) {
        (Opener::Key(key), Frame::Bulk(Some(b))) => match open(key, b) {
            Ok(plain) => text_to_js(env, plain.as_bytes()),
            Err(e) => error_to_js(env, e.kind, &e.message),
        },
        (Opener::Keys(keys), Frame::Array(Some(items))) => {
            let mut values = Vec::with_capacity(items.len());
            for (key, item) in keys.iter().zip(items.iter()) {
                match item {
                    Frame::Bulk(Some(b)) => match open(key, b) {
                        Ok(plain) => values.push(Some(plain)),
                        Err(e) => return error_to_js(env, e.kind, &e.message),
                    },
                    _ => values.push(None),
                }
            }
            unsafe {
                let mut v = std::ptr::null_mut();
                sys::napi_create_array_with_length(env, values.len(), &mut v);
                for (i, value) in values.iter().enumerate() {
                    let js = match value {
                        Some(text) => text_to_js(env, text.as_bytes()),
                        None => null_js(env),
                    };
                    sys::napi_set_element(env, v, i as u32, js);
                }
                v
            }
        }
        _ => frame_to_js(env, frame),
    }
}

fn frame_to_js(env: sys::napi_env, frame: &Frame<'_>) -> sys::napi_value {
    unsafe {
        let mut v = std::ptr::null_mut();
        match frame {
            Frame::Simple(s) => return text_to_js(env, s),
            Frame::Error(e) => {
                let text = String::from_utf8_lossy(e);
                let kind = if text.starts_with("WRONGTYPE") {
                    ErrorKind::WrongType
                } else if text.starts_with("NOPERM") || text.starts_with("NOAUTH") {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Redis
                };
                return error_to_js(env, kind, &text);
            }
            Frame::Int(n) => {
                sys::napi_create_double(env, *n as f64, &mut v);
            }
            Frame::Bulk(Some(b)) => return text_to_js(env, b),
            Frame::Bulk(None) | Frame::Array(None) => return null_js(env),
            Frame::Push(_) => return null_js(env),
            Frame::Array(Some(items)) => {
                sys::napi_create_array_with_length(env, items.len(), &mut v);
                for (i, item) in items.iter().enumerate() {
                    // Like redis-rs's path: a missing or non-text element is null.
                    let js = match item {
                        Frame::Bulk(Some(b)) | Frame::Simple(b) => str_to_js(env, b),
                        _ => None,
                    }
                    .unwrap_or_else(|| null_js(env));
                    sys::napi_set_element(env, v, i as u32, js);
                }
            }
        }
        v
    }
}

/// Calls the JS delivery function with `payload` as a top-level callback, so promise
/// reactions run when it returns.
fn call_js(state: &Rc<Shared>, payload: sys::napi_value) {
    let (env, callback, async_context, live) = {
        let s = state.borrow();
        (s.env, s.callback, s.async_context, s.callback_live)
    };
    if !live || callback.is_null() {
        return;
    }
    unsafe {
        let mut func = std::ptr::null_mut();
        if sys::napi_get_reference_value(env, callback, &mut func) != sys::Status::napi_ok
            || func.is_null()
        {
            return;
        }
        // napi_make_callback needs an object as `this`.
        let mut recv = std::ptr::null_mut();
        sys::napi_get_global(env, &mut recv);
        let mut result = std::ptr::null_mut();
        let argv = [payload];
        let status = sys::napi_make_callback(
            env,
            async_context,
            recv,
            func,
            1,
            argv.as_ptr(),
            &mut result,
        );
        if status == sys::Status::napi_pending_exception {
            let mut exception = std::ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
}

/// Answers `ids` with an error.
fn reject(state: &Rc<Shared>, ids: &[u32], kind: ErrorKind, reason: &str) {
    let env = state.borrow().env;
    unsafe {
        let mut scope = std::ptr::null_mut();
        sys::napi_open_handle_scope(env, &mut scope);
        let mut array = std::ptr::null_mut();
        sys::napi_create_array_with_length(env, ids.len() * 2, &mut array);
        for (i, id) in ids.iter().enumerate() {
            set_reply(
                env,
                array,
                (2 * i) as u32,
                *id,
                error_to_js(env, kind, reason),
            );
        }
        call_js(state, array);
        sys::napi_close_handle_scope(env, scope);
    }
}

/// The connection dropped: calls in flight stay queued and are sent again on a new
/// connection, which starts at once. Only a call's own `commandTimeout` fails it.
fn lose_connection(state: &Rc<Shared>, reason: &str) {
    {
        let mut s = state.borrow_mut();
        let Some(conn) = s.conn.take() else { return };
        s.last_loss = reason.to_string();
        if let Some(cache) = &s.cache {
            cache.borrow_mut().clear();
        }
        retire(&mut s, conn);
        rebuild_journal(&mut s);
        arm_timer(&mut s);
    }
    tell_node(state, NodeEvent::Lost);
    if settle_if_closing(state) {
        return;
    }
    let due = {
        let s = state.borrow();
        !s.pending.is_empty() && Instant::now() >= s.retry_at
    };
    if due {
        connect(state);
    }
}

/// Shuts down a closing store once nothing waits on it; true if it did.
fn settle_if_closing(state: &Rc<Shared>) -> bool {
    let done = {
        let s = state.borrow();
        s.closing && !s.closed && s.pending.iter().all(|p| p.abandoned)
    };
    if done {
        shut_down(state);
    }
    done
}

/// Stops polling a connection and hands its socket to the graveyard.
fn retire(s: &mut State, conn: Conn) {
    let uv = uvs();
    unsafe {
        (uv.poll_stop)(conn.poll);
        (uv.close)(conn.poll, Some(on_poll_closed));
    }
    s.graveyard.push_back(conn.wire);
    s.retry_at = Instant::now() + s.backoff;
    s.backoff = (s.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
}

unsafe extern "C" fn on_poll_closed(handle: *mut uv::Handle) {
    unsafe {
        let state = Rc::from_raw(uv::data(handle) as *const Shared);
        state.borrow_mut().graveyard.pop_front();
        uv::free_handle(handle, uvs().poll_size);
    }
}

unsafe extern "C" fn on_timer_closed(handle: *mut uv::Handle) {
    unsafe {
        drop(Rc::from_raw(uv::data(handle) as *const Shared));
        uv::free_handle(handle, uvs().timer_size);
    }
}

/// Closes everything for good. Calls still waiting are rejected with `ERR_CLOSED`.
fn shut_down(state: &Rc<Shared>) {
    if state.borrow().closed {
        return;
    }
    let waiting: Vec<u32> = {
        let mut s = state.borrow_mut();
        s.closing = true;
        s.closed = true;
        if let Some(conn) = s.conn.take() {
            retire(&mut s, conn);
        }
        let ids = s
            .pending
            .drain(..)
            .filter(|p| !p.abandoned && !p.lead)
            .map(|p| p.id)
            .collect();
        s.journal = Vec::new();
        s.journal_head = 0;
        ids
    };
    if !waiting.is_empty() && state.borrow().callback_live {
        reject(state, &waiting, ErrorKind::Closed, "the store is closed");
    }
    let mut s = state.borrow_mut();
    s.report = None;
    unsafe {
        let uv = uvs();
        (uv.timer_stop)(s.timer);
        (uv.close)(s.timer, Some(on_timer_closed));
        if s.callback_live {
            sys::napi_async_destroy(s.env, s.async_context);
        }
        sys::napi_delete_reference(s.env, s.callback);
    }
    s.callback_live = false;
    s.callback = std::ptr::null_mut();
}
