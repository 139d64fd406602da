//! The near cache: values this process read recently, served without a round trip until Redis
//! says they changed. Server-assisted (RESP3 `CLIENT TRACKING` on every engine connection): an
//! invalidation push drops an entry, a lost connection or a failover drops them all, and an
//! entry also expires with the key's TTL (read with `PTTL` beside the `GET` that filled it).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use crate::config::CacheLimits;

/// How long a refill that was never answered keeps other misses of its key from refilling.
const REFILL_STALE: Duration = Duration::from_secs(5);

struct Entry {
    /// `None`: the key was absent when read (Redis tracks reads of absent keys too, so a
    /// later write of it invalidates this like any other entry).
    value: Option<String>,
    /// `None` until the key's TTL is known, or when it has none.
    expires: Option<Instant>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub entries: u64,
}

/// Where JS sees the cache change, for the copies of hits it keeps (`Link#cached`): slot 0
/// counts every change that may have made such a copy stale (a write, an invalidation, a TTL
/// learned, a flush); slot 1 is the time left, in ms, of the entry `peek` last returned.
pub struct Epoch(pub napi::bindgen_prelude::Float64Array);

impl Epoch {
    fn slots(&mut self) -> &mut [f64] {
        // SAFETY: the array is JS's, kept alive by this reference, and both sides touch it
        // only on the JS thread (the cache lives there).
        unsafe { self.0.as_mut() }
    }

    fn bump(&mut self) {
        if let Some(n) = self.slots().get_mut(0) {
            *n += 1.0;
        }
    }

    fn left(&mut self, ms: f64) {
        if let Some(n) = self.slots().get_mut(1) {
            *n = ms;
        }
    }
}

/// A key as the bookkeeping of writes and refills knows it: its keyed hash, so a write costs
/// no copy of the key. Two keys with one tag (1 in 2^64) only cost each other a cache miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag(u64);

#[cfg(test)]
impl Tag {
    pub fn of(n: u64) -> Tag {
        Tag(n)
    }
}

pub struct NearCache {
    limits: CacheLimits,
    /// Keyed per cache (random keys), so the tags of keys an attacker picks do not collide on
    /// purpose.
    tagger: RandomState,
    epoch: Option<Epoch>,
    entries: HashMap<String, Entry>,
    /// Keys in the order they were filled, for eviction (oldest first); may name keys since
    /// dropped.
    order: VecDeque<String>,
    bytes: usize,
    stats: CacheStats,
    /// Keys with a write of this process's on the way, and how many: they are neither served
    /// nor filled until the writes are answered, so a read sent before a write cannot bring the
    /// old value back while the write is in flight.
    writing: HashMap<Tag, u32>,
    /// Keys with a filling `GET` (and its `PTTL`) on the way, since when: other misses of the
    /// key meanwhile go uncached, so concurrent reads of one key cost one refill, not one each.
    /// A read that is never answered (timed out, redirected, lost) stops counting after
    /// `REFILL_STALE`.
    filling: HashMap<Tag, Instant>,
    /// Keys this process wrote since they were last read: their next miss goes uncached (no
    /// refill, no `PTTL`), so a session written on every request, as a rolling cookie does,
    /// costs what it does uncached; a second read in a row refills. Bounded by `max_entries`,
    /// emptied whole when full.
    written_since_read: HashSet<Tag>,
}

impl NearCache {
    pub fn new(limits: CacheLimits, epoch: Option<Epoch>) -> NearCache {
        NearCache {
            limits,
            tagger: RandomState::new(),
            epoch,
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            stats: CacheStats::default(),
            writing: HashMap::new(),
            filling: HashMap::new(),
            written_since_read: HashSet::new(),
        }
    }

    fn tag(&self, key: &str) -> Tag {
        Tag(self.tagger.hash_one(key))
    }

    /// This process is sending a write of `key`; `written` hears the tag back once answered.
    pub fn writing(&mut self, key: &str) -> Tag {
        let tag = self.tag(key);
        self.remove(key);
        self.changed();
        if self.written_since_read.len() >= self.limits.max_entries.max(16) {
            self.written_since_read.clear();
        }
        self.written_since_read.insert(tag);
        *self.writing.entry(tag).or_insert(0) += 1;
        tag
    }

