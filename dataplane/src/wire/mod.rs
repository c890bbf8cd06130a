//! Wire views: zero-copy, checked access to the headers of a frame.
//!
//! # What
//! One file per protocol. Each defines a *view* over a byte buffer, in the
//! smoltcp style:
//!
//! ```text
//! pub struct Ipv4Packet<T: AsRef<[u8]>> { buffer: T }
//! ```
//!
//! `T` is `&[u8]` to read a received frame in place, `&mut [u8]` to rewrite
//! it (the setters that actions use), or `Vec<u8>` when building one. A view
//! never copies and never allocates.
//!
//! # The contract
//! * `new_unchecked(buffer)` wraps without looking; accessors of such a view
//!   may panic when the buffer is too short. Use it only after a check.
//! * `check_len()` verifies that every accessor can run: the fixed header fits
//!   and any length field the accessors rely on (IPv4 IHL and total length,
//!   TCP data offset, IPv6 payload length) is consistent with the buffer.
//! * `new_checked(buffer)` is `new_unchecked` + `check_len`.
//! * **Once `check_len` has passed, no accessor panics**, whatever the bytes
//!   say. The fuzz target `fuzz/fuzz_targets/extract.rs` calls every accessor
//!   of every view on random input to hold us to this.
//!
//! `new_unchecked`, `new_checked` and `into_inner` are the same for every
//! view and come from the `view_constructors!` macro below; `check_len` is
//! what differs, so each protocol file writes its own, starting from
//! `require_len`. Big-endian field reads and writes go through the `be`
//! helpers.
//!
//! Field offsets live in a private `mod field` per protocol, so each layout is
//! written down exactly once. Setters exist for the fields actions rewrite and
//! for those [`builder`] needs.
//!
//! Values taken from the wire that name another protocol ([`EtherType`],
//! [`IpProtocol`]) are open: a newtype over the raw number with named
//! constants, so an unknown ethertype still parses and round-trips.
//!
//! # Errors
//! [`Error`] says which [`Layer`] failed, how (`kind`), how many bytes it
//! needed (`required_len`) against what it had (`len`), and where the layer
//! starts in the frame (`layer_start_offset`) — the fields etherparse reports.
//! A view does not know its own offset in the frame, so views report `0` and
//! the caller that walks the frame rebases the error with [`Error::at`].
//! `Error` is `Copy` and fits in 16 bytes, so [`crate::extract::Layers`] can
//! carry it per packet without cost.
//!
//! # Why views and not parsed structs
//! The packet path reads a handful of fields from each header and rewrites a
//! few in place; decoding whole headers into owned structs would copy bytes
//! the switch never looks at. Validation is done once per layer (`check_len`),
//! after which reads are plain loads.

use crate::checksum;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// The constructor trio every view shares: `new_unchecked`, `new_checked`
/// and `into_inner`, for a view `struct $view<T: AsRef<[u8]>> { buffer: T }`
/// whose own `impl` defines `check_len` (the part that differs per protocol).
/// Views with more state than the buffer ([`Ipv6ExtHeader`]) write theirs by
/// hand. Defined before the `mod` lines so the protocol files can use it.
macro_rules! view_constructors {
    ($view:ident) => {
        impl<T: AsRef<[u8]>> $view<T> {
            /// Wraps a buffer without looking at it; accessors may panic
            /// until [`Self::check_len`] has passed (see [`crate::wire`]).
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                $view { buffer }
            }
            /// [`Self::new_unchecked`] followed by [`Self::check_len`]:
            /// after `Ok`, no accessor panics.
            #[inline]
            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }
            /// The wrapped buffer.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod arp;
pub mod builder;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod igmp;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use arp::ArpPacket;
pub use ethernet::EthernetFrame;
pub use icmp::IcmpPacket;
pub use icmpv6::Icmpv6Packet;
pub use igmp::IgmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet};
pub use sctp::SctpPacket;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vlan::VlanHeader;

/// The protocol layer a parse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Ethernet,
    /// An 802.1Q / 802.1ad tag.
    Vlan,
    /// The 802.2 LLC/SNAP header of an 802.3 length-field frame.
    LlcSnap,
    Arp,
    Ipv4,
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, destination options,
    /// authentication, fragment).
    Ipv6ExtHeader,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    Igmp,
}

impl Layer {
    /// Lower-case protocol name, as used in messages and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::LlcSnap => "llc/snap",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6ExtHeader => "ipv6 extension header",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Sctp => "sctp",
            Layer::Icmp => "icmp",
            Layer::Icmpv6 => "icmpv6",
            Layer::Igmp => "igmp",
        }
    }
}

