//! Flow-key extraction: one pass over a frame, filling a [`FlowKey`].
//!
//! # What
//! [`extract`] reads the headers of an Ethernet frame through the
//! [`crate::wire`] views and writes every field the frame has into a
//! [`FlowKey`], with the same results as Open vSwitch's `miniflow_extract`
//! (lib/flow.c) configured with `other_config:vlan-limit=2`. A differential
//! test against OVS holds us to that, so the rules below copy OVS's, corner
//! cases included:
//!
//! * **L2.** Fewer than 14 bytes: nothing but `in_port` ([`Layers::is_runt`]).
//!   Up to two 802.1Q/802.1ad tags are taken, each only if 4 more bytes of
//!   tag and 2 of ethertype are there; `vlan_tci` (outer) and `vlan_tci2`
//!   (inner) get the wire TCI with [`VLAN_CFI`] set. A type/length below
//!   0x600 is an 802.3 length: an RFC 1042 LLC/SNAP header (AA-AA-03,
//!   organisation 0) supplies the ethertype, anything else gives
//!   `dl_type` 0x05ff (`FLOW_DL_TYPE_NONE`). A third tag, or a tag cut
//!   short, leaves its TPID as `dl_type`.
//! * **IPv4.** The header must pass OVS's sanity check (20 bytes, IHL >= 5,
//!   header <= total length <= bytes present); if not, parsing stops after
//!   L2 and every `nw_*` field stays 0. The version nibble is not checked.
//!   `nw_frag` gets [`FRAG_ANY`] for MF or a non-zero offset, plus
//!   [`FRAG_LATER`] for a non-zero offset; later fragments have no L4
//!   fields. Bytes past the total length are padding and never parsed.
//! * **IPv6.** 40 bytes and the payload length must fit. The addresses are
//!   taken first; then hop-by-hop, routing, destination-options, AH and
//!   fragment headers are skipped. If that walk fails, the addresses stay
//!   and `nw_tos`/`nw_ttl`/`nw_proto`/`nw_frag`/`ipv6_label` stay 0 (OVS
//!   pushes them only after the walk). `nw_proto` is the final next header;
//!   for a later fragment it is 44 (fragment).
//! * **ARP/RARP.** Only with all 28 bytes and htype 1 / ptype 0x0800 /
//!   hlen 6 / plen 4: `nw_src`/`nw_dst` = SPA/TPA, `arp_sha`/`arp_tha`, and
//!   `nw_proto` = the opcode when it is <= 255 (else 0).
//! * **L4** (chosen by `nw_proto` alone, whatever the IP version, as OVS
//!   does): TCP (20 bytes, data offset >= 5, header fits), UDP (8), SCTP
//!   (12) put ports in `tp_src`/`tp_dst`; ICMP, IGMP and ICMPv6 (8 bytes)
//!   put type/code there. Neighbor solicitations/advertisements also put
//!   their source/target link-layer address options in `arp_sha`/`arp_tha`
//!   (OVS's `nd_sll`/`nd_tll`; `nd_target` has no field in our key).
//!
//! # Invariants
//! * `key` is fully overwritten: fields the frame does not have are 0.
//! * Never panics, never allocates, reads each header once; the work per
//!   frame is bounded (IPv6 extension headers consume >= 8 bytes each).
//! * [`Layers`] tells where headers start, so actions can rewrite them in
//!   place, and carries the first [`wire::Error`] met. A frame with an error
//!   is still classified on what parsed (OVS forwards such frames too); only
//!   runts are for the caller to drop as `malformed`.
//!
//! # Locking
//! None: a pure function of its inputs, called by each PMD on its own batch.
//!
//! # Why OVS's rules and not stricter ones
//! Flow tables written for OVS must match the same packets here. A stricter
//! parser (checking IP versions, UDP lengths, checksums) would silently make
//! rules miss; malformed-but-forwardable traffic is OVS's behaviour too.

