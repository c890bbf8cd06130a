//! Quiescent-state-based reclamation (QSBR) for PMD threads.
//!
//! # What
//!
//! The control plane publishes immutable snapshots (the port table, later the
//! flow table) that PMD threads read without a lock. When a writer replaces a
//! snapshot, the old one — and anything it names that must be torn down, such
//! as a deleted port's sockets, UMEM and XDP attachment — may still be in use
//! by a PMD in the middle of a batch. This module decides *when* it is safe to
//! destroy such things: [`Rcu::defer`] queues a destructor, and the destructor
//! runs only after every registered PMD has passed a *quiescent point*, a
//! moment at which it holds no reference into any published snapshot.
//!
//! This is the model of Open vSwitch's `lib/ovs-rcu.h` and of userspace-RCU's
//! QSBR flavour: a PMD announces a quiescent point at every batch boundary
//! ([`Participant::quiescent`]), goes *offline* before it parks
//! ([`Participant::offline`]) and *online* when it resumes
//! ([`Participant::online`]).
//!
//! # Invariants
//!
//! * A reader never holds a reference into a published snapshot across a
//!   quiescent point or while offline. The API makes this a borrow-check
//!   error: snapshots are borrowed from `&Participant` (see
//!   [`crate::port_table::PortTable::load`]) and `quiescent`, `offline` and
//!   `online` take `&mut self`.
//! * A destructor passed to [`Rcu::defer`] *after* the unlinking store runs
//!   only once every participant that was online at that store has either
//!   announced a quiescent point, gone offline, or unregistered. It runs
//!   exactly once, in the thread that calls [`Rcu::poll`] (normally the
//!   reclaimer thread, [`Rcu::spawn_reclaimer`]) — never in a PMD.
//! * An offline or unregistered participant blocks nothing. A participant
//!   whose thread panics unregisters when its [`Participant`] is dropped
//!   during unwinding, so a dead PMD never blocks reclamation forever.
//!
//! # The protocol
//!
//! A global epoch counter `E` and, per participant slot, a state word: `FREE`
//! (no participant), `OFFLINE`, or the epoch it last observed (`>= 2`).
//!
//! * Reader, quiescent point: `g = E.load(Acquire); if g != seen { slot.store(g,
//!   Release) }`. In the steady state (no writer activity) this is one load
//!   of a cache line that every core holds shared: no store, no lock, no
//!   fence. When `E` moved it is one store to the PMD's own cache line.
//! * Reader, online: `slot.store(E.load(Acquire)); fence(SeqCst)`. Offline:
//!   `slot.store(OFFLINE, Release)`.
//! * Writer: unlink (store the new snapshot), then `e = E.fetch_add(1, AcqRel)
//!   + 1`; work tagged with `e` is safe once, after a `fence(SeqCst)`, every
//!   slot reads `FREE`, `OFFLINE` or a value `>= e`.
//!
//! Why it is safe: a slot value `>= e` was stored (Release) after its reader
//! loaded `E >= e` (Acquire), which synchronises with the writer's `fetch_add`
//! (Release) and so with the unlinking store sequenced before it: every access
//! the reader made before that quiescent point happens-before the destructor,
//! and every access after it sees the new snapshot. A slot read as `OFFLINE`
//! was released after the reader's last access. The one hard case is a reader
//! coming online while the writer scans: the writer may read the stale
//! `OFFLINE` and skip it while the reader, having loaded the old `E`, goes on
//! to load the snapshot pointer. That is the store-buffering pattern, and the
//! two `SeqCst` fences (reader after its online store, writer before its scan)
//! forbid the bad outcome: if the writer's scan missed the online store, the
//! reader's later pointer load must see the writer's unlink. Quiescent points
//! need no fence because a stale load of `E` only makes the writer wait longer.
//! `tests/loom_reclaim.rs` checks this under loom, together with a broken
//! variant that loom must reject.
//!
//! # Why QSBR and not crossbeam-epoch
//!
//! crossbeam-epoch's `Guard` costs a pin per batch (a `SeqCst` fence, a locked
//! `cmpxchg` on x86, in `pin`) and its `Shared::deref` is `unsafe`, which this crate denies; its loom
//! model needs the crate's own `crossbeam_loom` build. QSBR costs a PMD one
//! plain load per batch, and because PMDs already have natural batch
//! boundaries the "hold no reference across a quiescent point" rule is free to
//! honour. Publication itself stays with `arc-swap` (safe, no `Cache`), which
//! guarantees memory safety on its own; QSBR adds the guarantee DESIGN.md
//! needs on top: a port's *resources* are torn down deterministically, in the
//! reclaimer, only once no PMD can be using them — never on a PMD's hot path,
//! and never kept alive by an idle PMD.
//!
//! # Locking
//!
//! PMDs take no lock. Writers take two private leaf locks, each for a few
//! instructions: the registry (register/unregister, names for reports) and the
//! deferred queue. Destructors run after the queue lock is released, under a
//! third private lock that serialises pollers (so destructors run in queue
//! order even with several pollers); a destructor may take any lock of the
//! hierarchy ([`crate::locks`]), so [`Rcu::poll`] sits *above* the hierarchy
//! and must not be called while holding one of its locks. Neither may
//! [`Rcu::synchronize`], which waits for PMDs (both checked in debug builds);
//! nor may an online participant synchronize (it would wait for itself; it
//! times out instead).

