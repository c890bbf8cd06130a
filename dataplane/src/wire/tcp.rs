//! TCP header (RFC 9293).
//!
//! ```text
//!  0               16              31
//! +----------------+----------------+
//! |   src port     |    dst port    |
//! |         sequence number         |
//! |      acknowledgment number      |
//! |off|rsv| flags  |     window     |
//! |   checksum     | urgent pointer |
//! |    options (off*4 - 20 bytes)   |
//! +---------------------------------+
//! ```
//! `check_len` is Open vSwitch's test before it extracts ports: 20 bytes,
//! data offset >= 5, and the whole header (with options) fits.

use super::{be, l4_checksum_v4, l4_checksum_v6, require_len, Error, IpProtocol, Layer, Result};
use core::net::{Ipv4Addr, Ipv6Addr};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// TCP flag bits (low 12 bits of the offset/flags word, as OVS's `tcp_flags`).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const NS: u16 = 0x100;
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(TcpPacket);

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Ok when 20 bytes fit, the data offset is at least 5 and the header
    /// with its options fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        require_len(Layer::Tcp, HEADER_LEN, len)?;
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::bad_length(Layer::Tcp, HEADER_LEN, hl));
        }
        require_len(Layer::Tcp, hl, len)
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
    pub fn seq_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::SEQ_NUM)
    }
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }
    /// The 12 flag bits (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::OFF_FLAGS) & 0x0fff
    }
    #[inline]
    pub fn window(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::WIN_SIZE)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn urgent(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::URGENT)
    }
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Does the checksum verify over the whole buffer with an IPv4
    /// pseudo-header?
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        l4_checksum_v4(src, dst, IpProtocol::TCP, self.buffer.as_ref()) == 0
    }
    /// Does the checksum verify over the whole buffer with an IPv6
    /// pseudo-header?
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        l4_checksum_v6(src, dst, IpProtocol::TCP, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::SRC_PORT, p);
    }
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        be::put_u16(self.buffer.as_mut(), field::DST_PORT, p);
    }
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }
    /// Sets the data offset from a length in bytes (multiple of 4, <= 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::OFF_FLAGS];
        *b = (*b & 0x0f) | (((len / 4) as u8) << 4);
    }
    /// Sets the 12 flag bits, keeping the data offset.
    #[inline]
    pub fn set_flags(&mut self, f: u16) {
        let b = self.buffer.as_mut();
        let w = (be::u16_at(b, field::OFF_FLAGS) & 0xf000) | (f & 0x0fff);
        be::put_u16(b, field::OFF_FLAGS, w);
    }
    #[inline]
    pub fn set_window(&mut self, w: u16) {
        be::put_u16(self.buffer.as_mut(), field::WIN_SIZE, w);
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    #[inline]
    pub fn set_urgent(&mut self, u: u16) {
        be::put_u16(self.buffer.as_mut(), field::URGENT, u);
    }
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
    /// Computes the checksum over the whole buffer with an IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = l4_checksum_v4(src, dst, IpProtocol::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }
    /// Computes the checksum over the whole buffer with an IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = l4_checksum_v6(src, dst, IpProtocol::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(off: u8, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        b[12] = off << 4;
        b[13] = 0x12; // SYN|ACK
        b
    }

    #[test]
    fn reads_ports_flags_and_options() {
        let b = segment(6, 28);
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (12345, 80));
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), flags::SYN | flags::ACK);
        assert_eq!(t.options().len(), 4);
        assert_eq!(t.payload().len(), 4);
    }

    #[test]
    fn data_offset_below_five_is_a_bad_length() {
        let b = segment(4, 40);
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::bad_length(Layer::Tcp, 20, 16)
        );
    }

    #[test]
    fn options_beyond_buffer_are_truncated() {
        let b = segment(15, 40);
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::truncated(Layer::Tcp, 60, 40)
        );
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).unwrap_err(),
            Error::truncated(Layer::Tcp, 20, 19)
        );
    }

    #[test]
    fn checksum_fills_and_verifies_for_both_families() {
        let mut b = segment(5, 23);
        let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.fill_checksum_v4(s4, d4);
        assert!(t.verify_checksum_v4(s4, d4));
        t.set_dst_port(81);
        assert!(!t.verify_checksum_v4(s4, d4));
        let (s6, d6) = ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap());
        t.fill_checksum_v6(s6, d6);
        assert!(t.verify_checksum_v6(s6, d6));
        t.set_flags(flags::FIN);
        assert_eq!(t.header_len(), 20);
    }
}
