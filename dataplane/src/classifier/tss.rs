//! Tuple-space search: the published, immutable [`Classifier`] and the
//! writer-side [`TssEditor`] that builds it copy-on-write.
//!
//! # What
//! Rules are grouped by mask into *subtables* (one per distinct mask, the
//! "tuples" of tuple-space search). Within a subtable every rule matches
//! exactly one masked key, so a subtable is a hash table from masked key to
//! the rules with that match. Looking a packet up means: for each subtable,
//! mask the packet key with the subtable's mask, hash it, probe.
//!
//! # Lookup order and early exit
//! The published subtables are sorted by the highest priority they contain
//! (`max_priority`, descending). Once the best rule found so far has a
//! priority strictly greater than the next subtable's `max_priority`, no
//! remaining subtable can beat it and the search stops. Subtables with equal
//! `max_priority` are all probed, because a rule of equal priority that was
//! installed earlier (smaller install sequence) wins the tie.
//!
//! # Layout (what the lookup touches)
//! A subtable keeps the list of key words its mask touches, so hashing and
//! comparing skip the words it does not care about (OVS's miniflow idea,
//! reduced to word granularity). The hash, [`FlowKey::fast_hash_masked`],
//! sums one folded 64×64→128-bit multiply per touched word (independent
//! terms, so they run in parallel) and folds the sum once more.
//!
//! Most probes miss: a packet matches at most a few of the subtables it is
//! tried against. So each subtable header carries a bit filter with one bit
//! per entry hash (like a one-hash Bloom filter, 8..16 bits per entry, at
//! least 1,024 bits); a clear bit proves the miss with one load, without
//! touching a shard. Measured on 16 subtables × ~60 rules this cut a lookup
//! from ~320 ns to ~85 ns. Removing an entry leaves its bit set (a false
//! positive costs only a probe); the filter is rebuilt, and resized, when
//! the shard directory is resized or stale bits reach half the entries.
//!
//! Behind the filter, the subtable's hash table is split into 2^k *shards*
//! by the low hash bits; each shard is an open-addressing table of packed
//! `u64` slots (`tag << 32 | entry index`, linear probing, load ≤ 1/2) over a
//! dense vector of entries. An entry (masked key, priority, install
//! sequence, rule) is read only when the 32-bit tag matches. Rules with the
//! identical match but different priorities share one entry: the highest
//! priority is inline, the rest wait in `others`, sorted by priority.
//!
//! # Invariants
//! * Every subtable holds at least one rule; every entry at least one rule.
//! * Entry keys are masked (`key == key & mask`); all rules in an entry have
//!   that match and pairwise distinct priorities.
//! * `max_priority`, `n_rules` and `n_entries` describe the subtable exactly.
//! * The filter has the bit of every entry's hash set (it may have more:
//!   false positives only cost a probe).
//! * A shard's slot count is a power of two ≥ 8 and ≥ 2 × its entries, so a
//!   probe always meets an empty slot; the probe loop is bounded regardless.
//! * The number of shards is a power of two; it doubles when a subtable
//!   averages more than `SPLIT_AVG` entries per shard and halves below
//!   `MERGE_AVG`. The shard directory is two-level (≈√N groups of ≈√N
//!   shards), so one write copies O(√n) pointers and entries, never the
//!   whole subtable.
//!
//! # Concurrency
//! A [`Classifier`] never changes after it is built; readers share it through
//! an `Arc` (published by [`super::FlowTable`] with arc-swap) and need no
//! lock. The [`TssEditor`] lives under the flow table's writer mutex. It holds
//! the same `Arc<Subtable>`s and `Arc<Shard>`s as the last published snapshot
//! and mutates through `Arc::make_mut`: a subtable or shard still referenced
//! by a snapshot is cloned first (copy-on-write), one that only the editor
//! owns (e.g. touched twice within one `add_batch`) is changed in place.
//! The one exception to "immutable once published" is the subtable filter:
//! it is shared by successive snapshots of a subtable and the writer *sets*
//! bits in it in place (relaxed `fetch_or`; the snapshot's publication, a
//! release store that readers acquire, makes them visible). Bits are
//! cleared only by building a new filter, which only newer snapshots see. So
//! every snapshot's filter holds a superset of its own entries' bits: an
//! older reader can get a false positive (one wasted probe), never a false
//! negative. This keeps a 16 KiB filter out of the per-add copy.
//!
//! Untouched subtables, shard groups and shards stay shared between
//! snapshots, so a single add copies one subtable header, the group list,
//! one group and one shard. (A first version with a flat shard directory
//! spent two thirds of an add cloning and dropping the `Arc`s of a
//! 256-shard subtable.)
//!
//! # Why
//! Tuple-space search is what OVS uses for both its OpenFlow classifier and
//! its datapath classifier: lookup cost grows with the number of distinct
//! masks, not with the number of rules, and adding a rule touches one hash
//! table. The priority ordering with early exit makes the common
//! "specific rules over a catch-all" tables cheap.

