//! The connection engine the calls ride: sockets (plain or TLS) owned by the JS thread and
//! polled by Node's libuv loop, RESP encoding and decoding, and the reconnect-and-resend
//! journal. It serves one server, the primary behind Sentinel, and Redis Cluster (one
//! connection per primary, routed by slot), over TCP, TLS or a unix socket. Calls of several
//! round trips run as walks (`crate::walk`), each step where its keys live. Hosts without
//! libuv run the same engine, woken by `driver`'s thread instead of the libuv loop.

pub mod cache;
pub mod cluster;
pub mod connection;
#[cfg(unix)]
pub mod driver;
pub mod resp;
pub mod sentinel;
pub mod tls;
pub mod uv;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use napi::sys;

use crate::backend::Command;
use crate::config::{ConnectionSpec, Topology};
use crate::error::StoreError;
use cache::{CacheStats, Epoch, NearCache};
use cluster::Router;
use connection::{Direct, LinkHook, Opened, SlotRange};

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
    Answered(crate::backend::Reply),
}

pub enum Engine {
    Single(Direct),
    Cluster(Box<Router>),
}

impl Engine {
    /// `None` for memory://, which needs no connection; `Err` for settings no connection
    /// can be made from.
    ///
    /// # Safety
    /// `env` and `callback` must be the JS thread's env and a live JS function.
    pub unsafe fn new(
        env: sys::napi_env,
        callback: sys::napi_value,
        spec: &ConnectionSpec,
        epoch: Option<Epoch>,
    ) -> Result<Option<Engine>, StoreError> {
        let cache = spec
            .cache
            .map(|limits| Rc::new(RefCell::new(NearCache::new(limits, epoch))));
        match &spec.topology {
            Topology::Memory => Ok(None),
            Topology::Cluster(cluster) => {
                unsafe { Router::new(env, callback, cluster, spec, cache) }
                    .map(|r| Some(Engine::Cluster(Box::new(r))))
            }
            topology => {
                let direct = unsafe { Direct::new(env, callback, spec) }?;
                if let Topology::Sentinel(s) = topology {
                    sentinel::watch(s.sentinels.clone(), s.name.clone(), &spec.counters);
                }
                if let Some(cache) = cache {
                    direct.set_cache(cache);
                }
                Ok(Some(Engine::Single(direct)))
            }
        }
    }

    /// The near cache's live value of `key`, answered on the spot (and opened, under
    /// encryption: `Err` when it does not open).
    pub fn cached(&self, key: &str) -> Option<Result<String, StoreError>> {
        match self {
            Engine::Single(d) => d.cached(key),
            Engine::Cluster(r) => r.cached(key),
        }
    }

    /// The near cache's counters, when it is on.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        match self {
            Engine::Single(d) => d.cache_stats(),
            Engine::Cluster(r) => r.cache_stats(),
        }
    }

    /// Starts connecting. `on_link` hears when a connection comes up, or calls start failing
    /// for want of one.
    pub fn start(self: &Rc<Self>, report: Reporter, on_link: LinkHook) {
        match &**self {
            Engine::Single(d) => d.start(report, on_link),
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
            Engine::Single(d) => d.ready(),
            Engine::Cluster(r) => r.ready(),
        }
    }

    pub fn push(&self, id: u32, command: Command) -> Result<(), Bounce> {
        match self {
            Engine::Single(d) => match d.push(id, &command) {
                Ok(None) => Ok(()),
                Ok(Some(reply)) => Err(Bounce::Answered(reply)),
                Err(e) => Err(Bounce::Refused(e)),
            },
            Engine::Cluster(r) => r.push(id, command),
        }
    }

    /// Queues one call made of several commands, as one transaction; see
    /// `Direct::push_atomic`.
    pub fn push_atomic(&self, id: u32, commands: &[Command]) -> Result<(), StoreError> {
        match self {
            Engine::Single(d) => d.push_atomic(id, commands),
            Engine::Cluster(r) => r.push_atomic(id, commands.to_vec()),
        }
    }

    /// Queues a keyspace walk on the one connection (see `Direct::push_walk`).
    pub fn push_walk(
        &self,
        id: u32,
        command: &Command,
        walk: crate::walk::Walk,
    ) -> Result<(), StoreError> {
        match self {
            Engine::Single(d) => d.push_walk(id, command, walk),
            Engine::Cluster(r) => r.push_walk(id, command.clone(), walk),
        }
    }

    pub fn flush(&self) {
        match self {
            Engine::Single(d) => d.flush(),
            Engine::Cluster(r) => r.flush(),
        }
    }

    pub fn close(&self) {
        match self {
            Engine::Single(d) => d.close(),
            Engine::Cluster(r) => r.close(),
        }
    }

    /// Takes a connector thread's report; called on the JS thread.
    pub fn report(&self, report: EngineReport) {
        match (self, report) {
            (Engine::Single(d), EngineReport::Opened(o)) => d.opened(o),
            (Engine::Single(d), EngineReport::Switched) => d.follow_switch(),
            (Engine::Cluster(r), report) => r.report(report),
            (Engine::Single(_), EngineReport::Slots(_)) => {}
        }
    }
}
