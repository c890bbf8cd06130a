//! Frames from flow keys: the inverse of [`crate::extract::extract`].
//!
//! # What
//! [`build_frame`] writes a valid frame (lengths and checksums right) whose
//! extraction gives back the key, for any *consistent* key. Tests,
//! benchmarks and the OVS differential test use it to turn keys into traffic.
//! [`build_frame_with`] adds what a key cannot say: VLAN TPIDs, LLC/SNAP
//! encapsulation, IPv4 and TCP options, IPv6 extension headers.
//!
//! # Consistent keys
//! A key is consistent when some frame extracts to it cleanly; the rules
//! ([`canonicalize`] applies them, [`is_consistent`] checks them):
//! * `vlan_tci` is 0 or has [`VLAN_CFI`] set; `vlan_tci2` likewise, and only
//!   with an outer tag. `dl_type` is >= 0x600 or exactly 0x05ff; a VLAN TPID
//!   as `dl_type` needs both tags (it is then a third, unparsed tag).
//! * `dl_type` decides the layers. IPv4: `nw_src/dst/tos/ttl/proto/frag`.
//!   IPv6: `ipv6_src/dst/label`, `nw_tos/ttl/proto/frag`, where `nw_proto`
//!   is not an extension header, except 44 for a later fragment (and only
//!   then). ARP/RARP: `nw_src/dst`, `nw_proto` (opcode), `arp_sha/tha`.
//!   Anything else: no field above L2.
//! * `nw_frag` is 0, [`FRAG_ANY`] or `FRAG_ANY | FRAG_LATER`. A later
//!   fragment has no L4 fields.
//! * L4 by `nw_proto`: TCP, UDP, SCTP: ports; ICMP, IGMP, ICMPv6: type and
//!   code below 256; ICMPv6 neighbor solicitation/advertisement (code 0)
//!   over IPv6: also `arp_sha`/`arp_tha` (link-layer options); other
//!   protocols: none. (Extraction, like OVS, also takes the options of ND
//!   carried over IPv4, but OVS never shows them — its flow printer knows
//!   `nd_sll` only for IPv6 — so consistent keys leave them 0 there, which
//!   keeps keys comparable with `ofproto/trace` output.)
//! * Bits outside every field are 0. `in_port` is metadata: any value.
//!
//! The builder allocates (one `Vec` per frame); it is not for the packet path.

use super::{
    ethernet, icmpv6, ipv4, ipv6, ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet,
    IgmpPacket, IpProtocol, Ipv4Packet, Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet, SctpPacket,
    TcpPacket, UdpPacket,
};
use crate::flow_key::{FlowKey, MacAddr, FRAG_ANY, FRAG_LATER, VLAN_CFI};
use core::net::{Ipv4Addr, Ipv6Addr};

/// An IPv6 extension header to put in a built frame, with its raw length
/// field (hop-by-hop, routing, destination options: `(len + 1) * 8` bytes;
/// AH: `(len + 2) * 4` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Ext {
    HopByHop(u8),
    Routing(u8),
    DestOpts(u8),
    Ah(u8),
}

impl Ipv6Ext {
    fn protocol(self) -> IpProtocol {
        match self {
            Ipv6Ext::HopByHop(_) => IpProtocol::HOPOPTS,
            Ipv6Ext::Routing(_) => IpProtocol::ROUTING,
            Ipv6Ext::DestOpts(_) => IpProtocol::DSTOPTS,
            Ipv6Ext::Ah(_) => IpProtocol::AH,
        }
    }
    fn len_field(self) -> u8 {
        match self {
            Ipv6Ext::HopByHop(l) | Ipv6Ext::Routing(l) | Ipv6Ext::DestOpts(l) | Ipv6Ext::Ah(l) => l,
        }
    }
    /// Bytes this header takes.
    pub fn len(self) -> usize {
        let l = usize::from(self.len_field());
        match self {
            Ipv6Ext::Ah(_) => (l + 2) * 4,
            _ => (l + 1) * 8,
        }
    }
    /// Never true: every extension header has at least 8 bytes.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// What [`build_frame_with`] adds to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameOptions {
    /// TPID of the outer tag; `None`: 0x8100 for a single tag, 0x88a8 when
    /// there are two.
    pub outer_tpid: Option<EtherType>,
    /// TPID of the inner tag of a double-tagged frame.
    pub inner_tpid: EtherType,
    /// Carry the ethertype in an 802.3 frame with an RFC 1042 LLC/SNAP
    /// header instead of Ethernet II (ignored for `dl_type` 0x05ff).
    pub llc_snap: bool,
    /// IPv4 option bytes (NOPs), a multiple of 4 up to 40.
    pub ipv4_options_len: usize,
    /// TCP option bytes (NOPs), a multiple of 4 up to 40.
    pub tcp_options_len: usize,
    /// IPv6 extension headers, in order, before any fragment header.
    pub ipv6_ext: Vec<Ipv6Ext>,
    /// Pad the frame with zeros to 60 bytes, the Ethernet minimum.
    pub pad_to_min: bool,
}

