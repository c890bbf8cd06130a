//! OpenFlow actions: what a matched rule does to a packet, and their
//! execution.
//!
//! # What
//! An action list runs in order. Header rewrites apply to the packet as it is
//! at that point; each output emits the packet as it is when the output runs
//! (OpenFlow 1.0 "apply-actions" semantics, as in `ovs-ofctl`). An empty list
//! is `drop`. [`execute`] runs a list on one packet, rewriting its bytes in
//! place and handing outputs to an [`ActionContext`] the datapath provides.
//!
//! # Semantics (Open vSwitch is the reference)
//! The rules follow `ofproto/ofproto-dpif-xlate.c` (what a set does to the
//! flow) and `lib/odp-util.c` + `lib/packets.c` (how the flow change reaches
//! the bytes):
//! * `output:P` with `P` = the ingress port is skipped; `in_port` sends there.
//! * `mod_vlan_vid`/`mod_vlan_pcp` rewrite the outer TCI, pushing an 802.1Q
//!   tag (VID/PCP 0 otherwise) on an untagged frame. `push_vlan` pushes a tag
//!   with TCI 0 (OVS does not copy the old outer TCI). A tag that xswitch
//!   writes has DEI 0 on the wire: OVS's flow uses that bit as "tag present"
//!   and re-emits rewritten tags without it. `push_vlan` on a double-tagged
//!   frame replaces the inner tag (OVS tracks two tags; see [`push_vlan`]).
//! * `mod_nw_src/dst` apply to IPv4 only, `mod_nw_tos` and `dec_ttl` to IPv4
//!   and IPv6, `mod_tp_src/dst` to TCP, UDP and SCTP that are not later
//!   fragments. A set on a layer the packet lacks is skipped, as in OVS.
//! * `dec_ttl` on a TTL/hop limit <= 1 stops execution ([`ExecResult::Stopped`]
//!   with `TtlExpired`); outputs already made stand. On non-IP it does nothing.
//!
//! # Invariants
//! * Checksums are updated incrementally (RFC 1624, [`crate::checksum`]):
//!   the IPv4 header checksum for TOS/TTL/address changes, the TCP/UDP
//!   checksum for ports and (pseudo-header) addresses. A UDP checksum of 0
//!   ("none") stays 0; a computed 0 is written as 0xffff. A checksum that was
//!   wrong stays wrong by the same amount — the switch does not launder
//!   corrupt packets (the SCTP CRC32c keeps its error the same way).
//! * `key` and `layers` stay in step with the bytes: after a VLAN push or pop
//!   the L3/L4 offsets move by 4 and `vlan_tci`/`vlan_tci2` shift, so `normal`
//!   learns on the rewritten VLAN, as in OVS.
//! * No allocation, no panic for any frame, key, layers or action list: every
//!   header access goes through a bounds-checked window; a VLAN/L2 rewrite
//!   that cannot be done (frame too short, no headroom) stops with
//!   `Malformed`.
//!
//! # Locking
//! None: execution works on one packet the PMD owns. The context decides
//! what an output means (port lookup under the epoch guard, tx batching).
//!
//! # Why in place
//! Rewrites touch a few bytes; the packet buffer keeps headroom
//! ([`crate::packet::HEADROOM`]) so a tag push moves only the 12 MAC bytes,
//! never the payload.

use crate::checksum;
use crate::extract::Layers;
use crate::flow_key::{
    ethertype, ipproto, FlowKey, MacAddr, PortNo, FRAG_LATER, VLAN_CFI, VLAN_PCP_MASK,
    VLAN_PCP_SHIFT, VLAN_VID_MASK,
};
use crate::packet::Packet;
use crate::stats::DropReason;
use core::net::Ipv4Addr;

/// DSCP bits of the IPv4 TOS / IPv6 traffic-class byte.
pub const IP_DSCP_MASK: u8 = 0xfc;

