//! The reader: turns the frames a connection read into what to deliver. One handler per kind
//! of frame (a push, a redirect, a server that cannot serve yet, a walk's step, a leading
//! command of a transaction, a call's reply), each filling a `Read` with replies for JS,
//! redirects and steps for the cluster router, or the reason to drop the connection. Nothing
//! here calls JS or the event loop.

use std::cell::RefCell;
use std::rc::Rc;

use super::cache::NearCache;
use super::journal::{Fill, Journal, Pending, Role, Waiting};
use super::outbox::Outbox;
use super::resp::{self, Frame, Tree};
use crate::command::{Command, Needs};
use crate::error::{ErrorKind, StoreError};
use crate::seal::{Opener, Seal};
use crate::walk::{self, Step};

/// A call this connection's server sent elsewhere (`MOVED`/`ASK`), for the cluster router.
pub struct Redirect {
    /// One call; or a whole transaction, `MULTI` to `EXEC`, one entry per command.
    pub calls: Vec<Waiting>,
    pub to: (String, u16),
    pub ask: bool,
}

/// What one read produced.
#[derive(Default)]
pub struct Read {
    /// Bytes of the input consumed.
    pub used: usize,
    pub out: Outbox,
    pub redirects: Vec<Redirect>,
    /// Walks' next steps, for the router to send where their keys live.
    pub steps: Vec<(u32, Step)>,
    /// A walk queued its next step here: the journal has more to send.
    pub more: bool,
    /// Why the connection must go.
    pub lost: Option<String>,
}

/// What the reader needs of its connection.
pub struct Reader<'a> {
    pub journal: &'a mut Journal,
    pub cache: Option<&'a Rc<RefCell<NearCache>>>,
    pub seal: &'a Seal,
    /// A cluster node: redirects and steps elsewhere go to the router.
    pub routed: bool,
    /// The server's name and version, as the handshake read them (`Redis 6.0.16`).
    pub server: Option<&'a str>,
}

