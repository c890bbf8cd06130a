//! What a benchmark run found: one record per measurement, medians per
//! configuration with ratios, latency, skipped devices — as a table for a
//! person and as JSON (`--json`) for tools.
//!
//! # Units
//! * `mpps`: frames per second received by the sink interface (its kernel
//!   counter `rx_packets`) over the measurement window, in millions.
//! * `gbps`: `mpps × frame_size × 8 / 1000`, with the frame size counting
//!   the FCS but not preamble and inter-frame gap.
//! * `cpu_busy_pct`: per CPU (index = CPU number), busy share of the window
//!   from /proc/stat; `busy_cores` is their sum / 100.
//! * `mpps_per_busy_core`: million packets per busy CPU-second, i.e.
//!   `mpps / busy_cores`. The generator's core is inside the sum for every
//!   device alike (on veth, receive work runs on the sending CPU, so it
//!   cannot be split off): compare devices within one run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use xswitch_bpf::gen::GenMethod;

use super::dut::DutKind;
use super::latency::LatencyRecord;

/// One measurement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    /// Device under test.
    pub dut: DutKind,
    /// Frame size including FCS.
    pub frame_size: usize,
    /// Flows (UDP source ports).
    pub flows: u32,
    /// IPv6 frames?
    pub ipv6: bool,
    /// Repetition number, from 1.
    pub rep: u32,
    /// Received, millions of frames per second.
    pub mpps: f64,
    /// Received, gigabits per second.
    pub gbps: f64,
    /// Busy % per CPU over the window.
    pub cpu_busy_pct: Vec<f64>,
    /// Sum of busy shares, in cores.
    pub busy_cores: f64,
    /// Million packets per busy CPU-second.
    pub mpps_per_busy_core: f64,
    /// CPU the DUT's own processes used over the window, in cores (user +
    /// system time of OVS or `xswitch run`); `None` for in-kernel devices.
    /// Unlike `busy_cores` this is not inflated by anything else running
    /// on the machine.
    pub dut_process_cores: Option<f64>,
    /// Million packets per CPU-second of the DUT's processes.
    pub mpps_per_dut_process_core: Option<f64>,
    /// What the generator offered over the same window, millions of
    /// frames per second.
    pub offered_mpps: f64,
    /// Frames the sink interface counted as dropped (rx_dropped) per
    /// second, millions.
    pub sink_dropped_mpps: f64,
    /// The CPU the generator ran on.
    pub gen_cpu: Option<usize>,
    /// How the generator sent: `bpf-live-frames`, or `af-packet` where
    /// the kernel refuses live frames (an skb per frame: the offered load
    /// is then lower, near 0.6 Mpps on this machine kind).
    pub gen_method: String,
    /// The CPUs the DUT was confined to.
    pub dut_cpus: Vec<usize>,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
}

/// Medians over the repetitions of one configuration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Device under test.
    pub dut: DutKind,
    /// Frame size including FCS.
    pub frame_size: usize,
    /// Flows.
    pub flows: u32,
    /// Repetitions behind the medians.
    pub reps: usize,
    /// Median Mpps.
    pub mpps: f64,
    /// Smallest and largest Mpps of the repetitions.
    pub mpps_min: f64,
    /// Largest Mpps.
    pub mpps_max: f64,
    /// Median Gbps.
    pub gbps: f64,
    /// Median busy cores.
    pub busy_cores: f64,
    /// Median million packets per busy CPU-second.
    pub mpps_per_busy_core: f64,
    /// Median CPU of the DUT's processes, in cores.
    pub dut_process_cores: Option<f64>,
    /// Median million packets per CPU-second of the DUT's processes.
    pub mpps_per_dut_process_core: Option<f64>,
    /// This device's median Mpps over xswitch's, same size and flows.
    pub ratio_to_xswitch: Option<f64>,
    /// This device's median Mpps over xdp-redirect's (the kernel limit).
    pub ratio_to_xdp_limit: Option<f64>,
}

/// A device that was asked for and could not be measured.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// The device.
    pub dut: DutKind,
    /// Why.
    pub reason: String,
}

