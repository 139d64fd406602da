//! One call from an adapter, as the batch decodes it, before the engine or the embedded table
//! runs it: its keys, the namespace they go under, and the commands it is made of when it is
//! that simple.

use crate::command::{Command, Expiry};

/// Keys deleted or fetched per round trip in bulk operations.
const BULK_CHUNK: usize = 500;

/// One call from an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Get {
        key: String,
    },
    /// Writes `value`; `ttl_ms` in milliseconds, `None` for no expiry. A TTL of zero or less
    /// deletes.
    Set {
        key: String,
        value: String,
        ttl_ms: Option<i64>,
    },
    /// Writes `value` to expire at an absolute UNIX time in seconds; a past time deletes.
    SetUntil {
        key: String,
        value: String,
        at: i64,
    },
    /// `SetUntil` of a key that still exists; a missing key stays missing (a refresh that must
    /// not bring back what was deleted meanwhile).
    ReplaceUntil {
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
    /// The value at `key`, deleted in the same step (`GETDEL`); `Nil` when missing.
    GetDel {
        key: String,
    },
    /// Adds one to the counter at `key` and replies with the new value; a counter this call
    /// creates expires in `ttl` seconds (above zero), and later calls never move that expiry.
    Increment {
        key: String,
        ttl: i64,
    },
    /// Adds `member` to the JSON array of strings at `key`, in one step on the server; replies
    /// 1 when it was added, 0 when it was there. A missing key is an empty array; a value that
    /// is not a JSON array of strings is an `ERR_BAD_DATA` error. The key keeps its TTL.
    JsonArrayAdd {
        key: String,
        member: String,
    },
    /// Removes every entry equal to one of `members` from the JSON array at `key`, as
    /// `JsonArrayAdd` changes it; replies with the number of entries removed. The key goes
    /// when the array is left empty.
    JsonArrayRemove {
        key: String,
        members: Vec<String>,
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
            | Request::ReplaceUntil { key, .. }
            | Request::Touch { key, .. }
            | Request::Exists { key }
            | Request::GetDel { key }
            | Request::Increment { key, .. }
            | Request::JsonArrayAdd { key, .. }
            | Request::JsonArrayRemove { key, .. }
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
            } => vec![index_key, key_prefix],
            Request::PruneIndexes {
                index_prefix,
                key_prefix,
                ..
            } => vec![index_prefix, key_prefix],
            Request::Adopt { from, to } => vec![from, to],
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
            Request::Set { key, value, ttl_ms } => match ttl_ms {
                None => Command::Set {
                    key,
                    value,
                    expiry: Expiry::Never,
                },
                Some(ms) if ms > 0 => Command::Set {
                    key,
                    value,
                    expiry: Expiry::after_ms(ms as u64),
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
            // A past time deletes, as SET EXAT would not: only a key that exists is touched.
            Request::ReplaceUntil { key, value, at } => {
                if at <= unix_now() {
                    Command::Del(vec![key])
                } else {
                    Command::Replace {
                        key,
                        value,
                        at: at as u64,
                    }
                }
            }
            Request::Touch { key, ttl } => Command::Expire { key, seconds: ttl },
            Request::Destroy { keys } if keys.len() <= BULK_CHUNK => Command::Del(keys),
            Request::Exists { key } => Command::Exists(key),
            Request::GetDel { key } => Command::GetDel(key),
            Request::Increment { key, ttl } => Command::Increment {
                key,
                seconds: ttl.max(1) as u64,
            },
            Request::JsonArrayAdd { key, member } => Command::JsonArrayAdd { key, member },
            Request::JsonArrayRemove { key, members } => Command::JsonArrayRemove { key, members },
            Request::ListRead { key } => Command::LRange(key),
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
