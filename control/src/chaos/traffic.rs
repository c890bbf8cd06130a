//! Traffic for a chaos run: the BPF generator flat out into the switch's
//! generator port, and the XDP sink behind the untouched port, sampled
//! every [`SAMPLE`] to find the longest time it received nothing.
//!
//! # Invariants
//! * The generator thread runs in the generator namespace, pinned to its
//!   CPU; it stops within one generator call (~2 ms) of [`Traffic::stop`].
//! * The sampler owns the sink. A gap is the time since the sink's count
//!   last grew, measured only while the watch is armed and no outage is
//!   declared ([`Traffic::outage`]: kill-restart takes the whole switch
//!   down on purpose); the gap clock restarts when an outage ends. A
//!   sampler descheduled for a while cannot invent a gap: the count grew
//!   meanwhile or it did not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xswitch_bpf::gen::netns::{ifindex_of, pin_current_thread, NetnsGuard};
use xswitch_bpf::gen::{GenConfig, Generator, XdpSink};

use super::scenario::ChaosError;
use super::world::World;

/// Sampling period of the untouched port's sink.
pub const SAMPLE: Duration = Duration::from_millis(5);
/// Frame size (with FCS).
pub const FRAME: usize = 64;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    armed: AtomicBool,
    outage: AtomicBool,
    /// Generator frames sent.
    offered: AtomicU64,
    /// Sink frames counted.
    sunk: AtomicU64,
    /// Longest gap (µs) while armed.
    max_gap_us: AtomicU64,
    /// Gap episodes longer than 100 ms.
    long_gaps: AtomicU64,
    gen_error: Mutex<Option<String>>,
}

/// A counter reading.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// When.
    pub at: Instant,
    /// Frames offered by the generator so far.
    pub offered: u64,
    /// Frames the untouched port's sink saw so far.
    pub sunk: u64,
}

impl Reading {
    /// Sink frames per second from `earlier` to `self`.
    pub fn sink_pps_since(&self, earlier: &Reading) -> f64 {
        let s = self.at.duration_since(earlier.at).as_secs_f64();
        if s > 0.0 {
            self.sunk.saturating_sub(earlier.sunk) as f64 / s
        } else {
            0.0
        }
    }
}

/// Running generator and sampler (module docs).
pub struct Traffic {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Traffic").finish_non_exhaustive()
    }
}

