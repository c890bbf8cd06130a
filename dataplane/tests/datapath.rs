//! End-to-end tests of the datapath over in-memory ports.
//!
//! Every scenario ends with `settle()`, which drains every port's tx rings,
//! hands the buffers back, and asserts the accounting invariants — per PMD
//! `rx + copies == tx + drops`, per ingress port `rx + copies == delivered +
//! drops`, port tx totals equal the PMD's — and that the PMD's pool got every
//! buffer back.

use dataplane::actions::Action;
use dataplane::classifier::{Rule, RuleSpec};
use dataplane::datapath::{
    Datapath, DatapathConfig, DatapathError, Pmd, PmdConfig, PortStats, TX_RETRIES,
};
use dataplane::flow_key::{field, FlowKey, FlowMatch, MacAddr, PortNo, VLAN_CFI};
use dataplane::packet::{PacketBatch, BATCH_SIZE};
use dataplane::stats::{DropCounters, DropReason};
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig, TxFault};
use dataplane::vport::{TxError, Vport};
use dataplane::wire::builder::build_frame;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const A: MacAddr = [0x02, 0, 0, 0, 0, 0x0a];
const B: MacAddr = [0x02, 0, 0, 0, 0, 0x0b];
const C: MacAddr = [0x02, 0, 0, 0, 0, 0x0c];
const BCAST: MacAddr = [0xff; 6];

/// A UDP/IPv4 flow key; `vlan` adds an 802.1Q tag.
fn udp_key(src: MacAddr, dst: MacAddr, vlan: Option<u16>, sport: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(src);
    k.set_dl_dst(dst);
    if let Some(v) = vlan {
        k.set_vlan_tci(VLAN_CFI | v);
    }
    k.set_dl_type(0x0800);
    k.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
    k.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
    k.set_nw_proto(17);
    k.set_nw_ttl(64);
    k.set_tp_src(sport);
    k.set_tp_dst(53);
    k
}

/// A 64-byte UDP/IPv4 frame.
fn udp(src: MacAddr, dst: MacAddr) -> Vec<u8> {
    build_frame(&udp_key(src, dst, None, 1000), 22)
}

fn udp_vlan(src: MacAddr, dst: MacAddr, vlan: u16) -> Vec<u8> {
    build_frame(&udp_key(src, dst, Some(vlan), 1000), 18)
}

fn match_any() -> FlowMatch {
    FlowMatch::ANY
}

fn match_in_port(p: PortNo) -> FlowMatch {
    let mut m = FlowMatch::ANY;
    m.set_masked(field::IN_PORT, u64::from(p), u64::from(u32::MAX));
    m
}

fn rule(m: FlowMatch, priority: u16, actions: Vec<Action>) -> RuleSpec {
    let mut s = RuleSpec::new(m, actions);
    s.priority = priority;
    s
}

/// A switch with in-memory ports 1..=n, one PMD, a manual clock.
struct Switch {
    dp: Arc<Datapath>,
    pmd: Pmd,
    ports: BTreeMap<PortNo, Arc<MemoryPort>>,
}

impl Switch {
    fn new(n: u32) -> Self {
        Self::with(n, |_, c| c, PmdConfig::default())
    }

    /// `cfg(ofport, default)` configures each port.
    fn with(
        n: u32,
        cfg: impl Fn(PortNo, MemoryPortConfig) -> MemoryPortConfig,
        pmd: PmdConfig,
    ) -> Self {
        let dp = Arc::new(Datapath::with_config(DatapathConfig {
            manual_clock: true,
            ..DatapathConfig::default()
        }));
        let mut ports = BTreeMap::new();
        for p in 1..=n {
            let port = Arc::new(MemoryPort::new(cfg(
                p,
                MemoryPortConfig::new(format!("p{p}")),
            )));
            dp.add_port(p, port.clone()).unwrap();
            ports.insert(p, port);
        }
        Switch {
            pmd: Pmd::new(Arc::clone(&dp), pmd),
            dp,
            ports,
        }
    }

    fn port(&self, p: PortNo) -> &Arc<MemoryPort> {
        &self.ports[&p]
    }

    /// Injects `frames` on `in_port` and forwards until idle.
    fn send_all(&mut self, in_port: PortNo, frames: &[Vec<u8>]) {
        for f in frames {
            assert!(self.port(in_port).inject_frame(0, f), "rx ring full");
        }
        self.pmd.run_until_idle();
    }

    fn send(&mut self, in_port: PortNo, frame: &[u8]) {
        self.send_all(in_port, &[frame.to_vec()]);
    }

    /// Frames transmitted by port `p` since the last call (buffers returned).
    fn out(&self, p: PortNo) -> Vec<Vec<u8>> {
        self.port(p).drain_tx_frames()
    }

