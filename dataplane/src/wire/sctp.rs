//! SCTP common header (RFC 9260).
//!
//! ```text
//!  0               16              31
//! +----------------+----------------+
//! |   src port     |    dst port    |
//! |       verification tag          |
//! |     checksum (CRC32c, LE)       |
//! +---------------------------------+
//! ```
//! Open vSwitch extracts the ports into `tp_src`/`tp_dst` once the 12-byte
//! header is there; so does [`crate::extract`].

use super::{be, require_len, Layer, Result};
use crate::checksum::crc32c_update;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const VTAG: usize = 4;
    pub const CHECKSUM: core::ops::Range<usize> = 8..12;
    pub const PAYLOAD: usize = 12;
}

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over an SCTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(SctpPacket);

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// Ok when the 12-byte common header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Sctp, HEADER_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT)
    }
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::VTAG)
    }
    /// The CRC32c as stored (little-endian on the wire).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// Does the CRC32c over the whole buffer verify?
    pub fn verify_checksum(&self) -> bool {
        self.checksum() == packet_crc(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }
    #[inline]
    pub fn set_verification_tag(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::VTAG, v);
    }
    /// Computes and stores the CRC32c over the whole buffer.
    pub fn fill_checksum(&mut self) {
        let c = packet_crc(self.buffer.as_ref());
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_le_bytes());
    }
}

/// CRC32c ([`crate::checksum::crc32c`]) of the packet with its checksum
/// field taken as zero.
fn packet_crc(b: &[u8]) -> u32 {
    let crc = crc32c_update(0, &b[..field::CHECKSUM.start]);
    let crc = crc32c_update(crc, &[0; 4]);
    crc32c_update(crc, &b[field::CHECKSUM.end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn packet_crc_is_the_crc32c_of_the_packet_with_its_field_zeroed() {
        let mut b: Vec<u8> = (1..=40u8).collect();
        let stored = packet_crc(&b);
        b[field::CHECKSUM].fill(0);
        assert_eq!(stored, crate::checksum::crc32c(&b));
    }

    #[test]
    fn reads_ports_and_checksum_round_trips() {
        let mut b = [0u8; 16];
        let mut p = SctpPacket::new_checked(&mut b[..]).unwrap();
        p.set_src_port(2905);
        p.set_dst_port(36412);
        p.set_verification_tag(0xdead_beef);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.src_port(), p.dst_port()), (2905, 36412));
        assert_eq!(p.verification_tag(), 0xdead_beef);
        assert_eq!(p.payload().len(), 4);
        p.set_dst_port(1);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn short_header_is_truncated() {
        assert_eq!(
            SctpPacket::new_checked(&[0u8; 11][..]).unwrap_err(),
            Error::truncated(Layer::Sctp, 12, 11)
        );
    }
}
