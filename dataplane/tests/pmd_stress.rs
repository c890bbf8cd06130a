//! PMD threads under port churn (issue 3's acceptance stress test), the
//! rx-queue assignment, and the wake-up latency the idle backoff adds.
//!
//! `four_pmds_forward_while_ports_churn_and_flows_change`: 4 PMD threads
//! forward at full speed over in-memory ports fed by a generator thread and
//! drained by a sink thread, while a control thread performs 10,000 port
//! operations (add/del, admin down/up, carrier off/on, tx_queues → 0 and
//! back) and a flow thread installs and removes rules. It checks: no panic,
//! no watchdog stall (100 ms threshold), exact packet accounting (PMD
//! totals, per port, live + retired), exact buffer accounting, and every
//! deleted port torn down exactly once after its grace period.
//!
//! Built with `--features legacy-semantics` the output path loses its
//! checks and picks tx queues with the pre-fix loop, which never ends on a
//! port with 0 tx queues: the same test must then fail *because the
//! watchdog reported the stuck PMD* (`should_panic`).
//!
//! `cargo test -p xswitch-dataplane --release --test pmd_stress`
//! `cargo test -p xswitch-dataplane --release --features legacy-semantics --test pmd_stress`

mod common;

use common::{percentile, udp_frame};
use dataplane::actions::Action;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{
    Assignment, Datapath, PmdStats, PmdThreads, PmdThreadsConfig, PortRef, PortStats,
};
use dataplane::flow_key::{field, FlowMatch, PortNo};
use dataplane::packet::Packet;
use dataplane::stats::DropReason;
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Port slots 1..=SLOTS; slots above STABLE are deleted and re-added.
const SLOTS: PortNo = 8;
const STABLE: PortNo = 4;
const CONTROL_OPS: u64 = 10_000;

fn in_port(p: PortNo) -> FlowMatch {
    let mut m = FlowMatch::ANY;
    m.set_masked(field::IN_PORT, u64::from(p), u64::from(u32::MAX));
    m
}

fn rule(p: PortNo, priority: u16, actions: Vec<Action>) -> RuleSpec {
    let mut s = RuleSpec::new(in_port(p), actions);
    s.priority = priority;
    s
}

fn port(name: String) -> Arc<MemoryPort> {
    Arc::new(MemoryPort::new(
        MemoryPortConfig::new(name).queues(2, 2).ring_size(256),
    ))
}

/// The ports generator and sink threads see (test side, behind a mutex
/// only the test's threads take), and every port ever created.
#[derive(Default)]
struct Wires {
    live: Vec<Option<Arc<MemoryPort>>>,
    ever: Vec<Arc<MemoryPort>>,
}

impl Wires {
    fn snapshot(w: &Mutex<Wires>) -> Vec<Arc<MemoryPort>> {
        w.lock().unwrap().live.iter().flatten().cloned().collect()
    }
}

fn sum_pmds(pmds: &[PmdStats]) -> PmdStats {
    let mut t = PmdStats::default();
    for s in pmds {
        t.rx_packets += s.rx_packets;
        t.copies += s.copies;
        t.tx_packets += s.tx_packets;
        t.tx_gone += s.tx_gone;
        t.tx_retries += s.tx_retries;
        t.batches += s.batches;
        for (r, n) in s.drops.nonzero() {
            t.drops.add(r, n);
        }
    }
    t
}

