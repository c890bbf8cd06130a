//! `xswitch demo --memory`: the dataplane core at work on in-memory ports.
//!
//! Three hosts hang off three in-memory ports. The demo runs the real packet
//! walk (extract → exact-match cache → classifier → actions → per-port tx
//! batches) and prints what happened at each step:
//! 1. no flows: the switch is a learning bridge (flood, learn, unicast);
//! 2. flows in `ovs-ofctl` syntax: drop, rewrite + `dec_ttl`, `normal`;
//!    `dump-flows` with counters, and `trace` of a few packets;
//! 3. a port loses carrier: output to it is dropped and counted;
//! 4. a short burst through the cache-hit path, to show the rate.
//!
//! It needs no privileges and touches no interface: the AF_XDP ports of
//! `xswitch demo` (see [`super::netns`]) run the same packet walk.

use crate::flow_syntax::{format_actions, format_dump_flow, parse_flow, FlowStats};
use dataplane::datapath::{Datapath, Pmd, PmdConfig};
use dataplane::flow_key::{ethertype, ipproto, FlowKey, MacAddr, PortNo};
use dataplane::stats::DropReason;
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use dataplane::vport::Vport;
use dataplane::wire::builder::{self, build_frame};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

struct Host {
    name: &'static str,
    port: PortNo,
    mac: MacAddr,
    ip: Ipv4Addr,
}

const HOSTS: [Host; 3] = [
    Host {
        name: "h1",
        port: 1,
        mac: [0x02, 0, 0, 0, 0, 1],
        ip: Ipv4Addr::new(10, 0, 0, 1),
    },
    Host {
        name: "h2",
        port: 2,
        mac: [0x02, 0, 0, 0, 0, 2],
        ip: Ipv4Addr::new(10, 0, 0, 2),
    },
    Host {
        name: "h3",
        port: 3,
        mac: [0x02, 0, 0, 0, 0, 3],
        ip: Ipv4Addr::new(10, 0, 0, 3),
    },
];

fn arp_request(from: &Host, to: &Host) -> Vec<u8> {
    builder::arp(1, from.mac, from.ip, [0xff; 6], [0; 6], to.ip)
}

fn arp_reply(from: &Host, to: &Host) -> Vec<u8> {
    builder::arp(2, from.mac, from.ip, to.mac, to.mac, to.ip)
}

fn udp(from: &Host, to: &Host, dport: u16, ttl: u8) -> Vec<u8> {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(from.mac);
    k.set_dl_dst(to.mac);
    k.set_dl_type(ethertype::IPV4);
    k.set_nw_src(from.ip);
    k.set_nw_dst(to.ip);
    k.set_nw_proto(ipproto::UDP);
    k.set_nw_ttl(ttl);
    k.set_tp_src(40000);
    k.set_tp_dst(dport);
    build_frame(&k, 22)
}

struct Demo<W: Write> {
    dp: Arc<Datapath>,
    pmd: Pmd,
    ports: BTreeMap<PortNo, Arc<MemoryPort>>,
    out: W,
}

impl<W: Write> Demo<W> {
    fn new(out: W) -> Self {
        let dp = Arc::new(Datapath::new());
        let mut ports = BTreeMap::new();
        for h in &HOSTS {
            let port = Arc::new(MemoryPort::new(MemoryPortConfig::new(format!(
                "{}-eth0",
                h.name
            ))));
            dp.add_port(h.port, port.clone())
                .expect("fresh port numbers are free");
            ports.insert(h.port, port);
        }
        let pmd = Pmd::new(Arc::clone(&dp), PmdConfig::default());
        Demo {
            dp,
            pmd,
            ports,
            out,
        }
    }

    /// Sends one frame from `from` and prints which hosts received it.
    fn send(&mut self, what: &str, from: &Host, frame: &[u8]) -> std::io::Result<()> {
        let drops_before = self.pmd.stats().drops.clone();
        if !self.ports[&from.port].inject_frame(0, frame) {
            writeln!(self.out, "  {what}: rx ring of {} is full", from.name)?;
            return Ok(());
        }
        self.pmd.run_until_idle();
        self.pmd.flush();
        let mut got = Vec::new();
        for h in &HOSTS {
            let n = self.ports[&h.port].drain_tx_frames().len();
            if n > 0 {
                got.push(h.name);
            }
        }
        let mut line = format!("  {what:<38} -> ");
        if got.is_empty() {
            line.push_str("nobody");
        } else {
            line.push_str(&got.join(", "));
        }
        let drops = &self.pmd.stats().drops;
        for r in DropReason::ALL {
            let n = drops.get(r) - drops_before.get(r);
            if n > 0 {
                line.push_str(&format!("  (dropped: {r} x{n})"));
            }
        }
        writeln!(self.out, "{line}")
    }

    fn dump_flows(&mut self) -> std::io::Result<()> {
        writeln!(self.out, "  $ xswitch flow dump")?;
        for r in self.dp.flow_table().rules() {
            let stats = FlowStats {
                duration: r.duration(),
                n_packets: r.n_packets(),
                n_bytes: r.n_bytes(),
                idle_age: Some(r.idle_age().as_secs()),
                hard_age: None,
            };
            writeln!(self.out, "  {}", format_dump_flow(r.spec(), Some(&stats)))?;
        }
        Ok(())
    }

