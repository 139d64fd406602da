//! The operations every adapter needs, run against whichever backend the spec names. Calls
//! arrive in batches from JS; the simple ones in a batch share one round trip.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Command, Expiry, Reply};
use crate::config::ConnectionSpec;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::runtime;
use crate::walk;

/// Keys deleted or fetched per round trip in bulk operations.
const BULK_CHUNK: usize = 500;
/// How often an idle healthy connection is checked.
const IDLE_CHECK: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Pauses between the tries of a call that rides through a restart or failover.
const RIDE_PAUSE_MIN: Duration = Duration::from_millis(25);
const RIDE_PAUSE_MAX: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// One call from an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Get {
        key: String,
    },
    /// Writes `value`; `ttl` in seconds, `None` for no expiry. A TTL of zero or less deletes.
    Set {
        key: String,
        value: String,
        ttl: Option<i64>,
    },
    /// Writes `value` to expire at an absolute UNIX time in seconds; a past time deletes.
    SetUntil {
        key: String,
        value: String,
        at: i64,
    },
    Touch {
        key: String,
        ttl: i64,
    },
    Destroy {
        keys: Vec<String>,
    },
    Count {
        prefix: String,
        scan_count: usize,
    },
    /// The keys under `prefix`, with the prefix removed.
    Ids {
        prefix: String,
        scan_count: usize,
    },
    /// `[id, value, id, value, …]` for every live key under `prefix`.
    Entries {
        prefix: String,
        scan_count: usize,
    },
    Clear {
        prefix: String,
        scan_count: usize,
    },
    Exists {
        key: String,
    },
    /// The values at `keys`, `None` where missing.
    MGet {
        keys: Vec<String>,
    },
    /// Writes `value` at `key` until the UNIX time `at` and adds `member` to the set at
    /// `index_key`, in one round trip and atomically. A past `at` removes both instead.
    IndexedSet {
        key: String,
        value: String,
        at: i64,
        index_key: String,
        member: String,
    },
    /// Deletes the JSON value at `key` and removes `member` from the set
    /// `index_prefix + value[field]`. A missing key is not an error.
    IndexedDelete {
        key: String,
        member: String,
        index_prefix: String,
        field: String,
    },
    /// The live values of the members of the set at `index_key` (each stored at
    /// `key_prefix + member`), as `[member, value, …]` pairs with `with_members`; members whose
    /// value has expired are removed from the set.
    IndexRead {
        index_key: String,
        key_prefix: String,
        with_members: bool,
    },
    /// Deletes every value the set at `index_key` points to, and the set.
    IndexDrop {
        index_key: String,
        key_prefix: String,
    },
    /// Walks every set under `index_prefix` and removes members whose value has expired.
    /// Replies with the number of members removed.
    PruneIndexes {
        index_prefix: String,
        key_prefix: String,
        scan_count: usize,
    },
    /// Puts `member` at the head of the list at `key`, once: an earlier copy is removed in the
    /// same transaction.
    ListPush {
        key: String,
        member: String,
    },
    /// The whole list at `key`, head first.
    ListRead {
        key: String,
    },
    /// Removes every occurrence of `member` from the list at `key`.
    ListRemove {
        key: String,
        member: String,
    },
    /// Moves the value at `from` (a key written before `hashIds`) to `to`, with its expiry, and
    /// replies with it as stored at `to`; `Nil` when `from` holds nothing.
    Adopt {
        from: String,
        to: String,
    },
    /// One command, already built and named: what the engine hands back when it does not
    /// carry it (keys on several cluster slots).
    Command(Command),
}

impl Request {
    /// The same request with `namespace` before every key name it holds (not before set or list
    /// members, which are ids), as a client with that key prefix would have sent it.
    pub fn in_namespace(mut self, namespace: &str) -> Request {
        if !namespace.is_empty() {
            for name in self.key_names_mut() {
                name.insert_str(0, namespace);
            }
        }
        self
    }