#[test]
#[cfg_attr(
    feature = "legacy-semantics",
    should_panic(expected = "watchdog reported a stalled PMD")
)]
fn four_pmds_forward_while_ports_churn_and_flows_change() {
    let t0 = Instant::now();
    let dp = Arc::new(Datapath::new());
    let wires = Arc::new(Mutex::new(Wires {
        live: vec![None; SLOTS as usize + 1],
        ever: Vec::new(),
    }));
    let mut generation = [0u32; SLOTS as usize + 1];
    for p in 1..=SLOTS {
        let v = port(format!("s{p}g0"));
        dp.add_port(p, v.clone()).unwrap();
        let mut w = wires.lock().unwrap();
        w.live[p as usize] = Some(v.clone());
        w.ever.push(v);
    }
    // Base rules: in_port=p → the next slot.
    for p in 1..=SLOTS {
        dp.flow_table()
            .add(rule(p, 10, vec![Action::Output(p % SLOTS + 1)]));
    }
    let threads = PmdThreads::spawn(dp.clone(), 4, Some(vec![0, 1]), PmdThreadsConfig::default())
        .expect("spawn PMD threads");
    let stop_traffic = Arc::new(AtomicBool::new(false));
    let stop_flows = Arc::new(AtomicBool::new(false));

    // Generator: bursts into every live port's rx queues.
    let gen_fresh = Arc::new(AtomicU64::new(0));
    let gen = {
        let (wires, stop, fresh) = (wires.clone(), stop_traffic.clone(), gen_fresh.clone());
        std::thread::spawn(move || {
            let frames: Vec<Vec<u8>> = (0..64).map(|i| udp_frame(1000 + i)).collect();
            let (mut injected, mut i) = (0u64, 0usize);
            // A buffer a full ring refused, kept for the next attempt.
            let mut spare: Option<Packet> = None;
            while !stop.load(Ordering::Relaxed) {
                for p in Wires::snapshot(&wires) {
                    for q in 0..2 {
                        for _ in 0..16 {
                            let mut pkt =
                                spare.take().or_else(|| p.take_fill(q)).unwrap_or_else(|| {
                                    fresh.fetch_add(1, Ordering::Relaxed);
                                    Packet::new()
                                });
                            assert!(pkt.set_data(&frames[i % frames.len()]));
                            i += 1;
                            match p.inject(q, pkt) {
                                Ok(()) => injected += 1,
                                Err(pkt) => {
                                    spare = Some(pkt);
                                    break;
                                }
                            }
                        }
                    }
                }
                std::thread::yield_now();
            }
            // The kept buffer is freed here: counted as "refused".
            let refused = u64::from(spare.is_some());
            (injected, refused)
        })
    };
    // Sink: drains every live port's tx queues, returning the buffers.
    let sink = {
        let (wires, stop) = (wires.clone(), stop_traffic.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for p in Wires::snapshot(&wires) {
                    for q in 0..2 {
                        n += p.drain_tx(q, |_| ()) as u64;
                    }
                }
                std::thread::yield_now();
            }
            n
        })
    };
    // Flow thread: extra rules over the base ones, installed and removed.
    let flows = {
        let (dp, stop) = (dp.clone(), stop_flows.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(7);
            let (mut adds, mut dels) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let p = rng.gen_range(1..=SLOTS);
                if rng.gen_bool(0.5) {
                    let actions = match rng.gen_range(0..3) {
                        0 => vec![Action::Flood],
                        1 => vec![
                            Action::Output(rng.gen_range(1..=SLOTS)),
                            Action::Output(rng.gen_range(1..=SLOTS)),
                        ],
                        _ => vec![Action::Output(rng.gen_range(1..=SLOTS + 2))],
                    };
                    dp.flow_table().add(rule(p, 20, actions));
                    adds += 1;
                } else {
                    dels += dp.flow_table().delete(&in_port(p), Some(20)) as u64;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            (adds, dels)
        })
    };

    // Control thread (this one): 10,000 port operations.
    let mut rng = StdRng::seed_from_u64(42);
    let mut ops = [0u64; 5];
    let mut deleted = 0u64;
    for op in 0..CONTROL_OPS {
        let p = rng.gen_range(1..=SLOTS);
        match rng.gen_range(0..5) {
            0 if p > STABLE => {
                let present = wires.lock().unwrap().live[p as usize].is_some();
                if present {
                    dp.del_port(p).unwrap();
                    wires.lock().unwrap().live[p as usize] = None;
                    deleted += 1;
                } else {
                    generation[p as usize] += 1;
                    let v = port(format!("s{p}g{}", generation[p as usize]));
                    dp.add_port(p, v.clone()).unwrap();
                    let mut w = wires.lock().unwrap();
                    w.live[p as usize] = Some(v.clone());
                    w.ever.push(v);
                }
                ops[0] += 1;
            }
            0 | 1 => {
                let _ = dp.set_admin_up(p, false);
                std::thread::sleep(Duration::from_micros(50));
                let _ = dp.set_admin_up(p, true);
                ops[1] += 1;
            }
            2 => {
                let _ = dp.set_carrier(p, false);
                std::thread::sleep(Duration::from_micros(50));
                let _ = dp.set_carrier(p, true);
                ops[2] += 1;
            }
            3 => {
                let _ = dp.set_tx_queues(p, 0);
                std::thread::sleep(Duration::from_micros(50));
                let _ = dp.set_tx_queues(p, 2);
                ops[3] += 1;
            }
            _ => {
                let _ = dp.set_running(p, false);
                std::thread::sleep(Duration::from_micros(50));
                let _ = dp.set_running(p, true);
                ops[4] += 1;
            }
        }
        if op % 8 == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let control_time = t0.elapsed();
    stop_flows.store(true, Ordering::Relaxed);
    let (flow_adds, flow_dels) = flows.join().unwrap();
    // Let traffic run a little longer, then stop feeding and let the PMDs
    // go idle.
    std::thread::sleep(Duration::from_millis(200));
    stop_traffic.store(true, Ordering::Relaxed);
    let (injected, refused) = gen.join().unwrap();
    let sunk = sink.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let wd = dp.watchdog_stats();
    let reports = dp.watchdog().reports();
    #[cfg(feature = "legacy-semantics")]
    dataplane::datapath::LEGACY_LOOP_ESCAPE.store(true, Ordering::Relaxed);
    let pmds = threads.stop();
    println!(
        "watchdog: stalls={} max_stall_ms={} reports={reports:?}",
        wd.stalls, wd.max_stall_ms
    );
    assert_eq!(wd.stalls, 0, "watchdog reported a stalled PMD: {reports:?}");

    // Every deleted port is torn down, exactly once, after its grace period.
    dp.reclaim();
    let pt = dp.port_table().stats();
    let retired = dp.retired();
    assert_eq!(pt.deleted, deleted);
    assert_eq!(pt.destroyed, deleted, "{pt:?}");
    assert_eq!(retired.ports, deleted);
    assert_eq!(pt.protocol_violations, 0);

    // Packets: per PMD, in total, and against the ports' own counters.
    let stats: Vec<PmdStats> = pmds.iter().map(|p| p.stats().clone()).collect();
    for s in &stats {
        assert!(s.balanced(), "PMD accounting: {s:?}");
    }
    let total = sum_pmds(&stats);
    let mut ports = retired.stats.clone();
    for e in dp.port_list() {
        assert!(e.counters.balanced(), "port {}: {:?}", e.ofport, e.counters);
        ports.add(&e.counters);
    }
    assert!(ports.balanced(), "{ports:?}");
    assert_eq!(ports.rx_packets, total.rx_packets);
    assert_eq!(ports.rx_copies, total.copies);
    assert_eq!(ports.tx_packets, total.tx_packets);
    assert_eq!(ports.rx_delivered, total.tx_packets);
    assert_eq!(ports.drops, total.drops);
    let ever = wires.lock().unwrap().ever.clone();
    let dev_received: u64 = ever.iter().map(|p| p.counters().received).sum();
    let dev_sent: u64 = ever.iter().map(|p| p.counters().sent).sum();
    assert_eq!(dev_received, total.rx_packets);
    assert_eq!(dev_sent, total.tx_packets);

    // Buffers: every buffer created (PMD pools, generator) is in a pool, in
    // the stash deleted ports returned theirs to, or was released and
    // counted (full rings, pools already full, the generator's refused
    // injection) once the live ports' rings are emptied.
    for p in &ever {
        p.release_all();
    }
    let created: u64 = pmds.iter().map(|p| p.pool().created() as u64).sum::<u64>()
        + gen_fresh.load(Ordering::Relaxed);
    let home: u64 = pmds.iter().map(|p| p.pool().available() as u64).sum();
    let released: u64 = ever.iter().map(|p| p.counters().released).sum();
    let pmd_released: u64 = stats.iter().map(|s| s.buffers_released).sum();
    let spare = dp.spare_buffers() as u64;
    let returned: u64 = ever.iter().map(|p| p.counters().returned).sum();
    assert_eq!(retired.buffers_returned, returned);
    assert_eq!(
        created,
        home + spare + released + refused + pmd_released,
        "buffers leaked"
    );
    // Pools never grow: nothing on the packet path allocates.
    for p in &pmds {
        assert!(p.pool().available() <= p.pool().created());
    }

    let reasons: Vec<(DropReason, u64)> = total.drops.nonzero().collect();
    println!(
        "stress: {} control ops (port add/del {}, admin {}, carrier {}, tx_queues {}, running {}) \
         in {:.2?}; flows +{flow_adds} -{flow_dels}; ports deleted {deleted}, destroyed {}; \
         injected {injected}, rx {}, copies {}, tx {}, sunk {sunk}, batches {}, tx retries {}, \
         drops {}: {reasons:?}; buffers created {created}, in pools {home}, returned by deleted ports {returned} \
         (still spare {spare}), released by ports {released} and PMDs {pmd_released}; \
         total {:.2?}",
        CONTROL_OPS,
        ops[0],
        ops[1],
        ops[2],
        ops[3],
        ops[4],
        control_time,
        pt.destroyed,
        total.rx_packets,
        total.copies,
        total.tx_packets,
        total.batches,
        total.tx_retries,
        total.drops.total(),
        t0.elapsed()
    );
    assert!(
        total.tx_packets > 0 && total.rx_packets > 10_000,
        "{total:?}"
    );
    for r in [
        DropReason::PortUnregistering,
        DropReason::PortDown,
        DropReason::NoCarrier,
        DropReason::NoTxQueue,
    ] {
        assert!(total.drops.get(r) > 0, "{r:?} never exercised: {reasons:?}");
    }
}

