//! What a scenario is given ([`ScenarioEnv`]) and what it hands back
//! ([`ScenarioOutcome`]); the stable seam between the harness and the
//! scenarios, H2's netns-del included (API summary in [`crate::chaos`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::mgmt::{PortRow, Reply, Request};
use crate::topo::TopoError;

use super::process::SwitchProcess;
use super::traffic::Traffic;
use super::world::World;

/// Why the harness or a scenario could not go on. One line each.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Not root.
    #[error("xswitch chaos needs root (it creates network namespaces, veths and XDP programs): run it as root")]
    NotRoot,
    /// A scenario name nobody knows.
    #[error("unknown scenario {0:?} (one of: {1})")]
    UnknownScenario(String, String),
    /// An `ip`/`ethtool` command or a namespace operation failed.
    #[error(transparent)]
    Topo(#[from] TopoError),
    /// The generator, the sink or a BPF query failed.
    #[error("traffic: {0}")]
    Traffic(String),
    /// The switch daemon would not start, died, or would not answer.
    #[error("daemon: {0}")]
    Daemon(String),
    /// Something did not happen in time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A scenario-specific failure that makes going on pointless.
    #[error("{0}")]
    Scenario(String),
    /// SIGINT or SIGTERM ended the run early; what was set up is removed.
    #[error("interrupted by a signal: {ran} of {total} scenarios ran (their namespaces, interfaces and daemons were removed)")]
    Interrupted {
        /// Scenarios that ran (the one under way included).
        ran: usize,
        /// Scenarios asked for.
        total: usize,
    },
}

impl From<xswitch_bpf::gen::GenError> for ChaosError {
    fn from(e: xswitch_bpf::gen::GenError) -> Self {
        ChaosError::Traffic(e.to_string())
    }
}

impl From<crate::mgmt::ClientError> for ChaosError {
    fn from(e: crate::mgmt::ClientError) -> Self {
        ChaosError::Daemon(e.to_string())
    }
}

/// One scenario-specific criterion and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked ("forwards again after re-add").
    pub what: String,
    /// Did it hold?
    pub ok: bool,
    /// Figures behind the verdict.
    pub detail: String,
}

/// The raw measurements one scenario run hands back; the harness adds
/// its own (stalls, drops, untouched-port gaps, RSS, frames, accounting)
/// and judges PASS/FAIL.
#[derive(Debug, Clone, Default)]
pub struct ScenarioOutcome {
    /// Fault cycles completed.
    pub cycles: u64,
    /// Per cycle that removed a port: fault → the daemon reports the port
    /// detached (`port list`: `attached == false`).
    pub removal: Vec<Duration>,
    /// Per cycle that changes a port's state without removing it: fault →
    /// the daemon's `port list` shows the new state.
    pub reaction: Vec<Duration>,
    /// Per cycle that restores something: restore → working again (port
    /// attached, or traffic seen again, as the scenario defines).
    pub recovery: Vec<Duration>,
    /// Scenario-specific criteria; any `ok == false` fails the scenario.
    pub checks: Vec<Check>,
    /// Remarks for the report (what the driver allowed, what was skipped).
    pub notes: Vec<String>,
}

impl ScenarioOutcome {
    /// Records a criterion.
    pub fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Counts a finished cycle, or records why it failed (keeping the
    /// cycles done so far in the report); `false`: stop cycling.
    pub fn count_cycle<E: core::fmt::Display>(&mut self, cycle: Result<(), E>) -> bool {
        match cycle {
            Ok(()) => {
                self.cycles += 1;
                true
            }
            Err(e) => {
                self.check(
                    "every cycle completed",
                    false,
                    format!("cycle {}: {e}", self.cycles + 1),
                );
                false
            }
        }
    }

    /// Records a remark.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }
}

/// Everything a scenario may use. The harness has built the world, started
/// the daemon with the generator, untouched and victim ports, installed the
/// base flow (generator port → untouched + every victim), started traffic
/// and armed the untouched-port watch before calling the scenario.
pub struct ScenarioEnv<'a> {
    /// The scenario's name (for progress lines).
    pub name: &'static str,
    /// The xswitch executable the daemon runs from.
    pub exe: &'a Path,
    /// Namespaces, ports and their ofports.
    pub world: &'a World,
    /// The running switch daemon.
    pub daemon: &'a SwitchProcess,
    /// Generator and untouched-port sink.
    pub traffic: &'a Traffic,
    /// Fault cycles to run (the scenario may stop early at `deadline`).
    pub cycles: u64,
    /// Quick mode (CI): small budgets.
    pub quick: bool,
    /// No new cycle starts after this instant.
    pub deadline: Instant,
}

impl ScenarioEnv<'_> {
    /// True while cycle number `done` (0-based count of completed cycles)
    /// should still run: under the budget and before the deadline. Prints
    /// progress to stderr now and then.
    pub fn go_on(&self, done: u64) -> bool {
        if done > 0 && (done.is_multiple_of(1000) || (!self.quick && done.is_multiple_of(100))) {
            eprintln!("chaos: {}: {done}/{} cycles", self.name, self.cycles);
        }
        done < self.cycles && Instant::now() < self.deadline && !super::interrupted()
    }

    /// Sends one request to the daemon (a fresh connection each time).
    pub fn request(&self, req: &Request) -> Result<Reply, ChaosError> {
        self.daemon.request(req)
    }

    /// The daemon's `port list`.
    pub fn port_list(&self) -> Result<Vec<PortRow>, ChaosError> {
        self.daemon.port_list()
    }

    /// The daemon's `stats --json` answer.
    pub fn stats(&self) -> Result<serde_json::Value, ChaosError> {
        self.daemon.stats()
    }

    /// Polls `port list` (every millisecond) until the port named `name`
    /// satisfies `pred`; returns how long that took from `since`.
    pub fn wait_port(
        &self,
        name: &str,
        since: Instant,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&PortRow) -> bool,
    ) -> Result<Duration, ChaosError> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.port_list()?;
            if rows.iter().any(|r| r.name == name && pred(r)) {
                return Ok(since.elapsed());
            }
            if Instant::now() >= deadline {
                let row = rows.iter().find(|r| r.name == name);
                // What the kernel says, to tell a slow daemon from a
                // device that never changed.
                let kernel = self
                    .world
                    .switch
                    .ip(&["-o", "link", "show", "dev", name])
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|e| e.to_string());
                return Err(ChaosError::Timeout {
                    what: format!("port {name} {what} (daemon: {row:?}; kernel: {kernel})"),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until port `name` is detached (the daemon saw its device go).
    pub fn wait_detached(&self, name: &str, since: Instant) -> Result<Duration, ChaosError> {
        self.wait_port(name, since, Duration::from_secs(5), "detached", |r| {
            !r.attached
        })
    }

    /// Waits until port `name` is attached again.
    pub fn wait_attached(&self, name: &str, since: Instant) -> Result<Duration, ChaosError> {
        self.wait_port(name, since, Duration::from_secs(10), "attached", |r| {
            r.attached
        })
    }

    /// Makes the base flow output to the untouched port and to `victims`
    /// (ofports) — replacing the previous base flow in one step, so the
    /// untouched port never misses a packet.
    pub fn route_to(&self, victims: &[u32]) -> Result<(), ChaosError> {
        let flow = self.world.base_flow(victims);
        self.request(&Request::FlowAdd { flows: flow })?;
        Ok(())
    }
}
