//! The fault scenarios (all but netns-del, which is in `netns_del.rs`).
//!
//! Each runs on a fresh [`World`](super::world::World) with traffic from
//! the generator port to the untouched port and to every victim (the base
//! flow), so every fault hits a port that is being output to at that
//! moment — the upstream bug's situation. Each returns its cycles and
//! timings; the harness judges the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xswitch_bpf::gen::netns::{ifindex_of, NetnsGuard};

use crate::mgmt::Request;

use super::scenario::{ChaosError, ScenarioEnv, ScenarioOutcome};

/// How long traffic flows to a victim before each fault (the "burst" the
/// fault lands in the middle of).
const BURST: Duration = Duration::from_millis(20);
/// How long a restored victim gets to show traffic again.
const RESUME: Duration = Duration::from_secs(2);

/// Frames a victim must receive to count as fed by the switch (more than
/// any stray control packet).
const FED: u64 = 100;

/// Waits until victim `i`'s peer has received [`FED`] more frames than it
/// had at `rx0`.
fn victim_gets_traffic(env: &ScenarioEnv<'_>, i: usize, rx0: u64, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if env.world.victim_rx(i) >= rx0 + FED {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Mid-burst traffic check shared by the scenarios: traffic reaches the
/// victim before the fault.
fn burst(env: &ScenarioEnv<'_>, i: usize) -> bool {
    let rx0 = env.world.victim_rx(i);
    std::thread::sleep(BURST);
    victim_gets_traffic(env, i, rx0, RESUME)
}

/// `ip link del` of the victim's veth while traffic is output to it; the
/// pair is re-created (same names) for the next cycle.
pub fn link_del(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let name = env.world.victims[0].port.name.clone();
    let mut fed = 0u64;
    while env.go_on(out.cycles) {
        fed += u64::from(burst(env, 0));
        let cycle = (|| {
            let t = Instant::now();
            env.world.delete_victim(0)?;
            out.removal.push(env.wait_detached(&name, t)?);
            env.world.create_victim(0)?;
            let t = Instant::now();
            out.recovery.push(env.wait_attached(&name, t)?);
            Ok::<_, ChaosError>(())
        })();
        if !out.count_cycle(cycle) {
            break;
        }
    }
    out.check(
        "the victim was being output to when deleted",
        fed >= out.cycles,
        format!(
            "traffic reached it before {fed} of {} deletions",
            out.cycles
        ),
    );
    Ok(out)
}

/// Delete and at once re-create the victim under the same name while it
/// is configured: the daemon must re-attach it by itself and forward to
/// it again.
pub fn readd_same_name(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let mut resumed = 0u64;
    while env.go_on(out.cycles) {
        burst(env, 0);
        let t = Instant::now();
        env.world.delete_victim(0)?;
        env.world.create_victim(0)?;
        // The re-created peer starts its counters at 0.
        if victim_gets_traffic(env, 0, 0, Duration::from_secs(10)) {
            resumed += 1;
            out.recovery.push(t.elapsed());
        }
        out.cycles += 1;
    }
    out.check(
        "forwards to the re-created interface again",
        resumed == out.cycles,
        format!(
            "{resumed} of {} re-adds got traffic within 10 s",
            out.cycles
        ),
    );
    Ok(out)
}

/// The switch-side victim set down and up again (`port_down`).
pub fn link_down(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    flap(env, &mut out, &AtomicBool::new(false), Flap::LinkDown)?;
    Ok(out)
}

/// The victim's peer set down and up again: the switch-side end loses
/// and regains carrier (`no_carrier`).
pub fn carrier_off(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let v = &env.world.victims[0];
    // veth has no ndo_change_carrier: say so once instead of pretending.
    match env
        .world
        .switch
        .ip(&["link", "set", &v.port.name, "carrier", "off"])
    {
        Ok(_) => {
            out.note("`ip link set carrier off` accepted on the veth; carrier toggled through the peer anyway");
            let _ = env
                .world
                .switch
                .ip(&["link", "set", &v.port.name, "carrier", "on"]);
        }
        Err(e) => out.note(format!(
            "`ip link set carrier off` refused by veth ({}); carrier toggled by setting the peer down/up",
            e.detail.lines().last().unwrap_or("").trim()
        )),
    }
    flap(env, &mut out, &AtomicBool::new(false), Flap::PeerDown)?;
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flap {
    LinkDown,
    PeerDown,
}

/// Down/up cycles on victim 0 until the budget, the deadline or `stop`.
fn flap(
    env: &ScenarioEnv<'_>,
    out: &mut ScenarioOutcome,
    stop: &AtomicBool,
    how: Flap,
) -> Result<(), ChaosError> {
    let v = &env.world.victims[0];
    let name = v.port.name.as_str();
    let (ns, dev) = match how {
        Flap::LinkDown => (&env.world.switch, name),
        Flap::PeerDown => (&env.world.victim_ns, v.peer.as_str()),
    };
    let is_up = |r: &crate::mgmt::PortRow| match how {
        Flap::LinkDown => r.running,
        Flap::PeerDown => r.carrier,
    };
    let what = match how {
        Flap::LinkDown => ["not running", "running"],
        Flap::PeerDown => ["without carrier", "with carrier"],
    };
    let mut fed = 0u64;
    while env.go_on(out.cycles) && !stop.load(Ordering::Relaxed) {
        fed += u64::from(burst(env, 0));
        let cycle = (|| {
            let t = Instant::now();
            ns.ip(&["link", "set", dev, "down"])?;
            out.reaction
                .push(env.wait_port(name, t, Duration::from_secs(5), what[0], |r| !is_up(r))?);
            let t = Instant::now();
            ns.ip(&["link", "set", dev, "up"])?;
            out.recovery.push(
                env.wait_port(name, t, Duration::from_secs(5), what[1], |r| {
                    r.attached && is_up(r)
                })?,
            );
            Ok::<_, ChaosError>(())
        })();
        if !out.count_cycle(cycle) {
            break;
        }
    }
    let rx0 = env.world.victim_rx(0);
    let resumed = victim_gets_traffic(env, 0, rx0, RESUME);
    out.check(
        "the victim was being output to before every flap",
        fed >= out.cycles,
        format!("traffic reached it before {fed} of {} flaps", out.cycles),
    );
    out.check(
        "forwards to the victim again after the last flap",
        resumed,
        if resumed {
            "traffic seen".to_string()
        } else {
            format!("nothing within {RESUME:?}")
        },
    );
    Ok(())
}

/// `ethtool -L` on a 4-queue victim under traffic: 4 → 2 → 4 → ...
pub fn queue_change(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let v = &env.world.victims[0];
    let name = v.port.name.as_str();
    let full = v.queues;
    let half = (full / 2).max(1);
    let mut refused = None;
    let mut xsk_refusals = 0u64;
    while env.go_on(out.cycles) {
        burst(env, 0);
        // The victim starts at `half` (World::create_victim).
        let n = if out.cycles % 2 == 0 { full } else { half };
        let ns = n.to_string();
        let t = Instant::now();
        let r = env
            .world
            .switch
            .run(&["ethtool", "-L", name, "rx", &ns, "tx", &ns]);
        if let Err(e) = r {
            if e.detail.contains("AF_XDP sockets") {
                // The kernel's rule, not the switch's: a queue with a
                // bound socket cannot be taken away. Happens if the daemon
                // re-opened the port (binding every queue) meanwhile.
                xsk_refusals += 1;
                break;
            }
            refused = Some(format!("ethtool -L {name} rx {n} tx {n}: {}", e.detail));
            break;
        }
        out.reaction.push(env.wait_port(
            name,
            t,
            Duration::from_secs(5),
            &format!("with {n} tx queues"),
            |r| r.attached && r.tx_queues == n,
        )?);
        out.cycles += 1;
    }
    let rx0 = env.world.victim_rx(0);
    let resumed = victim_gets_traffic(env, 0, rx0, RESUME);
    out.note(format!(
        "veth accepts `ethtool -L rx N tx N` for 1 <= N <= {full} (its numrxqueues/numtxqueues) with XDP attached, but refuses to remove a queue an AF_XDP socket (copy mode too) is bound to; the victim starts at {half} channels (the daemon binds those) and cycles {half} -> {full} -> {half}"
    ));
    if xsk_refusals > 0 {
        out.note(format!(
            "a shrink was refused because AF_XDP sockets were bound on the queues (the daemon had re-opened the port on {full} queues); stopped after {} cycles",
            out.cycles
        ));
    }
    out.check(
        "every queue change accepted by the driver",
        refused.is_none(),
        refused.unwrap_or_else(|| format!("{} changes", out.cycles)),
    );
    out.check(
        "forwards to the victim after the last change",
        resumed,
        if resumed {
            "traffic seen"
        } else {
            "no traffic"
        },
    );
    Ok(out)
}

/// Flows added and removed through the management socket as fast as it
/// answers, while another thread flaps the victim (link down/up).
/// One cycle = add a flow that matches the traffic (same outputs as the
/// base flow, higher priority) and one that does not, then delete both.
pub fn flow_churn(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let stop = AtomicBool::new(false);
    let w = env.world;
    let victims: Vec<u32> = w.victims.iter().map(|v| v.port.ofport).collect();
    let base = w.base_flow(&victims);
    // The same actions as the base flow, at a higher priority, so the
    // untouched port's traffic never depends on which rule matched.
    let over = base.replacen("priority=100", "priority=200", 1);
    let over_match = format!("priority=200,in_port={}", w.gen_port.ofport);
    let mut failures = 0u64;
    let mut first_failure = None;
    let mut flaps = ScenarioOutcome::default();
    std::thread::scope(|s| {
        let flapper = s.spawn(|| {
            let mut o = ScenarioOutcome::default();
            let r = flap(env, &mut o, &stop, Flap::LinkDown);
            (o, r)
        });
        let mut client = crate::mgmt::Client::connect(env.daemon.socket()).ok();
        while env.go_on(out.cycles) {
            let i = out.cycles;
            let other = format!(
                "priority=300,ip,nw_dst=10.99.{}.{},actions=drop",
                (i >> 8) & 0xff,
                i & 0xff
            );
            let other_match = format!(
                "priority=300,ip,nw_dst=10.99.{}.{}",
                (i >> 8) & 0xff,
                i & 0xff
            );
            let reqs = [
                Request::FlowAdd {
                    flows: over.clone(),
                },
                Request::FlowAdd { flows: other },
                Request::FlowDel {
                    filter: Some(over_match.clone()),
                    strict: true,
                },
                Request::FlowDel {
                    filter: Some(other_match),
                    strict: true,
                },
            ];
            for r in &reqs {
                let res = match client.as_mut() {
                    Some(c) => c.request(r).map_err(ChaosError::from),
                    None => env.request(r),
                };
                if let Err(e) = res {
                    failures += 1;
                    first_failure.get_or_insert_with(|| e.to_string());
                    client = crate::mgmt::Client::connect(env.daemon.socket()).ok();
                }
            }
            out.cycles += 1;
        }
        stop.store(true, Ordering::Relaxed);
        match flapper.join() {
            Ok((o, r)) => {
                flaps = o;
                if let Err(e) = r {
                    flaps.check("the concurrent link flaps ran", false, e.to_string());
                }
            }
            Err(_) => flaps.check("the concurrent link flaps ran", false, "panicked"),
        }
    });
    out.check(
        "every flow add/del answered ok",
        failures == 0,
        match &first_failure {
            None => format!("{} requests", out.cycles * 4),
            Some(e) => format!("{failures} failed; first: {e}"),
        },
    );
    let dump = env.request(&Request::FlowDump)?;
    let n = dump.result.as_array().map_or(0, Vec::len);
    out.check(
        "only the base flow is left",
        n == 1,
        format!("{n} flows in the table"),
    );
    out.note(format!(
        "{} link down/up flaps of the victim ran alongside",
        flaps.cycles
    ));
    out.reaction = flaps.reaction;
    out.recovery = flaps.recovery;
    out.checks.extend(flaps.checks);
    Ok(out)
}

/// The XDP programs attached to the switch ports now, as (port, program
/// name) pairs.
fn programs_left(env: &ScenarioEnv<'_>) -> Result<Vec<(String, String)>, ChaosError> {
    let names: Vec<String> = env
        .world
        .port_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let ns = env.world.switch.name().to_string();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _in = NetnsGuard::enter(&ns)?;
            let mut left = Vec::new();
            for n in &names {
                let idx = ifindex_of(n)?;
                if let Some(p) = xswitch_bpf::port::attached_program(idx)
                    .map_err(|e| ChaosError::Traffic(e.to_string()))?
                {
                    left.push((n.clone(), p.name));
                }
            }
            Ok(left)
        })
        .join()
        .map_err(|_| ChaosError::Scenario("the XDP query thread panicked".into()))?
    })
}

