//! The `netns-del` scenario: the upstream OVS soft-lockup reproducer
//! (`background/ovs-veth-soft-lockup.txt`) run against xswitch.
//!
//! # What
//! Upstream: two namespaces behind OVS ports, veths of 32 rx / 32 tx
//! queues, an HTTP server in one, ~3,000 parallel `curl`s from the other,
//! and the client namespace deleted mid-load. The kernel unregisters the
//! client's veth pair (its `real_num_tx_queues` drops to 0) while OVS still
//! outputs the server's responses to it, and `skb_tx_hash` spins forever.
//! Here, per cycle:
//!
//! ```text
//!  victim ns (server)          switch ns (daemon)            client ns (new each cycle)
//!  sp0 10.78.0.1:80 ─ 32q ─ srv port [S]   [C] cli port ─ 32q ─ cc0 10.78.0.2
//!  HttpServer                 flows: S→C, C→S (+ gen→C)      HttpLoad, 3,000 parallel
//! ```
//! 1. a fresh client namespace; the 32-queue pair re-created under the
//!    same switch-side name, which the daemon re-attaches by itself
//!    (32 AF_XDP sockets): `recovery` = link creation → attached;
//! 2. [`HttpLoad`] with [`PARALLEL`] clients in it until [`MIN_OK`]
//!    responses came back through the switch, then [`HOLD`] more;
//! 3. `ip netns del` of the client namespace mid-load, then the load is
//!    stopped at once: `ip netns del` only drops the name, the namespace
//!    (and the veth) die with the last thread and socket in them, so the
//!    kernel unregisters the 32-queue veth right after the stop, while the
//!    server's responses (and, with [`FLOOD_CLIENT`], the generator's
//!    flood) are still being output to it;
//! 4. `removal` = `ip netns del` → the daemon lists the port detached (it
//!    saw RTM_DELLINK in the switch namespace, or the socket error);
//!    also timed: → the ifindex vanished from the switch namespace.
//!
//! The generator→untouched traffic of the harness keeps running
//! throughout; the harness judges stalls, gaps, leaks and accounting.
//! This scenario adds its own checks: the load was answered through the
//! switch before every deletion, the load stopped promptly after it, the
//! veth left the switch namespace every time, the port had 32 queues.
//!
//! # Invariants
//! * The server pair lives in the world's victim namespace and goes with
//!   it; each client namespace is a [`Netns`] guard declared before its
//!   [`HttpLoad`], so on any error the load stops first and the namespace
//!   is then deleted — nothing is left behind.
//! * Both ports stay configured at the end (the client one detached), as
//!   the harness's accounting expects.
//! * Every wait is bounded (attach 10 s, responses [`FED_TIMEOUT`],
//!   detach [`DETACH_TIMEOUT`], ifindex [`GONE_TIMEOUT`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use xswitch_bpf::gen::netns::{ifindex_of, NetnsGuard};

use crate::mgmt::Request;
use crate::topo::{unique_name, Netns};

use super::harness::Summary;
use super::http::{ensure_fd_limit, HttpLoad, HttpServer, LoadCounts};
use super::scenario::{ChaosError, ScenarioEnv, ScenarioOutcome};
use super::world::NETNS_PREFIXES;

/// Parallel HTTP requests from the client namespace (the reproducer's
/// ~3,000 `curl`s).
pub const PARALLEL: usize = 3000;
/// Rx and tx queues of both veth pairs (the reproducer's 32).
pub const QUEUES: u32 = 32;
/// Responses the load must get through the switch before the deletion.
pub const MIN_OK: u64 = 300;
/// How long the load keeps going after [`MIN_OK`], before the deletion.
pub const HOLD: Duration = Duration::from_millis(300);
/// Longest wait for [`MIN_OK`] responses.
pub const FED_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the veth to leave the switch namespace.
pub const GONE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the daemon to list the port detached. The kernel's
/// namespace teardown (`cleanup_net`, one ordered work queue for every
/// namespace on the machine, with an `rcu_barrier`) took from 20 ms to
/// over 5 s here on a busy machine, so this is not the daemon's budget:
/// the daemon's own lag (ifindex gone → detached) is reported apart.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(20);
/// The load must stop within this after the deletion.
pub const STOP_LIMIT: Duration = Duration::from_secs(2);
/// Also send the generator's flood to the client port, so the deletion
/// lands while the switch outputs to it at full rate, not only at the
/// HTTP responses' rate.
pub const FLOOD_CLIENT: bool = true;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const CLIENT_CIDR: &str = "10.78.0.2/24";
const SERVER_CIDR: &str = "10.78.0.1/24";
const HTTP_PORT: u16 = 80;
/// The client's interface inside its namespace (a fresh namespace each
/// cycle, so a fixed name).
const CLIENT_IF: &str = "cc0";

