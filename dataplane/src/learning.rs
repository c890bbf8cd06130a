//! The MAC learning table (forwarding database, "fdb") behind `normal`.
//!
//! # What
//! A bounded map `(VLAN id, MAC) -> (ofport, last seen)` with the semantics of
//! Open vSwitch's `lib/mac-learning.c`:
//! * only unicast *source* addresses are learned (a multicast or broadcast
//!   source is never a station);
//! * an entry not seen for `aging` seconds (default
//!   [`MacTable::DEFAULT_AGING_SECS`]) is gone: lookups ignore it at once and
//!   [`MacTable::expire`] reclaims its slot;
//! * a station seen on another port is moved there;
//! * the table holds at most `capacity` stations (default
//!   [`MacTable::DEFAULT_CAPACITY`]); learning one more evicts an old one.
//!
//! Each VLAN is its own address space: a MAC learned on VLAN 10 says nothing
//! about where that MAC is on VLAN 20 (untagged traffic is VLAN 0).
//!
//! # Basic design
//! PMD threads call [`MacTable::learn`] and [`MacTable::lookup`] for every
//! packet that runs `normal`, so both must be cheap and lock-free; the
//! control plane only reads snapshots ([`MacTable::entries`]) and flushes.
//!
//! The table is a fixed array of buckets allocated once. A bucket is a
//! cache-line-aligned set of [`WAYS`] slots: a sequence counter and the slot
//! keys share the first cache line, the values sit in the second. A key
//! `(vlan, mac)` may live in either of two buckets chosen by a seeded hash
//! ("two-choice" hashing keeps buckets evenly loaded, so a table can fill to
//! its capacity before a bucket overflows). A key is one `u64`
//! (`valid | vlan << 48 | mac`), a value is one `u64` (`port << 32 |
//! last_seen_secs`).
//!
//! Readers use the bucket's sequence counter as a seqlock: read the counter,
//! the key and value words, then the counter again; a changed or odd counter
//! means a writer was inside, and the reader retries a bounded number of
//! times before treating the key as unknown (which floods: always safe on an
//! L2 bridge). Readers never write shared memory, so lookups from many PMDs
//! do not bounce cache lines.
//!
//! # Writers, and why learning does not take a lock per packet
//! Almost every learn finds its station already present, on the same port,
//! recently refreshed: that case writes nothing. A write happens only when
//! * the station's last-seen time is [`REFRESH_SECS`] or more old (at most one
//!   refresh per station per second, whatever the packet rate), or
//! * the station moved to another port.
//!
//! Both rewrite a single value word of an existing slot. The writer makes the
//! bucket counter odd with a compare-and-swap (a try-lock), re-checks the key,
//! stores the value and makes the counter even again. If another writer holds
//! the bucket, the refresh is simply skipped — the next packet of the station
//! will do it.
//!
//! A *new* station (or one whose entry expired) changes which slot holds
//! which key, and two PMDs learning the same new station at once must not
//! both claim a slot. Inserts therefore take the `fdb` mutex, re-check that
//! the key is still absent, pick a slot, and write it under the bucket
//! seqlock. Inserts happen once per station per aging period, not per packet.
//!
//! # Eviction
//! When the table already holds `capacity` stations, or both candidate
//! buckets are full, the insert evicts the least recently seen station among
//! the `2 * WAYS` slots of the two candidate buckets (expired entries go
//! first). That is a sampled LRU, like a set-associative CPU cache or Redis's
//! `allkeys-lru`, rather than OVS's global LRU list: OVS must take its write
//! lock to move an entry to the list tail on every refresh, which is the
//! per-packet lock this design avoids. The bound on the number of stations is
//! exact.
//!
//! # Locking
//! The `fdb` mutex is the lowest lock in the hierarchy
//! `config` → `ports` → `flow_table` → `fdb` ([`crate::locks`], an
//! [`OrderedMutex`] at [`LockLevel::Fdb`], so debug builds check the order):
//! code holding it takes no other lock, so it may be taken under any of the
//! others (a port deletion flushes the port's stations while holding
//! `ports`). It is the one hierarchy lock a PMD may take — only to add a
//! station, never while holding anything else, and never across a batch
//! boundary. Bucket seqlocks are held for a few stores and never while
//! waiting for anything else.

use crate::flow_key::{FlowKey, MacAddr, PortNo, VLAN_CFI, VLAN_VID_MASK};
use crate::locks::{LockLevel, OrderedMutex};
use crate::stats::DropReason;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::hash::BuildHasher;

