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
//!         round and before each wait)
//!     if nothing received K rounds in a row:
//!         if the assignment changed since the wait set was built: rebuild it
//!         rcu.offline(); heartbeat.idle()
//!         wait on the set: every own queue has a wait fd → up to max_block
//!                          otherwise                   → up to d, d = min(2d, max_sleep)
//!         heartbeat.busy(); rcu.online()
//!     else d = min_sleep
//! }
//! ```
//! While waiting a PMD is rcu-offline (it blocks no teardown) and
//! watchdog-idle (it is not reported as stalled).
//!
//! # Blocking on rx
//! An idle PMD that only slept on a timer woke up to 1 ms late (p50 261 µs
//! through the switch at 1000 probes/s against 31 µs for Open vSwitch,
//! which busy-polls). Instead, each PMD has an epoll set (`threads/wait.rs`)
//! over the wait fds of its rx queues ([`Vport::rx_wait_fd`]: an AF_XDP
//! port hands out the queue's socket, readable when its rx ring has
//! entries) plus an eventfd, its waker. When every queue it polls has a
//! wait fd, the PMD blocks in the set with the long `max_block` timeout and
//! the first frame wakes it (tens of µs); a queue without one (the
//! in-memory port) keeps the timed 10 µs → 1 ms sleeps, on the same set so
//! the queues that do have fds still wake it at once. The eventfd is rung
//! by [`PmdThreads::stop`] and by the housekeeping thread after it
//! publishes a new assignment, so neither waits for a timeout.
//!
//! The fds belong to ports that may be deleted while the PMD sleeps, and
//! the PMD must neither keep such a port alive nor make its deletion wait.
//! Three ways were weighed:
//! * keep a port snapshot across the wait so the fds stay open — then the
//!   PMD is rcu-online while it sleeps and every deletion waits for it to
//!   wake: forbidden by DESIGN.md ("never across a blocking call");
//! * `dup` the fds into the PMD — then the PMD keeps the *socket* alive
//!   after the port is torn down: the socket stays bound to its queue, so
//!   re-adding the interface fails with EBUSY until the PMD notices (the
//!   kernel already releases a closed socket's queue a few ms late, in
//!   deferred work; a dup would stretch that to the PMD's next wake-up);
//! * register the fds in an epoll set while a snapshot pins the port, and
//!   drop the snapshot before waiting (chosen). An epoll registration
//!   refers to the open file and holds no reference to it: when the
//!   port's teardown closes its socket, the kernel removes it from every
//!   epoll set (`eventpoll_release`), and a recycled fd number is not in
//!   the set. So the PMD is rcu-offline while it waits, deletion never
//!   waits on it and needs no signal, and a torn-down port's socket is
//!   closed by its teardown as before. The set is never edited by fd
//!   number: it is rebuilt whole (a new epoll instance, the old one
//!   closed) the first time the PMD goes idle under a new assignment,
//!   and the housekeeping thread rings the PMD when it publishes one, so
//!   a new port's queues are watched from the next wait on.
//!
//! The rebuild resolves the assignment's [`PortRef`]s in a snapshot of its
//! own: a second rcu participant per PMD (`pmdN-wait`), online only for
//! the few microseconds of a rebuild — the PMD's own participant is
//! private to the packet walk. A rebuild that fails (out of fds) leaves
//! the PMD on timed sleeps. The `Backoff::rx_wait` switch turns fd waits
//! off (timed sleeps only): that is the peer the tests compare against.
//!
//! Measured (2 shared cores, kernel 6.18, veth, native XDP): one-way
//! through an idle PMD, 200 datagrams 5 ms apart, p50 20–26 µs blocked
//! against 412–525 µs on timed sleeps (3 runs, 2026-12-07, the send time
//! spread over the PMD's 1 ms sleep; sent straight after a 5 ms sleep,
//! the kernel woke both together and timed sleeps read 0.99 ms), idle
//! PMD CPU 0.1–0.2 % (`tests/pmd_wait_afxdp.rs`); `xswitch bench` UDP-echo round trip at
//! 1000/s, p50 47–86 µs against 257–262 µs with `rx_wait` off (same tree,
//! same runs; Open vSwitch afxdp, busy-polling: 31–40 µs). Saturated 64 B
//! throughput was within run-to-run noise, but Mpps per DUT core came out
//! about 8 % lower in those runs (0.63 against 0.69): a suspect to chase —
//! the socket wakes the epoll entry at every rx flush even while the PMD
//! is busy.
//!
//! # Invariants
//! * A PMD holds no port snapshot across a quiescent point or a wait (the
//!   borrow of its rcu participants forbids it); its wait set holds no
//!   reference to any port or socket.
//! * PMDs take no lock: the assignment and the port table are arc-swap
//!   loads, gone reports go through a lock-free channel.
//! * `stop` joins every thread it started; a PMD finishes its batch and
//!   flushes before it exits.
//!
//! # Why
//! A static, published assignment keeps each rx queue single-consumer (the
//! AF_XDP rule) without any per-packet coordination, and recomputing it on
//! the control side keeps the PMD loop free of port-set logic.
//!
//! [`Vport::rx_wait_fd`]: crate::vport::Vport::rx_wait_fd

