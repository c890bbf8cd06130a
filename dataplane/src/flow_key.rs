//! The flow key: every header field a rule may match, in a fixed word layout.
//!
//! # What
//! A [`FlowKey`] holds the OpenFlow fields of one packet (the OVS `struct flow`
//! subset xswitch supports). It is filled in one pass over the frame by
//! [`crate::extract::extract`] and is the unit of classification: caches hash it,
//! the classifier masks it.
//!
//! # Layout
//! The key is `KEY_WORDS` little `u64` words with every field at a fixed bit
//! position (see [`field`]). Masking a key is a word-wise AND and hashing is a
//! loop over words, so the classifier's subtables never look at field names.
//! [`FlowKey::fast_hash`] (the packet path's whole-key hash) and
//! [`FlowKey::fast_hash_masked`] (a classifier subtable's hash of the words
//! its mask touches) share one seed table and one multiply-fold, defined
//! here once.
//! A [`FlowKey`] used as a mask has 1-bits where the field must match.
//!
//! Field sharing follows Open vSwitch so that flows mean the same thing:
//! * ARP: `arp_spa` is `nw_src`, `arp_tpa` is `nw_dst`, `arp_op` is `nw_proto`
//!   (low 8 bits), `arp_sha`/`arp_tha` have their own words.
//! * ICMP/ICMPv6: `icmp_type` is `tp_src`, `icmp_code` is `tp_dst`.
//! * VLAN: `vlan_tci` is the outer 802.1Q/802.1ad TCI with the CFI bit
//!   ([`VLAN_CFI`]) set when a tag is present, 0 when the frame is untagged
//!   (OVS's convention); `dl_vlan` and `dl_vlan_pcp` are masks over it.
//!   `vlan_tci2` is the inner tag of a double-tagged frame.
//! * `nw_tos` is the whole IPv4 TOS / IPv6 traffic-class byte; the OpenFlow
//!   field `nw_tos` matches its DSCP bits (mask `0xfc`), `nw_ecn` the low 2.
//! * `nw_frag` holds [`FRAG_ANY`] and [`FRAG_LATER`].
//!
//! # Invariants
//! Fields of layers the frame does not have are zero. A key is plain data:
//! `Copy`, no heap, so extraction and cache insertion never allocate.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 12;

/// An OpenFlow port number (OVS `ofp_port_t`).
pub type PortNo = u32;

/// A 48-bit Ethernet address in network byte order.
pub type MacAddr = [u8; 6];

/// CFI/DEI bit of `vlan_tci`: set when the frame carries a VLAN tag.
pub const VLAN_CFI: u16 = 0x1000;
/// VLAN id bits of a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// Priority (PCP) bits of a TCI.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// Shift of the PCP bits in a TCI.
pub const VLAN_PCP_SHIFT: u16 = 13;

/// `nw_frag` bit: the packet is an IP fragment (first or later).
pub const FRAG_ANY: u8 = 0x01;
/// `nw_frag` bit: the packet is a non-first fragment (no L4 header).
pub const FRAG_LATER: u8 = 0x02;

/// Bit positions of each field: `(word, shift, width_in_bits)`.
pub mod field {
    /// A field's place in the key.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Pos {
        pub word: usize,
        pub shift: u32,
        pub bits: u32,
    }
    const fn p(word: usize, shift: u32, bits: u32) -> Pos {
        Pos { word, shift, bits }
    }
    pub const IN_PORT: Pos = p(0, 0, 32);
    pub const DL_TYPE: Pos = p(0, 32, 16);
    pub const VLAN_TCI: Pos = p(0, 48, 16);
    pub const DL_DST: Pos = p(1, 0, 48);
    pub const VLAN_TCI2: Pos = p(1, 48, 16);
    pub const DL_SRC: Pos = p(2, 0, 48);
    pub const NW_PROTO: Pos = p(2, 48, 8);
    pub const NW_TOS: Pos = p(2, 56, 8);
    pub const NW_SRC: Pos = p(3, 0, 32);
    pub const NW_DST: Pos = p(3, 32, 32);
    pub const TP_SRC: Pos = p(4, 0, 16);
    pub const TP_DST: Pos = p(4, 16, 16);
    pub const NW_TTL: Pos = p(4, 32, 8);
    pub const NW_FRAG: Pos = p(4, 40, 8);
    pub const ARP_SHA: Pos = p(5, 0, 48);
    pub const ARP_THA: Pos = p(6, 0, 48);
    /// High 64 bits of the IPv6 source (bytes 0..8, big-endian).
    pub const IPV6_SRC_HI: Pos = p(7, 0, 64);
    pub const IPV6_SRC_LO: Pos = p(8, 0, 64);
    pub const IPV6_DST_HI: Pos = p(9, 0, 64);
    pub const IPV6_DST_LO: Pos = p(10, 0, 64);
    pub const IPV6_LABEL: Pos = p(11, 0, 20);
}

