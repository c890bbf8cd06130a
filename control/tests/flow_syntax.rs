//! The ovs-ofctl flow syntax: table-driven good and bad cases, real flow
//! file lines, dump-flows round trips, filters, trace packets, properties
//! (print → parse is the identity on valid rules; no input panics), and —
//! when `ovs-ofctl` is installed — byte-for-byte agreement with its printer.

use control::flow_syntax::{
    check_match, check_rule, format_actions, format_dump_flow, format_flow, format_match,
    no_port_names, parse_flow, parse_flow_filter, parse_packet, ErrorKind, FlowStats,
    FlowSyntaxError, MAX_PORT,
};
use core::net::Ipv4Addr;
use core::time::Duration;
use dataplane::actions::Action;
use dataplane::classifier::{RuleSpec, DEFAULT_PRIORITY};
use dataplane::flow_key::{ethertype, field, ipproto, FlowKey, FlowMatch, PortNo, VLAN_CFI};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ports(name: &str) -> Option<PortNo> {
    match name {
        "p1" => Some(1),
        "p2" => Some(2),
        "veth-a" => Some(7),
        "huge" => Some(70_000),
        _ => None,
    }
}

fn flow(s: &str) -> RuleSpec {
    parse_flow(s, &ports).unwrap_or_else(|e| panic!("{}", e.render(s)))
}

