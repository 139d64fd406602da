//! The connection engine every call rides: sockets (plain or TLS) owned by the JS thread,
//! RESP encoding and decoding, and the reconnect-and-resend journal. It serves one server,
//! the primary behind Sentinel, and Redis Cluster (one connection per primary, routed by
//! slot), over TCP, TLS or a unix socket. Calls of several round trips run as walks
//! (`crate::walk`), each step where its keys live.
//!
//! One file per concern: `dial` (off the JS thread: connect, handshake, slot map), `journal`
//! (calls waiting), `reader` (frames to replies), `connection` (lifecycle: state, timers,
//! reconnect), `cluster` and `sentinel`, `event_loop` (libuv, or the engine's own thread) and
//! `js`, the only code that calls Node-API.

pub mod cache;
pub mod cluster;
pub mod connection;
pub mod dial;
pub mod event_loop;
pub mod fault;
pub mod journal;
pub mod js;
pub mod outbox;
pub mod reader;
pub mod resp;
pub mod sentinel;
pub mod tls;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::command::{Command, Reply};
use crate::config::{ConnectionSpec, Topology};
use crate::error::{ErrorKind, StoreError};
use cache::{CacheStats, Epoch, NearCache};
use cluster::Router;
use connection::{Connection, LinkHook, Opened};
use dial::{SlotRange, Target};
use js::Boundary;

/// What connector threads hand back to the JS thread.
pub enum EngineReport {
    Opened(Opened),
    /// A cluster's slot map, freshly read.
    Slots(Result<Vec<SlotRange>, String>),
    /// The sentinels announced a new primary (`+switch-master`).
    Switched,
}

/// Carries reports to the JS thread.
pub type Reporter = Arc<dyn Fn(EngineReport) + Send + Sync>;

/// Why a command did not join the engine.
pub enum Bounce {
    /// The store cannot take it now (`ERR_OVERLOADED`, `ERR_CLOSED`).
    Refused(StoreError),
    /// Answered at once, from the near cache.
    Answered(Reply),
}

pub enum Engine {
    Single(Connection),
    Cluster(Box<Router>),
}

fn no_loop() -> StoreError {
    StoreError::new(
        ErrorKind::NotConnected,
        "the connection engine cannot run on this host (no event loop to poll on)",
    )
}

impl Engine {
    /// The engine of a store whose replies go to `boundary`; `None` for memory://, which
    /// needs no connection; `Err` for settings no connection can be made from.
    pub fn new(
        boundary: impl FnOnce() -> Option<Boundary>,
        spec: &ConnectionSpec,
        epoch: Option<Epoch>,
    ) -> Result<Option<Engine>, StoreError> {
        if matches!(spec.topology, Topology::Memory) {
            return Ok(None);
        }
        let boundary = Rc::new(boundary().ok_or_else(no_loop)?);
        let event_loop = boundary.event_loop().ok_or_else(no_loop)?;
        let cache = spec
            .cache
            .map(|limits| Rc::new(RefCell::new(NearCache::new(limits, epoch))));
        match &spec.topology {
            Topology::Memory => Ok(None),
            Topology::Cluster(cluster) => Router::new(boundary, event_loop, cluster, spec, cache)
                .map(|r| Some(Engine::Cluster(Box::new(r)))),
            topology => {
                let target = Target::from_spec(spec)?;
                let connection =
                    Connection::new(&boundary, event_loop, target, spec, 0).ok_or_else(no_loop)?;
                if let Topology::Sentinel(s) = topology {
                    sentinel::watch(s.sentinels.clone(), s.name.clone(), &spec.counters);
                }
                if let Some(cache) = cache {
                    connection.set_cache(cache);
                }
                Ok(Some(Engine::Single(connection)))
            }
        }
    }

    /// The near cache's live value of `key`, answered on the spot (and opened, under
    /// encryption: `Err` when it does not open).
    /// The near cache's entry for `key`: `Some(Ok(None))` when it knows the key is absent.
    pub fn cached(&self, key: &str) -> Option<Result<Option<String>, StoreError>> {
        match self {
            Engine::Single(c) => c.cached(key),
            Engine::Cluster(r) => r.cached(key),
        }
    }

    /// The near cache's counters, when it is on.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        match self {
            Engine::Single(c) => c.cache_stats(),
            Engine::Cluster(r) => r.cache_stats(),
        }
    }

    /// Starts connecting. `on_link` hears when a connection comes up, or calls start failing
    /// for want of one.
    pub fn start(self: &Rc<Self>, report: Reporter, on_link: LinkHook) {
        match &**self {
            Engine::Single(c) => c.start(report, on_link),
            Engine::Cluster(r) => r.start(report, on_link, Rc::downgrade(self)),
        }
    }

    /// How many calls JS should gather before handing them over: about 16 per connection, so
    /// a server starts on the first calls while JS still makes the next ones, but a cluster's
    /// nodes each get a batch worth a write.
    pub fn batch_cap(&self) -> u32 {
        match self {
            Engine::Single(_) => 16,
            Engine::Cluster(r) => (16 * r.primaries() as u32).clamp(16, 128),
        }
    }

    pub fn ready(&self) -> bool {
        match self {
            Engine::Single(c) => c.ready(),
            Engine::Cluster(r) => r.ready(),
        }
    }

    pub fn push(&self, id: u32, command: Command) -> Result<(), Bounce> {
        match self {
            Engine::Single(c) => match c.push(id, &command, None) {
                Ok(None) => Ok(()),
                Ok(Some(reply)) => Err(Bounce::Answered(reply)),
                Err(e) => Err(Bounce::Refused(e)),
            },
            Engine::Cluster(r) => r.push(id, command),
        }
    }

    /// Queues one call made of several commands, as one transaction; see
    /// `Connection::push_transaction`.
    pub fn push_atomic(&self, id: u32, commands: &[Command]) -> Result<(), StoreError> {
        match self {
            Engine::Single(c) => c.push_transaction(id, commands, None, None),
            Engine::Cluster(r) => r.push_atomic(id, commands.to_vec()),
        }
    }

    /// Queues a keyspace walk on the one connection (see `Connection::push_step`).
    pub fn push_walk(
        &self,
        id: u32,
        command: &Command,
        walk: crate::walk::Walk,
    ) -> Result<(), StoreError> {
        match self {
            Engine::Single(c) => c.push_step(id, command, walk, None),
            Engine::Cluster(r) => r.push_walk(id, command.clone(), walk),
        }
    }

    pub fn flush(&self) {
        match self {
            Engine::Single(c) => c.flush(),
            Engine::Cluster(r) => r.flush(),
        }
    }

    pub fn close(&self) {
        match self {
            Engine::Single(c) => c.close(),
            Engine::Cluster(r) => r.close(),
        }
    }

    /// Fails every call in flight with `ERR_INTERNAL` and drops the connections (they
    /// reconnect): after a panic was caught where no connection could be told.
    pub fn recover(&self, reason: &str) {
        match self {
            Engine::Single(c) => c.recover(reason),
            Engine::Cluster(r) => r.recover(reason),
        }
    }

    /// Takes a connector thread's report; called on the JS thread.
    pub fn report(&self, report: EngineReport) {
        match (self, report) {
            (Engine::Single(c), EngineReport::Opened(o)) => c.opened(o),
            (Engine::Single(c), EngineReport::Switched) => c.follow_switch(),
            (Engine::Cluster(r), report) => r.report(report),
            (Engine::Single(_), EngineReport::Slots(_)) => {}
        }
    }
}