#[test]
fn every_rx_queue_goes_to_exactly_one_pmd_and_follows_the_port_set() {
    let r = |ofport, generation| PortRef { ofport, generation };
    let a = Assignment::round_robin(3, &[(r(1, 1), 2), (r(4, 2), 1), (r(9, 3), 2)], 2);
    assert_eq!(a.version, 3);
    let queues = |i: usize| -> Vec<(PortNo, usize)> {
        a.per_pmd[i]
            .iter()
            .map(|q| (q.port.ofport, q.queue))
            .collect()
    };
    assert_eq!(queues(0), vec![(1, 0), (4, 0), (9, 1)]);
    assert_eq!(queues(1), vec![(1, 1), (9, 0)]);

    // Live: the housekeeping thread republishes when ports change.
    let dp = Arc::new(Datapath::new());
    dp.add_port(1, port("a".into())).unwrap();
    let t = PmdThreads::spawn(dp.clone(), 3, None, PmdThreadsConfig::default()).unwrap();
    assert_eq!(
        t.assignment().per_pmd.iter().map(Vec::len).sum::<usize>(),
        2
    );
    dp.add_port(2, port("b".into())).unwrap();
    dp.add_port(3, port("c".into())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = t.assignment();
        let mut all: Vec<_> = a
            .per_pmd
            .iter()
            .flatten()
            .map(|q| (q.port.ofport, q.queue))
            .collect();
        all.sort_unstable();
        if all.len() == 6 {
            let want: Vec<_> = (1..=3).flat_map(|p| [(p, 0), (p, 1)]).collect();
            assert_eq!(all, want, "each queue once");
            assert!(a.per_pmd.iter().all(|v| v.len() == 2), "{a:?}");
            break;
        }
        assert!(Instant::now() < deadline, "assignment never updated: {a:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(t.stop());
}

/// The wake-up latency the idle backoff adds: one packet injected into an
/// idle switch (the PMD asleep at its longest backoff), timed until it is
/// on the egress port's tx ring. Compared, in the same run, with the same
/// injection back to back (the PMD has just forwarded the previous packet
/// and is at most in its first, short sleeps).
#[test]
fn idle_pmd_wakes_up_within_the_backoff_bound() {
    let dp = Arc::new(Datapath::new());
    let (p1, p2) = (port("in".into()), port("out".into()));
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    dp.flow_table().add(rule(1, 10, vec![Action::Output(2)]));
    let cfg = PmdThreadsConfig::default();
    let t = PmdThreads::spawn(dp.clone(), 1, None, cfg.clone()).unwrap();
    let frame = udp_frame(1);
    let trial = |pause: Duration| -> Duration {
        std::thread::sleep(pause);
        let start = Instant::now();
        assert!(p1.inject_frame(0, &frame));
        loop {
            let n = p2.drain_tx(0, |_| ()) + p2.drain_tx(1, |_| ());
            if n > 0 {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(5), "packet lost");
            std::hint::spin_loop();
        }
    };
    let trials = 300;
    // Idle: sleep past K empty rounds and the whole 10 µs → 1 ms ramp.
    let mut idle: Vec<Duration> = (0..trials)
        .map(|_| trial(Duration::from_millis(5)))
        .collect();
    // Back to back: the PMD is at most in its first, short sleeps.
    let mut b2b: Vec<Duration> = (0..trials).map(|_| trial(Duration::ZERO)).collect();
    idle.sort_unstable();
    b2b.sort_unstable();
    let (ip50, ip99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (bp50, bp99) = (percentile(&b2b, 0.5), percentile(&b2b, 0.99));
    println!(
        "wake-up latency over {trials} trials (backoff {:?} after {} empty rounds, {:?} → {:?}): \
         idle p50 {ip50:?} p99 {ip99:?}; back-to-back p50 {bp50:?} p99 {bp99:?}",
        cfg.backoff, cfg.backoff.empty_rounds, cfg.backoff.min_sleep, cfg.backoff.max_sleep
    );
    let stats: PortStats = dp.port_stats(2).unwrap();
    assert_eq!(stats.tx_packets, 2 * trials as u64);
    drop(t.stop());
    // The backoff bounds the added latency by its longest sleep plus timer
    // slack and scheduling on a shared 2-core machine: a loose bound that
    // still catches a PMD that never wakes (or wakes by accident).
    assert!(ip50 < Duration::from_millis(10), "idle p50 {ip50:?}");
}

#[test]
fn running_switch_expires_flows_by_their_hard_timeout() {
    let dp = Arc::new(Datapath::new());
    dp.add_port(1, port("t1".into())).unwrap();
    let mut short = rule(1, 10, vec![Action::Output(1)]);
    short.hard_timeout = 1;
    dp.flow_table().add(short);
    dp.flow_table().add(rule(1, 5, vec![])); // no timeout: stays
    let t = PmdThreads::spawn(dp.clone(), 1, None, PmdThreadsConfig::default()).unwrap();
    let start = Instant::now();
    while dp.flow_table().len() == 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    t.stop();
    let left = dp.flow_table().rules();
    assert_eq!(left.len(), 1, "the 1 s hard timeout never fired");
    assert_eq!(left[0].priority(), 5);
    assert!(
        took >= Duration::from_millis(900),
        "expired early: {took:?}"
    );
}
