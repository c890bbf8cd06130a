//! Action execution: every rewrite checked on the resulting bytes, with
//! checksums recomputed from scratch by an independent reference.

use core::net::Ipv4Addr;
use dataplane::actions::{execute, Action, ActionContext, ExecResult};
use dataplane::extract::{extract, Layers};
use dataplane::flow_key::{ethertype, ipproto, FlowKey, PortNo, FRAG_ANY, FRAG_LATER, VLAN_CFI};
use dataplane::packet::{Packet, HEADROOM};
use dataplane::stats::DropReason;
use proptest::prelude::*;

// ---------------------------------------------------------------- reference

/// RFC 1071 the slow way: big-endian words, fold at the end.
fn ref_sum(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let hi = u32::from(c[0]) << 8;
        let lo = c.get(1).map_or(0, |&b| u32::from(b));
        s += hi | lo;
    }
    s
}
fn ref_fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    s as u16
}
/// Does the region (including its checksum field) sum to 0xffff?
fn sums_to_ffff(parts: &[&[u8]]) -> bool {
    ref_fold(parts.iter().map(|p| ref_sum(p)).sum()) == 0xffff
}
fn ref_crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

// ---------------------------------------------------------------- builders

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const IN_PORT: PortNo = 1;

/// A frame with the key and layers extraction would give it.
#[derive(Clone, Debug)]
struct Built {
    frame: Vec<u8>,
    key: FlowKey,
    layers: Layers,
}

/// L4 of a test packet.
#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
    },
    /// `csum`: false sends checksum 0 ("none").
    Udp {
        sport: u16,
        dport: u16,
        csum: bool,
    },
    Sctp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
}

impl L4 {
    fn proto(self) -> u8 {
        match self {
            L4::Tcp { .. } => ipproto::TCP,
            L4::Udp { .. } => ipproto::UDP,
            L4::Sctp { .. } => ipproto::SCTP,
            L4::Icmp { .. } => ipproto::ICMP,
        }
    }
    fn ports(self) -> (u16, u16) {
        match self {
            L4::Tcp { sport, dport } | L4::Udp { sport, dport, .. } | L4::Sctp { sport, dport } => {
                (sport, dport)
            }
            L4::Icmp { ty, code } => (u16::from(ty), u16::from(code)),
        }
    }
    /// Header + payload with the checksum filled for `pseudo` (the
    /// pseudo-header sum; ignored by ICMP and SCTP).
    fn bytes(self, payload: &[u8], pseudo: u32) -> Vec<u8> {
        let mut v = match self {
            L4::Tcp { sport, dport } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = 0x18;
                h[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport, .. } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Sctp { sport, dport } => {
                let mut h = vec![0u8; 12];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
                h
            }
            L4::Icmp { ty, code } => vec![ty, code, 0, 0, 0, 1, 0, 1],
        };
        v.extend_from_slice(payload);
        match self {
            L4::Tcp { .. } => {
                let c = !ref_fold(pseudo + ref_sum(&v));
                v[16..18].copy_from_slice(&c.to_be_bytes());
            }
            L4::Udp { csum: true, .. } => {
                let c = !ref_fold(pseudo + ref_sum(&v));
                let c = if c == 0 { 0xffff } else { c };
                v[6..8].copy_from_slice(&c.to_be_bytes());
            }
            L4::Udp { csum: false, .. } => {}
            L4::Sctp { .. } => {
                let c = ref_crc32c(&v);
                v[8..12].copy_from_slice(&c.to_le_bytes());
            }
            L4::Icmp { .. } => {
                let c = !ref_fold(ref_sum(&v));
                v[2..4].copy_from_slice(&c.to_be_bytes());
            }
        }
        v
    }
}

/// Ethernet header with `tags` (TPID, wire TCI), outer first.
fn eth_header(tags: &[(u16, u16)], dl_type: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&dl_type.to_be_bytes());
    f
}

fn base_key(tags: &[(u16, u16)], dl_type: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(IN_PORT);
    k.set_dl_src(SRC_MAC);
    k.set_dl_dst(DST_MAC);
    k.set_dl_type(dl_type);
    if let Some(&(_, tci)) = tags.first() {
        k.set_vlan_tci(tci | VLAN_CFI);
    }
    if let Some(&(_, tci)) = tags.get(1) {
        k.set_vlan_tci2(tci | VLAN_CFI);
    }
    k
}

/// IPv4 options of `opt_words` 32-bit words; `frag` is the flags/offset word.
#[derive(Clone, Copy)]
struct V4 {
    src: [u8; 4],
    dst: [u8; 4],
    tos: u8,
    ttl: u8,
    frag: u16,
    opt_words: u8,
}

impl Default for V4 {
    fn default() -> Self {
        V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            tos: 0,
            ttl: 64,
            frag: 0x4000,
            opt_words: 0,
        }
    }
}

