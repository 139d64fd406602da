//! The wire format of a batch of calls from JS: one `Float64Array` of fixed-layout records and
//! one string holding every text argument back to back. Two arguments per batch instead of an
//! object per call: reading object properties through napi cost more than the Redis work.
//!
//! Record: `[op, id, num, keyLen, valueLen, listCount, listLen…]`. Lengths count UTF-16 code
//! units (JS `.length`); `num` is NaN and `valueLen` is -1 when absent. The text holds the key,
//! then the value, then the list items.

use crate::error::StoreError;
use crate::request::Request;
use crate::seal::Seal;

/// The one op-code table: the codes this module decodes, the names JS uses for them
/// (`lib/native.js` reads them through `opCodes()`), and the names `stats()` gives them.
macro_rules! op_table {
    ($($name:ident = $code:literal, $stat:literal;)*) => {
        pub mod op {
            $(pub const $name: u32 = $code;)*
        }
        /// `(code, JS name, stats name)`, in code order from 1.
        pub const OPS: &[(u32, &str, &str)] = &[$(($code, stringify!($name), $stat)),*];
    };
}

op_table! {
    GET = 1, "get";
    SET = 2, "set";
    SET_UNTIL = 3, "setUntil";
    TOUCH = 4, "touch";
    DESTROY = 5, "destroy";
    COUNT = 6, "count";
    IDS = 7, "ids";
    ENTRIES = 8, "entries";
    CLEAR = 9, "clear";
    EXISTS = 10, "exists";
    MGET = 11, "mget";
    INDEXED_SET = 12, "indexedSet";
    INDEXED_DELETE = 13, "indexedDelete";
    INDEX_READ = 14, "indexRead";
    PRUNE_INDEXES = 16, "pruneIndexes";
    LIST_PUSH = 17, "listPush";
    LIST_READ = 18, "listRead";
    LIST_REMOVE = 19, "listRemove";
    ADOPT = 20, "adopt";
    GET_DEL = 21, "getDel";
    INCREMENT = 22, "increment";
    REPLACE_UNTIL = 23, "replaceUntil";
    SET_MS = 24, "setMs";
    JSON_ARRAY_ADD = 25, "jsonArrayAdd";
    JSON_ARRAY_REMOVE = 26, "jsonArrayRemove";
}

/// The highest op code (codes run from 1 to this, with gaps).
pub const MAX_OP: u32 = {
    let mut max = 0;
    let mut i = 0;
    while i < OPS.len() {
        if OPS[i].0 > max {
            max = OPS[i].0;
        }
        i += 1;
    }
    max
};

/// The name `stats()` gives each op code.
pub fn op_name(code: usize) -> &'static str {
    OPS.iter()
        .find(|(c, _, _)| *c as usize == code)
        .map_or("unknown", |(_, _, name)| name)
}

const HEADER: usize = 6;

/// Walks the text in UTF-16 units while slicing it as UTF-8.
struct Text<'a> {
    text: &'a str,
    pos: usize,
    ascii: bool,
}

/// The byte length of the first `units` UTF-16 code units of `text`, when they end on a
/// character boundary.
fn utf16_prefix_bytes(text: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    let mut bytes = 0;
    for c in text.chars() {
        if counted >= units {
            break;
        }
        counted += c.len_utf16();
        bytes += c.len_utf8();
    }
    (counted == units).then_some(bytes)
}

impl<'a> Text<'a> {
    fn take(&mut self, units: usize) -> Result<&'a str, StoreError> {
        let rest = &self.text[self.pos..];
        let bytes = if self.ascii {
            units
        } else {
            utf16_prefix_bytes(rest, units).ok_or_else(malformed)?
        };
        let piece = rest.get(..bytes).ok_or_else(malformed)?;
        self.pos += bytes;
        Ok(piece)
    }
}

fn malformed() -> StoreError {
    StoreError::bad_argument("malformed call batch")
}

fn length(n: f64) -> Result<usize, StoreError> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 {
        Ok(n as usize)
    } else {
        Err(malformed())
    }
}

/// One decoded call: its id and the request, or why it cannot run.
pub type Decoded = (u32, Result<Request, StoreError>);

