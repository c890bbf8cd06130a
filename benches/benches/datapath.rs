//! Datapath benchmarks: the PMD packet walk on one core, over in-memory
//! ports, 64-byte IPv4/UDP frames in 32-packet batches. Criterion reports
//! packets per second.
//!
//! Two ways to feed the PMD:
//! * *direct* (`emc_hit`, `classifier_miss`, `bridge_normal`): the bench
//!   copies 32 frames into buffers from the PMD's pool — what the NIC's DMA
//!   does — and calls `process_batch`; outputs go into port 2's tx ring and
//!   a sink drains it and completes the buffers. This is the datapath's own
//!   cost: parse, lookup, actions, tx batching, the tx ring.
//! * *loop* (`emc_hit_loop`): a generator copies the frames into port 1's rx
//!   ring (from its fill ring), the PMD `poll`s (recv, walk, send), a sink
//!   drains port 2 — every ring of both ports, all on this one core.
//!
//! Scenarios:
//! * `emc_hit` — the cache-hit path: 32 flows, all in the exact-match cache,
//!   rule `output:2`, in a table of 1,000 rules over 10 masks.
//! * `classifier_miss` — the same table, 4,096 rotating flows and a 2-entry
//!   EMC, so every packet goes through the tuple-space search (the 1,000
//!   rules sit above the matching catch-all, so every subtable is probed).
//! * `bridge_normal` — no rules: `normal` with the destination learned
//!   (MAC learn + lookup per packet, one output).
//! * `rings_only` — the loop harness with no datapath: generator, recv,
//!   send, sink.
//! * `feed_only` — the direct feed with no datapath: copying 32 frames into
//!   pool buffers and freeing them (subtract it from the direct scenarios
//!   for the datapath's cost alone).
//!
//! Criterion's figures are wall-clock time, which on a machine shared with
//! other jobs also counts the time the thread waited for a CPU. So after the
//! criterion runs, every scenario runs again for 2 s of *on-CPU* time
//! (Linux `schedstat`) and its cost per packet is printed (`on-CPU ...`).
//!
//! Run short on the shared machine:
//! `cargo bench -p xswitch-benches --bench datapath -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::actions::Action;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{Datapath, Pmd, PmdConfig};
use dataplane::flow_key::{field, field::Pos, FlowKey, FlowMatch, MacAddr};
use dataplane::packet::{PacketBatch, PacketPool, BATCH_SIZE};
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use dataplane::vport::Vport;
use dataplane::wire::builder::build_frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`;
/// the kernel updates it at scheduler ticks, so only long runs are precise).
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `batch` (one 32-packet round) for at least 2 s of on-CPU time and
/// prints the on-CPU cost per packet: unlike criterion's wall-clock figures,
/// this does not count time the thread spent waiting for a CPU on a shared
/// machine.
fn report_on_cpu(name: &str, mut batch: impl FnMut() -> usize) {
    let Some(t0) = on_cpu_ns() else {
        println!("{name}: on-CPU time unavailable (no /proc/thread-self/schedstat)");
        return;
    };
    let mut rounds = 0u64;
    let mut t = t0;
    while t - t0 < 2_000_000_000 {
        for _ in 0..10_000 {
            black_box(batch());
        }
        rounds += 10_000;
        t = on_cpu_ns().unwrap_or(t);
    }
    let ns = (t - t0) as f64 / (rounds * BATCH_SIZE as u64) as f64;
    println!(
        "on-CPU {name:<16} {ns:6.1} ns/packet = {:5.2} Mpps",
        1e3 / ns
    );
}

const SRC: MacAddr = [0x02, 0, 0, 0, 0, 1];
const DST: MacAddr = [0x02, 0, 0, 0, 0, 2];

/// A 64-byte IPv4/UDP frame of flow `n`.
fn frame(n: u32) -> Vec<u8> {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(SRC);
    k.set_dl_dst(DST);
    k.set_dl_type(0x0800);
    k.set_nw_src(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8));
    k.set_nw_dst(Ipv4Addr::new(10, 1, 0, 1));
    k.set_nw_proto(17);
    k.set_nw_ttl(64);
    k.set_tp_src(1024 + (n & 0x7fff) as u16);
    k.set_tp_dst(4789);
    let f = build_frame(&k, 22);
    assert_eq!(f.len(), 64);
    f
}

/// 1,000 rules over 10 mask shapes, none of which matches the benchmark
/// traffic (their nw_dst is outside 10.1.0.0/16 or their ports differ),
/// above a catch-all `in_port=1 actions=output:2`.
fn rule_table(dp: &Datapath) {
    let ip = |a: u32| u64::from(a);
    let shapes: [&[(Pos, u64)]; 10] = [
        &[(field::DL_TYPE, 0xffff), (field::NW_DST, 0xffff_ffff)],
        &[(field::DL_TYPE, 0xffff), (field::NW_DST, 0xffff_ff00)],
        &[(field::DL_TYPE, 0xffff), (field::NW_DST, 0xffff_0000)],
        &[
            (field::DL_TYPE, 0xffff),
            (field::NW_SRC, 0xffff_ff00),
            (field::NW_DST, 0xffff_ff00),
        ],
        &[
            (field::DL_TYPE, 0xffff),
            (field::NW_PROTO, 0xff),
            (field::TP_DST, 0xffff),
        ],
        &[
            (field::DL_TYPE, 0xffff),
            (field::NW_PROTO, 0xff),
            (field::TP_SRC, 0xffff),
        ],
        &[(field::DL_DST, 0xffff_ffff_ffff)],
        &[
            (field::IN_PORT, 0xffff_ffff),
            (field::DL_SRC, 0xffff_ffff_ffff),
        ],
        &[(field::VLAN_TCI, 0x1fff)],
        &[
            (field::DL_TYPE, 0xffff),
            (field::NW_DST, 0xff00_0000),
            (field::NW_TOS, 0xfc),
        ],
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let mut specs = Vec::with_capacity(1001);
    for i in 0..1000usize {
        let mut m = FlowMatch::ANY;
        for &(pos, mask) in shapes[i % shapes.len()] {
            let v = match pos {
                p if p == field::DL_TYPE => 0x0800,
                // 172.16.0.0/12: never the traffic's 10.x addresses.
                p if p == field::NW_DST || p == field::NW_SRC => {
                    ip(0xac10_0000 | rng.gen_range(0..0x000f_ffff))
                }
                p if p == field::NW_PROTO => 6,
                p if p == field::TP_DST || p == field::TP_SRC => rng.gen_range(1..1024),
                p if p == field::VLAN_TCI => 0x1000 | rng.gen_range(1..4095),
                p if p == field::NW_TOS => 0x20,
                _ => rng.gen::<u64>() & 0xfeff_ffff_ffff, // unicast MACs, ports
            };
            m.set_masked(pos, v, mask);
        }
        let mut s = RuleSpec::new(m, vec![Action::Output(2)]);
        s.priority = 1000 + i as u16;
        specs.push(s);
    }
    let mut any = FlowMatch::ANY;
    any.set_masked(field::IN_PORT, 1, 0xffff_ffff);
    let mut s = RuleSpec::new(any, vec![Action::Output(2)]);
    s.priority = 1;
    specs.push(s);
    dp.flow_table().add_batch(specs);
    assert_eq!(dp.flow_table().len(), 1001);
}

struct Rig {
    pmd: Pmd,
    rx: Arc<MemoryPort>,
    tx: Arc<MemoryPort>,
    frames: Vec<Vec<u8>>,
    next: usize,
    batch: PacketBatch,
}

impl Rig {
    fn new(rules: bool, emc_entries: usize, flows: u32) -> Self {
        let dp = Arc::new(Datapath::new());
        let cfg = |n: &str| MemoryPortConfig::new(n);
        let rx = Arc::new(MemoryPort::new(cfg("p1")));
        let tx = Arc::new(MemoryPort::new(cfg("p2")));
        dp.add_port(1, rx.clone()).unwrap();
        dp.add_port(2, tx.clone()).unwrap();
        if rules {
            rule_table(&dp);
        }
        let pmd = Pmd::new(
            dp,
            PmdConfig {
                emc_entries,
                ..PmdConfig::default()
            },
        );
        let mut rig = Rig {
            pmd,
            rx,
            tx,
            frames: (0..flows).map(frame).collect(),
            next: 0,
            batch: PacketBatch::new(),
        };
        // Warm up: fill rings and pool, learn the stations, fill the EMC.
        let back = {
            let mut k = FlowKey::ZERO;
            k.set_dl_src(DST);
            k.set_dl_dst(SRC);
            k.set_dl_type(0x0800);
            build_frame(&k, 46)
        };
        if !rules {
            rig.tx.inject_frame(0, &back);
            rig.pmd.run_until_idle();
            rig.rx.drain_tx_frames();
        }
        for _ in 0..64 {
            rig.looped();
            rig.direct();
        }
        rig
    }

    /// The next `BATCH_SIZE` frames, round robin.
    #[inline]
    fn next_frames(&mut self) -> impl Iterator<Item = &[u8]> {
        let n = self.frames.len();
        let start = self.next;
        self.next = (start + BATCH_SIZE) % n;
        let frames = &self.frames;
        (start..start + BATCH_SIZE).map(move |i| &frames[i % n][..])
    }

    /// Direct feed: frames copied into pool buffers, `process_batch`, sink.
    #[inline]
    fn direct(&mut self) -> usize {
        let Rig {
            pmd,
            tx,
            frames,
            next,
            batch,
            ..
        } = self;
        let n = frames.len();
        for i in *next..*next + BATCH_SIZE {
            let mut p = pmd.pool_mut().alloc().expect("pool sized for the bench");
            p.set_data(&frames[i % n]);
            let _ = batch.push(p);
        }
        *next = (*next + BATCH_SIZE) % n;
        pmd.process_batch(1, batch);
        tx.drain_tx(0, |f| {
            black_box(f.len());
        })
    }

    /// Loop feed: generator → rx ring → `poll` → tx ring → sink.
    #[inline]
    fn looped(&mut self) -> usize {
        let rx = Arc::clone(&self.rx);
        rx.inject_frames(0, self.next_frames());
        self.pmd.poll();
        self.tx.drain_tx(0, |f| {
            black_box(f.len());
        })
    }
}

fn datapath(c: &mut Criterion) {
    let mut g = c.benchmark_group("datapath");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));

    let mut hit = Rig::new(true, 8192, 32);
    g.bench_function("emc_hit", |b| b.iter(|| hit.direct()));
    g.bench_function("emc_hit_loop", |b| b.iter(|| hit.looped()));
    let s = hit.pmd.stats();
    assert!(s.emc_hits > 0 && s.classifier_lookups <= 32, "{s:?}");
    assert!(s.balanced() && s.drops.total() == 0, "{s:?}");

    let mut miss = Rig::new(true, 2, 4096);
    g.bench_function("classifier_miss", |b| b.iter(|| miss.direct()));
    let s = miss.pmd.stats();
    assert!(s.classifier_lookups > s.emc_hits * 10, "{s:?}");
    assert!(s.drops.total() == 0, "{s:?}");

    // The direct feed alone (the NIC-DMA stand-in of the direct scenarios):
    // copy 32 frames into pool buffers, hand them back.
    let mut feed = Rig::new(false, 8192, 32);
    let mut feed_only = move || {
        let Rig {
            pmd, frames, batch, ..
        } = &mut feed;
        for f in frames.iter() {
            let mut p = pmd.pool_mut().alloc().expect("pool sized for the bench");
            p.set_data(f);
            let _ = batch.push(p);
        }
        let n = batch.len();
        for p in batch.drain() {
            pmd.pool_mut().free(black_box(p));
        }
        n
    };
    g.bench_function("feed_only", |b| b.iter(&mut feed_only));

    let mut bridge = Rig::new(false, 8192, 32);
    g.bench_function("bridge_normal", |b| b.iter(|| bridge.direct()));
    let s = bridge.pmd.stats();
    assert!(s.copies == 0 && s.drops.total() == 0, "{s:?}");

    // The harness alone: the same rings and buffer moves, no datapath.
    let rx = MemoryPort::with_name("r");
    let tx = MemoryPort::with_name("t");
    let mut pool = PacketPool::new(4096);
    let mut batch = PacketBatch::new();
    let f = frame(0);
    let mut rings = || {
        rx.inject_frames(0, core::iter::repeat_n(&f[..], BATCH_SIZE));
        rx.recv(0, &mut pool, &mut batch);
        let _ = tx.send(0, &mut batch, &mut pool);
        tx.drain_tx(0, |f| {
            black_box(f.len());
        })
    };
    g.bench_function("rings_only", |b| b.iter(&mut rings));
    g.finish();

    // `cargo test --benches` runs each benchmark once without `--bench`:
    // skip the long on-CPU runs there.
    if std::env::args().any(|a| a == "--bench") {
        report_on_cpu("emc_hit", || hit.direct());
        report_on_cpu("emc_hit_loop", || hit.looped());
        report_on_cpu("classifier_miss", || miss.direct());
        report_on_cpu("bridge_normal", || bridge.direct());
        report_on_cpu("rings_only", rings);
        report_on_cpu("feed_only", feed_only);
    }
}

criterion_group!(benches, datapath);
criterion_main!(benches);
