//! Redis Cluster on the engine: one JS-thread connection per primary, a slot map read with
//! `CLUSTER SLOTS`, and routing by slot (redis-rs's `Slot::for_key`, hash tags included).
//! `MOVED` updates the map and sends the call to the named node; `ASK` sends `ASKING` and the
//! call there once. A lost node, or a redirect, re-reads the map; calls waiting on a node that
//! is down move to wherever their slot lives now, so a failover is ridden through.

use crate::stats::LinkCounters;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use redis::cluster_routing::Slot;

use super::cache::{CacheStats, NearCache};
use super::connection::{Connection, LinkHook, NodeEvent};
use super::dial::{SlotRange, Target};
use super::event_loop::EventLoop;
use super::journal::Role;
use super::js::Boundary;
use super::outbox::Outbox;
use super::{Bounce, Engine, EngineReport, Reporter};
use crate::command::{Command, Keys, Reply};
use crate::config::{ClusterSpec, ConnectionSpec};
use crate::error::{ErrorKind, StoreError};
use crate::walk::{self, Step, Walk};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What every node shares: credentials, TLS and timeouts.
struct NodeSettings {
    username: Option<String>,
    password: Option<String>,
    tls: Option<crate::config::TlsSettings>,
    spec: ConnectionSpec,
}

pub struct Router {
    boundary: Rc<Boundary>,
    event_loop: EventLoop,
    settings: NodeSettings,
    nodes: RefCell<Vec<Rc<Connection>>>,
    addrs: RefCell<HashMap<(String, u16), usize>>,
    slots: RefCell<HashMap<Slot, usize>>,
    /// Nodes that were given calls since the last flush.
    dirty: RefCell<Vec<usize>>,
    report: RefCell<Option<Reporter>>,
    on_link: RefCell<Option<LinkHook>>,
    engine: RefCell<Weak<Engine>>,
    refreshing: Cell<bool>,
    refresh_again: Cell<bool>,
    closed: Cell<bool>,
    /// Primaries in the last slot map read; 0 before the first.
    primaries: Cell<usize>,
    /// Slots whose calls still wait on a node that no longer owns them (the map changed
    /// under them), and that node: later calls of such a slot are held here (`held`) until
    /// the earlier ones are answered or redirected, so none overtakes a call made before it.
    draining: RefCell<HashMap<Slot, usize>>,
    held: RefCell<HashMap<Slot, Vec<Held>>>,
    /// The near cache every node fills and invalidates.
    cache: Option<Rc<RefCell<NearCache>>>,
    /// When each keyspace walk under way must have made its pass over every primary: a pass
    /// that starts again after a node is lost keeps its first deadline.
    passes: RefCell<HashMap<u32, Instant>>,
    /// Keyspace walks that came before the first full slot map. Until it arrives the map holds
    /// only slots learned from `MOVED`, which name some primaries, not every one: a pass then
    /// would miss the keys of the others. They start when the map comes, and fail with
    /// `ERR_NOT_CONNECTED` if no node gives one.
    awaiting_map: RefCell<Vec<AwaitingMap>>,
}

/// A keyspace walk's pass, waiting for the first full slot map: call id, pattern, page size,
/// and the rest of the walk.
type AwaitingMap = (u32, String, usize, Walk);

