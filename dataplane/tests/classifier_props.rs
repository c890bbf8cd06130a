//! Differential property tests: the tuple-space-search flow table (alone and
//! behind the exact-match cache) must answer exactly like the linear oracle.
//!
//! Tables are random: a palette of 1..12 mask shapes over several fields
//! (exact, CIDR prefixes, arbitrary bitmasks) so that many rules share
//! subtables, 1..200 rules with values from small domains so that they
//! overlap, and priorities that are often equal so that install-order
//! tie-breaking and replacement are exercised. Packets are built from a rule
//! (satisfying it), then optionally perturbed, so most of them hit something.

use dataplane::actions::Action;
use dataplane::cache::{EmcProbe, ExactMatchCache};
use dataplane::classifier::{FlowTable, LinearClassifier, Rule, RuleSpec};
use dataplane::flow_key::{field, field::Pos, FlowKey, FlowMatch};
use proptest::prelude::*;
use proptest::sample::Index;
use std::sync::Arc;

/// The fields the generated rules match on.
const FIELDS: [Pos; 12] = [
    field::IN_PORT,
    field::DL_TYPE,
    field::VLAN_TCI,
    field::DL_SRC,
    field::DL_DST,
    field::NW_PROTO,
    field::NW_SRC,
    field::NW_DST,
    field::TP_SRC,
    field::TP_DST,
    field::NW_TOS,
    field::IPV6_SRC_HI,
];
const NF: usize = FIELDS.len();

fn width_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[derive(Debug, Clone, Copy)]
enum MaskKind {
    Exact,
    /// The top `n` bits of the field (CIDR).
    Prefix(u32),
    /// Any bit pattern.
    Bits(u64),
}

impl MaskKind {
    fn mask(self, pos: Pos) -> u64 {
        let all = width_mask(pos.bits);
        match self {
            MaskKind::Exact => all,
            MaskKind::Prefix(n) => {
                let n = n.min(pos.bits);
                if n == 0 {
                    0
                } else {
                    (all << (pos.bits - n)) & all
                }
            }
            MaskKind::Bits(b) => b & all,
        }
    }
}

fn mask_kind() -> impl Strategy<Value = MaskKind> {
    prop_oneof![
        2 => Just(MaskKind::Exact),
        3 => (0u32..=64).prop_map(MaskKind::Prefix),
        2 => any::<u64>().prop_map(MaskKind::Bits),
    ]
}

/// A mask shape: which fields, with which masks.
type Shape = Vec<(usize, MaskKind)>;

fn shape() -> impl Strategy<Value = Shape> {
    prop::collection::vec((0..NF, mask_kind()), 0..4)
}

/// Field values from small domains so that rules and packets collide.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..4,
        2 => Just(u64::MAX),
        1 => (0u64..4).prop_map(|v| v << 60 | v << 28 | v << 12),
        1 => any::<u64>(),
    ]
}

fn priority() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 0u16..4, 1 => any::<u16>()]
}

#[derive(Debug, Clone)]
struct RuleDesc {
    shape: Index,
    priority: u16,
    values: [u64; NF],
}

fn rule_desc() -> impl Strategy<Value = RuleDesc> {
    (any::<Index>(), priority(), prop::array::uniform12(value())).prop_map(
        |(shape, priority, values)| RuleDesc {
            shape,
            priority,
            values,
        },
    )
}

fn build_match(shape: &Shape, values: &[u64; NF]) -> FlowMatch {
    let mut m = FlowMatch::ANY;
    for &(f, kind) in shape {
        let pos = FIELDS[f];
        // A shape may name a field twice; the masks accumulate.
        let mask = m.mask.get(pos) | kind.mask(pos);
        m.set_masked(pos, values[f], mask);
    }
    m
}

/// Builds spec number `id` (its action tags it, so replacements differ).
fn build_spec(palette: &[Shape], d: &RuleDesc, id: u32) -> RuleSpec {
    let m = build_match(&palette[d.shape.index(palette.len())], &d.values);
    RuleSpec {
        priority: d.priority,
        cookie: u64::from(id),
        ..RuleSpec::new(m, vec![Action::Output(id)])
    }
}

#[derive(Debug, Clone)]
struct PacketDesc {
    /// The rule (of the oracle's current list) the packet is built to hit.
    base: Option<Index>,
    noise: [u64; NF],
    /// Overwrite one field afterwards (may make it miss the base rule).
    perturb: Option<(usize, u64)>,
}

fn packet_desc() -> impl Strategy<Value = PacketDesc> {
    (
        prop::option::weighted(0.85, any::<Index>()),
        prop::array::uniform12(value()),
        prop::option::weighted(0.3, (0..NF, value())),
    )
        .prop_map(|(base, noise, perturb)| PacketDesc {
            base,
            noise,
            perturb,
        })
}

