//! RESP2 encoding and incremental decoding for the JS-thread connection (`direct.rs`), which
//! writes commands straight into its socket buffer and reads replies without intermediate
//! values.

use std::io::Write;

/// Appends one command, given as its arguments, to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    // Room for every part at once: `*n`, then `$len` and the bytes per argument, each line
    // with its CRLF and at most 20 digits.
    out.reserve(24 + args.iter().map(|a| a.len() + 24).sum::<usize>());
    out.push(b'*');
    write_len(out, args.len());
    for a in args {
        out.push(b'$');
        write_len(out, a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn write_len(out: &mut Vec<u8>, n: usize) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The decimal form of an integer argument, on the stack.
pub fn int_arg(n: i64) -> IntArg {
    let mut digits = [0u8; 20];
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes();
    digits[..text.len()].copy_from_slice(text);
    IntArg {
        digits,
        len: text.len(),
    }
}

/// What `int_arg` gives: an i64's decimal digits (at most 20 with the sign).
pub struct IntArg {
    digits: [u8; 20],
    len: usize,
}

impl IntArg {
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// A reply, borrowing its bytes from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(Option<&'a [u8]>),
    Array(Option<Vec<Frame<'a>>>),
    /// RESP3 out-of-band data (`>`): client-side caching invalidations. Never a reply.
    Push(Vec<Frame<'a>>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Decodes one reply from the front of `buf`: `Ok(None)` if more bytes are needed, else the
/// reply and the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    decode_at(buf, 0, 0)
}

const MAX_DEPTH: usize = 8;
/// Redis's own ceiling for a bulk string (`proto-max-bulk-len`, 512 MB by default), doubled.
const MAX_BULK: i64 = 1 << 30;

fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(from..)?;
    let pos = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..pos], from + pos + 2))
}

fn parse_int(bytes: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("bad integer {:?}", String::from_utf8_lossy(bytes))))
}

fn decode_at(
    buf: &[u8],
    at: usize,
    depth: usize,
) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError("reply nested too deeply".into()));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((head, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Frame::Simple(head), next))),
        b'-' => Ok(Some((Frame::Error(head), next))),
        b':' => Ok(Some((Frame::Int(parse_int(head)?), next))),
        b'$' => {
            let len = parse_int(head)?;
            if len < 0 {
                return Ok(Some((Frame::Bulk(None), next)));
            }
            if len > MAX_BULK {
                return Err(ProtocolError(format!(
                    "bulk string of {len} bytes is too large"
                )));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string without CRLF".into()));
            }
            Ok(Some((Frame::Bulk(Some(&buf[next..end])), end + 2)))
        }
        // RESP3, spoken once near caching is on: null, boolean, double and big number read as
        // RESP2's nil, integer and text; maps and sets as flat arrays; pushes apart.
        b'_' => Ok(Some((Frame::Bulk(None), next))),
        b'#' => Ok(Some((Frame::Int((head == b"t") as i64), next))),
        b',' | b'(' => Ok(Some((Frame::Simple(head), next))),
        b'*' | b'~' | b'%' | b'>' => {
            let len = parse_int(head)?;
            if len < 0 {
                return Ok(Some((Frame::Array(None), next)));
            }
            let count = if kind == b'%' {
                len.saturating_mul(2)
            } else {
                len
            };
            let mut items = Vec::with_capacity((count as usize).min(1024));
            let mut pos = next;
            for _ in 0..count {
                match decode_at(buf, pos, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        pos = after;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'>' {
                return Ok(Some((Frame::Push(items), pos)));
            }
            Ok(Some((Frame::Array(Some(items)), pos)))
        }
        other => Err(ProtocolError(format!(
            "unexpected reply type byte {other:#x}"
        ))),
    }
}

/// Writes a command for a blocking handshake (`AUTH`, `SELECT`) and reads its one reply.
pub fn roundtrip<S: std::io::Read + Write>(
    stream: &mut S,
    args: &[&[u8]],
) -> std::io::Result<Result<(), String>> {
    Ok(query_tree(stream, args)?.map(|_| ()))
}

pub use crate::command::Tree;

