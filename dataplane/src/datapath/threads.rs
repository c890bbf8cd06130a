//! PMD threads: the forwarding threads, their rx-queue assignment, idle
//! backoff, and the helper threads that run beside them.
//!
//! # What
//! [`PmdThreads::spawn`] starts N PMD threads over one [`Datapath`], each
//! pinned to a configured CPU, plus three helpers: the rcu reclaimer (runs
//! deferred port teardowns once every PMD has passed a quiescent point),
//! the stall watchdog ([`crate::watchdog`]), and a housekeeping thread (the
//! control side of "device gone" reports — [`Datapath::process_port_requests`]
//! — and the rx-queue assignment). [`PmdThreads::stop`] stops and joins them
//! all and hands the PMDs back for their final statistics and pools.
//!
//! # Assignment
//! Every (port, rx queue) of the published port map is owned by exactly one
//! PMD: the k-th pair in (ofport, queue) order goes to PMD `k % N` (OVS's
//! round-robin `pmd-rxq-assign`). The housekeeping thread recomputes it when
//! the port map's version changes and publishes it as an immutable
//! [`Assignment`] through an `ArcSwap`. It names ports by [`PortRef`] only,
//! so an assignment a PMD loaded never keeps a port alive, and a port
//! deleted (or re-added) since is simply skipped when the PMD resolves the
//! reference in its per-batch snapshot. A PMD polls only its own queues.
//! Between a port change and the next assignment (one housekeeping
//! interval) a new port is not polled, and for one round two PMDs may poll
//! the same queue; vports tolerate that (a second poller sees "nothing
//! received").
//!
//! # The PMD loop
//! ```text
//! loop {
//!     assignment = load()                     // lock-free, no Cache
//!     for each own (port, queue):             // Pmd::poll_assigned
//!         snapshot = port_table.load(rcu)     // one per batch
//!         heartbeat.rx(port, queue); recv ≤ 32; walk; flush (heartbeat.tx)
//!         drop snapshot; rcu.quiescent(); heartbeat.beat()
//!     if nothing received: reap tx completions into the pool (first empty
//!         round and before each sleep)
//!     if nothing received K rounds in a row:
//!         rcu.offline(); heartbeat.idle(); sleep(d); heartbeat.busy(); rcu.online()
//!         d = min(2d, max)                    // 10 µs → 1 ms by default
//!     else d = min
//! }
//! ```
//! While asleep a PMD is rcu-offline (it blocks no teardown) and
//! watchdog-idle (it is not reported as stalled). Waking costs up to the
//! current sleep plus the timer slack: the figure is measured by the
//! `idle_pmd_wakes_up_within_the_backoff_bound` test in
//! `tests/pmd_stress.rs`.
//!
//! # Invariants
//! * A PMD holds no port snapshot across a quiescent point or a sleep (the
//!   borrow of its rcu participant forbids it).
//! * PMDs take no lock: the assignment and the port table are arc-swap
//!   loads, gone reports go through a lock-free channel.
//! * `stop` joins every thread it started; a PMD finishes its batch and
//!   flushes before it exits.
//!
//! # Why
//! A static, published assignment keeps each rx queue single-consumer (the
//! AF_XDP rule) without any per-packet coordination, and recomputing it on
//! the control side keeps the PMD loop free of port-set logic.

use super::{Datapath, Pmd, PmdConfig, PmdShared, PortRef};
use crate::rcu::Reclaimer;
use crate::watchdog::WatchdogThread;
use arc_swap::ArcSwap;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One rx queue of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxqRef {
    /// The port, by value.
    pub port: PortRef,
    /// The rx queue.
    pub queue: usize,
}

/// Which PMD polls which rx queues (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The port-map version it was computed from.
    pub version: u64,
    /// Per PMD, its rx queues.
    pub per_pmd: Vec<Vec<RxqRef>>,
}

