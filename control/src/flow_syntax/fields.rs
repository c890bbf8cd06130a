//! Match fields: names, value syntax, prerequisites, and how each lands in
//! the [`FlowKey`] layout.
//!
//! # What
//! [`MatchBuilder`] takes the match tokens of a flow one at a time
//! (`nw_src=10.0.0.0/8`, `tcp`, …) and accumulates a [`FlowMatch`]. When all
//! tokens are in, [`MatchBuilder::finish`] checks every field's protocol
//! prerequisite against the final `dl_type`/`nw_proto`, so the order of
//! tokens does not matter (`nw_src=1.2.3.4,ip` is fine), as in `ovs-ofctl`.
//!
//! # Invariants
//! * The match stays normalised (`key == key & mask`) after every token.
//! * Each field owns a set of *slots* (disjoint parts of the key). A second
//!   token touching an owned slot is an error naming both tokens
//!   (`ovs-ofctl` silently keeps the last one); a shorthand and an explicit
//!   `dl_type`/`nw_proto` may coexist when they agree (`tcp,nw_proto=6`).
//! * A field whose prerequisite is missing is an error. `ovs-ofctl` 3.1
//!   instead drops the field with an INFO log ("normalization changed
//!   ofp_match") and installs a *wider* rule — `nw_src=1.2.3.4,actions=drop`
//!   becomes a drop-everything rule. xswitch refuses it.
//!
//! # Field sharing (see `dataplane::flow_key`)
//! `arp_spa`/`arp_tpa` live in `nw_src`/`nw_dst`, `arp_op` in `nw_proto`,
//! ICMP type/code in `tp_src`/`tp_dst`; `dl_vlan`/`dl_vlan_pcp` are masks
//! over `vlan_tci` that include the CFI ("tag present") bit; `nw_tos` is the
//! DSCP part (mask `0xfc`) and `nw_ecn` the low 2 bits of the TOS byte.

use super::error::{ErrorKind, FlowSyntaxError};
use super::value::{
    mac_to_u64, parse_ipv4_masked, parse_ipv6_masked, parse_mac_masked, parse_u64, parse_u64_masked,
};
use dataplane::flow_key::{
    ethertype, field, ipproto, FlowMatch, PortNo, FRAG_ANY, FRAG_LATER, VLAN_CFI, VLAN_PCP_MASK,
    VLAN_PCP_SHIFT, VLAN_VID_MASK,
};

/// Resolves a port name to its OpenFlow port number.
pub type PortResolver<'a> = &'a dyn Fn(&str) -> Option<PortNo>;

/// Largest port number a flow may name (`OFPP_MAX - 1`); 0xff00.. are the
/// OpenFlow reserved ports.
pub const MAX_PORT: PortNo = 0xfeff;

/// A port as written in a flow: a number, or an OpenFlow reserved port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PortRef {
    Number(PortNo),
    InPort,
    Normal,
    Flood,
    All,
}

impl PortRef {
    /// The OpenFlow name of a reserved port (`""` for a number).
    pub fn reserved_name(self) -> &'static str {
        match self {
            PortRef::Number(_) => "",
            PortRef::InPort => "IN_PORT",
            PortRef::Normal => "NORMAL",
            PortRef::Flood => "FLOOD",
            PortRef::All => "ALL",
        }
    }
}

/// Parses a port: a number `0..=MAX_PORT`, a reserved name (any case), or a
/// name known to `ports` (whose number must be in range too). Reserved
/// ports xswitch lacks are errors here.
pub(super) fn parse_port(s: &str, ports: PortResolver<'_>) -> Result<PortRef, ErrorKind> {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return match parse_u64(s) {
            Ok(n) if n <= u64::from(MAX_PORT) => Ok(PortRef::Number(n as PortNo)),
            Ok(n) => Err(ErrorKind::PortOutOfRange { number: n }),
            Err(e) => Err(ErrorKind::Invalid(format!("invalid port number: {e}"))),
        };
    }
    match s.to_ascii_lowercase().as_str() {
        "in_port" => return Ok(PortRef::InPort),
        "normal" => return Ok(PortRef::Normal),
        "flood" => return Ok(PortRef::Flood),
        "all" => return Ok(PortRef::All),
        "local" | "controller" => {
            return Err(ErrorKind::NoSuchReservedPort {
                name: s.to_ascii_uppercase(),
            })
        }
        "table" | "none" | "any" => {
            return Err(ErrorKind::ReservedPortMisused {
                name: s.to_ascii_uppercase(),
                hint: " (xswitch has one table and no ANY/NONE port)",
            })
        }
        _ => {}
    }
    if s.is_empty() {
        return Err(ErrorKind::Invalid("missing port".into()));
    }
    match ports(s) {
        Some(n) if n <= MAX_PORT => Ok(PortRef::Number(n)),
        Some(n) => Err(ErrorKind::PortOutOfRange { number: n.into() }),
        None => Err(ErrorKind::UnknownPort { name: s.into() }),
    }
}

