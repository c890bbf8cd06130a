//! OpenFlow actions: what a matched rule does to a packet.
//!
//! An action list runs in order. Header rewrites apply to the packet as it is
//! at that point; each output emits the packet as it is when the output runs
//! (OpenFlow 1.0 "apply-actions" semantics, as in `ovs-ofctl`). An empty list
//! is `drop`.

use crate::flow_key::{MacAddr, PortNo};
use core::net::Ipv4Addr;

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