fn ipv4_frame(tags: &[(u16, u16)], ip: V4, l4: L4, payload: &[u8]) -> Built {
    let mut f = eth_header(tags, ethertype::IPV4);
    let l3 = f.len();
    let ihl = 20 + 4 * usize::from(ip.opt_words);
    let later = ip.frag & 0x1fff != 0;
    let l4_bytes = if later {
        payload.to_vec()
    } else {
        let proto = l4.proto();
        let len = l4.bytes(payload, 0).len() as u32;
        let pseudo = ref_sum(&ip.src) + ref_sum(&ip.dst) + u32::from(proto) + len;
        l4.bytes(payload, pseudo)
    };
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[1] = ip.tos;
    h[2..4].copy_from_slice(&((ihl + l4_bytes.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    h[6..8].copy_from_slice(&ip.frag.to_be_bytes());
    h[8] = ip.ttl;
    h[9] = l4.proto();
    h[12..16].copy_from_slice(&ip.src);
    h[16..20].copy_from_slice(&ip.dst);
    for (i, b) in h[20..].iter_mut().enumerate() {
        // NOP options; an odd count of them ends on a non-NOP byte so the
        // option area is not all one value.
        *b = if i + 1 == ihl - 20 { 0 } else { 1 };
    }
    let c = !ref_fold(ref_sum(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    let l4_off = f.len();
    f.extend_from_slice(&l4_bytes);

    let mut key = base_key(tags, ethertype::IPV4);
    key.set_nw_src(Ipv4Addr::from(ip.src));
    key.set_nw_dst(Ipv4Addr::from(ip.dst));
    key.set_nw_proto(l4.proto());
    key.set_nw_tos(ip.tos);
    key.set_nw_ttl(ip.ttl);
    let mf_or_offset = ip.frag & 0x3fff != 0;
    key.set_nw_frag(match (mf_or_offset, later) {
        (_, true) => FRAG_ANY | FRAG_LATER,
        (true, false) => FRAG_ANY,
        _ => 0,
    });
    if !later {
        let (s, d) = l4.ports();
        key.set_tp_src(s);
        key.set_tp_dst(d);
    }
    let layers = Layers {
        l2_len: l3 as u16,
        vlan_tags: tags.len() as u8,
        l3: Some(l3 as u16),
        l4: (!later).then_some(l4_off as u16),
        ..Default::default()
    };
    Built {
        frame: f,
        key,
        layers,
    }
}

const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn ipv6_frame(tags: &[(u16, u16)], tclass: u8, hlim: u8, l4: L4, payload: &[u8]) -> Built {
    let mut f = eth_header(tags, ethertype::IPV6);
    let l3 = f.len();
    let len = l4.bytes(payload, 0).len() as u32;
    let pseudo = ref_sum(&V6_SRC) + ref_sum(&V6_DST) + len + u32::from(l4.proto());
    let l4_bytes = l4.bytes(payload, pseudo);
    let word0: u32 = (6 << 28) | (u32::from(tclass) << 20) | 0x12345;
    f.extend_from_slice(&word0.to_be_bytes());
    f.extend_from_slice(&(l4_bytes.len() as u16).to_be_bytes());
    f.push(l4.proto());
    f.push(hlim);
    f.extend_from_slice(&V6_SRC);
    f.extend_from_slice(&V6_DST);
    let l4_off = f.len();
    f.extend_from_slice(&l4_bytes);
    let mut key = base_key(tags, ethertype::IPV6);
    key.set_ipv6_src(V6_SRC.into());
    key.set_ipv6_dst(V6_DST.into());
    key.set_ipv6_label(0x12345);
    key.set_nw_proto(l4.proto());
    key.set_nw_tos(tclass);
    key.set_nw_ttl(hlim);
    let (s, d) = l4.ports();
    key.set_tp_src(s);
    key.set_tp_dst(d);
    let layers = Layers {
        l2_len: l3 as u16,
        vlan_tags: tags.len() as u8,
        l3: Some(l3 as u16),
        l4: Some(l4_off as u16),
        ..Default::default()
    };
    Built {
        frame: f,
        key,
        layers,
    }
}

fn arp_frame(tags: &[(u16, u16)]) -> Built {
    let mut f = eth_header(tags, ethertype::ARP);
    let l3 = f.len();
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    let mut key = base_key(tags, ethertype::ARP);
    key.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
    key.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
    key.set_nw_proto(1);
    key.set_arp_sha(SRC_MAC);
    let layers = Layers {
        l2_len: l3 as u16,
        vlan_tags: tags.len() as u8,
        l3: Some(l3 as u16),
        l4: None,
        ..Default::default()
    };
    Built {
        frame: f,
        key,
        layers,
    }
}

fn tcp() -> L4 {
    L4::Tcp {
        sport: 40000,
        dport: 80,
    }
}
fn udp() -> L4 {
    L4::Udp {
        sport: 5353,
        dport: 53,
        csum: true,
    }
}
const PAYLOAD: &[u8] = b"the quick brown fox jumps over the lazy dog!";

// ------------------------------------------------------------- recording ctx

#[derive(Debug, Clone, PartialEq, Eq)]
enum Emit {
    Output(PortNo, Vec<u8>),
    Flood(PortNo, Vec<u8>),
    Normal(FlowKey, Vec<u8>),
}

#[derive(Default)]
struct Recorder {
    emits: Vec<Emit>,
}

impl ActionContext for Recorder {
    fn output(&mut self, port: PortNo, pkt: &Packet) {
        self.emits.push(Emit::Output(port, pkt.data().to_vec()));
    }
    fn flood(&mut self, in_port: PortNo, pkt: &Packet) {
        self.emits.push(Emit::Flood(in_port, pkt.data().to_vec()));
    }
    fn normal(&mut self, key: &FlowKey, pkt: &Packet) {
        self.emits.push(Emit::Normal(*key, pkt.data().to_vec()));
    }
}

/// Runs `actions` on `b`; returns the result, the final packet bytes, key,
/// layers and what was emitted.
fn run(b: &Built, actions: &[Action]) -> (ExecResult, Built, Vec<Emit>) {
    let mut pkt = Packet::from_bytes(&b.frame).unwrap();
    let mut key = b.key;
    let mut layers = b.layers;
    let mut rec = Recorder::default();
    let r = execute(actions, &mut pkt, &mut key, &mut layers, &mut rec);
    (
        r,
        Built {
            frame: pkt.data().to_vec(),
            key,
            layers,
        },
        rec.emits,
    )
}

/// Recomputes every checksum of `b` from scratch (IPv4 header, TCP, UDP
/// unless absent, SCTP CRC32c, ICMP) and says which ones are wrong.
fn bad_checksums(b: &Built) -> Vec<&'static str> {
    let mut bad = Vec::new();
    let f = &b.frame;
    let Some(l3) = b.layers.l3.map(usize::from) else {
        return bad;
    };
    let (pseudo, seg_end) = match b.key.dl_type() {
        ethertype::IPV4 => {
            let ihl = usize::from(f[l3] & 0x0f) * 4;
            if !sums_to_ffff(&[&f[l3..l3 + ihl]]) {
                bad.push("ipv4");
            }
            let total = usize::from(be16(f, l3 + 2));
            let l4_len = (total - ihl) as u32;
            let p = ref_sum(&f[l3 + 12..l3 + 20]) + u32::from(f[l3 + 9]) + l4_len;
            (p, l3 + total)
        }
        ethertype::IPV6 => {
            let plen = usize::from(be16(f, l3 + 4));
            let l4 = usize::from(b.layers.l4.unwrap_or(0));
            let l4_len = (l3 + 40 + plen - l4) as u32;
            let p = ref_sum(&f[l3 + 8..l3 + 40]) + l4_len + u32::from(b.key.nw_proto());
            (p, l3 + 40 + plen)
        }
        _ => return bad,
    };
    let Some(l4) = b.layers.l4.map(usize::from) else {
        return bad;
    };
    let seg = &f[l4..seg_end];
    let p = [(pseudo >> 16) as u16, pseudo as u16];
    let pbytes = [(p[0] >> 8) as u8, p[0] as u8, (p[1] >> 8) as u8, p[1] as u8];
    let (name, ok) = match b.key.nw_proto() {
        ipproto::TCP => ("tcp", sums_to_ffff(&[&pbytes, seg])),
        ipproto::UDP => ("udp", be16(seg, 6) == 0 || sums_to_ffff(&[&pbytes, seg])),
        ipproto::SCTP => {
            let mut s = seg.to_vec();
            let stored = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
            s[8..12].fill(0);
            ("sctp", ref_crc32c(&s) == stored)
        }
        ipproto::ICMP => ("icmp", sums_to_ffff(&[seg])),
        _ => ("", true),
    };
    if !ok {
        bad.push(name);
    }
    bad
}

fn assert_checksums_valid(b: &Built) {
    assert_eq!(
        bad_checksums(b),
        Vec::<&str>::new(),
        "frame {:02x?}",
        b.frame
    );
}

// ------------------------------------------------------------------- output

#[test]
fn empty_action_list_emits_nothing_and_leaves_packet_alone() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (r, out, emits) = run(&b, &[]);
    assert_eq!(r, ExecResult::Done);
    assert!(emits.is_empty());
    assert_eq!(out.frame, b.frame);
    assert_eq!(out.key, b.key);
}

#[test]
fn output_to_ingress_port_is_skipped_but_in_port_action_sends_there() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (r, _, emits) = run(
        &b,
        &[Action::Output(IN_PORT), Action::Output(2), Action::InPort],
    );
    assert_eq!(r, ExecResult::Done);
    assert_eq!(
        emits,
        vec![
            Emit::Output(2, b.frame.clone()),
            Emit::Output(IN_PORT, b.frame.clone())
        ]
    );
}

#[test]
fn flood_and_all_exclude_the_ingress_port_via_context() {
    let b = arp_frame(&[]);
    let (_, _, emits) = run(&b, &[Action::Flood, Action::All]);
    assert_eq!(
        emits,
        vec![
            Emit::Flood(IN_PORT, b.frame.clone()),
            Emit::Flood(IN_PORT, b.frame.clone())
        ]
    );
}

#[test]
fn each_output_sees_the_rewrites_made_before_it() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let new_mac = [0x0a, 1, 2, 3, 4, 5];
    let (_, out, emits) = run(
        &b,
        &[
            Action::Output(2),
            Action::SetDlSrc(new_mac),
            Action::Output(3),
        ],
    );
    let Emit::Output(2, first) = &emits[0] else {
        panic!("{emits:?}")
    };
    let Emit::Output(3, second) = &emits[1] else {
        panic!("{emits:?}")
    };
    assert_eq!(first, &b.frame);
    assert_eq!(&second[6..12], &new_mac);
    assert_eq!(second, &out.frame);
}

#[test]
fn normal_sees_the_key_with_rewrites_so_far() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (_, out, emits) = run(
        &b,
        &[
            Action::SetVlanVid(42),
            Action::SetNwDst(Ipv4Addr::new(1, 2, 3, 4)),
            Action::Normal,
        ],
    );
    let Emit::Normal(k, frame) = &emits[0] else {
        panic!("{emits:?}")
    };
    assert_eq!(k.dl_vlan(), Some(42));
    assert_eq!(k.nw_dst(), Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(frame, &out.frame);
}

// ----------------------------------------------------------------------- L2

#[test]
fn mod_dl_src_and_dst_rewrite_the_macs_and_the_key() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let s = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01];
    let d = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x02];
    let (r, out, _) = run(&b, &[Action::SetDlSrc(s), Action::SetDlDst(d)]);
    assert_eq!(r, ExecResult::Done);
    assert_eq!(&out.frame[0..6], &d);
    assert_eq!(&out.frame[6..12], &s);
    assert_eq!(&out.frame[12..], &b.frame[12..]);
    assert_eq!((out.key.dl_src(), out.key.dl_dst()), (s, d));
}

