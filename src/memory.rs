//! The embedded `memory://` backend: the same commands and expiry rules as Redis, in process.
//! Expired keys vanish on access and in a periodic sweep, so memory does not grow with dead
//! sessions.

use std::collections::{BTreeSet, VecDeque};
use std::hash::RandomState;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashbrown::hash_map::EntryRef;

use crate::command::{Command, Expiry, Reply};
use crate::error::{ErrorKind, StoreError};

const SWEEP_EVERY: Duration = Duration::from_secs(1);

enum Stored {
    Text(String),
    Set(BTreeSet<String>),
    /// Head first, as `LPUSH` builds it.
    List(VecDeque<String>),
}

struct Entry {
    value: Stored,
    /// Milliseconds since the UNIX epoch.
    expires_at: Option<u128>,
}

/// Keyed by `&str` lookups that find, change or drop an entry in one probe (`entry_ref`): a
/// big table's probes are cache misses. SipHash with a random key per table (std's
/// `RandomState`), as ids come from cookies.
type Table = hashbrown::HashMap<String, Entry, RandomState>;

pub struct Memory {
    table: Arc<Mutex<Table>>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn wrong_type() -> Reply {
    Reply::Error(StoreError::new(
        ErrorKind::WrongType,
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    ))
}

impl Memory {
    pub fn new() -> Memory {
        let table = Arc::new(Mutex::new(Table::default()));
        let weak: Weak<Mutex<Table>> = Arc::downgrade(&table);
        // Expired keys nobody reads again are dropped here; reads drop the ones they meet.
        crate::runtime::get().spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(table) = weak.upgrade() else { break };
                let now = now_ms();
                let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
                t.retain(|_, e| !e.expired(now));
            }
        });
        Memory { table }
    }

    /// Drops every key: the store is closed and nothing can read them again.
    pub fn clear(&self) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        *t = Table::default();
    }

    pub fn execute(&self, commands: &[Command]) -> Vec<Reply> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        commands.iter().map(|c| apply(&mut t, c, now)).collect()
    }

    /// `execute` for commands the caller gives up: a written value moves into the table
    /// instead of being copied.
    pub fn execute_owned(&self, commands: Vec<Command>) -> Vec<Reply> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        commands
            .into_iter()
            .map(|c| match c {
                Command::Set { key, value, expiry } => {
                    store_text(&mut t, key, value, expiry, now);
                    Reply::Text("OK".into())
                }
                other => apply(&mut t, &other, now),
            })
            .collect()
    }

    /// `execute_owned` for one command.
    pub fn execute_one(&self, command: Command) -> Reply {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        match command {
            Command::Set { key, value, expiry } => {
                store_text(&mut t, key, value, expiry, now);
                Reply::Text("OK".into())
            }
            other => apply(&mut t, &other, now),
        }
    }

    pub fn scan_prefix(&self, prefix: &str) -> Vec<String> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        t.iter()
            .filter(|(k, e)| k.starts_with(prefix) && !e.expired(now))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

/// The live entry at `key`, dropping it first if it has expired.
fn live<'a>(t: &'a mut Table, key: &str, now: u128) -> Option<&'a mut Entry> {
    match t.entry_ref(key) {
        EntryRef::Occupied(o) if o.get().expired(now) => {
            o.remove();
            None
        }
        EntryRef::Occupied(o) => Some(o.into_mut()),
        EntryRef::Vacant(_) => None,
    }
}

/// Drops `key`; true if it was live.
fn remove_live(t: &mut Table, key: &str, now: u128) -> bool {
    t.remove(key).is_some_and(|e| !e.expired(now))
}

impl Entry {
    fn expired(&self, now: u128) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The live entry at `key`, or a new empty one without expiry made by `empty`.
fn live_or_new<'a>(
    t: &'a mut Table,
    key: &str,
    now: u128,
    empty: impl FnOnce() -> Stored,
) -> &'a mut Entry {
    let fresh = || Entry {
        value: empty(),
        expires_at: None,
    };
    match t.entry_ref(key) {
        EntryRef::Occupied(o) => {
            let e = o.into_mut();
            if e.expired(now) {
                *e = fresh();
            }
            e
        }
        EntryRef::Vacant(v) => v.insert(fresh()),
    }
}

