//! Unit tests for the flow table semantics (priority, ties, replace, delete,
//! timeouts, publication). Randomised differential tests against the linear
//! oracle live in `dataplane/tests/classifier_props.rs`.

use super::*;
use crate::actions::Action;
use crate::flow_key::{field, FlowKey, FlowMatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

fn prefix(len: u32) -> u64 {
    if len == 0 {
        0
    } else {
        u64::from(u32::MAX << (32 - len))
    }
}

fn dst(addr: u32, plen: u32) -> FlowMatch {
    let mut m = FlowMatch::ANY;
    m.set_masked(field::NW_DST, addr.into(), prefix(plen));
    m
}

fn spec(priority: u16, matcher: FlowMatch, port: u32) -> RuleSpec {
    RuleSpec {
        priority,
        ..RuleSpec::new(matcher, vec![Action::Output(port)])
    }
}

fn key_dst(addr: u32) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_nw_dst_u32(addr);
    k.set_dl_type(0x0800);
    k
}

fn out_port(r: Option<&Arc<Rule>>) -> Option<u32> {
    r.map(|r| match r.actions() {
        [Action::Output(p)] => *p,
        other => panic!("unexpected actions {other:?}"),
    })
}

fn lookup_port(t: &FlowTable, k: &FlowKey) -> Option<u32> {
    out_port(t.snapshot().lookup(k))
}

#[test]
fn empty_table_matches_nothing() {
    let t = FlowTable::new();
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(lookup_port(&t, &key_dst(ip(10, 0, 0, 1))), None);
    assert!(t.snapshot().is_empty());
}

#[test]
fn higher_priority_wins_regardless_of_install_order() {
    for reverse in [false, true] {
        let t = FlowTable::new();
        let mut specs = vec![
            spec(10, dst(ip(10, 0, 0, 0), 8), 1),
            spec(20, dst(ip(10, 1, 2, 0), 24), 2),
            // A broad rule with the highest priority beats specific ones.
            spec(30, dst(ip(192, 168, 0, 0), 16), 3),
            spec(5, dst(ip(192, 168, 1, 0), 24), 4),
        ];
        if reverse {
            specs.reverse();
        }
        for s in specs {
            t.add(s);
        }
        assert_eq!(lookup_port(&t, &key_dst(ip(10, 1, 2, 3))), Some(2));
        assert_eq!(lookup_port(&t, &key_dst(ip(10, 1, 3, 3))), Some(1));
        assert_eq!(lookup_port(&t, &key_dst(ip(192, 168, 1, 1))), Some(3));
        assert_eq!(lookup_port(&t, &key_dst(ip(11, 0, 0, 1))), None);
    }
}

#[test]
fn equal_priority_overlap_is_won_by_the_earlier_installed_rule() {
    let mut by_src = FlowMatch::ANY;
    by_src.set_masked(field::NW_SRC, ip(1, 0, 0, 0).into(), prefix(8));
    let mut by_port = FlowMatch::ANY;
    by_port.set_masked(field::TP_DST, 80, 0xffff);
    let mut k = key_dst(ip(10, 0, 0, 1));
    k.set_nw_src_u32(ip(1, 2, 3, 4));
    k.set_tp_dst(80);

    let t = FlowTable::new();
    t.add(spec(7, by_src, 1));
    t.add(spec(7, by_port, 2));
    assert_eq!(lookup_port(&t, &k), Some(1));

    let t = FlowTable::new();
    t.add(spec(7, by_port, 2));
    t.add(spec(7, by_src, 1));
    assert_eq!(lookup_port(&t, &k), Some(2));
}

