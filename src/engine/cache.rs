//! The near cache: values this process read recently, served without a round trip until Redis
//! says they changed. Server-assisted (RESP3 `CLIENT TRACKING` on every engine connection): an
//! invalidation push drops an entry, a lost connection or a failover drops them all, and an
//! entry also expires with the key's TTL (read with `PTTL` beside the `GET` that filled it).
//!
//! Every table here is hashbrown's `HashTable` under one keyed hash per key (its `Tag`), so an
//! operation hashes its key once, however many tables it touches.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::hash_table::{self, OccupiedEntry};
use hashbrown::HashTable;

use crate::config::CacheLimits;

/// How long a refill that was never answered keeps other misses of its key from refilling.
const REFILL_STALE: Duration = Duration::from_secs(5);

/// When an entry stops being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// Its `PTTL` is on the way: served to calls, but not to JS's copies (`peek`), whose
    /// lifetime is set from it.
    Unknown,
    /// The key has no TTL, or is absent.
    Never,
    At(Instant),
}

impl Expiry {
    fn live(self, now: Instant) -> bool {
        match self {
            Expiry::At(at) => at > now,
            _ => true,
        }
    }
}

struct Entry {
    key: String,
    tag: Tag,
    /// Which fill made it: `order` may still name an earlier entry of the same key.
    fill: u64,
    /// `None`: the key was absent when read (Redis tracks reads of absent keys too, so a
    /// later write of it invalidates this like any other entry).
    value: Option<String>,
    expires: Expiry,
}

impl Entry {
    fn size(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, String::len)
    }
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
/// that changed, a flush); slot 1 is the time left, in ms, of the entry `peek` last returned;
/// slot 2 is how many entries there are, so that JS asks no native question of an empty cache.
pub struct Epoch(pub napi::bindgen_prelude::Float64Array);

impl Epoch {
    fn slots(&mut self) -> &mut [f64] {
        // SAFETY: the array is JS's, kept alive by this reference, and both sides touch it
        // only on the JS thread (the cache lives there).
        unsafe { self.0.as_mut() }
    }

    fn set(&mut self, slot: usize, f: impl FnOnce(&mut f64)) {
        if let Some(n) = self.slots().get_mut(slot) {
            f(n);
        }
    }
}

/// A key as the cache's tables know it: its keyed hash. Two keys with one tag (1 in 2^64)
/// only cost each other a cache miss: the bookkeeping of writes and refills goes by tag alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(u64);

/// The tags of a write's keys (one, but for a `DEL` of several), kept inline.
pub type Tags = smallvec::SmallVec<[Tag; 1]>;

#[cfg(test)]
impl Tag {
    pub fn of(n: u64) -> Tag {
        Tag(n)
    }
}

/// A set of tags, each with a value (`u32`: how many writes are on the way).
struct Marks<T>(HashTable<(Tag, T)>);

impl<T> Default for Marks<T> {
    fn default() -> Self {
        Marks(HashTable::new())
    }
}

impl<T> Marks<T> {
    fn entry(&mut self, tag: Tag) -> hash_table::Entry<'_, (Tag, T)> {
        self.0.entry(tag.0, |e| e.0 == tag, |e| e.0 .0)
    }

    fn has(&self, tag: Tag) -> bool {
        !self.0.is_empty() && self.0.find(tag.0, |e| e.0 == tag).is_some()
    }

    /// Whether `tag` was there.
    fn remove(&mut self, tag: Tag) -> bool {
        match self.0.find_entry(tag.0, |e| e.0 == tag) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }
}

impl Marks<u32> {
    fn add(&mut self, tag: Tag) {
        self.entry(tag).or_insert((tag, 0)).into_mut().1 += 1;
    }

    fn sub(&mut self, tag: Tag) {
        if let hash_table::Entry::Occupied(mut e) = self.entry(tag) {
            e.get_mut().1 -= 1;
            if e.get().1 == 0 {
                e.remove();
            }
        }
    }
}

/// `key`'s entry, found by its tag.
fn is(key: &str, tag: Tag) -> impl Fn(&Entry) -> bool + '_ {
    move |e| e.tag == tag && e.key == key
}

/// Drops an entry, and its bytes from the count.
fn release(bytes: &mut usize, e: OccupiedEntry<'_, Entry>) {
    *bytes -= e.get().size();
    e.remove();
}