fn store_text(t: &mut Table, key: String, value: String, expiry: Expiry, now: u128) {
    let expires_at = match expiry {
        Expiry::Never => None,
        Expiry::In(secs) => Some(now + secs as u128 * 1000),
        Expiry::InMillis(ms) => Some(now + ms as u128),
        Expiry::At(unix) => Some(unix as u128 * 1000),
    };
    if expires_at.is_some_and(|at| at <= now) {
        t.remove(&key);
    } else {
        t.insert(
            key,
            Entry {
                value: Stored::Text(value),
                expires_at,
            },
        );
    }
}

/// `INCR`, with the expiry set when it made the counter (`Command::Increment`).
fn increment(t: &mut Table, key: &str, seconds: u64, now: u128) -> Reply {
    match live(t, key, now) {
        None => {
            t.insert(
                key.to_string(),
                Entry {
                    value: Stored::Text("1".into()),
                    expires_at: Some(now + seconds as u128 * 1000),
                },
            );
            Reply::Int(1)
        }
        Some(Entry {
            value: Stored::Text(s),
            ..
        }) => match s.parse::<i64>().ok().and_then(|n| n.checked_add(1)) {
            Some(n) => {
                *s = n.to_string();
                Reply::Int(n)
            }
            None => Reply::Error(StoreError::new(
                ErrorKind::Redis,
                "ERR value is not an integer or out of range",
            )),
        },
        Some(_) => wrong_type(),
    }
}

/// `JSON_ARRAY_ADD_SCRIPT` and `JSON_ARRAY_REMOVE_SCRIPT`: `edit` changes the array at `key`
/// (empty when missing) and says how many entries it changed; a changed array is written back
/// as `JSON.stringify` writes it, with the key's expiry kept, and an empty one deletes the key.
fn edit_json_array(
    t: &mut Table,
    key: &str,
    now: u128,
    edit: impl FnOnce(&mut Vec<String>) -> usize,
) -> Reply {
    let mut items: Vec<String> = match live(t, key, now) {
        None => Vec::new(),
        Some(Entry {
            value: Stored::Text(s),
            ..
        }) => match serde_json::from_str(s) {
            Ok(items) => items,
            Err(_) => {
                return Reply::Error(StoreError::new(
                    ErrorKind::BadData,
                    "BADDATA the value is not a JSON array of strings",
                ))
            }
        },
        Some(_) => return wrong_type(),
    };
    let changed = edit(&mut items);
    if changed > 0 {
        if items.is_empty() {
            t.remove(key);
        } else {
            // serde_json escapes a string as JSON.stringify does: the same bytes as the script.
            let text = serde_json::to_string(&items).expect("strings always encode");
            match t.get_mut(key) {
                Some(entry) => entry.value = Stored::Text(text),
                None => {
                    t.insert(
                        key.to_string(),
                        Entry {
                            value: Stored::Text(text),
                            expires_at: None,
                        },
                    );
                }
            }
        }
    }
    Reply::Int(changed as i64)
}

