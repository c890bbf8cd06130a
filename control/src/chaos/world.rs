//! The chaos topology: namespaces, veths and the names the daemon knows.
//!
//! ```text
//!  gen ns                 switch ns (daemon)                 sink ns
//!  g0 ──────────────── sg [ofport 1]    [ofport 2] so ──────── s0 (XdpSink)
//!                            [ofport 3..] sv0, sv1 ... ──────── v0, v1 ... victim ns
//! ```
//! Every victim pair has fixed names for the whole run, so a scenario can
//! delete it and re-create it under the same names (the daemon keeps the
//! port configured and re-attaches it). Dropping the [`World`] deletes the
//! four namespaces, and with them every interface; nothing is left on the
//! host.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::topo::{unique_name, Netns, Side, TopoError, Veth, VethOpts};

/// A switch port: interface name in the switch namespace and its ofport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortName {
    /// Interface name (in the switch namespace).
    pub name: String,
    /// OpenFlow port number the daemon gives it.
    pub ofport: u32,
}

/// A victim port: the switch-side end and its peer in the victim
/// namespace.
#[derive(Debug)]
pub struct Victim {
    /// The switch port.
    pub port: PortName,
    /// The peer's name (in the victim namespace).
    pub peer: String,
    /// Rx/tx queues of each end.
    pub queues: u32,
    /// False while deleted by a scenario.
    present: AtomicBool,
}

/// Prefixes of every namespace the harness creates (tests look for
/// leftovers by them).
pub const NETNS_PREFIXES: [&str; 4] = ["chsw", "chgn", "chsk", "chvc"];

/// The whole topology (module docs).
#[derive(Debug)]
pub struct World {
    // Drop order: veths, then namespaces (which take anything left).
    _veths: Vec<Veth>,
    /// Where the daemon runs.
    pub switch: Netns,
    /// The generator's namespace.
    pub gen: Netns,
    /// The untouched port's sink namespace.
    pub sink: Netns,
    /// The victims' peers live here.
    pub victim_ns: Netns,
    /// Generator-side interface in `gen`.
    pub g0: String,
    /// Sink interface in `sink`.
    pub s0: String,
    /// The switch port facing the generator (ofport 1).
    pub gen_port: PortName,
    /// The untouched switch port (ofport 2).
    pub out_port: PortName,
    /// The victims (ofports 3, 4, ...).
    pub victims: Vec<Victim>,
    /// g0's MAC.
    pub g_mac: [u8; 6],
    /// s0's MAC.
    pub s_mac: [u8; 6],
}

impl World {
    /// Builds the topology with `n_victims` victim pairs of `victim_queues`
    /// queues each.
    pub fn create(n_victims: usize, victim_queues: u32) -> Result<World, TopoError> {
        let switch = Netns::create(NETNS_PREFIXES[0])?;
        let gen = Netns::create(NETNS_PREFIXES[1])?;
        let sink = Netns::create(NETNS_PREFIXES[2])?;
        let victim_ns = Netns::create(NETNS_PREFIXES[3])?;
        let opts = VethOpts::default();
        let a = Veth::create("cg", Side::In(&gen), "sg", Side::In(&switch), opts)?;
        let b = Veth::create("so", Side::In(&switch), "cs", Side::In(&sink), opts)?;
        let (g0, sg, so, s0) = (
            a.a().to_string(),
            a.b().to_string(),
            b.a().to_string(),
            b.b().to_string(),
        );
        let victims = (0..n_victims)
            .map(|i| Victim {
                port: PortName {
                    name: unique_name("sv"),
                    ofport: 3 + i as u32,
                },
                peer: unique_name("cv"),
                queues: victim_queues.max(1),
                present: AtomicBool::new(false),
            })
            .collect();
        let g_mac = read_mac(&gen, &g0)?;
        let s_mac = read_mac(&sink, &s0)?;
        let w = World {
            _veths: vec![a, b],
            switch,
            gen,
            sink,
            victim_ns,
            g0,
            s0,
            gen_port: PortName {
                name: sg,
                ofport: 1,
            },
            out_port: PortName {
                name: so,
                ofport: 2,
            },
            victims,
            g_mac,
            s_mac,
        };
        // No IPv6 on any interface: the kernel's own DAD, MLD and router
        // solicitations would otherwise count as traffic to the victims.
        for ns in [&w.switch, &w.gen, &w.sink, &w.victim_ns] {
            for key in ["all", "default"] {
                ns.run(&[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                ])?;
            }
        }
        for (ns, dev) in [
            (&w.gen, &w.g0),
            (&w.switch, &w.gen_port.name),
            (&w.switch, &w.out_port.name),
            (&w.sink, &w.s0),
        ] {
            ns.run(&["ethtool", "-K", dev, "gro", "on"])?;
        }
        for i in 0..w.victims.len() {
            w.create_victim(i)?;
        }
        Ok(w)
    }