/// The header fields of one packet, or a mask over them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub words: [u64; KEY_WORDS],
}

macro_rules! accessors {
    ($( $get:ident, $set:ident, $pos:expr, $ty:ty; )*) => {$(
        #[inline]
        pub fn $get(&self) -> $ty {
            self.get($pos) as $ty
        }
        #[inline]
        pub fn $set(&mut self, v: $ty) {
            self.set($pos, v as u64)
        }
    )*};
}

impl FlowKey {
    /// The all-zero key (also the empty mask: matches everything).
    pub const ZERO: FlowKey = FlowKey {
        words: [0; KEY_WORDS],
    };

    #[inline]
    fn field_mask(pos: field::Pos) -> u64 {
        if pos.bits == 64 {
            u64::MAX
        } else {
            ((1u64 << pos.bits) - 1) << pos.shift
        }
    }

    /// Reads a raw field value.
    #[inline]
    pub fn get(&self, pos: field::Pos) -> u64 {
        (self.words[pos.word] & Self::field_mask(pos)) >> pos.shift
    }

    /// Writes a raw field value (excess high bits are discarded).
    #[inline]
    pub fn set(&mut self, pos: field::Pos, v: u64) {
        let m = Self::field_mask(pos);
        let w = &mut self.words[pos.word];
        *w = (*w & !m) | ((v << pos.shift) & m);
    }

    accessors! {
        in_port, set_in_port, field::IN_PORT, u32;
        dl_type, set_dl_type, field::DL_TYPE, u16;
        vlan_tci, set_vlan_tci, field::VLAN_TCI, u16;
        vlan_tci2, set_vlan_tci2, field::VLAN_TCI2, u16;
        nw_proto, set_nw_proto, field::NW_PROTO, u8;
        nw_tos, set_nw_tos, field::NW_TOS, u8;
        nw_src_u32, set_nw_src_u32, field::NW_SRC, u32;
        nw_dst_u32, set_nw_dst_u32, field::NW_DST, u32;
        tp_src, set_tp_src, field::TP_SRC, u16;
        tp_dst, set_tp_dst, field::TP_DST, u16;
        nw_ttl, set_nw_ttl, field::NW_TTL, u8;
        nw_frag, set_nw_frag, field::NW_FRAG, u8;
        ipv6_label, set_ipv6_label, field::IPV6_LABEL, u32;
    }

    fn get_mac(&self, pos: field::Pos) -> MacAddr {
        let v = self.get(pos);
        let b = v.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }
    fn set_mac(&mut self, pos: field::Pos, m: MacAddr) {
        let v = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
        self.set(pos, v)
    }
    fn get_v6(&self, hi: field::Pos, lo: field::Pos) -> Ipv6Addr {
        Ipv6Addr::from(((self.get(hi) as u128) << 64) | self.get(lo) as u128)
    }
    fn set_v6(&mut self, hi: field::Pos, lo: field::Pos, a: Ipv6Addr) {
        let v = u128::from(a);
        self.set(hi, (v >> 64) as u64);
        self.set(lo, v as u64);
    }