    fn trace(&mut self, from: &Host, frame: &[u8]) -> std::io::Result<()> {
        let t = self.dp.trace(from.port, frame);
        let rule = t
            .rule
            .as_ref()
            .map(|r| crate::flow_syntax::format_flow(r.spec()))
            .unwrap_or_else(|| "(none: learning bridge)".into());
        writeln!(self.out, "  $ xswitch trace  (from {})", from.name)?;
        writeln!(self.out, "    rule:    {rule}")?;
        writeln!(self.out, "    actions: {}", format_actions(&t.actions))?;
        writeln!(self.out, "    outputs: {:?}", t.outputs)?;
        match t.dropped {
            Some(r) => writeln!(self.out, "    dropped: {r}"),
            None => writeln!(self.out, "    dropped: no"),
        }
    }

    fn stats(&mut self) -> std::io::Result<()> {
        writeln!(
            self.out,
            "  {:<8} {:>8} {:>8}  drops of packets sent to it",
            "port", "rx", "tx"
        )?;
        for h in &HOSTS {
            let s = self.dp.port_stats(h.port).unwrap_or_default();
            let drops: Vec<String> = s
                .tx_drops
                .nonzero()
                .map(|(r, n)| format!("{r}={n}"))
                .collect();
            writeln!(
                self.out,
                "  {:<8} {:>8} {:>8}  {}",
                self.ports[&h.port].name(),
                s.rx_packets,
                s.tx_packets,
                if drops.is_empty() {
                    "-".to_string()
                } else {
                    drops.join(" ")
                }
            )?;
        }
        Ok(())
    }

    fn run(&mut self) -> std::io::Result<()> {
        let [h1, h2, h3] = &HOSTS;
        writeln!(
            self.out,
            "xswitch demo: 3 hosts on in-memory ports (h1=1, h2=2, h3=3)\n"
        )?;

        writeln!(self.out, "1. No flows installed: a learning bridge")?;
        self.send(
            "h1 ARP who-has 10.0.0.2 (broadcast)",
            h1,
            &arp_request(h1, h2),
        )?;
        self.send("h2 ARP reply to h1 (h1 learned)", h2, &arp_reply(h2, h1))?;
        self.send("h1 UDP to h2 (h2 learned)", h1, &udp(h1, h2, 9000, 64))?;
        writeln!(self.out, "  $ xswitch fdb show")?;
        for e in self.dp.fdb() {
            let m = e.mac;
            writeln!(
                self.out,
                "    port {}  vlan {}  {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  age {}s",
                e.port, e.vlan, m[0], m[1], m[2], m[3], m[4], m[5], e.age_secs
            )?;
        }

        writeln!(self.out, "\n2. Flows in ovs-ofctl syntax")?;
        let flows = [
            "priority=300,udp,tp_dst=53,actions=drop",
            "priority=200,ip,nw_dst=10.0.0.3,actions=dec_ttl,mod_dl_src:02:00:00:00:00:fe,output:3",
            "priority=100,actions=normal",
        ];
        for f in flows {
            writeln!(self.out, "  $ xswitch flow add '{f}'")?;
            let spec = parse_flow(f, &|name| {
                HOSTS.iter().find(|h| h.name == name).map(|h| h.port)
            })
            .map_err(|e| std::io::Error::other(e.render(f)))?;
            self.dp.flow_table().add(spec);
        }
        self.send("h1 UDP to h2 port 53", h1, &udp(h1, h2, 53, 64))?;
        self.send(
            "h1 UDP to h3 (dec_ttl, rewrite)",
            h1,
            &udp(h1, h3, 9000, 64),
        )?;
        self.send("h1 UDP to h3 with TTL 1", h1, &udp(h1, h3, 9000, 1))?;
        self.send("h2 UDP to h1 (normal)", h2, &udp(h2, h1, 9000, 64))?;
        self.dump_flows()?;
        self.trace(h1, &udp(h1, h3, 9000, 64))?;

        writeln!(self.out, "\n3. h3's port loses carrier")?;
        self.ports[&h3.port].set_carrier(false);
        self.send("h1 UDP to h3", h1, &udp(h1, h3, 9000, 64))?;
        self.trace(h1, &udp(h1, h3, 9000, 64))?;
        self.ports[&h3.port].set_carrier(true);
        self.send("h1 UDP to h3 (carrier back)", h1, &udp(h1, h3, 9000, 64))?;
        writeln!(self.out, "  $ xswitch stats")?;
        self.stats()?;

        writeln!(
            self.out,
            "\n4. A burst through the cache-hit path (one core)"
        )?;
        self.burst(h1, h2)?;
        Ok(())
    }

    /// Pushes batches of one 64-byte flow h1 → h2 through the PMD and reports
    /// the rate. Informational: benches/ has the measured figures.
    fn burst(&mut self, from: &Host, to: &Host) -> std::io::Result<()> {
        let frame = udp(from, to, 9000, 64);
        let rx = &self.ports[&from.port];
        let tx = &self.ports[&to.port];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed().as_millis() < 500 {
            for _ in 0..256 {
                if !rx.inject_frame(0, &frame) {
                    break;
                }
                sent += 1;
            }
            self.pmd.run_until_idle();
            for q in 0..tx.n_txq() {
                tx.drain_tx(q, |_| ());
            }
        }
        self.pmd.flush();
        tx.drain_tx_frames();
        let secs = start.elapsed().as_secs_f64();
        writeln!(
            self.out,
            "  {sent} packets in {secs:.2}s: {:.2} Mpps including frame build and ring copies",
            sent as f64 / secs / 1e6
        )?;
        let s = self.pmd.stats();
        writeln!(
            self.out,
            "  PMD: rx {} tx {} drops {} emc_hits {} classifier_lookups {} (accounting balanced: {})",
            s.rx_packets,
            s.tx_packets,
            s.drops.total(),
            s.emc_hits,
            s.classifier_lookups,
            s.balanced()
        )
    }
}

/// Runs the demo, printing to `out`.
pub fn run(out: impl Write) -> std::io::Result<()> {
    Demo::new(out).run()
}
