//! Internet checksums (RFC 1071), pseudo-headers, RFC 1624 incremental
//! updates, and CRC32c for SCTP.
//!
//! # What
//! The IPv4 header, TCP, UDP, ICMP and ICMPv6 all carry the 16-bit ones'
//! complement of the ones'-complement sum of their bytes (TCP/UDP/ICMPv6 add
//! a pseudo-header of the IP addresses, protocol and length). The packet path
//! never recomputes them from scratch: a header rewrite changes a few bytes,
//! and RFC 1624 gives the new checksum from the old one and the old and new
//! values of those bytes alone, in constant time. Full computation is here for
//! tests, tools and for checking that the incremental path stays exact.
//!
//! # The accumulator
//! Sums are carried in a `u64` *accumulator* holding an unfolded
//! ones'-complement sum of big-endian 16-bit words. [`accumulate`] adds bytes,
//! [`pseudo_header_ipv4`]/[`pseudo_header_ipv6`] produce the pseudo-header's
//! sum, [`fold`] reduces to 16 bits and [`finish`] complements. Because
//! 2^16 ≡ 1 (mod 0xffff), any power-of-two word width can be summed with an
//! end-around carry and folded at the end; [`accumulate`] therefore adds
//! 64-bit native-endian words (RFC 1071 §2(B): the sum is byte-order
//! independent up to a final byte swap) — one add-with-carry per 8 bytes.
//!
//! # Invariants
//! * Bytes passed to [`accumulate`] start at an even offset of the region being
//!   summed; only the last piece of a region may have odd length (it is padded
//!   with a zero byte, as RFC 1071 says).
//! * [`update16`]/[`update32`]/[`update_bytes`] implement RFC 1624 equation 3,
//!   `HC' = ~(~HC + ~m + m')`, which (unlike equation 2) yields exactly what a
//!   full recomputation yields whenever the old checksum was right and the new
//!   data is not all zero (the one case where ones'-complement arithmetic has
//!   two zeros, and real headers never hit it). A wrong old checksum stays
//!   wrong by the same amount — the switch does not repair or hide corruption,
//!   as Open vSwitch's `recalc_csum16` does not.
//! * Nothing here allocates or panics.

/// Adds `data` to the running sum `acc` and returns the new running sum.
///
/// `data` must begin at an even offset of the checksummed region; if its
/// length is odd it is taken to be the region's end and padded with a zero.
#[inline]
pub fn accumulate(acc: u64, data: &[u8]) -> u64 {
    let native = fold(sum_native(data));
    add(acc, u64::from(u16::from_be(native)))
}

/// Reduces a running sum to 16 bits (end-around carry), not complemented.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let mut s = (acc >> 32) + (acc & 0xffff_ffff);
    s = (s >> 32) + (s & 0xffff_ffff);
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// The checksum field value for a running sum: `!fold(acc)`.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The internet checksum of `data` (with its checksum field zeroed, this is
/// the value to store; over data that includes a correct checksum it is 0).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// Running sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768):
/// source, destination, zero, protocol, L4 length.
#[inline]
pub fn pseudo_header_ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u64 {
    u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(proto)
        + u64::from(l4_len)
}

/// Running sum of the IPv6 pseudo-header (RFC 8200 §8.1): source,
/// destination, 32-bit upper-layer length, zero, next header.
#[inline]
pub fn pseudo_header_ipv6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u64 {
    let s = u128::from_be_bytes(*src);
    let d = u128::from_be_bytes(*dst);
    let mut acc = add((s >> 64) as u64, s as u64);
    acc = add(acc, (d >> 64) as u64);
    acc = add(acc, d as u64);
    add(acc, u64::from(l4_len) + u64::from(proto))
}

