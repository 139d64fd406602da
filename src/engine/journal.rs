//! The journal: every call still waiting for its reply, in call order, with the RESP bytes of
//! its command. It outlives a connection: after a reconnect, whatever was not answered is sent
//! again (every command the engine sends is idempotent, or a whole transaction, but for
//! `GETDEL` and a counter's `INCR`: sent again after a loss that hid their reply, the one answers
//! `nil` and the other counts twice, as ioredis's resend does). Nothing here touches a socket,
//! a loop or JS; it is unit-tested on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redis::cluster_routing::Slot;

use super::cache::{Tag, Tags};
use super::resp;
use crate::command::{Command, Needs};
use crate::error::{ErrorKind, StoreError};
use crate::seal::Opener;
use crate::walk::Walk;

/// What a command's reply is to its call.
pub enum Role {
    /// The call's one command: its reply is the call's. With what the command needs of the
    /// server, if anything (`Command::needs`): an error names it.
    Single(Option<&'static Needs>),
    /// A command the engine sent for itself (a `PTTL` for the near cache, an `ASKING`): its
    /// reply is read and dropped.
    Aside,
    /// `MULTI` or a command inside a transaction: its reply is not the call's, but an error in
    /// it is.
    Lead,
    /// A transaction's `EXEC`: the call's reply is `null`, or the first error. With what the
    /// transaction's commands need of the server, if any (`Command::needs`): an error names it.
    Exec(Option<&'static Needs>),
    /// A keyspace walk's step (a command, or a transaction's `EXEC`), with what it needs, as
    /// `Single` and `Exec`: its reply gives the walk's next step or the call's reply.
    Step(Walk, Option<&'static Needs>),
}

impl Role {
    fn is_lead(&self) -> bool {
        matches!(self, Role::Lead)
    }
}

/// How a reply feeds the near cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    None,
    /// A `GET` of this key: its value.
    Value(String),
    /// A `PTTL` of this key, sent beside the `GET`: when the value expires.
    Ttl(String),
    /// A write of these keys: answered, they may be cached again.
    Wrote(Tags),
}

/// A call waiting for its reply.
pub struct Pending {
    pub id: u32,
    /// The cluster slot of its keys, to route it again after the slot map changes.
    pub slot: Option<Slot>,
    pub deadline: Instant,
    /// Where its command ends in the journal; it starts where the previous one ends.
    end: usize,
    /// Its caller was already answered (it timed out), or it never had one (`Role::Aside`):
    /// the reply is read and dropped.
    pub answered: bool,
    pub cache: Fill,
    /// What its reply is opened with, under encryption.
    pub open: Option<Opener>,
    pub role: Role,
    /// For a SCAN page past the first: the same SCAN from cursor 0, sent in its place after
    /// a reconnect (a cursor means nothing to a restarted server).
    rescan: Option<Box<[u8]>>,
}

/// A call taken out of one connection's journal, to be sent on another (a redirect, or a
/// slot that moved), with its encoded command.
pub struct Waiting {
    pub id: u32,
    pub deadline: Instant,
    pub bytes: Vec<u8>,
    pub slot: Option<Slot>,
    pub open: Option<Opener>,
    pub role: Role,
}

impl Waiting {
    /// Whether this is a step of a walk that must run on the node it was on (a `SCAN` page,
    /// whose cursor means nothing elsewhere).
    pub fn pinned(&self) -> bool {
        matches!(self.role, Role::Step(..)) && self.slot.is_none()
    }
}

pub struct Journal {
    /// The RESP bytes of every call still waiting, from `head` on.
    bytes: Vec<u8>,
    head: usize,
    /// How much of `bytes` the current connection was sent.
    written: usize,
    pending: VecDeque<Pending>,
    timeout: Duration,
    max_pending: usize,
    /// The error a leading command of call `.0` got, for its transaction's last reply.
    lead_error: Option<(u32, String)>,
}

impl Journal {
    pub fn new(timeout: Duration, max_pending: usize) -> Journal {
        Journal {
            bytes: Vec::with_capacity(16 * 1024),
            head: 0,
            written: 0,
            pending: VecDeque::new(),
            timeout,
            max_pending,
            lead_error: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether any caller still waits (timed-out and aside commands do not count).
    pub fn waiting(&self) -> bool {
        self.pending.iter().any(|p| !p.answered)
    }

    /// The deadline of the oldest command still in the journal, answered or not.
    pub fn oldest_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.deadline)
    }

    /// Whether a caller still waits on a call of cluster slot `slot`.
    pub fn has_slot(&self, slot: Slot) -> bool {
        self.pending
            .iter()
            .any(|p| !p.answered && p.slot == Some(slot))
    }

    /// The cluster slots of the calls whose callers still wait.
    pub fn slots(&self) -> std::collections::HashSet<Slot> {
        self.pending
            .iter()
            .filter(|p| !p.answered)
            .filter_map(|p| p.slot)
            .collect()
    }

    /// The first deadline of a call whose caller still waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .find(|p| !p.answered)
            .map(|p| p.deadline)
    }

    /// `ERR_OVERLOADED` when `more` commands would exceed `maxPending`.
    pub fn room_for(&self, more: usize) -> Result<(), StoreError> {
        if self.pending.len() + more > self.max_pending {
            let max = self.max_pending;
            return Err(StoreError::new(
                ErrorKind::Overloaded,
                format!("more than {max} calls are waiting on Redis"),
            ));
        }
        Ok(())
    }

    fn push(&mut self, id: u32, slot: Option<Slot>, deadline: Instant, role: Role, cache: Fill) {
        let answered = matches!(role, Role::Aside);
        self.pending.push_back(Pending {
            id,
            slot,
            deadline,
            end: self.bytes.len(),
            answered,
            cache,
            open: None,
            role,
            rescan: None,
        });
    }

    /// Queues call `id`'s one command.
    pub fn command(
        &mut self,
        id: u32,
        command: &Command,
        slot: Option<Slot>,
        cache: Fill,
        open: Option<Opener>,
    ) {
        let deadline = Instant::now() + self.timeout;
        let ttl_of = match &cache {
            Fill::Value(key) => Some(key.clone()),
            _ => None,
        };
        resp::encode_command(&mut self.bytes, command);
        self.push(id, slot, deadline, Role::Single(command.needs()), cache);
        if let Some(p) = self.pending.back_mut() {
            p.open = open;
        }
        if let Some(key) = ttl_of {
            // The key's TTL, so a cached entry also expires locally.
            resp::encode(&mut self.bytes, &[b"PTTL", key.as_bytes()]);
            self.push(0, slot, deadline, Role::Aside, Fill::Ttl(key));
        }
    }

    /// Queues `commands` as one transaction for call `id`: `MULTI`, each command and `EXEC`,
    /// back to back. With no `walk`, the call answers `null` or the first error; with one, the
    /// `EXEC` reply goes on to it.
    pub fn transaction(
        &mut self,
        id: u32,
        commands: &[Command],
        walk: Option<Walk>,
        slot: Option<Slot>,
        cache: Fill,
    ) {
        let deadline = Instant::now() + self.timeout;
        resp::encode(&mut self.bytes, &[b"MULTI"]);
        self.push(id, slot, deadline, Role::Lead, Fill::None);
        for command in commands {
            resp::encode_command(&mut self.bytes, command);
            self.push(id, slot, deadline, Role::Lead, Fill::None);
        }
        resp::encode(&mut self.bytes, &[b"EXEC"]);
        let needs = commands.iter().find_map(Command::needs);
        let role = match walk {
            Some(walk) => Role::Step(walk, needs),
            None => Role::Exec(needs),
        };
        self.push(id, slot, deadline, role, cache);
    }

    /// Queues a walk's next command for call `id`, with a deadline of its own: a walk of a
    /// large keyspace is bounded per round trip, not as a whole.
    pub fn step(
        &mut self,
        id: u32,
        command: &Command,
        walk: Walk,
        slot: Option<Slot>,
        cache: Fill,
    ) {
        let rescan = match command {
            Command::Scan {
                cursor,
                pattern,
                count,
            } if cursor != "0" => {
                let mut first = Vec::new();
                resp::encode_command(
                    &mut first,
                    &Command::Scan {
                        cursor: "0".into(),
                        pattern: pattern.clone(),
                        count: *count,
                    },
                );
                Some(first.into_boxed_slice())
            }
            _ => None,
        };
        resp::encode_command(&mut self.bytes, command);
        let deadline = Instant::now() + self.timeout;
        self.push(id, slot, deadline, Role::Step(walk, command.needs()), cache);
        if let Some(p) = self.pending.back_mut() {
            p.rescan = rescan;
        }
    }

    /// Queues a call another connection gave up, keeping its deadline. With `asking`, an
    /// `ASKING` goes first, its reply dropped.
    pub fn requeue(&mut self, call: Waiting, asking: bool) {
        if asking {
            resp::encode(&mut self.bytes, &[b"ASKING"]);
            self.push(0, None, call.deadline, Role::Aside, Fill::None);
        }
        self.bytes.extend_from_slice(&call.bytes);
        self.push(call.id, call.slot, call.deadline, call.role, Fill::None);
        if let Some(p) = self.pending.back_mut() {
            p.open = call.open;
        }
    }

    /// Every call still waiting, taken out (their connection is down, and the router sends
    /// them where their slots now live).
    pub fn take_waiting(&mut self) -> Vec<Waiting> {
        let mut start = self.head;
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let end = p.end;
            if !p.answered {
                out.push(Waiting {
                    id: p.id,
                    deadline: p.deadline,
                    bytes: self.bytes[start..end].to_vec(),
                    slot: p.slot,
                    open: p.open,
                    role: p.role,
                });
            }
            start = end;
        }
        self.bytes.clear();
        self.head = 0;
        self.written = 0;
        out
    }