use crate::flow_key::{field, FlowKey, MacAddr, PortNo, FRAG_ANY, FRAG_LATER, VLAN_CFI};
use crate::wire::{
    self, ethernet, ipv6, ArpPacket, EtherType, IcmpPacket, Icmpv6Packet, IgmpPacket, IpProtocol,
    Ipv4Packet, Ipv6Packet, SctpPacket, TcpPacket, UdpPacket, VlanHeader,
};

/// Most VLAN tags parsed (OVS's `FLOW_MAX_VLAN_HEADERS`).
pub const MAX_VLAN_TAGS: usize = 2;

/// Where each layer starts in the frame, for actions that rewrite headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layers {
    /// Bytes of Ethernet + VLAN tags (+ LLC/SNAP), i.e. the offset of L3;
    /// 0 if the frame is shorter than an Ethernet header.
    pub l2_len: u16,
    /// Tags parsed (0..=2).
    pub vlan_tags: u8,
    /// Offset of the IPv4/IPv6/ARP header when it parsed (for ARP: the
    /// Ethernet/IPv4 form whose fields went into the key).
    pub l3: Option<u16>,
    /// Offset of the TCP/UDP/SCTP/ICMP/IGMP/ICMPv6 header when it parsed
    /// and its fields went into the key.
    pub l4: Option<u16>,
    /// First layer that was truncated or malformed (parsing stopped there).
    pub error: Option<wire::Error>,
}

impl Layers {
    /// The frame is shorter than an Ethernet header: drop it as `malformed`.
    #[inline]
    pub fn is_runt(&self) -> bool {
        self.l2_len == 0
    }
}

/// Fills `key` from `frame` received on `in_port` (see the module doc).
#[inline]
pub fn extract(frame: &[u8], in_port: PortNo, key: &mut FlowKey) -> Layers {
    *key = FlowKey::ZERO;
    let mut acc = KeyAcc { key };
    acc.put(field::IN_PORT, u64::from(in_port));
    let mut layers = Layers::default();
    if let Err(e) = extract_l2(frame, &mut acc, &mut layers) {
        layers.error = Some(e);
    }
    layers
}

/// Writes fields into a zeroed key. Each field is written once, so a
/// field is OR-ed into its word (one read-modify-write of a word that is
/// in L1, no masking of the old value) instead of a general `set`.
struct KeyAcc<'a> {
    key: &'a mut FlowKey,
}

impl KeyAcc<'_> {
    /// ORs `v` into a field that is still zero.
    #[inline(always)]
    fn put(&mut self, pos: field::Pos, v: u64) {
        let mask = if pos.bits == 64 {
            u64::MAX
        } else {
            (1u64 << pos.bits) - 1
        };
        self.key.words[pos.word] |= (v & mask) << pos.shift;
    }
    #[inline(always)]
    fn put_mac(&mut self, pos: field::Pos, m: MacAddr) {
        self.put(
            pos,
            u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]),
        );
    }
}

/// Offsets fit in `u16` for any frame up to 64 KiB; beyond, they saturate
/// (no switch buffer is that large).
#[inline(always)]
fn off16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[inline(always)]
fn extract_l2(frame: &[u8], key: &mut KeyAcc<'_>, layers: &mut Layers) -> wire::Result<()> {
    let eth = ethernet::EthernetFrame::new_checked(frame)?;
    key.put(field::DL_DST, eth.dst_addr_u64());
    key.put(field::DL_SRC, eth.src_addr_u64());

    // `off` is where the current type/length field starts.
    let mut off = 12;
    let mut ty = eth.ethertype();
    let mut tags = 0usize;
    let mut tag_error = None;
    while ty.is_vlan() && tags < MAX_VLAN_TAGS {
        let tag = match VlanHeader::new_checked(&frame[off + 2..]) {
            Ok(t) => t,
            Err(e) => {
                tag_error = Some(e.at(off + 2));
                break;
            }
        };
        let tci = tag.tci() | VLAN_CFI;
        if tags == 0 {
            key.put(field::VLAN_TCI, u64::from(tci));
        } else {
            key.put(field::VLAN_TCI2, u64::from(tci));
        }
        tags += 1;
        off += 4;
        ty = tag.ethertype();
    }
    off += 2;
    if ty.is_length() {
        ty = EtherType::NONE;
        if let Ok(llc) = ethernet::LlcSnapHeader::new_checked(&frame[off..]) {
            if llc.is_snap_ethernet() {
                off += ethernet::LLC_SNAP_LEN;
                let inner = llc.snap_type();
                if !inner.is_length() {
                    ty = inner;
                }
            }
        }
    }
    key.put(field::DL_TYPE, u64::from(ty.0));
    layers.l2_len = off16(off);
    layers.vlan_tags = tags as u8;
    if let Some(e) = tag_error {
        return Err(e);
    }

    let l3 = &frame[off..];
    match ty {
        EtherType::IPV4 => extract_ipv4(l3, off, key, layers),
        EtherType::IPV6 => extract_ipv6(l3, off, key, layers),
        EtherType::ARP | EtherType::RARP => extract_arp(l3, off, key, layers),
        _ => Ok(()),
    }
}