#[test]
fn mod_vlan_vid_on_untagged_frame_pushes_8021q_tag_with_pcp_0() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (r, out, _) = run(&b, &[Action::SetVlanVid(100)]);
    assert_eq!(r, ExecResult::Done);
    let expect = ipv4_frame(&[(0x8100, 100)], V4::default(), tcp(), PAYLOAD);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_eq!(out.layers, expect.layers);
    assert_checksums_valid(&out);
}

#[test]
fn mod_vlan_pcp_on_untagged_frame_pushes_tag_with_vid_0() {
    let b = arp_frame(&[]);
    let (_, out, _) = run(&b, &[Action::SetVlanPcp(5)]);
    let expect = arp_frame(&[(0x8100, 5 << 13)]);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_eq!(out.layers, expect.layers);
}

#[test]
fn mod_vlan_vid_on_tagged_frame_keeps_tpid_and_pcp_and_clears_dei() {
    // 802.1ad outer tag, PCP 3, DEI set, VID 7; inner tag untouched.
    let tags = [(0x88a8, (3 << 13) | 0x1000 | 7), (0x8100, 0x1000 | 9)];
    let b = arp_frame(&tags);
    let (_, out, _) = run(&b, &[Action::SetVlanVid(4095)]);
    let expect = arp_frame(&[(0x88a8, (3 << 13) | 4095), (0x8100, 0x1000 | 9)]);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key.vlan_tci(), (3 << 13) | VLAN_CFI | 4095);
    assert_eq!(out.key.vlan_tci2(), b.key.vlan_tci2());
    assert_eq!(out.layers, b.layers);
}