impl Default for FrameOptions {
    fn default() -> Self {
        FrameOptions {
            outer_tpid: None,
            inner_tpid: EtherType::VLAN,
            llc_snap: false,
            ipv4_options_len: 0,
            tcp_options_len: 0,
            ipv6_ext: Vec::new(),
            pad_to_min: true,
        }
    }
}

/// Fragment offset (8-byte units) the builder gives later fragments.
pub const LATER_FRAG_OFFSET: u16 = 185;
/// Next header the builder puts in the fragment header of an IPv6 later
/// fragment (the key cannot say; it has 44 there).
pub const LATER_FRAG_INNER_PROTO: IpProtocol = IpProtocol::UDP;
/// LLC header of 802.3 frames that carry no ethertype (the STP SAPs).
const LLC_NO_SNAP: [u8; 3] = [0x42, 0x42, 0x03];

/// Builds a frame for a consistent `key` with `payload_len` bytes of
/// payload after the innermost header (see the module doc).
pub fn build_frame(key: &FlowKey, payload_len: usize) -> Vec<u8> {
    build_frame_with(key, payload_len, &FrameOptions::default())
}

/// [`build_frame`] with encapsulation choices the key does not fix.
pub fn build_frame_with(key: &FlowKey, payload_len: usize, opts: &FrameOptions) -> Vec<u8> {
    let mut f = Vec::with_capacity(128 + payload_len);
    f.resize(ethernet::HEADER_LEN - 2, 0);
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(key.dl_dst());
        eth.set_src_addr(key.dl_src());
    }
    let tci = key.vlan_tci();
    let tci2 = key.vlan_tci2();
    if tci & VLAN_CFI != 0 {
        let double = tci2 & VLAN_CFI != 0;
        let outer = opts.outer_tpid.unwrap_or(if double {
            EtherType::QINQ
        } else {
            EtherType::VLAN
        });
        push_tag(&mut f, outer, tci & !VLAN_CFI);
        if double {
            push_tag(&mut f, opts.inner_tpid, tci2 & !VLAN_CFI);
        }
    }
    let dl_type = EtherType(key.dl_type());
    let len_field_at = f.len();
    f.extend_from_slice(&[0, 0]);
    let l2_payload_start = f.len();
    if dl_type.is_length() {
        f.extend_from_slice(&LLC_NO_SNAP);
    } else if opts.llc_snap {
        let at = f.len();
        f.resize(at + ethernet::LLC_SNAP_LEN, 0);
        ethernet::LlcSnapHeader::new_unchecked(&mut f[at..]).set_snap_ethernet(dl_type);
    } else {
        f[len_field_at..len_field_at + 2].copy_from_slice(&dl_type.0.to_be_bytes());
    }

    match dl_type {
        EtherType::IPV4 => emit_ipv4(&mut f, key, payload_len, opts),
        EtherType::IPV6 => emit_ipv6(&mut f, key, payload_len, opts),
        EtherType::ARP | EtherType::RARP => {
            emit_arp(&mut f, key);
            push_payload(&mut f, payload_len);
        }
        _ => push_payload(&mut f, payload_len),
    }
    if dl_type.is_length() || opts.llc_snap {
        // 802.3 length: LLC + payload, before padding; below 0x600 always.
        let l = (f.len() - l2_payload_start).min(1500) as u16;
        f[len_field_at..len_field_at + 2].copy_from_slice(&l.to_be_bytes());
    }
    if opts.pad_to_min && f.len() < ethernet::MIN_FRAME_LEN {
        f.resize(ethernet::MIN_FRAME_LEN, 0);
    }
    f
}

