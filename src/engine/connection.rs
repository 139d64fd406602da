//! One connection's lifecycle, on the JS thread: state, backoff, timers, reconnect, retire.
//! A call is queued in the `journal`, written by `write_out`, and answered by the `reader`;
//! dialing happens off the JS thread (`dial`).
//!
//! Riding through: the journal keeps every unanswered command until its reply arrives, so
//! when the connection drops (restart, `CLIENT KILL`) a new one starts at once and sends them
//! again; calls made meanwhile wait in the journal. A call fails only when its own
//! `commandTimeout` runs out.
//!
//! No call out under a borrow: the state's methods never call JS, the event loop or a hook.
//! They record what should happen in `State::fx` (handle operations, replies, events), and
//! `settle` carries those out once the borrow is dropped. JS that re-enters the store from a
//! delivery, or a loop that runs a callback at once, finds the state free.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use redis::cluster_routing::Slot;

use super::cache::NearCache;
use super::dial::{Dialed, Place, Target};
use super::event_loop::{self, EventLoop, Listener, OsSocket, PollHandle, TimerHandle};
use super::journal::{Fill, Journal, Role, Waiting};
use super::js::Boundary;
use super::outbox::Outbox;
use super::reader::{self, Reader, Redirect};
use super::tls::Wire;
use super::{EngineReport, Reporter};
use crate::command::{Command, Reply};
use crate::config::ConnectionSpec;
use crate::error::{ErrorKind, StoreError};
use crate::seal::Seal;
use crate::stats::LinkCounters;
use crate::walk::{Step, Walk};

const READ_CHUNK: usize = 64 * 1024;
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How long a cluster node may keep a caller waiting with nothing heard before the router is
/// told (`NodeEvent::Lost`), and how often it is told again while that lasts: a primary that
/// died or froze is failed over by the cluster, and the router reads the new slot map soon
/// after rather than when a call's whole `commandTimeout` runs out.
const SUSPECT_AFTER: Duration = Duration::from_millis(200);

/// What the connector thread reports back to the JS thread.
pub struct Opened {
    /// Which connection of the engine (a cluster has one per node; a single server, one).
    pub(crate) node: usize,
    generation: u64,
    /// The connection, or why it could not be made.
    result: Result<Dialed, String>,
}

/// Hears, on the JS thread, that the connection was established (`None`) or that calls
/// started failing for want of one.
pub type LinkHook = Rc<dyn Fn(Option<&str>)>;

/// What a cluster node tells its router.
pub enum NodeEvent {
    Redirected(Vec<Redirect>),
    /// Walks' next steps, for the router to send where their keys live.
    Steps(Vec<(u32, Step)>),
    /// The connection was lost, or calls wait here with no reply and nothing heard for
    /// `SUSPECT_AFTER` (told again every `SUSPECT_AFTER` while that lasts): the slot map may
    /// have changed.
    Lost,
    /// No caller waits here any more (told once the router asked, while the store closes).
    Idle,
    /// Replies were read or calls timed out here (told while the router asked).
    Progress,
}

pub type NodeHook = Rc<dyn Fn(NodeEvent)>;

struct Conn {
    wire: Wire,
    inbuf: Vec<u8>,
    /// Where reads land before they join `inbuf`; allocated once, so no read clears 64 KiB.
    scratch: Box<[u8]>,
    want_write: bool,
    /// When this connection last delivered bytes (or was opened): a connection silent for a
    /// whole `commandTimeout` while calls wait is replaced.
    last_read: Instant,
    /// Whether this connection has delivered any bytes (a server that froze still takes a
    /// new connection, and says nothing on it).
    heard: bool,
}

/// An operation on the connection's loop handles, carried out in order by `settle`.
enum HandleOp {
    /// Watch a new connection's socket.
    Watch(OsSocket),
    Writable(bool),
    HoldPoll(bool),
    /// Stop watching the current socket and close it once the loop lets go.
    Retire(Wire),
    Timer(Option<u64>),
    HoldTimer(bool),
    CloseTimer,
}

enum Call {
    Link(Option<String>),
    Node(NodeEvent),
}

