//! Port churn under full-speed readers, with real threads.
//!
//! Reader threads (PMD stand-ins) load the port table every batch, look ports
//! up, keep a [`PortRef`] across batches as a pending tx batch would, and
//! announce a quiescent point at every batch boundary; now and then one parks
//! (offline) and comes back. Meanwhile a control thread adds, deletes and
//! state-flips ports thousands of times and a reclaimer thread tears deleted
//! ports down (and the control thread polls too, racing it). The test
//! proves:
//!
//! * no reader ever sees a port whose teardown has run (the destroy hook marks
//!   it; readers check the mark on every port they touch, including ports
//!   resolved from a `PortRef` kept since an earlier batch);
//! * every deleted port is torn down exactly once, its vport dropped exactly
//!   once, by a poller — never in a reader thread nor inside `del` — and in
//!   deferral order even with two pollers racing (the teardown finds no other
//!   owner: zero protocol violations);
//! * no port leaks: after the final barrier and the table's drop, every vport
//!   ever created has been dropped;
//! * churn never disturbs a port that is not being changed (a permanent port
//!   always passes the output checks);
//! * deleting ports never waits for a PMD, even one stuck mid-batch.

use dataplane::packet::{PacketBatch, PacketPool};
use dataplane::port_table::{PortEntry, PortRef, PortTable};
use dataplane::rcu::Rcu;
use dataplane::stats::DropReason;
use dataplane::vport::{PortState, TxError, Vport};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ports the test can create (at most one per op, plus the permanent one).
const MAX_PORTS: usize = OPS + 1;
/// Control operations (add / del / state flip).
const OPS: usize = 10_000;
/// Ofports the churn uses; ofport 1 is the permanent port.
const CHURN_OFPORTS: u32 = 16;
const READERS: usize = 3;
const T: Duration = Duration::from_secs(10);

/// What the test knows about every port it ever created.
struct Ledger {
    torn_down: Vec<AtomicBool>,
    dropped: Vec<AtomicU32>,
    created: AtomicUsize,
    live: AtomicUsize,
    /// Names of threads in which a vport was dropped.
    drop_threads: Mutex<Vec<String>>,
}

impl Ledger {
    fn new() -> Arc<Ledger> {
        Arc::new(Ledger {
            torn_down: (0..MAX_PORTS).map(|_| AtomicBool::new(false)).collect(),
            dropped: (0..MAX_PORTS).map(|_| AtomicU32::new(0)).collect(),
            created: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            drop_threads: Mutex::new(Vec::new()),
        })
    }
}

struct StressPort {
    id: usize,
    name: String,
    state: PortState,
    ledger: Arc<Ledger>,
}

impl StressPort {
    fn create(ledger: &Arc<Ledger>) -> Arc<dyn Vport> {
        let id = ledger.created.fetch_add(1, Ordering::SeqCst);
        assert!(id < MAX_PORTS, "ledger too small");
        ledger.live.fetch_add(1, Ordering::SeqCst);
        Arc::new(StressPort {
            id,
            name: format!("p{id}"),
            state: PortState::up(4),
            ledger: ledger.clone(),
        })
    }
}

