//! Differential test: xswitch against real Open vSwitch.
//!
//! # What
//! The same random flow tables are installed in a private Open vSwitch
//! (ovsdb-server + ovs-vswitchd on the dummy datapath, see
//! `support/ovs.rs`) and in an xswitch [`Datapath`] with in-memory ports
//! `1..=N`; then random packets are traced through both:
//! `ovs-appctl ofproto/trace` on one side, [`Datapath::trace`] on the other.
//! For every (table, packet) case the test compares
//! * the **decision**: the rule that matched (its priority, or a miss) and
//!   the ports the packet leaves by (a multiset; empty = dropped). OVS's
//!   LOCAL port is left out (xswitch has none). Order is not compared:
//!   OVS floods in its own bundle order, and what order *means* — which
//!   rewrites an output sees — is checked by the next item;
//! * the **header rewrites**: for every output, the packet as it leaves.
//!   OVS's `Datapath actions` (`set(...)`, `push_vlan`, `pop_vlan`, outputs)
//!   are replayed on the packet's key; xswitch's emitted frames are
//!   re-extracted; the (port, key) multisets must be equal;
//! * the **inputs**: xswitch's parse of the trace flow string must equal
//!   the packet the generator meant, and the frame built from it must
//!   extract back to it — otherwise the two switches were not asked the
//!   same question.
//!
//! Half of the packets are given to OVS as the flow string, half as the
//! very frame xswitch traces (hex), so OVS's own parser (`flow_extract`)
//! also stands against xswitch's.
//!
//! # Running
//! `cargo test -p xswitch --test ovs_differential` (about 10 s for the
//! 1,000 cases on a 2-core machine; each trace is one `ovs-appctl` process).
//!
//! # Reproducing
//! Everything derives from one seed: `XSWITCH_DIFF_SEED=N` (default
//! [`DEFAULT_SEED`]); a failure prints it, the table and the packet.
//! `XSWITCH_DIFF_KEEP_DIR=1` keeps the OVS directory (logs, db) for a look;
//! `XSWITCH_DIFF_PRINT=N` prints N mismatches in full (default 8).
//!
//! # Requirements
//! Root (ovs-vswitchd wants it) and Debian's openvswitch-switch. If OVS is
//! missing the test runs `scripts/install-test-deps.sh`; if that cannot
//! install it the test fails with the reason — it never silently passes.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use control::flow_syntax::{no_port_names, parse_flow, parse_packet};
use dataplane::datapath::{Datapath, Trace};
use dataplane::extract::extract;
use dataplane::flow_key::{FlowKey, PortNo};
use dataplane::vport::memory::MemoryPort;
use dataplane::wire::builder::build_frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::gen::{gen_packet, gen_table, model_lookup, Pkt, Pools, RuleDesc};
use support::odp::{parse_trace, replay_on_key, OdpAction, OvsTrace};
use support::ovs::{find_or_install_programs, parse_dpif_show, Ovs};

/// The seed when `XSWITCH_DIFF_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5eed_f00d;
/// Switch ports (ofports 1..=N on both sides).
const N_PORTS: u32 = 5;
/// Tables per run and packets per table: 25 × 40 = 1,000 cases.
const TABLES: usize = 25;
const PACKETS_PER_TABLE: usize = 40;
/// The acceptance floor.
const MIN_CASES: usize = 1_000;
/// Bytes of payload in built frames.
const PAYLOAD_LEN: usize = 8;
/// Mismatches printed in full (all are counted); `XSWITCH_DIFF_PRINT=N`
/// changes it.
const PRINT_LIMIT: usize = 8;

