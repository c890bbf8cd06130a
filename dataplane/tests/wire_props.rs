//! Property tests for the wire views, flow-key extraction and the frame
//! builder.
//!
//! * `extract` inverts `build_frame` for every consistent key, over VLAN tag
//!   counts, LLC/SNAP, IPv4 options and fragments, IPv6 extension headers
//!   and fragments, ARP/RARP, ICMP/ICMPv6 (ND), IGMP, SCTP and unknown
//!   ethertypes; the layer offsets point at the headers.
//! * Built frames are valid: IP and L4 checksums verify, lengths agree.
//! * Every truncation of a valid frame parses without panic into exactly the
//!   layers that fit (OVS semantics: an IP packet or ARP body is all or
//!   nothing).
//! * Random and mutated bytes never panic, and views never panic once
//!   `check_len` passed.

use core::net::{Ipv4Addr, Ipv6Addr};
use dataplane::extract::{extract, Layers};
use dataplane::flow_key::{FlowKey, FRAG_LATER, KEY_WORDS, VLAN_CFI};
use dataplane::wire::builder::{
    build_frame, build_frame_with, canonicalize, is_consistent, FrameOptions, Ipv6Ext,
};
use dataplane::wire::{
    self, ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, IgmpPacket, IpProtocol,
    Ipv4Packet, Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet, SctpPacket, TcpPacket, UdpPacket,
    VlanHeader,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const DL_TYPES: [u16; 9] = [
    0x0800, 0x0800, 0x86dd, 0x86dd, 0x0806, 0x8035, 0x05ff, 0x88cc, 0x8100,
];
const NW_PROTOS: [u8; 11] = [6, 17, 1, 2, 58, 132, 47, 44, 59, 0, 255];

prop_compose! {
    /// A consistent key: random words steered towards interesting
    /// dl_type / nw_proto / frag / VLAN combinations, then canonicalised.
    fn arb_key()(
        words in prop::array::uniform12(any::<u64>()),
        dl in prop::sample::select(&DL_TYPES[..]),
        other_dl in 0x0600u16..,
        use_other_dl in prop::bool::weighted(0.1),
        proto in prop::sample::select(&NW_PROTOS[..]),
        tags in 0usize..=2,
        frag in prop::sample::select(&[0u8, 0, 0, 1, 3][..]),
        nd in prop::bool::weighted(0.3),
    ) -> FlowKey {
        let mut k = FlowKey { words };
        k.set_dl_type(if use_other_dl { other_dl } else { dl });
        k.set_nw_proto(proto);
        k.set_nw_frag(frag);
        if tags == 0 {
            k.set_vlan_tci(0);
        } else {
            k.set_vlan_tci(k.vlan_tci() | VLAN_CFI);
        }
        if tags == 2 {
            k.set_vlan_tci2(k.vlan_tci2() | VLAN_CFI);
        } else {
            k.set_vlan_tci2(0);
        }
        if proto == 58 && nd {
            k.set_tp_src(135 + (k.tp_src() & 1));
            k.set_tp_dst(0);
        }
        canonicalize(&k)
    }
}

fn arb_ext() -> impl Strategy<Value = Ipv6Ext> {
    (0u8..4, 0u8..4).prop_map(|(kind, len)| match kind {
        0 => Ipv6Ext::HopByHop(len),
        1 => Ipv6Ext::Routing(len),
        2 => Ipv6Ext::DestOpts(len),
        _ => Ipv6Ext::Ah(len),
    })
}

prop_compose! {
    fn arb_opts()(
        outer in prop::sample::select(&[None, Some(EtherType::VLAN), Some(EtherType::QINQ)][..]),
        inner in prop::sample::select(&[EtherType::VLAN, EtherType::QINQ][..]),
        llc_snap in prop::bool::weighted(0.15),
        ip4_opts in 0usize..=10,
        tcp_opts in 0usize..=10,
        ipv6_ext in prop::collection::vec(arb_ext(), 0..4),
        pad_to_min in any::<bool>(),
    ) -> FrameOptions {
        FrameOptions {
            outer_tpid: outer,
            inner_tpid: inner,
            llc_snap,
            ipv4_options_len: ip4_opts * 4,
            tcp_options_len: tcp_opts * 4,
            ipv6_ext,
            pad_to_min,
        }
    }
}

fn run(frame: &[u8], in_port: u32) -> (FlowKey, Layers) {
    let mut k = FlowKey {
        words: [0xa5a5_a5a5_a5a5_a5a5; KEY_WORDS],
    };
    let l = extract(frame, in_port, &mut k);
    (k, l)
}

/// The key with every field above L2 (and `dl_type`, the VLAN tags)
/// cleared: what a frame cut inside L3 extracts to.
fn l2_only(k: &FlowKey) -> FlowKey {
    let mut o = FlowKey::ZERO;
    o.set_in_port(k.in_port());
    o.set_dl_src(k.dl_src());
    o.set_dl_dst(k.dl_dst());
    o.set_dl_type(k.dl_type());
    o.set_vlan_tci(k.vlan_tci());
    o.set_vlan_tci2(k.vlan_tci2());
    o
}

/// Where the L3 body of a fully parsed frame ends (IP total length, ARP's
/// 28 bytes), or the L2 length when there is no parsed L3.
fn l3_end(frame: &[u8], key: &FlowKey, l: &Layers) -> usize {
    let Some(l3) = l.l3.map(usize::from) else {
        return usize::from(l.l2_len);
    };
    match EtherType(key.dl_type()) {
        EtherType::IPV4 => l3 + usize::from(Ipv4Packet::new_unchecked(&frame[l3..]).total_len()),
        EtherType::IPV6 => {
            l3 + 40 + usize::from(Ipv6Packet::new_unchecked(&frame[l3..]).payload_len())
        }
        _ => l3 + wire::arp::HEADER_LEN,
    }
}

/// 512 cases unless `PROPTEST_CASES` says otherwise; failures are kept in
/// `dataplane/proptest-regressions/wire_props.txt` (cargo runs integration
/// tests from the package directory) and replayed first on every run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/wire_props.txt",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn extract_inverts_build_frame_for_consistent_keys(
        key in arb_key(),
        opts in arb_opts(),
        payload_len in 0usize..64,
    ) {
        prop_assert!(is_consistent(&key));
        let frame = build_frame_with(&key, payload_len, &opts);
        let (got, l) = run(&frame, key.in_port());
        prop_assert_eq!(got, key, "frame {:02x?}", frame);
        prop_assert_eq!(l.error, None);
        let tags = usize::from(key.vlan_tci() != 0) + usize::from(key.vlan_tci2() != 0);
        prop_assert_eq!(usize::from(l.vlan_tags), tags);
        let snap = if opts.llc_snap && key.dl_type() != 0x05ff { 8 } else { 0 };
        prop_assert_eq!(usize::from(l.l2_len), 14 + 4 * tags + snap);

        // The layer offsets point at the headers the key came from.
        let dl = EtherType(key.dl_type());
        let is_l3 = matches!(dl, EtherType::IPV4 | EtherType::IPV6 | EtherType::ARP | EtherType::RARP);
        prop_assert_eq!(l.l3, is_l3.then_some(l.l2_len));
        if let Some(l3) = l.l3 {
            let b = &frame[usize::from(l3)..];
            match dl {
                EtherType::IPV4 => prop_assert_eq!(Ipv4Packet::new_checked(b).unwrap().src_addr(), key.nw_src()),
                EtherType::IPV6 => prop_assert_eq!(Ipv6Packet::new_checked(b).unwrap().dst_addr(), key.ipv6_dst()),
                _ => prop_assert_eq!(ArpPacket::new_checked(b).unwrap().tpa(), key.nw_dst()),
            }
        }
        let l4_proto = matches!(key.nw_proto(), 1 | 2 | 6 | 17 | 58 | 132);
        let expect_l4 = (dl == EtherType::IPV4 || dl == EtherType::IPV6)
            && key.nw_frag() & FRAG_LATER == 0
            && l4_proto;
        prop_assert_eq!(l.l4.is_some(), expect_l4);
        if let Some(l4) = l.l4 {
            let b = &frame[usize::from(l4)..];
            let first = if matches!(key.nw_proto(), 6 | 17 | 132) {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from(b[0])
            };
            prop_assert_eq!(first, key.tp_src());
        }
    }

    #[test]
    fn built_frames_have_valid_lengths_and_checksums(
        key in arb_key(),
        opts in arb_opts(),
        payload_len in 0usize..64,
    ) {
        let frame = build_frame_with(&key, payload_len, &opts);
        if opts.pad_to_min {
            prop_assert!(frame.len() >= 60);
        }
        let (_, l) = run(&frame, 0);
        let dl = EtherType(key.dl_type());
        let mut pseudo4 = None;
        let mut pseudo6 = None;
        let mut l4_end = frame.len();
        if let Some(l3) = l.l3.map(usize::from) {
            match dl {
                EtherType::IPV4 => {
                    let ip = Ipv4Packet::new_checked(&frame[l3..]).unwrap();
                    prop_assert!(ip.verify_checksum());
                    prop_assert_eq!(ip.version(), 4);
                    prop_assert_eq!(ip.header_len(), 20 + opts.ipv4_options_len);
                    pseudo4 = Some((ip.src_addr(), ip.dst_addr()));
                    l4_end = l3 + usize::from(ip.total_len());
                }
                EtherType::IPV6 => {
                    let ip = Ipv6Packet::new_checked(&frame[l3..]).unwrap();
                    prop_assert_eq!(ip.version(), 6);
                    pseudo6 = Some((ip.src_addr(), ip.dst_addr()));
                    l4_end = l3 + 40 + usize::from(ip.payload_len());
                }
                _ => {}
            }
        }
        if let Some(l4) = l.l4.map(usize::from) {
            let seg = &frame[l4..l4_end];
            let ok = match (key.nw_proto(), pseudo4, pseudo6) {
                (6, Some((s, d)), _) => TcpPacket::new_checked(seg).unwrap().verify_checksum_v4(s, d),
                (6, _, Some((s, d))) => TcpPacket::new_checked(seg).unwrap().verify_checksum_v6(s, d),
                (17, Some((s, d)), _) => {
                    let u = UdpPacket::new_checked(seg).unwrap();
                    usize::from(u.len_field()) == seg.len() && u.checksum() != 0 && u.verify_checksum_v4(s, d)
                }
                (17, _, Some((s, d))) => {
                    let u = UdpPacket::new_checked(seg).unwrap();
                    usize::from(u.len_field()) == seg.len() && u.verify_checksum_v6(s, d)
                }
                (132, _, _) => SctpPacket::new_checked(seg).unwrap().verify_checksum(),
                (1, _, _) => IcmpPacket::new_checked(seg).unwrap().verify_checksum(),
                (2, _, _) => IgmpPacket::new_checked(seg).unwrap().verify_checksum(),
                (58, _, Some((s, d))) => Icmpv6Packet::new_checked(seg).unwrap().verify_checksum(s, d),
                _ => true,
            };
            prop_assert!(ok, "bad L4 checksum in {:02x?}", frame);
        }
    }

    #[test]
    fn every_truncation_parses_to_the_layers_that_fit(
        key in arb_key(),
        opts in arb_opts(),
        payload_len in 0usize..40,
    ) {
        let frame = build_frame_with(&key, payload_len, &opts);
        let (full, fl) = run(&frame, 9);
        let l2_end = usize::from(fl.l2_len);
        let end = l3_end(&frame, &full, &fl);
        let is_l3 = fl.l3.is_some();
        for t in 0..=frame.len() {
            let (k, l) = run(&frame[..t], 9);
            if t < 14 {
                let mut want = FlowKey::ZERO;
                want.set_in_port(9);
                prop_assert_eq!(k, want);
                prop_assert!(l.is_runt());
                prop_assert!(l.error.is_some());
            } else if t < l2_end {
                // Cut inside the VLAN tags or the LLC/SNAP header: the
                // addresses and the tags that fit, dl_type a TPID or 0x05ff.
                prop_assert!(!l.is_runt());
                prop_assert_eq!((k.dl_src(), k.dl_dst()), (full.dl_src(), full.dl_dst()));
                prop_assert!(l.vlan_tags <= fl.vlan_tags);
                prop_assert_eq!(k.vlan_tci(), if l.vlan_tags >= 1 { full.vlan_tci() } else { 0 });
                prop_assert_eq!(k.vlan_tci2(), if l.vlan_tags >= 2 { full.vlan_tci2() } else { 0 });
                let dl = EtherType(k.dl_type());
                prop_assert!(dl.is_vlan() || dl == EtherType::NONE, "dl_type {:#x}", dl.0);
                prop_assert_eq!(k, l2_only(&k));
            } else if t < end {
                prop_assert_eq!(k, l2_only(&full));
                prop_assert_eq!(l.l2_len, fl.l2_len);
                prop_assert_eq!((l.l3, l.l4), (None, None));
                prop_assert!(!is_l3 || l.error.is_some());
            } else {
                prop_assert_eq!(k, full);
                prop_assert_eq!(l, fl);
            }
        }
    }

    #[test]
    fn canonicalize_is_idempotent(words in prop::array::uniform12(any::<u64>())) {
        let c = canonicalize(&FlowKey { words });
        prop_assert!(is_consistent(&c));
        prop_assert_eq!(canonicalize(&c), c);
    }

    #[test]
    fn canonical_random_keys_round_trip(words in prop::array::uniform12(any::<u64>()), payload_len in 0usize..32) {
        // Fully random words (mostly unknown ethertypes, odd VLAN bits).
        let key = canonicalize(&FlowKey { words });
        let (got, l) = run(&build_frame(&key, payload_len), key.in_port());
        prop_assert_eq!(got, key);
        prop_assert_eq!(l.error, None);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let (k, l) = run(&bytes, 3);
        prop_assert_eq!(k.in_port(), 3);
        prop_assert_eq!(l.is_runt(), bytes.len() < 14);
        every_view_accessor(&bytes);
    }

    #[test]
    fn random_l3_after_real_l2_never_panics(
        dl in prop::sample::select(&[0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x0040][..]),
        first in prop::sample::select(&[0x45u8, 0x4f, 0x44, 0x60, 0x00, 0xaa][..]),
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&dl.to_be_bytes());
        f.push(first);
        f.extend_from_slice(&body);
        let (k, l) = run(&f, 1);
        prop_assert_eq!(k.dl_src(), [2, 0, 0, 0, 0, 2]);
        prop_assert!(usize::from(l.l2_len) <= f.len());
        if let Some(l3) = l.l3 { prop_assert!(usize::from(l3) < f.len()); }
        if let Some(l4) = l.l4 { prop_assert!(usize::from(l4) <= f.len()); }
        every_view_accessor(&f[14..]);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        key in arb_key(),
        opts in arb_opts(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut frame = build_frame_with(&key, 16, &opts);
        for (i, v) in edits {
            let at = i.index(frame.len());
            frame[at] = v;
        }
        let (k, l) = run(&frame, 5);
        prop_assert_eq!(k.dl_dst(), [frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]]);
        if let Some(e) = l.error {
            prop_assert!(e.layer_start_offset as usize <= frame.len());
        }
        every_view_accessor(&frame);
    }
}

