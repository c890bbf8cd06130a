//! Daemon core tests on in-memory ports (no privileges needed).

use super::*;
use crate::monitor::OperState;
use dataplane::vport::afxdp::LinkInfo;
use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
use std::collections::BTreeMap as Map;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fake kernel: interfaces by name → ifindex; opening one makes a
/// memory port. `gate`: when set, `open` waits for a message first.
#[derive(Default)]
struct FakeLinks {
    links: Mutex<Map<String, u32>>,
    gate: Mutex<Option<(Sender<()>, Receiver<()>)>>,
}

struct FakeOpener(Arc<FakeLinks>);

impl PortOpener for FakeOpener {
    fn open(&self, ifname: &str, _mode: XdpMode) -> Result<OpenedDevice, AttachError> {
        if let Some((entered, go)) = &*self.0.gate.lock().unwrap() {
            entered.send(()).unwrap();
            go.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        let Some(&ifindex) = self.0.links.lock().unwrap().get(ifname) else {
            return Err(AttachError::NoDevice(format!(
                "no such network interface: {ifname:?}"
            )));
        };
        Ok(OpenedDevice {
            vport: Arc::new(MemoryPort::new(MemoryPortConfig::new(ifname))),
            link: LinkInfo {
                name: ifname.into(),
                ifindex,
                mtu: 1500,
                rx_queues: 1,
                tx_queues: 1,
                admin_up: true,
                running: true,
                carrier: true,
            },
            afxdp: None,
        })
    }
}

fn setup(names: &[&str]) -> (Arc<Daemon>, Arc<FakeLinks>) {
    let links = Arc::new(FakeLinks::default());
    for (i, n) in names.iter().enumerate() {
        links
            .links
            .lock()
            .unwrap()
            .insert(n.to_string(), 10 + i as u32);
    }
    let d = Daemon::new(
        Arc::new(Datapath::new()),
        Box::new(FakeOpener(links.clone())),
        XdpMode::Auto,
    );
    (Arc::new(d), links)
}

fn state(name: &str, ifindex: u32, carrier: bool) -> LinkState {
    LinkState {
        ifindex,
        name: name.into(),
        admin_up: true,
        running: carrier,
        carrier,
        tx_queues: 1,
        rx_queues: 1,
        mtu: 1500,
        oper_state: OperState::Up,
    }
}

#[test]
fn port_add_takes_the_lowest_free_ofport_or_the_one_asked_for() {
    let (d, _) = setup(&["a0", "b0", "c0"]);
    assert_eq!(d.port_add("a0", None, Some(5)).unwrap().ofport, 5);
    assert_eq!(d.port_add("b0", None, None).unwrap().ofport, 1);
    assert_eq!(d.port_add("c0", None, None).unwrap().ofport, 2);
    let names: Vec<(u32, String)> = d
        .port_list()
        .into_iter()
        .map(|r| (r.ofport, r.name))
        .collect();
    assert_eq!(
        names,
        vec![(1, "b0".into()), (2, "c0".into()), (5, "a0".into())]
    );
    assert_eq!(d.datapath().port_list().len(), 3);
}

#[test]
fn bad_port_adds_are_refused_and_change_nothing() {
    let (d, _) = setup(&["a0", "b0"]);
    d.port_add("a0", None, Some(1)).unwrap();
    let e = d.port_add("nosuch0", None, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot add port nosuch0: no such network interface: \"nosuch0\""
    );
    let e = d.port_add("a0", None, None).unwrap_err();
    assert_eq!(e.to_string(), "interface a0 is already port 1");
    let e = d.port_add("b0", None, Some(1)).unwrap_err();
    assert_eq!(e.to_string(), "ofport 1 is already in use by a0");
    let e = d.port_add("b0", None, Some(0)).unwrap_err();
    assert!(matches!(e, DaemonError::InvalidOfport(0)), "{e}");
    let e = d.port_add("bad/name", None, None).unwrap_err();
    assert!(matches!(e, DaemonError::InvalidName(_)), "{e}");
    let rows = d.port_list();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].attached);
    assert_eq!(d.datapath().port_list().len(), 1);
}

#[test]
fn port_del_by_name_or_number_and_unknown_ports_refused() {
    let (d, _) = setup(&["a0", "b0"]);
    d.port_add("a0", None, None).unwrap();
    d.port_add("b0", None, None).unwrap();
    assert_eq!(d.port_del("2").unwrap().name, "b0");
    assert_eq!(d.port_del("a0").unwrap().ofport, 1);
    let e = d.port_del("a0").unwrap_err();
    assert_eq!(e.to_string(), "no port named or numbered \"a0\"");
    assert!(d.port_list().is_empty());
    assert!(d.datapath().port_list().is_empty());
}

