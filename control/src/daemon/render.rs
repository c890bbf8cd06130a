//! Text renderings of the daemon's answers (what the CLI prints without
//! `--json`).

use crate::flow_syntax::{format_dump_flow, FlowStats};
use crate::mgmt::{FdbRow, PortAdded, PortRow, TraceReport};
use dataplane::datapath::Datapath;
use std::fmt::Write as _;

pub(super) fn port_added(r: &PortAdded) -> String {
    if r.mode.is_empty() {
        format!("added port {} as ofport {}", r.name, r.ofport)
    } else {
        format!(
            "added port {} as ofport {} (xdp {})",
            r.name, r.ofport, r.mode
        )
    }
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub(super) fn port_list(rows: &[PortRow]) -> String {
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    let mut s = format!(
        "{:>6}  {:<w$}  {:<8}  {:<7}  {:<7}  {:<7}  {:>3}  state\n",
        "ofport", "name", "attached", "xdp", "running", "carrier", "txq"
    );
    for r in rows {
        let state = if !r.attached {
            match &r.error {
                Some(e) => format!("detached: {e}"),
                None => "detached".into(),
            }
        } else if !r.registered {
            "unregistering".into()
        } else if !r.admin_up {
            "admin down".into()
        } else if r.running && r.carrier && r.tx_queues > 0 {
            "up".into()
        } else {
            "down".into()
        };
        let _ = writeln!(
            s,
            "{:>6}  {:<w$}  {:<8}  {:<7}  {:<7}  {:<7}  {:>3}  {state}",
            r.ofport,
            r.name,
            yn(r.attached),
            r.xdp.as_deref().unwrap_or("-"),
            yn(r.running),
            yn(r.carrier),
            r.tx_queues,
        );
    }
    s
}

/// `ovs-ofctl dump-flows` lines.
pub(super) fn flow_dump(dp: &Datapath) -> String {
    let mut s = String::new();
    for r in dp.flow_table().rules() {
        let st = FlowStats {
            duration: r.duration(),
            n_packets: r.n_packets(),
            n_bytes: r.n_bytes(),
            idle_age: Some(r.idle_age().as_secs()),
            hard_age: None,
        };
        let _ = writeln!(s, " {}", format_dump_flow(r.spec(), Some(&st)));
    }
    s
}

/// `ovs-appctl fdb/show` layout.
pub(super) fn fdb(rows: &[FdbRow]) -> String {
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{:>5}  {:>4}  {}  {:>3}",
            r.port, r.vlan, r.mac, r.age_secs
        );
    }
    s
}

/// `ofproto/trace`-like: the packet, the rule, each action, every output's
/// verdict, and the final decision.
pub(super) fn trace(flow: &str, t: &TraceReport, no_rules: bool) -> String {
    let mut s = format!("Flow: {flow}\n\n");
    match &t.rule {
        Some(r) => {
            let _ = writeln!(s, "Rule: {r}");
        }
        None if t.dropped.as_deref() == Some("no_match") => {
            let _ = writeln!(s, "Rule: none matched (table miss)");
        }
        None if no_rules => {
            let _ = writeln!(s, "Rule: none installed: learning bridge (actions=NORMAL)");
        }
        None => {
            let _ = writeln!(s, "Rule: none");
        }
    }
    let _ = writeln!(
        s,
        "Actions: {}",
        if t.actions.is_empty() {
            "drop".to_string()
        } else {
            t.actions.join(",")
        }
    );
    for p in &t.outputs {
        let _ = writeln!(s, "  output:{p} → delivered");
    }
    for (p, r) in &t.output_drops {
        let _ = writeln!(s, "  output:{p} → dropped: {r}");
    }
    let _ = write!(s, "\nFinal decision: ");
    if t.outputs.is_empty() {
        let reason = t.dropped.as_deref().unwrap_or("action_drop");
        match t.output_drops.first() {
            Some((p, r)) if t.output_drops.len() == 1 => {
                let _ = writeln!(s, "output:{p} → dropped: {r}");
            }
            _ => {
                let _ = writeln!(s, "dropped: {reason}");
            }
        }
    } else {
        let outs: Vec<String> = t.outputs.iter().map(u32::to_string).collect();
        let _ = writeln!(s, "output to {}", outs.join(","));
    }
    s
}
