//! Port-table read cost on the PMD hot path.
//!
//! One iteration is one PMD batch: take the table snapshot, do 32 output
//! lookups (`exists` + the DESIGN.md state checks) on ofports spread over 16
//! ports, then announce the rcu quiescent point. Criterion's throughput is in
//! lookups, so its time per element is the batch-amortised lookup cost
//! (target: <= 5 ns).
//!
//! `port_table_get_only` is the table's own cost (snapshot + existence
//! lookup + quiescent point) without the five state loads of
//! `PortState::output_check`.
//!
//! Peers in the same run, for ratios (the machine is shared and noisy):
//! * `direct_array` (and `direct_array_get_only`) — the same 32 lookups in a
//!   plain `Vec<Option<Arc<_>>>` with no publication at all (the floor);
//! * `arcswap_load_full` — the snapshot taken with a reference-count
//!   increment per batch instead of an `arc-swap` guard;
//! * `mutex_hashmap` — a `Mutex<HashMap>` locked per batch (the naive table).
//!
//! `with_churn` repeats the port-table case while another thread adds and
//! deletes a port every 50 µs and the rcu reclaimer runs: the lookups on the
//! other ports must not slow down.
//!
//! `cargo bench -p xswitch-benches --bench port_table -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::packet::{PacketBatch, PacketPool};
use dataplane::port_table::PortTable;
use dataplane::rcu::Rcu;
use dataplane::stats::DropReason;
use dataplane::vport::{PortState, TxError, Vport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORTS: u32 = 16;
const BATCH: usize = 32;

struct BenchPort {
    name: String,
    state: PortState,
}

impl Vport for BenchPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn state(&self) -> &PortState {
        &self.state
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn n_rxq(&self) -> usize {
        1
    }
    fn recv(&self, _: usize, _: &mut PacketPool, _: &mut PacketBatch) -> usize {
        0
    }
    fn send(&self, _: usize, _: &mut PacketBatch, _: &mut PacketPool) -> Result<usize, TxError> {
        Ok(0)
    }
}

fn port(name: String) -> Arc<dyn Vport> {
    Arc::new(BenchPort {
        name,
        state: PortState::up(2),
    })
}

/// Ofports of one batch's outputs: spread over the ports, a few misses.
fn targets() -> [u32; BATCH] {
    let mut t = [0u32; BATCH];
    let mut x: u32 = 0x9e37_79b9;
    for v in t.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = 1 + x % (PORTS + 2); // 17 and 18 do not exist
    }
    t
}

fn table(rcu: &Rcu) -> PortTable {
    let t = PortTable::new(rcu.clone());
    for i in 1..=PORTS {
        t.add(port(format!("p{i}")), Some(i)).unwrap();
    }
    t
}

/// What a lookup produces, folded so the optimiser keeps it.
#[inline]
fn fold(acc: u64, r: Result<u32, DropReason>) -> u64 {
    acc.wrapping_add(match r {
        Ok(n) => u64::from(n),
        Err(e) => 100 + e as u64,
    })
}

fn bench_lookup(c: &mut Criterion) {
    let targets = targets();
    let mut g = c.benchmark_group("port_table_lookup_batch32");
    g.throughput(Throughput::Elements(BATCH as u64));

    let rcu = Rcu::new();
    let t = table(&rcu);
    let mut pmd = rcu.register("bench-pmd").unwrap();
    g.bench_function("port_table", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            {
                let snap = t.load(&pmd);
                for &o in black_box(&targets) {
                    acc = fold(acc, snap.output(o).map(|(_, n)| n));
                }
            }
            pmd.quiescent();
            acc
        })
    });

    // Existence only (the table's own cost, without the state checks).
    g.bench_function("port_table_get_only", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            {
                let snap = t.load(&pmd);
                for &o in black_box(&targets) {
                    acc += u64::from(snap.get(o).is_some());
                }
            }
            pmd.quiescent();
            acc
        })
    });

    let array: Vec<Option<Arc<dyn Vport>>> = (0..=PORTS)
        .map(|i| (i > 0).then(|| port(format!("p{i}"))))
        .collect();
    g.bench_function("direct_array", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &o in black_box(&targets) {
                let r = match array.get(o as usize).and_then(Option::as_ref) {
                    Some(p) => p.state().output_check(),
                    None => Err(DropReason::NoPort),
                };
                acc = fold(acc, r);
            }
            acc
        })
    });

    g.bench_function("direct_array_get_only", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &o in black_box(&targets) {
                acc += u64::from(array.get(o as usize).and_then(Option::as_ref).is_some());
            }
            acc
        })
    });

    let swap = arc_swap_table();
    g.bench_function("arcswap_load_full", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            let snap = swap.load_full();
            for &o in black_box(&targets) {
                let r = match snap.get(o as usize).and_then(Option::as_ref) {
                    Some(p) => p.state().output_check(),
                    None => Err(DropReason::NoPort),
                };
                acc = fold(acc, r);
            }
            acc
        })
    });

    let locked: Mutex<HashMap<u32, Arc<dyn Vport>>> =
        Mutex::new((1..=PORTS).map(|i| (i, port(format!("p{i}")))).collect());
    g.bench_function("mutex_hashmap", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            let m = locked.lock().unwrap();
            for &o in black_box(&targets) {
                let r = match m.get(&o) {
                    Some(p) => p.state().output_check(),
                    None => Err(DropReason::NoPort),
                };
                acc = fold(acc, r);
            }
            acc
        })
    });

    // The same PMD read while a control thread churns another port.
    let rcu = Rcu::new();
    let t = Arc::new(table(&rcu));
    let reclaimer = rcu.spawn_reclaimer(Duration::from_millis(1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let churn = {
        let (t, stop, churned) = (t.clone(), stop.clone(), churned.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                t.add(port(format!("churn{i}")), Some(PORTS + 1)).unwrap();
                std::thread::sleep(Duration::from_micros(25));
                t.del(PORTS + 1).unwrap();
                std::thread::sleep(Duration::from_micros(25));
                i += 1;
            }
            churned.store(i, Ordering::Relaxed);
        })
    };
    let mut pmd = rcu.register("bench-pmd-churn").unwrap();
    g.bench_function("port_table_with_churn", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            {
                let snap = t.load(&pmd);
                for &o in black_box(&targets) {
                    acc = fold(acc, snap.output(o).map(|(_, n)| n));
                }
            }
            pmd.quiescent();
            acc
        })
    });
    drop(pmd);
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    drop(reclaimer);
    let st = t.stats();
    eprintln!(
        "port_table_with_churn: {} add+del cycles during the run, {} ports torn down, {} protocol violations",
        churned.load(Ordering::Relaxed),
        st.destroyed,
        st.protocol_violations
    );
    g.finish();
}

fn arc_swap_table() -> arc_swap::ArcSwap<Vec<Option<Arc<dyn Vport>>>> {
    arc_swap::ArcSwap::from_pointee(
        (0..=PORTS)
            .map(|i| (i > 0).then(|| port(format!("p{i}"))))
            .collect(),
    )
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
