//! CPU priority of the management threads.
//!
//! # Why
//! Measured on the 2-core test machine (kernel built `PREEMPT_NONE`),
//! `flow add` while 100 ports churn: the handler itself takes p50 12 µs,
//! but the request waits for three threads to be scheduled (poller,
//! worker, client). Port churn keeps the CPUs busy with kernel work that
//! yields only at its own `cond_resched` points: UMEM zeroing in the port
//! lane, page frees and `synchronize_rcu` in teardown, the AF_XDP
//! release work in kworkers. At normal priority a woken poller or worker
//! competes with that work as an equal and waited up to 2-3 ms
//! (perf sched).
//!
//! # What
//! * The poller and the general lane run `SCHED_FIFO` at priority
//!   [`RT_PRIORITY`] (the lowest real-time priority): a woken one takes
//!   the CPU at the next preemption point from every normal thread, the
//!   PMDs included. The work is microseconds per request.
//! * A general-lane worker drops to normal priority while it answers a
//!   request that is not [`is_brief`] (a flow file, a dump, stats), so a
//!   large request cannot keep a PMD off its CPU for long; it returns to
//!   real time afterwards.
//! * The port lane runs at nice [`PORT_LANE_NICE`]: port changes are CPU
//!   heavy and nobody waits on them in a hot loop.
//! * Without the privilege (`CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` of 0)
//!   the threads stay at normal priority; the daemon logs it once and
//!   works the same, with the latencies of a normal thread.
//!
//! The kernel's real-time throttling (`sched_rt_runtime_us`, 95 % by
//! default) bounds what a misbehaving real-time thread could take.

use super::protocol::Request;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// The port lane's nice value (0 is the default, 19 the lowest).
pub const PORT_LANE_NICE: i32 = 10;

/// `SCHED_FIFO` priority of the poller and the general lane (1..=99; 1 is
/// below every kernel real-time thread, e.g. the RCU and migration ones).
pub const RT_PRIORITY: i32 = 1;

/// Longest request line answered at real-time priority: a few dozen
/// flows. Longer ones are answered at normal priority.
pub const BRIEF_REQUEST_BYTES: usize = 4096;

/// True when `req` (a line of `len` bytes) is answered at real-time
/// priority: small, bounded work (a ping, a few flow adds, a strict flow
/// delete, a trace, the port list).
pub fn is_brief(req: &Request, len: usize) -> bool {
    len <= BRIEF_REQUEST_BYTES
        && matches!(
            req,
            Request::Ping
                | Request::FlowAdd { .. }
                | Request::FlowDel { strict: true, .. }
                | Request::Trace { .. }
                | Request::PortList
        )
}

/// Set once the "no real-time priority" message was logged.
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// Sets the calling thread's scheduling policy: `SCHED_FIFO` at
/// [`RT_PRIORITY`] when `realtime`, else `SCHED_OTHER` (its nice value
/// is kept).
#[allow(unsafe_code)] // sched_setscheduler(2) on our own thread: no wrapper in our dependencies.
fn set_policy(realtime: bool) -> io::Result<()> {
    let (policy, prio) = if realtime {
        (nix::libc::SCHED_FIFO, RT_PRIORITY)
    } else {
        (nix::libc::SCHED_OTHER, 0)
    };
    let param = nix::libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call, which
    // only reads it; pid 0 is the calling thread.
    let r = unsafe { nix::libc::sched_setscheduler(0, policy, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Puts the calling thread in the real-time class (see the module docs).
/// Returns whether it is there; a refusal is logged once per process.
pub fn enter_realtime() -> bool {
    match set_policy(true) {
        Ok(()) => true,
        Err(e) => {
            if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    error = %e,
                    "management threads run at normal priority (SCHED_FIFO needs CAP_SYS_NICE): \
                     flow changes may wait behind port churn"
                );
            }
            false
        }
    }
}

/// While alive, the calling thread runs at normal priority; dropping it
/// returns the thread to real time. Does nothing when `active` is false.
pub struct NormalPriority {
    active: bool,
}

impl NormalPriority {
    /// Drops the calling real-time thread to normal priority when
    /// `active`.
    pub fn enter(active: bool) -> NormalPriority {
        let active = active && set_policy(false).is_ok();
        NormalPriority { active }
    }
}

impl Drop for NormalPriority {
    fn drop(&mut self) {
        if self.active {
            if let Err(e) = set_policy(true) {
                tracing::debug!(error = %e, "management worker: back to SCHED_FIFO failed");
            }
        }
    }
}

/// Lowers the calling thread's CPU priority to [`PORT_LANE_NICE`].
///
/// A port add burns milliseconds of CPU (zeroing its UMEM, building
/// sockets); niced, it yields the CPU to everything else. It holds no lock
/// a flow install needs (flow installs take only `flow_table`), so the
/// lower priority cannot invert onto them.
#[allow(unsafe_code)] // setpriority(2) on our own thread: no wrapper in our dependencies.
pub fn lower_to_port_lane() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority only reads its integer arguments; on Linux
    // PRIO_PROCESS with a thread id changes that one thread's nice value.
    let r = unsafe {
        nix::libc::setpriority(
            nix::libc::PRIO_PROCESS,
            tid as nix::libc::id_t,
            PORT_LANE_NICE,
        )
    };
    if r != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "port lane: setpriority failed");
    }
}

/// The calling thread's scheduling policy (`SCHED_*`).
#[cfg(test)]
#[allow(unsafe_code)] // sched_getscheduler(2): no wrapper in our dependencies.
pub fn current_policy() -> i32 {
    // SAFETY: no arguments besides the pid; 0 is the calling thread.
    unsafe { nix::libc::sched_getscheduler(0) }
}

/// Thread `tid`'s scheduling policy (`SCHED_*`), -1 if it is gone.
#[cfg(test)]
#[allow(unsafe_code)] // sched_getscheduler(2): no wrapper in our dependencies.
pub fn policy_of(tid: i32) -> i32 {
    // SAFETY: the only argument is a thread id; a stale one gives ESRCH.
    unsafe { nix::libc::sched_getscheduler(tid) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_flow_changes_are_brief_bulk_requests_are_not() {
        let add = Request::FlowAdd {
            flows: "priority=1,actions=drop".into(),
        };
        assert!(is_brief(&add, 60));
        assert!(!is_brief(&add, BRIEF_REQUEST_BYTES + 1), "a flow file");
        assert!(is_brief(&Request::Ping, 16));
        assert!(!is_brief(&Request::FlowDump, 20));
        assert!(!is_brief(&Request::Stats, 20));
        let loose = Request::FlowDel {
            filter: None,
            strict: false,
        };
        assert!(!is_brief(&loose, 20), "deletes every flow");
        let port = Request::PortAdd {
            ifname: "x".into(),
            mode: None,
            ofport: None,
        };
        assert!(!is_brief(&port, 20));
    }

    #[test]
    fn normal_priority_guard_returns_to_real_time() {
        std::thread::spawn(|| {
            if !enter_realtime() {
                eprintln!("no CAP_SYS_NICE: real-time policy not testable here");
                return;
            }
            assert_eq!(current_policy(), nix::libc::SCHED_FIFO);
            {
                let _g = NormalPriority::enter(true);
                assert_eq!(current_policy(), nix::libc::SCHED_OTHER);
            }
            assert_eq!(current_policy(), nix::libc::SCHED_FIFO);
            let _g = NormalPriority::enter(false);
            assert_eq!(current_policy(), nix::libc::SCHED_FIFO, "inactive guard");
        })
        .join()
        .unwrap();
    }
}
