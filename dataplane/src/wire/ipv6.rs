//! IPv6 header (RFC 8200) and the extension headers the switch skips.
//!
//! ```text
//!  0       4               12                              31
//! +-------+---------------+--------------------------------+
//! |version| traffic class |           flow label           |
//! +-------+---------------+--------+-----------+-----------+
//! |        payload length          |next header| hop limit |
//! +--------------------------------+-----------+-----------+
//! |                source address (16 bytes)               |
//! |             destination address (16 bytes)             |
//! +--------------------------------------------------------+
//! ```
//!
//! `check_len` applies Open vSwitch's `ipv6_sanity_check`: 40 bytes, and the
//! payload length fits in the buffer (bytes beyond are link padding). The
//! version nibble is not checked (`dl_type` 0x86dd decides).
//!
//! # Extension headers
//! [`walk_ext_headers`] skips hop-by-hop options, routing, destination
//! options, authentication (AH) and fragment headers until it meets any other
//! next-header value, exactly as OVS's `parse_ipv6_ext_hdrs` does:
//! * each header must have 8 bytes before its length is read;
//! * a fragment header with a non-zero offset/flags word marks the packet a
//!   fragment; a non-zero *offset* (a later fragment) stops the walk there,
//!   with next header [`IpProtocol::FRAGMENT`], because what follows is not a
//!   header;
//! * an atomic fragment (offset 0, M clear) is not a fragment.
//!
//! Each step consumes at least 8 bytes, so the walk ends on any input.

use super::{be, require_len, IpProtocol, Layer, Result};
use core::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Flow label bits of the first word.
pub const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(Ipv6Packet);

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Ok when the fixed header and `payload length` bytes fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        require_len(Layer::Ipv6, HEADER_LEN, len)?;
        let need = HEADER_LEN + usize::from(self.payload_len());
        require_len(Layer::Ipv6, need, len)
    }
    #[inline]
    fn first_word(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::VER_TC_FLOW)
    }
    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & FLOW_LABEL_MASK
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::LENGTH)
    }
    /// The header after the fixed one (maybe an extension header).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        be::ipv6_at(self.buffer.as_ref(), field::SRC_ADDR)
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        be::ipv6_at(self.buffer.as_ref(), field::DST_ADDR)
    }
    /// Source address as two big-endian 64-bit halves (high, low).
    #[inline]
    pub fn src_addr_words(&self) -> (u64, u64) {
        self.addr_words(field::SRC_ADDR)
    }
    /// Destination address as two big-endian 64-bit halves (high, low).
    #[inline]
    pub fn dst_addr_words(&self) -> (u64, u64) {
        self.addr_words(field::DST_ADDR)
    }
    #[inline]
    fn addr_words(&self, at: usize) -> (u64, u64) {
        let b = self.buffer.as_ref();
        (be::u64_at(b, at), be::u64_at(b, at + 8))
    }
    /// The `payload length` bytes after the fixed header (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_first_word(&mut self, w: u32) {
        be::put_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let w = (self.first_word() & 0x0fff_ffff) | (u32::from(v & 0x0f) << 28);
        self.set_first_word(w);
    }
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.first_word() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_first_word(w);
    }
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.first_word() & !FLOW_LABEL_MASK) | (label & FLOW_LABEL_MASK);
        self.set_first_word(w);
    }
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        be::put_u16(self.buffer.as_mut(), field::LENGTH, len);
    }
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = p.0;
    }
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR..field::SRC_ADDR + 16].copy_from_slice(&a.octets());
    }
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR..field::DST_ADDR + 16].copy_from_slice(&a.octets());
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}

/// Every extension header is at least this long.
pub const EXT_HEADER_MIN_LEN: usize = 8;

/// A view over a generic extension header (hop-by-hop, routing, destination
/// options, or AH, whose length unit differs). `kind` is the next-header
/// value that announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    kind: IpProtocol,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T, kind: IpProtocol) -> Self {
        Ipv6ExtHeader { buffer, kind }
    }
    #[inline]
    pub fn new_checked(buffer: T, kind: IpProtocol) -> Result<Self> {
        let h = Self::new_unchecked(buffer, kind);
        h.check_len()?;
        Ok(h)
    }
    /// Ok when 8 bytes fit and then the whole header its length field
    /// announces.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        require_len(Layer::Ipv6ExtHeader, EXT_HEADER_MIN_LEN, len)?;
        let hl = self.header_len();
        require_len(Layer::Ipv6ExtHeader, hl, len)
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The next-header value that announced this header.
    #[inline]
    pub fn kind(&self) -> IpProtocol {
        self.kind
    }
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[ext_field::NXT_HDR])
    }
    /// Length in bytes: `(len + 2) * 4` for AH, `(len + 1) * 8` otherwise.
    #[inline]
    pub fn header_len(&self) -> usize {
        let raw = usize::from(self.buffer.as_ref()[ext_field::LENGTH]);
        if self.kind == IpProtocol::AH {
            (raw + 2) * 4
        } else {
            (raw + 1) * 8
        }
    }
    /// The header's own bytes after next-header and length.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6ExtHeader<T> {
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[ext_field::NXT_HDR] = p.0;
    }
    /// Sets the raw length field (units depend on `kind`).
    #[inline]
    pub fn set_len_field(&mut self, raw: u8) {
        self.buffer.as_mut()[ext_field::LENGTH] = raw;
    }
}