impl Vport for StressPort {
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

thread_local! {
    /// Set while the control thread runs `reclaim` itself.
    static IN_POLL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for StressPort {
    fn drop(&mut self) {
        self.ledger.dropped[self.id].fetch_add(1, Ordering::SeqCst);
        self.ledger.live.fetch_sub(1, Ordering::SeqCst);
        let t = std::thread::current();
        let mut name = t.name().unwrap_or("<unnamed>").to_owned();
        if name == "control" && IN_POLL.with(|f| f.get()) {
            name = "control (polling)".into();
        }
        let mut threads = self.ledger.drop_threads.lock().unwrap();
        if !threads.contains(&name) {
            threads.push(name);
        }
    }
}

/// The id behind an entry (the test knows every vport is a StressPort,
/// named `p<id>`).
fn id_of(e: &PortEntry) -> usize {
    e.name()[1..].parse().unwrap()
}

/// "Using" a port: it must not have been torn down.
fn use_port(ledger: &Ledger, e: &PortEntry) {
    let id = id_of(e);
    assert!(
        !ledger.torn_down[id].load(Ordering::SeqCst),
        "reader uses port {} (ofport {}) after its teardown",
        e.name(),
        e.ofport()
    );
    assert_eq!(ledger.dropped[id].load(Ordering::SeqCst), 0);
}

#[derive(Default)]
struct ReaderTally {
    batches: u64,
    lookups: u64,
    delivered: u64,
    dropped: [u64; DropReason::COUNT],
    parks: u64,
}

#[test]
fn churn_under_full_speed_readers_frees_each_port_once_and_never_early() {
    let start = Instant::now();
    let ledger = Ledger::new();
    let rcu = Rcu::new();
    let l2 = ledger.clone();
    let table = Arc::new(PortTable::with_destroy_hook(
        rcu.clone(),
        Arc::new(move |e: &PortEntry| {
            let was = l2.torn_down[id_of(e)].swap(true, Ordering::SeqCst);
            assert!(!was, "port {} torn down twice", e.name());
        }),
    ));
    // The permanent port: never deleted, never flipped.
    let permanent = table.add(StressPort::create(&ledger), Some(1)).unwrap();
    let reclaimer = rcu.spawn_reclaimer(Duration::from_micros(200)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let batches_total = Arc::new(AtomicU64::new(0));

    let mut readers = Vec::new();
    for r in 0..READERS {
        let (table, ledger, stop, rcu) = (table.clone(), ledger.clone(), stop.clone(), rcu.clone());
        let batches_total = batches_total.clone();
        readers.push(
            std::thread::Builder::new()
                .name(format!("reader-{r}"))
                .spawn(move || {
                    let mut p = rcu.register(&format!("reader-{r}")).unwrap();
                    let mut rng = StdRng::seed_from_u64(r as u64);
                    let mut tally = ReaderTally::default();
                    // A "pending tx batch" kept across batch boundaries.
                    let mut pending: Option<PortRef> = None;
                    while !stop.load(Ordering::Relaxed) {
                        {
                            let snap = table.load(&p);
                            // Step 3: flush what the last batch left.
                            if let Some(r) = pending.take() {
                                match snap.resolve(r) {
                                    Ok((e, _)) => {
                                        use_port(&ledger, e);
                                        tally.delivered += 1;
                                    }
                                    Err(reason) => tally.dropped[reason as usize] += 1,
                                }
                            }
                            let (e, n) = snap
                                .output(permanent.ofport)
                                .expect("the permanent port always passes");
                            assert!(n >= 1);
                            use_port(&ledger, e);
                            for _ in 0..32 {
                                let ofport = rng.gen_range(1..=CHURN_OFPORTS + 1);
                                tally.lookups += 1;
                                if let Some(e) = snap.get(ofport) {
                                    use_port(&ledger, e);
                                }
                                match snap.output(ofport) {
                                    Ok((e, n)) => {
                                        assert!(n >= 1, "output with zero tx queues");
                                        tally.delivered += 1;
                                        if pending.is_none() && ofport != permanent.ofport {
                                            pending = Some(e.port_ref());
                                        }
                                    }
                                    Err(reason) => tally.dropped[reason as usize] += 1,
                                }
                            }
                        }
                        p.quiescent();
                        tally.batches += 1;
                        if tally.batches % 2048 == 0 {
                            // Idle backoff: park offline, come back.
                            tally.parks += 1;
                            p.offline();
                            std::thread::sleep(Duration::from_micros(100));
                            p.online();
                        }
                    }
                    batches_total.fetch_add(tally.batches, Ordering::Relaxed);
                    tally
                })
                .unwrap(),
        );
    }

    let (t2, l3) = (table.clone(), ledger.clone());
    let control = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let mut rng = StdRng::seed_from_u64(0xc0ffee);
            let (mut adds, mut dels, mut flips) = (0u64, 0u64, 0u64);
            for i in 0..OPS {
                let ofport = rng.gen_range(2..=CHURN_OFPORTS);
                let present = t2.with_port(ofport, |_| ()).is_some();
                match rng.gen_range(0..10) {
                    0..=3 if !present => {
                        t2.add(StressPort::create(&l3), Some(ofport)).unwrap();
                        adds += 1;
                    }
                    0..=5 if present => {
                        t2.del(ofport).unwrap();
                        dels += 1;
                    }
                    _ if present => {
                        match rng.gen_range(0..4) {
                            0 => t2.set_carrier(ofport, rng.gen()),
                            1 => t2.set_running(ofport, rng.gen()),
                            2 => t2.set_admin_up(ofport, rng.gen()),
                            _ => t2.set_tx_queues(ofport, rng.gen_range(0..3)),
                        }
                        .unwrap();
                        flips += 1;
                    }
                    _ => {
                        t2.add(StressPort::create(&l3), None)
                            .map(|r| {
                                // An auto-numbered port: delete it right away.
                                t2.del(r.ofport).unwrap();
                            })
                            .unwrap();
                        adds += 1;
                        dels += 1;
                    }
                }
                if i % 8 == 0 {
                    // A second poller racing the reclaimer thread: teardown
                    // order must hold across pollers.
                    IN_POLL.with(|f| f.set(true));
                    t2.reclaim();
                    IN_POLL.with(|f| f.set(false));
                }
                if i % 64 == 0 {
                    std::thread::yield_now();
                }
            }
            (adds, dels, flips)
        })
        .unwrap();

    let (adds, dels, flips) = control.join().unwrap();
    // Let readers see the final table for a while too.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<ReaderTally> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    drop(reclaimer);
    rcu.barrier(T).unwrap();

    // Exactly once, never early, never in a reader or in `del`.
    let st = table.stats();
    assert_eq!(st.added, adds + 1);
    assert_eq!(st.deleted, dels);
    assert_eq!(st.destroyed, dels, "every deleted port torn down");
    assert_eq!(st.protocol_violations, 0);
    assert_eq!(st.external_refs_at_destroy, 0);
    let created = ledger.created.load(Ordering::SeqCst);
    let torn: usize = (0..created)
        .filter(|&i| ledger.torn_down[i].load(Ordering::SeqCst))
        .count();
    let dropped_once: usize = (0..created)
        .filter(|&i| ledger.dropped[i].load(Ordering::SeqCst) == 1)
        .count();
    assert_eq!(torn as u64, dels);
    assert_eq!(dropped_once as u64, dels, "each deleted vport dropped once");
    for i in 0..created {
        assert_eq!(
            ledger.torn_down[i].load(Ordering::SeqCst),
            ledger.dropped[i].load(Ordering::SeqCst) == 1,
            "port p{i}: torn down iff dropped"
        );
    }
    let threads = ledger.drop_threads.lock().unwrap().clone();
    // Only pollers drop vports: the reclaimer, the control thread while it
    // polls, and this thread in the final barrier — never a reader, never
    // the control thread inside `add`/`del`.
    assert!(
        threads
            .iter()
            .all(|t| !t.starts_with("reader-") && t != "control"),
        "vports dropped in {threads:?}"
    );
    // No leak: the ports still published go with the table.
    let still = st.ports;
    assert_eq!(ledger.live.load(Ordering::SeqCst), still);
    drop(table);
    assert_eq!(ledger.live.load(Ordering::SeqCst), 0, "leaked vports");
    assert_eq!(rcu.pending(), 0);

    let batches: u64 = tallies.iter().map(|t| t.batches).sum();
    let delivered: u64 = tallies.iter().map(|t| t.delivered).sum();
    let parks: u64 = tallies.iter().map(|t| t.parks).sum();
    let mut drops = [0u64; DropReason::COUNT];
    for t in &tallies {
        for (d, n) in drops.iter_mut().zip(t.dropped) {
            *d += n;
        }
    }
    assert!(batches > 0 && delivered > 0);
    assert!(
        drops[DropReason::NoPort as usize] > 0,
        "churn produced no missing-port lookups"
    );
    eprintln!(
        "ops={OPS} adds={adds} dels={dels} flips={flips} batches={batches} \
         lookups={} delivered={delivered} parks={parks} drops={:?} elapsed={:?}",
        tallies.iter().map(|t| t.lookups).sum::<u64>(),
        DropReason::ALL
            .iter()
            .filter(|r| drops[**r as usize] > 0)
            .map(|r| (r.as_str(), drops[*r as usize]))
            .collect::<Vec<_>>(),
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn deletion_never_waits_for_a_pmd_stuck_mid_batch() {
    let ledger = Ledger::new();
    let rcu = Rcu::new();
    let table = Arc::new(PortTable::new(rcu.clone()));
    for ofport in 1..=50 {
        table
            .add(StressPort::create(&ledger), Some(ofport))
            .unwrap();
    }
    let (tx_loaded, rx_loaded) = std::sync::mpsc::channel();
    let (tx_release, rx_release) = std::sync::mpsc::channel::<()>();
    let (t2, r2) = (table.clone(), rcu.clone());
    let pmd = std::thread::Builder::new()
        .name("stuck-pmd".into())
        .spawn(move || {
            let mut p = r2.register("stuck-pmd").unwrap();
            {
                let snap = t2.load(&p);
                tx_loaded.send(snap.map().len()).unwrap();
                // Stuck mid-batch, holding the snapshot.
                rx_release.recv().unwrap();
                assert_eq!(snap.map().len(), 50, "its snapshot is unchanged");
                for e in snap.map().iter() {
                    assert_eq!(
                        e.output_check().err(),
                        Some(DropReason::PortUnregistering),
                        "step 1 reaches even a stale snapshot"
                    );
                }
            }
            p.quiescent();
        })
        .unwrap();
    assert_eq!(rx_loaded.recv().unwrap(), 50);

    let t0 = Instant::now();
    for ofport in 1..=50 {
        table.del(ofport).unwrap();
        table.reclaim();
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "deletes took {took:?}");
    assert_eq!(
        table.stats().destroyed,
        0,
        "nothing torn down under the PMD"
    );
    assert_eq!(ledger.live.load(Ordering::SeqCst), 50);
    assert!(matches!(
        rcu.synchronize(Duration::from_millis(20)),
        Err(dataplane::rcu::RcuError::Timeout { ref laggards, .. }) if laggards == &["stuck-pmd".to_string()]
    ));

    tx_release.send(()).unwrap();
    pmd.join().unwrap();
    rcu.barrier(T).unwrap();
    assert_eq!(table.stats().destroyed, 50);
    assert_eq!(ledger.live.load(Ordering::SeqCst), 0);
}