#[test]
fn a_flow_file_with_a_bad_line_installs_nothing_and_names_line_and_token() {
    let (d, _) = setup(&["a0", "b0"]);
    d.port_add("a0", None, None).unwrap();
    d.port_add("b0", None, None).unwrap();
    let file = "# two good flows, then a bad one\n\
                priority=10,in_port=a0,actions=output:b0\n\
                \n\
                priority=10,in_port=b0,actions=output:a0\n\
                ip,nw_dst=10.0.0.300,actions=drop\n";
    let e = d.flow_add(file).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("line 5: "), "{msg}");
    assert!(msg.contains("\"nw_dst=10.0.0.300\""), "{msg}");
    assert!(d.datapath().flow_table().is_empty());
    // Without the bad line every flow goes in, names resolved to ofports.
    let good: String = file.lines().take(4).collect::<Vec<_>>().join("\n");
    assert_eq!(d.flow_add(&good).unwrap(), 2);
    let dump = d.flow_dump();
    assert_eq!(dump.len(), 2);
    assert!(dump
        .iter()
        .any(|f| f.matcher == "in_port=1" && f.actions == "output:2"));
}

#[test]
fn a_single_bad_flow_points_at_its_token_without_a_line_number() {
    let (d, _) = setup(&[]);
    let e = d
        .flow_add("priority=5,in_port=1,nw_ttl=x,actions=drop")
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("bad flow at col"), "{msg}");
    assert!(msg.contains("nw_ttl"), "{msg}");
    assert!(matches!(
        d.flow_add("# only a comment\n\n"),
        Err(DaemonError::NoFlows)
    ));
}

#[test]
fn flow_del_loose_and_strict() {
    let (d, _) = setup(&[]);
    d.flow_add(
        "priority=100,in_port=1,actions=output:2\n\
         priority=200,in_port=1,actions=output:3\n\
         priority=100,in_port=2,actions=output:1",
    )
    .unwrap();
    // Strict: exact match and priority (default 32768 would select none).
    assert_eq!(d.flow_del(Some("in_port=1"), true).unwrap(), 0);
    assert_eq!(d.flow_del(Some("priority=200,in_port=1"), true).unwrap(), 1);
    assert_eq!(d.flow_del(Some("in_port=1"), false).unwrap(), 1);
    assert_eq!(d.flow_dump().len(), 1);
    assert_eq!(d.flow_del(None, false).unwrap(), 1);
    assert!(d.flow_dump().is_empty());
    assert!(d.flow_del(Some("in_port=1,actions=drop"), false).is_err());
}

#[test]
fn flow_add_completes_while_a_port_add_holds_config() {
    let (d, links) = setup(&["a0", "slow0"]);
    d.port_add("a0", None, None).unwrap();
    let (entered_tx, entered_rx) = channel();
    let (go_tx, go_rx) = channel();
    *links.gate.lock().unwrap() = Some((entered_tx, go_rx));
    let d2 = d.clone();
    let adder = std::thread::spawn(move || d2.port_add("slow0", None, None));
    // The adder is inside `open`, holding `config`.
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    let n = d.flow_add("priority=1,in_port=a0,actions=drop").unwrap();
    let took = t.elapsed();
    assert_eq!(n, 1);
    assert_eq!(d.datapath().flow_table().len(), 1);
    // Port reads do not wait either.
    assert_eq!(d.port_list().len(), 1);
    assert!(d.trace("in_port=1").is_ok());
    go_tx.send(()).unwrap();
    *links.gate.lock().unwrap() = None;
    assert_eq!(adder.join().unwrap().unwrap().ofport, 2);
    assert!(took < Duration::from_secs(5), "flow_add waited {took:?}");
}

#[test]
fn trace_reports_rule_outputs_and_the_state_check_that_drops() {
    let (d, _) = setup(&["a0", "b0", "c0"]);
    for n in ["a0", "b0", "c0"] {
        d.port_add(n, None, None).unwrap();
    }
    d.flow_add("priority=100,in_port=1,actions=output:3")
        .unwrap();
    let t = d.trace("in_port=1").unwrap();
    assert_eq!(
        t.rule.as_deref(),
        Some("priority=100,in_port=1,actions=output:3")
    );
    assert_eq!(t.actions, vec!["output:3".to_string()]);
    assert_eq!(t.outputs, vec![3]);
    assert_eq!(t.dropped, None);
    // Carrier lost on c0 (ifindex 12): the same packet is dropped.
    d.on_link_event(&LinkEvent::Changed(state("c0", 12, false)));
    let t = d.trace("in_port=1").unwrap();
    assert!(t.outputs.is_empty());
    assert_eq!(t.dropped.as_deref(), Some("no_carrier"));
    let text = render::trace("in_port=1", &t, false);
    assert!(
        text.trim_end().ends_with("output:3 → dropped: no_carrier"),
        "{text}"
    );
    // Bad syntax points at the token.
    let e = d.trace("in_port=1,nw_src=1.2.3.4").unwrap_err();
    assert!(e.to_string().contains("nw_src"), "{e}");
}