fn print_limit() -> usize {
    std::env::var("XSWITCH_DIFF_PRINT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(PRINT_LIMIT)
}

fn seed() -> u64 {
    match std::env::var("XSWITCH_DIFF_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("XSWITCH_DIFF_SEED={s:?} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// The xswitch under test: a datapath with in-memory ports 1..=N.
struct XSwitch {
    dp: Datapath,
}

impl XSwitch {
    fn new(n_ports: u32) -> Self {
        let dp = Datapath::new();
        for n in 1..=n_ports {
            dp.add_port(n, Arc::new(MemoryPort::with_name(format!("p{n}"))))
                .unwrap_or_else(|e| panic!("xswitch add_port {n}: {e}"));
        }
        XSwitch { dp }
    }

    /// Ports are named `p1..pN`, as in the OVS harness.
    fn port_by_name(&self, name: &str) -> Option<PortNo> {
        let n: PortNo = name.strip_prefix('p')?.parse().ok()?;
        self.dp.port(n).is_some().then_some(n)
    }

    /// Parses every line with xswitch's flow syntax and installs the table
    /// (replacing what was there).
    fn install(&self, lines: &[String]) -> Result<(), String> {
        let mut specs = Vec::with_capacity(lines.len());
        for l in lines {
            let spec = parse_flow(l, &|name| self.port_by_name(name))
                .map_err(|e| format!("xswitch rejects `{l}`: {e}\n{}", e.render(l)))?;
            specs.push(spec);
        }
        self.dp.flow_table().clear();
        self.dp.flow_table().add_batch(specs);
        Ok(())
    }
}

/// One side's answer for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    /// Priority of the matched rule; `None` on a table miss.
    priority: Option<u16>,
    /// Output ports, sorted (a multiset).
    outputs: Vec<u32>,
}

impl Decision {
    fn new(priority: Option<u16>, mut outputs: Vec<u32>) -> Self {
        outputs.sort_unstable();
        Decision { priority, outputs }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.priority {
            Some(p) => write!(f, "rule priority {p}, ")?,
            None => write!(f, "table miss, ")?,
        }
        if self.outputs.is_empty() {
            write!(f, "drop")
        } else {
            write!(f, "output to {:?}", self.outputs)
        }
    }
}

/// (port, key of the packet as it leaves), sorted.
type Emitted = Vec<(u32, [u64; dataplane::flow_key::KEY_WORDS])>;

fn emitted(mut v: Vec<(u32, FlowKey)>) -> Emitted {
    let mut out: Emitted = v.drain(..).map(|(p, k)| (p, k.words)).collect();
    out.sort_unstable();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What went wrong in one case, with everything needed to reproduce it.
#[derive(Debug, Clone)]
struct Mismatch {
    kind: &'static str,
    text: String,
}

/// The counters a run reports (and the test checks for coverage).
#[derive(Debug, Default, Clone)]
struct Coverage {
    cases: usize,
    via_frame: usize,
    table_miss: usize,
    dropped: usize,
    forwarded: usize,
    multi_output: usize,
    ran_normal: usize,
    to_controller: usize,
    with_rewrites: usize,
    /// Cases where OVS rewrote ICMP type/code for mod_tp_* (not replayed).
    icmp_tp_quirk: usize,
    model_agrees: usize,
    distinct_rules_hit: usize,
}

/// The result of the shared run.
#[derive(Debug, Clone)]
struct RunReport {
    seed: u64,
    coverage: Coverage,
    elapsed: Duration,
    input: Vec<Mismatch>,
    decision: Vec<Mismatch>,
    rewrite: Vec<Mismatch>,
}

/// Everything about one case, for a failure report.
struct CaseContext<'a> {
    seed: u64,
    table_no: usize,
    case_no: usize,
    table: &'a [RuleDesc],
    pkt: &'a Pkt,
    flow: &'a str,
    frame_hex: Option<&'a str>,
}

impl CaseContext<'_> {
    fn describe(&self, body: &str) -> String {
        let rules: Vec<&str> = self.table.iter().map(|r| r.text.as_str()).collect();
        let model = model_lookup(self.table, self.pkt)
            .map_or("table miss".to_string(), |r| format!("`{}`", r.text));
        format!(
            "seed {} (XSWITCH_DIFF_SEED={}), table #{}, packet #{}\n\
             packet: {}\n{}\
             test model's matching rule: {model}\n{body}\n\
             table ({} rules):\n  {}",
            self.seed,
            self.seed,
            self.table_no,
            self.case_no,
            self.flow,
            self.frame_hex
                .map_or(String::new(), |h| format!("frame given to OVS: {h}\n")),
            rules.len(),
            rules.join("\n  ")
        )
    }
}

fn xswitch_summary(t: &Trace) -> String {
    format!(
        "xswitch: rule {:?}, actions {:?}, outputs {:?}, output drops {:?}, dropped {:?}",
        t.rule.as_ref().map(|r| r.priority()),
        t.actions,
        t.outputs,
        t.output_drops,
        t.dropped
    )
}

/// The comparison of one case. Returns mismatches (empty = all equal).
fn compare_case(
    ovs_trace: &OvsTrace,
    xs: &Trace,
    model_key: &FlowKey,
    ctx: &CaseContext<'_>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let ovs_dec = Decision::new(ovs_trace.rule_priority, ovs_trace.outputs());
    let xs_dec = Decision::new(xs.rule.as_ref().map(|r| r.priority()), xs.outputs.clone());
    if ovs_dec != xs_dec {
        out.push(Mismatch {
            kind: "decision",
            text: ctx.describe(&format!(
                "OVS:     {ovs_dec}\nxswitch: {xs_dec}\n{}\nOVS trace:\n{}",
                xswitch_summary(xs),
                ovs_trace.summary()
            )),
        });
        // Rewrites of different decisions say nothing more.
        return out;
    }
    let ovs_emitted = match replay_on_key(&ovs_trace.actions, model_key) {
        Ok(r) => emitted(r.outputs),
        Err(e) => {
            out.push(Mismatch {
                kind: "rewrite",
                text: ctx.describe(&format!(
                    "cannot replay OVS's actions: {e}\n{}",
                    ovs_trace.summary()
                )),
            });
            return out;
        }
    };
    let xs_emitted = emitted(
        xs.outputs
            .iter()
            .zip(&xs.frames)
            .map(|(&p, f)| {
                let mut k = FlowKey::ZERO;
                extract(f, xs.in_port, &mut k);
                (p, k)
            })
            .collect(),
    );
    if ovs_emitted != xs_emitted {
        let show = |e: &Emitted| {
            e.iter()
                .map(|(p, w)| format!("  port {p}: {:?}", FlowKey { words: *w }))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let frames: Vec<String> = xs
            .outputs
            .iter()
            .zip(&xs.frames)
            .map(|(p, f)| format!("  port {p}: {}", hex(f)))
            .collect();
        out.push(Mismatch {
            kind: "rewrite",
            text: ctx.describe(&format!(
                "packets as they leave, OVS (replayed on the packet's key):\n{}\n\
                 xswitch (emitted frames, re-extracted):\n{}\nxswitch frames:\n{}\n{}\nOVS trace:\n{}",
                show(&ovs_emitted),
                show(&xs_emitted),
                frames.join("\n"),
                xswitch_summary(xs),
                ovs_trace.summary()
            )),
        });
    }
    out
}

/// Runs every case once per test binary; both comparison tests read it.
fn shared_run() -> &'static Result<RunReport, String> {
    static RUN: OnceLock<Result<RunReport, String>> = OnceLock::new();
    RUN.get_or_init(|| run_differential(seed()))
}

fn run_differential(seed: u64) -> Result<RunReport, String> {
    let started = Instant::now();
    let progs = find_or_install_programs().map_err(|e| e.to_string())?;
    let ovs = Ovs::start(progs, N_PORTS).map_err(|e| e.to_string())?;
    let mut report = RunReport {
        seed,
        coverage: Coverage::default(),
        elapsed: Duration::ZERO,
        input: Vec::new(),
        decision: Vec::new(),
        rewrite: Vec::new(),
    };
    let mut rules_hit: HashMap<(usize, u16), ()> = HashMap::new();
    for table_no in 0..TABLES {
        // One RNG per table, derived from the seed: a table reproduces on
        // its own whatever the others did.
        let mut rng =
            StdRng::seed_from_u64(seed ^ (table_no as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let pools = Pools::new(N_PORTS, &mut rng);
        let n_rules = rng.gen_range(10..=50);
        let table = gen_table(n_rules, &pools, &mut rng);
        let lines: Vec<String> = table.iter().map(|r| r.to_ofctl().to_string()).collect();

        ovs.del_flows().map_err(|e| e.to_string())?;
        // Rules with push_vlan go in over OpenFlow 1.3, the rest over 1.0.
        let (of13, of10): (Vec<&RuleDesc>, Vec<&RuleDesc>) = table.iter().partition(|r| r.of13);
        let text =
            |rs: &[&RuleDesc]| -> Vec<String> { rs.iter().map(|r| r.text.clone()).collect() };
        ovs.add_flows(&text(&of10))
            .and_then(|()| ovs.add_flows_as(&text(&of13), Some("OpenFlow13")))
            .map_err(|e| {
                format!(
                    "seed {seed} table #{table_no}: OVS refused the table: {e}\n{}",
                    lines.join("\n")
                )
            })?;
        let xs = XSwitch::new(N_PORTS);
        xs.install(&lines)
            .map_err(|e| format!("seed {seed} table #{table_no}: {e}"))?;

        for case_no in 0..PACKETS_PER_TABLE {
            let pkt = gen_packet(&table, &pools, &mut rng);
            let flow = pkt.to_trace_flow();
            let model_key = pkt.to_flow_key();
            let via_frame = case_no % 2 == 1;

            // xswitch: parse the description, build the frame, trace it.
            let mut ctx = CaseContext {
                seed,
                table_no,
                case_no,
                table: &table,
                pkt: &pkt,
                flow: &flow,
                frame_hex: None,
            };
            let key = match parse_packet(&flow, &no_port_names) {
                Ok(k) => k,
                Err(e) => {
                    report.input.push(Mismatch {
                        kind: "input",
                        text: ctx.describe(&format!(
                            "xswitch's trace parser rejects the packet: {e}\n{}",
                            e.render(&flow)
                        )),
                    });
                    continue;
                }
            };
            if key != model_key {
                report.input.push(Mismatch {
                    kind: "input",
                    text: ctx.describe(&format!(
                        "xswitch's parse_packet differs from the packet:\n  parsed: {key:?}\n  meant:  {model_key:?}"
                    )),
                });
                continue;
            }
            let frame = build_frame(&key, PAYLOAD_LEN);
            let frame_hex = hex(&frame);
            let xs_trace = xs.dp.trace(pkt.in_port as PortNo, &frame);
            if xs_trace.key != key {
                report.input.push(Mismatch {
                    kind: "input",
                    text: ctx.describe(&format!(
                        "the frame built from the key does not extract back to it:\n  key:       {key:?}\n  extracted: {:?}\n  frame: {frame_hex}",
                        xs_trace.key
                    )),
                });
                continue;
            }

            // OVS: the flow string, or the same frame.
            let ovs_trace = if via_frame {
                ctx.frame_hex = Some(&frame_hex);
                ovs.trace(&format!("in_port={}", pkt.in_port), Some(&frame_hex))
            } else {
                ovs.trace(&flow, None)
            }
            .map_err(|e| format!("seed {seed} table #{table_no} packet #{case_no}: {e}"))?;
            if ovs_trace.ran_normal {
                ovs.flush_fdb().map_err(|e| e.to_string())?;
            }

            let c = &mut report.coverage;
            c.cases += 1;
            c.via_frame += via_frame as usize;
            let outs = ovs_trace.outputs();
            match ovs_trace.rule_priority {
                None => c.table_miss += 1,
                Some(p) => {
                    rules_hit.insert((table_no, p), ());
                }
            }
            if outs.is_empty() {
                c.dropped += 1;
            } else {
                c.forwarded += 1;
            }
            c.multi_output += (outs.len() > 1) as usize;
            c.ran_normal += ovs_trace.ran_normal as usize;
            c.to_controller += ovs_trace
                .actions
                .iter()
                .any(|a| matches!(a, OdpAction::Userspace(_)))
                as usize;
            c.with_rewrites += ovs_trace.actions.iter().any(|a| {
                matches!(
                    a,
                    OdpAction::Set { .. } | OdpAction::PushVlan { .. } | OdpAction::PopVlan
                )
            }) as usize;
            c.icmp_tp_quirk += replay_on_key(&ovs_trace.actions, &model_key)
                .is_ok_and(|r| !r.ignored.is_empty()) as usize;
            c.model_agrees += (model_lookup(&table, &pkt).map(|r| r.priority)
                == ovs_trace.rule_priority) as usize;

            for m in compare_case(&ovs_trace, &xs_trace, &model_key, &ctx) {
                match m.kind {
                    "decision" => report.decision.push(m),
                    _ => report.rewrite.push(m),
                }
            }
        }
        // The comparison assumes a side-effect-free trace: NORMAL ran in
        // many of these cases, and none of them may have taught xswitch a MAC.
        let learned = xs.dp.fdb();
        if !learned.is_empty() {
            report.decision.push(Mismatch {
                kind: "decision",
                text: format!(
                    "seed {seed} table #{table_no}: Datapath::trace learned {} MAC(s), e.g. {:?}; \
                     a trace must not learn",
                    learned.len(),
                    learned[0]
                ),
            });
        }
    }
    report.coverage.distinct_rules_hit = rules_hit.len();
    report.elapsed = started.elapsed();
    Ok(report)
}

fn print_mismatches(what: &str, list: &[Mismatch]) -> String {
    let mut s = format!("{} {what} mismatch(es)", list.len());
    let limit = print_limit();
    for (i, m) in list.iter().take(limit).enumerate() {
        s += &format!(
            "\n\n=== {what} mismatch {} of {} ===\n{}",
            i + 1,
            list.len(),
            m.text
        );
    }
    if list.len() > limit {
        s += &format!(
            "\n\n(... {} more; XSWITCH_DIFF_PRINT={} shows all)",
            list.len() - limit,
            list.len()
        );
    }
    s
}

fn report_or_fail() -> &'static RunReport {
    match shared_run() {
        Ok(r) => r,
        Err(e) => panic!(
            "the differential run could not complete (seed {}): {e}",
            seed()
        ),
    }
}

/// The acceptance test: ≥ 1,000 seeded (table, packet) cases, the
/// same decision in xswitch and Open vSwitch every time.
#[test]
fn xswitch_decisions_equal_open_vswitch() {
    let r = report_or_fail();
    eprintln!(
        "differential run: seed {}, {:?}, coverage {:?}",
        r.seed, r.elapsed, r.coverage
    );
    let mut failures = Vec::new();
    if !r.input.is_empty() {
        failures.push(print_mismatches("input", &r.input));
    }
    if !r.decision.is_empty() {
        failures.push(print_mismatches("decision", &r.decision));
    }
    assert!(
        failures.is_empty(),
        "seed {} (rerun with XSWITCH_DIFF_SEED={}): xswitch and Open vSwitch disagree\n{}",
        r.seed,
        r.seed,
        failures.join("\n\n")
    );
    let c = &r.coverage;
    assert!(c.cases >= MIN_CASES, "only {} cases ran", c.cases);
    // The run must exercise what it claims to: hits and misses, drops and
    // multi-port outputs, NORMAL, rewrites, the dec_ttl exception, frames.
    assert!(
        c.table_miss > 0
            && c.dropped > 0
            && c.multi_output > 0
            && c.ran_normal > 0
            && c.with_rewrites > 0
            && c.to_controller > 0
            && c.via_frame > 0
            && c.distinct_rules_hit >= TABLES * 5,
        "the run did not cover every kind of case: {c:?}"
    );
}

/// Header rewrites: each output carries the same packet in both switches.
#[test]
fn xswitch_header_rewrites_equal_open_vswitch() {
    let r = report_or_fail();
    assert!(r.coverage.with_rewrites > 0, "no case rewrote a header");
    assert!(
        r.rewrite.is_empty(),
        "seed {} (rerun with XSWITCH_DIFF_SEED={}): {}",
        r.seed,
        r.seed,
        print_mismatches("rewrite", &r.rewrite)
    );
}

/// The comparison is not vacuous: a table that differs from OVS's only in
/// one output port, one priority, or a drop is caught.
#[test]
fn comparison_catches_a_swapped_output_a_wrong_rule_and_a_wrong_drop() {
    let progs = find_or_install_programs().unwrap_or_else(|e| panic!("{e}"));
    let ovs = Ovs::start(progs, N_PORTS).unwrap_or_else(|e| panic!("{e}"));
    let ovs_table = [
        "priority=30,udp,tp_dst=53,actions=output:2,output:4",
        "priority=20,ip,nw_dst=10.0.0.0/8,actions=output:3",
        "priority=10,arp,actions=flood",
    ];
    // Each differs in exactly one place.
    let wrong_tables: [(&str, [&str; 3]); 3] = [
        (
            "swapped output",
            [
                "priority=30,udp,tp_dst=53,actions=output:2,output:5",
                ovs_table[1],
                ovs_table[2],
            ],
        ),
        (
            "wrong rule",
            [
                "priority=30,udp,tp_dst=53,actions=output:2,output:4",
                "priority=40,ip,nw_dst=10.0.0.0/8,actions=output:3",
                ovs_table[2],
            ],
        ),
        (
            "wrong drop",
            [ovs_table[0], ovs_table[1], "priority=10,arp,actions=drop"],
        ),
    ];
    let lines: Vec<String> = ovs_table.iter().map(|s| s.to_string()).collect();
    ovs.add_flows(&lines).unwrap_or_else(|e| panic!("{e}"));
    let packets = [
        "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,udp,nw_src=10.1.1.1,nw_dst=192.168.9.9,nw_tos=0,nw_ecn=0,nw_ttl=64,udp_src=1000,udp_dst=53",
        "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,tcp,nw_src=192.168.1.1,nw_dst=10.2.2.2,nw_tos=0,nw_ecn=0,nw_ttl=64,tcp_src=1000,tcp_dst=80",
        "in_port=2,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:00",
    ];
    let run = |xs_lines: &[&str]| -> Vec<Vec<Mismatch>> {
        let xs = XSwitch::new(N_PORTS);
        let xs_lines: Vec<String> = xs_lines.iter().map(|s| s.to_string()).collect();
        xs.install(&xs_lines).unwrap_or_else(|e| panic!("{e}"));
        packets
            .iter()
            .map(|flow| {
                let key = parse_packet(flow, &no_port_names).unwrap_or_else(|e| panic!("{e}"));
                let frame = build_frame(&key, PAYLOAD_LEN);
                let xt = xs.dp.trace(key.in_port(), &frame);
                let ot = ovs.trace(flow, None).unwrap_or_else(|e| panic!("{e}"));
                let pkt = support::gen::Pkt {
                    in_port: key.in_port(),
                    dl_src: key.dl_src(),
                    dl_dst: key.dl_dst(),
                    vlan: None,
                    l3: support::gen::L3::Other(0),
                };
                let ctx = CaseContext {
                    seed: 0,
                    table_no: 0,
                    case_no: 0,
                    table: &[],
                    pkt: &pkt,
                    flow,
                    frame_hex: None,
                };
                compare_case(&ot, &xt, &key, &ctx)
            })
            .collect()
    };
    // The faithful copy agrees on every packet…
    let same = run(&ovs_table);
    assert!(
        same.iter().all(Vec::is_empty),
        "identical tables disagree: {:?}",
        same
    );
    // …and each one-place difference is caught on exactly the packet it affects.
    for (i, (what, table)) in wrong_tables.iter().enumerate() {
        let res = run(table);
        for (j, m) in res.iter().enumerate() {
            if i == j {
                assert!(
                    m.iter().any(|m| m.kind == "decision"),
                    "{what}: packet {j} was not caught"
                );
            } else {
                assert!(m.is_empty(), "{what}: packet {j} flagged wrongly: {m:?}");
            }
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The harness leaves nothing behind: its two daemons are gone (reaped,
/// not zombies) and its directory is removed, also when the test using it
/// panics.
#[test]
fn ovs_harness_kills_exactly_its_daemons_and_removes_its_dir_even_on_panic() {
    let progs = find_or_install_programs().unwrap_or_else(|e| panic!("{e}"));

    let ovs = Ovs::start(progs.clone(), 2).unwrap_or_else(|e| panic!("{e}"));
    let pids = ovs.pids();
    let dir = ovs.dir().to_path_buf();
    assert_eq!(pids.len(), 2, "ovsdb-server and ovs-vswitchd");
    assert!(pids.iter().all(|&p| pid_alive(p)));
    assert!(dir.join("ovs-vswitchd.pid").exists());
    assert!(!ovs
        .dump_flows()
        .unwrap_or_else(|e| panic!("{e}"))
        .contains("actions="));
    drop(ovs);
    assert!(
        pids.iter().all(|&p| !pid_alive(p)),
        "a daemon survived drop: {pids:?}"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());

    let seen = std::sync::Mutex::new(None);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ovs = Ovs::start(progs, 1).unwrap_or_else(|e| panic!("{e}"));
        *seen.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((ovs.pids(), ovs.dir().to_path_buf()));
        panic!("a failing test body");
    }));
    assert!(unwound.is_err());
    let (pids, dir) = seen
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("the harness started");
    assert!(
        pids.iter().all(|&p| !pid_alive(p)),
        "a daemon survived the panic: {pids:?}"
    );
    assert!(
        !dir.exists(),
        "{} was not removed after the panic",
        dir.display()
    );
}

/// Trace parsing on outputs captured from OVS 3.1: priorities, misses, set
/// actions, LOCAL dropped from the outputs, the controller exception.
#[test]
fn ovs_trace_parser_reads_rules_ports_rewrites_and_local() {
    let dpif = "dummy@ovs-dummy: hit:0 missed:0\n  br0:\n    br0 65534/100: (dummy-internal)\n    p1 1/1: (dummy)\n    p2 2/2: (dummy)\n    p3 3/7: (dummy)\n";
    let (map, local) = parse_dpif_show(dpif).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(local, 100);
    assert_eq!(map.get(&7), Some(&3));

    let flood = "Flow: arp,in_port=2,vlan_tci=0x0000\n\nbridge(\"br0\")\n-------------\n 0. arp, priority 80\n    FLOOD\n\nFinal flow: unchanged\nMegaflow: recirc_id=0,eth,arp,in_port=2\nDatapath actions: 100,1,7\n";
    let t = parse_trace(flood, &map, local).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.rule_priority, Some(80));
    assert_eq!(t.outputs(), vec![1, 3]);
    assert_eq!(t.actions[0], OdpAction::Local);
    assert!(!t.ran_normal);

    let miss = "Flow: in_port=2,dl_vlan=6\n\nbridge(\"br0\")\n-------------\n 0. No match.\n    drop\n\nFinal flow: unchanged\nMegaflow: recirc_id=0\nDatapath actions: drop\n";
    let t = parse_trace(miss, &map, local).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.rule_priority, None);
    assert!(t.actions.is_empty());

    let rewrite = "Flow: udp,in_port=1\n\nbridge(\"br0\")\n-------------\n 0. udp, priority 70\n    NORMAL\n\nFinal flow: x\nMegaflow: y\nDatapath actions: set(ipv4(src=1.2.3.4,tos=0x10/0xfc)),set(udp(dst=99)),2,pop_vlan,push_vlan(vid=9,pcp=3),1,userspace(pid=0,controller(reason=2,dont_send=1))\n";
    let t = parse_trace(rewrite, &map, local).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.ran_normal);
    assert_eq!(t.outputs(), vec![2, 1]);
    let mut k = FlowKey::ZERO;
    k.set_nw_tos(0x03);
    k.set_vlan_tci(0x1005);
    let out = replay_on_key(&t.actions, &k)
        .unwrap_or_else(|e| panic!("{e}"))
        .outputs;
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].0, 2);
    assert_eq!(out[0].1.nw_src(), core::net::Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(out[0].1.nw_tos(), 0x13, "masked set keeps the ECN bits");
    assert_eq!(out[0].1.tp_dst(), 99);
    assert_eq!(out[0].1.vlan_tci(), 0x1005);
    assert_eq!(out[1].1.vlan_tci(), 0x1000 | 3 << 13 | 9);
    assert!(matches!(t.actions.last(), Some(OdpAction::Userspace(_))));
}

