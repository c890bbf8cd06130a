//! The daemon's link-monitor thread: rtnetlink events → port changes.
//!
//! # What
//! [`LinkWatcher::start`] opens a [`LinkMonitor`] in the calling thread's
//! network namespace (the daemon's), diffs a first dump against the
//! configuration (ports configured before their interface existed attach
//! here), and starts a thread that hands every event to
//! [`Daemon::on_link_event`], and a fresh dump to [`Daemon::resync`]
//! whenever the kernel reports lost notifications (ENOBUFS) or a read
//! fails.
//!
//! # Invariants
//! * An event is acted on as soon as `poll` wakes for it: carrier, running
//!   and queue changes reach the datapath within a millisecond or so of
//!   the kernel's notification (measured in tests/daemon.rs).
//! * The thread never blocks longer than [`POLL`] without looking at its
//!   stop flag; [`LinkWatcher`]'s drop stops and joins it.
//!
//! # Locking
//! Each event takes `config` (inside the daemon) and, below it, `ports`.
//! The monitor itself is owned by the thread.

use super::Daemon;
use crate::monitor::{LinkEvent, LinkMonitor, MonitorConfig, MonitorError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long one wait for events lasts before the stop flag is checked.
pub const POLL: Duration = Duration::from_millis(100);

/// How often detached ports that wait for a retry (an interface missing,
/// or an attach that failed) are retried with a full link dump.
pub const RETRY: Duration = Duration::from_secs(1);

/// Every this many [`RETRY`] periods every link is re-read (a dump and a
/// diff), whatever the notifications said.
pub const REREAD_TICKS: u64 = 2;

/// The running monitor thread; stops on drop.
#[derive(Debug)]
pub struct LinkWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn dump_and_resync(d: &Daemon, mon: &mut LinkMonitor) -> Result<(), MonitorError> {
    let links = mon.dump()?;
    d.resync(&links);
    Ok(())
}

impl LinkWatcher {
    /// Opens the monitor here, resyncs once, and starts the thread,
    /// confined to `cpus` (empty: not confined): a re-attach is a port
    /// add, kernel work that holds a CPU (`dataplane::affinity`).
    pub fn start(
        d: Arc<Daemon>,
        cfg: MonitorConfig,
        cpus: Vec<usize>,
    ) -> Result<LinkWatcher, MonitorError> {
        let mut mon = LinkMonitor::open_with(cfg)?;
        dump_and_resync(&d, &mut mon)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = dataplane::affinity::spawn_confined("xswitch-links", cpus, move || {
            watch(&d, &mut mon, &stop2)
        })
        .map_err(|source| MonitorError::Io {
            op: "spawn monitor thread",
            source,
        })?;
        Ok(LinkWatcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread (within [`POLL`]).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn watch(d: &Daemon, mon: &mut LinkMonitor, stop: &AtomicBool) {
    let mut need_resync = false;
    let mut last_retry = std::time::Instant::now();
    let mut ticks = 0u64;
    while !stop.load(Ordering::Acquire) {
        if last_retry.elapsed() >= RETRY {
            last_retry = std::time::Instant::now();
            ticks += 1;
            // A port whose attach failed gets no new event if its link does
            // not change again: a dump retries it. And every REREAD_TICKS
            // a dump re-reads every link anyway: the queue counts come from
            // an ethtool query made when a notification arrives, which can
            // run before an `ethtool -L` has settled, and no later message
            // corrects it (seen by the chaos harness's queue-change).
            need_resync |= d.has_detached_ports() || ticks.is_multiple_of(REREAD_TICKS);
        }
        // A port the datapath deleted by itself may get no event.
        need_resync |= d.has_lost_ports();
        if need_resync {
            match dump_and_resync(d, mon) {
                Ok(()) => need_resync = false,
                Err(e) => {
                    tracing::warn!(error = %e, "link resync failed; retrying");
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        match mon.next_events(POLL) {
            Ok(evs) => {
                for ev in &evs {
                    match ev {
                        LinkEvent::Resync => {
                            tracing::info!("link notifications lost: resyncing");
                            need_resync = true;
                        }
                        _ if need_resync => {} // superseded by the dump
                        _ => d.on_link_event(ev),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "link monitor read failed; resyncing");
                need_resync = true;
                std::thread::sleep(POLL);
            }
        }
    }
}