use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::sync::hint::spin_wait;
use crate::sync::{Arc, Mutex, MutexGuard};
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Slot state: no participant.
const FREE: u64 = 0;
/// Slot state: registered but holding no references.
const OFFLINE: u64 = 1;
/// The first epoch; every online slot holds a value `>= FIRST_EPOCH`.
const FIRST_EPOCH: u64 = 2;

/// Participants an [`Rcu`] made by [`Rcu::new`] can hold.
pub const DEFAULT_MAX_PARTICIPANTS: usize = 64;

/// How often a long [`Rcu::synchronize`] reports who it is waiting for.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Why an [`Rcu`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcuError {
    /// Every participant slot is taken.
    #[error("too many rcu participants (limit {limit})")]
    TooManyParticipants {
        /// The slot count the domain was built with.
        limit: usize,
    },
    /// A grace period did not end in time.
    #[error("rcu grace period not over after {waited:?}; still waiting for {laggards:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
        /// Names of the participants that had not passed a quiescent point.
        laggards: Vec<String>,
    },
}

/// A destructor waiting for its grace period.
struct Deferred {
    epoch: u64,
    queued_at: Instant,
    run: Box<dyn FnOnce() + Send>,
}

struct Inner {
    /// The global epoch `E`.
    epoch: CachePadded<AtomicU64>,
    /// One state word per participant slot, each on its own cache line.
    slots: Box<[CachePadded<AtomicU64>]>,
    /// Which slots are taken, by whom (leaf lock; names for reports only).
    names: Mutex<Vec<Option<String>>>,
    /// Destructors in epoch order (leaf lock).
    queue: Mutex<VecDeque<Deferred>>,
    /// Held while destructors run, so they run one poller at a time and in
    /// queue order (a port's teardown relies on the maps that held it being
    /// freed first). Outermost: taken with no hierarchy lock held.
    running: Mutex<()>,
    deferred: AtomicU64,
    reclaimed: AtomicU64,
}

/// A reclamation domain: participants (PMD threads) and deferred destructors.
/// Cloning is cheap and shares the domain.
#[derive(Clone)]
pub struct Rcu {
    inner: Arc<Inner>,
}

/// Counters of an [`Rcu`] domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RcuStats {
    /// The current global epoch.
    pub epoch: u64,
    /// Registered participants.
    pub participants: usize,
    /// Destructors ever queued.
    pub deferred: u64,
    /// Destructors that have run.
    pub reclaimed: u64,
    /// Destructors waiting for a grace period.
    pub pending: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A leaf lock held for a few instructions; a panic while holding it
    // cannot leave the data half-updated, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Rcu {
    fn default() -> Self {
        Rcu::new()
    }
}

