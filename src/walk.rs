//! Calls of several round trips (the keyspace walks of `length`, `ids`, `all`, `clear` and
//! index pruning; the user-index reads and deletes; moving a plain key under `hashIds`) as a
//! chain of steps a connection drives:
//! each step is one command, and its reply gives the next command or the call's reply. The
//! engine runs them on its own connection, one step per round trip, in the journal like any
//! call (so they are sent again after a reconnect); `session::run_bulk` drives the same walks
//! on the I/O-thread path, except the keyspace scans, which there follow each backend's own
//! scan (every primary of a cluster, the embedded table's keys).

use std::collections::HashSet;
use std::sync::Arc;

use crate::backend::{prefix_pattern, Command, Reply};
use crate::engine::resp::Tree;
use crate::error::{ErrorKind, StoreError};
use crate::seal::Seal;
use crate::session::Request;

/// Keys fetched or deleted per command once the walk has them all.
const CHUNK: usize = 500;

/// What a step's reply leads to.
pub enum Step {
    Send(Command, Walk),
    /// Commands sent as one transaction (`MULTI` … `EXEC`); the walk gets `EXEC`'s reply.
    Atomic(Vec<Command>, Walk),
    Done(Reply),
}

/// The rest of a walk, waiting for its last command's reply.
pub struct Walk(Box<dyn FnOnce(Result<Tree, StoreError>) -> Step + Send>);

impl Walk {
    pub fn resume(self, reply: Result<Tree, StoreError>) -> Step {
        (self.0)(reply)
    }
}

enum Then {
    Count,
    Ids,
    Entries,
    Clear,
    /// Every key found is a user index: drop its members whose session (at this prefix +
    /// member) is gone, and reply with how many went.
    Prune(String),
}

struct Scan {
    prefix: String,
    pattern: String,
    count: usize,
    seen: HashSet<String>,
    keys: Vec<String>,
    then: Then,
    seal: Arc<Seal>,
}

/// The first command of the walk `request` needs, or the request back when it is not a walk.
pub fn start(request: Request, seal: Arc<Seal>) -> Result<(Command, Walk), Request> {
    let first = |step: Step| match step {
        Step::Send(command, walk) => Ok((command, walk)),
        _ => unreachable!("every walk starts with one command"),
    };
    let (prefix, scan_count, then) = match request {
        Request::Count { prefix, scan_count } => (prefix, scan_count, Then::Count),
        Request::Ids { prefix, scan_count } => (prefix, scan_count, Then::Ids),
        Request::Entries { prefix, scan_count } => (prefix, scan_count, Then::Entries),
        Request::Clear { prefix, scan_count } => (prefix, scan_count, Then::Clear),
        Request::PruneIndexes {
            index_prefix,
            key_prefix,
            scan_count,
        } => (index_prefix, scan_count, Then::Prune(key_prefix)),
        Request::IndexRead {
            index_key,
            key_prefix,
            with_members,
        } => {
            let done = Box::new(move |live: Vec<(String, String)>, _dead: usize| {
                let mut out = Vec::with_capacity(live.len() * 2);
                for (member, value) in live {
                    if with_members {
                        out.push(Some(member));
                    }
                    out.push(Some(value));
                }
                Step::Done(Reply::List(out))
            });
            return first(read_index(index_key, key_prefix, Some(seal), done));
        }
        Request::IndexDrop {
            index_key,
            key_prefix,
        } => {
            return first(Step::Send(
                Command::SMembers(index_key.clone()),
                Walk(Box::new(move |reply| match members(reply) {
                    Ok(members) => {
                        let mut keys: Vec<String> =
                            members.iter().map(|m| format!("{key_prefix}{m}")).collect();
                        keys.push(index_key);
                        delete(keys, 0)
                    }
                    Err(step) => step,
                })),
            ))
        }
        Request::IndexedDelete {
            key,
            member,
            index_prefix,
            field,
        } => return first(indexed_delete(key, member, index_prefix, field, seal)),
        Request::Adopt { from, to } => return first(adopt(from, to, seal)),
        other => return Err(other),
    };
    let scan = Scan {
        pattern: prefix_pattern(&prefix),
        prefix,
        count: scan_count.max(1),
        seen: HashSet::new(),
        keys: Vec::new(),
        then,
        seal,
    };
    first(scan_from(scan, "0".to_string()))
}

