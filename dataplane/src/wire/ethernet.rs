//! Ethernet II / 802.3 frame header (without FCS).
//!
//! ```text
//!  0      6      12           14
//! +------+------+------------+---------
//! | dst  | src  | type / len | payload
//! +------+------+------------+---------
//! ```
//! The type/length field is read as an [`EtherType`]; values below
//! [`EtherType::MIN`] are 802.3 lengths (see [`LlcSnapHeader`]). VLAN tags that
//! follow the source address are separate views ([`super::VlanHeader`]).

use super::{be, require_len, EtherType, Layer, Result};
use crate::flow_key::MacAddr;

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Shortest Ethernet frame on the wire, without FCS.
pub const MIN_FRAME_LEN: usize = 60;

/// A view over an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(EthernetFrame);

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Ok when the 14-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Ethernet, HEADER_LEN, self.buffer.as_ref().len())
    }

    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        be::mac_at(self.buffer.as_ref(), field::DESTINATION.start)
    }
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        be::mac_at(self.buffer.as_ref(), field::SOURCE.start)
    }
    /// The destination MAC in the low 48 bits of a `u64` (one load).
    #[inline]
    pub fn dst_addr_u64(&self) -> u64 {
        be::u64_at(self.buffer.as_ref(), field::DESTINATION.start) >> 16
    }
    /// The source MAC in the low 48 bits of a `u64` (one load).
    #[inline]
    pub fn src_addr_u64(&self) -> u64 {
        be::u64_at(self.buffer.as_ref(), field::SOURCE.start - 2) & 0xffff_ffff_ffff
    }
    /// The type/length field right after the addresses (a VLAN TPID when
    /// the frame is tagged).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(be::u16_at(self.buffer.as_ref(), field::ETHERTYPE))
    }
    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a);
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a);
    }
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        be::put_u16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

mod llc_field {
    pub const DSAP: usize = 0;
    pub const SSAP: usize = 1;
    pub const CONTROL: usize = 2;
    pub const ORG: core::ops::Range<usize> = 3..6;
    pub const TYPE: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of an LLC header followed by a SNAP header.
pub const LLC_SNAP_LEN: usize = llc_field::PAYLOAD;
/// LLC SAP value announcing SNAP.
pub const LLC_SAP_SNAP: u8 = 0xaa;
/// LLC control value of unnumbered information frames (SNAP uses it).
pub const LLC_CONTROL_UI: u8 = 0x03;

/// A view over the 802.2 LLC + SNAP header of an 802.3 frame (the 8 bytes
/// after the length field). Used by RFC 1042 encapsulation of ethertypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlcSnapHeader<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(LlcSnapHeader);

impl<T: AsRef<[u8]>> LlcSnapHeader<T> {
    /// Ok when all 8 bytes of LLC + SNAP fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::LlcSnap, LLC_SNAP_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn dsap(&self) -> u8 {
        self.buffer.as_ref()[llc_field::DSAP]
    }
    #[inline]
    pub fn ssap(&self) -> u8 {
        self.buffer.as_ref()[llc_field::SSAP]
    }
    #[inline]
    pub fn control(&self) -> u8 {
        self.buffer.as_ref()[llc_field::CONTROL]
    }
    #[inline]
    pub fn org(&self) -> [u8; 3] {
        let b = &self.buffer.as_ref()[llc_field::ORG];
        [b[0], b[1], b[2]]
    }
    /// The SNAP protocol id (an ethertype when the organisation is 0).
    #[inline]
    pub fn snap_type(&self) -> EtherType {
        EtherType(be::u16_at(self.buffer.as_ref(), llc_field::TYPE))
    }
    /// Is this SNAP with organisation code 0, i.e. an encapsulated
    /// ethertype (RFC 1042)?
    #[inline]
    pub fn is_snap_ethernet(&self) -> bool {
        self.dsap() == LLC_SAP_SNAP
            && self.ssap() == LLC_SAP_SNAP
            && self.control() == LLC_CONTROL_UI
            && self.org() == [0, 0, 0]
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[llc_field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> LlcSnapHeader<T> {
    /// Writes an RFC 1042 header (SNAP, organisation 0) carrying `t`.
    pub fn set_snap_ethernet(&mut self, t: EtherType) {
        let b = self.buffer.as_mut();
        b[llc_field::DSAP] = LLC_SAP_SNAP;
        b[llc_field::SSAP] = LLC_SAP_SNAP;
        b[llc_field::CONTROL] = LLC_CONTROL_UI;
        b[llc_field::ORG].fill(0);
        be::put_u16(b, llc_field::TYPE, t.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    const FRAME: [u8; 16] = [
        1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn reads_addresses_type_and_payload() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr(), [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        assert_eq!(f.dst_addr_u64(), 0x0102_0304_0506);
        assert_eq!(f.src_addr_u64(), 0x0a0b_0c0d_0e0f);
    }

    #[test]
    fn short_frame_is_refused_with_lengths() {
        let e = EthernetFrame::new_checked(&FRAME[..13]).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ethernet, 14, 13));
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut buf = FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr([9; 6]);
        f.set_src_addr([8; 6]);
        f.set_ethertype(EtherType(0x1234));
        assert_eq!(
            &buf[..14],
            &[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 0x12, 0x34]
        );
    }

    #[test]
    fn llc_snap_recognises_rfc1042() {
        let mut b = [0u8; 10];
        LlcSnapHeader::new_checked(&mut b[..])
            .unwrap()
            .set_snap_ethernet(EtherType::IPV6);
        let h = LlcSnapHeader::new_checked(&b[..]).unwrap();
        assert!(h.is_snap_ethernet());
        assert_eq!(h.snap_type(), EtherType::IPV6);
        assert_eq!(h.payload().len(), 2);
        // STP's LLC (0x42 0x42 0x03) is not SNAP.
        let stp = [0x42, 0x42, 0x03, 0, 0, 0, 0, 0];
        assert!(!LlcSnapHeader::new_checked(&stp[..])
            .unwrap()
            .is_snap_ethernet());
        assert_eq!(
            LlcSnapHeader::new_checked(&stp[..7]).unwrap_err(),
            Error::truncated(Layer::LlcSnap, 8, 7)
        );
    }
}
