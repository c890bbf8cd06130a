//! Flow-install latency while ports churn: xswitch's decoupled tables against
//! one global mutex (issue 3, "flow table independent of ports").
//!
//! # What
//!
//! Open vSwitch's kernel datapath used to guard every write — port add and
//! delete *and* flow installs — with the one `ovs_mutex`, and a port add held
//! it for the whole device setup (netdev creation under RTNL). While ports
//! came and went, flow installs queued behind device setup, and upcalls that
//! needed a flow dropped packets (background/ovs-flow-table-decouple.txt).
//! xswitch never had that lock: a flow install takes only the `flow_table`
//! writer lock, a port add or delete only the `ports` lock (DESIGN.md "Locks
//! and reclamation"). This binary measures what that buys, in one run.
//!
//! # The threads (the same in every scenario)
//!
//! * **churn** — adds and deletes ports as fast as it can, cycling over 100
//!   names with 50 present at a time: each step adds one absent name and
//!   deletes one present name. An add builds a real [`MemoryPort`] (every
//!   ring allocated: the device-setup work) and publishes it with
//!   [`PortTable::add`]; a delete is [`PortTable::del_by_name`], the full
//!   deletion protocol (unregister, unpublish, `Rcu::defer` of the old map and
//!   of the port). Four further ports (`uplink1..4`) never change.
//! * **reclaimer** — [`Rcu::spawn_reclaimer`] polling every millisecond: the
//!   deleted ports' rings are freed there, after their grace period.
//! * **pmd** — a PMD-like reader registered with the rcu domain: per batch of
//!   32 keys it loads the port table and the flow-table snapshot, classifies
//!   every key, runs each matched rule's `output` port checks, drops both
//!   snapshots and announces a quiescent point. It spins like a busy PMD
//!   (or backs off, with `--pmd-backoff`; see below).
//! * **installer** (the measuring thread) — installs one rule at a time with
//!   [`FlowTable::add`] into a table of 1,000 permanent rules and deletes it
//!   again 16 installs later (strict delete), so the table stays at
//!   1,000–1,016 rules. Each install's latency (an `Instant` before and after
//!   the call, lock wait included) goes into a preallocated vector; so does
//!   each delete's, and how many port operations completed while the install
//!   was in flight.
//!
//! # The two variants, and why the comparison is fair
//!
//! Both variants use the *same* [`PortTable`], [`FlowTable`], [`MemoryPort`]
//! and [`Rcu`] code and run the same closures: every write goes through
//! [`Writers::write`], and only that function differs.
//!
//! * `decoupled` (xswitch): `write` just runs the closure. A port add builds
//!   its `MemoryPort` holding no lock and takes the `ports` lock inside
//!   `PortTable::add`; a flow install takes only the `flow_table` lock inside
//!   `FlowTable::add`.
//! * `global-mutex` (OVS before the fix): the writer sides of both tables
//!   live behind one `std::sync::Mutex<Tables>`, and `write` holds it for the
//!   whole closure — for a port add that is the `MemoryPort` construction
//!   plus the publication, as `ovs_vport_cmd_new` held `ovs_mutex` across
//!   `new_vport`. The tables' own locks are still taken inside it,
//!   uncontended, so the work is identical; what differs is only which lock
//!   a flow install can wait for. Readers stay lock-free in both, as the
//!   kernel's were (RCU) before and after the fix.
//!
//! Each variant also runs *idle* (no churn thread; pmd, reclaimer and
//! installer unchanged), the baseline that shows what churn adds.
//!
//! # Reading the figures
//!
//! The machine this runs on has 2 cores shared with other jobs, and the pmd
//! spins, so with churn on three busy threads share two CPUs: some install
//! latency is waiting for a CPU, not for a lock. Per scenario the bench
//! prints where each install's time went — the wait before its operation
//! started (the global mutex; nothing when decoupled), the table operation
//! itself, and the release after it (the global mutex's unlock, which may
//! wake a blocked port writer and hand it the CPU) — the installer's
//! run-queue wait and context switches (Linux `schedstat` and `status`;
//! voluntary = blocked, e.g. on a futex; involuntary = preempted), how many port operations completed while an
//! install was in flight, and the churn thread's own port-op latencies (how
//! long a global-mutex install can be stuck behind one).
//!
//! With a spinning pmd on one of two cores, the churn thread and the
//! installer time-share the other one, and the scheduler then serialises
//! them more than the mutex does: the installer mostly runs while the churn
//! thread is off the CPU and not holding anything. `--pmd-backoff`
//! (`cargo bench -p xswitch-benches --bench decouple -- --pmd-backoff`) is
//! the diagnostic for that: the pmd does one batch per millisecond and is
//! offline in between, as an idle PMD backs off, so the two writers get a
//! core each — as they do on a switch whose PMDs have dedicated cores — and
//! the lock is what remains between them.
//!
//! # Modes
//!
//! `cargo bench -p xswitch-benches --bench decouple` (the process gets
//! `--bench`) runs 500,000 installs per scenario, in 10 rounds that
//! interleave the four scenarios (alternating their order), so drift on the
//! shared machine hits them alike; under a minute in all. Without `--bench`
//! (`cargo test --benches`) it runs 2 rounds of 250 installs per scenario
//! and only checks that every scenario produced sane numbers: all
//! installs recorded, ordered percentiles, pmd and churn threads live
//! before and after the measurement, lookups hitting, the table back to its size, every deleted port torn down
//! and no rcu protocol violation.

