//! Loom model of the port-deletion protocol (DESIGN.md "Port lifecycle",
//! `src/rcu.rs`, `src/port_table.rs`).
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p xswitch-dataplane --test loom_reclaim --release
//! ```
//!
//! The models run the crate's real [`Rcu`] (its atomics, fences and locks are
//! loom's under `cfg(loom)`, see `src/sync.rs`). What they add is a model of
//! the published table and of the port: `table` is the published pointer
//! (1 = the map that holds the port, 0 = the map without it) and `freed`
//! stands for the port's memory and resources. A reader that finds the port
//! in the table "uses" it by reading `freed` with `Relaxed` ordering, so loom
//! may show it any store not ordered after the read: if some interleaving or
//! reordering lets the destructor run before the use has finished, the read
//! can return `true` and the model fails with "use after free".
//!
//! The correct protocol (unlink, then defer) must pass every execution. Three
//! broken variants must be caught, and run here as expected failures so the
//! suite proves the model can fail: a writer that frees without waiting, a
//! writer that defers before unlinking, and a reader that comes online
//! without the `SeqCst` fence.
//!
//! Limit: loom does not model load buffering (a load reading a store that
//! follows it in another thread's program order), so the `Release` on the
//! quiescent-point store is justified by the argument in `src/rcu.rs`, not by
//! this model (weakening it to `Relaxed` still passes here).
#![cfg(loom)]

use dataplane::rcu::{Participant, Rcu};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::time::Duration;

/// Preemption bound: enough for the store-buffering and reclaim races (the
/// bugs below are found with 2), small enough to finish in seconds.
const PREEMPTIONS: usize = 3;

fn model(f: impl Fn() + Send + Sync + 'static) {
    model_bounded(PREEMPTIONS, f);
}

fn model_bounded(preemptions: usize, f: impl Fn() + Send + Sync + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(f);
}

/// The published table and the one port in it.
struct World {
    /// 1: the published map contains the port; 0: it has been unlinked.
    table: AtomicUsize,
    /// Set by the port's destructor.
    freed: AtomicBool,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            table: AtomicUsize::new(1),
            freed: AtomicBool::new(false),
        })
    }

    /// One PMD batch: read the table pointer, use the port if present.
    fn reader_batch(&self) {
        if self.table.load(Ordering::Acquire) == 1 {
            assert!(
                !self.freed.load(Ordering::Relaxed),
                "use after free: the reader is using a destroyed port"
            );
        }
    }

    /// The destructor the writer defers.
    fn free(&self) {
        self.freed.store(true, Ordering::Relaxed);
    }

    /// The writer's step 2: publish the map without the port.
    fn unlink(&self) {
        self.table.store(0, Ordering::Release);
    }
}

/// The correct writer: unlink, defer the free, then keep polling (as the
/// reclaimer thread does) until the destructor has run.
fn writer_unlink_then_defer(rcu: &Rcu, w: &Arc<World>) {
    w.unlink();
    let w2 = w.clone();
    rcu.defer(move || w2.free());
    while rcu.poll() == 0 {
        thread::yield_now();
    }
}

/// A PMD: `batches` batches, each followed by a quiescent point.
fn pmd(mut p: Participant, w: Arc<World>, batches: usize) {
    for _ in 0..batches {
        w.reader_batch();
        p.quiescent();
    }
}

#[test]
fn reader_in_steady_state_never_uses_a_freed_port() {
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || pmd(p, w1, 2));
        writer_unlink_then_defer(&rcu, &w);
        t.join().unwrap();
        assert!(w.freed.load(Ordering::Relaxed));
    });
}

#[test]
fn reader_that_parks_offline_and_comes_back_never_uses_a_freed_port() {
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let mut p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || {
            w1.reader_batch();
            p.quiescent();
            p.offline();
            // Parked: blocks nothing. Back online: must re-read the table.
            p.online();
            w1.reader_batch();
            p.quiescent();
        });
        writer_unlink_then_defer(&rcu, &w);
        t.join().unwrap();
    });
}

#[test]
fn reader_registering_during_the_delete_never_uses_a_freed_port() {
    // The online store racing the writer's scan: the case the SeqCst fences
    // exist for (src/rcu.rs, "The protocol").
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let (r1, w1) = (rcu.clone(), w.clone());
        let t = thread::spawn(move || {
            let p = r1.register("pmd0").unwrap();
            pmd(p, w1, 1);
        });
        writer_unlink_then_defer(&rcu, &w);
        t.join().unwrap();
    });
}

#[test]
fn two_readers_never_use_a_freed_port() {
    // Three threads: a smaller bound keeps this one to seconds.
    model_bounded(2, || {
        let rcu = Rcu::with_capacity(2);
        let w = World::new();
        let p0 = rcu.register("pmd0").unwrap();
        let p1 = rcu.register("pmd1").unwrap();
        let (w0, w1) = (w.clone(), w.clone());
        let t0 = thread::spawn(move || pmd(p0, w0, 1));
        let t1 = thread::spawn(move || pmd(p1, w1, 1));
        writer_unlink_then_defer(&rcu, &w);
        t0.join().unwrap();
        t1.join().unwrap();
    });
}

#[test]
fn synchronize_then_free_never_frees_under_a_reader() {
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || pmd(p, w1, 2));
        w.unlink();
        rcu.synchronize(Duration::from_secs(3600)).unwrap();
        w.free();
        t.join().unwrap();
    });
}

#[test]
fn reader_that_exits_unblocks_reclamation() {
    // The writer polls until the destructor ran: this terminates in every
    // execution only because a dropped participant stops blocking.
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || {
            w1.reader_batch();
            drop(p); // exits without another quiescent point
        });
        writer_unlink_then_defer(&rcu, &w);
        t.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "use after free")]
fn broken_writer_that_frees_without_a_grace_period_is_caught() {
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || pmd(p, w1, 1));
        w.unlink();
        w.free(); // BUG: no defer, no synchronize
        t.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "use after free")]
fn broken_writer_that_defers_before_unlinking_is_caught() {
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || pmd(p, w1, 2));
        let w2 = w.clone();
        rcu.defer(move || w2.free()); // BUG: tagged before the unlink
        w.unlink();
        while rcu.poll() == 0 {
            thread::yield_now();
        }
        t.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "use after free")]
fn broken_reader_that_comes_online_without_the_fence_is_caught() {
    // Same as the parking model, but the reader announces itself online
    // without the SeqCst fence: the writer's scan can miss the online store
    // while the reader's next table load misses the unlink (store
    // buffering). This is why `Participant::online` has its fence.
    model(|| {
        let rcu = Rcu::with_capacity(1);
        let w = World::new();
        let mut p = rcu.register("pmd0").unwrap();
        let w1 = w.clone();
        let t = thread::spawn(move || {
            w1.reader_batch();
            p.quiescent();
            p.offline();
            p.online_without_fence_broken();
            w1.reader_batch();
            p.quiescent();
        });
        writer_unlink_then_defer(&rcu, &w);
        t.join().unwrap();
    });
}