    /// Which ports transmitted something, and how many frames, draining them.
    fn outputs(&self) -> BTreeMap<PortNo, usize> {
        self.ports
            .keys()
            .map(|&p| (p, self.out(p).len()))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    fn drops(&self) -> DropCounters {
        self.pmd.stats().drops.clone()
    }

    fn stats(&self, p: PortNo) -> PortStats {
        self.dp.port_stats(p).unwrap()
    }

    /// Drains every port, returns every buffer and checks the invariants.
    fn settle(&mut self) {
        for p in self.ports.values() {
            p.drain_tx_frames();
        }
        self.pmd.flush();
        // A deleted port is no longer flushed by the PMD: its completed
        // buffers are collected by hand (deletion step 5).
        for (&p, port) in &self.ports {
            if self.dp.port(p).is_none() {
                for q in 0..port.n_txq() {
                    port.reclaim(q, self.pmd.pool_mut());
                }
            }
        }
        let pool = self.pmd.pool();
        assert_eq!(
            pool.available(),
            pool.created(),
            "buffers leaked: {:?}",
            self.pmd
        );
        let s = self.pmd.stats();
        assert!(s.balanced(), "PMD accounting: {s:?}");
        let (mut rx, mut copies, mut tx, mut delivered, mut drops) = (0, 0, 0, 0, 0);
        for &p in self.ports.keys() {
            if let Some(ps) = self.dp.port_stats(p) {
                assert!(ps.balanced(), "port {p} accounting: {ps:?}");
                rx += ps.rx_packets;
                copies += ps.rx_copies;
                tx += ps.tx_packets;
                delivered += ps.rx_delivered;
                drops += ps.drops.total();
            }
        }
        if self.ports.keys().all(|&p| self.dp.port_stats(p).is_some()) {
            assert_eq!(rx, s.rx_packets);
            assert_eq!(copies, s.copies);
            assert_eq!(tx, s.tx_packets);
            assert_eq!(delivered, s.tx_packets);
            assert_eq!(drops, s.drops.total());
        }
    }
}

fn only(reason: DropReason, n: u64) -> DropCounters {
    let mut d = DropCounters::default();
    d.add(reason, n);
    d
}

// ---- learning bridge ---------------------------------------------------

#[test]
fn unknown_unicast_floods_to_every_port_but_the_ingress() {
    let mut sw = Switch::new(4);
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1), (4, 1)]));
    assert_eq!(
        sw.pmd.stats().copies,
        2,
        "a flood to 3 ports makes 2 copies"
    );
    sw.settle();
}

#[test]
fn learned_station_gets_unicast_to_its_port_only() {
    let mut sw = Switch::new(4);
    sw.send(2, &udp(B, A)); // learn B behind 2 (flooded: A unknown)
    sw.outputs();
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    sw.send(2, &udp(B, A)); // A was learned behind 1 by the previous frame
    assert_eq!(sw.outputs(), BTreeMap::from([(1, 1)]));
    let e = sw.dp.fdb();
    assert_eq!(
        e.iter().map(|e| (e.mac, e.port)).collect::<Vec<_>>(),
        [(A, 1), (B, 2)]
    );
    sw.settle();
}

#[test]
fn frame_to_a_station_behind_the_ingress_port_is_dropped_as_loop_prevented() {
    let mut sw = Switch::new(3);
    sw.send(1, &udp(B, C)); // B behind 1
    sw.outputs();
    sw.send(1, &udp(A, B)); // A and B both behind 1: never sent back out
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::LoopPrevented, 1));
    assert_eq!(sw.stats(1).drops, only(DropReason::LoopPrevented, 1));
    sw.settle();
}

#[test]
fn broadcast_floods_even_when_stations_are_known_and_never_returns_to_ingress() {
    let mut sw = Switch::new(3);
    sw.send(2, &udp(B, A));
    sw.outputs();
    sw.send(1, &udp(A, BCAST));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    sw.send(1, &udp(A, [0x01, 0x00, 0x5e, 0, 0, 1]));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    assert!(sw.dp.fdb().iter().all(|e| e.mac != BCAST));
    sw.settle();
}

#[test]
fn normal_drops_reserved_destinations_before_learning_like_ovs() {
    let mut sw = Switch::new(3);
    // STP BPDU address, LLDP, Cisco CDP: a bridge never forwards these.
    for dst in [
        [0x01, 0x80, 0xc2, 0, 0, 0x00],
        [0x01, 0x80, 0xc2, 0, 0, 0x0e],
        [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc],
    ] {
        sw.send(1, &udp(A, dst));
    }
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::ActionDrop, 3));
    assert!(
        sw.dp.fdb().is_empty(),
        "a dropped reserved frame teaches nothing"
    );
    // The next address up is ordinary multicast: flooded.
    sw.send(1, &udp(A, [0x01, 0x80, 0xc2, 0, 0, 0x10]));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    sw.settle();
}

#[test]
fn normal_sends_a_bare_priority_tagged_frame_untagged() {
    let mut sw = Switch::new(3);
    let tagged = udp_vlan(A, BCAST, 0); // VID 0, PCP 0
    let mut plain = tagged.clone();
    plain.drain(12..16);
    sw.send(1, &tagged);
    for p in [2, 3] {
        assert_eq!(sw.out(p), vec![plain.clone()], "port {p}");
    }
    // Learned unicast too, with a rule that runs normal after a rewrite-free
    // list (the deferred-output path).
    sw.send(2, &udp(B, A));
    sw.outputs();
    sw.dp
        .flow_table()
        .add(rule(match_any(), 10, vec![Action::Normal]));
    let to_b = udp_vlan(A, B, 0);
    let mut to_b_plain = to_b.clone();
    to_b_plain.drain(12..16);
    sw.send(1, &to_b);
    assert_eq!(sw.out(2), vec![to_b_plain]);
    assert!(sw.out(3).is_empty());
    // A VID-0 tag with a priority is kept.
    let mut pcp = udp_vlan(A, B, 0);
    pcp[14] |= 0xa0; // PCP 5
    sw.send(1, &pcp);
    assert_eq!(sw.out(2), vec![pcp]);
    sw.settle();
}