fn flow_err(s: &str) -> FlowSyntaxError {
    match parse_flow(s, &ports) {
        Ok(r) => panic!("{s:?} parsed as {r:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Good cases: input → canonical add-flow text (what ovs-ofctl prints for it).
// ---------------------------------------------------------------------------

#[test]
fn good_flows_print_in_ovs_canonical_form() {
    let cases: &[(&str, &str)] = &[
        (
            "priority=100,in_port=1,ip,nw_dst=10.0.0.0/24,actions=output:2",
            "priority=100,ip,in_port=1,nw_dst=10.0.0.0/24,actions=output:2",
        ),
        ("actions=drop", "actions=drop"),
        ("actions=", "actions=drop"),
        ("actions=drop,drop", "actions=drop"),
        ("in_port=p1,actions=output:p2", "in_port=1,actions=output:2"),
        ("in_port=veth-a,actions=p1,3", "in_port=7,actions=output:1,output:3"),
        ("in_port=1 actions=drop", "in_port=1,actions=drop"),
        ("in_port=1, ip actions=drop", "ip,in_port=1,actions=drop"),
        ("  ip ,\t nw_src=1.2.3.4 actions=NORMAL", "ip,nw_src=1.2.3.4,actions=NORMAL"),
        ("table=0,priority=100,arp,actions=NORMAL", "priority=100,arp,actions=NORMAL"),
        (
            "actions=Output:2,MOD_DL_SRC:00:11:22:33:44:55,Normal",
            "actions=output:2,mod_dl_src:00:11:22:33:44:55,NORMAL",
        ),
        ("actions=in_port,flood,all", "actions=IN_PORT,FLOOD,ALL"),
        ("actions=output:in_port,output:NORMAL", "actions=IN_PORT,NORMAL"),
        // Shorthands replace dl_type / nw_proto.
        ("dl_type=0x0800,nw_proto=6,actions=drop", "tcp,actions=drop"),
        ("dl_type=0x800,actions=drop", "ip,actions=drop"),
        ("ip,nw_proto=0x11,actions=drop", "udp,actions=drop"),
        ("ip,nw_proto=6,tp_dst=22,actions=drop", "tcp,tp_dst=22,actions=drop"),
        ("tcp,nw_proto=6,actions=drop", "tcp,actions=drop"),
        ("ipv6,nw_proto=132,actions=drop", "sctp6,actions=drop"),
        ("ipv6,nw_proto=58,actions=drop", "icmp6,actions=drop"),
        ("icmpv6,actions=drop", "icmp6,actions=drop"),
        ("ip,nw_proto=2,actions=drop", "ip,nw_proto=2,actions=drop"),
        ("ipv6,nw_proto=47,actions=drop", "ipv6,nw_proto=47,actions=drop"),
        ("dl_type=0x8035,actions=drop", "rarp,actions=drop"),
        ("dl_type=0x8847,actions=drop", "mpls,actions=drop"),
        ("dl_type=0x1234,actions=drop", "dl_type=0x1234,actions=drop"),
        // L4 fields and their aliases.
        ("tcp,tp_src=80,actions=drop", "tcp,tp_src=80,actions=drop"),
        ("tcp,tcp_dst=0x1000/0xf000,actions=drop", "tcp,tp_dst=0x1000/0xf000,actions=drop"),
        ("tcp,tp_src=80/0xffff,actions=drop", "tcp,tp_src=80,actions=drop"),
        ("tcp,tp_src=0/0,actions=drop", "tcp,actions=drop"),
        ("udp6,udp_src=53,actions=drop", "udp6,tp_src=53,actions=drop"),
        ("sctp,sctp_dst=9,actions=drop", "sctp,tp_dst=9,actions=drop"),
        ("icmp,icmp_type=3,icmp_code=1,actions=drop", "icmp,icmp_type=3,icmp_code=1,actions=drop"),
        ("icmp,tp_src=3,actions=drop", "icmp,icmp_type=3,actions=drop"),
        ("icmp6,icmpv6_type=135,actions=drop", "icmp6,icmp_type=135,actions=drop"),
        ("icmp6,icmp_code=3,actions=drop", "icmp6,icmp_code=3,actions=drop"),
        // IPv4 masks: normalised, CIDR when a prefix.
        ("ip,nw_src=10.0.0.1/8,actions=drop", "ip,nw_src=10.0.0.0/8,actions=drop"),
        (
            "ip,nw_dst=10.0.0.0/255.255.255.0,actions=drop",
            "ip,nw_dst=10.0.0.0/24,actions=drop",
        ),
        (
            "ip,nw_src=10.0.0.1/255.0.255.0,actions=drop",
            "ip,nw_src=10.0.0.0/255.0.255.0,actions=drop",
        ),
        ("ip,nw_src=0.0.0.0/0,actions=drop", "ip,actions=drop"),
        ("ip,ip_src=1.2.3.4/32,actions=drop", "ip,nw_src=1.2.3.4,actions=drop"),
        // ARP fields share nw_src/nw_dst/nw_proto.
        (
            "arp,arp_spa=10.0.0.0/8,arp_op=1,actions=NORMAL",
            "arp,arp_spa=10.0.0.0/8,arp_op=1,actions=NORMAL",
        ),
        ("arp,nw_src=1.2.3.4,actions=drop", "arp,arp_spa=1.2.3.4,actions=drop"),
        ("arp,nw_proto=2,actions=drop", "arp,arp_op=2,actions=drop"),
        ("dl_type=0x0806,arp_tpa=1.2.3.4,actions=drop", "arp,arp_tpa=1.2.3.4,actions=drop"),
        (
            "arp,arp_sha=00:11:22:33:44:55/ff:ff:ff:00:00:00,arp_tha=0:1:2:3:4:5,actions=drop",
            "arp,arp_sha=00:11:22:00:00:00/ff:ff:ff:00:00:00,arp_tha=00:01:02:03:04:05,actions=drop",
        ),
        // Ethernet.
        (
            "dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
            "dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
        ),
        ("eth_dst=FF:FF:FF:FF:FF:FF,actions=drop", "dl_dst=ff:ff:ff:ff:ff:ff,actions=drop"),
        ("dl_dst=ff:ff:ff:ff:ff:ff/00:00:00:00:00:00,actions=drop", "actions=drop"),
        // VLANs: dl_vlan / dl_vlan_pcp are masks over vlan_tci with CFI.
        ("dl_vlan=0xffff,actions=drop", "vlan_tci=0x0000,actions=drop"),
        ("dl_vlan=0,actions=drop", "dl_vlan=0,actions=drop"),
        ("dl_vlan=4095,actions=drop", "dl_vlan=4095,actions=drop"),
        ("dl_vlan=10,dl_vlan_pcp=3,actions=strip_vlan,output:3", "dl_vlan=10,dl_vlan_pcp=3,actions=strip_vlan,output:3"),
        ("dl_vlan_pcp=3,actions=drop", "dl_vlan_pcp=3,actions=drop"),
        ("vlan_tci=0x1000/0x1000,actions=drop", "vlan_tci=0x1000/0x1000,actions=drop"),
        ("vlan_tci=0x1234/0x1fff,actions=drop", "dl_vlan=564,actions=drop"),
        ("vlan_tci=0x7000/0xf000,actions=drop", "dl_vlan_pcp=3,actions=drop"),
        ("vlan_tci=0x6000/0xe000,actions=drop", "vlan_tci=0x6000/0xe000,actions=drop"),
        ("vlan_tci=0x0000/0x1fff,actions=drop", "vlan_tci=0x0000/0x1fff,actions=drop"),
        ("vlan_tci=0xf123,actions=drop", "dl_vlan=291,dl_vlan_pcp=7,actions=drop"),
        // TOS: nw_tos is the DSCP bits, ip_dscp the DSCP value, nw_ecn the low bits.
        ("ip,nw_tos=0xfc,actions=drop", "ip,nw_tos=252,actions=drop"),
        ("ip,ip_dscp=10,actions=drop", "ip,nw_tos=40,actions=drop"),
        ("ip,ip_ecn=1,actions=drop", "ip,nw_ecn=1,actions=drop"),
        (
            "ip,nw_ecn=3,nw_ttl=5,nw_frag=later,actions=drop",
            "ip,nw_ecn=3,nw_ttl=5,nw_frag=later,actions=drop",
        ),
        ("ip,nw_frag=no,actions=drop", "ip,nw_frag=no,actions=drop"),
        ("ip,nw_frag=yes,actions=drop", "ip,nw_frag=yes,actions=drop"),
        ("ip,nw_frag=first,actions=drop", "ip,nw_frag=first,actions=drop"),
        ("ip,nw_frag=not_later,actions=drop", "ip,nw_frag=not_later,actions=drop"),
        ("ipv6,ip_frag=later,actions=drop", "ipv6,nw_frag=later,actions=drop"),
        // IPv6.
        (
            "ipv6,ipv6_src=2001:db8::/32,ipv6_label=0x12345,actions=IN_PORT",
            "ipv6,ipv6_src=2001:db8::/32,ipv6_label=0x12345,actions=IN_PORT",
        ),
        (
            "ipv6,ipv6_src=2001:db8::1/ffff::ffff,actions=drop",
            "ipv6,ipv6_src=2001::1/ffff::ffff,actions=drop",
        ),
        (
            "ipv6,ipv6_src=2001:db8::1,ipv6_dst=::1/128,actions=drop",
            "ipv6,ipv6_src=2001:db8::1,ipv6_dst=::1,actions=drop",
        ),
        (
            "ipv6,ipv6_src=::ffff:1.2.3.4,ipv6_dst=::1.2.3.4,actions=drop",
            "ipv6,ipv6_src=::ffff:1.2.3.4,ipv6_dst=::1.2.3.4,actions=drop",
        ),
        (
            "ipv6,ipv6_label=0x12345/0xf0000,actions=drop",
            "ipv6,ipv6_label=0x10000/0xf0000,actions=drop",
        ),
        ("tcp6,ipv6_label=5,actions=drop", "tcp6,ipv6_label=0x00005,actions=drop"),
        // Metadata.
        ("priority=0x10,actions=drop", "priority=16,actions=drop"),
        ("priority=32768,actions=drop", "actions=drop"),
        (
            "cookie=0x10,idle_timeout=5,hard_timeout=7,table=0,actions=drop",
            "cookie=0x10,idle_timeout=5,hard_timeout=7,actions=drop",
        ),
        (
            "duration=1.2s,n_packets=5,n_bytes=6,idle_age=3,hard_age=4,reset_counts,actions=drop",
            "actions=drop",
        ),
        // Actions.
        (
            "actions=push_vlan:0x88a8,mod_vlan_vid:5,mod_vlan_pcp:7,strip_vlan,pop_vlan,dec_ttl",
            "actions=push_vlan:0x88a8,mod_vlan_vid:5,mod_vlan_pcp:7,strip_vlan,strip_vlan,dec_ttl",
        ),
        (
            "actions=mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:8,mod_tp_src:1,mod_tp_dst:65535",
            "actions=mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:8,mod_tp_src:1,mod_tp_dst:65535",
        ),
        ("actions=push_vlan:33024", "actions=push_vlan:0x8100"),
        (
            "ip,actions=set_field:1.2.3.4->ip_src,set_field:00:11:22:33:44:55->eth_dst,set_field:10->ip_dscp",
            "ip,actions=mod_nw_src:1.2.3.4,mod_dl_dst:00:11:22:33:44:55,mod_nw_tos:40",
        ),
        (
            "dl_vlan=3,actions=set_field:5->vlan_vid,set_field:2->vlan_pcp",
            "dl_vlan=3,actions=mod_vlan_vid:5,mod_vlan_pcp:2",
        ),
        (
            "vlan_tci=0x1000/0x1000,actions=set_field:4101->vlan_vid",
            "vlan_tci=0x1000/0x1000,actions=mod_vlan_vid:5",
        ),
        ("tcp,actions=set_field:80->tcp_src,set_field:81->tp_dst", "tcp,actions=mod_tp_src:80,mod_tp_dst:81"),
        ("udp6,actions=set_field:53->udp_dst", "udp6,actions=mod_tp_dst:53"),
        ("ipv6,actions=set_field:8->nw_tos", "ipv6,actions=mod_nw_tos:8"),
        ("actions=set_field:00:00:00:00:00:01->dl_src", "actions=mod_dl_src:00:00:00:00:00:01"),
        // An action string may be separated by spaces, and `action=` works.
        ("ip action=output:1 output:2", "ip,actions=output:1,output:2"),
    ];
    for (input, want) in cases {
        let rule = flow(input);
        assert_eq!(format_flow(&rule), *want, "input {input:?}");
        assert!(
            check_rule(&rule).is_ok(),
            "{input:?}: {:?}",
            check_rule(&rule)
        );
        // The canonical text is a fixpoint.
        assert_eq!(flow(want), rule, "canonical text {want:?}");
    }
}

#[test]
fn parsed_flow_lands_in_the_documented_key_fields() {
    let r = flow(
        "cookie=0xabc,idle_timeout=10,hard_timeout=20,priority=100,in_port=1,dl_vlan=10,\
         tcp,nw_src=10.0.0.0/8,nw_dst=192.168.1.1,nw_tos=40,nw_ecn=1,nw_ttl=64,tp_dst=22,\
         actions=mod_vlan_vid:20,output:2",
    );
    assert_eq!(r.priority, 100);
    assert_eq!(r.cookie, 0xabc);
    assert_eq!((r.idle_timeout, r.hard_timeout), (10, 20));
    let (k, m) = (&r.matcher.key, &r.matcher.mask);
    assert_eq!((k.in_port(), m.in_port()), (1, u32::MAX));
    assert_eq!((k.vlan_tci(), m.vlan_tci()), (VLAN_CFI | 10, 0x1fff));
    assert_eq!((k.dl_type(), k.nw_proto()), (ethertype::IPV4, ipproto::TCP));
    assert_eq!(
        (k.nw_src(), m.nw_src()),
        (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0))
    );
    assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 1, 1));
    assert_eq!((k.nw_tos(), m.nw_tos()), (41, 0xff));
    assert_eq!((k.nw_ttl(), m.nw_ttl()), (64, 0xff));
    assert_eq!((k.tp_dst(), m.tp_dst(), m.tp_src()), (22, 0xffff, 0));
    assert_eq!(r.actions, vec![Action::SetVlanVid(20), Action::Output(2)]);

    let arp =
        flow("arp,arp_op=2,arp_spa=1.2.3.4,arp_tpa=5.6.7.8,arp_sha=00:00:00:00:00:01,actions=drop");
    assert_eq!(arp.matcher.key.nw_proto(), 2);
    assert_eq!(arp.matcher.key.nw_src(), Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(arp.matcher.key.nw_dst(), Ipv4Addr::new(5, 6, 7, 8));
    assert_eq!(arp.matcher.key.arp_sha(), [0, 0, 0, 0, 0, 1]);

    let icmp = flow("icmp,icmp_type=8,icmp_code=0,actions=drop");
    assert_eq!(
        (icmp.matcher.key.tp_src(), icmp.matcher.mask.tp_src()),
        (8, 0xffff)
    );
    assert_eq!(
        (icmp.matcher.key.tp_dst(), icmp.matcher.mask.tp_dst()),
        (0, 0xffff)
    );

    let untagged = flow("dl_vlan=0xffff,actions=drop");
    assert_eq!(
        (
            untagged.matcher.key.vlan_tci(),
            untagged.matcher.mask.vlan_tci()
        ),
        (0, 0xffff)
    );
    let pcp = flow("dl_vlan_pcp=5,actions=drop");
    assert_eq!(
        (pcp.matcher.key.vlan_tci(), pcp.matcher.mask.vlan_tci()),
        (0xb000, 0xf000)
    );

    let dscp = flow("ipv6,ip_dscp=46,actions=drop");
    assert_eq!(
        (dscp.matcher.key.nw_tos(), dscp.matcher.mask.nw_tos()),
        (184, 0xfc)
    );

    let frag = flow("ip,nw_frag=not_later,actions=drop");
    assert_eq!(
        (frag.matcher.key.nw_frag(), frag.matcher.mask.nw_frag()),
        (0, 2)
    );
    assert_eq!(flow("actions=drop").priority, DEFAULT_PRIORITY);
}

// ---------------------------------------------------------------------------
// Bad cases: each asserts the column, the token and the whole message.
// ---------------------------------------------------------------------------

#[test]
fn bad_flows_point_at_the_token_with_an_actionable_message() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "priority=100,ip,nw_dst=10.0.0.300,actions=drop",
            17,
            "nw_dst=10.0.0.300",
            "invalid IPv4 address",
        ),
        (
            "ip,nw_src=10.0.0.0/33,actions=drop",
            4,
            "nw_src=10.0.0.0/33",
            "invalid IPv4 prefix length (want /0../32 or a dotted mask)",
        ),
        ("foo=1,actions=drop", 1, "foo=1", "unknown field `foo`"),
        (
            "IN_PORT=1,actions=drop",
            1,
            "IN_PORT=1",
            "unknown field `IN_PORT` (field names are lower case)",
        ),
        (
            "tcp_flags=+syn,actions=drop",
            1,
            "tcp_flags=+syn",
            "unknown field `tcp_flags` (an Open vSwitch field xswitch does not support)",
        ),
        ("reg0=1,actions=drop", 1, "reg0=1", "unknown field `reg0` (an Open vSwitch field xswitch does not support)"),
        (
            "vlan_vid=5,actions=drop",
            1,
            "vlan_vid=5",
            "unknown field `vlan_vid` (match VLANs with dl_vlan, dl_vlan_pcp or vlan_tci)",
        ),
        ("bogus,actions=drop", 1, "bogus", "unknown field `bogus`"),
        ("nw_src,actions=drop", 1, "nw_src", "`nw_src` needs a value (nw_src=...)"),
        ("priority=,actions=drop", 1, "priority=", "`priority` needs a value (priority=...)"),
        ("ip=1,actions=drop", 1, "ip=1", "`ip` is a shorthand and takes no value"),
        (
            "dl_vlan=5000,actions=drop",
            1,
            "dl_vlan=5000",
            "dl_vlan value 5000 is out of range (0..=4095, or 0xffff for no VLAN)",
        ),
        ("dl_vlan_pcp=8,actions=drop", 1, "dl_vlan_pcp=8", "dl_vlan_pcp value 8 is out of range (0..=7)"),
        (
            "ip,nw_tos=3,actions=drop",
            4,
            "nw_tos=3",
            "nw_tos value 3 is not a multiple of 4 (it sets the DSCP bits of the TOS byte; use \
             ip_dscp=0 for DSCP 0, nw_ecn for the low 2 bits)",
        ),
        ("ip,ip_dscp=64,actions=drop", 4, "ip_dscp=64", "ip_dscp value 64 is out of range (0..=63)"),
        ("ip,nw_ecn=4,actions=drop", 4, "nw_ecn=4", "nw_ecn value 4 is out of range (0..=3)"),
        ("ip,nw_ttl=300,actions=drop", 4, "nw_ttl=300", "nw_ttl value 300 is out of range (0..=255)"),
        ("icmp,icmp_type=300,actions=drop", 6, "icmp_type=300", "icmp_type value 300 is out of range (0..=255)"),
        ("tcp,tp_src=65536,actions=drop", 5, "tp_src=65536", "tp_src value 65536 is out of range (0..=65535)"),
        (
            "tcp,tp_src=1/0x10000,actions=drop",
            5,
            "tp_src=1/0x10000",
            "mask has bits outside the field",
        ),
        ("ipv6,ipv6_label=0x100000,actions=drop", 6, "ipv6_label=0x100000", "ipv6_label value 1048576 is out of range (0..=0xfffff)"),
        ("ip,nw_ttl=5/0xff,actions=drop", 4, "nw_ttl=5/0xff", "`nw_ttl` takes an exact value, not a mask"),
        ("in_port=1/1,actions=drop", 1, "in_port=1/1", "`in_port` takes an exact value, not a mask"),
        ("ip,nw_frag=maybe,actions=drop", 4, "nw_frag=maybe", "nw_frag is one of no, yes, first, later, not_later"),
        ("dl_src=00:11:22:33:44,actions=drop", 1, "dl_src=00:11:22:33:44", "invalid Ethernet address"),
        ("dl_src=00:11:22:33:44:55/ff,actions=drop", 1, "dl_src=00:11:22:33:44:55/ff", "invalid Ethernet mask"),
        ("ipv6,ipv6_src=2001:db8::g,actions=drop", 6, "ipv6_src=2001:db8::g", "invalid IPv6 address"),
        ("dl_type=ip,actions=drop", 1, "dl_type=ip", "not a number"),
        // Prerequisites (ovs-ofctl would silently drop the field and widen the rule).
        (
            "nw_src=1.2.3.4,actions=drop",
            1,
            "nw_src=1.2.3.4",
            "`nw_src` requires ip or arp in the match (e.g. `ip,nw_src=...`)",
        ),
        (
            "ipv6,nw_src=1.2.3.4,actions=drop",
            6,
            "nw_src=1.2.3.4",
            "`nw_src` requires ip or arp in the match (e.g. `ip,nw_src=...`)",
        ),
        (
            "ip,tp_src=80,actions=drop",
            4,
            "tp_src=80",
            "`tp_src` requires tcp, udp, sctp or icmp (or tcp6, udp6, sctp6, icmp6) in the match \
             (e.g. `tcp,tp_src=...`)",
        ),
        (
            "udp,tcp_src=80,actions=drop",
            5,
            "tcp_src=80",
            "`tcp_src` requires tcp or tcp6 in the match (e.g. `tcp,tcp_src=...`)",
        ),
        (
            "tcp,icmp_type=3,actions=drop",
            5,
            "icmp_type=3",
            "`icmp_type` requires icmp or icmp6 in the match (e.g. `icmp,icmp_type=...`)",
        ),
        (
            "icmp,icmpv6_type=3,actions=drop",
            6,
            "icmpv6_type=3",
            "`icmpv6_type` requires icmp6 in the match (e.g. `icmp6,icmpv6_type=...`)",
        ),
        (
            "ip,arp_spa=1.2.3.4,actions=drop",
            4,
            "arp_spa=1.2.3.4",
            "`arp_spa` requires arp in the match (e.g. `arp,arp_spa=...`)",
        ),
        (
            "ip,ipv6_src=::1,actions=drop",
            4,
            "ipv6_src=::1",
            "`ipv6_src` requires ipv6 in the match (e.g. `ipv6,ipv6_src=...`)",
        ),
        (
            "nw_proto=6,actions=drop",
            1,
            "nw_proto=6",
            "`nw_proto` requires ip, ipv6 or arp in the match (e.g. `ip,nw_proto=...`)",
        ),
        (
            "arp,nw_ttl=1,actions=drop",
            5,
            "nw_ttl=1",
            "`nw_ttl` requires ip or ipv6 in the match (e.g. `ip,nw_ttl=...`)",
        ),
        (
            "icmp,tp_src=0x10/0xf0,actions=drop",
            6,
            "tp_src=0x10/0xf0",
            "with icmp, tp_src is the ICMP type: an exact value 0..=255",
        ),
        (
            "icmp,tp_dst=256,actions=drop",
            6,
            "tp_dst=256",
            "with icmp, tp_dst is the ICMP code: an exact value 0..=255",
        ),
        (
            "tcp,nw_frag=later,tp_dst=80,actions=drop",
            19,
            "tp_dst=80",
            "`tp_dst` cannot be used with nw_frag=later: later fragments carry no L4 header",
        ),
        (
            "udp,nw_frag=later,actions=set_field:1->udp_src",
            27,
            "set_field:1->udp_src",
            "`set_field:...->udp_src` cannot be used with nw_frag=later: later fragments carry no \
             L4 header",
        ),
        // Duplicates, overlaps, contradictions.
        ("in_port=1,in_port=2,actions=drop", 11, "in_port=2", "`in_port` is given twice (first at col 1)"),
        (
            "tcp,tp_src=1,tcp_src=2,actions=drop",
            14,
            "tcp_src=2",
            "`tcp_src` overlaps `tp_src` at col 5: give only one of them",
        ),
        (
            "dl_vlan=10,vlan_tci=0x1000/0x1000,actions=drop",
            12,
            "vlan_tci=0x1000/0x1000",
            "`vlan_tci` overlaps `dl_vlan` at col 1: give only one of them",
        ),
        (
            "dl_vlan=0xffff,dl_vlan_pcp=3,actions=drop",
            16,
            "dl_vlan_pcp=3",
            "`dl_vlan_pcp` overlaps `dl_vlan` at col 1: give only one of them",
        ),
        ("ip,nw_tos=8,ip_dscp=2,actions=drop", 13, "ip_dscp=2", "`ip_dscp` overlaps `nw_tos` at col 4: give only one of them"),
        ("tcp,udp,actions=drop", 5, "udp", "`udp` contradicts `tcp` at col 1"),
        ("ip,dl_type=0x86dd,actions=drop", 4, "dl_type=0x86dd", "`dl_type=0x86dd` contradicts `ip` at col 1"),
        ("tcp,nw_proto=17,actions=drop", 5, "nw_proto=17", "`nw_proto=17` contradicts `tcp` at col 1"),
        ("priority=1,priority=2,actions=drop", 12, "priority=2", "`priority` is given twice (first at col 1)"),
        // Metadata.
        ("priority=70000,actions=drop", 1, "priority=70000", "priority value 70000 is out of range (0..=65535)"),
        ("table=1,actions=drop", 1, "table=1", "xswitch has only table 0"),
        (
            "cookie=0x10/0xff,actions=drop",
            1,
            "cookie=0x10/0xff",
            "`cookie` cannot have a mask when adding a flow (a mask selects flows in \
             del-flows/dump-flows)",
        ),
        ("send_flow_rem,actions=drop", 1, "send_flow_rem", "`send_flow_rem` is a flow-mod flag xswitch does not support"),
        // Actions.
        ("ip,nw_src=1.2.3.4", 18, "", "a flow needs `actions=` at the end (e.g. `actions=drop`)"),
        ("", 1, "", "a flow needs `actions=` at the end (e.g. `actions=drop`)"),
        ("ip,actions", 4, "actions", "`actions` needs a value (actions=...)"),
        ("actions=drop,in_port=1", 14, "in_port=1", "match field after the actions: `actions=` must come last"),
        ("actions=output:1,ip", 18, "ip", "match field after the actions: `actions=` must come last"),
        ("actions=output:1 priority=5", 18, "priority=5", "match field after the actions: `actions=` must come last"),
        ("actions=drop,output:1", 9, "drop", "`drop` must not be accompanied by any other action"),
        ("actions=frobnicate", 9, "frobnicate", "unknown action `frobnicate` (nor a known port name)"),
        ("actions=frob:1", 9, "frob:1", "unknown action `frob`"),
        (
            "actions=resubmit(,1)",
            9,
            "resubmit(,1)",
            "unknown action `resubmit` (an Open vSwitch action xswitch does not support)",
        ),
        ("actions=LOCAL", 9, "LOCAL", "xswitch has no LOCAL port"),
        ("actions=output:LOCAL", 9, "output:LOCAL", "xswitch has no LOCAL port"),
        ("actions=controller:100", 9, "controller:100", "xswitch has no CONTROLLER port"),
        ("in_port=LOCAL,actions=drop", 1, "in_port=LOCAL", "xswitch has no LOCAL port"),
        (
            "in_port=NORMAL,actions=drop",
            1,
            "in_port=NORMAL",
            "NORMAL is not valid here as in_port (give a port number or name)",
        ),
        (
            "actions=output:TABLE",
            9,
            "output:TABLE",
            "TABLE is not valid here (xswitch has one table and no ANY/NONE port)",
        ),
        ("actions=output:p9", 9, "output:p9", "unknown port `p9`"),
        ("in_port=p9,actions=drop", 1, "in_port=p9", "unknown port `p9`"),
        (
            "actions=output:65534",
            9,
            "output:65534",
            "port 65534 is out of range (ports are 0..=65279; 65280..=65535 are reserved OpenFlow \
             ports)",
        ),
        ("in_port=70000,actions=drop", 1, "in_port=70000", "port 70000 is out of range (ports are 0..=65279; 65280..=65535 are reserved OpenFlow ports)"),
        ("actions=output", 9, "output", "`output` needs an argument (output:...)"),
        ("actions=mod_dl_src:", 9, "mod_dl_src:", "`mod_dl_src` needs an argument (mod_dl_src:...)"),
        ("in_port=huge,actions=drop", 1, "in_port=huge", "port 70000 is out of range (ports are 0..=65279; 65280..=65535 are reserved OpenFlow ports)"),
        ("actions=huge", 9, "huge", "port 70000 is out of range (ports are 0..=65279; 65280..=65535 are reserved OpenFlow ports)"),
        ("actions=mod_vlan_vid:5000", 9, "mod_vlan_vid:5000", "mod_vlan_vid value 5000 is out of range (0..=4095)"),
        ("actions=mod_vlan_pcp:8", 9, "mod_vlan_pcp:8", "mod_vlan_pcp value 8 is out of range (0..=7)"),
        (
            "actions=push_vlan:0x8101",
            9,
            "push_vlan:0x8101",
            "push_vlan takes ethertype 0x8100 or 0x88a8, not 0x8101",
        ),
        (
            "actions=mod_nw_tos:3",
            9,
            "mod_nw_tos:3",
            "mod_nw_tos value 3 is not a multiple of 4 (it sets the DSCP bits of the TOS byte; use \
             ip_dscp=0 for DSCP 0, nw_ecn for the low 2 bits)",
        ),
        ("actions=mod_nw_src:1.2.3", 9, "mod_nw_src:1.2.3", "invalid IPv4 address"),
        ("actions=mod_dl_dst:xx", 9, "mod_dl_dst:xx", "invalid Ethernet address"),
        ("actions=mod_tp_src:-1", 9, "mod_tp_src:-1", "mod_tp_src: not a number"),
        ("actions=strip_vlan:1", 9, "strip_vlan:1", "`strip_vlan` takes no argument"),
        (
            "actions=dec_ttl(1,2)",
            9,
            "dec_ttl(1,2)",
            "`dec_ttl` takes no argument (controller ids are not supported)",
        ),
        (
            "actions=set_field:1.2.3.4->ip_src",
            9,
            "set_field:1.2.3.4->ip_src",
            "set_field to `ip_src` requires ip in the match (e.g. `ip,...,actions=set_field:...->ip_src`)",
        ),
        (
            "ip,actions=set_field:5->vlan_vid",
            12,
            "set_field:5->vlan_vid",
            "set_field to `vlan_vid` requires a VLAN tag in the match (e.g. \
             `dl_vlan=10,...,actions=set_field:...->vlan_vid`)",
        ),
        (
            "udp,actions=set_field:1->tcp_src",
            13,
            "set_field:1->tcp_src",
            "set_field to `tcp_src` requires tcp or tcp6 in the match (e.g. \
             `tcp,...,actions=set_field:...->tcp_src`)",
        ),
        (
            "ip,actions=set_field:1->ip_ttl",
            12,
            "set_field:1->ip_ttl",
            "set_field to `ip_ttl` is not supported (supported: eth_src, eth_dst, vlan_vid, \
             vlan_pcp, ip_src, ip_dst, ip_dscp, nw_tos, tcp_src, tcp_dst, udp_src, udp_dst)",
        ),
        ("ip,actions=set_field:1.2.3.4", 12, "set_field:1.2.3.4", "set_field is written set_field:VALUE->FIELD"),
        (
            "ip,actions=set_field:1.2.3.4/8->ip_src",
            12,
            "set_field:1.2.3.4/8->ip_src",
            "masked set_field is not supported",
        ),
        // Non-ASCII text: the column counts characters.
        ("é,actions=drop", 1, "é", "unknown field `é`"),
        ("ip,nw_src=1.2.3.é,actions=drop", 4, "nw_src=1.2.3.é", "invalid IPv4 address"),
        ("ip,nw_src=1.2.3.4,ü=1,actions=drop", 19, "ü=1", "unknown field `ü`"),
    ];
    for &(input, col, token, msg) in cases {
        let e = flow_err(input);
        assert_eq!(
            (e.col, e.token.as_str(), e.kind.to_string().as_str()),
            (col, token, msg),
            "input {input:?}"
        );
        // The offset locates the token in the input.
        assert_eq!(
            &input[e.offset..e.offset + e.token.len()],
            token,
            "{input:?}"
        );
        assert_eq!(input[..e.offset].chars().count() + 1, col, "{input:?}");
    }
}