use super::rule::{filter_covers, Rule};
use crate::flow_key::{FlowKey, FlowMatch, KEY_WORDS};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Empty slot marker: the entry-index half is all ones.
const EMPTY_SLOT: u64 = u64::MAX;
/// Smallest slot array of a shard.
const MIN_SLOTS: usize = 8;
/// Average entries per shard above which a subtable doubles its shards.
const SPLIT_AVG: usize = 32;
/// Average entries per shard below which a subtable halves its shards.
const MERGE_AVG: usize = 8;
/// Upper bound on shards per subtable (the shard index uses hash bits 0..16).
const MAX_SHARDS: usize = 1 << 16;
/// Smallest hash filter of a subtable, in bits.
const FILTER_MIN_BITS: usize = 1024;
/// Filter bits per entry when the filter is sized (8..16 right after a
/// resize, ≥ 4 until the next one: at most ~22% false positives).
const FILTER_BITS_PER_ENTRY: usize = 8;
/// Largest filter, in bits (128 KiB).
const FILTER_MAX_BITS: usize = 1 << 20;

/// Slot position: hash bits 32.. (shard index uses bits 0..16, tag 16..48).
#[inline]
fn slot_pos(hash: u64) -> usize {
    (hash >> 32) as usize
}

#[inline]
fn slot_tag(hash: u64) -> u32 {
    (hash >> 16) as u32
}

#[inline]
fn slots_for(entries: usize) -> usize {
    (entries * 2).next_power_of_two().max(MIN_SLOTS)
}

/// One distinct match in a subtable and the rules that have it.
#[derive(Clone)]
pub(crate) struct Entry {
    hash: u64,
    /// The masked key (== the rules' `matcher().key`).
    key: FlowKey,
    /// Priority and install sequence of `rule`, inline for the lookup.
    priority: u16,
    seq: u64,
    /// The highest-priority rule with this match.
    rule: Arc<Rule>,
    /// Rules with the same match and lower priorities, priority descending.
    others: Vec<Arc<Rule>>,
}

impl Entry {
    fn new(hash: u64, rule: Arc<Rule>) -> Self {
        Entry {
            hash,
            key: rule.matcher().key,
            priority: rule.priority(),
            seq: rule.install_seq(),
            rule,
            others: Vec::new(),
        }
    }

    fn set_head(&mut self, rule: Arc<Rule>) -> Arc<Rule> {
        self.priority = rule.priority();
        self.seq = rule.install_seq();
        core::mem::replace(&mut self.rule, rule)
    }

    /// Adds `rule` (same match); returns the rule of equal priority it
    /// replaces, if any.
    fn put(&mut self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        let p = rule.priority();
        if p == self.priority {
            return Some(self.set_head(rule));
        }
        if p > self.priority {
            let old = self.set_head(rule);
            self.others.insert(0, old);
            return None;
        }
        if let Some(i) = self.others.iter().position(|r| r.priority() == p) {
            return Some(core::mem::replace(&mut self.others[i], rule));
        }
        let at = self
            .others
            .iter()
            .position(|r| r.priority() < p)
            .unwrap_or(self.others.len());
        self.others.insert(at, rule);
        None
    }

    fn get(&self, priority: u16) -> Option<&Arc<Rule>> {
        if self.priority == priority {
            return Some(&self.rule);
        }
        self.others.iter().find(|r| r.priority() == priority)
    }

    fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        core::iter::once(&self.rule).chain(self.others.iter())
    }
}