impl Tree {
    /// A decoded frame, owned.
    pub fn of(frame: &Frame<'_>) -> Tree {
        let text = |b: &[u8]| Tree::Text(String::from_utf8_lossy(b).into_owned());
        match frame {
            Frame::Simple(b) | Frame::Bulk(Some(b)) | Frame::Error(b) => text(b),
            Frame::Int(n) => Tree::Int(*n),
            Frame::Bulk(None) | Frame::Array(None) => Tree::Nil,
            Frame::Array(Some(items)) | Frame::Push(items) => {
                Tree::List(items.iter().map(Tree::of).collect())
            }
        }
    }
}

/// Like `roundtrip`, and returns the whole reply.
pub fn query_tree<S: std::io::Read + Write>(
    stream: &mut S,
    args: &[&[u8]],
) -> std::io::Result<Result<Tree, String>> {
    let mut out = Vec::new();
    encode(&mut out, args);
    stream.write_all(&out)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match decode(&buf) {
            Ok(Some((Frame::Error(e), _))) => {
                return Ok(Err(String::from_utf8_lossy(e).into_owned()))
            }
            Ok(Some((frame, _))) => return Ok(Ok(Tree::of(&frame))),
            Ok(None) => {}
            Err(e) => return Ok(Err(e.0)),
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Like `roundtrip`, and returns the reply's text: the one string, or an array's string items
/// (others are left out), or nothing for a nil.
pub fn query<S: std::io::Read + Write>(
    stream: &mut S,
    args: &[&[u8]],
) -> std::io::Result<Result<Vec<String>, String>> {
    Ok(query_tree(stream, args)?.map(|tree| match tree {
        Tree::Text(s) => vec![s],
        Tree::Int(n) => vec![n.to_string()],
        Tree::List(items) => items
            .into_iter()
            .filter_map(|t| match t {
                Tree::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        Tree::Nil => Vec::new(),
    }))
}

/// Appends the RESP form of a session command to `out`.
pub fn encode_command(out: &mut Vec<u8>, command: &crate::command::Command) {
    use crate::command::{Command, Expiry};
    fn keyed(out: &mut Vec<u8>, name: &[u8], keys: &[String]) {
        out.push(b'*');
        write_len(out, keys.len() + 1);
        out.push(b'$');
        write_len(out, name.len());
        out.extend_from_slice(name);
        out.extend_from_slice(b"\r\n");
        for k in keys {
            out.push(b'$');
            write_len(out, k.len());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    /// `EVAL script 1 key args…`: a one-key script, so one slot on a cluster.
    fn eval(out: &mut Vec<u8>, script: &str, key: &str, args: &[&[u8]]) {
        let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1", key.as_bytes()];
        all.extend_from_slice(args);
        encode(out, &all);
    }
    match command {
        Command::Ping => encode(out, &[b"PING"]),
        Command::Get(key) => encode(out, &[b"GET", key.as_bytes()]),
        Command::GetDel(key) => encode(out, &[b"GETDEL", key.as_bytes()]),
        Command::Replace { key, value, at } => encode(
            out,
            &[
                b"SET",
                key.as_bytes(),
                value.as_bytes(),
                b"EXAT",
                int_arg(*at as i64).as_bytes(),
                b"XX",
            ],
        ),
        Command::Exists(key) => encode(out, &[b"EXISTS", key.as_bytes()]),
        Command::Increment { key, seconds } => eval(
            out,
            crate::command::INCREMENT_SCRIPT,
            key,
            &[int_arg(*seconds as i64).as_bytes()],
        ),
        Command::JsonArrayAdd { key, member } => eval(
            out,
            crate::command::JSON_ARRAY_ADD_SCRIPT,
            key,
            &[member.as_bytes()],
        ),
        Command::JsonArrayRemove { key, members } => {
            let args: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
            eval(out, crate::command::JSON_ARRAY_REMOVE_SCRIPT, key, &args);
        }
        Command::PTtl(key) => encode(out, &[b"PTTL", key.as_bytes()]),
        Command::Scan {
            cursor,
            pattern,
            count,
        } => encode(
            out,
            &[
                b"SCAN",
                cursor.as_bytes(),
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                count.to_string().as_bytes(),
            ],
        ),
        Command::SMembers(key) => encode(out, &[b"SMEMBERS", key.as_bytes()]),
        Command::LPush { key, member } => {
            encode(out, &[b"LPUSH", key.as_bytes(), member.as_bytes()])
        }
        Command::LRem { key, member } => {
            encode(out, &[b"LREM", key.as_bytes(), b"0", member.as_bytes()])
        }
        Command::LRange(key) => encode(out, &[b"LRANGE", key.as_bytes(), b"0", b"-1"]),
        Command::Set { key, value, expiry } => match *expiry {
            Expiry::Never => encode(out, &[b"SET", key.as_bytes(), value.as_bytes()]),
            Expiry::In(secs) => encode(
                out,
                &[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"EX",
                    int_arg(secs as i64).as_bytes(),
                ],
            ),
            Expiry::InMillis(ms) => encode(
                out,
                &[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"PX",
                    int_arg(ms as i64).as_bytes(),
                ],
            ),
            Expiry::At(unix) => encode(
                out,
                &[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"EXAT",
                    int_arg(unix as i64).as_bytes(),
                ],
            ),
        },
        Command::Expire { key, seconds } => encode(
            out,
            &[b"EXPIRE", key.as_bytes(), int_arg(*seconds).as_bytes()],
        ),
        Command::Del(keys) => keyed(out, b"DEL", keys),
        Command::MGet(keys) => keyed(out, b"MGET", keys),
        Command::SAdd { key, members } | Command::SRem { key, members } => {
            let name: &[u8] = if matches!(command, Command::SAdd { .. }) {
                b"SADD"
            } else {
                b"SREM"
            };
            let mut args: Vec<&[u8]> = vec![name, key.as_bytes()];
            args.extend(members.iter().map(|m| m.as_bytes()));
            encode(out, &args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &[b"SET", b"k", "é".as_bytes(), b"EX", int_arg(60).as_bytes()],
        );
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$2\r\nEX\r\n$2\r\n60\r\n"
        );
    }

    #[test]
    fn decodes_every_reply_type() {
        let buf =
            b"+OK\r\n-WRONGTYPE x\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n$-1\r\n*-1\r\n";
        let mut pos = 0;
        let mut frames = Vec::new();
        while let Some((f, used)) = decode(&buf[pos..]).unwrap() {
            frames.push(f);
            pos += used;
        }
        assert_eq!(pos, buf.len());
        assert_eq!(
            frames,
            vec![
                Frame::Simple(b"OK"),
                Frame::Error(b"WRONGTYPE x"),
                Frame::Int(42),
                Frame::Bulk(Some(b"abc")),
                Frame::Bulk(None),
                Frame::Array(Some(vec![Frame::Bulk(Some(b"a")), Frame::Bulk(None)])),
                Frame::Array(None),
            ]
        );
    }

    #[test]
    fn partial_input_waits_for_more() {
        let full = b"*2\r\n$5\r\nhello\r\n:7\r\n";
        for cut in 0..full.len() {
            assert_eq!(decode(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(decode(full).unwrap().is_some());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(decode(b"?what\r\n").is_err());
        assert!(decode(b":12x\r\n").is_err());
        assert!(decode(b"$3\r\nabcXY").is_err());
    }

    #[test]
    fn encodes_session_commands() {
        use crate::command::{Command, Expiry};
        let mut out = Vec::new();
        encode_command(
            &mut out,
            &Command::Set {
                key: "k".into(),
                value: "v".into(),
                expiry: Expiry::At(99),
            },
        );
        encode_command(&mut out, &Command::Del(vec!["a".into(), "b".into()]));
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nEXAT\r\n$2\r\n99\r\n*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
    }

    #[test]
    fn encodes_millisecond_expiry_and_json_array_scripts() {
        use crate::command::{Command, Expiry, JSON_ARRAY_REMOVE_SCRIPT};
        let mut out = Vec::new();
        encode_command(
            &mut out,
            &Command::Set {
                key: "k".into(),
                value: "v".into(),
                expiry: Expiry::InMillis(1500),
            },
        );
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
        );
        out.clear();
        encode_command(
            &mut out,
            &Command::JsonArrayRemove {
                key: "idx".into(),
                members: vec!["a".into(), "b".into()],
            },
        );
        let mut expected = Vec::new();
        encode(
            &mut expected,
            &[
                b"EVAL",
                JSON_ARRAY_REMOVE_SCRIPT.as_bytes(),
                b"1",
                b"idx",
                b"a",
                b"b",
            ],
        );
        assert_eq!(out, expected);
        assert!(out.starts_with(b"*6\r\n$4\r\nEVAL\r\n"));
    }
}
