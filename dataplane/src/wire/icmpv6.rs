//! ICMPv6 (RFC 4443) and the Neighbor Discovery fields the flow key uses.
//!
//! ```text
//!  0       8       16              31
//! +-------+-------+----------------+
//! | type  | code  |    checksum    |
//! |   message data (4 bytes)       |   NA: R|S|O flags + reserved
//! +--------------------------------+
//! |  ND: target address (16 bytes) |
//! |  ND: options (type, len*8, ..) |
//! +--------------------------------+
//! ```
//! The key takes `type`/`code` into `tp_src`/`tp_dst` once the 8-byte header
//! is there. For neighbor solicitations/advertisements (code 0, type 135 or
//! 136) Open vSwitch also extracts the source/target link-layer address
//! options into the `arp_sha`/`arp_tha` words; [`Icmpv6Packet::nd_link_addrs`]
//! reproduces its rules exactly, including the corner cases (a repeated
//! option voids both addresses; a zero-length or overlong option ends the
//! scan).

use super::{be, l4_checksum_v6, require_len, IpProtocol, Layer, Result};
use crate::flow_key::MacAddr;
use core::net::Ipv6Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const DATA: usize = 4;
    pub const PAYLOAD: usize = 8;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// Length of the ICMPv6 header with its 4 data bytes (OVS's
/// `ICMP6_DATA_HEADER_LEN`).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the first ND option.
pub const ND_OPTIONS_OFFSET: usize = field::ND_OPTIONS;
/// Neighbor solicitation type.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbor advertisement type.
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Echo request type.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply type.
pub const ECHO_REPLY: u8 = 129;
/// ND option: source link-layer address.
pub const ND_OPT_SOURCE_LINKADDR: u8 = 1;
/// ND option: target link-layer address.
pub const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// A view over an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Ok when the 8-byte header fits. ND accessors check their own extent.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Icmpv6, HEADER_LEN, self.buffer.as_ref().len())
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
    /// The 4 message-specific bytes (NA: R/S/O flags and reserved bits).
    #[inline]
    pub fn data_word(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::DATA)
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// Is this a neighbor solicitation or advertisement (code 0)?
    #[inline]
    pub fn is_nd(&self) -> bool {
        self.code() == 0
            && (self.msg_type() == ND_NEIGHBOR_SOLICIT || self.msg_type() == ND_NEIGHBOR_ADVERT)
    }
    /// The ND target address, when this is ND and the 16 bytes are there.
    #[inline]
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        let b = self.buffer.as_ref();
        (self.is_nd() && b.len() >= field::ND_OPTIONS).then(|| be::ipv6_at(b, field::ND_TARGET))
    }
    /// The ND options as `(type, bytes of the option including its 2-byte
    /// head)`; the iteration ends at the first option whose length is zero
    /// or runs past the buffer. Empty when this is not ND or has no target.
    #[inline]
    pub fn nd_options(&self) -> NdOptions<'_> {
        let b = self.buffer.as_ref();
        let rest = if self.nd_target().is_some() {
            &b[field::ND_OPTIONS..]
        } else {
            &[]
        };
        NdOptions { rest }
    }
    /// Source and target link-layer addresses as Open vSwitch extracts
    /// them (`arp_sha`, `arp_tha`; zero when absent). Only 8-byte options
    /// count; a second option of a kind already seen (with a non-zero
    /// address) voids both.
    pub fn nd_link_addrs(&self) -> (MacAddr, MacAddr) {
        let mut sll = [0u8; 6];
        let mut tll = [0u8; 6];
        for (kind, opt) in self.nd_options() {
            if opt.len() != 8 {
                continue;
            }
            let mac = be::mac_at(opt, 2);
            let slot = match kind {
                ND_OPT_SOURCE_LINKADDR => &mut sll,
                ND_OPT_TARGET_LINKADDR => &mut tll,
                _ => continue,
            };
            if *slot != [0; 6] {
                return ([0; 6], [0; 6]);
            }
            *slot = mac;
        }
        (sll, tll)
    }
    /// Does the checksum verify with an IPv6 pseudo-header?
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        l4_checksum_v6(src, dst, IpProtocol::ICMPV6, self.buffer.as_ref()) == 0
    }
}

/// Iterator over ND options (see [`Icmpv6Packet::nd_options`]).
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = (u8, &'a [u8]);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 8 {
            return None;
        }
        let len = usize::from(self.rest[1]) * 8;
        if len == 0 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some((opt[0], opt))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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
    pub fn set_data_word(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::DATA, v);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Computes the checksum with an IPv6 pseudo-header.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = l4_checksum_v6(src, dst, IpProtocol::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    /// A neighbor solicitation with the given options appended.
    fn ns(options: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        for o in options {
            b.extend_from_slice(o);
        }
        b
    }
    const SLL: [u8; 8] = [1, 1, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
    const TLL: [u8; 8] = [2, 1, 1, 2, 3, 4, 5, 6];

    #[test]
    fn solicitation_yields_target_and_link_addresses() {
        let b = ns(&[&SLL, &TLL]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_nd());
        assert_eq!(p.nd_target(), Some("fe80::1".parse().unwrap()));
        assert_eq!(p.nd_options().count(), 2);
        assert_eq!(
            p.nd_link_addrs(),
            ([0xa, 0xb, 0xc, 0xd, 0xe, 0xf], [1, 2, 3, 4, 5, 6])
        );
    }

    #[test]
    fn repeated_source_option_voids_both_addresses() {
        let b = ns(&[&TLL, &SLL, &SLL]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_link_addrs(), ([0; 6], [0; 6]));
    }

    #[test]
    fn zero_length_option_ends_the_scan() {
        let b = ns(&[&SLL, &[2, 0, 0, 0, 0, 0, 0, 0], &TLL]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_link_addrs(), ([0xa, 0xb, 0xc, 0xd, 0xe, 0xf], [0; 6]));
    }

    #[test]
    fn longer_link_option_is_ignored() {
        let mut long = [0u8; 16];
        long[0] = 1;
        long[1] = 2;
        long[2] = 9;
        let b = ns(&[&long, &TLL]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_link_addrs(), ([0; 6], [1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn non_nd_and_short_nd_have_no_target() {
        let mut b = ns(&[&SLL]);
        b[1] = 1; // code 1: not ND
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(!p.is_nd());
        assert_eq!(p.nd_target(), None);
        assert_eq!(p.nd_link_addrs(), ([0; 6], [0; 6]));
        let b = ns(&[]);
        let p = Icmpv6Packet::new_checked(&b[..23]).unwrap();
        assert_eq!(p.nd_target(), None);
    }

    #[test]
    fn checksum_fills_and_verifies() {
        let mut b = ns(&[&SLL]);
        let (s, d): (Ipv6Addr, Ipv6Addr) =
            ("::".parse().unwrap(), "ff02::1:ff00:1".parse().unwrap());
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(s, d);
        assert!(p.verify_checksum(s, d));
        p.set_code(3);
        assert!(!p.verify_checksum(s, d));
        assert_eq!(
            Icmpv6Packet::new_checked(&b[..7]).unwrap_err(),
            Error::truncated(Layer::Icmpv6, 8, 7)
        );
    }
}