#[test]
fn mod_vlan_pcp_on_tagged_frame_keeps_vid() {
    let b = ipv4_frame(&[(0x8100, (1 << 13) | 300)], V4::default(), udp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetVlanPcp(7)]);
    let expect = ipv4_frame(&[(0x8100, (7 << 13) | 300)], V4::default(), udp(), PAYLOAD);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
}

#[test]
fn strip_vlan_on_untagged_frame_is_a_no_op() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (r, out, _) = run(&b, &[Action::StripVlan]);
    assert_eq!(r, ExecResult::Done);
    assert_eq!(out.frame, b.frame);
    assert_eq!(out.key, b.key);
    assert_eq!(out.layers, b.layers);
}

#[test]
fn strip_vlan_pops_outer_tag_and_inner_becomes_outer() {
    let b = ipv4_frame(
        &[(0x88a8, 10), (0x8100, (2 << 13) | 20)],
        V4::default(),
        tcp(),
        PAYLOAD,
    );
    let (_, once, _) = run(&b, &[Action::StripVlan]);
    let expect = ipv4_frame(&[(0x8100, (2 << 13) | 20)], V4::default(), tcp(), PAYLOAD);
    assert_eq!(once.frame, expect.frame);
    assert_eq!(once.key, expect.key);
    assert_eq!(once.layers, expect.layers);
    let (_, twice, _) = run(&b, &[Action::StripVlan, Action::StripVlan]);
    let untagged = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    assert_eq!(twice.frame, untagged.frame);
    assert_eq!(twice.key, untagged.key);
    assert_eq!(twice.layers, untagged.layers);
}

#[test]
fn strip_then_push_vlan_round_trips() {
    let tag = (0x8100, (5 << 13) | 100);
    let b = ipv4_frame(&[tag], V4::default(), tcp(), PAYLOAD);
    let (r, out, _) = run(
        &b,
        &[
            Action::StripVlan,
            Action::PushVlan(0x8100),
            Action::SetVlanVid(100),
            Action::SetVlanPcp(5),
        ],
    );
    assert_eq!(r, ExecResult::Done);
    assert_eq!(out.frame, b.frame);
    assert_eq!(out.key, b.key);
    assert_eq!(out.layers, b.layers);
}

#[test]
fn push_vlan_pushes_tci_zero_and_old_outer_becomes_inner() {
    let b = ipv4_frame(&[(0x8100, (6 << 13) | 33)], V4::default(), tcp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::PushVlan(0x88a8)]);
    let expect = ipv4_frame(
        &[(0x88a8, 0), (0x8100, (6 << 13) | 33)],
        V4::default(),
        tcp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_eq!(out.layers, expect.layers);
    assert_checksums_valid(&out);
}

#[test]
fn push_vlan_on_double_tagged_frame_replaces_inner_tag_like_ovs() {
    // OVS keeps two tags in the flow: [A, B] + push N commits as
    // pop, pop, push A, push N -> [N, A]; B is gone, A's DEI cleared.
    let a = (0x88a8, (4 << 13) | 0x1000 | 11);
    let bb = (0x8100, 22);
    let b = arp_frame(&[a, bb]);
    let (r, out, _) = run(&b, &[Action::PushVlan(0x8100)]);
    assert_eq!(r, ExecResult::Done);
    let expect = arp_frame(&[(0x8100, 0), (0x88a8, (4 << 13) | 11)]);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_eq!(out.layers, b.layers);
}

#[test]
fn vlan_push_moves_l3_offsets_so_later_rewrites_hit_the_ip_header() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let new = Ipv4Addr::new(172, 16, 9, 9);
    let (_, out, _) = run(
        &b,
        &[
            Action::SetVlanVid(5),
            Action::PushVlan(0x88a8),
            Action::SetNwSrc(new),
            Action::SetTpDst(8080),
            Action::DecTtl,
        ],
    );
    let ip = V4 {
        src: new.octets(),
        ttl: 63,
        ..V4::default()
    };
    let expect = ipv4_frame(
        &[(0x88a8, 0), (0x8100, 5)],
        ip,
        L4::Tcp {
            sport: 40000,
            dport: 8080,
        },
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_eq!(out.layers, expect.layers);
}

/// A packet whose headroom is used up (its frame starts at buffer offset 0).
fn packet_without_headroom(frame: &[u8]) -> Packet {
    assert!(frame.len() >= HEADROOM);
    let mut p = Packet::from_bytes(&vec![0; frame.len() - HEADROOM]).unwrap();
    assert!(p.insert_gap(0, HEADROOM));
    p.data_mut().copy_from_slice(frame);
    assert_eq!(p.headroom(), 0);
    p
}