/// AF_XDP sockets open in the switch namespace (`ss --xdp`), or `None`
/// when `ss` cannot list them here.
fn xdp_sockets(env: &ScenarioEnv<'_>) -> Option<usize> {
    let out = env.world.switch.output(&["ss", "-a", "--xdp"]).ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count(),
    )
}

/// SIGKILL the daemon under traffic: no XDP program and no AF_XDP socket
/// may stay behind; restarted, it must forward again.
pub fn kill_restart(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError> {
    let mut out = ScenarioOutcome::default();
    let mut leftovers = Vec::new();
    let mut sockets_left = 0usize;
    let mut ss_works = true;
    let mut resumed = 0u64;
    while env.go_on(out.cycles) {
        burst(env, 0);
        let live_sockets = xdp_sockets(env);
        env.traffic.outage(true);
        env.daemon.kill_hard();
        for (port, prog) in programs_left(env)? {
            leftovers.push(format!("{port}: {prog}"));
        }
        // `ss --xdp` needs the xsk_diag module; it proves nothing unless
        // it saw the live daemon's sockets.
        match (live_sockets, xdp_sockets(env)) {
            (Some(live), Some(n)) if live > 0 => sockets_left += n,
            _ => ss_works = false,
        }
        let t = Instant::now();
        env.daemon.restart()?;
        env.route_to(
            &env.world
                .victims
                .iter()
                .map(|v| v.port.ofport)
                .collect::<Vec<_>>(),
        )?;
        if env
            .traffic
            .wait_forwarding(Duration::from_secs(5))
            .is_some()
        {
            resumed += 1;
            out.recovery.push(t.elapsed());
        }
        env.traffic.outage(false);
        out.cycles += 1;
    }
    out.check(
        "no XDP program left on any port after SIGKILL",
        leftovers.is_empty(),
        if leftovers.is_empty() {
            format!(
                "checked {} ports x {} kills",
                env.world.port_names().len(),
                out.cycles
            )
        } else {
            leftovers.join(", ")
        },
    );
    if ss_works {
        out.check(
            "no AF_XDP socket left after SIGKILL",
            sockets_left == 0,
            format!("{sockets_left} sockets seen by `ss --xdp`"),
        );
    } else {
        out.note("`ss --xdp` lists no AF_XDP socket here even for the live daemon (no xsk_diag module): socket leftovers are not checked directly; the daemon is reaped (its fds closed) and no port has an XDP program (the XSKMAP goes with it)");
    }
    out.check(
        "forwarding resumes after every restart",
        resumed == out.cycles,
        format!("{resumed} of {} restarts forwarded within 5 s", out.cycles),
    );
    out.note("daemon RSS and counters restart with each process: RSS growth is measured on the last process only");
    Ok(out)
}
