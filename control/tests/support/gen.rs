//! Seeded random flow tables and packets for the OVS differential test.
//!
//! # What
//! [`gen_table`] draws a table of OpenFlow rules as typed [`RuleDesc`]s that
//! render to `ovs-ofctl add-flow` text ([`RuleDesc::to_ofctl`]); the same
//! text is given to OVS and to xswitch's flow-syntax parser. [`gen_packet`]
//! draws a packet ([`Pkt`]) biased to hit the table: it picks a rule,
//! satisfies its match, then sometimes perturbs a field, so that priorities,
//! masks and near misses are all exercised. A packet renders as an
//! `ofproto/trace` flow string ([`Pkt::to_trace_flow`]) and as a `FlowKey`
//! ([`Pkt::to_flow_key`], per the field conventions of dataplane/src/flow_key.rs).
//!
//! # Invariants (what keeps every case OpenFlow-defined and learning-free)
//! * Rules in one table have pairwise distinct priorities: equal-priority
//!   overlap is undefined in OpenFlow, so no case depends on a tie-break.
//! * Every match obeys OVS prerequisites (tp_src only under tcp/udp, ...),
//!   and no match is unsatisfiable (no `dl_vlan=0xffff` with `dl_vlan_pcp`).
//! * `normal` must not depend on MAC learning: OVS's trace learns (xswitch's
//!   must not), so (a) a packet's `dl_src != dl_dst`; (b) `mod_dl_src`
//!   values come from a pool (02:5a:..) that no packet uses and `mod_dl_dst`
//!   values from another (02:da:..); so the destination NORMAL looks up is
//!   never a source learned in the same trace. The test flushes OVS's MAC
//!   table after each trace that ran NORMAL.
//! * Trace flows spell L4 ports `tcp_src`/`udp_src` (OVS's trace parser
//!   refuses `tp_src` for UDP) and state `nw_tos` (DSCP) and `nw_ecn` apart.
//! * Everything derives from the caller's `StdRng`, so a seed reproduces it.

use core::net::{Ipv4Addr, Ipv6Addr};
use dataplane::flow_key::{ethertype, ipproto, FlowKey, VLAN_CFI, VLAN_PCP_SHIFT};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// A 48-bit MAC address.
pub type Mac = [u8; 6];

/// First two bytes of `mod_dl_src` values; no packet uses them.
pub const MOD_SRC_PREFIX: [u8; 2] = [0x02, 0x5a];
/// First two bytes of `mod_dl_dst` values; no packet uses them.
pub const MOD_DST_PREFIX: [u8; 2] = [0x02, 0xda];

/// Destinations NORMAL must not forward (ovs-vswitchd.conf.db(5),
/// `other_config:forward-bpdu`, default false): 01:80:c2:00:00:0x, EDP,
/// EAPS and the Cisco control addresses. A few packets use them.
pub const RESERVED_MACS: [Mac; 9] = [
    [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00],
    [0x01, 0x80, 0xc2, 0x00, 0x00, 0x01],
    [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e],
    [0x00, 0xe0, 0x2b, 0x00, 0x00, 0x00],
    [0x00, 0xe0, 0x2b, 0x00, 0x00, 0x04],
    [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc],
    [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcd],
    [0x01, 0x00, 0x0c, 0xcd, 0xcd, 0xcd],
    [0x01, 0x00, 0x0c, 0x00, 0x00, 0x00],
];

/// Formats a MAC as `ovs-ofctl` does.
pub fn mac_str(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn mac_bits(m: &Mac) -> u64 {
    m.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64)
}

fn bits_mac(v: u64) -> Mac {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// An 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    pub vid: u16,
    pub pcp: u8,
}

/// L4 values: ports for TCP/UDP, type/code for ICMP/ICMPv6 (then < 256).
/// Both zero when the protocol has no L4 header xswitch or OVS parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L4 {
    pub a: u16,
    pub b: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip4 {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    /// The whole TOS byte (DSCP << 2 | ECN).
    pub tos: u8,
    pub ttl: u8,
    pub l4: L4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip6 {
    pub src: u128,
    pub dst: u128,
    pub label: u32,
    pub proto: u8,
    /// The whole traffic-class byte.
    pub tclass: u8,
    pub hlimit: u8,
    pub l4: L4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u8,
    pub spa: u32,
    pub tpa: u32,
    pub sha: Mac,
    pub tha: Mac,
}

/// The network layer of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    Ipv4(Ip4),
    Ipv6(Ip6),
    Arp(Arp),
    /// Some other ethertype (no L3 fields).
    Other(u16),
}

/// L4 kinds OVS and xswitch both parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Kind {
    Tcp,
    Udp,
    Icmp,
    None,
}

/// What L4 header an IPv4 (`v6 = false`) or IPv6 packet with `proto` has.
pub fn l4_kind(v6: bool, proto: u8) -> L4Kind {
    match (v6, proto) {
        (_, ipproto::TCP) => L4Kind::Tcp,
        (_, ipproto::UDP) => L4Kind::Udp,
        (false, ipproto::ICMP) | (true, ipproto::ICMPV6) => L4Kind::Icmp,
        _ => L4Kind::None,
    }
}

fn normalise_l4(kind: L4Kind, l4: &mut L4) {
    match kind {
        L4Kind::Tcp | L4Kind::Udp => {}
        L4Kind::Icmp => {
            l4.a &= 0xff;
            l4.b &= 0xff;
        }
        L4Kind::None => *l4 = L4::default(),
    }
}

/// A packet as the test describes it (a `FlowKey` with structure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkt {
    pub in_port: u32,
    pub dl_src: Mac,
    pub dl_dst: Mac,
    pub vlan: Option<Vlan>,
    pub l3: L3,
}

impl Pkt {
    /// Restores the structural invariants after fields were changed:
    /// L4 values fit the protocol.
    pub fn normalise(&mut self) {
        match &mut self.l3 {
            L3::Ipv4(ip) => normalise_l4(l4_kind(false, ip.proto), &mut ip.l4),
            L3::Ipv6(ip) => {
                ip.label &= 0xfffff;
                normalise_l4(l4_kind(true, ip.proto), &mut ip.l4)
            }
            L3::Arp(_) | L3::Other(_) => {}
        }
        if let Some(v) = &mut self.vlan {
            v.vid &= 0xfff;
            v.pcp &= 7;
        }
    }

    /// The ethertype after the VLAN tag.
    pub fn dl_type(&self) -> u16 {
        match self.l3 {
            L3::Ipv4(_) => ethertype::IPV4,
            L3::Ipv6(_) => ethertype::IPV6,
            L3::Arp(_) => ethertype::ARP,
            L3::Other(t) => t,
        }
    }