/// What the state asked for while it was borrowed.
#[derive(Default)]
struct Effects {
    handles: Vec<HandleOp>,
    out: Outbox,
    calls: Vec<Call>,
    connect: Option<(Target, u64)>,
}

impl Effects {
    fn is_empty(&self) -> bool {
        self.handles.is_empty()
            && self.out.is_empty()
            && self.calls.is_empty()
            && self.connect.is_none()
    }
}

struct State {
    target: Target,
    journal: Journal,
    conn: Option<Conn>,
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
    counters: std::sync::Arc<LinkCounters>,
    seal: std::sync::Arc<Seal>,
    /// `counters.switches_announced` as last followed.
    switches_seen: u64,
    /// The server the last connection reached, to tell a failover from a reconnect.
    peer: Option<std::net::SocketAddr>,
    /// Its name and version (`Redis 6.0.16`), for the error of a call that needs a newer one.
    server: Option<String>,
    connected_before: bool,
    report: Option<Reporter>,
    on_link: Option<LinkHook>,
    node: usize,
    /// The near cache this connection fills and invalidates (shared by a cluster's nodes).
    cache: Option<Rc<RefCell<NearCache>>>,
    on_node: Option<NodeHook>,
    /// Tell the router when no caller waits here any more (`NodeEvent::Idle`).
    report_idle: bool,
    /// Tell the router after each read and timer (`NodeEvent::Progress`).
    report_progress: bool,
    /// When the router was last told this node is suspect (see `SUSPECT_AFTER`).
    suspected_at: Option<Instant>,
    /// Whether the socket and the timer keep the process alive, as last asked.
    poll_held: bool,
    timer_held: bool,
    fx: Effects,
}

struct Shared {
    state: RefCell<State>,
    boundary: Rc<Boundary>,
    event_loop: EventLoop,
    /// The loop handles; taken out while used, so a callback run at once finds them absent
    /// rather than borrowed.
    poll: Cell<Option<PollHandle>>,
    timer: Cell<Option<TimerHandle>>,
    me: Weak<Shared>,
}

/// A JS-thread connection. Every method must be called on the JS thread.
pub struct Connection {
    shared: Rc<Shared>,
}

impl Connection {
    /// A connection to `target`, the `node`-th of its engine; `None` when the loop gives no
    /// timer.
    pub fn new(
        boundary: &Rc<Boundary>,
        event_loop: EventLoop,
        mut target: Target,
        spec: &ConnectionSpec,
        node: usize,
    ) -> Option<Connection> {
        target.tracking = spec.cache.is_some();
        let state = State {
            target,
            journal: Journal::new(spec.command_timeout, spec.max_pending),
            conn: None,
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
            switches_seen: 0,
            peer: None,
            server: None,
            connected_before: false,
            report: None,
            on_link: None,
            node,
            cache: None,
            on_node: None,
            report_idle: false,
            report_progress: false,
            suspected_at: None,
            poll_held: false,
            timer_held: false,
            fx: Effects::default(),
        };
        let shared = Rc::new_cyclic(|me: &Weak<Shared>| Shared {
            state: RefCell::new(state),
            boundary: boundary.clone(),
            event_loop,
            poll: Cell::new(None),
            timer: Cell::new(None),
            me: me.clone(),
        });
        let listener: Weak<dyn Listener> = shared.me.clone();
        shared
            .timer
            .set(Some(TimerHandle::open(&event_loop, listener)?));
        Some(Connection { shared })
    }

    /// Starts the first connection attempt; `report` carries its outcome back, and `on_link`
    /// hears when the connection comes up or calls start failing without one.
    pub fn start(&self, report: Reporter, on_link: LinkHook) {
        self.shared.with(|s| {
            s.report = Some(report);
            s.on_link = Some(on_link);
            s.connect();
        });
    }

    /// Whether calls can go through this connection: until it is closed they always can.
    pub fn ready(&self) -> bool {
        let s = self.shared.state.borrow();
        !(s.closed || s.closing)
    }