/// Slots per bucket: the counter and the keys fill one 64-byte cache line.
pub const WAYS: usize = 7;
/// Minimum age, in seconds, before a learn rewrites a station's last-seen
/// time (the refresh granularity of ages and of LRU eviction).
pub const REFRESH_SECS: u32 = 1;
/// Times a reader retries a bucket that a writer is changing before it gives
/// up and treats the key as unknown.
const READ_RETRIES: usize = 4;

const KEY_VALID: u64 = 1 << 63;

/// Encodes `(vlan, mac)` as a slot key (never 0, which marks an empty slot).
#[inline]
fn encode_key(vlan: u16, mac: MacAddr) -> u64 {
    let m = u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
    KEY_VALID | (u64::from(vlan & VLAN_VID_MASK) << 48) | m
}

#[inline]
fn decode_key(k: u64) -> (u16, MacAddr) {
    let b = k.to_be_bytes();
    (
        ((k >> 48) as u16) & VLAN_VID_MASK,
        [b[2], b[3], b[4], b[5], b[6], b[7]],
    )
}

#[inline]
fn encode_val(port: PortNo, seen: u32) -> u64 {
    (u64::from(port) << 32) | u64::from(seen)
}

#[inline]
fn val_port(v: u64) -> PortNo {
    (v >> 32) as PortNo
}

#[inline]
fn val_seen(v: u64) -> u32 {
    v as u32
}

/// True for a multicast or broadcast address (the I/G bit).
#[inline]
pub fn is_multicast(mac: &MacAddr) -> bool {
    mac[0] & 1 != 0
}

/// True for a destination a bridge must never forward (Open vSwitch's
/// `eth_addr_is_reserved`, with `forward-bpdu` off): IEEE 802.1D reserved
/// addresses (STP, pause, LACP, LLDP, …), Extreme EDP/EAPS and Cisco control
/// protocols (ISL, CDP/VTP/DTP, PVST+, uplink fast, CFM).
#[inline]
pub fn is_reserved_multicast(mac: &MacAddr) -> bool {
    matches!(
        *mac,
        [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00..=0x0f]
            | [0x00, 0xe0, 0x2b, 0x00, 0x00, 0x00 | 0x04 | 0x06]
            | [0x01, 0x00, 0x0c, 0x00, 0x00, 0x00]
            | [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xc0..=0xc7 | 0xcc | 0xcd]
            | [0x01, 0x00, 0x0c, 0xcd, 0xcd, 0xcd]
    )
}

/// True when the outer tag is a bare priority tag (VID 0, PCP 0): `normal`
/// sends such a frame untagged, as Open vSwitch does on a port without
/// `priority-tags`. A VID-0 tag with a non-zero priority is kept.
#[inline]
pub fn is_bare_priority_tag(key: &FlowKey) -> bool {
    key.vlan_tci() == VLAN_CFI
}

/// Where `normal` sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalOutput {
    /// Every port of the bridge but the ingress port.
    Flood,
    /// The port the destination was learned on.
    Port(PortNo),
    /// Nowhere, for this reason: `loop_prevented` when the destination was
    /// learned on the ingress port, `action_drop` for a reserved destination.
    Drop(DropReason),
}

impl MacTable {
    /// The learning switch's decision for `key` arriving on `in_port`, in
    /// Open vSwitch's order: a reserved destination is dropped before
    /// anything is learned; then the source is learned (when `learn`; a trace
    /// does not); then broadcast, multicast and unknown destinations flood
    /// and known ones go to their port, never back out the ingress port.
    pub fn normal_output(
        &self,
        key: &FlowKey,
        in_port: PortNo,
        now: u32,
        learn: bool,
    ) -> NormalOutput {
        let dst = key.dl_dst();
        if is_reserved_multicast(&dst) {
            return NormalOutput::Drop(DropReason::ActionDrop);
        }
        let vlan = key.dl_vlan().unwrap_or(0);
        if learn {
            self.learn(vlan, key.dl_src(), in_port, now);
        }
        if is_multicast(&dst) {
            return NormalOutput::Flood;
        }
        match self.lookup(vlan, dst, now) {
            Some(p) if p == in_port => NormalOutput::Drop(DropReason::LoopPrevented),
            Some(p) => NormalOutput::Port(p),
            None => NormalOutput::Flood,
        }
    }
}