impl Assignment {
    /// Round-robin over `(port, n_rxq)` pairs (in ofport order) for `n` PMDs.
    pub fn round_robin(version: u64, ports: &[(PortRef, usize)], n: usize) -> Self {
        let n = n.max(1);
        let mut per_pmd = vec![Vec::new(); n];
        let mut k = 0;
        for &(port, nq) in ports {
            for queue in 0..nq {
                per_pmd[k % n].push(RxqRef { port, queue });
                k += 1;
            }
        }
        Assignment { version, per_pmd }
    }

    /// Computes the assignment of `dp`'s current ports (control side: takes
    /// the `ports` lock).
    fn of(dp: &Datapath, n: usize) -> Self {
        let version = dp.port_table().stats().version;
        let ports = dp
            .port_table()
            .map_ports(|e| (e.port_ref(), e.vport().n_rxq()));
        Assignment::round_robin(version, &ports, n)
    }
}

/// Idle backoff: after `empty_rounds` polling rounds that received nothing,
/// sleep `min_sleep`, doubling up to `max_sleep` while still idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Empty rounds before the first sleep.
    pub empty_rounds: u32,
    /// The first sleep.
    pub min_sleep: Duration,
    /// The longest sleep.
    pub max_sleep: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            empty_rounds: 64,
            min_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_millis(1),
        }
    }
}

/// How [`PmdThreads`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmdThreadsConfig {
    /// Each PMD's cache and pool sizes (`id` is set per thread).
    pub pmd: PmdConfig,
    /// Idle backoff.
    pub backoff: Backoff,
    /// How often the housekeeping thread handles gone reports and checks
    /// the port set.
    pub housekeeping_interval: Duration,
    /// How often the reclaimer runs deferred teardowns.
    pub reclaim_interval: Duration,
}

impl Default for PmdThreadsConfig {
    fn default() -> Self {
        PmdThreadsConfig {
            pmd: PmdConfig::default(),
            backoff: Backoff::default(),
            housekeeping_interval: Duration::from_millis(1),
            reclaim_interval: Duration::from_millis(1),
        }
    }
}

/// Running PMD threads and their helpers (see the module docs).
pub struct PmdThreads {
    dp: Arc<Datapath>,
    stop: Arc<AtomicBool>,
    pmds: Vec<JoinHandle<Pmd>>,
    shared: Vec<Arc<PmdShared>>,
    assignment: Arc<ArcSwap<Assignment>>,
    housekeeping: Option<JoinHandle<()>>,
    reclaimer: Option<Reclaimer>,
    watchdog: Option<WatchdogThread>,
}

impl core::fmt::Debug for PmdThreads {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PmdThreads")
            .field("pmds", &self.pmds.len())
            .field("assignment", &**self.assignment.load())
            .finish_non_exhaustive()
    }
}

