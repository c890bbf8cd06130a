//! The generator's template frame: Ethernet + IPv4/IPv6 + UDP, built once.
//!
//! # Size convention
//! A *frame size* here is the Ethernet frame size as RFC 2544 and every
//! traffic generator count it: destination MAC through FCS. The FCS (4
//! bytes) is added by hardware and never exists in a Linux buffer, so a
//! 64-byte frame is a 60-byte buffer. Sizes run from [`MIN_FRAME`] (64) to
//! [`MAX_FRAME`] (1518, a full 1500-byte MTU payload); an IPv6/UDP header
//! stack does not fit 64 bytes, so IPv6 starts at [`MIN_FRAME_V6`] (66).
//!
//! # Checksums
//! The IPv4 header checksum and the UDP checksum (over the pseudo-header,
//! RFC 768 / RFC 8200 §8.1) are computed here, so every frame a receiver
//! sees is valid; the BPF program only fixes the UDP checksum incrementally
//! when it changes the source port.

use std::net::IpAddr;

use super::GenError;

/// Bytes the NIC appends (FCS) and a Linux buffer never holds.
pub const FCS_LEN: usize = 4;
/// Smallest Ethernet frame (incl. FCS).
pub const MIN_FRAME: usize = 64;
/// Smallest frame that holds Ethernet + IPv6 + UDP headers (incl. FCS).
pub const MIN_FRAME_V6: usize = ETH_LEN + IPV6_LEN + UDP_LEN + FCS_LEN;
/// Largest frame a 1500-byte MTU carries (incl. FCS).
pub const MAX_FRAME: usize = 1518;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// What goes into the template frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    /// Ethernet frame size including the FCS (see the module doc).
    pub frame_size: usize,
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IP source; same family as `dst_ip`.
    pub src_ip: IpAddr,
    /// IP destination.
    pub dst_ip: IpAddr,
    /// UDP source port of the template (the program may rewrite it).
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// The smallest frame size (incl. FCS) that `ipv6` allows.
pub fn min_frame_size(ipv6: bool) -> usize {
    if ipv6 {
        MIN_FRAME_V6
    } else {
        MIN_FRAME
    }
}

/// Builds the frame buffer (`frame_size - 4` bytes) described by `spec`.
pub fn build_udp_frame(spec: &FrameSpec) -> Result<Vec<u8>, GenError> {
    let ipv6 = match (spec.src_ip, spec.dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(GenError::MixedAddressFamilies),
    };
    let min = min_frame_size(ipv6);
    if spec.frame_size < min || spec.frame_size > MAX_FRAME {
        return Err(GenError::FrameSize {
            size: spec.frame_size,
            min,
            max: MAX_FRAME,
        });
    }
    let len = spec.frame_size - FCS_LEN;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&spec.dst_mac);
    f[6..12].copy_from_slice(&spec.src_mac);
    let ip_len = if ipv6 { IPV6_LEN } else { IPV4_LEN };
    let udp_off = ETH_LEN + ip_len;
    let udp_len = len - udp_off;
    // A recognisable payload: byte i of the payload is i mod 256.
    for (i, b) in f[udp_off + UDP_LEN..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut pseudo = 0u32;
    match (spec.src_ip, spec.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[ETH_LEN..udp_off];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64; // TTL
            ip[9] = 17; // UDP
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            pseudo = sum16(&s.octets(), pseudo);
            pseudo = sum16(&d.octets(), pseudo);
            pseudo += 17 + udp_len as u32;
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut f[ETH_LEN..udp_off];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = 17; // next header: UDP
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            pseudo = sum16(&s.octets(), pseudo);
            pseudo = sum16(&d.octets(), pseudo);
            pseudo += 17 + udp_len as u32;
        }
        _ => unreachable!("families checked above"),
    }
    let udp = &mut f[udp_off..];
    udp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let c = fold(sum16(udp, pseudo));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(f)
}