    pub fn dl_src(&self) -> MacAddr {
        self.get_mac(field::DL_SRC)
    }
    pub fn set_dl_src(&mut self, m: MacAddr) {
        self.set_mac(field::DL_SRC, m)
    }
    pub fn dl_dst(&self) -> MacAddr {
        self.get_mac(field::DL_DST)
    }
    pub fn set_dl_dst(&mut self, m: MacAddr) {
        self.set_mac(field::DL_DST, m)
    }
    pub fn arp_sha(&self) -> MacAddr {
        self.get_mac(field::ARP_SHA)
    }
    pub fn set_arp_sha(&mut self, m: MacAddr) {
        self.set_mac(field::ARP_SHA, m)
    }
    pub fn arp_tha(&self) -> MacAddr {
        self.get_mac(field::ARP_THA)
    }
    pub fn set_arp_tha(&mut self, m: MacAddr) {
        self.set_mac(field::ARP_THA, m)
    }
    pub fn nw_src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.nw_src_u32())
    }
    pub fn set_nw_src(&mut self, a: Ipv4Addr) {
        self.set_nw_src_u32(u32::from(a))
    }
    pub fn nw_dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.nw_dst_u32())
    }
    pub fn set_nw_dst(&mut self, a: Ipv4Addr) {
        self.set_nw_dst_u32(u32::from(a))
    }
    pub fn ipv6_src(&self) -> Ipv6Addr {
        self.get_v6(field::IPV6_SRC_HI, field::IPV6_SRC_LO)
    }
    pub fn set_ipv6_src(&mut self, a: Ipv6Addr) {
        self.set_v6(field::IPV6_SRC_HI, field::IPV6_SRC_LO, a)
    }
    pub fn ipv6_dst(&self) -> Ipv6Addr {
        self.get_v6(field::IPV6_DST_HI, field::IPV6_DST_LO)
    }
    pub fn set_ipv6_dst(&mut self, a: Ipv6Addr) {
        self.set_v6(field::IPV6_DST_HI, field::IPV6_DST_LO, a)
    }

    /// `dl_vlan` as OpenFlow sees it: the VLAN id, or `None` when untagged.
    pub fn dl_vlan(&self) -> Option<u16> {
        let tci = self.vlan_tci();
        (tci & VLAN_CFI != 0).then_some(tci & VLAN_VID_MASK)
    }
    /// `dl_vlan_pcp`: the priority of the outer tag (0 when untagged).
    pub fn dl_vlan_pcp(&self) -> u8 {
        (self.vlan_tci() >> VLAN_PCP_SHIFT) as u8
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.words[i] = self.words[i] & mask.words[i];
        }
        out
    }

    /// A fast 64-bit hash of the words (not DoS-resistant; keys come from
    /// traffic, but tables are bounded and collisions only cost time).
    #[inline]
    pub fn hash64(&self) -> u64 {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for w in self.words {
            h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 32;
        }
        h
    }

    /// Hash of `self & mask` without materialising the masked key.
    #[inline]
    pub fn hash64_masked(&self, mask: &FlowKey) -> u64 {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..KEY_WORDS {
            h = (h ^ (self.words[i] & mask.words[i])).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 32;
        }
        h
    }

    /// The packet path's hash of the whole key, for the exact-match cache
    /// and tx-queue choice (the value `datapath::pmd`'s `flow_hash`
    /// computes): the 12 words, each XORed with its seed, folded pairwise by
    /// 64×64→128-bit multiplies (low half XOR high half). The six products
    /// are independent, so they overlap in the pipeline; [`FlowKey::hash64`]'s
    /// serial multiply chain costs about twice as much. Not DoS-resistant.
    #[inline]
    pub fn fast_hash(&self) -> u64 {
        let (w, k) = (&self.words, &FAST_HASH_SEEDS);
        let a = fold_mul(w[0] ^ k[0], w[1] ^ k[1]);
        let b = fold_mul(w[2] ^ k[2], w[3] ^ k[3]);
        let c = fold_mul(w[4] ^ k[4], w[5] ^ k[5]);
        let d = fold_mul(w[6] ^ k[6], w[7] ^ k[7]);
        let e = fold_mul(w[8] ^ k[8], w[9] ^ k[9]);
        let f = fold_mul(w[10] ^ k[10], w[11] ^ k[11]);
        fold_mul(a ^ c ^ e ^ k[KEY_WORDS], b ^ d ^ f)
    }

    /// The classifier subtables' hash of `self & mask`, reading only the
    /// words listed in `words` (the indices of `mask`'s non-zero words, each
    /// `< KEY_WORDS`, as a subtable keeps them). Each listed word, masked
    /// and XORed with its seed, is folded with one multiply; the terms are
    /// independent and summed, and the sum is folded once more with the
    /// number of words. Words `mask` does not touch cost nothing.
    ///
    /// This is a different mix from [`FlowKey::fast_hash`] (it is not
    /// `self.masked(mask).fast_hash()`), and its value depends on `words`:
    /// a table must hash all its keys with the same `mask` and `words`. For
    /// such a table it depends only on `self & mask`.
    #[inline]
    pub fn fast_hash_masked(&self, mask: &FlowKey, words: &[u8]) -> u64 {
        let mut h: u64 = 0;
        for &w in words {
            let w = usize::from(w);
            let v = self.words[w] & mask.words[w];
            h = h.wrapping_add(fold_mul(v ^ FAST_HASH_SEEDS[w], FAST_HASH_MUL));
        }
        fold_mul(h ^ words.len() as u64, FAST_HASH_FINAL)
    }
}

