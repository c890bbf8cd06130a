//! IGMP (RFC 2236 message layout; v3 queries share the first 8 bytes).
//!
//! ```text
//!  0       8       16              31
//! +-------+-------+----------------+
//! | type  |max rsp|    checksum    |
//! |          group address         |
//! +--------------------------------+
//! ```
//! Open vSwitch puts `type` in `tp_src` and the second byte ("code") in
//! `tp_dst` once 8 bytes are there; [`crate::extract`] does the same.

use super::{be, require_len, Layer, Result};
use crate::checksum;
use core::net::Ipv4Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const GROUP: usize = 4;
    pub const END: usize = 8;
}

/// Length of the IGMP header.
pub const HEADER_LEN: usize = field::END;

/// A view over an IGMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(IgmpPacket);

impl<T: AsRef<[u8]>> IgmpPacket<T> {
    /// Ok when the 8-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Igmp, HEADER_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Max response time (v2) / code; OVS calls it `igmp_code`.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn group_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::GROUP))
    }
    /// Does the checksum over the whole buffer verify?
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IgmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }
    #[inline]
    pub fn set_group_addr(&mut self, a: Ipv4Addr) {
        be::put_u32(self.buffer.as_mut(), field::GROUP, a.into());
    }
    /// Computes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn report_fields_and_checksum() {
        let mut b = [0u8; 8];
        let mut p = IgmpPacket::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(0x16);
        p.set_code(0);
        p.set_group_addr(Ipv4Addr::new(239, 1, 2, 3));
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), 0x16);
        assert_eq!(p.group_addr(), Ipv4Addr::new(239, 1, 2, 3));
        assert_eq!(
            IgmpPacket::new_checked(&b[..7]).unwrap_err(),
            Error::truncated(Layer::Igmp, 8, 7)
        );
    }
}