/// The counter and keys: one cache line.
#[repr(align(64))]
struct BucketHead {
    seq: AtomicU64,
    keys: [AtomicU64; WAYS],
}

/// The values of the same slots.
#[repr(align(64))]
struct BucketVals {
    vals: [AtomicU64; WAYS],
}

struct Bucket {
    head: BucketHead,
    vals: BucketVals,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            head: BucketHead {
                seq: AtomicU64::new(0),
                keys: Default::default(),
            },
            vals: BucketVals {
                vals: Default::default(),
            },
        }
    }

    /// Seqlock read of the slot holding `key`: `Ok(Some((way, value)))`,
    /// `Ok(None)` for a consistent miss, `Err(())` when writers kept
    /// changing the bucket.
    #[inline]
    fn read(&self, key: u64) -> Result<Option<(usize, u64)>, ()> {
        for _ in 0..READ_RETRIES {
            let s1 = self.head.seq.load(Ordering::Acquire);
            if s1 & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let mut found = None;
            for (w, k) in self.head.keys.iter().enumerate() {
                if k.load(Ordering::Relaxed) == key {
                    found = Some((w, self.vals.vals[w].load(Ordering::Relaxed)));
                    break;
                }
            }
            fence(Ordering::Acquire);
            if self.head.seq.load(Ordering::Relaxed) == s1 {
                return Ok(found);
            }
        }
        Err(())
    }

    /// Tries once to enter the bucket as a writer.
    #[inline]
    fn try_lock(&self) -> Option<u64> {
        let s = self.head.seq.load(Ordering::Relaxed);
        if s & 1 != 0 {
            return None;
        }
        self.head
            .seq
            .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Order the odd counter before the data stores that follow.
        fence(Ordering::Release);
        Some(s)
    }

    /// Enters the bucket as a writer, waiting for a refresher to leave (a
    /// refresher holds it for a few stores; only called under `fdb`).
    fn lock(&self) -> u64 {
        let mut spins = 0u32;
        loop {
            if let Some(s) = self.try_lock() {
                return s;
            }
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    #[inline]
    fn unlock(&self, s: u64) {
        self.head.seq.store(s + 2, Ordering::Release);
    }

    /// Writer-side load (caller holds the bucket or the `fdb` mutex).
    #[inline]
    fn key(&self, w: usize) -> u64 {
        self.head.keys[w].load(Ordering::Relaxed)
    }

    #[inline]
    fn val(&self, w: usize) -> u64 {
        self.vals.vals[w].load(Ordering::Relaxed)
    }

    /// Writes a slot (caller holds the bucket lock).
    #[inline]
    fn write(&self, w: usize, key: u64, val: u64) {
        self.head.keys[w].store(key, Ordering::Relaxed);
        self.vals.vals[w].store(val, Ordering::Relaxed);
    }
}

/// What [`MacTable::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Multicast/broadcast source: not a station, nothing learned.
    NotUnicast,
    /// Known on that port and recently refreshed: nothing written.
    Unchanged,
    /// Known on that port; its last-seen time was rewritten.
    Refreshed,
    /// Was on port `from`; now on the new port.
    Moved { from: PortNo },
    /// A new station (or one whose entry had expired).
    Added,
    /// Another writer held the bucket: skipped, the next packet retries.
    Busy,
}

/// One station, as `fdb show` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: PortNo,
    /// Seconds since the station was last seen (at refresh granularity).
    pub age_secs: u32,
}

/// Event counters (relaxed; written only when the table is written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacTableStats {
    /// Stations added.
    pub learned: u64,
    /// Stations that moved to another port.
    pub moved: u64,
    /// Live stations evicted to make room.
    pub evicted: u64,
    /// Expired stations reclaimed (by [`MacTable::expire`] or by an insert
    /// reusing the slot).
    pub expired: u64,
}

#[derive(Default)]
struct AtomicStats {
    learned: AtomicU64,
    moved: AtomicU64,
    evicted: AtomicU64,
    expired: AtomicU64,
}

/// The MAC learning table. Shared by reference between PMDs and the control
/// plane (`Sync`); see the module docs for the concurrency design.
pub struct MacTable {
    buckets: Box<[Bucket]>,
    bucket_mask: usize,
    seed: u64,
    capacity: usize,
    aging: AtomicU32,
    /// Occupied slots (live or not yet reclaimed); written under `fdb`.
    occupied: AtomicUsize,
    /// The `fdb` lock: serialises inserts, flushes and expiry.
    fdb: OrderedMutex<()>,
    stats: AtomicStats,
}