/// Every match field the syntax knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    InPort,
    DlSrc,
    DlDst,
    DlType,
    DlVlan,
    DlVlanPcp,
    VlanTci,
    NwSrc,
    NwDst,
    NwProto,
    NwTos,
    IpDscp,
    NwEcn,
    NwTtl,
    NwFrag,
    TpSrc,
    TpDst,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
}

/// Field names and OVS aliases (`ovs-fields(7)`); names are case-sensitive,
/// as in `ovs-ofctl`.
const FIELD_NAMES: &[(&str, Field)] = &[
    ("in_port", Field::InPort),
    ("dl_src", Field::DlSrc),
    ("eth_src", Field::DlSrc),
    ("dl_dst", Field::DlDst),
    ("eth_dst", Field::DlDst),
    ("dl_type", Field::DlType),
    ("eth_type", Field::DlType),
    ("dl_vlan", Field::DlVlan),
    ("dl_vlan_pcp", Field::DlVlanPcp),
    ("vlan_tci", Field::VlanTci),
    ("nw_src", Field::NwSrc),
    ("ip_src", Field::NwSrc),
    ("nw_dst", Field::NwDst),
    ("ip_dst", Field::NwDst),
    ("nw_proto", Field::NwProto),
    ("ip_proto", Field::NwProto),
    ("nw_tos", Field::NwTos),
    ("ip_dscp", Field::IpDscp),
    ("nw_ecn", Field::NwEcn),
    ("ip_ecn", Field::NwEcn),
    ("nw_ttl", Field::NwTtl),
    ("nw_frag", Field::NwFrag),
    ("ip_frag", Field::NwFrag),
    ("tp_src", Field::TpSrc),
    ("tp_dst", Field::TpDst),
    ("tcp_src", Field::TcpSrc),
    ("tcp_dst", Field::TcpDst),
    ("udp_src", Field::UdpSrc),
    ("udp_dst", Field::UdpDst),
    ("sctp_src", Field::SctpSrc),
    ("sctp_dst", Field::SctpDst),
    ("icmp_type", Field::IcmpType),
    ("icmp_code", Field::IcmpCode),
    ("icmpv6_type", Field::Icmpv6Type),
    ("icmpv6_code", Field::Icmpv6Code),
    ("arp_op", Field::ArpOp),
    ("arp_spa", Field::ArpSpa),
    ("arp_tpa", Field::ArpTpa),
    ("arp_sha", Field::ArpSha),
    ("arp_tha", Field::ArpTha),
    ("ipv6_src", Field::Ipv6Src),
    ("ipv6_dst", Field::Ipv6Dst),
    ("ipv6_label", Field::Ipv6Label),
];

/// Protocol shorthands: name, `dl_type`, optional `nw_proto`.
const SHORTHANDS: &[(&str, u16, Option<u8>)] = &[
    ("ip", ethertype::IPV4, None),
    ("ipv6", ethertype::IPV6, None),
    ("icmp", ethertype::IPV4, Some(ipproto::ICMP)),
    ("icmp6", ethertype::IPV6, Some(ipproto::ICMPV6)),
    ("icmpv6", ethertype::IPV6, Some(ipproto::ICMPV6)),
    ("tcp", ethertype::IPV4, Some(ipproto::TCP)),
    ("tcp6", ethertype::IPV6, Some(ipproto::TCP)),
    ("udp", ethertype::IPV4, Some(ipproto::UDP)),
    ("udp6", ethertype::IPV6, Some(ipproto::UDP)),
    ("sctp", ethertype::IPV4, Some(ipproto::SCTP)),
    ("sctp6", ethertype::IPV6, Some(ipproto::SCTP)),
    ("arp", ethertype::ARP, None),
    ("rarp", ETH_TYPE_RARP, None),
    ("mpls", ETH_TYPE_MPLS, None),
    ("mplsm", ETH_TYPE_MPLS_MCAST, None),
];

