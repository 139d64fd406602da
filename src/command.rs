//! The small command set every call is made of, its replies, and the embedded `memory://`
//! table that answers it without a server.

use crate::error::StoreError;

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
    /// `GETDEL key` (Redis 6.2): the value, and the key gone, in one step.
    GetDel(String),
    Set {
        key: String,
        value: String,
        expiry: Expiry,
    },
    /// `SET key value EXAT at XX`: only a key that exists; replies `OK` or nil.
    Replace {
        key: String,
        value: String,
        at: u64,
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
    /// `INCR key`, and `EXPIRE key seconds` when that made the key, in one atomic step: the
    /// Lua script `INCREMENT_SCRIPT` (one key, so one slot on a cluster). Replies with the
    /// new value. The expiry is set only on creation, so a counter's window never moves.
    Increment {
        key: String,
        seconds: u64,
    },
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

/// A reply read whole, owned: what a walk's step gets (see `walk`), and what the handshake
/// and topology queries read. Made from the wire by `engine::resp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    Text(String),
    Int(i64),
    List(Vec<Tree>),
    Nil,
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
            | Command::GetDel(k)
            | Command::SMembers(k)
            | Command::Exists(k)
            | Command::PTtl(k)
            | Command::LRange(k) => vec![k],
            Command::Set { key, .. }
            | Command::Replace { key, .. }
            | Command::Expire { key, .. }
            | Command::Increment { key, .. }
            | Command::SAdd { key, .. }
            | Command::SRem { key, .. }
            | Command::LPush { key, .. }
            | Command::LRem { key, .. } => vec![key],
            Command::Del(keys) | Command::MGet(keys) => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// What `Command::Increment` runs: the counter goes up by one, and a counter that this made
/// (its value is 1) gets its expiry. `ARGV[1]` is the TTL in seconds.
pub const INCREMENT_SCRIPT: &str = "local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n";

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