fn build_key(rules: &[Arc<Rule>], p: &PacketDesc) -> FlowKey {
    let mut k = FlowKey::ZERO;
    for (f, &pos) in FIELDS.iter().enumerate() {
        k.set(pos, p.noise[f]);
    }
    if let (Some(i), false) = (p.base, rules.is_empty()) {
        let m = rules[i.index(rules.len())].matcher();
        for w in 0..k.words.len() {
            k.words[w] = (k.words[w] & !m.mask.words[w]) | m.key.words[w];
        }
    }
    if let Some((f, v)) = p.perturb {
        k.set(FIELDS[f], v);
    }
    k
}

/// What identifies a rule across the two implementations.
fn ident(r: Option<&Arc<Rule>>) -> Option<RuleSpec> {
    r.map(|r| r.spec().clone())
}

fn specs(rules: &[Arc<Rule>]) -> Vec<RuleSpec> {
    rules.iter().map(|r| r.spec().clone()).collect()
}

fn check_same(table: &FlowTable, oracle: &LinearClassifier, packets: &[PacketDesc]) {
    let snap = table.snapshot();
    assert_eq!(snap.len(), oracle.len());
    assert_eq!(specs(&snap.rules()), specs(oracle.rules()));
    let keys: Vec<FlowKey> = packets
        .iter()
        .map(|p| build_key(oracle.rules(), p))
        .collect();
    for k in &keys {
        assert_eq!(ident(snap.lookup(k)), ident(oracle.lookup(k)), "key {k:?}");
    }
    let mut batch = vec![None; keys.len()];
    snap.lookup_batch(&keys, &mut batch);
    for (k, got) in keys.iter().zip(batch) {
        assert_eq!(ident(got), ident(oracle.lookup(k)), "batch, key {k:?}");
    }
}

#[derive(Debug, Clone)]
enum DeleteDesc {
    /// Strict delete of an existing rule.
    Strict(Index),
    /// Strict delete with a priority that may not exist.
    StrictOther(Index, u16),
    /// Loose delete with a filter that is an existing rule's match with
    /// some mask bits cleared (so it covers at least that rule).
    LooseWidened(Index, [u64; 12]),
    /// Loose delete with an unrelated random filter.
    LooseRandom(Shape, [u64; NF]),
}

fn delete_desc() -> impl Strategy<Value = DeleteDesc> {
    prop_oneof![
        2 => any::<Index>().prop_map(DeleteDesc::Strict),
        1 => (any::<Index>(), priority()).prop_map(|(i, p)| DeleteDesc::StrictOther(i, p)),
        3 => (any::<Index>(), prop::array::uniform12(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]))
            .prop_map(|(i, m)| DeleteDesc::LooseWidened(i, m)),
        1 => (shape(), prop::array::uniform12(value())).prop_map(|(s, v)| DeleteDesc::LooseRandom(s, v)),
    ]
}

