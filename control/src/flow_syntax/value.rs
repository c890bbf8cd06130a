//! Scalar value syntax: numbers, Ethernet and IP addresses, masks.
//!
//! Every function here takes the text of one value and returns the parsed
//! value or a short reason (`"invalid IPv4 address"`) that the caller wraps
//! into a [`super::FlowSyntaxError`] pointing at the token. Nothing here
//! panics on any input: all indexing is by checked iteration.
//!
//! Numbers are decimal or `0x` hexadecimal (what `ovs-ofctl` prints and what
//! flow files use). Unlike C's `strtoull(…, 0)`, a leading `0` is *not* octal.

use core::net::{Ipv4Addr, Ipv6Addr};
use dataplane::flow_key::MacAddr;

/// Parses a non-negative integer: decimal, or hexadecimal with `0x`/`0X`.
pub(super) fn parse_u64(s: &str) -> Result<u64, &'static str> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("not a number");
    }
    u64::from_str_radix(digits, radix).map_err(|_| "number too large")
}

/// Parses `value` or `value/mask` as integers; the mask defaults to `full`.
pub(super) fn parse_u64_masked(s: &str, full: u64) -> Result<(u64, u64, bool), &'static str> {
    match s.split_once('/') {
        Some((v, m)) => Ok((parse_u64(v)?, parse_u64(m)?, true)),
        None => Ok((parse_u64(s)?, full, false)),
    }
}

/// Parses `xx:xx:xx:xx:xx:xx` (one or two hex digits per byte).
pub(super) fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses `MAC` or `MAC/MAC`; returns (value, mask, mask_given).
pub(super) fn parse_mac_masked(s: &str) -> Result<(MacAddr, MacAddr, bool), &'static str> {
    match s.split_once('/') {
        Some((v, m)) => {
            let v = parse_mac(v).ok_or("invalid Ethernet address")?;
            let m = parse_mac(m).ok_or("invalid Ethernet mask")?;
            Ok((v, m, true))
        }
        None => Ok((
            parse_mac(s).ok_or("invalid Ethernet address")?,
            [0xff; 6],
            false,
        )),
    }
}

/// Parses a dotted quad with decimal octets 0..=255 (leading zeros allowed,
/// read as decimal, as `ovs-ofctl` does).
pub(super) fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for octet in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *octet = p.parse::<u8>().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(out))
}