/// One action (the `ovs-ofctl` subset xswitch supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:PORT` — send to one port (never back out the ingress port,
    /// as OpenFlow says; use `in_port` for that).
    Output(PortNo),
    /// `in_port` — send back out the ingress port.
    InPort,
    /// `normal` — the learning L2 switch.
    Normal,
    /// `flood` — every port but the ingress port.
    Flood,
    /// `all` — every port but the ingress port (xswitch has no flood-disabled
    /// ports, so this equals `flood` today; kept distinct for syntax fidelity).
    All,
    /// `mod_dl_src:MAC`
    SetDlSrc(MacAddr),
    /// `mod_dl_dst:MAC`
    SetDlDst(MacAddr),
    /// `mod_vlan_vid:VID` — set the VID, pushing a tag if there is none.
    SetVlanVid(u16),
    /// `mod_vlan_pcp:PCP` — set the priority, pushing a tag if there is none.
    SetVlanPcp(u8),
    /// `strip_vlan` — remove the outer tag, if any.
    StripVlan,
    /// `push_vlan:ETHERTYPE` — push a new outer tag (0x8100 or 0x88a8).
    PushVlan(u16),
    /// `mod_nw_src:IP` (IPv4 only; checksums updated incrementally).
    SetNwSrc(Ipv4Addr),
    /// `mod_nw_dst:IP`
    SetNwDst(Ipv4Addr),
    /// `mod_nw_tos:TOS` — DSCP bits of the TOS byte (ECN kept).
    SetNwTos(u8),
    /// `mod_tp_src:PORT` (TCP/UDP)
    SetTpSrc(u16),
    /// `mod_tp_dst:PORT`
    SetTpDst(u16),
    /// `dec_ttl` — decrement IPv4 TTL / IPv6 hop limit; a packet arriving
    /// with TTL <= 1 stops here (counted as `ttl_expired`).
    DecTtl,
}

/// What the executor needs from the datapath.
pub trait ActionContext {
    /// Emit the packet as it is now to `port` (a real ofport, never the
    /// ingress port unless via [`Action::InPort`]).
    fn output(&mut self, port: PortNo, pkt: &Packet);
    /// Emit to every port except `in_port` (`flood` and `all`).
    fn flood(&mut self, in_port: PortNo, pkt: &Packet);
    /// The learning switch (`normal`): `key` reflects all rewrites so far.
    fn normal(&mut self, key: &FlowKey, pkt: &Packet);
}

/// Result of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecResult {
    /// Every action ran (an empty list, or one with no output, is a drop the
    /// caller counts as `action_drop`).
    Done,
    /// Execution stopped at an action: `TtlExpired` from `dec_ttl`,
    /// `Malformed` when a rewrite could not be applied to this frame. Outputs
    /// made by earlier actions have already been emitted.
    Stopped(DropReason),
}

/// Runs `actions` on `pkt` in order.
///
/// `key` and `layers` must describe `pkt` as [`crate::extract::extract`]
/// left them; they are kept in step with every rewrite (VLAN tags shift the
/// L3/L4 offsets by 4), so `normal` and later actions see the packet as it
/// is. Inconsistent inputs never panic: a rewrite whose bytes are not in the
/// frame stops with `Malformed` (L2/VLAN) or is skipped (L3/L4, as Open
/// vSwitch skips a set on a layer the packet lacks).
pub fn execute<C: ActionContext>(
    actions: &[Action],
    pkt: &mut Packet,
    key: &mut FlowKey,
    layers: &mut Layers,
    ctx: &mut C,
) -> ExecResult {
    let in_port = key.in_port();
    for action in actions {
        let step = match *action {
            Action::Output(port) => {
                // OpenFlow: output to the ingress port only via `in_port`
                // (OVS: "skipping output to input port").
                if port != in_port {
                    ctx.output(port, pkt);
                }
                Ok(())
            }
            Action::InPort => {
                ctx.output(in_port, pkt);
                Ok(())
            }
            Action::Normal => {
                ctx.normal(key, pkt);
                Ok(())
            }
            Action::Flood | Action::All => {
                ctx.flood(in_port, pkt);
                Ok(())
            }
            Action::SetDlSrc(mac) => set_mac(pkt, eth::SRC, mac).map(|()| key.set_dl_src(mac)),
            Action::SetDlDst(mac) => set_mac(pkt, eth::DST, mac).map(|()| key.set_dl_dst(mac)),
            Action::SetVlanVid(vid) => {
                set_vlan_bits(pkt, key, layers, VLAN_VID_MASK, vid & VLAN_VID_MASK)
            }
            Action::SetVlanPcp(pcp) => set_vlan_bits(
                pkt,
                key,
                layers,
                VLAN_PCP_MASK,
                (u16::from(pcp) << VLAN_PCP_SHIFT) & VLAN_PCP_MASK,
            ),
            Action::StripVlan => pop_vlan(pkt, key, layers),
            Action::PushVlan(tpid) => push_vlan(pkt, key, layers, tpid),
            Action::SetNwSrc(addr) => {
                set_ipv4_addr(pkt, key, layers, ipv4::SRC, u32::from(addr));
                Ok(())
            }
            Action::SetNwDst(addr) => {
                set_ipv4_addr(pkt, key, layers, ipv4::DST, u32::from(addr));
                Ok(())
            }
            Action::SetNwTos(tos) => {
                set_nw_tos(pkt, key, layers, tos);
                Ok(())
            }
            Action::SetTpSrc(port) => {
                set_tp_port(pkt, key, layers, PortField::Src, port);
                Ok(())
            }
            Action::SetTpDst(port) => {
                set_tp_port(pkt, key, layers, PortField::Dst, port);
                Ok(())
            }
            Action::DecTtl => dec_ttl(pkt, key, layers),
        };
        if let Err(reason) = step {
            return ExecResult::Stopped(reason);
        }
    }
    ExecResult::Done
}