impl core::fmt::Debug for MacTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MacTable")
            .field("capacity", &self.capacity)
            .field("aging", &self.aging())
            .field("buckets", &self.buckets.len())
            .field("occupied", &self.occupied.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_AGING_SECS)
    }
}

impl MacTable {
    /// OVS's default `mac-table-size`.
    pub const DEFAULT_CAPACITY: usize = 8192;
    /// OVS's default `mac-aging-time`, seconds.
    pub const DEFAULT_AGING_SECS: u32 = 300;

    /// A table for at most `capacity` stations (at least 1) that forgets a
    /// station `aging_secs` seconds after it was last seen (at least 1).
    /// All memory is allocated here.
    pub fn new(capacity: usize, aging_secs: u32) -> Self {
        let capacity = capacity.max(1);
        let n_buckets = capacity.div_ceil(WAYS).next_power_of_two();
        let buckets: Box<[Bucket]> = (0..n_buckets).map(|_| Bucket::new()).collect();
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1;
        MacTable {
            buckets,
            bucket_mask: n_buckets - 1,
            seed,
            capacity,
            aging: AtomicU32::new(aging_secs.max(1)),
            occupied: AtomicUsize::new(0),
            fdb: OrderedMutex::new(LockLevel::Fdb, ()),
            stats: AtomicStats::default(),
        }
    }

    /// Maximum number of stations.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Seconds after which an unseen station is forgotten.
    pub fn aging(&self) -> u32 {
        self.aging.load(Ordering::Relaxed)
    }

    /// Changes the aging time (at least 1 s); applies to existing entries.
    pub fn set_aging(&self, secs: u32) {
        self.aging.store(secs.max(1), Ordering::Relaxed);
    }

    /// Event counters.
    pub fn stats(&self) -> MacTableStats {
        MacTableStats {
            learned: self.stats.learned.load(Ordering::Relaxed),
            moved: self.stats.moved.load(Ordering::Relaxed),
            evicted: self.stats.evicted.load(Ordering::Relaxed),
            expired: self.stats.expired.load(Ordering::Relaxed),
        }
    }

    #[inline]
    fn candidates(&self, key: u64) -> (usize, usize) {
        let mut h = (key ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        let b1 = (h as usize) & self.bucket_mask;
        let b2 = ((h >> 32) as usize) & self.bucket_mask;
        (b1, b2)
    }

    #[inline]
    fn is_live(&self, seen: u32, now: u32) -> bool {
        now.saturating_sub(seen) < self.aging()
    }

    /// Finds `key`: `Ok(Some((bucket, way, value)))`, `Ok(None)` if absent,
    /// `Err(())` if writers kept a bucket busy.
    #[inline]
    fn find(&self, key: u64) -> Result<Option<(usize, usize, u64)>, ()> {
        let (b1, b2) = self.candidates(key);
        if let Some((w, v)) = self.buckets[b1].read(key)? {
            return Ok(Some((b1, w, v)));
        }
        if b2 != b1 {
            if let Some((w, v)) = self.buckets[b2].read(key)? {
                return Ok(Some((b2, w, v)));
            }
        }
        Ok(None)
    }

    /// The port where station `mac` on `vlan` was last seen, if it was seen
    /// within the aging time. `now` is in seconds on the caller's clock (the
    /// same clock for every call). Lock-free; never writes.
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: MacAddr, now: u32) -> Option<PortNo> {
        if is_multicast(&mac) {
            return None;
        }
        match self.find(encode_key(vlan, mac)) {
            Ok(Some((_, _, v))) if self.is_live(val_seen(v), now) => Some(val_port(v)),
            _ => None,
        }
    }