/// The checksum to store in a TCP/UDP/ICMPv6 header given the pseudo-header
/// sum and the whole L4 segment with its checksum field zeroed. For UDP the
/// caller maps a result of 0 to 0xffff (0 means "no checksum").
#[inline]
pub fn l4_checksum(pseudo: u64, segment: &[u8]) -> u16 {
    finish(accumulate(pseudo, segment))
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word (at an even offset)
/// changed from `old` to `new`. Values are host-order numbers of the
/// big-endian words.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(u64::from(s))
}

/// [`update16`] for a 32-bit field at an even offset (e.g. an IPv4 address).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u64::from(!csum)
        + u64::from(!(old >> 16) & 0xffff)
        + u64::from(!old & 0xffff)
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !fold(s)
}

/// RFC 1624 for a run of bytes that changed from `old` to `new`. Both start at
/// the same even offset of the checksummed region; an odd length means the
/// last byte is the high byte of a word whose low byte did not change (both
/// are padded with zero, which cancels). Only the common length is used; the
/// slices are meant to be the same length.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let n = old.len().min(new.len());
    let old_sum = fold(accumulate(0, &old[..n]));
    let new_sum = fold(accumulate(0, &new[..n]));
    update16(csum, old_sum, new_sum)
}

/// Ones'-complement addition with end-around carry on 64-bit lanes.
#[inline(always)]
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// Ones'-complement sum of `data` read as native-endian words (padded with a
/// zero byte when the length is odd), unfolded.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    // Four independent lanes so the add-with-carry chains overlap.
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *lane = add(*lane, u64::from_ne_bytes(w));
        }
    }
    let mut acc = add(add(lanes[0], lanes[1]), add(lanes[2], lanes[3]));
    let mut words = blocks.remainder().chunks_exact(8);
    for c in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc = add(acc, u64::from_ne_bytes(w));
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        acc = add(
            acc,
            u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]])),
        );
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc = add(acc, u64::from(u16::from_ne_bytes([rest[0], rest[1]])));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc = add(acc, u64::from(u16::from_ne_bytes([b, 0])));
    }
    acc
}

/// CRC32c (Castagnoli, reflected polynomial 0x82f63b78) as used by SCTP
/// (RFC 9260 appendix A). Table-driven, one byte per step; the table is a
/// compile-time constant.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_update(0, data)
}

