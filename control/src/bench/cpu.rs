//! CPU busy time per core from `/proc/stat`, over a measurement window.
//!
//! Busy is everything but `idle` and `iowait` (user, nice, system, irq,
//! softirq, steal): softirq matters here, since veth NAPI — and with it the
//! XDP programs and the Linux bridge — runs in softirq on whichever CPU
//! transmitted into the veth.

use std::fs;

/// Jiffies per CPU at one instant: (busy, total), indexed by CPU number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSnapshot {
    cpus: Vec<(u64, u64)>,
}

impl CpuSnapshot {
    /// Reads `/proc/stat` now.
    pub fn take() -> std::io::Result<CpuSnapshot> {
        Ok(Self::parse(&fs::read_to_string("/proc/stat")?))
    }

    /// Parses the `cpuN ...` lines of a `/proc/stat` text.
    pub fn parse(text: &str) -> CpuSnapshot {
        let mut cpus = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(label) = words.next() else { continue };
            let Some(n) = label.strip_prefix("cpu") else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            let v: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest*
            // are already inside user/nice).
            let field = |i: usize| v.get(i).copied().unwrap_or(0);
            let idle = field(3) + field(4);
            let total: u64 = (0..8).map(field).sum();
            if cpus.len() <= n {
                cpus.resize(n + 1, (0, 0));
            }
            cpus[n] = (total - idle, total);
        }
        CpuSnapshot { cpus }
    }

    /// Busy percentage of every CPU between `self` (earlier) and `later`.
    pub fn busy_pct_until(&self, later: &CpuSnapshot) -> Vec<f64> {
        later
            .cpus
            .iter()
            .enumerate()
            .map(|(i, &(busy1, total1))| {
                let (busy0, total0) = self.cpus.get(i).copied().unwrap_or((0, 0));
                let dt = total1.saturating_sub(total0);
                if dt == 0 {
                    0.0
                } else {
                    100.0 * busy1.saturating_sub(busy0) as f64 / dt as f64
                }
            })
            .collect()
    }
}

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every
/// Linux architecture's user ABI).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) that process `pid` has used,
/// from `/proc/PID/stat`; `None` once it is gone.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    parse_proc_stat_cpu(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The command name
/// (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_proc_stat_cpu(line: &str) -> Option<f64> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime(14) stime(15).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
                      cpu0 5 0 5 50 0 0 0 0 0 0\n\
                      cpu1 5 0 5 50 0 0 0 0 0 0\nintr 1 2 3\n";
    const T1: &str = "cpu  110 0 60 150 0 0 30 0 0 0\n\
                      cpu0 105 0 5 50 0 0 0 0 0 0\n\
                      cpu1 5 0 55 100 0 0 30 0 0 0\n";

    #[test]
    fn busy_counts_system_and_softirq_not_idle() {
        let a = CpuSnapshot::parse(T0);
        let b = CpuSnapshot::parse(T1);
        let pct = a.busy_pct_until(&b);
        assert_eq!(pct.len(), 2);
        // cpu0: 100 user jiffies of 100 elapsed.
        assert!((pct[0] - 100.0).abs() < 1e-9, "{pct:?}");
        // cpu1: 50 system + 30 softirq busy, 50 idle: 80 of 130.
        assert!((pct[1] - 8000.0 / 130.0).abs() < 1e-9, "{pct:?}");
    }

    #[test]
    fn no_elapsed_time_reads_as_idle() {
        let a = CpuSnapshot::parse(T0);
        assert_eq!(a.busy_pct_until(&a), vec![0.0, 0.0]);
    }

    #[test]
    fn process_cpu_time_is_utime_plus_stime_after_the_name() {
        let line = "1234 (ovs-vswitchd (x)) R 1 2 3 0 -1 4194560 10 0 0 0 250 150 0 0 20 0 9 0";
        assert_eq!(parse_proc_stat_cpu(line), Some(4.0));
        assert_eq!(parse_proc_stat_cpu("garbage"), None);
        assert!(process_cpu_secs(std::process::id()).is_some());
    }

    #[test]
    fn this_machine_has_at_least_one_cpu() {
        let s = CpuSnapshot::take().unwrap();
        assert!(!s.cpus.is_empty());
    }
}
