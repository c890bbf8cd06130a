//! How many rx/tx queues a device really uses: ethtool's channel counts,
//! read over generic netlink (`ETHTOOL_MSG_CHANNELS_GET`).
//!
//! # Why this exists
//! `IFLA_NUM_TX_QUEUES` in an `RTM_NEWLINK` message is the number of queues
//! the device was *allocated* (`dev->num_tx_queues`); `ethtool -L` changes
//! how many it *uses* (`real_num_tx_queues`) and the kernel sends a fresh
//! `RTM_NEWLINK` whose `IFLA_NUM_TX_QUEUES` has not moved. Measured on this
//! machine (kernel 6.18): a veth made with `numtxqueues 4`, then
//! `ethtool -L tx 2` → two `RTM_NEWLINK`s, `IFLA_NUM_TX_QUEUES` still 4,
//! `ethtool -l` and sysfs `queues/` show 2. sysfs is no help to a monitor
//! living in another namespace than its mount of /sys, so the monitor asks
//! ethtool over netlink, in the socket's own namespace, each time a link
//! message arrives.
//!
//! # Invariants
//! * Never blocks: the kernel answers a genetlink `doit` request inside
//!   `sendmsg`, so the reply is queued before `send` returns; it is read
//!   with `MSG_DONTWAIT`, and "no reply" is "unknown".
//! * Any failure (no ethtool family, a device without channel support such
//!   as `lo`, a device that vanished meanwhile) yields `None`: the caller
//!   falls back to the rtnetlink counts. Replies are matched by sequence
//!   number; stale ones are skipped.

use netlink_packet_core::{
    emit_u16, emit_u32, parse_u16, parse_u32, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlasIterator, NLMSG_ERROR, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

/// Size of `struct nlmsghdr`.
const NETLINK_HEADER_LEN: usize = 16;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const GENL_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_CHANNELS_GET: u8 = 17;
const ETHTOOL_MSG_CHANNELS_GET_REPLY: u8 = 18;
const ETHTOOL_A_CHANNELS_HEADER: u16 = 1;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const ETHTOOL_A_CHANNELS_RX_COUNT: u16 = 6;
const ETHTOOL_A_CHANNELS_TX_COUNT: u16 = 7;
const ETHTOOL_A_CHANNELS_COMBINED_COUNT: u16 = 9;

/// The queue counts a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queues {
    pub rx: u32,
    pub tx: u32,
}

/// A generic-netlink socket bound to the ethtool family.
#[derive(Debug)]
pub(crate) struct Channels {
    sock: Socket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

impl Channels {
    /// Opens the socket in the calling thread's namespace and resolves the
    /// ethtool family; `None` if the kernel has no ethtool netlink.
    pub(crate) fn open() -> Option<Channels> {
        let mut sock = Socket::new(NETLINK_GENERIC).ok()?;
        sock.bind_auto().ok()?;
        sock.connect(&SocketAddr::new(0, 0)).ok()?;
        let mut c = Channels {
            sock,
            family: 0,
            seq: 0,
            buf: vec![0; 16 * 1024],
        };
        c.family = c.resolve_family()?;
        Some(c)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn resolve_family(&mut self) -> Option<u16> {
        let seq = self.next_seq();
        let ctrl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName("ethtool".into())],
        });
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST;
        h.sequence_number = seq;
        let mut msg = NetlinkMessage::new(h, NetlinkPayload::from(ctrl));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        let (_, attrs) = self.request(&out, seq)?;
        for nla in NlasIterator::new(&attrs[..]) {
            let nla = nla.ok()?;
            if nla.kind() & NLA_TYPE_MASK == CTRL_ATTR_FAMILY_ID {
                return parse_u16(nla.value()).ok();
            }
        }
        None
    }

    /// Sends `req` and returns the genetlink command and the attributes of
    /// the reply with sequence number `seq`, or `None` on an error reply or
    /// no reply.
    fn request(&mut self, req: &[u8], seq: u32) -> Option<(u8, Vec<u8>)> {
        self.sock.send(req, 0).ok()?;
        // A few stale replies (from a request whose answer we gave up on)
        // may precede ours; the bound keeps this from ever looping.
        for _ in 0..8 {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], nix::libc::MSG_DONTWAIT)
                .ok()?;
            let data = self.buf.get(..n)?;
            let msg = NetlinkBuffer::new_checked(data).ok()?;
            if msg.sequence_number() != seq {
                continue;
            }
            if msg.message_type() == NLMSG_ERROR {
                return None;
            }
            let len = msg.length() as usize;
            let cmd = *data.get(NETLINK_HEADER_LEN)?;
            let attrs = data.get(NETLINK_HEADER_LEN + GENL_HDRLEN..len)?;
            return Some((cmd, attrs.to_vec()));
        }
        None
    }

    /// The rx/tx queues device `ifindex` uses (`rx + combined`,
    /// `tx + combined`), or `None` when it does not report channels.
    pub(crate) fn query(&mut self, ifindex: u32) -> Option<Queues> {
        let seq = self.next_seq();
        let req = channels_get_request(self.family, seq, ifindex);
        let (cmd, attrs) = self.request(&req, seq)?;
        if cmd != ETHTOOL_MSG_CHANNELS_GET_REPLY {
            return None;
        }
        parse_channels(&attrs)
    }
}

