//! Keyspace walks (`length`, `ids`, `all`, `clear`) as a chain of steps a connection drives:
//! each step is one command, and its reply gives the next command or the call's reply. The
//! engine runs them on its own connection, one step per round trip, in the journal like any
//! call (so they are sent again after a reconnect); `session::run_bulk` runs the same walks
//! on the I/O-thread path.

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
    Done(Reply),
}

/// The rest of a walk, waiting for its last command's reply.
pub struct Walk(Box<dyn FnOnce(Result<Tree, StoreError>) -> Step>);

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
    let (prefix, scan_count, then) = match request {
        Request::Count { prefix, scan_count } => (prefix, scan_count, Then::Count),
        Request::Ids { prefix, scan_count } => (prefix, scan_count, Then::Ids),
        Request::Entries { prefix, scan_count } => (prefix, scan_count, Then::Entries),
        Request::Clear { prefix, scan_count } => (prefix, scan_count, Then::Clear),
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
    match scan_from(scan, "0".to_string()) {
        Step::Send(command, walk) => Ok((command, walk)),
        Step::Done(_) => unreachable!("a scan starts with a command"),
    }
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
    }
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
