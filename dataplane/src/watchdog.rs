//! The stall watchdog: a soft-lockup detector for PMD threads.
//!
//! # What
//!
//! Every PMD thread owns a [`Heartbeat`]. It bumps a counter once per loop
//! iteration ([`Heartbeat::beat`]) and records what it is working on — rx or
//! tx, which port, which queue ([`Heartbeat::rx`], [`Heartbeat::tx`]). A
//! watchdog thread ([`Watchdog::spawn`], every [`WatchdogConfig::interval`],
//! 10 ms by default) scans the heartbeats; a PMD whose counter has not moved
//! for longer than [`WatchdogConfig::threshold`] (100 ms by default) is
//! reported once per stall episode: one `tracing` warning naming the PMD, the
//! port/queue and the activity it was stuck in, the `stalls` counter goes up,
//! and `max_stall_ms` tracks the longest stall seen (it keeps growing while
//! the episode lasts). When the counter moves again the episode ends with an
//! info line.
//!
//! # Stalled or starved
//!
//! A heartbeat also stops when the PMD is not stuck at all but waits for a
//! CPU: on an overloaded machine (load 10 on 2 cores) PMDs went 255-1,299
//! ms without running. That is not what the watchdog is for (a soft-lockup
//! detector reports a CPU that does not schedule, not a task that is not
//! scheduled), so a PMD thread that said which it is
//! ([`Heartbeat::bind_current_thread`]) is classified when its silence
//! crosses the threshold: if it is runnable (`R` in
//! `/proc/self/task/TID/stat`) and its CPU clock advanced by less than half
//! the threshold during the silence, it is *starved*: logged once per
//! episode and counted in `starved`, not in `stalls`. It is checked again
//! at every scan and becomes a stall as soon as it has had that much CPU
//! without a beat, or is found sleeping. A PMD that spins without beating
//! (it has the CPU) or blocks (it sleeps) is a stall, as is any PMD the
//! watchdog cannot read.
//!
//! This is how the `legacy-semantics` build's tx-queue loop over a port with
//! zero queues (DESIGN.md failure 1, `background/ovs-veth-soft-lockup.txt`)
//! shows up: as a stall "in tx on port P queue Q", not as a silent hang.
//!
//! # Invariants
//!
//! * A PMD that parks (idle backoff) calls [`Heartbeat::idle`] first and
//!   [`Heartbeat::busy`] when it resumes; an idle PMD is never reported, and
//!   its stall clock restarts when it resumes.
//! * A dropped [`Heartbeat`] (PMD exit) is forgotten at the next scan.
//! * One report per episode, however long it lasts.
//!
//! # Cost and locking
//!
//! The PMD side is single-writer relaxed stores to the PMD's own cache line:
//! no lock, no read-modify-write, no fence. Heartbeats are diagnostics; no
//! other memory is ordered by them. The watchdog side takes two private leaf
//! locks (the registry and its scan state), never while holding anything
//! else; scanning is the watchdog thread's job, so PMDs never contend on them.

use crate::flow_key::PortNo;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Reports kept for [`Watchdog::reports`].
const REPORTS_KEPT: usize = 64;

/// Location word: nothing recorded.
const LOC_NONE: u64 = 0;

/// Watchdog timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// Time between scans.
    pub interval: Duration,
    /// A busy PMD whose heartbeat has not moved for longer than this is
    /// reported.
    pub threshold: Duration,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            interval: Duration::from_millis(10),
            threshold: Duration::from_millis(100),
        }
    }
}

/// What a PMD was doing when it last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Polling an rx queue.
    Rx,
    /// Transmitting on a tx queue.
    Tx,
}

impl core::fmt::Display for Activity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Activity::Rx => "rx",
            Activity::Tx => "tx",
        })
    }
}

/// Where a PMD was working: activity, port and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Rx or tx.
    pub activity: Activity,
    /// The port.
    pub port: PortNo,
    /// The queue (truncated to 24 bits).
    pub queue: u32,
}

impl Location {
    /// Layout: port in bits 63..32, activity tag (1 = rx, 2 = tx) in bits
    /// 31..24, queue in bits 23..0. Zero means "none".
    fn pack(self) -> u64 {
        let tag: u64 = match self.activity {
            Activity::Rx => 1,
            Activity::Tx => 2,
        };
        (u64::from(self.port) << 32) | (tag << 24) | u64::from(self.queue & 0x00ff_ffff)
    }