    /// The packet as an `ofproto/trace` flow (also what xswitch's trace
    /// parser reads). Every field of the packet's layers is spelled out.
    pub fn to_trace_flow(self) -> String {
        let mut s = format!(
            "in_port={},dl_src={},dl_dst={}",
            self.in_port,
            mac_str(&self.dl_src),
            mac_str(&self.dl_dst)
        );
        if let Some(v) = self.vlan {
            s += &format!(",dl_vlan={},dl_vlan_pcp={}", v.vid, v.pcp);
        }
        let l4 = |s: &mut String, kind: L4Kind, v6: bool, l4: L4| match kind {
            L4Kind::Tcp => *s += &format!(",tcp_src={},tcp_dst={}", l4.a, l4.b),
            L4Kind::Udp => *s += &format!(",udp_src={},udp_dst={}", l4.a, l4.b),
            L4Kind::Icmp if v6 => *s += &format!(",icmpv6_type={},icmpv6_code={}", l4.a, l4.b),
            L4Kind::Icmp => *s += &format!(",icmp_type={},icmp_code={}", l4.a, l4.b),
            L4Kind::None => {}
        };
        match self.l3 {
            L3::Ipv4(ip) => {
                let kind = l4_kind(false, ip.proto);
                s += match kind {
                    L4Kind::Tcp => ",tcp",
                    L4Kind::Udp => ",udp",
                    L4Kind::Icmp => ",icmp",
                    L4Kind::None => ",ip",
                };
                s += &format!(
                    ",nw_src={},nw_dst={}",
                    Ipv4Addr::from(ip.src),
                    Ipv4Addr::from(ip.dst)
                );
                if kind == L4Kind::None {
                    s += &format!(",nw_proto={}", ip.proto);
                }
                s += &format!(
                    ",nw_tos={},nw_ecn={},nw_ttl={}",
                    ip.tos & 0xfc,
                    ip.tos & 3,
                    ip.ttl
                );
                l4(&mut s, kind, false, ip.l4);
            }
            L3::Ipv6(ip) => {
                let kind = l4_kind(true, ip.proto);
                s += match kind {
                    L4Kind::Tcp => ",tcp6",
                    L4Kind::Udp => ",udp6",
                    L4Kind::Icmp => ",icmp6",
                    L4Kind::None => ",ipv6",
                };
                s += &format!(
                    ",ipv6_src={},ipv6_dst={},ipv6_label=0x{:05x}",
                    Ipv6Addr::from(ip.src),
                    Ipv6Addr::from(ip.dst),
                    ip.label
                );
                if kind == L4Kind::None {
                    s += &format!(",nw_proto={}", ip.proto);
                }
                s += &format!(
                    ",nw_tos={},nw_ecn={},nw_ttl={}",
                    ip.tclass & 0xfc,
                    ip.tclass & 3,
                    ip.hlimit
                );
                l4(&mut s, kind, true, ip.l4);
            }
            L3::Arp(a) => {
                s += &format!(
                    ",arp,arp_op={},arp_spa={},arp_tpa={},arp_sha={},arp_tha={}",
                    a.op,
                    Ipv4Addr::from(a.spa),
                    Ipv4Addr::from(a.tpa),
                    mac_str(&a.sha),
                    mac_str(&a.tha)
                );
            }
            L3::Other(t) => s += &format!(",dl_type=0x{t:04x}"),
        }
        s
    }

    /// The packet as a `FlowKey`, following dataplane/src/flow_key.rs:
    /// `vlan_tci` carries the CFI bit when tagged, `nw_tos` the whole byte,
    /// ARP op/spa/tpa in `nw_proto`/`nw_src`/`nw_dst`, ICMP type/code in
    /// `tp_src`/`tp_dst`, the IPv6 hop limit in `nw_ttl`.
    pub fn to_flow_key(self) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_in_port(self.in_port);
        k.set_dl_src(self.dl_src);
        k.set_dl_dst(self.dl_dst);
        if let Some(v) = self.vlan {
            k.set_vlan_tci(VLAN_CFI | (v.pcp as u16) << VLAN_PCP_SHIFT | v.vid);
        }
        k.set_dl_type(self.dl_type());
        match self.l3 {
            L3::Ipv4(ip) => {
                k.set_nw_src_u32(ip.src);
                k.set_nw_dst_u32(ip.dst);
                k.set_nw_proto(ip.proto);
                k.set_nw_tos(ip.tos);
                k.set_nw_ttl(ip.ttl);
                k.set_tp_src(ip.l4.a);
                k.set_tp_dst(ip.l4.b);
            }
            L3::Ipv6(ip) => {
                k.set_ipv6_src(Ipv6Addr::from(ip.src));
                k.set_ipv6_dst(Ipv6Addr::from(ip.dst));
                k.set_ipv6_label(ip.label);
                k.set_nw_proto(ip.proto);
                k.set_nw_tos(ip.tclass);
                k.set_nw_ttl(ip.hlimit);
                k.set_tp_src(ip.l4.a);
                k.set_tp_dst(ip.l4.b);
            }
            L3::Arp(a) => {
                k.set_nw_proto(a.op);
                k.set_nw_src_u32(a.spa);
                k.set_nw_dst_u32(a.tpa);
                k.set_arp_sha(a.sha);
                k.set_arp_tha(a.tha);
            }
            L3::Other(_) => {}
        }
        k
    }
}

/// The protocol part of a match (OVS shorthands or explicit dl_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Any,
    Ip,
    Ipv6,
    Arp,
    Tcp,
    Udp,
    Icmp,
    Tcp6,
    Udp6,
    Icmp6,
    /// `ip,nw_proto=N` for an N without an L4 shorthand here.
    IpOther(u8),
    /// Some other `dl_type`.
    EthType(u16),
}

impl Proto {
    fn is_ip4(self) -> bool {
        matches!(
            self,
            Proto::Ip | Proto::Tcp | Proto::Udp | Proto::Icmp | Proto::IpOther(_)
        )
    }
    fn is_ip6(self) -> bool {
        matches!(self, Proto::Ipv6 | Proto::Tcp6 | Proto::Udp6 | Proto::Icmp6)
    }
    fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Tcp6 | Proto::Udp6)
    }
    fn has_icmp(self) -> bool {
        matches!(self, Proto::Icmp | Proto::Icmp6)
    }
    /// `nw_proto` the shorthand fixes, if any.
    fn fixed_proto(self) -> Option<u8> {
        match self {
            Proto::Tcp | Proto::Tcp6 => Some(ipproto::TCP),
            Proto::Udp | Proto::Udp6 => Some(ipproto::UDP),
            Proto::Icmp => Some(ipproto::ICMP),
            Proto::Icmp6 => Some(ipproto::ICMPV6),
            Proto::IpOther(p) => Some(p),
            _ => None,
        }
    }

    /// ofctl text, with a spelling chosen by `rng` (shorthand or dl_type).
    fn render(self, rng: &mut StdRng) -> Option<String> {
        let long = rng.gen_bool(0.2);
        Some(match (self, long) {
            (Proto::Any, _) => return None,
            (Proto::Ip, false) => "ip".into(),
            (Proto::Ip, true) => "dl_type=0x0800".into(),
            (Proto::Ipv6, false) => "ipv6".into(),
            (Proto::Ipv6, true) => "dl_type=0x86dd".into(),
            (Proto::Arp, false) => "arp".into(),
            (Proto::Arp, true) => "dl_type=0x0806".into(),
            (Proto::Tcp, false) => "tcp".into(),
            (Proto::Tcp, true) => "dl_type=0x0800,nw_proto=6".into(),
            (Proto::Udp, false) => "udp".into(),
            (Proto::Udp, true) => "dl_type=0x0800,nw_proto=17".into(),
            (Proto::Icmp, false) => "icmp".into(),
            (Proto::Icmp, true) => "dl_type=0x0800,nw_proto=1".into(),
            (Proto::Tcp6, false) => "tcp6".into(),
            (Proto::Tcp6, true) => "dl_type=0x86dd,nw_proto=6".into(),
            (Proto::Udp6, false) => "udp6".into(),
            (Proto::Udp6, true) => "dl_type=0x86dd,nw_proto=17".into(),
            (Proto::Icmp6, false) => "icmp6".into(),
            (Proto::Icmp6, true) => "dl_type=0x86dd,nw_proto=58".into(),
            (Proto::IpOther(p), _) => format!("ip,nw_proto={p}"),
            (Proto::EthType(t), _) => format!("dl_type=0x{t:04x}"),
        })
    }

    fn matches(self, p: &Pkt) -> bool {
        match (self, &p.l3) {
            (Proto::Any, _) => true,
            (Proto::Ip, L3::Ipv4(_)) | (Proto::Ipv6, L3::Ipv6(_)) | (Proto::Arp, L3::Arp(_)) => {
                true
            }
            (Proto::EthType(t), L3::Other(u)) => t == *u,
            (_, L3::Ipv4(ip)) if self.is_ip4() => self.fixed_proto() == Some(ip.proto),
            (_, L3::Ipv6(ip)) if self.is_ip6() => self.fixed_proto() == Some(ip.proto),
            _ => false,
        }
    }
}

