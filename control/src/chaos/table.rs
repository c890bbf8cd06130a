//! The chaos report: one table row per scenario plus the failed criteria,
//! or JSON (`{"scenarios":[...],"result":...}`).

use std::io::{self, Write};

use serde::Serialize;

use super::harness::{ScenarioResult, Verdict};

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// One entry per scenario, in run order.
    pub scenarios: Vec<ScenarioResult>,
    /// PASS when every scenario passed.
    pub result: Verdict,
    /// Quick mode?
    pub quick: bool,
}

impl ChaosReport {
    /// Builds the report from the results.
    pub fn new(scenarios: Vec<ScenarioResult>, quick: bool) -> Self {
        let result = if scenarios.iter().all(|s| s.result == Verdict::Pass) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        ChaosReport {
            scenarios,
            result,
            quick,
        }
    }

    /// Names of the failed scenarios.
    pub fn failed(&self) -> Vec<&str> {
        self.scenarios
            .iter()
            .filter(|s| s.result == Verdict::Fail)
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human-readable table, then each scenario's drops, notes and
    /// failed criteria.
    pub fn write_table(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "{:<16} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7} {:>15} {:>15} {:>6} {:>6} {:>11}",
            "scenario",
            "result",
            "cycles",
            "secs",
            "offered",
            "untouched",
            "ratio",
            "gap_ms",
            "removal p50/max",
            "recover p50/max",
            "stalls",
            "leaked",
            "rss KiB +/-"
        )?;
        for s in &self.scenarios {
            let verdict = match s.result {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
            };
            let pm = |x: &super::harness::Summary| {
                if x.n == 0 {
                    "-".to_string()
                } else {
                    format!("{:.1}/{:.1}", x.p50_ms, x.max_ms)
                }
            };
            let rss = match (s.rss_kib_before, s.rss_kib_after) {
                (Some(a), Some(b)) => format!("{:+}", b as i64 - a as i64),
                _ => "-".into(),
            };
            writeln!(
                w,
                "{:<16} {:>6} {:>6} {:>6.1} {:>9} {:>9} {:>7.2} {:>7.1} {:>15} {:>15} {:>6} {:>6} {:>11}",
                s.name,
                verdict,
                s.cycles,
                s.seconds,
                short(s.offered),
                short(s.forwarded_untouched),
                s.untouched_ratio,
                s.max_untouched_gap_ms,
                pm(&s.removal),
                pm(&s.recovery),
                s.watchdog_stalls,
                s.leaked_frames.map_or("-".into(), |n| n.to_string()),
                rss,
            )?;
        }
        for s in &self.scenarios {
            writeln!(w)?;
            writeln!(
                w,
                "{}: {} (max stall {} ms; untouched {:.0} pps before, {:.0} during; reaction p50/max {:.1}/{:.1} ms; daemon {})",
                s.name,
                match s.result {
                    Verdict::Pass => "PASS",
                    Verdict::Fail => "FAIL",
                },
                s.max_stall_ms,
                s.untouched_pps_before,
                s.untouched_pps_during,
                s.reaction.p50_ms,
                s.reaction.max_ms,
                s.daemon_exit
            )?;
            if !s.drops.is_empty() {
                let d: Vec<String> = s.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(w, "  drops: {}", d.join(" "))?;
            }
            for c in &s.checks {
                writeln!(
                    w,
                    "  [{}] {}: {}",
                    if c.ok { "ok" } else { "FAIL" },
                    c.what,
                    c.detail
                )?;
            }
            for n in &s.notes {
                writeln!(w, "  note: {n}")?;
            }
            for l in &s.daemon_log {
                writeln!(w, "  daemon: {l}")?;
            }
        }
        writeln!(w)?;
        let failed = self.failed();
        if failed.is_empty() {
            writeln!(w, "chaos: PASS ({} scenarios)", self.scenarios.len())
        } else {
            writeln!(
                w,
                "chaos: FAIL ({} of {}: {})",
                failed.len(),
                self.scenarios.len(),
                failed.join(", ")
            )
        }
    }
}

/// 1234567 → "1.23M".
fn short(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_counts_keep_three_significant_figures() {
        assert_eq!(short(999), "999");
        assert_eq!(short(12_345), "12.3k");
        assert_eq!(short(12_345_678), "12.35M");
    }
}