/// The (filter, strict priority) a delete description means right now.
fn resolve_delete(rules: &[Arc<Rule>], d: &DeleteDesc) -> Option<(FlowMatch, Option<u16>)> {
    let pick = |i: &Index| (!rules.is_empty()).then(|| &rules[i.index(rules.len())]);
    match d {
        DeleteDesc::Strict(i) => pick(i).map(|r| (*r.matcher(), Some(r.priority()))),
        DeleteDesc::StrictOther(i, p) => pick(i).map(|r| (*r.matcher(), Some(*p))),
        DeleteDesc::LooseWidened(i, keep) => pick(i).map(|r| {
            let mut mask = r.matcher().mask;
            for (w, k) in mask.words.iter_mut().zip(keep) {
                *w &= k;
            }
            (FlowMatch::new(r.matcher().key, mask), None)
        }),
        DeleteDesc::LooseRandom(s, v) => Some((build_match(s, v), None)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tss_lookup_equals_linear_oracle(
        palette in prop::collection::vec(shape(), 1..12),
        rules in prop::collection::vec(rule_desc(), 1..200),
        packets in prop::collection::vec(packet_desc(), 1..64),
    ) {
        let table = FlowTable::new();
        let mut oracle = LinearClassifier::new();
        let specs: Vec<RuleSpec> = rules
            .iter()
            .enumerate()
            .map(|(i, d)| build_spec(&palette, d, i as u32))
            .collect();
        // Half through one batch publication, half one by one.
        let half = specs.len() / 2;
        table.add_batch(specs[..half].iter().cloned());
        for s in &specs[half..] {
            table.add(s.clone());
        }
        for s in specs {
            oracle.insert(s);
        }
        check_same(&table, &oracle, &packets);
    }

    #[test]
    fn tss_lookup_equals_linear_oracle_after_random_deletes(
        palette in prop::collection::vec(shape(), 1..12),
        rules in prop::collection::vec(rule_desc(), 1..200),
        deletes in prop::collection::vec(delete_desc(), 1..24),
        packets in prop::collection::vec(packet_desc(), 1..64),
    ) {
        let table = FlowTable::new();
        let mut oracle = LinearClassifier::new();
        for (i, d) in rules.iter().enumerate() {
            let s = build_spec(&palette, d, i as u32);
            table.add(s.clone());
            oracle.insert(s);
        }
        for d in &deletes {
            let Some((filter, strict)) = resolve_delete(oracle.rules(), d) else { continue };
            let want = specs(&oracle.remove(&filter, strict));
            let got = specs(&table.remove(&filter, strict));
            prop_assert_eq!(got, want);
            check_same(&table, &oracle, &packets);
        }
    }

    #[test]
    fn emc_plus_table_equals_oracle_across_interleaved_changes(
        palette in prop::collection::vec(shape(), 1..8),
        ops in prop::collection::vec(
            prop_oneof![
                4 => prop::collection::vec(rule_desc(), 1..8).prop_map(Op::Add),
                2 => delete_desc().prop_map(Op::Delete),
                6 => prop::collection::vec(any::<Index>(), 1..32).prop_map(Op::Batch),
            ],
            1..40,
        ),
        flow_descs in prop::collection::vec(packet_desc(), 1..24),
        emc_entries in 2usize..64,
        hash_bits in prop_oneof![Just(2u32), Just(64u32)],
    ) {
        // Traffic is a fixed pool of flows that recur across batches (so a
        // cached answer is asked for again after the rules changed), each
        // built to hit one of the rules the test will install.
        let mut all_specs = Vec::new();
        for op in &ops {
            if let Op::Add(ds) = op {
                for d in ds {
                    all_specs.push(build_spec(&palette, d, all_specs.len() as u32 + 1));
                }
            }
        }
        let all_rules: Vec<Arc<Rule>> = {
            let mut l = LinearClassifier::new();
            all_specs.iter().map(|s| l.insert(s.clone())).collect()
        };
        let flows: Vec<FlowKey> = flow_descs.iter().map(|p| build_key(&all_rules, p)).collect();

        let table = FlowTable::new();
        let mut oracle = LinearClassifier::new();
        let mut emc = ExactMatchCache::new(emc_entries);
        let mut pending = all_specs.into_iter();
        let mut probes = 0u64;
        for op in &ops {
            match op {
                Op::Add(ds) => {
                    // Several adds, one publication.
                    let specs: Vec<RuleSpec> = pending.by_ref().take(ds.len()).collect();
                    for s in &specs {
                        oracle.insert(s.clone());
                    }
                    table.add_batch(specs);
                }
                Op::Delete(d) => {
                    if let Some((filter, strict)) = resolve_delete(oracle.rules(), d) {
                        let n = oracle.remove(&filter, strict).len();
                        prop_assert_eq!(table.delete(&filter, strict), n);
                    }
                }
                Op::Batch(picks) => {
                    // What a PMD does: one snapshot per batch, EMC first.
                    let snap = table.snapshot();
                    let g = snap.generation();
                    for i in picks {
                        let k = flows[i.index(flows.len())];
                        // A weak hash (2 bits) forces key compares and conflicts.
                        let h = k.hash64() & width_mask(hash_bits);
                        let got = match emc.probe(&k, h, g) {
                            EmcProbe::Rule(r) => Some(r.spec().clone()),
                            EmcProbe::TableMiss => None,
                            EmcProbe::Unknown => {
                                let r = snap.lookup(&k);
                                match r {
                                    Some(r) => emc.insert(&k, h, g, r),
                                    None => emc.insert_table_miss(&k, h, g),
                                }
                                ident(r)
                            }
                        };
                        probes += 1;
                        prop_assert_eq!(got, ident(oracle.lookup(&k)), "key {:?}", k);
                    }
                }
            }
        }
        let s = emc.stats();
        prop_assert_eq!(s.hits + s.negative_hits + s.misses, probes);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<RuleDesc>),
    Delete(DeleteDesc),
    /// Packets picked from the flow pool.
    Batch(Vec<Index>),
}

/// A fixed scenario the property generator is unlikely to produce: many
/// rules in few subtables, with replacement churn, checked against the
/// oracle on every key of a dense grid.
#[test]
fn dense_grid_with_replacement_churn_matches_oracle() {
    let table = FlowTable::new();
    let mut oracle = LinearClassifier::new();
    let mut id = 0u32;
    for round in 0..3u32 {
        for plen in [8u32, 16, 24, 32] {
            for x in 0..64u32 {
                id += 1;
                let mut m = FlowMatch::ANY;
                let addr = 0x0a00_0000 | (x << 2) | (x << 12);
                m.set_masked(
                    field::NW_DST,
                    addr.into(),
                    (u64::from(u32::MAX) << (32 - plen)) & 0xffff_ffff,
                );
                if x % 3 == 0 {
                    m.set_masked(field::TP_DST, u64::from(x % 4), 0x3);
                }
                let s = RuleSpec {
                    priority: ((x + round) % 5) as u16,
                    ..RuleSpec::new(m, vec![Action::Output(id)])
                };
                table.add(s.clone());
                oracle.insert(s);
            }
        }
    }
    assert_eq!(table.len(), oracle.len());
    let snap = table.snapshot();
    for a in 0..4096u32 {
        for tp in 0..4u16 {
            let mut k = FlowKey::ZERO;
            k.set_nw_dst_u32(0x0a00_0000 | (a << 2) | ((a & 0x3f) << 12));
            k.set_tp_dst(tp);
            assert_eq!(ident(snap.lookup(&k)), ident(oracle.lookup(&k)));
        }
    }
}