#[test]
fn error_display_matches_the_documented_shape_and_render_draws_carets() {
    let text = "priority=100,ip,nw_dst=10.0.0.300,actions=drop";
    let e = flow_err(text);
    assert_eq!(
        e.to_string(),
        "bad flow at col 17 (\"nw_dst=10.0.0.300\"): invalid IPv4 address"
    );
    assert_eq!(
        e.render(text),
        "priority=100,ip,nw_dst=10.0.0.300,actions=drop\n\
         \x20               ^^^^^^^^^^^^^^^^^\n\
         bad flow at col 17 (\"nw_dst=10.0.0.300\"): invalid IPv4 address"
    );
    let e = flow_err("ip");
    assert_eq!(
        e.to_string(),
        "bad flow at col 3: a flow needs `actions=` at the end (e.g. `actions=drop`)"
    );
    assert_eq!(e.render("ip"), format!("ip\n  ^\n{e}"));
    // Tabs are drawn as spaces so the carets stay aligned.
    let e = flow_err("ip,\tfoo=1,actions=drop");
    assert_eq!(
        e.render("ip,\tfoo=1,actions=drop").lines().nth(1),
        Some("    ^^^^^")
    );
    assert!(matches!(e.kind, ErrorKind::UnknownField { .. }));
}

// ---------------------------------------------------------------------------
// Real OVS flow files and dump-flows output.
// ---------------------------------------------------------------------------