    /// What the connection has not been sent yet.
    pub fn unsent(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    /// Gives the commands of call `id` at the end of the journal `deadline` (a call the
    /// router held back keeps the deadline it was made with).
    pub fn redate(&mut self, id: u32, deadline: Instant) {
        for p in self.pending.iter_mut().rev() {
            if p.id != id && !matches!(p.role, Role::Aside) {
                break;
            }
            p.deadline = deadline;
        }
    }

    /// A new connection: everything not answered goes again.
    pub fn resend(&mut self) {
        self.written = self.head;
    }

    pub fn sent(&mut self, n: usize) {
        self.written += n;
    }

    pub fn all_sent(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// The next call's reply arrived: it leaves the journal, with its command's bytes.
    pub fn answer(&mut self) -> Option<(Pending, std::ops::Range<usize>)> {
        let p = self.pending.pop_front()?;
        let range = self.head..p.end;
        self.head = p.end;
        Some((p, range))
    }

    pub fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// The calls after the front, with the journal's bytes (a transaction moved whole by a
    /// redirect takes its commands' bytes).
    pub fn following_with_bytes(
        &mut self,
    ) -> (
        &[u8],
        impl Iterator<Item = (&mut Pending, std::ops::Range<usize>)>,
    ) {
        let mut from = self.head;
        let bytes = &self.bytes[..];
        let iter = self.pending.iter_mut().map(move |p| {
            let range = from..p.end;
            from = p.end;
            (p, range)
        });
        (bytes, iter)
    }

    /// Records the error a leading command of call `id` got.
    pub fn lead_failed(&mut self, id: u32, error: String) {
        self.lead_error = Some((id, error));
    }

    /// The error a leading command of call `id` got, if any.
    pub fn take_lead_error(&mut self, id: u32) -> Option<String> {
        match self.lead_error.take() {
            Some((i, e)) if i == id => Some(e),
            other => {
                self.lead_error = other;
                None
            }
        }
    }

    /// After replies were read: drops what is answered, all at once when nothing waits.
    pub fn tidy(&mut self) {
        if self.pending.is_empty() && self.written == self.bytes.len() {
            self.bytes.clear();
            self.head = 0;
            self.written = 0;
        } else if self.head > 64 * 1024 && self.head * 2 > self.bytes.len() {
            let head = self.head;
            self.bytes.drain(..head);
            for p in self.pending.iter_mut() {
                p.end -= head;
            }
            self.written -= head.min(self.written);
            self.head = 0;
        }
    }

    /// Marks the calls whose deadline passed as answered and returns their ids (leading
    /// commands are not calls of their own).
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let mut expired = Vec::new();
        for p in self.pending.iter_mut() {
            if p.deadline > now {
                break;
            }
            if !p.answered {
                p.answered = true;
                if !p.role.is_lead() {
                    expired.push(p.id);
                }
            }
        }
        expired
    }

    /// After a connection is lost: keeps only the calls still waiting, so a new connection
    /// sends exactly those again. Returns the tags of writes nobody waits for any more (they
    /// are not sent again, so the near cache may take those keys again).
    pub fn rebuild(&mut self) -> Vec<Tag> {
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.head);
        let mut start = self.head;
        let mut kept = VecDeque::with_capacity(self.pending.len());
        let mut released = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            if !p.answered {
                match p.rescan.take() {
                    Some(first) => bytes.extend_from_slice(&first),
                    None => bytes.extend_from_slice(&self.bytes[start..p.end]),
                }
                start = p.end;
                p.end = bytes.len();
                kept.push_back(p);
            } else {
                start = p.end;
                if let Fill::Wrote(tags) = p.cache {
                    released.extend(tags);
                }
            }
        }
        self.pending = kept;
        self.bytes = bytes;
        self.head = 0;
        self.written = 0;
        self.lead_error = None;
        released
    }

    /// Empties the journal; returns the ids of callers still waiting (each call once).
    pub fn drain(&mut self) -> Vec<u32> {
        let ids = self
            .pending
            .drain(..)
            .filter(|p| !p.answered && !p.role.is_lead())
            .map(|p| p.id)
            .collect();
        self.bytes = Vec::new();
        self.head = 0;
        self.written = 0;
        self.lead_error = None;
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Expiry;

    fn journal() -> Journal {
        Journal::new(Duration::from_secs(5), 100)
    }

    fn set(key: &str) -> Command {
        Command::Set {
            key: key.into(),
            value: "v".into(),
            expiry: Expiry::In(10),
        }
    }

    #[test]
    fn answers_in_order_and_empties() {
        let mut j = journal();
        j.command(1, &Command::Get("a".into()), None, Fill::None, None);
        j.command(2, &set("b"), None, Fill::None, None);
        let n = j.unsent().len();
        assert!(String::from_utf8_lossy(j.unsent()).contains("GET"));
        j.sent(n);
        assert!(j.all_sent());
        let (p, range) = j.answer().unwrap();
        assert_eq!(p.id, 1);
        assert!(j.bytes(range).starts_with(b"*2\r\n$3\r\nGET"));
        let (p, _) = j.answer().unwrap();
        assert_eq!(p.id, 2);
        j.tidy();
        assert!(j.is_empty());
        assert!(j.unsent().is_empty());
    }

    #[test]
    fn a_cached_get_sends_its_ttl_aside() {
        let mut j = journal();
        j.command(
            7,
            &Command::Get("k".into()),
            None,
            Fill::Value("k".into()),
            None,
        );
        let (p, _) = j.answer().unwrap();
        assert!(matches!(p.role, Role::Single(None)));
        let (aside, range) = j.answer().unwrap();
        assert!(matches!(aside.role, Role::Aside) && aside.answered);
        assert_eq!(aside.cache, Fill::Ttl("k".into()));
        assert!(j.bytes(range).windows(4).any(|w| w == b"PTTL"));
    }

    #[test]
    fn a_lost_connection_resends_only_what_waits() {
        let mut j = journal();
        j.command(1, &set("a"), None, Fill::Wrote([Tag::of(7)].into()), None);
        j.command(2, &set("b"), None, Fill::None, None);
        let n = j.unsent().len();
        j.sent(n);
        // Call 1 timed out.
        let expired = j.expire(Instant::now() + Duration::from_secs(6));
        assert_eq!(expired, vec![1, 2]);
        j.command(3, &set("c"), None, Fill::None, None);
        let released = j.rebuild();
        assert_eq!(released, vec![Tag::of(7)]);
        let text = String::from_utf8_lossy(j.unsent()).into_owned();
        assert!(
            text.contains("$1\r\nc") && !text.contains("$1\r\na\r\n"),
            "{text}"
        );
        assert_eq!(j.answer().unwrap().0.id, 3);
    }

    #[test]
    fn a_transaction_is_one_call_with_lead_commands() {
        let mut j = journal();
        j.transaction(4, &[set("a"), set("b")], None, None, Fill::None);
        assert!(j.waiting());
        let roles: Vec<bool> = std::iter::from_fn(|| j.answer())
            .map(|(p, _)| p.role.is_lead())
            .collect();
        assert_eq!(roles, vec![true, true, true, false]);
        j.transaction(5, &[set("a")], None, None, Fill::None);
        assert_eq!(j.drain(), vec![5]);
    }

    #[test]
    fn lead_errors_belong_to_their_call() {
        let mut j = journal();
        j.lead_failed(3, "ERR x".into());
        assert_eq!(j.take_lead_error(4), None);
        assert_eq!(j.take_lead_error(3).as_deref(), Some("ERR x"));
        assert_eq!(j.take_lead_error(3), None);
    }

    #[test]
    fn a_scan_page_restarts_from_zero_after_a_reconnect() {
        let mut j = journal();
        let page = Command::Scan {
            cursor: "42".into(),
            pattern: "s:*".into(),
            count: 10,
        };
        j.step(9, &page, crate::walk::transaction(), None, Fill::None);
        assert!(String::from_utf8_lossy(j.unsent()).contains("$2\r\n42"));
        j.rebuild();
        let text = String::from_utf8_lossy(j.unsent()).into_owned();
        assert!(text.contains("$1\r\n0") && !text.contains("42"), "{text}");
    }

    #[test]
    fn taken_calls_keep_their_bytes_and_deadlines() {
        let mut j = journal();
        j.command(1, &set("a"), None, Fill::None, None);
        j.command(
            2,
            &Command::Get("b".into()),
            None,
            Fill::Value("b".into()),
            None,
        );
        let taken = j.take_waiting();
        assert_eq!(taken.iter().map(|w| w.id).collect::<Vec<_>>(), vec![1, 2]);
        assert!(taken[1].bytes.starts_with(b"*2\r\n$3\r\nGET"));
        assert!(j.is_empty() && j.unsent().is_empty());
        let mut other = journal();
        let mut it = taken.into_iter();
        other.requeue(it.next().unwrap(), true);
        assert_eq!(other.answer().unwrap().0.id, 0);
        assert_eq!(other.answer().unwrap().0.id, 1);
    }

    #[test]
    fn room_is_bounded() {
        let j = Journal::new(Duration::from_secs(1), 2);
        assert!(j.room_for(2).is_ok());
        assert_eq!(j.room_for(3).unwrap_err().kind, ErrorKind::Overloaded);
    }

    #[test]
    fn compaction_keeps_what_waits() {
        let mut j = journal();
        let big = "x".repeat(70 * 1024);
        j.command(
            1,
            &Command::Set {
                key: "a".into(),
                value: big,
                expiry: Expiry::Never,
            },
            None,
            Fill::None,
            None,
        );
        j.command(2, &Command::Get("b".into()), None, Fill::None, None);
        let n = j.unsent().len();
        j.sent(n);
        j.answer();
        j.tidy();
        let (p, range) = j.answer().unwrap();
        assert_eq!(p.id, 2);
        assert!(j.bytes(range).starts_with(b"*2\r\n$3\r\nGET"));
    }
}
