//! Every client subcommand of the `xswitch` CLI against a real daemon in
//! its own namespace: its happy path and at least one bad input, each bad
//! input a one-line error with a non-zero exit that loses nothing already
//! configured. Needs root (namespaces, XDP); without it each test says so
//! and passes.

mod xswitchd;

use control::topo::Netns;
use serde_json::Value;
use xswitchd::{cli_at, privileged, socket_for_test, Host, Switchd};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn no_daemon_is_one_line_naming_the_socket_and_exit_1() {
    let sock = socket_for_test();
    for args in [
        &["stats"][..],
        &["port", "list"],
        &["flow", "dump"],
        &["trace", "in_port=1"],
    ] {
        let o = cli_at(&sock, args);
        assert_eq!(o.code, Some(1), "{args:?}: {o:?}");
        assert_eq!(
            o.stderr,
            format!(
                "xswitch: no daemon listening on {} (start one with `xswitch run`)\n",
                sock.display()
            )
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn a_second_daemon_on_a_socket_in_use_is_refused_and_the_first_keeps_serving() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let d = Switchd::start(&sw, &[]);
    let (code, err) = Switchd::spawn(&sw, &d.socket, &[]).wait_exit();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.lines().any(|l| l
            == format!(
                "xswitch: another xswitch daemon is listening on {}",
                d.socket.display()
            )),
        "{err}"
    );
    // The first daemon still serves; a clean stop removes the socket.
    assert!(d.ok(&["port", "list"]).starts_with("ofport"));
    let sock = d.socket.clone();
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
    assert!(!sock.exists(), "socket file removed on exit");
}

#[test]
fn port_add_list_del_and_their_bad_inputs() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    let h2 = Host::create(&sw, 2);
    let d = Switchd::start(&sw, &[]);
    let out = d.ok(&["port", "add", h1.port()]);
    assert_eq!(
        out.trim(),
        format!("added port {} as ofport 1 (xdp native)", h1.port())
    );
    d.ok(&[
        "port",
        "add",
        h2.port(),
        "--mode",
        "generic",
        "--ofport",
        "7",
    ]);
    // Bad inputs: one line each, nothing lost.
    let e = d.fails(&["port", "add", "nosuch0"]);
    assert_eq!(
        e,
        "xswitch: cannot add port nosuch0: no such network interface: \"nosuch0\""
    );
    let e = d.fails(&["port", "add", h1.port()]);
    assert_eq!(
        e,
        format!("xswitch: interface {} is already port 1", h1.port())
    );
    let e = d.fails(&["port", "add", "lo", "--mode", "turbo"]);
    assert!(e.contains("invalid mode \"turbo\""), "{e}");
    let e = d.fails(&["port", "del", "nosuch0"]);
    assert_eq!(e, "xswitch: no port named or numbered \"nosuch0\"");
    let list = json(&d.ok(&["port", "list", "--json"]));
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list:#}");
    assert_eq!(rows[0]["name"], h1.port());
    assert_eq!(rows[0]["xdp"], "native");
    assert_eq!(rows[1]["ofport"], 7);
    assert_eq!(rows[1]["xdp"], "generic");
    assert!(rows
        .iter()
        .all(|r| r["attached"] == true && r["carrier"] == true));
    let text = d.ok(&["port", "list"]);
    assert!(text.lines().nth(2).unwrap().contains(h2.port()), "{text}");
    // Delete by number, then by name.
    assert_eq!(
        d.ok(&["port", "del", "7"]).trim(),
        format!("deleted port {} (ofport 7)", h2.port())
    );
    d.ok(&["port", "del", h1.port()]);
    assert_eq!(
        json(&d.ok(&["port", "list", "--json"])),
        Value::Array(vec![])
    );
    // The program is detached from a deleted port once the grace period
    // is over and the reclaimer has torn it down.
    let detached = xswitchd::wait_until(std::time::Duration::from_secs(5), || {
        !sw.ip(&["-d", "link", "show", h1.port()])
            .unwrap()
            .contains("prog/xdp")
    });
    assert!(
        detached.is_some(),
        "XDP program still attached after port del"
    );
}