#[test]
fn typical_ovs_flow_file_lines_parse() {
    let lines = [
        "table=0,priority=100,arp,actions=NORMAL",
        "table=0,priority=0,actions=NORMAL",
        "table=0, priority=10, in_port=1, actions=output:2",
        "priority=1000,dl_type=0x0806,actions=FLOOD",
        "priority=500,ip,nw_dst=192.168.1.0/24,actions=mod_dl_dst:52:54:00:12:34:56,output:3",
        "priority=200,tcp,nw_dst=10.0.0.5,tp_dst=80,actions=output:4",
        "priority=200,udp,udp_dst=53,actions=NORMAL",
        "priority=300,icmp,icmp_type=8,actions=IN_PORT",
        "priority=65535,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0,actions=drop",
        "dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,actions=output:2",
        "in_port=1,dl_vlan=100,actions=strip_vlan,output:2",
        "in_port=2,actions=mod_vlan_vid:100,output:1",
        "in_port=2,vlan_tci=0x0000/0x1fff,actions=push_vlan:0x8100,mod_vlan_vid:100,output:1",
        "priority=40,ipv6,ipv6_dst=fe80::/10,actions=NORMAL",
        "priority=40,icmp6,icmp_type=135,actions=FLOOD",
        "priority=40,tcp6,tp_dst=443,ipv6_src=2001:db8::/32,actions=dec_ttl,output:2",
        "cookie=0x1234,idle_timeout=60,hard_timeout=300,priority=10,ip,nw_src=10.0.0.1,actions=ALL",
        "ip,nw_frag=yes,actions=drop",
        "ip,nw_proto=1,actions=normal",
        "arp,arp_op=1,arp_tpa=10.0.0.1,actions=flood",
        "ip,nw_tos=184,actions=output:1",
        "priority=5,ip,actions=mod_nw_tos:184,mod_nw_src:10.1.1.1,mod_nw_dst:10.2.2.2,normal",
        "priority=5,tcp,actions=mod_tp_src:8080,mod_tp_dst:80,output:1",
    ];
    for line in lines {
        let rule = flow(line);
        assert!(check_rule(&rule).is_ok(), "{line}");
    }
}