/// The mask of a `/n` prefix of a `bits`-wide address.
pub(super) fn prefix_mask_u128(n: u32, bits: u32) -> u128 {
    let full: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if n == 0 {
        0
    } else {
        (full << (bits - n.min(bits))) & full
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/n` or `a.b.c.d/m.m.m.m`; returns (value, mask, mask_given).
pub(super) fn parse_ipv4_masked(s: &str) -> Result<(u32, u32, bool), &'static str> {
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let v = u32::from(parse_ipv4(addr).ok_or("invalid IPv4 address")?);
    let Some(mask) = mask else {
        return Ok((v, u32::MAX, false));
    };
    if mask.contains('.') {
        let m = parse_ipv4(mask).ok_or("invalid IPv4 mask")?;
        return Ok((v, u32::from(m), true));
    }
    match parse_u64(mask) {
        Ok(n) if n <= 32 => Ok((v, prefix_mask_u128(n as u32, 32) as u32, true)),
        _ => Err("invalid IPv4 prefix length (want /0../32 or a dotted mask)"),
    }
}

/// Parses an IPv6 address, `addr/n` or `addr/mask`; returns (value, mask, mask_given).
pub(super) fn parse_ipv6_masked(s: &str) -> Result<(u128, u128, bool), &'static str> {
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let v = u128::from(
        addr.parse::<Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address")?,
    );
    let Some(mask) = mask else {
        return Ok((v, u128::MAX, false));
    };
    if mask.contains(':') {
        let m = mask.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 mask")?;
        return Ok((v, u128::from(m), true));
    }
    match parse_u64(mask) {
        Ok(n) if n <= 128 => Ok((v, prefix_mask_u128(n as u32, 128), true)),
        _ => Err("invalid IPv6 prefix length (want /0../128 or an address-style mask)"),
    }
}

/// If `mask` (of width `bits`) is a prefix mask, its length.
pub(super) fn prefix_len(mask: u128, bits: u32) -> Option<u32> {
    let n = mask.count_ones();
    (n <= bits && mask == prefix_mask_u128(n, bits)).then_some(n)
}

/// A MAC address as a 48-bit number (big-endian byte order).
pub(super) fn mac_to_u64(m: MacAddr) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// The inverse of [`mac_to_u64`] (high bits ignored).
pub(super) fn u64_to_mac(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// `xx:xx:xx:xx:xx:xx`, lower case, as OVS prints it.
pub(super) fn fmt_mac(m: MacAddr) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// An IPv6 address as glibc `inet_ntop` (and so OVS) prints it: RFC 5952
/// text, except that an IPv4-compatible address (`::a.b.c.d`, first 96 bits
/// zero, 7th group non-zero) keeps its dotted tail, which Rust's `Display`
/// writes in hex. (IPv4-mapped `::ffff:a.b.c.d` is dotted in both.)
pub(super) fn fmt_ipv6(v: u128) -> String {
    let a = Ipv6Addr::from(v);
    if v >> 32 == 0 && (v >> 16) & 0xffff != 0 {
        return format!("::{}", Ipv4Addr::from(v as u32));
    }
    a.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_decimal_or_hex_never_octal() {
        assert_eq!(parse_u64("010"), Ok(10));
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64("0XfF"), Ok(255));
        assert_eq!(parse_u64(""), Err("not a number"));
        assert_eq!(parse_u64("0x"), Err("not a number"));
        assert_eq!(parse_u64("-1"), Err("not a number"));
        assert_eq!(parse_u64("+1"), Err("not a number"));
        assert_eq!(parse_u64("18446744073709551616"), Err("number too large"));
    }

    #[test]
    fn ipv4_rejects_octets_over_255_and_wrong_shapes() {
        assert_eq!(parse_ipv4("10.0.0.255"), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert_eq!(parse_ipv4("010.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        for bad in [
            "10.0.0.300",
            "10.0.0",
            "10.0.0.1.2",
            "10..0.1",
            "a.b.c.d",
            "1.2.3.0001",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv4_masks_accept_prefix_and_dotted_forms() {
        assert_eq!(
            parse_ipv4_masked("10.1.2.3/8"),
            Ok((0x0a01_0203, 0xff00_0000, true))
        );
        assert_eq!(
            parse_ipv4_masked("10.1.2.3/255.0.255.0"),
            Ok((0x0a01_0203, 0xff00_ff00, true))
        );
        assert_eq!(parse_ipv4_masked("0.0.0.0/0"), Ok((0, 0, true)));
        assert!(parse_ipv4_masked("10.0.0.0/33").is_err());
    }

    #[test]
    fn prefix_len_recognises_only_contiguous_masks() {
        assert_eq!(prefix_len(0xffff_ff00, 32), Some(24));
        assert_eq!(prefix_len(0, 32), Some(0));
        assert_eq!(prefix_len(0xffff_ffff, 32), Some(32));
        assert_eq!(prefix_len(0xff00_ff00, 32), None);
        assert_eq!(prefix_len(u128::MAX, 128), Some(128));
        assert_eq!(prefix_len(prefix_mask_u128(64, 128), 128), Some(64));
    }

    #[test]
    fn ipv6_prints_like_inet_ntop() {
        let f = |s: &str| fmt_ipv6(u128::from(s.parse::<Ipv6Addr>().unwrap()));
        assert_eq!(f("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(f("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(f("::1"), "::1");
        assert_eq!(f("::"), "::");
        assert_eq!(f("::0.0.255.1"), "::ff01");
        assert_eq!(f("::2:1"), "::0.2.0.1");
        assert_eq!(f("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn mac_accepts_one_or_two_hex_digits_per_byte() {
        assert_eq!(
            parse_mac("0:1:22:a:BB:ff"),
            Some([0, 1, 0x22, 0xa, 0xbb, 0xff])
        );
        for bad in [
            "00:11:22:33:44",
            "00:11:22:33:44:55:66",
            "001:1:2:3:4:5",
            "0g:1:2:3:4:5",
            "",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(
            u64_to_mac(mac_to_u64([1, 2, 3, 4, 5, 6])),
            [1, 2, 3, 4, 5, 6]
        );
    }
}