    fn unpack(w: u64) -> Option<Location> {
        let activity = match (w >> 24) & 0xff {
            1 => Activity::Rx,
            2 => Activity::Tx,
            _ => return None,
        };
        Some(Location {
            activity,
            port: (w >> 32) as PortNo,
            queue: (w & 0x00ff_ffff) as u32,
        })
    }
}

impl core::fmt::Display for Location {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} port {} queue {}",
            self.activity, self.port, self.queue
        )
    }
}

/// One stall episode, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallReport {
    /// The PMD's name.
    pub pmd: String,
    /// What it was working on, if it said.
    pub location: Option<Location>,
    /// How long its heartbeat had not moved when reported.
    pub stalled_for: Duration,
}

/// Watchdog counters (`stats`: `watchdog.stalls`, `watchdog.max_stall_ms`,
/// `watchdog.starved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchdogStats {
    /// Stall episodes reported.
    pub stalls: u64,
    /// Episodes of a silent PMD that was runnable but not given the CPU
    /// (module docs, "Stalled or starved"); not stalls.
    pub starved: u64,
    /// The longest stall observed, in milliseconds.
    pub max_stall_ms: u64,
    /// PMDs stalled right now (as of the last scan).
    pub stalled_now: u64,
}

/// The shared part of a heartbeat, written by one PMD.
struct Cell {
    name: String,
    counter: CachePadded<AtomicU64>,
    location: AtomicU64,
    idle: AtomicBool,
    retired: AtomicBool,
    /// The PMD thread, once it said ([`Heartbeat::bind_current_thread`]).
    thread: std::sync::OnceLock<ThreadProbe>,
}

/// The calling thread's kernel thread id (from `/proc/thread-self`), or 0.
pub(crate) fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// How the watchdog looks at a PMD thread from outside: its CPU-time
/// clock and its task id.
#[derive(Debug, Clone, Copy)]
struct ThreadProbe {
    clock: libc::clockid_t,
    tid: u32,
}

impl ThreadProbe {
    /// The calling thread's probe.
    #[allow(unsafe_code)] // pthread_getcpuclockid(3): no wrapper in our dependencies.
    fn current() -> Option<ThreadProbe> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self() is the calling, live thread; `clock` is a
        // valid out-pointer for the duration of the call.
        let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        let tid = current_tid();
        (r == 0 && tid != 0).then_some(ThreadProbe { clock, tid })
    }

    /// CPU time the thread has used; `None` once it is gone.
    #[allow(unsafe_code)] // clock_gettime(2) on the thread's CPU clock.
    fn cpu_time(&self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; an invalid clock (the thread
        // exited) is an error return, not undefined behaviour.
        let r = unsafe { libc::clock_gettime(self.clock, &mut ts) };
        (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// Whether the thread is runnable (state `R`: running or waiting for a
    /// CPU); `None` if its stat cannot be read.
    fn runnable(&self) -> Option<bool> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
        Some(state == 'R')
    }
}

/// What a silent PMD is, when its silence crosses the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Spinning or blocked without a beat, or not readable.
    Stalled,
    /// Runnable, but had less than half the threshold of CPU time.
    Starved,
}

/// The watchdog's memory of one PMD between scans.
struct Track {
    cell: Arc<Cell>,
    last_count: u64,
    last_change: Instant,
    reported: bool,
    /// The thread's CPU time at the first scan that saw it silent.
    cpu_at_silence: Option<Duration>,
    /// This episode was logged and counted as starved.
    starved: bool,
}

impl Track {
    /// Classifies a PMD silent for longer than `threshold`.
    fn verdict(&mut self, threshold: Duration) -> Verdict {
        let Some(probe) = self.cell.thread.get() else {
            return Verdict::Stalled;
        };
        let (Some(now), Some(runnable)) = (probe.cpu_time(), probe.runnable()) else {
            return Verdict::Stalled;
        };
        let base = *self.cpu_at_silence.get_or_insert(now);
        if runnable && now.saturating_sub(base) < threshold / 2 {
            Verdict::Starved
        } else {
            Verdict::Stalled
        }
    }
}

