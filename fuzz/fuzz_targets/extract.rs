//! Fuzz target `extract`: any byte string as a received frame.
//!
//! Checks, on every input:
//! * `extract` does not panic, is deterministic, and its `Layers` are sane
//!   (offsets inside the frame, runt iff < 14 bytes, in_port kept);
//! * every read accessor of every view runs without panic wherever
//!   `check_len` passes — on the raw input and at the L2/L3/L4 offsets that
//!   extraction found;
//! * the in-place setters actions use (MACs, VLAN TCI, IPv4 TTL/TOS +
//!   checksum, IPv6 hop limit / traffic class, TCP/UDP ports) change exactly
//!   the key field they should when the frame is extracted again;
//! * the canonical form of the extracted key round-trips through
//!   `build_frame` + `extract`.

#![no_main]

use core::net::{Ipv4Addr, Ipv6Addr};
use dataplane::extract::{extract, Layers};
use dataplane::flow_key::{FlowKey, VLAN_CFI};
use dataplane::wire::builder::{build_frame, canonicalize};
use dataplane::wire::{
    ethernet, ipv6, ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, IgmpPacket,
    IpProtocol, Ipv4Packet, Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet, SctpPacket, TcpPacket,
    UdpPacket, VlanHeader,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut key = FlowKey::ZERO;
    let l = extract(data, 7, &mut key);
    check_layers(data, &key, &l);

    let mut again = FlowKey { words: [!0; 12] };
    assert_eq!(extract(data, 7, &mut again), l);
    assert_eq!(again, key);

    every_view(data);
    if !l.is_runt() {
        every_view(&data[usize::from(l.l2_len)..]);
    }
    if let Some(l3) = l.l3 {
        every_view(&data[usize::from(l3)..]);
    }
    if let Some(l4) = l.l4 {
        every_view(&data[usize::from(l4)..]);
    }

    rewrite_and_reextract(data, &key, &l);

    let canon = canonicalize(&key);
    let frame = build_frame(&canon, data.len() % 48);
    let mut back = FlowKey::ZERO;
    let bl = extract(&frame, canon.in_port(), &mut back);
    assert_eq!(back, canon, "canonical key does not round-trip");
    assert_eq!(bl.error, None);
});

fn check_layers(data: &[u8], key: &FlowKey, l: &Layers) {
    assert_eq!(key.in_port(), 7);
    assert_eq!(l.is_runt(), data.len() < ethernet::HEADER_LEN);
    assert!(usize::from(l.l2_len) <= data.len());
    assert!(l.vlan_tags <= 2);
    if let Some(l3) = l.l3 {
        assert_eq!(l3, l.l2_len);
    }
    if let Some(l4) = l.l4 {
        assert!(l.l3.is_some_and(|l3| l4 > l3) && usize::from(l4) <= data.len());
    }
    if let Some(e) = l.error {
        assert!(e.layer_start_offset as usize <= data.len());
        assert!(l.l4.is_none());
    }
    if l.is_runt() {
        let mut only_port = FlowKey::ZERO;
        only_port.set_in_port(7);
        assert_eq!(*key, only_port);
    }
}