/// An open-addressing hash table over a dense entry vector.
///
/// `align(64)`: inside an `Arc` the data then starts on the cache line after
/// the reference counts, so the writer's clone/drop traffic on the counts
/// does not invalidate the line readers load on every lookup.
#[derive(Clone)]
#[repr(align(64))]
struct Shard {
    slots: Box<[u64]>,
    entries: Vec<Entry>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            slots: vec![EMPTY_SLOT; MIN_SLOTS].into_boxed_slice(),
            entries: Vec::new(),
        }
    }

    fn from_entries(entries: Vec<Entry>) -> Self {
        let mut s = Shard {
            slots: Box::new([]),
            entries,
        };
        s.rebuild_slots();
        s
    }

    fn place(slots: &mut [u64], hash: u64, idx: usize) {
        let m = slots.len() - 1;
        let mut p = slot_pos(hash) & m;
        // Load ≤ 1/2 guarantees a free slot within `slots.len()` steps.
        for _ in 0..slots.len() {
            if slots[p] as u32 == u32::MAX {
                slots[p] = (u64::from(slot_tag(hash)) << 32) | idx as u64;
                return;
            }
            p = (p + 1) & m;
        }
        unreachable!("shard slot array full despite load factor invariant");
    }

    fn rebuild_slots(&mut self) {
        let mut slots = vec![EMPTY_SLOT; slots_for(self.entries.len())];
        for (i, e) in self.entries.iter().enumerate() {
            Self::place(&mut slots, e.hash, i);
        }
        self.slots = slots.into_boxed_slice();
    }

    /// Index of the entry with `hash` for which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, eq: impl Fn(&Entry) -> bool) -> Option<usize> {
        let m = self.slots.len() - 1;
        let tag = slot_tag(hash);
        let mut p = slot_pos(hash) & m;
        for _ in 0..self.slots.len() {
            let s = self.slots[p];
            let idx = s as u32;
            if idx == u32::MAX {
                return None;
            }
            if (s >> 32) as u32 == tag {
                if let Some(e) = self.entries.get(idx as usize) {
                    if e.hash == hash && eq(e) {
                        return Some(idx as usize);
                    }
                }
            }
            p = (p + 1) & m;
        }
        None
    }

    fn push(&mut self, e: Entry) {
        let idx = self.entries.len();
        let hash = e.hash;
        self.entries.push(e);
        if self.entries.len() * 2 > self.slots.len() {
            self.rebuild_slots();
        } else {
            Self::place(&mut self.slots, hash, idx);
        }
    }

    fn remove(&mut self, idx: usize) -> Entry {
        let e = self.entries.swap_remove(idx);
        self.rebuild_slots();
        e
    }
}

/// All rules with one mask.
///
/// `align(64)`: inside an `Arc` the data then starts on the cache line after
/// the reference counts, so the writer's clone/drop traffic on the counts
/// does not invalidate the line readers load on every lookup.
#[derive(Clone)]
#[repr(align(64))]
pub(crate) struct Subtable {
    max_priority: u16,
    /// `filter.len() * 64 - 1`: the filter's bit-index mask.
    filter_mask: usize,
    /// One bit per entry hash (hash bits 40.. pick it); a clear bit proves a
    /// miss without touching a shard. Sized with the subtable; bits of
    /// removed entries stay set until the next rebuild. Shared by the
    /// snapshots of this subtable and only ever *set* in place (see the
    /// module docs, "Concurrency"); a rebuild makes a new array.
    filter: Arc<[AtomicU64]>,
    /// Entries removed since the filter was last rebuilt.
    filter_stale: usize,
    mask: FlowKey,
    /// Indices of the non-zero words of `mask` (first `n_words` are valid).
    words: [u8; KEY_WORDS],
    n_words: usize,
    n_rules: usize,
    n_entries: usize,
    /// Power of two; the shard of a hash is `hash & (n_shards - 1)`.
    n_shards: usize,
    /// log2 of the shards per group.
    group_bits: u32,
    /// The shard directory, two-level: shard `i` is
    /// `groups[i >> group_bits].shards[i & (2^group_bits - 1)]`.
    groups: Vec<Arc<ShardGroup>>,
}