/// Appends a TPID and a TCI; the ethertype that follows the TCI is
/// written by whatever comes next.
fn push_tag(f: &mut Vec<u8>, tpid: EtherType, tci: u16) {
    f.extend_from_slice(&tpid.0.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
}

/// Appends `n` payload bytes with a recognisable pattern.
fn push_payload(f: &mut Vec<u8>, n: usize) {
    f.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)));
}

fn emit_arp(f: &mut Vec<u8>, key: &FlowKey) {
    let at = f.len();
    f.resize(at + super::arp::HEADER_LEN, 0);
    let mut a = ArpPacket::new_unchecked(&mut f[at..]);
    a.set_ethernet_ipv4();
    a.set_operation(u16::from(key.nw_proto()));
    a.set_sha(key.arp_sha());
    a.set_spa(key.nw_src());
    a.set_tha(key.arp_tha());
    a.set_tpa(key.nw_dst());
}

/// Pseudo-header source for L4 checksums.
#[derive(Clone, Copy)]
enum Pseudo {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

fn emit_ipv4(f: &mut Vec<u8>, key: &FlowKey, payload_len: usize, opts: &FrameOptions) {
    let at = f.len();
    let opt_len = opts.ipv4_options_len.min(40) & !3;
    let hl = ipv4::HEADER_LEN + opt_len;
    f.resize(at + hl, 0);
    let later = key.nw_frag() & FRAG_LATER != 0;
    let proto = IpProtocol(key.nw_proto());
    if later {
        push_payload(f, payload_len);
    } else {
        emit_l4(
            f,
            key,
            proto,
            payload_len,
            opts,
            Pseudo::V4(key.nw_src(), key.nw_dst()),
        );
    }
    let tot = u16::try_from(f.len() - at).unwrap_or(u16::MAX);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[at..]);
    ip.set_version(4);
    ip.set_header_len(hl);
    ip.set_tos(key.nw_tos());
    ip.set_total_len(tot);
    ip.set_ident(0x1234);
    let frag = if later {
        LATER_FRAG_OFFSET
    } else if key.nw_frag() & FRAG_ANY != 0 {
        ipv4::FLAG_MF
    } else {
        ipv4::FLAG_DF
    };
    ip.set_flags_frag(frag);
    ip.set_ttl(key.nw_ttl());
    ip.set_protocol(proto);
    ip.set_src_addr(key.nw_src());
    ip.set_dst_addr(key.nw_dst());
    ip.options_mut().fill(1); // NOP
    ip.fill_checksum();
}