use dataplane::actions::Action;
use dataplane::classifier::{FlowTable, RuleSpec};
use dataplane::flow_key::{ethertype, field, FlowKey, FlowMatch};
use dataplane::port_table::PortTable;
use dataplane::rcu::Rcu;
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Rules that stay in the table for the whole scenario.
const PERMANENT_RULES: u32 = 1_000;
/// Installs a rule lives before the installer deletes it again.
const WINDOW: usize = 16;
/// Priority of the permanent rules and of the measured installs.
const PERMANENT_PRIORITY: u16 = 100;
const INSTALL_PRIORITY: u16 = 200;
/// Port names the churn thread cycles over, and how many exist at a time.
const CHURN_NAMES: usize = 100;
const CHURN_PRESENT: usize = 50;
/// Ports that never change (ofports 1..=STABLE_PORTS).
const STABLE_PORTS: u32 = 4;
/// Rules output to ofports 1..=OUTPUT_SPREAD: the stable ports and most of
/// the churned ones (which get the lowest free ofports above them).
const OUTPUT_SPREAD: u32 = 60;
/// Keys per PMD batch, and distinct keys the PMD cycles over.
const BATCH: usize = 32;
const READER_KEYS: usize = 256;
/// Port operations the churn thread completes before measuring starts.
const CHURN_WARMUP_OPS: u64 = 2 * CHURN_NAMES as u64;
/// Port-op latencies the churn thread keeps (preallocated).
const CHURN_SAMPLES: usize = 1 << 17;
/// Install counts: full (`--bench`) and short (`cargo test --benches`).
/// Each scenario runs in rounds, interleaved with the others.
const FULL_INSTALLS: usize = 500_000;
const FULL_ROUNDS: usize = 10;
const SHORT_INSTALLS: usize = 500;
const SHORT_ROUNDS: usize = 2;
/// The pmd's sleep between batches with `--pmd-backoff` (the reclaimer's
/// polling interval: wake-ups as rare as the reclaimer's).
const PMD_BACKOFF: Duration = Duration::from_millis(1);
/// How long to wait for a helper thread to get going before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The two tables. Readers hold a clone (lock-free read sides); writers
/// reach them only through [`Writers`].
#[derive(Clone)]
struct Tables {
    ports: Arc<PortTable>,
    flows: Arc<FlowTable>,
}

/// How the pmd thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PmdMode {
    /// Back to back, like a PMD under load (the default).
    Spin,
    /// One batch, then offline for [`PMD_BACKOFF`], like an idle PMD
    /// (`--pmd-backoff`; a diagnostic, see the module docs).
    Backoff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// xswitch: each table's own writer lock only.
    Decoupled,
    /// OVS before the fix: one mutex around every write to either table.
    GlobalMutex,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Decoupled => "decoupled",
            Variant::GlobalMutex => "global-mutex",
        }
    }
}

/// The writer side of a variant; see the module docs.
enum Writers {
    Decoupled(Tables),
    Global(Mutex<Tables>),
}

