//! Printing matches, actions and dump-flows lines the way `ovs-ofctl` does,
//! and the check that says which values have such a spelling.
//!
//! The match printer follows OVS `match_format()` (lib/match.c): priority
//! first when it is not the default, then a protocol shorthand when
//! `dl_type` (and `nw_proto`) are exact (`ip`, `tcp6`, `arp`, …; the
//! shorthand replaces `dl_type=`/`nw_proto=`), then `in_port`, the VLAN
//! (`dl_vlan`/`dl_vlan_pcp` when the mask allows, else `vlan_tci`), MACs,
//! L3 addresses under the name the protocol gives them (`arp_spa` for ARP),
//! `nw_proto`/`arp_op`, `nw_tos`, `nw_ecn`, `nw_ttl`, `nw_frag`, then the L4
//! ports (`icmp_type`/`icmp_code` for ICMP). IPv4/IPv6 masks print as `/n`
//! when they are prefixes, other masks in full; 16-bit masked values print
//! as `0xV/0xM`. Actions print in the OpenFlow 1.0 spelling `ovs-ofctl`
//! uses by default (`mod_nw_src:`, `strip_vlan`, `NORMAL`).
//!
//! Contract (tested by property): for every match that [`check_match`]
//! accepts, `parse(format(m)) == m`; for every rule [`check_rule`] accepts,
//! the dump-flows line parses back to the same rule.

use super::fields::{
    is_icmp, later_fragment, Prereq, ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST, ETH_TYPE_RARP, MAX_PORT,
};
use super::value::{fmt_ipv6, fmt_mac, prefix_len, u64_to_mac};
use core::fmt::Write as _;
use core::net::Ipv4Addr;
use core::time::Duration;
use dataplane::actions::Action;
use dataplane::classifier::{RuleSpec, DEFAULT_PRIORITY};
use dataplane::flow_key::{
    ethertype, field, ipproto, FlowKey, FlowMatch, FRAG_ANY, FRAG_LATER, VLAN_CFI, VLAN_PCP_MASK,
    VLAN_PCP_SHIFT, VLAN_VID_MASK,
};

/// The statistics part of a dump-flows line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// Time since the rule was installed.
    pub duration: Duration,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Whole seconds since the last hit (printed when known).
    pub idle_age: Option<u64>,
    /// Whole seconds since the last modification (printed when known and
    /// different from the duration's whole seconds, as OVS does).
    pub hard_age: Option<u64>,
}

fn eth_masked(s: &mut String, name: &str, k: &FlowKey, w: &FlowKey, pos: field::Pos) {
    let mask = w.get(pos);
    if mask == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", fmt_mac(u64_to_mac(k.get(pos))));
    if mask != 0xffff_ffff_ffff {
        let _ = write!(s, "/{}", fmt_mac(u64_to_mac(mask)));
    }
    s.push(',');
}

fn ipv4_masked(s: &mut String, name: &str, v: u32, mask: u32) {
    if mask == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", Ipv4Addr::from(v));
    if mask != u32::MAX {
        match prefix_len(mask.into(), 32) {
            Some(n) => {
                let _ = write!(s, "/{n}");
            }
            None => {
                let _ = write!(s, "/{}", Ipv4Addr::from(mask));
            }
        }
    }
    s.push(',');
}

fn ipv6_masked(s: &mut String, name: &str, v: u128, mask: u128) {
    if mask == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", fmt_ipv6(v));
    if mask != u128::MAX {
        match prefix_len(mask, 128) {
            Some(n) => {
                let _ = write!(s, "/{n}");
            }
            None => {
                let _ = write!(s, "/{}", fmt_ipv6(mask));
            }
        }
    }
    s.push(',');
}

fn u16_masked(s: &mut String, name: &str, v: u16, mask: u16) {
    match mask {
        0 => {}
        0xffff => {
            let _ = write!(s, "{name}={v},");
        }
        _ => {
            let _ = write!(s, "{name}={v:#x}/{mask:#x},");
        }
    }
}

fn v6(k: &FlowKey, hi: field::Pos, lo: field::Pos) -> u128 {
    (u128::from(k.get(hi)) << 64) | u128::from(k.get(lo))
}

/// The match in `ovs-ofctl` syntax, without priority (`""` for match-all).
pub fn format_match(m: &FlowMatch) -> String {
    format_match_with_priority(m, DEFAULT_PRIORITY)
}