impl PmdThreads {
    /// Starts `n` PMD threads (`pmd0`..) over `dp`; PMD `i` is pinned to
    /// `cpus[i % cpus.len()]` when `cpus` is given (a CPU that does not
    /// exist is logged and left unpinned). Also starts the reclaimer, the
    /// watchdog thread and the housekeeping thread.
    pub fn spawn(
        dp: Arc<Datapath>,
        n: usize,
        cpus: Option<Vec<usize>>,
        cfg: PmdThreadsConfig,
    ) -> std::io::Result<Self> {
        let n = n.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(ArcSwap::from_pointee(Assignment::of(&dp, n)));
        let mut me = PmdThreads {
            dp: dp.clone(),
            stop: stop.clone(),
            pmds: Vec::with_capacity(n),
            shared: Vec::with_capacity(n),
            assignment: assignment.clone(),
            housekeeping: None,
            reclaimer: Some(dp.rcu().spawn_reclaimer(cfg.reclaim_interval)?),
            watchdog: Some(dp.watchdog().spawn()?),
        };
        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        for i in 0..n {
            let mut pmd = Pmd::try_new(dp.clone(), PmdConfig { id: i, ..cfg.pmd })
                .map_err(std::io::Error::other)?;
            me.shared.push(pmd.shared());
            let hb = dp.watchdog().register(&format!("pmd{i}"));
            let cpu = cpus
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c[i % c.len()]);
            let core = cpu.map(|c| (c, core_ids.iter().find(|id| id.id == c).copied()));
            let (stop, assignment, backoff) = (stop.clone(), assignment.clone(), cfg.backoff);
            let h = std::thread::Builder::new()
                .name(format!("pmd{i}"))
                .spawn(move || {
                    match core {
                        Some((_, Some(id))) if core_affinity::set_for_current(id) => {}
                        Some((c, _)) => tracing::warn!(pmd = i, cpu = c, "cannot pin PMD"),
                        None => {}
                    }
                    pmd.attach_thread(hb);
                    pmd_loop(&mut pmd, i, &stop, &assignment, backoff);
                    pmd
                })?;
            me.pmds.push(h);
        }
        let (stop2, a2, dp2) = (stop, assignment, dp);
        let interval = cfg.housekeeping_interval;
        me.housekeeping = Some(
            std::thread::Builder::new()
                .name("xswitch-housekeeping".into())
                .spawn(move || {
                    let mut timers = std::time::Instant::now();
                    while !stop2.load(Ordering::Acquire) {
                        dp2.process_port_requests();
                        if timers.elapsed() >= super::TIMER_INTERVAL {
                            dp2.run_timers();
                            timers = std::time::Instant::now();
                        }
                        if dp2.port_table().stats().version != a2.load().version {
                            a2.store(Arc::new(Assignment::of(&dp2, n)));
                        }
                        std::thread::park_timeout(interval);
                    }
                })?,
        );
        Ok(me)
    }

    /// The published assignment.
    pub fn assignment(&self) -> Arc<Assignment> {
        self.assignment.load_full()
    }

    /// Each PMD's live totals.
    pub fn shared(&self) -> &[Arc<PmdShared>] {
        &self.shared
    }

    /// The datapath.
    pub fn datapath(&self) -> &Arc<Datapath> {
        &self.dp
    }

    /// Stops every thread, joins them, and returns the PMDs (each has
    /// flushed its last batch). Then processes the last gone reports and
    /// runs every teardown whose grace period is over. A PMD thread that
    /// panicked is resumed as a panic here.
    pub fn stop(mut self) -> Vec<Pmd> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<Pmd> {
        self.stop.store(true, Ordering::Release);
        let mut out = Vec::with_capacity(self.pmds.len());
        let mut panic = None;
        for h in self.pmds.drain(..) {
            h.thread().unpark();
            match h.join() {
                Ok(p) => out.push(p),
                Err(e) => panic = panic.or(Some(e)),
            }
        }
        if let Some(h) = self.housekeeping.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.watchdog.take();
        self.reclaimer.take();
        self.dp.process_port_requests();
        self.dp.reclaim();
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
        out
    }
}

impl Drop for PmdThreads {
    fn drop(&mut self) {
        if !self.pmds.is_empty() || self.housekeeping.is_some() {
            // Dropping the PMDs here is fine: their participants unregister.
            let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.shutdown()));
            drop(stop);
        }
    }
}

/// The body of PMD thread `i` (module docs).
fn pmd_loop(
    pmd: &mut Pmd,
    i: usize,
    stop: &AtomicBool,
    assignment: &ArcSwap<Assignment>,
    backoff: Backoff,
) {
    let mut empty = 0u32;
    let mut sleep = backoff.min_sleep;
    while !stop.load(Ordering::Relaxed) {
        let a = assignment.load();
        let mine: &[super::RxqRef] = a.per_pmd.get(i).map_or(&[], |v| v.as_slice());
        let got = pmd.poll_assigned(mine);
        drop(a);
        if let Some(hb) = pmd.heartbeat() {
            hb.beat();
        }
        if got > 0 {
            empty = 0;
            sleep = backoff.min_sleep;
            continue;
        }
        empty = empty.saturating_add(1);
        if empty == 1 || empty >= backoff.empty_rounds {
            // Idle: collect completions first (a dry pool cannot receive).
            pmd.reap();
        }
        if empty >= backoff.empty_rounds {
            pmd.park();
            std::thread::park_timeout(sleep);
            pmd.wake();
            sleep = (sleep * 2).min(backoff.max_sleep);
        }
    }
    pmd.flush();
    pmd.detach_thread();
}
