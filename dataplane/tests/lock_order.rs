//! The lock hierarchy `config → ports → flow_table → fdb` (src/locks.rs) is
//! enforced in debug/test builds: inversions fail loudly, in one thread, the
//! first time the wrong order runs — no deadlock timing needed
//! (DESIGN.md failure 3, background/devlink-lock-order.txt).
//!
//! The checks are compiled out of release builds, so the tests that expect a
//! panic only exist in debug builds.

use dataplane::locks::{self, LockLevel, OrderedMutex, HIERARCHY, ORDER_CHECKED};
use dataplane::port_table::PortTable;
use dataplane::rcu::Rcu;
use std::sync::Arc;
use std::time::Duration;

struct Locks {
    config: OrderedMutex<u32>,
    ports: OrderedMutex<u32>,
    flow_table: OrderedMutex<u32>,
    fdb: OrderedMutex<u32>,
}

fn locks() -> Arc<Locks> {
    Arc::new(Locks {
        config: OrderedMutex::new(LockLevel::Config, 0),
        ports: OrderedMutex::new(LockLevel::Ports, 0),
        flow_table: OrderedMutex::new(LockLevel::FlowTable, 0),
        fdb: OrderedMutex::new(LockLevel::Fdb, 0),
    })
}

#[test]
fn taking_locks_in_hierarchy_order_passes() {
    let l = locks();
    {
        let mut c = l.config.lock();
        let mut p = l.ports.lock();
        let mut f = l.flow_table.lock();
        let mut m = l.fdb.lock();
        *c += 1;
        *p += 1;
        *f += 1;
        *m += 1;
        if ORDER_CHECKED {
            assert_eq!(locks::held().len(), 4);
        }
    }
    // Skipping levels is fine too: only the direction matters.
    {
        let _p = l.ports.lock();
        let _m = l.fdb.lock();
    }
    {
        let _c = l.config.lock();
        let _f = l.flow_table.lock();
    }
    assert!(locks::held().is_empty());
    assert_eq!(*l.fdb.lock(), 1);
}

#[test]
fn flow_install_and_port_churn_each_take_only_their_own_lock() {
    // The decoupling rule: a flow install holds flow_table alone, a port
    // add holds ports alone; neither nests the other, in either order of
    // running, on two threads at once.
    let l = locks();
    let (a, b) = (l.clone(), l.clone());
    let flows = std::thread::spawn(move || {
        for _ in 0..1000 {
            *a.flow_table.lock() += 1;
        }
    });
    let ports = std::thread::spawn(move || {
        for _ in 0..1000 {
            *b.ports.lock() += 1;
        }
    });
    flows.join().unwrap();
    ports.join().unwrap();
    // (Each read on its own statement: `(*flow_table.lock(), *ports.lock())`
    // would hold the first guard while taking the second — an inversion the
    // checker rightly rejects.)
    let flows = *l.flow_table.lock();
    let ports = *l.ports.lock();
    assert_eq!((flows, ports), (1000, 1000));
}

#[cfg(debug_assertions)]
mod checked {
    use super::*;

    #[test]
    #[should_panic(
        expected = "takes `ports` (level ports) while holding `flow_table` (level flow_table)"
    )]
    fn deliberate_inversion_flow_table_then_ports_is_caught() {
        let l = locks();
        let _f = l.flow_table.lock();
        let _p = l.ports.lock();
    }

    #[test]
    #[should_panic(expected = "takes `config` (level config) while holding `fdb` (level fdb)")]
    fn inversion_across_several_levels_names_the_innermost_held_lock() {
        let l = locks();
        let _p = l.ports.lock();
        let _m = l.fdb.lock();
        let _c = l.config.lock();
    }

    /// Two threads, each correct on its own timeline, never running at the
    /// same time — so they can never deadlock here. Thread A takes
    /// ports → flow_table (the hierarchy); thread B takes flow_table → ports
    /// (inverted). In production the two interleaved are an ABBA deadlock;
    /// the checker catches B on its own, deterministically.
    #[test]
    fn inversion_is_caught_even_when_the_timing_cannot_deadlock() {
        let l = locks();
        let a = l.clone();
        std::thread::Builder::new()
            .name("port-del".into())
            .spawn(move || {
                let _p = a.ports.lock();
                let _f = a.flow_table.lock();
            })
            .unwrap()
            .join()
            .expect("the hierarchy order must pass");

        let b = l.clone();
        let err = std::thread::Builder::new()
            .name("flow-mod".into())
            .spawn(move || {
                let _f = b.flow_table.lock();
                let _p = b.ports.lock();
            })
            .unwrap()
            .join()
            .expect_err("the inverted order must be caught");
        let msg = err
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(msg.contains("lock order violation"), "{msg}");
        assert!(msg.contains("\"flow-mod\""), "names the thread: {msg}");
        assert!(
            msg.contains("takes `ports`") && msg.contains("holding `flow_table`"),
            "names both locks: {msg}"
        );
        assert!(msg.contains(HIERARCHY), "states the hierarchy: {msg}");

        // The panic happened before blocking: nothing stays held, and the
        // locks still work (flow_table was poisoned by the panic and is
        // recovered).
        let _p = l.ports.lock();
        let _f = l.flow_table.lock();
    }

    /// The real port table's writer lock sits at `ports`: calling a port
    /// operation from inside a flow-table critical section is an inversion.
    #[test]
    #[should_panic(expected = "takes `ports` (level ports) while holding `flow_table`")]
    fn port_table_write_under_the_flow_table_lock_is_caught() {
        let l = locks();
        let table = PortTable::new(Rcu::new());
        let _f = l.flow_table.lock();
        let _ = table.set_carrier(1, false);
    }

    /// Waiting for PMDs under a control lock would let one slow PMD stall
    /// every writer: `synchronize` refuses to run under any hierarchy lock.
    #[test]
    #[should_panic(expected = "`Rcu::synchronize` called while holding `ports` (level ports)")]
    fn synchronize_under_the_ports_lock_is_caught() {
        let l = locks();
        let rcu = Rcu::new();
        let _p = l.ports.lock();
        let _ = rcu.synchronize(Duration::from_secs(1));
    }

    /// Destructors may take hierarchy locks, so running them under one is an
    /// inversion waiting to happen: `poll` refuses too.
    #[test]
    #[should_panic(expected = "`Rcu::poll` called while holding `flow_table` (level flow_table)")]
    fn reclaim_under_the_flow_table_lock_is_caught() {
        let l = locks();
        let table = PortTable::new(Rcu::new());
        let _f = l.flow_table.lock();
        table.reclaim();
    }
}
