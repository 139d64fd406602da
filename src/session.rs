//! The operations every adapter needs, as requests the engine turns into commands, walks and
//! transactions; the embedded `memory://` table, which answers them in place; and the
//! connection events JS hears.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use crate::command::{Command, Reply};
use crate::config::{ConnectionSpec, Topology};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::memory::Memory;
use crate::request::Request;
use crate::seal::Seal;
use crate::walk;

/// How a request runs (see `plan`).
pub enum Plan {
    Command(Command),
    /// The first command of a walk (see `walk`), and the rest of it.
    Walk(Command, walk::Walk),
    /// Commands sent as one transaction; the reply is `null` or the first error.
    Transaction(Vec<Command>),
}

/// How this request runs: one command, a walk of several, or one transaction.
pub fn plan(request: Request, seal: &Arc<Seal>) -> StoreResult<Plan> {
    let request = match request.into_command() {
        Ok(command) => return Ok(Plan::Command(command)),
        Err(request) => request,
    };
    let request = match walk::start(request, seal.clone()) {
        Ok((command, walk)) => return Ok(Plan::Walk(command, walk)),
        Err(request) => request,
    };
    match request.into_transaction() {
        Ok(commands) => Ok(Plan::Transaction(commands)),
        Err(request) => Err(StoreError::bad_argument(format!(
            "no way to run {request:?}"
        ))),
    }
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

const EVENT_NONE: u8 = 0;
const EVENT_CONNECT: u8 = 1;
const EVENT_DISCONNECT: u8 = 2;

struct Inner {
    /// The embedded table of `memory://`; `None` when the engine carries the calls.
    memory: Option<Memory>,
    spec: ConnectionSpec,
    sink: Sink,
    closed: AtomicBool,
    /// The last event sent to JS.
    last_event: AtomicU8,
}

/// What a store runs in this process beside the engine: the embedded `memory://` table, and
/// the connection events the engine reports, for JS.
pub struct LocalCore {
    inner: Arc<Inner>,
}

impl LocalCore {
    pub fn open(spec: ConnectionSpec, sink: Sink) -> StoreResult<LocalCore> {
        let memory = matches!(spec.topology, Topology::Memory).then(Memory::new);
        let inner = Arc::new(Inner {
            memory,
            spec,
            sink,
            closed: AtomicBool::new(false),
            last_event: AtomicU8::new(EVENT_NONE),
        });
        Ok(LocalCore { inner })
    }

    /// Whether calls are answered inside `submit` (the embedded `memory://` table, which
    /// needs no I/O): no thread hop, no wake-up.
    pub fn answers_inline(&self) -> bool {
        self.inner.memory.is_some()
    }

    /// Runs the calls on the embedded table and returns their replies, in call order.
    /// Only for `answers_inline` stores.
    /// A call given as `Err(reply)` was answered before the table (a refusal, a `touchAfter`
    /// skip): its reply keeps its place among the others.
    pub fn run_inline(&self, calls: Vec<(u32, Result<Request, Reply>)>) -> Vec<(u32, Reply)> {
        let inner = &self.inner;
        let memory = match (&inner.memory, inner.closed.load(Ordering::Acquire)) {
            (Some(memory), false) => memory,
            (_, closed) => {
                let err = match closed {
                    true => StoreError::new(ErrorKind::Closed, "the store is closed"),
                    false => StoreError::new(
                        ErrorKind::Redis,
                        "internal error: only embedded stores answer inline",
                    ),
                };
                return calls
                    .into_iter()
                    .map(|(id, _)| (id, Reply::Error(err.clone())))
                    .collect();
            }
        };
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
            let replies = memory.execute_owned(std::mem::take(commands));
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
            let request = match request {
                Ok(request) => request,
                Err(reply) => {
                    flush(&mut ids, &mut commands, &mut openers, &mut out);
                    out.push((id, reply));
                    continue;
                }
            };
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
                    out.push((id, guard(|| run_bulk(memory, seal, request))));
                }
            }
        }
        flush(&mut ids, &mut commands, &mut openers, &mut out);
        out
    }

    /// For the engine's connections: `None` when one is established, `Some(reason)` when calls
    /// start failing for want of one. JS hears `'connect'` and `'disconnect'`, alternating.
    pub fn link_reporter(&self) -> impl Fn(Option<&str>) + 'static {
        let weak = Arc::downgrade(&self.inner);
        move |lost: Option<&str>| {
            if let Some(inner) = weak.upgrade() {
                inner.observe(lost);
            }
        }
    }

    /// Stops accepting calls; the embedded table's keys are dropped now, not when the store
    /// is collected.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Some(memory) = &self.inner.memory {
            memory.clear();
        }
    }
}