/// Decodes every record, with no `hashIds` or `encryption`.
pub fn decode(nums: &[f64], text: &str) -> Result<Vec<Decoded>, StoreError> {
    decode_sealed(nums, text, &Seal::default())
}

/// Decodes every record. A record that cannot be read at all ends the batch with an error for
/// the whole rest, since the text offsets after it are unknown.
///
/// The op field is `op + 256 * (n + 1)` when the key is a prefix of `n` units followed by a
/// session id: with `hashIds`, the core replaces the id with its hash (see
/// `Seal::hash_request`).
pub fn decode_sealed(nums: &[f64], text: &str, seal: &Seal) -> Result<Vec<Decoded>, StoreError> {
    let mut out = Vec::with_capacity(nums.len() / HEADER);
    let mut cursor = Text {
        text,
        pos: 0,
        ascii: text.is_ascii(),
    };
    let mut i = 0;
    while i < nums.len() {
        let head = nums.get(i..i + HEADER).ok_or_else(malformed)?;
        let tagged = length(head[0])?;
        let op = (tagged & 0xff) as u32;
        let id = head[1] as u32;
        let num = (!head[2].is_nan()).then_some(head[2]);
        let key_units = length(head[3])?;
        // The byte length of the prefix before a session id, when the key ends in one.
        let (key, id_at) = match tagged >> 8 {
            0 => (cursor.take(key_units)?.to_string(), None),
            n if n - 1 <= key_units => {
                // The prefix and the id lie side by side in the text: one slice holds both.
                let start = cursor.pos;
                let prefix = cursor.take(n - 1)?;
                cursor.take(key_units - (n - 1))?;
                (text[start..cursor.pos].to_string(), Some(prefix.len()))
            }
            _ => return Err(malformed()),
        };
        let value = if head[4] < 0.0 {
            None
        } else {
            Some(cursor.take(length(head[4])?)?.to_string())
        };
        let list_count = length(head[5])?;
        let end = (i + HEADER).checked_add(list_count).ok_or_else(malformed)?;
        let lens = nums.get(i + HEADER..end).ok_or_else(malformed)?;
        let mut list = Vec::with_capacity(list_count);
        for &n in lens {
            list.push(cursor.take(length(n)?)?.to_string());
        }
        i = end;
        let request = to_request(op, key, value, num, list);
        out.push((
            id,
            match id_at {
                Some(at) => request.and_then(|r| seal.hash_request(r, at)),
                None => request,
            },
        ));
    }
    Ok(out)
}

fn scan_count(num: Option<f64>) -> usize {
    num.filter(|n| n.is_finite() && *n >= 1.0)
        .map(|n| n.min(1_000_000.0) as usize)
        .unwrap_or(100)
}

/// A TTL or a time, in whichever unit the op takes, rounded up to a whole number.
fn rounded_up(num: Option<f64>) -> Result<i64, StoreError> {
    match num {
        Some(n) if n.is_finite() => Ok(n.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64),
        Some(n) => Err(StoreError::bad_argument(format!(
            "ttl must be a finite number, got {n}"
        ))),
        None => Err(StoreError::bad_argument("ttl must be a number")),
    }
}

/// A TTL that must be a whole number of seconds above zero (a counter's window).
fn positive_seconds(num: Option<f64>) -> Result<i64, StoreError> {
    match num {
        Some(n) if n.is_finite() && n >= 1.0 && n.fract() == 0.0 && n <= i64::MAX as f64 => {
            Ok(n as i64)
        }
        _ => Err(StoreError::bad_argument(
            "ttl must be a positive whole number of seconds",
        )),
    }
}

fn extra<const N: usize>(list: Vec<String>) -> Result<[String; N], StoreError> {
    list.try_into()
        .map_err(|_| StoreError::bad_argument(format!("this operation takes {N} extra strings")))
}