fn unexpected(what: &str) -> Step {
    Step::Done(Reply::Error(StoreError::new(
        ErrorKind::Redis,
        format!("unexpected {what} reply from Redis"),
    )))
}

fn scan_from(scan: Scan, cursor: String) -> Step {
    let command = Command::Scan {
        cursor,
        pattern: scan.pattern.clone(),
        count: scan.count,
    };
    Step::Send(command, Walk(Box::new(move |reply| scanned(scan, reply))))
}

fn scanned(mut scan: Scan, reply: Result<Tree, StoreError>) -> Step {
    let items = match reply {
        Ok(Tree::List(items)) => items,
        Ok(_) => return unexpected("SCAN"),
        Err(e) => return Step::Done(Reply::Error(e)),
    };
    let mut items = items.into_iter();
    let (Some(Tree::Text(cursor)), Some(Tree::List(batch))) = (items.next(), items.next()) else {
        return unexpected("SCAN");
    };
    for key in batch {
        if let Tree::Text(key) = key {
            // SCAN may return a key twice; each is counted once.
            if scan.seen.insert(key.clone()) {
                scan.keys.push(key);
            }
        }
    }
    if cursor != "0" {
        return scan_from(scan, cursor);
    }
    let ids = |scan: &Scan| -> Vec<Option<String>> {
        scan.keys
            .iter()
            .map(|k| Some(k[scan.prefix.len()..].to_string()))
            .collect()
    };
    match scan.then {
        Then::Count => Step::Done(Reply::Int(scan.keys.len() as i64)),
        Then::Ids => Step::Done(Reply::List(ids(&scan))),
        Then::Clear => delete(scan.keys, 0),
        Then::Entries => fetch(scan.prefix, scan.keys, Vec::new(), scan.seal),
        Then::Prune(key_prefix) => prune(scan.keys, key_prefix, 0),
    }
}

/// The walk that prunes one user index: replies with how many members it removed.
pub fn prune_index(index_key: String, key_prefix: String) -> (Command, Walk) {
    match read_index(
        index_key,
        key_prefix,
        None,
        Box::new(|_, dead| Step::Done(Reply::Int(dead as i64))),
    ) {
        Step::Send(command, walk) => (command, walk),
        _ => unreachable!("an index read starts with one command"),
    }
}

/// A backend's reply as a walk sees it (for `session`'s driver): a failed command is an error.
pub fn tree_of(reply: Reply) -> Result<Tree, StoreError> {
    Ok(match reply {
        Reply::Nil => Tree::Nil,
        Reply::Int(n) => Tree::Int(n),
        Reply::Text(s) => Tree::Text(s),
        Reply::List(items) => Tree::List(
            items
                .into_iter()
                .map(|v| v.map_or(Tree::Nil, Tree::Text))
                .collect(),
        ),
        Reply::Error(e) => return Err(e),
    })
}

/// The members of a SET reply, or the step that ends the walk on a bad one.
fn members(reply: Result<Tree, StoreError>) -> Result<Vec<String>, Step> {
    match reply {
        Ok(Tree::List(items)) => Ok(items
            .into_iter()
            .filter_map(|t| match t {
                Tree::Text(m) => Some(m),
                _ => None,
            })
            .collect()),
        Ok(Tree::Nil) => Ok(Vec::new()),
        Ok(_) => Err(unexpected("SMEMBERS")),
        Err(e) => Err(Step::Done(Reply::Error(e))),
    }
}

type IndexDone = Box<dyn FnOnce(Vec<(String, String)>, usize) -> Step + Send>;