impl Writers {
    fn new(variant: Variant, tables: Tables) -> Self {
        match variant {
            Variant::Decoupled => Writers::Decoupled(tables),
            Variant::GlobalMutex => Writers::Global(Mutex::new(tables)),
        }
    }

    /// Runs one whole write operation: with no outer lock (decoupled) or
    /// holding the global mutex throughout (global-mutex).
    #[inline]
    fn write<R>(&self, op: impl FnOnce(&Tables) -> R) -> R {
        match self {
            Writers::Decoupled(t) => op(t),
            Writers::Global(m) => {
                let t = m.lock().unwrap_or_else(PoisonError::into_inner);
                op(&t)
            }
        }
    }
}

/// A match of one of four shapes (so the table has four subtables), made
/// unique by `ip` and `l4`.
fn shaped_match(shape: usize, ip: u32, l4: u16) -> FlowMatch {
    let mut m = FlowMatch::ANY;
    let ipv4 = u64::from(ethertype::IPV4);
    match shape % 4 {
        0 => {
            m.set_masked(field::DL_TYPE, ipv4, 0xffff);
            m.set_masked(field::NW_DST, u64::from(ip), 0xffff_ffff);
        }
        1 => {
            m.set_masked(field::DL_TYPE, ipv4, 0xffff);
            m.set_masked(field::NW_PROTO, 17, 0xff);
            m.set_masked(field::NW_SRC, u64::from(ip), 0xffff_ffff);
        }
        2 => {
            m.set_masked(field::DL_TYPE, ipv4, 0xffff);
            m.set_masked(field::NW_PROTO, 6, 0xff);
            m.set_masked(field::TP_DST, u64::from(l4), 0xffff);
        }
        _ => {
            m.set_masked(field::IN_PORT, 1, 0xffff_ffff);
            m.set_masked(
                field::DL_DST,
                0x0200_0000_0000 | u64::from(ip),
                0xffff_ffff_ffff,
            );
        }
    }
    m
}

/// Permanent rule `i` (10.0.x.x, tp_dst < 1000).
fn permanent_spec(i: u32) -> RuleSpec {
    RuleSpec {
        priority: PERMANENT_PRIORITY,
        ..RuleSpec::new(
            shaped_match(i as usize, 0x0a00_0000 | i, i as u16),
            vec![Action::Output(1 + i % OUTPUT_SPREAD)],
        )
    }
}

/// Measured install `j` (192.168.x.x, tp_dst >= 1000): distinct from every
/// permanent rule and from the other installs inside the window.
fn install_spec(j: usize) -> RuleSpec {
    let n = j as u32;
    RuleSpec {
        priority: INSTALL_PRIORITY,
        ..RuleSpec::new(
            shaped_match(j, 0xc0a8_0000 | (n & 0xffff), 1000 + (n % 60_000) as u16),
            vec![Action::Output(1 + n % OUTPUT_SPREAD)],
        )
    }
}

/// Keys the PMD classifies: each satisfies one permanent rule (a rule's
/// normalised key matches the rule) and no install.
fn reader_keys() -> Vec<FlowKey> {
    let step = PERMANENT_RULES as usize / READER_KEYS;
    (0..READER_KEYS)
        .map(|k| permanent_spec((k * step) as u32).matcher.key)
        .collect()
}

fn memory_port(name: String) -> Arc<MemoryPort> {
    Arc::new(MemoryPort::new(MemoryPortConfig::new(name)))
}

/// A counter on its own cache line (written by one thread, read by the
/// installer).
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Scheduler accounting of the calling thread (Linux `/proc/thread-self`).
#[derive(Clone, Copy, Default)]
struct Sched {
    on_cpu_ns: u64,
    runq_wait_ns: u64,
    voluntary: u64,
    involuntary: u64,
}