pub struct NearCache {
    limits: CacheLimits,
    /// Keyed per cache (random keys), so the tags of keys an attacker picks do not collide on
    /// purpose.
    tagger: RandomState,
    epoch: Option<Epoch>,
    entries: HashTable<Entry>,
    /// Entries in the order they were filled, for eviction (oldest first), by tag and fill
    /// number; may name entries since dropped, and only a matching fill number counts.
    order: VecDeque<(Tag, u64)>,
    fills: u64,
    bytes: usize,
    stats: CacheStats,
    /// Keys with a write of this process's on the way, and how many: they are neither served
    /// nor filled until the writes are answered, so a read sent before a write cannot bring the
    /// old value back while the write is in flight.
    writing: Marks<u32>,
    /// Keys with a filling `GET` (and its `PTTL`) on the way, since when: other misses of the
    /// key meanwhile go uncached, so concurrent reads of one key cost one refill, not one each.
    /// A read that is never answered (timed out, redirected, lost) stops counting after
    /// `REFILL_STALE`.
    filling: Marks<Instant>,
    /// Keys this process wrote since they were last read: their next miss goes uncached (no
    /// refill, no `PTTL`), so a session written on every request, as a rolling cookie does,
    /// costs what it does uncached; a second read in a row refills. Bounded by `max_entries`,
    /// emptied whole when full.
    written_since_read: Marks<()>,
}

impl NearCache {
    pub fn new(limits: CacheLimits, epoch: Option<Epoch>) -> NearCache {
        NearCache {
            limits,
            tagger: RandomState::new(),
            epoch,
            entries: HashTable::new(),
            order: VecDeque::new(),
            fills: 0,
            bytes: 0,
            stats: CacheStats::default(),
            writing: Marks::default(),
            filling: Marks::default(),
            written_since_read: Marks::default(),
        }
    }

    fn tag(&self, key: &str) -> Tag {
        Tag(self.tagger.hash_one(key))
    }

    /// This process is sending a write of `key`; `written` hears the tag back once answered.
    pub fn writing(&mut self, key: &str) -> Tag {
        let tag = self.tag(key);
        self.drop_entry(key, tag);
        self.changed();
        if self.written_since_read.0.len() >= self.limits.max_entries.max(16) {
            self.written_since_read.0.clear();
        }
        self.written_since_read.entry(tag).or_insert((tag, ()));
        self.writing.add(tag);
        tag
    }

    /// `refills_tag` for a key.
    #[cfg(test)]
    pub fn refills(&mut self, key: &str) -> bool {
        self.refills_tag(self.tag(key))
    }

    /// Whether a miss should refill its key (and read its TTL): not while a write of ours is
    /// on the way (the value would not be kept), nor while another refill is. A `true` must
    /// be followed by `fill` or `unfill` when the read is answered.
    fn refills_tag(&mut self, tag: Tag) -> bool {
        if self.writing.has(tag) || self.written_since_read.remove(tag) {
            return false;
        }
        let now = Instant::now();
        match self.filling.entry(tag) {
            hash_table::Entry::Occupied(e) if now.duration_since(e.get().1) < REFILL_STALE => false,
            hash_table::Entry::Occupied(mut e) => {
                e.get_mut().1 = now;
                true
            }
            hash_table::Entry::Vacant(e) => {
                e.insert((tag, now));
                true
            }
        }
    }

    /// The refilling read of `key` was answered with no value to keep.
    pub fn unfill(&mut self, key: &str) {
        let tag = self.tag(key);
        self.filling.remove(tag);
    }

    /// The write `writing` tagged was answered.
    pub fn written(&mut self, tag: Tag) {
        self.writing.sub(tag);
    }

    /// The cached value of `key` (`Some(None)`: known absent), if it is there and has not
    /// expired; on a miss, whether to refill it (see `refills_tag`).
    pub fn get(&mut self, key: &str) -> Result<Option<String>, bool> {
        let tag = self.tag(key);
        if !self.writing.has(tag) {
            if let Ok(e) = self.entries.find_entry(tag.0, is(key, tag)) {
                if e.get().expires.live(Instant::now()) {
                    self.stats.hits += 1;
                    return Ok(e.get().value.clone());
                }
                release(&mut self.bytes, e);
                self.counted();
            }
        }
        self.stats.misses += 1;
        Err(self.refills_tag(tag))
    }