fn emit_ipv6(f: &mut Vec<u8>, key: &FlowKey, payload_len: usize, opts: &FrameOptions) {
    let at = f.len();
    f.resize(at + ipv6::HEADER_LEN, 0);
    let later = key.nw_frag() & FRAG_LATER != 0;
    let first_frag = !later && key.nw_frag() & FRAG_ANY != 0;
    // The protocol after all extension headers and the fragment header.
    let upper = if later {
        LATER_FRAG_INNER_PROTO
    } else {
        IpProtocol(key.nw_proto())
    };
    // Chain of next-header values: fixed header -> ext... -> frag? -> upper.
    let mut chain: Vec<IpProtocol> = opts.ipv6_ext.iter().map(|e| e.protocol()).collect();
    if later || first_frag {
        chain.push(IpProtocol::FRAGMENT);
    }
    chain.push(upper);
    for (i, ext) in opts.ipv6_ext.iter().enumerate() {
        let h = f.len();
        f.resize(h + ext.len(), 0);
        let mut e = Ipv6ExtHeader::new_unchecked(&mut f[h..], ext.protocol());
        e.set_next_header(chain[i + 1]);
        // The rest stays zero: for hop-by-hop and destination options
        // that is a run of Pad1 options.
        e.set_len_field(ext.len_field());
    }
    if later || first_frag {
        let h = f.len();
        f.resize(h + ipv6::FRAG_HEADER_LEN, 0);
        let mut fr = Ipv6FragmentHeader::new_unchecked(&mut f[h..]);
        fr.set_next_header(upper);
        if later {
            fr.set_offset_more(LATER_FRAG_OFFSET, false);
        } else {
            fr.set_offset_more(0, true);
        }
        fr.set_ident(0x0bad_cafe);
    }
    let (src, dst) = (key.ipv6_src(), key.ipv6_dst());
    if later {
        push_payload(f, payload_len);
    } else {
        emit_l4(f, key, upper, payload_len, opts, Pseudo::V6(src, dst));
    }
    let plen = u16::try_from(f.len() - at - ipv6::HEADER_LEN).unwrap_or(u16::MAX);
    let mut ip = Ipv6Packet::new_unchecked(&mut f[at..]);
    ip.set_version(6);
    ip.set_traffic_class(key.nw_tos());
    ip.set_flow_label(key.ipv6_label());
    ip.set_payload_len(plen);
    ip.set_next_header(chain[0]);
    ip.set_hop_limit(key.nw_ttl());
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

fn l4_checksum(ps: Pseudo, proto: IpProtocol, seg: &[u8]) -> u16 {
    match ps {
        Pseudo::V4(s, d) => super::l4_checksum_v4(s, d, proto, seg),
        Pseudo::V6(s, d) => super::l4_checksum_v6(s, d, proto, seg),
    }
}

fn emit_l4(
    f: &mut Vec<u8>,
    key: &FlowKey,
    proto: IpProtocol,
    payload_len: usize,
    opts: &FrameOptions,
    ps: Pseudo,
) {
    let at = f.len();
    match proto {
        IpProtocol::TCP => {
            let hl = super::tcp::HEADER_LEN + (opts.tcp_options_len.min(40) & !3);
            f.resize(at + hl, 0);
            push_payload(f, payload_len);
            let mut t = TcpPacket::new_unchecked(&mut f[at..]);
            t.set_src_port(key.tp_src());
            t.set_dst_port(key.tp_dst());
            t.set_seq_number(0x0102_0304);
            t.set_ack_number(0x0a0b_0c0d);
            t.set_header_len(hl);
            t.set_flags(super::tcp::flags::ACK | super::tcp::flags::PSH);
            t.set_window(0xffff);
            t.options_mut().fill(1); // NOP
            let c = l4_checksum(ps, proto, &f[at..]);
            TcpPacket::new_unchecked(&mut f[at..]).set_checksum(c);
        }
        IpProtocol::UDP => {
            f.resize(at + super::udp::HEADER_LEN, 0);
            push_payload(f, payload_len);
            let len = u16::try_from(f.len() - at).unwrap_or(u16::MAX);
            let mut u = UdpPacket::new_unchecked(&mut f[at..]);
            u.set_src_port(key.tp_src());
            u.set_dst_port(key.tp_dst());
            u.set_len_field(len);
            let c = l4_checksum(ps, proto, &f[at..]);
            UdpPacket::new_unchecked(&mut f[at..]).set_checksum(if c == 0 { 0xffff } else { c });
        }
        IpProtocol::SCTP => {
            f.resize(at + super::sctp::HEADER_LEN, 0);
            push_payload(f, payload_len);
            let mut s = SctpPacket::new_unchecked(&mut f[at..]);
            s.set_src_port(key.tp_src());
            s.set_dst_port(key.tp_dst());
            s.set_verification_tag(SCTP_VTAG);
            s.fill_checksum();
        }
        IpProtocol::ICMP => {
            f.resize(at + super::icmp::HEADER_LEN, 0);
            push_payload(f, payload_len);
            let mut i = IcmpPacket::new_unchecked(&mut f[at..]);
            i.set_msg_type(key.tp_src() as u8);
            i.set_code(key.tp_dst() as u8);
            i.set_rest_of_header(0x0042_0001);
            i.fill_checksum();
        }
        IpProtocol::IGMP => {
            f.resize(at + super::igmp::HEADER_LEN, 0);
            push_payload(f, payload_len);
            let mut i = IgmpPacket::new_unchecked(&mut f[at..]);
            i.set_msg_type(key.tp_src() as u8);
            i.set_code(key.tp_dst() as u8);
            i.set_group_addr(Ipv4Addr::new(239, 0, 0, 1));
            i.fill_checksum();
        }
        IpProtocol::ICMPV6 => {
            f.resize(at + icmpv6::HEADER_LEN, 0);
            let (ty, code) = (key.tp_src() as u8, key.tp_dst() as u8);
            let nd = code == 0
                && (ty == icmpv6::ND_NEIGHBOR_SOLICIT || ty == icmpv6::ND_NEIGHBOR_ADVERT);
            if nd {
                f.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x42).octets());
                push_lla_option(f, icmpv6::ND_OPT_SOURCE_LINKADDR, key.arp_sha());
                push_lla_option(f, icmpv6::ND_OPT_TARGET_LINKADDR, key.arp_tha());
                // Zero bytes: a zero option length ends the ND option scan.
                f.resize(f.len() + payload_len, 0);
            } else {
                push_payload(f, payload_len);
            }
            let mut i = Icmpv6Packet::new_unchecked(&mut f[at..]);
            i.set_msg_type(ty);
            i.set_code(code);
            let c = l4_checksum(ps, proto, &f[at..]);
            Icmpv6Packet::new_unchecked(&mut f[at..]).set_checksum(c);
        }
        _ => push_payload(f, payload_len),
    }
}