/// Ethertypes OVS prints by name although xswitch parses nothing above them.
pub(super) const ETH_TYPE_RARP: u16 = 0x8035;
pub(super) const ETH_TYPE_MPLS: u16 = 0x8847;
pub(super) const ETH_TYPE_MPLS_MCAST: u16 = 0x8848;

/// Open vSwitch match fields xswitch does not implement, for a better error.
const OVS_ONLY_FIELDS: &[&str] = &[
    "metadata",
    "tun_id",
    "tunnel_id",
    "tun_src",
    "tun_dst",
    "ct_state",
    "ct_zone",
    "ct_mark",
    "ct_label",
    "tcp_flags",
    "mpls_label",
    "mpls_tc",
    "mpls_bos",
    "mpls_ttl",
    "nd_target",
    "nd_sll",
    "nd_tll",
    "pkt_mark",
    "skb_priority",
    "recirc_id",
    "dp_hash",
    "conj_id",
    "actset_output",
    "packet_type",
    "igmp_type",
    "igmp_code",
    "out_port",
    "out_group",
    "importance",
];

/// Looks up a protocol shorthand.
pub(super) fn shorthand(name: &str) -> Option<(u16, Option<u8>)> {
    SHORTHANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, t, p)| (t, p))
}

/// The hint appended to "unknown field".
pub(super) fn unknown_field_hint(name: &str) -> &'static str {
    let base = name.split('[').next().unwrap_or(name);
    if Field::lookup(&base.to_ascii_lowercase()).is_some()
        || shorthand(&base.to_ascii_lowercase()).is_some()
    {
        " (field names are lower case)"
    } else if base == "vlan_vid" || base == "vlan_pcp" {
        " (match VLANs with dl_vlan, dl_vlan_pcp or vlan_tci)"
    } else if OVS_ONLY_FIELDS.contains(&base)
        || (base.starts_with("reg") && base[3..].chars().all(|c| c.is_ascii_digit()))
        || (base.starts_with("xreg") && base[4..].chars().all(|c| c.is_ascii_digit()))
    {
        " (an Open vSwitch field xswitch does not support)"
    } else {
        ""
    }
}

/// What must be in the match for a field to be meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prereq {
    None,
    /// `ip` or `ipv6`.
    IpAny,
    /// `ip` or `arp` (`nw_src`, `nw_dst`).
    Ipv4OrArp,
    /// `ip`, `ipv6` or `arp` (`nw_proto`).
    IpAnyOrArp,
    Arp,
    Ipv6,
    /// IPv4 with `nw_proto` tcp/udp/sctp/icmp, or IPv6 with tcp/udp/sctp/icmp6.
    L4,
    Tcp,
    Udp,
    Sctp,
    /// `tcp` or `udp` (either IP version): the ports `mod_tp_*` can rewrite.
    TcpOrUdp,
    /// `icmp` or `icmp6`.
    IcmpAny,
    Icmp6,
    /// The match requires a VLAN tag (`dl_vlan=N` or `vlan_tci` with the CFI bit).
    VlanTag,
    /// `ip` only (IPv4 address rewrites).
    Ipv4,
}