/// Where and when the run happened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Machine {
    /// UTC date, YYYY-MM-DD.
    pub date: String,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
}

/// Everything `xswitch bench` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    /// Where and when.
    pub machine: Machine,
    /// What sink counted (`xdp`: XDP drop program on the sink veth;
    /// `stack`: frames go up the sink's stack). Counts come from the
    /// interface's kernel counters either way.
    pub sink: String,
    /// Measurement window per run, seconds.
    pub duration_s: f64,
    /// One entry per measurement (repetition).
    pub runs: Vec<RunRecord>,
    /// Medians and ratios per configuration.
    pub summary: Vec<Summary>,
    /// Round-trip latency per device.
    pub latency: Vec<LatencyRecord>,
    /// Devices not measured, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The median of the values present, if any.
fn med_opt(g: &[&RunRecord], f: fn(&RunRecord) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = g.iter().filter_map(|r| f(r)).collect();
    (!v.is_empty()).then(|| median(&v))
}

/// Groups the runs by (dut, size, flows) and computes medians and ratios.
pub fn summarize(runs: &[RunRecord]) -> Vec<Summary> {
    let mut groups: BTreeMap<(usize, u32, DutKind), Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.frame_size, r.flows, r.dut))
            .or_default()
            .push(r);
    }
    let med = |g: &[&RunRecord], f: fn(&RunRecord) -> f64| {
        median(&g.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let mut out: Vec<Summary> = groups
        .iter()
        .map(|(&(frame_size, flows, dut), g)| {
            let mpps: Vec<f64> = g.iter().map(|r| r.mpps).collect();
            Summary {
                dut,
                frame_size,
                flows,
                reps: g.len(),
                mpps: median(&mpps),
                mpps_min: mpps.iter().copied().fold(f64::INFINITY, f64::min),
                mpps_max: mpps.iter().copied().fold(0.0, f64::max),
                gbps: med(g, |r| r.gbps),
                busy_cores: med(g, |r| r.busy_cores),
                mpps_per_busy_core: med(g, |r| r.mpps_per_busy_core),
                dut_process_cores: med_opt(g, |r| r.dut_process_cores),
                mpps_per_dut_process_core: med_opt(g, |r| r.mpps_per_dut_process_core),
                ratio_to_xswitch: None,
                ratio_to_xdp_limit: None,
            }
        })
        .collect();
    let lookup: BTreeMap<(usize, u32, DutKind), f64> = out
        .iter()
        .map(|s| ((s.frame_size, s.flows, s.dut), s.mpps))
        .collect();
    for s in &mut out {
        let ratio = |k: DutKind| {
            lookup
                .get(&(s.frame_size, s.flows, k))
                .filter(|&&base| base > 0.0)
                .map(|base| s.mpps / base)
        };
        s.ratio_to_xswitch = ratio(DutKind::Xswitch);
        s.ratio_to_xdp_limit = ratio(DutKind::XdpRedirect);
    }
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

/// The report as text tables.
pub fn render_table(rep: &BenchReport) -> String {
    let mut s = String::new();
    let m = &rep.machine;
    let _ = writeln!(
        s,
        "xswitch bench — {} — Linux {} — {} × {} — sink: {} — {:.1} s per run",
        m.date, m.kernel, m.cpus, m.cpu_model, rep.sink, rep.duration_s
    );
    let _ = writeln!(
        s,
        "\n{:<13} {:>6} {:>6} {:>5} {:>8} {:>13} {:>7} {:>7} {:>11} {:>10} {:>12} {:>9} {:>9}",
        "dut",
        "frame",
        "flows",
        "reps",
        "Mpps",
        "min..max",
        "Gbps",
        "cores",
        "Mpps/core",
        "DUT cores",
        "Mpps/DUTcore",
        "vs xsw",
        "vs XDP"
    );
    for x in &rep.summary {
        let _ = writeln!(
            s,
            "{:<13} {:>6} {:>6} {:>5} {:>8.3} {:>13} {:>7.2} {:>7.2} {:>11.3} {:>10} {:>12} {:>9} {:>9}",
            x.dut.name(),
            x.frame_size,
            x.flows,
            x.reps,
            x.mpps,
            format!("{:.2}..{:.2}", x.mpps_min, x.mpps_max),
            x.gbps,
            x.busy_cores,
            x.mpps_per_busy_core,
            opt(x.dut_process_cores, 2),
            opt(x.mpps_per_dut_process_core, 3),
            ratio(x.ratio_to_xswitch),
            ratio(x.ratio_to_xdp_limit),
        );
    }
    if !rep.latency.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<13} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9}",
            "dut", "rate pps", "samples", "lost", "p50 µs", "p99 µs", "max µs"
        );
        for l in &rep.latency {
            let _ = writeln!(
                s,
                "{:<13} {:>9} {:>8} {:>6} {:>9.1} {:>9.1} {:>9.1}",
                l.dut, l.rate_pps, l.samples, l.lost, l.p50_us, l.p99_us, l.max_us
            );
        }
    }
    for k in &rep.skipped {
        let _ = writeln!(s, "\nskipped {}: {}", k.dut, k.reason);
    }
    let fallback = rep
        .runs
        .iter()
        .filter(|r| r.gen_method != GenMethod::LiveFrames.as_str())
        .count();
    if fallback > 0 {
        let _ = writeln!(
            s,
            "\nthis kernel refuses BPF_PROG_RUN with live frames: in {fallback} of {} runs the \
             generator sent through an AF_PACKET socket, which offers less load (see \
             offered_mpps in the JSON); compare devices only against the same generator",
            rep.runs.len()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dut: DutKind, rep: u32, mpps: f64) -> RunRecord {
        RunRecord {
            dut,
            frame_size: 64,
            flows: 1,
            ipv6: false,
            rep,
            mpps,
            gbps: mpps * 64.0 * 8.0 / 1000.0,
            cpu_busy_pct: vec![100.0, 50.0],
            busy_cores: 1.5,
            mpps_per_busy_core: mpps / 1.5,
            dut_process_cores: Some(1.0),
            mpps_per_dut_process_core: Some(mpps),
            offered_mpps: 4.0,
            sink_dropped_mpps: 0.0,
            gen_cpu: Some(0),
            gen_method: GenMethod::LiveFrames.to_string(),
            dut_cpus: vec![1],
            window_s: 2.0,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn summary_takes_medians_and_ratios_to_xswitch_and_the_xdp_limit() {
        let runs = vec![
            run(DutKind::Xswitch, 1, 1.0),
            run(DutKind::Xswitch, 2, 1.2),
            run(DutKind::Xswitch, 3, 1.1),
            run(DutKind::XdpRedirect, 1, 3.3),
            run(DutKind::LinuxBridge, 1, 0.55),
        ];
        let s = summarize(&runs);
        let get = |k| s.iter().find(|x| x.dut == k).unwrap();
        let x = get(DutKind::Xswitch);
        assert_eq!(x.reps, 3);
        assert!((x.mpps - 1.1).abs() < 1e-12);
        assert_eq!((x.mpps_min, x.mpps_max), (1.0, 1.2));
        assert!((x.ratio_to_xswitch.unwrap() - 1.0).abs() < 1e-12);
        assert!((x.ratio_to_xdp_limit.unwrap() - 1.1 / 3.3).abs() < 1e-12);
        let b = get(DutKind::LinuxBridge);
        assert!((b.ratio_to_xswitch.unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ratios_are_absent_without_the_reference_device() {
        let s = summarize(&[run(DutKind::LinuxBridge, 1, 0.5)]);
        assert_eq!(s[0].ratio_to_xswitch, None);
        assert_eq!(s[0].ratio_to_xdp_limit, None);
    }

    #[test]
    fn json_has_the_fields_the_issue_names() {
        let r = run(DutKind::OvsAfxdp, 1, 0.8);
        let v = serde_json::to_value(&r).unwrap();
        for k in ["dut", "frame_size", "flows", "mpps", "gbps", "cpu_busy_pct"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["dut"], "ovs-afxdp");
    }
}
