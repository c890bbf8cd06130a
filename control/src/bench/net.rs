//! The benchmark topology: generator namespace → device under test → sink
//! namespace, built from [`crate::topo`] guards.
//!
//! ```text
//!  gen ns              DUT ns                 sink ns
//!  g0 10.77.0.1 ──── d0 [ DUT ] d1 ──── s0 10.77.0.2
//!     fd00:77::1                           fd00:77::2
//! ```
//! Without a DUT (the `direct` calibration) g0's peer is s0 itself.
//!
//! # Invariants
//! * Every end has GRO on, so every veth has NAPI whatever the DUT attaches:
//!   a veth receives redirected XDP frames only with NAPI (DESIGN.md
//!   "Platform facts"), and the generator, the XDP-redirect DUT and the
//!   AF_XDP DUTs all redirect.
//! * g0 and s0 compute checksums in software (tx offload off): the latency
//!   probes are socket traffic, and an XDP DUT would forward a
//!   checksum-offloaded frame with its checksum never filled in.
//! * The two hosts know each other's MAC statically (no ARP/ND on the
//!   measured path); the generator's frames are addressed to s0's MAC and
//!   IP, so a learning bridge floods them until it learns s0 (two ports:
//!   same thing).
//! * Dropping a [`BenchNet`] deletes its namespaces and with them every
//!   interface and address; processes started inside are owned by their
//!   own guards (the DUT's), which the caller drops first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xswitch_bpf::gen::netns::NetnsGuard;

use super::BenchError;
use crate::topo::{Netns, Side, Veth, VethOpts};

/// Generator-side IPv4 address.
pub const GEN_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Sink-side IPv4 address.
pub const SINK_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Generator-side IPv6 address.
pub const GEN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
/// Sink-side IPv6 address.
pub const SINK_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);

/// Kernel counters of one interface (from `/proc/net/dev` in its namespace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames the interface dropped on receive.
    pub rx_dropped: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
}

/// Namespaces, veths and addresses of one benchmark run.
#[derive(Debug)]
pub struct BenchNet {
    // Field order is drop order: veths, then namespaces.
    _veths: Vec<Veth>,
    /// Generator namespace (holds g0).
    pub gen: Netns,
    /// DUT namespace (holds d0, d1), absent for `direct`.
    pub dut: Option<Netns>,
    /// Sink namespace (holds s0).
    pub sink: Netns,
    /// Generator interface.
    pub g0: String,
    /// DUT port facing the generator.
    pub d0: String,
    /// DUT port facing the sink.
    pub d1: String,
    /// Sink interface.
    pub s0: String,
    /// g0's MAC.
    pub g_mac: [u8; 6],
    /// s0's MAC.
    pub s_mac: [u8; 6],
}

impl BenchNet {
    /// Builds the topology, with a DUT namespace in the middle or (for the
    /// `direct` calibration) without.
    pub fn create(with_dut: bool) -> Result<BenchNet, BenchError> {
        let gen = Netns::create("bgen")?;
        let sink = Netns::create("bsnk")?;
        let opts = VethOpts::default();
        let mut veths = Vec::new();
        let (g0, d0, d1, s0, dut);
        if with_dut {
            let d = Netns::create("bdut")?;
            let a = Veth::create("g", Side::In(&gen), "d", Side::In(&d), opts)?;
            let b = Veth::create("d", Side::In(&d), "s", Side::In(&sink), opts)?;
            (g0, d0, d1, s0) = (
                a.a().to_string(),
                a.b().to_string(),
                b.a().to_string(),
                b.b().to_string(),
            );
            veths.push(a);
            veths.push(b);
            dut = Some(d);
        } else {
            let a = Veth::create("g", Side::In(&gen), "s", Side::In(&sink), opts)?;
            (g0, s0) = (a.a().to_string(), a.b().to_string());
            (d0, d1) = (String::new(), String::new());
            veths.push(a);
            dut = None;
        }
        let g_mac = read_mac(&gen, &g0)?;
        let s_mac = read_mac(&sink, &s0)?;
        let net = BenchNet {
            _veths: veths,
            gen,
            dut,
            sink,
            g0,
            d0,
            d1,
            s0,
            g_mac,
            s_mac,
        };
        net.configure()?;
        Ok(net)
    }