impl Reader<'_> {
    /// Decodes every complete frame of `input`.
    pub fn read(&mut self, input: &[u8]) -> Read {
        let mut read = Read::default();
        while !self.journal.is_empty() || (self.cache.is_some() && read.used < input.len()) {
            match resp::decode(&input[read.used..]) {
                Ok(Some((Frame::Push(items), n))) => {
                    read.used += n;
                    self.on_push(&items);
                }
                Ok(Some(_)) if self.journal.is_empty() => {
                    read.lost = Some("a reply came for no call".into());
                    break;
                }
                Ok(Some((Frame::Error(e), n))) if self.routed && redirect_of(e).is_some() => {
                    read.used += n;
                    self.on_redirect(e, &mut read);
                }
                Ok(Some((Frame::Error(e), _))) if is_moving(e) => {
                    // A demoted primary (READONLY) or a server still loading: the call stays
                    // in the journal and goes again on a new connection, found anew.
                    read.lost = Some(String::from_utf8_lossy(e).into_owned());
                    break;
                }
                Ok(Some((frame, n))) => {
                    read.used += n;
                    self.on_reply(frame, &mut read);
                }
                Ok(None) => break,
                Err(e) => {
                    read.lost = Some(format!("protocol error: {}", e.0));
                    break;
                }
            }
        }
        read
    }

    /// A RESP3 push: `["invalidate", [keys…]]`, or `["invalidate", nil]` for everything.
    fn on_push(&mut self, items: &[Frame<'_>]) {
        let Some(cache) = self.cache else { return };
        if !matches!(items.first(), Some(Frame::Bulk(Some(b)) | Frame::Simple(b)) if *b == b"invalidate")
        {
            return;
        }
        let keys = match items.get(1) {
            Some(Frame::Array(Some(keys))) => Some(
                keys.iter()
                    .filter_map(|k| match k {
                        Frame::Bulk(Some(b)) | Frame::Simple(b) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        };
        cache.borrow_mut().invalidate(keys);
    }

    /// `MOVED`/`ASK`: the call (or its whole transaction) goes to the router.
    fn on_redirect(&mut self, error: &[u8], read: &mut Read) {
        let Some((ask, to)) = redirect_of(error) else {
            return;
        };
        let Some((p, range)) = self.journal.answer() else {
            return;
        };
        if p.answered {
            return;
        }
        let bytes = self.journal.bytes(range).to_vec();
        let mut calls = Vec::new();
        if matches!(p.role, Role::Lead) && !ask {
            // A command of a transaction: its keys share one slot, so this is the first
            // command after `MULTI`, and the server will abort the rest. The whole transaction
            // goes to the slot's owner; the replies still due here are read and dropped.
            let mut multi = Vec::new();
            resp::encode(&mut multi, &[b"MULTI"]);
            calls.push(Waiting {
                id: p.id,
                deadline: p.deadline,
                bytes: multi,
                slot: p.slot,
                open: None,
                role: Role::Lead,
            });
            let id = p.id;
            calls.push(waiting(p, bytes));
            let (all, following) = self.journal.following_with_bytes();
            for (q, range) in following {
                if q.id != id {
                    break;
                }
                q.answered = true;
                let role = std::mem::replace(&mut q.role, Role::Aside);
                let last = !matches!(role, Role::Lead);
                calls.push(Waiting {
                    id,
                    deadline: q.deadline,
                    bytes: all[range].to_vec(),
                    slot: q.slot,
                    open: None,
                    role,
                });
                if last {
                    break;
                }
            }
        } else {
            calls.push(waiting(p, bytes));
        }
        read.redirects.push(Redirect { calls, to, ask });
    }

    /// Any other frame: the reply of the call at the front of the journal.
    fn on_reply(&mut self, frame: Frame<'_>, read: &mut Read) {
        let Some((p, _)) = self.journal.answer() else {
            return;
        };
        self.feed_cache(&p, &frame);
        if p.answered {
            return;
        }
        let Pending {
            id,
            role,
            open,
            cache,
            ..
        } = p;
        match role {
            Role::Step(walk, needs) => self.on_step(id, walk, needs, frame, read),
            Role::Lead => {
                if let Frame::Error(e) = frame {
                    self.journal
                        .lead_failed(id, String::from_utf8_lossy(e).into_owned());
                }
            }
            Role::Aside => {}
            Role::Exec(needs) => {
                let mut error = self.journal.take_lead_error(id);
                if let (None, Frame::Array(Some(items))) = (&error, &frame) {
                    error = first_error(items).map(|e| String::from_utf8_lossy(e).into_owned());
                }
                let failed = match (&error, &frame) {
                    (Some(e), _) => self.failure(e.as_bytes(), needs),
                    (None, Frame::Error(e)) => self.failure(e, needs),
                    (None, _) => return read.out.nil(id),
                };
                read.out.error(id, failed.kind, &failed.message);
            }
            Role::Single(needs) => {
                if let (Some(cache), Fill::Value(key)) = (self.cache, &cache) {
                    let mut cache = cache.borrow_mut();
                    match &frame {
                        Frame::Bulk(Some(b)) => match std::str::from_utf8(b) {
                            Ok(text) => cache.fill(key, Some(text)),
                            Err(_) => cache.unfill(key),
                        },
                        Frame::Bulk(None) => cache.fill(key, None),
                        _ => cache.unfill(key),
                    }
                }
                match (&frame, &open) {
                    (Frame::Error(e), _) => {
                        let failed = self.failure(e, needs);
                        read.out.error(id, failed.kind, &failed.message);
                    }
                    (_, Some(opener)) => push_opened(&mut read.out, id, self.seal, opener, &frame),
                    (_, None) => push_frame(&mut read.out, id, &frame),
                }
            }
        }
    }

    /// A Redis error reply as the call's error: `ERR_SERVER_VERSION` when the call's command
    /// needs a newer server (`needs`), the server is not known to be new enough (else it
    /// refused for another reason, and its own answer stands), and the reply is how an older
    /// server refuses it; else by `error_kind`.
    fn failure(&self, text: &[u8], needs: Option<&'static Needs>) -> StoreError {
        let answer = String::from_utf8_lossy(text);
        let older = |n: &&'static Needs| !self.server.is_some_and(|s| n.met_by(s));
        match needs.filter(older).filter(|_| refused_as_unknown(text)) {
            Some(needs) => StoreError::new(
                ErrorKind::ServerVersion,
                needs.message(self.server, &answer),
            ),
            None => StoreError::new(error_kind(text), answer.into_owned()),
        }
    }

    /// A walk's step answered: the walk's next step is queued here, handed to the router, or
    /// the call's reply. `needs`: what the step's command (or transaction) needs of the server.
    fn on_step(
        &mut self,
        id: u32,
        walk: walk::Walk,
        needs: Option<&'static Needs>,
        frame: Frame<'_>,
        read: &mut Read,
    ) {
        let lead_error = self.journal.take_lead_error(id);
        let reply = match (lead_error, &frame) {
            (Some(e), _) => Err(self.failure(e.as_bytes(), needs)),
            (None, Frame::Error(e)) => Err(self.failure(e, needs)),
            // A command of a transaction failed inside it.
            (None, Frame::Array(Some(items))) if first_error(items).is_some() => {
                Err(self.failure(first_error(items).expect("checked"), needs))
            }
            (None, other) => Ok(Tree::of(other)),
        };
        // A cluster node keeps only the steps that must run on it (the next page of its
        // SCAN); the router sends the others where their keys live.
        let local = !self.routed;
        match walk.resume(reply) {
            Step::Send(command, next) if local || walk::is_page(&command) => {
                let fill = write_fill(self.cache, &command);
                self.journal.step(id, &command, next, None, fill);
                read.more = true;
            }
            Step::Atomic(commands, next) if local => {
                let fill = transaction_fill(self.cache, &commands);
                self.journal
                    .transaction(id, &commands, Some(next), None, fill);
                read.more = true;
            }
            Step::Wait => {}
            step @ (Step::Send(..) | Step::Atomic(..)) => read.steps.push((id, step)),
            Step::Done(reply) => read.out.reply(id, reply),
        }
    }

    fn feed_cache(&self, p: &Pending, frame: &Frame<'_>) {
        let Some(cache) = self.cache else { return };
        match (&p.cache, frame) {
            (Fill::Ttl(key), Frame::Int(ms)) => cache.borrow_mut().set_ttl(key, *ms),
            (Fill::Wrote(tags), _) => {
                let mut cache = cache.borrow_mut();
                tags.iter().for_each(|t| cache.written(*t));
            }
            _ => {}
        }
    }
}

fn waiting(p: Pending, bytes: Vec<u8>) -> Waiting {
    Waiting {
        id: p.id,
        deadline: p.deadline,
        bytes,
        slot: p.slot,
        open: p.open,
        role: p.role,
    }
}

fn first_error<'a>(items: &'a [Frame<'a>]) -> Option<&'a [u8]> {
    items.iter().find_map(|f| match f {
        Frame::Error(e) => Some(*e),
        _ => None,
    })
}

/// What a write of `command`'s keys tells the near cache: held back until answered.
pub fn write_fill(cache: Option<&Rc<RefCell<NearCache>>>, command: &Command) -> Fill {
    match cache {
        Some(cache) if command.writes() => {
            let mut cache = cache.borrow_mut();
            Fill::Wrote(
                command
                    .keys()
                    .into_iter()
                    .map(|k| cache.writing(k))
                    .collect(),
            )
        }
        _ => Fill::None,
    }
}

/// `write_fill` for every key of a transaction.
pub fn transaction_fill(cache: Option<&Rc<RefCell<NearCache>>>, commands: &[Command]) -> Fill {
    let Some(cache) = cache else {
        return Fill::None;
    };
    let mut cache = cache.borrow_mut();
    Fill::Wrote(
        commands
            .iter()
            .flat_map(|c| c.keys())
            .map(|k| cache.writing(k))
            .collect(),
    )
}

/// `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>`: whether it is an ASK, and where.
pub fn redirect_of(error: &[u8]) -> Option<(bool, (String, u16))> {
    let text = std::str::from_utf8(error).ok()?;
    let mut parts = text.split(' ');
    let ask = match parts.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let _slot = parts.next()?;
    let (host, port) = parts.next()?.rsplit_once(':')?;
    Some((ask, (host.to_string(), port.parse().ok()?)))
}

/// Replies that say the server cannot take the call right now but another (or it, shortly)
/// will: a failover or restart under way.
fn is_moving(error: &[u8]) -> bool {
    [
        &b"READONLY"[..],
        b"LOADING",
        b"MASTERDOWN",
        b"TRYAGAIN",
        b"CLUSTERDOWN",
    ]
    .iter()
    .any(|p| error.starts_with(p))
}

/// Whether an error reply is how a server older than a command or option refuses it: it does
/// not know the command, takes fewer arguments, or not the option (also when a script's
/// `redis.call` got it, after the script's own prefix).
fn refused_as_unknown(text: &[u8]) -> bool {
    const SAYS: [&[u8]; 4] = [
        b"unknown command",
        b"unknown subcommand",
        b"wrong number of arguments",
        b"syntax error",
    ];
    SAYS.iter().any(|says| {
        text.windows(says.len())
            .any(|w| w.eq_ignore_ascii_case(says))
    })
}

/// The error code of a Redis error reply: the one place a server error is classified (see
/// `Reader::failure` for a command that needs a newer server).
pub fn error_kind(text: &[u8]) -> ErrorKind {
    if text.starts_with(b"WRONGTYPE") {
        ErrorKind::WrongType
    } else if text.starts_with(b"NOPERM") || text.starts_with(b"NOAUTH") {
        ErrorKind::Auth
    } else if text.starts_with(b"BADDATA") {
        // Our scripts' answer to a value they cannot read (the JSON array scripts, `command.rs`).
        ErrorKind::BadData
    } else {
        ErrorKind::Redis
    }
}

const NOT_UTF8: &str = "stored value is not valid UTF-8";

fn push_text(out: &mut Outbox, id: u32, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.text(id, s),
        Err(_) => out.error(id, ErrorKind::Redis, NOT_UTF8),
    }
}

/// A reply as it reaches JS.
fn push_frame(out: &mut Outbox, id: u32, frame: &Frame<'_>) {
    match frame {
        Frame::Simple(s) | Frame::Bulk(Some(s)) => push_text(out, id, s),
        Frame::Error(e) => out.error(id, error_kind(e), &String::from_utf8_lossy(e)),
        Frame::Int(n) => out.int(id, *n),
        Frame::Bulk(None) | Frame::Array(None) | Frame::Push(_) => out.nil(id),
        Frame::Array(Some(items)) => out.list(
            id,
            // Like redis-rs's path: a missing or non-text element is null.
            items.iter().map(|item| match item {
                Frame::Bulk(Some(b)) | Frame::Simple(b) => std::str::from_utf8(b).ok(),
                _ => None,
            }),
        ),
    }
}

/// A read's reply with its values opened (`encryption`); one that does not open makes the
/// reply an `ERR_BAD_DATA` error.
fn push_opened(out: &mut Outbox, id: u32, seal: &Seal, opener: &Opener, frame: &Frame<'_>) {
    let open = |key: &str, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => seal.open_str(key, text),
        Err(_) => Err(StoreError::new(ErrorKind::Redis, NOT_UTF8)),
    };
    match (opener, frame) {
        (Opener::Key(key), Frame::Bulk(Some(b))) => match open(key, b) {
            Ok(plain) => out.text(id, &plain),
            Err(e) => out.error(id, e.kind, &e.message),
        },
        (Opener::Keys(keys), Frame::Array(Some(items))) => {
            let mut values = Vec::with_capacity(items.len());
            for (key, item) in keys.iter().zip(items.iter()) {
                match item {
                    Frame::Bulk(Some(b)) => match open(key, b) {
                        Ok(plain) => values.push(Some(plain)),
                        Err(e) => return out.error(id, e.kind, &e.message),
                    },
                    _ => values.push(None),
                }
            }
            out.list(id, values.iter().map(|v| v.as_deref()));
        }
        _ => push_frame(out, id, frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_classified_by_their_code() {
        assert_eq!(error_kind(b"WRONGTYPE Operation"), ErrorKind::WrongType);
        assert_eq!(error_kind(b"NOPERM no"), ErrorKind::Auth);
        assert_eq!(
            error_kind(b"BADDATA the value is not a JSON array of strings"),
            ErrorKind::BadData
        );
        assert_eq!(error_kind(b"ERR syntax error"), ErrorKind::Redis);
    }

    /// The errors `read` gives the calls queued by `queue`, for the wire replies `replies`.
    fn errors_for(
        server: Option<&str>,
        queue: impl FnOnce(&mut Journal),
        replies: &[u8],
    ) -> Vec<(u32, ErrorKind, String)> {
        let mut journal = Journal::new(std::time::Duration::from_secs(5), 100);
        queue(&mut journal);
        let seal = Seal::default();
        let mut reader = Reader {
            journal: &mut journal,
            cache: None,
            seal: &seal,
            routed: false,
            server,
        };
        let read = reader.read(replies);
        assert_eq!(read.used, replies.len());
        let out = read.out;
        out.items
            .iter()
            .map(|(id, item)| match item {
                super::super::outbox::Item::Error(kind, r) => {
                    (*id, *kind, out.text[r.clone()].to_string())
                }
                _ => (*id, ErrorKind::Internal, "not an error".into()),
            })
            .collect()
    }

    #[test]
    fn what_an_older_server_refuses_names_the_version_it_needs() {
        use crate::command::Expiry;
        let set = |key: &str, expiry| Command::Set {
            key: key.into(),
            value: "v".into(),
            expiry,
        };
        let queue = |j: &mut Journal| {
            j.command(1, &Command::GetDel("k".into()), None, Fill::None, None);
            j.command(2, &set("k", Expiry::At(9)), None, Fill::None, None);
            j.command(3, &set("k", Expiry::In(9)), None, Fill::None, None);
            let index = Command::SAdd {
                key: "i".into(),
                members: vec!["k".into()],
            };
            j.transaction(4, &[set("k", Expiry::At(9)), index], None, None, Fill::None);
            let add = Command::JsonArrayAdd {
                key: "a".into(),
                member: "m".into(),
            };
            j.command(5, &add, None, Fill::None, None);
        };
        // What Redis 6.0.16 answers, the script's error as a server before 6.0 would answer
        // its KEEPTTL, and a syntax error of a command that needs nothing new.
        let replies = b"-ERR unknown command `GETDEL`, with args beginning with: `k`, \r\n\
            -ERR syntax error\r\n\
            -ERR syntax error\r\n\
            +OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR syntax error\r\n:1\r\n\
            -ERR Error running script (call to f_0): @user_script:33: ERR syntax error\r\n";
        let named = errors_for(Some("Redis 6.0.16"), queue, replies);
        let version = ErrorKind::ServerVersion;
        assert_eq!(
            named,
            vec![
                (
                    1,
                    version,
                    "GETDEL needs Redis 6.2 or newer; this server is Redis 6.0.16".into()
                ),
                (
                    2,
                    version,
                    "SET … EXAT needs Redis 6.2 or newer; this server is Redis 6.0.16".into()
                ),
                (3, ErrorKind::Redis, "ERR syntax error".into()),
                (
                    4,
                    version,
                    "SET … EXAT needs Redis 6.2 or newer; this server is Redis 6.0.16".into()
                ),
                // 6.0.16 has KEEPTTL: a refusal of it has another cause, and stands as it is.
                (
                    5,
                    ErrorKind::Redis,
                    "ERR Error running script (call to f_0): @user_script:33: ERR syntax error"
                        .into()
                ),
            ]
        );
        let older = errors_for(Some("Redis 5.0.14"), queue, replies);
        assert_eq!(
            older[4],
            (
                5,
                version,
                "SET … KEEPTTL (in the JSON array scripts) needs Redis 6.0 or newer; this server is Redis 5.0.14".into()
            )
        );
        // A server new enough (a renamed command, a proxy): the server's answer stands.
        let newer = errors_for(Some("Redis 7.2.4"), queue, replies);
        assert!(
            newer.iter().all(|(_, kind, _)| *kind == ErrorKind::Redis),
            "{newer:?}"
        );
        // A server that did not say its version: its answer, without the arguments it echoes.
        let unnamed = errors_for(None, queue, replies);
        assert_eq!(
            unnamed[0].2,
            "GETDEL needs Redis 6.2 or newer; this server answered: ERR unknown command `GETDEL`"
        );
        assert_eq!(
            unnamed[1].2,
            "SET … EXAT needs Redis 6.2 or newer; this server answered: ERR syntax error"
        );
    }

    #[test]
    fn a_transaction_refused_at_queue_time_names_the_version_too() {
        let queue = |j: &mut Journal| {
            let take = Command::GetDel("k".into());
            j.transaction(
                7,
                &[take, Command::Del(vec!["k".into()])],
                None,
                None,
                Fill::None,
            );
        };
        let replies = b"+OK\r\n-ERR unknown command `GETDEL`, with args beginning with: `k`, \r\n\
            +QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n";
        assert_eq!(
            errors_for(Some("Redis 5.0.14"), queue, replies),
            vec![(
                7,
                ErrorKind::ServerVersion,
                "GETDEL needs Redis 6.2 or newer; this server is Redis 5.0.14".into()
            )]
        );
    }
}