    /// Every key, key prefix and index prefix the request names.
    fn key_names_mut(&mut self) -> Vec<&mut String> {
        match self {
            Request::Get { key }
            | Request::Set { key, .. }
            | Request::SetUntil { key, .. }
            | Request::Touch { key, .. }
            | Request::Exists { key }
            | Request::ListPush { key, .. }
            | Request::ListRead { key }
            | Request::ListRemove { key, .. } => vec![key],
            Request::Destroy { keys } | Request::MGet { keys } => keys.iter_mut().collect(),
            Request::Count { prefix, .. }
            | Request::Ids { prefix, .. }
            | Request::Entries { prefix, .. }
            | Request::Clear { prefix, .. } => vec![prefix],
            Request::IndexedSet { key, index_key, .. } => vec![key, index_key],
            Request::IndexedDelete {
                key, index_prefix, ..
            } => vec![key, index_prefix],
            Request::IndexRead {
                index_key,
                key_prefix,
                ..
            }
            | Request::IndexDrop {
                index_key,
                key_prefix,
            } => vec![index_key, key_prefix],
            Request::PruneIndexes {
                index_prefix,
                key_prefix,
                ..
            } => vec![index_prefix, key_prefix],
            Request::Adopt { from, to } => vec![from, to],
            Request::Command(_) => vec![],
        }
    }

    /// The commands of a call that one connection runs as a transaction (`MULTI`/`EXEC`):
    /// the index writes and the list push, as `run_bulk` runs them.
    pub fn into_transaction(self) -> Result<Vec<Command>, Request> {
        match self {
            Request::IndexedSet {
                key,
                value,
                at,
                index_key,
                member,
            } => Ok(if at <= unix_now() {
                vec![
                    Command::Del(vec![key]),
                    Command::SRem {
                        key: index_key,
                        members: vec![member],
                    },
                ]
            } else {
                vec![
                    Command::Set {
                        key,
                        value,
                        expiry: Expiry::At(at as u64),
                    },
                    Command::SAdd {
                        key: index_key,
                        members: vec![member],
                    },
                ]
            }),
            Request::ListPush { key, member } => Ok(vec![
                Command::LRem {
                    key: key.clone(),
                    member: member.clone(),
                },
                Command::LPush { key, member },
            ]),
            other => Err(other),
        }
    }

    /// The single command this request needs, if it is that simple; otherwise the request
    /// itself, for the bulk path.
    pub fn into_command(self) -> Result<Command, Request> {
        Ok(match self {
            Request::Get { key } => Command::Get(key),
            Request::Set { key, value, ttl } => match ttl {
                None => Command::Set {
                    key,
                    value,
                    expiry: Expiry::Never,
                },
                Some(t) if t > 0 => Command::Set {
                    key,
                    value,
                    expiry: Expiry::In(t as u64),
                },
                Some(_) => Command::Del(vec![key]),
            },
            Request::SetUntil { key, value, at } => {
                if at <= unix_now() {
                    Command::Del(vec![key])
                } else {
                    Command::Set {
                        key,
                        value,
                        expiry: Expiry::At(at as u64),
                    }
                }
            }
            Request::Touch { key, ttl } => Command::Expire { key, seconds: ttl },
            Request::Destroy { keys } if keys.len() <= BULK_CHUNK => Command::Del(keys),
            Request::Exists { key } => Command::Exists(key),
            Request::ListRead { key } => Command::LRange(key),
            Request::Command(command) => command,
            Request::ListRemove { key, member } => Command::LRem { key, member },
            Request::MGet { keys } if !keys.is_empty() && keys.len() <= BULK_CHUNK => {
                Command::MGet(keys)
            }
            other => return Err(other),
        })
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    Connect,
    Disconnect(String),
}

/// What the core hands back to its host: replies keyed by call id, or a connection event.
#[derive(Debug)]
pub enum Delivery {
    Replies(Vec<(u32, Reply)>),
    Event(LinkEvent),
}

pub type Sink = Arc<dyn Fn(Delivery) + Send + Sync>;

const STATE_UNKNOWN: u8 = 0;
const STATE_UP: u8 = 1;
/// A reconnect attempt failed: calls fail fast until one succeeds.
const STATE_DOWN: u8 = 2;
/// A call saw the connection drop; a reconnect is under way and calls still go through.
const STATE_RECONNECTING: u8 = 3;

const EVENT_NONE: u8 = 0;
const EVENT_CONNECT: u8 = 1;
const EVENT_DISCONNECT: u8 = 2;

/// Who saw a result: a call, or the health check's own ping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    ByCall,
    ByHealthCheck,
}

struct Inner {
    backend: Backend,
    spec: ConnectionSpec,
    sink: Sink,
    state: AtomicU8,
    pending: AtomicUsize,
    closed: AtomicBool,
    /// Milliseconds since `born` of the last reply that proved the connection alive.
    last_ok: AtomicU64,
    born: Instant,
    /// Wakes the health check at once when a call sees the connection drop.
    recheck: tokio::sync::Notify,
    /// The last event sent to JS.
    last_event: AtomicU8,
    /// Milliseconds since `born` of the first failure in the current run of failures;
    /// `u64::MAX` while the connection is fine.
    failing_since: AtomicU64,
}