    /// Learns that unicast station `mac` on `vlan` is behind `port` at time
    /// `now` (seconds). Writes only for a new, moved or stale station (see
    /// the module docs); takes the `fdb` lock only to add a station.
    #[inline]
    pub fn learn(&self, vlan: u16, mac: MacAddr, port: PortNo, now: u32) -> Learned {
        if is_multicast(&mac) {
            return Learned::NotUnicast;
        }
        let key = encode_key(vlan, mac);
        match self.find(key) {
            Ok(Some((b, w, v))) if self.is_live(val_seen(v), now) => {
                let moved = val_port(v) != port;
                if !moved && now.saturating_sub(val_seen(v)) < REFRESH_SECS {
                    return Learned::Unchanged;
                }
                let bucket = &self.buckets[b];
                let Some(s) = bucket.try_lock() else {
                    return Learned::Busy;
                };
                // The slot may have been reused between the read and the lock.
                let result = if bucket.key(w) == key {
                    let old = bucket.val(w);
                    bucket.vals.vals[w]
                        .store(encode_val(port, now.max(val_seen(old))), Ordering::Relaxed);
                    if val_port(old) != port {
                        Learned::Moved {
                            from: val_port(old),
                        }
                    } else {
                        Learned::Refreshed
                    }
                } else {
                    Learned::Busy
                };
                bucket.unlock(s);
                if let Learned::Moved { .. } = result {
                    self.stats.moved.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
            Ok(_) => self.insert(key, port, now),
            Err(()) => Learned::Busy,
        }
    }

    /// Slow path: add `key` (or revive its expired entry) under `fdb`.
    #[cold]
    fn insert(&self, key: u64, port: PortNo, now: u32) -> Learned {
        let _fdb = self.fdb.lock();
        let (b1, b2) = self.candidates(key);
        let cands: &[usize] = if b1 == b2 { &[b1] } else { &[b1, b2] };

        // Re-check under the lock: another PMD may have added it, or the
        // entry exists but had expired.
        for &b in cands {
            let bucket = &self.buckets[b];
            for w in 0..WAYS {
                if bucket.key(w) == key {
                    let old = bucket.val(w);
                    let s = bucket.lock();
                    bucket.write(w, key, encode_val(port, now));
                    bucket.unlock(s);
                    return if !self.is_live(val_seen(old), now) {
                        self.stats.expired.fetch_add(1, Ordering::Relaxed);
                        self.stats.learned.fetch_add(1, Ordering::Relaxed);
                        Learned::Added
                    } else if val_port(old) != port {
                        self.stats.moved.fetch_add(1, Ordering::Relaxed);
                        Learned::Moved {
                            from: val_port(old),
                        }
                    } else {
                        Learned::Refreshed
                    };
                }
            }
        }

        // Choose a slot: an empty one in the less loaded candidate bucket,
        // else the oldest candidate (expired entries first).
        let mut empty: Option<(usize, usize, usize)> = None; // (load, b, w)
        let mut oldest: Option<(u32, usize, usize)> = None; // (rank, b, w)
        for &b in cands {
            let bucket = &self.buckets[b];
            let mut load = 0;
            let mut first_empty = None;
            for w in 0..WAYS {
                if bucket.key(w) == 0 {
                    first_empty.get_or_insert(w);
                } else {
                    load += 1;
                    self.consider_victim(&mut oldest, b, w, now);
                }
            }
            if let Some(w) = first_empty {
                if empty.is_none_or(|(l, _, _)| load < l) {
                    empty = Some((load, b, w));
                }
            }
        }
        let full = self.occupied.load(Ordering::Relaxed) >= self.capacity;
        let (b, w) = match empty {
            Some((_, b, w)) if full => {
                // At capacity but our buckets have room: evict the oldest of
                // a sample (the candidates plus the buckets after the first
                // one, until 2 * WAYS stations were seen), then take the free
                // slot. The occupancy stays at `capacity`.
                let mut seen = cands
                    .iter()
                    .map(|&c| (0..WAYS).filter(|&x| self.buckets[c].key(x) != 0).count())
                    .sum::<usize>();
                let mut next = cands[0];
                for _ in 1..self.buckets.len() {
                    if seen >= 2 * WAYS {
                        break;
                    }
                    next = (next + 1) & self.bucket_mask;
                    if cands.contains(&next) {
                        continue;
                    }
                    for x in 0..WAYS {
                        if self.buckets[next].key(x) != 0 {
                            seen += 1;
                            self.consider_victim(&mut oldest, next, x, now);
                        }
                    }
                }
                if let Some((rank, vb, vw)) = oldest {
                    let victim = &self.buckets[vb];
                    let s = victim.lock();
                    victim.write(vw, 0, 0);
                    victim.unlock(s);
                    self.count_eviction(rank);
                } else {
                    // Nothing occupied anywhere: the count cannot be at
                    // capacity; take the slot.
                    self.occupied.fetch_add(1, Ordering::Relaxed);
                }
                (b, w)
            }
            Some((_, b, w)) => {
                self.occupied.fetch_add(1, Ordering::Relaxed);
                (b, w)
            }
            None => {
                // Both candidate buckets are full: reuse their oldest slot.
                let Some((rank, ob, ow)) = oldest else {
                    return Learned::Busy; // unreachable: full buckets have entries
                };
                self.count_eviction(rank);
                (ob, ow)
            }
        };
        let bucket = &self.buckets[b];
        let s = bucket.lock();
        bucket.write(w, key, encode_val(port, now));
        bucket.unlock(s);
        self.stats.learned.fetch_add(1, Ordering::Relaxed);
        Learned::Added
    }

    /// Keeps in `oldest` the least recently seen of it and slot `(b, w)`;
    /// expired entries rank below every live one.
    #[inline]
    fn consider_victim(
        &self,
        oldest: &mut Option<(u32, usize, usize)>,
        b: usize,
        w: usize,
        now: u32,
    ) {
        let seen = val_seen(self.buckets[b].val(w));
        let rank = if self.is_live(seen, now) {
            seen.saturating_add(1)
        } else {
            0
        };
        if oldest.is_none_or(|(r, _, _)| rank < r) {
            *oldest = Some((rank, b, w));
        }
    }

    fn count_eviction(&self, rank: u32) {
        if rank == 0 {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Clears every slot for which `pred(key, value)` holds; returns how many.
    fn remove_where(&self, mut pred: impl FnMut(u64, u64) -> bool) -> usize {
        let _fdb = self.fdb.lock();
        let mut removed = 0;
        for bucket in self.buckets.iter() {
            let hit = (0..WAYS).any(|w| bucket.key(w) != 0 && pred(bucket.key(w), bucket.val(w)));
            if !hit {
                continue;
            }
            let s = bucket.lock();
            for w in 0..WAYS {
                let k = bucket.key(w);
                if k != 0 && pred(k, bucket.val(w)) {
                    bucket.write(w, 0, 0);
                    removed += 1;
                }
            }
            bucket.unlock(s);
        }
        self.occupied.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Reclaims the slots of stations not seen within the aging time at
    /// `now`; returns how many. (Lookups already ignore them; this keeps
    /// `fdb show` and the occupancy honest.) Control path.
    pub fn expire(&self, now: u32) -> usize {
        let n = self.remove_where(|_, v| !self.is_live(val_seen(v), now));
        self.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Forgets every station behind `port` (the port was deleted or went
    /// down); returns how many.
    pub fn flush_port(&self, port: PortNo) -> usize {
        self.remove_where(|_, v| val_port(v) == port)
    }

    /// Forgets every station on `vlan`; returns how many.
    pub fn flush_vlan(&self, vlan: u16) -> usize {
        let vlan = vlan & VLAN_VID_MASK;
        self.remove_where(|k, _| decode_key(k).0 == vlan)
    }

    /// Forgets everything; returns how many stations were held.
    pub fn flush(&self) -> usize {
        self.remove_where(|_, _| true)
    }

    /// Live stations at `now`, sorted by (VLAN, MAC): the `fdb show` list.
    /// Takes the `fdb` lock so the snapshot does not race inserts.
    pub fn entries(&self, now: u32) -> Vec<FdbEntry> {
        let _fdb = self.fdb.lock();
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            for w in 0..WAYS {
                // Refreshers may rewrite a value concurrently; read the pair
                // through the seqlock.
                let k = bucket.key(w);
                if k == 0 {
                    continue;
                }
                if let Ok(Some((_, v))) = bucket.read(k) {
                    if self.is_live(val_seen(v), now) {
                        let (vlan, mac) = decode_key(k);
                        out.push(FdbEntry {
                            vlan,
                            mac,
                            port: val_port(v),
                            age_secs: now.saturating_sub(val_seen(v)),
                        });
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Number of live stations at `now` (scans the table; control path).
    pub fn len(&self, now: u32) -> usize {
        self.entries(now).len()
    }

    /// True when no station is live at `now`.
    pub fn is_empty(&self, now: u32) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        [0x02, 0x00, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn key_encoding_round_trips_and_is_never_empty() {
        for (vlan, m) in [(0, [0; 6]), (4095, [0xfe; 6]), (10, mac(7))] {
            let k = encode_key(vlan, m);
            assert_ne!(k, 0);
            assert_eq!(decode_key(k), (vlan, m));
        }
    }

    #[test]
    fn learns_unicast_sources_and_looks_them_up_per_vlan() {
        let t = MacTable::new(16, 300);
        assert_eq!(t.learn(0, mac(1), 3, 10), Learned::Added);
        assert_eq!(t.lookup(0, mac(1), 10), Some(3));
        assert_eq!(t.lookup(5, mac(1), 10), None, "VLANs are separate spaces");
        assert_eq!(t.learn(5, mac(1), 4, 10), Learned::Added);
        assert_eq!(t.lookup(5, mac(1), 10), Some(4));
        assert_eq!(t.lookup(0, mac(1), 10), Some(3));
    }

    #[test]
    fn multicast_and_broadcast_sources_are_not_learned() {
        let t = MacTable::new(16, 300);
        assert_eq!(t.learn(0, [0xff; 6], 1, 0), Learned::NotUnicast);
        assert_eq!(
            t.learn(0, [0x01, 0, 0x5e, 0, 0, 1], 1, 0),
            Learned::NotUnicast
        );
        assert!(t.is_empty(0));
        assert_eq!(t.lookup(0, [0xff; 6], 0), None);
    }

    #[test]
    fn repeat_learn_within_refresh_interval_writes_nothing() {
        let t = MacTable::new(16, 300);
        t.learn(0, mac(1), 1, 100);
        assert_eq!(t.learn(0, mac(1), 1, 100), Learned::Unchanged);
        assert_eq!(
            t.learn(0, mac(1), 1, 100 + REFRESH_SECS),
            Learned::Refreshed
        );
        assert_eq!(t.entries(100 + REFRESH_SECS + 4)[0].age_secs, 4);
    }

    #[test]
    fn station_moving_to_another_port_is_updated() {
        let t = MacTable::new(16, 300);
        t.learn(0, mac(1), 1, 0);
        assert_eq!(t.learn(0, mac(1), 2, 0), Learned::Moved { from: 1 });
        assert_eq!(t.lookup(0, mac(1), 0), Some(2));
        assert_eq!(t.stats().moved, 1);
        assert_eq!(t.len(0), 1);
    }

    #[test]
    fn entries_age_out_after_the_aging_time() {
        let t = MacTable::new(16, 300);
        t.learn(0, mac(1), 1, 1000);
        assert_eq!(t.lookup(0, mac(1), 1299), Some(1));
        assert_eq!(t.lookup(0, mac(1), 1300), None);
        assert!(t.entries(1300).is_empty());
        // Relearning an expired station counts as a new one, same slot.
        assert_eq!(t.learn(0, mac(1), 2, 1400), Learned::Added);
        assert_eq!(t.lookup(0, mac(1), 1400), Some(2));
        assert_eq!(t.expire(1400), 0);
        assert_eq!(t.expire(1700), 1);
        assert_eq!(t.lookup(0, mac(1), 1400), None);
    }

    #[test]
    fn refresh_keeps_a_busy_station_alive_past_the_aging_time() {
        let t = MacTable::new(16, 10);
        for now in 0..50 {
            t.learn(0, mac(1), 1, now);
        }
        assert_eq!(t.lookup(0, mac(1), 55), Some(1));
        assert_eq!(t.lookup(0, mac(1), 59), None);
    }

    #[test]
    fn aging_time_is_configurable_at_run_time() {
        let t = MacTable::new(16, 300);
        t.learn(0, mac(1), 1, 0);
        t.set_aging(5);
        assert_eq!(t.aging(), 5);
        assert_eq!(t.lookup(0, mac(1), 4), Some(1));
        assert_eq!(t.lookup(0, mac(1), 5), None);
    }

    #[test]
    fn full_table_evicts_the_least_recently_seen_station() {
        // Capacity below one bucket: both candidates are the single bucket,
        // so the sampled LRU is the exact LRU.
        let t = MacTable::new(4, 300);
        for i in 0..4 {
            t.learn(0, mac(i), 1, i);
        }
        t.learn(0, mac(0), 1, 10); // refresh station 0: station 1 is now oldest
        assert_eq!(t.learn(0, mac(9), 2, 11), Learned::Added);
        assert_eq!(t.len(11), 4);
        assert_eq!(t.lookup(0, mac(1), 11), None);
        for i in [0, 2, 3, 9] {
            assert!(t.lookup(0, mac(i), 11).is_some(), "station {i} kept");
        }
        assert_eq!(t.stats().evicted, 1);
    }

    #[test]
    fn capacity_bound_holds_under_many_stations() {
        let t = MacTable::new(1000, 300);
        for i in 0..5000 {
            t.learn(0, mac(i), i % 7, i / 100);
        }
        let n = t.len(50);
        assert!(n <= 1000, "held {n} stations");
        // The most recent stations are all present: eviction took old ones.
        for i in 4990..5000 {
            assert_eq!(t.lookup(0, mac(i), 50), Some(i % 7));
        }
        assert_eq!(t.stats().learned, 5000);
    }

    #[test]
    fn table_fills_to_capacity_before_evicting() {
        let t = MacTable::new(MacTable::DEFAULT_CAPACITY, 300);
        for i in 0..MacTable::DEFAULT_CAPACITY as u32 {
            t.learn(0, mac(i), 1, 0);
        }
        let s = t.stats();
        // Two-choice buckets rarely overflow before the table is full.
        assert!(
            s.evicted * 100 < MacTable::DEFAULT_CAPACITY as u64,
            "evicted {} early",
            s.evicted
        );
        assert_eq!(
            t.len(0) as u64,
            MacTable::DEFAULT_CAPACITY as u64 - s.evicted
        );
    }

    #[test]
    fn flush_port_and_vlan_remove_only_their_stations() {
        let t = MacTable::new(64, 300);
        t.learn(0, mac(1), 1, 0);
        t.learn(0, mac(2), 2, 0);
        t.learn(7, mac(3), 2, 0);
        assert_eq!(t.flush_port(2), 2);
        assert_eq!(t.lookup(0, mac(1), 0), Some(1));
        assert_eq!(t.lookup(0, mac(2), 0), None);
        t.learn(7, mac(3), 2, 0);
        assert_eq!(t.flush_vlan(7), 1);
        assert_eq!(t.len(0), 1);
        assert_eq!(t.flush(), 1);
        assert!(t.is_empty(0));
        // Freed slots are reusable up to capacity again.
        for i in 0..64 {
            t.learn(0, mac(i), 1, 0);
        }
        assert!(t.len(0) <= 64);
    }

    #[test]
    fn entries_snapshot_lists_vlan_mac_port_age_sorted() {
        let t = MacTable::new(64, 300);
        t.learn(3, mac(2), 9, 100);
        t.learn(3, mac(1), 8, 90);
        t.learn(0, mac(5), 1, 95);
        let e = t.entries(100);
        assert_eq!(
            e,
            vec![
                FdbEntry {
                    vlan: 0,
                    mac: mac(5),
                    port: 1,
                    age_secs: 5
                },
                FdbEntry {
                    vlan: 3,
                    mac: mac(1),
                    port: 8,
                    age_secs: 10
                },
                FdbEntry {
                    vlan: 3,
                    mac: mac(2),
                    port: 9,
                    age_secs: 0
                },
            ]
        );
    }

    #[test]
    fn concurrent_learners_never_duplicate_a_station() {
        let t = Arc::new(MacTable::new(256, 300));
        let threads: Vec<_> = (0..4)
            .map(|id| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for round in 0..200u32 {
                        for i in 0..64 {
                            t.learn(0, mac(i), id, round / 20);
                            let _ = t.lookup(0, mac((i + 1) % 64), round / 20);
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let e = t.entries(10);
        assert_eq!(e.len(), 64);
        let mut macs: Vec<_> = e.iter().map(|x| x.mac).collect();
        macs.dedup();
        assert_eq!(macs.len(), 64);
        assert!(e.iter().all(|x| x.port < 4));
    }

    #[test]
    fn readers_see_a_consistent_port_while_a_station_flaps() {
        // A writer moves one station between ports 1 and 2 while other
        // stations churn through its buckets; a reader must only ever see 1,
        // 2 or "unknown" for it, never another station's port.
        let t = Arc::new(MacTable::new(8, 300));
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let w = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    t.learn(0, mac(0), 1 + (i & 1), 0);
                    t.learn(0, mac(100 + i % 50), 1000 + i % 50, 0);
                    i += 1;
                }
            })
        };
        for _ in 0..200_000 {
            if let Some(p) = t.lookup(0, mac(0), 0) {
                assert!(p == 1 || p == 2, "saw port {p}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap();
    }
}
