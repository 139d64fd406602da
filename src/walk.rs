//! Calls of several round trips (the keyspace walks of `length`, `ids`, `all`, `clear` and
//! index pruning; the user-index reads and deletes; moving a plain key under `hashIds`; reads
//! and deletes of more keys than one command carries) as a chain of steps: each step is one
//! command, and its reply gives the next command or the call's reply. The engine runs them
//! one step per round trip, in the journal like any call (so they are sent again after a
//! reconnect); on a cluster each step goes where its keys live, split by slot and joined
//! (`join`). `session::run_bulk` drives the same walks over the embedded table.

use std::collections::HashSet;
use std::sync::Arc;

use crate::command::Tree;
use crate::command::{prefix_pattern, Command, Reply};
use crate::error::{ErrorKind, StoreError};
use crate::request::Request;
use crate::seal::Seal;

/// Keys fetched or deleted per command once the walk has them all.
const CHUNK: usize = 500;

/// What a step's reply leads to.
pub enum Step {
    Send(Command, Walk),
    /// Commands sent as one transaction (`MULTI` … `EXEC`); the walk gets `EXEC`'s reply.
    Atomic(Vec<Command>, Walk),
    Done(Reply),
    /// Other parts of this call are still out (a cluster call split across slots or nodes):
    /// nothing to send for this one.
    Wait,
}

/// The rest of a walk, waiting for its last command's reply.
pub struct Walk(Box<dyn FnOnce(Result<Tree, StoreError>) -> Step + Send>);

impl Walk {
    pub fn resume(self, reply: Result<Tree, StoreError>) -> Step {
        (self.0)(reply)
    }
}

type Merge = Box<dyn FnOnce(Vec<Result<Tree, StoreError>>) -> Step + Send>;

struct JoinState {
    left: usize,
    results: Vec<Option<Result<Tree, StoreError>>>,
    merge: Option<Merge>,
}

/// One step of a call split into parts that run at once (a cluster's `MGET` and `DEL` split by
/// slot, a `SCAN` on every primary): each part hands its reply in, and the last one hands all
/// of them, in part order, to `merge`, whose step goes on with the call.
pub fn join(
    parts: usize,
    merge: impl FnOnce(Vec<Result<Tree, StoreError>>) -> Step + Send + 'static,
) -> Vec<Part> {
    let state = Arc::new(std::sync::Mutex::new(JoinState {
        left: parts,
        results: (0..parts).map(|_| None).collect(),
        merge: Some(Box::new(merge)),
    }));
    (0..parts)
        .map(|index| Part {
            state: state.clone(),
            index,
        })
        .collect()
}

/// One part of a `join`.
pub struct Part {
    state: Arc<std::sync::Mutex<JoinState>>,
    index: usize,
}

impl Part {
    /// Hands this part's reply in: the merged call's next step when it is the last, else
    /// `Step::Wait`.
    pub fn finish(self, reply: Result<Tree, StoreError>) -> Step {
        let merge = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.results[self.index] = Some(reply);
            state.left -= 1;
            if state.left > 0 {
                return Step::Wait;
            }
            let results = std::mem::take(&mut state.results);
            state.merge.take().map(|m| (m, results))
        };
        match merge {
            Some((merge, results)) => merge(
                results
                    .into_iter()
                    .map(|r| r.unwrap_or(Ok(Tree::Nil)))
                    .collect(),
            ),
            None => Step::Wait,
        }
    }

    /// A walk whose one reply is this part's.
    pub fn walk(self) -> Walk {
        Walk(Box::new(move |reply| self.finish(reply)))
    }
}