#[test]
fn ovs_dump_flows_output_parses_back() {
    // Captured from ovs-ofctl 3.1 dump-flows (with and without --no-stats).
    let dumps = [
        (
            " cookie=0x0, duration=0.008s, table=0, n_packets=0, n_bytes=0, idle_age=0, actions=NORMAL",
            "actions=NORMAL",
        ),
        (
            " cookie=0x0, duration=0.004s, table=0, n_packets=0, n_bytes=0, idle_age=0, ip actions=mod_nw_src:1.2.3.4,mod_nw_tos:8,output:1",
            "ip,actions=mod_nw_src:1.2.3.4,mod_nw_tos:8,output:1",
        ),
        (
            " cookie=0x0, duration=0.034s, table=0, n_packets=0, n_bytes=0, idle_timeout=10, idle_age=0, priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2",
            "idle_timeout=10,priority=100,ip,in_port=1,nw_dst=10.0.0.0/24,actions=output:2",
        ),
        (
            " cookie=0x0, duration=0.026s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=0 actions=drop",
            "priority=0,actions=drop",
        ),
        (
            " cookie=0x5, duration=1.225s, table=0, n_packets=0, n_bytes=0, idle_timeout=7, hard_timeout=300, idle_age=1, tcp6,tp_dst=22 actions=mod_vlan_vid:5,strip_vlan,dec_ttl,output:2",
            "cookie=0x5,idle_timeout=7,hard_timeout=300,tcp6,tp_dst=22,actions=mod_vlan_vid:5,strip_vlan,dec_ttl,output:2",
        ),
        (
            " cookie=0x0, duration=1.235s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=7,arp,dl_vlan=5,dl_src=00:00:00:00:00:01,arp_spa=10.0.0.0/8,arp_op=1,arp_sha=00:11:22:33:44:55 actions=FLOOD,ALL,IN_PORT",
            "priority=7,arp,dl_vlan=5,dl_src=00:00:00:00:00:01,arp_spa=10.0.0.0/8,arp_op=1,arp_sha=00:11:22:33:44:55,actions=FLOOD,ALL,IN_PORT",
        ),
        (
            " idle_timeout=10, priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2",
            "idle_timeout=10,priority=100,ip,in_port=1,nw_dst=10.0.0.0/24,actions=output:2",
        ),
        (" priority=0 actions=drop", "priority=0,actions=drop"),
        // OpenFlow 1.3 dump style: reset_counts flag and set_field actions.
        (
            " cookie=0x0, duration=4.986s, table=0, n_packets=0, n_bytes=0, reset_counts ip actions=set_field:1.2.3.4->ip_src,set_field:2->ip_dscp,output:1",
            "ip,actions=mod_nw_src:1.2.3.4,mod_nw_tos:8,output:1",
        ),
    ];
    for (line, canonical) in dumps {
        assert_eq!(format_flow(&flow(line)), canonical, "{line}");
    }
}

#[test]
fn dump_flow_line_is_byte_identical_to_ovs_ofctl() {
    let rule =
        flow("idle_timeout=10,priority=100,ip,in_port=1,nw_dst=10.0.0.0/24,actions=output:2");
    let stats = FlowStats {
        duration: Duration::from_millis(34),
        n_packets: 0,
        n_bytes: 0,
        idle_age: Some(0),
        hard_age: None,
    };
    assert_eq!(
        format_dump_flow(&rule, Some(&stats)),
        " cookie=0x0, duration=0.034s, table=0, n_packets=0, n_bytes=0, idle_timeout=10, \
         idle_age=0, priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2"
    );
    assert_eq!(
        format_dump_flow(&rule, None),
        " idle_timeout=10, priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2"
    );
    // The brief's example line (no idle_age known).
    let stats = FlowStats {
        duration: Duration::from_millis(1234),
        ..FlowStats::default()
    };
    assert_eq!(
        format_dump_flow(&rule, Some(&stats)),
        " cookie=0x0, duration=1.234s, table=0, n_packets=0, n_bytes=0, idle_timeout=10, \
         priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2"
    );
    // Match-all: no space before actions; hard_age only when != duration secs.
    let all = flow("cookie=0x5,hard_timeout=300,actions=NORMAL");
    let stats = FlowStats {
        duration: Duration::from_secs(6),
        n_packets: 3,
        n_bytes: 180,
        idle_age: Some(6),
        hard_age: Some(6),
    };
    assert_eq!(
        format_dump_flow(&all, Some(&stats)),
        " cookie=0x5, duration=6s, table=0, n_packets=3, n_bytes=180, hard_timeout=300, \
         idle_age=6, actions=NORMAL"
    );
    let stats = FlowStats {
        hard_age: Some(2),
        ..stats
    };
    assert!(format_dump_flow(&all, Some(&stats)).contains("idle_age=6, hard_age=2, actions=NORMAL"));
    assert_eq!(
        format_dump_flow(&all, None),
        " cookie=0x5, hard_timeout=300, actions=NORMAL"
    );
}