/// One field constraint of a match: `(packet field & mask) == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cons {
    InPort(u32),
    DlSrc(Mac, Mac),
    DlDst(Mac, Mac),
    /// `dl_vlan=V`; `None` is `dl_vlan=0xffff` (untagged).
    DlVlan(Option<u16>),
    DlVlanPcp(u8),
    NwSrc(u32, u32),
    NwDst(u32, u32),
    NwProto(u8),
    /// DSCP bits as the TOS byte would hold them (multiple of 4).
    NwTos(u8),
    NwTtl(u8),
    TpSrc(u16, u16),
    TpDst(u16, u16),
    IcmpType(u8),
    IcmpCode(u8),
    ArpOp(u8),
    ArpSpa(u32, u32),
    ArpTpa(u32, u32),
    ArpSha(Mac),
    ArpTha(Mac),
    Ipv6Src(u128, u128),
    Ipv6Dst(u128, u128),
    Ipv6Label(u32, u32),
}

/// Which of the packet's fields a constraint reads (for perturbation and
/// duplicate avoidance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    InPort,
    DlSrc,
    DlDst,
    Vlan,
    VlanPcp,
    NwSrc,
    NwDst,
    NwProto,
    NwTos,
    NwTtl,
    TpSrc,
    TpDst,
    ArpSha,
    ArpTha,
    Ipv6Label,
}

impl Cons {
    pub fn field(&self) -> FieldId {
        match self {
            Cons::InPort(_) => FieldId::InPort,
            Cons::DlSrc(..) => FieldId::DlSrc,
            Cons::DlDst(..) => FieldId::DlDst,
            Cons::DlVlan(_) => FieldId::Vlan,
            Cons::DlVlanPcp(_) => FieldId::VlanPcp,
            Cons::NwSrc(..) | Cons::ArpSpa(..) | Cons::Ipv6Src(..) => FieldId::NwSrc,
            Cons::NwDst(..) | Cons::ArpTpa(..) | Cons::Ipv6Dst(..) => FieldId::NwDst,
            Cons::NwProto(_) | Cons::ArpOp(_) => FieldId::NwProto,
            Cons::NwTos(_) => FieldId::NwTos,
            Cons::NwTtl(_) => FieldId::NwTtl,
            Cons::TpSrc(..) | Cons::IcmpType(_) => FieldId::TpSrc,
            Cons::TpDst(..) | Cons::IcmpCode(_) => FieldId::TpDst,
            Cons::ArpSha(_) => FieldId::ArpSha,
            Cons::ArpTha(_) => FieldId::ArpTha,
            Cons::Ipv6Label(..) => FieldId::Ipv6Label,
        }
    }

    /// Does packet `p` satisfy this constraint (OVS semantics)?
    pub fn matches(&self, p: &Pkt) -> bool {
        let m48 = |v: &Mac, val: &Mac, mask: &Mac| mac_bits(v) & mac_bits(mask) == mac_bits(val);
        match (*self, &p.l3) {
            (Cons::InPort(n), _) => p.in_port == n,
            (Cons::DlSrc(v, m), _) => m48(&p.dl_src, &v, &m),
            (Cons::DlDst(v, m), _) => m48(&p.dl_dst, &v, &m),
            (Cons::DlVlan(None), _) => p.vlan.is_none(),
            (Cons::DlVlan(Some(vid)), _) => p.vlan.is_some_and(|v| v.vid == vid),
            (Cons::DlVlanPcp(pcp), _) => p.vlan.is_some_and(|v| v.pcp == pcp),
            (Cons::NwSrc(v, m), L3::Ipv4(ip)) => ip.src & m == v,
            (Cons::NwDst(v, m), L3::Ipv4(ip)) => ip.dst & m == v,
            (Cons::NwProto(n), L3::Ipv4(ip)) => ip.proto == n,
            (Cons::NwProto(n), L3::Ipv6(ip)) => ip.proto == n,
            (Cons::NwTos(t), L3::Ipv4(ip)) => ip.tos & 0xfc == t,
            (Cons::NwTos(t), L3::Ipv6(ip)) => ip.tclass & 0xfc == t,
            (Cons::NwTtl(t), L3::Ipv4(ip)) => ip.ttl == t,
            (Cons::NwTtl(t), L3::Ipv6(ip)) => ip.hlimit == t,
            (Cons::TpSrc(v, m), L3::Ipv4(ip)) => ip.l4.a & m == v,
            (Cons::TpSrc(v, m), L3::Ipv6(ip)) => ip.l4.a & m == v,
            (Cons::TpDst(v, m), L3::Ipv4(ip)) => ip.l4.b & m == v,
            (Cons::TpDst(v, m), L3::Ipv6(ip)) => ip.l4.b & m == v,
            (Cons::IcmpType(t), L3::Ipv4(ip)) => ip.l4.a == t as u16,
            (Cons::IcmpType(t), L3::Ipv6(ip)) => ip.l4.a == t as u16,
            (Cons::IcmpCode(c), L3::Ipv4(ip)) => ip.l4.b == c as u16,
            (Cons::IcmpCode(c), L3::Ipv6(ip)) => ip.l4.b == c as u16,
            (Cons::ArpOp(o), L3::Arp(a)) => a.op == o,
            (Cons::ArpSpa(v, m), L3::Arp(a)) => a.spa & m == v,
            (Cons::ArpTpa(v, m), L3::Arp(a)) => a.tpa & m == v,
            (Cons::ArpSha(v), L3::Arp(a)) => a.sha == v,
            (Cons::ArpTha(v), L3::Arp(a)) => a.tha == v,
            (Cons::Ipv6Src(v, m), L3::Ipv6(ip)) => ip.src & m == v,
            (Cons::Ipv6Dst(v, m), L3::Ipv6(ip)) => ip.dst & m == v,
            (Cons::Ipv6Label(v, m), L3::Ipv6(ip)) => ip.label & m == v,
            // A field of a layer the packet lacks: the rule's protocol
            // prerequisite already failed, so this is never reached for a
            // well-formed rule; treat as no match.
            _ => false,
        }
    }

    /// Changes `p` so that it satisfies the constraint (the packet already
    /// has the layer: the rule's protocol was applied first).
    pub fn satisfy(&self, p: &mut Pkt, rng: &mut StdRng) {
        let mix32 = |old: u32, v: u32, m: u32| (old & !m) | v;
        let mixm =
            |old: &Mac, v: &Mac, m: &Mac| bits_mac((mac_bits(old) & !mac_bits(m)) | mac_bits(v));
        match (*self, &mut p.l3) {
            (Cons::InPort(n), _) => p.in_port = n,
            (Cons::DlSrc(v, m), _) => p.dl_src = mixm(&p.dl_src, &v, &m),
            (Cons::DlDst(v, m), _) => p.dl_dst = mixm(&p.dl_dst, &v, &m),
            (Cons::DlVlan(None), _) => p.vlan = None,
            (Cons::DlVlan(Some(vid)), _) => {
                let pcp = p.vlan.map_or_else(|| rng.gen_range(0..8), |v| v.pcp);
                p.vlan = Some(Vlan { vid, pcp });
            }
            (Cons::DlVlanPcp(pcp), _) => {
                let vid = p.vlan.map_or_else(|| rng.gen_range(0..4096), |v| v.vid);
                p.vlan = Some(Vlan { vid, pcp });
            }
            (Cons::NwSrc(v, m), L3::Ipv4(ip)) => ip.src = mix32(ip.src, v, m),
            (Cons::NwDst(v, m), L3::Ipv4(ip)) => ip.dst = mix32(ip.dst, v, m),
            (Cons::NwProto(n), L3::Ipv4(ip)) => ip.proto = n,
            (Cons::NwProto(n), L3::Ipv6(ip)) => ip.proto = n,
            (Cons::NwTos(t), L3::Ipv4(ip)) => ip.tos = (ip.tos & 3) | t,
            (Cons::NwTos(t), L3::Ipv6(ip)) => ip.tclass = (ip.tclass & 3) | t,
            (Cons::NwTtl(t), L3::Ipv4(ip)) => ip.ttl = t,
            (Cons::NwTtl(t), L3::Ipv6(ip)) => ip.hlimit = t,
            (Cons::TpSrc(v, m), L3::Ipv4(ip)) => ip.l4.a = (ip.l4.a & !m) | v,
            (Cons::TpSrc(v, m), L3::Ipv6(ip)) => ip.l4.a = (ip.l4.a & !m) | v,
            (Cons::TpDst(v, m), L3::Ipv4(ip)) => ip.l4.b = (ip.l4.b & !m) | v,
            (Cons::TpDst(v, m), L3::Ipv6(ip)) => ip.l4.b = (ip.l4.b & !m) | v,
            (Cons::IcmpType(t), L3::Ipv4(ip)) => ip.l4.a = t as u16,
            (Cons::IcmpType(t), L3::Ipv6(ip)) => ip.l4.a = t as u16,
            (Cons::IcmpCode(c), L3::Ipv4(ip)) => ip.l4.b = c as u16,
            (Cons::IcmpCode(c), L3::Ipv6(ip)) => ip.l4.b = c as u16,
            (Cons::ArpOp(o), L3::Arp(a)) => a.op = o,
            (Cons::ArpSpa(v, m), L3::Arp(a)) => a.spa = mix32(a.spa, v, m),
            (Cons::ArpTpa(v, m), L3::Arp(a)) => a.tpa = mix32(a.tpa, v, m),
            (Cons::ArpSha(v), L3::Arp(a)) => a.sha = v,
            (Cons::ArpTha(v), L3::Arp(a)) => a.tha = v,
            (Cons::Ipv6Src(v, m), L3::Ipv6(ip)) => ip.src = (ip.src & !m) | v,
            (Cons::Ipv6Dst(v, m), L3::Ipv6(ip)) => ip.dst = (ip.dst & !m) | v,
            (Cons::Ipv6Label(v, m), L3::Ipv6(ip)) => ip.label = (ip.label & !m) | v,
            _ => {}
        }
    }

