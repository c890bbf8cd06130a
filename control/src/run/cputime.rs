//! CPU time of this process's threads, by thread name: how `run` measures a
//! PMD's `busy_pct`.
//!
//! A PMD thread is named `pmd<i>` ([`PmdThreads`]); its CPU time comes from
//! `/proc/self/task/<tid>/schedstat` (nanoseconds on CPU, first field), or
//! from `stat`'s utime + stime in clock ticks when schedstat is missing.
//! Busy percent over an interval is CPU-time delta over wall-time delta. A
//! PMD polls a few dozen empty rounds before it backs off to sleep, so an
//! idle PMD shows a little CPU; a saturated one shows ~100 %.
//!
//! [`PmdThreads`]: dataplane::datapath::PmdThreads

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// USER_HZ: the unit of `/proc/<pid>/stat` times, 100 on every Linux ABI.
const USER_HZ: u64 = 100;

/// CPU time used so far by each thread of this process, by thread name
/// (threads sharing a name are summed).
pub fn threads_cpu_time() -> HashMap<String, Duration> {
    let mut out: HashMap<String, Duration> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else {
            continue;
        };
        if let Some(t) = task_cpu_time(&p) {
            *out.entry(comm.trim().to_string()).or_default() += t;
        }
    }
    out
}

fn task_cpu_time(task: &std::path::Path) -> Option<Duration> {
    if let Ok(s) = std::fs::read_to_string(task.join("schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(Duration::from_nanos(ns));
        }
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    // Fields after the parenthesised comm (which may contain spaces):
    // state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Busy percent of named threads between two samples.
#[derive(Debug, Clone)]
pub struct BusyMeter {
    at: Instant,
    cpu: HashMap<String, Duration>,
}

impl BusyMeter {
    /// A first sample, now.
    pub fn start() -> Self {
        BusyMeter {
            at: Instant::now(),
            cpu: threads_cpu_time(),
        }
    }

    /// CPU time of thread `name` since the first sample, in percent of
    /// the wall time since then (0 if the thread is unknown).
    pub fn busy_pct(&self, now: &BusyMeter, name: &str) -> f64 {
        let wall = now.at.saturating_duration_since(self.at).as_secs_f64();
        let before = self.cpu.get(name).copied().unwrap_or_default();
        let after = now.cpu.get(name).copied().unwrap_or_default();
        if wall <= 0.0 {
            return 0.0;
        }
        let pct = after.saturating_sub(before).as_secs_f64() / wall * 100.0;
        (pct * 10.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spinning_thread_is_busy_and_a_sleeping_one_is_not() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let spin = std::thread::Builder::new()
            .name("cputime-spin".into())
            .spawn(move || {
                let mut x = 0u64;
                while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
            .unwrap();
        let s3 = stop.clone();
        let sleep = std::thread::Builder::new()
            .name("cputime-nap".into())
            .spawn(move || {
                while !s3.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .unwrap();
        let a = BusyMeter::start();
        std::thread::sleep(Duration::from_millis(400));
        let b = BusyMeter::start();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spin.join().unwrap();
        sleep.join().unwrap();
        let busy = a.busy_pct(&b, "cputime-spin");
        let idle = a.busy_pct(&b, "cputime-nap");
        // Shared cores: the spinner gets at least a fair slice.
        assert!(busy > 20.0, "spinner busy {busy}%");
        assert!(idle < 5.0, "sleeper busy {idle}%");
        assert_eq!(a.busy_pct(&b, "no-such-thread"), 0.0);
    }
}