/// Seeds of [`FlowKey::fast_hash`] and [`FlowKey::fast_hash_masked`]: one
/// per key word (so equal values in different words hash apart) and one for
/// the final fold; they are the first hexadecimal digits of π's fraction,
/// taken 64 bits at a time.
const FAST_HASH_SEEDS: [u64; KEY_WORDS + 1] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ac,
    0x2ffd_72db_d01a_dfb7,
    0xb8e1_afed_6a26_7e96,
    0xba7c_9045_f12c_7f99,
];
/// Per-word multiplier of [`FlowKey::fast_hash_masked`] (2^64 / φ).
const FAST_HASH_MUL: u64 = 0x9e37_79b9_7f4a_7c15;
/// Final multiplier of [`FlowKey::fast_hash_masked`] (MurmurHash3's fmix64).
const FAST_HASH_FINAL: u64 = 0xff51_afd7_ed55_8ccd;

/// 64×64→128-bit multiply folded to 64 bits (low half XOR high half): one
/// `mul`; XORing in the high half makes the low output bits depend on the
/// high input bits too.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = |a: MacAddr| {
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                a[0], a[1], a[2], a[3], a[4], a[5]
            )
        };
        write!(
            f,
            "FlowKey{{in_port={},dl_src={},dl_dst={},dl_type=0x{:04x},vlan_tci=0x{:04x},\
             vlan_tci2=0x{:04x},nw_src={},nw_dst={},nw_proto={},nw_tos={},nw_ttl={},\
             nw_frag={},tp_src={},tp_dst={},arp_sha={},arp_tha={},ipv6_src={},ipv6_dst={},\
             ipv6_label=0x{:05x}}}",
            self.in_port(),
            m(self.dl_src()),
            m(self.dl_dst()),
            self.dl_type(),
            self.vlan_tci(),
            self.vlan_tci2(),
            self.nw_src(),
            self.nw_dst(),
            self.nw_proto(),
            self.nw_tos(),
            self.nw_ttl(),
            self.nw_frag(),
            self.tp_src(),
            self.tp_dst(),
            m(self.arp_sha()),
            m(self.arp_tha()),
            self.ipv6_src(),
            self.ipv6_dst(),
            self.ipv6_label()
        )
    }
}

/// A key with a mask: what a rule matches. Invariant: `key == key & mask`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct FlowMatch {
    pub key: FlowKey,
    pub mask: FlowKey,
}

impl FlowMatch {
    /// The match-everything rule body.
    pub const ANY: FlowMatch = FlowMatch {
        key: FlowKey::ZERO,
        mask: FlowKey::ZERO,
    };

    /// Builds a match, normalising `key` under `mask`.
    pub fn new(key: FlowKey, mask: FlowKey) -> Self {
        FlowMatch {
            key: key.masked(&mask),
            mask,
        }
    }

    /// Sets `field = value` under `mask` (both raw field values).
    pub fn set_masked(&mut self, pos: field::Pos, value: u64, mask: u64) {
        self.mask.set(pos, mask);
        self.key.set(pos, value & mask);
    }

    /// Does packet key `k` satisfy this match?
    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        (0..KEY_WORDS).all(|i| k.words[i] & self.mask.words[i] == self.key.words[i])
    }
}

