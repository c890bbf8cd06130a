//! Classifier benchmarks.
//!
//! * `classifier_miss_path` — what a packet that missed the EMC costs: a
//!   tuple-space-search lookup in 1,000 rules over 16 distinct masks, for
//!   uniformly random packets (almost all table misses: every subtable is
//!   probed) and for packets built to hit a rule (early exit possible). The
//!   linear oracle runs on the same keys in the same run, for the ratio.
//! * `classifier_emc_hit` — hash + EMC probe for 1,024 cached flows, with the
//!   classifier lookup of the same keys as its peer.
//! * `classifier_install` — single `add`s into a 10,000-rule table while
//!   another thread keeps looking packets up (one snapshot per 32-packet
//!   batch, as a PMD does); also with no reader, with all rules in one mask
//!   (worst case for copy-on-write), `add_batch` of 1,000, and strict deletes.
//!   Criterion reports time per add; the reader's lookup rate is printed.
//!
//! Throughput is reported in elements (lookups or rule changes) per second.
//! Run short on the shared machine:
//! `cargo bench -p xswitch-benches --bench classifier -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::actions::Action;
use dataplane::cache::ExactMatchCache;
use dataplane::classifier::{FlowTable, LinearClassifier, RuleSpec};
use dataplane::flow_key::{field, field::Pos, FlowKey, FlowMatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 16 mask shapes of the kind OpenFlow tables have: (field, mask) lists.
fn mask_palette() -> Vec<Vec<(Pos, u64)>> {
    let ip24 = 0xffff_ff00;
    let ip16 = 0xffff_0000;
    let ip32 = 0xffff_ffff;
    let exact16 = 0xffff;
    let mac = 0xffff_ffff_ffff;
    let dl = (field::DL_TYPE, exact16);
    let proto = (field::NW_PROTO, 0xff);
    vec![
        vec![(field::IN_PORT, 0xffff_ffff), (field::DL_DST, mac)],
        vec![dl, (field::NW_DST, ip24)],
        vec![dl, (field::NW_DST, ip16)],
        vec![dl, (field::NW_DST, ip32)],
        vec![dl, (field::NW_SRC, ip24), (field::NW_DST, ip24)],
        vec![dl, proto, (field::TP_DST, exact16)],
        vec![dl, proto, (field::NW_DST, ip24), (field::TP_DST, exact16)],
        vec![(field::DL_SRC, mac)],
        vec![(field::VLAN_TCI, 0x1fff), (field::DL_DST, 0xffff_ffff_ffff)],
        vec![dl, (field::NW_SRC, 0xffff_f000)],
        vec![dl, proto, (field::TP_SRC, exact16)],
        vec![
            (field::IN_PORT, 0xffff_ffff),
            dl,
            (field::NW_DST, 0xffff_fff0),
        ],
        vec![dl, (field::IPV6_SRC_HI, 0xffff_ffff_ffff_0000)],
        vec![dl, (field::NW_DST, 0x0000_ffff)],
        vec![dl, proto, (field::TP_DST, 0xfff0)],
        vec![
            (field::IN_PORT, 0xffff_ffff),
            (field::TP_SRC, 0xff00),
            (field::TP_DST, 0xff00),
        ],
    ]
}

/// A random packet key with realistic field domains.
fn random_key(rng: &mut StdRng) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(field::IN_PORT, rng.gen_range(1..=64));
    k.set(
        field::DL_TYPE,
        [0x0800u64, 0x86dd, 0x0806][rng.gen_range(0..3)],
    );
    if rng.gen_bool(0.2) {
        k.set(field::VLAN_TCI, 0x1000 | rng.gen_range(0..4096));
    }
    k.set(field::DL_SRC, rng.gen::<u64>() & 0xffff_ffff_ffff);
    k.set(field::DL_DST, rng.gen::<u64>() & 0xffff_ffff_ffff);
    k.set(field::NW_PROTO, [6u64, 17, 1][rng.gen_range(0..3)]);
    k.set(field::NW_SRC, rng.gen::<u32>().into());
    k.set(field::NW_DST, rng.gen::<u32>().into());
    k.set(field::TP_SRC, rng.gen::<u16>().into());
    k.set(field::TP_DST, rng.gen::<u16>().into());
    k.set(field::IPV6_SRC_HI, rng.gen());
    k
}

/// Rule number `i` with mask shape `shape`, values drawn from `rng`.
fn make_spec(rng: &mut StdRng, shape: &[(Pos, u64)], i: u32) -> RuleSpec {
    let mut m = FlowMatch::ANY;
    let sample = random_key(rng);
    for &(pos, mask) in shape {
        m.set_masked(pos, sample.get(pos), mask);
    }
    RuleSpec {
        priority: rng.gen_range(0..1000),
        ..RuleSpec::new(m, vec![Action::Output(i % 64 + 1)])
    }
}