/// A store's core: one backend, one connection, and the calls in flight on it.
pub struct SessionCore {
    inner: Arc<Inner>,
}

impl SessionCore {
    pub fn open(spec: ConnectionSpec, sink: Sink) -> StoreResult<SessionCore> {
        let _guard = runtime::get().enter();
        let backend = Backend::open(&spec)?;
        let remote = backend.is_remote();
        let inner = Arc::new(Inner {
            backend,
            spec,
            sink,
            state: AtomicU8::new(if remote { STATE_UNKNOWN } else { STATE_UP }),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            last_ok: AtomicU64::new(0),
            born: Instant::now(),
            recheck: tokio::sync::Notify::new(),
            last_event: AtomicU8::new(EVENT_NONE),
            failing_since: AtomicU64::new(u64::MAX),
        });
        if remote {
            runtime::get().spawn(watch_health(Arc::downgrade(&inner)));
        }
        Ok(SessionCore { inner })
    }

    /// Whether calls are answered inside `submit` (the embedded `memory://` backend, which
    /// needs no I/O): no thread hop, no wake-up.
    pub fn answers_inline(&self) -> bool {
        !self.inner.backend.is_remote()
    }

    /// `run_inline` for one call.
    pub fn run_one_inline(&self, request: Request) -> Reply {
        use futures_util::FutureExt;
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Reply::Error(StoreError::new(ErrorKind::Closed, "the store is closed"));
        }
        let Some(memory) = inner.backend.embedded() else {
            return Reply::Error(StoreError::new(
                ErrorKind::Redis,
                "internal error: only embedded stores answer inline",
            ));
        };
        match request.into_command() {
            Ok(command) => {
                let seal = &inner.spec.seal;
                match seal.opener(&command) {
                    Some(opener) => seal.open_reply(&opener, memory.execute_one(command)),
                    None => memory.execute_one(command),
                }
            }
            Err(request) => {
                let _guard = runtime::get().enter();
                match guard(run_bulk(inner, request)).now_or_never() {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => Reply::Error(e),
                    None => Reply::Error(StoreError::new(
                        ErrorKind::Redis,
                        "internal error: an embedded call waited",
                    )),
                }
            }
        }
    }

    /// Runs the calls on the embedded backend and returns their replies, in call order.
    /// Only for `answers_inline` stores.
    pub fn run_inline(&self, calls: Vec<(u32, Request)>) -> Vec<(u32, Reply)> {
        use futures_util::FutureExt;
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            let err = StoreError::new(ErrorKind::Closed, "the store is closed");
            return calls
                .into_iter()
                .map(|(id, _)| (id, Reply::Error(err.clone())))
                .collect();
        }
        let _guard = runtime::get().enter();
        let mut out = Vec::with_capacity(calls.len());
        // Consecutive simple calls share one pass over the table; a bulk call runs in place,
        // so no call overtakes an earlier one.
        let mut ids = Vec::new();
        let mut commands = Vec::new();
        // With encryption, what each reply is opened with; the commands are consumed.
        let seal = &inner.spec.seal;
        let mut openers = Vec::new();
        let flush = |ids: &mut Vec<u32>,
                     commands: &mut Vec<Command>,
                     openers: &mut Vec<Option<crate::seal::Opener>>,
                     out: &mut Vec<_>| {
            if commands.is_empty() {
                return;
            }
            let replies = match inner.backend.embedded() {
                Some(memory) => memory.execute_owned(std::mem::take(commands)),
                None => unreachable!("only embedded stores answer inline"),
            };
            if openers.is_empty() {
                out.extend(ids.drain(..).zip(replies));
            } else {
                out.extend(ids.drain(..).zip(openers.drain(..).zip(replies).map(
                    |(opener, reply)| match opener {
                        Some(o) => seal.open_reply(&o, reply),
                        None => reply,
                    },
                )));
            }
        };
        for (id, request) in calls {
            match request.into_command() {
                Ok(c) => {
                    ids.push(id);
                    if seal.encrypts() {
                        openers.push(seal.opener(&c));
                    }
                    commands.push(c);
                }
                Err(request) => {
                    flush(&mut ids, &mut commands, &mut openers, &mut out);
                    let reply = match guard(run_bulk(inner, request)).now_or_never() {
                        Some(Ok(r)) => r,
                        Some(Err(e)) => Reply::Error(e),
                        None => Reply::Error(StoreError::new(
                            ErrorKind::Redis,
                            "internal error: an embedded call waited",
                        )),
                    };
                    out.push((id, reply));
                }
            }
        }
        flush(&mut ids, &mut commands, &mut openers, &mut out);
        out
    }

    /// Starts the calls and returns at once; replies arrive through the sink.
    pub fn submit(&self, calls: Vec<(u32, Request)>) {
        if calls.is_empty() {
            return;
        }
        let inner = &self.inner;
        let refusal = if inner.closed.load(Ordering::Acquire) {
            Some(StoreError::new(ErrorKind::Closed, "the store is closed"))
        } else if inner.pending.load(Ordering::Acquire) + calls.len() > inner.spec.max_pending {
            Some(StoreError::new(
                ErrorKind::Overloaded,
                format!(
                    "more than {} calls are waiting on Redis",
                    inner.spec.max_pending
                ),
            ))
        } else {
            None
        };
        if let Some(err) = refusal {
            let replies = calls
                .into_iter()
                .map(|(id, _)| (id, Reply::Error(err.clone())))
                .collect();
            (inner.sink)(Delivery::Replies(replies));
            return;
        }

        inner.pending.fetch_add(calls.len(), Ordering::AcqRel);
        let mut simple_ids = Vec::with_capacity(calls.len());
        let mut simple = Vec::with_capacity(calls.len());
        for (id, request) in calls {
            match request.into_command() {
                Ok(c) => {
                    simple_ids.push(id);
                    simple.push(c);
                }
                Err(request) => {
                    let inner = inner.clone();
                    runtime::get().spawn(async move {
                        let reply = match guard(run_bulk(&inner, request)).await {
                            Ok(r) => r,
                            Err(e) => Reply::Error(e),
                        };
                        inner.finish(vec![(id, reply)]);
                    });
                }
            }
        }
        if !simple.is_empty() {
            let inner = inner.clone();
            runtime::get().spawn(async move {
                let result = guard(inner.round_trip(&simple)).await;
                let seal = &inner.spec.seal;
                let replies = match result {
                    Ok(replies) if seal.encrypts() => simple_ids
                        .into_iter()
                        .zip(simple.iter().zip(replies))
                        .map(|(id, (command, reply))| (id, seal.open_reply_to(command, reply)))
                        .collect(),
                    Ok(replies) => simple_ids.into_iter().zip(replies).collect(),
                    Err(e) => simple_ids
                        .into_iter()
                        .map(|id| (id, Reply::Error(e.clone())))
                        .collect(),
                };
                inner.finish(replies);
            });
        }
    }

    /// For a connection outside the core (the JS-thread one) to the same server: `None` when it
    /// is established, `Some(reason)` when it drops. Both count as if a call had seen them, so
    /// events and reconnects follow at once.
    pub fn link_reporter(&self) -> impl Fn(Option<&str>) + 'static {
        let weak = Arc::downgrade(&self.inner);
        move |lost: Option<&str>| {
            if let Some(inner) = weak.upgrade() {
                match lost {
                    None => inner.observe(&Ok(())),
                    Some(reason) => inner.observe(&Err::<(), _>(StoreError::new(
                        ErrorKind::NotConnected,
                        reason,
                    ))),
                }
            }
        }
    }

    /// Stops accepting calls and drops the connection once calls in flight have settled.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