impl Router {
    pub fn new(
        boundary: Rc<Boundary>,
        event_loop: EventLoop,
        cluster: &ClusterSpec,
        spec: &ConnectionSpec,
        cache: Option<Rc<RefCell<NearCache>>>,
    ) -> Result<Router, StoreError> {
        let no_engine = || {
            StoreError::new(
                ErrorKind::NotConnected,
                "the connection engine cannot run on this host (no event loop to poll on)",
            )
        };
        let router = Router {
            boundary,
            event_loop,
            settings: NodeSettings {
                username: cluster.username.clone(),
                password: cluster.password.clone(),
                tls: cluster.tls.clone(),
                spec: spec.clone(),
            },
            nodes: RefCell::new(Vec::new()),
            addrs: RefCell::new(HashMap::new()),
            slots: RefCell::new(HashMap::new()),
            dirty: RefCell::new(Vec::new()),
            report: RefCell::new(None),
            on_link: RefCell::new(None),
            engine: RefCell::new(Weak::new()),
            refreshing: Cell::new(false),
            refresh_again: Cell::new(false),
            closed: Cell::new(false),
            primaries: Cell::new(0),
            draining: RefCell::new(HashMap::new()),
            held: RefCell::new(HashMap::new()),
            cache,
            passes: RefCell::new(HashMap::new()),
            awaiting_map: RefCell::new(Vec::new()),
        };
        if let Some(settings) = &cluster.tls {
            super::tls::TlsTarget::new(settings, "localhost")
                .map_err(|e| StoreError::bad_argument(format!("tls: {e}")))?;
        }
        for info in &cluster.nodes {
            let (host, port) = match info.addr() {
                redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p),
                redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
                other => {
                    return Err(StoreError::bad_argument(format!(
                        "{other} is not a TCP address (cluster nodes are reached over TCP)"
                    )))
                }
            };
            router.add_node(&host, port).ok_or_else(no_engine)?;
        }
        Ok(router)
    }

    /// The index of the node at `host:port`, connecting to it if it is new.
    fn add_node(&self, host: &str, port: u16) -> Option<usize> {
        if let Some(&i) = self.addrs.borrow().get(&(host.to_string(), port)) {
            return Some(i);
        }
        let s = &self.settings;
        let target = Target::node(
            host,
            port,
            s.username.clone(),
            s.password.clone(),
            s.tls.clone(),
            s.spec.connect_timeout,
        )?;
        let index = self.nodes.borrow().len();
        let node = Rc::new(Connection::new(
            &self.boundary,
            self.event_loop,
            target,
            &s.spec,
            index,
        )?);
        if let Some(cache) = &self.cache {
            node.set_cache(cache.clone());
        }
        self.nodes.borrow_mut().push(node.clone());
        self.addrs
            .borrow_mut()
            .insert((host.to_string(), port), index);
        let report = self.report.borrow().clone();
        let on_link = self.on_link.borrow().clone();
        if let (Some(report), Some(on_link)) = (report, on_link) {
            self.wire_up(&node, index, report, on_link);
        }
        if self.closed.get() {
            // Named by a redirect while the store closes: it closes with the others.
            node.watch_idle();
        }
        Some(index)
    }

    fn wire_up(&self, node: &Rc<Connection>, index: usize, report: Reporter, on_link: LinkHook) {
        let engine = self.engine.borrow().clone();
        node.set_node_hook(Rc::new(move |event| {
            if let Some(engine) = engine.upgrade() {
                if let Engine::Cluster(router) = &*engine {
                    router.node_event(index, event);
                }
            }
        }));
        node.start(report, on_link);
    }

    pub fn start(&self, report: Reporter, on_link: LinkHook, engine: Weak<Engine>) {
        *self.engine.borrow_mut() = engine;
        *self.report.borrow_mut() = Some(report.clone());
        *self.on_link.borrow_mut() = Some(on_link.clone());
        let nodes = self.nodes.borrow().clone();
        for (i, node) in nodes.iter().enumerate() {
            self.wire_up(node, i, report.clone(), on_link.clone());
        }
        self.refresh();
    }

    /// How many nodes serve slots (the seeds, before the first map arrives).
    pub fn primaries(&self) -> usize {
        match self.primaries.get() {
            0 => self.nodes.borrow().len().max(1),
            n => n,
        }
    }

    pub fn ready(&self) -> bool {
        !self.closed.get()
    }

    /// The node the slot map names for `slot` (the first seed before the map is known).
    fn owner(&self, slot: Slot) -> usize {
        self.slots.borrow().get(&slot).copied().unwrap_or(0)
    }

    /// Before slots change owner: every slot with calls waiting on a node that will not own
    /// it is drained first (see `draining`).
    fn hold_back(&self, owner: impl Fn(Slot) -> usize) {
        let nodes = self.nodes.borrow().clone();
        for (i, node) in nodes.iter().enumerate() {
            for slot in node.pending_slots() {
                if owner(slot) != i {
                    self.drain(slot, i);
                }
            }
        }
    }

    fn drain(&self, slot: Slot, from: usize) {
        self.draining.borrow_mut().entry(slot).or_insert(from);
        self.node(from).watch_progress(true);
    }

    /// Whether calls of `slot` wait behind earlier ones on a node that no longer owns it.
    fn holds(&self, slot: Slot) -> bool {
        let from = {
            let draining = self.draining.borrow();
            if draining.is_empty() {
                // The common case: no slot is moving, nothing to hash.
                return false;
            }
            draining.get(&slot).copied()
        };
        match from {
            Some(from) if self.node(from).has_pending(slot) => true,
            Some(_) => {
                self.release(slot);
                false
            }
            None => false,
        }
    }

    /// The earlier calls of `slot` are answered: what was held goes, in call order.
    fn release(&self, slot: Slot) {
        self.draining.borrow_mut().remove(&slot);
        let held = self.held.borrow_mut().remove(&slot).unwrap_or_default();
        for h in held {
            if h.deadline <= Instant::now() {
                let limit = self.settings.spec.command_timeout.as_millis();
                let late = StoreError::new(
                    ErrorKind::Timeout,
                    format!("no reply from Redis within {limit} ms (the slot was moving)"),
                );
                self.deliver(h.id, Reply::Error(late));
                continue;
            }
            match self.queue(h.id, slot, h.call, Some(h.deadline)) {
                Ok(None) => {}
                Ok(Some(reply)) => self.deliver(h.id, reply),
                Err(e) => self.deliver(h.id, Reply::Error(e)),
            }
        }
    }

    /// Releases every drained slot whose earlier calls on `from` (or on any node) are
    /// answered.
    fn release_drained(&self, from: Option<usize>) {
        let candidates: Vec<(Slot, usize)> = self
            .draining
            .borrow()
            .iter()
            .filter(|(_, n)| from.is_none_or(|f| f == **n))
            .map(|(s, n)| (*s, *n))
            .collect();
        for (slot, node) in &candidates {
            if !self.node(*node).has_pending(*slot) {
                self.release(*slot);
            }
        }
        let draining = self.draining.borrow();
        for (_, node) in candidates {
            if !draining.values().any(|n| *n == node) {
                self.node(node).watch_progress(false);
            }
        }
    }

    /// Queues call `id` of `slot` on the slot's owner, or holds it while earlier calls of the
    /// slot are still answered elsewhere. `Ok(Some(reply))`: answered at once (near cache).
    fn queue(
        &self,
        id: u32,
        slot: Slot,
        call: Queued,
        deadline: Option<Instant>,
    ) -> Result<Option<Reply>, StoreError> {
        if self.holds(slot) {
            if let Some(cache) = &self.cache {
                // Held, a write is in flight: its keys are not served until it is answered.
                let mut cache = cache.borrow_mut();
                call.keys().into_iter().for_each(|k| cache.remove(k));
            }
            let deadline =
                deadline.unwrap_or_else(|| Instant::now() + self.settings.spec.command_timeout);
            self.held
                .borrow_mut()
                .entry(slot)
                .or_default()
                .push(Held { id, deadline, call });
            return Ok(None);
        }
        let index = self.owner(slot);
        let node = self.node(index);
        let answered = match call {
            Queued::Command(command) => node.push(id, &command, Some(slot))?,
            Queued::Step(command, walk) => {
                node.push_step(id, &command, walk, Some(slot))?;
                None
            }
            Queued::Transaction(commands, walk) => {
                node.push_transaction(id, &commands, Some(walk), Some(slot))?;
                None
            }
        };
        if answered.is_none() {
            if let Some(deadline) = deadline {
                node.redate(id, deadline);
            }
            self.dirty.borrow_mut().push(index);
        }
        Ok(answered)
    }

    pub fn cached(&self, key: &str) -> Option<Result<Option<String>, crate::error::StoreError>> {
        let hit = self.cache.as_ref()?.borrow_mut().peek(key)?;
        Some(
            hit.map(|v| self.settings.spec.seal.open(key, v))
                .transpose(),
        )
    }

    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.borrow().stats())
    }

    pub fn push(&self, id: u32, command: Command) -> Result<(), Bounce> {
        let Some(slot) = one_slot(&command) else {
            // Keys of several slots: one command per slot, joined.
            let (command, walk) = walk::whole(command, self.settings.spec.seal.clone());
            return self
                .route(id, Step::Send(command, walk))
                .map_err(Bounce::Refused);
        };
        match self.queue(id, slot, Queued::Command(command), None) {
            Ok(None) => Ok(()),
            Ok(Some(reply)) => Err(Bounce::Answered(reply)),
            Err(e) => Err(Bounce::Refused(e)),
        }
    }

    /// Starts a call of several round trips (see `walk`): each step goes where its keys live.
    pub fn push_walk(&self, id: u32, command: Command, walk: Walk) -> Result<(), StoreError> {
        self.route(id, Step::Send(command, walk))
    }

    /// A call made of several commands: one transaction when its keys share a slot, else each
    /// command on its own; the reply is `null` or the first error.
    pub fn push_atomic(&self, id: u32, commands: Vec<Command>) -> Result<(), StoreError> {
        self.route(id, Step::Atomic(commands, walk::transaction()))
    }

    /// Sends call `id`'s next step where its keys live; a step of keys in several slots goes
    /// as one command per slot, joined. `Err` when no node can take it.
    fn route(&self, id: u32, step: Step) -> Result<(), StoreError> {
        match step {
            Step::Wait => Ok(()),
            Step::Done(reply) => {
                self.deliver(id, reply);
                Ok(())
            }
            Step::Send(command, next) => {
                if let Some(slot) = one_slot(&command) {
                    return self.send_step(id, command, next, slot);
                }
                let slots: Vec<Slot> = command.keys().into_iter().map(Slot::for_key).collect();
                let Some(&first) = slots.first() else {
                    return match command {
                        Command::Scan { pattern, count, .. } => {
                            self.scan_pass(id, pattern, count, next)
                        }
                        other => Err(StoreError::bad_argument(format!(
                            "a keyless command cannot be routed in a cluster: {other:?}"
                        ))),
                    };
                };
                let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
                for (i, slot) in slots.into_iter().enumerate() {
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, positions)) => positions.push(i),
                        None => groups.push((slot, vec![i])),
                    }
                }
                let groups = groups.into_iter().map(|(_, p)| p).collect();
                match walk::split(command, groups, next) {
                    Ok(parts) => parts
                        .into_iter()
                        .try_for_each(|(c, w)| self.route(id, Step::Send(c, w))),
                    // No other command takes keys of several slots: the first key's node
                    // answers it (`CROSSSLOT`).
                    Err((command, next)) => self.send_step(id, command, next, first),
                }
            }
            Step::Atomic(commands, next) => {
                let mut slots: Vec<Slot> = Vec::new();
                for slot in commands.iter().flat_map(|c| c.keys()).map(Slot::for_key) {
                    if !slots.contains(&slot) {
                        slots.push(slot);
                    }
                }
                match slots.as_slice() {
                    [slot] => self
                        .queue(id, *slot, Queued::Transaction(commands, next), None)
                        .map(|_| ()),
                    _ => walk::spread(commands, next)
                        .into_iter()
                        .try_for_each(|(c, w)| self.route(id, Step::Send(c, w))),
                }
            }
        }
    }

    /// Starts a pass of a keyspace walk over every primary (see `walk::scan_nodes`).
    fn scan_pass(
        &self,
        id: u32,
        pattern: String,
        count: usize,
        walk: Walk,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let until = {
            let mut passes = self.passes.borrow_mut();
            passes.retain(|_, until| *until > now);
            *passes
                .entry(id)
                .or_insert(now + self.settings.spec.command_timeout)
        };
        if now >= until {
            return Err(StoreError::new(
                ErrorKind::NotConnected,
                "a cluster node stayed out of reach through the keyspace walk",
            ));
        }
        if self.primaries.get() == 0 {
            self.awaiting_map
                .borrow_mut()
                .push((id, pattern, count, walk));
            // Started by the slot map a read under way brings, or by one asked for now.
            if !self.refreshing.get() {
                self.refresh();
            }
            return Ok(());
        }
        let mut serving: Vec<usize> = self.slots.borrow().values().copied().collect();
        serving.sort_unstable();
        serving.dedup();
        let parts = walk::scan_nodes(serving.len(), pattern, count, walk);
        for (index, (command, walk)) in serving.into_iter().zip(parts) {
            self.node(index).push_step(id, &command, walk, None)?;
            self.dirty.borrow_mut().push(index);
        }
        Ok(())
    }

    /// Queues a walk's step on the node owning `slot`.
    fn send_step(
        &self,
        id: u32,
        command: Command,
        walk: Walk,
        slot: Slot,
    ) -> Result<(), StoreError> {
        self.queue(id, slot, Queued::Step(command, walk), None)
            .map(|_| ())
    }

    fn node(&self, index: usize) -> Rc<Connection> {
        self.nodes.borrow()[index].clone()
    }

    /// Settles call `id` from here (a step that failed to route, or ended off any
    /// connection).
    fn deliver(&self, id: u32, reply: Reply) {
        let mut out = Outbox::default();
        out.reply(id, reply);
        self.boundary.deliver(out);
    }

    /// See `Engine::recover`.
    pub fn recover(&self, reason: &str) {
        self.fail_awaiting(ErrorKind::Internal, reason);
        let nodes = self.nodes.borrow().clone();
        for node in nodes {
            node.recover(reason);
        }
    }

    /// Starts the keyspace walks that waited for the first slot map, now that one was read.
    fn start_awaiting(&self) {
        if self.awaiting_map.borrow().is_empty() {
            return;
        }
        if self.primaries.get() == 0 {
            return self.fail_awaiting(
                ErrorKind::NotConnected,
                "the cluster's slot map named no reachable primary",
            );
        }
        if self.closed.get() {
            return self.fail_awaiting(
                ErrorKind::Closed,
                "the store was closed before the cluster's slot map arrived",
            );
        }
        let waiting = std::mem::take(&mut *self.awaiting_map.borrow_mut());
        for (id, pattern, count, walk) in waiting {
            if let Err(e) = self.scan_pass(id, pattern, count, walk) {
                self.deliver(id, Reply::Error(e));
            }
        }
        self.flush();
    }

    /// Settles every walk waiting for the first slot map with an error of `kind`.
    fn fail_awaiting(&self, kind: ErrorKind, why: &str) {
        let waiting = std::mem::take(&mut *self.awaiting_map.borrow_mut());
        for (id, ..) in waiting {
            self.deliver(id, Reply::Error(StoreError::new(kind, why)));
        }
    }

    /// `route`, settling the call with the error when no node can take the step.
    fn route_or_fail(&self, id: u32, step: Step) {
        if let Err(e) = self.route(id, step) {
            self.deliver(id, Reply::Error(e));
        }
    }

    pub fn flush(&self) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        let nodes = self.nodes.borrow().clone();
        let mut done = Vec::with_capacity(dirty.len());
        for i in dirty {
            if !done.contains(&i) {
                done.push(i);
                nodes[i].flush();
            }
        }
    }

    /// Stops taking calls. The nodes close together once none has a call in flight: until
    /// then every node stays open, so a call redirected while the store closes still runs.
    pub fn close(&self) {
        self.closed.set(true);
        let nodes = self.nodes.borrow().clone();
        nodes.iter().for_each(|n| n.watch_idle());
        self.close_if_idle();
    }

    fn close_if_idle(&self) {
        let nodes = self.nodes.borrow().clone();
        if self.closed.get() && !nodes.iter().any(|n| n.busy()) {
            for node in nodes {
                node.close();
            }
        }
    }

    pub fn report(&self, report: EngineReport) {
        match report {
            EngineReport::Opened(opened) => {
                let node = self.nodes.borrow().get(opened.node).cloned();
                if let Some(node) = node {
                    node.opened(opened);
                }
            }
            EngineReport::Switched => {}
            EngineReport::Slots(result) => {
                self.refreshing.set(false);
                match result {
                    Ok(map) => {
                        self.apply(map);
                        self.start_awaiting();
                    }
                    Err(why) => self.fail_awaiting(
                        ErrorKind::NotConnected,
                        &format!("no cluster node gave its slot map for the keyspace walk: {why}"),
                    ),
                }
                if self.refresh_again.replace(false) {
                    self.refresh();
                }
            }
        }
    }

    fn node_event(&self, from: usize, event: NodeEvent) {
        match event {
            NodeEvent::Redirected(redirects) => {
                let mut moved = false;
                for r in redirects {
                    let Some(to) = self.add_node(&r.to.0, r.to.1) else {
                        continue;
                    };
                    if !r.ask {
                        moved = true;
                        if let Some(slot) = r.calls.first().and_then(|c| c.slot) {
                            if self.node(from).has_pending(slot) {
                                self.drain(slot, from);
                            }
                            self.slots.borrow_mut().insert(slot, to);
                        }
                    }
                    let node = self.nodes.borrow()[to].clone();
                    for call in r.calls {
                        node.push_waiting(call, r.ask);
                    }
                    self.dirty.borrow_mut().push(to);
                }
                self.flush();
                if moved {
                    self.refresh();
                }
            }
            NodeEvent::Steps(steps) => {
                for (id, step) in steps {
                    self.route_or_fail(id, step);
                }
                self.flush();
            }
            NodeEvent::Lost => self.refresh(),
            NodeEvent::Idle => self.close_if_idle(),
            NodeEvent::Progress => {
                self.release_drained(Some(from));
                self.flush();
            }
        }
    }

    /// Reads the slot map again, off the JS thread, from the first node that answers: nodes
    /// answering now are asked first, so a node that froze (and holds the attempt for a whole
    /// `connectTimeout`) is asked last.
    fn refresh(&self) {
        if self.closed.get() {
            return;
        }
        if self.refreshing.replace(true) {
            self.refresh_again.set(true);
            return;
        }
        let Some(report) = self.report.borrow().clone() else {
            self.refreshing.set(false);
            return;
        };
        let nodes = self.nodes.borrow().clone();
        let (mut asked, rest): (Vec<_>, Vec<_>) = nodes.iter().partition(|n| n.responsive());
        asked.extend(rest);
        let targets: Vec<Target> = asked.into_iter().map(|n| n.target()).collect();
        crate::runtime::get()
            .spawn_blocking(move || report(EngineReport::Slots(read_slot_map(targets))));
    }

    /// Takes a fresh slot map, and sends the calls waiting on nodes that are down to wherever
    /// their slots live now.
    fn apply(&self, map: Vec<SlotRange>) {
        let mut slots = HashMap::with_capacity(16384);
        for range in &map {
            let Some(index) = self.add_node(&range.host, range.port) else {
                continue;
            };
            for n in range.start..=range.end {
                if let Some(slot) = Slot::new(n) {
                    slots.insert(slot, index);
                }
            }
        }
        let mut serving: Vec<usize> = slots.values().copied().collect();
        serving.sort_unstable();
        serving.dedup();
        self.primaries.set(serving.len());
        let deposed: Vec<usize> = {
            // Slots that changed owner: a primary failed over, or slots were migrated.
            let before = self.slots.borrow();
            if !before.is_empty() && slots.iter().any(|(slot, to)| before.get(slot) != Some(to)) {
                LinkCounters::add(&self.settings.spec.counters.failovers);
            }
            let mut owners: Vec<usize> = before.values().copied().collect();
            owners.sort_unstable();
            owners.dedup();
            owners.retain(|i| !serving.contains(i));
            owners
        };
        self.hold_back(|slot| slots.get(&slot).copied().unwrap_or(0));
        *self.slots.borrow_mut() = slots;
        let nodes = self.nodes.borrow().clone();
        for i in deposed {
            // A primary the cluster failed over that still keeps callers waiting: it froze or
            // is cut off (a dead one has no connection already). Its calls go to the new
            // owners now, as after any lost connection, rather than when they time out.
            if nodes[i].busy() && nodes[i].quiet() {
                nodes[i].abandon("the cluster failed this node over while it did not answer");
            }
        }
        let mut restarts = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for mut call in node.take_waiting() {
                if call.pinned() {
                    // A page of a SCAN on a node that is down: that pass starts again.
                    let role = std::mem::replace(&mut call.role, Role::Aside);
                    if let Role::Step(walk, _) = role {
                        let lost = StoreError::new(
                            ErrorKind::NotConnected,
                            "a cluster node went down during a keyspace walk",
                        );
                        restarts.push((call.id, walk.resume(Err(lost))));
                    }
                    continue;
                }
                let to = call.slot.map(|s| self.owner(s)).unwrap_or(i);
                nodes[to].push_waiting(call, false);
                self.dirty.borrow_mut().push(to);
            }
        }
        for (id, step) in restarts {
            self.route_or_fail(id, step);
        }
        self.release_drained(None);
        self.flush();
    }
}

