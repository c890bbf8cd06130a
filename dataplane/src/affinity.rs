//! Keeping the helper threads' kernel work on chosen CPUs.
//!
//! # Why
//! A port change is mostly kernel work: a new port populates and pins a
//! UMEM and attaches XDP; a deleted one closes AF_XDP sockets
//! (`xsk_release`, then `synchronize_rcu_expedited`) and frees pages. On a
//! kernel built without full preemption that work gives the CPU up only at
//! its own `cond_resched` points, a millisecond or more apart. Measured on
//! the 2-core test machine (`flow add` while 100 ports churn,
//! control/tests/daemon.rs): with the helper threads free to run on both
//! CPUs, both were in turn held by such work, and 1-2 % of `flow add`
//! round trips on a new connection waited 0.6-4 ms for a CPU (p99
//! 2.5-4.3x idle, 5 runs). Confining the port lane, the reclaimer, the
//! housekeeping and link threads to one CPU left the other free for the
//! management threads and their clients: p99 0.95-1.66x idle (8 runs), at
//! the same rate of port changes. It also keeps that work off PMD CPUs,
//! where it would stall forwarding.
//!
//! # What
//! [`confine_current_thread`] sets the calling thread's affinity mask.
//! The kernel work a thread starts (RCU callbacks, the AF_XDP release
//! work item) is queued on the CPU it ran on, so it stays there too.
//! [`spawn_confined`] starts a thread that does so first, and returns
//! only once it has: from then on the thread's mask is the one it keeps,
//! for whoever looks (`/proc/PID/task/*/status`, a test, an operator).

use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Restricts the calling thread to `cpus`. An empty list leaves it where
/// it is (any CPU of the process's mask).
pub fn confine_current_thread(cpus: &[usize]) -> nix::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    // Pid 0: the calling thread (sched_setaffinity takes a thread id).
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// [`confine_current_thread`], logging a failure (the thread then runs
/// unconfined, which costs latency, not correctness).
pub fn confine_or_warn(what: &str, cpus: &[usize]) {
    if let Err(e) = confine_current_thread(cpus) {
        tracing::warn!(thread = what, ?cpus, error = %e, "cannot confine thread to its CPUs");
    }
}

/// Spawns a thread named `name` that confines itself to `cpus` (empty:
/// not confined; a failure is logged) and then runs `f`. Returns once the
/// thread is confined, so its placement is settled when the caller goes
/// on (the daemon says it is ready only after all its threads are).
pub fn spawn_confined<F, T>(name: &str, cpus: Vec<usize>, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (placed, wait) = mpsc::sync_channel::<()>(1);
    let what = name.to_owned();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            confine_or_warn(&what, &cpus);
            // The spawner may have stopped waiting only by unwinding.
            let _ = placed.send(());
            f()
        })?;
    // An error means the thread ended before sending, which it does not
    // do short of a panic in the logging; it is then not running anywhere.
    let _ = wait.recv();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::sched_getaffinity;

    fn mask() -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap())
            .collect()
    }

    #[test]
    fn a_thread_is_confined_to_the_cpus_given_and_an_empty_list_keeps_its_mask() {
        std::thread::spawn(|| {
            let all = mask();
            confine_current_thread(&[]).unwrap();
            assert_eq!(mask(), all);
            let first = all[0];
            confine_current_thread(&[first]).unwrap();
            assert_eq!(mask(), vec![first]);
        })
        .join()
        .unwrap();
    }

    /// The affinity list `/proc` shows for this process's thread `name`.
    /// A scan of `/proc/self/task` can miss a thread while other tests'
    /// threads come and go (its directory is read by position): seen in
    /// 2 of 30 runs of the whole suite. So up to three scans, back to back:
    /// too quick for a thread that has not yet run to get a CPU, so a
    /// missing wait for it still fails.
    fn cpus_of_thread(name: &str) -> Option<String> {
        (0..3).find_map(|_| scan_for_thread(name))
    }

    fn scan_for_thread(name: &str) -> Option<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let comm = std::fs::read_to_string(p.join("comm")).ok()?;
                (comm.trim() == name).then(|| std::fs::read_to_string(p.join("status")).ok())?
            })
            .next()?
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|l| l.trim().to_owned())
    }

    #[test]
    fn a_spawned_thread_is_confined_before_spawn_returns() {
        // The spawner keeps to one CPU and confines its threads to another:
        // a new thread starts on the spawner's CPU, which the spawner holds
        // until it blocks, so without the wait it would read the old mask.
        let all = mask();
        let (home, target) = (all[0], *all.last().unwrap());
        std::thread::spawn(move || {
            confine_current_thread(&[home]).unwrap();
            for i in 0..20 {
                let name = format!("confined-{i}");
                let (tx, rx) = mpsc::channel::<()>();
                let h = spawn_confined(&name, vec![target], move || {
                    // Parked here while its mask is read from outside.
                    rx.recv().unwrap();
                    mask()
                })
                .unwrap();
                assert_eq!(cpus_of_thread(&name), Some(target.to_string()), "{name}");
                tx.send(()).unwrap();
                assert_eq!(h.join().unwrap(), vec![target]);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_cpu_beyond_the_set_size_is_an_error() {
        std::thread::spawn(|| {
            assert!(confine_current_thread(&[CpuSet::count() + 1]).is_err());
        })
        .join()
        .unwrap();
    }
}