    /// ofctl text. `rng` picks between equivalent spellings (CIDR or
    /// dotted mask, decimal or hex) so the parser sees both.
    fn render(&self, proto: Proto, rng: &mut StdRng) -> String {
        let v6 = proto.is_ip6();
        // The protocol-specific aliases (tcp_src, udp_dst) now and then.
        let alias = match proto {
            Proto::Tcp | Proto::Tcp6 if rng.gen_bool(0.25) => Some("tcp"),
            Proto::Udp | Proto::Udp6 if rng.gen_bool(0.25) => Some("udp"),
            _ => None,
        };
        let ip4 = |name: &str, v: u32, m: u32, rng: &mut StdRng| {
            let a = Ipv4Addr::from(v);
            if m == u32::MAX && rng.gen_bool(0.7) {
                format!("{name}={a}")
            } else if m.leading_ones() + m.trailing_zeros() == 32 && rng.gen_bool(0.7) {
                format!("{name}={a}/{}", m.leading_ones())
            } else {
                format!("{name}={a}/{}", Ipv4Addr::from(m))
            }
        };
        let mac = |name: &str, v: &Mac, m: &Mac| {
            if *m == [0xff; 6] {
                format!("{name}={}", mac_str(v))
            } else {
                format!("{name}={}/{}", mac_str(v), mac_str(m))
            }
        };
        let tp = |name: &str, v: u16, m: u16, rng: &mut StdRng| {
            if m == u16::MAX {
                if rng.gen_bool(0.8) {
                    format!("{name}={v}")
                } else {
                    format!("{name}=0x{v:x}")
                }
            } else {
                format!("{name}=0x{v:x}/0x{m:x}")
            }
        };
        match *self {
            Cons::InPort(n) if rng.gen_bool(0.15) => format!("in_port=p{n}"),
            Cons::InPort(n) => format!("in_port={n}"),
            Cons::DlSrc(v, m) => mac("dl_src", &v, &m),
            Cons::DlDst(v, m) => mac("dl_dst", &v, &m),
            Cons::DlVlan(None) => "dl_vlan=0xffff".into(),
            Cons::DlVlan(Some(v)) => format!("dl_vlan={v}"),
            Cons::DlVlanPcp(p) => format!("dl_vlan_pcp={p}"),
            Cons::NwSrc(v, m) => ip4("nw_src", v, m, rng),
            Cons::NwDst(v, m) => ip4("nw_dst", v, m, rng),
            Cons::NwProto(n) => format!("nw_proto={n}"),
            Cons::NwTos(t) => format!("nw_tos={t}"),
            Cons::NwTtl(t) => format!("nw_ttl={t}"),
            Cons::TpSrc(v, m) => match alias {
                Some(a) => tp(&format!("{a}_src"), v, m, rng),
                None => tp("tp_src", v, m, rng),
            },
            Cons::TpDst(v, m) => match alias {
                Some(a) => tp(&format!("{a}_dst"), v, m, rng),
                None => tp("tp_dst", v, m, rng),
            },
            Cons::IcmpType(t) if v6 && rng.gen_bool(0.7) => format!("icmpv6_type={t}"),
            Cons::IcmpType(t) => format!("icmp_type={t}"),
            Cons::IcmpCode(c) if v6 && rng.gen_bool(0.7) => format!("icmpv6_code={c}"),
            Cons::IcmpCode(c) => format!("icmp_code={c}"),
            Cons::ArpOp(o) => format!("arp_op={o}"),
            Cons::ArpSpa(v, m) => ip4("arp_spa", v, m, rng),
            Cons::ArpTpa(v, m) => ip4("arp_tpa", v, m, rng),
            Cons::ArpSha(v) => format!("arp_sha={}", mac_str(&v)),
            Cons::ArpTha(v) => format!("arp_tha={}", mac_str(&v)),
            Cons::Ipv6Src(v, m) => {
                format!("ipv6_src={}/{}", Ipv6Addr::from(v), m.leading_ones())
            }
            Cons::Ipv6Dst(v, m) => {
                format!("ipv6_dst={}/{}", Ipv6Addr::from(v), m.leading_ones())
            }
            Cons::Ipv6Label(v, 0xfffff) => format!("ipv6_label=0x{v:05x}"),
            Cons::Ipv6Label(v, m) => format!("ipv6_label=0x{v:05x}/0x{m:05x}"),
        }
    }
}

/// One OpenFlow action, as the generator uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Output(u32),
    InPort,
    Flood,
    All,
    Normal,
    Drop,
    DecTtl,
    ModDlSrc(Mac),
    ModDlDst(Mac),
    ModVlanVid(u16),
    ModVlanPcp(u8),
    StripVlan,
    /// `push_vlan:TPID` (OpenFlow 1.1+ only: such rules are installed in
    /// OVS over OpenFlow 1.3, see [`RuleDesc::of13`]).
    PushVlan(u16),
    ModNwSrc(u32),
    ModNwDst(u32),
    ModNwTos(u8),
    ModTpSrc(u16),
    ModTpDst(u16),
}

impl Act {
    /// ofctl text; `n_ports` tells which ports exist and so may be named
    /// (`output:p3`: both switches know ports as `p1..pN`).
    fn render(&self, n_ports: u32, rng: &mut StdRng) -> String {
        let upper = rng.gen_bool(0.2);
        let kw = |s: &str| {
            if upper {
                s.to_uppercase()
            } else {
                s.to_string()
            }
        };
        match *self {
            Act::Output(p) if rng.gen_bool(0.1) => format!("{p}"),
            Act::Output(p) if p <= n_ports && rng.gen_bool(0.1) => format!("output:p{p}"),
            Act::Output(p) => format!("output:{p}"),
            Act::InPort => kw("in_port"),
            Act::Flood => kw("flood"),
            Act::All => kw("all"),
            Act::Normal => kw("normal"),
            Act::Drop => "drop".into(),
            Act::DecTtl => "dec_ttl".into(),
            Act::ModDlSrc(m) => format!("mod_dl_src:{}", mac_str(&m)),
            Act::ModDlDst(m) => format!("mod_dl_dst:{}", mac_str(&m)),
            Act::ModVlanVid(v) => format!("mod_vlan_vid:{v}"),
            Act::ModVlanPcp(p) => format!("mod_vlan_pcp:{p}"),
            Act::StripVlan => "strip_vlan".into(),
            Act::PushVlan(t) => format!("push_vlan:0x{t:04x}"),
            Act::ModNwSrc(a) => format!("mod_nw_src:{}", Ipv4Addr::from(a)),
            Act::ModNwDst(a) => format!("mod_nw_dst:{}", Ipv4Addr::from(a)),
            Act::ModNwTos(t) => format!("mod_nw_tos:{t}"),
            Act::ModTpSrc(p) => format!("mod_tp_src:{p}"),
            Act::ModTpDst(p) => format!("mod_tp_dst:{p}"),
        }
    }
}