    /// The cached value of `key` when there is a live one whose TTL is known (counted as a
    /// hit); nothing is counted otherwise, since the call then goes the usual way and is
    /// counted there.
    pub fn peek(&mut self, key: &str) -> Option<Option<String>> {
        if self.entries.is_empty() {
            return None;
        }
        let tag = self.tag(key);
        if self.writing.has(tag) {
            return None;
        }
        let e = self.entries.find(tag.0, is(key, tag))?;
        let now = Instant::now();
        let left = match e.expires {
            Expiry::Unknown => return None,
            Expiry::Never => f64::INFINITY,
            Expiry::At(at) if at > now => at.duration_since(now).as_secs_f64() * 1000.0,
            Expiry::At(_) => return None,
        };
        let value = e.value.clone();
        self.stats.hits += 1;
        if let Some(epoch) = &mut self.epoch {
            epoch.set(1, |n| *n = left);
        }
        Some(value)
    }

    /// Something changed that a copy JS keeps may reflect.
    fn changed(&mut self) {
        if let Some(epoch) = &mut self.epoch {
            epoch.set(0, |n| *n += 1.0);
        }
    }

    /// The entry count changed.
    fn counted(&mut self) {
        let n = self.entries.len() as f64;
        if let Some(epoch) = &mut self.epoch {
            epoch.set(2, |c| *c = n);
        }
    }

