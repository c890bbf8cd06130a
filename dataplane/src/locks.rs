//! The lock hierarchy of the control plane, and a mutex that checks it.
//!
//! # The hierarchy
//!
//! ```text
//!   config  →  ports  →  flow_table  →  fdb
//! ```
//!
//! A thread may take a lock only if it is strictly *below* (to the right of)
//! every lock it already holds. So:
//!
//! * `config` (the daemon's configuration: bridge settings, PMD CPU list) is
//!   taken first, by whole-switch reconfiguration, and may nest anything;
//! * `ports` (the port table's writer lock, [`crate::port_table`]) is taken by
//!   port add / del / state changes; it may nest `flow_table` (e.g. deleting
//!   flows that name a vanished port) but never the reverse;
//! * `flow_table` (the classifier's writer lock) is taken by flow installs and
//!   removals alone — a flow install never waits behind port churn
//!   (DESIGN.md failure 4, `background/ovs-flow-table-decouple.txt`);
//! * `fdb` (the MAC learning table) is innermost.
//!
//! Two locks of the same level are never held together. Module-private leaf
//! locks (the rcu registry and deferred queue, the watchdog's state) sit
//! below all of these: nothing is taken while holding them and they are held
//! for a few instructions, so they are plain mutexes.
//!
//! PMD threads take none of these locks: they read published snapshots
//! (`arc-swap` + [`crate::rcu`]). Waiting for PMDs ([`crate::rcu::Rcu::synchronize`])
//! or running rcu destructors ([`crate::rcu::Rcu::poll`]) while holding any
//! hierarchy lock is forbidden and checked by [`assert_no_locks_held`].
//!
//! # Why a checker
//!
//! DESIGN.md failure 3 (`background/devlink-lock-order.txt`): two control paths
//! took the same locks in opposite orders and deadlocked only on one rare
//! namespace-deletion interleaving. [`OrderedMutex`] records, per thread, the
//! levels it holds (debug and test builds only) and panics *before* blocking
//! when a thread asks for a lock that is not strictly below them, naming both
//! locks. The check is per thread and needs no second thread to race, so one
//! test run of an inverted path catches the inversion even when the timing
//! would never deadlock. In release builds the wrapper is a plain
//! `std::sync::Mutex` plus a level byte: no thread-local, no bookkeeping.
//!
//! The `tracing-mutex` crate was considered: it builds a global lock graph and
//! reports a cycle once *both* orders have been observed. The hierarchy here is
//! fixed and written down, so a level check is stricter (the first wrong
//! acquisition fails, even if the opposite order never runs), simpler, and
//! adds no dependency.
//!
//! # Poisoning
//!
//! `lock` recovers a poisoned mutex: the panicking thread has already reported
//! its bug, and cascading the panic into every later control operation would
//! turn one failed command into a dead daemon.

use std::sync::{Mutex, MutexGuard};

/// A level of the hierarchy; lower levels are taken first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LockLevel {
    /// The daemon configuration.
    Config = 0,
    /// The port table's writer lock.
    Ports = 1,
    /// The flow table's writer lock.
    FlowTable = 2,
    /// The MAC learning table.
    Fdb = 3,
}

impl LockLevel {
    /// All levels, outermost first.
    pub const ALL: [LockLevel; 4] = [
        LockLevel::Config,
        LockLevel::Ports,
        LockLevel::FlowTable,
        LockLevel::Fdb,
    ];

    /// The level's name as the hierarchy spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LockLevel::Config => "config",
            LockLevel::Ports => "ports",
            LockLevel::FlowTable => "flow_table",
            LockLevel::Fdb => "fdb",
        }
    }
}

impl core::fmt::Display for LockLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hierarchy as one line, for messages.
pub const HIERARCHY: &str = "config → ports → flow_table → fdb";

/// Whether this build checks lock order (debug and test builds).
pub const ORDER_CHECKED: bool = cfg!(debug_assertions);

/// A mutex at a fixed level of the hierarchy.
pub struct OrderedMutex<T> {
    level: LockLevel,
    name: &'static str,
    inner: Mutex<T>,
}

/// The guard of an [`OrderedMutex`]; releases the lock (and its place in the
/// thread's held set) when dropped.
pub struct OrderedGuard<'a, T> {
    #[cfg(debug_assertions)]
    _held: checker::Held,
    guard: MutexGuard<'a, T>,
}

impl<T> OrderedMutex<T> {
    /// A mutex at `level`, named after the level.
    pub const fn new(level: LockLevel, value: T) -> Self {
        OrderedMutex::named(level, level.as_str(), value)
    }

    /// A mutex at `level` with its own name for messages (e.g.
    /// `"ports(br0)"`).
    pub const fn named(level: LockLevel, name: &'static str, value: T) -> Self {
        OrderedMutex {
            level,
            name,
            inner: Mutex::new(value),
        }
    }

    /// Takes the lock. In debug builds, panics before blocking if the
    /// calling thread holds a lock at this level or below it in the
    /// hierarchy (the message names both locks).
    pub fn lock(&self) -> OrderedGuard<'_, T> {
        #[cfg(debug_assertions)]
        let held = checker::acquire(self.level, self.name);
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        OrderedGuard {
            #[cfg(debug_assertions)]
            _held: held,
            guard,
        }
    }

    /// The level this mutex sits at.
    pub fn level(&self) -> LockLevel {
        self.level
    }

    /// The name used in messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// The protected value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for OrderedMutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OrderedMutex")
            .field("level", &self.level)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T> core::ops::Deref for OrderedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for OrderedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// The hierarchy locks the calling thread holds, outermost first, as