#[test]
fn replacing_a_rule_keeps_its_place_among_equal_priority_ties() {
    let mut by_src = FlowMatch::ANY;
    by_src.set_masked(field::NW_SRC, ip(1, 0, 0, 0).into(), prefix(8));
    let mut by_port = FlowMatch::ANY;
    by_port.set_masked(field::TP_DST, 80, 0xffff);
    let mut k = key_dst(ip(10, 0, 0, 1));
    k.set_nw_src_u32(ip(1, 2, 3, 4));
    k.set_tp_dst(80);

    let t = FlowTable::new();
    let first = t.add(spec(7, by_src, 1));
    t.add(spec(7, by_port, 2));
    let replaced = t.add(spec(7, by_src, 9));
    assert_eq!(replaced.install_seq(), first.install_seq());
    assert_eq!(lookup_port(&t, &k), Some(9));
    let order: Vec<u32> = t
        .rules()
        .iter()
        .map(|r| out_port(Some(r)).unwrap())
        .collect();
    assert_eq!(order, vec![9, 2]);
}

#[test]
fn add_with_identical_match_and_priority_replaces_actions_and_resets_counters() {
    let t = FlowTable::new();
    let old = t.add(spec(100, dst(ip(10, 0, 0, 0), 24), 1));
    old.record_hit(3, 300, Instant::now());
    // Key bits outside the mask do not make the match different.
    let mut sloppy = dst(ip(10, 0, 0, 0), 24);
    sloppy.key.set_nw_dst_u32(ip(10, 0, 0, 77));
    let new = t.add(RuleSpec {
        cookie: 0xc0ffee,
        idle_timeout: 5,
        hard_timeout: 9,
        ..spec(100, sloppy, 2)
    });
    assert_eq!(t.len(), 1);
    let snap = t.snapshot();
    let hit = snap.lookup(&key_dst(ip(10, 0, 0, 5))).unwrap();
    assert!(Arc::ptr_eq(hit, &new));
    assert_eq!(hit.actions(), &[Action::Output(2)]);
    assert_eq!(hit.cookie(), 0xc0ffee);
    assert_eq!((hit.idle_timeout(), hit.hard_timeout()), (5, 9));
    assert_eq!((hit.n_packets(), hit.n_bytes()), (0, 0));
    assert_eq!(hit.matcher().key.nw_dst_u32(), ip(10, 0, 0, 0));
    // The replaced rule object keeps what it counted.
    assert_eq!((old.n_packets(), old.n_bytes()), (3, 300));
}

#[test]
fn same_match_with_different_priorities_are_distinct_rules() {
    let t = FlowTable::new();
    let m = dst(ip(10, 0, 0, 0), 8);
    t.add(spec(1, m, 1));
    t.add(spec(3, m, 3));
    t.add(spec(2, m, 2));
    assert_eq!(t.len(), 3);
    let k = key_dst(ip(10, 9, 9, 9));
    assert_eq!(lookup_port(&t, &k), Some(3));
    assert_eq!(t.delete(&m, Some(3)), 1);
    assert_eq!(lookup_port(&t, &k), Some(2));
    assert_eq!(t.delete(&m, Some(1)), 1);
    assert_eq!(lookup_port(&t, &k), Some(2));
    assert_eq!(t.delete(&m, Some(2)), 1);
    assert_eq!(lookup_port(&t, &k), None);
    t.check_invariants();
}

#[test]
fn loose_delete_removes_rules_equal_to_or_more_specific_than_the_filter() {
    let t = FlowTable::new();
    t.add(spec(1, dst(ip(10, 0, 0, 0), 8), 1)); // less specific: stays
    t.add(spec(2, dst(ip(10, 1, 0, 0), 16), 2)); // equal: goes
    t.add(spec(3, dst(ip(10, 1, 2, 0), 24), 3)); // more specific: goes
    t.add(spec(4, dst(ip(10, 2, 2, 0), 24), 4)); // other value: stays
    let mut with_port = dst(ip(10, 1, 0, 0), 16);
    with_port.set_masked(field::TP_DST, 80, 0xffff);
    t.add(spec(5, with_port, 5)); // more specific on another field: goes
    let mut src_only = FlowMatch::ANY;
    src_only.set_masked(field::NW_SRC, ip(10, 1, 0, 0).into(), prefix(16));
    t.add(spec(6, src_only, 6)); // does not match on nw_dst at all: stays

    let removed = t.remove(&dst(ip(10, 1, 0, 0), 16), None);
    let mut ports: Vec<u32> = removed.iter().map(|r| out_port(Some(r)).unwrap()).collect();
    ports.sort();
    assert_eq!(ports, vec![2, 3, 5]);
    let mut left: Vec<u32> = t
        .rules()
        .iter()
        .map(|r| out_port(Some(r)).unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec![1, 4, 6]);
    t.check_invariants();
}