/// Calls every read accessor of every view whose `check_len` passes on
/// `b` (a panic fails the test).
fn every_view_accessor(b: &[u8]) {
    let mut sink = 0u64;
    let mut eat = |v: u64| sink = sink.wrapping_add(v);
    if let Ok(p) = EthernetFrame::new_checked(b) {
        eat(p.dst_addr()[0] as u64 ^ p.src_addr()[5] as u64 ^ p.ethertype().0 as u64);
        eat(p.payload().len() as u64);
    }
    if let Ok(p) = wire::ethernet::LlcSnapHeader::new_checked(b) {
        eat(p.dsap() as u64 ^ p.ssap() as u64 ^ p.control() as u64 ^ p.org()[0] as u64);
        eat(p.snap_type().0 as u64 ^ p.is_snap_ethernet() as u64 ^ p.payload().len() as u64);
    }
    if let Ok(p) = VlanHeader::new_checked(b) {
        eat(p.tci() as u64 ^ p.pcp() as u64 ^ p.dei() as u64 ^ p.vid() as u64);
        eat(p.ethertype().0 as u64 ^ p.payload().len() as u64);
    }
    if let Ok(p) = ArpPacket::new_checked(b) {
        eat(p.hardware_type() as u64 ^ p.protocol_type().0 as u64 ^ p.hardware_len() as u64);
        eat(p.protocol_len() as u64 ^ p.operation() as u64 ^ p.is_ethernet_ipv4() as u64);
        eat(p.sha()[0] as u64
            ^ u32::from(p.spa()) as u64
            ^ p.tha()[0] as u64
            ^ u32::from(p.tpa()) as u64);
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        eat(p.version() as u64
            ^ p.header_len() as u64
            ^ p.tos() as u64
            ^ p.dscp() as u64
            ^ p.ecn() as u64);
        eat(p.total_len() as u64 ^ p.ident() as u64 ^ p.flags_frag() as u64 ^ p.dont_frag() as u64);
        eat(p.more_frags() as u64
            ^ p.frag_offset() as u64
            ^ p.is_fragment() as u64
            ^ p.is_later_fragment() as u64);
        eat(p.ttl() as u64
            ^ p.protocol().0 as u64
            ^ p.checksum() as u64
            ^ u32::from(p.src_addr()) as u64);
        eat(u32::from(p.dst_addr()) as u64 ^ p.addrs_u32().0 as u64 ^ p.options().len() as u64);
        eat(p.payload().len() as u64 ^ p.verify_checksum() as u64);
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        eat(p.version() as u64
            ^ p.traffic_class() as u64
            ^ p.flow_label() as u64
            ^ p.payload_len() as u64);
        eat(p.next_header().0 as u64 ^ p.hop_limit() as u64 ^ u128::from(p.src_addr()) as u64);
        eat(u128::from(p.dst_addr()) as u64 ^ p.src_addr_words().0 ^ p.dst_addr_words().1);
        eat(p.payload().len() as u64);
        if let Ok(w) = wire::ipv6::walk_ext_headers(p.payload(), p.next_header()) {
            assert!(w.offset <= p.payload().len());
        }
    }
    for kind in [IpProtocol::HOPOPTS, IpProtocol::AH] {
        if let Ok(p) = Ipv6ExtHeader::new_checked(b, kind) {
            eat(p.kind().0 as u64
                ^ p.next_header().0 as u64
                ^ p.header_len() as u64
                ^ p.data().len() as u64);
        }
    }
    if let Ok(p) = Ipv6FragmentHeader::new_checked(b) {
        eat(p.next_header().0 as u64 ^ p.offset_flags() as u64 ^ p.frag_offset() as u64);
        eat(p.more_frags() as u64 ^ p.ident() as u64);
    }
    let (s4, d4) = (Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8));
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(p) = TcpPacket::new_checked(b) {
        eat(p.src_port() as u64
            ^ p.dst_port() as u64
            ^ p.seq_number() as u64
            ^ p.ack_number() as u64);
        eat(p.header_len() as u64 ^ p.flags() as u64 ^ p.window() as u64 ^ p.checksum() as u64);
        eat(p.urgent() as u64 ^ p.options().len() as u64 ^ p.payload().len() as u64);
        eat(p.verify_checksum_v4(s4, d4) as u64 ^ p.verify_checksum_v6(s6, d6) as u64);
    }
    if let Ok(p) = UdpPacket::new_checked(b) {
        eat(p.src_port() as u64 ^ p.dst_port() as u64 ^ p.len_field() as u64 ^ p.checksum() as u64);
        eat(p.payload().len() as u64
            ^ p.verify_checksum_v4(s4, d4) as u64
            ^ p.verify_checksum_v6(s6, d6) as u64);
    }
    if let Ok(p) = SctpPacket::new_checked(b) {
        eat(p.src_port() as u64
            ^ p.dst_port() as u64
            ^ p.verification_tag() as u64
            ^ p.checksum() as u64);
        eat(p.payload().len() as u64 ^ p.verify_checksum() as u64);
    }
    if let Ok(p) = IcmpPacket::new_checked(b) {
        eat(p.msg_type() as u64
            ^ p.code() as u64
            ^ p.checksum() as u64
            ^ p.rest_of_header() as u64);
        eat(p.payload().len() as u64 ^ p.verify_checksum() as u64);
    }
    if let Ok(p) = IgmpPacket::new_checked(b) {
        eat(p.msg_type() as u64
            ^ p.code() as u64
            ^ p.checksum() as u64
            ^ u32::from(p.group_addr()) as u64);
        eat(p.verify_checksum() as u64);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(b) {
        eat(p.msg_type() as u64 ^ p.code() as u64 ^ p.checksum() as u64 ^ p.data_word() as u64);
        eat(p.payload().len() as u64 ^ p.is_nd() as u64 ^ p.nd_target().is_some() as u64);
        eat(p
            .nd_options()
            .map(|(t, o)| t as u64 ^ o.len() as u64)
            .sum::<u64>());
        eat(p.nd_link_addrs().0[0] as u64 ^ p.verify_checksum(s6, d6) as u64);
    }
    std::hint::black_box(sink);
}