impl Sched {
    fn now() -> Option<Sched> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut it = stat.split_whitespace().map(str::parse::<u64>);
        let on_cpu_ns = it.next()?.ok()?;
        let runq_wait_ns = it.next()?.ok()?;
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .trim()
                .parse()
                .ok()
        };
        Some(Sched {
            on_cpu_ns,
            runq_wait_ns,
            voluntary: field("voluntary_ctxt_switches:")?,
            involuntary: field("nonvoluntary_ctxt_switches:")?,
        })
    }

    fn plus(self, o: Sched) -> Sched {
        Sched {
            on_cpu_ns: self.on_cpu_ns + o.on_cpu_ns,
            runq_wait_ns: self.runq_wait_ns + o.runq_wait_ns,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
        }
    }

    fn since(self, earlier: Sched) -> Sched {
        Sched {
            on_cpu_ns: self.on_cpu_ns.saturating_sub(earlier.on_cpu_ns),
            runq_wait_ns: self.runq_wait_ns.saturating_sub(earlier.runq_wait_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// Nearest-rank percentiles of a sample.
struct Dist {
    sorted: Vec<u64>,
}

impl Dist {
    fn new(mut v: Vec<u64>) -> Dist {
        v.sort_unstable();
        Dist { sorted: v }
    }
    fn len(&self) -> usize {
        self.sorted.len()
    }
    /// Adds another sample's values to this one.
    fn absorb(&mut self, other: Dist) {
        self.sorted.extend(other.sorted);
        self.sorted.sort_unstable();
    }
    /// The `q`-quantile (0 < q <= 1); 0 for an empty sample.
    fn q(&self, q: f64) -> u64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.sorted[rank - 1]
    }
    /// Fraction of the values above `x`.
    fn share_above(&self, x: u64) -> f64 {
        let n = self.sorted.len();
        let above = n - self.sorted.partition_point(|&v| v <= x);
        above as f64 / n.max(1) as f64
    }
    fn max(&self) -> u64 {
        self.sorted.last().copied().unwrap_or(0)
    }
    fn mean(&self) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        self.sorted.iter().map(|&x| x as f64).sum::<f64>() / self.sorted.len() as f64
    }
}

/// What one scenario measured.
struct Outcome {
    variant: Variant,
    churn: bool,
    /// Each install, call to return (what the requester waits).
    install_ns: Dist,
    /// The part of each install spent before its operation started: the
    /// global mutex's wait (0 plus a clock read when decoupled).
    outer_wait_ns: Dist,
    /// The table operation itself (incl. the `flow_table` lock).
    in_op_ns: Dist,
    /// From the end of the operation to the return: the global mutex's
    /// release (waking a blocked port writer); a clock read when decoupled.
    release_ns: Dist,
    delete_ns: Dist,
    /// Port operations that completed while each install was in flight.
    ops_during_install: Dist,
    wall: Duration,
    port_ops: u64,
    port_add_ns: Dist,
    port_del_ns: Dist,
    pmd_batches: u64,
    pmd_hits: u64,
    sched: Option<Sched>,
}

impl Outcome {
    fn empty(variant: Variant, churn: bool) -> Outcome {
        Outcome {
            variant,
            churn,
            install_ns: Dist::new(Vec::new()),
            outer_wait_ns: Dist::new(Vec::new()),
            in_op_ns: Dist::new(Vec::new()),
            release_ns: Dist::new(Vec::new()),
            delete_ns: Dist::new(Vec::new()),
            ops_during_install: Dist::new(Vec::new()),
            wall: Duration::ZERO,
            port_ops: 0,
            port_add_ns: Dist::new(Vec::new()),
            port_del_ns: Dist::new(Vec::new()),
            pmd_batches: 0,
            pmd_hits: 0,
            sched: None,
        }
    }

    /// Adds a later round of the same scenario.
    fn absorb(&mut self, o: Outcome) {
        debug_assert!(self.variant == o.variant && self.churn == o.churn);
        self.install_ns.absorb(o.install_ns);
        self.outer_wait_ns.absorb(o.outer_wait_ns);
        self.in_op_ns.absorb(o.in_op_ns);
        self.release_ns.absorb(o.release_ns);
        self.delete_ns.absorb(o.delete_ns);
        self.ops_during_install.absorb(o.ops_during_install);
        self.port_add_ns.absorb(o.port_add_ns);
        self.port_del_ns.absorb(o.port_del_ns);
        self.wall += o.wall;
        self.port_ops += o.port_ops;
        self.pmd_batches += o.pmd_batches;
        self.pmd_hits += o.pmd_hits;
        self.sched = match (self.sched, o.sched) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            _ => None,
        };
    }
}

/// Waits (yielding) until `ready` holds, or panics after [`START_TIMEOUT`].
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(
            t.elapsed() < START_TIMEOUT,
            "{what} did not happen within {START_TIMEOUT:?}"
        );
        thread::yield_now();
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn elapsed_ns(t: Instant) -> u64 {
    nanos(t.elapsed())
}