#[test]
fn flow_add_dump_del_and_bad_syntax_points_at_the_token() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    let d = Switchd::start(&sw, &[]);
    d.ok(&["port", "add", h1.port()]);
    assert_eq!(
        d.ok(&[
            "flow",
            "add",
            &format!(
                "priority=100,in_port={},ip,nw_dst=10.0.0.0/24,actions=output:2",
                h1.port()
            )
        ])
        .trim(),
        "added 1 flow"
    );
    let e = d.fails(&[
        "flow",
        "add",
        "priority=5,ip,nw_dst=10.0.0.300,actions=drop",
    ]);
    assert_eq!(
        e,
        "xswitch: bad flow at col 15 (\"nw_dst=10.0.0.300\"): invalid IPv4 address"
    );
    // A flow file: comments, blank lines; a bad line installs nothing.
    let dir = std::env::temp_dir();
    let bad = dir.join(format!("{}-bad.flows", control::topo::unique_name("fl")));
    std::fs::write(
        &bad,
        "# ovs-ofctl add-flows format\n\
         priority=10,arp,actions=normal\n\
         \n\
         priority=20,udp,tp_dst=53,actions=drop\n\
         priority=30,tcp,tp_dst=http,actions=drop\n",
    )
    .unwrap();
    let e = d.fails(&["flow", "add", "--file", bad.to_str().unwrap()]);
    assert!(e.starts_with("xswitch: line 5: bad flow at col"), "{e}");
    assert!(e.contains("tp_dst=http"), "{e}");
    let good = dir.join(format!("{}-good.flows", control::topo::unique_name("fl")));
    std::fs::write(
        &good,
        "# ovs-ofctl add-flows format\n\
         priority=10,arp,actions=normal\n\
         \n\
         priority=20,udp,tp_dst=53,actions=drop\n",
    )
    .unwrap();
    assert_eq!(
        d.ok(&["flow", "add", "--file", good.to_str().unwrap()])
            .trim(),
        "added 2 flows"
    );
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_file(&good);
    let e = d.fails(&["flow", "add", "--file", "/nonexistent/x.flows"]);
    assert!(
        e.starts_with("xswitch: cannot read flow file /nonexistent/x.flows"),
        "{e}"
    );
    let dump = d.ok(&["flow", "dump"]);
    assert_eq!(dump.lines().count(), 3, "{dump}");
    assert!(
        dump.lines()
            .next()
            .unwrap()
            .contains("priority=100,ip,in_port=1,nw_dst=10.0.0.0/24 actions=output:2"),
        "{dump}"
    );
    let j = json(&d.ok(&["flow", "dump", "--json"]));
    assert_eq!(j.as_array().unwrap().len(), 3);
    assert_eq!(j[0]["priority"], 100);
    assert_eq!(j[0]["actions"], "output:2");
    // Strict needs the exact match and priority; loose takes what it covers.
    assert_eq!(
        d.ok(&["flow", "del", "udp", "--strict"]).trim(),
        "deleted 0 flows"
    );
    assert_eq!(
        d.ok(&["flow", "del", "priority=20,udp,tp_dst=53", "--strict"])
            .trim(),
        "deleted 1 flow"
    );
    let e = d.fails(&["flow", "del", "ip,actions=drop"]);
    assert!(e.contains("actions"), "{e}");
    assert_eq!(d.ok(&["flow", "del"]).trim(), "deleted 2 flows");
    assert!(d.ok(&["flow", "dump"]).is_empty());
}