impl core::fmt::Debug for Rcu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rcu").field("stats", &self.stats()).finish()
    }
}

impl Rcu {
    /// A domain for up to [`DEFAULT_MAX_PARTICIPANTS`] participants.
    pub fn new() -> Self {
        Rcu::with_capacity(DEFAULT_MAX_PARTICIPANTS)
    }

    /// A domain for up to `max_participants` participants.
    pub fn with_capacity(max_participants: usize) -> Self {
        let slots = (0..max_participants)
            .map(|_| CachePadded::new(AtomicU64::new(FREE)))
            .collect();
        Rcu {
            inner: Arc::new(Inner {
                epoch: CachePadded::new(AtomicU64::new(FIRST_EPOCH)),
                slots,
                names: Mutex::new(vec![None; max_participants]),
                queue: Mutex::new(VecDeque::new()),
                running: Mutex::new(()),
                deferred: AtomicU64::new(0),
                reclaimed: AtomicU64::new(0),
            }),
        }
    }

    /// Registers a participant (a PMD thread) named `name` for reports. It
    /// starts online; drop it to unregister.
    pub fn register(&self, name: &str) -> Result<Participant, RcuError> {
        let slot = {
            let mut names = lock(&self.inner.names);
            let slot = names
                .iter()
                .position(Option::is_none)
                .ok_or(RcuError::TooManyParticipants { limit: names.len() })?;
            names[slot] = Some(name.to_owned());
            self.inner.slots[slot].store(OFFLINE, Ordering::Release);
            slot
        };
        let mut p = Participant {
            rcu: self.clone(),
            slot,
            seen: OFFLINE,
        };
        p.online();
        Ok(p)
    }

    /// Queues `f` to run once every participant has passed a quiescent point
    /// (or gone offline, or unregistered). Call it *after* the store that
    /// unlinks what `f` destroys. Never blocks on participants; `f` runs in a
    /// later [`Rcu::poll`] (or [`Rcu::barrier`]).
    pub fn defer(&self, f: impl FnOnce() + Send + 'static) {
        let mut q = lock(&self.inner.queue);
        // Bumping under the queue lock keeps the queue sorted by epoch.
        let epoch = self.inner.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        q.push_back(Deferred {
            epoch,
            queued_at: Instant::now(),
            run: Box::new(f),
        });
        self.inner.deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs every deferred destructor whose grace period is over; returns how
    /// many ran. Never waits for participants. Destructors run one poller at
    /// a time, in the order they were deferred: a second concurrent `poll`
    /// waits for the first to finish, then runs what is left.
    ///
    /// Must not be called while holding a lock of the hierarchy (debug builds
    /// panic), since destructors may take those locks; a destructor must not
    /// call `poll` or [`Rcu::barrier`] itself (it may [`Rcu::defer`]).
    pub fn poll(&self) -> usize {
        crate::locks::assert_no_locks_held("Rcu::poll");
        let _running = lock(&self.inner.running);
        let ready: Vec<Deferred> = {
            let mut q = lock(&self.inner.queue);
            if q.is_empty() {
                return 0;
            }
            // The scan must follow the enqueueing of every item it releases
            // (an item queued after a scan that saw no online participant
            // is not covered by it), hence under the queue lock.
            let safe = self.safe_epoch();
            let n = q.iter().take_while(|d| d.epoch <= safe).count();
            q.drain(..n).collect()
        };
        // Run outside the lock: a destructor may defer more work or take
        // hierarchy locks. (Should one panic, the rest are dropped unrun,
        // which still releases what they captured.)
        let ran = ready.len();
        for d in ready {
            (d.run)();
            self.inner.reclaimed.fetch_add(1, Ordering::Relaxed);
        }
        ran
    }

    /// Waits until every participant has passed a quiescent point after this
    /// call began (offline and unregistered participants count as passed).
    /// Reports who it waits for every second (`tracing` warning) and gives up
    /// after `timeout`, naming the laggards. Never blocks participants.
    ///
    /// Must not be called while holding a lock of the hierarchy (debug builds
    /// panic): waiting for PMDs under a control lock is how a slow PMD would
    /// stall every writer.
    pub fn synchronize(&self, timeout: Duration) -> Result<(), RcuError> {
        crate::locks::assert_no_locks_held("Rcu::synchronize");
        let target = self.inner.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let start = Instant::now();
        let mut last_report = start;
        let mut backoff = Backoff::new();
        loop {
            if self.safe_epoch() >= target {
                return Ok(());
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(RcuError::Timeout {
                    waited,
                    laggards: self.laggards(target),
                });
            }
            if last_report.elapsed() >= PROGRESS_INTERVAL {
                last_report = Instant::now();
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    laggards = ?self.laggards(target),
                    "rcu: grace period still waiting for participants to quiesce"
                );
            }
            backoff.wait();
        }
    }

