//! Flow-key extraction benchmarks.
//!
//! * `extract/ipv4_udp_64B` — the 64-byte IPv4/UDP frame of throughput tests;
//! * `extract/ipv6_tcp` — a 74-byte IPv6/TCP frame (no payload);
//! * `extract/vlan_ipv4_udp` — the IPv4/UDP frame with an 802.1Q tag;
//! * `extract/mixed_batch32` — a batch of 32 different frames (IPv4 UDP/TCP,
//!   IPv6, VLAN, ARP) per iteration, so branch prediction cannot learn one
//!   frame; reported per packet;
//! * `extract/peer_hash64` — `FlowKey::hash64` of the extracted key, the next
//!   step on the packet path (EMC), run alongside as the in-run peer so the
//!   figures can be compared as ratios on a noisy machine.
//!
//! Target: <= 25 ns per packet. Run short on the shared machine:
//! `cargo bench -p xswitch-benches --bench extract -- --warm-up-time 1 --measurement-time 3`

use core::net::{Ipv4Addr, Ipv6Addr};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::extract::extract;
use dataplane::flow_key::FlowKey;
use dataplane::wire::builder::{arp, tcp4, tcp6, udp4, udp6, with_vlan};

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn ipv4_udp_64() -> Vec<u8> {
    let f = udp4(
        A,
        B,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        1024,
        4789,
        22,
    );
    assert_eq!(f.len(), 64);
    f
}

fn ipv6_tcp() -> Vec<u8> {
    tcp6(
        A,
        B,
        "fd00::1".parse::<Ipv6Addr>().unwrap(),
        "fd00::2".parse::<Ipv6Addr>().unwrap(),
        40000,
        443,
        0,
    )
}

fn mixed_batch() -> Vec<Vec<u8>> {
    (0..32u8)
        .map(|i| {
            let s4 = Ipv4Addr::new(10, 0, i, 1);
            let d4 = Ipv4Addr::new(10, 1, 0, i);
            let s6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i));
            let d6 = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 1);
            let sport = 1000 + u16::from(i);
            match i % 8 {
                0..=2 => udp4(A, B, s4, d4, sport, 53, 22),
                3 => tcp4(A, B, s4, d4, sport, 80, 10),
                4 => udp6(A, B, s6, d6, sport, 53, 10),
                5 => tcp6(A, B, s6, d6, sport, 443, 0),
                6 => with_vlan(&udp4(A, B, s4, d4, sport, 4789, 18), 100 + u16::from(i)),
                _ => arp(1, A, s4, [0xff; 6], [0; 6], d4),
            }
        })
        .collect()
}

fn bench_extract(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("ipv4_udp_64B", ipv4_udp_64()),
        ("ipv6_tcp", ipv6_tcp()),
        ("vlan_ipv4_udp", with_vlan(&ipv4_udp_64(), 0x2064)),
    ];
    for (name, frame) in &cases {
        let mut key = FlowKey::ZERO;
        g.bench_function(*name, |b| {
            b.iter(|| {
                let l = extract(black_box(frame), black_box(1), &mut key);
                black_box(&key);
                black_box(l)
            })
        });
    }

    let mut key = FlowKey::ZERO;
    extract(&cases[0].1, 1, &mut key);
    g.bench_function("peer_hash64", |b| {
        b.iter(|| black_box(black_box(&key).hash64()))
    });

    let batch = mixed_batch();
    let mut keys = [FlowKey::ZERO; 32];
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("mixed_batch32", |b| {
        b.iter(|| {
            for (f, k) in batch.iter().zip(keys.iter_mut()) {
                black_box(extract(black_box(f), 1, k));
            }
            black_box(&keys);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_extract);
criterion_main!(benches);