/// OVS `match_format()`: `priority=N,` first unless `N` is the default.
pub(super) fn format_match_with_priority(m: &FlowMatch, priority: u16) -> String {
    let (k, w) = (&m.key, &m.mask);
    let mut s = String::new();
    if priority != DEFAULT_PRIORITY {
        let _ = write!(s, "priority={priority},");
    }

    let dl_type = k.dl_type();
    let typed = w.dl_type() != 0;
    let has_proto = w.nw_proto() != 0;
    let proto = k.nw_proto();
    let mut skip_type = false;
    let mut skip_proto = false;
    if typed {
        skip_type = true;
        let named = |v6: bool| match proto {
            ipproto::ICMP if !v6 => Some("icmp"),
            ipproto::ICMPV6 if v6 => Some("icmp6"),
            ipproto::TCP => Some(if v6 { "tcp6" } else { "tcp" }),
            ipproto::UDP => Some(if v6 { "udp6" } else { "udp" }),
            ipproto::SCTP => Some(if v6 { "sctp6" } else { "sctp" }),
            _ => None,
        };
        let word = match dl_type {
            ethertype::IPV4 | ethertype::IPV6 => {
                let is_v6 = dl_type == ethertype::IPV6;
                match has_proto.then(|| named(is_v6)).flatten() {
                    Some(w) => {
                        skip_proto = true;
                        w
                    }
                    None if is_v6 => "ipv6",
                    None => "ip",
                }
            }
            ethertype::ARP => "arp",
            ETH_TYPE_RARP => "rarp",
            ETH_TYPE_MPLS => "mpls",
            ETH_TYPE_MPLS_MCAST => "mplsm",
            _ => {
                skip_type = false;
                ""
            }
        };
        if skip_type {
            let _ = write!(s, "{word},");
        }
    }

    if w.in_port() != 0 {
        let _ = write!(s, "in_port={},", k.in_port());
    }

    let tci_mask = w.vlan_tci();
    if tci_mask != 0 {
        let tci = k.vlan_tci();
        let vid_mask = tci_mask & VLAN_VID_MASK;
        let pcp_mask = tci_mask & VLAN_PCP_MASK;
        if tci_mask & VLAN_CFI != 0
            && tci & VLAN_CFI != 0
            && (vid_mask == 0 || vid_mask == VLAN_VID_MASK)
            && (pcp_mask == 0 || pcp_mask == VLAN_PCP_MASK)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                let _ = write!(s, "dl_vlan={},", tci & VLAN_VID_MASK);
            }
            if pcp_mask != 0 {
                let _ = write!(s, "dl_vlan_pcp={},", tci >> VLAN_PCP_SHIFT);
            }
        } else if tci_mask == 0xffff {
            let _ = write!(s, "vlan_tci={tci:#06x},");
        } else {
            let _ = write!(s, "vlan_tci={tci:#06x}/{tci_mask:#06x},");
        }
    }

    eth_masked(&mut s, "dl_src", k, w, field::DL_SRC);
    eth_masked(&mut s, "dl_dst", k, w, field::DL_DST);
    if !skip_type && typed {
        let _ = write!(s, "dl_type={dl_type:#06x},");
    }

    let arp_like = dl_type == ethertype::ARP || dl_type == ETH_TYPE_RARP;
    if dl_type == ethertype::IPV6 {
        ipv6_masked(
            &mut s,
            "ipv6_src",
            v6(k, field::IPV6_SRC_HI, field::IPV6_SRC_LO),
            v6(w, field::IPV6_SRC_HI, field::IPV6_SRC_LO),
        );
        ipv6_masked(
            &mut s,
            "ipv6_dst",
            v6(k, field::IPV6_DST_HI, field::IPV6_DST_LO),
            v6(w, field::IPV6_DST_HI, field::IPV6_DST_LO),
        );
        match w.ipv6_label() {
            0 => {}
            0xfffff => {
                let _ = write!(s, "ipv6_label={:#07x},", k.ipv6_label());
            }
            lm => {
                let _ = write!(s, "ipv6_label={:#07x}/{lm:#07x},", k.ipv6_label());
            }
        }
    } else if arp_like {
        ipv4_masked(&mut s, "arp_spa", k.nw_src_u32(), w.nw_src_u32());
        ipv4_masked(&mut s, "arp_tpa", k.nw_dst_u32(), w.nw_dst_u32());
    } else {
        ipv4_masked(&mut s, "nw_src", k.nw_src_u32(), w.nw_src_u32());
        ipv4_masked(&mut s, "nw_dst", k.nw_dst_u32(), w.nw_dst_u32());
    }
    if !skip_proto && has_proto {
        let name = if arp_like { "arp_op" } else { "nw_proto" };
        let _ = write!(s, "{name}={proto},");
    }
    if arp_like {
        eth_masked(&mut s, "arp_sha", k, w, field::ARP_SHA);
        eth_masked(&mut s, "arp_tha", k, w, field::ARP_THA);
    }
    if w.nw_tos() & 0xfc != 0 {
        let _ = write!(s, "nw_tos={},", k.nw_tos() & 0xfc);
    }
    if w.nw_tos() & 0x03 != 0 {
        let _ = write!(s, "nw_ecn={},", k.nw_tos() & 0x03);
    }
    if w.nw_ttl() != 0 {
        let _ = write!(s, "nw_ttl={},", k.nw_ttl());
    }
    let (any, later) = (k.nw_frag() & FRAG_ANY != 0, k.nw_frag() & FRAG_LATER != 0);
    let frag = match w.nw_frag() {
        m if m == FRAG_ANY | FRAG_LATER => Some(match (any, later) {
            (true, true) => "later",
            (true, false) => "first",
            (false, true) => "<error>",
            (false, false) => "no",
        }),
        FRAG_ANY => Some(if any { "yes" } else { "no" }),
        FRAG_LATER => Some(if later { "later" } else { "not_later" }),
        _ => None,
    };
    if let Some(f) = frag {
        let _ = write!(s, "nw_frag={f},");
    }
    let icmp = (dl_type == ethertype::IPV4 && proto == ipproto::ICMP)
        || (dl_type == ethertype::IPV6 && proto == ipproto::ICMPV6);
    let (src, dst) = if icmp {
        ("icmp_type", "icmp_code")
    } else {
        ("tp_src", "tp_dst")
    };
    u16_masked(&mut s, src, k.tp_src(), w.tp_src());
    u16_masked(&mut s, dst, k.tp_dst(), w.tp_dst());

    if s.ends_with(',') {
        s.pop();
    }
    s
}

