//! The switch's statistics report: what `xswitch run` prints when it stops
//! (and, with `--stats-interval`, logs while it runs), and what the daemon's
//! `stats --json` will answer.
//!
//! # What
//! A [`StatsReport`] is a plain snapshot, built from the datapath's own
//! counters: the port table's per-port counters and state
//! ([`Datapath::port_list`]), device-level extras the caller knows about
//! (per-rx-queue packet counts of an AF_XDP port, the XDP program's
//! per-queue redirect/pass counters), per-PMD figures, and the stall
//! watchdog. It serialises to the JSON shape of DESIGN.md's `stats --json`
//! (`ports[]` with `name`, `ofport`, `rx_packets`, `tx_packets`,
//! `rx_bytes`, `tx_bytes`, `drops`, `state`; `pmds[]` with `id`, `cpu`,
//! `rx_packets`, `busy_pct`; `watchdog` with `stalls`, `max_stall_ms`, `starved`) and
//! renders as a human-readable table ([`StatsReport::write_table`]).
//!
//! # Invariants
//! * `drops` and `tx_drops` always carry every drop reason of DESIGN.md,
//!   zeros included, so the JSON schema does not depend on traffic; the
//!   table shows only the non-zero ones.
//! * Ports are listed in ofport order; PMDs in id order.
//!
//! # Locking
//! Building a report reads the port table under its `ports` lock (through
//! [`Datapath::port_list`]) and the watchdog's atomics; it never touches a
//! PMD. Call it from a control thread, never while holding a hierarchy lock.
//!
//! # Why a module of its own
//! The foreground `run` and the daemon's management socket must answer
//! with one shape; keeping the type here (with `serde::Serialize`) lets
//! both reuse it.

use dataplane::datapath::{Datapath, PortInfo};
use dataplane::flow_key::PortNo;
use dataplane::stats::{DropCounters, DropReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// One entry per port, by ofport.
    pub ports: Vec<PortReport>,
    /// One entry per PMD thread, by id.
    pub pmds: Vec<PmdReport>,
    /// The stall watchdog.
    pub watchdog: WatchdogReport,
}

/// One port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortReport {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: PortNo,
    /// Packets received on the port.
    pub rx_packets: u64,
    /// Packets transmitted by the port.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Transmissions (on any port) of packets received here.
    pub rx_delivered: u64,
    /// Extra copies made of packets received here (flood, several outputs).
    pub rx_copies: u64,
    /// Drops of packets received here, by reason (every reason, zeros too).
    pub drops: BTreeMap<&'static str, u64>,
    /// Outputs *to* this port that failed, by reason (every reason).
    pub tx_drops: BTreeMap<&'static str, u64>,
    /// Lifecycle state as the output path sees it.
    pub state: PortStateReport,
    /// Packets received per rx queue (index = queue), as the device
    /// counted them; empty when the device does not count per queue.
    pub queues: Vec<u64>,
    /// The XDP program's view of the port, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp: Option<XdpReport>,
    /// The device's own ring-level counters, when it keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
}

/// Ring-level counters of an AF_XDP device: where frames can be lost
/// before the datapath sees them, and what transmitting cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    /// Frames the kernel dropped on rx (all causes, `XDP_STATISTICS`).
    pub kernel_rx_dropped: u64,
    /// Of those, dropped because the socket's rx ring was full (the PMD
    /// did not drain it in time).
    pub kernel_rx_ring_full: u64,
    /// Frames that found the fill ring empty.
    pub fill_ring_empty: u64,
    /// `send` calls that left packets behind (no free tx frame or slot).
    pub tx_ring_full: u64,
    /// `sendto` kicks.
    pub kicks: u64,
    /// Kicks that failed (transient or fatal).
    pub kick_errors: u64,
    /// Frames in the port's UMEM.
    pub umem_frames: u64,
    /// Of those, frames the census finds in a place (free for tx, in
    /// flight on tx, with the kernel for rx, held by the port);
    /// `umem_frames - umem_placed` frames are leaked.
    pub umem_placed: u64,
}