/// A rule: priority, protocol, field constraints, actions — and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDesc {
    pub priority: u16,
    pub proto: Proto,
    pub cons: Vec<Cons>,
    pub actions: Vec<Act>,
    /// The `ovs-ofctl add-flow` line both switches are given.
    pub text: String,
    /// The rule needs OpenFlow 1.1+ in OVS (it has `push_vlan`); its
    /// actions are then consistent with its match, as OpenFlow 1.1+ demands.
    pub of13: bool,
}

impl RuleDesc {
    /// The `ovs-ofctl add-flow` line.
    pub fn to_ofctl(&self) -> &str {
        &self.text
    }

    /// Does `p` match (OVS semantics)? The test's third opinion, used in
    /// failure reports and to check the generator itself.
    pub fn matches(&self, p: &Pkt) -> bool {
        self.proto.matches(p) && self.cons.iter().all(|c| c.matches(p))
    }

    /// Makes `p` match this rule.
    pub fn satisfy(&self, p: &mut Pkt, pools: &Pools, rng: &mut StdRng) {
        if !self.proto.matches(p) {
            p.l3 = match self.proto {
                Proto::Any => p.l3,
                Proto::Arp => L3::Arp(pools.arp(rng)),
                Proto::EthType(t) => L3::Other(t),
                pr if pr.is_ip4() => {
                    let mut ip = pools.ip4(rng);
                    if let Some(n) = pr.fixed_proto() {
                        ip.proto = n;
                    }
                    L3::Ipv4(ip)
                }
                pr => {
                    let mut ip = pools.ip6(rng);
                    if let Some(n) = pr.fixed_proto() {
                        ip.proto = n;
                    }
                    L3::Ipv6(ip)
                }
            };
            p.normalise();
        }
        for c in &self.cons {
            c.satisfy(p, rng);
            p.normalise();
        }
    }
}

/// Per-table value pools: rules and packets draw from the same small sets
/// so that packets hit rules and rules overlap.
#[derive(Debug, Clone)]
pub struct Pools {
    pub n_ports: u32,
    pub macs: Vec<Mac>,
    pub v4: Vec<u32>,
    pub v6: Vec<u128>,
    pub l4: Vec<u16>,
    pub vids: Vec<u16>,
    pub ethertypes: Vec<u16>,
}

/// A random unicast or multicast MAC outside the mod_dl_* pools.
fn random_mac(rng: &mut StdRng) -> Mac {
    let mut m: Mac = rng.gen();
    if rng.gen_bool(0.7) {
        m[0] &= 0xfe; // unicast
    }
    if m[0..2] == MOD_SRC_PREFIX || m[0..2] == MOD_DST_PREFIX {
        m[1] ^= 0x01;
    }
    m
}

impl Pools {
    pub fn new(n_ports: u32, rng: &mut StdRng) -> Self {
        let mut macs: Vec<Mac> = (0..6).map(|_| random_mac(rng)).collect();
        macs.push([0xff; 6]);
        macs.push([0x01, 0x00, 0x5e, 0x00, 0x00, rng.gen()]);
        let base4: u32 = u32::from(Ipv4Addr::new(10, rng.gen(), 0, 0));
        let v4 = (0..6)
            .map(|_| {
                if rng.gen_bool(0.7) {
                    base4 | rng.gen_range(0..1024)
                } else {
                    rng.gen()
                }
            })
            .collect();
        let base6: u128 = 0x2001_0db8 << 96 | (rng.gen::<u32>() as u128) << 64;
        let v6 = (0..6)
            .map(|i| match i {
                0 => 0xfe80 << 112 | rng.gen::<u64>() as u128,
                _ if rng.gen_bool(0.7) => base6 | rng.gen::<u16>() as u128,
                _ => rng.gen(),
            })
            .collect();
        let l4 = vec![
            22,
            53,
            80,
            443,
            rng.gen_range(1024..65535),
            rng.gen(),
            rng.gen(),
        ];
        let vids = vec![0, 1, rng.gen_range(2..100), rng.gen_range(100..4095), 4095];
        let ethertypes = vec![0x88cc, 0x88b5, 0x9000, 0x1234, 0x8809];
        Pools {
            n_ports,
            macs,
            v4,
            v6,
            l4,
            vids,
            ethertypes,
        }
    }

    fn mac(&self, rng: &mut StdRng) -> Mac {
        if rng.gen_bool(0.85) {
            *self.macs.choose(rng).unwrap_or(&[0; 6])
        } else {
            random_mac(rng)
        }
    }
    fn v4a(&self, rng: &mut StdRng) -> u32 {
        if rng.gen_bool(0.85) {
            *self.v4.choose(rng).unwrap_or(&0)
        } else {
            rng.gen()
        }
    }
    fn v6a(&self, rng: &mut StdRng) -> u128 {
        if rng.gen_bool(0.85) {
            *self.v6.choose(rng).unwrap_or(&0)
        } else {
            rng.gen()
        }
    }
    fn port(&self, rng: &mut StdRng) -> u16 {
        if rng.gen_bool(0.8) {
            *self.l4.choose(rng).unwrap_or(&0)
        } else {
            rng.gen()
        }
    }
    fn ttl(&self, rng: &mut StdRng) -> u8 {
        *[0u8, 1, 2, 3, 64, 64, 128, 255, rng.gen()]
            .choose(rng)
            .unwrap_or(&64)
    }
    fn l4(&self, v6: bool, proto: u8, rng: &mut StdRng) -> L4 {
        match l4_kind(v6, proto) {
            L4Kind::Tcp | L4Kind::Udp => L4 {
                a: self.port(rng),
                b: self.port(rng),
            },
            L4Kind::Icmp => {
                let types: &[u16] = if v6 {
                    &[128, 129, 135, 136, 1]
                } else {
                    &[0, 8, 3, 11]
                };
                L4 {
                    a: if rng.gen_bool(0.8) {
                        *types.choose(rng).unwrap_or(&0)
                    } else {
                        rng.gen_range(0..256)
                    },
                    b: if rng.gen_bool(0.7) {
                        0
                    } else {
                        rng.gen_range(0..256)
                    },
                }
            }
            L4Kind::None => L4::default(),
        }
    }
    fn ip_proto(&self, v6: bool, rng: &mut StdRng) -> u8 {
        let common: &[u8] = if v6 {
            &[ipproto::TCP, ipproto::UDP, ipproto::ICMPV6, 47, 50]
        } else {
            &[ipproto::TCP, ipproto::UDP, ipproto::ICMP, 47, 50, 89]
        };
        if rng.gen_bool(0.9) {
            *common.choose(rng).unwrap_or(&ipproto::TCP)
        } else {
            // Anything but SCTP (OVS parses its ports, xswitch does not
            // claim to) and IPv6 extension headers (a trace flow's nw_proto
            // is the final header; a frame would need real extensions).
            loop {
                let n: u8 = rng.gen();
                if ![132, 0, 43, 44, 51, 60, 135, 139, 140, 253, 254].contains(&n) {
                    break n;
                }
            }
        }
    }
    pub fn ip4(&self, rng: &mut StdRng) -> Ip4 {
        let proto = self.ip_proto(false, rng);
        Ip4 {
            src: self.v4a(rng),
            dst: self.v4a(rng),
            proto,
            tos: rng.gen(),
            ttl: self.ttl(rng),
            l4: self.l4(false, proto, rng),
        }
    }
    pub fn ip6(&self, rng: &mut StdRng) -> Ip6 {
        let proto = self.ip_proto(true, rng);
        Ip6 {
            src: self.v6a(rng),
            dst: self.v6a(rng),
            label: if rng.gen_bool(0.5) {
                0
            } else {
                rng.gen_range(0..0x100000)
            },
            proto,
            tclass: rng.gen(),
            hlimit: self.ttl(rng),
            l4: self.l4(true, proto, rng),
        }
    }
    pub fn arp(&self, rng: &mut StdRng) -> Arp {
        Arp {
            op: if rng.gen_bool(0.9) {
                rng.gen_range(1..=2)
            } else {
                rng.gen()
            },
            spa: self.v4a(rng),
            tpa: self.v4a(rng),
            sha: self.mac(rng),
            tha: if rng.gen_bool(0.3) {
                [0; 6]
            } else {
                self.mac(rng)
            },
        }
    }
    fn ethertype(&self, rng: &mut StdRng) -> u16 {
        if rng.gen_bool(0.8) {
            *self.ethertypes.choose(rng).unwrap_or(&0x1234)
        } else {
            // An Ethernet II type that is not IP, IPv6, ARP, a VLAN TPID, or
            // a header OVS parses further but xswitch does not (MPLS, NSH):
            // with no fields for it in a key, those would test nothing.
            loop {
                let t = rng.gen_range(0x0600u16..=0xffff);
                if ![
                    ethertype::IPV4,
                    ethertype::IPV6,
                    ethertype::ARP,
                    ethertype::VLAN,
                    ethertype::QINQ,
                    0x9100,
                    0x8847,
                    0x8848,
                    0x894f,
                ]
                .contains(&t)
                {
                    break t;
                }
            }
        }
    }
}