#[test]
fn vlan_push_without_headroom_stops_malformed_before_later_outputs() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    for push in [
        Action::SetVlanVid(1),
        Action::SetVlanPcp(1),
        Action::PushVlan(0x8100),
    ] {
        let mut pkt = packet_without_headroom(&b.frame);
        let (mut key, mut layers) = (b.key, b.layers);
        let mut rec = Recorder::default();
        let r = execute(
            &[Action::Output(2), push, Action::Output(3)],
            &mut pkt,
            &mut key,
            &mut layers,
            &mut rec,
        );
        assert_eq!(r, ExecResult::Stopped(DropReason::Malformed));
        assert_eq!(rec.emits, vec![Emit::Output(2, b.frame.clone())]);
        assert_eq!(pkt.data(), &b.frame[..]);
        assert_eq!((key, layers), (b.key, b.layers));
    }
}

#[test]
fn l2_rewrites_on_a_runt_frame_stop_malformed() {
    let runt = Built {
        frame: vec![0xff; 10],
        key: FlowKey::ZERO,
        layers: Layers::default(),
    };
    for a in [
        Action::SetDlSrc([1; 6]),
        Action::SetDlDst([1; 6]),
        Action::SetVlanVid(1),
        Action::PushVlan(0x8100),
    ] {
        let (r, out, _) = run(&runt, &[a, Action::Output(2)]);
        assert_eq!(r, ExecResult::Stopped(DropReason::Malformed), "{a:?}");
        assert_eq!(out.frame, runt.frame);
    }
}

// ----------------------------------------------------------------------- L3