/// Runs one scenario: a fresh switch, its threads, `warmup + installs`
/// measured installs (the first `warmup` not recorded), then the checks
/// that the switch ended consistent.
fn run(
    variant: Variant,
    churn: bool,
    pmd_mode: PmdMode,
    installs: usize,
    warmup: usize,
) -> Outcome {
    let rcu = Rcu::new();
    let tables = Tables {
        ports: Arc::new(PortTable::new(rcu.clone())),
        flows: Arc::new(FlowTable::new()),
    };
    for i in 1..=STABLE_PORTS {
        tables
            .ports
            .add(memory_port(format!("uplink{i}")), Some(i))
            .expect("adding a stable port to an empty table");
    }
    let names: Vec<String> = (0..CHURN_NAMES).map(|i| format!("churn{i}")).collect();
    for name in &names[..CHURN_PRESENT] {
        tables
            .ports
            .add(memory_port(name.clone()), None)
            .expect("adding an initial churn port");
    }
    tables
        .flows
        .add_batch((0..PERMANENT_RULES).map(permanent_spec));
    let keys = reader_keys();
    let writers = Writers::new(variant, tables.clone());
    let reclaimer = rcu
        .spawn_reclaimer(Duration::from_millis(1))
        .expect("spawning the rcu reclaimer");

    let stop = AtomicBool::new(false);
    let port_ops = Counter::default();
    let pmd_batches = Counter::default();
    let pmd_hits = Counter::default();
    let mut out = Outcome::empty(variant, churn);

    thread::scope(|s| {
        let reader = &tables;
        let (stop, port_ops, pmd_batches, pmd_hits) = (&stop, &port_ops, &pmd_batches, &pmd_hits);
        let (keys, rcu) = (&keys, &rcu);
        s.spawn(move || {
            let mut pmd = rcu.register("bench-pmd").expect("registering the pmd");
            let (mut batches, mut hits) = (0u64, 0u64);
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut delivered = 0u64;
                {
                    let ports = reader.ports.load(&pmd);
                    let cls = reader.flows.snapshot();
                    for k in &keys[at..at + BATCH] {
                        if let Some(rule) = cls.lookup(k) {
                            hits += 1;
                            for a in rule.actions() {
                                if let Action::Output(p) = *a {
                                    delivered += u64::from(ports.output(p).is_ok());
                                }
                            }
                        }
                    }
                }
                pmd.quiescent();
                black_box(delivered);
                at = (at + BATCH) % keys.len();
                batches += 1;
                pmd_batches.set(batches);
                pmd_hits.set(hits);
                if pmd_mode == PmdMode::Backoff {
                    pmd.offline();
                    thread::sleep(PMD_BACKOFF);
                    pmd.online();
                }
            }
        });

        let churn_handle = churn.then(|| {
            let (writers, names) = (&writers, &names);
            s.spawn(move || {
                let mut add_ns = Vec::with_capacity(CHURN_SAMPLES);
                let mut del_ns = Vec::with_capacity(CHURN_SAMPLES);
                let mut ops = 0u64;
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let add = &names[(k + CHURN_PRESENT) % CHURN_NAMES];
                    let del = &names[k % CHURN_NAMES];
                    let t = Instant::now();
                    writers.write(|t| {
                        // The device setup, then the publication.
                        let port = memory_port(add.clone());
                        t.ports
                            .add(port, None)
                            .expect("adding an absent churn port");
                    });
                    if add_ns.len() < CHURN_SAMPLES {
                        add_ns.push(elapsed_ns(t));
                    }
                    ops += 1;
                    port_ops.set(ops);
                    let t = Instant::now();
                    writers.write(|t| {
                        t.ports
                            .del_by_name(del)
                            .expect("deleting a present churn port");
                    });
                    if del_ns.len() < CHURN_SAMPLES {
                        del_ns.push(elapsed_ns(t));
                    }
                    ops += 1;
                    port_ops.set(ops);
                    k += 1;
                }
                (add_ns, del_ns)
            })
        });

        // The helpers are live before the measurement ...
        wait_for("a pmd batch", || pmd_batches.get() > 0);
        if churn {
            wait_for("churn warm-up", || port_ops.get() >= CHURN_WARMUP_OPS);
        }

        let mut install_ns = Vec::with_capacity(installs);
        let mut wait_ns = Vec::with_capacity(installs);
        let mut in_op_ns = Vec::with_capacity(installs);
        let mut release_ns = Vec::with_capacity(installs);
        let mut delete_ns = Vec::with_capacity(installs);
        let mut ops_during = Vec::with_capacity(installs);
        let mut live: VecDeque<FlowMatch> = VecDeque::with_capacity(WINDOW + 1);
        let (mut sched0, mut ops0, mut batches0, mut t_start) = (None, 0, 0, Instant::now());
        for j in 0..warmup + installs {
            if j == warmup {
                sched0 = Sched::now();
                ops0 = port_ops.get();
                batches0 = pmd_batches.get();
                t_start = Instant::now();
            }
            let spec = install_spec(j);
            let m = spec.matcher;
            let before = port_ops.get();
            let t = Instant::now();
            // `entered` / `left`: when the install got past any outer lock
            // and when its operation ended, before any outer lock is
            // released (both variants pay these two clock reads).
            let (entered, rule, left) =
                writers.write(|t| (Instant::now(), t.flows.add(spec), Instant::now()));
            let done = Instant::now();
            let overlapped = port_ops.get() - before;
            drop(rule);
            live.push_back(m);
            let mut del_dt = None;
            if live.len() > WINDOW {
                let old = live.pop_front().expect("window is not empty");
                let t = Instant::now();
                let n = writers.write(|t| t.flows.delete(&old, Some(INSTALL_PRIORITY)));
                del_dt = Some(elapsed_ns(t));
                assert_eq!(
                    n, 1,
                    "strict delete of a rule installed {WINDOW} installs ago"
                );
            }
            if j >= warmup {
                install_ns.push(nanos(done - t));
                wait_ns.push(nanos(entered - t));
                in_op_ns.push(nanos(left - entered));
                release_ns.push(nanos(done - left));
                ops_during.push(overlapped);
                delete_ns.extend(del_dt);
            }
        }
        out.wall = t_start.elapsed();
        out.sched = match (sched0, Sched::now()) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        };
        let (ops1, batches1) = (port_ops.get(), pmd_batches.get());
        out.port_ops = ops1 - ops0;
        out.pmd_batches = batches1 - batches0;
        // ... and still live after it, so they ran (or were runnable) all
        // along, however the shared machine scheduled them.
        wait_for("a pmd batch after the measurement", || {
            pmd_batches.get() > batches1
        });
        if churn {
            wait_for("a port op after the measurement", || port_ops.get() > ops1);
        }
        for old in live.drain(..) {
            let n = writers.write(|t| t.flows.delete(&old, Some(INSTALL_PRIORITY)));
            assert_eq!(n, 1, "deleting a remaining install");
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = churn_handle {
            let (add, del) = h.join().expect("churn thread panicked");
            out.port_add_ns = Dist::new(add);
            out.port_del_ns = Dist::new(del);
        }
        out.install_ns = Dist::new(install_ns);
        out.outer_wait_ns = Dist::new(wait_ns);
        out.in_op_ns = Dist::new(in_op_ns);
        out.release_ns = Dist::new(release_ns);
        out.delete_ns = Dist::new(delete_ns);
        out.ops_during_install = Dist::new(ops_during);
    });
    out.pmd_hits = pmd_hits.get();

    // The switch must end consistent: table back to its size, every
    // deleted port torn down by the reclaimer, no protocol violation.
    assert_eq!(
        tables.flows.len(),
        PERMANENT_RULES as usize,
        "flow table size after the scenario"
    );
    let present: Vec<String> = tables.ports.list().into_iter().map(|p| p.name).collect();
    for name in &present {
        tables
            .ports
            .del_by_name(name)
            .expect("deleting a listed port");
    }
    drop(reclaimer);
    rcu.barrier(Duration::from_secs(10))
        .expect("rcu barrier with no participant left");
    let st = tables.ports.stats();
    assert_eq!(st.ports, 0);
    assert_eq!(
        st.destroyed, st.deleted,
        "every deleted port torn down: {st:?}"
    );
    assert_eq!(st.protocol_violations, 0, "rcu protocol violations: {st:?}");
    assert_eq!(
        st.external_refs_at_destroy, 0,
        "nothing outside held a port: {st:?}"
    );

    out
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// The sanity checks of both modes: every install recorded, percentiles
/// ordered and non-zero, the pmd classifying (and hitting) throughout, churn
/// overlapping the measurement exactly when it is on.
fn check(o: &Outcome, installs: usize) {
    let what = format!("{} churn={}", o.variant.name(), o.churn);
    let d = &o.install_ns;
    assert_eq!(d.len(), installs, "{what}: installs recorded");
    assert_eq!(o.outer_wait_ns.len(), installs, "{what}: waits recorded");
    assert_eq!(o.delete_ns.len(), installs, "{what}: deletes recorded");
    assert!(
        d.q(0.5) > 0,
        "{what}: a zero p50 means the clock did not tick"
    );
    assert!(
        d.q(0.5) <= d.q(0.99) && d.q(0.99) <= d.q(0.999) && d.q(0.999) <= d.max(),
        "{what}: percentiles out of order"
    );
    assert!(
        o.outer_wait_ns.max() <= d.max()
            && o.in_op_ns.max() <= d.max()
            && o.release_ns.max() <= d.max(),
        "{what}: a part longer than its whole install"
    );
    assert!(
        o.in_op_ns.q(0.5) > 0,
        "{what}: a table operation that took no time"
    );
    assert!(
        o.pmd_hits > 0,
        "{what}: the pmd's lookups never hit a permanent rule"
    );
    if o.churn {
        assert!(
            o.port_add_ns.len() > 0 && o.port_del_ns.len() > 0,
            "{what}: no port-op latencies"
        );
    } else {
        assert_eq!(o.port_ops, 0, "{what}: port operations without churn");
        assert_eq!(
            o.ops_during_install.max(),
            0,
            "{what}: port operations without churn"
        );
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<13} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} | {:>10} {:>10} {:>8}",
        "variant",
        "churn",
        "installs",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "mean us",
        "port op/s",
        "pmd batch/s",
        "del p99"
    );
    for o in outcomes {
        let d = &o.install_ns;
        let secs = o.wall.as_secs_f64().max(1e-9);
        println!(
            "{:<13} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9.1} | {:>10.0} {:>10.0} {:>8}",
            o.variant.name(),
            if o.churn { "on" } else { "off" },
            d.len(),
            us(d.q(0.5)),
            us(d.q(0.99)),
            us(d.q(0.999)),
            us(d.max()),
            d.mean() / 1e3,
            o.port_ops as f64 / secs,
            o.pmd_batches as f64 / secs,
            us(o.delete_ns.q(0.99)),
        );
    }
    println!();
    println!(
        "where an install's time went, us: wait = before its operation started (the global mutex), \
         op = the table operation (incl. the flow_table lock), release = after it (the global mutex's \
         unlock, which wakes a blocked port writer); decoupled pays only clock reads outside op"
    );
    println!(
        "  {:<13} {:>5}  {:<7} {:>7} {:>7} {:>8} {:>9}  {:>12}",
        "variant", "churn", "part", "p50", "p99", "p99.9", "max", ">1us share"
    );
    for o in outcomes {
        let parts = [
            ("wait", &o.outer_wait_ns),
            ("op", &o.in_op_ns),
            ("release", &o.release_ns),
        ];
        for (i, (part, d)) in parts.into_iter().enumerate() {
            let (name, churn) = if i == 0 {
                (o.variant.name(), if o.churn { "on" } else { "off" })
            } else {
                ("", "")
            };
            println!(
                "  {name:<13} {churn:>5}  {part:<7} {:>7} {:>7} {:>8} {:>9}  {:>11.2}%",
                us(d.q(0.5)),
                us(d.q(0.99)),
                us(d.q(0.999)),
                us(d.max()),
                100.0 * d.share_above(1_000),
            );
        }
    }
    println!();
    println!("installer thread during the measurement (schedstat/status):");
    for o in outcomes {
        let label = format!(
            "{} churn={}",
            o.variant.name(),
            if o.churn { "on" } else { "off" }
        );
        match o.sched {
            Some(s) => {
                let wall = o.wall.as_nanos().max(1) as f64;
                let n = o.install_ns.len().max(1) as f64;
                println!(
                    "  {label:<24} wall {:>7.2} s  on-CPU {:>5.1}%  run-queue wait {:>5.1}%  \
                     blocked (voluntary cs) {:>7.3}/install  preempted (involuntary cs) {:>7.3}/install",
                    o.wall.as_secs_f64(),
                    100.0 * s.on_cpu_ns as f64 / wall,
                    100.0 * s.runq_wait_ns as f64 / wall,
                    s.voluntary as f64 / n,
                    s.involuntary as f64 / n,
                );
            }
            None => println!("  {label:<24} scheduler accounting unavailable"),
        }
    }
    println!();
    println!("port operations completed while one install was in flight, and the churn thread's port-op latency:");
    for o in outcomes.iter().filter(|o| o.churn) {
        let ov = &o.ops_during_install;
        println!(
            "  {:<13} overlapped ops p50 {} p99 {} max {}  | port add p50 {} us p99 {} us, port del p50 {} us p99 {} us",
            o.variant.name(),
            ov.q(0.5),
            ov.q(0.99),
            ov.max(),
            us(o.port_add_ns.q(0.5)),
            us(o.port_add_ns.q(0.99)),
            us(o.port_del_ns.q(0.5)),
            us(o.port_del_ns.q(0.99)),
        );
    }
}