/// A random packet drawn from the pools (not aimed at any rule).
pub fn random_packet(pools: &Pools, rng: &mut StdRng) -> Pkt {
    let l3 = match rng.gen_range(0..100) {
        0..=39 => L3::Ipv4(pools.ip4(rng)),
        40..=64 => L3::Ipv6(pools.ip6(rng)),
        65..=84 => L3::Arp(pools.arp(rng)),
        _ => L3::Other(pools.ethertype(rng)),
    };
    let mut dl_dst = pools.mac(rng);
    if rng.gen_bool(0.03) {
        dl_dst = *RESERVED_MACS.choose(rng).unwrap_or(&RESERVED_MACS[0]);
    }
    let mut p = Pkt {
        in_port: rng.gen_range(1..=pools.n_ports),
        dl_src: pools.mac(rng),
        dl_dst,
        vlan: if rng.gen_bool(0.35) {
            Some(Vlan {
                vid: *pools.vids.choose(rng).unwrap_or(&1),
                pcp: rng.gen_range(0..8),
            })
        } else {
            None
        },
        l3,
    };
    p.normalise();
    p
}

/// Keeps the learning-free invariant: `dl_src != dl_dst`, and no packet
/// address in the `mod_dl_*` pools.
fn sanitise(p: &mut Pkt) {
    for m in [&mut p.dl_src, &mut p.dl_dst] {
        if m[0..2] == MOD_SRC_PREFIX || m[0..2] == MOD_DST_PREFIX {
            m[1] ^= 0x01;
        }
    }
    if p.dl_src == p.dl_dst {
        p.dl_dst[5] ^= 0x01;
    }
}

/// Perturbs one field the rule constrains, or any field (a near miss).
fn perturb(p: &mut Pkt, rule: Option<&RuleDesc>, pools: &Pools, rng: &mut StdRng) {
    let field = match rule.and_then(|r| r.cons.choose(rng)) {
        Some(c) if rng.gen_bool(0.8) => c.field(),
        _ => *[
            FieldId::InPort,
            FieldId::DlSrc,
            FieldId::DlDst,
            FieldId::Vlan,
            FieldId::NwProto,
            FieldId::NwSrc,
            FieldId::TpDst,
            FieldId::NwTtl,
        ]
        .choose(rng)
        .unwrap_or(&FieldId::InPort),
    };
    let flip16 = |v: &mut u16, rng: &mut StdRng| *v ^= 1 << rng.gen_range(0..16);
    match (field, &mut p.l3) {
        (FieldId::InPort, _) => p.in_port = rng.gen_range(1..=pools.n_ports),
        (FieldId::DlSrc, _) => p.dl_src[rng.gen_range(0..6)] ^= 1 << rng.gen_range(0..8),
        (FieldId::DlDst, _) => p.dl_dst[rng.gen_range(0..6)] ^= 1 << rng.gen_range(0..8),
        (FieldId::Vlan, _) => {
            p.vlan = match p.vlan {
                Some(_) if rng.gen_bool(0.5) => None,
                _ => Some(Vlan {
                    vid: rng.gen_range(0..4096),
                    pcp: rng.gen_range(0..8),
                }),
            }
        }
        (FieldId::VlanPcp, _) => {
            if let Some(v) = &mut p.vlan {
                v.pcp = (v.pcp + rng.gen_range(1..8)) & 7;
            } else {
                p.vlan = Some(Vlan { vid: 1, pcp: 1 });
            }
        }
        (FieldId::NwSrc, L3::Ipv4(ip)) => ip.src ^= 1 << rng.gen_range(0..32),
        (FieldId::NwDst, L3::Ipv4(ip)) => ip.dst ^= 1 << rng.gen_range(0..32),
        (FieldId::NwSrc, L3::Arp(a)) => a.spa ^= 1 << rng.gen_range(0..32),
        (FieldId::NwDst, L3::Arp(a)) => a.tpa ^= 1 << rng.gen_range(0..32),
        (FieldId::NwSrc, L3::Ipv6(ip)) => ip.src ^= 1 << rng.gen_range(0..128),
        (FieldId::NwDst, L3::Ipv6(ip)) => ip.dst ^= 1 << rng.gen_range(0..128),
        (FieldId::NwProto, L3::Ipv4(ip)) => {
            ip.proto = pools.ip_proto(false, rng);
            ip.l4 = pools.l4(false, ip.proto, rng);
        }
        (FieldId::NwProto, L3::Ipv6(ip)) => {
            ip.proto = pools.ip_proto(true, rng);
            ip.l4 = pools.l4(true, ip.proto, rng);
        }
        (FieldId::NwProto, L3::Arp(a)) => a.op = rng.gen(),
        (FieldId::NwProto, L3::Other(_)) => p.l3 = L3::Ipv4(pools.ip4(rng)),
        (FieldId::NwTos, L3::Ipv4(ip)) => ip.tos ^= 4 << rng.gen_range(0..6),
        (FieldId::NwTos, L3::Ipv6(ip)) => ip.tclass ^= 4 << rng.gen_range(0..6),
        (FieldId::NwTtl, L3::Ipv4(ip)) => ip.ttl = pools.ttl(rng),
        (FieldId::NwTtl, L3::Ipv6(ip)) => ip.hlimit = pools.ttl(rng),
        (FieldId::TpSrc, L3::Ipv4(ip)) => flip16(&mut ip.l4.a, rng),
        (FieldId::TpSrc, L3::Ipv6(ip)) => flip16(&mut ip.l4.a, rng),
        (FieldId::TpDst, L3::Ipv4(ip)) => flip16(&mut ip.l4.b, rng),
        (FieldId::TpDst, L3::Ipv6(ip)) => flip16(&mut ip.l4.b, rng),
        (FieldId::ArpSha, L3::Arp(a)) => a.sha[5] ^= 1,
        (FieldId::ArpTha, L3::Arp(a)) => a.tha[5] ^= 1,
        (FieldId::Ipv6Label, L3::Ipv6(ip)) => ip.label ^= 1 << rng.gen_range(0..20),
        _ => p.in_port = rng.gen_range(1..=pools.n_ports),
    }
    p.normalise();
}