impl Drop for LocalCore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// Tells JS of the connection: 'disconnect' is sent when the store gives up (a call
    /// failed for want of a connection after riding through all its timeout), 'connect' when
    /// a connection is up again.
    fn observe(&self, lost: Option<&str>) {
        match lost {
            None => {
                if self.last_event.swap(EVENT_CONNECT, Ordering::AcqRel) != EVENT_CONNECT {
                    (self.sink)(Delivery::Event(LinkEvent::Connect));
                }
            }
            Some(reason) => {
                if self.last_event.swap(EVENT_DISCONNECT, Ordering::AcqRel) != EVENT_DISCONNECT {
                    (self.sink)(Delivery::Event(LinkEvent::Disconnect(reason.to_string())));
                }
            }
        }
    }
}

/// Turns a panic inside a call into an error for that call, so every call still settles.
fn guard(work: impl FnOnce() -> StoreResult<Reply>) -> Reply {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => Reply::Error(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            Reply::Error(StoreError::new(
                ErrorKind::Redis,
                format!("internal error: {what}"),
            ))
        }
    }
}

fn first_reply(replies: Vec<Reply>) -> Reply {
    replies.into_iter().next().unwrap_or(Reply::Nil)
}

/// A call of the embedded table that is more than one command. Keyspace calls read the
/// table's keys at once; the rest run the same walks the engine runs.
fn run_bulk(memory: &Memory, seal: &Arc<Seal>, request: Request) -> StoreResult<Reply> {
    let ids = |prefix: &str, keys: Vec<String>| -> Vec<Option<String>> {
        keys.into_iter()
            .map(|k| Some(k[prefix.len()..].to_string()))
            .collect()
    };
    match request {
        Request::Count { prefix, .. } => Ok(Reply::Int(memory.scan_prefix(&prefix).len() as i64)),
        Request::Ids { prefix, .. } => {
            let keys = memory.scan_prefix(&prefix);
            Ok(Reply::List(ids(&prefix, keys)))
        }
        Request::Entries { prefix, .. } => {
            let keys = memory.scan_prefix(&prefix);
            let values = memory.execute_one(Command::MGet(keys.clone()));
            let Reply::List(values) = values else {
                return Err(StoreError::new(ErrorKind::Redis, "unexpected MGET reply"));
            };
            let mut out = Vec::with_capacity(keys.len() * 2);
            for (key, value) in keys.into_iter().zip(values) {
                if let Some(v) = value {
                    out.push(Some(key[prefix.len()..].to_string()));
                    out.push(Some(seal.open(&key, v)?));
                }
            }
            Ok(Reply::List(out))
        }
        Request::Clear { prefix, .. } => {
            let keys = memory.scan_prefix(&prefix);
            Ok(memory.execute_one(Command::Del(keys)))
        }
        Request::PruneIndexes {
            index_prefix,
            key_prefix,
            ..
        } => {
            let mut removed = 0;
            for index_key in memory.scan_prefix(&index_prefix) {
                let (command, walk) = walk::prune_index(index_key, key_prefix.clone());
                match drive(memory, command, walk)? {
                    Reply::Int(n) => removed += n,
                    Reply::Error(e) => return Err(e),
                    _ => {}
                }
            }
            Ok(Reply::Int(removed))
        }
        request => match plan(request, seal)? {
            Plan::Command(command) => {
                let reply = first_reply(memory.execute(std::slice::from_ref(&command)));
                Ok(seal.open_reply_to(&command, reply))
            }
            Plan::Walk(command, walk) => drive(memory, command, walk),
            Plan::Transaction(commands) => {
                let replies = memory.execute(&commands);
                match replies.into_iter().find(|r| matches!(r, Reply::Error(_))) {
                    Some(Reply::Error(e)) => Err(e),
                    _ => Ok(Reply::Nil),
                }
            }
        },
    }
}