/// Adds `bytes` as big-endian 16-bit words (odd tail padded) to `acc`.
fn sum16(bytes: &[u8], mut acc: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// One's-complement fold and invert: the Internet checksum of a sum.
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The UDP header offset in a frame built for this family.
pub fn udp_offset(ipv6: bool) -> usize {
    ETH_LEN + if ipv6 { IPV6_LEN } else { IPV4_LEN }
}

/// True when the frame's IPv4 header checksum (if IPv4) and UDP checksum
/// verify. Used by tests, and by the generator's self-check.
pub fn checksums_ok(frame: &[u8]) -> bool {
    if frame.len() < ETH_LEN + 2 {
        return false;
    }
    let ipv6 = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => false,
        0x86dd => true,
        _ => return false,
    };
    let off = udp_offset(ipv6);
    if frame.len() < off + UDP_LEN {
        return false;
    }
    let udp = &frame[off..];
    let mut pseudo = if ipv6 {
        let ip = &frame[ETH_LEN..off];
        sum16(&ip[24..40], sum16(&ip[8..24], 0))
    } else {
        let ip = &frame[ETH_LEN..off];
        if fold(sum16(ip, 0)) != 0 {
            return false;
        }
        sum16(&ip[16..20], sum16(&ip[12..16], 0))
    };
    pseudo += 17 + udp.len() as u32;
    fold(sum16(udp, pseudo)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn spec(size: usize, v6: bool) -> FrameSpec {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
            )
        } else {
            (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            )
        };
        FrameSpec {
            frame_size: size,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: s,
            dst_ip: d,
            src_port: 1024,
            dst_port: 9,
        }
    }

    #[test]
    fn sixty_four_byte_frame_is_a_sixty_byte_buffer() {
        let f = build_udp_frame(&spec(64, false)).unwrap();
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        // IPv4 total length = 60 - 14, UDP length = 60 - 34.
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26);
    }

    #[test]
    fn every_size_and_family_has_valid_checksums() {
        for v6 in [false, true] {
            for size in [min_frame_size(v6), 67, 128, 512, 1024, 1517, 1518] {
                let f = build_udp_frame(&spec(size, v6)).unwrap();
                assert_eq!(f.len(), size - FCS_LEN);
                assert!(checksums_ok(&f), "size {size} v6 {v6}");
            }
        }
    }

    #[test]
    fn a_corrupted_byte_fails_the_checksum() {
        let mut f = build_udp_frame(&spec(128, false)).unwrap();
        assert!(checksums_ok(&f));
        f[100] ^= 0x40;
        assert!(!checksums_ok(&f));
    }

    #[test]
    fn incremental_port_rewrite_matches_a_fresh_checksum() {
        // What the BPF program does (RFC 1624 eqn. 3 on raw words) gives
        // the same checksum as building the frame with the new port.
        for v6 in [false, true] {
            let old = build_udp_frame(&spec(100, v6)).unwrap();
            let mut s = spec(100, v6);
            for new_port in [1025u16, 2000, 65535, 1024] {
                s.src_port = new_port;
                let fresh = build_udp_frame(&s).unwrap();
                let off = udp_offset(v6);
                let hc = u16::from_be_bytes([old[off + 6], old[off + 7]]);
                let m = u16::from_be_bytes([old[off], old[off + 1]]);
                let sum = u32::from(!hc) + u32::from(!m) + u32::from(new_port);
                let sum = (sum & 0xffff) + (sum >> 16);
                let sum = (sum & 0xffff) + (sum >> 16);
                let c = !(sum as u16);
                let c = if c == 0 { 0xffff } else { c };
                let mut patched = old.clone();
                patched[off..off + 2].copy_from_slice(&new_port.to_be_bytes());
                patched[off + 6..off + 8].copy_from_slice(&c.to_be_bytes());
                assert!(checksums_ok(&patched), "port {new_port} v6 {v6}");
                assert_eq!(patched, fresh, "port {new_port} v6 {v6}");
            }
        }
    }

    #[test]
    fn sizes_outside_the_range_are_refused_with_the_limits() {
        for (size, v6) in [(63, false), (64, true), (65, true), (1519, false)] {
            match build_udp_frame(&spec(size, v6)) {
                Err(GenError::FrameSize { size: s, min, max }) => {
                    assert_eq!(s, size);
                    assert_eq!(min, min_frame_size(v6));
                    assert_eq!(max, MAX_FRAME);
                }
                other => panic!("size {size} v6 {v6}: {other:?}"),
            }
        }
    }

    #[test]
    fn mixed_address_families_are_refused() {
        let mut s = spec(128, false);
        s.dst_ip = Ipv6Addr::LOCALHOST.into();
        assert!(matches!(
            build_udp_frame(&s),
            Err(GenError::MixedAddressFamilies)
        ));
    }
}
