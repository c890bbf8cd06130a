//! The per-PMD exact-match cache (EMC) in front of the classifier.
//!
//! # What
//! A fixed-size, 2-way set-associative table from a full [`FlowKey`] to the
//! rule the classifier chose for it. Most packets belong to a few long flows,
//! so most lookups end here with one hash-indexed probe and a 96-byte key
//! compare instead of a tuple-space search (OVS's `emc_lookup`).
//!
//! # Invariants
//! * Every entry is tagged with the [`Classifier::generation`] of the
//!   snapshot its answer came from. A lookup passes the generation of the
//!   snapshot the PMD is using for the current batch and only an entry with
//!   exactly that tag hits. Generations are unique process-wide and never 0
//!   (0 marks an empty way), so after any rule change — an add that should
//!   now win, a delete, a replacement — every older entry misses and the
//!   packet goes to the classifier: a flow change is never missed.
//! * A table miss can be cached too ([`ExactMatchCache::insert_table_miss`]),
//!   tagged the same way, so a flood of unmatched packets skips the
//!   classifier until the rule set changes.
//! * Capacity is fixed at construction (a power of two, at least 2 and at
//!   most [`MAX_ENTRIES`]); lookups and inserts never allocate. Replacing an
//!   entry drops its `Arc<Rule>`, which frees the rule only if it was already
//!   deleted from every snapshot.
//!
//! # Placement
//! `hash & (sets - 1)` picks a set of two adjacent ways. A hit marks its way
//! most recently used; an insert overwrites the way that already holds the
//! key, else an empty or stale way, else the least recently used one.
//!
//! # Locking
//! None: each PMD owns its cache (`&mut self`). Stale entries may keep an old
//! rule alive until they are overwritten or [`ExactMatchCache::clear`]ed; a
//! rule holds no port or device, so that costs memory only.
//!
//! [`Classifier::generation`]: crate::classifier::Classifier::generation

use crate::classifier::Rule;
use crate::flow_key::FlowKey;
use std::sync::Arc;

/// Largest accepted capacity (entries); larger requests are clamped.
pub const MAX_ENTRIES: usize = 1 << 20;

/// Generation tag of an empty way (real generations are never 0).
const EMPTY: u64 = 0;

#[derive(Clone)]
struct Way {
    generation: u64,
    hash: u64,
    key: FlowKey,
    /// `None` with a live generation: a cached table miss.
    rule: Option<Arc<Rule>>,
}

const EMPTY_WAY: Way = Way {
    generation: EMPTY,
    hash: 0,
    key: FlowKey::ZERO,
    rule: None,
};

/// What [`ExactMatchCache::probe`] found.
#[derive(Debug, Clone, Copy)]
pub enum EmcProbe<'a> {
    /// The classifier (of this generation) chose this rule for the key.
    Rule(&'a Arc<Rule>),
    /// The classifier (of this generation) matched no rule for the key.
    TableMiss,
    /// Not cached: ask the classifier.
    Unknown,
}

/// Hit/miss counters of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmcStats {
    /// Lookups answered with a rule.
    pub hits: u64,
    /// Lookups answered with a cached table miss.
    pub negative_hits: u64,
    /// Lookups that found nothing valid.
    pub misses: u64,
    /// Entries written.
    pub inserts: u64,
    /// Inserts that overwrote a live entry of the current generation for
    /// another key (capacity/conflict pressure).
    pub evictions: u64,
}

/// A per-PMD exact-match cache (see the module docs).
pub struct ExactMatchCache {
    ways: Box<[Way]>,
    /// Per set: index (0/1) of the most recently used way.
    mru: Box<[u8]>,
    set_mask: usize,
    stats: EmcStats,
}

