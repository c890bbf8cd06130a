//! Idle PMDs that block on their rx queues' wait fds (`datapath/threads.rs`,
//! "Blocking on rx"), driven through in-memory ports with a doorbell
//! (`MemoryPortConfig::rx_doorbell`), so no privileges are needed. The
//! same path on real AF_XDP sockets is `tests/pmd_wait_afxdp.rs`.
//!
//! What is proven here:
//! * an idle PMD blocked on a doorbell wakes on one frame and forwards it,
//!   faster than the timed-sleep backoff measured in the same run;
//! * while blocked it uses almost no CPU (thread CPU time over 1 s);
//! * a port deleted while every PMD is blocked is torn down without
//!   waiting for any of them (grace periods complete while they sleep);
//! * a port added while they are blocked is watched from the next wait
//!   (the housekeeping thread rings the PMDs after a new assignment);
//! * `stop` ends a block at once even with a minute-long timeout;
//! * a PMD with one queue that has no wait fd keeps the timed backoff.
//!
//! `cargo test -p xswitch-dataplane --release --test pmd_wait -- --nocapture`

mod common;

use common::{percentile, quiet_for, thread_cpu, tid, udp_frame, wait_until};
use dataplane::actions::Action;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{Backoff, Datapath, PmdThreads, PmdThreadsConfig};
use dataplane::flow_key::{field, FlowMatch, PortNo};
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every wait for a packet or a state gives up after this.
const DEADLINE: Duration = Duration::from_secs(10);

fn forward(from: PortNo, to: PortNo) -> RuleSpec {
    let mut m = FlowMatch::ANY;
    m.set_masked(field::IN_PORT, u64::from(from), u64::from(u32::MAX));
    let mut s = RuleSpec::new(m, vec![Action::Output(to)]);
    s.priority = 10;
    s
}

/// A one-queue in-memory port, with or without a doorbell.
fn port(name: &str, doorbell: bool) -> Arc<MemoryPort> {
    Arc::new(MemoryPort::new(
        MemoryPortConfig::new(name)
            .queues(1, 1)
            .ring_size(256)
            .rx_doorbell(doorbell),
    ))
}

fn cfg(rx_wait: bool, max_block: Duration) -> PmdThreadsConfig {
    PmdThreadsConfig {
        backoff: Backoff {
            rx_wait,
            max_block,
            ..Backoff::default()
        },
        ..PmdThreadsConfig::default()
    }
}

/// Injects one frame into `rx` and times it until it is on `tx`'s ring.
fn one_frame(rx: &MemoryPort, tx: &MemoryPort, frame: &[u8]) -> Duration {
    let start = Instant::now();
    assert!(rx.inject_frame(0, frame), "rx ring full");
    loop {
        if tx.drain_tx(0, |_| ()) > 0 {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "frame not forwarded");
        std::hint::spin_loop();
    }
}

/// Whether thread `tid` is asleep in the kernel (state `S`).
fn sleeping(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the parenthesised name.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "S")
        })
        .unwrap_or(false)
}

