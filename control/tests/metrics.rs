//! The Prometheus endpoint: a plain TCP client scrapes it and finds the
//! report's figures under the documented names and labels; other paths and
//! methods are refused; a busy or non-loopback address is a clear error;
//! dropping the server frees the port.

use control::metrics::{MetricsError, MetricsServer, StatsSource};
use control::report::{PmdReport, PortReport, PortStateReport, StatsReport, WatchdogReport};
use dataplane::stats::DropReason;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn port(name: &str, ofport: u32, rx: u64, carrier: bool) -> PortReport {
    let zeros = || {
        DropReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), 0))
            .collect()
    };
    PortReport {
        name: name.into(),
        ofport,
        rx_packets: rx,
        tx_packets: rx / 2,
        rx_bytes: rx * 64,
        tx_bytes: rx * 32,
        rx_delivered: rx / 2,
        rx_copies: 0,
        drops: zeros(),
        tx_drops: zeros(),
        state: PortStateReport {
            registered: true,
            admin_up: true,
            running: true,
            carrier,
            tx_queues: 2,
        },
        queues: vec![],
        xdp: None,
        device: None,
    }
}

fn report(rx_a: u64) -> StatsReport {
    let mut a = port("a0", 1, rx_a, true);
    let mut b = port("b0", 7, 10, false);
    a.drops.insert("no_carrier", 5);
    b.drops.insert("no_carrier", 2);
    b.drops.insert("no_match", 3);
    b.tx_drops.insert("no_carrier", 5);
    StatsReport {
        ports: vec![a, b],
        pmds: vec![
            PmdReport {
                id: 0,
                cpu: Some(1),
                rx_packets: 111,
                tx_packets: 100,
                drops: 11,
                busy_pct: 42.5,
            },
            PmdReport {
                id: 1,
                cpu: None,
                rx_packets: 0,
                tx_packets: 0,
                drops: 0,
                busy_pct: 0.0,
            },
        ],
        watchdog: WatchdogReport {
            stalls: 2,
            max_stall_ms: 1500,
            starved: 3,
        },
    }
}