/// A packet for `table`: usually aimed at one rule (sometimes perturbed),
/// sometimes random.
pub fn gen_packet(table: &[RuleDesc], pools: &Pools, rng: &mut StdRng) -> Pkt {
    let mut p = random_packet(pools, rng);
    let target = if rng.gen_bool(0.8) {
        table.choose(rng)
    } else {
        None
    };
    if let Some(rule) = target {
        rule.satisfy(&mut p, pools, rng);
    }
    if target.is_none() || rng.gen_bool(0.3) {
        perturb(&mut p, target, pools, rng);
    }
    sanitise(&mut p);
    p
}

fn gen_mask32(rng: &mut StdRng) -> u32 {
    match rng.gen_range(0..10) {
        0..=3 => u32::MAX,
        4..=7 => u32::MAX
            .checked_shl(32 - rng.gen_range(1..=32))
            .unwrap_or(0),
        _ => rng.gen::<u32>() | 1 << 31,
    }
}

fn gen_mac_mask(rng: &mut StdRng) -> Mac {
    match rng.gen_range(0..10) {
        0..=6 => [0xff; 6],
        7 => [0x01, 0, 0, 0, 0, 0],
        8 => [0xff, 0xff, 0xff, 0, 0, 0],
        _ => rng.gen(),
    }
}

/// Draws a constraint on `field` for a rule of protocol `proto`, with
/// values taken from the pools so that packets can hit it.
fn gen_cons(field: FieldId, proto: Proto, pools: &Pools, rng: &mut StdRng) -> Option<Cons> {
    let v6 = proto.is_ip6();
    Some(match field {
        FieldId::InPort => Cons::InPort(rng.gen_range(1..=pools.n_ports)),
        FieldId::DlSrc | FieldId::DlDst => {
            let m = gen_mac_mask(rng);
            let v = bits_mac(mac_bits(&pools.mac(rng)) & mac_bits(&m));
            if field == FieldId::DlSrc {
                Cons::DlSrc(v, m)
            } else {
                Cons::DlDst(v, m)
            }
        }
        FieldId::Vlan => Cons::DlVlan(if rng.gen_bool(0.2) {
            None
        } else {
            Some(*pools.vids.choose(rng)?)
        }),
        FieldId::VlanPcp => Cons::DlVlanPcp(rng.gen_range(0..8)),
        FieldId::NwSrc | FieldId::NwDst if proto == Proto::Arp => {
            let m = gen_mask32(rng);
            let v = pools.v4a(rng) & m;
            if field == FieldId::NwSrc {
                Cons::ArpSpa(v, m)
            } else {
                Cons::ArpTpa(v, m)
            }
        }
        FieldId::NwSrc | FieldId::NwDst if v6 => {
            let plen = *[128u32, 128, 64, 48, 32, 10, rng.gen_range(1..=128)].choose(rng)?;
            let m = u128::MAX.checked_shl(128 - plen).unwrap_or(0);
            let v = pools.v6a(rng) & m;
            if field == FieldId::NwSrc {
                Cons::Ipv6Src(v, m)
            } else {
                Cons::Ipv6Dst(v, m)
            }
        }
        FieldId::NwSrc | FieldId::NwDst => {
            let m = gen_mask32(rng);
            let v = pools.v4a(rng) & m;
            if field == FieldId::NwSrc {
                Cons::NwSrc(v, m)
            } else {
                Cons::NwDst(v, m)
            }
        }
        FieldId::NwProto if proto == Proto::Arp => Cons::ArpOp(if rng.gen_bool(0.9) {
            rng.gen_range(1..=2)
        } else {
            rng.gen()
        }),
        FieldId::NwProto => Cons::NwProto(pools.ip_proto(v6, rng)),
        FieldId::NwTos => Cons::NwTos(rng.gen::<u8>() & 0xfc),
        FieldId::NwTtl => Cons::NwTtl(pools.ttl(rng)),
        FieldId::TpSrc | FieldId::TpDst if proto.has_icmp() => {
            let l4 = pools.l4(v6, proto.fixed_proto()?, rng);
            if field == FieldId::TpSrc {
                Cons::IcmpType(l4.a as u8)
            } else {
                Cons::IcmpCode(l4.b as u8)
            }
        }
        FieldId::TpSrc | FieldId::TpDst => {
            let m: u16 = match rng.gen_range(0..10) {
                0..=6 => u16::MAX,
                7..=8 => u16::MAX << rng.gen_range(1..16),
                _ => rng.gen::<u16>() | 1,
            };
            let v = pools.port(rng) & m;
            if field == FieldId::TpSrc {
                Cons::TpSrc(v, m)
            } else {
                Cons::TpDst(v, m)
            }
        }
        FieldId::ArpSha => Cons::ArpSha(pools.mac(rng)),
        FieldId::ArpTha => Cons::ArpTha(pools.mac(rng)),
        FieldId::Ipv6Label => {
            let m = if rng.gen_bool(0.7) {
                0xfffff
            } else {
                rng.gen_range(1..0x100000)
            };
            let v = if rng.gen_bool(0.5) {
                0
            } else {
                rng.gen_range(0..0x100000)
            };
            Cons::Ipv6Label(v & m, m)
        }
    })
}

/// The fields a rule of protocol `proto` may constrain (OVS prerequisites).
fn allowed_fields(proto: Proto) -> Vec<FieldId> {
    let mut f = vec![
        FieldId::InPort,
        FieldId::DlSrc,
        FieldId::DlDst,
        FieldId::Vlan,
        FieldId::VlanPcp,
    ];
    if proto.is_ip4() || proto.is_ip6() {
        f.extend([
            FieldId::NwSrc,
            FieldId::NwDst,
            FieldId::NwTos,
            FieldId::NwTtl,
        ]);
        if matches!(proto, Proto::Ip | Proto::Ipv6) {
            f.push(FieldId::NwProto);
        }
        if proto.has_ports() || proto.has_icmp() {
            f.extend([FieldId::TpSrc, FieldId::TpDst]);
        }
        if proto.is_ip6() {
            f.push(FieldId::Ipv6Label);
        }
    }
    if proto == Proto::Arp {
        f.extend([
            FieldId::NwSrc,
            FieldId::NwDst,
            FieldId::NwProto,
            FieldId::ArpSha,
            FieldId::ArpTha,
        ]);
    }
    f
}

fn gen_proto(pools: &Pools, rng: &mut StdRng) -> Proto {
    match rng.gen_range(0..100) {
        0..=9 => Proto::Any,
        10..=21 => Proto::Ip,
        22..=29 => Proto::Ipv6,
        30..=39 => Proto::Arp,
        40..=51 => Proto::Tcp,
        52..=63 => Proto::Udp,
        64..=71 => Proto::Icmp,
        72..=77 => Proto::Tcp6,
        78..=83 => Proto::Udp6,
        84..=88 => Proto::Icmp6,
        89..=93 => Proto::IpOther(*[47u8, 50, 89].choose(rng).unwrap_or(&47)),
        _ => Proto::EthType(pools.ethertype(rng)),
    }
}

/// An action that sends the packet somewhere (or tries to).
fn gen_output(pools: &Pools, rng: &mut StdRng) -> Act {
    match rng.gen_range(0..100) {
        0..=54 => Act::Output(rng.gen_range(1..=pools.n_ports)),
        // A port the switch does not have: both sides skip it.
        55..=58 => Act::Output(pools.n_ports + rng.gen_range(1..=3)),
        59..=68 => Act::InPort,
        69..=77 => Act::Flood,
        78..=86 => Act::All,
        _ => Act::Normal,
    }
}

