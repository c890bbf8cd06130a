//! UDP header (RFC 768).
//!
//! ```text
//!  0               16              31
//! +----------------+----------------+
//! |   src port     |    dst port    |
//! |    length      |    checksum    |
//! +----------------+----------------+
//! ```
//! `check_len` only requires the 8-byte header, as Open vSwitch does before
//! extracting ports; the length field is reported, not trusted:
//! [`UdpPacket::payload`] uses it only when it is consistent with the buffer.

use super::{be, l4_checksum_v4, l4_checksum_v6, require_len, IpProtocol, Layer, Result};
use core::net::{Ipv4Addr, Ipv6Addr};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(UdpPacket);

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Ok when the 8-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Udp, HEADER_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field (header + payload), as sent.
    #[inline]
    pub fn len_field(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The datagram's bytes after the header: up to the length field when
    /// `8 <= length <= buffer`, otherwise to the end of the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let l = usize::from(self.len_field());
        let end = if (HEADER_LEN..=b.len()).contains(&l) {
            l
        } else {
            b.len()
        };
        &b[field::PAYLOAD..end]
    }
    /// Does the checksum verify over the whole buffer with an IPv4
    /// pseudo-header? (A zero checksum means "none" in IPv4 and verifies.)
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || l4_checksum_v4(src, dst, IpProtocol::UDP, self.buffer.as_ref()) == 0
    }
    /// Does the checksum verify with an IPv6 pseudo-header?
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        l4_checksum_v6(src, dst, IpProtocol::UDP, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }
    #[inline]
    pub fn set_len_field(&mut self, l: u16) {
        be::put_u16(self.buffer.as_mut(), field::LENGTH, l);
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Computes the checksum over the whole buffer with an IPv4
    /// pseudo-header (a result of 0 is sent as 0xffff, RFC 768).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = l4_checksum_v4(src, dst, IpProtocol::UDP, self.buffer.as_ref());
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Computes the checksum with an IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = l4_checksum_v6(src, dst, IpProtocol::UDP, self.buffer.as_ref());
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn reads_ports_and_trusts_only_a_consistent_length() {
        let mut b = [0u8; 14];
        b[..8].copy_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0, 0]);
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (1234, 53));
        assert_eq!(u.len_field(), 12);
        assert_eq!(u.payload().len(), 4, "two bytes of padding excluded");
        b[5] = 0x40; // 64 > buffer: ignored
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap().payload().len(), 6);
        b[5] = 3; // below the header: ignored
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap().payload().len(), 6);
    }

    #[test]
    fn short_header_is_truncated() {
        assert_eq!(
            UdpPacket::new_checked(&[0u8; 7][..]).unwrap_err(),
            Error::truncated(Layer::Udp, 8, 7)
        );
    }

    #[test]
    fn checksum_fills_and_verifies() {
        let mut b = [0u8; 11];
        let (s, d) = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_src_port(5000);
        u.set_dst_port(6000);
        u.set_len_field(11);
        u.fill_checksum_v4(s, d);
        assert!(u.verify_checksum_v4(s, d));
        u.set_src_port(5001);
        assert!(!u.verify_checksum_v4(s, d));
        let (s6, d6) = ("::1".parse().unwrap(), "::2".parse().unwrap());
        u.fill_checksum_v6(s6, d6);
        assert!(u.verify_checksum_v6(s6, d6));
    }
}