/// An `ETHTOOL_MSG_CHANNELS_GET` request for `ifindex`: nlmsghdr, genlmsghdr
/// and one nested `ETHTOOL_A_CHANNELS_HEADER { DEV_INDEX }`.
fn channels_get_request(family: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    const NESTED_LEN: usize = 4 + 8;
    let len = NETLINK_HEADER_LEN + GENL_HDRLEN + NESTED_LEN;
    let mut b = vec![0u8; len];
    {
        let mut nl = NetlinkBuffer::new(&mut b[..]);
        nl.set_length(len as u32);
        nl.set_message_type(family);
        nl.set_flags(NLM_F_REQUEST);
        nl.set_sequence_number(seq);
        nl.set_port_number(0);
    }
    let g = NETLINK_HEADER_LEN;
    b[g] = ETHTOOL_MSG_CHANNELS_GET;
    b[g + 1] = ETHTOOL_GENL_VERSION;
    let a = g + GENL_HDRLEN;
    emit_u16(&mut b[a..a + 2], NESTED_LEN as u16).ok();
    emit_u16(
        &mut b[a + 2..a + 4],
        ETHTOOL_A_CHANNELS_HEADER | NLA_F_NESTED,
    )
    .ok();
    emit_u16(&mut b[a + 4..a + 6], 8).ok();
    emit_u16(&mut b[a + 6..a + 8], ETHTOOL_A_HEADER_DEV_INDEX).ok();
    emit_u32(&mut b[a + 8..a + 12], ifindex).ok();
    b
}

/// The queue counts in a `CHANNELS_GET_REPLY`'s attributes.
fn parse_channels(attrs: &[u8]) -> Option<Queues> {
    let (mut rx, mut tx, mut combined) = (0u32, 0u32, 0u32);
    let mut any = false;
    for nla in NlasIterator::new(attrs) {
        let nla = nla.ok()?;
        let v = || parse_u32(nla.value()).ok();
        match nla.kind() & NLA_TYPE_MASK {
            ETHTOOL_A_CHANNELS_RX_COUNT => rx = v()?,
            ETHTOOL_A_CHANNELS_TX_COUNT => tx = v()?,
            ETHTOOL_A_CHANNELS_COMBINED_COUNT => combined = v()?,
            _ => continue,
        }
        any = true;
    }
    any.then(|| Queues {
        rx: rx.saturating_add(combined),
        tx: tx.saturating_add(combined),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla_u32(kind: u16, v: u32) -> Vec<u8> {
        let mut b = vec![0; 8];
        emit_u16(&mut b[0..2], 8).unwrap();
        emit_u16(&mut b[2..4], kind).unwrap();
        emit_u32(&mut b[4..8], v).unwrap();
        b
    }

    #[test]
    fn channels_request_has_the_layout_the_kernel_expects() {
        let b = channels_get_request(0x1c, 42, 7);
        assert_eq!(b.len(), 16 + 4 + 12);
        let nl = NetlinkBuffer::new_checked(&b[..]).unwrap();
        assert_eq!(nl.message_type(), 0x1c);
        assert_eq!(nl.sequence_number(), 42);
        assert_eq!(nl.flags(), NLM_F_REQUEST);
        assert_eq!(
            &b[16..18],
            &[ETHTOOL_MSG_CHANNELS_GET, ETHTOOL_GENL_VERSION]
        );
        let outer: Vec<_> = NlasIterator::new(&b[20..]).collect();
        assert_eq!(outer.len(), 1);
        let outer = outer[0].as_ref().unwrap();
        assert_eq!(outer.kind(), ETHTOOL_A_CHANNELS_HEADER);
        assert!(outer.nested_flag());
        let inner = NlasIterator::new(outer.value()).next().unwrap().unwrap();
        assert_eq!(inner.kind(), ETHTOOL_A_HEADER_DEV_INDEX);
        assert_eq!(parse_u32(inner.value()).unwrap(), 7);
    }

    #[test]
    fn channel_counts_add_combined_to_rx_and_tx() {
        let mut a = nla_u32(ETHTOOL_A_CHANNELS_RX_COUNT, 2);
        a.extend(nla_u32(ETHTOOL_A_CHANNELS_TX_COUNT, 3));
        a.extend(nla_u32(ETHTOOL_A_CHANNELS_COMBINED_COUNT, 4));
        a.extend(nla_u32(ETHTOOL_A_CHANNELS_RX_COUNT - 4, 99)); // a *_MAX
        assert_eq!(parse_channels(&a), Some(Queues { rx: 6, tx: 7 }));
    }

    #[test]
    fn reply_without_counts_is_unknown() {
        assert_eq!(parse_channels(&[]), None);
        assert_eq!(parse_channels(&nla_u32(2, 8)), None);
    }
}