    /// Keeps what a `GET` of `key` returned: its value, or `None` for an absent key.
    pub fn fill(&mut self, key: &str, value: Option<&str>) {
        let tag = self.tag(key);
        self.filling.remove(tag);
        self.drop_entry(key, tag);
        if self.writing.has(tag) {
            return;
        }
        let size = key.len() + value.map_or(0, str::len);
        if size > self.limits.max_bytes {
            return;
        }
        while self.entries.len() >= self.limits.max_entries
            || self.bytes + size > self.limits.max_bytes
        {
            let Some((oldest, fill)) = self.order.pop_front() else {
                break;
            };
            if let Ok(e) = self
                .entries
                .find_entry(oldest.0, |e| e.tag == oldest && e.fill == fill)
            {
                release(&mut self.bytes, e);
            }
        }
        self.fills += 1;
        let entry = Entry {
            key: key.to_string(),
            tag,
            fill: self.fills,
            value: value.map(str::to_string),
            expires: Expiry::Unknown,
        };
        self.entries.insert_unique(tag.0, entry, |e| e.tag.0);
        self.order.push_back((tag, self.fills));
        self.bytes += size;
        // Dropped entries leave their places in `order`; keep it bounded by the live ones.
        if self.order.len() > 2 * self.limits.max_entries.max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(t, n)| entries.find(t.0, |e| e.tag == *t && e.fill == *n).is_some());
        }
        self.counted();
    }

    /// The key's TTL as `PTTL` reported it: -2 (gone) drops a value, -1 (none) keeps it. A
    /// TTL learned for a fresh entry changes nothing JS may have copied (`peek` gives no copy
    /// of an entry whose TTL is not known).
    pub fn set_ttl(&mut self, key: &str, pttl_ms: i64) {
        let tag = self.tag(key);
        let Ok(mut e) = self.entries.find_entry(tag.0, is(key, tag)) else {
            return;
        };
        let known = e.get().expires != Expiry::Unknown;
        if pttl_ms == -2 && e.get().value.is_some() {
            release(&mut self.bytes, e);
            self.counted();
        } else {
            e.get_mut().expires = match pttl_ms {
                ms if ms >= 0 => Expiry::At(Instant::now() + Duration::from_millis(ms as u64)),
                _ => Expiry::Never,
            };
        }
        if known {
            self.changed();
        }
    }

    /// Drops `key`'s entry, if any.
    fn drop_entry(&mut self, key: &str, tag: Tag) {
        if let Ok(e) = self.entries.find_entry(tag.0, is(key, tag)) {
            release(&mut self.bytes, e);
            self.counted();
        }
    }

    /// Drops `key`, and with it any copy JS keeps: Redis invalidated it, or a write of it is
    /// held back (a cluster slot on the move).
    pub fn remove(&mut self, key: &str) {
        self.drop_entry(key, self.tag(key));
        self.changed();
    }

    /// Redis said these keys changed (`None`: everything, as after `FLUSHALL`).
    pub fn invalidate(&mut self, keys: Option<Vec<String>>) {
        self.stats.invalidations += 1;
        self.changed();
        match keys {
            Some(keys) => keys.iter().for_each(|k| self.drop_entry(k, self.tag(k))),
            None => self.clear(),
        }
    }

    /// Drops everything: a connection was lost, so invalidations may have been missed.
    pub fn clear(&mut self) {
        self.changed();
        self.filling.0.clear();
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
        self.counted();
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

    fn got(c: &mut NearCache, key: &str) -> Option<Option<String>> {
        c.get(key).ok()
    }

    #[test]
    fn fills_hits_and_invalidates() {
        let mut c = cache(10, 1000);
        assert_eq!(got(&mut c, "a"), None);
        c.fill("a", Some("1"));
        assert_eq!(got(&mut c, "a"), Some(Some("1".into())));
        c.invalidate(Some(vec!["a".into()]));
        assert_eq!(got(&mut c, "a"), None);
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
        assert_eq!(got(&mut c, "a"), None);
        c.written(tag);
        c.fill("a", Some("new"));
        assert_eq!(got(&mut c, "a"), Some(Some("new".into())));
        assert_eq!(c.peek("a"), None, "no copy for JS until the TTL is known");
        c.set_ttl("a", -1);
        assert_eq!(c.peek("a"), Some(Some("new".into())));
    }

    #[test]
    fn remembers_absent_keys_until_invalidated() {
        let mut c = cache(10, 1000);
        c.fill("gone", None);
        c.set_ttl("gone", -2);
        assert_eq!(
            got(&mut c, "gone"),
            Some(None),
            "known absent, the PTTL of -2 agrees"
        );
        c.invalidate(Some(vec!["gone".into()]));
        assert_eq!(got(&mut c, "gone"), None);
        c.fill("v", Some("1"));
        c.set_ttl("v", -2);
        assert_eq!(
            got(&mut c, "v"),
            None,
            "a value whose key is gone is dropped"
        );
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
        assert_eq!(got(&mut c, "a"), None);
        c.fill("b", Some("2"));
        c.fill("c", Some("3"));
        c.fill("d", Some("4"));
        assert_eq!(got(&mut c, "b"), None, "the oldest went first");
        assert_eq!(got(&mut c, "d"), Some(Some("4".into())));
        let mut small = cache(10, 8);
        small.fill("k", Some("123456789"));
        assert_eq!(got(&mut small, "k"), None, "larger than the whole budget");
    }

    #[test]
    fn a_miss_says_whether_to_refill() {
        let mut c = cache(10, 1000);
        assert_eq!(c.get("a"), Err(true), "a first miss refills");
        assert_eq!(c.get("a"), Err(false), "its refill is on the way");
        c.fill("a", Some("1"));
        c.set_ttl("a", 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            c.get("a"),
            Err(true),
            "an expired entry is a miss that refills"
        );
        c.unfill("a");
        let tag = c.writing("a");
        assert_eq!(c.get("a"), Err(false), "not while our write is on the way");
        c.written(tag);
        assert_eq!(c.get("a"), Err(false), "nor on the first read after it");
        assert_eq!(c.get("a"), Err(true), "the second read refills");
    }

    #[test]
    fn eviction_order_counts_only_live_fills() {
        let mut c = cache(2, 1000);
        c.fill("a", Some("1"));
        c.invalidate(Some(vec!["a".into()]));
        c.fill("b", Some("2"));
        c.fill("a", Some("1"));
        c.fill("c", Some("3"));
        assert_eq!(got(&mut c, "b"), None, "b is the oldest live entry");
        assert_eq!(got(&mut c, "a"), Some(Some("1".into())));
        assert_eq!(got(&mut c, "c"), Some(Some("3".into())));
        let mut one = cache(100, 100_000);
        for _ in 0..10_000 {
            one.fill("k", Some("v"));
            one.invalidate(Some(vec!["k".into()]));
        }
        assert!(
            one.order.len() <= 2 * 100 + 1,
            "order holds {}",
            one.order.len()
        );
    }
}