/// The verification tag of built SCTP packets.
const SCTP_VTAG: u32 = 0x5c7a_9001;

fn push_lla_option(f: &mut Vec<u8>, kind: u8, mac: MacAddr) {
    if mac != [0; 6] {
        f.extend_from_slice(&[kind, 1]);
        f.extend_from_slice(&mac);
    }
}

/// The consistent key nearest to `key`: fields of absent layers cleared,
/// values the wire cannot carry replaced (see the module doc). Feed it random
/// words to generate keys for property tests.
pub fn canonicalize(key: &FlowKey) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(key.in_port());
    k.set_dl_src(key.dl_src());
    k.set_dl_dst(key.dl_dst());
    let (mut tci, mut tci2) = (key.vlan_tci(), key.vlan_tci2());
    if tci & VLAN_CFI == 0 {
        tci = 0;
        tci2 = 0;
    }
    if tci2 & VLAN_CFI == 0 {
        tci2 = 0;
    }
    k.set_vlan_tci(tci);
    k.set_vlan_tci2(tci2);
    let mut dl_type = EtherType(key.dl_type());
    if dl_type.is_length() {
        dl_type = EtherType::NONE;
    } else if dl_type.is_vlan() && tci2 == 0 {
        // A TPID can only be left as dl_type behind two parsed tags.
        dl_type = EtherType(0x88b5); // IEEE local experimental
    }
    k.set_dl_type(dl_type.0);

    match dl_type {
        EtherType::IPV4 | EtherType::IPV6 => {
            let v6 = dl_type == EtherType::IPV6;
            if v6 {
                k.set_ipv6_src(key.ipv6_src());
                k.set_ipv6_dst(key.ipv6_dst());
                k.set_ipv6_label(key.ipv6_label());
            } else {
                k.set_nw_src(key.nw_src());
                k.set_nw_dst(key.nw_dst());
            }
            k.set_nw_tos(key.nw_tos());
            k.set_nw_ttl(key.nw_ttl());
            let mut frag = key.nw_frag() & (FRAG_ANY | FRAG_LATER);
            if frag & FRAG_LATER != 0 {
                frag |= FRAG_ANY;
            }
            k.set_nw_frag(frag);
            let mut proto = IpProtocol(key.nw_proto());
            if v6 {
                if frag & FRAG_LATER != 0 {
                    proto = IpProtocol::FRAGMENT;
                } else if proto.is_ipv6_ext_header() {
                    proto = IpProtocol::NO_NEXT_HEADER;
                }
            }
            k.set_nw_proto(proto.0);
            if frag & FRAG_LATER == 0 {
                canonical_l4(&mut k, key, proto, v6);
            }
        }
        EtherType::ARP | EtherType::RARP => {
            k.set_nw_src(key.nw_src());
            k.set_nw_dst(key.nw_dst());
            k.set_nw_proto(key.nw_proto());
            k.set_arp_sha(key.arp_sha());
            k.set_arp_tha(key.arp_tha());
        }
        _ => {}
    }
    k
}

fn canonical_l4(k: &mut FlowKey, key: &FlowKey, proto: IpProtocol, v6: bool) {
    match proto {
        IpProtocol::TCP | IpProtocol::UDP | IpProtocol::SCTP => {
            k.set_tp_src(key.tp_src());
            k.set_tp_dst(key.tp_dst());
        }
        IpProtocol::ICMP | IpProtocol::IGMP => {
            k.set_tp_src(key.tp_src() & 0xff);
            k.set_tp_dst(key.tp_dst() & 0xff);
        }
        IpProtocol::ICMPV6 => {
            let (ty, code) = (key.tp_src() & 0xff, key.tp_dst() & 0xff);
            k.set_tp_src(ty);
            k.set_tp_dst(code);
            let nd = code == 0
                && (ty == u16::from(icmpv6::ND_NEIGHBOR_SOLICIT)
                    || ty == u16::from(icmpv6::ND_NEIGHBOR_ADVERT));
            if nd && v6 {
                k.set_arp_sha(key.arp_sha());
                k.set_arp_tha(key.arp_tha());
            }
        }
        _ => {}
    }
}