/// How long a node asked for the slot map may keep silent before the next one is asked too.
const HEDGE_AFTER: Duration = Duration::from_millis(150);

/// Asks `targets` for the slot map in turn, off the JS thread: the next node is asked when the
/// last one failed, or kept silent for `HEDGE_AFTER` (a frozen node holds its attempt for a
/// whole `connectTimeout`); the first map that comes back wins. Answers that come later are
/// dropped.
fn read_slot_map(targets: Vec<Target>) -> Result<Vec<SlotRange>, String> {
    let (tx, rx) = mpsc::channel();
    let mut targets = targets.into_iter();
    let mut last = String::from("no cluster node answered");
    let mut asking = 0usize;
    loop {
        match targets.next() {
            Some(target) => {
                let tx = tx.clone();
                asking += 1;
                crate::runtime::get().spawn_blocking(move || {
                    let _ = tx.send(target.cluster_slots());
                });
            }
            None if asking == 0 => return Err(last),
            None => {}
        }
        // Each attempt ends within its `connectTimeout`, so waiting on the last ones ends too.
        let answer = if targets.len() > 0 {
            rx.recv_timeout(HEDGE_AFTER)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match answer {
            Ok(Ok(map)) if !map.is_empty() => return Ok(map),
            Ok(Ok(_)) => last = "a node reported no slots".into(),
            Ok(Err(e)) => last = e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(last),
        }
        asking -= 1;
    }
}

/// The one slot every key of `command` hashes to; `None` for no key or several slots.
fn one_slot(command: &Command) -> Option<Slot> {
    let keys = command.keys();
    let slot = Slot::for_key(keys.first()?);
    keys[1..]
        .iter()
        .all(|k| Slot::for_key(k) == slot)
        .then_some(slot)
}

/// A call the router holds back (see `Router::draining`), with the deadline it was made with.
struct Held {
    id: u32,
    deadline: Instant,
    call: Queued,
}

/// What a call of one slot queues on its node.
enum Queued {
    Command(Command),
    Step(Command, Walk),
    Transaction(Vec<Command>, Walk),
}

impl Queued {
    fn keys(&self) -> Keys<'_> {
        match self {
            Queued::Command(c) | Queued::Step(c, _) => c.keys(),
            Queued::Transaction(commands, _) => commands.iter().flat_map(|c| c.keys()).collect(),
        }
    }
}