mod wait;

use super::{Datapath, Pmd, PmdConfig, PmdShared, PortRef};
use crate::rcu::{Participant, Reclaimer};
use crate::watchdog::{current_tid, WatchdogThread};
use arc_swap::ArcSwap;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wait::{WaitSet, Waker};

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

/// Idle backoff: after `empty_rounds` polling rounds that received
/// nothing, block until a frame arrives (every own queue has a wait fd) or
/// sleep `min_sleep`, doubling up to `max_sleep` while still idle (module
/// docs, "Blocking on rx").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Empty rounds before the first wait.
    pub empty_rounds: u32,
    /// The first timed sleep.
    pub min_sleep: Duration,
    /// The longest timed sleep.
    pub max_sleep: Duration,
    /// Block on the rx queues' wait fds when every own queue has one.
    pub rx_wait: bool,
    /// The timeout of such a block: how often a PMD that sees no traffic
    /// still reaps completions. Arrivals, stop and assignment changes end
    /// it earlier.
    pub max_block: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            empty_rounds: 64,
            min_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_millis(1),
            rx_wait: true,
            max_block: Duration::from_millis(10),
        }
    }
}

/// How an idle PMD waited, since it started ([`PmdThreads::idle_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdleStats {
    /// Waits blocked on the wait fds of every own rx queue (`max_block`).
    pub rx_waits: u64,
    /// Timed sleeps (some own queue has no wait fd, or `rx_wait` is off).
    pub timed_sleeps: u64,
    /// Waits ended by an rx wait fd.
    pub rx_wakeups: u64,
    /// Waits ended by the PMD's eventfd (stop, a new assignment).
    pub kicks: u64,
    /// Waits that ran to their timeout.
    pub timeouts: u64,
    /// Wait sets built (one per assignment the PMD went idle under).
    pub rebuilds: u64,
    /// Rx wait fds in the current wait set.
    pub rx_fds: u64,
}

/// What a PMD thread shares with [`PmdThreads`]: its waker, its thread id
/// and its idle counters (written on the idle path only).
#[derive(Debug)]
struct IdleShared {
    waker: Waker,
    tid: AtomicU32,
    rx_waits: AtomicU64,
    timed_sleeps: AtomicU64,
    rx_wakeups: AtomicU64,
    kicks: AtomicU64,
    timeouts: AtomicU64,
    rebuilds: AtomicU64,
    rx_fds: AtomicU64,
}

impl IdleShared {
    fn new() -> std::io::Result<Self> {
        Ok(IdleShared {
            waker: Waker::new()?,
            tid: AtomicU32::new(0),
            rx_waits: AtomicU64::new(0),
            timed_sleeps: AtomicU64::new(0),
            rx_wakeups: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            rx_fds: AtomicU64::new(0),
        })
    }

    fn stats(&self) -> IdleStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IdleStats {
            rx_waits: g(&self.rx_waits),
            timed_sleeps: g(&self.timed_sleeps),
            rx_wakeups: g(&self.rx_wakeups),
            kicks: g(&self.kicks),
            timeouts: g(&self.timeouts),
            rebuilds: g(&self.rebuilds),
            rx_fds: g(&self.rx_fds),
        }
    }
}

/// How [`PmdThreads`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// CPUs the reclaimer and the housekeeping thread are confined to
    /// (they run port teardown; see [`crate::affinity`]); empty: not
    /// confined.
    pub helper_cpus: Vec<usize>,
}

impl Default for PmdThreadsConfig {
    fn default() -> Self {
        PmdThreadsConfig {
            pmd: PmdConfig::default(),
            backoff: Backoff::default(),
            housekeeping_interval: Duration::from_millis(1),
            reclaim_interval: Duration::from_millis(1),
            helper_cpus: Vec::new(),
        }
    }
}