/// Runs a walk (see `walk`) over the embedded table, one command per step.
fn drive(memory: &Memory, first: Command, walk: walk::Walk) -> StoreResult<Reply> {
    let mut step = walk::Step::Send(first, walk);
    loop {
        step = match step {
            walk::Step::Done(reply) => return Ok(reply),
            walk::Step::Wait => {
                return Err(StoreError::new(
                    ErrorKind::Redis,
                    "internal error: a split call on the embedded table",
                ))
            }
            walk::Step::Send(command, next) => {
                next.resume(walk::tree_of(first_reply(memory.execute(&[command]))))
            }
            walk::Step::Atomic(commands, next) => {
                let tree = memory
                    .execute(&commands)
                    .into_iter()
                    .map(walk::tree_of)
                    .collect::<Result<Vec<_>, _>>()
                    .map(crate::command::Tree::List);
                next.resume(tree)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::unix_now;
    use std::sync::mpsc;

    fn memory_core() -> (LocalCore, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let sink: Sink = Arc::new(move |d| {
            let _ = tx.lock().unwrap().send(d);
        });
        let spec = crate::config::parse(r#"{"url":"memory://"}"#).unwrap();
        (LocalCore::open(spec, sink).unwrap(), rx)
    }

    fn call(core: &LocalCore, _rx: &mpsc::Receiver<Delivery>, request: Request) -> Reply {
        let mut r = core.run_inline(vec![(7, Ok(request))]);
        assert_eq!(r.len(), 1);
        let (id, reply) = r.pop().unwrap();
        assert_eq!(id, 7);
        reply
    }

    #[test]
    fn set_get_touch_destroy() {
        let (core, rx) = memory_core();
        let set = Request::Set {
            key: "sess:a".into(),
            value: "{}".into(),
            ttl_ms: Some(60_000),
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
                    ttl_ms: Some(0),
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
                    ttl_ms: None,
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
                    ttl_ms: Some(60_000),
                },
            );
        }
        call(
            &core,
            &rx,
            Request::Set {
                key: "other".into(),
                value: "x".into(),
                ttl_ms: None,
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
    fn get_and_delete_and_counters() {
        let (core, rx) = memory_core();
        call(
            &core,
            &rx,
            Request::Set {
                key: "ba:v".into(),
                value: "token".into(),
                ttl_ms: Some(60_000),
            },
        );
        let take = || Request::GetDel { key: "ba:v".into() };
        assert_eq!(call(&core, &rx, take()), Reply::Text("token".into()));
        assert_eq!(call(&core, &rx, take()), Reply::Nil);
        assert_eq!(
            call(&core, &rx, Request::Exists { key: "ba:v".into() }),
            Reply::Int(0)
        );

        let count = |ttl| Request::Increment {
            key: "ba:n".into(),
            ttl,
        };
        assert_eq!(call(&core, &rx, count(60)), Reply::Int(1));
        // A later call's TTL does not move the window the first one opened.
        assert_eq!(call(&core, &rx, count(3600)), Reply::Int(2));
        assert_eq!(
            call(&core, &rx, Request::Get { key: "ba:n".into() }),
            Reply::Text("2".into())
        );
        let memory = core.inner.memory.as_ref().expect("a memory:// core");
        let Reply::Int(ms) = memory.execute_one(Command::PTtl("ba:n".into())) else {
            panic!("PTTL gives a number")
        };
        assert!(ms > 59_000 && ms <= 60_000, "ttl {ms} ms");

        // The batch refuses a counter without a positive whole TTL.
        for bad in [0.0, -5.0, 1.5, f64::NAN] {
            let key = "ba:n";
            let nums = [
                crate::batch::op::INCREMENT as f64,
                3.0,
                bad,
                key.len() as f64,
                -1.0,
                0.0,
            ];
            let decoded = crate::batch::decode(&nums, key).unwrap();
            assert!(
                matches!(&decoded[0].1, Err(e) if e.kind == ErrorKind::BadArgument),
                "ttl {bad}"
            );
        }
    }

    #[test]
    fn json_arrays_and_millisecond_ttls_through_the_core() {
        let (core, rx) = memory_core();
        let add = |member: &str| Request::JsonArrayAdd {
            key: "idx".into(),
            member: member.into(),
        };
        assert_eq!(call(&core, &rx, add("a")), Reply::Int(1));
        assert_eq!(call(&core, &rx, add("b")), Reply::Int(1));
        assert_eq!(call(&core, &rx, add("a")), Reply::Int(0));
        let remove = Request::JsonArrayRemove {
            key: "idx".into(),
            members: vec!["a".into(), "c".into()],
        };
        assert_eq!(call(&core, &rx, remove), Reply::Int(1));
        assert_eq!(
            call(&core, &rx, Request::Get { key: "idx".into() }),
            Reply::Text(r#"["b"]"#.into())
        );

        let set = Request::Set {
            key: "ms".into(),
            value: "v".into(),
            ttl_ms: Some(1500),
        };
        assert_eq!(call(&core, &rx, set), Reply::Text("OK".into()));
        let memory = core.inner.memory.as_ref().expect("a memory:// core");
        let Reply::Int(ms) = memory.execute_one(Command::PTtl("ms".into())) else {
            panic!("PTTL gives a number")
        };
        assert!(ms > 1400 && ms <= 1500, "ttl {ms} ms");
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