    /// Every switch port's name, in ofport order (the daemon's `--port`s).
    pub fn port_names(&self) -> Vec<&str> {
        let mut v = vec![self.gen_port.name.as_str(), self.out_port.name.as_str()];
        v.extend(self.victims.iter().map(|x| x.port.name.as_str()));
        v
    }

    /// The base flow: every packet from the generator port goes to the
    /// untouched port and to each of `victims` (ofports).
    pub fn base_flow(&self, victims: &[u32]) -> String {
        let mut f = format!(
            "priority=100,in_port={},actions=output:{}",
            self.gen_port.ofport, self.out_port.ofport
        );
        for v in victims {
            f.push_str(&format!(",output:{v}"));
        }
        f
    }

    /// The base flow to every victim.
    pub fn base_flow_all(&self) -> String {
        let v: Vec<u32> = self.victims.iter().map(|x| x.port.ofport).collect();
        self.base_flow(&v)
    }

    /// (Re-)creates victim `i` under its names, both ends up.
    pub fn create_victim(&self, i: usize) -> Result<(), TopoError> {
        let v = &self.victims[i];
        self.switch
            .add_veth(&v.port.name, &v.peer, &self.victim_ns, v.queues)?;
        v.present.store(true, Ordering::Relaxed);
        if v.queues > 1 {
            // Start at half the channels: the kernel refuses to take away
            // a queue an AF_XDP socket is bound to, and the daemon binds
            // the queues that exist when it opens the port. Growing and
            // shrinking back is then what `ethtool -L` allows under it.
            let half = (v.queues / 2).to_string();
            self.switch
                .run(&["ethtool", "-L", &v.port.name, "rx", &half, "tx", &half])?;
        }
        self.victim_ns.ip(&["link", "set", &v.peer, "up"])?;
        self.switch.ip(&["link", "set", &v.port.name, "up"])?;
        Ok(())
    }

    /// Deletes victim `i`'s pair (`ip link del` of the switch-side end).
    pub fn delete_victim(&self, i: usize) -> Result<(), TopoError> {
        let v = &self.victims[i];
        v.present.store(false, Ordering::Relaxed);
        self.switch.ip(&["link", "del", &v.port.name]).map(|_| ())
    }

    /// Kernel rx packet count of victim `i`'s peer (what the switch
    /// delivered to it), or 0 while it does not exist.
    pub fn victim_rx(&self, i: usize) -> u64 {
        self.victim_ns
            .sysfs_u64(&self.victims[i].peer, "statistics/rx_packets")
            .unwrap_or(0)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for v in &self.victims {
            if v.present.load(Ordering::Relaxed) {
                let _ = self.switch.ip(&["link", "del", &v.port.name]);
            }
        }
    }
}

fn read_mac(ns: &Netns, ifname: &str) -> Result<[u8; 6], TopoError> {
    let text = ns.run(&["cat", &format!("/sys/class/net/{ifname}/address")])?;
    crate::bench::net::parse_mac(text.trim()).ok_or_else(|| TopoError {
        cmd: format!("cat /sys/class/net/{ifname}/address"),
        detail: format!("unreadable MAC {text:?}"),
    })
}