#[test]
fn loose_delete_with_an_arbitrary_bitmask_filter() {
    let t = FlowTable::new();
    for last in 0..8u8 {
        t.add(spec(10, dst(ip(10, 0, 0, last), 32), u32::from(last)));
    }
    t.add(spec(5, dst(ip(10, 0, 0, 0), 24), 100));
    // Filter: the lowest address bit is 1. The /24 does not match on that
    // bit, so it is less specific than the filter and stays.
    let mut odd = FlowMatch::ANY;
    odd.set_masked(field::NW_DST, 1, 1);
    assert_eq!(t.delete(&odd, None), 4);
    let mut left: Vec<u32> = t
        .rules()
        .iter()
        .map(|r| out_port(Some(r)).unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec![0, 2, 4, 6, 100]);
}

#[test]
fn loose_delete_with_the_empty_filter_removes_everything() {
    let t = FlowTable::new();
    t.add_batch((0..50u32).map(|i| spec(i as u16, dst(ip(10, 0, i as u8, 0), 24), i)));
    assert_eq!(t.delete(&FlowMatch::ANY, None), 50);
    assert!(t.is_empty());
    assert_eq!(t.snapshot().n_subtables(), 0);
    t.check_invariants();
}

#[test]
fn strict_delete_requires_the_identical_match_and_priority() {
    let t = FlowTable::new();
    let m = dst(ip(10, 0, 0, 0), 16);
    t.add(spec(50, m, 1));
    t.add(spec(50, dst(ip(10, 0, 1, 0), 24), 2));
    assert_eq!(t.delete(&m, Some(49)), 0);
    assert_eq!(t.delete(&dst(ip(10, 0, 0, 0), 8), Some(50)), 0);
    assert_eq!(t.len(), 2);
    assert_eq!(t.delete(&m, Some(50)), 1);
    assert_eq!(t.len(), 1);
    assert_eq!(lookup_port(&t, &key_dst(ip(10, 0, 1, 1))), Some(2));
    assert_eq!(lookup_port(&t, &key_dst(ip(10, 0, 2, 1))), None);
}

#[test]
fn hard_timeout_expires_from_install_even_when_the_rule_is_hit() {
    let t = FlowTable::new();
    let r = t.add(RuleSpec {
        hard_timeout: 10,
        ..spec(1, dst(ip(10, 0, 0, 0), 8), 1)
    });
    let keep = t.add(spec(1, dst(ip(11, 0, 0, 0), 8), 2));
    let t0 = r.created();
    r.record_hit(1, 64, t0 + Duration::from_secs(9));
    assert!(t.expire(t0 + Duration::from_millis(9_999)).is_empty());
    let gone = t.expire(t0 + Duration::from_secs(10));
    assert_eq!(gone.len(), 1);
    assert!(Arc::ptr_eq(&gone[0], &r));
    assert_eq!(
        r.expiry(t0 + Duration::from_secs(10)),
        Some(ExpiryReason::Hard)
    );
    assert_eq!(t.len(), 1);
    assert!(Arc::ptr_eq(&t.rules()[0], &keep));
    assert_eq!(lookup_port(&t, &key_dst(ip(10, 0, 0, 1))), None);
}