    /// Queues one command, remembering the cluster slot its keys hash to; `Ok(Some(reply))`
    /// answers it at once from the near cache, `Err` gives it back when the store cannot take
    /// it.
    pub fn push(
        &self,
        id: u32,
        command: &Command,
        slot: Option<Slot>,
    ) -> Result<Option<Reply>, StoreError> {
        let mut s = self.shared.state.borrow_mut();
        let s = &mut *s;
        let mut fill = Fill::None;
        if let Some(cache) = &s.cache {
            match command {
                Command::Get(key) => {
                    let mut cache = cache.borrow_mut();
                    match cache.get(key) {
                        Ok(None) => return Ok(Some(Reply::Nil)),
                        Ok(Some(value)) => {
                            return Ok(Some(match s.seal.open(key, value) {
                                Ok(plain) => Reply::Text(plain),
                                Err(e) => Reply::Error(e),
                            }))
                        }
                        // One refill (GET + PTTL) per key at a time, and none while a write
                        // of ours is on the way: a hot key read and written at once costs
                        // what it does uncached.
                        Err(true) => fill = Fill::Value(key.clone()),
                        Err(false) => {}
                    }
                }
                // This process's own writes drop its entries until answered; Redis's
                // invalidations drop entries too.
                other => fill = reader::write_fill(Some(cache), other),
            }
        }
        s.journal.room_for(1)?;
        let open = s.seal.opener(command);
        s.journal.command(id, command, slot, fill, open);
        Ok(None)
    }

    /// Queues one call made of several commands, sent as one transaction (`MULTI` … `EXEC`):
    /// all of them apply, together, or (the connection lost before `EXEC`) none, and the
    /// whole transaction goes again on the next connection. Its reply is `null`, or the first
    /// error a command got. With `walk`, `EXEC`'s reply goes on to it instead.
    pub fn push_transaction(
        &self,
        id: u32,
        commands: &[Command],
        walk: Option<Walk>,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        let mut s = self.shared.state.borrow_mut();
        s.journal.room_for(commands.len() + 2)?;
        let fill = reader::transaction_fill(s.cache.as_ref(), commands);
        s.journal.transaction(id, commands, walk, slot, fill);
        Ok(())
    }

    /// Queues a keyspace walk's step (see `walk`): its first command now, each next one as the
    /// previous reply arrives. `slot` is where its keys hash to, on a cluster.
    pub fn push_step(
        &self,
        id: u32,
        command: &Command,
        walk: Walk,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        let mut s = self.shared.state.borrow_mut();
        s.journal.room_for(1)?;
        let fill = reader::write_fill(s.cache.as_ref(), command);
        s.journal.step(id, command, walk, slot, fill);
        Ok(())
    }

    /// Queues a call another connection gave up (a redirect, or a slot that moved), keeping
    /// its deadline. With `asking`, an `ASKING` goes first.
    pub fn push_waiting(&self, call: Waiting, asking: bool) {
        self.shared.with(|s| {
            if !s.closed {
                return s.journal.requeue(call, asking);
            }
            // Closed already (the store is closing): the call settles here, once, on the
            // last command of its transaction if it has several.
            if !matches!(call.role, Role::Lead) {
                s.fx.out
                    .error(call.id, ErrorKind::Closed, "the store is closed");
            }
        });
    }

    /// Takes every call still waiting out of a connection that is down, so the router can
    /// send them where their slots now live. A connected one keeps its calls.
    pub fn take_waiting(&self) -> Vec<Waiting> {
        self.shared.with(|s| {
            if s.conn.is_some() || s.journal.is_empty() {
                return Vec::new();
            }
            let taken = s.journal.take_waiting();
            s.arm_timer();
            taken
        })
    }

    /// Whether a caller waits on a call of `slot` here.
    pub fn has_pending(&self, slot: Slot) -> bool {
        self.shared.state.borrow().journal.has_slot(slot)
    }

    /// The slots of the calls waiting here.
    pub fn pending_slots(&self) -> std::collections::HashSet<Slot> {
        self.shared.state.borrow().journal.slots()
    }

    /// Gives call `id`, just queued, the deadline it was made with.
    pub fn redate(&self, id: u32, deadline: Instant) {
        self.shared.state.borrow_mut().journal.redate(id, deadline);
    }

    /// Tell the router (`NodeEvent::Progress`) after each read and timer, while it waits for
    /// calls here to be answered.
    pub fn watch_progress(&self, on: bool) {
        self.shared.state.borrow_mut().report_progress = on;
    }