/// Reads the SET at `index_key`: each member's value at `key_prefix + member` (opened, when
/// `seal` is given), a chunk at a time; members whose value is gone are removed from the SET.
/// `done` gets the live `(member, value)` pairs and how many members were removed.
fn read_index(
    index_key: String,
    key_prefix: String,
    seal: Option<Arc<Seal>>,
    done: IndexDone,
) -> Step {
    Step::Send(
        Command::SMembers(index_key.clone()),
        Walk(Box::new(move |reply| match members(reply) {
            Ok(members) => index_values(
                index_key,
                key_prefix,
                seal,
                members,
                Vec::new(),
                Vec::new(),
                done,
            ),
            Err(step) => step,
        })),
    )
}

fn index_values(
    index_key: String,
    key_prefix: String,
    seal: Option<Arc<Seal>>,
    mut members: Vec<String>,
    mut live: Vec<(String, String)>,
    dead: Vec<String>,
    done: IndexDone,
) -> Step {
    if members.is_empty() {
        if dead.is_empty() {
            return done(live, 0);
        }
        let removed = dead.len();
        return Step::Send(
            Command::SRem {
                key: index_key,
                members: dead,
            },
            Walk(Box::new(move |reply| match reply {
                Ok(_) => done(live, removed),
                Err(e) => Step::Done(Reply::Error(e)),
            })),
        );
    }
    let rest = members.split_off(members.len().min(CHUNK));
    let keys: Vec<String> = members.iter().map(|m| format!("{key_prefix}{m}")).collect();
    let mut dead = dead;
    Step::Send(
        Command::MGet(keys.clone()),
        Walk(Box::new(move |reply| {
            let values = match reply {
                Ok(Tree::List(values)) => values,
                Ok(_) => return unexpected("MGET"),
                Err(e) => return Step::Done(Reply::Error(e)),
            };
            for ((member, key), value) in members.into_iter().zip(keys).zip(values) {
                match value {
                    Tree::Text(v) => {
                        let v = match &seal {
                            Some(seal) => match seal.open(&key, v) {
                                Ok(plain) => plain,
                                Err(e) => return Step::Done(Reply::Error(e)),
                            },
                            None => v,
                        };
                        live.push((member, v));
                    }
                    _ => dead.push(member),
                }
            }
            index_values(index_key, key_prefix, seal, rest, live, dead, done)
        })),
    )
}

/// Prunes the user indexes in `indexes` one after another; replies with the members removed.
fn prune(mut indexes: Vec<String>, key_prefix: String, removed: i64) -> Step {
    let Some(index_key) = indexes.pop() else {
        return Step::Done(Reply::Int(removed));
    };
    let prefix = key_prefix.clone();
    read_index(
        index_key,
        key_prefix,
        None,
        Box::new(move |_, dead| prune(indexes, prefix, removed + dead as i64)),
    )
}

/// Deletes a session and takes it out of its owner's index (named by the JSON field `field` of
/// its value), in one transaction. Replies with how many sessions were deleted (0 or 1).
fn indexed_delete(
    key: String,
    member: String,
    index_prefix: String,
    field: String,
    seal: Arc<Seal>,
) -> Step {
    Step::Send(
        Command::Get(key.clone()),
        Walk(Box::new(move |reply| {
            let stored = match reply {
                Ok(Tree::Text(s)) => s,
                Ok(_) => return Step::Done(Reply::Int(0)),
                Err(e) => return Step::Done(Reply::Error(e)),
            };
            // A value that does not open (altered) is still deleted; its index entry goes
            // when the index is next read.
            let owner = seal
                .open(&key, stored)
                .ok()
                .and_then(|plain| crate::session::json_field(&plain, &field));
            let mut commands = vec![Command::Del(vec![key])];
            if let Some(owner) = owner {
                commands.push(Command::SRem {
                    key: format!("{index_prefix}{owner}"),
                    members: vec![member],
                });
            }
            Step::Atomic(
                commands,
                Walk(Box::new(|reply| match reply {
                    Ok(Tree::List(results)) => match results.first() {
                        Some(Tree::Int(n)) => Step::Done(Reply::Int(*n)),
                        _ => Step::Done(Reply::Int(0)),
                    },
                    Ok(_) => unexpected("EXEC"),
                    Err(e) => Step::Done(Reply::Error(e)),
                })),
            )
        })),
    )
}