/// The generator keeps its promises without any switch involved: distinct
/// priorities, packets aimed at a rule really match it (by the model), no
/// packet has `dl_src == dl_dst`, and every trace flow names its fields.
#[test]
fn generator_aims_packets_at_rules_and_keeps_cases_defined() {
    let mut rng = StdRng::seed_from_u64(seed());
    for _ in 0..20 {
        let pools = Pools::new(N_PORTS, &mut rng);
        let table = gen_table(40, &pools, &mut rng);
        let mut prios: Vec<u16> = table.iter().map(|r| r.priority).collect();
        prios.sort_unstable();
        prios.dedup();
        assert_eq!(prios.len(), table.len(), "priorities must be distinct");
        for rule in &table {
            let mut p = support::gen::random_packet(&pools, &mut rng);
            rule.satisfy(&mut p, &pools, &mut rng);
            assert!(rule.matches(&p), "satisfy failed: {} vs {p:?}", rule.text);
        }
        let mut hits = 0;
        for _ in 0..200 {
            let p = gen_packet(&table, &pools, &mut rng);
            assert_ne!(p.dl_src, p.dl_dst);
            hits += model_lookup(&table, &p).is_some() as usize;
            let f = p.to_trace_flow();
            assert!(f.starts_with(&format!("in_port={},", p.in_port)), "{f}");
        }
        assert!(
            hits > 100,
            "packets should mostly hit the table: {hits}/200"
        );
    }
}