impl Prereq {
    /// Human text and an example shorthand for errors.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Prereq::None => ("nothing", ""),
            Prereq::IpAny => ("ip or ipv6", "ip"),
            Prereq::Ipv4OrArp => ("ip or arp", "ip"),
            Prereq::IpAnyOrArp => ("ip, ipv6 or arp", "ip"),
            Prereq::Arp => ("arp", "arp"),
            Prereq::Ipv6 => ("ipv6", "ipv6"),
            Prereq::L4 => (
                "tcp, udp, sctp or icmp (or tcp6, udp6, sctp6, icmp6)",
                "tcp",
            ),
            Prereq::Tcp => ("tcp or tcp6", "tcp"),
            Prereq::Udp => ("udp or udp6", "udp"),
            Prereq::Sctp => ("sctp or sctp6", "sctp"),
            Prereq::TcpOrUdp => ("tcp or udp (or tcp6, udp6)", "tcp"),
            Prereq::IcmpAny => ("icmp or icmp6", "icmp"),
            Prereq::Icmp6 => ("icmp6", "icmp6"),
            Prereq::VlanTag => ("a VLAN tag", "dl_vlan=10"),
            Prereq::Ipv4 => ("ip", "ip"),
        }
    }

    /// Is the prerequisite met by match `m` (exact `dl_type`/`nw_proto`)?
    pub fn met_by(self, m: &FlowMatch) -> bool {
        let dl = (m.mask.dl_type() == 0xffff).then(|| m.key.dl_type());
        let proto = (m.mask.nw_proto() == 0xff).then(|| m.key.nw_proto());
        let v4 = dl == Some(ethertype::IPV4);
        let v6 = dl == Some(ethertype::IPV6);
        let arp = dl == Some(ethertype::ARP);
        let ip_proto = |p: u8| (v4 || v6) && proto == Some(p);
        match self {
            Prereq::None => true,
            Prereq::IpAny => v4 || v6,
            Prereq::Ipv4OrArp => v4 || arp,
            Prereq::IpAnyOrArp => v4 || v6 || arp,
            Prereq::Arp => arp,
            Prereq::Ipv6 => v6,
            Prereq::L4 => {
                ip_proto(ipproto::TCP)
                    || ip_proto(ipproto::UDP)
                    || ip_proto(ipproto::SCTP)
                    || (v4 && proto == Some(ipproto::ICMP))
                    || (v6 && proto == Some(ipproto::ICMPV6))
            }
            Prereq::Tcp => ip_proto(ipproto::TCP),
            Prereq::Udp => ip_proto(ipproto::UDP),
            Prereq::Sctp => ip_proto(ipproto::SCTP),
            Prereq::TcpOrUdp => ip_proto(ipproto::TCP) || ip_proto(ipproto::UDP),
            Prereq::IcmpAny => {
                (v4 && proto == Some(ipproto::ICMP)) || (v6 && proto == Some(ipproto::ICMPV6))
            }
            Prereq::Icmp6 => v6 && proto == Some(ipproto::ICMPV6),
            Prereq::VlanTag => {
                m.mask.vlan_tci() & VLAN_CFI != 0 && m.key.vlan_tci() & VLAN_CFI != 0
            }
            Prereq::Ipv4 => v4,
        }
    }
}

/// Does the match select only non-first fragments (`nw_frag=later`)? OVS
/// then refuses every L4 field: `mf_are_prereqs_ok()` requires
/// `!(nw_frag & FLOW_NW_FRAG_LATER)` for TCP, UDP, SCTP and ICMP fields.
pub(super) fn later_fragment(m: &FlowMatch) -> bool {
    m.key.nw_frag() & FRAG_LATER != 0
}

impl Prereq {
    /// Is this an L4 prerequisite (void on later fragments)?
    pub fn is_l4(self) -> bool {
        matches!(
            self,
            Prereq::L4
                | Prereq::Tcp
                | Prereq::Udp
                | Prereq::Sctp
                | Prereq::TcpOrUdp
                | Prereq::IcmpAny
                | Prereq::Icmp6
        )
    }
}

/// Is the match's protocol ICMP (v4 or v6), so that `tp_src`/`tp_dst` hold
/// an 8-bit type/code?
pub(super) fn is_icmp(m: &FlowMatch) -> bool {
    Prereq::IcmpAny.met_by(m)
}