/// Header layouts: byte offsets from the start of each header.
mod eth {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    /// Where the ethertype, or the outermost VLAN tag, begins.
    pub const TYPE: usize = 12;
    pub const HLEN: usize = 14;
}
mod vlan {
    /// TPID (2 bytes) + TCI (2 bytes).
    pub const TAG_LEN: usize = 4;
    /// Offset of the TCI within a tag.
    pub const TCI: usize = 2;
}
mod ipv4 {
    pub const TOS: usize = 1;
    pub const TTL: usize = 8;
    pub const CSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const MIN_HLEN: usize = 20;
}
mod ipv6 {
    pub const HOP_LIMIT: usize = 7;
    pub const HLEN: usize = 40;
}
/// TCP, UDP and SCTP all start with source and destination ports.
mod l4 {
    pub const SRC: usize = 0;
    pub const DST: usize = 2;
    pub const TCP_CSUM: usize = 16;
    pub const TCP_MIN_HLEN: usize = 20;
    pub const UDP_CSUM: usize = 6;
    pub const UDP_HLEN: usize = 8;
    pub const SCTP_CSUM: usize = 8;
    pub const SCTP_HLEN: usize = 12;
}

type Step = Result<(), DropReason>;

/// `N` bytes of `frame` at `at`, as an array (so fixed offsets inside it are
/// checked at compile time), or `None` when they are not all in the frame.
#[inline]
fn window<const N: usize>(frame: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    frame.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

// Big-endian access at offsets inside a `window` (constant offsets within
// the window's fixed size, so they cannot go out of bounds).
#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn set_mac(pkt: &mut Packet, at: usize, mac: MacAddr) -> Step {
    let hdr = window::<{ eth::HLEN }>(pkt.data_mut(), 0).ok_or(DropReason::Malformed)?;
    hdr[at..at + 6].copy_from_slice(&mac);
    Ok(())
}

/// Moves every offset in `layers` by a tag length (`grow`: a tag was pushed).
fn shift_layers(layers: &mut Layers, grow: bool) {
    let d = vlan::TAG_LEN as u16;
    if grow {
        layers.l2_len = layers.l2_len.saturating_add(d);
        layers.vlan_tags = layers.vlan_tags.saturating_add(1);
        layers.l3 = layers.l3.and_then(|o| o.checked_add(d));
        layers.l4 = layers.l4.and_then(|o| o.checked_add(d));
    } else {
        layers.l2_len = layers.l2_len.saturating_sub(d);
        layers.vlan_tags = layers.vlan_tags.saturating_sub(1);
        layers.l3 = layers.l3.and_then(|o| o.checked_sub(d));
        layers.l4 = layers.l4.and_then(|o| o.checked_sub(d));
    }
}

/// Inserts a tag `tpid`/`wire_tci` right after the MAC addresses.
fn insert_tag(pkt: &mut Packet, layers: &mut Layers, tpid: u16, wire_tci: u16) -> Step {
    if pkt.len() < eth::HLEN || !pkt.insert_gap(eth::TYPE, vlan::TAG_LEN) {
        return Err(DropReason::Malformed);
    }
    let tag =
        window::<{ vlan::TAG_LEN }>(pkt.data_mut(), eth::TYPE).ok_or(DropReason::Malformed)?;
    put16(tag, 0, tpid);
    put16(tag, vlan::TCI, wire_tci);
    shift_layers(layers, true);
    Ok(())
}

