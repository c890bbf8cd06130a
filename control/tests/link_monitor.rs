//! The link monitor against the real kernel: each test makes a fresh
//! network namespace, opens a [`LinkMonitor`] inside it (from a thread that
//! `setns`es there: the socket stays in the namespace it was created in),
//! changes links with `ip`/`ethtool`, and checks the events that come back
//! — and how fast. Needs root; without it each test says so and passes.
//!
//! Latencies are measured from the return of the `ip` command that made
//! the change to the return of the `next_events` call that delivered the
//! event (0 when the event was already queued), and printed (`--nocapture`).

use control::monitor::{LinkEvent, LinkMonitor, LinkState, MonitorConfig, OperState};
use control::topo::{have_privileges, Netns, Side, Veth, VethOpts};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The acceptance bound for carrier and deletion events (issue 5).
const FAST: Duration = Duration::from_millis(100);
/// How long any test waits for an event before failing.
const PATIENCE: Duration = Duration::from_secs(5);

fn netns_path(ns: &Netns) -> PathBuf {
    PathBuf::from(format!("/run/netns/{}", ns.name()))
}

/// A monitor plus the events it delivered that no test step has claimed
/// yet (one read often returns events for several interfaces).
struct Watch {
    mon: LinkMonitor,
    backlog: Vec<(LinkEvent, Instant)>,
}

impl Watch {
    /// Claims the first event satisfying `want`, reading more as needed;
    /// returns it with the instant the `next_events` call that delivered
    /// it returned. Panics after [`PATIENCE`] with everything unclaimed.
    fn wait_for(&mut self, what: &str, want: impl Fn(&LinkEvent) -> bool) -> (LinkEvent, Instant) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.backlog.iter().position(|(e, _)| want(e)) {
                return self.backlog.remove(i);
            }
            if Instant::now() >= deadline {
                panic!(
                    "no event '{what}' within {PATIENCE:?}; saw {:#?}",
                    self.backlog
                );
            }
            let evs = self.mon.next_events(Duration::from_millis(50)).unwrap();
            let at = Instant::now();
            self.backlog.extend(evs.into_iter().map(|e| (e, at)));
        }
    }

    /// Forgets every event delivered so far (and reads what is queued).
    fn settle(&mut self) {
        let _ = self.mon.next_events(Duration::from_millis(50)).unwrap();
        self.backlog.clear();
    }

    fn ifindex_of(&mut self, name: &str) -> u32 {
        self.mon
            .dump()
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not in dump"))
            .ifindex
    }
}

/// A namespace with a monitor inside, or `None` (and a message) when the
/// test cannot run here.
fn monitored(cfg: MonitorConfig) -> Option<(Netns, Watch)> {
    if !have_privileges() {
        eprintln!("skipped: needs root (network namespaces)");
        return None;
    }
    let ns = Netns::create("lmon").expect("create namespace");
    let mon = LinkMonitor::open_in(&netns_path(&ns), cfg).expect("open monitor in namespace");
    let mut w = Watch {
        mon,
        backlog: Vec::new(),
    };
    // `lo` going up while the namespace was made may still be queued.
    w.settle();
    Some((ns, w))
}

fn changed(e: &LinkEvent, name: &str) -> Option<LinkState> {
    match e {
        LinkEvent::Changed(s) if s.name == name => Some(s.clone()),
        _ => None,
    }
}

fn latency(done: Instant, at: Instant) -> Duration {
    at.saturating_duration_since(done)
}

fn pair_in(ns: &Netns, opts: VethOpts) -> Veth {
    Veth::create("lma", Side::In(ns), "lmb", Side::In(ns), opts).expect("create veth")
}

#[test]
fn veth_creation_reports_both_ends_up_with_carrier() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let v = pair_in(&ns, VethOpts::default());
    for end in [v.a(), v.b()] {
        let (e, _) = w.wait_for("end up with carrier", |e| {
            changed(e, end).is_some_and(|s| s.admin_up && s.carrier && s.running)
        });
        let s = changed(&e, end).unwrap();
        assert!(s.ifindex > 0);
        assert_eq!(s.mtu, 1500);
        assert_eq!(s.oper_state, OperState::Up);
        assert_eq!(s.tx_queues, 1);
    }
}