impl Drop for SessionCore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn finish(&self, replies: Vec<(u32, Reply)>) {
        self.pending.fetch_sub(replies.len(), Ordering::AcqRel);
        (self.sink)(Delivery::Replies(replies));
    }

    /// One trip to the backend, bounded by `commandTimeout`, that also tracks whether the
    /// connection is up. While the topology moves (a restart, a failover, a slot migration)
    /// the trip is sent again until it goes through or the timeout runs out; every command
    /// the adapters send is idempotent, so a repeat is harmless.
    async fn round_trip(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        self.ride_through(commands, false).await
    }

    /// `round_trip` as one transaction (see `Backend::execute_atomic`).
    async fn round_trip_atomic(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        self.ride_through(commands, true).await
    }

    async fn ride_through(&self, commands: &[Command], atomic: bool) -> StoreResult<Vec<Reply>> {
        let limit = self.spec.command_timeout;
        let deadline = Instant::now() + limit;
        let mut pause = RIDE_PAUSE_MIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let trip = async {
                if atomic {
                    self.backend.execute_atomic(commands).await
                } else {
                    self.backend.execute(commands).await
                }
            };
            let result = match tokio::time::timeout(left, trip).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::timeout(limit)),
            };
            let moving = match &result {
                Err(e) => e.transient,
                Ok(replies) => replies
                    .iter()
                    .any(|r| matches!(r, Reply::Error(e) if e.transient)),
            };
            if !moving || Instant::now() + pause >= deadline {
                self.observe(&result);
                return result;
            }
            self.blip();
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RIDE_PAUSE_MAX);
        }
    }

    fn observe<T>(&self, result: &StoreResult<T>) {
        self.observe_as(result, Seen::ByCall)
    }

    /// A call saw the connection drop or the topology move and will try again: the health
    /// check looks at once, but nobody is told, since the store may well ride through it.
    fn blip(&self) {
        if self.backend.is_remote() && self.state.load(Ordering::Acquire) != STATE_DOWN {
            self.state.store(STATE_RECONNECTING, Ordering::Release);
            self.recheck.notify_one();
        }
    }

    /// Tracks the connection's state. 'disconnect' is sent when the store gives up: a call
    /// failed for want of a connection after riding through all its timeout, or the health
    /// check has failed for a whole `commandTimeout`. Events follow the last one sent, so
    /// 'connect' and 'disconnect' alternate.
    fn observe_as<T>(&self, result: &StoreResult<T>, seen: Seen) {
        if !self.backend.is_remote() {
            return;
        }
        let now = self.born.elapsed().as_millis() as u64;
        match result {
            Ok(_) => {
                self.last_ok.store(now, Ordering::Relaxed);
                self.failing_since.store(u64::MAX, Ordering::Relaxed);
                let before = self.state.swap(STATE_UP, Ordering::AcqRel);
                if before == STATE_RECONNECTING || before == STATE_DOWN {
                    crate::stats::LinkCounters::add(&self.spec.counters.reconnects);
                }
                if self.last_event.swap(EVENT_CONNECT, Ordering::AcqRel) != EVENT_CONNECT {
                    (self.sink)(Delivery::Event(LinkEvent::Connect));
                }
            }
            Err(e) if e.is_connection_loss() => {
                let since = match self.failing_since.compare_exchange(
                    u64::MAX,
                    now,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => now,
                    Err(earlier) => earlier,
                };
                let given_up = match seen {
                    Seen::ByCall => true,
                    Seen::ByHealthCheck => {
                        now.saturating_sub(since) >= self.spec.command_timeout.as_millis() as u64
                    }
                };
                if !given_up {
                    self.state.store(STATE_RECONNECTING, Ordering::Release);
                    return;
                }
                self.state.store(STATE_DOWN, Ordering::Release);
                if self.last_event.swap(EVENT_DISCONNECT, Ordering::AcqRel) != EVENT_DISCONNECT {
                    (self.sink)(Delivery::Event(LinkEvent::Disconnect(e.message.clone())));
                }
            }
            Err(_) => {}
        }
    }

    async fn scan(&self, prefix: &str, scan_count: usize) -> StoreResult<Vec<String>> {
        let result = self.backend.scan_prefix(prefix, scan_count).await;
        self.observe(&result);
        result
    }
}