impl Traffic {
    /// Attaches the sink, starts the sampler and the generator (on
    /// `gen_cpu`), and waits until the untouched port forwards.
    pub fn start(world: &World, gen_cpu: usize) -> Result<Traffic, ChaosError> {
        let shared = Arc::new(Shared::default());
        let mut t = Traffic {
            shared: shared.clone(),
            threads: Vec::new(),
        };
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let sink_ns = world.sink.name().to_string();
        let s0 = world.s0.clone();
        let sh = shared.clone();
        let tx2 = tx.clone();
        t.threads.push(std::thread::spawn(move || {
            let sink = (|| {
                let _in = NetnsGuard::enter(&sink_ns)?;
                XdpSink::attach(ifindex_of(&s0)?)
            })();
            match sink {
                Ok(s) => {
                    let _ = tx2.send(Ok(()));
                    sample(&s, &sh);
                }
                Err(e) => {
                    let _ = tx2.send(Err(format!("sink: {e}")));
                }
            }
        }));
        recv_ok(&rx)?;
        let cfg = GenConfig::new(
            FRAME,
            world.g_mac,
            world.s_mac,
            std::net::Ipv4Addr::new(10, 78, 0, 1).into(),
            std::net::Ipv4Addr::new(10, 78, 0, 2).into(),
        );
        let gen_ns = world.gen.name().to_string();
        let g0 = world.g0.clone();
        let sh = shared.clone();
        t.threads.push(std::thread::spawn(move || {
            // The thread stays in the generator namespace: BPF_PROG_RUN
            // resolves the redirect's ifindex in the caller's namespace.
            let g = (|| {
                let _ = pin_current_thread(gen_cpu);
                let guard = NetnsGuard::enter(&gen_ns)?;
                let g = Generator::new(ifindex_of(&g0)?, cfg)?;
                Ok::<_, xswitch_bpf::gen::GenError>((guard, g))
            })();
            match g {
                Ok((_in_ns, mut g)) => {
                    let _ = tx.send(Ok(()));
                    while !sh.stop.load(Ordering::Relaxed) {
                        match g.run_until(Duration::from_millis(50), || {
                            sh.stop.load(Ordering::Relaxed)
                        }) {
                            Ok(r) => {
                                sh.offered.fetch_add(r.sent, Ordering::Relaxed);
                            }
                            Err(e) => {
                                *sh.gen_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.to_string());
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("generator: {e}")));
                }
            }
        }));
        recv_ok(&rx)?;
        let t0 = Instant::now();
        while t.shared.sunk.load(Ordering::Relaxed) == 0 {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(ChaosError::Traffic(format!(
                    "the untouched port forwarded nothing within 5 s (generator sent {})",
                    t.shared.offered.load(Ordering::Relaxed)
                )));
            }
            std::thread::sleep(SAMPLE);
        }
        Ok(t)
    }

    /// The counters now.
    pub fn reading(&self) -> Reading {
        Reading {
            at: Instant::now(),
            offered: self.shared.offered.load(Ordering::Relaxed),
            sunk: self.shared.sunk.load(Ordering::Relaxed),
        }
    }

    /// Starts (true) or stops (false) the untouched-port gap watch.
    pub fn arm(&self, on: bool) {
        self.shared.armed.store(on, Ordering::Release);
    }

    /// Declares that the switch is down on purpose (true) or should be
    /// forwarding again (false): gaps are not counted in between.
    pub fn outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::Release);
    }

    /// Waits until the untouched port's sink count grows past its value
    /// now; returns how long that took.
    pub fn wait_forwarding(&self, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let c0 = self.shared.sunk.load(Ordering::Relaxed);
        while t0.elapsed() < timeout {
            if self.shared.sunk.load(Ordering::Relaxed) > c0 {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// Longest untouched-port gap while armed, and how many gaps exceeded
    /// 100 ms.
    pub fn gaps(&self) -> (Duration, u64) {
        (
            Duration::from_micros(self.shared.max_gap_us.load(Ordering::Relaxed)),
            self.shared.long_gaps.load(Ordering::Relaxed),
        )
    }

    /// The generator's last error, if it had one.
    pub fn gen_error(&self) -> Option<String> {
        self.shared
            .gen_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the generator and the sampler (the sink detaches).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop();
    }
}

fn recv_ok(rx: &mpsc::Receiver<Result<(), String>>) -> Result<(), ChaosError> {
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ChaosError::Traffic(e)),
        Err(_) => Err(ChaosError::Traffic("a traffic thread did not start".into())),
    }
}

/// The sampler loop (module docs).
fn sample(sink: &XdpSink, sh: &Shared) {
    let mut last = 0u64;
    let mut last_change = Instant::now();
    let mut in_long_gap = false;
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(SAMPLE);
        let Ok(c) = sink.counts() else { continue };
        let now = Instant::now();
        sh.sunk.store(c.packets, Ordering::Relaxed);
        let watching = sh.armed.load(Ordering::Acquire) && !sh.outage.load(Ordering::Acquire);
        if c.packets > last || !watching {
            last = c.packets;
            last_change = now;
            in_long_gap = false;
            continue;
        }
        let gap = now.duration_since(last_change);
        let us = gap.as_micros() as u64;
        sh.max_gap_us.fetch_max(us, Ordering::Relaxed);
        if gap > Duration::from_millis(100) && !in_long_gap {
            in_long_gap = true;
            sh.long_gaps.fetch_add(1, Ordering::Relaxed);
        }
    }
}