#[test]
fn fdb_show_lists_stations_learned_from_traffic() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    let h2 = Host::create(&sw, 2);
    let d = Switchd::start(&sw, &["--port", h1.port(), "--port", h2.port()]);
    assert!(h1.ping(&h2.ip, 3), "ping through the switch");
    let mac = |h: &Host| {
        h.ns.run(&["cat", &format!("/sys/class/net/{}/address", h.veth.a())])
            .unwrap()
            .trim()
            .to_owned()
    };
    let rows = json(&d.ok(&["fdb", "show", "--json"]));
    let rows = rows.as_array().unwrap();
    let at = |m: &str| {
        rows.iter()
            .find(|r| r["mac"] == m)
            .map(|r| r["port"].clone())
    };
    assert_eq!(at(&mac(&h1)), Some(Value::from(1)), "{rows:?}");
    assert_eq!(at(&mac(&h2)), Some(Value::from(2)), "{rows:?}");
    let text = d.ok(&["fdb", "show"]);
    assert!(text.starts_with(" port  VLAN  MAC"), "{text}");
    assert!(text.contains(&mac(&h2)), "{text}");
    // Bad input: clap refuses, non-zero, nothing changes.
    let o = d.cli(&["fdb", "flush"]);
    assert_ne!(o.code, Some(0));
    assert_eq!(
        json(&d.ok(&["fdb", "show", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        rows.len()
    );
}

#[test]
fn stats_json_has_the_contract_keys_and_counts_traffic() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    let h2 = Host::create(&sw, 2);
    let d = Switchd::start(
        &sw,
        &[
            "--port",
            h1.port(),
            "--port",
            h2.port(),
            "--stats-interval",
            "0.1",
        ],
    );
    assert!(h1.ping(&h2.ip, 3));
    let s = json(&d.ok(&["stats", "--json"]));
    // --stats-interval logs per-port rates and PMD busy %.
    let logged = xswitchd::wait_until(std::time::Duration::from_secs(5), || {
        let e = d.stderr_text();
        e.contains(&format!("port={}", h2.port())) && e.contains("busy_pct=")
    });
    assert!(logged.is_some(), "{}", d.stderr_text());
    let ports = s["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    for p in ports {
        for k in [
            "name",
            "ofport",
            "rx_packets",
            "tx_packets",
            "rx_bytes",
            "tx_bytes",
        ] {
            assert!(p.get(k).is_some(), "port lacks {k}: {p:#}");
        }
        for k in ["registered", "running", "carrier"] {
            assert_eq!(p["state"][k], true, "{p:#}");
        }
        assert_eq!(p["drops"]["no_carrier"], 0);
        assert!(p["rx_packets"].as_u64().unwrap() >= 3, "{p:#}");
    }
    let pmd = &s["pmds"][0];
    for k in ["id", "cpu", "rx_packets", "busy_pct"] {
        assert!(pmd.get(k).is_some(), "pmd lacks {k}: {pmd:#}");
    }
    assert!(s["watchdog"]["stalls"].is_u64() && s["watchdog"]["max_stall_ms"].is_u64());
    let text = d.ok(&["stats"]);
    assert!(
        text.contains(h1.port()) && text.contains("watchdog"),
        "{text}"
    );
    // Bad input.
    let o = d.cli(&["stats", "--yaml"]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("--yaml"), "{o:?}");
}

#[test]
fn trace_shows_rule_actions_and_final_decision_and_refuses_bad_syntax() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    let h2 = Host::create(&sw, 2);
    let d = Switchd::start(&sw, &["--port", h1.port(), "--port", h2.port()]);
    d.ok(&[
        "flow",
        "add",
        "priority=100,in_port=1,ip,nw_dst=10.198.0.2,actions=output:2",
    ]);
    let pkt = "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,ip,nw_src=10.198.0.1,nw_dst=10.198.0.2";
    let t = json(&d.ok(&["trace", pkt, "--json"]));
    assert_eq!(
        t["rule"],
        "priority=100,ip,in_port=1,nw_dst=10.198.0.2,actions=output:2"
    );
    assert_eq!(t["actions"], serde_json::json!(["output:2"]));
    assert_eq!(t["outputs"], serde_json::json!([2]));
    assert_eq!(t["dropped"], Value::Null);
    let text = d.ok(&["trace", pkt]);
    assert!(
        text.trim_end().ends_with("Final decision: output to 2"),
        "{text}"
    );
    // A miss.
    let miss = json(&d.ok(&["trace", "in_port=2,arp", "--json"]));
    assert_eq!(miss["dropped"], "no_match");
    assert_eq!(miss["rule"], Value::Null);
    // The port check: port 2 administratively down.
    sw.ip(&["link", "set", h2.port(), "down"]).unwrap();
    let down = xswitchd::wait_until(std::time::Duration::from_secs(5), || {
        json(&d.ok(&["trace", pkt, "--json"]))["dropped"] == "port_down"
    });
    assert!(down.is_some(), "trace never showed port_down");
    let text = d.ok(&["trace", pkt]);
    assert!(
        text.trim_end().ends_with("output:2 → dropped: port_down"),
        "{text}"
    );
    let e = d.fails(&["trace", "in_port=1,nw_src=1.2.3.4"]);
    assert!(
        e.starts_with("xswitch: bad flow at col 11 (\"nw_src=1.2.3.4\")"),
        "{e}"
    );
}

#[test]
fn run_with_a_config_file_attaches_its_ports_installs_its_flows_and_serves_metrics() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let (h1, h2) = (Host::create(&sw, 1), Host::create(&sw, 2));
    // The daemon runs in `sw`, whose loopback is its own: any port is free.
    let metrics = "127.0.0.1:9477";
    let cfg = std::env::temp_dir().join(format!("{}.toml", control::topo::unique_name("cfg")));
    std::fs::write(
        &cfg,
        format!(
            "metrics = \"{metrics}\"\n\
             flows = [\"priority=100,in_port={a},actions=output:{b}\", \"priority=100,in_port={b},actions=output:{a}\"]\n\
             [[ports]]\nname = \"{a}\"\nofport = 3\n\
             [[ports]]\nname = \"{b}\"\nofport = 4\n",
            a = h1.port(),
            b = h2.port()
        ),
    )
    .unwrap();
    let d = Switchd::start(&sw, &["--config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&cfg);
    let ports = json(&d.ok(&["port", "list", "--json"]));
    assert_eq!(ports[0]["ofport"], 3);
    assert_eq!(ports[1]["ofport"], 4);
    let flows = json(&d.ok(&["flow", "dump", "--json"]));
    assert_eq!(flows.as_array().unwrap().len(), 2, "{flows:#}");
    assert_eq!(flows[0]["actions"], "output:4");
    assert!(h1.ping(&h2.ip, 2), "ping through the configured flows");
    // Metrics, scraped from inside the daemon's namespace.
    let body = sw
        .run(&[
            "timeout", "10", "bash", "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9477; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
        ])
        .unwrap();
    assert!(body.starts_with("HTTP/1."), "{body}");
    assert!(body.contains(h1.port()), "metrics name the ports: {body}");
}