#[test]
fn timers_expire_flows_by_hard_and_idle_timeout() {
    let mut sw = Switch::new(2);
    let mut hard = rule(match_in_port(2), 20, vec![Action::Output(1)]);
    hard.hard_timeout = 1;
    let mut idle = rule(match_in_port(1), 10, vec![Action::Output(2)]);
    idle.idle_timeout = 2;
    sw.dp.flow_table().add(hard);
    sw.dp.flow_table().add(idle);
    sw.dp.clock().advance(Duration::from_millis(1500));
    sw.send(1, &udp(A, B)); // keeps the idle rule alive
    let gone = sw.dp.run_timers();
    assert_eq!(gone.iter().map(|r| r.priority()).collect::<Vec<_>>(), [20]);
    sw.dp.clock().advance(Duration::from_millis(1500));
    assert!(
        sw.dp.run_timers().is_empty(),
        "hit 1.5 s ago, idle timeout 2 s"
    );
    sw.dp.clock().advance(Duration::from_millis(600));
    let gone = sw.dp.run_timers();
    assert_eq!(gone.iter().map(|r| r.priority()).collect::<Vec<_>>(), [10]);
    assert_eq!(sw.dp.flow_table().len(), 0);
    sw.settle();
}

#[test]
fn stations_are_learned_per_vlan() {
    let mut sw = Switch::new(3);
    sw.send(2, &udp_vlan(B, A, 10)); // B behind 2 on VLAN 10 only
    sw.outputs();
    sw.send(1, &udp_vlan(A, B, 10));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    sw.send(1, &udp_vlan(A, B, 20)); // unknown on VLAN 20: flood
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    sw.send(1, &udp(A, B)); // and untagged
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    let vlans: Vec<_> = sw
        .dp
        .fdb()
        .iter()
        .filter(|e| e.mac == A)
        .map(|e| e.vlan)
        .collect();
    assert_eq!(vlans, [0, 10, 20]);
    // The tag is forwarded unchanged.
    sw.send(1, &udp_vlan(A, B, 10));
    let f = sw.out(2);
    assert_eq!(f, [udp_vlan(A, B, 10)]);
    sw.settle();
}

#[test]
fn learned_station_ages_out_and_traffic_floods_again() {
    let mut sw = Switch::new(3);
    sw.dp.mac_table().set_aging(60);
    sw.send(2, &udp(B, A));
    sw.outputs();
    sw.dp.clock().advance(Duration::from_secs(59));
    sw.send(1, &udp(A, B));
    assert_eq!(
        sw.outputs(),
        BTreeMap::from([(2, 1)]),
        "still known at 59 s"
    );
    sw.dp.clock().advance(Duration::from_secs(1));
    sw.send(1, &udp(A, B));
    assert_eq!(
        sw.outputs(),
        BTreeMap::from([(2, 1), (3, 1)]),
        "aged out at 60 s"
    );
    assert!(sw.dp.fdb().iter().all(|e| e.mac != B));
    sw.settle();
}

#[test]
fn station_moving_to_another_port_redirects_its_traffic() {
    let mut sw = Switch::new(3);
    sw.send(2, &udp(B, A));
    sw.send(1, &udp(A, B));
    sw.outputs();
    sw.send(3, &udp(B, A)); // B moved to 3
    sw.outputs();
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    assert_eq!(sw.dp.mac_table().stats().moved, 1);
    sw.settle();
}

#[test]
fn deleting_a_port_forgets_its_stations() {
    let mut sw = Switch::new(3);
    sw.send(2, &udp(B, A));
    sw.outputs();
    let (port, last) = sw.dp.del_port(2).unwrap();
    assert_eq!(port.name(), "p2");
    assert_eq!(last.rx_packets, 1);
    assert!(!port
        .state()
        .registered
        .load(std::sync::atomic::Ordering::Acquire));
    assert!(sw.dp.fdb().is_empty());
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    assert_eq!(sw.dp.del_port(2).err(), Some(DatapathError::NoSuchPort(2)));
    sw.settle();
}

#[test]
fn port_numbers_are_validated() {
    let dp = Datapath::new();
    let p = Arc::new(MemoryPort::with_name("x"));
    assert_eq!(
        dp.add_port(0, p.clone()),
        Err(DatapathError::InvalidOfport(0))
    );
    assert_eq!(
        dp.add_port(0xff01, p.clone()),
        Err(DatapathError::InvalidOfport(0xff01))
    );
    dp.add_port(7, p.clone()).unwrap();
    assert_eq!(dp.add_port(7, p), Err(DatapathError::OfportInUse(7)));
    assert_eq!(dp.ports().len(), 1);
}

// ---- flow rules ----------------------------------------------------------

#[test]
fn output_rule_moves_the_packet_without_copying() {
    let mut sw = Switch::new(3);
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 100, vec![Action::Output(3)]));
    let frames: Vec<_> = (0..40)
        .map(|i| build_frame(&udp_key(A, B, None, i), 22))
        .collect();
    sw.send_all(1, &frames);
    let got = sw.out(3);
    assert_eq!(got, frames, "all frames, unchanged, in order");
    assert_eq!(sw.pmd.stats().copies, 0);
    assert!(sw.outputs().is_empty());
    assert!(sw.dp.fdb().is_empty(), "no learning without `normal`");
    sw.settle();
}

#[test]
fn drop_rule_counts_action_drop() {
    let mut sw = Switch::new(2);
    sw.dp.flow_table().add(rule(match_any(), 1, vec![]));
    sw.send_all(1, &[udp(A, B), udp(A, C)]);
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::ActionDrop, 2));
    sw.settle();
}

#[test]
fn table_miss_with_rules_installed_counts_no_match() {
    let mut sw = Switch::new(2);
    sw.dp
        .flow_table()
        .add(rule(match_in_port(2), 100, vec![Action::Output(1)]));
    for _ in 0..3 {
        sw.send(1, &udp(A, B));
    }
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::NoMatch, 3));
    assert_eq!(sw.pmd.stats().classifier_lookups, 1, "the miss is cached");
    sw.settle();
}