#[test]
fn peer_down_clears_carrier_within_100ms_and_peer_up_restores_it() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let v = pair_in(&ns, VethOpts::default());
    w.wait_for("a has carrier", |e| {
        changed(e, v.a()).is_some_and(|s| s.carrier)
    });
    w.settle();

    // Ten rounds: every event within the bound; the spread is printed.
    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        ns.ip(&["link", "set", v.b(), "down"]).unwrap();
        let done = Instant::now();
        let (e, at) = w.wait_for("a loses carrier", |e| {
            changed(e, v.a()).is_some_and(|s| !s.carrier)
        });
        let s = changed(&e, v.a()).unwrap();
        assert!(s.admin_up, "a itself stays admin up");
        assert!(!s.running);
        assert_eq!(s.oper_state, OperState::LowerLayerDown);
        offs.push(latency(done, at));

        ns.ip(&["link", "set", v.b(), "up"]).unwrap();
        let done = Instant::now();
        let (_, at) = w.wait_for("a regains carrier", |e| {
            changed(e, v.a()).is_some_and(|s| s.carrier && s.running)
        });
        ons.push(latency(done, at));
        w.settle();
    }
    for (what, l) in [("carrier off", &mut offs), ("carrier on", &mut ons)] {
        l.sort();
        println!(
            "{what}: event {:?} median, {:?} max after `ip link set peer` returned (10 rounds)",
            l[l.len() / 2],
            l[l.len() - 1]
        );
        assert!(l[l.len() - 1] < FAST, "{what} took {l:?}");
    }
}

#[test]
fn ip_link_del_reports_both_ends_deleted_within_100ms() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let v = pair_in(&ns, VethOpts::default());
    let (ia, ib) = (w.ifindex_of(v.a()), w.ifindex_of(v.b()));
    let start = Instant::now();
    ns.ip(&["link", "del", v.a()]).unwrap();
    let done = Instant::now();
    let (e, at) = w.wait_for(
        "a deleted",
        |e| matches!(e, LinkEvent::Deleted { ifindex, .. } if *ifindex == ia),
    );
    assert_eq!(
        e,
        LinkEvent::Deleted {
            ifindex: ia,
            name: v.a().to_string()
        }
    );
    let d = latency(done, at);
    println!(
        "deleted: {d:?} after `ip link del` returned ({:?} after it started)",
        at - start
    );
    assert!(d < FAST, "deletion event took {d:?}");
    w.wait_for(
        "b deleted",
        |e| matches!(e, LinkEvent::Deleted { ifindex, .. } if *ifindex == ib),
    );
    assert!(w
        .mon
        .dump()
        .unwrap()
        .iter()
        .all(|s| s.ifindex != ia && s.ifindex != ib));
}

#[test]
fn rename_reports_the_new_name_with_the_same_ifindex() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let v = pair_in(&ns, VethOpts::default());
    let ia = w.ifindex_of(v.a());
    let new = control::topo::unique_name("lmren");
    // Live rename (the interface stays up).
    ns.ip(&["link", "set", v.a(), "name", &new]).unwrap();
    let (e, _) = w.wait_for("renamed", |e| changed(e, &new).is_some());
    let s = changed(&e, &new).unwrap();
    assert_eq!(s.ifindex, ia);
    assert!(s.admin_up && s.carrier);
    // Not a deletion: nothing says ia went away.
    let evs = w.mon.next_events(Duration::from_millis(50)).unwrap();
    assert!(
        !evs.iter()
            .any(|e| matches!(e, LinkEvent::Deleted { ifindex, .. } if *ifindex == ia)),
        "{evs:?}"
    );
    // (The namespace's deletion removes the renamed pair.)
}