/// Does some frame extract cleanly to `key` (see the module doc)?
pub fn is_consistent(key: &FlowKey) -> bool {
    canonicalize(key) == *key
}

/// Ethernet + IPv4 + UDP (TTL 64), for hand-written tests.
pub fn udp4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let mut k = ip4_key(src_mac, dst_mac, src_ip, dst_ip, IpProtocol::UDP);
    k.set_tp_src(sport);
    k.set_tp_dst(dport);
    build_frame(&k, payload_len)
}

/// Ethernet + IPv4 + TCP (TTL 64, ACK|PSH), for hand-written tests.
pub fn tcp4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let mut k = ip4_key(src_mac, dst_mac, src_ip, dst_ip, IpProtocol::TCP);
    k.set_tp_src(sport);
    k.set_tp_dst(dport);
    build_frame(&k, payload_len)
}

/// Ethernet + IPv4 + ICMP echo request (TTL 64), for hand-written tests.
pub fn icmp4_echo(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    payload_len: usize,
) -> Vec<u8> {
    let mut k = ip4_key(src_mac, dst_mac, src_ip, dst_ip, IpProtocol::ICMP);
    k.set_tp_src(u16::from(super::icmp::ECHO_REQUEST));
    build_frame(&k, payload_len)
}

/// Ethernet + IPv6 + UDP (hop limit 64), for hand-written tests.
pub fn udp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let mut k = ip6_key(src_mac, dst_mac, src_ip, dst_ip, IpProtocol::UDP);
    k.set_tp_src(sport);
    k.set_tp_dst(dport);
    build_frame(&k, payload_len)
}

/// Ethernet + IPv6 + TCP (hop limit 64), for hand-written tests.
pub fn tcp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let mut k = ip6_key(src_mac, dst_mac, src_ip, dst_ip, IpProtocol::TCP);
    k.set_tp_src(sport);
    k.set_tp_dst(dport);
    build_frame(&k, payload_len)
}

/// An Ethernet/IPv4 ARP packet (`op` 1 = request, 2 = reply) sent from
/// `sha` to `dst_mac` (use `[0xff; 6]` for a broadcast request).
pub fn arp(
    op: u8,
    sha: MacAddr,
    spa: Ipv4Addr,
    dst_mac: MacAddr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(sha);
    k.set_dl_dst(dst_mac);
    k.set_dl_type(EtherType::ARP.0);
    k.set_nw_proto(op);
    k.set_arp_sha(sha);
    k.set_nw_src(spa);
    k.set_arp_tha(tha);
    k.set_nw_dst(tpa);
    build_frame(&k, 0)
}

/// Inserts an 802.1Q tag with `tci` after the MAC addresses of `frame`
/// (for tests; the frame must be at least 12 bytes long).
pub fn with_vlan(frame: &[u8], tci: u16) -> Vec<u8> {
    let split = frame.len().min(12);
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(&frame[..split]);
    f.extend_from_slice(&EtherType::VLAN.0.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[split..]);
    f
}

fn ip4_key(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    proto: IpProtocol,
) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(src_mac);
    k.set_dl_dst(dst_mac);
    k.set_dl_type(EtherType::IPV4.0);
    k.set_nw_src(src_ip);
    k.set_nw_dst(dst_ip);
    k.set_nw_ttl(64);
    k.set_nw_proto(proto.0);
    k
}