    /// [`Rcu::synchronize`], then runs every destructor queued before this
    /// call. Returns how many destructors ran.
    pub fn barrier(&self, timeout: Duration) -> Result<usize, RcuError> {
        self.synchronize(timeout)?;
        Ok(self.poll())
    }

    /// Counters for `stats` and tests.
    pub fn stats(&self) -> RcuStats {
        RcuStats {
            epoch: self.inner.epoch.load(Ordering::Relaxed),
            participants: lock(&self.inner.names).iter().flatten().count(),
            deferred: self.inner.deferred.load(Ordering::Relaxed),
            reclaimed: self.inner.reclaimed.load(Ordering::Relaxed),
            pending: lock(&self.inner.queue).len(),
        }
    }

    /// Whether `other` is a handle to this same domain.
    pub fn same_domain(&self, other: &Rcu) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Destructors waiting for a grace period.
    pub fn pending(&self) -> usize {
        lock(&self.inner.queue).len()
    }

    /// Names of participants that have not yet passed a quiescent point after
    /// the newest deferred destructor was queued, and how long the oldest
    /// pending destructor has waited. `None` when nothing is pending.
    pub fn blocked(&self) -> Option<(Duration, Vec<String>)> {
        let (age, newest) = {
            let q = lock(&self.inner.queue);
            (q.front()?.queued_at.elapsed(), q.back()?.epoch)
        };
        Some((age, self.laggards(newest)))
    }

    /// The smallest epoch an online participant has announced
    /// (`u64::MAX` if none is online): work tagged `<=` it is safe.
    fn safe_epoch(&self) -> u64 {
        // Pairs with the fence in `Participant::online` (module docs).
        fence(Ordering::SeqCst);
        let mut min = u64::MAX;
        for s in self.inner.slots.iter() {
            let v = s.load(Ordering::Acquire);
            if v >= FIRST_EPOCH {
                min = min.min(v);
            }
        }
        min
    }

    fn laggards(&self, target: u64) -> Vec<String> {
        let names = lock(&self.inner.names);
        self.inner
            .slots
            .iter()
            .zip(names.iter())
            .filter_map(|(s, n)| {
                let v = s.load(Ordering::Acquire);
                (v >= FIRST_EPOCH && v < target).then(|| n.clone().unwrap_or_default())
            })
            .collect()
    }
}

/// Spin, then yield, then sleep: a waiting writer must not steal a core from
/// the PMD it is waiting for (the machine may have fewer cores than threads).
struct Backoff {
    #[cfg_attr(loom, allow(dead_code))]
    step: u32,
}

impl Backoff {
    fn new() -> Self {
        Backoff { step: 0 }
    }

