//! 802.1Q / 802.1ad VLAN tag.
//!
//! A tag sits between the source MAC and the ethertype. Its TPID (0x8100 or
//! 0x88a8) is the ethertype field that precedes it, so this view covers the
//! 4 bytes that follow the TPID — TCI and the next ethertype — like
//! etherparse's `SingleVlanHeader`:
//!
//! ```text
//!  0             2            4
//! +---+-+--------+------------+---------
//! |PCP|D|  VID   | ethertype  | payload
//! +---+-+--------+------------+---------
//! ```
//! The `D` bit (DEI, formerly CFI) is what Open vSwitch reuses as the
//! "tag present" bit in `vlan_tci` ([`crate::flow_key::VLAN_CFI`]).

use super::{be, require_len, EtherType, Layer, Result};

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of the part of a tag this view covers (TCI + next ethertype).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over the TCI and inner ethertype of one VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(VlanHeader);

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Ok when TCI and the next ethertype fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Vlan, HEADER_LEN, self.buffer.as_ref().len())
    }
    /// The whole tag control information.
    #[inline]
    pub fn tci(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::TCI)
    }
    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// Drop-eligible indicator (the old CFI bit).
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }
    /// VLAN id (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// The ethertype after the tag (another TPID when tags are stacked).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(be::u16_at(self.buffer.as_ref(), field::ETHERTYPE))
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        be::put_u16(self.buffer.as_mut(), field::TCI, tci);
    }
    /// Sets the VLAN id, keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & !0x0fff) | (vid & 0x0fff);
        self.set_tci(tci);
    }
    /// Sets the priority, keeping DEI and VID.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(tci);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn splits_tci_into_pcp_dei_vid() {
        let b = [0xb0, 0x64, 0x08, 0x00];
        let v = VlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(v.tci(), 0xb064);
        assert_eq!(v.pcp(), 5);
        assert!(v.dei());
        assert_eq!(v.vid(), 100);
        assert_eq!(v.ethertype(), EtherType::IPV4);
        assert!(v.payload().is_empty());
    }

    #[test]
    fn set_vid_and_pcp_keep_the_other_bits() {
        let mut b = [0x30, 0x01, 0x86, 0xdd];
        let mut v = VlanHeader::new_checked(&mut b[..]).unwrap();
        v.set_vid(0xabc);
        assert_eq!(v.tci(), 0x3abc);
        v.set_pcp(7);
        assert_eq!(v.tci(), 0xfabc);
        v.set_ethertype(EtherType::VLAN);
        assert_eq!(b, [0xfa, 0xbc, 0x81, 0x00]);
    }

    #[test]
    fn truncated_tag_is_refused() {
        assert_eq!(
            VlanHeader::new_checked(&[0u8; 3][..]).unwrap_err(),
            Error::truncated(Layer::Vlan, 4, 3)
        );
    }
}