/// `n` distinct rules (no two with the same match and priority, so none
/// replaces another) spread round-robin over the 16 masks.
fn make_specs(rng: &mut StdRng, n: u32) -> Vec<RuleSpec> {
    let palette = mask_palette();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n as usize);
    let mut i = 0u32;
    while out.len() < n as usize {
        let s = make_spec(rng, &palette[i as usize % palette.len()], i);
        if seen.insert((s.matcher, s.priority)) {
            out.push(s);
            i += 1;
        }
    }
    out
}

/// Keys that satisfy a random rule of `specs` (other fields random).
fn hitting_keys(rng: &mut StdRng, specs: &[RuleSpec], n: usize) -> Vec<FlowKey> {
    (0..n)
        .map(|_| {
            let m = &specs[rng.gen_range(0..specs.len())].matcher;
            let mut k = random_key(rng);
            for w in 0..k.words.len() {
                k.words[w] = (k.words[w] & !m.mask.words[w]) | m.key.words[w];
            }
            k
        })
        .collect()
}

fn bench_miss_path(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let specs = make_specs(&mut rng, 1000);
    let table = FlowTable::new();
    table.add_batch(specs.iter().cloned());
    let mut oracle = LinearClassifier::new();
    for s in &specs {
        oracle.insert(s.clone());
    }
    let snap = table.snapshot();
    assert_eq!(snap.n_subtables(), 16);

    let random: Vec<FlowKey> = (0..1024).map(|_| random_key(&mut rng)).collect();
    let hitting = hitting_keys(&mut rng, &specs, 1024);
    let hit_share = |keys: &[FlowKey]| keys.iter().filter(|k| snap.lookup(k).is_some()).count();
    eprintln!(
        "miss_path: {} rules, {} subtables; random keys matching a rule: {}/1024, hitting keys: {}/1024",
        snap.len(),
        snap.n_subtables(),
        hit_share(&random),
        hit_share(&hitting)
    );
    for (name, keys) in [("random", &random), ("hitting", &hitting)] {
        for k in keys.iter() {
            assert_eq!(
                snap.lookup(k).map(|r| r.spec()),
                oracle.lookup(k).map(|r| r.spec())
            );
        }
        let mut g = c.benchmark_group(format!("classifier_miss_path/{name}"));
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function("tss", |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for k in keys.iter() {
                    hits += black_box(snap.lookup(black_box(k))).is_some() as usize;
                }
                hits
            })
        });
        g.bench_function("linear_oracle", |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for k in keys.iter() {
                    hits += black_box(oracle.lookup(black_box(k))).is_some() as usize;
                }
                hits
            })
        });
        g.finish();
    }
}

fn bench_emc_hit(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let specs = make_specs(&mut rng, 1000);
    let table = FlowTable::new();
    table.add_batch(specs.iter().cloned());
    let snap = table.snapshot();
    let gen = snap.generation();
    let keys = hitting_keys(&mut rng, &specs, 1024);
    let mut emc = ExactMatchCache::new(8192);
    for k in &keys {
        emc.insert(k, k.hash64(), gen, snap.lookup(k).expect("hitting key"));
    }
    let before = emc.stats();
    let cached = keys
        .iter()
        .filter(|k| emc.lookup(k, k.hash64(), gen).is_some())
        .count();
    eprintln!(
        "emc_hit: {cached}/1024 flows resident in an 8192-entry EMC ({} evictions while filling)",
        before.evictions
    );

    let mut g = c.benchmark_group("classifier_emc_hit");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("hash+emc", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for k in keys.iter() {
                let k = black_box(k);
                hits += emc.lookup(k, k.hash64(), gen).is_some() as usize;
            }
            hits
        })
    });
    g.bench_function("tss_same_keys", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for k in keys.iter() {
                hits += snap.lookup(black_box(k)).is_some() as usize;
            }
            hits
        })
    });
    g.finish();
}

/// A lookup thread that runs until dropped, counting lookups.
struct Reader {
    stop: Arc<AtomicBool>,
    lookups: Arc<AtomicU64>,
    started: Instant,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn spawn(table: &Arc<FlowTable>, keys: Vec<FlowKey>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let lookups = Arc::new(AtomicU64::new(0));
        let handle = {
            let (table, stop, lookups) =
                (Arc::clone(table), Arc::clone(&stop), Arc::clone(&lookups));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for batch in keys.chunks(32) {
                        let snap = table.snapshot();
                        for k in batch {
                            black_box(snap.lookup(k));
                        }
                    }
                    lookups.fetch_add(keys.len() as u64, Ordering::Relaxed);
                }
            })
        };
        Reader {
            stop,
            lookups,
            started: Instant::now(),
            handle: Some(handle),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let n = self.lookups.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "  concurrent reader: {:.2} M lookups/s over {:.1} s",
            n as f64 / secs / 1e6,
            secs
        );
    }
}