fn format_action(s: &mut String, a: &Action) {
    let _ = match a {
        Action::Output(p) => write!(s, "output:{p}"),
        Action::InPort => write!(s, "IN_PORT"),
        Action::Normal => write!(s, "NORMAL"),
        Action::Flood => write!(s, "FLOOD"),
        Action::All => write!(s, "ALL"),
        Action::SetDlSrc(m) => write!(s, "mod_dl_src:{}", fmt_mac(*m)),
        Action::SetDlDst(m) => write!(s, "mod_dl_dst:{}", fmt_mac(*m)),
        Action::SetVlanVid(v) => write!(s, "mod_vlan_vid:{v}"),
        Action::SetVlanPcp(p) => write!(s, "mod_vlan_pcp:{p}"),
        Action::StripVlan => write!(s, "strip_vlan"),
        Action::PushVlan(t) => write!(s, "push_vlan:{t:#x}"),
        Action::SetNwSrc(ip) => write!(s, "mod_nw_src:{ip}"),
        Action::SetNwDst(ip) => write!(s, "mod_nw_dst:{ip}"),
        Action::SetNwTos(t) => write!(s, "mod_nw_tos:{t}"),
        Action::SetTpSrc(p) => write!(s, "mod_tp_src:{p}"),
        Action::SetTpDst(p) => write!(s, "mod_tp_dst:{p}"),
        Action::DecTtl => write!(s, "dec_ttl"),
    };
}

/// The action list in `ovs-ofctl` syntax (`drop` when empty).
pub fn format_actions(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    let mut s = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_action(&mut s, a);
    }
    s
}

/// A rule as `add-flow` text: `cookie=0x5,idle_timeout=10,priority=100,ip,…,actions=…`
/// (cookie, timeouts and priority only when not default).
pub fn format_flow(rule: &RuleSpec) -> String {
    let mut s = String::new();
    if rule.cookie != 0 {
        let _ = write!(s, "cookie={:#x},", rule.cookie);
    }
    if rule.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={},", rule.idle_timeout);
    }
    if rule.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={},", rule.hard_timeout);
    }
    let m = format_match_with_priority(&rule.matcher, rule.priority);
    if !m.is_empty() {
        s.push_str(&m);
        s.push(',');
    }
    s.push_str("actions=");
    s.push_str(&format_actions(&rule.actions));
    s
}

