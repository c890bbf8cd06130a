//! IPv4 header (RFC 791), with options and fragments.
//!
//! ```text
//!  0       4       8              16      19             31
//! +-------+-------+--------------+----------------------+
//! |version|  IHL  |     TOS      |     total length     |
//! +-------+-------+--------------+-----+----------------+
//! |        identification        |flags| fragment offset|
//! +--------------+---------------+-----+----------------+
//! |     TTL      |   protocol    |   header checksum    |
//! +--------------+---------------+----------------------+
//! |                    source address                   |
//! |                  destination address                |
//! |                 options (IHL*4 - 20)                |
//! +-----------------------------------------------------+
//! ```
//!
//! `check_len` applies exactly Open vSwitch's `ipv4_sanity_check`: at least
//! 20 bytes, `IHL >= 5`, the header fits, `header length <= total length <=
//! buffer length`. It does not look at the version nibble (OVS does not
//! either: `dl_type` 0x0800 decides). Bytes past `total length` are link
//! padding; [`Ipv4Packet::payload`] excludes them.

use super::{be, require_len, Error, IpProtocol, Layer, Result};
use crate::checksum;
use core::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// "Don't fragment" flag in the flags/offset word.
pub const FLAG_DF: u16 = 0x4000;
/// "More fragments" flag in the flags/offset word.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset bits (in 8-byte units) of the flags/offset word.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(Ipv4Packet);

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Ok when the header, its options and `total length` bytes fit and the
    /// length fields are consistent (see the module doc).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        require_len(Layer::Ipv4, HEADER_LEN, len)?;
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::bad_length(Layer::Ipv4, HEADER_LEN, hl));
        }
        require_len(Layer::Ipv4, hl, len)?;
        let tot = usize::from(self.total_len());
        if tot < hl {
            return Err(Error::bad_length(Layer::Ipv4, hl, tot));
        }
        require_len(Layer::Ipv4, tot, len)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// The whole TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 3
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::IDENT)
    }
    /// The raw flags + fragment offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.flags_frag() & FRAG_OFFSET_MASK
    }
    /// Is this a fragment (MF set or a non-zero offset)?
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Is this a fragment other than the first (it carries no L4 header)?
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.frag_offset() != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::SRC_ADDR))
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::DST_ADDR))
    }
    /// Source and destination as raw big-endian-read words.
    #[inline]
    pub fn addrs_u32(&self) -> (u32, u32) {
        let b = self.buffer.as_ref();
        (
            be::u32_at(b, field::SRC_ADDR),
            be::u32_at(b, field::DST_ADDR),
        )
    }
    /// The option bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// The bytes after the header up to `total length` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
    /// Does the header checksum verify?
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }
    /// Sets IHL from a length in bytes (must be a multiple of 4, <= 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        be::put_u16(self.buffer.as_mut(), field::LENGTH, len);
    }
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        be::put_u16(self.buffer.as_mut(), field::IDENT, id);
    }
    /// Sets the raw flags + fragment offset word.
    #[inline]
    pub fn set_flags_frag(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.0;
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        be::put_u32(self.buffer.as_mut(), field::SRC_ADDR, a.into());
    }
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        be::put_u32(self.buffer.as_mut(), field::DST_ADDR, a.into());
    }
    /// Recomputes the header checksum over `header_len()` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tot) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorKind;

    /// A 20-byte header + 4 payload bytes + 2 bytes of link padding.
    fn sample() -> Vec<u8> {
        let mut b = vec![
            0x45, 0xb8, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            192, 168, 1, 2, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff,
        ];
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn reads_every_field_and_excludes_padding() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0xb8);
        assert_eq!((p.dscp(), p.ecn()), (46, 0));
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 1, 2));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn ihl_below_five_is_a_bad_length() {
        let mut b = sample();
        b[0] = 0x44;
        let e = Ipv4Packet::new_checked(&b[..]).unwrap_err();
        assert_eq!(e, Error::bad_length(Layer::Ipv4, 20, 16));
    }

    #[test]
    fn options_longer_than_buffer_are_truncated() {
        let mut b = sample();
        b[0] = 0x4f; // 60-byte header, 26-byte buffer
        let e = Ipv4Packet::new_checked(&b[..]).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ipv4, 60, 26));
    }

    #[test]
    fn total_length_beyond_buffer_is_truncated() {
        let mut b = sample();
        b[2..4].copy_from_slice(&27u16.to_be_bytes());
        let e = Ipv4Packet::new_checked(&b[..]).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ipv4, 27, 26));
    }

    #[test]
    fn total_length_below_header_length_is_bad() {
        let mut b = sample();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        let e = Ipv4Packet::new_checked(&b[..]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadLength);
        assert_eq!((e.required_len, e.len), (20, 19));
    }

    #[test]
    fn fragment_bits() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_flags_frag(FLAG_MF);
        assert!(p.is_fragment() && !p.is_later_fragment());
        p.set_flags_frag(185);
        assert!(p.is_fragment() && p.is_later_fragment());
        assert_eq!(p.frag_offset(), 185);
        p.set_flags_frag(FLAG_DF);
        assert!(!p.is_fragment());
    }

    #[test]
    fn setters_then_fill_checksum_verify() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_ttl(3);
        p.set_tos(0x10);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.addrs_u32(), (0x0102_0304, 0x0506_0708));
    }
}