/// A run of consecutive shards. The directory is split into about √N
/// groups of about √N shards so that a copy-on-write clones ~2√N pointers
/// (the group list and one group), not all N.
///
/// `align(64)`: inside an `Arc` the data then starts on the cache line after
/// the reference counts, so the writer's clone/drop traffic on the counts
/// does not invalidate the line readers load on every lookup.
#[derive(Clone)]
#[repr(align(64))]
struct ShardGroup {
    shards: Box<[Arc<Shard>]>,
}

impl Subtable {
    fn new(mask: FlowKey) -> Self {
        let mut words = [0u8; KEY_WORDS];
        let mut n_words = 0;
        for (i, &w) in mask.words.iter().enumerate() {
            if w != 0 {
                words[n_words] = i as u8;
                n_words += 1;
            }
        }
        Subtable {
            max_priority: 0,
            filter_mask: FILTER_MIN_BITS - 1,
            filter: (0..FILTER_MIN_BITS / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            filter_stale: 0,
            mask,
            words,
            n_words,
            n_rules: 0,
            n_entries: 0,
            n_shards: 1,
            group_bits: 0,
            groups: vec![Arc::new(ShardGroup {
                shards: Box::new([Arc::new(Shard::new())]),
            })],
        }
    }

    #[inline]
    fn shard(&self, si: usize) -> &Shard {
        let g = &self.groups[si >> self.group_bits];
        &g.shards[si & ((1usize << self.group_bits) - 1)]
    }

    /// The shard, unshared first (copy-on-write of its group and itself).
    fn shard_mut(&mut self, si: usize) -> &mut Shard {
        let gb = self.group_bits;
        let g = Arc::make_mut(&mut self.groups[si >> gb]);
        Arc::make_mut(&mut g.shards[si & ((1usize << gb) - 1)])
    }

    fn shards(&self) -> impl Iterator<Item = &Arc<Shard>> {
        self.groups.iter().flat_map(|g| g.shards.iter())
    }

    #[inline]
    fn mask_words(&self) -> &[u8] {
        &self.words[..self.n_words]
    }

    /// Hash of `key & mask`, reading only the words the mask touches
    /// ([`FlowKey::fast_hash_masked`]: independent per-word terms, so the CPU
    /// computes them in parallel; one final fold mixes the sum).
    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        key.fast_hash_masked(&self.mask, self.mask_words())
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        hash as usize & (self.n_shards - 1)
    }

    #[inline]
    fn filter_pos(&self, hash: u64) -> (usize, u64) {
        let i = (hash >> 40) as usize & self.filter_mask;
        (i >> 6, 1u64 << (i & 63))
    }

    /// False only if no entry has this hash.
    #[inline]
    fn may_contain(&self, hash: u64) -> bool {
        let (w, bit) = self.filter_pos(hash);
        self.filter
            .get(w)
            .is_some_and(|f| f.load(Ordering::Relaxed) & bit != 0)
    }

