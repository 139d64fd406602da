//! The small command set every call is made of, its replies, and the embedded `memory://`
//! table that answers it without a server.

use smallvec::{smallvec, SmallVec};

use crate::error::StoreError;

/// A command's keys: one for every command but `DEL` and `MGET` of several, kept inline.
pub type Keys<'a> = SmallVec<[&'a str; 1]>;

/// How long a written value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// Seconds from now (`EX`).
    In(u64),
    /// Milliseconds from now (`PX`).
    InMillis(u64),
    /// Absolute UNIX time in seconds (`EXAT`).
    At(u64),
}

impl Expiry {
    /// `ms` milliseconds from now: `EX` when that is whole seconds, as a TTL given in seconds
    /// always is, `PX` otherwise.
    pub fn after_ms(ms: u64) -> Expiry {
        if ms.is_multiple_of(1000) {
            Expiry::In(ms / 1000)
        } else {
            Expiry::InMillis(ms)
        }
    }
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
    /// Adds `member` to the JSON array of strings at `key` unless it is there: the Lua script
    /// `JSON_ARRAY_ADD_SCRIPT` (one key, so one slot on a cluster). Replies 1 when it added, 0
    /// when the member was there.
    JsonArrayAdd {
        key: String,
        member: String,
    },
    /// Removes every entry equal to one of `members` from the JSON array of strings at `key`:
    /// the Lua script `JSON_ARRAY_REMOVE_SCRIPT`. Replies with the number of entries removed.
    JsonArrayRemove {
        key: String,
        members: Vec<String>,
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

/// A command, or an option of one, newer than some servers the store may reach: what it is
/// and the Redis version that brought it. A server older than that refuses it (`unknown
/// command`, `syntax error`), and the call fails with `ERR_SERVER_VERSION` naming both.
#[derive(Debug, PartialEq, Eq)]
pub struct Needs {
    pub what: &'static str,
    pub redis: &'static str,
}

/// `GETDEL` (Better Auth's `getAndDelete`).
pub const GETDEL: Needs = Needs {
    what: "GETDEL",
    redis: "6.2",
};
/// `SET … EXAT`: a value stored until an absolute time.
pub const SET_EXAT: Needs = Needs {
    what: "SET … EXAT",
    redis: "6.2",
};
/// `SET … KEEPTTL`, inside the JSON array scripts.
pub const SET_KEEPTTL: Needs = Needs {
    what: "SET … KEEPTTL (in the JSON array scripts)",
    redis: "6.0",
};

impl Needs {
    /// Whether `server` (as the handshake names it: `Redis 6.0.16`, `Valkey 9.1.2`) is new
    /// enough, so that its refusal has another cause (a renamed command, a proxy). Every Valkey
    /// release carries Redis 7.2's commands; a name that does not parse is taken as older.
    pub fn met_by(&self, server: &str) -> bool {
        if server.starts_with("Valkey ") {
            return true;
        }
        let major_minor = |v: &str| -> Option<(u32, u32)> {
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        };
        match (
            server.strip_prefix("Redis ").and_then(major_minor),
            major_minor(self.redis),
        ) {
            (Some(have), Some(need)) => have >= need,
            _ => false,
        }
    }

    /// The call's error text. `server` is the server's name and version when the handshake
    /// learned them; else the server's own answer is quoted, up to the arguments Redis echoes
    /// (keys, which can be session ids).
    pub fn message(&self, server: Option<&str>, answer: &str) -> String {
        let Needs { what, redis } = self;
        match server {
            Some(server) => format!("{what} needs Redis {redis} or newer; this server is {server}"),
            None => {
                let answer = answer.split(", with args").next().unwrap_or(answer);
                format!("{what} needs Redis {redis} or newer; this server answered: {answer}")
            }
        }
    }
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

    /// What this command needs of the server beyond what every Redis the store may reach has.
    /// `resp::needs_of_encoded` reads the same back from a command's bytes.
    pub fn needs(&self) -> Option<&'static Needs> {
        match self {
            Command::GetDel(_) => Some(&GETDEL),
            Command::Set {
                expiry: Expiry::At(_),
                ..
            }
            | Command::Replace { .. } => Some(&SET_EXAT),
            Command::JsonArrayAdd { .. } | Command::JsonArrayRemove { .. } => Some(&SET_KEEPTTL),
            _ => None,
        }
    }

    /// The keys this command touches, for routing on a cluster and for the near cache.
    pub fn keys(&self) -> Keys<'_> {
        match self {
            Command::Ping | Command::Scan { .. } => Keys::new(),
            Command::Get(k)
            | Command::GetDel(k)
            | Command::SMembers(k)
            | Command::Exists(k)
            | Command::PTtl(k)
            | Command::LRange(k) => smallvec![k.as_str()],
            Command::Set { key, .. }
            | Command::Replace { key, .. }
            | Command::Expire { key, .. }
            | Command::Increment { key, .. }
            | Command::JsonArrayAdd { key, .. }
            | Command::JsonArrayRemove { key, .. }
            | Command::SAdd { key, .. }
            | Command::SRem { key, .. }
            | Command::LPush { key, .. }
            | Command::LRem { key, .. } => smallvec![key.as_str()],
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

/// What the JSON array scripts share: `items`, the array at `KEYS[1]` (empty when the key is
/// missing), or a `BADDATA` error reply when the value is not a JSON array of strings; and
/// `write(items)`, which stores an array back with the key's TTL kept, or deletes the key when
/// the array is empty (readers of the layout take a missing key for an empty array).
///
/// The array is encoded here, not with `cjson.encode`, to write the bytes `JSON.stringify`
/// writes: cjson encodes an empty table as `{}` and escapes `/` as `\/`. `quote` escapes what
/// `JSON.stringify` escapes in a well-formed string: `"`, `\` and the control characters below
/// U+0020, the common ones in their short forms, the rest as lowercase `\u00xx`.
macro_rules! json_array_prelude {
    () => {
        r#"local raw = redis.call('GET', KEYS[1])
local items = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if not ok or type(decoded) ~= 'table' or not string.find(raw, '^%s*%[') then
    return redis.error_reply('BADDATA the value is not a JSON array of strings')
  end
  for i = 1, #decoded do
    if type(decoded[i]) ~= 'string' then
      return redis.error_reply('BADDATA the value is not a JSON array of strings')
    end
  end
  items = decoded
end
local short = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function quote(s)
  return '"' .. string.gsub(s, '[%z\1-\31"\\]', function(c)
    return short[c] or string.format('\\u%04x', string.byte(c))
  end) .. '"'
end
local function write(list)
  if #list == 0 then
    redis.call('DEL', KEYS[1])
    return
  end
  local quoted = {}
  for i = 1, #list do
    quoted[i] = quote(list[i])
  end
  redis.call('SET', KEYS[1], '[' .. table.concat(quoted, ',') .. ']', 'KEEPTTL')
end
"#
    };
}

/// What `Command::JsonArrayAdd` runs: `ARGV[1]` is the member.
pub const JSON_ARRAY_ADD_SCRIPT: &str = concat!(
    json_array_prelude!(),
    r#"for i = 1, #items do
  if items[i] == ARGV[1] then
    return 0
  end
end
items[#items + 1] = ARGV[1]
write(items)
return 1"#
);

/// What `Command::JsonArrayRemove` runs: `ARGV` are the members.
pub const JSON_ARRAY_REMOVE_SCRIPT: &str = concat!(
    json_array_prelude!(),
    r#"local gone = {}
for i = 1, #ARGV do
  gone[ARGV[i]] = true
end
local kept = {}
for i = 1, #items do
  if not gone[items[i]] then
    kept[#kept + 1] = items[i]
  end
end
if #kept < #items then
  write(kept)
end
return #items - #kept"#
);

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
    fn a_server_new_enough_is_not_blamed_on_its_version() {
        assert!(!GETDEL.met_by("Redis 6.0.16"));
        assert!(!GETDEL.met_by("Redis 5.0.14"));
        assert!(GETDEL.met_by("Redis 6.2.0"));
        assert!(GETDEL.met_by("Redis 7.2.4"));
        assert!(GETDEL.met_by("Redis 10.0.1"));
        assert!(SET_KEEPTTL.met_by("Redis 6.0.16"));
        assert!(GETDEL.met_by("Valkey 9.1.2"));
        assert!(
            !GETDEL.met_by("KeyDB"),
            "a name that does not parse is taken as older"
        );
    }

    #[test]
    fn whole_seconds_go_as_ex_and_the_rest_as_px() {
        assert_eq!(Expiry::after_ms(60_000), Expiry::In(60));
        assert_eq!(Expiry::after_ms(60_001), Expiry::InMillis(60_001));
        assert_eq!(Expiry::after_ms(1), Expiry::InMillis(1));
    }

    #[test]
    fn json_array_scripts_share_the_prelude_and_never_call_cjson_encode() {
        for script in [JSON_ARRAY_ADD_SCRIPT, JSON_ARRAY_REMOVE_SCRIPT] {
            assert!(script.starts_with("local raw = redis.call('GET', KEYS[1])"));
            assert!(script.contains("'KEEPTTL'"));
            assert!(!script.contains("cjson.encode"));
        }
    }

    #[test]
    fn prefix_pattern_escapes_globs() {
        assert_eq!(prefix_pattern("sess:"), "sess:*");
        assert_eq!(prefix_pattern("a*[x]:"), "a\\*\\[x\\]:*");
        assert_eq!(prefix_pattern("q?\\"), "q\\?\\\\*");
    }
}