/// `mod_vlan_vid` / `mod_vlan_pcp`: replace the `mask` bits of the outer TCI
/// with `bits`, pushing an 802.1Q tag (TCI 0 otherwise) on an untagged frame.
/// As in OVS the tag is re-emitted from the flow's TCI, whose CFI bit means
/// "present", so the wire DEI bit of the rewritten tag is 0.
fn set_vlan_bits(
    pkt: &mut Packet,
    key: &mut FlowKey,
    layers: &mut Layers,
    mask: u16,
    bits: u16,
) -> Step {
    let tci = if layers.vlan_tags == 0 {
        bits | VLAN_CFI
    } else {
        (key.vlan_tci() & !mask) | bits | VLAN_CFI
    };
    if layers.vlan_tags == 0 {
        insert_tag(pkt, layers, ethertype::VLAN, tci & !VLAN_CFI)?;
    } else {
        let tag =
            window::<{ vlan::TAG_LEN }>(pkt.data_mut(), eth::TYPE).ok_or(DropReason::Malformed)?;
        put16(tag, vlan::TCI, tci & !VLAN_CFI);
    }
    key.set_vlan_tci(tci);
    Ok(())
}

/// `strip_vlan`: remove the outer tag; the inner one (if any) becomes outer.
fn pop_vlan(pkt: &mut Packet, key: &mut FlowKey, layers: &mut Layers) -> Step {
    if layers.vlan_tags == 0 {
        return Ok(());
    }
    if pkt.len() < eth::HLEN + vlan::TAG_LEN || !pkt.remove_range(eth::TYPE, vlan::TAG_LEN) {
        return Err(DropReason::Malformed);
    }
    key.set_vlan_tci(key.vlan_tci2());
    key.set_vlan_tci2(0);
    shift_layers(layers, false);
    Ok(())
}

/// `push_vlan:TPID`: a new outer tag with VID 0, PCP 0 (OVS sets the flow's
/// TCI to just CFI; it does not copy the old outer TCI). The old outer tag
/// becomes the inner one.
///
/// A frame that already has two tags keeps two: OVS's flow holds at most two
/// tags, so it commits `[new, old outer]` by popping both old tags and
/// pushing those two — the old inner tag is gone. We rewrite the two tags in
/// place to the same result.
fn push_vlan(pkt: &mut Packet, key: &mut FlowKey, layers: &mut Layers, tpid: u16) -> Step {
    let outer = key.vlan_tci();
    if layers.vlan_tags >= 2 {
        let tags = window::<{ 2 * vlan::TAG_LEN }>(pkt.data_mut(), eth::TYPE)
            .ok_or(DropReason::Malformed)?;
        let outer_tpid = get16(tags, 0);
        put16(tags, vlan::TAG_LEN, outer_tpid);
        put16(tags, vlan::TAG_LEN + vlan::TCI, outer & !VLAN_CFI);
        put16(tags, 0, tpid);
        put16(tags, vlan::TCI, 0);
    } else {
        insert_tag(pkt, layers, tpid, 0)?;
    }
    key.set_vlan_tci2(outer);
    key.set_vlan_tci(VLAN_CFI);
    Ok(())
}

/// Offset of a usable IPv4 header: the key says IPv4 and its fixed part is
/// in the frame.
fn ipv4_at(pkt: &Packet, key: &FlowKey, layers: &Layers) -> Option<usize> {
    let l3 = usize::from(layers.l3?);
    (key.dl_type() == ethertype::IPV4 && l3.checked_add(ipv4::MIN_HLEN)? <= pkt.len()).then_some(l3)
}

/// Offset of a usable IPv6 fixed header.
fn ipv6_at(pkt: &Packet, key: &FlowKey, layers: &Layers) -> Option<usize> {
    let l3 = usize::from(layers.l3?);
    (key.dl_type() == ethertype::IPV6 && l3.checked_add(ipv6::HLEN)? <= pkt.len()).then_some(l3)
}

/// Offset of the L4 header of an IPv4/IPv6 packet that is not a later
/// fragment (a later fragment carries no L4 header, only payload).
/// Extraction leaves `layers.l4` empty there too; the key check is OVS's
/// (`nw_frag & FLOW_NW_FRAG_LATER`), kept so a caller-built key is obeyed.
fn l4_at(pkt: &Packet, key: &FlowKey, layers: &Layers) -> Option<usize> {
    if key.nw_frag() & FRAG_LATER != 0 {
        return None;
    }
    if ipv4_at(pkt, key, layers).is_none() {
        ipv6_at(pkt, key, layers)?;
    }
    let l4 = usize::from(layers.l4?);
    (l4 <= pkt.len()).then_some(l4)
}