    /// Sets the bit of `hash`, in place: snapshots that share this filter
    /// and lack the entry merely get a false positive.
    fn filter_add(&mut self, hash: u64) {
        let (w, bit) = self.filter_pos(hash);
        if let Some(f) = self.filter.get(w) {
            // Skip the write (and the cache-line steal from readers) when set.
            if f.load(Ordering::Relaxed) & bit == 0 {
                f.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// Notes a removed entry; rebuilds once stale bits reach half the live
    /// entries (amortised O(1) per removal).
    fn filter_note_removal(&mut self) {
        self.filter_stale += 1;
        if self.filter_stale * 2 > self.n_entries.max(32) {
            self.filter_rebuild();
        }
    }

    /// Resizes the filter for the current entry count and recomputes it.
    fn filter_rebuild(&mut self) {
        let bits = (self.n_entries * FILTER_BITS_PER_ENTRY)
            .next_power_of_two()
            .clamp(FILTER_MIN_BITS, FILTER_MAX_BITS);
        self.filter_mask = bits - 1;
        let mut f = vec![0u64; bits / 64];
        for e in self.entries() {
            let (w, bit) = self.filter_pos(e.hash);
            f[w] |= bit;
        }
        self.filter = f.into_iter().map(AtomicU64::new).collect();
        self.filter_stale = 0;
    }

    /// The entry whose match `key` satisfies.
    #[inline]
    fn find(&self, key: &FlowKey) -> Option<&Entry> {
        self.find_hashed(key, self.hash(key))
    }

    /// [`Subtable::find`] with `hash == self.hash(key)` already computed.
    #[inline]
    fn find_hashed(&self, key: &FlowKey, hash: u64) -> Option<&Entry> {
        if !self.may_contain(hash) {
            return None;
        }
        let shard = self.shard(self.shard_index(hash));
        let idx = shard.find(hash, |e| {
            self.mask_words().iter().all(|&w| {
                let w = w as usize;
                key.words[w] & self.mask.words[w] == e.key.words[w]
            })
        })?;
        shard.entries.get(idx)
    }

    /// Shard index and entry index of the entry with masked key `mkey`.
    fn locate(&self, mkey: &FlowKey) -> Option<(usize, usize, u64)> {
        let h = self.hash(mkey);
        let si = self.shard_index(h);
        let ei = self.shard(si).find(h, |e| e.key == *mkey)?;
        Some((si, ei, h))
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.shards().flat_map(|s| s.entries.iter())
    }

    /// Redistributes the entries over `n` (a power of two) fresh shards.
    fn reshard(&mut self, n: usize) {
        let mut parts: Vec<Vec<Entry>> = (0..n).map(|_| Vec::new()).collect();
        for e in self.entries() {
            parts[e.hash as usize & (n - 1)].push(e.clone());
        }
        let shards: Vec<Arc<Shard>> = parts
            .into_iter()
            .map(|v| Arc::new(Shard::from_entries(v)))
            .collect();
        self.n_shards = n;
        self.group_bits = n.trailing_zeros() / 2;
        self.groups = shards
            .chunks(1usize << self.group_bits)
            .map(|c| {
                Arc::new(ShardGroup {
                    shards: c.to_vec().into_boxed_slice(),
                })
            })
            .collect();
        self.filter_rebuild();
    }
}

/// An immutable snapshot of a flow table, what a PMD looks packets up in.
///
/// Obtained from [`super::FlowTable::snapshot`]; see the module docs for the
/// lookup algorithm. Cache-line aligned for the same reason as `Subtable`.
#[repr(align(64))]
pub struct Classifier {
    /// Sorted by `max_priority`, descending.
    subtables: Box<[Arc<Subtable>]>,
    generation: u64,
    len: usize,
}

impl Classifier {
    /// The highest-priority rule matching `key`; among equal priorities the
    /// earliest installed. Allocation-free.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<&Arc<Rule>> {
        let mut best: Option<&Entry> = None;
        for st in self.subtables.iter() {
            if let Some(b) = best {
                if b.priority > st.max_priority {
                    break;
                }
            }
            if let Some(e) = st.find(key) {
                let better = match best {
                    None => true,
                    Some(b) => {
                        e.priority > b.priority || (e.priority == b.priority && e.seq < b.seq)
                    }
                };
                if better {
                    best = Some(e);
                }
            }
        }
        best.map(|e| &e.rule)
    }

    /// Looks up every key of `keys`, writing the results into `out` (pairs
    /// beyond the shorter of the two are left alone); same answers as
    /// [`Classifier::lookup`] per key. A subtable-major variant (OVS dpcls
    /// style: each subtable probes the whole batch) was measured slower here
    /// once subtables carry the inline filter, because a key-major walk stops
    /// each key at its own early-exit point; so this is a plain loop, kept so
    /// callers have one batch entry point if that changes.
    #[inline]
    pub fn lookup_batch<'a>(&'a self, keys: &[FlowKey], out: &mut [Option<&'a Arc<Rule>>]) {
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = self.lookup(k);
        }
    }

    /// Changes with every publication; unique process-wide, never 0.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of distinct masks (subtables) a lookup may probe.
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }
    /// The masks in lookup order.
    pub fn masks(&self) -> impl Iterator<Item = &FlowKey> {
        self.subtables.iter().map(|s| &s.mask)
    }
    /// Every rule, priority descending, then install order.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        let mut v: Vec<Arc<Rule>> = self
            .subtables
            .iter()
            .flat_map(|s| s.entries().flat_map(|e| e.rules()))
            .cloned()
            .collect();
        v.sort_by_key(|r| r.order_key());
        v
    }
}