/// OVS `ofp_print_duration`: whole seconds, then 3 decimals when the
/// fraction is whole milliseconds, else as many as needed; then `s`.
fn format_duration(s: &mut String, d: Duration) {
    let _ = write!(s, "{}", d.as_secs());
    let nsec = d.subsec_nanos();
    if nsec > 0 {
        let msec = nsec / 1_000_000;
        if msec * 1_000_000 == nsec {
            let _ = write!(s, ".{msec:03}");
        } else {
            let frac = format!("{nsec:09}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
    }
    s.push('s');
}

/// One `ovs-ofctl dump-flows` line, leading space included, e.g.
/// ` cookie=0x0, duration=1.234s, table=0, n_packets=0, n_bytes=0,
/// idle_timeout=10, idle_age=1, priority=100,ip,nw_dst=10.0.0.0/24 actions=output:2`.
///
/// With `stats == None` the line is the `--no-stats` form: cookie only
/// when non-zero, no duration/table/counters/ages. Either form is valid
/// `add-flow` input that yields `rule` again.
pub fn format_dump_flow(rule: &RuleSpec, stats: Option<&FlowStats>) -> String {
    let mut s = String::from(" ");
    if stats.is_some() || rule.cookie != 0 {
        let _ = write!(s, "cookie={:#x}, ", rule.cookie);
    }
    if let Some(st) = stats {
        s.push_str("duration=");
        format_duration(&mut s, st.duration);
        let _ = write!(
            s,
            ", table=0, n_packets={}, n_bytes={}, ",
            st.n_packets, st.n_bytes
        );
    }
    if rule.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", rule.idle_timeout);
    }
    if rule.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", rule.hard_timeout);
    }
    if let Some(st) = stats {
        if let Some(a) = st.idle_age {
            let _ = write!(s, "idle_age={a}, ");
        }
        match st.hard_age {
            Some(a) if a != st.duration.as_secs() => {
                let _ = write!(s, "hard_age={a}, ");
            }
            _ => {}
        }
    }
    let m = format_match_with_priority(&rule.matcher, rule.priority);
    if !m.is_empty() {
        s.push_str(&m);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions(&rule.actions));
    s
}

/// All key bits that belong to some field the syntax can name.
fn field_bits() -> FlowKey {
    let mut k = FlowKey::ZERO;
    for pos in [
        field::IN_PORT,
        field::DL_TYPE,
        field::VLAN_TCI,
        field::DL_DST,
        field::DL_SRC,
        field::NW_PROTO,
        field::NW_TOS,
        field::NW_SRC,
        field::NW_DST,
        field::TP_SRC,
        field::TP_DST,
        field::NW_TTL,
        field::NW_FRAG,
        field::ARP_SHA,
        field::ARP_THA,
        field::IPV6_SRC_HI,
        field::IPV6_SRC_LO,
        field::IPV6_DST_HI,
        field::IPV6_DST_LO,
        field::IPV6_LABEL,
    ] {
        k.set(pos, u64::MAX);
    }
    k
}