/// Continues a CRC32c: given `crc == crc32c(a)`, returns `crc32c(a ++ data)`
/// (`crc32c_update(0, data) == crc32c(data)`). For checksumming a packet in
/// pieces, e.g. with its checksum field replaced by zeros, without copying.
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook definition: big-endian 16-bit words, 32-bit accumulator,
    /// fold at the end. Used as the oracle for the fast path.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            s += u64::from(w);
        }
        while s > 0xffff {
            s = (s >> 16) + (s & 0xffff);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksum_is_b861() {
        // A commonly cited example header (checksum field zeroed): b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        let mut with = hdr;
        with[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }

    #[test]
    fn split_accumulation_equals_one_pass() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let whole = fold(accumulate(0, &data));
        let mut acc = 0;
        for piece in data[..1000].chunks(10) {
            acc = accumulate(acc, piece);
        }
        acc = accumulate(acc, &data[1000..]);
        assert_eq!(fold(acc), whole);
    }

    #[test]
    fn crc32c_matches_rfc3720_vectors() {
        // RFC 3720 B.4: 32 bytes of zeros / of 0xff / ascending.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let asc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&asc), 0x46dd_794e);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn crc32c_update_in_pieces_equals_one_pass() {
        let data: Vec<u8> = (0..=255u8).cycle().take(301).collect();
        for split in [0, 1, 7, 150, 300, 301] {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_update(crc32c(a), b), crc32c(&data), "split {split}");
        }
        assert_eq!(crc32c_update(0, b""), 0);
    }

    #[test]
    fn pseudo_headers_equal_summing_their_bytes() {
        let src = [10, 0, 0, 1];
        let dst = [192, 168, 1, 254];
        let mut ph4 = Vec::new();
        ph4.extend_from_slice(&src);
        ph4.extend_from_slice(&dst);
        ph4.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(
            fold(pseudo_header_ipv4(src, dst, 6, 1500)),
            reference_sum(&ph4)
        );

        let s6 = [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1,
        ];
        let d6 = [0xff; 16];
        let mut ph6 = Vec::new();
        ph6.extend_from_slice(&s6);
        ph6.extend_from_slice(&d6);
        ph6.extend_from_slice(&70_000u32.to_be_bytes());
        ph6.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            fold(pseudo_header_ipv6(&s6, &d6, 17, 70_000)),
            reference_sum(&ph6)
        );
    }

    /// Stores the checksum of `data` (field at `csum_at`, zeroed first).
    fn seal(data: &mut [u8], csum_at: usize) {
        data[csum_at..csum_at + 2].fill(0);
        let c = checksum(data);
        data[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn read16(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    proptest! {
        #[test]
        fn fast_sum_equals_reference_sum(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            // 0 and 0xffff are the two zeros of ones'-complement; the fast
            // path may produce either only for all-zero data.
            let fast = fold(accumulate(0, &data));
            let slow = reference_sum(&data);
            prop_assert!(fast == slow || (fast | slow == 0xffff && fast & slow == 0));
            if data.iter().any(|&b| b != 0) {
                prop_assert_eq!(fast, slow);
            }
        }

        #[test]
        fn update16_equals_full_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            word in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let words = data.len() / 2;
            seal(&mut data, 0);
            let at = 2 + 2 * word.index(words - 1);
            let old = read16(&data, at);
            let c = update16(read16(&data, 0), old, new);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data[2..].iter().any(|&b| b != 0));
            let mut full = data.clone();
            seal(&mut full, 0);
            prop_assert_eq!(c, read16(&full, 0));
        }

        #[test]
        fn update32_equals_full_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 6..200),
            word in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            seal(&mut data, 0);
            let at = 2 + 2 * word.index((data.len() - 4) / 2);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let c = update32(read16(&data, 0), old, new);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data[2..].iter().any(|&b| b != 0));
            let mut full = data.clone();
            seal(&mut full, 0);
            prop_assert_eq!(c, read16(&full, 0));
        }

        #[test]
        fn update_bytes_equals_full_recomputation(
            mut data in proptest::collection::vec(any::<u8>(), 3..300),
            start in any::<prop::sample::Index>(),
            patch in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            seal(&mut data, 0);
            // Any run starting at an even offset after the checksum field,
            // of any length (odd lengths included) that fits.
            let at = 2 + 2 * start.index((data.len() - 2).div_ceil(2));
            let n = patch.len().min(data.len() - at);
            let old = data[at..at + n].to_vec();
            let c = update_bytes(read16(&data, 0), &old, &patch[..n]);
            data[at..at + n].copy_from_slice(&patch[..n]);
            prop_assume!(data[2..].iter().any(|&b| b != 0));
            let mut full = data.clone();
            seal(&mut full, 0);
            prop_assert_eq!(c, read16(&full, 0));
        }

        #[test]
        fn updated_checksum_still_verifies_with_pseudo_header(
            mut seg in proptest::collection::vec(any::<u8>(), 20..300),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            new_src in any::<[u8; 4]>(),
        ) {
            // A TCP-like segment with its checksum at offset 16.
            let len = seg.len() as u16;
            seg[16..18].fill(0);
            let c = l4_checksum(pseudo_header_ipv4(src, dst, 6, len), &seg);
            let c2 = update32(c, u32::from_be_bytes(src), u32::from_be_bytes(new_src));
            seg[16..18].copy_from_slice(&c2.to_be_bytes());
            let verify = finish(accumulate(pseudo_header_ipv4(new_src, dst, 6, len), &seg));
            prop_assert_eq!(verify, 0);
        }
    }
}