/// `(level, name)`. Always empty in release builds.
pub fn held() -> Vec<(LockLevel, &'static str)> {
    #[cfg(debug_assertions)]
    {
        checker::held()
    }
    #[cfg(not(debug_assertions))]
    {
        Vec::new()
    }
}

/// Panics (debug builds) if the calling thread holds any hierarchy lock:
/// `what` is about to wait for PMD threads, or to run rcu destructors (which
/// may take hierarchy locks), and neither may happen under a control-plane
/// lock.
#[inline]
pub fn assert_no_locks_held(what: &str) {
    #[cfg(debug_assertions)]
    checker::assert_none_held(what);
    #[cfg(not(debug_assertions))]
    let _ = what;
}

#[cfg(debug_assertions)]
mod checker {
    use super::{LockLevel, HIERARCHY};
    use std::cell::RefCell;

    struct Entry {
        id: u64,
        level: LockLevel,
        name: &'static str,
    }

    #[derive(Default)]
    struct State {
        next_id: u64,
        held: Vec<Entry>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    /// The calling thread's claim on one held lock; dropping it forgets it.
    pub(super) struct Held {
        id: u64,
    }

    pub(super) fn acquire(level: LockLevel, name: &'static str) -> Held {
        let violation = STATE.with(|s| {
            let s = s.borrow();
            s.held
                .iter()
                .filter(|e| e.level >= level)
                .max_by_key(|e| e.level)
                .map(|e| (e.level, e.name))
        });
        if let Some((held_level, held_name)) = violation {
            panic!(
                "lock order violation: thread {:?} takes `{name}` (level {level}) while holding \
                 `{held_name}` (level {held_level}); locks are taken only downward: {HIERARCHY}",
                std::thread::current().name().unwrap_or("<unnamed>"),
            );
        }
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let id = s.next_id;
            s.next_id += 1;
            s.held.push(Entry { id, level, name });
            Held { id }
        })
    }

    impl Drop for Held {
        fn drop(&mut self) {
            // `try_with`: a guard may be dropped while the thread-local is
            // being torn down at thread exit.
            let _ = STATE.try_with(|s| {
                let mut s = s.borrow_mut();
                if let Some(i) = s.held.iter().rposition(|e| e.id == self.id) {
                    s.held.remove(i);
                }
            });
        }
    }

    pub(super) fn held() -> Vec<(LockLevel, &'static str)> {
        STATE.with(|s| s.borrow().held.iter().map(|e| (e.level, e.name)).collect())
    }

    pub(super) fn assert_none_held(what: &str) {
        let first = STATE.with(|s| s.borrow().held.first().map(|e| (e.level, e.name)));
        if let Some((level, name)) = first {
            panic!(
                "`{what}` called while holding `{name}` (level {level}): it waits for PMD \
                 threads or runs rcu destructors; release control-plane locks first"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_as_the_hierarchy_says() {
        let names: Vec<_> = LockLevel::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.join(" → "), HIERARCHY);
        assert!(LockLevel::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn downward_nesting_is_allowed_and_tracked() {
        let config = OrderedMutex::new(LockLevel::Config, 1);
        let ports = OrderedMutex::new(LockLevel::Ports, 2);
        let fdb = OrderedMutex::new(LockLevel::Fdb, 3);
        {
            let a = config.lock();
            let b = ports.lock();
            let c = fdb.lock();
            assert_eq!(*a + *b + *c, 6);
            if ORDER_CHECKED {
                assert_eq!(
                    held(),
                    vec![
                        (LockLevel::Config, "config"),
                        (LockLevel::Ports, "ports"),
                        (LockLevel::Fdb, "fdb")
                    ]
                );
            }
        }
        assert!(held().is_empty());
    }

    #[test]
    fn out_of_order_release_forgets_the_right_lock() {
        let ports = OrderedMutex::new(LockLevel::Ports, ());
        let flows = OrderedMutex::new(LockLevel::FlowTable, ());
        let p = ports.lock();
        let f = flows.lock();
        drop(p);
        if ORDER_CHECKED {
            assert_eq!(held(), vec![(LockLevel::FlowTable, "flow_table")]);
        }
        drop(f);
        assert!(held().is_empty());
        // Holding nothing again, any order works.
        let _f = flows.lock();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "takes `ports` (level ports) while holding `flow_table`")]
    fn inversion_flow_table_then_ports_panics() {
        let ports = OrderedMutex::new(LockLevel::Ports, ());
        let flows = OrderedMutex::new(LockLevel::FlowTable, ());
        let _f = flows.lock();
        let _p = ports.lock();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "takes `fdb(b)` (level fdb) while holding `fdb(a)`")]
    fn two_locks_of_one_level_panic() {
        let a = OrderedMutex::named(LockLevel::Fdb, "fdb(a)", ());
        let b = OrderedMutex::named(LockLevel::Fdb, "fdb(b)", ());
        let _a = a.lock();
        let _b = b.lock();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "`test wait` called while holding `ports` (level ports)")]
    fn waiting_under_a_lock_panics() {
        let ports = OrderedMutex::new(LockLevel::Ports, ());
        let _p = ports.lock();
        assert_no_locks_held("test wait");
    }
}