#[test]
fn helpers_build_the_frames_they_name() {
    use dataplane::wire::builder::{arp, icmp4_echo, tcp4, tcp6, udp4, udp6, with_vlan};
    let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (s6, d6): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());

    let f = udp4(a, b, s4, d4, 1000, 2000, 18);
    assert_eq!(f.len(), 60, "14 + 20 + 8 + 18");
    let (k, _) = run(&f, 1);
    assert_eq!((k.dl_src(), k.dl_dst(), k.dl_type()), (a, b, 0x0800));
    assert_eq!(
        (k.nw_src(), k.nw_dst(), k.nw_proto(), k.nw_ttl()),
        (s4, d4, 17, 64)
    );
    assert_eq!((k.tp_src(), k.tp_dst()), (1000, 2000));

    let (k, _) = run(&tcp4(a, b, s4, d4, 22, 33, 0), 1);
    assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (6, 22, 33));
    let (k, _) = run(&icmp4_echo(a, b, s4, d4, 8), 1);
    assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (1, 8, 0));
    let (k, _) = run(&udp6(a, b, s6, d6, 546, 547, 4), 1);
    assert_eq!((k.dl_type(), k.ipv6_src(), k.ipv6_dst()), (0x86dd, s6, d6));
    assert_eq!(
        (k.nw_proto(), k.tp_src(), k.tp_dst(), k.nw_ttl()),
        (17, 546, 547, 64)
    );
    let (k, _) = run(&tcp6(a, b, s6, d6, 80, 443, 0), 1);
    assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (6, 80, 443));
    let (k, _) = run(&arp(1, a, s4, [0xff; 6], [0; 6], d4), 1);
    assert_eq!(
        (k.dl_type(), k.nw_proto(), k.nw_src(), k.nw_dst()),
        (0x0806, 1, s4, d4)
    );
    assert_eq!((k.arp_sha(), k.dl_dst()), (a, [0xff; 6]));

    let tagged = with_vlan(&udp4(a, b, s4, d4, 1, 2, 0), 0x2064);
    let (k, l) = run(&tagged, 1);
    assert_eq!(
        (k.vlan_tci(), k.dl_vlan(), k.dl_type()),
        (0x3064, Some(100), 0x0800)
    );
    assert_eq!((l.vlan_tags, l.l3, l.l4), (1, Some(18), Some(38)));
}