#[test]
fn format_match_and_format_actions_cover_the_empty_cases() {
    assert_eq!(format_match(&FlowMatch::ANY), "");
    assert_eq!(format_actions(&[]), "drop");
    let r = flow("priority=5,tcp,tp_dst=80,actions=output:1,NORMAL");
    // format_match leaves priority to the rule printers.
    assert_eq!(format_match(&r.matcher), "tcp,tp_dst=80");
    assert_eq!(format_actions(&r.actions), "output:1,NORMAL");
}

// ---------------------------------------------------------------------------
// del-flows / dump-flows filters.
// ---------------------------------------------------------------------------

#[test]
fn filters_select_loosely_or_strictly_and_by_cookie_mask() {
    let rules = [
        flow("priority=7,arp,arp_op=1,actions=drop"),
        flow("priority=9,arp,actions=drop"),
        flow("cookie=0x15,ip,nw_dst=10.0.0.0/24,actions=drop"),
        flow("cookie=0x25,ip,nw_dst=10.0.0.0/8,actions=drop"),
        flow("actions=NORMAL"),
    ];
    let selected = |filter: &str, strict: bool| -> Vec<usize> {
        let f = parse_flow_filter(filter, &ports, strict)
            .unwrap_or_else(|e| panic!("{}", e.render(filter)));
        (0..rules.len()).filter(|&i| f.selects(&rules[i])).collect()
    };
    assert_eq!(selected("", false), vec![0, 1, 2, 3, 4]);
    assert_eq!(selected("arp", false), vec![0, 1]);
    assert_eq!(selected("ip,nw_dst=10.0.0.0/8", false), vec![2, 3]);
    assert_eq!(selected("ip,nw_dst=10.0.0.0/24", false), vec![2]);
    assert_eq!(selected("priority=7,arp", true), Vec::<usize>::new());
    assert_eq!(selected("priority=7,arp,arp_op=1", true), vec![0]);
    assert_eq!(selected("arp", true), Vec::<usize>::new());
    assert_eq!(selected("", true), vec![4]);
    assert_eq!(selected("cookie=0x5/0xf", false), vec![2, 3]);
    assert_eq!(selected("cookie=0x15/-1", false), vec![2]);
    assert_eq!(selected("cookie=0x25/0xff,ip", false), vec![3]);
    assert_eq!(selected("table=0,duration=5s,ip", false), vec![2, 3]);

    let f = parse_flow_filter("priority=7,arp", &ports, true).unwrap();
    assert_eq!(f.priority, Some(7));
    assert_eq!(
        parse_flow_filter("arp", &ports, true).unwrap().priority,
        Some(DEFAULT_PRIORITY)
    );
    assert_eq!(
        parse_flow_filter("arp", &ports, false).unwrap().priority,
        None
    );
}