fn find(outcomes: &[Outcome], variant: Variant, churn: bool) -> &Outcome {
    outcomes
        .iter()
        .find(|o| o.variant == variant && o.churn == churn)
        .expect("every scenario ran")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let pmd_mode = if std::env::args().any(|a| a == "--pmd-backoff") {
        PmdMode::Backoff
    } else {
        PmdMode::Spin
    };
    let (rounds, per_round) = if full {
        (FULL_ROUNDS, FULL_INSTALLS / FULL_ROUNDS)
    } else {
        (SHORT_ROUNDS, SHORT_INSTALLS / SHORT_ROUNDS)
    };
    let warmup = per_round / 10;
    assert!(warmup > WINDOW, "warm-up fills the install window");
    println!(
        "decouple: flow-install latency, {} mode: {rounds} rounds x 4 scenarios x {per_round} installs \
         (+{warmup} warm-up each), {PERMANENT_RULES} permanent rules, churn over {CHURN_NAMES} port names, \
         pmd {}",
        if full { "full" } else { "short (no --bench)" },
        match pmd_mode {
            PmdMode::Spin => "spinning",
            PmdMode::Backoff => "backing off (diagnostic: --pmd-backoff)",
        },
    );
    let scenarios = [
        (Variant::Decoupled, false),
        (Variant::Decoupled, true),
        (Variant::GlobalMutex, false),
        (Variant::GlobalMutex, true),
    ];
    let mut outcomes: Vec<Outcome> = Vec::new();
    for round in 0..rounds {
        // Alternate the order so drift on the shared machine (and whatever
        // the first scenario of a process pays) hits every scenario alike.
        let order: Vec<_> = if round % 2 == 0 {
            scenarios.to_vec()
        } else {
            scenarios.iter().rev().copied().collect()
        };
        for (variant, churn) in order {
            let o = run(variant, churn, pmd_mode, per_round, warmup);
            check(&o, per_round);
            match outcomes
                .iter_mut()
                .find(|x| x.variant == variant && x.churn == churn)
            {
                Some(acc) => acc.absorb(o),
                None => outcomes.push(o),
            }
        }
    }
    outcomes.sort_by_key(|o| (o.variant == Variant::GlobalMutex, o.churn));
    println!();
    print_table(&outcomes);

    let dec = find(&outcomes, Variant::Decoupled, true);
    let glob = find(&outcomes, Variant::GlobalMutex, true);
    let ratio = |q: f64| glob.install_ns.q(q) as f64 / dec.install_ns.q(q).max(1) as f64;
    println!();
    println!(
        "under churn, global-mutex / decoupled: p50 {:.1}x, p99 {:.1}x, p99.9 {:.1}x",
        ratio(0.5),
        ratio(0.99),
        ratio(0.999)
    );
    let p99 = ratio(0.99);
    println!(
        "target p99(global, churn) / p99(decoupled, churn) >= 10x: {} ({p99:.1}x)",
        if p99 >= 10.0 { "met" } else { "MISSED" }
    );
    if !full {
        println!("short mode: sanity checks passed for all four scenarios");
    }
}