/// Padding after the IP packet beyond this is refused (OVS keeps the
/// padding length in a 16-bit field).
const MAX_L2_PAD: usize = u16::MAX as usize;

#[inline(always)]
fn extract_ipv4(
    l3: &[u8],
    off: usize,
    key: &mut KeyAcc<'_>,
    layers: &mut Layers,
) -> wire::Result<()> {
    let ip = Ipv4Packet::new_checked(l3).map_err(|e| e.at(off))?;
    let tot = usize::from(ip.total_len());
    if l3.len() - tot > MAX_L2_PAD {
        return Err(wire::Error::bad_length(wire::Layer::Ipv4, l3.len() - MAX_L2_PAD, tot).at(off));
    }
    let (src, dst) = ip.addrs_u32();
    key.put(field::NW_SRC, u64::from(src));
    key.put(field::NW_DST, u64::from(dst));
    key.put(field::NW_TOS, u64::from(ip.tos()));
    key.put(field::NW_TTL, u64::from(ip.ttl()));
    let proto = ip.protocol();
    key.put(field::NW_PROTO, u64::from(proto.0));
    let mut frag = 0;
    if ip.is_fragment() {
        frag = FRAG_ANY;
        if ip.is_later_fragment() {
            frag |= FRAG_LATER;
        }
    }
    key.put(field::NW_FRAG, u64::from(frag));
    layers.l3 = Some(off16(off));
    if frag & FRAG_LATER != 0 {
        return Ok(());
    }
    let hl = ip.header_len();
    extract_l4(&l3[hl..tot], off + hl, proto, key, layers)
}

#[inline(always)]
fn extract_ipv6(
    l3: &[u8],
    off: usize,
    key: &mut KeyAcc<'_>,
    layers: &mut Layers,
) -> wire::Result<()> {
    let ip = Ipv6Packet::new_checked(l3).map_err(|e| e.at(off))?;
    let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    if l3.len() - end > MAX_L2_PAD {
        return Err(wire::Error::bad_length(wire::Layer::Ipv6, l3.len() - MAX_L2_PAD, end).at(off));
    }
    let (hi, lo) = ip.src_addr_words();
    key.put(field::IPV6_SRC_HI, hi);
    key.put(field::IPV6_SRC_LO, lo);
    let (hi, lo) = ip.dst_addr_words();
    key.put(field::IPV6_DST_HI, hi);
    key.put(field::IPV6_DST_LO, lo);
    layers.l3 = Some(off16(off));

    let payload = &l3[ipv6::HEADER_LEN..end];
    let payload_off = off + ipv6::HEADER_LEN;
    let proto = ip.next_header();
    let walk = if proto.is_ipv6_ext_header() {
        ipv6::walk_ext_headers(payload, proto).map_err(|e| e.shifted(payload_off))?
    } else {
        ipv6::ExtWalk {
            protocol: proto,
            ..ipv6::ExtWalk::default()
        }
    };
    key.put(field::IPV6_LABEL, u64::from(ip.flow_label()));
    key.put(field::NW_TOS, u64::from(ip.traffic_class()));
    key.put(field::NW_TTL, u64::from(ip.hop_limit()));
    key.put(field::NW_PROTO, u64::from(walk.protocol.0));
    let mut frag = 0;
    if walk.is_fragment {
        frag = FRAG_ANY;
        if walk.is_later_fragment {
            frag |= FRAG_LATER;
            key.put(field::NW_FRAG, u64::from(frag));
            return Ok(());
        }
    }
    key.put(field::NW_FRAG, u64::from(frag));
    extract_l4(
        &payload[walk.offset..],
        payload_off + walk.offset,
        walk.protocol,
        key,
        layers,
    )
}