/// Updates a TCP or UDP checksum for a change in a pseudo-header word.
fn update_l4_csum_for_addr(pkt: &mut Packet, key: &FlowKey, layers: &Layers, old: u32, new: u32) {
    let Some(l4) = l4_at(pkt, key, layers) else {
        return;
    };
    let frame = pkt.data_mut();
    match key.nw_proto() {
        ipproto::TCP => {
            if let Some(th) = window::<{ l4::TCP_MIN_HLEN }>(frame, l4) {
                let c = checksum::update32(get16(th, l4::TCP_CSUM), old, new);
                put16(th, l4::TCP_CSUM, c);
            }
        }
        ipproto::UDP => {
            if let Some(uh) = window::<{ l4::UDP_HLEN }>(frame, l4) {
                let c = get16(uh, l4::UDP_CSUM);
                // 0 means "no checksum" and stays so; a computed 0 is sent
                // as its other representation, 0xffff (RFC 768).
                if c != 0 {
                    let c = checksum::update32(c, old, new);
                    put16(uh, l4::UDP_CSUM, if c == 0 { 0xffff } else { c });
                }
            }
        }
        _ => {}
    }
}

/// `mod_nw_src` / `mod_nw_dst` (IPv4 only; OVS skips other packets).
fn set_ipv4_addr(pkt: &mut Packet, key: &mut FlowKey, layers: &Layers, field: usize, new: u32) {
    let Some(l3) = ipv4_at(pkt, key, layers) else {
        return;
    };
    let Some(ih) = window::<{ ipv4::MIN_HLEN }>(pkt.data_mut(), l3) else {
        return;
    };
    let old = get32(ih, field);
    if old != new {
        let c = checksum::update32(get16(ih, ipv4::CSUM), old, new);
        put16(ih, ipv4::CSUM, c);
        put32(ih, field, new);
        update_l4_csum_for_addr(pkt, key, layers, old, new);
    }
    if field == ipv4::SRC {
        key.set_nw_src_u32(new);
    } else {
        key.set_nw_dst_u32(new);
    }
}