/// Applies the rewrites actions perform, through the views, at the offsets
/// extraction reported, and checks that re-extraction sees exactly them.
fn rewrite_and_reextract(data: &[u8], key: &FlowKey, l: &Layers) {
    if l.is_runt() {
        return;
    }
    let mut buf = data.to_vec();
    let mut want = *key;

    let mut eth = EthernetFrame::new_checked(&mut buf[..]).unwrap();
    eth.set_src_addr([0x02, 1, 2, 3, 4, 5]);
    eth.set_dst_addr([0x02, 9, 8, 7, 6, 5]);
    want.set_dl_src([0x02, 1, 2, 3, 4, 5]);
    want.set_dl_dst([0x02, 9, 8, 7, 6, 5]);
    if l.vlan_tags >= 1 {
        let mut tag = VlanHeader::new_checked(&mut buf[14..]).unwrap();
        tag.set_vid(0x123);
        tag.set_pcp(5);
        want.set_vlan_tci(tag.tci() | VLAN_CFI);
    }
    if let Some(l3) = l.l3.map(usize::from) {
        match EtherType(key.dl_type()) {
            EtherType::IPV4 => {
                let mut ip = Ipv4Packet::new_checked(&mut buf[l3..]).unwrap();
                ip.set_ttl(key.nw_ttl().wrapping_sub(1));
                ip.set_tos(key.nw_tos() ^ 0x04);
                ip.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
                ip.fill_checksum();
                assert!(ip.verify_checksum());
                want.set_nw_ttl(key.nw_ttl().wrapping_sub(1));
                want.set_nw_tos(key.nw_tos() ^ 0x04);
                want.set_nw_src(Ipv4Addr::new(192, 0, 2, 1));
            }
            EtherType::IPV6 if key.nw_proto() != 0 => {
                // Only when the extension-header walk succeeded: a final
                // next header is never 0, and on failure OVS leaves hop
                // limit and traffic class out of the key.
                let mut ip = Ipv6Packet::new_checked(&mut buf[l3..]).unwrap();
                ip.set_hop_limit(key.nw_ttl().wrapping_add(3));
                ip.set_traffic_class(key.nw_tos() ^ 0x80);
                want.set_nw_ttl(key.nw_ttl().wrapping_add(3));
                want.set_nw_tos(key.nw_tos() ^ 0x80);
            }
            _ => {}
        }
    }
    if let Some(l4) = l.l4.map(usize::from) {
        match IpProtocol(key.nw_proto()) {
            IpProtocol::TCP => {
                let mut t = TcpPacket::new_checked(&mut buf[l4..]).unwrap();
                t.set_src_port(key.tp_src() ^ 0x5555);
                t.set_dst_port(4242);
                want.set_tp_src(key.tp_src() ^ 0x5555);
                want.set_tp_dst(4242);
            }
            IpProtocol::UDP => {
                let mut u = UdpPacket::new_checked(&mut buf[l4..]).unwrap();
                u.set_src_port(key.tp_src() ^ 0xaaaa);
                u.set_dst_port(53);
                want.set_tp_src(key.tp_src() ^ 0xaaaa);
                want.set_tp_dst(53);
            }
            _ => {}
        }
    }
    let mut got = FlowKey::ZERO;
    let gl = extract(&buf, 7, &mut got);
    assert_eq!(got, want, "rewrite changed other fields");
    assert_eq!((gl.l2_len, gl.l3, gl.l4), (l.l2_len, l.l3, l.l4));
}