/// A port's state flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortStateReport {
    /// False once the port started unregistering.
    pub registered: bool,
    /// Administratively up.
    pub admin_up: bool,
    /// IFF_RUNNING.
    pub running: bool,
    /// Carrier.
    pub carrier: bool,
    /// Usable tx queues.
    pub tx_queues: u32,
}

/// The XDP program attached to a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XdpReport {
    /// How it is attached: `native` or `generic`.
    pub mode: String,
    /// Frames redirected to the AF_XDP socket, per rx queue.
    pub redirected: Vec<u64>,
    /// Frames passed to the kernel stack (no socket bound), per rx queue.
    pub passed: Vec<u64>,
}

/// One PMD thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PmdReport {
    /// PMD id (`pmd<id>` is its thread name).
    pub id: usize,
    /// The CPU it is pinned to, if any.
    pub cpu: Option<usize>,
    /// Packets it received.
    pub rx_packets: u64,
    /// Packets it transmitted.
    pub tx_packets: u64,
    /// Packets it dropped, all reasons.
    pub drops: u64,
    /// CPU time the thread used over the measured interval, in percent of
    /// that interval's wall time (polling included: a PMD polls a while
    /// before it backs off to sleep).
    pub busy_pct: f64,
}

/// The stall watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WatchdogReport {
    /// Stall episodes reported.
    pub stalls: u64,
    /// Longest stall seen, in milliseconds.
    pub max_stall_ms: u64,
    /// Episodes of a PMD waiting for a CPU (runnable, not scheduled) past
    /// the threshold: the machine is overloaded; not stalls.
    pub starved: u64,
}

/// Device-level figures for one port that the port table does not keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortExtra {
    /// Packets received per rx queue.
    pub queues: Vec<u64>,
    /// The XDP program's counters.
    pub xdp: Option<XdpReport>,
    /// The device's ring-level counters.
    pub device: Option<DeviceReport>,
}

fn all_reasons(c: &DropCounters) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .into_iter()
        .map(|r| (r.as_str(), c.get(r)))
        .collect()
}

impl PortReport {
    /// The report of one port from the port table's view of it and the
    /// device's extras.
    pub fn from_info(p: &PortInfo, extra: PortExtra) -> Self {
        let c = &p.counters;
        PortReport {
            name: p.name.clone(),
            ofport: p.ofport,
            rx_packets: c.rx_packets,
            tx_packets: c.tx_packets,
            rx_bytes: c.rx_bytes,
            tx_bytes: c.tx_bytes,
            rx_delivered: c.rx_delivered,
            rx_copies: c.rx_copies,
            drops: all_reasons(&c.drops),
            tx_drops: all_reasons(&c.tx_drops),
            state: PortStateReport {
                registered: p.registered,
                admin_up: p.admin_up,
                running: p.running,
                carrier: p.carrier,
                tx_queues: p.tx_queues,
            },
            queues: extra.queues,
            xdp: extra.xdp,
            device: extra.device,
        }
    }

    /// Drops of packets received here, all reasons.
    pub fn drops_total(&self) -> u64 {
        self.drops.values().sum()
    }
}