/// A raw HTTP/1.1 exchange; returns (status line, body).
fn request(addr: SocketAddr, head: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (headers, body) = resp.split_once("\r\n\r\n").expect("header/body split");
    let status = headers.lines().next().unwrap().to_string();
    let len: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

/// The value of the sample line that starts with `series ` exactly.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

fn start(source: StatsSource) -> MetricsServer {
    MetricsServer::start("127.0.0.1:0".parse().unwrap(), source).unwrap()
}

#[test]
fn scrape_shows_port_counters_drops_pmds_and_watchdog_with_labels() {
    let srv = start(Arc::new(|| report(1000)));
    let (status, body) = get(srv.local_addr(), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let p =
        |m: &str, name: &str, of: u32| format!("xswitch_{m}{{port=\"{name}\",ofport=\"{of}\"}}");
    assert_eq!(sample(&body, &p("port_rx_packets_total", "a0", 1)), 1000.0);
    assert_eq!(sample(&body, &p("port_tx_packets_total", "a0", 1)), 500.0);
    assert_eq!(sample(&body, &p("port_rx_bytes_total", "a0", 1)), 64000.0);
    assert_eq!(sample(&body, &p("port_tx_bytes_total", "b0", 7)), 320.0);
    let d = |m: &str, name: &str, of: u32, r: &str| {
        format!("xswitch_{m}{{port=\"{name}\",ofport=\"{of}\",reason=\"{r}\"}}")
    };
    assert_eq!(
        sample(&body, &d("port_drops_total", "b0", 7, "no_match")),
        3.0
    );
    assert_eq!(
        sample(&body, &d("port_drops_total", "a0", 1, "no_match")),
        0.0
    );
    assert_eq!(
        sample(&body, &d("port_tx_drops_total", "b0", 7, "no_carrier")),
        5.0
    );
    // Totals sum the receiving side only (5 + 2), not the tx view again.
    assert_eq!(
        sample(&body, "xswitch_drops_total{reason=\"no_carrier\"}"),
        7.0
    );
    assert_eq!(
        sample(&body, "xswitch_drops_total{reason=\"no_match\"}"),
        3.0
    );
    for r in DropReason::ALL {
        let series = format!("xswitch_drops_total{{reason=\"{}\"}}", r.as_str());
        sample(&body, &series);
    }
    let st = |name: &str, of: u32, f: &str| {
        format!("xswitch_port_state{{port=\"{name}\",ofport=\"{of}\",flag=\"{f}\"}}")
    };
    assert_eq!(sample(&body, &st("b0", 7, "carrier")), 0.0);
    assert_eq!(sample(&body, &st("a0", 1, "carrier")), 1.0);
    assert_eq!(sample(&body, &st("b0", 7, "registered")), 1.0);
    assert_eq!(sample(&body, &p("port_tx_queues", "b0", 7)), 2.0);
    assert_eq!(
        sample(&body, "xswitch_pmd_rx_packets_total{pmd=\"0\",cpu=\"1\"}"),
        111.0
    );
    assert_eq!(
        sample(&body, "xswitch_pmd_tx_packets_total{pmd=\"0\",cpu=\"1\"}"),
        100.0
    );
    assert_eq!(
        sample(&body, "xswitch_pmd_busy_percent{pmd=\"0\",cpu=\"1\"}"),
        42.5
    );
    assert_eq!(
        sample(&body, "xswitch_pmd_busy_percent{pmd=\"1\",cpu=\"\"}"),
        0.0
    );
    assert_eq!(sample(&body, "xswitch_watchdog_stalls_total"), 2.0);
    assert_eq!(sample(&body, "xswitch_watchdog_max_stall_seconds"), 1.5);
    assert!(
        body.contains("# TYPE xswitch_port_rx_packets counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE xswitch_pmd_busy_percent gauge"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
}

#[test]
fn each_scrape_reads_the_source_again() {
    let n = Arc::new(AtomicU64::new(0));
    let n2 = n.clone();
    let srv = start(Arc::new(move || {
        report(n2.fetch_add(10, Ordering::SeqCst) + 10)
    }));
    let series = "xswitch_port_rx_packets_total{port=\"a0\",ofport=\"1\"}";
    let (_, b1) = get(srv.local_addr(), "/metrics");
    let (_, b2) = get(srv.local_addr(), "/metrics?x=1");
    assert_eq!(sample(&b1, series), 10.0);
    assert_eq!(sample(&b2, series), 20.0);
}

#[test]
fn other_paths_are_404_and_other_methods_405() {
    let srv = start(Arc::new(|| report(1)));
    let (status, body) = get(srv.local_addr(), "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("/metrics"), "{body}");
    let (status, _) = request(srv.local_addr(), "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
}

#[test]
fn a_panicking_source_answers_500_and_the_server_keeps_serving() {
    let first = Arc::new(AtomicU64::new(0));
    let f2 = first.clone();
    let srv = start(Arc::new(move || {
        if f2.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("stats source failed (test)");
        }
        report(3)
    }));
    let (status, _) = get(srv.local_addr(), "/metrics");
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    let (status, _) = get(srv.local_addr(), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn a_port_already_in_use_is_a_clear_error() {
    let srv = start(Arc::new(|| report(1)));
    let addr = srv.local_addr();
    let e = MetricsServer::start(addr, Arc::new(|| report(1))).unwrap_err();
    assert!(matches!(e, MetricsError::InUse(a) if a == addr), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("already in use"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1);
}

#[test]
fn a_non_loopback_address_is_refused() {
    let e = MetricsServer::start("0.0.0.0:0".parse().unwrap(), Arc::new(|| report(1))).unwrap_err();
    assert!(matches!(e, MetricsError::NotLoopback(_)), "{e}");
    assert!(e.to_string().contains("127.0.0.1:PORT"), "{e}");
}

#[test]
fn dropping_the_server_frees_its_port() {
    let srv = start(Arc::new(|| report(1)));
    let addr = srv.local_addr();
    drop(srv);
    let again = MetricsServer::start(addr, Arc::new(|| report(1))).unwrap();
    assert_eq!(again.local_addr(), addr);
}