    /// Whether a miss of `key` should refill it (and read its TTL): not while a write of ours
    /// is on the way (the value would not be kept), nor while another refill is. A `true`
    /// must be followed by `fill` or `unfill` when the read is answered.
    pub fn refills(&mut self, key: &str) -> bool {
        let tag = self.tag(key);
        if self.writing.contains_key(&tag) || self.written_since_read.remove(&tag) {
            return false;
        }
        let now = Instant::now();
        match self.filling.get_mut(&tag) {
            Some(since) if now.duration_since(*since) < REFILL_STALE => false,
            Some(since) => {
                *since = now;
                true
            }
            None => {
                self.filling.insert(tag, now);
                true
            }
        }
    }

    /// The refilling read of `key` was answered with no value to keep.
    pub fn unfill(&mut self, key: &str) {
        let tag = self.tag(key);
        self.filling.remove(&tag);
    }

    /// Whether a write of `key` by this process is in flight.
    fn being_written(&self, key: &str) -> bool {
        !self.writing.is_empty() && self.writing.contains_key(&self.tag(key))
    }

    /// The write `writing` tagged was answered.
    pub fn written(&mut self, tag: Tag) {
        if let Some(n) = self.writing.get_mut(&tag) {
            *n -= 1;
            if *n == 0 {
                self.writing.remove(&tag);
            }
        }
    }

    /// The cached value of `key` (`Some(None)`: known absent), if it is there and has not
    /// expired.
    pub fn get(&mut self, key: &str) -> Option<Option<String>> {
        let now = Instant::now();
        if self.being_written(key) {
            self.stats.misses += 1;
            return None;
        }
        match self.entries.get(key) {
            Some(e) if e.expires.is_none_or(|at| at > now) => {
                self.stats.hits += 1;
                Some(e.value.clone())
            }
            Some(_) => {
                self.remove(key);
                self.stats.misses += 1;
                None
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// The cached value of `key` when there is a live one (counted as a hit); nothing is
    /// counted otherwise, since the call then goes the usual way and is counted there.
    pub fn peek(&mut self, key: &str) -> Option<Option<String>> {
        let now = Instant::now();
        if self.being_written(key) {
            return None;
        }
        let e = self.entries.get(key)?;
        if e.expires.is_some_and(|at| at <= now) {
            return None;
        }
        self.stats.hits += 1;
        let left = e.expires.map_or(f64::INFINITY, |at| {
            at.duration_since(now).as_secs_f64() * 1000.0
        });
        let value = e.value.clone();
        if let Some(epoch) = &mut self.epoch {
            epoch.left(left);
        }
        Some(value)
    }

    /// Something changed that a copy JS keeps may reflect.
    fn changed(&mut self) {
        if let Some(epoch) = &mut self.epoch {
            epoch.bump();
        }
    }

    /// Keeps what a `GET` of `key` returned: its value, or `None` for an absent key.
    pub fn fill(&mut self, key: &str, value: Option<&str>) {
        let tag = self.tag(key);
        self.filling.remove(&tag);
        self.remove(key);
        if self.writing.contains_key(&tag) {
            return;
        }
        let size = key.len() + value.map_or(0, str::len);
        if size > self.limits.max_bytes {
            return;
        }
        while self.entries.len() >= self.limits.max_entries
            || self.bytes + size > self.limits.max_bytes
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        self.entries.insert(
            key.to_string(),
            Entry {
                value: value.map(str::to_string),
                expires: None,
            },
        );
        self.order.push_back(key.to_string());
        self.bytes += size;
        // Entries dropped by invalidations leave their keys in `order`; keep it bounded.
        if self.order.len() > 2 * self.limits.max_entries.max(16) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    /// The key's TTL as `PTTL` reported it: -2 (gone) drops the entry, -1 (none) keeps it.
    pub fn set_ttl(&mut self, key: &str, pttl_ms: i64) {
        self.changed();
        match pttl_ms {
            // Gone: drop a value; an entry that knows the key is absent stays right.
            -2 if self.entries.get(key).is_some_and(|e| e.value.is_some()) => self.remove(key),
            -2 => {}
            ms if ms >= 0 => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.expires = Some(Instant::now() + Duration::from_millis(ms as u64));
                }
            }
            _ => {}
        }
    }

    /// Drops `key`: this process is writing it.
    pub fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= key.len() + e.value.as_ref().map_or(0, String::len);
        }
    }