fn to_request(
    op: u32,
    key: String,
    value: Option<String>,
    num: Option<f64>,
    list: Vec<String>,
) -> Result<Request, StoreError> {
    let value_or_err = |value: Option<String>| {
        value.ok_or_else(|| StoreError::bad_argument("a value to store must be a string"))
    };
    Ok(match op {
        op::GET => Request::Get { key },
        op::SET => Request::Set {
            key,
            value: value_or_err(value)?,
            ttl_ms: match num {
                None => None,
                some => Some(rounded_up(some)?.saturating_mul(1000)),
            },
        },
        op::SET_MS => Request::Set {
            key,
            value: value_or_err(value)?,
            ttl_ms: Some(rounded_up(num)?),
        },
        op::SET_UNTIL => Request::SetUntil {
            key,
            value: value_or_err(value)?,
            at: rounded_up(num)?,
        },
        op::REPLACE_UNTIL => Request::ReplaceUntil {
            key,
            value: value_or_err(value)?,
            at: rounded_up(num)?,
        },
        op::TOUCH => Request::Touch {
            key,
            ttl: rounded_up(num)?,
        },
        op::DESTROY => Request::Destroy {
            keys: if list.is_empty() { vec![key] } else { list },
        },
        op::COUNT => Request::Count {
            prefix: key,
            scan_count: scan_count(num),
        },
        op::IDS => Request::Ids {
            prefix: key,
            scan_count: scan_count(num),
        },
        op::ENTRIES => Request::Entries {
            prefix: key,
            scan_count: scan_count(num),
        },
        op::CLEAR => Request::Clear {
            prefix: key,
            scan_count: scan_count(num),
        },
        op::EXISTS => Request::Exists { key },
        op::GET_DEL => Request::GetDel { key },
        op::INCREMENT => Request::Increment {
            key,
            ttl: positive_seconds(num)?,
        },
        op::LIST_PUSH => Request::ListPush {
            key,
            member: value_or_err(value)?,
        },
        op::LIST_READ => Request::ListRead { key },
        op::JSON_ARRAY_ADD => Request::JsonArrayAdd {
            key,
            member: value_or_err(value)
                .map_err(|_| StoreError::bad_argument("the member to add must be a string"))?,
        },
        // One member as the value, or several as the list.
        op::JSON_ARRAY_REMOVE => {
            let members: Vec<String> = value.into_iter().chain(list).collect();
            if members.is_empty() {
                return Err(StoreError::bad_argument(
                    "give the member (or members) to remove",
                ));
            }
            Request::JsonArrayRemove { key, members }
        }
        op::LIST_REMOVE => Request::ListRemove {
            key,
            member: value_or_err(value)?,
        },
        op::MGET => Request::MGet { keys: list },
        // `to` is the key with its id hashed, filled in by `Seal::hash_request`.
        op::ADOPT => Request::Adopt {
            to: key.clone(),
            from: key,
        },
        op::INDEXED_SET => {
            let [index_key, member] = extra(list)?;
            Request::IndexedSet {
                key,
                value: value_or_err(value)?,
                at: rounded_up(num)?,
                index_key,
                member,
            }
        }
        op::INDEXED_DELETE => {
            let [member, index_prefix, field] = extra(list)?;
            Request::IndexedDelete {
                key,
                member,
                index_prefix,
                field,
            }
        }
        op::INDEX_READ => Request::IndexRead {
            index_key: key,
            key_prefix: value_or_err(value)?,
            with_members: num.is_some_and(|n| n == 1.0),
        },
        op::PRUNE_INDEXES => Request::PruneIndexes {
            index_prefix: key,
            key_prefix: value_or_err(value)?,
            scan_count: scan_count(num),
        },
        other => {
            return Err(StoreError::bad_argument(format!(
                "unknown operation {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16_len(s: &str) -> f64 {
        s.encode_utf16().count() as f64
    }

    #[test]
    fn decodes_records_with_unicode_text() {
        let key = "sess:ü😀";
        let value = "{\"v\":\"é\"}";
        let nums = [
            op::SET as f64,
            1.0,
            60.0,
            utf16_len(key),
            utf16_len(value),
            0.0,
            op::DESTROY as f64,
            2.0,
            f64::NAN,
            0.0,
            -1.0,
            2.0,
            1.0,
            3.0,
        ];
        let text = format!("{key}{value}ab😀");
        let got = decode(&nums, &text).unwrap();
        assert_eq!(
            got[0],
            (
                1,
                Ok(Request::Set {
                    key: key.into(),
                    value: value.into(),
                    ttl_ms: Some(60_000)
                })
            )
        );
        assert_eq!(
            got[1],
            (
                2,
                Ok(Request::Destroy {
                    keys: vec!["a".into(), "b😀".into()]
                })
            )
        );
    }

    fn one(op: u32, num: f64, key: &str, value: Option<&str>, list: &[&str]) -> Decoded {
        let mut nums = vec![
            op as f64,
            9.0,
            num,
            utf16_len(key),
            value.map_or(-1.0, utf16_len),
            list.len() as f64,
        ];
        nums.extend(list.iter().map(|m| utf16_len(m)));
        let text = format!("{key}{}{}", value.unwrap_or(""), list.concat());
        decode(&nums, &text).unwrap().remove(0)
    }

    #[test]
    fn set_takes_seconds_and_set_ms_milliseconds() {
        let set = |op, num| one(op, num, "k", Some("v"), &[]).1;
        let ttl_ms = |ms| {
            Ok(Request::Set {
                key: "k".into(),
                value: "v".into(),
                ttl_ms: Some(ms),
            })
        };
        assert_eq!(set(op::SET, 60.0), ttl_ms(60_000));
        assert_eq!(set(op::SET, 1.2), ttl_ms(2_000));
        assert_eq!(set(op::SET_MS, 1500.0), ttl_ms(1500));
        assert_eq!(set(op::SET_MS, 1500.2), ttl_ms(1501));
        assert_eq!(set(op::SET_MS, 0.0), ttl_ms(0));
        assert!(set(op::SET_MS, f64::NAN).is_err());
        assert!(set(op::SET_MS, f64::INFINITY).is_err());
    }

    #[test]
    fn json_array_ops_take_one_member_or_a_list_to_remove() {
        assert_eq!(
            one(op::JSON_ARRAY_ADD, f64::NAN, "idx", Some("m"), &[]).1,
            Ok(Request::JsonArrayAdd {
                key: "idx".into(),
                member: "m".into()
            })
        );
        assert_eq!(
            one(op::JSON_ARRAY_REMOVE, f64::NAN, "idx", Some("m"), &[]).1,
            Ok(Request::JsonArrayRemove {
                key: "idx".into(),
                members: vec!["m".into()]
            })
        );
        assert_eq!(
            one(op::JSON_ARRAY_REMOVE, f64::NAN, "idx", None, &["a", "b😀"]).1,
            Ok(Request::JsonArrayRemove {
                key: "idx".into(),
                members: vec!["a".into(), "b😀".into()]
            })
        );
        for (op, list) in [
            (op::JSON_ARRAY_ADD, &[][..]),
            (op::JSON_ARRAY_REMOVE, &[][..]),
        ] {
            let got = one(op, f64::NAN, "idx", None, list).1;
            assert!(matches!(got, Err(e) if e.kind == crate::error::ErrorKind::BadArgument));
        }
        // A one-key script: routed by its key on a cluster.
        let command = Request::JsonArrayRemove {
            key: "idx".into(),
            members: vec!["a".into(), "b".into()],
        }
        .into_command()
        .unwrap();
        assert_eq!(command.keys().as_slice(), ["idx"]);
        assert!(command.writes());
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert!(decode(&[1.0, 1.0, 0.0, 5.0, -1.0, 0.0], "abc").is_err());
        assert!(decode(&[1.0, 1.0, 0.0], "abc").is_err());
        assert!(decode(&[1.0, 1.0, 0.0, 0.5, -1.0, 0.0], "abc").is_err());
        let got = decode(&[99.0, 4.0, f64::NAN, 1.0, -1.0, 0.0], "k").unwrap();
        assert!(matches!(&got[0], (4, Err(e)) if e.kind == crate::error::ErrorKind::BadArgument));
        let nan_ttl = decode(&[op::TOUCH as f64, 5.0, f64::NAN, 1.0, -1.0, 0.0], "k").unwrap();
        assert!(nan_ttl[0].1.is_err());
    }
}