#[test]
fn idle_timeout_counts_from_the_last_hit() {
    let t = FlowTable::new();
    let r = t.add(RuleSpec {
        idle_timeout: 5,
        ..spec(1, dst(ip(10, 0, 0, 0), 8), 1)
    });
    let t0 = r.created();
    assert_eq!(
        r.idle_age_at(t0 + Duration::from_secs(2)),
        Duration::from_secs(2)
    );
    r.record_hit(2, 128, t0 + Duration::from_secs(4));
    // A late-arriving older timestamp does not move last-used backwards.
    r.record_hit(1, 64, t0 + Duration::from_secs(1));
    assert_eq!(r.last_used(), t0 + Duration::from_secs(4));
    assert_eq!((r.n_packets(), r.n_bytes()), (3, 192));
    assert!(t.expire(t0 + Duration::from_secs(8)).is_empty());
    assert_eq!(
        r.expiry(t0 + Duration::from_secs(9)),
        Some(ExpiryReason::Idle)
    );
    assert_eq!(t.expire(t0 + Duration::from_secs(9)).len(), 1);
    assert!(t.is_empty());
}

#[test]
fn rules_without_timeouts_never_expire() {
    let t = FlowTable::new();
    let r = t.add(spec(1, FlowMatch::ANY, 1));
    let far = r.created() + Duration::from_secs(10 * 365 * 24 * 3600);
    assert!(t.expire(far).is_empty());
    assert_eq!(r.expiry(far), None);
}

#[test]
fn generation_changes_on_every_change_and_not_on_a_noop_delete() {
    let t = FlowTable::new();
    let mut seen = vec![t.generation()];
    t.add(spec(1, dst(ip(10, 0, 0, 0), 8), 1));
    seen.push(t.generation());
    t.add(spec(1, dst(ip(10, 0, 0, 0), 8), 2)); // replacement
    seen.push(t.generation());
    t.add_batch([spec(2, FlowMatch::ANY, 3)]);
    seen.push(t.generation());
    let before = t.generation();
    assert_eq!(t.delete(&dst(ip(99, 0, 0, 0), 8), None), 0);
    assert_eq!(t.delete(&FlowMatch::ANY, Some(77)), 0);
    assert_eq!(t.add_batch(Vec::new()), 0);
    assert!(t.expire(Instant::now()).is_empty());
    assert_eq!(t.generation(), before);
    t.delete(&FlowMatch::ANY, Some(2));
    seen.push(t.generation());
    t.clear();
    seen.push(t.generation());
    assert!(seen.iter().all(|&g| g != 0));
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), seen.len(), "{seen:?}");
    // Clearing an empty table changes nothing.
    let g = t.generation();
    assert_eq!(t.clear(), 0);
    assert_eq!(t.generation(), g);
}

#[test]
fn a_snapshot_taken_before_a_change_is_not_affected_by_it() {
    let t = FlowTable::new();
    t.add(spec(1, dst(ip(10, 0, 0, 0), 8), 1));
    let old = t.snapshot();
    t.add(spec(2, dst(ip(10, 0, 0, 0), 16), 2));
    t.delete(&dst(ip(10, 0, 0, 0), 8), Some(1));
    let k = key_dst(ip(10, 0, 0, 1));
    assert_eq!(out_port(old.lookup(&k)), Some(1));
    assert_eq!(old.len(), 1);
    assert_eq!(lookup_port(&t, &k), Some(2));
    assert_ne!(old.generation(), t.generation());
}

#[test]
fn rules_are_listed_by_priority_then_install_order() {
    let t = FlowTable::new();
    let prios = [5u16, 9, 5, 1, 9, 5];
    for (i, &p) in prios.iter().enumerate() {
        t.add(spec(p, dst(ip(10, i as u8, 0, 0), 16 + i as u32), i as u32));
    }
    let got: Vec<(u16, u32)> = t
        .rules()
        .iter()
        .map(|r| (r.priority(), out_port(Some(r)).unwrap()))
        .collect();
    assert_eq!(got, vec![(9, 1), (9, 4), (5, 0), (5, 2), (5, 5), (1, 3)]);
}