struct Shared {
    config: WatchdogConfig,
    registry: Mutex<Vec<Arc<Cell>>>,
    tracks: Mutex<Vec<Track>>,
    reports: Mutex<Vec<StallReport>>,
    stalls: AtomicU64,
    starved: AtomicU64,
    max_stall_ms: AtomicU64,
    stalled_now: AtomicU64,
}

/// The stall watchdog. Cloning shares it.
#[derive(Clone)]
pub struct Watchdog {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Watchdog")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A PMD's side of the watchdog. Single owner; dropping it retires the PMD.
pub struct Heartbeat {
    cell: Arc<Cell>,
    count: u64,
}

impl core::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("pmd", &self.cell.name)
            .field("count", &self.count)
            .finish()
    }
}

impl Heartbeat {
    /// One loop iteration done: progress.
    #[inline]
    pub fn beat(&mut self) {
        self.count = self.count.wrapping_add(1);
        self.cell.counter.store(self.count, Ordering::Relaxed);
    }

    /// About to poll rx queue `queue` of `port`.
    #[inline]
    pub fn rx(&mut self, port: PortNo, queue: u32) {
        self.set(Location {
            activity: Activity::Rx,
            port,
            queue,
        });
    }

    /// About to transmit on tx queue `queue` of `port`.
    #[inline]
    pub fn tx(&mut self, port: PortNo, queue: u32) {
        self.set(Location {
            activity: Activity::Tx,
            port,
            queue,
        });
    }

    /// Working on no port (classifier, bookkeeping).
    #[inline]
    pub fn clear(&mut self) {
        self.cell.location.store(LOC_NONE, Ordering::Relaxed);
    }

    #[inline]
    fn set(&mut self, l: Location) {
        self.cell.location.store(l.pack(), Ordering::Relaxed);
    }

    /// About to park (idle backoff): not to be reported until
    /// [`Heartbeat::busy`].
    pub fn idle(&mut self) {
        self.cell.idle.store(true, Ordering::Relaxed);
    }

    /// Tells the watchdog that the calling thread is this PMD, so that a
    /// silence can be told apart from a wait for the CPU (module docs,
    /// "Stalled or starved"). Call from the PMD thread; once.
    pub fn bind_current_thread(&self) {
        if let Some(p) = ThreadProbe::current() {
            let _ = self.cell.thread.set(p);
        }
    }

    /// Back from parking: the stall clock starts again.
    pub fn busy(&mut self) {
        self.cell.idle.store(false, Ordering::Relaxed);
        self.beat();
    }

    /// The PMD name this heartbeat reports under.
    pub fn name(&self) -> &str {
        &self.cell.name
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.cell.retired.store(true, Ordering::Relaxed);
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new(WatchdogConfig::default())
    }
}

