//! `touchAfter`: a TTL refresh (a touch, or a write of the same value) that this process sent
//! less than `touchAfter` ago is answered without a round trip. The rule keeps a promise: a
//! key's remaining TTL in Redis never falls below the TTL asked for minus `touchAfter`,
//! because a refresh is skipped only when the expiry this process last set is at most
//! `touchAfter` earlier than the one now asked for.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use crate::command::Reply;
use crate::request::{unix_now, Request};

/// Keys remembered at most; past that the memory starts over (a few extra refreshes, nothing
/// worse).
const MAX_KEYS: usize = 100_000;

struct Refreshed {
    /// When this process last set the key's expiry.
    at: Instant,
    /// The expiry it set.
    expires: Instant,
    /// The value it wrote then, hashed; `None` after a touch alone.
    value: Option<u64>,
}

pub struct RefreshGate {
    touch_after: Duration,
    keys: HashMap<String, Refreshed>,
}

fn hash(value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// An absolute UNIX time in seconds, as an instant on this process's clock.
fn instant_at(unix: i64, now: Instant) -> Instant {
    let from_now = unix - unix_now();
    if from_now >= 0 {
        now + Duration::from_secs(from_now as u64)
    } else {
        now.checked_sub(Duration::from_secs((-from_now) as u64))
            .unwrap_or(now)
    }
}

impl RefreshGate {
    pub fn new(touch_after: Duration) -> RefreshGate {
        RefreshGate {
            touch_after,
            keys: HashMap::new(),
        }
    }

    /// Looks at a call about to be sent: `Some(reply)` answers a refresh that can be skipped;
    /// otherwise the call goes, and what it will refresh or remove is remembered.
    pub fn admit(&mut self, request: &Request) -> Option<Reply> {
        let now = Instant::now();
        match request {
            Request::Touch { key, ttl } if *ttl > 0 => {
                let expires = now + Duration::from_secs(*ttl as u64);
                self.refresh(key, expires, None, now)
                    .then_some(Reply::Int(1))
            }
            Request::Set {
                key,
                value,
                ttl_ms: Some(ms),
            } if *ms > 0 => {
                let expires = now + Duration::from_millis(*ms as u64);
                self.refresh(key, expires, Some(hash(value)), now)
                    .then(|| Reply::Text("OK".into()))
            }
            Request::SetUntil { key, value, at } if *at > unix_now() => {
                let expires = instant_at(*at, now);
                self.refresh(key, expires, Some(hash(value)), now)
                    .then(|| Reply::Text("OK".into()))
            }
            // Lucia v3 rewrites an existing session only to move its expiry, and its JSON holds
            // that expiry: a move of less than `touchAfter` is skipped like a touch (the stored
            // `expiresAt` and the TTL then both stay where the last write put them).
            Request::IndexedSet { key, at, .. } if *at > unix_now() => {
                let expires = instant_at(*at, now);
                self.refresh(key, expires, None, now).then_some(Reply::Nil)
            }
            Request::Get { .. } | Request::Exists { .. } | Request::MGet { .. } => None,
            Request::Count { .. } | Request::Ids { .. } | Request::Entries { .. } => None,
            Request::ListRead { .. } => None,
            Request::Destroy { keys } => {
                for key in keys {
                    self.keys.remove(key);
                }
                None
            }
            Request::Set { key, .. }
            | Request::SetUntil { key, .. }
            | Request::ReplaceUntil { key, .. }
            | Request::Touch { key, .. }
            | Request::GetDel { key }
            | Request::Increment { key, .. }
            | Request::JsonArrayAdd { key, .. }
            | Request::JsonArrayRemove { key, .. }
            | Request::IndexedSet { key, .. }
            | Request::IndexedDelete { key, .. } => {
                self.keys.remove(key);
                None
            }
            // Calls that may change keys the gate cannot name.
            _ => {
                self.keys.clear();
                None
            }
        }
    }

    /// True when the refresh can be skipped; otherwise remembers it as sent.
    fn refresh(&mut self, key: &str, expires: Instant, value: Option<u64>, now: Instant) -> bool {
        if let Some(last) = self.keys.get(key) {
            let recent = now.duration_since(last.at) < self.touch_after;
            let long_enough = last.expires + self.touch_after >= expires;
            let same_value = value.is_none() || value == last.value;
            if recent && long_enough && same_value {
                return true;
            }
        }
        if self.keys.len() >= MAX_KEYS {
            self.keys.clear();
        }
        let value = match value {
            Some(v) => Some(v),
            // A touch keeps the value this process knows is there.
            None => self.keys.get(key).and_then(|last| last.value),
        };
        self.keys.insert(
            key.to_string(),
            Refreshed {
                at: now,
                expires,
                value,
            },
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(key: &str, ttl: i64) -> Request {
        Request::Touch {
            key: key.into(),
            ttl,
        }
    }

    fn set(key: &str, value: &str, ttl: i64) -> Request {
        Request::Set {
            key: key.into(),
            value: value.into(),
            ttl_ms: Some(ttl * 1000),
        }
    }

    #[test]
    fn a_second_touch_within_touch_after_is_skipped() {
        let mut g = RefreshGate::new(Duration::from_secs(60));
        assert_eq!(g.admit(&touch("k", 3600)), None);
        assert_eq!(g.admit(&touch("k", 3600)), Some(Reply::Int(1)));
        // A longer TTL than the bound allows goes through.
        assert_eq!(g.admit(&touch("k", 3600 + 120)), None);
    }

    #[test]
    fn the_same_value_is_not_written_twice_but_a_new_one_is() {
        let mut g = RefreshGate::new(Duration::from_secs(60));
        assert_eq!(g.admit(&set("k", "a", 600)), None);
        assert!(g.admit(&set("k", "a", 600)).is_some());
        assert_eq!(g.admit(&set("k", "b", 600)), None);
        // After a touch the value written before still counts as there.
        assert!(g.admit(&touch("k", 600)).is_some());
        assert!(g.admit(&set("k", "b", 600)).is_some());
    }

    #[test]
    fn destroy_and_bulk_calls_forget() {
        let mut g = RefreshGate::new(Duration::from_secs(60));
        g.admit(&touch("k", 600));
        g.admit(&Request::Destroy {
            keys: vec!["k".into()],
        });
        assert_eq!(g.admit(&touch("k", 600)), None);
        g.admit(&Request::Clear {
            prefix: "".into(),
            scan_count: 100,
        });
        assert_eq!(g.admit(&touch("k", 600)), None);
    }

    #[test]
    fn the_ttl_bound_holds_over_a_simulated_hour() {
        // Touches every 7 s for an hour with a 30-minute TTL and touchAfter 60 s: at every
        // touch, the expiry last sent is at least TTL - touchAfter away.
        let touch_after = Duration::from_secs(60);
        let ttl = Duration::from_secs(1800);
        let mut g = RefreshGate::new(touch_after);
        let start = Instant::now();
        let mut sent_expiry = start;
        let mut sent = 0;
        for step in 0..(3600 / 7) {
            let now = start + Duration::from_secs(step * 7);
            let expires = now + ttl;
            if !g.refresh("k", expires, None, now) {
                sent_expiry = expires;
                sent += 1;
            }
            let remaining = sent_expiry.duration_since(now);
            assert!(
                remaining + touch_after >= ttl,
                "step {step}: {remaining:?} left"
            );
        }
        assert!(
            sent < 3600 / 7 / 5,
            "most touches were skipped ({sent} sent)"
        );
    }
}
