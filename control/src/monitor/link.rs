//! Link state as rtnetlink reports it, and the parser that turns one
//! netlink datagram into link messages.
//!
//! # What
//! [`LinkState`] is the part of an `RTM_NEWLINK` message the switch acts on.
//! [`parse_datagram`] walks every `nlmsghdr` in a datagram and yields
//! [`Parsed`] items: link news, link deletions, the end of a dump, kernel
//! errors, or "malformed".
//!
//! # Invariants
//! * Nothing here panics on bad bytes: a message whose header or length is
//!   wrong ends the walk with one [`Parsed::Malformed`]; an attribute the
//!   library cannot parse is skipped (the others still count), so a kernel
//!   newer than `netlink-packet-route` never blinds the monitor.
//! * Only `AF_UNSPEC` link messages are link state. The bridge sends
//!   `RTM_NEWLINK`/`RTM_DELLINK` with family `AF_BRIDGE` to the same group
//!   when a port joins or leaves a bridge; reading those as "link deleted"
//!   would remove a live port, so they are [`Parsed::Other`].
//! * `carrier` is `IFLA_CARRIER` when the kernel sends it, else the
//!   `IFF_LOWER_UP` flag (which is what `IFLA_CARRIER` mirrors).

use netlink_packet_core::{
    NetlinkBuffer, NlaBuffer, NlasIterator, ParseableParametrized, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP_INTR,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, State};
use netlink_packet_route::AddressFamily;
use std::fmt;

/// Size of `struct nlmsghdr`.
const NETLINK_HEADER_LEN: usize = 16;
/// `RTM_NEWLINK` (linux/rtnetlink.h).
pub(crate) const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub(crate) const RTM_DELLINK: u16 = 17;
/// `RTM_GETLINK`.
pub(crate) const RTM_GETLINK: u16 = 18;

// IFLA_* attribute numbers (linux/if_link.h) of the attributes we read.
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_CARRIER: u16 = 33;

/// RFC 2863 operational state (`IFLA_OPERSTATE`), as `ip link` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperState {
    /// `UNKNOWN`: the driver does not report it (loopback, some virtual
    /// devices).
    Unknown,
    /// `NOTPRESENT`.
    NotPresent,
    /// `DOWN`.
    Down,
    /// `LOWERLAYERDOWN`: e.g. a veth whose peer is down.
    LowerLayerDown,
    /// `TESTING`.
    Testing,
    /// `DORMANT`.
    Dormant,
    /// `UP`.
    Up,
    /// A value newer than this code.
    Other(u8),
}

impl From<State> for OperState {
    fn from(s: State) -> Self {
        match s {
            State::Unknown => OperState::Unknown,
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            State::Other(v) => OperState::Other(v),
            // `State` is non-exhaustive; a future named state is "other".
            _ => OperState::Other(u8::MAX),
        }
    }
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperState::Unknown => f.write_str("UNKNOWN"),
            OperState::NotPresent => f.write_str("NOTPRESENT"),
            OperState::Down => f.write_str("DOWN"),
            OperState::LowerLayerDown => f.write_str("LOWERLAYERDOWN"),
            OperState::Testing => f.write_str("TESTING"),
            OperState::Dormant => f.write_str("DORMANT"),
            OperState::Up => f.write_str("UP"),
            OperState::Other(v) => write!(f, "OPERSTATE({v})"),
        }
    }
}