impl Watchdog {
    /// A watchdog with `config`; no thread runs until [`Watchdog::spawn`].
    pub fn new(config: WatchdogConfig) -> Self {
        Watchdog {
            shared: Arc::new(Shared {
                config,
                registry: Mutex::new(Vec::new()),
                tracks: Mutex::new(Vec::new()),
                reports: Mutex::new(Vec::new()),
                stalls: AtomicU64::new(0),
                starved: AtomicU64::new(0),
                max_stall_ms: AtomicU64::new(0),
                stalled_now: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> WatchdogConfig {
        self.shared.config
    }

    /// A heartbeat for the PMD called `name` (e.g. `"pmd2"`). It starts busy.
    pub fn register(&self, name: &str) -> Heartbeat {
        let cell = Arc::new(Cell {
            name: name.to_owned(),
            counter: CachePadded::new(AtomicU64::new(0)),
            location: AtomicU64::new(LOC_NONE),
            idle: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        });
        lock(&self.shared.registry).push(cell.clone());
        Heartbeat { cell, count: 0 }
    }

    /// One scan at time `now` (the watchdog thread passes `Instant::now()`;
    /// tests pass chosen instants). Returns the stalls that crossed the
    /// threshold in this scan, already logged and counted.
    pub fn scan(&self, now: Instant) -> Vec<StallReport> {
        let threshold = self.shared.config.threshold;
        let mut tracks = lock(&self.shared.tracks);
        {
            // Adopt new heartbeats; forget retired ones.
            let mut reg = lock(&self.shared.registry);
            reg.retain(|c| !c.retired.load(Ordering::Relaxed));
            for cell in reg.iter() {
                if !tracks.iter().any(|t| Arc::ptr_eq(&t.cell, cell)) {
                    tracks.push(Track {
                        cell: cell.clone(),
                        last_count: cell.counter.load(Ordering::Relaxed),
                        last_change: now,
                        reported: false,
                        cpu_at_silence: None,
                        starved: false,
                    });
                }
            }
        }
        tracks.retain(|t| !t.cell.retired.load(Ordering::Relaxed));

        let mut new_reports = Vec::new();
        let mut stalled_now = 0;
        for t in tracks.iter_mut() {
            let count = t.cell.counter.load(Ordering::Relaxed);
            let idle = t.cell.idle.load(Ordering::Relaxed);
            if idle || count != t.last_count {
                if t.reported {
                    tracing::info!(
                        pmd = %t.cell.name,
                        stalled_ms = ms(now.saturating_duration_since(t.last_change)),
                        "watchdog: PMD made progress again"
                    );
                }
                t.last_count = count;
                t.last_change = now;
                t.reported = false;
                t.cpu_at_silence = None;
                t.starved = false;
                continue;
            }
            if t.cpu_at_silence.is_none() {
                t.cpu_at_silence = t.cell.thread.get().and_then(ThreadProbe::cpu_time);
            }
            let stalled_for = now.saturating_duration_since(t.last_change);
            if stalled_for <= threshold {
                continue;
            }
            if !t.reported && t.verdict(threshold) == Verdict::Starved {
                if !t.starved {
                    t.starved = true;
                    self.shared.starved.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        pmd = %t.cell.name,
                        silent_ms = ms(stalled_for),
                        "watchdog: PMD {} starved: runnable but not scheduled for {} ms \
                         (the CPUs are overloaded; not counted as a stall)",
                        t.cell.name,
                        ms(stalled_for)
                    );
                }
                continue;
            }
            stalled_now += 1;
            self.shared
                .max_stall_ms
                .fetch_max(ms(stalled_for), Ordering::Relaxed);
            if t.reported {
                continue;
            }
            t.reported = true;
            self.shared.stalls.fetch_add(1, Ordering::Relaxed);
            let location = Location::unpack(t.cell.location.load(Ordering::Relaxed));
            match location {
                Some(l) => tracing::warn!(
                    pmd = %t.cell.name,
                    activity = %l.activity,
                    port = l.port,
                    queue = l.queue,
                    stalled_ms = ms(stalled_for),
                    "watchdog: PMD {} stalled for {} ms in {}",
                    t.cell.name,
                    ms(stalled_for),
                    l
                ),
                None => tracing::warn!(
                    pmd = %t.cell.name,
                    stalled_ms = ms(stalled_for),
                    "watchdog: PMD {} stalled for {} ms (not on a port)",
                    t.cell.name,
                    ms(stalled_for)
                ),
            }
            new_reports.push(StallReport {
                pmd: t.cell.name.clone(),
                location,
                stalled_for,
            });
        }
        self.shared
            .stalled_now
            .store(stalled_now, Ordering::Relaxed);
        drop(tracks);

        if !new_reports.is_empty() {
            let mut kept = lock(&self.shared.reports);
            kept.extend(new_reports.iter().cloned());
            let excess = kept.len().saturating_sub(REPORTS_KEPT);
            kept.drain(..excess);
        }
        new_reports
    }

    /// The counters.
    pub fn stats(&self) -> WatchdogStats {
        WatchdogStats {
            stalls: self.shared.stalls.load(Ordering::Relaxed),
            starved: self.shared.starved.load(Ordering::Relaxed),
            max_stall_ms: self.shared.max_stall_ms.load(Ordering::Relaxed),
            stalled_now: self.shared.stalled_now.load(Ordering::Relaxed),
        }
    }

    /// The most recent stall reports (up to 64), oldest first.
    pub fn reports(&self) -> Vec<StallReport> {
        lock(&self.shared.reports).clone()
    }

    /// Starts the watchdog thread (`xswitch-watchdog`), scanning every
    /// `config.interval` until the returned handle is dropped.
    pub fn spawn(&self) -> std::io::Result<WatchdogThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let wd = self.clone();
        let stop2 = stop.clone();
        let interval = self.shared.config.interval;
        let handle = std::thread::Builder::new()
            .name("xswitch-watchdog".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    wd.scan(Instant::now());
                    std::thread::park_timeout(interval);
                }
            })?;
        Ok(WatchdogThread {
            stop,
            handle: Some(handle),
        })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The running watchdog thread; stops it when dropped.
pub struct WatchdogThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl core::fmt::Debug for WatchdogThread {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WatchdogThread").finish_non_exhaustive()
    }
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn wd(threshold_ms: u64) -> Watchdog {
        Watchdog::new(WatchdogConfig {
            interval: Duration::from_millis(2),
            threshold: MS * threshold_ms as u32,
        })
    }

    #[test]
    fn location_packs_and_unpacks() {
        for l in [
            Location {
                activity: Activity::Rx,
                port: 0,
                queue: 0,
            },
            Location {
                activity: Activity::Tx,
                port: u32::MAX,
                queue: 0x00ff_ffff,
            },
        ] {
            assert_eq!(Location::unpack(l.pack()), Some(l));
        }
        assert_eq!(Location::unpack(LOC_NONE), None);
    }

    #[test]
    fn stalled_pmd_is_reported_once_with_its_port_and_queue() {
        let w = wd(100);
        let mut hb = w.register("pmd3");
        let t0 = Instant::now();
        hb.tx(7, 2);
        hb.beat();
        assert!(w.scan(t0).is_empty());
        assert!(w.scan(t0 + 50 * MS).is_empty(), "below the threshold");
        let r = w.scan(t0 + 150 * MS);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].pmd, "pmd3");
        assert_eq!(
            r[0].location,
            Some(Location {
                activity: Activity::Tx,
                port: 7,
                queue: 2
            })
        );
        assert_eq!(r[0].stalled_for, 150 * MS);
        assert!(w.scan(t0 + 400 * MS).is_empty(), "one report per episode");
        let s = w.stats();
        assert_eq!(s.stalls, 1);
        assert_eq!(s.max_stall_ms, 400, "max grows while the episode lasts");
        assert_eq!(s.stalled_now, 1);
        assert_eq!(w.reports(), r);
    }

    #[test]
    fn progressing_pmd_is_never_reported() {
        let w = wd(100);
        let mut hb = w.register("pmd0");
        let t0 = Instant::now();
        for i in 0..50u32 {
            hb.rx(1, i % 4);
            hb.beat();
            assert!(w.scan(t0 + MS * 60 * i).is_empty());
        }
        assert_eq!(w.stats(), WatchdogStats::default());
    }

    #[test]
    fn idle_pmd_is_not_reported_and_its_clock_restarts_on_busy() {
        let w = wd(100);
        let mut hb = w.register("pmd1");
        let t0 = Instant::now();
        w.scan(t0);
        hb.idle();
        assert!(w.scan(t0 + 500 * MS).is_empty());
        assert!(w.scan(t0 + 900 * MS).is_empty());
        hb.busy();
        assert!(w.scan(t0 + 950 * MS).is_empty());
        assert!(w.scan(t0 + 1000 * MS).is_empty(), "50 ms since busy");
        assert_eq!(w.scan(t0 + 1100 * MS).len(), 1, "stuck after waking");
        assert_eq!(w.stats().max_stall_ms, 150);
    }

    #[test]
    fn recovery_ends_the_episode_and_a_new_stall_counts_again() {
        let w = wd(100);
        let mut hb = w.register("pmd2");
        let t0 = Instant::now();
        w.scan(t0);
        assert_eq!(w.scan(t0 + 200 * MS).len(), 1);
        hb.beat();
        assert!(w.scan(t0 + 210 * MS).is_empty());
        assert_eq!(w.stats().stalled_now, 0);
        assert_eq!(w.scan(t0 + 320 * MS).len(), 1);
        assert_eq!(w.stats().stalls, 2);
        assert_eq!(w.stats().max_stall_ms, 200);
    }

    #[test]
    fn retired_heartbeat_is_forgotten() {
        let w = wd(100);
        let hb = w.register("pmd4");
        let t0 = Instant::now();
        w.scan(t0);
        drop(hb);
        assert!(w.scan(t0 + 500 * MS).is_empty());
        assert_eq!(w.stats().stalls, 0);
    }

    #[test]
    fn stall_without_location_is_reported_as_not_on_a_port() {
        let w = wd(10);
        let mut hb = w.register("pmd5");
        hb.rx(3, 0);
        hb.clear();
        let t0 = Instant::now();
        w.scan(t0);
        let r = w.scan(t0 + 20 * MS);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].location, None);
    }

    /// Real threads: one PMD loops and beats, another stops beating in the
    /// middle of a "tx" and stays stuck; only the second is reported.
    #[test]
    fn watchdog_thread_reports_the_stuck_pmd_and_not_the_busy_one() {
        // The default threshold: the busy PMD sleeps 1 ms per iteration, so
        // only a 100 ms scheduling hiccup on a loaded machine could flag it.
        let w = wd(100);
        let guard = w.spawn().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (name, stuck) in [("pmd-busy", false), ("pmd-stuck", true)] {
            let mut hb = w.register(name);
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    hb.rx(1, 0);
                    if stuck && i == 10 {
                        hb.tx(9, 1);
                        // The legacy tx loop: spins without a heartbeat.
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(MS);
                        }
                        break;
                    }
                    hb.beat();
                    i += 1;
                    std::thread::sleep(MS);
                }
            }));
        }
        let start = Instant::now();
        while w.stats().stalls == 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(5 * MS);
        }
        // Let the busy one run well past the threshold too.
        std::thread::sleep(200 * MS);
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let reports = w.reports();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].pmd, "pmd-stuck");
        assert_eq!(
            reports[0].location,
            Some(Location {
                activity: Activity::Tx,
                port: 9,
                queue: 1
            })
        );
        assert!(w.stats().max_stall_ms > 100);
    }

    /// Runs `work` on a thread that bound `hb` to itself while a watchdog
    /// thread (threshold 50 ms) scans; returns the watchdog's counters.
    fn watch_bound_thread(work: impl FnOnce(&mut Heartbeat) + Send + 'static) -> WatchdogStats {
        let w = Watchdog::new(WatchdogConfig {
            interval: Duration::from_millis(5),
            threshold: Duration::from_millis(50),
        });
        let mut hb = w.register("pmd-under-test");
        let _scanner = w.spawn().unwrap();
        std::thread::spawn(move || {
            hb.bind_current_thread();
            hb.beat();
            work(&mut hb);
            hb.idle();
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        w.stats()
    }

    #[test]
    fn a_pmd_thread_that_spins_without_beating_is_a_stall() {
        let s = watch_bound_thread(|_| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(400) {
                std::hint::spin_loop();
            }
        });
        assert_eq!(s.stalls, 1, "{s:?}");
    }

    #[test]
    fn a_pmd_thread_that_sleeps_without_beating_is_a_stall() {
        let s = watch_bound_thread(|_| std::thread::sleep(Duration::from_millis(300)));
        assert_eq!((s.stalls, s.starved), (1, 0), "{s:?}");
    }

    /// Sets the calling thread's policy to SCHED_IDLE (allowed without
    /// privileges: it only lowers the priority).
    #[allow(unsafe_code)]
    fn sched_idle() {
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: `p` is valid for the call; pid 0 is the calling thread.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) };
        assert_eq!(r, 0);
    }

    #[test]
    fn a_pmd_thread_kept_off_the_cpu_is_starved_not_stalled() {
        // The "PMD" beats whenever it runs, but runs at SCHED_IDLE on the
        // CPU a normal-priority thread spins on for a second: it is
        // runnable and silent for far longer than the threshold.
        let cpu = [0];
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let hog = std::thread::spawn(move || {
            crate::affinity::confine_current_thread(&cpu).unwrap();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(1) {
                std::hint::spin_loop();
            }
            stop2.store(true, Ordering::Release);
        });
        let s = watch_bound_thread(move |hb| {
            crate::affinity::confine_current_thread(&cpu).unwrap();
            sched_idle();
            while !stop.load(Ordering::Acquire) {
                hb.beat();
            }
        });
        hog.join().unwrap();
        assert_eq!(s.stalls, 0, "starvation counted as a stall: {s:?}");
        assert!(s.starved >= 1, "{s:?}");
    }
}