#[test]
fn filters_reject_what_cannot_select_flows() {
    let cases: &[(&str, bool, usize, &str)] = &[
        (
            "arp,actions=drop",
            false,
            5,
            "actions are not allowed in a match filter (del-flows, dump-flows)",
        ),
        (
            "arp,idle_timeout=4",
            false,
            5,
            "`idle_timeout` cannot select flows",
        ),
        (
            "arp,priority=9",
            false,
            5,
            "`priority` selects flows only with --strict",
        ),
        (
            "cookie=0x5",
            false,
            1,
            "`cookie` without a mask cannot select flows (to match on a cookie, specify a mask, \
             e.g. cookie=0x5/-1)",
        ),
        (
            "nw_dst=1.2.3.4",
            true,
            1,
            "`nw_dst` requires ip or arp in the match (e.g. `ip,nw_dst=...`)",
        ),
        ("table=3", false, 1, "xswitch has only table 0"),
    ];
    for &(input, strict, col, msg) in cases {
        let e = parse_flow_filter(input, &ports, strict).unwrap_err();
        assert_eq!(
            (e.col, e.kind.to_string().as_str()),
            (col, msg),
            "{input:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// trace packets.
// ---------------------------------------------------------------------------

#[test]
fn trace_packet_descriptions_become_exact_keys() {
    let k = parse_packet(
        "in_port=p1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,dl_vlan=10,dl_vlan_pcp=3,\
         tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=40,nw_ecn=2,nw_ttl=64,tp_src=1234,tp_dst=80,\
         nw_frag=first",
        &ports,
    )
    .unwrap();
    let mut want = FlowKey::ZERO;
    want.set_in_port(1);
    want.set_dl_src([0, 0, 0, 0, 0, 1]);
    want.set_dl_dst([0, 0, 0, 0, 0, 2]);
    want.set_vlan_tci(VLAN_CFI | (3 << 13) | 10);
    want.set_dl_type(ethertype::IPV4);
    want.set_nw_proto(ipproto::TCP);
    want.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
    want.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
    want.set_nw_tos(42);
    want.set_nw_ttl(64);
    want.set_tp_src(1234);
    want.set_tp_dst(80);
    want.set_nw_frag(1);
    assert_eq!(k, want);

    let arp = parse_packet(
        "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2",
        &no_port_names,
    )
    .unwrap();
    assert_eq!((arp.dl_type(), arp.nw_proto()), (ethertype::ARP, 1));
    assert_eq!(arp.nw_dst(), Ipv4Addr::new(10, 0, 0, 2));
    let untagged = parse_packet("dl_vlan=0xffff,ipv6,ipv6_dst=ff02::1", &no_port_names).unwrap();
    assert_eq!(untagged.vlan_tci(), 0);
    assert_eq!(
        untagged.ipv6_dst(),
        "ff02::1".parse::<core::net::Ipv6Addr>().unwrap()
    );
    assert_eq!(parse_packet("", &no_port_names).unwrap(), FlowKey::ZERO);
}

#[test]
fn trace_rejects_masks_metadata_actions_and_missing_prerequisites() {
    let cases: &[(&str, usize, &str)] = &[
        ("ip,nw_src=10.0.0.0/8", 4, "a packet has exact field values: drop the mask from `nw_src`"),
        ("ip,nw_frag=yes", 4, "a packet is nw_frag=no, first or later"),
        ("priority=5,ip", 1, "`priority` is not a packet field (trace takes header fields only)"),
        ("ip,actions=drop", 4, "actions are not allowed in a packet description (trace)"),
        ("tp_dst=80", 1, "`tp_dst` requires tcp, udp, sctp or icmp (or tcp6, udp6, sctp6, icmp6) in the match (e.g. `tcp,tp_dst=...`)"),
        ("in_port=nope", 1, "unknown port `nope`"),
    ];
    for &(input, col, msg) in cases {
        let e = parse_packet(input, &ports).unwrap_err();
        assert_eq!(
            (e.col, e.kind.to_string().as_str()),
            (col, msg),
            "{input:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// check_match / check_rule say which values have a spelling.
// ---------------------------------------------------------------------------

#[test]
fn check_match_rejects_values_without_an_ovs_spelling() {
    let with = |f: &dyn Fn(&mut FlowMatch)| {
        let mut m = FlowMatch::ANY;
        f(&mut m);
        check_match(&m)
    };
    assert!(with(&|_| {}).is_ok());
    assert_eq!(
        with(&|m| m.set_masked(field::VLAN_TCI2, 0x1005, 0xffff)),
        Err("the inner VLAN (vlan_tci2) has no ovs-ofctl syntax".into())
    );
    assert_eq!(
        with(&|m| m.set_masked(field::NW_SRC, 1, u32::MAX.into())),
        Err("nw_src is matched without ip or arp".into())
    );
    assert_eq!(
        with(&|m| m.set_masked(field::IN_PORT, 5, 0xff)),
        Err("in_port is matched with a partial mask".into())
    );
    assert_eq!(
        with(&|m| {
            m.set_masked(field::DL_TYPE, 0x800, 0xffff);
            m.set_masked(field::NW_FRAG, 2, 2 | 1);
        }),
        Err("nw_frag value/mask is not one of no, yes, first, later, not_later".into())
    );
    assert_eq!(
        with(&|m| m.mask.words[11] = 1 << 40),
        Err("mask has bits outside every field".into())
    );
    assert_eq!(
        with(&|m| m.key.set_in_port(3)),
        Err("key has bits outside the mask".into())
    );
    let mut r = RuleSpec::new(FlowMatch::ANY, vec![Action::SetNwTos(6)]);
    assert_eq!(
        check_rule(&r),
        Err("mod_nw_tos:6 is not a multiple of 4".into())
    );
    r.actions = vec![Action::Output(MAX_PORT + 1)];
    assert_eq!(
        check_rule(&r),
        Err("output:65280 is a reserved OpenFlow port".into())
    );
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

/// Picks a mask for a `bits`-wide maskable field: full, a prefix, or random.
fn pick_mask(rng: &mut StdRng, bits: u32) -> u128 {
    let full: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    match rng.gen_range(0..4) {
        0 | 1 => full,
        2 => {
            let n = rng.gen_range(1..=bits);
            (full << (bits - n)) & full
        }
        _ => rng.gen::<u128>() & full,
    }
}

fn pick_mac(rng: &mut StdRng) -> u64 {
    rng.gen::<u64>() & 0xffff_ffff_ffff
}

/// A random rule in the OVS-valid subspace: masks legal for each field,
/// prerequisites satisfied, values normalised under their masks.
fn random_rule(rng: &mut StdRng, of10_actions_only: bool) -> RuleSpec {
    let mut m = FlowMatch::ANY;
    let set = |m: &mut FlowMatch, pos: field::Pos, v: u64, mask: u64| m.set_masked(pos, v, mask);
    if rng.gen_bool(0.3) {
        set(
            &mut m,
            field::IN_PORT,
            rng.gen_range(0..=MAX_PORT).into(),
            0xffff_ffff,
        );
    }
    for pos in [field::DL_SRC, field::DL_DST] {
        if rng.gen_bool(0.3) {
            let mask = pick_mask(rng, 48) as u64;
            set(&mut m, pos, pick_mac(rng), mask);
        }
    }
    match rng.gen_range(0..5) {
        0 => {}
        1 => {
            let mask = pick_mask(rng, 16) as u64;
            set(&mut m, field::VLAN_TCI, rng.gen::<u16>().into(), mask);
        }
        2 => set(
            &mut m,
            field::VLAN_TCI,
            u64::from(VLAN_CFI | rng.gen_range(0..4096)),
            0x1fff,
        ),
        3 => set(
            &mut m,
            field::VLAN_TCI,
            u64::from(VLAN_CFI) | (rng.gen_range(0..8u64) << 13),
            0xf000,
        ),
        _ => set(&mut m, field::VLAN_TCI, 0, 0xffff),
    }
    let l3 = rng.gen_range(0..7);
    let dl_type: u16 = match l3 {
        0 => return finish_rule(rng, m, of10_actions_only),
        1 => ethertype::IPV4,
        2 => ethertype::IPV6,
        3 => ethertype::ARP,
        4 => 0x8035,
        5 => [0x8847, 0x8848, 0x88cc, 0x0000, 0x05ff, 0x1234][rng.gen_range(0..6)],
        _ => rng.gen::<u16>(),
    };
    set(&mut m, field::DL_TYPE, dl_type.into(), 0xffff);
    let v4 = dl_type == ethertype::IPV4;
    let v6 = dl_type == ethertype::IPV6;
    if v4 || v6 {
        let proto: Option<u8> = match rng.gen_range(0..6) {
            0 => None,
            1 => Some(ipproto::TCP),
            2 => Some(ipproto::UDP),
            3 => Some(ipproto::SCTP),
            4 => Some(if v4 { ipproto::ICMP } else { ipproto::ICMPV6 }),
            _ => Some(rng.gen()),
        };
        if let Some(p) = proto {
            set(&mut m, field::NW_PROTO, p.into(), 0xff);
        }
        if v4 {
            for pos in [field::NW_SRC, field::NW_DST] {
                if rng.gen_bool(0.4) {
                    let mask = pick_mask(rng, 32) as u64;
                    set(&mut m, pos, rng.gen::<u32>().into(), mask);
                }
            }
        } else {
            for (hi, lo) in [
                (field::IPV6_SRC_HI, field::IPV6_SRC_LO),
                (field::IPV6_DST_HI, field::IPV6_DST_LO),
            ] {
                if rng.gen_bool(0.4) {
                    let v: u128 = rng.gen();
                    let mask = pick_mask(rng, 128);
                    set(&mut m, hi, (v >> 64) as u64, (mask >> 64) as u64);
                    set(&mut m, lo, v as u64, mask as u64);
                }
            }
            if rng.gen_bool(0.3) {
                let mask = pick_mask(rng, 20) as u64;
                set(&mut m, field::IPV6_LABEL, rng.gen_range(0..0x10_0000), mask);
            }
        }
        let mut tos_mask = 0u64;
        if rng.gen_bool(0.3) {
            tos_mask |= 0xfc;
        }
        if rng.gen_bool(0.3) {
            tos_mask |= 0x03;
        }
        if tos_mask != 0 {
            set(&mut m, field::NW_TOS, rng.gen::<u8>().into(), tos_mask);
        }
        if rng.gen_bool(0.3) {
            set(&mut m, field::NW_TTL, rng.gen::<u8>().into(), 0xff);
        }
        if rng.gen_bool(0.3) {
            let (v, mask) = [(0, 3), (1, 3), (3, 3), (1, 1), (0, 2)][rng.gen_range(0..5)];
            set(&mut m, field::NW_FRAG, v, mask);
        }
        // OVS voids every L4 field on later fragments.
        let later = m.key.nw_frag() & 2 != 0;
        let l4 = !later && matches!(proto, Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP));
        let icmp = !later && proto == Some(if v4 { ipproto::ICMP } else { ipproto::ICMPV6 });
        for pos in [field::TP_SRC, field::TP_DST] {
            if (l4 || icmp) && rng.gen_bool(0.5) {
                if icmp {
                    set(&mut m, pos, rng.gen::<u8>().into(), 0xffff);
                } else {
                    let mask = pick_mask(rng, 16) as u64;
                    set(&mut m, pos, rng.gen::<u16>().into(), mask);
                }
            }
        }
    } else if dl_type == ethertype::ARP {
        if rng.gen_bool(0.4) {
            set(&mut m, field::NW_PROTO, rng.gen::<u8>().into(), 0xff);
        }
        for pos in [field::NW_SRC, field::NW_DST] {
            if rng.gen_bool(0.4) {
                let mask = pick_mask(rng, 32) as u64;
                set(&mut m, pos, rng.gen::<u32>().into(), mask);
            }
        }
        for pos in [field::ARP_SHA, field::ARP_THA] {
            if rng.gen_bool(0.4) {
                let mask = pick_mask(rng, 48) as u64;
                set(&mut m, pos, pick_mac(rng), mask);
            }
        }
    }
    finish_rule(rng, m, of10_actions_only)
}

fn random_action(rng: &mut StdRng, of10_only: bool) -> Action {
    let mac = |rng: &mut StdRng| {
        let b: [u8; 6] = rng.gen();
        b
    };
    loop {
        let a = match rng.gen_range(0..17) {
            0 => Action::Output(rng.gen_range(0..=MAX_PORT)),
            1 => Action::InPort,
            2 => Action::Normal,
            3 => Action::Flood,
            4 => Action::All,
            5 => Action::SetDlSrc(mac(rng)),
            6 => Action::SetDlDst(mac(rng)),
            7 => Action::SetVlanVid(rng.gen_range(0..4096)),
            8 => Action::SetVlanPcp(rng.gen_range(0..8)),
            9 => Action::StripVlan,
            10 => Action::PushVlan(if rng.gen() { 0x8100 } else { 0x88a8 }),
            11 => Action::SetNwSrc(Ipv4Addr::from(rng.gen::<u32>())),
            12 => Action::SetNwDst(Ipv4Addr::from(rng.gen::<u32>())),
            13 => Action::SetNwTos(rng.gen::<u8>() & 0xfc),
            14 => Action::SetTpSrc(rng.gen()),
            15 => Action::SetTpDst(rng.gen()),
            _ => Action::DecTtl,
        };
        if !(of10_only && matches!(a, Action::PushVlan(_))) {
            return a;
        }
    }
}

fn finish_rule(rng: &mut StdRng, m: FlowMatch, of10_actions_only: bool) -> RuleSpec {
    let n = rng.gen_range(0..6);
    let actions = (0..n)
        .map(|_| random_action(rng, of10_actions_only))
        .collect();
    let mut r = RuleSpec::new(m, actions);
    if rng.gen_bool(0.5) {
        r.priority = rng.gen();
    }
    if rng.gen_bool(0.3) {
        r.cookie = rng.gen();
    }
    if rng.gen_bool(0.3) {
        r.idle_timeout = rng.gen();
    }
    if rng.gen_bool(0.3) {
        r.hard_timeout = rng.gen();
    }
    r
}

proptest! {
    #[test]
    fn printed_valid_rules_parse_back_identically(seed in any::<u64>(), ms in 0u64..100_000) {
        let mut rng = StdRng::seed_from_u64(seed);
        let rule = random_rule(&mut rng, false);
        prop_assert_eq!(check_rule(&rule), Ok(()));
        let text = format_flow(&rule);
        let back = parse_flow(&text, &no_port_names).map_err(|e| TestCaseError::fail(e.render(&text)))?;
        prop_assert_eq!(&back, &rule, "via {}", text);
        let stats = FlowStats {
            duration: Duration::from_micros(ms * 17),
            n_packets: seed >> 3,
            n_bytes: seed,
            idle_age: Some(ms % 7),
            hard_age: Some(ms % 11),
        };
        for line in [format_dump_flow(&rule, Some(&stats)), format_dump_flow(&rule, None)] {
            let back = parse_flow(&line, &no_port_names).map_err(|e| TestCaseError::fail(e.render(&line)))?;
            prop_assert_eq!(&back, &rule, "via {}", line);
        }
        // The match alone parses back as a filter and as a strict filter.
        let mtext = format_match(&rule.matcher);
        let f = parse_flow_filter(&mtext, &no_port_names, false).map_err(|e| TestCaseError::fail(e.render(&mtext)))?;
        prop_assert_eq!(f.matcher, rule.matcher);
        prop_assert!(f.selects(&rule));
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_locate_their_token(text in "\\PC{0,80}") {
        check_no_panic(&text)?;
    }

    #[test]
    fn token_soup_never_panics_and_parses_are_fixpoints(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("ip"), Just("ipv6"), Just("tcp"), Just("udp6"), Just("icmp"), Just("arp"),
                Just("icmp6"), Just("in_port=1"), Just("in_port=p2"), Just("dl_vlan=10"),
                Just("dl_vlan=0xffff"), Just("dl_vlan_pcp=3"), Just("vlan_tci=0x1000/0x1000"),
                Just("nw_src=10.0.0.0/8"), Just("nw_dst=1.2.3.4"), Just("tp_src=80"),
                Just("tp_dst=0x10/0xf0"), Just("icmp_type=8"), Just("arp_op=1"),
                Just("arp_sha=00:11:22:33:44:55"), Just("ipv6_src=2001:db8::/32"),
                Just("ipv6_label=5"), Just("nw_tos=8"), Just("nw_ecn=1"), Just("nw_ttl=9"),
                Just("nw_frag=later"), Just("priority=5"), Just("cookie=0x5"),
                Just("cookie=0x5/-1"), Just("idle_timeout=3"), Just("table=0"),
                Just("n_packets=4"), Just("actions="), Just("actions=drop"),
                Just("output:2"), Just("normal"), Just("mod_vlan_vid:4"), Just("strip_vlan"),
                Just("set_field:1.2.3.4->ip_src"), Just("mod_tp_dst:1"), Just("drop"),
                Just("="), Just("/"), Just(":"), Just("("), Just(")"), Just("é"), Just(""),
            ],
            0..12,
        ),
        seps in proptest::collection::vec(prop_oneof![Just(","), Just(" "), Just(", "), Just("\t"), Just("")], 12),
    ) {
        let mut text = String::new();
        for (i, p) in parts.iter().enumerate() {
            text.push_str(p);
            text.push_str(seps[i]);
        }
        check_no_panic(&text)?;
        if let Ok(rule) = parse_flow(&text, &ports) {
            prop_assert_eq!(check_rule(&rule), Ok(()));
            let printed = format_flow(&rule);
            prop_assert_eq!(parse_flow(&printed, &ports).ok(), Some(rule));
        }
    }
}

fn check_located(text: &str, r: Result<(), FlowSyntaxError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(e.offset <= text.len());
        prop_assert!(text.is_char_boundary(e.offset));
        prop_assert_eq!(
            text.get(e.offset..e.offset + e.token.len()),
            Some(e.token.as_str())
        );
        prop_assert_eq!(text[..e.offset].chars().count() + 1, e.col);
        let _ = e.render(text);
    }
    Ok(())
}

fn check_no_panic(text: &str) -> Result<(), TestCaseError> {
    check_located(text, parse_flow(text, &ports).map(drop))?;
    check_located(text, parse_flow_filter(text, &ports, false).map(drop))?;
    check_located(text, parse_flow_filter(text, &ports, true).map(drop))?;
    check_located(text, parse_packet(text, &ports).map(drop))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Oracle: ovs-ofctl itself (skipped when it is not installed).
// ---------------------------------------------------------------------------

/// Prints 400 random valid rules (OpenFlow 1.0-printable actions) with our printer and with `ovs-ofctl
/// parse-flows` (fed our text) and requires the same bytes for the match
/// and the actions.
#[test]
fn printer_agrees_with_ovs_ofctl_byte_for_byte() {
    let ok = std::process::Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP printer_agrees_with_ovs_ofctl_byte_for_byte: ovs-ofctl not installed");
        return;
    }
    // FLOW_SYNTAX_ORACLE_SEED / FLOW_SYNTAX_ORACLE_N widen a one-off run.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut rng = StdRng::seed_from_u64(env("FLOW_SYNTAX_ORACLE_SEED", 0x05ee_d0f5));
    let n = env("FLOW_SYNTAX_ORACLE_N", 400) as usize;
    let mut rules = Vec::new();
    let mut skipped = 0;
    while rules.len() < n {
        let mut r = random_rule(&mut rng, true);
        // Cookie and timeouts print differently in a flow_mod; the matches
        // and actions are what we compare.
        r.cookie = 0;
        r.idle_timeout = 0;
        r.hard_timeout = 0;
        // ovs-ofctl 3.1 reads an address-style IPv6 mask that starts with a
        // decimal digit ("/7363:bbf5:…") as a prefix length and fails; its
        // own printer emits such masks, so this is an OVS parser quirk, not
        // a printing difference. Leave those rules out of the comparison.
        let text = format_flow(&r);
        let quirk = text.split(',').any(|t| {
            (t.starts_with("ipv6_src=") || t.starts_with("ipv6_dst="))
                && t.split_once('/').is_some_and(|(_, m)| {
                    m.contains(':') && m.starts_with(|c: char| c.is_ascii_digit())
                })
        });
        if quirk {
            skipped += 1;
        } else {
            rules.push(r);
        }
    }
    let dir = std::env::temp_dir().join(format!("xswitch-flow-syntax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flows.txt");
    let text: String = rules.iter().map(|r| format_flow(r) + "\n").collect();
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("ovs-ofctl")
        .arg("parse-flows")
        .arg(&file)
        .output()
        .unwrap();
    if std::env::var_os("KEEP_FLOWS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            l.split_once("_FLOW_MOD")
                .and_then(|(_, rest)| rest.split_once(": ADD "))
        })
        .map(|(_, flow)| flow)
        .collect();
    assert_eq!(printed.len(), rules.len(), "{stdout}");
    eprintln!(
        "compared {} rules with ovs-ofctl ({skipped} skipped for its IPv6 mask quirk)",
        rules.len()
    );
    for (rule, theirs) in rules.iter().zip(printed) {
        let ours = format_dump_flow(rule, None);
        assert_eq!(ours.trim_start(), theirs, "flow {}", format_flow(rule));
    }
}