    /// Where this connection goes.
    pub fn target(&self) -> Target {
        self.shared.state.borrow().target.clone()
    }

    /// The near cache's live value of `key`, opened; `Err` when it does not open.
    /// The near cache's entry for `key`, opened: `Some(Ok(None))` when it knows the key is
    /// absent.
    pub fn cached(&self, key: &str) -> Option<Result<Option<String>, StoreError>> {
        self.follow_switch();
        let s = self.shared.state.borrow();
        let hit = s.cache.as_ref()?.borrow_mut().peek(key)?;
        Some(hit.map(|v| s.seal.open(key, v)).transpose())
    }

    pub fn cache_stats(&self) -> Option<super::cache::CacheStats> {
        let s = self.shared.state.borrow();
        s.cache.as_ref().map(|c| c.borrow().stats())
    }

    pub fn set_cache(&self, cache: Rc<RefCell<NearCache>>) {
        self.shared.state.borrow_mut().cache = Some(cache);
    }

    /// Makes this connection a cluster node that tells its router of redirects and losses.
    pub fn set_node_hook(&self, hook: NodeHook) {
        self.shared.state.borrow_mut().on_node = Some(hook);
    }

    /// Writes what was queued, or starts a connection for it.
    pub fn flush(&self) {
        self.follow_switch();
        self.shared.with(|s| {
            if s.journal.is_empty() {
                return;
            }
            // A node that keeps failing is tried again when its backoff says (the timer).
            if s.send_waiting() && s.conn.is_none() && Instant::now() >= s.retry_at {
                s.connect();
            }
        });
    }

    /// After the sentinels announced a new primary (`+switch-master`), the connection to the
    /// old one goes: calls in flight are sent again on a new connection, found anew, and the
    /// near cache is emptied.
    pub fn follow_switch(&self) {
        let heard = {
            let s = self.shared.state.borrow();
            let heard = s
                .counters
                .switches_announced
                .load(std::sync::atomic::Ordering::Relaxed);
            // The common case, nothing announced: no effects to settle after.
            if heard == s.switches_seen {
                return;
            }
            heard
        };
        self.shared.with(|s| {
            s.switches_seen = heard;
            if matches!(s.target.place, Place::Sentinel { .. }) {
                s.lose_connection("the sentinels announced a new primary");
            }
        });
    }

    /// Whether this node is answering: connected, and not keeping a caller waiting with
    /// nothing heard for `SUSPECT_AFTER`. The router asks such nodes for the slot map first.
    pub fn responsive(&self) -> bool {
        let s = self.shared.state.borrow();
        s.conn.is_some() && s.suspect_since().is_none_or(|t| t > Instant::now())
    }

    /// Whether nothing came from this node for `SUSPECT_AFTER`, or ever on this connection,
    /// or it has no connection.
    pub fn quiet(&self) -> bool {
        let s = self.shared.state.borrow();
        s.conn
            .as_ref()
            .is_none_or(|c| !c.heard || c.last_read + SUSPECT_AFTER <= Instant::now())
    }

    /// Drops the connection of a node that stopped answering once the cluster moved its
    /// slots elsewhere: its calls wait for a connection again, so the router can send them to
    /// the new owners (see `take_waiting`) instead of letting them run out their timeout.
    pub fn abandon(&self, reason: &str) {
        self.shared.with(|s| s.lose_connection(reason));
    }

    /// Whether a caller waits on a call here.
    pub fn busy(&self) -> bool {
        self.shared.state.borrow().journal.waiting()
    }

    /// While the store closes: tell the router (`NodeEvent::Idle`) when no caller waits here
    /// any more, so it closes every node only once none has calls in flight.
    pub fn watch_idle(&self) {
        self.shared.state.borrow_mut().report_idle = true;
    }

    /// Stops taking calls; the connection closes once calls in flight have settled.
    pub fn close(&self) {
        self.shared.with(|s| {
            s.closing = true;
            if !s.journal.waiting() {
                s.shut_down();
            }
        });
    }