#[test]
fn cidr_and_arbitrary_bitmask_matches() {
    let t = FlowTable::new();
    // Even tp_src on any address, via an arbitrary bitmask.
    let mut even = FlowMatch::ANY;
    even.set_masked(field::TP_SRC, 0, 1);
    t.add(spec(1, even, 1));
    // nw_src 10.0.0.0 with mask 255.0.255.0 (non-contiguous).
    let mut holes = FlowMatch::ANY;
    holes.set_masked(
        field::NW_SRC,
        ip(10, 0, 7, 0).into(),
        ip(255, 0, 255, 0).into(),
    );
    t.add(spec(2, holes, 2));
    // dl_dst with the multicast bit only.
    let mut mcast = FlowMatch::ANY;
    mcast.set_masked(field::DL_DST, 0x0100_0000_0000, 0x0100_0000_0000);
    t.add(spec(3, mcast, 3));

    let mut k = FlowKey::ZERO;
    k.set_tp_src(3);
    assert_eq!(lookup_port(&t, &k), None);
    k.set_tp_src(4);
    assert_eq!(lookup_port(&t, &k), Some(1));
    k.set_nw_src_u32(ip(10, 99, 7, 42));
    assert_eq!(lookup_port(&t, &k), Some(2));
    k.set_nw_src_u32(ip(10, 99, 8, 42));
    assert_eq!(lookup_port(&t, &k), Some(1));
    k.set_dl_dst([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(lookup_port(&t, &k), Some(3));
}

#[test]
fn one_big_subtable_stays_correct_through_shard_growth_and_shrink() {
    let t = FlowTable::new();
    let n = 5000u32;
    t.add_batch((0..n).map(|i| spec(1, dst(ip(10, 0, 0, 0) + i, 32), i)));
    t.check_invariants();
    let snap = t.snapshot();
    assert_eq!(snap.n_subtables(), 1);
    assert!(snap.n_shards() >= 128, "only {} shards", snap.n_shards());
    for i in 0..n {
        assert_eq!(
            out_port(snap.lookup(&key_dst(ip(10, 0, 0, 0) + i))),
            Some(i)
        );
    }
    for i in 0..n - 40 {
        assert_eq!(t.delete(&dst(ip(10, 0, 0, 0) + i, 32), Some(1)), 1);
    }
    t.check_invariants();
    let snap = t.snapshot();
    // 40 entries left: the directory merged back to a few shards.
    assert!(snap.n_shards() <= 4, "{} shards left", snap.n_shards());
    for i in 0..n {
        let want = (i >= n - 40).then_some(i);
        assert_eq!(out_port(snap.lookup(&key_dst(ip(10, 0, 0, 0) + i))), want);
    }
}

#[test]
fn a_single_add_copies_one_subtable_and_one_shard() {
    let t = FlowTable::new();
    // 16 masks (prefix lengths 17..=32) x 300 rules.
    t.add_batch(
        (0..16u32)
            .flat_map(|m| (0..300u32).map(move |i| spec(1, dst((i << 16) + (m << 8), 17 + m), i))),
    );
    let before = t.snapshot();
    let shards = before.n_shards();
    assert!(shards > 16);
    t.add(spec(2, dst(ip(99, 0, 0, 0), 32), 7));
    let after = t.snapshot();
    let (subtables, shared_shards) = after.shared_parts(&before);
    assert_eq!(subtables, 15);
    assert_eq!(shared_shards, shards - 1);
}

#[test]
fn add_batch_is_atomic_for_concurrent_readers() {
    let t = Arc::new(FlowTable::new());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = t.snapshot().len();
                if n % 100 != 0 {
                    bad.push(n);
                }
            }
            bad
        })
    };
    for round in 0..20u32 {
        t.add_batch((0..100u32).map(|i| spec(1, dst((round << 16) | i, 32), i)));
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(reader.join().unwrap(), Vec::<usize>::new());
    assert_eq!(t.len(), 2000);
}

