//! `trace`: what the datapath would do with a packet, without doing it.
//!
//! # What
//! [`Datapath::trace`] runs the packet walk on a private copy of one frame
//! against the current port map, flow table and MAC table and reports the
//! matched rule, its actions, the ports the packet would leave by (in action
//! order) and the reason it would be dropped. It is side-effect free: no
//! learning, no cache, no counter, no rule statistics, no transmission. The
//! CLI's `trace` and the differential test against Open vSwitch's
//! `ofproto/trace` use it.
//!
//! # Semantics
//! The same as [`super::Pmd::process_batch`] up to the point of `send`:
//! extract, rule lookup (no rules → `normal`; miss → `no_match`), actions
//! with rewrites, and for every output the port checks (in the map, port
//! state, MTU). Outputs that fail a check are listed in
//! [`Trace::output_drops`]. A tx ring that is full or a send that fails
//! cannot be predicted and is not modelled.

use super::Datapath;
use crate::actions::{execute, Action, ActionContext, ExecResult};
use crate::classifier::Rule;
use crate::extract::extract;
use crate::flow_key::{FlowKey, PortNo};
use crate::learning::{is_bare_priority_tag, NormalOutput};
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::builder::build_frame;
use std::sync::Arc;

/// The outcome of [`Datapath::trace`].
#[derive(Debug, Clone)]
pub struct Trace {
    /// The ingress port.
    pub in_port: PortNo,
    /// The key the frame was classified by.
    pub key: FlowKey,
    /// The rule that matched (`None`: no rule installed — the switch is a
    /// learning bridge — or a table miss).
    pub rule: Option<Arc<Rule>>,
    /// The actions that ran (`[normal]` when no rule is installed).
    pub actions: Vec<Action>,
    /// The ports the packet would leave by, in action order.
    pub outputs: Vec<PortNo>,
    /// The frame each output would carry, aligned with `outputs`.
    pub frames: Vec<Vec<u8>>,
    /// Outputs that would be dropped by a port check, with the reason.
    pub output_drops: Vec<(PortNo, DropReason)>,
    /// Why the packet would not leave at all (`None` when it leaves by at
    /// least one port): the first failed output's reason, else the reason
    /// execution stopped (`ttl_expired`, `malformed`), `loop_prevented`
    /// from `normal`, `no_match`, or `action_drop` for a list without
    /// outputs.
    pub dropped: Option<DropReason>,
}

struct TraceCtx<'a> {
    dp: &'a Datapath,
    ports: &'a super::PortMap,
    in_port: PortNo,
    now_secs: u32,
    outputs: Vec<PortNo>,
    frames: Vec<Vec<u8>>,
    output_drops: Vec<(PortNo, DropReason)>,
    hint: Option<DropReason>,
}

impl TraceCtx<'_> {
    fn emit(&mut self, port: PortNo, pkt: &Packet) {
        let verdict = match self.ports.get(port) {
            None => Err(DropReason::NoPort),
            Some(e) => e.state().output_check().and_then(|_| {
                if pkt.len() > e.vport().mtu() {
                    Err(DropReason::MtuExceeded)
                } else {
                    Ok(())
                }
            }),
        };
        match verdict {
            Ok(()) => {
                self.outputs.push(port);
                self.frames.push(pkt.data().to_vec());
            }
            Err(r) => self.output_drops.push((port, r)),
        }
    }
}

impl ActionContext for TraceCtx<'_> {
    fn output(&mut self, port: PortNo, pkt: &Packet) {
        self.emit(port, pkt);
    }

    fn flood(&mut self, in_port: PortNo, pkt: &Packet) {
        let ports = self.ports;
        for e in ports.iter() {
            if e.ofport() != in_port {
                self.emit(e.ofport(), pkt);
            }
        }
    }

    fn normal(&mut self, key: &FlowKey, pkt: &Packet) {
        // A trace never learns.
        let out = self
            .dp
            .mac_table()
            .normal_output(key, self.in_port, self.now_secs, false);
        let untagged;
        let pkt = if is_bare_priority_tag(key) && !matches!(out, NormalOutput::Drop(_)) {
            // `normal` sends a bare priority-tagged frame untagged.
            let mut p = pkt.clone();
            if !p.remove_range(12, 4) {
                self.hint = Some(DropReason::Malformed);
                return;
            }
            untagged = p;
            &untagged
        } else {
            pkt
        };
        match out {
            NormalOutput::Drop(r) => self.hint = Some(r),
            NormalOutput::Port(p) => self.emit(p, pkt),
            NormalOutput::Flood => self.flood(self.in_port, pkt),
        }
    }
}

impl Datapath {
    /// Traces a packet given by its flow key (the CLI's `trace 'in_port=1,
    /// dl_src=..'`): builds a minimum-size frame that extracts to `key`
    /// ([`build_frame`]) and traces it on `key.in_port()`. `key` should be
    /// consistent ([`crate::wire::builder::is_consistent`]); fields a frame
    /// cannot carry are lost.
    pub fn trace_key(&self, key: &FlowKey) -> Trace {
        self.trace(key.in_port(), &build_frame(key, 0))
    }

    /// Traces `frame` as if received on `in_port` (see the module docs).
    pub fn trace(&self, in_port: PortNo, frame: &[u8]) -> Trace {
        let mut key = FlowKey::ZERO;
        let mut layers = extract(frame, in_port, &mut key);
        let mut t = Trace {
            in_port,
            key,
            rule: None,
            actions: Vec::new(),
            outputs: Vec::new(),
            frames: Vec::new(),
            output_drops: Vec::new(),
            dropped: None,
        };
        let Some(mut pkt) = Packet::from_bytes(frame).filter(|_| !layers.is_runt()) else {
            t.dropped = Some(DropReason::Malformed);
            return t;
        };
        let cls = self.flow_table().snapshot();
        if cls.is_empty() {
            t.actions.push(Action::Normal);
        } else {
            match cls.lookup(&key) {
                Some(r) => {
                    t.actions.extend_from_slice(r.actions());
                    t.rule = Some(Arc::clone(r));
                }
                None => {
                    t.dropped = Some(DropReason::NoMatch);
                    return t;
                }
            }
        }
        // Under the `ports` lock (control side, no rcu participant); the
        // flow table and MAC table below it are downward in the hierarchy.
        let (outputs, frames, output_drops, hint, result) = self.port_table().with_map(|ports| {
            let mut ctx = TraceCtx {
                dp: self,
                ports,
                in_port,
                now_secs: self.now_secs(),
                outputs: Vec::new(),
                frames: Vec::new(),
                output_drops: Vec::new(),
                hint: None,
            };
            let result = execute(&t.actions, &mut pkt, &mut key, &mut layers, &mut ctx);
            let TraceCtx {
                outputs,
                frames,
                output_drops,
                hint,
                ..
            } = ctx;
            (outputs, frames, output_drops, hint, result)
        });
        if outputs.is_empty() {
            t.dropped = Some(match (output_drops.first(), result) {
                (Some(&(_, r)), _) => r,
                (None, ExecResult::Stopped(r)) => r,
                (None, ExecResult::Done) => hint.unwrap_or(DropReason::ActionDrop),
            });
        }
        t.outputs = outputs;
        t.frames = frames;
        t.output_drops = output_drops;
        t
    }
}