#[test]
fn deleting_the_namespace_of_the_peer_deletes_our_end() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let other = Netns::create("lmoth").unwrap();
    let v = Veth::create(
        "lma",
        Side::In(&ns),
        "lmb",
        Side::In(&other),
        VethOpts::default(),
    )
    .unwrap();
    let ia = w.ifindex_of(v.a());
    let start = Instant::now();
    other.delete().unwrap();
    let done = Instant::now();
    let (e, at) = w.wait_for(
        "our end deleted",
        |e| matches!(e, LinkEvent::Deleted { ifindex, .. } if *ifindex == ia),
    );
    assert_eq!(
        e,
        LinkEvent::Deleted {
            ifindex: ia,
            name: v.a().to_string()
        }
    );
    // Namespace teardown runs in the kernel's cleanup_net work after
    // `ip netns del` returns: printed, not bounded by FAST.
    println!(
        "peer namespace deleted: our end's RTM_DELLINK {:?} after `ip netns del` returned ({:?} after it started)",
        latency(done, at),
        at - start
    );
}

#[test]
fn interface_moved_to_another_namespace_is_a_deletion_here() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let other = Netns::create("lmoth").unwrap();
    let v = pair_in(&ns, VethOpts::default());
    let ia = w.ifindex_of(v.a());
    ns.ip(&["link", "set", v.a(), "netns", other.name()])
        .unwrap();
    let (e, _) = w.wait_for(
        "a left",
        |e| matches!(e, LinkEvent::Deleted { ifindex, .. } if *ifindex == ia),
    );
    assert_eq!(
        e,
        LinkEvent::Deleted {
            ifindex: ia,
            name: v.a().to_string()
        }
    );
    // It lives on over there; moving closed it, so b (still here) lost
    // its carrier.
    other.ip(&["link", "show", v.a()]).unwrap();
    w.wait_for("b loses carrier", |e| {
        changed(e, v.b()).is_some_and(|s| !s.carrier)
    });
}