#[test]
fn in_port_match_selects_the_rule_for_each_ingress() {
    let mut sw = Switch::new(3);
    let t = sw.dp.flow_table();
    t.add(rule(match_in_port(1), 100, vec![Action::Output(2)]));
    t.add(rule(match_in_port(2), 100, vec![Action::Output(3)]));
    t.add(rule(match_in_port(3), 100, vec![Action::Output(1)]));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    sw.send(2, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    sw.send(3, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(1, 1)]));
    sw.settle();
}

#[test]
fn output_to_the_ingress_port_is_skipped_and_in_port_sends_back() {
    let mut sw = Switch::new(2);
    let t = sw.dp.flow_table();
    t.add(rule(match_in_port(1), 100, vec![Action::Output(1)]));
    t.add(rule(match_in_port(2), 100, vec![Action::InPort]));
    sw.send(1, &udp(A, B));
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::ActionDrop, 1));
    sw.send(2, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    sw.settle();
}

#[test]
fn flood_and_all_copy_to_every_other_port() {
    let mut sw = Switch::new(4);
    let t = sw.dp.flow_table();
    t.add(rule(match_in_port(1), 100, vec![Action::Flood]));
    t.add(rule(match_in_port(2), 100, vec![Action::All]));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1), (4, 1)]));
    sw.send(2, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(1, 1), (3, 1), (4, 1)]));
    assert_eq!(sw.pmd.stats().copies, 4);
    sw.settle();
}

#[test]
fn rewrites_are_visible_on_the_wire() {
    let mut sw = Switch::new(2);
    sw.dp.flow_table().add(rule(
        match_any(),
        100,
        vec![
            Action::SetDlDst(C),
            Action::SetNwDst(Ipv4Addr::new(192, 0, 2, 9)),
            Action::SetTpDst(5353),
            Action::SetVlanVid(42),
            Action::Output(2),
        ],
    ));
    sw.send(1, &udp(A, B));
    let got = sw.out(2);
    assert_eq!(got.len(), 1);
    let mut want = udp_key(C, C, Some(42), 1000);
    want.set_dl_src(A);
    want.set_nw_dst(Ipv4Addr::new(192, 0, 2, 9));
    want.set_tp_dst(5353);
    let mut k = FlowKey::ZERO;
    dataplane::extract::extract(&got[0], 2, &mut k);
    want.set_in_port(2);
    assert_eq!(k, want);
    assert_eq!(sw.pmd.stats().copies, 0, "rewrite then one output: no copy");
    sw.settle();
}

#[test]
fn outputs_between_rewrites_emit_the_packet_as_it_was_at_each_output() {
    let mut sw = Switch::new(3);
    sw.dp.flow_table().add(rule(
        match_any(),
        100,
        vec![Action::Output(2), Action::SetDlDst(C), Action::Output(3)],
    ));
    let f = udp(A, B);
    sw.send(1, &f);
    assert_eq!(sw.out(2), vec![f.clone()]);
    let to3 = sw.out(3);
    assert_eq!(&to3[0][0..6], &C);
    assert_eq!(&to3[0][6..], &f[6..]);
    assert_eq!(sw.pmd.stats().copies, 1);
    sw.settle();
}

#[test]
fn dec_ttl_forwards_with_ttl_minus_one_and_drops_expired_as_ttl_expired() {
    let mut sw = Switch::new(2);
    sw.dp.flow_table().add(rule(
        match_any(),
        100,
        vec![Action::DecTtl, Action::Output(2)],
    ));
    let mut k = udp_key(A, B, None, 1);
    sw.send(1, &build_frame(&k, 22));
    let got = sw.out(2);
    let mut out = FlowKey::ZERO;
    dataplane::extract::extract(&got[0], 2, &mut out);
    assert_eq!(out.nw_ttl(), 63);
    k.set_nw_ttl(1);
    sw.send(1, &build_frame(&k, 22));
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::TtlExpired, 1));
    sw.settle();
}

#[test]
fn runt_frame_is_dropped_as_malformed() {
    let mut sw = Switch::new(2);
    sw.send_all(1, &[vec![0xff; 13], vec![], vec![1, 2, 3]]);
    assert!(sw.outputs().is_empty());
    assert_eq!(sw.drops(), only(DropReason::Malformed, 3));
    // Also with rules installed, before any lookup.
    sw.dp
        .flow_table()
        .add(rule(match_any(), 1, vec![Action::Output(2)]));
    sw.send(1, &[0; 10]);
    assert_eq!(sw.drops(), only(DropReason::Malformed, 4));
    assert_eq!(sw.pmd.stats().classifier_lookups, 0);
    sw.settle();
}

#[test]
fn frame_larger_than_the_output_mtu_is_dropped_as_mtu_exceeded() {
    let mut sw = Switch::new(3);
    sw.port(2).set_mtu(100);
    sw.dp.flow_table().add(rule(
        match_any(),
        1,
        vec![Action::Output(2), Action::Output(3)],
    ));
    sw.send(1, &build_frame(&udp_key(A, B, None, 1), 200));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    assert_eq!(sw.drops(), only(DropReason::MtuExceeded, 1));
    assert_eq!(sw.stats(2).tx_drops, only(DropReason::MtuExceeded, 1));
    sw.send(1, &udp(A, B)); // 64 bytes fit both
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1)]));
    sw.settle();
}

/// Output to port 2 under a given port fault drops with `reason`; port 3
/// still gets its copy.
fn assert_output_fault(fault: impl Fn(&MemoryPort), reason: DropReason) {
    let mut sw = Switch::new(3);
    sw.dp.flow_table().add(rule(
        match_any(),
        1,
        vec![Action::Output(2), Action::Output(3)],
    ));
    fault(sw.port(2));
    sw.send_all(1, &[udp(A, B), udp(A, C)]);
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 2)]), "{reason}");
    assert_eq!(sw.drops(), only(reason, 2), "{reason}");
    assert_eq!(sw.stats(2).tx_drops, only(reason, 2), "{reason}");
    assert_eq!(
        sw.port(2).counters().send_calls,
        0,
        "{reason}: never offered"
    );
    sw.settle();
}