    /// Installs a finished connection attempt.
    pub fn opened(&self, opened: Opened) {
        let shared = &*self.shared;
        event_loop::contain(shared, "taking a new connection", || {
            shared.with(|s| s.install(opened))
        });
    }

    /// Puts the connection back in order after a panic elsewhere in the engine.
    pub fn recover(&self, reason: &str) {
        self.shared.recover(reason);
    }
}

impl Listener for Shared {
    fn on_ready(&self, readable: bool, writable: bool, error: Option<i32>) {
        self.with(|s| {
            if s.conn.is_none() {
                return;
            }
            if let Some(status) = error {
                return s.lose_connection(&format!("socket error {status}"));
            }
            if writable {
                if let Err(reason) = s.write_out() {
                    return s.lose_connection(&reason);
                }
            }
            if readable {
                s.read_and_deliver();
            }
        });
    }

    fn on_timer(&self) {
        self.with(State::on_timer);
    }

    fn recover(&self, reason: &str) {
        self.with(|s| {
            LinkCounters::add(&s.counters.internal_errors);
            for id in s.journal.drain() {
                s.fx.out.error(id, ErrorKind::Internal, reason);
            }
            s.last_loss = reason.to_string();
            if let Some(conn) = s.conn.take() {
                s.retire(conn);
            }
            if let Some(cache) = &s.cache {
                cache.borrow_mut().clear();
            }
            s.connecting = false;
            // A late report of the attempt under way is stale now.
            s.generation += 1;
            if !s.closed {
                s.arm_timer();
            }
        });
    }
}

impl Shared {
    /// Runs `f` on the state, then carries out what it asked for with nothing borrowed.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.borrow_mut());
        self.settle();
        r
    }

    /// Carries out the state's effects, until it asks for nothing more: handle operations in
    /// order, a connection attempt, replies to JS, then the hooks.
    fn settle(&self) {
        loop {
            let fx = std::mem::take(&mut self.state.borrow_mut().fx);
            if fx.is_empty() {
                return;
            }
            for op in fx.handles {
                self.handle(op);
            }
            if let Some((target, generation)) = fx.connect {
                self.dial(target, generation);
            }
            self.boundary.deliver(fx.out);
            for call in fx.calls {
                match call {
                    Call::Link(lost) => {
                        let hook = self.state.borrow().on_link.clone();
                        if let Some(tell) = hook {
                            tell(lost.as_deref());
                        }
                    }
                    Call::Node(event) => {
                        let hook = self.state.borrow().on_node.clone();
                        if let Some(tell) = hook {
                            tell(event);
                        }
                    }
                }
            }
        }
    }

    fn handle(&self, op: HandleOp) {
        match op {
            HandleOp::Watch(fd) => {
                let listener: Weak<dyn Listener> = self.me.clone();
                match PollHandle::open(&self.event_loop, fd, listener) {
                    Some(poll) => drop(self.poll.replace(Some(poll))),
                    None => self
                        .state
                        .borrow_mut()
                        .lose_connection("the event loop cannot watch the socket"),
                }
            }
            HandleOp::Writable(on) => self.with_poll(|p| p.watch(on)),
            HandleOp::HoldPoll(on) => self.with_poll(|p| p.hold(on)),
            HandleOp::Retire(wire) => match self.poll.take() {
                Some(poll) => poll.close(Box::new(wire)),
                None => drop(wire),
            },
            HandleOp::Timer(ms) => self.with_timer(|t| t.set(ms)),
            HandleOp::HoldTimer(on) => self.with_timer(|t| t.hold(on)),
            HandleOp::CloseTimer => drop(self.timer.take()),
        }
    }

    fn with_poll(&self, f: impl FnOnce(&PollHandle)) {
        if let Some(poll) = self.poll.take() {
            f(&poll);
            if let Some(newer) = self.poll.replace(Some(poll)) {
                // A callback run at once installed another: that one is current.
                drop(self.poll.replace(Some(newer)));
            }
        }
    }

    fn with_timer(&self, f: impl FnOnce(&TimerHandle)) {
        if let Some(timer) = self.timer.take() {
            f(&timer);
            self.timer.set(Some(timer));
        }
    }

    /// Connects and logs in off the JS thread; the outcome comes back through `report`.
    fn dial(&self, target: Target, generation: u64) {
        let (report, node) = {
            let s = self.state.borrow();
            (s.report.clone(), s.node)
        };
        let Some(report) = report else { return };
        crate::runtime::get().spawn_blocking(move || {
            let result = target.open();
            report(EngineReport::Opened(Opened {
                node,
                generation,
                result,
            }));
        });
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // This can run in a GC finalizer, where JS must not be called: the handles close, and
        // calls still in flight have no one waiting on them.
        let conn = self.state.get_mut().conn.take();
        match (self.poll.take(), conn) {
            (Some(poll), Some(conn)) => poll.close(Box::new(conn.wire)),
            (poll, _) => drop(poll),
        }
        drop(self.timer.take());
    }
}