impl core::fmt::Debug for ExactMatchCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExactMatchCache")
            .field("entries", &self.ways.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl ExactMatchCache {
    /// A cache of `entries` entries, rounded up to a power of two and kept
    /// within `2..=MAX_ENTRIES`. Allocates once, here.
    pub fn new(entries: usize) -> Self {
        let n = entries
            .clamp(2, MAX_ENTRIES)
            .checked_next_power_of_two()
            .unwrap_or(MAX_ENTRIES);
        let sets = n / 2;
        ExactMatchCache {
            ways: vec![EMPTY_WAY; n].into_boxed_slice(),
            mru: vec![0u8; sets].into_boxed_slice(),
            set_mask: sets - 1,
            stats: EmcStats::default(),
        }
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.ways.len()
    }

    #[inline]
    fn set_of(&self, hash: u64) -> usize {
        hash as usize & self.set_mask
    }

    #[inline]
    fn way_hits(w: &Way, key: &FlowKey, hash: u64, generation: u64) -> bool {
        w.generation == generation && w.hash == hash && w.key == *key
    }

    /// Looks `key` up (its `hash` as used on insert, e.g. `key.hash64()`)
    /// for the classifier snapshot of `generation`.
    #[inline]
    pub fn probe(&mut self, key: &FlowKey, hash: u64, generation: u64) -> EmcProbe<'_> {
        let set = self.set_of(hash);
        let base = set * 2;
        let found = (0..2).find(|&i| Self::way_hits(&self.ways[base + i], key, hash, generation));
        match found {
            Some(i) => {
                self.mru[set] = i as u8;
                match &self.ways[base + i].rule {
                    Some(r) => {
                        self.stats.hits += 1;
                        EmcProbe::Rule(r)
                    }
                    None => {
                        self.stats.negative_hits += 1;
                        EmcProbe::TableMiss
                    }
                }
            }
            None => {
                self.stats.misses += 1;
                EmcProbe::Unknown
            }
        }
    }

    /// The cached rule for `key` in `generation`, if any. A cached table
    /// miss also returns `None`; use [`ExactMatchCache::probe`] to tell the
    /// two apart.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, generation: u64) -> Option<&Arc<Rule>> {
        match self.probe(key, hash, generation) {
            EmcProbe::Rule(r) => Some(r),
            EmcProbe::TableMiss | EmcProbe::Unknown => None,
        }
    }

    /// Caches `rule` as the answer for `key` in `generation`.
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, hash: u64, generation: u64, rule: &Arc<Rule>) {
        self.store(key, hash, generation, Some(Arc::clone(rule)));
    }

    /// Caches "no rule matches `key`" for `generation`.
    #[inline]
    pub fn insert_table_miss(&mut self, key: &FlowKey, hash: u64, generation: u64) {
        self.store(key, hash, generation, None);
    }

    fn store(&mut self, key: &FlowKey, hash: u64, generation: u64, rule: Option<Arc<Rule>>) {
        if generation == EMPTY {
            // Not a real generation: such an entry could never hit.
            return;
        }
        let set = self.set_of(hash);
        let base = set * 2;
        let same_key = (0..2).find(|&i| {
            let w = &self.ways[base + i];
            w.hash == hash && w.key == *key
        });
        let free = || (0..2).find(|&i| self.ways[base + i].generation != generation);
        let i = same_key.or_else(free).unwrap_or_else(|| {
            self.stats.evictions += 1;
            1 - usize::from(self.mru[set] & 1)
        });
        let w = &mut self.ways[base + i];
        w.generation = generation;
        w.hash = hash;
        w.key = *key;
        w.rule = rule;
        self.mru[set] = i as u8;
        self.stats.inserts += 1;
    }

    /// Empties the cache (drops every cached rule reference). Counters stay.
    pub fn clear(&mut self) {
        for w in self.ways.iter_mut() {
            *w = EMPTY_WAY;
        }
        self.mru.fill(0);
    }

    /// Counters since creation.
    pub fn stats(&self) -> EmcStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;
    use crate::classifier::{FlowTable, RuleSpec};
    use crate::flow_key::{field, FlowMatch};

    fn key(n: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_nw_dst_u32(n);
        k.set_dl_type(0x0800);
        k
    }

    fn table_with_catch_all() -> (FlowTable, Arc<Rule>) {
        let t = FlowTable::new();
        let r = t.add(RuleSpec::new(FlowMatch::ANY, vec![Action::Output(1)]));
        (t, r)
    }

    #[test]
    fn hit_after_insert_in_the_same_generation() {
        let (t, r) = table_with_catch_all();
        let g = t.generation();
        let mut emc = ExactMatchCache::new(64);
        let k = key(1);
        let h = k.hash64();
        assert!(emc.lookup(&k, h, g).is_none());
        emc.insert(&k, h, g, &r);
        assert!(Arc::ptr_eq(emc.lookup(&k, h, g).unwrap(), &r));
        assert_eq!(
            emc.stats(),
            EmcStats {
                hits: 1,
                misses: 1,
                inserts: 1,
                ..EmcStats::default()
            }
        );
    }

    #[test]
    fn an_entry_from_an_older_generation_never_hits() {
        let (t, r) = table_with_catch_all();
        let mut emc = ExactMatchCache::new(64);
        let k = key(1);
        let h = k.hash64();
        let g1 = t.generation();
        emc.insert(&k, h, g1, &r);
        t.add(RuleSpec::new(FlowMatch::ANY, vec![Action::Output(2)]));
        let g2 = t.generation();
        assert_ne!(g1, g2);
        assert!(emc.lookup(&k, h, g2).is_none());
        assert!(matches!(emc.probe(&k, h, g2), EmcProbe::Unknown));
    }

    #[test]
    fn a_rule_added_after_caching_wins_on_the_next_batch() {
        let (t, catch_all) = table_with_catch_all();
        let mut emc = ExactMatchCache::new(64);
        let k = key(0x0a00_0001);
        let h = k.hash64();

        // Batch 1: miss, classify, cache.
        let snap = t.snapshot();
        assert!(emc.lookup(&k, h, snap.generation()).is_none());
        let r = snap.lookup(&k).unwrap();
        assert!(Arc::ptr_eq(r, &catch_all));
        emc.insert(&k, h, snap.generation(), r);
        drop(snap);

        // Control plane adds a more specific, higher-priority rule.
        let mut m = FlowMatch::ANY;
        m.set_masked(field::NW_DST, 0x0a00_0000, 0xff00_0000);
        let specific = t.add(RuleSpec {
            priority: 40000,
            ..RuleSpec::new(m, vec![Action::Output(7)])
        });

        // Batch 2: the cached answer is stale and must not be used.
        let snap = t.snapshot();
        let g = snap.generation();
        let r = match emc.lookup(&k, h, g) {
            Some(r) => Arc::clone(r),
            None => {
                let r = snap.lookup(&k).unwrap();
                emc.insert(&k, h, g, r);
                Arc::clone(r)
            }
        };
        assert!(Arc::ptr_eq(&r, &specific));
        assert!(Arc::ptr_eq(emc.lookup(&k, h, g).unwrap(), &specific));
    }

    #[test]
    fn a_cached_table_miss_is_reported_and_expires_with_the_generation() {
        let t = FlowTable::new();
        let mut emc = ExactMatchCache::new(16);
        let k = key(5);
        let h = k.hash64();
        let g1 = t.generation();
        emc.insert_table_miss(&k, h, g1);
        assert!(matches!(emc.probe(&k, h, g1), EmcProbe::TableMiss));
        assert!(emc.lookup(&k, h, g1).is_none());
        assert_eq!(emc.stats().negative_hits, 2);
        let r = t.add(RuleSpec::new(FlowMatch::ANY, vec![Action::Output(1)]));
        let g2 = t.generation();
        assert!(matches!(emc.probe(&k, h, g2), EmcProbe::Unknown));
        emc.insert(&k, h, g2, &r);
        assert!(matches!(emc.probe(&k, h, g2), EmcProbe::Rule(_)));
    }

    #[test]
    fn same_hash_different_key_does_not_hit() {
        let (t, r) = table_with_catch_all();
        let g = t.generation();
        let mut emc = ExactMatchCache::new(8);
        emc.insert(&key(1), 42, g, &r);
        assert!(emc.lookup(&key(2), 42, g).is_none());
        assert!(emc.lookup(&key(1), 43, g).is_none());
        assert!(emc.lookup(&key(1), 42, g).is_some());
    }

    #[test]
    fn two_keys_share_a_set_and_a_third_evicts_the_least_recently_used() {
        let (t, r) = table_with_catch_all();
        let g = t.generation();
        let mut emc = ExactMatchCache::new(8);
        // Hashes 3, 7, 11 all map to set 3 of 4.
        let (a, b, c) = (key(1), key(2), key(3));
        emc.insert(&a, 3, g, &r);
        emc.insert(&b, 7, g, &r);
        assert!(emc.lookup(&a, 3, g).is_some()); // a is now most recent
        emc.insert(&c, 11, g, &r); // evicts b
        assert!(emc.lookup(&a, 3, g).is_some());
        assert!(emc.lookup(&c, 11, g).is_some());
        assert!(emc.lookup(&b, 7, g).is_none());
        assert_eq!(emc.stats().evictions, 1);
    }

    #[test]
    fn reinserting_a_key_overwrites_its_own_way() {
        let (t, r1) = table_with_catch_all();
        let g1 = t.generation();
        let mut emc = ExactMatchCache::new(8);
        let other = key(9);
        emc.insert(&other, 3, g1, &r1);
        emc.insert(&key(1), 3, g1, &r1);
        let r2 = t.add(RuleSpec::new(FlowMatch::ANY, vec![Action::Output(2)]));
        let g2 = t.generation();
        emc.insert(&key(1), 3, g2, &r2);
        emc.insert(&key(1), 3, g2, &r2);
        assert!(Arc::ptr_eq(emc.lookup(&key(1), 3, g2).unwrap(), &r2));
        assert_eq!(emc.stats().evictions, 0);
    }

    #[test]
    fn clear_drops_every_entry_and_rule_reference() {
        let (t, r) = table_with_catch_all();
        let g = t.generation();
        let mut emc = ExactMatchCache::new(32);
        for i in 0..10 {
            let k = key(i);
            emc.insert(&k, k.hash64(), g, &r);
        }
        assert!(Arc::strong_count(&r) > 2);
        emc.clear();
        assert_eq!(Arc::strong_count(&r), 2); // `r` and the table
        for i in 0..10 {
            let k = key(i);
            assert!(emc.lookup(&k, k.hash64(), g).is_none());
        }
    }

    #[test]
    fn capacity_is_rounded_and_clamped() {
        assert_eq!(ExactMatchCache::new(0).capacity(), 2);
        assert_eq!(ExactMatchCache::new(1000).capacity(), 1024);
        assert_eq!(ExactMatchCache::new(usize::MAX).capacity(), MAX_ENTRIES);
    }

    #[test]
    fn generation_zero_is_never_cached() {
        let (_t, r) = table_with_catch_all();
        let mut emc = ExactMatchCache::new(8);
        let k = FlowKey::ZERO;
        emc.insert(&k, 0, 0, &r);
        assert!(emc.lookup(&k, 0, 0).is_none());
        assert_eq!(emc.stats().inserts, 0);
    }
}