/// Running PMD threads and their helpers (see the module docs).
pub struct PmdThreads {
    dp: Arc<Datapath>,
    stop: Arc<AtomicBool>,
    pmds: Vec<JoinHandle<Pmd>>,
    shared: Vec<Arc<PmdShared>>,
    idle: Vec<Arc<IdleShared>>,
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
            idle: Vec::with_capacity(n),
            assignment: assignment.clone(),
            housekeeping: None,
            reclaimer: Some(
                dp.rcu()
                    .spawn_reclaimer_on(cfg.reclaim_interval, cfg.helper_cpus.clone())?,
            ),
            watchdog: Some(dp.watchdog().spawn()?),
        };
        for i in 0..n {
            let mut pmd = Pmd::try_new(dp.clone(), PmdConfig { id: i, ..cfg.pmd })
                .map_err(std::io::Error::other)?;
            me.shared.push(pmd.shared());
            let idle = Arc::new(IdleShared::new()?);
            me.idle.push(idle.clone());
            let hb = dp.watchdog().register(&format!("pmd{i}"));
            let cpu = cpus
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c[i % c.len()]);
            let (stop, assignment, backoff) = (stop.clone(), assignment.clone(), cfg.backoff);
            let dp = dp.clone();
            let name = format!("pmd{i}");
            let h = crate::affinity::spawn_confined(&name, cpu.into_iter().collect(), move || {
                idle.tid.store(current_tid(), Ordering::Relaxed);
                hb.bind_current_thread();
                pmd.attach_thread(hb);
                let ctx = LoopCtx {
                    i,
                    dp: &dp,
                    stop: &stop,
                    assignment: &assignment,
                    backoff,
                    idle: &idle,
                };
                pmd_loop(&mut pmd, &ctx);
                pmd
            })?;
            me.pmds.push(h);
        }
        let (stop2, a2, dp2) = (stop, assignment, dp);
        let idle2 = me.idle.clone();
        let interval = cfg.housekeeping_interval;
        let helper_cpus = cfg.helper_cpus;
        me.housekeeping = Some(crate::affinity::spawn_confined(
            "xswitch-housekeeping",
            helper_cpus,
            move || {
                let mut timers = std::time::Instant::now();
                while !stop2.load(Ordering::Acquire) {
                    dp2.process_port_requests();
                    if timers.elapsed() >= super::TIMER_INTERVAL {
                        dp2.run_timers();
                        crate::vport::linger::release_due(std::time::Instant::now());
                        timers = std::time::Instant::now();
                    }
                    if dp2.port_table().stats().version != a2.load().version {
                        a2.store(Arc::new(Assignment::of(&dp2, n)));
                        // Idle PMDs rebuild their wait sets now, not
                        // at their next timeout.
                        for s in &idle2 {
                            s.waker.wake();
                        }
                    }
                    std::thread::park_timeout(interval);
                }
            },
        )?);
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

    /// Each PMD's idle-path counters (index = PMD).
    pub fn idle_stats(&self) -> Vec<IdleStats> {
        self.idle.iter().map(|s| s.stats()).collect()
    }

    /// Each PMD thread's kernel thread id (`/proc/self/task/TID`), `None`
    /// until the thread has started.
    pub fn thread_ids(&self) -> Vec<Option<u32>> {
        self.idle
            .iter()
            .map(|s| Some(s.tid.load(Ordering::Relaxed)).filter(|&t| t != 0))
            .collect()
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
        for s in &self.idle {
            s.waker.wake();
        }
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

/// What a PMD thread's loop reads.
struct LoopCtx<'a> {
    i: usize,
    dp: &'a Datapath,
    stop: &'a AtomicBool,
    assignment: &'a ArcSwap<Assignment>,
    backoff: Backoff,
    idle: &'a IdleShared,
}

/// The body of PMD thread `ctx.i` (module docs).
fn pmd_loop(pmd: &mut Pmd, ctx: &LoopCtx<'_>) {
    let backoff = ctx.backoff;
    let mut idler = Idler::new(ctx);
    let mut empty = 0u32;
    while !ctx.stop.load(Ordering::Relaxed) {
        let a = ctx.assignment.load();
        let mine: &[RxqRef] = a.per_pmd.get(ctx.i).map_or(&[], |v| v.as_slice());
        let got = pmd.poll_assigned(mine);
        if let Some(hb) = pmd.heartbeat() {
            hb.beat();
        }
        if got > 0 {
            empty = 0;
            idler.busy();
            continue;
        }
        empty = empty.saturating_add(1);
        if empty == 1 || empty >= backoff.empty_rounds {
            // Idle: collect completions first (a dry pool cannot receive).
            pmd.reap();
        }
        if empty >= backoff.empty_rounds {
            let timeout = idler.prepare(a.version, mine);
            drop(a);
            pmd.park();
            idler.wait(timeout);
            pmd.wake();
        }
    }
    pmd.flush();
    pmd.detach_thread();
}