/// One interface as the kernel last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index: the identity of the device in its namespace (a name
    /// can move to another device; an ifindex cannot).
    pub ifindex: u32,
    /// Interface name (`IFLA_IFNAME`).
    pub name: String,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_RUNNING`: operationally up (RFC 2863 "up"/"unknown").
    pub running: bool,
    /// `IFLA_CARRIER`, else `IFF_LOWER_UP`.
    pub carrier: bool,
    /// Usable tx queues: the ethtool channel count (`tx + combined`, which
    /// is the device's `real_num_tx_queues`) when the device reports
    /// channels, else `IFLA_NUM_TX_QUEUES` (the allocated count). May be 0.
    pub tx_queues: u32,
    /// Usable rx queues, the same way (`rx + combined`, else
    /// `IFLA_NUM_RX_QUEUES`).
    pub rx_queues: u32,
    /// `IFLA_MTU`.
    pub mtu: u32,
    /// `IFLA_OPERSTATE`.
    pub oper_state: OperState,
}

/// One netlink message of a datagram, as far as the monitor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `RTM_NEWLINK` (family `AF_UNSPEC`).
    NewLink {
        seq: u32,
        dump_intr: bool,
        state: LinkState,
    },
    /// `RTM_DELLINK` (family `AF_UNSPEC`).
    DelLink { ifindex: u32, name: String },
    /// `NLMSG_DONE`: the end of a dump.
    Done { seq: u32, dump_intr: bool },
    /// `NLMSG_ERROR` with a non-zero code (a negative errno); code 0 (an
    /// ack) is [`Parsed::Other`].
    Error { seq: u32, errno: i32 },
    /// Anything else (another family, another message type, an ack).
    Other,
    /// Bytes that are not a valid message; the rest of the datagram is
    /// skipped.
    Malformed,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Every message in `data` (one datagram read from a NETLINK_ROUTE
/// socket), in order. Malformed input ends the list with
/// [`Parsed::Malformed`].
pub(crate) fn parse_datagram(data: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let Ok(buf) = NetlinkBuffer::new_checked(rest) else {
            out.push(Parsed::Malformed);
            break;
        };
        let len = buf.length() as usize;
        let ty = buf.message_type();
        let flags = buf.flags();
        let seq = buf.sequence_number();
        let payload = &rest[NETLINK_HEADER_LEN..len];
        let dump_intr = flags & NLM_F_DUMP_INTR != 0;
        out.push(match ty {
            RTM_NEWLINK => match parse_link(payload) {
                Some(Some(state)) => Parsed::NewLink {
                    seq,
                    dump_intr,
                    state,
                },
                Some(None) => Parsed::Other,
                None => Parsed::Malformed,
            },
            RTM_DELLINK => match parse_link(payload) {
                Some(Some(s)) => Parsed::DelLink {
                    ifindex: s.ifindex,
                    name: s.name,
                },
                Some(None) => Parsed::Other,
                None => Parsed::Malformed,
            },
            NLMSG_DONE => Parsed::Done { seq, dump_intr },
            NLMSG_ERROR => match payload.get(..4) {
                Some(b) => {
                    let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                    if code == 0 {
                        Parsed::Other
                    } else {
                        Parsed::Error {
                            seq,
                            errno: code.saturating_neg(),
                        }
                    }
                }
                None => Parsed::Malformed,
            },
            _ => Parsed::Other,
        });
        off += align4(len);
    }
    out
}

/// The link state in an `RTM_NEWLINK`/`RTM_DELLINK` payload: `None` when
/// the payload is malformed, `Some(None)` when it is not an `AF_UNSPEC`
/// message with an ifindex and a name.
pub(crate) fn parse_link(payload: &[u8]) -> Option<Option<LinkState>> {
    let header = LinkHeader::parse(payload).ok()?;
    if header.interface_family != AddressFamily::Unspec || header.index == 0 {
        return Some(None);
    }
    let flags = header.flags;
    let mut s = LinkState {
        ifindex: header.index,
        name: String::new(),
        admin_up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        carrier: flags.contains(LinkFlags::LowerUp),
        tx_queues: 0,
        rx_queues: 0,
        mtu: 0,
        oper_state: OperState::Unknown,
    };
    // The link header is 16 bytes (`struct ifinfomsg`).
    let attrs = payload.get(16..)?;
    for nla in NlasIterator::new(attrs) {
        let Ok(nla) = nla else { return None };
        if !matches!(
            nla.kind(),
            IFLA_IFNAME
                | IFLA_MTU
                | IFLA_OPERSTATE
                | IFLA_NUM_TX_QUEUES
                | IFLA_NUM_RX_QUEUES
                | IFLA_CARRIER
        ) {
            continue;
        }
        let nla: NlaBuffer<&[u8]> = nla;
        match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(LinkAttribute::IfName(n)) => s.name = n,
            Ok(LinkAttribute::Mtu(m)) => s.mtu = m,
            Ok(LinkAttribute::OperState(o)) => s.oper_state = o.into(),
            Ok(LinkAttribute::NumTxQueues(n)) => s.tx_queues = n,
            Ok(LinkAttribute::NumRxQueues(n)) => s.rx_queues = n,
            Ok(LinkAttribute::Carrier(c)) => s.carrier = c != 0,
            // A value of the wrong size: skip this attribute only.
            _ => {}
        }
    }
    if s.name.is_empty() {
        return Some(None);
    }
    Some(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_MULTIPART};
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::RouteNetlinkMessage;

    fn link_msg(family: AddressFamily, index: u32, flags: LinkFlags) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.interface_family = family;
        m.header.index = index;
        m.header.flags = flags;
        m.attributes = vec![
            LinkAttribute::IfName("vethx0".into()),
            LinkAttribute::Mtu(1400),
            LinkAttribute::NumTxQueues(4),
            LinkAttribute::NumRxQueues(2),
            LinkAttribute::OperState(State::LowerLayerDown),
        ];
        m
    }

    fn datagram(msgs: Vec<(RouteNetlinkMessage, u16, u32)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (m, flags, seq) in msgs {
            let mut h = NetlinkHeader::default();
            h.flags = flags;
            h.sequence_number = seq;
            let mut nl = NetlinkMessage::new(h, NetlinkPayload::from(m));
            nl.finalize();
            let mut buf = vec![0; nl.buffer_len()];
            nl.serialize(&mut buf);
            out.extend_from_slice(&buf);
            out.resize(align4(out.len()), 0);
        }
        out
    }

    #[test]
    fn newlink_flags_and_attributes_become_link_state() {
        let m = link_msg(AddressFamily::Unspec, 7, LinkFlags::Up | LinkFlags::Running);
        let d = datagram(vec![(RouteNetlinkMessage::NewLink(m), 0, 3)]);
        let p = parse_datagram(&d);
        assert_eq!(
            p,
            vec![Parsed::NewLink {
                seq: 3,
                dump_intr: false,
                state: LinkState {
                    ifindex: 7,
                    name: "vethx0".into(),
                    admin_up: true,
                    running: true,
                    carrier: false,
                    tx_queues: 4,
                    rx_queues: 2,
                    mtu: 1400,
                    oper_state: OperState::LowerLayerDown,
                }
            }]
        );
    }

    #[test]
    fn ifla_carrier_overrides_lower_up_flag() {
        let mut m = link_msg(AddressFamily::Unspec, 7, LinkFlags::LowerUp);
        m.attributes.push(LinkAttribute::Carrier(0));
        let d = datagram(vec![(RouteNetlinkMessage::NewLink(m), 0, 0)]);
        match &parse_datagram(&d)[0] {
            Parsed::NewLink { state, .. } => assert!(!state.carrier),
            other => panic!("{other:?}"),
        }
        let m = link_msg(AddressFamily::Unspec, 7, LinkFlags::LowerUp);
        let d = datagram(vec![(RouteNetlinkMessage::NewLink(m), 0, 0)]);
        match &parse_datagram(&d)[0] {
            Parsed::NewLink { state, .. } => assert!(state.carrier),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bridge_family_dellink_is_not_a_deletion() {
        let m = link_msg(AddressFamily::Bridge, 7, LinkFlags::empty());
        let d = datagram(vec![(RouteNetlinkMessage::DelLink(m), 0, 0)]);
        assert_eq!(parse_datagram(&d), vec![Parsed::Other]);
    }

    #[test]
    fn several_messages_and_dump_end_in_one_datagram() {
        let a = link_msg(AddressFamily::Unspec, 1, LinkFlags::Up);
        let b = link_msg(AddressFamily::Unspec, 2, LinkFlags::empty());
        let mut d = datagram(vec![
            (RouteNetlinkMessage::NewLink(a), NLM_F_MULTIPART, 9),
            (
                RouteNetlinkMessage::DelLink(b),
                NLM_F_MULTIPART | NLM_F_DUMP_INTR,
                9,
            ),
        ]);
        // NLMSG_DONE: header + a 4-byte status.
        let done_len = (NETLINK_HEADER_LEN + 4) as u32;
        d.extend_from_slice(&done_len.to_ne_bytes());
        d.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        d.extend_from_slice(&(NLM_F_MULTIPART | NLM_F_DUMP_INTR).to_ne_bytes());
        d.extend_from_slice(&9u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&0i32.to_ne_bytes());
        let p = parse_datagram(&d);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            matches!(&p[0], Parsed::NewLink { seq: 9, dump_intr: false, state } if state.ifindex == 1)
        );
        assert_eq!(
            p[1],
            Parsed::DelLink {
                ifindex: 2,
                name: "vethx0".into()
            }
        );
        assert_eq!(
            p[2],
            Parsed::Done {
                seq: 9,
                dump_intr: true
            }
        );
    }

    #[test]
    fn error_message_carries_positive_errno() {
        let mut d = Vec::new();
        let len = (NETLINK_HEADER_LEN + 4 + 16) as u32;
        d.extend_from_slice(&len.to_ne_bytes());
        d.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&5u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&(-22i32).to_ne_bytes());
        d.extend_from_slice(&[0; 16]);
        assert_eq!(
            parse_datagram(&d),
            vec![Parsed::Error { seq: 5, errno: 22 }]
        );
    }

    #[test]
    fn every_truncation_of_a_message_is_malformed_or_empty_never_a_panic() {
        let m = link_msg(AddressFamily::Unspec, 7, LinkFlags::Up);
        let d = datagram(vec![(RouteNetlinkMessage::NewLink(m), 0, 0)]);
        for cut in 0..d.len() {
            let p = parse_datagram(&d[..cut]);
            assert!(
                p.iter().all(|x| !matches!(x, Parsed::NewLink { .. })),
                "cut {cut}: {p:?}"
            );
            if cut > 0 {
                assert_eq!(p.last(), Some(&Parsed::Malformed), "cut {cut}");
            }
        }
    }

    #[test]
    fn oper_state_prints_like_ip_link() {
        assert_eq!(OperState::from(State::Up).to_string(), "UP");
        assert_eq!(
            OperState::from(State::LowerLayerDown).to_string(),
            "LOWERLAYERDOWN"
        );
        assert_eq!(OperState::Other(9).to_string(), "OPERSTATE(9)");
    }
}