/// How a layer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The buffer ends before the layer does: `len` bytes are there, the
    /// header (or the length its own length field claims) needs
    /// `required_len`.
    Truncated,
    /// A length field is below what the format allows: the field says `len`
    /// bytes, at least `required_len` are needed (IPv4 IHL < 5, IPv4 total
    /// length < header length, TCP data offset < 5, padding beyond 64 KiB).
    BadLength,
}

/// A parse error: which layer, how, and with what lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    pub kind: ErrorKind,
    pub layer: Layer,
    /// Bytes the layer needed (see [`ErrorKind`] for each kind's meaning).
    pub required_len: u32,
    /// Bytes it had, or the value of the offending length field.
    pub len: u32,
    /// Offset of the failing layer's first byte in the frame.
    pub layer_start_offset: u32,
}

#[inline]
fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Error {
    /// A [`ErrorKind::Truncated`] error at offset 0.
    #[inline]
    pub fn truncated(layer: Layer, required_len: usize, len: usize) -> Self {
        Error {
            kind: ErrorKind::Truncated,
            layer,
            required_len: clamp_u32(required_len),
            len: clamp_u32(len),
            layer_start_offset: 0,
        }
    }

    /// A [`ErrorKind::BadLength`] error at offset 0.
    #[inline]
    pub fn bad_length(layer: Layer, required_len: usize, len: usize) -> Self {
        Error {
            kind: ErrorKind::BadLength,
            layer,
            required_len: clamp_u32(required_len),
            len: clamp_u32(len),
            layer_start_offset: 0,
        }
    }

    /// The same error, with the layer starting at `offset` in the frame.
    #[inline]
    pub fn at(self, offset: usize) -> Self {
        Error {
            layer_start_offset: clamp_u32(offset),
            ..self
        }
    }

    /// The same error, with `layer_start_offset` moved `delta` bytes further
    /// (for errors reported relative to an enclosing layer's payload).
    #[inline]
    pub fn shifted(self, delta: usize) -> Self {
        Error {
            layer_start_offset: self.layer_start_offset.saturating_add(clamp_u32(delta)),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Truncated => write!(
                f,
                "{} header at offset {} truncated: needs {} bytes, has {}",
                self.layer.as_str(),
                self.layer_start_offset,
                self.required_len,
                self.len
            ),
            ErrorKind::BadLength => write!(
                f,
                "{} header at offset {} has a bad length field: says {} bytes, needs at least {}",
                self.layer.as_str(),
                self.layer_start_offset,
                self.len,
                self.required_len
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// `Ok` when `len` bytes cover the `required_len` that `layer` needs,
/// otherwise [`ErrorKind::Truncated`] with both lengths: the test every
/// `check_len` starts with (and repeats for lengths its header announces).
#[inline]
pub(crate) fn require_len(layer: Layer, required_len: usize, len: usize) -> Result<()> {
    if len < required_len {
        Err(Error::truncated(layer, required_len, len))
    } else {
        Ok(())
    }
}

/// An Ethernet type / length field value. Open: any `u16` is valid; values
/// below [`EtherType::MIN`] are 802.3 lengths, not types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const RARP: EtherType = EtherType(0x8035);
    /// 802.1Q customer tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: EtherType = EtherType(0x88a8);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const MPLS: EtherType = EtherType(0x8847);
    pub const MPLS_MCAST: EtherType = EtherType(0x8848);
    /// Smallest value that is a type rather than an 802.3 length.
    pub const MIN: u16 = 0x0600;
    /// Open vSwitch's `FLOW_DL_TYPE_NONE`: the `dl_type` of an 802.3 frame
    /// that carries no SNAP-encapsulated ethertype.
    pub const NONE: EtherType = EtherType(0x05ff);

    /// Is this a VLAN tag protocol identifier (802.1Q or 802.1ad)?
    #[inline]
    pub const fn is_vlan(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
    /// Is this an 802.3 length rather than a type?
    #[inline]
    pub const fn is_length(self) -> bool {
        self.0 < Self::MIN
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}
impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

/// An IP protocol / IPv6 next-header value. Open: any `u8` is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOPOPTS: IpProtocol = IpProtocol(0);
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const IGMP: IpProtocol = IpProtocol(2);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
    pub const ROUTING: IpProtocol = IpProtocol(43);
    pub const FRAGMENT: IpProtocol = IpProtocol(44);
    pub const GRE: IpProtocol = IpProtocol(47);
    pub const AH: IpProtocol = IpProtocol(51);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    pub const NO_NEXT_HEADER: IpProtocol = IpProtocol(59);
    pub const DSTOPTS: IpProtocol = IpProtocol(60);
    pub const SCTP: IpProtocol = IpProtocol(132);

    /// Is this one of the IPv6 extension headers that
    /// [`ipv6::walk_ext_headers`] skips (hop-by-hop, routing, destination
    /// options, authentication, fragment)?
    #[inline]
    pub const fn is_ipv6_ext_header(self) -> bool {
        matches!(self.0, 0 | 43 | 44 | 51 | 60)
    }
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}
impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

/// Big-endian reads and writes at fixed offsets. They index the slice, so
/// they panic when out of bounds: views call them only on offsets that
/// `check_len` has proven to be inside the buffer.
pub(crate) mod be {
    #[inline(always)]
    pub fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    #[inline(always)]
    pub fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    #[inline(always)]
    pub fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_be_bytes(a)
    }
    #[inline(always)]
    pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    #[inline(always)]
    pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    #[inline(always)]
    pub fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
        [b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]]
    }
    #[inline(always)]
    pub fn ipv6_at(b: &[u8], at: usize) -> core::net::Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[at..at + 16]);
        core::net::Ipv6Addr::from(a)
    }
}