#[test]
fn output_to_an_admin_down_port_drops_as_port_down() {
    assert_output_fault(|p| p.set_admin_up(false), DropReason::PortDown);
}

#[test]
fn output_to_a_port_that_is_not_running_drops_as_port_down() {
    assert_output_fault(|p| p.set_running(false), DropReason::PortDown);
}

#[test]
fn output_to_a_port_without_carrier_drops_as_no_carrier() {
    assert_output_fault(|p| p.set_carrier(false), DropReason::NoCarrier);
}

#[test]
fn output_to_a_port_with_zero_tx_queues_drops_as_no_tx_queue() {
    assert_output_fault(|p| p.set_tx_queues(0), DropReason::NoTxQueue);
}

#[test]
fn output_to_an_unregistering_port_drops_as_port_unregistering() {
    assert_output_fault(
        |p| {
            p.state()
                .registered
                .store(false, std::sync::atomic::Ordering::Release)
        },
        DropReason::PortUnregistering,
    );
}

#[test]
fn output_to_a_missing_or_deleted_port_drops_as_no_port() {
    let mut sw = Switch::new(3);
    sw.dp.flow_table().add(rule(
        match_any(),
        1,
        vec![Action::Output(9), Action::Output(3)],
    ));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    assert_eq!(sw.drops(), only(DropReason::NoPort, 1));
    sw.dp.del_port(3).unwrap();
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops(), only(DropReason::NoPort, 3));
    sw.settle();
}

#[test]
fn device_with_zero_tx_queues_is_never_sent_to_even_when_marked_up() {
    // The veth soft-lockup class: a device with no tx queue must not be
    // offered packets at all, and the queue choice must not loop.
    let mut sw = Switch::with(2, |_, c| c.queues(1, 0), PmdConfig::default());
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops(), only(DropReason::NoTxQueue, 1));
    assert_eq!(sw.port(2).counters().send_calls, 0);
    sw.settle();
}

#[test]
fn full_tx_ring_is_retried_a_bounded_number_of_times_then_dropped_as_tx_ring_full() {
    let mut sw = Switch::new(2);
    sw.dp
        .flow_table()
        .add(rule(match_any(), 1, vec![Action::Output(2)]));
    sw.port(2).set_tx_fault(TxFault::RingFull);
    sw.send_all(1, &[udp(A, B), udp(A, C), udp(B, C)]);
    assert_eq!(sw.drops(), only(DropReason::TxRingFull, 3));
    assert_eq!(
        sw.port(2).counters().send_calls,
        1 + u64::from(TX_RETRIES),
        "one batch, first try plus bounded retries"
    );
    assert_eq!(sw.pmd.stats().tx_retries, u64::from(TX_RETRIES));
    sw.port(2).set_tx_fault(TxFault::None);
    sw.settle();
}

#[test]
fn ring_that_fills_mid_batch_delivers_what_fits_and_counts_the_rest() {
    let mut sw = Switch::with(
        2,
        |p, c| if p == 2 { c.ring_size(8) } else { c },
        PmdConfig::default(),
    );
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
    let frames: Vec<_> = (0..20)
        .map(|i| build_frame(&udp_key(A, B, None, i), 22))
        .collect();
    // Inject 20 in one rx batch; nobody drains port 2 meanwhile.
    sw.send_all(1, &frames);
    assert_eq!(sw.out(2), frames[..8].to_vec());
    assert_eq!(sw.drops(), only(DropReason::TxRingFull, 12));
    assert_eq!(sw.stats(2).tx_packets, 8);
    sw.settle();
}

#[test]
fn send_error_drops_the_batch_as_tx_error() {
    let mut sw = Switch::new(2);
    sw.dp
        .flow_table()
        .add(rule(match_any(), 1, vec![Action::Output(2)]));
    sw.port(2).set_tx_fault(TxFault::Fail(TxError::Failed));
    sw.send_all(1, &[udp(A, B), udp(A, C)]);
    sw.port(2).set_tx_fault(TxFault::Fail(TxError::Gone));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops(), only(DropReason::TxError, 3));
    assert_eq!(sw.pmd.stats().tx_gone, 1);
    assert_eq!(
        sw.port(2).counters().send_calls,
        2,
        "errors are not retried"
    );
    sw.port(2).set_tx_fault(TxFault::None);
    sw.settle();
}

#[test]
fn flood_copies_that_find_the_pool_empty_count_umem_exhausted() {
    // 6 buffers: receiving 4 frames pays 4 into the fill ring, leaving 2
    // for copies. The first broadcast gets both its copies; the other three
    // find the pool empty and go out only as the original.
    let mut sw = Switch::with(
        4,
        |_, c| c,
        PmdConfig {
            pool_size: 6,
            ..PmdConfig::default()
        },
    );
    let frames: Vec<_> = (0..4)
        .map(|i| build_frame(&udp_key(A, BCAST, None, i), 22))
        .collect();
    sw.send_all(1, &frames);
    let s = sw.pmd.stats().clone();
    assert_eq!(s.copies, 8);
    assert_eq!(s.drops, only(DropReason::UmemExhausted, 6));
    assert_eq!(s.tx_packets, 6);
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1), (3, 1), (4, 4)]));
    sw.settle();
}