    fn configure(&self) -> Result<(), BenchError> {
        let s_mac = fmt_mac(&self.s_mac);
        let g_mac = fmt_mac(&self.g_mac);
        for (ns, ifname, v4, v6, peer4, peer6, peer_mac) in [
            (
                &self.gen, &self.g0, GEN_V4, GEN_V6, SINK_V4, SINK_V6, &s_mac,
            ),
            (
                &self.sink, &self.s0, SINK_V4, SINK_V6, GEN_V4, GEN_V6, &g_mac,
            ),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
            for peer in [peer4.to_string(), peer6.to_string()] {
                ns.ip(&[
                    "neigh",
                    "replace",
                    &peer,
                    "lladdr",
                    peer_mac,
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ])?;
            }
            gro_on(ns, ifname)?;
            tx_checksum_off(ns, ifname)?;
        }
        if let Some(d) = &self.dut {
            gro_on(d, &self.d0)?;
            gro_on(d, &self.d1)?;
        }
        Ok(())
    }

    /// The generator's source and the sink's address, in one family.
    pub fn addrs(&self, ipv6: bool) -> (IpAddr, IpAddr) {
        if ipv6 {
            (GEN_V6.into(), SINK_V6.into())
        } else {
            (GEN_V4.into(), SINK_V4.into())
        }
    }

    /// The sink interface's kernel counters now.
    pub fn sink_counters(&self) -> Result<IfCounters, BenchError> {
        if_counters(&self.sink, &self.s0)
    }

    /// The generator interface's kernel counters now.
    pub fn gen_counters(&self) -> Result<IfCounters, BenchError> {
        if_counters(&self.gen, &self.g0)
    }
}

fn gro_on(ns: &Netns, ifname: &str) -> Result<(), BenchError> {
    ns.run(&["ethtool", "-K", ifname, "gro", "on"])?;
    Ok(())
}

/// Makes the stack fill in checksums itself on `ifname`. A veth offloads
/// them by default (CHECKSUM_PARTIAL: "the NIC will do it"); a frame that
/// an XDP program then redirects (xdp-redirect, AF_XDP) leaves with the
/// checksum never filled in, and the receiver drops it.
fn tx_checksum_off(ns: &Netns, ifname: &str) -> Result<(), BenchError> {
    ns.run(&["ethtool", "-K", ifname, "tx", "off"])?;
    Ok(())
}

fn read_mac(ns: &Netns, ifname: &str) -> Result<[u8; 6], BenchError> {
    let text = ns.run(&["cat", &format!("/sys/class/net/{ifname}/address")])?;
    parse_mac(text.trim())
        .ok_or_else(|| BenchError::Setup(format!("{ifname}: unreadable MAC {text:?}")))
}

/// `aa:bb:cc:dd:ee:ff` → bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Bytes → `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads `ifname`'s counters from `/proc/thread-self/net/dev` with this
/// thread briefly inside `ns` (no process is spawned: the reading must not
/// cost the CPUs being measured anything noticeable).
pub fn if_counters(ns: &Netns, ifname: &str) -> Result<IfCounters, BenchError> {
    let text = {
        let _in = NetnsGuard::enter(ns.name())?;
        std::fs::read_to_string("/proc/thread-self/net/dev")
            .map_err(|e| BenchError::Setup(format!("reading /proc/net/dev: {e}")))?
    };
    parse_net_dev(&text, ifname).ok_or_else(|| {
        BenchError::Setup(format!(
            "{ifname} missing from /proc/net/dev of namespace {}",
            ns.name()
        ))
    })
}

/// Finds `ifname` in a `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, ifname: &str) -> Option<IfCounters> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (v.len() >= 16).then(|| IfCounters {
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_dropped: v[3],
            tx_packets: v[9],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_line_is_parsed_by_name() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n\
            bsnkx1:  6000     100    0    7    0     0          0         0      420       5    0    0    0     0       0          0\n";
        let c = parse_net_dev(text, "bsnkx1").unwrap();
        assert_eq!(
            c,
            IfCounters {
                rx_bytes: 6000,
                rx_packets: 100,
                rx_dropped: 7,
                tx_packets: 5
            }
        );
        assert!(parse_net_dev(text, "bsnk").is_none());
    }

    #[test]
    fn mac_round_trips_and_garbage_is_refused() {
        let m = parse_mac("02:ab:00:10:ff:09").unwrap();
        assert_eq!(fmt_mac(&m), "02:ab:00:10:ff:09");
        assert!(parse_mac("02:ab:00:10:ff").is_none());
        assert!(parse_mac("02:ab:00:10:ff:09:11").is_none());
        assert!(parse_mac("zz:ab:00:10:ff:09").is_none());
    }
}