/// Calls every read accessor of every view whose `check_len` passes.
fn every_view(b: &[u8]) {
    let mut sink = 0u64;
    let mut eat = |v: u64| sink ^= v;
    if let Ok(p) = EthernetFrame::new_checked(b) {
        eat(u64::from(p.dst_addr()[0]) ^ u64::from(p.src_addr()[5]) ^ u64::from(p.ethertype().0));
        eat(p.dst_addr_u64() ^ p.src_addr_u64() ^ p.payload().len() as u64);
    }
    if let Ok(p) = ethernet::LlcSnapHeader::new_checked(b) {
        eat(u64::from(p.dsap()) ^ u64::from(p.ssap()) ^ u64::from(p.control()));
        eat(u64::from(p.org()[2]) ^ u64::from(p.snap_type().0) ^ u64::from(p.is_snap_ethernet()));
        eat(p.payload().len() as u64);
    }
    if let Ok(p) = VlanHeader::new_checked(b) {
        eat(u64::from(p.tci()) ^ u64::from(p.pcp()) ^ u64::from(p.dei()) ^ u64::from(p.vid()));
        eat(u64::from(p.ethertype().0) ^ p.payload().len() as u64);
    }
    if let Ok(p) = ArpPacket::new_checked(b) {
        eat(u64::from(p.hardware_type()) ^ u64::from(p.protocol_type().0));
        eat(u64::from(p.hardware_len()) ^ u64::from(p.protocol_len()) ^ u64::from(p.operation()));
        eat(u64::from(p.is_ethernet_ipv4()) ^ u64::from(p.sha()[0]) ^ u64::from(p.tha()[5]));
        eat(u64::from(u32::from(p.spa())) ^ u64::from(u32::from(p.tpa())));
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        eat(u64::from(p.version()) ^ p.header_len() as u64 ^ u64::from(p.tos()));
        eat(u64::from(p.dscp()) ^ u64::from(p.ecn()) ^ u64::from(p.total_len()));
        eat(u64::from(p.ident()) ^ u64::from(p.flags_frag()) ^ u64::from(p.dont_frag()));
        eat(u64::from(p.more_frags()) ^ u64::from(p.frag_offset()) ^ u64::from(p.is_fragment()));
        eat(u64::from(p.is_later_fragment()) ^ u64::from(p.ttl()) ^ u64::from(p.protocol().0));
        eat(u64::from(p.checksum()) ^ u64::from(u32::from(p.src_addr())));
        eat(u64::from(u32::from(p.dst_addr())) ^ u64::from(p.addrs_u32().1));
        eat(p.options().len() as u64 ^ p.payload().len() as u64 ^ u64::from(p.verify_checksum()));
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        eat(u64::from(p.version()) ^ u64::from(p.traffic_class()) ^ u64::from(p.flow_label()));
        eat(u64::from(p.payload_len()) ^ u64::from(p.next_header().0) ^ u64::from(p.hop_limit()));
        eat(u128::from(p.src_addr()) as u64 ^ u128::from(p.dst_addr()) as u64);
        eat(p.src_addr_words().0 ^ p.dst_addr_words().1 ^ p.payload().len() as u64);
        if let Ok(w) = ipv6::walk_ext_headers(p.payload(), p.next_header()) {
            assert!(w.offset <= p.payload().len());
            assert!(w.is_fragment || !w.is_later_fragment);
            eat(u64::from(w.protocol.0) ^ w.frag.map_or(0, |f| u64::from(f.ident)));
        }
    }
    for kind in [IpProtocol::HOPOPTS, IpProtocol::ROUTING, IpProtocol::AH] {
        if let Ok(p) = Ipv6ExtHeader::new_checked(b, kind) {
            eat(u64::from(p.kind().0) ^ u64::from(p.next_header().0));
            eat(p.header_len() as u64 ^ p.data().len() as u64);
        }
    }
    if let Ok(p) = Ipv6FragmentHeader::new_checked(b) {
        eat(u64::from(p.next_header().0) ^ u64::from(p.offset_flags()));
        eat(u64::from(p.frag_offset()) ^ u64::from(p.more_frags()) ^ u64::from(p.ident()));
    }
    let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(p) = TcpPacket::new_checked(b) {
        eat(u64::from(p.src_port()) ^ u64::from(p.dst_port()) ^ u64::from(p.seq_number()));
        eat(u64::from(p.ack_number()) ^ p.header_len() as u64 ^ u64::from(p.flags()));
        eat(u64::from(p.window()) ^ u64::from(p.checksum()) ^ u64::from(p.urgent()));
        eat(p.options().len() as u64 ^ p.payload().len() as u64);
        eat(u64::from(p.verify_checksum_v4(s4, d4)) ^ u64::from(p.verify_checksum_v6(s6, d6)));
    }
    if let Ok(p) = UdpPacket::new_checked(b) {
        eat(u64::from(p.src_port()) ^ u64::from(p.dst_port()) ^ u64::from(p.len_field()));
        eat(u64::from(p.checksum()) ^ p.payload().len() as u64);
        eat(u64::from(p.verify_checksum_v4(s4, d4)) ^ u64::from(p.verify_checksum_v6(s6, d6)));
    }
    if let Ok(p) = SctpPacket::new_checked(b) {
        eat(u64::from(p.src_port()) ^ u64::from(p.dst_port()) ^ u64::from(p.verification_tag()));
        eat(u64::from(p.checksum()) ^ p.payload().len() as u64 ^ u64::from(p.verify_checksum()));
    }
    if let Ok(p) = IcmpPacket::new_checked(b) {
        eat(u64::from(p.msg_type()) ^ u64::from(p.code()) ^ u64::from(p.checksum()));
        eat(u64::from(p.rest_of_header())
            ^ p.payload().len() as u64
            ^ u64::from(p.verify_checksum()));
    }
    if let Ok(p) = IgmpPacket::new_checked(b) {
        eat(u64::from(p.msg_type()) ^ u64::from(p.code()) ^ u64::from(p.checksum()));
        eat(u64::from(u32::from(p.group_addr())) ^ u64::from(p.verify_checksum()));
    }
    if let Ok(p) = Icmpv6Packet::new_checked(b) {
        eat(u64::from(p.msg_type()) ^ u64::from(p.code()) ^ u64::from(p.checksum()));
        eat(u64::from(p.data_word()) ^ p.payload().len() as u64 ^ u64::from(p.is_nd()));
        eat(p.nd_target().map_or(0, |a| u128::from(a) as u64));
        for (kind, opt) in p.nd_options() {
            assert!(opt.len() >= 8 && opt.len() % 8 == 0);
            eat(u64::from(kind) ^ opt.len() as u64);
        }
        let (sll, tll) = p.nd_link_addrs();
        eat(u64::from(sll[0]) ^ u64::from(tll[5]) ^ u64::from(p.verify_checksum(s6, d6)));
    }
    std::hint::black_box(sink);
}