#[test]
fn changes_in_another_namespace_are_not_reported() {
    let Some((_ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let other = Netns::create("lmoth").unwrap();
    let v = Veth::create(
        "lma",
        Side::In(&other),
        "lmb",
        Side::In(&other),
        VethOpts::default(),
    )
    .unwrap();
    other.ip(&["link", "set", v.b(), "down"]).unwrap();
    let evs = w.mon.next_events(Duration::from_millis(200)).unwrap();
    assert!(evs.is_empty(), "events from another namespace: {evs:?}");
}

#[test]
fn ethtool_channel_change_reports_new_tx_queue_count() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    if ns.output(&["ethtool", "--version"]).is_err() {
        eprintln!("skipped: ethtool not installed");
        return;
    }
    assert!(w.mon.ethtool_queues(), "kernel has ethtool netlink");
    let v = pair_in(
        &ns,
        VethOpts {
            queues: 4,
            mtu: None,
        },
    );
    let a = w
        .mon
        .dump()
        .unwrap()
        .into_iter()
        .find(|s| s.name == v.a())
        .unwrap();
    assert_eq!((a.tx_queues, a.rx_queues), (4, 4));
    ns.run(&["ethtool", "-L", v.a(), "tx", "2"]).unwrap();
    let (e, _) = w.wait_for("a with 2 tx queues", |e| {
        changed(e, v.a()).is_some_and(|s| s.tx_queues == 2)
    });
    let s = changed(&e, v.a()).unwrap();
    assert_eq!(s.rx_queues, 4, "only tx changed");
    ns.run(&["ethtool", "-L", v.a(), "rx", "1"]).unwrap();
    w.wait_for("a with 1 rx queue", |e| {
        changed(e, v.a()).is_some_and(|s| s.rx_queues == 1 && s.tx_queues == 2)
    });
    // Without ethtool the monitor reports the allocated count, which
    // `ethtool -L` does not move.
    let mut plain = LinkMonitor::open_in(
        &netns_path(&ns),
        MonitorConfig {
            ethtool_queues: false,
            ..MonitorConfig::default()
        },
    )
    .unwrap();
    let a = plain
        .dump()
        .unwrap()
        .into_iter()
        .find(|s| s.name == v.a())
        .unwrap();
    assert_eq!(a.tx_queues, 4);
}

/// `ip -j link show` in `ns`: (ifindex, name, up, lower_up, mtu, operstate).
fn ip_link_view(ns: &Netns) -> Vec<(u32, String, bool, bool, u32, String)> {
    let out = ns.ip(&["-j", "link", "show"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut rows: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f.as_str())
                .collect();
            (
                l["ifindex"].as_u64().unwrap() as u32,
                l["ifname"].as_str().unwrap().to_string(),
                flags.contains(&"UP"),
                flags.contains(&"LOWER_UP"),
                l["mtu"].as_u64().unwrap() as u32,
                l["operstate"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn overrun_of_a_tiny_buffer_yields_resync_and_dump_matches_ip_link() {
    // The smallest buffer the kernel allows holds about one notification.
    let Some((ns, mut w)) = monitored(MonitorConfig {
        rcvbuf_bytes: 0,
        ethtool_queues: false,
    }) else {
        return;
    };
    println!("tiny receive buffer: {} bytes", w.mon.rcvbuf());
    let v = pair_in(&ns, VethOpts::default());
    // A burst of changes while nobody reads: one `ip -batch` process.
    let mut batch = String::new();
    for i in 0..20 {
        let dir = if i % 2 == 0 { "down" } else { "up" };
        batch.push_str(&format!("link set {} {dir}\n", v.b()));
        batch.push_str(&format!("link set {} mtu {}\n", v.a(), 1400 + i));
    }
    batch.push_str(&format!("link set {} mtu 1234\n", v.a()));
    let file = std::env::temp_dir().join(format!("{}.batch", control::topo::unique_name("lmbat")));
    std::fs::write(&file, batch).unwrap();
    let r = ns.ip(&["-batch", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    r.unwrap();

    let evs = w.mon.next_events(Duration::from_millis(100)).unwrap();
    assert_eq!(
        evs.first(),
        Some(&LinkEvent::Resync),
        "overrun must come first, replacing what was read before it: {evs:?}"
    );
    assert!(w.mon.stats().overruns >= 1);

    let dump = w.mon.dump().unwrap();
    let mut mine: Vec<_> = dump
        .iter()
        .map(|s| {
            (
                s.ifindex,
                s.name.clone(),
                s.admin_up,
                s.carrier,
                s.mtu,
                s.oper_state.to_string(),
            )
        })
        .collect();
    mine.sort();
    assert_eq!(mine, ip_link_view(&ns));
    assert!(dump.iter().any(|s| s.name == v.a() && s.mtu == 1234));

    // The monitor keeps working after the overrun and the dump. Two
    // notifications (b down, a's carrier) may overflow this buffer again:
    // then it says so, and a dump shows the change.
    ns.ip(&["link", "set", v.b(), "down"]).unwrap();
    let (e, _) = w.wait_for("a loses carrier, or another resync", |e| {
        matches!(e, LinkEvent::Resync) || changed(e, v.a()).is_some_and(|s| !s.carrier)
    });
    if e == LinkEvent::Resync {
        let a = w
            .mon
            .dump()
            .unwrap()
            .into_iter()
            .find(|s| s.name == v.a())
            .unwrap();
        assert!(!a.carrier);
    }
}

#[test]
fn dump_matches_ip_link_with_many_interfaces() {
    let Some((ns, mut w)) = monitored(MonitorConfig::default()) else {
        return;
    };
    let pairs: Vec<Veth> = (0..8).map(|_| pair_in(&ns, VethOpts::default())).collect();
    ns.ip(&["link", "set", pairs[3].b(), "down"]).unwrap();
    let dump = w.mon.dump().unwrap();
    let mut mine: Vec<_> = dump
        .iter()
        .map(|s| {
            (
                s.ifindex,
                s.name.clone(),
                s.admin_up,
                s.carrier,
                s.mtu,
                s.oper_state.to_string(),
            )
        })
        .collect();
    mine.sort();
    assert_eq!(mine, ip_link_view(&ns));
    assert_eq!(dump.len(), 1 + 2 * pairs.len());
}