impl StatsReport {
    /// Reads `dp`'s ports and watchdog now; `extra` supplies each port's
    /// device-level figures, `pmds` the PMD figures the caller measured.
    pub fn collect(
        dp: &Datapath,
        pmds: Vec<PmdReport>,
        mut extra: impl FnMut(&PortInfo) -> PortExtra,
    ) -> Self {
        let mut list = dp.port_list();
        list.sort_by_key(|p| p.ofport);
        let ports = list
            .iter()
            .map(|p| PortReport::from_info(p, extra(p)))
            .collect();
        let w = dp.watchdog_stats();
        StatsReport {
            ports,
            pmds,
            watchdog: WatchdogReport {
                stalls: w.stalls,
                max_stall_ms: w.max_stall_ms,
                starved: w.starved,
            },
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the report as aligned text tables.
    pub fn write_table(&self, w: &mut dyn Write) -> io::Result<()> {
        let name_w = self
            .ports
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            w,
            "{:<name_w$} {:>6} {:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            "port", "ofport", "state", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops"
        )?;
        for p in &self.ports {
            writeln!(
                w,
                "{:<name_w$} {:>6} {:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
                p.name,
                p.ofport,
                state_word(&p.state),
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.drops_total()
            )?;
            if !p.queues.is_empty() {
                writeln!(w, "{:name_w$}   rx queues: {}", "", join(&p.queues))?;
            }
            if let Some(x) = &p.xdp {
                writeln!(
                    w,
                    "{:name_w$}   xdp ({}): redirected {}, passed {}",
                    "",
                    x.mode,
                    join(&x.redirected),
                    join(&x.passed)
                )?;
            }
            if let Some(d) = &p.device {
                if d.kernel_rx_dropped + d.fill_ring_empty + d.tx_ring_full + d.kick_errors > 0 {
                    writeln!(
                        w,
                        "{:name_w$}   device: kernel rx dropped {} (rx ring full {}), fill ring empty {}, tx ring full {}, kick errors {}",
                        "",
                        d.kernel_rx_dropped,
                        d.kernel_rx_ring_full,
                        d.fill_ring_empty,
                        d.tx_ring_full,
                        d.kick_errors
                    )?;
                }
            }
            for (label, m) in [("drops", &p.drops), ("tx drops", &p.tx_drops)] {
                let nz: Vec<String> = m
                    .iter()
                    .filter(|(_, &n)| n > 0)
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect();
                if !nz.is_empty() {
                    writeln!(w, "{:name_w$}   {label}: {}", "", nz.join(" "))?;
                }
            }
        }
        writeln!(w)?;
        writeln!(
            w,
            "{:<5} {:>4} {:>12} {:>12} {:>10} {:>7}",
            "pmd", "cpu", "rx_packets", "tx_packets", "drops", "busy%"
        )?;
        for p in &self.pmds {
            let cpu = p.cpu.map_or_else(|| "-".to_string(), |c| c.to_string());
            writeln!(
                w,
                "{:<5} {:>4} {:>12} {:>12} {:>10} {:>7.1}",
                format!("pmd{}", p.id),
                cpu,
                p.rx_packets,
                p.tx_packets,
                p.drops,
                p.busy_pct
            )?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "watchdog: {} stalls, longest {} ms; {} starved",
            self.watchdog.stalls, self.watchdog.max_stall_ms, self.watchdog.starved
        )
    }
}

fn state_word(s: &PortStateReport) -> String {
    if !s.registered {
        return "unregistering".into();
    }
    let mut v = vec![if s.admin_up && s.running {
        "up"
    } else {
        "down"
    }];
    if !s.carrier {
        v.push("no-carrier");
    }
    if s.tx_queues == 0 {
        v.push("no-txq");
    }
    v.join(",")
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
}

/// The `--stats-interval` log: each port's packet rates and new drops since
/// the previous line, and each PMD's figures, as `tracing` info events.
/// Shared by `xswitch run` and the daemon.
#[derive(Debug, Default)]
pub struct RateLog {
    /// `(ofport, rx_packets, tx_packets, drops)` at the previous line.
    last: Vec<(PortNo, u64, u64, u64)>,
}

impl RateLog {
    /// Logs `r`'s rates over `since`, the time since the previous call. A
    /// port new since then (or re-added, its counters restarted) counts
    /// from zero, never negative.
    pub fn log(&mut self, r: &StatsReport, since: std::time::Duration) {
        let secs = since.as_secs_f64().max(1e-9);
        let mut cur = Vec::with_capacity(r.ports.len());
        for p in &r.ports {
            let (rx0, tx0, d0) = self
                .last
                .iter()
                .find(|l| l.0 == p.ofport)
                .map_or((0, 0, 0), |l| (l.1, l.2, l.3));
            let drops = p.drops_total();
            tracing::info!(
                port = %p.name,
                ofport = p.ofport,
                rx_pps = (p.rx_packets.saturating_sub(rx0) as f64 / secs).round(),
                tx_pps = (p.tx_packets.saturating_sub(tx0) as f64 / secs).round(),
                drops = drops.saturating_sub(d0),
                "rates"
            );
            cur.push((p.ofport, p.rx_packets, p.tx_packets, drops));
        }
        for p in &r.pmds {
            tracing::info!(pmd = p.id, cpu = ?p.cpu, rx_packets = p.rx_packets, busy_pct = p.busy_pct, "pmd");
        }
        self.last = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
    use std::sync::Arc;

    fn datapath_with_two_ports() -> Datapath {
        let dp = Datapath::new();
        for (n, name) in [(1, "a0"), (2, "b0")] {
            let p = MemoryPort::new(MemoryPortConfig::new(name));
            dp.add_port(n, Arc::new(p)).unwrap();
        }
        dp
    }

    fn pmd() -> PmdReport {
        PmdReport {
            id: 0,
            cpu: Some(1),
            rx_packets: 7,
            tx_packets: 6,
            drops: 1,
            busy_pct: 12.5,
        }
    }

    #[test]
    fn json_has_the_design_keys_and_every_drop_reason() {
        let dp = datapath_with_two_ports();
        let r = StatsReport::collect(&dp, vec![pmd()], |p| PortExtra {
            queues: vec![u64::from(p.ofport); 2],
            xdp: None,
            device: (p.ofport == 2).then(DeviceReport::default),
        });
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let ports = v["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        for key in [
            "name",
            "ofport",
            "rx_packets",
            "tx_packets",
            "rx_bytes",
            "tx_bytes",
            "drops",
            "state",
            "queues",
        ] {
            assert!(ports[0].get(key).is_some(), "missing {key}");
        }
        for key in ["registered", "running", "carrier"] {
            assert!(ports[0]["state"][key].is_boolean(), "missing state.{key}");
        }
        let drops = ports[1]["drops"].as_object().unwrap();
        assert_eq!(drops.len(), DropReason::COUNT);
        assert!(drops.contains_key("no_carrier"));
        assert_eq!(ports[1]["name"], "b0");
        assert_eq!(ports[1]["queues"], serde_json::json!([2, 2]));
        assert!(ports[0].get("xdp").is_none(), "absent xdp is omitted");
        assert!(ports[0].get("device").is_none(), "absent device is omitted");
        assert_eq!(ports[1]["device"]["kernel_rx_ring_full"], 0);
        for key in ["id", "cpu", "rx_packets", "busy_pct"] {
            assert!(v["pmds"][0].get(key).is_some(), "missing pmds[0].{key}");
        }
        assert_eq!(v["watchdog"]["stalls"], 0);
        assert!(v["watchdog"]["max_stall_ms"].is_u64());
    }

    #[test]
    fn table_shows_ports_queues_xdp_and_only_nonzero_drops() {
        let dp = datapath_with_two_ports();
        dp.set_carrier(2, false).unwrap();
        let mut r = StatsReport::collect(&dp, vec![pmd()], |_| PortExtra {
            queues: vec![3, 4],
            xdp: Some(XdpReport {
                mode: "native".into(),
                redirected: vec![3, 4],
                passed: vec![0, 0],
            }),
            device: Some(DeviceReport {
                kernel_rx_dropped: 9,
                kernel_rx_ring_full: 9,
                ..DeviceReport::default()
            }),
        });
        r.ports[0].drops.insert("no_match", 5);
        let mut out = Vec::new();
        r.write_table(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("rx queues: 3 4"), "{s}");
        assert!(
            s.contains("xdp (native): redirected 3 4, passed 0 0"),
            "{s}"
        );
        assert!(s.contains("drops: no_match=5"), "{s}");
        assert!(s.contains("kernel rx dropped 9 (rx ring full 9)"), "{s}");
        assert!(!s.contains("no_carrier="), "zero reasons are hidden: {s}");
        assert!(s.contains("no-carrier"), "port state shown: {s}");
        assert!(s.contains("pmd0"), "{s}");
        assert!(s.contains("watchdog: 0 stalls"), "{s}");
    }
}