#[inline(always)]
fn extract_arp(
    l3: &[u8],
    off: usize,
    key: &mut KeyAcc<'_>,
    layers: &mut Layers,
) -> wire::Result<()> {
    let arp = ArpPacket::new_checked(l3).map_err(|e| e.at(off))?;
    if !arp.is_ethernet_ipv4() {
        return Ok(());
    }
    key.put(field::NW_SRC, u64::from(u32::from(arp.spa())));
    key.put(field::NW_DST, u64::from(u32::from(arp.tpa())));
    let op = arp.operation();
    if op <= 0xff {
        key.put(field::NW_PROTO, u64::from(op));
    }
    key.put_mac(field::ARP_SHA, arp.sha());
    key.put_mac(field::ARP_THA, arp.tha());
    layers.l3 = Some(off16(off));
    Ok(())
}

#[inline(always)]
fn extract_l4(
    l4: &[u8],
    off: usize,
    proto: IpProtocol,
    key: &mut KeyAcc<'_>,
    layers: &mut Layers,
) -> wire::Result<()> {
    let (src, dst) = match proto {
        IpProtocol::TCP => {
            let t = TcpPacket::new_checked(l4).map_err(|e| e.at(off))?;
            (t.src_port(), t.dst_port())
        }
        IpProtocol::UDP => {
            let u = UdpPacket::new_checked(l4).map_err(|e| e.at(off))?;
            (u.src_port(), u.dst_port())
        }
        IpProtocol::SCTP => {
            let s = SctpPacket::new_checked(l4).map_err(|e| e.at(off))?;
            (s.src_port(), s.dst_port())
        }
        IpProtocol::ICMP => {
            let i = IcmpPacket::new_checked(l4).map_err(|e| e.at(off))?;
            (u16::from(i.msg_type()), u16::from(i.code()))
        }
        IpProtocol::IGMP => {
            let i = IgmpPacket::new_checked(l4).map_err(|e| e.at(off))?;
            (u16::from(i.msg_type()), u16::from(i.code()))
        }
        IpProtocol::ICMPV6 => {
            let i = Icmpv6Packet::new_checked(l4).map_err(|e| e.at(off))?;
            if i.is_nd() {
                let (sll, tll) = i.nd_link_addrs();
                key.put_mac(field::ARP_SHA, sll);
                key.put_mac(field::ARP_THA, tll);
            }
            (u16::from(i.msg_type()), u16::from(i.code()))
        }
        _ => return Ok(()),
    };
    key.put(field::TP_SRC, u64::from(src));
    key.put(field::TP_DST, u64::from(dst));
    layers.l4 = Some(off16(off));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_key::FlowKey;
    use crate::wire::{ErrorKind, Layer};
    use core::net::{Ipv4Addr, Ipv6Addr};

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

    /// MACs followed by `rest` (type field onwards).
    fn eth(rest: &[u8]) -> Vec<u8> {
        let mut f = DST.to_vec();
        f.extend_from_slice(&SRC);
        f.extend_from_slice(rest);
        f
    }

    /// A 20-byte IPv4 header (no checksum: extraction does not verify it).
    fn ipv4_hdr(proto: u8, tot_len: u16, flags_frag: u16) -> Vec<u8> {
        let mut h = vec![0x45, 0x2e];
        h.extend_from_slice(&tot_len.to_be_bytes());
        h.extend_from_slice(&[0, 1]);
        h.extend_from_slice(&flags_frag.to_be_bytes());
        h.extend_from_slice(&[33, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        h
    }

    fn ipv6_hdr(next: u8, plen: u16) -> Vec<u8> {
        let mut h = vec![0x6a, 0xbc, 0xde, 0xf1];
        h.extend_from_slice(&plen.to_be_bytes());
        h.extend_from_slice(&[next, 7]);
        h.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        h.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        h
    }

    fn run(frame: &[u8]) -> (FlowKey, Layers) {
        let mut k = FlowKey::ZERO;
        k.words = [u64::MAX; crate::flow_key::KEY_WORDS]; // must be overwritten
        let l = extract(frame, 7, &mut k);
        (k, l)
    }

    fn udp_hdr(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    #[test]
    fn runt_frame_keeps_only_in_port() {
        let (k, l) = run(&eth(&[0x08])[..13]);
        let mut want = FlowKey::ZERO;
        want.set_in_port(7);
        assert_eq!(k, want);
        assert!(l.is_runt());
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Ethernet, 14, 13))
        );
        assert!(!run(&eth(&[0x88, 0xb5])).1.is_runt());
    }

    #[test]
    fn ipv4_udp_fills_l2_l3_l4() {
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(17, 28, 0x4000));
        rest.extend(udp_hdr(1234, 53));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.in_port(), 7);
        assert_eq!((k.dl_src(), k.dl_dst(), k.dl_type()), (SRC, DST, 0x0800));
        assert_eq!(k.vlan_tci(), 0);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            (k.nw_tos(), k.nw_ttl(), k.nw_proto(), k.nw_frag()),
            (0x2e, 33, 17, 0)
        );
        assert_eq!((k.tp_src(), k.tp_dst()), (1234, 53));
        assert_eq!(k.arp_sha(), [0; 6]);
        assert_eq!(k.ipv6_src(), Ipv6Addr::UNSPECIFIED);
        let want = Layers {
            l2_len: 14,
            vlan_tags: 0,
            l3: Some(14),
            l4: Some(34),
            error: None,
        };
        assert_eq!(l, want);
    }

    #[test]
    fn vlan_tags_set_cfi_and_shift_l3() {
        let mut rest = vec![0x88, 0xa8, 0x20, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00];
        rest.extend(ipv4_hdr(17, 28, 0));
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.vlan_tci(), 0x200a | VLAN_CFI);
        assert_eq!(k.vlan_tci2(), 0x0014 | VLAN_CFI);
        assert_eq!(k.dl_vlan(), Some(10));
        assert_eq!(k.dl_vlan_pcp(), 1);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(
            (l.l2_len, l.vlan_tags, l.l3, l.l4),
            (22, 2, Some(22), Some(42))
        );
        assert_eq!((k.tp_src(), k.tp_dst()), (1, 2));
    }

    #[test]
    fn third_vlan_tag_becomes_dl_type() {
        let rest = [
            0x81, 0x00, 0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x08, 0x00, 0x45,
        ];
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!((k.vlan_tci(), k.vlan_tci2()), (0x1001, 0x1002));
        assert_eq!((l.l2_len, l.vlan_tags, l.l3, l.error), (22, 2, None, None));
    }

    #[test]
    fn cut_vlan_tag_leaves_tpid_as_dl_type() {
        // TPID + TCI but no inner ethertype: OVS does not take the tag.
        let (k, l) = run(&eth(&[0x81, 0x00, 0x00, 0x05]));
        assert_eq!((k.dl_type(), k.vlan_tci()), (0x8100, 0));
        assert_eq!(l.vlan_tags, 0);
        assert_eq!(l.l2_len, 14);
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Vlan, 4, 2).at(14))
        );
    }

    #[test]
    fn ieee_802_3_frame_gets_dl_type_none() {
        let (k, l) = run(&eth(&[0x00, 0x26, 0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(k.dl_type(), 0x05ff);
        assert_eq!((l.l2_len, l.error), (14, None));
        // Too short for LLC/SNAP: still 0x05ff.
        assert_eq!(
            run(&eth(&[0x00, 0x03, 0xaa, 0xaa, 0x03])).0.dl_type(),
            0x05ff
        );
        // SNAP with a non-zero organisation is not an ethertype.
        let (k, _) = run(&eth(&[
            0x00, 0x30, 0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x00,
        ]));
        assert_eq!(k.dl_type(), 0x05ff);
        // SNAP carrying a length, not a type.
        let (k, l) = run(&eth(&[0x00, 0x30, 0xaa, 0xaa, 0x03, 0, 0, 0, 0x05, 0xdc]));
        assert_eq!((k.dl_type(), l.l2_len), (0x05ff, 22));
    }

    #[test]
    fn llc_snap_ipv4_is_parsed_after_the_snap_header() {
        let mut rest = vec![0x00, 0x30, 0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
        rest.extend(ipv4_hdr(17, 28, 0));
        rest.extend(udp_hdr(7, 9));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!((l.l2_len, l.l3, l.l4), (22, Some(22), Some(42)));
        assert_eq!((k.tp_src(), k.tp_dst()), (7, 9));
    }

    #[test]
    fn ipv4_bad_ihl_stops_after_l2() {
        let mut rest = vec![0x08, 0x00];
        let mut h = ipv4_hdr(17, 28, 0);
        h[0] = 0x44;
        rest.extend(h);
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(
            (k.nw_src_u32(), k.nw_proto(), k.nw_ttl(), k.tp_src()),
            (0, 0, 0, 0)
        );
        assert_eq!((l.l3, l.l4), (None, None));
        let e = l.error.unwrap();
        assert_eq!(
            (e.kind, e.layer, e.layer_start_offset),
            (ErrorKind::BadLength, Layer::Ipv4, 14)
        );
    }

    #[test]
    fn ipv4_total_length_beyond_frame_stops_after_l2() {
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(17, 29, 0));
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_src_u32(), k.tp_dst()), (0, 0));
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Ipv4, 29, 28).at(14))
        );
    }

    #[test]
    fn ipv4_padding_is_never_parsed_as_l4() {
        // Total length 24: 4 bytes of UDP inside, the rest is link padding.
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(17, 24, 0));
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.nw_proto(), 17);
        assert_eq!((k.tp_src(), k.tp_dst(), l.l4), (0, 0, None));
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Udp, 8, 4).at(34))
        );
    }

    #[test]
    fn ipv4_fragments_set_nw_frag_and_later_ones_lack_l4() {
        let frame = |ff: u16| {
            let mut rest = vec![0x08, 0x00];
            rest.extend(ipv4_hdr(6, 40, ff));
            let mut tcp = vec![0u8; 20];
            tcp[0..4].copy_from_slice(&[0, 80, 0x1f, 0x90]);
            tcp[12] = 0x50;
            rest.extend(tcp);
            eth(&rest)
        };
        let (k, l) = run(&frame(0x2000)); // MF, offset 0
        assert_eq!(k.nw_frag(), FRAG_ANY);
        assert_eq!((k.tp_src(), k.tp_dst(), l.l4), (80, 8080, Some(34)));
        let (k, l) = run(&frame(0x0010)); // offset 16, last
        assert_eq!(k.nw_frag(), FRAG_ANY | FRAG_LATER);
        assert_eq!(
            (k.nw_proto(), k.tp_src(), l.l4, l.error),
            (6, 0, None, None)
        );
        let (k, _) = run(&frame(0x4000)); // DF only
        assert_eq!(k.nw_frag(), 0);
    }

    #[test]
    fn tcp_with_bad_data_offset_has_no_ports() {
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(6, 40, 0));
        let mut tcp = vec![0u8; 20];
        tcp[0..4].copy_from_slice(&[0, 80, 0, 81]);
        tcp[12] = 0x40;
        rest.extend(tcp);
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (6, 0, 0));
        assert_eq!(
            l.error,
            Some(wire::Error::bad_length(Layer::Tcp, 20, 16).at(34))
        );
        assert_eq!(l.l3, Some(14));
    }

    fn arp_body(htype: u16, op: u16) -> Vec<u8> {
        let mut a = htype.to_be_bytes().to_vec();
        a.extend_from_slice(&[0x08, 0x00, 6, 4]);
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&[1, 1, 1, 1, 1, 1, 192, 168, 0, 1]);
        a.extend_from_slice(&[2, 2, 2, 2, 2, 2, 192, 168, 0, 2]);
        a
    }

    #[test]
    fn arp_fills_shared_fields() {
        let mut rest = vec![0x08, 0x06];
        rest.extend(arp_body(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.dl_type(), 0x0806);
        assert_eq!(k.nw_proto(), 2);
        assert_eq!(k.nw_src(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 0, 2));
        assert_eq!((k.arp_sha(), k.arp_tha()), ([1; 6], [2; 6]));
        assert_eq!((k.nw_ttl(), k.tp_src()), (0, 0));
        assert_eq!((l.l3, l.l4, l.error), (Some(14), None, None));
        // RARP is parsed the same way.
        let mut rest = vec![0x80, 0x35];
        rest.extend(arp_body(1, 3));
        assert_eq!(run(&eth(&rest)).0.nw_proto(), 3);
    }

    #[test]
    fn arp_opcode_above_255_leaves_nw_proto_zero() {
        let mut rest = vec![0x08, 0x06];
        rest.extend(arp_body(1, 0x0101));
        let (k, _) = run(&eth(&rest));
        assert_eq!(k.nw_proto(), 0);
        assert_eq!(k.nw_src(), Ipv4Addr::new(192, 168, 0, 1));
    }

    #[test]
    fn non_ethernet_or_short_arp_has_no_l3_fields() {
        let mut rest = vec![0x08, 0x06];
        rest.extend(arp_body(6, 1));
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_src_u32(), k.nw_proto(), k.arp_sha()), (0, 0, [0; 6]));
        assert_eq!((l.l3, l.error), (None, None));
        let mut rest = vec![0x08, 0x06];
        rest.extend(&arp_body(1, 1)[..27]);
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.nw_src_u32(), 0);
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Arp, 28, 27).at(14))
        );
    }

    #[test]
    fn ipv6_skips_extension_headers_to_tcp() {
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(0, 8 + 16 + 20)); // hop-by-hop first
        rest.extend([60, 0, 0, 0, 0, 0, 0, 0]); // hbh -> dstopts (8)
        rest.extend([6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dstopts -> tcp (16)
        let mut tcp = vec![0u8; 20];
        tcp[0..4].copy_from_slice(&[0x01, 0xbb, 0xc0, 0x00]);
        tcp[12] = 0x50;
        rest.extend(tcp);
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.ipv6_src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.ipv6_dst(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.ipv6_label(), 0xcdef1);
        assert_eq!(
            (k.nw_tos(), k.nw_ttl(), k.nw_proto(), k.nw_frag()),
            (0xab, 7, 6, 0)
        );
        assert_eq!((k.tp_src(), k.tp_dst()), (443, 49152));
        assert_eq!((k.nw_src_u32(), k.nw_dst_u32()), (0, 0));
        assert_eq!((l.l3, l.l4), (Some(14), Some(14 + 40 + 24)));
    }

    #[test]
    fn ipv6_later_fragment_has_proto_44_and_no_l4() {
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(44, 16));
        rest.extend([17, 0, 0x05, 0xc8, 0, 0, 0, 9]); // offset 185, last
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_proto(), k.nw_frag()), (44, FRAG_ANY | FRAG_LATER));
        assert_eq!((k.tp_src(), l.l4, l.error), (0, None, None));
        assert_eq!(k.ipv6_label(), 0xcdef1);
    }

    #[test]
    fn ipv6_first_fragment_keeps_l4() {
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(44, 16));
        rest.extend([17, 0, 0x00, 0x01, 0, 0, 0, 9]); // offset 0, M
        rest.extend(udp_hdr(3, 4));
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_proto(), k.nw_frag()), (17, FRAG_ANY));
        assert_eq!((k.tp_src(), k.tp_dst(), l.l4), (3, 4, Some(62)));
    }

    #[test]
    fn ipv6_broken_extension_header_keeps_only_addresses() {
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(43, 8));
        rest.extend([6, 1, 0, 0, 0, 0, 0, 0]); // routing header claims 16 bytes
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.ipv6_src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            (k.nw_proto(), k.nw_ttl(), k.nw_tos(), k.ipv6_label()),
            (0, 0, 0, 0)
        );
        assert_eq!(l.l3, Some(14));
        assert_eq!(
            l.error,
            Some(wire::Error::truncated(Layer::Ipv6ExtHeader, 16, 8).at(54))
        );
    }

    #[test]
    fn ipv6_payload_length_beyond_frame_stops_after_l2() {
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(17, 9));
        rest.extend(udp_hdr(1, 2));
        let (k, l) = run(&eth(&rest));
        assert_eq!(k.ipv6_src(), Ipv6Addr::UNSPECIFIED);
        assert_eq!((l.l3, l.error.map(|e| e.layer)), (None, Some(Layer::Ipv6)));
    }

    #[test]
    fn icmp_and_igmp_type_code_go_to_tp_fields() {
        for (proto, ty, code) in [(1u8, 3u8, 13u8), (2, 0x11, 100)] {
            let mut rest = vec![0x08, 0x00];
            rest.extend(ipv4_hdr(proto, 28, 0));
            rest.extend([ty, code, 0, 0, 0, 0, 0, 0]);
            let (k, l) = run(&eth(&rest));
            assert_eq!((k.tp_src(), k.tp_dst()), (u16::from(ty), u16::from(code)));
            assert_eq!(l.l4, Some(34));
        }
        // ICMP needs 8 bytes, as OVS's ICMP_HEADER_LEN.
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(1, 24, 0));
        rest.extend([8, 0, 0, 0]);
        let (k, l) = run(&eth(&rest));
        assert_eq!(
            (k.tp_src(), l.error.map(|e| e.layer)),
            (0, Some(Layer::Icmp))
        );
    }

    #[test]
    fn sctp_ports_are_extracted() {
        let mut rest = vec![0x08, 0x00];
        rest.extend(ipv4_hdr(132, 32, 0));
        rest.extend([0x0b, 0x59, 0x8e, 0x3c, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (k, _) = run(&eth(&rest));
        assert_eq!((k.tp_src(), k.tp_dst()), (2905, 36412));
    }

    #[test]
    fn icmpv6_neighbor_solicitation_fills_link_addresses() {
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend("fe80::9".parse::<Ipv6Addr>().unwrap().octets());
        icmp.extend([1, 1, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(58, icmp.len() as u16));
        rest.extend(&icmp);
        let (k, l) = run(&eth(&rest));
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (58, 135, 0));
        assert_eq!(k.arp_sha(), [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(k.arp_tha(), [0; 6]);
        assert_eq!(l.l4, Some(54));
        // Echo request: type/code only.
        let mut rest = vec![0x86, 0xdd];
        rest.extend(ipv6_hdr(58, 8));
        rest.extend([128, 0, 0, 0, 0, 1, 0, 1]);
        let (k, _) = run(&eth(&rest));
        assert_eq!((k.tp_src(), k.tp_dst(), k.arp_sha()), (128, 0, [0; 6]));
    }

    #[test]
    fn unknown_ethertype_has_no_l3_and_no_error() {
        let (k, l) = run(&eth(&[0x88, 0xcc, 1, 2, 3, 4]));
        assert_eq!(k.dl_type(), 0x88cc);
        assert_eq!((k.words[2] >> 48, k.words[3], k.words[4]), (0, 0, 0));
        assert_eq!((l.l2_len, l.l3, l.error), (14, None, None));
    }
}