#[test]
fn link_events_update_remove_and_reattach_a_port() {
    let (d, links) = setup(&["a0"]);
    d.port_add("a0", None, None).unwrap();
    d.on_link_event(&LinkEvent::Changed(state("a0", 10, false)));
    // IFF_RUNNING went with the carrier; the datapath's `running` (the
    // device is open) did not: output drops as no_carrier.
    let info = &d.datapath().port_list()[0];
    assert!(!info.carrier && info.running && info.admin_up);
    // Deleted: gone from the datapath, still configured.
    d.on_link_event(&LinkEvent::Deleted {
        ifindex: 10,
        name: "a0".into(),
    });
    assert!(d.datapath().port_list().is_empty());
    let rows = d.port_list();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].attached);
    // Re-created with another ifindex: re-attached under ofport 1.
    links.links.lock().unwrap().insert("a0".into(), 99);
    d.on_link_event(&LinkEvent::Changed(state("a0", 99, true)));
    let rows = d.port_list();
    assert!(rows[0].attached, "{rows:?}");
    assert_eq!(rows[0].ifindex, Some(99));
    assert_eq!(d.datapath().port_list()[0].ofport, 1);
}

#[test]
fn a_configured_port_waits_for_its_interface_and_a_rename_is_followed() {
    let (d, links) = setup(&[]);
    assert_eq!(d.port_configure("late0", None, None).unwrap(), 1);
    let rows = d.port_list();
    assert!(!rows[0].attached);
    assert!(rows[0]
        .error
        .as_deref()
        .unwrap()
        .contains("no such network interface"));
    links.links.lock().unwrap().insert("late0".into(), 7);
    d.resync(&[state("late0", 7, true)]);
    assert!(d.port_list()[0].attached);
    d.on_link_event(&LinkEvent::Changed(state("new0", 7, true)));
    assert_eq!(d.port_list()[0].name, "new0");
    assert_eq!(d.stats().ports[0].name, "new0");
    // Flows may name the port by its new name.
    d.flow_add("in_port=new0,actions=drop").unwrap();
}

#[test]
fn the_handler_answers_every_request_and_refuses_bad_ones() {
    let (d, _) = setup(&["a0"]);
    let ok = |r: Request| d.handle(r).unwrap();
    assert_eq!(
        ok(Request::PortAdd {
            ifname: "a0".into(),
            mode: Some("generic".into()),
            ofport: None
        })
        .result["ofport"],
        1
    );
    assert!(d
        .handle(Request::PortAdd {
            ifname: "a0".into(),
            mode: Some("turbo".into()),
            ofport: None
        })
        .unwrap_err()
        .contains("invalid mode \"turbo\""));
    let list = ok(Request::PortList);
    assert_eq!(list.result[0]["mode"], "generic");
    assert!(list.text.contains("a0"));
    assert_eq!(
        ok(Request::FlowAdd {
            flows: "actions=normal".into()
        })
        .result["added"],
        1
    );
    assert!(ok(Request::FlowDump).text.contains("actions=NORMAL"));
    let st = ok(Request::Stats).result;
    for k in [
        "name",
        "ofport",
        "rx_packets",
        "tx_packets",
        "rx_bytes",
        "tx_bytes",
        "drops",
        "state",
    ] {
        assert!(st["ports"][0].get(k).is_some(), "stats port lacks {k}");
    }
    assert!(st["watchdog"].get("stalls").is_some());
    let tr = ok(Request::Trace {
        flow: "in_port=1".into(),
    })
    .result;
    for k in ["rule", "actions", "outputs", "dropped"] {
        assert!(tr.get(k).is_some(), "trace lacks {k}");
    }
    assert!(ok(Request::FdbShow).text.starts_with(" port  VLAN"));
    assert_eq!(
        ok(Request::FlowDel {
            filter: None,
            strict: false
        })
        .result["deleted"],
        1
    );
    assert!(d.handle(Request::PortDel { port: "zz".into() }).is_err());
}

#[test]
fn a_port_the_datapath_deleted_by_itself_is_reattached_at_the_next_resync() {
    // The datapath deletes a port on its own when a PMD's send finds the
    // device gone (ENETDOWN while the carrier drops). If the carrier
    // comes back before that report is handled, no later link event
    // names the port: the watcher sees it lost and resyncs.
    let (d, _) = setup(&["a0", "b0"]);
    d.port_add("a0", None, None).unwrap();
    d.port_add("b0", None, None).unwrap();
    assert!(!d.has_lost_ports());
    d.datapath().del_port(1).unwrap();
    assert!(d.has_lost_ports());
    // Nothing changed in the kernel's view: the dump alone re-attaches.
    d.resync(&[state("a0", 10, true), state("b0", 11, true)]);
    assert!(!d.has_lost_ports());
    let ofports: Vec<_> = d.datapath().port_list().iter().map(|p| p.ofport).collect();
    assert_eq!(ofports, [1, 2]);
    assert!(d.port_list().iter().all(|r| r.attached));
    // Lost, and its interface gone from the dump: detached, not re-opened.
    d.datapath().del_port(2).unwrap();
    d.resync(&[state("a0", 10, true)]);
    assert!(!d.has_lost_ports());
    let rows = d.port_list();
    assert!(rows[0].attached && !rows[1].attached, "{rows:?}");
}