mod frag_field {
    pub const NXT_HDR: usize = 0;
    pub const OFF_FLAGS: usize = 2;
    pub const IDENT: usize = 4;
    pub const END: usize = 8;
}

/// Length of the fragment header.
pub const FRAG_HEADER_LEN: usize = frag_field::END;
/// Offset bits (8-byte units, shifted left 3) of the offset/flags word.
pub const FRAG_OFFSET_MASK: u16 = 0xfff8;
/// "More fragments" bit of the offset/flags word.
pub const FRAG_MORE: u16 = 0x0001;

/// A view over the fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(Ipv6FragmentHeader);

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    /// Ok when the 8-byte header fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(
            Layer::Ipv6ExtHeader,
            FRAG_HEADER_LEN,
            self.buffer.as_ref().len(),
        )
    }
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[frag_field::NXT_HDR])
    }
    /// The raw offset/flags word.
    #[inline]
    pub fn offset_flags(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), frag_field::OFF_FLAGS)
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.offset_flags() >> 3
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.offset_flags() & FRAG_MORE != 0
    }
    #[inline]
    pub fn ident(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), frag_field::IDENT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragmentHeader<T> {
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[frag_field::NXT_HDR] = p.0;
    }
    /// Sets offset (8-byte units) and the M flag.
    #[inline]
    pub fn set_offset_more(&mut self, offset: u16, more: bool) {
        let v = (offset << 3) | u16::from(more);
        be::put_u16(self.buffer.as_mut(), frag_field::OFF_FLAGS, v);
    }
    #[inline]
    pub fn set_ident(&mut self, id: u32) {
        be::put_u32(self.buffer.as_mut(), frag_field::IDENT, id);
    }
}

/// What a fragment header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragInfo {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// Outcome of [`walk_ext_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtWalk {
    /// The first next-header value that is not a skipped extension header,
    /// or [`IpProtocol::FRAGMENT`] for a later fragment.
    pub protocol: IpProtocol,
    /// Bytes of extension headers skipped: the upper layer starts here,
    /// relative to the IPv6 payload.
    pub offset: usize,
    /// A fragment header with a non-zero offset/flags word was seen.
    pub is_fragment: bool,
    /// ... and its offset was non-zero (no upper-layer header follows).
    pub is_later_fragment: bool,
    /// The last fragment header seen, if any.
    pub frag: Option<FragInfo>,
}