/// `work`'s result, or `ERR_TIMEOUT` once `limit` has passed.
async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(StoreError::timeout(limit)))
}

/// Turns a panic inside a call into an error for that call, so every call still settles.
async fn guard<T>(work: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            Err(StoreError::new(
                ErrorKind::Redis,
                format!("internal error: {what}"),
            ))
        }
    }
}

fn first_reply(replies: Vec<Reply>) -> Reply {
    replies.into_iter().next().unwrap_or(Reply::Nil)
}

async fn run_bulk(inner: &Inner, request: Request) -> StoreResult<Reply> {
    match request {
        Request::Destroy { keys } => Ok(Reply::Int(delete_keys(inner, &keys).await?)),
        Request::Count { prefix, scan_count } => Ok(Reply::Int(
            inner.scan(&prefix, scan_count).await?.len() as i64,
        )),
        Request::Ids { prefix, scan_count } => {
            let keys = inner.scan(&prefix, scan_count).await?;
            Ok(Reply::List(
                keys.into_iter()
                    .map(|k| Some(k[prefix.len()..].to_string()))
                    .collect(),
            ))
        }
        Request::Entries { prefix, scan_count } => {
            let keys = inner.scan(&prefix, scan_count).await?;
            let mut out = Vec::with_capacity(keys.len() * 2);
            for chunk in keys.chunks(BULK_CHUNK) {
                let values =
                    match first_reply(inner.round_trip(&[Command::MGet(chunk.to_vec())]).await?) {
                        Reply::List(v) => v,
                        Reply::Error(e) => return Err(e),
                        other => {
                            return Err(StoreError::new(
                                ErrorKind::Redis,
                                format!("unexpected MGET reply {other:?}"),
                            ))
                        }
                    };
                for (key, value) in chunk.iter().zip(values) {
                    // A key that expired between SCAN and MGET is skipped.
                    if let Some(v) = value {
                        out.push(Some(key[prefix.len()..].to_string()));
                        out.push(Some(inner.spec.seal.open(key, v)?));
                    }
                }
            }
            Ok(Reply::List(out))
        }
        Request::Clear { prefix, scan_count } => {
            let keys = inner.scan(&prefix, scan_count).await?;
            Ok(Reply::Int(delete_keys(inner, &keys).await?))
        }
        Request::MGet { keys } => {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(BULK_CHUNK) {
                out.extend(mget(inner, chunk.to_vec()).await?);
            }
            let seal = &inner.spec.seal;
            Ok(seal.open_reply(&crate::seal::Opener::Keys(keys), Reply::List(out)))
        }
        transaction @ (Request::IndexedSet { .. } | Request::ListPush { .. }) => {
            let commands = match transaction.into_transaction() {
                Ok(commands) => commands,
                Err(other) => {
                    return Err(StoreError::bad_argument(format!(
                        "not a transaction: {other:?}"
                    )))
                }
            };
            let replies = inner.round_trip_atomic(&commands).await?;
            match replies.into_iter().find(|r| matches!(r, Reply::Error(_))) {
                Some(Reply::Error(e)) => Err(e),
                _ => Ok(Reply::Nil),
            }
        }
        walked @ (Request::IndexedDelete { .. }
        | Request::IndexRead { .. }
        | Request::IndexDrop { .. }
        | Request::Adopt { .. }) => match walk::start(walked, inner.spec.seal.clone()) {
            Ok((command, walk)) => drive(inner, command, walk).await,
            Err(other) => Err(StoreError::bad_argument(format!("not a walk: {other:?}"))),
        },
        Request::PruneIndexes {
            index_prefix,
            key_prefix,
            scan_count,
        } => {
            // The indexes are found with this backend's own scan (every primary of a cluster),
            // then each is pruned by the same walk the engine runs.
            let mut removed = 0;
            for index_key in inner.scan(&index_prefix, scan_count).await? {
                let (command, walk) = walk::prune_index(index_key, key_prefix.clone());
                match drive(inner, command, walk).await? {
                    Reply::Int(n) => removed += n,
                    other => {
                        return Err(StoreError::new(
                            ErrorKind::Redis,
                            format!("unexpected index prune reply {other:?}"),
                        ))
                    }
                }
            }
            Ok(Reply::Int(removed))
        }
        simple => match simple.into_command() {
            Ok(command) => Ok(first_reply(inner.round_trip(&[command]).await?)),
            Err(request) => Err(StoreError::bad_argument(format!(
                "no way to run {request:?}"
            ))),
        },
    }
}