    fn wait(&mut self) {
        #[cfg(loom)]
        {
            spin_wait();
        }
        #[cfg(not(loom))]
        {
            self.step = self.step.saturating_add(1);
            if self.step < 16 {
                spin_wait();
            } else if self.step < 32 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// A registered reader (one per PMD thread). Online from registration until
/// dropped, except between [`Participant::offline`] and
/// [`Participant::online`]. Dropping it unregisters (also during a panic), so
/// it never blocks reclamation after its thread is gone.
pub struct Participant {
    rcu: Rcu,
    slot: usize,
    /// The value last stored in the slot (`OFFLINE` or an epoch).
    seen: u64,
}

impl core::fmt::Debug for Participant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Participant")
            .field("slot", &self.slot)
            .field("online", &self.is_online())
            .finish()
    }
}

impl Participant {
    /// Announces a quiescent point: this thread holds no reference into any
    /// published snapshot. Call at every batch boundary. Costs one load in the
    /// steady state, plus one store to the thread's own cache line after a
    /// writer acted. No-op while offline.
    #[inline]
    pub fn quiescent(&mut self) {
        if self.seen < FIRST_EPOCH {
            return;
        }
        let g = self.rcu.inner.epoch.load(Ordering::Acquire);
        if g != self.seen {
            self.rcu.inner.slots[self.slot].store(g, Ordering::Release);
            self.seen = g;
        }
    }

    /// Goes offline before parking (sleep, blocking call): from now on this
    /// participant blocks no grace period. Everything read before is released.
    pub fn offline(&mut self) {
        if self.seen >= FIRST_EPOCH {
            self.rcu.inner.slots[self.slot].store(OFFLINE, Ordering::Release);
            self.seen = OFFLINE;
        }
    }

    /// Comes back online after [`Participant::offline`]. Published pointers
    /// must be re-read after this (the borrow rules force it).
    pub fn online(&mut self) {
        if self.seen >= FIRST_EPOCH {
            return;
        }
        let g = self.rcu.inner.epoch.load(Ordering::Acquire);
        self.rcu.inner.slots[self.slot].store(g, Ordering::Release);
        // Pairs with the writer's fence in `Rcu::safe_epoch` (module docs).
        fence(Ordering::SeqCst);
        self.seen = g;
    }

    /// Loom only: [`Participant::online`] *without* its `SeqCst` fence. The
    /// deliberately broken variant `tests/loom_reclaim.rs` uses to show that
    /// the model rejects it (a reader coming online can then miss an unlink
    /// while the writer misses its online store). Not in any other build.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn online_without_fence_broken(&mut self) {
        if self.seen >= FIRST_EPOCH {
            return;
        }
        let g = self.rcu.inner.epoch.load(Ordering::Acquire);
        self.rcu.inner.slots[self.slot].store(g, Ordering::Release);
        self.seen = g;
    }

    /// Whether the participant currently blocks grace periods.
    pub fn is_online(&self) -> bool {
        self.seen >= FIRST_EPOCH
    }

    /// The domain this participant belongs to.
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.offline();
        let mut names = lock(&self.rcu.inner.names);
        names[self.slot] = None;
        self.rcu.inner.slots[self.slot].store(FREE, Ordering::Release);
    }
}

/// The background thread that runs [`Rcu::poll`] periodically and warns
/// (once a second at most) when destructors have waited more than a second.
/// Stopped, after a final poll, when dropped.
#[cfg(not(loom))]
pub struct Reclaimer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

#[cfg(not(loom))]
impl Rcu {
    /// Starts a reclaimer thread that polls every `interval`.
    pub fn spawn_reclaimer(&self, interval: Duration) -> std::io::Result<Reclaimer> {
        self.spawn_reclaimer_on(interval, Vec::new())
    }

