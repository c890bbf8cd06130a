//! What `xswitch run` (the daemon, [`crate::daemon::service`]) needs from
//! the host before it touches an interface, and how it measures itself.
//!
//! # What
//! * [`missing_capabilities`]: the capabilities the daemon needs and this
//!   process lacks, named, so a start without privileges fails with one
//!   line instead of an EPERM from deep inside a socket call.
//! * CPU lists (`--pmd-cpus "0,2-3"`, `--helper-cpus`): parsing, and
//!   checking them against the CPUs this process may run on
//!   ([`pmd_cpus`], [`helper_cpus`]).
//! * Thread CPU time ([`BusyMeter`]): PMD busy % from the kernel's own
//!   per-thread accounting, for `stats` and the `--stats-interval` log.
//!
//! # Hosts behind veth ports: checksums
//! A veth passes a locally sent TCP/UDP frame on with its checksum left
//! for offload (CHECKSUM_PARTIAL: only the pseudo-header sum is in the
//! field). AF_XDP carries the bytes, not that skb state, so the frame
//! leaves the switch with an unfinished checksum and the receiving stack
//! drops it: ping works, TCP and UDP do not. As with Open vSwitch's afxdp
//! ports, the sending side must compute checksums itself: `ethtool -K
//! PEER tx off` on the host's end of each veth. The daemon logs this hint
//! for every port that is one end of a pair ([`is_paired`]); the switch
//! cannot repair it, since AF_XDP delivers no checksum status with a frame.

mod cpus;
mod cputime;

pub use cpus::{
    allowed_cpus, format_cpu_list, helper_cpus, parse_cpu_list, pmd_cpus, CpuListError,
};
pub use cputime::{threads_cpu_time, BusyMeter};

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The capabilities `run` needs that this process's effective set lacks:
/// CAP_NET_ADMIN (attach XDP), CAP_NET_RAW (AF_XDP sockets), CAP_BPF or
/// CAP_SYS_ADMIN (load the program, update its maps). Empty when the set
/// cannot be read (the kernel will then say what it refuses).
pub fn missing_capabilities() -> Vec<&'static str> {
    let Some(eff) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
    else {
        return Vec::new();
    };
    missing_from(eff)
}

fn missing_from(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    missing
}

/// Whether `ifname` (index `ifindex`) is one end of a pair (veth): its
/// `iflink` names another interface.
pub fn is_paired(ifname: &str, ifindex: u32) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/iflink"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|iflink| iflink != ifindex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_named_when_missing() {
        assert_eq!(missing_from(u64::MAX), Vec::<&str>::new());
        assert_eq!(
            missing_from(0),
            vec!["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]
        );
        // CAP_SYS_ADMIN stands in for CAP_BPF (older kernels).
        let eff = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN);
        assert!(missing_from(eff).is_empty());
        let eff = (1 << CAP_NET_ADMIN) | (1 << CAP_BPF);
        assert_eq!(missing_from(eff), vec!["CAP_NET_RAW"]);
    }
}