#[cfg(test)]
impl Classifier {
    /// Test helper: (subtables, shards) of `self` physically shared with `other`.
    pub(crate) fn shared_parts(&self, other: &Classifier) -> (usize, usize) {
        let mut subtables = 0;
        let mut shards = 0;
        for a in self.subtables.iter() {
            for b in other.subtables.iter() {
                if Arc::ptr_eq(a, b) {
                    subtables += 1;
                }
                for sa in a.shards() {
                    shards += b.shards().filter(|sb| Arc::ptr_eq(sa, sb)).count();
                }
            }
        }
        (subtables, shards)
    }
    /// Test helper: total shards over all subtables.
    pub(crate) fn n_shards(&self) -> usize {
        self.subtables.iter().map(|s| s.n_shards).sum()
    }
}

impl core::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Classifier")
            .field("generation", &self.generation)
            .field("len", &self.len)
            .field("n_subtables", &self.subtables.len())
            .finish()
    }
}

/// The writer's working copy of the subtables (see the module docs).
pub(crate) struct TssEditor {
    subtables: Vec<Arc<Subtable>>,
    /// Per subtable (same index): rule count per priority, for `max_priority`.
    priorities: Vec<BTreeMap<u16, usize>>,
    by_mask: HashMap<FlowKey, usize>,
    n_rules: usize,
}