    /// [`Rcu::spawn_reclaimer`], the thread confined to `cpus` (empty: not
    /// confined; see [`crate::affinity`]).
    pub fn spawn_reclaimer_on(
        &self,
        interval: Duration,
        cpus: Vec<usize>,
    ) -> std::io::Result<Reclaimer> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rcu = self.clone();
        let stop2 = stop.clone();
        let handle = crate::affinity::spawn_confined("rcu-reclaim", cpus, move || {
            let mut last_warn: Option<Instant> = None;
            while !stop2.load(Ordering::Acquire) {
                rcu.poll();
                if let Some((age, laggards)) = rcu.blocked() {
                    let due = last_warn.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
                    if age >= PROGRESS_INTERVAL && due {
                        last_warn = Some(Instant::now());
                        tracing::warn!(
                            waited_ms = age.as_millis() as u64,
                            ?laggards,
                            "rcu: deferred destructors blocked by participants"
                        );
                    }
                }
                std::thread::park_timeout(interval);
            }
            rcu.poll();
        })?;
        Ok(Reclaimer {
            stop,
            handle: Some(handle),
        })
    }
}

#[cfg(not(loom))]
impl Drop for Reclaimer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc as StdArc;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn deferred_work_waits_for_an_online_participant_to_quiesce() {
        let rcu = Rcu::new();
        let mut pmd = rcu.register("pmd0").unwrap();
        let ran = StdArc::new(AtomicBool::new(false));
        let r = ran.clone();
        rcu.defer(move || r.store(true, Ordering::SeqCst));
        assert_eq!(rcu.poll(), 0);
        assert!(!ran.load(Ordering::SeqCst));
        pmd.quiescent();
        assert_eq!(rcu.poll(), 1);
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(rcu.stats().reclaimed, 1);
        assert_eq!(rcu.pending(), 0);
    }

    #[test]
    fn quiescent_point_before_defer_does_not_count() {
        let rcu = Rcu::new();
        let mut pmd = rcu.register("pmd0").unwrap();
        pmd.quiescent();
        rcu.defer(|| {});
        assert_eq!(rcu.poll(), 0, "a quiescent point older than the defer");
        pmd.quiescent();
        assert_eq!(rcu.poll(), 1);
    }

    #[test]
    fn every_participant_must_quiesce() {
        let rcu = Rcu::new();
        let mut a = rcu.register("a").unwrap();
        let mut b = rcu.register("b").unwrap();
        rcu.defer(|| {});
        a.quiescent();
        assert_eq!(rcu.poll(), 0);
        assert_eq!(rcu.blocked().unwrap().1, vec!["b".to_string()]);
        b.quiescent();
        assert_eq!(rcu.poll(), 1);
        assert!(rcu.blocked().is_none());
    }

    #[test]
    fn offline_participant_does_not_block_and_online_one_does() {
        let rcu = Rcu::new();
        let mut pmd = rcu.register("pmd0").unwrap();
        pmd.offline();
        assert!(!pmd.is_online());
        rcu.defer(|| {});
        assert_eq!(rcu.poll(), 1);
        pmd.online();
        rcu.defer(|| {});
        assert_eq!(rcu.poll(), 0);
        pmd.quiescent();
        assert_eq!(rcu.poll(), 1);
    }

    #[test]
    fn quiescent_while_offline_stays_offline() {
        let rcu = Rcu::new();
        let mut pmd = rcu.register("pmd0").unwrap();
        pmd.offline();
        pmd.quiescent();
        assert!(!pmd.is_online());
        rcu.defer(|| {});
        assert_eq!(rcu.poll(), 1);
    }

    #[test]
    fn destructors_run_in_queue_order_exactly_once() {
        let rcu = Rcu::new();
        let mut pmd = rcu.register("pmd0").unwrap();
        let log = StdArc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..5 {
            let l = log.clone();
            rcu.defer(move || l.lock().unwrap().push(i));
        }
        pmd.quiescent();
        assert_eq!(rcu.poll(), 5);
        assert_eq!(rcu.poll(), 0);
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn concurrent_pollers_run_destructors_in_deferral_order() {
        let rcu = Rcu::new();
        let log = StdArc::new(std::sync::Mutex::new(Vec::new()));
        let mut pollers = Vec::new();
        for _ in 0..2 {
            let r = rcu.clone();
            pollers.push(std::thread::spawn(move || {
                let mut n = 0;
                while n < 200 {
                    n += r.poll();
                    if r.stats().reclaimed >= 2000 {
                        break;
                    }
                }
            }));
        }
        for i in 0..2000 {
            let l = log.clone();
            rcu.defer(move || l.lock().unwrap().push(i));
        }
        for p in pollers {
            p.join().unwrap();
        }
        rcu.poll();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2000);
        assert!(log.windows(2).all(|w| w[0] < w[1]), "out of order");
    }

    #[test]
    fn dropped_participant_unblocks_reclamation() {
        let rcu = Rcu::new();
        let pmd = rcu.register("pmd0").unwrap();
        rcu.defer(|| {});
        assert_eq!(rcu.poll(), 0);
        drop(pmd);
        assert_eq!(rcu.poll(), 1);
        assert_eq!(rcu.stats().participants, 0);
    }

    #[test]
    fn participant_of_a_panicking_thread_unregisters() {
        let rcu = Rcu::new();
        let r = rcu.clone();
        let res = std::thread::spawn(move || {
            let _pmd = r.register("doomed").unwrap();
            panic!("pmd thread dies mid-batch");
        })
        .join();
        assert!(res.is_err());
        rcu.defer(|| {});
        assert_eq!(rcu.barrier(T), Ok(1));
    }

    #[test]
    fn slots_are_reused_and_capacity_is_enforced() {
        let rcu = Rcu::with_capacity(2);
        let a = rcu.register("a").unwrap();
        let _b = rcu.register("b").unwrap();
        assert_eq!(
            rcu.register("c").unwrap_err(),
            RcuError::TooManyParticipants { limit: 2 }
        );
        drop(a);
        let _c = rcu.register("c").unwrap();
        assert_eq!(rcu.stats().participants, 2);
    }

    #[test]
    fn synchronize_times_out_naming_the_laggard() {
        let rcu = Rcu::new();
        let _stuck = rcu.register("pmd7").unwrap();
        match rcu.synchronize(Duration::from_millis(20)) {
            Err(RcuError::Timeout { laggards, waited }) => {
                assert_eq!(laggards, vec!["pmd7".to_string()]);
                assert!(waited >= Duration::from_millis(20));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn synchronize_returns_once_a_busy_pmd_passes_a_quiescent_point() {
        let rcu = Rcu::new();
        let stop = StdArc::new(AtomicBool::new(false));
        let s = stop.clone();
        // Registered (online) before the thread starts: the first
        // synchronize must wait for the thread's first quiescent point.
        let mut p = rcu.register("pmd0").unwrap();
        let pmd = std::thread::spawn(move || {
            let mut batches = 0u64;
            while !s.load(Ordering::Relaxed) {
                batches += 1;
                p.quiescent();
                std::thread::yield_now();
            }
            batches
        });
        for _ in 0..20 {
            rcu.synchronize(T).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            pmd.join().unwrap() >= 20,
            "each grace period needed a batch"
        );
    }

    #[test]
    fn reclaimer_thread_runs_deferred_work() {
        let rcu = Rcu::new();
        let reclaimer = rcu.spawn_reclaimer(Duration::from_millis(1)).unwrap();
        let ran = StdArc::new(AtomicBool::new(false));
        let r = ran.clone();
        rcu.defer(move || r.store(true, Ordering::SeqCst));
        let start = Instant::now();
        while !ran.load(Ordering::SeqCst) {
            assert!(start.elapsed() < T, "reclaimer never ran the destructor");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(reclaimer);
        assert_eq!(rcu.stats().reclaimed, 1);
    }

    #[test]
    fn destructor_may_defer_more_work() {
        let rcu = Rcu::new();
        let r = rcu.clone();
        let ran = StdArc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        rcu.defer(move || r.defer(move || ran2.store(true, Ordering::SeqCst)));
        assert_eq!(
            rcu.poll(),
            1,
            "work deferred by a destructor waits for the next poll"
        );
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(rcu.poll(), 1);
        assert!(ran.load(Ordering::SeqCst));
    }
}