impl State {
    fn connect(&mut self) {
        if self.connecting || self.conn.is_some() || self.closed || self.report.is_none() {
            return;
        }
        self.connecting = true;
        self.generation += 1;
        self.fx.connect = Some((self.target.clone(), self.generation));
    }

    fn tell_link(&mut self, lost: Option<&str>) {
        self.fx.calls.push(Call::Link(lost.map(str::to_string)));
    }

    fn tell_node(&mut self, event: NodeEvent) {
        if self.on_node.is_some() {
            self.fx.calls.push(Call::Node(event));
        }
    }

    fn install(&mut self, opened: Opened) {
        if self.install_stream(opened) {
            self.gave_up = false;
            self.tell_link(None);
            // Whatever waited for this connection (or was in flight on the last one) goes now.
            self.send_waiting();
        } else {
            self.arm_timer();
            if !self.connecting && self.conn.is_none() && !self.journal.is_empty() {
                self.tell_node(NodeEvent::Lost);
            }
        }
    }

    /// Puts a new connection in place; false when the attempt failed or is stale.
    fn install_stream(&mut self, opened: Opened) -> bool {
        if opened.generation != self.generation {
            return false;
        }
        self.connecting = false;
        let Dialed {
            wire,
            tracking,
            server,
        } = match opened.result {
            Ok(opened) if !self.closed => opened,
            Ok(_) => return false,
            Err(e) => {
                self.last_loss = e;
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
                return false;
            }
        };
        #[cfg(unix)]
        let fd = wire.socket().raw_fd();
        #[cfg(windows)]
        let fd = wire.socket().raw_socket();
        self.fx.handles.push(HandleOp::Watch(fd));
        // The first reconnect after a healthy connection drops is immediate.
        self.backoff = Duration::ZERO;
        // A new connection tracks nothing yet: whatever was cached may have changed unseen.
        if let Some(cache) = &self.cache {
            cache.borrow_mut().clear();
            if !tracking {
                warn_uncached(server.as_deref());
                self.cache = None;
            }
        }
        if self.connected_before {
            LinkCounters::add(&self.counters.reconnects);
        }
        self.connected_before = true;
        LinkCounters::add(&self.counters.connects);
        let peer = wire.socket().peer_addr();
        if let (Some(before), Some(now)) = (self.peer, peer) {
            if now != before {
                LinkCounters::add(&self.counters.failovers);
            }
        }
        self.peer = peer.or(self.peer);
        self.server = server;
        self.journal.resend();
        self.poll_held = false;
        self.conn = Some(Conn {
            wire,
            inbuf: Vec::with_capacity(READ_CHUNK),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            want_write: false,
            last_read: Instant::now(),
            heard: false,
        });
        true
    }

    /// Writes the journal to the connection, if there is one, and sets the timer; false when
    /// the write lost the connection.
    fn send_waiting(&mut self) -> bool {
        let result = match self.conn {
            Some(_) => self.write_out(),
            None => Ok(()),
        };
        self.arm_timer();
        match result {
            Err(reason) => {
                self.lose_connection(&reason);
                false
            }
            Ok(()) => true,
        }
    }

    /// Sends the journal from where this connection stands; watches for writability when the
    /// socket takes less than all of it.
    fn write_out(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        loop {
            let unsent = self.journal.unsent();
            if unsent.is_empty() {
                break;
            }
            match conn.wire.send(unsent)? {
                0 => break,
                n => self.journal.sent(n),
            }
        }
        conn.wire.flush()?;
        let drained = self.journal.all_sent() && !conn.wire.wants_write();
        if drained == conn.want_write {
            conn.want_write = !drained;
            self.fx.handles.push(HandleOp::Writable(!drained));
        }
        Ok(())
    }