#[test]
fn rule_counters_count_every_matched_packet_and_byte() {
    let mut sw = Switch::new(2);
    let r: Arc<Rule> = sw
        .dp
        .flow_table()
        .add(rule(match_any(), 1, vec![Action::Output(2)]));
    let frames: Vec<_> = (0..70)
        .map(|i| build_frame(&udp_key(A, B, None, i % 3), 22))
        .collect();
    sw.send_all(1, &frames);
    assert_eq!(r.n_packets(), 70);
    assert_eq!(r.n_bytes(), 70 * 64);
    assert_eq!(sw.pmd.stats().emc_hits, 67, "3 flows: 3 classifier lookups");
    sw.settle();
}

#[test]
fn rule_change_takes_effect_on_the_next_batch_despite_the_cache() {
    let mut sw = Switch::new(3);
    let dp = Arc::clone(&sw.dp);
    let t = dp.flow_table();
    t.add(rule(match_any(), 1, vec![Action::Output(2)]));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    t.add(rule(match_in_port(1), 10, vec![Action::Output(3)]));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(3, 1)]));
    t.delete(&match_in_port(1), Some(10));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.outputs(), BTreeMap::from([(2, 1)]));
    sw.settle();
}

#[test]
fn tx_queue_is_the_pmd_id_modulo_the_usable_queue_count() {
    // Each PMD transmits on a tx queue of its own when the port has enough
    // (pmd.rs, step 4): PMD 6 on a 4-queue port uses queue 2 for every flow.
    for (id, n_txq, expect) in [(6, 4, 2), (1, 4, 1), (0, 4, 0), (7, 3, 1)] {
        let mut sw = Switch::with(
            2,
            |_, c| c.queues(1, 4),
            PmdConfig {
                id,
                ..PmdConfig::default()
            },
        );
        sw.dp
            .flow_table()
            .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
        sw.port(2).set_tx_queues(n_txq);
        let frames: Vec<_> = (0..64)
            .map(|i| build_frame(&udp_key(A, B, None, i), 22))
            .collect();
        sw.send_all(1, &frames);
        let per_q: Vec<usize> = (0..4).map(|q| sw.port(2).tx_pending(q)).collect();
        let mut want = vec![0; 4];
        want[expect] = 64;
        assert_eq!(per_q, want, "pmd {id}, {n_txq} usable queues");
        // With one usable queue left, everything goes to queue 0.
        for q in 0..4 {
            sw.port(2).drain_tx(q, |_| ());
        }
        sw.port(2).set_tx_queues(1);
        sw.send_all(1, &frames[..32]);
        assert_eq!(sw.port(2).tx_pending(0), 32, "pmd {id}");
        sw.port(2).set_tx_queues(4);
        sw.settle();
    }
}

#[test]
fn batches_larger_than_a_tx_batch_are_flushed_in_pieces() {
    // 32 packets with two outputs to the same port: 64 packets for one
    // tx batch of 32.
    let mut sw = Switch::new(2);
    sw.dp.flow_table().add(rule(
        match_in_port(1),
        1,
        vec![Action::Output(2), Action::Output(2)],
    ));
    let frames: Vec<_> = (0..BATCH_SIZE as u16)
        .map(|i| build_frame(&udp_key(A, B, None, i), 22))
        .collect();
    sw.send_all(1, &frames);
    assert_eq!(sw.out(2).len(), 2 * BATCH_SIZE);
    sw.settle();
}

// ---- accounting under churn ----------------------------------------------

#[test]
fn accounting_holds_and_no_buffer_leaks_under_random_traffic_and_faults() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut sw = Switch::with(
        5,
        |_, c| c.ring_size(16),
        PmdConfig {
            pool_size: 256,
            ..PmdConfig::default()
        },
    );
    let macs: Vec<MacAddr> = (0..8).map(|i| [0x02, 0, 0, 0, 1, i]).collect();
    for round in 0..300 {
        // Perturb one port.
        let p = sw.port(rng.gen_range(1..=5)).clone();
        match rng.gen_range(0..10) {
            0 => p.set_carrier(rng.gen()),
            1 => p.set_admin_up(rng.gen()),
            2 => p.set_tx_queues(rng.gen_range(0..2)),
            3 => p.set_tx_fault(match rng.gen_range(0..3) {
                0 => TxFault::None,
                1 => TxFault::RingFull,
                _ => TxFault::Fail(TxError::Failed),
            }),
            4 => p.set_mtu(rng.gen_range(60..200)),
            _ => {}
        }
        // Sometimes switch between bridge and rule modes.
        if round % 50 == 25 {
            let t = sw.dp.flow_table();
            t.add(rule(match_in_port(1), 5, vec![Action::Flood]));
            t.add(rule(
                match_in_port(2),
                5,
                vec![
                    Action::DecTtl,
                    Action::Output(3),
                    Action::SetDlDst(A),
                    Action::Output(4),
                ],
            ));
            t.add(rule(match_in_port(3), 5, vec![Action::Normal]));
        } else if round % 50 == 0 {
            sw.dp.flow_table().clear();
        }
        // Traffic on random ports.
        for _ in 0..rng.gen_range(1..40) {
            let in_port = rng.gen_range(1..=5);
            let src = macs[rng.gen_range(0..macs.len())];
            let dst = if rng.gen_bool(0.1) {
                BCAST
            } else {
                macs[rng.gen_range(0..macs.len())]
            };
            let mut k = udp_key(
                src,
                dst,
                rng.gen_bool(0.3).then(|| rng.gen_range(1..4)),
                rng.gen(),
            );
            k.set_nw_ttl(rng.gen_range(0..3));
            let len = if rng.gen_bool(0.05) {
                5
            } else {
                rng.gen_range(18..150)
            };
            let f = if len == 5 {
                vec![0; 5]
            } else {
                build_frame(&k, len)
            };
            let _ = sw.port(in_port).inject_frame(0, &f);
        }
        sw.pmd.run_until_idle();
        // A slow sink: drains only sometimes.
        if rng.gen_bool(0.5) {
            for p in sw.ports.values() {
                p.drain_tx_frames();
            }
        }
        let s = sw.pmd.stats();
        assert!(s.balanced(), "round {round}: {s:?}");
    }
    for p in sw.ports.values() {
        p.set_tx_fault(TxFault::None);
        p.set_tx_queues(1);
    }
    sw.settle();
    let s = sw.pmd.stats();
    assert!(s.rx_packets > 3000, "{s:?}");
    assert!(s.tx_packets > 0 && s.drops.nonzero().count() >= 8, "{s:?}");
}