/// Does `m` have an `ovs-ofctl` spelling that parses back to exactly `m`?
///
/// Holds for every match the parser produces. Rejected, with the reason:
/// bits of the key outside the mask; mask bits outside named fields (e.g.
/// the inner VLAN `vlan_tci2`); partial masks on fields OVS matches only
/// exactly (`in_port`, `dl_type`, `nw_proto`, `nw_ttl`, the DSCP and ECN
/// parts of `nw_tos`, ICMP type/code); `nw_frag` value/mask pairs no keyword
/// produces; fields whose prerequisite (see `ovs-fields(7)`) is not exact in
/// the match; `in_port` above 65279.
pub fn check_match(m: &FlowMatch) -> Result<(), String> {
    let (k, w) = (&m.key, &m.mask);
    if k.masked(w) != *k {
        return Err("key has bits outside the mask".into());
    }
    if w.vlan_tci2() != 0 {
        return Err("the inner VLAN (vlan_tci2) has no ovs-ofctl syntax".into());
    }
    let named = field_bits();
    if (0..w.words.len()).any(|i| w.words[i] & !named.words[i] != 0) {
        return Err("mask has bits outside every field".into());
    }
    let exact_or_none = [
        ("in_port", w.in_port() as u64, 0xffff_ffff),
        ("dl_type", w.dl_type().into(), 0xffff),
        ("nw_proto", w.nw_proto().into(), 0xff),
        ("nw_ttl", w.nw_ttl().into(), 0xff),
        ("nw_tos", (w.nw_tos() & 0xfc).into(), 0xfc),
        ("nw_ecn", (w.nw_tos() & 0x03).into(), 0x03),
    ];
    for (name, mask, full) in exact_or_none {
        if mask != 0 && mask != full {
            return Err(format!("{name} is matched with a partial mask"));
        }
    }
    if w.in_port() != 0 && k.in_port() > MAX_PORT {
        return Err(format!(
            "in_port {} is a reserved OpenFlow port",
            k.in_port()
        ));
    }
    let frag = (k.nw_frag(), w.nw_frag());
    let any = FRAG_ANY;
    let both = FRAG_ANY | FRAG_LATER;
    if w.nw_frag() != 0
        && ![
            (0, both),
            (any, both),
            (both, both),
            (any, any),
            (0, FRAG_LATER),
        ]
        .contains(&frag)
    {
        return Err("nw_frag value/mask is not one of no, yes, first, later, not_later".into());
    }
    let present = |v: u64| v != 0;
    let checks = [
        ("nw_src", present(w.nw_src_u32().into()), Prereq::Ipv4OrArp),
        ("nw_dst", present(w.nw_dst_u32().into()), Prereq::Ipv4OrArp),
        ("nw_proto", present(w.nw_proto().into()), Prereq::IpAnyOrArp),
        ("nw_tos", present(w.nw_tos().into()), Prereq::IpAny),
        ("nw_ttl", present(w.nw_ttl().into()), Prereq::IpAny),
        ("nw_frag", present(w.nw_frag().into()), Prereq::IpAny),
        ("tp_src", present(w.tp_src().into()), Prereq::L4),
        ("tp_dst", present(w.tp_dst().into()), Prereq::L4),
        ("arp_sha", present(w.get(field::ARP_SHA)), Prereq::Arp),
        ("arp_tha", present(w.get(field::ARP_THA)), Prereq::Arp),
        (
            "ipv6_src",
            present(w.get(field::IPV6_SRC_HI) | w.get(field::IPV6_SRC_LO)),
            Prereq::Ipv6,
        ),
        (
            "ipv6_dst",
            present(w.get(field::IPV6_DST_HI) | w.get(field::IPV6_DST_LO)),
            Prereq::Ipv6,
        ),
        ("ipv6_label", present(w.ipv6_label().into()), Prereq::Ipv6),
    ];
    for (name, is_set, pre) in checks {
        if is_set && !pre.met_by(m) {
            return Err(format!("{name} is matched without {}", pre.describe().0));
        }
        if is_set && pre.is_l4() && later_fragment(m) {
            return Err(format!("{name} is matched on later fragments"));
        }
    }
    if is_icmp(m) {
        for (name, v, mask) in [
            ("icmp_type", k.tp_src(), w.tp_src()),
            ("icmp_code", k.tp_dst(), w.tp_dst()),
        ] {
            if mask != 0 && (mask != 0xffff || v > 0xff) {
                return Err(format!("{name} must be an exact value 0..=255"));
            }
        }
    }
    Ok(())
}

/// [`check_match`] plus the actions' value ranges: output ports
/// `0..=65279`, VLAN id `0..=4095`, PCP `0..=7`, `push_vlan` ethertype
/// 0x8100/0x88a8, `mod_nw_tos` a multiple of 4. Rules that pass print to
/// text that parses back to the identical rule.
pub fn check_rule(rule: &RuleSpec) -> Result<(), String> {
    check_match(&rule.matcher)?;
    for a in &rule.actions {
        match *a {
            Action::Output(p) if p > MAX_PORT => {
                return Err(format!("output:{p} is a reserved OpenFlow port"))
            }
            Action::SetVlanVid(v) if v > VLAN_VID_MASK => {
                return Err(format!("mod_vlan_vid:{v} is out of range"))
            }
            Action::SetVlanPcp(p) if p > 7 => {
                return Err(format!("mod_vlan_pcp:{p} is out of range"))
            }
            Action::PushVlan(t) if t != ethertype::VLAN && t != ethertype::QINQ => {
                return Err(format!("push_vlan:{t:#x} is not a VLAN ethertype"))
            }
            Action::SetNwTos(t) if t & 3 != 0 => {
                return Err(format!("mod_nw_tos:{t} is not a multiple of 4"))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_prints_like_ofp_print_duration() {
        let f = |d| {
            let mut s = String::new();
            format_duration(&mut s, d);
            s
        };
        assert_eq!(f(Duration::from_secs(5)), "5s");
        assert_eq!(f(Duration::from_millis(1234)), "1.234s");
        assert_eq!(f(Duration::from_millis(1200)), "1.200s");
        assert_eq!(f(Duration::new(1, 1_500)), "1.0000015s");
    }
}