/// The checksum of an L4 segment (TCP, UDP, ICMPv6) under the IPv4
/// pseudo-header, by [`crate::checksum`]. Over a segment whose checksum field
/// is zero this is the value to store; over one that carries a correct
/// checksum it is 0. The pseudo-header length is `segment.len()` truncated to
/// 16 bits, as the IPv4 length fields are. Not on the forwarding path.
pub(crate) fn l4_checksum_v4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    segment: &[u8],
) -> u16 {
    let pseudo =
        checksum::pseudo_header_ipv4(src.octets(), dst.octets(), proto.0, segment.len() as u16);
    checksum::l4_checksum(pseudo, segment)
}

/// [`l4_checksum_v4`] under the IPv6 pseudo-header (32-bit length).
pub(crate) fn l4_checksum_v6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: IpProtocol,
    segment: &[u8],
) -> u16 {
    let pseudo =
        checksum::pseudo_header_ipv6(&src.octets(), &dst.octets(), proto.0, segment.len() as u32);
    checksum::l4_checksum(pseudo, segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_names_layer_offset_and_lengths() {
        let e = Error::truncated(Layer::Ipv4, 20, 7).at(18);
        assert_eq!(
            e.to_string(),
            "ipv4 header at offset 18 truncated: needs 20 bytes, has 7"
        );
        let e = Error::bad_length(Layer::Tcp, 20, 12).at(34);
        assert_eq!(
            e.to_string(),
            "tcp header at offset 34 has a bad length field: says 12 bytes, needs at least 20"
        );
        assert!(core::mem::size_of::<Error>() <= 16);
    }

    #[test]
    fn l4_checksums_cover_the_pseudo_header_bytes() {
        // The helpers must equal the plain RFC 1071 sum over the explicit
        // pseudo-header followed by the segment (RFC 768 / RFC 8200 8.1).
        let seg = [
            0x13u8, 0x88, 0x17, 0x70, 0x00, 0x0b, 0x00, 0x00, 0xaa, 0xbb, 0xcc,
        ];
        let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 7, 9));
        let mut v4 = Vec::new();
        v4.extend_from_slice(&s4.octets());
        v4.extend_from_slice(&d4.octets());
        v4.extend_from_slice(&[0, 17, 0, seg.len() as u8]);
        v4.extend_from_slice(&seg);
        assert_eq!(
            l4_checksum_v4(s4, d4, IpProtocol::UDP, &seg),
            checksum::checksum(&v4)
        );

        let (s6, d6): (Ipv6Addr, Ipv6Addr) =
            ("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap());
        let mut v6 = Vec::new();
        v6.extend_from_slice(&s6.octets());
        v6.extend_from_slice(&d6.octets());
        v6.extend_from_slice(&(seg.len() as u32).to_be_bytes());
        v6.extend_from_slice(&[0, 0, 0, 58]);
        v6.extend_from_slice(&seg);
        assert_eq!(
            l4_checksum_v6(s6, d6, IpProtocol::ICMPV6, &seg),
            checksum::checksum(&v6)
        );
    }

    #[test]
    fn ethertype_classes() {
        assert!(EtherType::VLAN.is_vlan() && EtherType::QINQ.is_vlan());
        assert!(!EtherType::IPV4.is_vlan());
        assert!(EtherType(0x05dc).is_length() && EtherType::NONE.is_length());
        assert!(!EtherType(0x0600).is_length());
        assert!(IpProtocol::FRAGMENT.is_ipv6_ext_header());
        assert!(!IpProtocol::TCP.is_ipv6_ext_header());
    }
}