/// Disjoint parts of the key a field can own (bit flags).
mod slot {
    pub const IN_PORT: u32 = 1 << 0;
    pub const DL_SRC: u32 = 1 << 1;
    pub const DL_DST: u32 = 1 << 2;
    pub const DL_TYPE: u32 = 1 << 3;
    pub const VLAN_VID: u32 = 1 << 4;
    pub const VLAN_PCP: u32 = 1 << 5;
    pub const NW_SRC: u32 = 1 << 6;
    pub const NW_DST: u32 = 1 << 7;
    pub const NW_PROTO: u32 = 1 << 8;
    pub const DSCP: u32 = 1 << 9;
    pub const ECN: u32 = 1 << 10;
    pub const TTL: u32 = 1 << 11;
    pub const FRAG: u32 = 1 << 12;
    pub const TP_SRC: u32 = 1 << 13;
    pub const TP_DST: u32 = 1 << 14;
    pub const ARP_SHA: u32 = 1 << 15;
    pub const ARP_THA: u32 = 1 << 16;
    pub const V6_SRC: u32 = 1 << 17;
    pub const V6_DST: u32 = 1 << 18;
    pub const V6_LABEL: u32 = 1 << 19;
}

impl Field {
    /// Finds a field by its (case-sensitive) name or alias.
    pub fn lookup(name: &str) -> Option<Field> {
        FIELD_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, f)| f)
    }

    /// The prerequisite the match must meet.
    pub fn prereq(self) -> Prereq {
        use Field::*;
        match self {
            InPort | DlSrc | DlDst | DlType | DlVlan | DlVlanPcp | VlanTci => Prereq::None,
            NwSrc | NwDst => Prereq::Ipv4OrArp,
            NwProto => Prereq::IpAnyOrArp,
            NwTos | IpDscp | NwEcn | NwTtl | NwFrag => Prereq::IpAny,
            TpSrc | TpDst => Prereq::L4,
            TcpSrc | TcpDst => Prereq::Tcp,
            UdpSrc | UdpDst => Prereq::Udp,
            SctpSrc | SctpDst => Prereq::Sctp,
            IcmpType | IcmpCode => Prereq::IcmpAny,
            Icmpv6Type | Icmpv6Code => Prereq::Icmp6,
            ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => Prereq::Arp,
            Ipv6Src | Ipv6Dst | Ipv6Label => Prereq::Ipv6,
        }
    }

    /// Does the field accept `value/mask`?
    fn maskable(self) -> bool {
        use Field::*;
        matches!(
            self,
            DlSrc
                | DlDst
                | VlanTci
                | NwSrc
                | NwDst
                | TpSrc
                | TpDst
                | TcpSrc
                | TcpDst
                | UdpSrc
                | UdpDst
                | SctpSrc
                | SctpDst
                | ArpSpa
                | ArpTpa
                | ArpSha
                | ArpTha
                | Ipv6Src
                | Ipv6Dst
                | Ipv6Label
        )
    }
}

/// Where a token sits, for errors and conflict reports.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'t> {
    pub off: usize,
    pub token: &'t str,
    pub name: &'t str,
}

#[derive(Debug, Clone, Copy)]
struct SlotUse<'t> {
    bits: u32,
    origin: Origin<'t>,
}

#[derive(Debug, Clone, Copy)]
struct Pending<'t> {
    field: Field,
    origin: Origin<'t>,
    value: u64,
    mask: u64,
}