fn apply(t: &mut Table, command: &Command, now: u128) -> Reply {
    match command {
        Command::Ping => Reply::Text("PONG".into()),
        Command::Get(key) => match live(t, key, now) {
            None => Reply::Nil,
            Some(Entry {
                value: Stored::Text(s),
                ..
            }) => Reply::Text(s.clone()),
            Some(_) => wrong_type(),
        },
        Command::Replace { key, value, at } => match live(t, key, now) {
            // SET XX replaces a value of any type.
            Some(_) => {
                store_text(t, key.clone(), value.clone(), Expiry::At(*at), now);
                Reply::Text("OK".into())
            }
            None => Reply::Nil,
        },
        Command::GetDel(key) => match live(t, key, now) {
            None => Reply::Nil,
            Some(Entry {
                value: Stored::Text(_),
                ..
            }) => match t.remove(key) {
                Some(Entry {
                    value: Stored::Text(s),
                    ..
                }) => Reply::Text(s),
                _ => Reply::Nil,
            },
            Some(_) => wrong_type(),
        },
        Command::Increment { key, seconds } => increment(t, key, *seconds, now),
        Command::JsonArrayAdd { key, member } => edit_json_array(t, key, now, |items| {
            if items.contains(member) {
                0
            } else {
                items.push(member.clone());
                1
            }
        }),
        Command::JsonArrayRemove { key, members } => edit_json_array(t, key, now, |items| {
            let before = items.len();
            items.retain(|item| !members.contains(item));
            before - items.len()
        }),
        Command::MGet(keys) => Reply::List(
            keys.iter()
                .map(|k| match live(t, k, now) {
                    Some(Entry {
                        value: Stored::Text(s),
                        ..
                    }) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Command::Set { key, value, expiry } => {
            store_text(t, key.clone(), value.clone(), *expiry, now);
            Reply::Text("OK".into())
        }
        Command::Expire { key, seconds } => {
            let seconds = *seconds;
            match live(t, key, now) {
                None => Reply::Int(0),
                Some(_) if seconds <= 0 => {
                    t.remove(key);
                    Reply::Int(1)
                }
                Some(e) => {
                    e.expires_at = Some(now + seconds as u128 * 1000);
                    Reply::Int(1)
                }
            }
        }
        Command::Del(keys) => Reply::Int(
            keys.iter()
                .filter(|k| remove_live(t, k.as_str(), now))
                .count() as i64,
        ),
        Command::SAdd { key, members } => {
            match &mut live_or_new(t, key, now, || Stored::Set(BTreeSet::new())).value {
                Stored::Set(set) => {
                    let added = members.iter().filter(|m| set.insert((*m).clone())).count();
                    Reply::Int(added as i64)
                }
                _ => wrong_type(),
            }
        }
        Command::SRem { key, members } => match live(t, key, now) {
            None => Reply::Int(0),
            Some(Entry {
                value: Stored::Set(set),
                ..
            }) => {
                let removed = members.iter().filter(|m| set.remove(*m)).count();
                if set.is_empty() {
                    t.remove(key);
                }
                Reply::Int(removed as i64)
            }
            Some(_) => wrong_type(),
        },
        Command::LPush { key, member } => {
            match &mut live_or_new(t, key, now, || Stored::List(VecDeque::new())).value {
                Stored::List(list) => {
                    list.push_front(member.clone());
                    Reply::Int(list.len() as i64)
                }
                _ => wrong_type(),
            }
        }
        Command::LRem { key, member } => match live(t, key, now) {
            None => Reply::Int(0),
            Some(Entry {
                value: Stored::List(list),
                ..
            }) => {
                let before = list.len();
                list.retain(|m| m != member);
                let removed = before - list.len();
                if list.is_empty() {
                    t.remove(key);
                }
                Reply::Int(removed as i64)
            }
            Some(_) => wrong_type(),
        },
        Command::LRange(key) => match live(t, key, now) {
            None => Reply::List(vec![]),
            Some(Entry {
                value: Stored::List(list),
                ..
            }) => Reply::List(list.iter().cloned().map(Some).collect()),
            Some(_) => wrong_type(),
        },
        Command::Exists(key) => Reply::Int(live(t, key, now).is_some() as i64),
        // The embedded table lists keys with `scan_prefix`, in one pass.
        Command::Scan { .. } => Reply::Error(StoreError::new(
            crate::error::ErrorKind::Redis,
            "SCAN is not a command of the embedded table",
        )),
        Command::PTtl(key) => Reply::Int(match live(t, key, now) {
            None => -2,
            Some(Entry {
                expires_at: None, ..
            }) => -1,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => at.saturating_sub(now).min(i64::MAX as u128) as i64,
        }),
        Command::SMembers(key) => match live(t, key, now) {
            None => Reply::List(vec![]),
            Some(Entry {
                value: Stored::Set(set),
                ..
            }) => Reply::List(set.iter().cloned().map(Some).collect()),
            Some(_) => wrong_type(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str, expiry: Expiry) -> Command {
        Command::Set {
            key: key.into(),
            value: value.into(),
            expiry,
        }
    }

    #[test]
    fn expired_keys_are_swept_without_a_read() {
        let m = Memory::new();
        m.execute(&[
            set("gone", "v", Expiry::In(1)),
            set("kept", "v", Expiry::Never),
        ]);
        std::thread::sleep(SWEEP_EVERY * 2 + Duration::from_millis(200));
        let t = m.table.lock().unwrap();
        assert!(!t.contains_key("gone"), "an expired key left in the table");
        assert!(t.contains_key("kept"));
    }

    #[test]
    fn set_get_del() {
        let m = Memory::new();
        let r = m.execute(&[
            set("a", "1", Expiry::Never),
            Command::Get("a".into()),
            Command::Del(vec!["a".into(), "missing".into()]),
            Command::Get("a".into()),
        ]);
        assert_eq!(r[1], Reply::Text("1".into()));
        assert_eq!(r[2], Reply::Int(1));
        assert_eq!(r[3], Reply::Nil);
    }

    #[test]
    fn past_expiry_deletes_and_expire_zero_deletes() {
        let m = Memory::new();
        let r = m.execute(&[
            set("a", "1", Expiry::At(1)),
            Command::Get("a".into()),
            set("b", "2", Expiry::In(100)),
            Command::Expire {
                key: "b".into(),
                seconds: 0,
            },
            Command::Get("b".into()),
        ]);
        assert_eq!(r[1], Reply::Nil);
        assert_eq!(r[3], Reply::Int(1));
        assert_eq!(r[4], Reply::Nil);
    }

    #[test]
    fn expired_keys_leave_the_table() {
        let m = Memory::new();
        m.execute(&[set("gone", "x", Expiry::In(1))]);
        {
            let mut t = m.table.lock().unwrap();
            t.get_mut("gone").unwrap().expires_at = Some(now_ms() - 1);
        }
        assert!(m.scan_prefix("").is_empty());
        assert_eq!(m.execute(&[Command::Get("gone".into())])[0], Reply::Nil);
        assert!(m.table.lock().unwrap().is_empty());
    }

    #[test]
    fn sets_and_wrong_type() {
        let m = Memory::new();
        let r = m.execute(&[
            Command::SAdd {
                key: "s".into(),
                members: vec!["x".into(), "y".into(), "x".into()],
            },
            Command::SMembers("s".into()),
            Command::Get("s".into()),
            Command::SRem {
                key: "s".into(),
                members: vec!["x".into(), "y".into()],
            },
            Command::SMembers("s".into()),
        ]);
        assert_eq!(r[0], Reply::Int(2));
        assert_eq!(r[1], Reply::List(vec![Some("x".into()), Some("y".into())]));
        assert!(matches!(&r[2], Reply::Error(e) if e.kind == ErrorKind::WrongType));
        assert_eq!(r[4], Reply::List(vec![]));
    }

    #[test]
    fn lists_push_to_the_head_and_remove_every_copy() {
        let m = Memory::new();
        let push = |member: &str| Command::LPush {
            key: "l".into(),
            member: member.into(),
        };
        let replies = m.execute(&[
            push("a"),
            push("b"),
            push("a"),
            Command::LRange("l".into()),
            Command::LRem {
                key: "l".into(),
                member: "a".into(),
            },
            Command::LRange("l".into()),
            Command::Get("l".into()),
        ]);
        assert_eq!(
            replies[3],
            Reply::List(vec![Some("a".into()), Some("b".into()), Some("a".into())])
        );
        assert_eq!(replies[4], Reply::Int(2));
        assert_eq!(replies[5], Reply::List(vec![Some("b".into())]));
        assert!(matches!(replies[6], Reply::Error(_)));
    }

    #[test]
    fn replace_touches_only_a_key_that_exists() {
        let m = Memory::new();
        let later = (now_ms() / 1000) as u64 + 60;
        let replace = |k: &str| Command::Replace {
            key: k.into(),
            value: "new".into(),
            at: later,
        };
        let r = m.execute(&[
            replace("gone"),
            Command::Get("gone".into()),
            set("here", "old", Expiry::Never),
            replace("here"),
            Command::Get("here".into()),
            Command::PTtl("here".into()),
        ]);
        assert_eq!(r[0], Reply::Nil);
        assert_eq!(r[1], Reply::Nil);
        assert_eq!(r[3], Reply::Text("OK".into()));
        assert_eq!(r[4], Reply::Text("new".into()));
        assert!(matches!(r[5], Reply::Int(ms) if ms > 58_000 && ms <= 60_000));
    }

    #[test]
    fn get_del_and_increment() {
        let m = Memory::new();
        let incr = || Command::Increment {
            key: "n".into(),
            seconds: 60,
        };
        let r = m.execute(&[
            set("a", "v", Expiry::Never),
            Command::GetDel("a".into()),
            Command::GetDel("a".into()),
            incr(),
            incr(),
            Command::PTtl("n".into()),
            set("text", "x", Expiry::Never),
            Command::Increment {
                key: "text".into(),
                seconds: 60,
            },
            Command::SAdd {
                key: "s".into(),
                members: vec!["m".into()],
            },
            Command::GetDel("s".into()),
        ]);
        assert_eq!(r[1], Reply::Text("v".into()));
        assert_eq!(r[2], Reply::Nil);
        assert_eq!(r[3], Reply::Int(1));
        assert_eq!(r[4], Reply::Int(2));
        assert!(matches!(r[5], Reply::Int(ms) if ms > 59_000 && ms <= 60_000));
        assert!(matches!(&r[7], Reply::Error(e) if e.kind == ErrorKind::Redis));
        assert!(matches!(&r[9], Reply::Error(e) if e.kind == ErrorKind::WrongType));
    }

    #[test]
    fn millisecond_expiry() {
        let m = Memory::new();
        let r = m.execute(&[
            set("k", "v", Expiry::InMillis(1500)),
            Command::PTtl("k".into()),
        ]);
        assert!(
            matches!(r[1], Reply::Int(ms) if ms > 1400 && ms <= 1500),
            "{r:?}"
        );
        {
            let mut t = m.table.lock().unwrap();
            t.get_mut("k").unwrap().expires_at = Some(now_ms() - 1);
        }
        assert_eq!(m.execute(&[Command::Get("k".into())])[0], Reply::Nil);
    }

    #[test]
    fn json_arrays_change_in_one_step_as_the_scripts_do() {
        let m = Memory::new();
        let add = |member: &str| Command::JsonArrayAdd {
            key: "idx".into(),
            member: member.into(),
        };
        let remove = |members: &[&str]| Command::JsonArrayRemove {
            key: "idx".into(),
            members: members.iter().map(|s| s.to_string()).collect(),
        };
        let tricky = "q\"\\\n\u{1}\u{7f}/é";
        let r = m.execute(&[
            remove(&["a"]),
            add("a"),
            add("a"),
            add(tricky),
            add("b"),
            Command::Get("idx".into()),
            Command::Expire {
                key: "idx".into(),
                seconds: 100,
            },
            remove(&["a", tricky, "nope"]),
            Command::Get("idx".into()),
            Command::PTtl("idx".into()),
            remove(&["b"]),
            Command::Exists("idx".into()),
        ]);
        assert_eq!(r[0], Reply::Int(0));
        assert_eq!(
            r[1..5],
            [Reply::Int(1), Reply::Int(0), Reply::Int(1), Reply::Int(1)]
        );
        // JSON.stringify's bytes: `/`, U+007F and non-ASCII as they are, U+0001 as \u0001.
        assert_eq!(
            r[5],
            Reply::Text("[\"a\",\"q\\\"\\\\\\n\\u0001\u{7f}/é\",\"b\"]".into())
        );
        assert_eq!(r[7], Reply::Int(2));
        assert_eq!(r[8], Reply::Text(r#"["b"]"#.into()));
        assert!(
            matches!(r[9], Reply::Int(ms) if ms > 99_000),
            "the TTL is kept"
        );
        assert_eq!(r[10], Reply::Int(1));
        assert_eq!(r[11], Reply::Int(0), "an emptied array deletes its key");

        for bad in ["{}", r#"{"a":1}"#, "[1]", "[null]", "nope", ""] {
            let r = m.execute(&[
                set("bad", bad, Expiry::Never),
                Command::JsonArrayAdd {
                    key: "bad".into(),
                    member: "x".into(),
                },
                Command::JsonArrayRemove {
                    key: "bad".into(),
                    members: vec!["x".into()],
                },
                Command::Get("bad".into()),
            ]);
            assert!(
                matches!(&r[1], Reply::Error(e) if e.kind == ErrorKind::BadData),
                "{bad}"
            );
            assert!(
                matches!(&r[2], Reply::Error(e) if e.kind == ErrorKind::BadData),
                "{bad}"
            );
            assert_eq!(
                r[3],
                Reply::Text(bad.into()),
                "a bad value is left as it was"
            );
        }
        let r = m.execute(&[
            Command::SAdd {
                key: "set".into(),
                members: vec!["m".into()],
            },
            Command::JsonArrayAdd {
                key: "set".into(),
                member: "x".into(),
            },
        ]);
        assert!(matches!(&r[1], Reply::Error(e) if e.kind == ErrorKind::WrongType));
    }

    #[test]
    fn scan_prefix_is_literal() {
        let m = Memory::new();
        m.execute(&[
            set("a*[x]:1", "v", Expiry::Never),
            set("ab:2", "v", Expiry::Never),
        ]);
        assert_eq!(m.scan_prefix("a*[x]:"), vec!["a*[x]:1".to_string()]);
    }
}