impl TssEditor {
    pub(crate) fn new() -> Self {
        TssEditor {
            subtables: Vec::new(),
            priorities: Vec::new(),
            by_mask: HashMap::new(),
            n_rules: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.n_rules
    }

    /// The rule with exactly match `m` (normalised) and `priority`.
    pub(crate) fn find(&self, m: &FlowMatch, priority: u16) -> Option<&Arc<Rule>> {
        let st = &self.subtables[*self.by_mask.get(&m.mask)?];
        let (si, ei, _) = st.locate(&m.key)?;
        st.shard(si).entries[ei].get(priority)
    }

    /// Installs `rule`; returns the rule with the same match and priority
    /// that it replaced.
    pub(crate) fn insert(&mut self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        let m = *rule.matcher();
        let prio = rule.priority();
        let ti = match self.by_mask.get(&m.mask) {
            Some(&i) => i,
            None => {
                self.subtables.push(Arc::new(Subtable::new(m.mask)));
                self.priorities.push(BTreeMap::new());
                self.by_mask.insert(m.mask, self.subtables.len() - 1);
                self.subtables.len() - 1
            }
        };
        let st = Arc::make_mut(&mut self.subtables[ti]);
        let replaced = match st.locate(&m.key) {
            Some((si, ei, _)) => st.shard_mut(si).entries[ei].put(rule),
            None => {
                let h = st.hash(&m.key);
                let si = st.shard_index(h);
                st.shard_mut(si).push(Entry::new(h, rule));
                st.n_entries += 1;
                st.filter_add(h);
                None
            }
        };
        if replaced.is_none() {
            st.n_rules += 1;
            st.max_priority = st.max_priority.max(prio);
            *self.priorities[ti].entry(prio).or_insert(0) += 1;
            self.n_rules += 1;
        }
        let n = st.n_shards;
        if st.n_entries > SPLIT_AVG * n && n < MAX_SHARDS {
            st.reshard(n * 2);
        }
        replaced
    }

    /// Removes the rule with exactly match `m` (normalised) and `priority`.
    pub(crate) fn remove(&mut self, m: &FlowMatch, priority: u16) -> Option<Arc<Rule>> {
        let ti = *self.by_mask.get(&m.mask)?;
        // Find first without copying anything: a miss must not clone.
        let (si, ei, _) = self.subtables[ti].locate(&m.key)?;
        self.subtables[ti].shard(si).entries[ei].get(priority)?;

        let st = Arc::make_mut(&mut self.subtables[ti]);
        let shard = st.shard_mut(si);
        let e = &mut shard.entries[ei];
        let (removed, entry_gone) = if e.priority == priority {
            if e.others.is_empty() {
                (shard.remove(ei).rule, true)
            } else {
                let next = e.others.remove(0);
                (e.set_head(next), false)
            }
        } else {
            let i = e.others.iter().position(|r| r.priority() == priority)?;
            (e.others.remove(i), false)
        };
        if entry_gone {
            st.n_entries -= 1;
            st.filter_note_removal();
        }
        st.n_rules -= 1;
        self.n_rules -= 1;
        let counts = &mut self.priorities[ti];
        if let Some(c) = counts.get_mut(&priority) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&priority);
            }
        }
        st.max_priority = counts.last_key_value().map_or(0, |(&p, _)| p);

        if st.n_rules == 0 {
            self.drop_subtable(ti);
        } else {
            let n = st.n_shards;
            if n > 1 && st.n_entries < MERGE_AVG * n {
                st.reshard(n / 2);
            }
        }
        Some(removed)
    }

    fn drop_subtable(&mut self, ti: usize) {
        let st = self.subtables.swap_remove(ti);
        self.priorities.swap_remove(ti);
        self.by_mask.remove(&st.mask);
        if let Some(moved) = self.subtables.get(ti) {
            self.by_mask.insert(moved.mask, ti);
        }
    }

    /// Every rule `filter` selects in loose (`del-flows`) mode.
    pub(crate) fn covered(&self, filter: &FlowMatch) -> Vec<Arc<Rule>> {
        let mut out = Vec::new();
        for st in &self.subtables {
            let subset = (0..KEY_WORDS).all(|i| filter.mask.words[i] & !st.mask.words[i] == 0);
            if !subset {
                continue;
            }
            if st.mask == filter.mask {
                if let Some((si, ei, _)) = st.locate(&filter.key) {
                    out.extend(st.shard(si).entries[ei].rules().cloned());
                }
                continue;
            }
            for e in st.entries() {
                if filter_covers(filter, e.rule.matcher()) {
                    out.extend(e.rules().cloned());
                }
            }
        }
        out
    }

    /// Every rule, in no particular order.
    pub(crate) fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.subtables
            .iter()
            .flat_map(|s| s.entries().flat_map(|e| e.rules()))
    }

    /// An immutable snapshot sharing every subtable and shard with the editor.
    pub(crate) fn publish(&self, generation: u64) -> Classifier {
        let mut subtables = self.subtables.clone();
        subtables.sort_by_key(|s| core::cmp::Reverse(s.max_priority));
        Classifier {
            subtables: subtables.into_boxed_slice(),
            generation,
            len: self.n_rules,
        }
    }

    /// Internal consistency check used by tests: recomputes every counter.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut total = 0;
        assert_eq!(self.subtables.len(), self.by_mask.len());
        for (ti, st) in self.subtables.iter().enumerate() {
            assert_eq!(self.by_mask[&st.mask], ti);
            assert!(st.n_shards.is_power_of_two());
            assert_eq!(st.shards().count(), st.n_shards);
            let mut rules = 0;
            let mut entries = 0;
            let mut maxp = None;
            for (si, sh) in st.shards().enumerate() {
                assert!(sh.slots.len() >= 2 * sh.entries.len());
                for (ei, e) in sh.entries.iter().enumerate() {
                    assert_eq!(e.hash as usize & (st.n_shards - 1), si);
                    assert_eq!(st.locate(&e.key).map(|x| (x.0, x.1)), Some((si, ei)));
                    assert_eq!(e.key, e.key.masked(&st.mask));
                    let ps: Vec<u16> = e.rules().map(|r| r.priority()).collect();
                    assert!(ps.windows(2).all(|w| w[0] > w[1]), "{ps:?}");
                    for r in e.rules() {
                        assert_eq!(r.matcher().key, e.key);
                        assert_eq!(r.matcher().mask, st.mask);
                    }
                    assert!(st.may_contain(e.hash));
                    assert_eq!(e.priority, e.rule.priority());
                    assert_eq!(e.seq, e.rule.install_seq());
                    maxp = maxp.max(Some(ps[0]));
                    rules += ps.len();
                    entries += 1;
                }
            }
            assert!(rules > 0);
            assert_eq!(st.n_rules, rules);
            assert_eq!(st.n_entries, entries);
            assert_eq!(Some(st.max_priority), maxp);
            assert_eq!(self.priorities[ti].values().sum::<usize>(), rules);
            total += rules;
        }
        assert_eq!(total, self.n_rules);
    }
}