/// Skips extension headers at the start of `payload` (an IPv6 payload),
/// `first` being the fixed header's next-header value. The error's
/// `layer_start_offset` is relative to `payload`.
pub fn walk_ext_headers(payload: &[u8], first: IpProtocol) -> Result<ExtWalk> {
    let mut w = ExtWalk {
        protocol: first,
        ..ExtWalk::default()
    };
    loop {
        if !w.protocol.is_ipv6_ext_header() {
            return Ok(w);
        }
        let rest = payload.get(w.offset..).unwrap_or(&[]);
        if w.protocol == IpProtocol::FRAGMENT {
            let h = Ipv6FragmentHeader::new_checked(rest).map_err(|e| e.shifted(w.offset))?;
            w.protocol = h.next_header();
            w.offset += FRAG_HEADER_LEN;
            w.frag = Some(FragInfo {
                offset: h.frag_offset(),
                more: h.more_frags(),
                ident: h.ident(),
            });
            if h.offset_flags() != 0 {
                w.is_fragment = true;
                if h.offset_flags() & FRAG_OFFSET_MASK != 0 {
                    w.is_later_fragment = true;
                    w.protocol = IpProtocol::FRAGMENT;
                    return Ok(w);
                }
            }
        } else {
            let h =
                Ipv6ExtHeader::new_checked(rest, w.protocol).map_err(|e| e.shifted(w.offset))?;
            w.protocol = h.next_header();
            w.offset += h.header_len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    fn header(next: u8, plen: u16, extra: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + usize::from(plen) + extra];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_traffic_class(0xa5);
        p.set_flow_label(0xbcdef);
        p.set_payload_len(plen);
        p.set_next_header(IpProtocol(next));
        p.set_hop_limit(255);
        p.set_src_addr("2001:db8::1".parse().unwrap());
        p.set_dst_addr("ff02::1:ff00:2".parse().unwrap());
        b
    }

    #[test]
    fn reads_every_field() {
        let b = header(17, 8, 3);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xa5);
        assert_eq!(p.flow_label(), 0xbcdef);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.src_addr_words(), (0x2001_0db8_0000_0000, 1));
        assert_eq!(p.payload().len(), 8, "padding excluded");
    }

    #[test]
    fn payload_length_beyond_buffer_is_truncated() {
        let mut b = header(17, 8, 0);
        b.pop();
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Error::truncated(Layer::Ipv6, 48, 47)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::truncated(Layer::Ipv6, 40, 39)
        );
    }

    #[test]
    fn walk_skips_hop_routing_dest_ah_to_tcp() {
        // hop-by-hop (8) -> routing (24) -> AH (12+4=16) -> dstopts (8) -> TCP
        let mut p = vec![0u8; 8 + 24 + 16 + 8];
        p[0] = 43; // hop-by-hop says next is routing
        p[8] = 51; // routing says AH
        p[9] = 2; //   (2+1)*8 = 24
        p[32] = 60; // AH says dstopts
        p[33] = 2; //   (2+2)*4 = 16
        p[48] = 6; // dstopts says TCP
        let w = walk_ext_headers(&p, IpProtocol::HOPOPTS).unwrap();
        assert_eq!(w.protocol, IpProtocol::TCP);
        assert_eq!(w.offset, 56);
        assert!(!w.is_fragment && w.frag.is_none());
    }

    #[test]
    fn walk_first_fragment_continues_to_upper_layer() {
        let mut p = [0u8; 8];
        let mut f = Ipv6FragmentHeader::new_unchecked(&mut p[..]);
        f.set_next_header(IpProtocol::UDP);
        f.set_offset_more(0, true);
        f.set_ident(7);
        let w = walk_ext_headers(&p, IpProtocol::FRAGMENT).unwrap();
        assert_eq!(w.protocol, IpProtocol::UDP);
        assert_eq!(w.offset, 8);
        assert!(w.is_fragment && !w.is_later_fragment);
        assert_eq!(
            w.frag,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 7
            })
        );
    }

    #[test]
    fn walk_later_fragment_stops_with_fragment_protocol() {
        let mut p = [0u8; 8];
        let mut f = Ipv6FragmentHeader::new_unchecked(&mut p[..]);
        f.set_next_header(IpProtocol::TCP);
        f.set_offset_more(100, false);
        let w = walk_ext_headers(&p, IpProtocol::FRAGMENT).unwrap();
        assert_eq!(w.protocol, IpProtocol::FRAGMENT);
        assert!(w.is_fragment && w.is_later_fragment);
        assert_eq!(w.frag.unwrap().offset, 100);
    }

    #[test]
    fn walk_atomic_fragment_is_not_a_fragment() {
        let mut p = [0u8; 8];
        Ipv6FragmentHeader::new_unchecked(&mut p[..]).set_next_header(IpProtocol::ICMPV6);
        let w = walk_ext_headers(&p, IpProtocol::FRAGMENT).unwrap();
        assert_eq!(w.protocol, IpProtocol::ICMPV6);
        assert!(!w.is_fragment);
    }

    #[test]
    fn walk_truncated_header_reports_its_offset() {
        // hop-by-hop of 8 bytes, then a routing header claiming 16 bytes
        // with only 8 present.
        let mut p = [0u8; 16];
        p[0] = 43;
        p[9] = 1;
        let e = walk_ext_headers(&p, IpProtocol::HOPOPTS).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ipv6ExtHeader, 16, 8).at(8));
        // Fewer than 8 bytes for the first header.
        let e = walk_ext_headers(&p[..5], IpProtocol::DSTOPTS).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ipv6ExtHeader, 8, 5));
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut b = header(6, 0, 0);
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0x01);
        p.set_hop_limit(9);
        assert_eq!(p.version(), 6);
        assert_eq!(p.flow_label(), 0xbcdef);
        p.set_flow_label(0x12345);
        assert_eq!(p.traffic_class(), 0x01);
        assert_eq!(p.hop_limit(), 9);
    }
}
