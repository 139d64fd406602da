//! Where commands go. Each room speaks the same small command set; the session layer above
//! never knows which one it talks to.

mod cluster;
mod memory;
mod sentinel;
mod standalone;

use crate::config::{ConnectionSpec, Topology};
use crate::error::{StoreError, StoreResult};

pub use cluster::Cluster;
pub use memory::Memory;
pub use sentinel::Sentinel;
pub use standalone::Standalone;

/// How long a written value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// Seconds from now (`EX`).
    In(u64),
    /// Absolute UNIX time in seconds (`EXAT`).
    At(u64),
}

/// The commands the session operations are built from. Every command names its keys so a
/// backend can route or group them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Get(String),
    Set {
        key: String,
        value: String,
        expiry: Expiry,
    },
    Expire {
        key: String,
        seconds: i64,
    },
    Del(Vec<String>),
    MGet(Vec<String>),
    SAdd {
        key: String,
        members: Vec<String>,
    },
    SRem {
        key: String,
        members: Vec<String>,
    },
    SMembers(String),
    /// `LPUSH key member`.
    LPush {
        key: String,
        member: String,
    },
    /// `LREM key 0 member`: every occurrence.
    LRem {
        key: String,
        member: String,
    },
    /// `LRANGE key 0 -1`: the whole list.
    LRange(String),
    Exists(String),
    /// `PTTL key`: milliseconds left, -1 with no expiry, -2 when missing.
    PTtl(String),
    /// `SCAN cursor MATCH pattern COUNT count`, one page of a keyspace walk (see `walk`).
    Scan {
        cursor: String,
        pattern: String,
        count: usize,
    },
    Ping,
}

/// A backend's answer to one command.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Text(String),
    List(Vec<Option<String>>),
    Error(StoreError),
}

impl Command {
    /// Whether the command changes its keys (for the near cache: this process's own write).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Command::Get(_)
                | Command::MGet(_)
                | Command::SMembers(_)
                | Command::LRange(_)
                | Command::Exists(_)
                | Command::PTtl(_)
                | Command::Scan { .. }
                | Command::Ping
        )
    }

    /// The keys this command touches, for routing on a cluster.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Command::Ping | Command::Scan { .. } => vec![],
            Command::Get(k)
            | Command::SMembers(k)
            | Command::Exists(k)
            | Command::PTtl(k)
            | Command::LRange(k) => vec![k],
            Command::Set { key, .. }
            | Command::Expire { key, .. }
            | Command::SAdd { key, .. }
            | Command::SRem { key, .. }
            | Command::LPush { key, .. }
            | Command::LRem { key, .. } => vec![key],
            Command::Del(keys) | Command::MGet(keys) => keys.iter().map(String::as_str).collect(),
        }
    }
}

pub enum Backend {
    Standalone(Standalone),
    Memory(Memory),
    Cluster(Cluster),
    Sentinel(Sentinel),
}

impl Backend {
    /// Creates the backend without waiting for a connection; the first call connects.
    pub fn open(spec: &ConnectionSpec) -> StoreResult<Backend> {
        Ok(match &spec.topology {
            Topology::Memory => Backend::Memory(Memory::new()),
            Topology::Standalone(endpoint) => Backend::Standalone(Standalone::new(endpoint, spec)?),
            Topology::Cluster(cluster) => Backend::Cluster(Cluster::new(cluster, spec)?),
            Topology::Sentinel(sentinel) => Backend::Sentinel(Sentinel::new(sentinel, spec)?),
        })
    }

    /// Runs the commands in one round trip where the topology allows. A failed command yields a
    /// `Reply::Error` in its slot; an `Err` means the whole batch failed.
    pub async fn execute(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        match self {
            Backend::Standalone(b) => b.execute(commands).await,
            Backend::Memory(b) => Ok(b.execute(commands)),
            Backend::Cluster(b) => b.execute(commands).await,
            Backend::Sentinel(b) => b.execute(commands, false).await,
        }
    }

    /// Runs the commands as one transaction (`MULTI`/`EXEC`), so all apply or none do. On a
    /// cluster this holds only when every key hashes to one slot; otherwise the commands run
    /// one by one.
    pub async fn execute_atomic(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        match self {
            Backend::Standalone(b) => b.execute_atomic(commands).await,
            Backend::Memory(b) => Ok(b.execute(commands)),
            Backend::Cluster(b) => b.execute_atomic(commands).await,
            Backend::Sentinel(b) => b.execute(commands, true).await,
        }
    }

    /// Every key that starts with `prefix`, each once.
    pub async fn scan_prefix(&self, prefix: &str, count: usize) -> StoreResult<Vec<String>> {
        match self {
            Backend::Standalone(b) => b.scan_prefix(prefix, count).await,
            Backend::Memory(b) => Ok(b.scan_prefix(prefix)),
            Backend::Cluster(b) => b.scan_prefix(prefix, count).await,
            Backend::Sentinel(b) => b.scan_prefix(prefix, count).await,
        }
    }

    /// The embedded table, when this is `memory://`.
    pub fn embedded(&self) -> Option<&Memory> {
        match self {
            Backend::Memory(m) => Some(m),
            _ => None,
        }
    }

    /// Whether this backend can lose its connection at all.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Backend::Memory(_))
    }
}

/// `SCAN MATCH` pattern that matches exactly the keys starting with `prefix`: every glob
/// metacharacter in the prefix is escaped, so a prefix like `a*[x]:` matches only itself.
pub fn prefix_pattern(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

pub(crate) fn value_to_reply(value: redis::Value) -> Reply {
    use redis::Value as V;
    match value {
        V::Nil => Reply::Nil,
        V::Int(n) => Reply::Int(n),
        V::Boolean(b) => Reply::Int(b as i64),
        V::Okay => Reply::Text("OK".into()),
        V::SimpleString(s) => Reply::Text(s),
        V::BulkString(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Reply::Text(s),
            Err(_) => Reply::Error(StoreError::new(
                crate::error::ErrorKind::Redis,
                "stored value is not valid UTF-8",
            )),
        },
        V::Array(items) | V::Set(items) => Reply::List(
            items
                .into_iter()
                .map(|v| match value_to_reply(v) {
                    Reply::Text(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        V::ServerError(e) => Reply::Error(StoreError::from(e)),
        other => Reply::Error(StoreError::new(
            crate::error::ErrorKind::Redis,
            format!("unexpected reply from Redis: {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_pattern_escapes_globs() {
        assert_eq!(prefix_pattern("sess:"), "sess:*");
        assert_eq!(prefix_pattern("a*[x]:"), "a\\*\\[x\\]:*");
        assert_eq!(prefix_pattern("q?\\"), "q\\?\\\\*");
    }
}