#[test]
fn concurrent_reader_always_sees_a_consistent_prefix_of_the_adds() {
    let t = Arc::new(FlowTable::new());
    let n = 2000u32;
    let reader = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || {
            let mut checks = 0u64;
            loop {
                let snap = t.snapshot();
                let len = snap.len() as u32;
                // Rule i was added before rule i+1, so a snapshot with `len`
                // rules holds exactly rules 0..len.
                for i in [0, len / 2, len.saturating_sub(1), len, len + 1] {
                    let want = (i < len).then_some(i);
                    assert_eq!(out_port(snap.lookup(&key_dst(i))), want, "len {len}");
                    checks += 1;
                }
                if len == n {
                    return checks;
                }
            }
        })
    };
    for i in 0..n {
        // Odd rules also match dl_type, so two subtables take turns changing.
        let mut m = dst(i, 32);
        if i % 2 == 1 {
            m.set_masked(field::DL_TYPE, 0x0800, 0xffff);
        }
        t.add(spec(1, m, i));
    }
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn resharding_subtables_agree_with_the_oracle_through_adds_and_deletes() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(7);
    let t = FlowTable::new();
    let mut oracle = LinearClassifier::new();
    let masks = [prefix(32), prefix(24), prefix(20)];
    let mut live: Vec<(FlowMatch, u16)> = Vec::new();
    for round in 0..6 {
        // Grow: 1,500 rules in three subtables (hundreds of shards).
        let specs: Vec<RuleSpec> = (0..1500)
            .map(|i| {
                let mut m = FlowMatch::ANY;
                let mask = masks[i % 3];
                m.set_masked(
                    field::NW_DST,
                    u64::from(rng.gen::<u32>() & 0x00ff_ffff),
                    mask,
                );
                spec(rng.gen_range(0..4), m, i as u32)
            })
            .collect();
        for s in &specs {
            oracle.insert(s.clone());
            live.push((s.matcher, s.priority));
        }
        if round % 2 == 0 {
            t.add_batch(specs);
        } else {
            for s in specs {
                t.add(s);
            }
        }
        t.check_invariants();
        // Shrink: delete most of them again, strictly, in random order.
        let keep = live.len() / 5;
        while live.len() > keep {
            let (m, p) = live.swap_remove(rng.gen_range(0..live.len()));
            assert_eq!(t.delete(&m, Some(p)), oracle.remove(&m, Some(p)).len());
        }
        t.check_invariants();
        let snap = t.snapshot();
        assert_eq!(snap.len(), oracle.len());
        for _ in 0..3000 {
            let k = key_dst(rng.gen::<u32>() & 0x00ff_ffff);
            assert_eq!(
                snap.lookup(&k).map(|r| r.spec()),
                oracle.lookup(&k).map(|r| r.spec())
            );
        }
        for (m, _) in live.iter().take(300) {
            let k = key_dst(m.key.nw_dst_u32());
            assert_eq!(
                snap.lookup(&k).map(|r| r.spec()),
                oracle.lookup(&k).map(|r| r.spec())
            );
        }
    }
}

#[test]
fn flow_writes_may_nest_under_the_ports_lock() {
    use crate::locks::{LockLevel, OrderedMutex};
    let ports = OrderedMutex::new(LockLevel::Ports, ());
    let t = FlowTable::new();
    let _p = ports.lock();
    t.add(spec(1, FlowMatch::ANY, 1));
    assert_eq!(t.delete(&FlowMatch::ANY, None), 1);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "takes `flow_table` (level flow_table) while holding `fdb`")]
fn a_flow_write_under_the_fdb_lock_is_a_lock_order_violation() {
    use crate::locks::{LockLevel, OrderedMutex};
    let fdb = OrderedMutex::new(LockLevel::Fdb, ());
    let t = FlowTable::new();
    let _f = fdb.lock();
    t.add(spec(1, FlowMatch::ANY, 1));
}