/// Well-known ethertypes.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// Well-known IP protocol numbers.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_without_overlap() {
        let mut k = FlowKey::ZERO;
        k.set_in_port(0xdead_beef);
        k.set_dl_type(0x86dd);
        k.set_vlan_tci(0xf123);
        k.set_vlan_tci2(0x1abc);
        k.set_dl_src([1, 2, 3, 4, 5, 6]);
        k.set_dl_dst([7, 8, 9, 10, 11, 12]);
        k.set_nw_proto(17);
        k.set_nw_tos(0xfe);
        k.set_nw_src(Ipv4Addr::new(10, 1, 2, 3));
        k.set_nw_dst(Ipv4Addr::new(192, 168, 0, 1));
        k.set_tp_src(1234);
        k.set_tp_dst(80);
        k.set_nw_ttl(64);
        k.set_nw_frag(FRAG_ANY | FRAG_LATER);
        k.set_arp_sha([0xaa; 6]);
        k.set_arp_tha([0xbb; 6]);
        k.set_ipv6_src("2001:db8::1".parse().unwrap());
        k.set_ipv6_dst("fe80::2".parse().unwrap());
        k.set_ipv6_label(0xfffff);
        assert_eq!(k.in_port(), 0xdead_beef);
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.vlan_tci(), 0xf123);
        assert_eq!(k.vlan_tci2(), 0x1abc);
        assert_eq!(k.dl_src(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(k.dl_dst(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(k.nw_proto(), 17);
        assert_eq!(k.nw_tos(), 0xfe);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(k.tp_src(), 1234);
        assert_eq!(k.tp_dst(), 80);
        assert_eq!(k.nw_ttl(), 64);
        assert_eq!(k.nw_frag(), 3);
        assert_eq!(k.arp_sha(), [0xaa; 6]);
        assert_eq!(k.arp_tha(), [0xbb; 6]);
        assert_eq!(k.ipv6_src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.ipv6_dst(), "fe80::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.ipv6_label(), 0xfffff);
        assert_eq!(k.dl_vlan(), Some(0x123));
        assert_eq!(k.dl_vlan_pcp(), 7);
    }

    #[test]
    fn match_normalises_and_matches() {
        let mut m = FlowMatch::ANY;
        m.set_masked(field::NW_DST, 0x0a00_00ff, 0xffff_ff00);
        assert_eq!(m.key.nw_dst_u32(), 0x0a00_0000);
        let mut k = FlowKey::ZERO;
        k.set_nw_dst_u32(0x0a00_0042);
        assert!(m.matches(&k));
        k.set_nw_dst_u32(0x0a00_0142);
        assert!(!m.matches(&k));
        assert_eq!(k.masked(&m.mask).hash64(), k.hash64_masked(&m.mask));
    }

    /// Keys with varied bits in every word (splitmix64 sequence).
    fn varied_keys(n: usize) -> Vec<FlowKey> {
        let mut x: u64 = 1;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (0..n)
            .map(|_| FlowKey {
                words: core::array::from_fn(|_| next()),
            })
            .collect()
    }

    #[test]
    fn fast_hash_changes_when_any_bit_of_any_word_changes() {
        for k in varied_keys(8) {
            let h = k.fast_hash();
            for w in 0..KEY_WORDS {
                for bit in [0, 1, 17, 31, 32, 48, 63] {
                    let mut k2 = k;
                    k2.words[w] ^= 1 << bit;
                    assert_ne!(k2.fast_hash(), h, "word {w} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn fast_hash_masked_sees_only_the_masked_bits_of_the_listed_words() {
        let mut mask = FlowKey::ZERO;
        mask.words[1] = 0xffff_0000_ffff_0000;
        mask.words[4] = u64::MAX;
        mask.words[11] = 0xff;
        let words = [1u8, 4, 11];
        for k in varied_keys(8) {
            let h = k.fast_hash_masked(&mask, &words);
            // Equal to the hash of the masked key: only `key & mask` counts.
            assert_eq!(k.masked(&mask).fast_hash_masked(&mask, &words), h);
            for w in 0..KEY_WORDS {
                for bit in 0..64 {
                    let mut k2 = k;
                    k2.words[w] ^= 1 << bit;
                    let inside = mask.words[w] & (1 << bit) != 0;
                    assert_eq!(
                        k2.fast_hash_masked(&mask, &words) != h,
                        inside,
                        "word {w} bit {bit}"
                    );
                }
            }
        }
    }
}