/// Moves the value at `from` (a key written before `hashIds`) to `to` with its expiry, sealed
/// under `to`; replies with the value, plain, or `Nil` when `from` holds nothing.
fn adopt(from: String, to: String, seal: Arc<Seal>) -> Step {
    Step::Send(
        Command::Get(from.clone()),
        Walk(Box::new(move |reply| {
            let stored = match reply {
                Ok(Tree::Text(s)) => s,
                Ok(_) => return Step::Done(Reply::Nil),
                Err(e) => return Step::Done(Reply::Error(e)),
            };
            Step::Send(
                Command::PTtl(from.clone()),
                Walk(Box::new(move |reply| {
                    let expiry = match reply {
                        Ok(Tree::Int(-1)) => crate::backend::Expiry::Never,
                        Ok(Tree::Int(ms)) if ms > 0 => {
                            crate::backend::Expiry::In((ms as u64).div_ceil(1000))
                        }
                        // Expired between the two reads.
                        Ok(_) => return Step::Done(Reply::Nil),
                        Err(e) => return Step::Done(Reply::Error(e)),
                    };
                    let plain = match seal.open(&from, stored) {
                        Ok(p) => p,
                        Err(e) => return Step::Done(Reply::Error(e)),
                    };
                    let set = Command::Set {
                        value: seal.close(&to, plain.clone()),
                        key: to,
                        expiry,
                    };
                    Step::Send(
                        set,
                        Walk(Box::new(move |reply| match reply {
                            Ok(_) => Step::Send(
                                Command::Del(vec![from]),
                                Walk(Box::new(move |reply| match reply {
                                    Ok(_) => Step::Done(Reply::Text(plain)),
                                    Err(e) => Step::Done(Reply::Error(e)),
                                })),
                            ),
                            Err(e) => Step::Done(Reply::Error(e)),
                        })),
                    )
                })),
            )
        })),
    )
}

/// Deletes `keys` a chunk at a time; replies with how many existed.
fn delete(mut keys: Vec<String>, deleted: i64) -> Step {
    if keys.is_empty() {
        return Step::Done(Reply::Int(deleted));
    }
    let rest = keys.split_off(keys.len().min(CHUNK));
    Step::Send(
        Command::Del(keys),
        Walk(Box::new(move |reply| match reply {
            Ok(Tree::Int(n)) => delete(rest, deleted + n),
            Ok(_) => unexpected("DEL"),
            Err(e) => Step::Done(Reply::Error(e)),
        })),
    )
}

/// `[id, value, …]` for the keys still there, their values opened, a chunk at a time.
fn fetch(
    prefix: String,
    mut keys: Vec<String>,
    mut out: Vec<Option<String>>,
    seal: Arc<Seal>,
) -> Step {
    if keys.is_empty() {
        return Step::Done(Reply::List(out));
    }
    let rest = keys.split_off(keys.len().min(CHUNK));
    let asked = keys.clone();
    Step::Send(
        Command::MGet(keys),
        Walk(Box::new(move |reply| {
            let values = match reply {
                Ok(Tree::List(values)) => values,
                Ok(_) => return unexpected("MGET"),
                Err(e) => return Step::Done(Reply::Error(e)),
            };
            for (key, value) in asked.into_iter().zip(values) {
                // A key that expired between SCAN and MGET is skipped.
                if let Tree::Text(v) = value {
                    match seal.open(&key, v) {
                        Ok(plain) => {
                            out.push(Some(key[prefix.len()..].to_string()));
                            out.push(Some(plain));
                        }
                        Err(e) => return Step::Done(Reply::Error(e)),
                    }
                }
            }
            fetch(prefix, rest, out, seal)
        })),
    )
}
