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
use crate::command::Command;
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
            Role::Step(walk) => self.on_step(id, walk, frame, read),
            Role::Lead => {
                if let Frame::Error(e) = frame {
                    self.journal
                        .lead_failed(id, String::from_utf8_lossy(e).into_owned());
                }
            }
            Role::Aside => {}
            Role::Exec => {
                let mut error = self.journal.take_lead_error(id);
                if let (None, Frame::Array(Some(items))) = (&error, &frame) {
                    error = first_error(items).map(|e| String::from_utf8_lossy(e).into_owned());
                }
                match (error, frame) {
                    (Some(e), _) => read.out.error(id, error_kind(e.as_bytes()), &e),
                    (None, Frame::Error(e)) => push_frame(&mut read.out, id, &Frame::Error(e)),
                    (None, _) => read.out.nil(id),
                }
            }
            Role::Single => {
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
                match &open {
                    Some(opener) => push_opened(&mut read.out, id, self.seal, opener, &frame),
                    None => push_frame(&mut read.out, id, &frame),
                }
            }
        }
    }

    /// A walk's step answered: the walk's next step is queued here, handed to the router, or
    /// the call's reply.
    fn on_step(&mut self, id: u32, walk: walk::Walk, frame: Frame<'_>, read: &mut Read) {
        let failed =
            |e: &[u8]| StoreError::new(error_kind(e), String::from_utf8_lossy(e).into_owned());
        let reply = match (self.journal.take_lead_error(id), &frame) {
            (Some(e), _) => Err(failed(e.as_bytes())),
            (None, Frame::Error(e)) => Err(failed(e)),
            // A command of a transaction failed inside it.
            (None, Frame::Array(Some(items))) if first_error(items).is_some() => {
                Err(failed(first_error(items).expect("checked")))
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

/// The error code of a Redis error reply: the one place a server error is classified.
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
}