/// `mod_nw_tos`: the DSCP bits of the IPv4 TOS / IPv6 traffic class; the
/// ECN bits are kept.
fn set_nw_tos(pkt: &mut Packet, key: &mut FlowKey, layers: &Layers, tos: u8) {
    let dscp = tos & IP_DSCP_MASK;
    if let Some(l3) = ipv4_at(pkt, key, layers) {
        let Some(ih) = window::<{ ipv4::MIN_HLEN }>(pkt.data_mut(), l3) else {
            return;
        };
        let old = ih[ipv4::TOS];
        let new = (old & !IP_DSCP_MASK) | dscp;
        // TOS is the low byte of the header's first 16-bit word.
        let c = checksum::update16(get16(ih, ipv4::CSUM), u16::from(old), u16::from(new));
        put16(ih, ipv4::CSUM, c);
        ih[ipv4::TOS] = new;
        key.set_nw_tos(new);
    } else if let Some(l3) = ipv6_at(pkt, key, layers) {
        let Some(ih) = window::<2>(pkt.data_mut(), l3) else {
            return;
        };
        // Version (4 bits) | traffic class (8) | flow label (20).
        let w = get16(ih, 0);
        let old = (w >> 4) as u8;
        let new = (old & !IP_DSCP_MASK) | dscp;
        put16(ih, 0, (w & 0xf00f) | (u16::from(new) << 4));
        key.set_nw_tos(new);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PortField {
    Src,
    Dst,
}

/// `mod_tp_src` / `mod_tp_dst` on TCP, UDP and SCTP (OVS rewrites only
/// those; on ICMP, or a later fragment, nothing changes).
fn set_tp_port(pkt: &mut Packet, key: &mut FlowKey, layers: &Layers, which: PortField, port: u16) {
    let Some(l4) = l4_at(pkt, key, layers) else {
        return;
    };
    let at = if which == PortField::Src {
        l4::SRC
    } else {
        l4::DST
    };
    let proto = key.nw_proto();
    let frame = pkt.data_mut();
    let done = match proto {
        ipproto::TCP => window::<{ l4::TCP_MIN_HLEN }>(frame, l4).is_some_and(|th| {
            let old = get16(th, at);
            let c = checksum::update16(get16(th, l4::TCP_CSUM), old, port);
            put16(th, l4::TCP_CSUM, c);
            put16(th, at, port);
            true
        }),
        ipproto::UDP => window::<{ l4::UDP_HLEN }>(frame, l4).is_some_and(|uh| {
            let old = get16(uh, at);
            let c = get16(uh, l4::UDP_CSUM);
            if c != 0 {
                let c = checksum::update16(c, old, port);
                put16(uh, l4::UDP_CSUM, if c == 0 { 0xffff } else { c });
            }
            put16(uh, at, port);
            true
        }),
        ipproto::SCTP => {
            let end = l4_end(frame, key, layers);
            match frame.get_mut(l4..end) {
                Some(seg) if seg.len() >= l4::SCTP_HLEN => {
                    set_sctp_port(seg, at, port);
                    true
                }
                _ => false,
            }
        }
        _ => false,
    };
    if done {
        if which == PortField::Src {
            key.set_tp_src(port);
        } else {
            key.set_tp_dst(port);
        }
    }
}

/// End of the IP payload: the IP length fields say where, clamped to the
/// frame (Ethernet pads short frames; padding is not part of the segment).
fn l4_end(frame: &[u8], key: &FlowKey, layers: &Layers) -> usize {
    let Some(l3) = layers.l3.map(usize::from) else {
        return frame.len();
    };
    let claimed = match key.dl_type() {
        ethertype::IPV4 => frame.get(l3 + 2..l3 + 4).map(|b| usize::from(get16(b, 0))),
        ethertype::IPV6 => frame
            .get(l3 + 4..l3 + 6)
            .map(|b| ipv6::HLEN + usize::from(get16(b, 0))),
        _ => None,
    };
    claimed.map_or(frame.len(), |n| frame.len().min(l3 + n))
}

/// Rewrites an SCTP port. The CRC32c cannot be updated incrementally in
/// constant time, so do what OVS does: keep whatever error the old checksum
/// had (`new = old ^ crc(old segment) ^ crc(new segment)`), so a corrupt
/// packet stays detectably corrupt.
fn set_sctp_port(seg: &mut [u8], at: usize, port: u16) {
    let csum_at = l4::SCTP_CSUM;
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&seg[csum_at..csum_at + 4]);
    seg[csum_at..csum_at + 4].fill(0);
    let before = checksum::crc32c(seg);
    put16(seg, at, port);
    let after = checksum::crc32c(seg);
    // SCTP stores the CRC in little-endian byte order (RFC 9260 App. B).
    let new = u32::from_le_bytes(stored) ^ before ^ after;
    seg[csum_at..csum_at + 4].copy_from_slice(&new.to_le_bytes());
}

/// `dec_ttl`: IPv4 TTL (checksum updated) or IPv6 hop limit. A packet whose
/// TTL is already <= 1 stops here (OVS: "decrement TTL exception", the rest
/// of the actions do not run). Not IP: nothing happens.
fn dec_ttl(pkt: &mut Packet, key: &mut FlowKey, layers: &Layers) -> Step {
    let dl_type = key.dl_type();
    if dl_type != ethertype::IPV4 && dl_type != ethertype::IPV6 {
        return Ok(());
    }
    if let Some(l3) = ipv4_at(pkt, key, layers) {
        let ih = window::<{ ipv4::MIN_HLEN }>(pkt.data_mut(), l3).ok_or(DropReason::Malformed)?;
        let ttl = ih[ipv4::TTL];
        if ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        // TTL is the high byte of the (TTL, protocol) word.
        let c = checksum::update16(
            get16(ih, ipv4::CSUM),
            u16::from(ttl) << 8,
            u16::from(ttl - 1) << 8,
        );
        put16(ih, ipv4::CSUM, c);
        ih[ipv4::TTL] = ttl - 1;
        key.set_nw_ttl(ttl - 1);
    } else if let Some(l3) = ipv6_at(pkt, key, layers) {
        let ih = window::<{ ipv6::HLEN }>(pkt.data_mut(), l3).ok_or(DropReason::Malformed)?;
        let hl = ih[ipv6::HOP_LIMIT];
        if hl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        ih[ipv6::HOP_LIMIT] = hl - 1;
        key.set_nw_ttl(hl - 1);
    } else if key.nw_ttl() <= 1 {
        // An IP ethertype without a readable IP header: extraction leaves
        // nw_ttl 0 (as OVS's flow does), so this is the TTL exception.
        return Err(DropReason::TtlExpired);
    } else {
        return Err(DropReason::Malformed);
    }
    Ok(())
}
