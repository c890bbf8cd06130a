//! ICMP for IPv4 (RFC 792).
//!
//! ```text
//!  0       8       16              31
//! +-------+-------+----------------+
//! | type  | code  |    checksum    |
//! |     rest of header (4 bytes)   |
//! +--------------------------------+
//! ```
//! The flow key takes `type` into `tp_src` and `code` into `tp_dst` once the
//! 8-byte header (OVS's `ICMP_HEADER_LEN`) is there.

use super::{be, require_len, Layer, Result};
use crate::checksum;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Length of the ICMP header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Echo reply type.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable type.
pub const DEST_UNREACHABLE: u8 = 3;
/// Echo request type.
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded type.
pub const TIME_EXCEEDED: u8 = 11;

/// A view over an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(IcmpPacket);

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Ok when the 8-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Icmp, HEADER_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The 4 type-specific bytes (id/sequence for echo).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::REST)
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// Does the checksum over the whole buffer verify?
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::REST, v);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Computes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn echo_request_fields_and_checksum() {
        let mut b = [0u8; 12];
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ECHO_REQUEST);
        p.set_code(0);
        p.set_rest_of_header(0x0001_0002);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type(), p.code()), (8, 0));
        assert_eq!(p.rest_of_header(), 0x0001_0002);
        assert_eq!(p.payload(), b"ping");
    }

    #[test]
    fn header_shorter_than_eight_is_truncated() {
        assert_eq!(
            IcmpPacket::new_checked(&[8u8, 0, 0, 0][..]).unwrap_err(),
            Error::truncated(Layer::Icmp, 8, 4)
        );
    }
}