impl Walk {
    pub fn new(f: impl FnOnce(Result<Tree, StoreError>) -> Step + Send + 'static) -> Walk {
        Walk(Box::new(f))
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
        Request::IndexedDelete {
            key,
            member,
            index_prefix,
            field,
        } => return first(indexed_delete(key, member, index_prefix, field, seal)),
        Request::Adopt { from, to } => return first(adopt(from, to, seal)),
        // More keys than one command should carry: a chunk at a time.
        Request::Destroy { keys } if !keys.is_empty() => return first(delete(keys, 0)),
        Request::MGet { keys } if !keys.is_empty() => {
            return first(fetch(None, keys, Vec::new(), seal))
        }
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

fn unexpected_error(what: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Redis,
        format!("unexpected {what} reply from Redis"),
    )
}

fn unexpected(what: &str) -> Step {
    Step::Done(Reply::Error(unexpected_error(what)))
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
        Then::Entries => fetch(Some(scan.prefix), scan.keys, Vec::new(), scan.seal),
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

/// A walk's reply as a call's reply (lists of text and nil, as `MGET` gives).
fn reply_of(tree: Tree) -> Reply {
    match tree {
        Tree::Nil => Reply::Nil,
        Tree::Int(n) => Reply::Int(n),
        Tree::Text(s) => Reply::Text(s),
        Tree::List(items) => Reply::List(
            items
                .into_iter()
                .map(|t| match t {
                    Tree::Text(s) => Some(s),
                    Tree::Int(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
    }
}

/// One command as a walk of one step (a cluster command whose keys span slots, split by the
/// router): its reply is the call's, values opened under encryption.
pub fn whole(command: Command, seal: Arc<Seal>) -> (Command, Walk) {
    let opener = seal.opener(&command);
    let walk = Walk::new(move |reply| {
        Step::Done(match (reply, opener) {
            (Err(e), _) => Reply::Error(e),
            (Ok(tree), Some(opener)) => seal.open_reply(&opener, reply_of(tree)),
            (Ok(tree), None) => reply_of(tree),
        })
    });
    (command, walk)
}

/// A cluster's full pass over the keyspace: one `SCAN` walk per primary, each from cursor 0
/// on its node, joined into the reply one server's `SCAN` gives at its last page
/// (`["0", keys]`). A node lost during its pass (`ERR_NOT_CONNECTED`) makes the whole pass start
/// again, as `SCAN` cursors mean nothing on another server; its keys are found anew.
pub fn scan_nodes(nodes: usize, pattern: String, count: usize, walk: Walk) -> Vec<(Command, Walk)> {
    let again = Command::Scan {
        cursor: "0".into(),
        pattern: pattern.clone(),
        count,
    };
    let parts = join(nodes, move |results| {
        let mut keys = Vec::new();
        let mut lost = false;
        for result in results {
            match result {
                Ok(Tree::List(found)) => keys.extend(found),
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotConnected => lost = true,
                Err(e) => return walk.resume(Err(e)),
            }
        }
        if lost {
            return Step::Send(again, walk);
        }
        walk.resume(Ok(Tree::List(vec![
            Tree::Text("0".into()),
            Tree::List(keys),
        ])))
    });
    parts
        .into_iter()
        .map(|part| scan_node(pattern.clone(), count, "0".into(), Vec::new(), part))
        .collect()
}

/// One node's pages of a `scan_nodes` pass.
fn scan_node(
    pattern: String,
    count: usize,
    cursor: String,
    mut keys: Vec<Tree>,
    part: Part,
) -> (Command, Walk) {
    let command = Command::Scan {
        cursor,
        pattern: pattern.clone(),
        count,
    };
    let walk = Walk::new(move |reply| {
        let items = match reply {
            Ok(Tree::List(items)) => items,
            Ok(_) => return part.finish(Err(unexpected_error("SCAN"))),
            Err(e) => return part.finish(Err(e)),
        };
        let mut items = items.into_iter();
        let (Some(Tree::Text(cursor)), Some(Tree::List(batch))) = (items.next(), items.next())
        else {
            return part.finish(Err(unexpected_error("SCAN")));
        };
        keys.extend(batch);
        if cursor == "0" {
            return part.finish(Ok(Tree::List(keys)));
        }
        let (command, walk) = scan_node(pattern, count, cursor, keys, part);
        Step::Send(command, walk)
    });
    (command, walk)
}

/// `command`, an `MGET` or `DEL` whose keys lie in several cluster slots, as one command per
/// group of key positions (`groups`, one per slot), and their walks, which join the replies
/// into the one the whole command gives. Any other command comes back as it is.
pub fn split(
    command: Command,
    groups: Vec<Vec<usize>>,
    walk: Walk,
) -> Result<Vec<(Command, Walk)>, (Command, Walk)> {
    let (keys, mget) = match command {
        Command::MGet(keys) => (keys, true),
        Command::Del(keys) => (keys, false),
        other => return Err((other, walk)),
    };
    let total = keys.len();
    let positions = groups.clone();
    let parts = join(groups.len(), move |results| {
        if mget {
            let mut values: Vec<Tree> = (0..total).map(|_| Tree::Nil).collect();
            for (group, result) in positions.into_iter().zip(results) {
                match result {
                    Ok(Tree::List(found)) => {
                        for (i, value) in group.into_iter().zip(found) {
                            values[i] = value;
                        }
                    }
                    Ok(_) => return walk.resume(Err(unexpected_error("MGET"))),
                    Err(e) => return walk.resume(Err(e)),
                }
            }
            walk.resume(Ok(Tree::List(values)))
        } else {
            let mut deleted = 0;
            for result in results {
                match result {
                    Ok(Tree::Int(n)) => deleted += n,
                    Ok(_) => return walk.resume(Err(unexpected_error("DEL"))),
                    Err(e) => return walk.resume(Err(e)),
                }
            }
            walk.resume(Ok(Tree::Int(deleted)))
        }
    });
    Ok(groups
        .into_iter()
        .zip(parts)
        .map(|(group, part)| {
            let some: Vec<String> = group.iter().map(|&i| keys[i].clone()).collect();
            let command = if mget {
                Command::MGet(some)
            } else {
                Command::Del(some)
            };
            (command, part.walk())
        })
        .collect())
}

/// A transaction whose keys lie in several cluster slots, which no server can run whole: its
/// commands go at once, each on its own, and their replies join into the one `EXEC` gives.
pub fn spread(commands: Vec<Command>, walk: Walk) -> Vec<(Command, Walk)> {
    let parts = join(commands.len(), move |results| {
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(tree) => out.push(tree),
                Err(e) => return walk.resume(Err(e)),
            }
        }
        walk.resume(Ok(Tree::List(out)))
    });
    commands
        .into_iter()
        .zip(parts)
        .map(|(command, part)| (command, part.walk()))
        .collect()
}

/// Whether `command` is a page of a walk already under way on one server (a `SCAN` past its
/// first page): it runs where the pages before it ran.
pub fn is_page(command: &Command) -> bool {
    matches!(command, Command::Scan { cursor, .. } if cursor != "0")
}

/// A transaction as a walk's last step: the call's reply is `null`, or the first error.
pub fn transaction() -> Walk {
    Walk::new(|reply| {
        Step::Done(match reply {
            Err(e) => Reply::Error(e),
            Ok(_) => Reply::Nil,
        })
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
                .and_then(|plain| crate::request::json_field(&plain, &field));
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
                        Ok(Tree::Int(-1)) => crate::command::Expiry::Never,
                        Ok(Tree::Int(ms)) if ms > 0 => {
                            crate::command::Expiry::In((ms as u64).div_ceil(1000))
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

/// The values at `keys`, opened, a chunk at a time: with `ids` (the prefix the keys share),
/// `[id, value, …]` for the keys still there; without, every value in order, `null` where
/// missing.
fn fetch(
    ids: Option<String>,
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
        Walk::new(move |reply| {
            let values = match reply {
                Ok(Tree::List(values)) => values,
                Ok(_) => return unexpected("MGET"),
                Err(e) => return Step::Done(Reply::Error(e)),
            };
            for (key, value) in asked.into_iter().zip(values) {
                let Tree::Text(v) = value else {
                    // Missing, or (for `ids`) expired between SCAN and MGET: skipped.
                    if ids.is_none() {
                        out.push(None);
                    }
                    continue;
                };
                let plain = match seal.open(&key, v) {
                    Ok(plain) => plain,
                    Err(e) => return Step::Done(Reply::Error(e)),
                };
                if let Some(prefix) = &ids {
                    out.push(Some(key[prefix.len()..].to_string()));
                }
                out.push(Some(plain));
            }
            fetch(ids, rest, out, seal)
        }),
    )
}