/// Deletes `keys` in bounded batches; returns how many existed.
async fn delete_keys(inner: &Inner, keys: &[String]) -> StoreResult<i64> {
    let mut deleted = 0;
    for chunk in keys.chunks(BULK_CHUNK) {
        match first_reply(inner.round_trip(&[Command::Del(chunk.to_vec())]).await?) {
            Reply::Int(n) => deleted += n,
            Reply::Error(e) => return Err(e),
            _ => {}
        }
    }
    Ok(deleted)
}

async fn mget(inner: &Inner, keys: Vec<String>) -> StoreResult<Vec<Option<String>>> {
    match first_reply(inner.round_trip(&[Command::MGet(keys)]).await?) {
        Reply::List(v) => Ok(v),
        Reply::Error(e) => Err(e),
        other => Err(StoreError::new(
            ErrorKind::Redis,
            format!("unexpected MGET reply {other:?}"),
        )),
    }
}

/// Runs a walk (see `walk`) over this backend, one round trip per step.
async fn drive(inner: &Inner, first: Command, walk: walk::Walk) -> StoreResult<Reply> {
    let mut step = walk::Step::Send(first, walk);
    loop {
        step = match step {
            walk::Step::Done(reply) => return Ok(reply),
            walk::Step::Wait => {
                return Err(StoreError::new(
                    ErrorKind::Redis,
                    "a split call reached the I/O thread",
                ))
            }
            walk::Step::Send(command, next) => {
                let reply = first_reply(inner.round_trip(&[command]).await?);
                next.resume(walk::tree_of(reply))
            }
            walk::Step::Atomic(commands, next) => {
                let replies = inner.round_trip_atomic(&commands).await?;
                let tree = replies
                    .into_iter()
                    .map(walk::tree_of)
                    .collect::<Result<Vec<_>, _>>()
                    .map(crate::engine::resp::Tree::List);
                next.resume(tree)
            }
        };
    }
}