#[test]
fn port_deleted_under_load_drops_with_a_reason_and_loses_no_buffer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dp = Arc::new(Datapath::new());
    let ports: Vec<Arc<MemoryPort>> = (1..=3)
        .map(|p| {
            Arc::new(MemoryPort::new(
                MemoryPortConfig::new(format!("p{p}")).ring_size(64),
            ))
        })
        .collect();
    for (i, p) in ports.iter().enumerate() {
        dp.add_port(i as u32 + 1, p.clone()).unwrap();
    }
    dp.flow_table().add(rule(
        match_in_port(1),
        1,
        vec![Action::Output(2), Action::Output(3)],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let frame = udp(A, B);
    let gen = {
        let (p1, stop, frame) = (ports[0].clone(), stop.clone(), frame.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if p1.inject_frame(0, &frame) {
                    n += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            n
        })
    };
    let sinks: Vec<_> = ports[1..]
        .iter()
        .map(|p| {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += p.drain_tx(0, |_| ());
                    std::thread::yield_now();
                }
                n + p.drain_tx(0, |_| ())
            })
        })
        .collect();
    let mut pmd = Pmd::new(dp.clone(), PmdConfig::default());
    // Delete port 3 once it has carried traffic, and keep forwarding until
    // outputs to it have been dropped for a while.
    let t0 = std::time::Instant::now();
    let mut deleted = false;
    loop {
        pmd.poll();
        if !deleted && ports[2].counters().sent >= 500 {
            dp.del_port(3).unwrap();
            deleted = true;
        }
        if deleted && pmd.stats().drops.get(DropReason::NoPort) >= 500 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no progress: {pmd:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let injected = gen.join().unwrap();
    pmd.run_until_idle();
    let sunk: Vec<usize> = sinks.into_iter().map(|s| s.join().unwrap()).collect();
    // Return what is still on the rings (port 3's ring included).
    let mut late = 0;
    for p in &ports {
        late += p.drain_tx(0, |_| ());
        p.reclaim(0, pmd.pool_mut());
    }
    pmd.flush();
    let s = pmd.stats().clone();
    assert_eq!(s.rx_packets, injected);
    assert!(s.balanced(), "{s:?}");
    assert_eq!(pmd.pool().available(), pmd.pool().created());
    assert!(
        s.drops.get(DropReason::NoPort) > 0,
        "outputs after deletion: {s:?}"
    );
    assert!(sunk[0] > 0 && sunk[1] > 0);
    assert_eq!(s.tx_packets, (sunk[0] + sunk[1] + late) as u64);
}

// ---- trace ---------------------------------------------------------------

#[test]
fn trace_reports_rule_actions_and_outputs_without_side_effects() {
    let mut sw = Switch::new(3);
    let r = sw.dp.flow_table().add(rule(
        match_in_port(1),
        7,
        vec![Action::SetDlDst(C), Action::Output(2), Action::Output(3)],
    ));
    let t = sw.dp.trace(1, &udp(A, B));
    assert!(Arc::ptr_eq(t.rule.as_ref().unwrap(), &r));
    assert_eq!(t.actions, r.actions());
    assert_eq!(t.outputs, [2, 3]);
    assert_eq!(&t.frames[0][0..6], &C);
    assert_eq!(t.dropped, None);
    assert_eq!(r.n_packets(), 0, "no rule counters");
    assert_eq!(sw.pmd.stats().rx_packets, 0);
    assert!(sw.outputs().is_empty(), "nothing sent");
    // Miss and runt.
    assert_eq!(
        sw.dp.trace(2, &udp(A, B)).dropped,
        Some(DropReason::NoMatch)
    );
    assert_eq!(sw.dp.trace(1, &[0; 7]).dropped, Some(DropReason::Malformed));
    sw.settle();
}

#[test]
fn trace_of_the_learning_bridge_never_learns() {
    let mut sw = Switch::new(3);
    let t = sw.dp.trace(1, &udp(A, B));
    assert_eq!(t.actions, [Action::Normal]);
    assert_eq!(t.outputs, [2, 3], "unknown destination floods");
    assert!(sw.dp.fdb().is_empty(), "trace did not learn A");
    sw.send(2, &udp(B, A));
    assert_eq!(sw.dp.trace(1, &udp(A, B)).outputs, [2]);
    let t = sw.dp.trace(2, &udp(C, B));
    assert_eq!(t.outputs, Vec::<PortNo>::new());
    assert_eq!(t.dropped, Some(DropReason::LoopPrevented));
    sw.settle();
}

#[test]
fn trace_includes_port_state_drops() {
    let sw = Switch::new(3);
    sw.dp.flow_table().add(rule(
        match_any(),
        1,
        vec![Action::Output(2), Action::Output(3)],
    ));
    sw.port(2).set_carrier(false);
    let t = sw.dp.trace(1, &udp(A, B));
    assert_eq!(t.outputs, [3]);
    assert_eq!(t.output_drops, [(2, DropReason::NoCarrier)]);
    assert_eq!(t.dropped, None);
    sw.port(3).set_tx_queues(0);
    let t = sw.dp.trace(1, &udp(A, B));
    assert!(t.outputs.is_empty());
    assert_eq!(t.dropped, Some(DropReason::NoCarrier), "the first failure");
    let mut k = udp_key(A, B, None, 9);
    k.set_in_port(1);
    k.set_nw_ttl(1);
    sw.dp.flow_table().add(rule(
        match_any(),
        5,
        vec![Action::DecTtl, Action::Output(2)],
    ));
    assert_eq!(sw.dp.trace_key(&k).dropped, Some(DropReason::TtlExpired));
}

#[test]
fn process_batch_accepts_a_caller_built_batch() {
    // The PMD API without polling: a caller hands a batch it received.
    let dp = Arc::new(Datapath::new());
    let p2 = Arc::new(MemoryPort::with_name("p2"));
    dp.add_port(1, Arc::new(MemoryPort::with_name("p1")))
        .unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    dp.flow_table()
        .add(rule(match_any(), 1, vec![Action::Output(2)]));
    let mut pmd = Pmd::new(
        dp,
        PmdConfig {
            pool_size: 64,
            ..PmdConfig::default()
        },
    );
    let mut batch = PacketBatch::new();
    for _ in 0..3 {
        let mut p = pmd.pool_mut().alloc().unwrap();
        assert!(p.set_data(&udp(A, B)));
        batch.push(p).unwrap();
    }
    pmd.process_batch(1, &mut batch);
    assert!(batch.is_empty());
    assert_eq!(p2.drain_tx_frames().len(), 3);
    pmd.flush();
    assert_eq!(pmd.pool().available(), 64);
}

#[test]
fn gone_device_stops_outputs_at_once_and_is_deleted_by_the_control_side() {
    let mut sw = Switch::new(3);
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
    sw.port(2).set_tx_fault(TxFault::Fail(TxError::Gone));
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops(), only(DropReason::TxError, 1));
    assert_eq!(sw.pmd.stats().tx_gone, 1);
    assert!(
        !sw.port(2).state().registered.load(Ordering::Acquire),
        "the PMD unregistered it"
    );
    // Not deleted yet (no control thread ran), but outputs already drop
    // without touching the device.
    assert!(sw.dp.port(2).is_some());
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops().get(DropReason::PortUnregistering), 1);
    assert_eq!(sw.port(2).counters().send_calls, 1, "no retry, no resend");
    assert_eq!(sw.dp.process_port_requests(), 1);
    assert_eq!(
        sw.dp.process_port_requests(),
        0,
        "reported once, deleted once"
    );
    assert!(sw.dp.port(2).is_none());
    sw.dp.reclaim();
    assert_eq!(sw.dp.retired().ports, 1);
    assert_eq!(sw.dp.port_table().stats().destroyed, 1);
    sw.send(1, &udp(A, B));
    assert_eq!(sw.drops().get(DropReason::NoPort), 1);
    sw.port(2).set_tx_fault(TxFault::None);
    sw.settle();
}