fn ip6_key(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    proto: IpProtocol,
) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_dl_src(src_mac);
    k.set_dl_dst(dst_mac);
    k.set_dl_type(EtherType::IPV6.0);
    k.set_ipv6_src(src_ip);
    k.set_ipv6_dst(dst_ip);
    k.set_nw_ttl(64);
    k.set_nw_proto(proto.0);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract;

    fn key(dl_type: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_dl_src([2, 0, 0, 0, 0, 1]);
        k.set_dl_dst([2, 0, 0, 0, 0, 2]);
        k.set_dl_type(dl_type);
        k
    }

    fn extracted(f: &[u8]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        let l = extract(f, 0, &mut k);
        assert_eq!(l.error, None, "frame {f:02x?}");
        k
    }

    #[test]
    fn dot3_frame_has_a_length_field_and_non_snap_llc() {
        let k = key(0x05ff);
        let f = build_frame(&k, 10);
        assert_eq!(&f[12..14], &13u16.to_be_bytes(), "3 bytes of LLC + 10");
        assert_eq!(&f[14..17], &LLC_NO_SNAP);
        assert_eq!(f.len(), 60);
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn llc_snap_option_encapsulates_the_ethertype() {
        let mut k = key(0x0800);
        k.set_nw_proto(17);
        k.set_tp_dst(53);
        let opts = FrameOptions {
            llc_snap: true,
            ..FrameOptions::default()
        };
        let f = build_frame_with(&k, 0, &opts);
        assert_eq!(&f[14..22], &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        let len = usize::from(u16::from_be_bytes([f[12], f[13]]));
        assert_eq!(len, 8 + 20 + 8);
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn vlan_tpids_follow_tag_count_unless_chosen() {
        let mut k = key(0x88cc);
        k.set_vlan_tci(VLAN_CFI | 7);
        assert_eq!(&build_frame(&k, 0)[12..16], &[0x81, 0x00, 0x00, 0x07]);
        k.set_vlan_tci2(VLAN_CFI | 9);
        let f = build_frame(&k, 0);
        assert_eq!(&f[12..20], &[0x88, 0xa8, 0, 7, 0x81, 0x00, 0, 9]);
        let opts = FrameOptions {
            outer_tpid: Some(EtherType::VLAN),
            ..FrameOptions::default()
        };
        assert_eq!(&build_frame_with(&k, 0, &opts)[12..14], &[0x81, 0x00]);
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn neighbor_advertisement_carries_link_layer_options() {
        let mut k = key(0x86dd);
        k.set_nw_proto(58);
        k.set_nw_ttl(255);
        k.set_tp_src(136);
        k.set_arp_tha([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert!(is_consistent(&k));
        let f = build_frame(&k, 8);
        let icmp = Icmpv6Packet::new_checked(&f[54..]).unwrap();
        assert_eq!(icmp.nd_options().count(), 1, "only the non-zero address");
        assert!(icmp.verify_checksum(k.ipv6_src(), k.ipv6_dst()));
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn ipv6_later_fragment_names_a_real_inner_protocol() {
        let mut k = key(0x86dd);
        k.set_nw_frag(FRAG_ANY | FRAG_LATER);
        k.set_nw_proto(6); // canonicalize turns this into 44
        let k = canonicalize(&k);
        assert_eq!(k.nw_proto(), 44);
        let f = build_frame(&k, 16);
        let frag = Ipv6FragmentHeader::new_checked(&f[54..]).unwrap();
        assert_eq!(frag.next_header(), LATER_FRAG_INNER_PROTO);
        assert_eq!(frag.frag_offset(), LATER_FRAG_OFFSET);
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn ipv4_options_and_fragments_are_emitted() {
        let mut k = key(0x0800);
        k.set_nw_proto(6);
        k.set_nw_frag(FRAG_ANY);
        k.set_tp_src(1);
        let opts = FrameOptions {
            ipv4_options_len: 12,
            tcp_options_len: 8,
            ..FrameOptions::default()
        };
        let f = build_frame_with(&k, 5, &opts);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(
            (ip.header_len(), ip.more_frags(), ip.frag_offset()),
            (32, true, 0)
        );
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.header_len(), 28);
        assert_eq!(extracted(&f), k);
    }

    #[test]
    fn canonicalize_clears_fields_of_absent_layers() {
        let mut k = key(0x0806);
        k.set_nw_src(Ipv4Addr::new(1, 2, 3, 4));
        k.set_nw_ttl(9); // ARP has no TTL
        k.set_tp_dst(80); // ... nor ports
        k.set_ipv6_label(5);
        let c = canonicalize(&k);
        assert_eq!(c.nw_src(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!((c.nw_ttl(), c.tp_dst(), c.ipv6_label()), (0, 0, 0));
        let mut k = key(0x0500); // an 802.3 length
        k.set_vlan_tci(0x0005); // no CFI: not a tag
        let c = canonicalize(&k);
        assert_eq!((c.dl_type(), c.vlan_tci()), (0x05ff, 0));
    }
}