/// Accumulates match tokens into a [`FlowMatch`] (see the module docs).
pub(super) struct MatchBuilder<'t> {
    text: &'t str,
    /// Packet mode: no masks, every field exact.
    exact: bool,
    m: FlowMatch,
    slots: Vec<SlotUse<'t>>,
    dl_type: Option<(u16, Origin<'t>)>,
    nw_proto: Option<(u8, Origin<'t>)>,
    pending: Vec<Pending<'t>>,
}

fn merge(m: &mut FlowMatch, pos: field::Pos, value: u64, mask: u64) {
    let old_key = m.key.get(pos);
    let old_mask = m.mask.get(pos);
    m.mask.set(pos, old_mask | mask);
    m.key.set(pos, (old_key & !mask) | (value & mask));
}

/// 1-based character column of byte offset `off`.
pub(super) fn col_of(text: &str, off: usize) -> usize {
    text.char_indices().take_while(|&(i, _)| i < off).count() + 1
}

impl<'t> MatchBuilder<'t> {
    pub fn new(text: &'t str, exact: bool) -> Self {
        MatchBuilder {
            text,
            exact,
            m: FlowMatch::ANY,
            slots: Vec::new(),
            dl_type: None,
            nw_proto: None,
            pending: Vec::new(),
        }
    }

    fn err(&self, o: Origin<'_>, kind: ErrorKind) -> FlowSyntaxError {
        FlowSyntaxError::at(self.text, o.off, o.token, kind)
    }

    /// Applies a protocol shorthand (`ip`, `tcp6`, …); false if `name` is none.
    pub fn shorthand(&mut self, o: Origin<'t>) -> Result<bool, FlowSyntaxError> {
        let Some((dl_type, proto)) = shorthand(o.name) else {
            return Ok(false);
        };
        self.set_dl_type(dl_type, o)?;
        if let Some(p) = proto {
            self.set_nw_proto(p, o)?;
        }
        Ok(true)
    }

    fn set_dl_type(&mut self, v: u16, o: Origin<'t>) -> Result<(), FlowSyntaxError> {
        if let Some((prev, po)) = self.dl_type {
            if prev != v {
                return Err(self.contradiction(o, po));
            }
        } else {
            self.dl_type = Some((v, o));
        }
        merge(&mut self.m, field::DL_TYPE, v.into(), 0xffff);
        Ok(())
    }

    fn set_nw_proto(&mut self, v: u8, o: Origin<'t>) -> Result<(), FlowSyntaxError> {
        if let Some((prev, po)) = self.nw_proto {
            if prev != v {
                return Err(self.contradiction(o, po));
            }
        } else {
            self.nw_proto = Some((v, o));
        }
        merge(&mut self.m, field::NW_PROTO, v.into(), 0xff);
        Ok(())
    }

    fn contradiction(&self, o: Origin<'_>, prev: Origin<'_>) -> FlowSyntaxError {
        self.err(
            o,
            ErrorKind::Contradiction {
                field: o.token.into(),
                other: prev.token.into(),
                other_col: col_of(self.text, prev.off),
            },
        )
    }

    fn claim(&mut self, bits: u32, o: Origin<'t>) -> Result<(), FlowSyntaxError> {
        if let Some(prev) = self.slots.iter().find(|u| u.bits & bits != 0) {
            let kind = if prev.origin.name == o.name {
                ErrorKind::DuplicateField {
                    field: o.name.into(),
                    first_col: col_of(self.text, prev.origin.off),
                }
            } else {
                ErrorKind::OverlappingField {
                    field: o.name.into(),
                    other: prev.origin.name.into(),
                    other_col: col_of(self.text, prev.origin.off),
                }
            };
            return Err(self.err(o, kind));
        }
        self.slots.push(SlotUse { bits, origin: o });
        Ok(())
    }

    /// Applies one `field=value` token.
    pub fn field(
        &mut self,
        f: Field,
        value: &'t str,
        o: Origin<'t>,
        ports: PortResolver<'_>,
    ) -> Result<(), FlowSyntaxError> {
        let text = self.text;
        let bad = move |kind: ErrorKind| FlowSyntaxError::at(text, o.off, o.token, kind);
        let invalid = move |why: &str| bad(ErrorKind::Invalid(why.into()));
        let range = move |v: u64, range: &'static str| {
            bad(ErrorKind::OutOfRange {
                field: o.name.into(),
                value: v,
                range,
            })
        };
        if value.contains('/') {
            if self.exact {
                return Err(bad(ErrorKind::ExactValueRequired {
                    field: o.name.into(),
                }));
            }
            if !f.maskable() {
                return Err(bad(ErrorKind::MaskNotAllowed {
                    field: o.name.into(),
                }));
            }
        }
        // Integer fields: parse `value[/mask]` and check both against `max`.
        let int =
            move |max: u64, range_text: &'static str| -> Result<(u64, u64), FlowSyntaxError> {
                let (v, m, _) = parse_u64_masked(value, max).map_err(invalid)?;
                if v > max {
                    return Err(range(v, range_text));
                }
                if m > max {
                    return Err(invalid("mask has bits outside the field"));
                }
                Ok((v, m))
            };
        use Field::*;
        let (bits, pending) = match f {
            InPort => {
                let port = match parse_port(value, ports).map_err(&bad)? {
                    PortRef::Number(n) => n,
                    reserved => {
                        return Err(bad(ErrorKind::ReservedPortMisused {
                            name: reserved.reserved_name().into(),
                            hint: " as in_port (give a port number or name)",
                        }))
                    }
                };
                merge(&mut self.m, field::IN_PORT, port.into(), 0xffff_ffff);
                (slot::IN_PORT, None)
            }
            DlSrc | DlDst | ArpSha | ArpTha => {
                let (v, m, _) = parse_mac_masked(value).map_err(invalid)?;
                let (pos, bits) = match f {
                    DlSrc => (field::DL_SRC, slot::DL_SRC),
                    DlDst => (field::DL_DST, slot::DL_DST),
                    ArpSha => (field::ARP_SHA, slot::ARP_SHA),
                    _ => (field::ARP_THA, slot::ARP_THA),
                };
                merge(&mut self.m, pos, mac_to_u64(v), mac_to_u64(m));
                (bits, None)
            }
            DlType => {
                let (v, _) = int(0xffff, "0..=0xffff")?;
                self.claim(slot::DL_TYPE, o)?;
                self.set_dl_type(v as u16, o)?;
                return Ok(());
            }
            DlVlan => {
                let v = parse_u64(value).map_err(invalid)?;
                if v == 0xffff {
                    // OFP10_VLAN_NONE: the packet has no VLAN tag.
                    merge(&mut self.m, field::VLAN_TCI, 0, 0xffff);
                    (slot::VLAN_VID | slot::VLAN_PCP, None)
                } else if v > u64::from(VLAN_VID_MASK) {
                    return Err(range(v, "0..=4095, or 0xffff for no VLAN"));
                } else {
                    let cfi = u64::from(VLAN_CFI);
                    merge(
                        &mut self.m,
                        field::VLAN_TCI,
                        cfi | v,
                        cfi | u64::from(VLAN_VID_MASK),
                    );
                    (slot::VLAN_VID, None)
                }
            }
            DlVlanPcp => {
                let (v, _) = int(7, "0..=7")?;
                let cfi = u64::from(VLAN_CFI);
                merge(
                    &mut self.m,
                    field::VLAN_TCI,
                    cfi | (v << VLAN_PCP_SHIFT),
                    cfi | u64::from(VLAN_PCP_MASK),
                );
                (slot::VLAN_PCP, None)
            }
            VlanTci => {
                let (v, m) = int(0xffff, "0..=0xffff")?;
                merge(&mut self.m, field::VLAN_TCI, v, m);
                (slot::VLAN_VID | slot::VLAN_PCP, None)
            }
            NwSrc | NwDst | ArpSpa | ArpTpa => {
                let (v, m, _) = parse_ipv4_masked(value).map_err(invalid)?;
                let (pos, bits) = if matches!(f, NwSrc | ArpSpa) {
                    (field::NW_SRC, slot::NW_SRC)
                } else {
                    (field::NW_DST, slot::NW_DST)
                };
                merge(&mut self.m, pos, v.into(), m.into());
                (bits, None)
            }
            NwProto | ArpOp => {
                let (v, _) = int(0xff, "0..=255")?;
                self.claim(slot::NW_PROTO, o)?;
                self.set_nw_proto(v as u8, o)?;
                self.pending.push(Pending {
                    field: f,
                    origin: o,
                    value: v,
                    mask: 0xff,
                });
                return Ok(());
            }
            NwTos => {
                let (v, _) = int(0xff, "0..=255")?;
                if v & 3 != 0 {
                    return Err(bad(ErrorKind::TosNotMultipleOf4 {
                        field: o.name.into(),
                        value: v,
                        dscp: v >> 2,
                    }));
                }
                merge(&mut self.m, field::NW_TOS, v, 0xfc);
                (slot::DSCP, None)
            }
            IpDscp => {
                let (v, _) = int(63, "0..=63")?;
                merge(&mut self.m, field::NW_TOS, v << 2, 0xfc);
                (slot::DSCP, None)
            }
            NwEcn => {
                let (v, _) = int(3, "0..=3")?;
                merge(&mut self.m, field::NW_TOS, v, 0x03);
                (slot::ECN, None)
            }
            NwTtl => {
                let (v, _) = int(0xff, "0..=255")?;
                merge(&mut self.m, field::NW_TTL, v, 0xff);
                (slot::TTL, None)
            }
            NwFrag => {
                let any = u64::from(FRAG_ANY);
                let later = u64::from(FRAG_LATER);
                let (v, m) = match value {
                    "no" => (0, any | later),
                    "first" => (any, any | later),
                    "later" => (any | later, any | later),
                    "yes" if !self.exact => (any, any),
                    "not_later" if !self.exact => (0, later),
                    "yes" | "not_later" => {
                        return Err(invalid("a packet is nw_frag=no, first or later"))
                    }
                    _ => {
                        return Err(invalid(
                            "nw_frag is one of no, yes, first, later, not_later",
                        ))
                    }
                };
                merge(&mut self.m, field::NW_FRAG, v, m);
                (slot::FRAG, None)
            }
            TpSrc | TpDst | TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst => {
                let (v, m) = int(0xffff, "0..=65535")?;
                let src = matches!(f, TpSrc | TcpSrc | UdpSrc | SctpSrc);
                let (pos, bits) = if src {
                    (field::TP_SRC, slot::TP_SRC)
                } else {
                    (field::TP_DST, slot::TP_DST)
                };
                merge(&mut self.m, pos, v, m);
                (bits, Some((v, m)))
            }
            IcmpType | IcmpCode | Icmpv6Type | Icmpv6Code => {
                let (v, _) = int(0xff, "0..=255")?;
                let (pos, bits) = if matches!(f, IcmpType | Icmpv6Type) {
                    (field::TP_SRC, slot::TP_SRC)
                } else {
                    (field::TP_DST, slot::TP_DST)
                };
                merge(&mut self.m, pos, v, 0xffff);
                (bits, None)
            }
            Ipv6Src | Ipv6Dst => {
                let (v, m, _) = parse_ipv6_masked(value).map_err(invalid)?;
                let (hi, lo, bits) = if f == Ipv6Src {
                    (field::IPV6_SRC_HI, field::IPV6_SRC_LO, slot::V6_SRC)
                } else {
                    (field::IPV6_DST_HI, field::IPV6_DST_LO, slot::V6_DST)
                };
                merge(&mut self.m, hi, (v >> 64) as u64, (m >> 64) as u64);
                merge(&mut self.m, lo, v as u64, m as u64);
                (bits, None)
            }
            Ipv6Label => {
                let (v, m) = int(0xfffff, "0..=0xfffff")?;
                merge(&mut self.m, field::IPV6_LABEL, v, m);
                (slot::V6_LABEL, None)
            }
        };
        self.claim(bits, o)?;
        let (value, mask) = pending.unwrap_or((0, 0));
        self.pending.push(Pending {
            field: f,
            origin: o,
            value,
            mask,
        });
        Ok(())
    }

    /// Checks prerequisites (first offending token in input order) and
    /// returns the match.
    pub fn finish(self) -> Result<FlowMatch, FlowSyntaxError> {
        let m = self.m;
        for p in &self.pending {
            let pre = p.field.prereq();
            if !pre.met_by(&m) {
                let (needs, example) = pre.describe();
                return Err(self.err(
                    p.origin,
                    ErrorKind::MissingPrerequisite {
                        field: p.origin.name.into(),
                        needs,
                        example,
                    },
                ));
            }
            if pre.is_l4() && later_fragment(&m) {
                return Err(self.err(
                    p.origin,
                    ErrorKind::L4OnLaterFragment {
                        field: p.origin.name.into(),
                    },
                ));
            }
            // tp_src/tp_dst under ICMP are the 8-bit type/code: exact only.
            if matches!(p.field, Field::TpSrc | Field::TpDst)
                && is_icmp(&m)
                && (p.mask != 0xffff || p.value > 0xff)
            {
                return Err(self.err(
                    p.origin,
                    ErrorKind::Invalid(format!(
                        "with icmp, {} is the ICMP {}: an exact value 0..=255",
                        p.origin.name,
                        if p.field == Field::TpSrc {
                            "type"
                        } else {
                            "code"
                        }
                    )),
                ));
            }
        }
        Ok(m)
    }
}