fn gen_mod(rng: &mut StdRng) -> Act {
    let tail = |rng: &mut StdRng| -> [u8; 4] { rng.gen() };
    match rng.gen_range(0..10) {
        0 => {
            let t = tail(rng);
            Act::ModDlSrc([MOD_SRC_PREFIX[0], MOD_SRC_PREFIX[1], t[0], t[1], t[2], t[3]])
        }
        1 => {
            let t = tail(rng);
            Act::ModDlDst([MOD_DST_PREFIX[0], MOD_DST_PREFIX[1], t[0], t[1], t[2], t[3]])
        }
        2 => Act::ModVlanVid(rng.gen_range(0..4096)),
        3 => Act::ModVlanPcp(rng.gen_range(0..8)),
        4 => Act::StripVlan,
        5 => Act::ModNwSrc(rng.gen()),
        6 => Act::ModNwDst(rng.gen()),
        7 => Act::ModNwTos(rng.gen::<u8>() & 0xfc),
        8 => Act::ModTpSrc(rng.gen()),
        _ => Act::ModTpDst(rng.gen()),
    }
}

/// A rewrite that OpenFlow 1.1+ accepts in a rule of protocol `proto`
/// (ovs-actions(7) "Inconsistencies": L3/L4 rewrites and dec_ttl need the
/// match to guarantee the header).
fn gen_consistent_mod(proto: Proto, rng: &mut StdRng) -> Act {
    let mut options = vec![0, 1];
    if proto.is_ip4() {
        options.extend([5, 6, 7, 10]);
    }
    if proto.is_ip6() {
        options.extend([7, 10]);
    }
    if proto.has_ports() {
        options.extend([8, 9]);
    }
    match *options.choose(rng).unwrap_or(&0) {
        10 => Act::DecTtl,
        n => loop {
            // gen_mod draws its kind from 0..10; redraw until it is `n`.
            let a = gen_mod(rng);
            if mod_kind(&a) == n {
                break a;
            }
        },
    }
}

fn mod_kind(a: &Act) -> u32 {
    match a {
        Act::ModDlSrc(_) => 0,
        Act::ModDlDst(_) => 1,
        Act::ModVlanVid(_) => 2,
        Act::ModVlanPcp(_) => 3,
        Act::StripVlan => 4,
        Act::ModNwSrc(_) => 5,
        Act::ModNwDst(_) => 6,
        Act::ModNwTos(_) => 7,
        Act::ModTpSrc(_) => 8,
        Act::ModTpDst(_) => 9,
        _ => u32::MAX,
    }
}

/// An action list with one `push_vlan` for an OpenFlow 1.3 rule: maybe a
/// consistent rewrite and an output, the push and an output, maybe
/// `strip_vlan` (consistent right after a push) and an output.
///
/// Between the push and the strip there is no `normal`: the pushed tag has
/// VID 0, and on an already tagged packet NORMAL would then see a double-
/// tagged frame whose handling in OVS depends on `vlan-limit` and QinQ
/// port modes (it strips both tags here), configuration xswitch does not
/// have. NORMAL on a priority-tagged frame stays covered by packets that
/// arrive with a VID 0 tag.
fn gen_of13_actions(proto: Proto, pools: &Pools, rng: &mut StdRng) -> Vec<Act> {
    let mut acts = Vec::new();
    if rng.gen_bool(0.4) {
        acts.push(gen_consistent_mod(proto, rng));
        acts.push(gen_output(pools, rng));
    }
    acts.push(Act::PushVlan(if rng.gen_bool(0.7) {
        0x8100
    } else {
        0x88a8
    }));
    if rng.gen_bool(0.3) {
        acts.push(gen_consistent_mod(proto, rng));
    }
    acts.push(loop {
        let a = gen_output(pools, rng);
        if a != Act::Normal {
            break a;
        }
    });
    if rng.gen_bool(0.4) {
        acts.push(Act::StripVlan);
        acts.push(gen_output(pools, rng));
    }
    acts
}

/// An action list: outputs, rewrites each followed by an output, dec_ttl
/// followed by an output, or a lone `drop`.
fn gen_actions(pools: &Pools, rng: &mut StdRng) -> Vec<Act> {
    if rng.gen_bool(0.07) {
        return vec![Act::Drop];
    }
    let mut acts = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        match rng.gen_range(0..100) {
            0..=54 => {}
            55..=84 => {
                for _ in 0..rng.gen_range(1..=2) {
                    acts.push(gen_mod(rng));
                }
            }
            _ => acts.push(Act::DecTtl),
        }
        acts.push(gen_output(pools, rng));
    }
    acts
}

/// Renders a rule's `ovs-ofctl` line.
fn render_rule(
    priority: Option<u16>,
    proto: Proto,
    cons: &[Cons],
    acts: &[Act],
    n_ports: u32,
    rng: &mut StdRng,
) -> String {
    let mut parts = Vec::new();
    if let Some(p) = priority {
        parts.push(format!("priority={p}"));
    }
    let proto_text = proto.render(rng);
    let mut fields: Vec<String> = cons.iter().map(|c| c.render(proto, rng)).collect();
    // The protocol must come before fields that need it (OVS checks
    // prerequisites as it parses); in_port and L2 fields may go anywhere.
    fields.shuffle(rng);
    let l2_first = |c: &&String| {
        ["in_port", "dl_src", "dl_dst", "dl_vlan"]
            .iter()
            .any(|k| c.starts_with(k))
    };
    let (l2, rest): (Vec<&String>, Vec<&String>) = fields.iter().partition(l2_first);
    parts.extend(l2.into_iter().cloned());
    parts.extend(proto_text);
    parts.extend(rest.into_iter().cloned());
    let acts: Vec<String> = acts.iter().map(|a| a.render(n_ports, rng)).collect();
    parts.push(format!("actions={}", acts.join(",")));
    parts.join(",")
}

/// A random table of `n` rules with pairwise distinct priorities.
pub fn gen_table(n: usize, pools: &Pools, rng: &mut StdRng) -> Vec<RuleDesc> {
    let mut prios: Vec<u16> = Vec::with_capacity(n);
    while prios.len() < n {
        let p = if rng.gen_bool(0.7) {
            rng.gen_range(0..400)
        } else {
            rng.gen()
        };
        if !prios.contains(&p) {
            prios.push(p);
        }
    }
    // At most one rule may leave out `priority=` and get OVS's default.
    let default_slot = prios
        .iter()
        .position(|&p| p == dataplane::classifier::DEFAULT_PRIORITY);
    let mut table = Vec::with_capacity(n);
    for (i, &priority) in prios.iter().enumerate() {
        let proto = gen_proto(pools, rng);
        let allowed = allowed_fields(proto);
        let n_cons = *[0usize, 1, 1, 2, 2, 2, 3, 3, 4].choose(rng).unwrap_or(&1);
        let fields: Vec<FieldId> = allowed
            .choose_multiple(rng, n_cons.min(allowed.len()))
            .copied()
            .collect();
        let mut cons: Vec<Cons> = Vec::new();
        for f in fields {
            if let Some(c) = gen_cons(f, proto, pools, rng) {
                cons.push(c);
            }
        }
        // `dl_vlan=0xffff` (untagged) with `dl_vlan_pcp` can never match.
        if cons.contains(&Cons::DlVlan(None)) {
            cons.retain(|c| !matches!(c, Cons::DlVlanPcp(_)));
        }
        let of13 = rng.gen_bool(0.1);
        let actions = if of13 {
            gen_of13_actions(proto, pools, rng)
        } else {
            gen_actions(pools, rng)
        };
        let shown = if Some(i) == default_slot && rng.gen_bool(0.5) {
            None
        } else {
            Some(priority)
        };
        let text = render_rule(shown, proto, &cons, &actions, pools.n_ports, rng);
        table.push(RuleDesc {
            priority,
            proto,
            cons,
            actions,
            text,
            of13,
        });
    }
    table
}

/// The highest-priority rule of `table` that matches `p`, by the test's own
/// reading of OVS semantics.
pub fn model_lookup<'a>(table: &'a [RuleDesc], p: &Pkt) -> Option<&'a RuleDesc> {
    table
        .iter()
        .filter(|r| r.matches(p))
        .max_by_key(|r| r.priority)
}