#[test]
fn mod_nw_src_keeps_tcp_and_ip_checksums_valid() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let new = Ipv4Addr::new(192, 0, 2, 77);
    let (_, out, _) = run(&b, &[Action::SetNwSrc(new)]);
    let expect = ipv4_frame(
        &[],
        V4 {
            src: new.octets(),
            ..V4::default()
        },
        tcp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_dst_keeps_udp_checksum_valid_with_ip_options() {
    let ip = V4 {
        opt_words: 3,
        ..V4::default()
    };
    let b = ipv4_frame(&[(0x8100, 9)], ip, udp(), PAYLOAD);
    let new = Ipv4Addr::new(203, 0, 113, 200);
    let (_, out, _) = run(&b, &[Action::SetNwDst(new)]);
    let expect = ipv4_frame(
        &[(0x8100, 9)],
        V4 {
            dst: new.octets(),
            ..ip
        },
        udp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_src_leaves_absent_udp_checksum_zero() {
    let l4 = L4::Udp {
        sport: 1,
        dport: 2,
        csum: false,
    };
    let b = ipv4_frame(&[], V4::default(), l4, PAYLOAD);
    let (_, out, _) = run(
        &b,
        &[
            Action::SetNwSrc(Ipv4Addr::new(1, 1, 1, 1)),
            Action::SetTpSrc(999),
        ],
    );
    let l4_off = usize::from(out.layers.l4.unwrap());
    assert_eq!(be16(&out.frame, l4_off + 6), 0);
    assert_eq!(be16(&out.frame, l4_off), 999);
    assert_checksums_valid(&out);
}

#[test]
fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
    let b = ipv4_frame(&[], V4::default(), udp(), PAYLOAD);
    let l4 = usize::from(b.layers.l4.unwrap());
    let (old_port, csum) = (be16(&b.frame, l4), be16(&b.frame, l4 + 6));
    // The source port that makes the true checksum come out as zero.
    let port = (0..=u16::MAX)
        .find(|&p| dataplane::checksum::update16(csum, old_port, p) == 0)
        .expect("some port zeroes the checksum");
    let (_, out, _) = run(&b, &[Action::SetTpSrc(port)]);
    assert_eq!(be16(&out.frame, l4), port);
    assert_eq!(be16(&out.frame, l4 + 6), 0xffff);
    assert_checksums_valid(&out);
}

#[test]
fn udp_checksum_that_becomes_zero_after_address_rewrite_is_sent_as_ffff() {
    let b = ipv4_frame(&[], V4::default(), udp(), PAYLOAD);
    let l4 = usize::from(b.layers.l4.unwrap());
    let csum = be16(&b.frame, l4 + 6);
    let old = u32::from_be_bytes(V4::default().dst);
    let new = (0..=0xffffu32)
        .map(|lo| (old & 0xffff_0000) | lo)
        .find(|&a| dataplane::checksum::update32(csum, old, a) == 0)
        .expect("some address zeroes the checksum");
    let (_, out, _) = run(&b, &[Action::SetNwDst(Ipv4Addr::from(new))]);
    assert_eq!(be16(&out.frame, l4 + 6), 0xffff);
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_tos_sets_dscp_keeps_ecn_and_ip_checksum_valid() {
    let ip = V4 {
        tos: 0b1010_0011,
        ..V4::default()
    };
    let b = ipv4_frame(&[], ip, tcp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetNwTos(0x28)]);
    let expect = ipv4_frame(
        &[],
        V4 {
            tos: 0x28 | 0b11,
            ..ip
        },
        tcp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key.nw_tos(), 0x2b);
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_tos_on_ipv6_sets_traffic_class_dscp_keeps_ecn_and_flow_label() {
    let b = ipv6_frame(&[], 0b0000_0110, 64, tcp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetNwTos(0xb8)]);
    let expect = ipv6_frame(&[], 0xb8 | 0b10, 64, tcp(), PAYLOAD);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_src_on_arp_and_ipv6_is_skipped() {
    for b in [arp_frame(&[]), ipv6_frame(&[], 0, 64, tcp(), PAYLOAD)] {
        let (r, out, _) = run(
            &b,
            &[
                Action::SetNwSrc(Ipv4Addr::new(9, 9, 9, 9)),
                Action::SetNwDst(Ipv4Addr::new(9, 9, 9, 9)),
            ],
        );
        assert_eq!(r, ExecResult::Done);
        assert_eq!(out.frame, b.frame);
        assert_eq!(out.key, b.key);
    }
}

#[test]
fn mod_nw_rewrites_on_later_fragment_fix_only_the_ip_checksum() {
    let ip = V4 {
        frag: 0x00b9,
        ..V4::default()
    };
    let b = ipv4_frame(&[], ip, tcp(), PAYLOAD);
    let new = Ipv4Addr::new(10, 9, 8, 7);
    let (_, out, _) = run(
        &b,
        &[
            Action::SetNwSrc(new),
            Action::SetTpSrc(1),
            Action::SetTpDst(2),
        ],
    );
    let expect = ipv4_frame(
        &[],
        V4 {
            src: new.octets(),
            ..ip
        },
        tcp(),
        PAYLOAD,
    );
    // Payload bytes (which are not a TCP header) are untouched.
    assert_eq!(out.frame, expect.frame);
    assert_eq!((out.key.tp_src(), out.key.tp_dst()), (0, 0));
    assert_checksums_valid(&out);
}

#[test]
fn mod_nw_src_on_first_fragment_updates_tcp_checksum() {
    let ip = V4 {
        frag: 0x2000, // MF, offset 0
        ..V4::default()
    };
    let b = ipv4_frame(&[], ip, tcp(), PAYLOAD);
    let new = Ipv4Addr::new(10, 9, 8, 7);
    let (_, out, _) = run(&b, &[Action::SetNwSrc(new)]);
    let expect = ipv4_frame(
        &[],
        V4 {
            src: new.octets(),
            ..ip
        },
        tcp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
}

// ----------------------------------------------------------------------- L4

#[test]
fn mod_tp_src_and_dst_rewrite_tcp_ports_keeping_checksum_valid() {
    let b = ipv4_frame(&[], V4::default(), tcp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetTpSrc(1234), Action::SetTpDst(4321)]);
    let expect = ipv4_frame(
        &[],
        V4::default(),
        L4::Tcp {
            sport: 1234,
            dport: 4321,
        },
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
}

#[test]
fn mod_tp_dst_on_ipv6_udp_keeps_checksum_valid() {
    let b = ipv6_frame(&[(0x8100, 3)], 0, 64, udp(), PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetTpDst(5300)]);
    let expect = ipv6_frame(
        &[(0x8100, 3)],
        0,
        64,
        L4::Udp {
            sport: 5353,
            dport: 5300,
            csum: true,
        },
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    assert_checksums_valid(&out);
}

#[test]
fn mod_tp_src_on_sctp_keeps_crc32c_valid() {
    let l4 = L4::Sctp {
        sport: 2905,
        dport: 2905,
    };
    let b = ipv4_frame(&[], V4::default(), l4, PAYLOAD);
    let (_, out, _) = run(&b, &[Action::SetTpSrc(36412)]);
    let expect = ipv4_frame(
        &[],
        V4::default(),
        L4::Sctp {
            sport: 36412,
            dport: 2905,
        },
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key.tp_src(), 36412);
}

#[test]
fn corrupt_checksums_stay_corrupt_by_the_same_amount() {
    // A switch must not launder corruption: a wrong TCP checksum or SCTP CRC
    // is still wrong after a rewrite.
    for l4 in [tcp(), L4::Sctp { sport: 1, dport: 2 }] {
        let mut b = ipv4_frame(&[], V4::default(), l4, PAYLOAD);
        let off =
            usize::from(b.layers.l4.unwrap()) + if l4.proto() == ipproto::TCP { 16 } else { 8 };
        b.frame[off] ^= 0x40;
        let (_, out, _) = run(
            &b,
            &[
                Action::SetTpDst(7),
                Action::SetNwSrc(Ipv4Addr::new(4, 4, 4, 4)),
            ],
        );
        assert_eq!(bad_checksums(&out).len(), 1, "{l4:?}");
        // Fixing the same bit makes it valid: the error is unchanged.
        let mut fixed = out.clone();
        fixed.frame[off] ^= 0x40;
        assert_checksums_valid(&fixed);
    }
}

#[test]
fn mod_tp_src_on_icmp_changes_nothing() {
    let b = ipv4_frame(&[], V4::default(), L4::Icmp { ty: 8, code: 0 }, PAYLOAD);
    let (r, out, _) = run(&b, &[Action::SetTpSrc(0), Action::SetTpDst(3)]);
    assert_eq!(r, ExecResult::Done);
    assert_eq!(out.frame, b.frame);
    assert_eq!(out.key, b.key);
}

// ------------------------------------------------------------------ dec_ttl

#[test]
fn dec_ttl_decrements_ipv4_ttl_keeping_checksum_valid() {
    let b = ipv4_frame(&[], V4::default(), udp(), PAYLOAD);
    let (r, out, _) = run(&b, &[Action::DecTtl, Action::DecTtl]);
    assert_eq!(r, ExecResult::Done);
    let expect = ipv4_frame(
        &[],
        V4 {
            ttl: 62,
            ..V4::default()
        },
        udp(),
        PAYLOAD,
    );
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key.nw_ttl(), 62);
    assert_checksums_valid(&out);
}

#[test]
fn dec_ttl_at_one_stops_forwarding() {
    for ttl in [0, 1] {
        let b = ipv4_frame(
            &[],
            V4 {
                ttl,
                ..V4::default()
            },
            tcp(),
            PAYLOAD,
        );
        let (r, out, emits) = run(&b, &[Action::Output(2), Action::DecTtl, Action::Output(3)]);
        assert_eq!(r, ExecResult::Stopped(DropReason::TtlExpired));
        assert_eq!(emits, vec![Emit::Output(2, b.frame.clone())]);
        assert_eq!(out.frame, b.frame);
    }
}

#[test]
fn second_dec_ttl_expires_a_packet_that_arrived_with_ttl_two() {
    let b = ipv4_frame(
        &[],
        V4 {
            ttl: 2,
            ..V4::default()
        },
        tcp(),
        PAYLOAD,
    );
    let (r, _, emits) = run(
        &b,
        &[
            Action::DecTtl,
            Action::Output(2),
            Action::DecTtl,
            Action::Output(3),
        ],
    );
    assert_eq!(r, ExecResult::Stopped(DropReason::TtlExpired));
    assert_eq!(emits.len(), 1);
}

#[test]
fn dec_ttl_on_ipv6_decrements_hop_limit_and_expires_at_one() {
    let b = ipv6_frame(&[], 0, 2, tcp(), PAYLOAD);
    let (r, out, _) = run(&b, &[Action::DecTtl]);
    assert_eq!(r, ExecResult::Done);
    let expect = ipv6_frame(&[], 0, 1, tcp(), PAYLOAD);
    assert_eq!(out.frame, expect.frame);
    assert_eq!(out.key, expect.key);
    let (r, _, emits) = run(&expect, &[Action::DecTtl, Action::Output(2)]);
    assert_eq!(r, ExecResult::Stopped(DropReason::TtlExpired));
    assert!(emits.is_empty());
}

#[test]
fn dec_ttl_on_non_ip_is_a_no_op() {
    let b = arp_frame(&[(0x8100, 1)]);
    let (r, out, emits) = run(&b, &[Action::DecTtl, Action::Output(2)]);
    assert_eq!(r, ExecResult::Done);
    assert_eq!(out.frame, b.frame);
    assert_eq!(emits.len(), 1);
}

#[test]
fn dec_ttl_on_ip_ethertype_without_ip_header_takes_the_ttl_exception() {
    // OVS's flow has nw_ttl 0 for a truncated IP header.
    let mut f = eth_header(&[], ethertype::IPV4);
    f.extend_from_slice(&[0x45, 0, 0]);
    let b = Built {
        key: base_key(&[], ethertype::IPV4),
        layers: Layers {
            l2_len: 14,
            ..Default::default()
        },
        frame: f,
    };
    let (r, _, _) = run(&b, &[Action::DecTtl]);
    assert_eq!(r, ExecResult::Stopped(DropReason::TtlExpired));
}

// ---------------------------------------------------------------- proptests

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u32..6).prop_map(Action::Output),
        Just(Action::InPort),
        Just(Action::Normal),
        Just(Action::Flood),
        Just(Action::All),
        any::<[u8; 6]>().prop_map(Action::SetDlSrc),
        any::<[u8; 6]>().prop_map(Action::SetDlDst),
        (0u16..4096).prop_map(Action::SetVlanVid),
        (0u8..8).prop_map(Action::SetVlanPcp),
        Just(Action::StripVlan),
        prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
        any::<[u8; 4]>().prop_map(|a| Action::SetNwSrc(a.into())),
        any::<[u8; 4]>().prop_map(|a| Action::SetNwDst(a.into())),
        (0u8..64).prop_map(|d| Action::SetNwTos(d << 2)),
        any::<u16>().prop_map(Action::SetTpSrc),
        any::<u16>().prop_map(Action::SetTpDst),
        Just(Action::DecTtl),
    ]
}