#[test]
fn gone_report_for_a_port_readded_since_is_ignored() {
    let mut sw = Switch::new(2);
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
    sw.port(2).set_tx_fault(TxFault::Fail(TxError::Gone));
    sw.send(1, &udp(A, B));
    // The operator replaces the port before the control side runs.
    sw.dp.del_port(2).unwrap();
    let fresh = Arc::new(MemoryPort::with_name("p2"));
    sw.dp.add_port(2, fresh.clone()).unwrap();
    assert_eq!(sw.dp.process_port_requests(), 0);
    assert!(
        sw.dp.port(2).is_some(),
        "the new port survives the stale report"
    );
    sw.send(1, &udp(A, B));
    assert_eq!(fresh.drain_tx_frames().len(), 1);
    sw.port(2).set_tx_fault(TxFault::None);
}

#[test]
fn deleted_port_is_torn_down_once_after_the_grace_period_with_its_buffers_counted() {
    let mut sw = Switch::new(2);
    sw.dp
        .flow_table()
        .add(rule(match_in_port(1), 1, vec![Action::Output(2)]));
    let frames: Vec<_> = (0..5)
        .map(|i| build_frame(&udp_key(A, B, None, i), 22))
        .collect();
    // Five frames sit on port 2's tx ring (nobody drains it).
    sw.send_all(1, &frames);
    assert_eq!(sw.port(2).tx_outstanding(0), 5);
    // A PMD thread elsewhere is mid-batch: it has not passed a quiescent
    // point since the deletion.
    let mut other = sw.dp.rcu().register("busy-pmd").unwrap();
    let (_, last) = sw.dp.del_port(2).unwrap();
    assert_eq!(last.tx_packets, 5);
    sw.dp.reclaim();
    assert_eq!(sw.dp.retired().ports, 0, "teardown waits for every PMD");
    assert_eq!(sw.port(2).counters().returned, 0);
    other.quiescent();
    sw.dp.reclaim();
    sw.dp.reclaim();
    let r = sw.dp.retired();
    assert_eq!(r.ports, 1, "exactly once");
    assert_eq!(r.buffers_returned, 5);
    assert_eq!(r.stats.tx_packets, 5);
    assert_eq!(sw.port(2).counters().returned, 5);
    assert_eq!(sw.port(2).counters().released, 0);
    assert_eq!(sw.dp.spare_buffers(), 5);
    let s = sw.dp.port_table().stats();
    assert_eq!((s.deleted, s.destroyed, s.protocol_violations), (1, 1, 0));
    // The teardown handed the five buffers back; the PMD takes them home.
    sw.pmd.flush();
    assert_eq!(sw.pmd.pool().available() + 5, sw.pmd.pool().created());
    sw.pmd.reap();
    assert_eq!(sw.pmd.pool().available(), sw.pmd.pool().created());
    assert_eq!(sw.dp.spare_buffers(), 0);
}