#[test]
fn inconsistent_keys_are_recognised() {
    let base = canonicalize(&FlowKey::ZERO);
    assert!(is_consistent(&base));
    let mut k = base;
    k.set_vlan_tci(0x0064); // tag without the CFI "present" bit
    assert!(!is_consistent(&k));
    let mut k = base;
    k.set_dl_type(0x0800);
    k.set_nw_frag(FRAG_LATER); // LATER without ANY
    assert!(!is_consistent(&k));
    let mut k = base;
    k.set_dl_type(0x0800);
    k.set_nw_proto(6);
    k.set_nw_frag(3);
    k.set_tp_src(80); // a later fragment has no ports
    assert!(!is_consistent(&k));
    let mut k = base;
    k.set_dl_type(0x86dd);
    k.set_nw_proto(43); // routing header cannot be the final header
    assert!(!is_consistent(&k));
    let mut k = base;
    k.set_dl_type(0x88cc);
    k.set_nw_src(Ipv4Addr::new(1, 1, 1, 1)); // no L3 in LLDP
    assert!(!is_consistent(&k));
    let mut k = base;
    k.set_dl_type(0x0800);
    k.set_nw_proto(1);
    k.set_tp_src(300); // ICMP type is 8 bits
    assert!(!is_consistent(&k));
    let mut k = base;
    k.words[4] |= 1 << 60; // a bit outside every field
    assert!(!is_consistent(&k));
}