    /// From when this cluster node counts as suspect: a caller has waited `SUSPECT_AFTER`
    /// with nothing heard meanwhile. `None` off a cluster, or while no caller waits.
    fn suspect_since(&self) -> Option<Instant> {
        self.on_node.as_ref()?;
        // The oldest waiting call was made about a `commandTimeout` before its deadline.
        let made = self.journal.next_deadline()? - self.journal.timeout();
        let heard = self.conn.as_ref().map_or(made, |c| c.last_read.max(made));
        Some(heard + SUSPECT_AFTER)
    }

    /// When the router should next hear that this node is suspect.
    fn suspect_due(&self) -> Option<Instant> {
        if self.closing {
            return None;
        }
        let since = self.suspect_since()?;
        Some(match self.suspected_at {
            Some(told) => since.max(told + SUSPECT_AFTER),
            None => since,
        })
    }

    /// Sets the timer for the next thing due: the first deadline of a call still waiting, the
    /// next reconnect attempt while calls wait for a connection, or the next time a suspect
    /// cluster node tells its router. The timer and the socket keep the process alive exactly
    /// while calls wait.
    fn arm_timer(&mut self) {
        let next_deadline = self.journal.next_deadline();
        let waiting = next_deadline.is_some();
        // After giving up (JS heard 'disconnect'), reconnecting goes on with no call waiting,
        // so 'connect' follows when the server is back; that timer alone keeps no process
        // alive.
        let reconnect =
            ((waiting || self.gave_up) && self.conn.is_none() && !self.connecting && !self.closed)
                .then_some(self.retry_at);
        let due = [next_deadline, reconnect, self.suspect_due()]
            .into_iter()
            .flatten()
            .min();
        if self.conn.is_some() && waiting != self.poll_held {
            self.poll_held = waiting;
            self.fx.handles.push(HandleOp::HoldPoll(waiting));
        }
        let ms = due.map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64 + 1);
        self.fx.handles.push(HandleOp::Timer(ms));
        if waiting != self.timer_held {
            self.timer_held = waiting;
            self.fx.handles.push(HandleOp::HoldTimer(waiting));
        }
    }

    /// Answers calls whose `commandTimeout` ran out, replaces a connection that stayed silent
    /// for a whole timeout while calls waited, and starts a reconnect that is due.
    fn on_timer(&mut self) {
        super::fault::check(super::fault::Site::Timer);
        // Replies that arrived while the JS thread was busy elsewhere (a long synchronous
        // task) count before any deadline does: read what the socket holds first.
        if self.conn.is_some()
            && self
                .journal
                .oldest_deadline()
                .is_some_and(|d| d <= Instant::now())
        {
            self.read_and_deliver();
        }
        let now = Instant::now();
        let connected = self.conn.is_some();
        let expired = self.journal.expire(now);
        let limit = self.journal.timeout();
        // Silent: the oldest command has waited its whole timeout and nothing came meanwhile.
        // (A loop's timer can fire a little early; a call's own deadline decides first.)
        let silent = self.conn.as_ref().is_some_and(|c| {
            self.journal.oldest_deadline().is_some_and(|d| d <= now)
                && now.duration_since(c.last_read) >= limit
        });
        let reconnect = !connected
            && !self.connecting
            && !self.closing
            && (!self.journal.is_empty() || self.gave_up)
            && now >= self.retry_at;
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
                        self.last_loss
                    ),
                )
            };
            for id in expired {
                self.fx.out.error(id, kind, &reason);
            }
            if !connected && !std::mem::replace(&mut self.gave_up, true) {
                self.tell_link(Some(&reason));
            }
        }
        if silent {
            self.lose_connection("no reply from Redis within the command timeout");
        } else if reconnect {
            self.connect();
        }
        if self.suspect_due().is_some_and(|due| due <= now) {
            self.suspected_at = Some(now);
            self.tell_node(NodeEvent::Lost);
        }
        self.settle_if_closing();
        if !self.closed {
            self.arm_timer();
        }
    }

    fn read_and_deliver(&mut self) {
        super::fault::check(super::fault::Site::Read);
        let State {
            conn,
            journal,
            cache,
            seal,
            on_node,
            fx,
            server,
            ..
        } = self;
        let Some(conn) = conn.as_mut() else { return };
        let before = conn.inbuf.len();
        let mut lost = match conn.wire.receive(&mut conn.scratch, &mut conn.inbuf) {
            Ok(true) => Some("the server closed the connection".to_string()),
            Ok(false) => None,
            Err(e) => Some(e),
        };
        if conn.inbuf.len() > before {
            conn.last_read = Instant::now();
            conn.heard = true;
        }
        let mut reader = Reader {
            journal,
            cache: cache.as_ref(),
            seal,
            routed: on_node.is_some(),
            server: server.as_deref(),
        };
        let read = reader.read(&conn.inbuf);
        conn.inbuf.drain(..read.used);
        journal.tidy();
        fx.out.append(read.out);
        if lost.is_none() {
            lost = read.lost;
        }
        if !read.redirects.is_empty() {
            self.tell_node(NodeEvent::Redirected(read.redirects));
        }
        if !read.steps.is_empty() {
            self.tell_node(NodeEvent::Steps(read.steps));
        }
        if read.more && lost.is_none() && !self.send_waiting() {
            return;
        }
        self.arm_timer();
        match lost {
            Some(reason) => self.lose_connection(&reason),
            None => {
                self.settle_if_closing();
            }
        }
    }

    /// The connection dropped: calls in flight stay queued and are sent again on a new
    /// connection, which starts at once. Only a call's own `commandTimeout` fails it.
    fn lose_connection(&mut self, reason: &str) {
        let Some(conn) = self.conn.take() else { return };
        self.last_loss = reason.to_string();
        if let Some(cache) = &self.cache {
            cache.borrow_mut().clear();
        }
        self.retire(conn);
        let released = self.journal.rebuild();
        if let Some(cache) = &self.cache {
            let mut cache = cache.borrow_mut();
            released.iter().for_each(|t| cache.written(*t));
        }
        self.arm_timer();
        self.tell_node(NodeEvent::Lost);
        if self.settle_if_closing() {
            return;
        }
        if !self.journal.is_empty() && Instant::now() >= self.retry_at {
            self.connect();
        }
    }

    /// Shuts down a closing connection once nothing waits on it; true if it did. A node the
    /// router watches says when it is idle.
    fn settle_if_closing(&mut self) -> bool {
        if self.report_progress {
            self.tell_node(NodeEvent::Progress);
        }
        if self.report_idle && !self.journal.waiting() {
            self.tell_node(NodeEvent::Idle);
        }
        let done = self.closing && !self.closed && !self.journal.waiting();
        if done {
            self.shut_down();
        }
        done
    }

    /// Stops watching a connection and hands its socket to the loop to close.
    fn retire(&mut self, conn: Conn) {
        self.fx.handles.push(HandleOp::Retire(conn.wire));
        self.poll_held = false;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
    }

    /// Closes everything for good. Calls still waiting are rejected with `ERR_CLOSED`.
    fn shut_down(&mut self) {
        if self.closed {
            return;
        }
        self.closing = true;
        self.closed = true;
        if let Some(conn) = self.conn.take() {
            self.retire(conn);
        }
        for id in self.journal.drain() {
            self.fx
                .out
                .error(id, ErrorKind::Closed, "the store is closed");
        }
        self.report = None;
        self.fx.handles.push(HandleOp::Timer(None));
        self.fx.handles.push(HandleOp::CloseTimer);
    }
}

/// A server that refused `HELLO 3` or `CLIENT TRACKING` (Redis before 6 has neither): said
/// once per process, and the store runs uncached.
fn warn_uncached(server: Option<&str>) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let server = server.unwrap_or("this server");
        eprintln!(
            "ferrisession: the near cache is off: it needs RESP3 client tracking (HELLO 3 and CLIENT TRACKING, Redis 6.0 or newer), which {server} refused; the store runs uncached"
        );
    });
}