fn arb_l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Tcp { sport, dport }),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(sport, dport, csum)| L4::Udp {
            sport,
            dport,
            csum
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Sctp { sport, dport }),
        (any::<u8>(), any::<u8>()).prop_map(|(ty, code)| L4::Icmp { ty, code }),
    ]
}

fn arb_tags() -> impl Strategy<Value = Vec<(u16, u16)>> {
    proptest::collection::vec(
        (prop_oneof![Just(0x8100u16), Just(0x88a8)], any::<u16>()),
        0..=2,
    )
}

/// Well-formed packets of every kind the executor rewrites.
fn arb_packet() -> impl Strategy<Value = Built> {
    let v4 = (
        arb_tags(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        1u8..=255,
        prop_oneof![Just(0x4000u16), Just(0x2000), Just(0x0000), 1u16..0x1fff],
        0u8..4,
        arb_l4(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(tags, src, dst, tos, ttl, frag, opt_words, l4, payload)| {
            let ip = V4 {
                src,
                dst,
                tos,
                ttl,
                frag,
                opt_words,
            };
            ipv4_frame(&tags, ip, l4, &payload)
        });
    let v6 = (
        arb_tags(),
        any::<u8>(),
        any::<u8>(),
        arb_l4().prop_filter("no ICMPv4 in IPv6", |l| !matches!(l, L4::Icmp { .. })),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(tags, tc, hl, l4, payload)| ipv6_frame(&tags, tc, hl, l4, &payload));
    let arp = arb_tags().prop_map(|t| arp_frame(&t));
    prop_oneof![4 => v4, 3 => v6, 1 => arp]
}

proptest! {
    /// The test builders produce the key and layers the real extractor
    /// does, so hand-built expectations above mean what they say.
    #[test]
    fn test_builders_agree_with_extract(b in arb_packet()) {
        let mut key = FlowKey::ZERO;
        let layers = extract(&b.frame, IN_PORT, &mut key);
        prop_assert_eq!((key, layers), (b.key, b.layers));
    }
}

/// Reads back from the bytes the fields the executor keeps in the key.
/// (outer TCI, inner TCI, IP (src, dst, tos, ttl), L4 ports) of a frame.
type Fields = (u16, u16, Option<(u32, u32, u8, u8)>, Option<(u16, u16)>);

fn fields_from_bytes(b: &Built) -> Fields {
    let f = &b.frame;
    let tags = usize::from(b.layers.vlan_tags);
    let tci = |i: usize| be16(f, 14 + 4 * i) | VLAN_CFI;
    let tci1 = if tags > 0 { tci(0) } else { 0 };
    let tci2 = if tags > 1 { tci(1) } else { 0 };
    let l3 = b.layers.l3.map(usize::from);
    let ip = l3.map(|l3| match b.key.dl_type() {
        ethertype::IPV4 => (
            u32::from_be_bytes([f[l3 + 12], f[l3 + 13], f[l3 + 14], f[l3 + 15]]),
            u32::from_be_bytes([f[l3 + 16], f[l3 + 17], f[l3 + 18], f[l3 + 19]]),
            f[l3 + 1],
            f[l3 + 8],
        ),
        ethertype::IPV6 => (0, 0, (be16(f, l3) >> 4) as u8, f[l3 + 7]),
        _ => (0, 0, 0, 0),
    });
    let tp = b.layers.l4.map(usize::from).and_then(|l4| {
        matches!(
            b.key.nw_proto(),
            ipproto::TCP | ipproto::UDP | ipproto::SCTP
        )
        .then(|| (be16(f, l4), be16(f, l4 + 2)))
    });
    (tci1, tci2, ip, tp)
}

fn fields_from_key(b: &Built) -> Fields {
    let k = &b.key;
    let ip = b.layers.l3.map(|_| match k.dl_type() {
        ethertype::IPV4 => (k.nw_src_u32(), k.nw_dst_u32(), k.nw_tos(), k.nw_ttl()),
        ethertype::IPV6 => (0, 0, k.nw_tos(), k.nw_ttl()),
        _ => (0, 0, 0, 0),
    });
    let tp = b.layers.l4.and_then(|_| {
        matches!(k.nw_proto(), ipproto::TCP | ipproto::UDP | ipproto::SCTP)
            .then(|| (k.tp_src(), k.tp_dst()))
    });
    (k.vlan_tci(), k.vlan_tci2(), ip, tp)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any action list on any well-formed packet: every emitted frame and the
    /// final one have valid checksums, and key/layers describe the bytes.
    #[test]
    fn random_actions_keep_checksums_valid_and_key_in_step(
        b in arb_packet(),
        actions in proptest::collection::vec(arb_action(), 0..12),
    ) {
        prop_assert_eq!(bad_checksums(&b), Vec::<&str>::new());
        let (r, out, emits) = run(&b, &actions);
        // What the executor says about the packet is what extraction finds.
        let mut key = FlowKey::ZERO;
        let layers = extract(&out.frame, IN_PORT, &mut key);
        prop_assert_eq!((key, layers), (out.key, out.layers));
        for e in &emits {
            if let Emit::Normal(k, frame) = e {
                let mut key = FlowKey::ZERO;
                extract(frame, IN_PORT, &mut key);
                prop_assert_eq!(&key, k);
            }
        }
        prop_assert!(matches!(r, ExecResult::Done | ExecResult::Stopped(DropReason::TtlExpired)));
        prop_assert_eq!(bad_checksums(&out), Vec::<&str>::new());
        prop_assert_eq!(fields_from_bytes(&out), fields_from_key(&out));
        let tags = usize::from(out.layers.vlan_tags);
        prop_assert!(tags <= 2);
        prop_assert_eq!(usize::from(out.layers.l2_len), 14 + 4 * tags);
        prop_assert_eq!(
            out.frame.len() as isize - b.frame.len() as isize,
            4 * (tags as isize - isize::from(b.layers.vlan_tags))
        );
        for e in &emits {
            if let Emit::Output(p, _) = e {
                prop_assert!(*p != IN_PORT || actions.contains(&Action::InPort));
            }
        }
    }

    /// Random bytes after a plausible Ethernet type, through the real
    /// extractor, then random actions: no panic, only the L2 length moves,
    /// and any IPv4 header that verified before still verifies.
    #[test]
    fn random_frames_through_extract_and_actions_never_panic(
        tags in arb_tags(),
        dl_type in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100), any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..120),
        actions in proptest::collection::vec(arb_action(), 0..12),
    ) {
        let mut frame = eth_header(&tags, dl_type);
        frame.extend_from_slice(&body);
        let mut key = FlowKey::ZERO;
        let layers = extract(&frame, IN_PORT, &mut key);
        let b = Built { frame, key, layers };
        let ip_ok = |b: &Built| {
            b.key.dl_type() == ethertype::IPV4
                && b.layers.l3.is_some_and(|l3| {
                    let l3 = usize::from(l3);
                    let ihl = usize::from(b.frame[l3] & 0xf) * 4;
                    sums_to_ffff(&[&b.frame[l3..l3 + ihl]])
                })
        };
        let (_, out, _) = run(&b, &actions);
        prop_assert_eq!(
            out.frame.len() as isize - b.frame.len() as isize,
            4 * (isize::from(out.layers.vlan_tags) - isize::from(b.layers.vlan_tags))
        );
        if ip_ok(&b) {
            prop_assert!(ip_ok(&out));
        }
    }

    /// Garbage in: random bytes, random (inconsistent) key and layers,
    /// random actions. Nothing may panic, and the frame length changes only
    /// by whole VLAN tags.
    #[test]
    fn random_bytes_layers_and_actions_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..200),
        words in any::<[u64; 12]>(),
        dl_type in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), any::<u16>()],
        nw_proto in prop_oneof![Just(6u8), Just(17), Just(132), Just(1), any::<u8>()],
        l2_len in any::<u16>(),
        vlan_tags in 0u8..5,
        l3 in proptest::option::of(prop_oneof![0u16..220, any::<u16>()]),
        l4 in proptest::option::of(prop_oneof![0u16..220, any::<u16>()]),
        actions in proptest::collection::vec(arb_action(), 0..12),
    ) {
        let mut key = FlowKey { words };
        key.set_dl_type(dl_type);
        key.set_nw_proto(nw_proto);
        let layers = Layers { l2_len, vlan_tags, l3, l4, ..Default::default() };
        let b = Built { frame: frame.clone(), key, layers };
        let (_, out, _) = run(&b, &actions);
        prop_assert_eq!((out.frame.len() as isize - frame.len() as isize) % 4, 0);
    }
}