/// A PMD's idle side: its wait set and the participant that builds it
/// (module docs, "Blocking on rx").
struct Idler<'a> {
    ctx: &'a LoopCtx<'a>,
    /// Resolves the assignment's ports while building the set; offline
    /// otherwise. `None`: no participant slot, so timed sleeps only.
    reader: Option<Participant>,
    /// `None` until the first idle wait, or after the OS refused one:
    /// then the PMD parks on a timer (stop unparks it).
    set: Option<WaitSet>,
    /// The assignment version `set` was built for.
    built_for: Option<u64>,
    /// Every own queue's wait fd is in `set`.
    covered: bool,
    /// The next timed sleep.
    sleep: Duration,
}

impl<'a> Idler<'a> {
    fn new(ctx: &'a LoopCtx<'a>) -> Self {
        let reader = if ctx.backoff.rx_wait {
            match ctx.dp.rcu().register(&format!("pmd{}-wait", ctx.i)) {
                Ok(mut p) => {
                    p.offline();
                    Some(p)
                }
                Err(e) => {
                    tracing::warn!(pmd = ctx.i, error = %e, "PMD cannot block on rx: timed sleeps only");
                    None
                }
            }
        } else {
            None
        };
        Idler {
            ctx,
            reader,
            set: None,
            built_for: None,
            covered: false,
            sleep: ctx.backoff.min_sleep,
        }
    }

    /// Traffic: the next timed sleep starts short again.
    #[inline]
    fn busy(&mut self) {
        self.sleep = self.ctx.backoff.min_sleep;
    }

    /// Before a wait: rebuilds the set if the assignment changed since;
    /// returns the wait's timeout.
    fn prepare(&mut self, version: u64, mine: &[RxqRef]) -> Duration {
        if self.built_for != Some(version) {
            self.rebuild(version, mine);
        }
        let b = &self.ctx.backoff;
        if self.covered {
            b.max_block
        } else {
            let d = self.sleep;
            self.sleep = (d * 2).min(b.max_sleep);
            d
        }
    }

    /// A new wait set over `mine`'s wait fds, registered while a snapshot
    /// pins their ports; the old set is closed.
    fn rebuild(&mut self, version: u64, mine: &[RxqRef]) {
        let (ctx, idle) = (self.ctx, self.ctx.idle);
        self.built_for = Some(version);
        self.set = None;
        self.covered = false;
        bump(&idle.rebuilds);
        let mut set = match WaitSet::new(&idle.waker) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pmd = ctx.i, error = %e, "PMD cannot create its wait set: timed sleeps");
                return;
            }
        };
        let mut covered = false;
        if let Some(reader) = self.reader.as_mut() {
            covered = true;
            reader.online();
            let snap = ctx.dp.port_table().load(reader);
            for rq in mine {
                let Some(e) = snap.map().get(rq.port.ofport) else {
                    continue; // Deleted: not polled either; a new assignment follows.
                };
                if e.generation() != rq.port.generation {
                    continue; // Replaced: likewise.
                }
                match e.vport().rx_wait_fd(rq.queue) {
                    Some(fd) => {
                        if let Err(err) = set.add_rx(fd) {
                            tracing::warn!(pmd = ctx.i, port = e.name(), queue = rq.queue, error = %err,
                                "cannot watch an rx queue: timed sleeps");
                            covered = false;
                        }
                    }
                    None => covered = false,
                }
            }
            drop(snap);
            reader.offline();
        }
        idle.rx_fds.store(set.rx_fds(), Ordering::Relaxed);
        self.set = Some(set);
        self.covered = covered;
    }

    /// Blocks (the PMD is parked: rcu-offline, watchdog-idle).
    fn wait(&mut self, timeout: Duration) {
        let idle = self.ctx.idle;
        bump(if self.covered {
            &idle.rx_waits
        } else {
            &idle.timed_sleeps
        });
        let Some(set) = self.set.as_mut() else {
            std::thread::park_timeout(timeout);
            return;
        };
        match set.wait(&idle.waker, timeout) {
            Ok(w) => {
                if w.rx {
                    bump(&idle.rx_wakeups);
                }
                if w.kicked {
                    bump(&idle.kicks);
                }
                if w.timeout {
                    bump(&idle.timeouts);
                }
            }
            Err(e) => {
                tracing::warn!(pmd = self.ctx.i, error = %e, "PMD wait failed: timed sleeps");
                self.set = None;
                self.covered = false;
                std::thread::park_timeout(timeout);
            }
        }
    }
}

#[inline]
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