/// Times `iters` single adds of fresh rules into `table`, in chunks of at
/// most 1,000 that are deleted again (untimed), so the table stays within
/// 1,000 rules of its starting size.
fn timed_adds(table: &FlowTable, fresh: &mut impl FnMut() -> RuleSpec, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(1000);
        let specs: Vec<RuleSpec> = (0..n).map(|_| fresh()).collect();
        let t = Instant::now();
        for s in &specs {
            black_box(table.add(s.clone()));
        }
        total += t.elapsed();
        for s in &specs {
            table.delete(&s.matcher, Some(s.priority));
        }
        left -= n;
    }
    total
}

fn bench_install(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let base = make_specs(&mut rng, 10_000);
    let keys = hitting_keys(&mut rng, &base, 4096);
    let palette = mask_palette();
    // Fresh rules: priority 1001+ never collides with the base rules.
    let mut counter = 0u32;
    let mut fresh_rng = StdRng::seed_from_u64(4);
    let mut fresh = move || {
        counter = counter.wrapping_add(1);
        let mut s = make_spec(
            &mut fresh_rng,
            &palette[counter as usize % palette.len()],
            counter,
        );
        s.priority = 1001 + (counter % 30000) as u16;
        s
    };

    let mut g = c.benchmark_group("classifier_install");
    g.throughput(Throughput::Elements(1));
    for reader in [true, false] {
        let table = Arc::new(FlowTable::new());
        table.add_batch(base.iter().cloned());
        assert_eq!(table.len(), 10_000);
        let _r = reader.then(|| Reader::spawn(&table, keys.clone()));
        let id = BenchmarkId::new(
            "add_into_10k_16_masks",
            if reader { "reader" } else { "no_reader" },
        );
        g.bench_function(id, |b| {
            b.iter_custom(|iters| timed_adds(&table, &mut fresh, iters))
        });
        assert_eq!(table.len(), 10_000);
    }

    // Worst case for copy-on-write: every rule in one subtable.
    {
        let mut one_mask = FlowMatch::ANY;
        one_mask.set_masked(field::NW_DST, 0, 0xffff_ffff);
        let table = Arc::new(FlowTable::new());
        table.add_batch((0..10_000u32).map(|i| {
            let mut m = one_mask;
            m.set_masked(field::NW_DST, i.into(), 0xffff_ffff);
            RuleSpec::new(m, vec![Action::Output(1)])
        }));
        let exact_keys: Vec<FlowKey> = (0..4096u32)
            .map(|i| {
                let mut k = FlowKey::ZERO;
                k.set_nw_dst_u32(i * 2);
                k
            })
            .collect();
        let _r = Reader::spawn(&table, exact_keys);
        let mut next = 1_000_000u32;
        let mut fresh_exact = move || {
            next = next.wrapping_add(1);
            let mut m = one_mask;
            m.set_masked(field::NW_DST, next.into(), 0xffff_ffff);
            RuleSpec::new(m, vec![Action::Output(2)])
        };
        g.bench_function(BenchmarkId::new("add_into_10k_1_mask", "reader"), |b| {
            b.iter_custom(|iters| timed_adds(&table, &mut fresh_exact, iters))
        });
    }

    // Strict deletes (the re-adds are untimed) and batched adds.
    {
        let table = Arc::new(FlowTable::new());
        table.add_batch(base.iter().cloned());
        let _r = Reader::spawn(&table, keys.clone());
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("strict_delete_from_10k", "reader"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = &base[i % base.len()];
                    i += 1;
                    let t = Instant::now();
                    black_box(table.delete(&s.matcher, Some(s.priority)));
                    total += t.elapsed();
                    table.add(s.clone());
                }
                total
            })
        });
    }
    {
        let table = Arc::new(FlowTable::new());
        table.add_batch(base.iter().cloned());
        let _r = Reader::spawn(&table, keys.clone());
        g.throughput(Throughput::Elements(1000));
        g.bench_function(BenchmarkId::new("add_batch_1000_into_10k", "reader"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let specs: Vec<RuleSpec> = (0..1000).map(|_| fresh()).collect();
                    let t = Instant::now();
                    black_box(table.add_batch(specs.iter().cloned()));
                    total += t.elapsed();
                    for s in &specs {
                        table.delete(&s.matcher, Some(s.priority));
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_miss_path, bench_emc_hit, bench_install);
criterion_main!(benches);