/// One switch, `in` → `out`, one PMD; returns the wake-up latencies of
/// `trials` single frames each sent after `gap` of silence, and the idle
/// PMD's CPU share over `cpu_window` afterwards.
fn idle_run(
    rx_wait: bool,
    trials: usize,
    gap: Duration,
    cpu_window: Duration,
) -> (Vec<Duration>, f64, dataplane::datapath::IdleStats) {
    let dp = Arc::new(Datapath::new());
    let (p1, p2) = (port("in", true), port("out", true));
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    dp.flow_table().add(forward(1, 2));
    let t =
        PmdThreads::spawn(dp.clone(), 1, None, cfg(rx_wait, Duration::from_millis(10))).unwrap();
    let frame = udp_frame(7);
    let mut lat: Vec<Duration> = (0..trials)
        .map(|i| {
            quiet_for(gap, i);
            one_frame(&p1, &p2, &frame)
        })
        .collect();
    lat.sort_unstable();
    let id = tid(&t, 0);
    std::thread::sleep(Duration::from_millis(50));
    let (c0, t0) = (thread_cpu(id), Instant::now());
    std::thread::sleep(cpu_window);
    let share = (thread_cpu(id) - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let idle = t.idle_stats()[0];
    assert_eq!(dp.port_stats(2).unwrap().tx_packets, trials as u64);
    drop(t.stop());
    (lat, share, idle)
}

#[test]
fn idle_pmd_blocked_on_a_doorbell_wakes_on_one_frame_sooner_than_timed_sleeps() {
    let trials = 200;
    let gap = Duration::from_millis(5);
    let window = Duration::from_millis(300);
    let (fd, fd_cpu, fd_idle) = idle_run(true, trials, gap, window);
    let (timed, timed_cpu, timed_idle) = idle_run(false, trials, gap, window);
    let (f50, f99) = (percentile(&fd, 0.5), percentile(&fd, 0.99));
    let (t50, t99) = (percentile(&timed, 0.5), percentile(&timed, 0.99));
    println!(
        "wake-up latency over {trials} single frames {gap:?} apart: blocked on the doorbell \
         p50 {f50:?} p99 {f99:?} (idle CPU {:.2} %); timed sleeps p50 {t50:?} p99 {t99:?} \
         (idle CPU {:.2} %); p50 ratio {:.1}x",
        fd_cpu * 100.0,
        timed_cpu * 100.0,
        t50.as_secs_f64() / f50.as_secs_f64()
    );
    println!("idle stats: blocked {fd_idle:?}; timed {timed_idle:?}");
    // The mode each run was in: the fd run blocked on both its queues and
    // was woken by them; the timed run never blocked on a queue.
    assert_eq!(
        (fd_idle.timed_sleeps, fd_idle.rx_fds),
        (0, 2),
        "{fd_idle:?}"
    );
    assert!(fd_idle.rx_wakeups >= trials as u64 / 2, "{fd_idle:?}");
    assert_eq!((timed_idle.rx_waits, timed_idle.rx_wakeups), (0, 0));
    assert!(timed_idle.timed_sleeps > 0);
    // A timed sleep after 5 ms of silence is at its 1 ms maximum: the
    // median wake-up is hundreds of µs. A blocked PMD is woken by the
    // arrival itself.
    assert!(
        f50 < t50,
        "blocked p50 {f50:?} is not below timed p50 {t50:?}"
    );
}

#[test]
fn idle_pmd_blocked_on_its_queues_uses_under_five_percent_cpu() {
    let (_, share, idle) = idle_run(true, 20, Duration::from_millis(1), Duration::from_secs(1));
    println!(
        "idle PMD blocked on its queues: {:.3} % of a CPU over 1 s ({idle:?})",
        share * 100.0
    );
    assert!(idle.rx_waits > 0, "{idle:?}");
    assert!(share < 0.05, "idle PMD used {:.2} % CPU", share * 100.0);
}

#[test]
fn port_deleted_while_every_pmd_is_blocked_is_torn_down_without_waking_them() {
    let dp = Arc::new(Datapath::new());
    let (a, b) = (port("a", true), port("b", true));
    dp.add_port(1, a.clone()).unwrap();
    dp.add_port(2, b.clone()).unwrap();
    // A minute-long block: only an arrival or the eventfd ends it.
    let t = PmdThreads::spawn(dp.clone(), 2, None, cfg(true, Duration::from_secs(60))).unwrap();
    let tids = [tid(&t, 0), tid(&t, 1)];
    // Each PMD owns one queue and blocks on it.
    assert!(
        wait_until(|| t
            .idle_stats()
            .iter()
            .all(|s| s.rx_waits > 0 && s.rx_fds == 1)
            && tids.iter().all(|&id| sleeping(id))),
        "PMDs did not block: {:?}",
        t.idle_stats()
    );
    let before = t.idle_stats();
    // Grace periods complete while they are blocked: they are offline.
    let start = Instant::now();
    dp.rcu()
        .synchronize(Duration::from_secs(5))
        .expect("a grace period while every PMD is blocked");
    let sync = start.elapsed();

    let start = Instant::now();
    drop(dp.del_port(1).unwrap());
    assert!(
        wait_until(|| dp.retired().ports == 1 && Arc::strong_count(&a) == 1),
        "the deleted port was not torn down"
    );
    let teardown = start.elapsed();
    println!(
        "with both PMDs blocked: synchronize {sync:?}, delete → torn down {teardown:?}; \
         idle before {before:?}, after {:?}",
        t.idle_stats()
    );
    assert!(
        teardown < Duration::from_secs(1),
        "teardown took {teardown:?}"
    );
    // Nothing the PMDs hold names the dead port: its doorbell rings into
    // the void, and the remaining port still wakes its PMD.
    assert!(a.inject_frame(0, &udp_frame(1)));
    assert!(b.inject_frame(0, &udp_frame(2)));
    assert!(
        wait_until(|| dp.port_stats(2).is_some_and(|s| s.rx_packets == 1)),
        "the remaining port's frame was not received"
    );
    t.stop();
}

#[test]
fn port_added_while_pmds_are_blocked_is_watched_from_the_next_wait() {
    let dp = Arc::new(Datapath::new());
    let out = port("out", true);
    dp.add_port(2, out.clone()).unwrap();
    dp.flow_table().add(forward(1, 2));
    let t = PmdThreads::spawn(dp.clone(), 1, None, cfg(true, Duration::from_secs(60))).unwrap();
    assert!(wait_until(|| t.idle_stats()[0].rx_waits > 0));
    let rebuilds = t.idle_stats()[0].rebuilds;
    let inp = port("in", true);
    dp.add_port(1, inp.clone()).unwrap();
    // The housekeeping thread publishes the new assignment and rings the
    // PMD, which rebuilds its set with the new queue and blocks again.
    assert!(
        wait_until(|| {
            let s = t.idle_stats()[0];
            s.rebuilds > rebuilds && s.rx_fds == 2 && s.kicks > 0
        }),
        "no rebuild after the port was added: {:?}",
        t.idle_stats()
    );
    std::thread::sleep(Duration::from_millis(20));
    let took = one_frame(&inp, &out, &udp_frame(3));
    println!("first frame on a port added while the PMD was blocked: {took:?}");
    // Far below the 60 s block: the new queue's doorbell woke the PMD.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(t.idle_stats()[0].rx_wakeups > 0);
    t.stop();
}

#[test]
fn stop_ends_a_minute_long_block_at_once() {
    let dp = Arc::new(Datapath::new());
    dp.add_port(1, port("p", true)).unwrap();
    let t = PmdThreads::spawn(dp.clone(), 2, None, cfg(true, Duration::from_secs(60))).unwrap();
    assert!(wait_until(|| t.idle_stats().iter().all(|s| s.rx_waits > 0)));
    let start = Instant::now();
    let pmds = t.stop();
    let took = start.elapsed();
    println!("stop with both PMDs blocked: {took:?}");
    assert_eq!(pmds.len(), 2);
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
}

#[test]
fn a_queue_without_a_wait_fd_keeps_the_pmd_on_timed_sleeps() {
    let dp = Arc::new(Datapath::new());
    let (bell, plain) = (port("bell", true), port("plain", false));
    dp.add_port(1, bell.clone()).unwrap();
    dp.add_port(2, plain.clone()).unwrap();
    dp.flow_table().add(forward(1, 2));
    let t = PmdThreads::spawn(dp.clone(), 1, None, cfg(true, Duration::from_secs(60))).unwrap();
    assert!(wait_until(|| t.idle_stats()[0].timed_sleeps > 10));
    let s = t.idle_stats()[0];
    // The doorbell is still in the set, so it can wake the PMD early.
    assert_eq!((s.rx_waits, s.rx_fds), (0, 1), "{s:?}");
    let took = one_frame(&bell, &plain, &udp_frame(4));
    assert!(took < Duration::from_secs(5), "{took:?}");
    t.stop();
}