    /// Redis said these keys changed (`None`: everything, as after `FLUSHALL`).
    pub fn invalidate(&mut self, keys: Option<Vec<String>>) {
        self.stats.invalidations += 1;
        self.changed();
        match keys {
            Some(keys) => keys.iter().for_each(|k| self.remove(k)),
            None => self.clear(),
        }
    }

    /// Drops everything: a connection was lost, so invalidations may have been missed.
    pub fn clear(&mut self) {
        self.changed();
        self.filling.clear();
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len() as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_entries: usize, max_bytes: usize) -> NearCache {
        NearCache::new(
            CacheLimits {
                max_entries,
                max_bytes,
            },
            None,
        )
    }

    #[test]
    fn fills_hits_and_invalidates() {
        let mut c = cache(10, 1000);
        assert_eq!(c.get("a"), None);
        c.fill("a", Some("1"));
        assert_eq!(c.get("a"), Some(Some("1".into())));
        c.invalidate(Some(vec!["a".into()]));
        assert_eq!(c.get("a"), None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidations), (1, 2, 1));
    }

    #[test]
    fn a_key_being_written_is_neither_served_nor_filled() {
        let mut c = cache(10, 1000);
        c.fill("a", Some("old"));
        let tag = c.writing("a");
        assert_eq!(c.peek("a"), None);
        assert!(!c.refills("a"));
        c.fill("a", Some("old")); // a read sent before the write answers after it was sent
        assert_eq!(c.get("a"), None);
        c.written(tag);
        c.fill("a", Some("new"));
        assert_eq!(c.peek("a"), Some(Some("new".into())));
    }

    #[test]
    fn remembers_absent_keys_until_invalidated() {
        let mut c = cache(10, 1000);
        c.fill("gone", None);
        c.set_ttl("gone", -2);
        assert_eq!(
            c.get("gone"),
            Some(None),
            "known absent, the PTTL of -2 agrees"
        );
        c.invalidate(Some(vec!["gone".into()]));
        assert_eq!(c.get("gone"), None);
        c.fill("v", Some("1"));
        c.set_ttl("v", -2);
        assert_eq!(c.get("v"), None, "a value whose key is gone is dropped");
    }

    #[test]
    fn one_refill_per_key_at_a_time_and_none_while_writing() {
        let mut c = cache(10, 1000);
        assert!(c.refills("a"));
        assert!(!c.refills("a"), "a second miss meanwhile goes uncached");
        c.unfill("a");
        assert!(c.refills("a"));
        c.fill("a", Some("1"));
        assert!(c.refills("b"));
        let tag = c.writing("c");
        assert!(!c.refills("c"));
        c.written(tag);
        assert!(
            !c.refills("c"),
            "the first read after our write goes uncached"
        );
        assert!(c.refills("c"), "a second read in a row refills");
    }

    #[test]
    fn expires_with_the_key_and_evicts_the_oldest() {
        let mut c = cache(2, 1000);
        c.fill("a", Some("1"));
        c.set_ttl("a", 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.get("a"), None);
        c.fill("b", Some("2"));
        c.fill("c", Some("3"));
        c.fill("d", Some("4"));
        assert_eq!(c.get("b"), None, "the oldest went first");
        assert_eq!(c.get("d"), Some(Some("4".into())));
        let mut small = cache(10, 8);
        small.fill("k", Some("123456789"));
        assert_eq!(small.get("k"), None, "larger than the whole budget");
    }
}