/// What one cycle measured.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    /// The load's counters at the stop.
    load: LoadCounts,
    /// Failed + timed out before the deletion.
    not_ok_before: u64,
    /// The load's duration, s.
    load_secs: f64,
    /// Reached MIN_OK.
    fed: bool,
    /// `ip netns del` took.
    del_took: Duration,
    /// Stopping the load took.
    stop_took: Duration,
    /// `ip netns del` → ifindex gone from the switch namespace.
    gone: Option<Duration>,
    /// `ip netns del` → detached in `port list`.
    detached: Duration,
    /// Usable tx queues the daemon reported once attached.
    tx_queues: u32,
    /// Whole cycle.
    took: Duration,
}

/// Runs the scenario (module docs).
pub fn run(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let w = env.world;
    // The load's sockets plus the server's (both in this process).
    ensure_fd_limit(2 * PARALLEL as u64 + 1024)
        .map_err(|e| ChaosError::Scenario(format!("netns-del: {e}")))?;
    let first_free = 3 + w.victims.len() as u32;
    let (srv_ofport, cli_ofport) = (first_free, first_free + 1);
    let srv_port = unique_name("svs");
    let cli_port = unique_name("svc");
    let srv_peer = unique_name("sp");

    // The server: a 32-queue pair from the switch to the victim namespace.
    let server_ns = &w.victim_ns;
    quiet_ipv6(server_ns)?;
    w.switch.add_veth(&srv_port, &srv_peer, server_ns, QUEUES)?;
    server_ns.ip(&["addr", "add", SERVER_CIDR, "dev", &srv_peer])?;
    server_ns.ip(&["link", "set", &srv_peer, "up"])?;
    // veth leaves TCP checksums to offload; AF_XDP forwards them unfinished.
    server_ns.run(&["ethtool", "-K", &srv_peer, "tx", "off"])?;
    w.switch.ip(&["link", "set", &srv_port, "up"])?;
    let server_addr = SocketAddrV4::new(SERVER_IP, HTTP_PORT);
    let server = HttpServer::start_in(server_ns.name(), server_addr)
        .map_err(|e| ChaosError::Scenario(format!("netns-del: HTTP server: {e}")))?;
    env.request(&Request::PortAdd {
        ifname: srv_port.clone(),
        mode: None,
        ofport: Some(srv_ofport),
    })?;
    env.wait_attached(&srv_port, Instant::now())?;

    let stats_before = env.stats()?;
    let mut cycles: Vec<Cycle> = Vec::new();
    let mut flows_set = false;
    let mut undetached: Option<String> = None;
    while env.go_on(out.cycles) {
        let t_cycle = Instant::now();
        // 1. Fresh client namespace and pair; the daemon (re-)attaches.
        let client = Netns::create(NETNS_PREFIXES[3])?;
        quiet_ipv6(&client)?;
        let t_link = Instant::now();
        w.switch.add_veth(&cli_port, CLIENT_IF, &client, QUEUES)?;
        client.ip(&["addr", "add", CLIENT_CIDR, "dev", CLIENT_IF])?;
        client.ip(&["link", "set", CLIENT_IF, "up"])?;
        client.run(&["ethtool", "-K", CLIENT_IF, "tx", "off"])?;
        w.switch.ip(&["link", "set", &cli_port, "up"])?;
        if !flows_set {
            env.request(&Request::PortAdd {
                ifname: cli_port.clone(),
                mode: None,
                ofport: Some(cli_ofport),
            })?;
        }
        out.recovery.push(env.wait_attached(&cli_port, t_link)?);
        let tx_queues = env
            .port_list()?
            .iter()
            .find(|r| r.name == cli_port)
            .map_or(0, |r| r.tx_queues);
        if !flows_set {
            env.request(&Request::FlowAdd {
                flows: format!(
                    "priority=200,in_port={srv_ofport},actions=output:{cli_ofport}\n\
                     priority=200,in_port={cli_ofport},actions=output:{srv_ofport}"
                ),
            })?;
            if FLOOD_CLIENT {
                env.route_to(&[cli_ofport])?;
            }
            flows_set = true;
        }

        // 2. The load, until it is answered through the switch.
        let load = HttpLoad::start_in(client.name(), server_addr, PARALLEL)
            .map_err(|e| ChaosError::Scenario(format!("netns-del: HTTP load: {e}")))?;
        let fed = wait_until(FED_TIMEOUT, || load.counts().ok >= MIN_OK);
        if fed {
            std::thread::sleep(HOLD);
        }
        let before = load.counts();

        // 3. Delete the namespace mid-load; stop the load at once.
        let (gone_tx, gone_rx) = mpsc::channel();
        let watcher = watch_gone(w.switch.name(), &cli_port, gone_tx)?;
        let t0 = Instant::now();
        client.delete()?;
        let del_took = t0.elapsed();
        let report = load.stop();

        // 4. The daemon detaches the port; the veth leaves the namespace.
        let waited = env.wait_port(&cli_port, t0, DETACH_TIMEOUT, "detached", |r| !r.attached);
        let gone = gone_rx
            .recv_timeout(GONE_TIMEOUT)
            .ok()
            .flatten()
            .map(|t: Instant| t.saturating_duration_since(t0));
        let _ = watcher.join();
        let detached = match waited {
            Ok(d) => d,
            Err(e) => {
                // The port is stuck attached: no later cycle can run
                // (the name is still the daemon's); say what the kernel
                // did meanwhile and stop here.
                undetached = Some(format!(
                    "cycle {}: {e}; the veth left the switch namespace {}",
                    out.cycles + 1,
                    gone.map_or("not within 20 s".to_string(), |g| format!(
                        "{:.1} ms after ip netns del",
                        ms(g)
                    ))
                ));
                break;
            }
        };
        out.removal.push(detached);
        cycles.push(Cycle {
            load: report.counts,
            not_ok_before: before.not_ok(),
            load_secs: report.elapsed.as_secs_f64(),
            fed,
            del_took,
            stop_took: report.stop_took,
            gone,
            detached,
            tx_queues,
            took: t_cycle.elapsed(),
        });
        out.cycles += 1;
    }
    if FLOOD_CLIENT && flows_set {
        // Back to the base flow: the client port is gone for good.
        env.route_to(&[])?;
    }
    let stats_after = env.stats()?;
    let served = server.stop();
    judge(&mut out, &cycles);
    out.check(
        "the daemon detached the port after every namespace deletion",
        undetached.is_none(),
        undetached.unwrap_or_else(|| format!("{} of {} cycles", cycles.len(), cycles.len())),
    );
    out.note(format!(
        "server: {} responses served, {} connections ended in errors/resets",
        served.served, served.errors
    ));
    for (what, ofport) in [("server port", srv_ofport), ("generator port", 1)] {
        let d = drops_delta(&stats_before, &stats_after, ofport);
        out.note(format!(
            "{what} (ofport {ofport}) drops during the cycles: {}",
            if d.is_empty() {
                "none".to_string()
            } else {
                d.iter()
                    .map(|(k, v)| format!("{k} +{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    Ok(out)
}

/// The scenario's own checks and the figures behind them.
fn judge(out: &mut ScenarioOutcome, cycles: &[Cycle]) {
    let n = cycles.len();
    let fed = cycles.iter().filter(|c| c.fed).count();
    let min_ok = cycles.iter().map(|c| c.load.ok).min().unwrap_or(0);
    out.check(
        "HTTP load answered through the switch before every deletion",
        fed == n && n > 0,
        format!(
            "{fed} of {n} cycles reached {MIN_OK} responses; fewest responses in a cycle {min_ok}"
        ),
    );
    let max_stop = cycles.iter().map(|c| c.stop_took).max().unwrap_or_default();
    out.check(
        "HTTP load stopped promptly after its namespace was deleted",
        max_stop <= STOP_LIMIT,
        format!("longest stop {:.0} ms (limit {STOP_LIMIT:?})", ms(max_stop)),
    );
    let gone: Vec<Duration> = cycles.iter().filter_map(|c| c.gone).collect();
    let g = Summary::of(&gone);
    out.check(
        "the 32-queue veth left the switch namespace after every deletion",
        gone.len() == n,
        format!(
            "{} of {n}; ip netns del -> ifindex gone p50 {:.1} ms, max {:.1} ms",
            gone.len(),
            g.p50_ms,
            g.max_ms
        ),
    );
    let min_q = cycles.iter().map(|c| c.tx_queues).min().unwrap_or(0);
    out.check(
        "the client port attached with 32 tx queues every cycle",
        min_q == QUEUES,
        format!("fewest usable tx queues reported: {min_q}"),
    );
    if n == 0 {
        return;
    }
    let mut total = LoadCounts::default();
    for c in cycles {
        total.add(&c.load);
    }
    let secs: f64 = cycles.iter().map(|c| c.load_secs).sum();
    let not_ok_before: u64 = cycles.iter().map(|c| c.not_ok_before).sum();
    out.note(format!(
        "HTTP load ({PARALLEL} parallel, new connection per request): {} ok, {} failed, {} timed out, {} aborted by the stop; {:.0} ok/s over {:.1} s of load; {not_ok_before} not ok before the deletions",
        total.ok,
        total.failed,
        total.timed_out,
        total.aborted,
        if secs > 0.0 { total.ok as f64 / secs } else { 0.0 },
        secs
    ));
    let sum = |f: fn(&Cycle) -> Duration| Summary::of(&cycles.iter().map(f).collect::<Vec<_>>());
    let lag: Vec<Duration> = cycles
        .iter()
        .filter_map(|c| c.gone.map(|g| c.detached.saturating_sub(g)))
        .collect();
    let lag = Summary::of(&lag);
    out.note(format!(
        "daemon lag, ifindex gone -> port detached (p50/max ms): {:.1}/{:.1}",
        lag.p50_ms, lag.max_ms
    ));
    let (del, stop, det, took) = (
        sum(|c| c.del_took),
        sum(|c| c.stop_took),
        sum(|c| c.detached),
        sum(|c| c.took),
    );
    out.note(format!(
        "per cycle (p50/max ms): ip netns del {:.1}/{:.1}, load stop {:.1}/{:.1}, ip netns del -> port detached {:.1}/{:.1}, whole cycle {:.0}/{:.0}",
        del.p50_ms, del.max_ms, stop.p50_ms, stop.max_ms, det.p50_ms, det.max_ms, took.p50_ms, took.max_ms
    ));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Turns IPv6 off in `ns` (no router solicitations or DAD in the counts).
fn quiet_ipv6(ns: &Netns) -> Result<(), ChaosError> {
    ns.run(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ])?;
    Ok(())
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A thread in namespace `netns` that sends the instant `ifname` stops
/// resolving there (`None` after [`GONE_TIMEOUT`]); it polls every
/// 200 µs. Returns once the thread is in the namespace and has seen the
/// interface.
fn watch_gone(
    netns: &str,
    ifname: &str,
    tx: mpsc::Sender<Option<Instant>>,
) -> Result<std::thread::JoinHandle<()>, ChaosError> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (ns, name) = (netns.to_string(), ifname.to_string());
    let handle = std::thread::Builder::new()
        .name("chaos-netns-watch".into())
        .spawn(move || {
            let _guard = match NetnsGuard::enter(&ns) {
                Ok(g) => g,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            if ifindex_of(&name).is_err() {
                let _ = ready_tx.send(Err(format!("{name} is not in namespace {ns}")));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            let deadline = Instant::now() + GONE_TIMEOUT;
            while Instant::now() < deadline {
                if ifindex_of(&name).is_err() {
                    let _ = tx.send(Some(Instant::now()));
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let _ = tx.send(None);
        })
        .map_err(|e| ChaosError::Scenario(format!("netns-del: spawn watcher: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(ChaosError::Scenario(format!("netns-del: {e}")))
        }
        Err(_) => {
            let _ = handle.join();
            Err(ChaosError::Scenario("netns-del: watcher died".into()))
        }
    }
}

/// Drops of port `ofport` by reason, `after - before` (non-zero only).
fn drops_delta(before: &Value, after: &Value, ofport: u32) -> BTreeMap<String, u64> {
    let of = |s: &Value| -> BTreeMap<String, u64> {
        s["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["ofport"].as_u64() == Some(u64::from(ofport)))
            .and_then(|p| p["drops"].as_object())
            .map(|d| {
                d.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (b, a) = (of(before), of(after));
    a.into_iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(b.get(&k).copied().unwrap_or(0));
            (d > 0).then_some((k, d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_delta_keeps_only_reasons_that_grew_on_that_port() {
        let before = serde_json::json!({"ports": [
            {"ofport": 3, "drops": {"no_port": 5, "port_unregistering": 0}},
            {"ofport": 1, "drops": {"no_port": 100}}
        ]});
        let after = serde_json::json!({"ports": [
            {"ofport": 3, "drops": {"no_port": 9, "port_unregistering": 2, "no_carrier": 0}},
            {"ofport": 1, "drops": {"no_port": 500}}
        ]});
        let d = drops_delta(&before, &after, 3);
        assert_eq!(
            d.into_iter().collect::<Vec<_>>(),
            [
                ("no_port".to_string(), 4),
                ("port_unregistering".to_string(), 2)
            ]
        );
        assert!(drops_delta(&before, &after, 7).is_empty());
    }

    fn cycle(ok: u64, stop_ms: u64, gone: Option<u64>, q: u32) -> Cycle {
        Cycle {
            load: LoadCounts {
                ok,
                ..LoadCounts::default()
            },
            not_ok_before: 0,
            load_secs: 1.0,
            fed: ok >= MIN_OK,
            del_took: Duration::from_millis(3),
            stop_took: Duration::from_millis(stop_ms),
            gone: gone.map(Duration::from_millis),
            detached: Duration::from_millis(40),
            tx_queues: q,
            took: Duration::from_secs(2),
        }
    }

    #[test]
    fn judge_fails_each_check_on_its_own_fault() {
        let good = cycle(1000, 50, Some(30), QUEUES);
        let mut out = ScenarioOutcome::default();
        judge(&mut out, &[good, good]);
        assert!(out.checks.iter().all(|c| c.ok), "{:?}", out.checks);
        for (bad, what) in [
            (cycle(10, 50, Some(30), QUEUES), "answered"),
            (cycle(1000, 5000, Some(30), QUEUES), "stopped promptly"),
            (cycle(1000, 50, None, QUEUES), "left the switch namespace"),
            (cycle(1000, 50, Some(30), 1), "32 tx queues"),
        ] {
            let mut out = ScenarioOutcome::default();
            judge(&mut out, &[good, bad]);
            let failed: Vec<&str> = out
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.what.as_str())
                .collect();
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert!(failed[0].contains(what), "{failed:?} vs {what}");
        }
    }

    #[test]
    fn no_cycle_at_all_is_a_failure_not_a_pass() {
        let mut out = ScenarioOutcome::default();
        judge(&mut out, &[]);
        assert!(out.checks.iter().any(|c| !c.ok));
    }
}
