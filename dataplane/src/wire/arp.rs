//! ARP (and RARP) for Ethernet hardware and IPv4 protocol addresses.
//!
//! ```text
//!  0      2      4    5    6      8     14    18     24    28
//! +------+------+----+----+------+-----+-----+------+-----+
//! | htype| ptype|hlen|plen|  op  | sha | spa | tha  | tpa |
//! +------+------+----+----+------+-----+-----+------+-----+
//! ```
//! The view covers the 28-byte Ethernet/IPv4 form, the only one the switch
//! extracts (like Open vSwitch, which needs all 28 bytes before it looks at
//! `htype`). [`ArpPacket::is_ethernet_ipv4`] tells whether the address fields
//! really mean MAC/IPv4; the typed accessors read the fixed offsets either
//! way and never panic once `check_len` passed.

use super::{be, require_len, EtherType, Layer, Result};
use crate::flow_key::MacAddr;
use core::net::Ipv4Addr;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::END;
/// `htype` of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A view over an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

view_constructors!(ArpPacket);

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Ok when the 28 bytes of the Ethernet/IPv4 form fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        require_len(Layer::Arp, HEADER_LEN, self.buffer.as_ref().len())
    }
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::HTYPE)
    }
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(be::u16_at(self.buffer.as_ref(), field::PTYPE))
    }
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    #[inline]
    pub fn operation(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::OPER)
    }
    /// Do the address fields hold MAC and IPv4 addresses (htype 1, ptype
    /// 0x0800, hlen 6, plen 4)?
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }
    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> MacAddr {
        be::mac_at(self.buffer.as_ref(), field::SHA)
    }
    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::SPA))
    }
    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> MacAddr {
        be::mac_at(self.buffer.as_ref(), field::THA)
    }
    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> Ipv4Addr {
        Ipv4Addr::from(be::u32_at(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes htype/ptype/hlen/plen of the Ethernet/IPv4 form.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        be::put_u16(b, field::HTYPE, HTYPE_ETHERNET);
        be::put_u16(b, field::PTYPE, EtherType::IPV4.0);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        be::put_u16(self.buffer.as_mut(), field::OPER, op);
    }
    #[inline]
    pub fn set_sha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&a);
    }
    #[inline]
    pub fn set_spa(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&a.octets());
    }
    #[inline]
    pub fn set_tha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&a);
    }
    #[inline]
    pub fn set_tpa(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn request_round_trips_through_setters() {
        let mut b = [0u8; 28];
        let mut p = ArpPacket::new_checked(&mut b[..]).unwrap();
        p.set_ethernet_ipv4();
        p.set_operation(OP_REQUEST);
        p.set_sha([1, 2, 3, 4, 5, 6]);
        p.set_spa(Ipv4Addr::new(10, 0, 0, 1));
        p.set_tha([0; 6]);
        p.set_tpa(Ipv4Addr::new(10, 0, 0, 2));
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), 1);
        assert_eq!(p.sha(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(p.spa(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.tpa(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(&b[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
    }

    #[test]
    fn non_ethernet_arp_is_recognised() {
        let mut b = [0u8; 28];
        ArpPacket::new_checked(&mut b[..])
            .unwrap()
            .set_ethernet_ipv4();
        b[0..2].copy_from_slice(&6u16.to_be_bytes()); // IEEE 802 htype
        assert!(!ArpPacket::new_checked(&b[..]).unwrap().is_ethernet_ipv4());
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[5] = 16;
        assert!(!ArpPacket::new_checked(&b[..]).unwrap().is_ethernet_ipv4());
    }

    #[test]
    fn short_arp_is_refused() {
        assert_eq!(
            ArpPacket::new_checked(&[0u8; 27][..]).unwrap_err(),
            Error::truncated(Layer::Arp, 28, 27)
        );
    }
}