/// The string form of a top-level field of a JSON object, if it is a string or a number.
pub(crate) fn json_field(json: &str, field: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(json)
        .ok()?
        .get(field)?
    {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Keeps the connection's state current: pings an idle connection so a drop is noticed, and
/// retries a lost one with backoff so the store reconnects by itself.
async fn watch_health(weak: std::sync::Weak<Inner>) {
    let mut retry = RETRY_MIN;
    let mut first = true;
    let mut failed = false;
    loop {
        let wait = {
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            match inner.state.load(Ordering::Acquire) {
                _ if first => Duration::ZERO,
                _ if failed => retry,
                STATE_RECONNECTING => Duration::ZERO,
                _ => IDLE_CHECK,
            }
        };
        first = false;
        {
            // Holding the core for at most one wait; it is released right after.
            let Some(inner) = weak.upgrade() else { return };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = inner.recheck.notified() => {}
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let state = inner.state.load(Ordering::Acquire);
        let since_ok =
            inner.born.elapsed().as_millis() as u64 - inner.last_ok.load(Ordering::Relaxed);
        if state == STATE_UP && since_ok < IDLE_CHECK.as_millis() as u64 {
            continue;
        }
        let limit = inner
            .spec
            .connect_timeout
            .min(inner.spec.command_timeout.max(RETRY_MAX));
        let ping = || within(limit, inner.backend.execute(&[Command::Ping]));
        let mut result = ping().await;
        // Right after a drop the first ping can fail on the dead socket while the reconnect
        // it triggers is still under way; only a second failure means the server is down.
        if state == STATE_RECONNECTING && result.as_ref().is_err_and(|e| e.is_connection_loss()) {
            result = ping().await;
        }
        inner.observe_as(&result, Seen::ByHealthCheck);
        failed = result.is_err();
        retry = if result.is_ok() {
            RETRY_MIN
        } else {
            (retry * 2).min(RETRY_MAX)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn memory_core() -> (SessionCore, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let sink: Sink = Arc::new(move |d| {
            let _ = tx.lock().unwrap().send(d);
        });
        let spec = crate::config::parse(r#"{"url":"memory://"}"#).unwrap();
        (SessionCore::open(spec, sink).unwrap(), rx)
    }

    fn call(core: &SessionCore, rx: &mpsc::Receiver<Delivery>, request: Request) -> Reply {
        core.submit(vec![(7, request)]);
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            Delivery::Replies(mut r) => {
                assert_eq!(r.len(), 1);
                let (id, reply) = r.pop().unwrap();
                assert_eq!(id, 7);
                reply
            }
            Delivery::Event(e) => panic!("unexpected event {e:?}"),
        }
    }

    #[test]
    fn set_get_touch_destroy() {
        let (core, rx) = memory_core();
        let set = Request::Set {
            key: "sess:a".into(),
            value: "{}".into(),
            ttl: Some(60),
        };
        assert_eq!(call(&core, &rx, set), Reply::Text("OK".into()));
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Get {
                    key: "sess:a".into()
                }
            ),
            Reply::Text("{}".into())
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Touch {
                    key: "sess:a".into(),
                    ttl: 10
                }
            ),
            Reply::Int(1)
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Destroy {
                    keys: vec!["sess:a".into()]
                }
            ),
            Reply::Int(1)
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Get {
                    key: "sess:a".into()
                }
            ),
            Reply::Nil
        );
    }

    #[test]
    fn zero_ttl_and_past_expiry_delete() {
        let (core, rx) = memory_core();
        for (key, request) in [
            (
                "k1",
                Request::Set {
                    key: "k1".into(),
                    value: "v".into(),
                    ttl: Some(0),
                },
            ),
            (
                "k2",
                Request::SetUntil {
                    key: "k2".into(),
                    value: "v".into(),
                    at: unix_now() - 5,
                },
            ),
        ] {
            call(
                &core,
                &rx,
                Request::Set {
                    key: key.into(),
                    value: "old".into(),
                    ttl: None,
                },
            );
            call(&core, &rx, request);
            assert_eq!(
                call(&core, &rx, Request::Get { key: key.into() }),
                Reply::Nil
            );
        }
    }

    #[test]
    fn bulk_operations_stay_inside_prefix() {
        let (core, rx) = memory_core();
        for i in 0..1200 {
            call(
                &core,
                &rx,
                Request::Set {
                    key: format!("p:{i}"),
                    value: format!("{i}"),
                    ttl: Some(60),
                },
            );
        }
        call(
            &core,
            &rx,
            Request::Set {
                key: "other".into(),
                value: "x".into(),
                ttl: None,
            },
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Count {
                    prefix: "p:".into(),
                    scan_count: 100
                }
            ),
            Reply::Int(1200)
        );
        let Reply::List(entries) = call(
            &core,
            &rx,
            Request::Entries {
                prefix: "p:".into(),
                scan_count: 100,
            },
        ) else {
            panic!("entries must be a list")
        };
        assert_eq!(entries.len(), 2400);
        assert_eq!(
            entries[0]
                .as_deref()
                .unwrap()
                .parse::<u32>()
                .unwrap()
                .to_string(),
            entries[1].clone().unwrap()
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Clear {
                    prefix: "p:".into(),
                    scan_count: 100
                }
            ),
            Reply::Int(1200)
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Count {
                    prefix: "p:".into(),
                    scan_count: 100
                }
            ),
            Reply::Int(0)
        );
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Get {
                    key: "other".into()
                }
            ),
            Reply::Text("x".into())
        );
    }

    #[test]
    fn index_operations_prune_and_drop() {
        let (core, rx) = memory_core();
        let later = unix_now() + 3600;
        for id in ["s1", "s2"] {
            let r = call(
                &core,
                &rx,
                Request::IndexedSet {
                    key: format!("session:{id}"),
                    value: format!(r#"{{"id":"{id}","user_id":"u1"}}"#),
                    at: later,
                    index_key: "user_sessions:u1".into(),
                    member: id.into(),
                },
            );
            assert_eq!(r, Reply::Nil);
        }
        // s2's value disappears behind the index's back.
        call(
            &core,
            &rx,
            Request::Destroy {
                keys: vec!["session:s2".into()],
            },
        );
        let Reply::List(live) = call(
            &core,
            &rx,
            Request::IndexRead {
                index_key: "user_sessions:u1".into(),
                key_prefix: "session:".into(),
                with_members: false,
            },
        ) else {
            panic!("index read gives a list")
        };
        assert_eq!(live.len(), 1);
        assert!(live[0].as_deref().unwrap().contains("s1"));
        let Reply::List(members) = call(
            &core,
            &rx,
            Request::MGet {
                keys: vec!["session:s1".into(), "nope".into()],
            },
        ) else {
            panic!("mget gives a list")
        };
        assert_eq!(members[1], None);

        let r = call(
            &core,
            &rx,
            Request::IndexedDelete {
                key: "session:s1".into(),
                member: "s1".into(),
                index_prefix: "user_sessions:".into(),
                field: "user_id".into(),
            },
        );
        assert_eq!(r, Reply::Int(1));
        assert_eq!(
            call(
                &core,
                &rx,
                Request::Exists {
                    key: "user_sessions:u1".into()
                }
            ),
            Reply::Int(0)
        );
        let missing = call(
            &core,
            &rx,
            Request::IndexedDelete {
                key: "session:none".into(),
                member: "none".into(),
                index_prefix: "user_sessions:".into(),
                field: "user_id".into(),
            },
        );
        assert_eq!(missing, Reply::Int(0));
    }

    #[test]
    fn closed_core_refuses() {
        let (core, rx) = memory_core();
        core.close();
        match call(&core, &rx, Request::Get { key: "x".into() }) {
            Reply::Error(e) => assert_eq!(e.kind, ErrorKind::Closed),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
