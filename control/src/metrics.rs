//! Prometheus metrics over HTTP on a loopback address
//! (`xswitch run --metrics 127.0.0.1:PORT`, off by default).
//!
//! # What
//! [`MetricsServer::start`] binds a TCP listener and answers, in a thread of
//! its own, `GET /metrics` with the OpenMetrics text exposition of the
//! switch's [`StatsReport`], taken from a caller-supplied callback at scrape
//! time (the daemon passes its `stats`); every other path is a 404, every
//! other method a 405. The metrics (prefix `xswitch_`, encoded with the
//! prometheus-client crate, counters end in `_total`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `xswitch_port_rx_packets_total`, `_tx_packets_total`, `_rx_bytes_total`, `_tx_bytes_total` | counter | `port`, `ofport` |
//! | `xswitch_port_drops_total` (received here, dropped) | counter | `port`, `ofport`, `reason` |
//! | `xswitch_port_tx_drops_total` (outputs to this port that failed) | counter | `port`, `ofport`, `reason` |
//! | `xswitch_drops_total` (all ports) | counter | `reason` |
//! | `xswitch_port_state` (1 / 0) | gauge | `port`, `ofport`, `flag` = registered, admin_up, running, carrier |
//! | `xswitch_port_tx_queues` | gauge | `port`, `ofport` |
//! | `xswitch_pmd_rx_packets_total`, `xswitch_pmd_tx_packets_total` | counter | `pmd`, `cpu` |
//! | `xswitch_pmd_busy_percent` | gauge | `pmd`, `cpu` |
//! | `xswitch_watchdog_stalls_total` | counter | |
//! | `xswitch_watchdog_max_stall_seconds` | gauge | |
//! | `xswitch_watchdog_starved_total` | counter | |
//!
//! Every drop reason is exported, zeros included, so `rate()` works from the
//! first scrape and dashboards do not depend on traffic. `xswitch_drops_total`
//! sums the per-port `drops` only: a failed output is charged to the port
//! the packet came in on (DESIGN.md's accounting invariant) and shows a
//! second time, by destination, in `port_tx_drops`; summing both would count
//! it twice. `cpu` is empty for an unpinned PMD.
//!
//! # Why loopback only
//! The endpoint has no authentication and no TLS, and it names every
//! interface and its traffic. [`check_loopback`] refuses any other address
//! with a one-line error; export remotely through a scraper or proxy on the
//! host, which is where access control belongs.
//!
//! # Threads and locking
//! One thread accepts and serves connections one at a time (scrapes come
//! every few seconds; a client that stalls is cut off by 2 s read/write
//! timeouts). The callback runs on that thread: it must not block on
//! anything the scraping thread could hold — the daemon's stats path takes
//! only the `ports` lock briefly. A panic in the callback answers 500 and the
//! server keeps serving. Dropping the [`MetricsServer`] sets a stop flag,
//! wakes the accept with a connection to itself, and joins the thread, so
//! the port is free again when the drop returns.

use crate::report::StatsReport;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the metrics come from: called once per scrape.
pub type StatsSource = Arc<dyn Fn() -> StatsReport + Send + Sync>;

/// Why the metrics server could not start. One line each.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Not a loopback address (module docs, "Why loopback only").
    #[error(
        "metrics address {0} is not a loopback address: the endpoint has no authentication, \
         use 127.0.0.1:PORT or [::1]:PORT"
    )]
    NotLoopback(SocketAddr),
    /// Someone else listens there.
    #[error("metrics address {0} is already in use (another xswitch or another exporter?)")]
    InUse(SocketAddr),
    /// Any other bind failure.
    #[error("cannot listen on metrics address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server thread could not start.
    #[error("cannot start the metrics thread: {0}")]
    Thread(io::Error),
}

/// Refuses addresses that are not loopback.
pub fn check_loopback(addr: SocketAddr) -> Result<(), MetricsError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(MetricsError::NotLoopback(addr))
    }
}

/// A running metrics endpoint; stops and frees its port on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request head read.
const MAX_REQUEST: usize = 8192;

impl MetricsServer {
    /// Listens on `addr` (loopback; port 0 picks a free one) and serves
    /// `GET /metrics` from `source` until dropped.
    pub fn start(addr: SocketAddr, source: StatsSource) -> Result<MetricsServer, MetricsError> {
        check_loopback(addr)?;
        let listener = TcpListener::bind(addr).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                MetricsError::InUse(addr)
            } else {
                MetricsError::Bind { addr, source: e }
            }
        })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let registry = registry(source);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &registry, &stop2))
            .map_err(MetricsError::Thread)?;
        tracing::info!(addr = %local, "metrics served at http://{local}/metrics");
        Ok(MetricsServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the real port when started with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The registry of one server: a collector that reads `source` per scrape.
fn registry(source: StatsSource) -> Registry {
    let mut r = Registry::with_prefix("xswitch");
    r.register_collector(Box::new(ReportCollector { source }));
    r
}

/// Renders the exposition text of `report` (what a scrape returns).
pub fn render(report: StatsReport) -> String {
    let source: StatsSource = Arc::new(move || report.clone());
    let mut out = String::new();
    // Writing into a String does not fail; an encoder error would be a bug
    // in a metric name, caught by the tests.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(source));
    out
}

fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(s) => {
                if let Err(e) = handle(s, registry) {
                    tracing::debug!(error = %e, "metrics client");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept");
                // EMFILE and friends: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads the request head (up to the blank line or [`MAX_REQUEST`] bytes).
fn read_head(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() >= MAX_REQUEST {
            break;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

fn handle(mut s: TcpStream, registry: &Registry) -> io::Result<()> {
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = read_head(&mut s)?;
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut body = String::new();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prometheus_client::encoding::text::encode(&mut body, registry)
            }));
            match r {
                Ok(Ok(())) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                _ => (
                    "500 Internal Server Error",
                    "text/plain; charset=utf-8",
                    "the statistics could not be read\n".to_string(),
                ),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        ("", _) => return Ok(()),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET is supported\n".to_string(),
        ),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

/// Encodes a [`StatsReport`] taken from the source at each scrape.
struct ReportCollector {
    source: StatsSource,
}

impl std::fmt::Debug for ReportCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReportCollector")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes one metric family: a descriptor and one sample per label set.
fn family<'a, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        v.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    v: M,
) -> Result<(), std::fmt::Error> {
    v.encode(enc.encode_descriptor(name, help, None, kind)?)
}

impl Collector for ReportCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = (self.source)();
        let ports = &r.ports;
        let ofports: Vec<String> = ports.iter().map(|p| p.ofport.to_string()).collect();
        let ofports = &ofports;
        let port_labels = move |i: usize| -> Labels<'_> {
            vec![("port", ports[i].name.as_str()), ("ofport", &ofports[i])]
        };
        let per_port = |f: fn(&crate::report::PortReport) -> u64| {
            (0..ports.len()).map(move |i| (port_labels(i), ConstCounter::new(f(&ports[i]))))
        };
        let c = MetricType::Counter;
        family(
            &mut enc,
            "port_rx_packets",
            "Packets received on the port.",
            c,
            per_port(|p| p.rx_packets),
        )?;
        family(
            &mut enc,
            "port_tx_packets",
            "Packets transmitted by the port.",
            c,
            per_port(|p| p.tx_packets),
        )?;
        family(
            &mut enc,
            "port_rx_bytes",
            "Bytes received on the port.",
            c,
            per_port(|p| p.rx_bytes),
        )?;
        family(
            &mut enc,
            "port_tx_bytes",
            "Bytes transmitted by the port.",
            c,
            per_port(|p| p.tx_bytes),
        )?;

        let by_reason = |tx: bool| {
            ports.iter().enumerate().flat_map(move |(i, p)| {
                let m = if tx { &p.tx_drops } else { &p.drops };
                m.iter().map(move |(reason, n)| {
                    let mut l = port_labels(i);
                    l.push(("reason", reason));
                    (l, ConstCounter::new(*n))
                })
            })
        };
        family(
            &mut enc,
            "port_drops",
            "Packets received on the port and dropped, by reason.",
            c,
            by_reason(false),
        )?;
        family(
            &mut enc,
            "port_tx_drops",
            "Outputs to the port that were dropped, by reason (also counted in port_drops of the receiving port).",
            c,
            by_reason(true),
        )?;
        let mut totals: std::collections::BTreeMap<&str, u64> = dataplane::stats::DropReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), 0))
            .collect();
        for p in &r.ports {
            for (reason, n) in &p.drops {
                *totals.entry(reason).or_default() += n;
            }
        }
        family(
            &mut enc,
            "drops",
            "Packets dropped, all ports, by reason.",
            c,
            totals
                .iter()
                .map(|(reason, n)| (vec![("reason", *reason)], ConstCounter::new(*n))),
        )?;

        const FLAGS: [&str; 4] = ["registered", "admin_up", "running", "carrier"];
        family(
            &mut enc,
            "port_state",
            "Port state flags as the output path sees them (1 = set).",
            MetricType::Gauge,
            (0..r.ports.len()).flat_map(|i| {
                let s = r.ports[i].state;
                let vals = [s.registered, s.admin_up, s.running, s.carrier];
                FLAGS.into_iter().zip(vals).map(move |(flag, v)| {
                    let mut l = port_labels(i);
                    l.push(("flag", flag));
                    (l, ConstGauge::new(i64::from(v)))
                })
            }),
        )?;
        family(
            &mut enc,
            "port_tx_queues",
            "Usable tx queues of the port.",
            MetricType::Gauge,
            (0..r.ports.len()).map(|i| {
                (
                    port_labels(i),
                    ConstGauge::new(i64::from(r.ports[i].state.tx_queues)),
                )
            }),
        )?;

        let ids: Vec<(String, String)> = r
            .pmds
            .iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    p.cpu.map(|c| c.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        let pmd_labels = |i: usize| -> Labels<'_> { vec![("pmd", &ids[i].0), ("cpu", &ids[i].1)] };
        family(
            &mut enc,
            "pmd_rx_packets",
            "Packets received by the PMD thread.",
            c,
            (0..r.pmds.len()).map(|i| (pmd_labels(i), ConstCounter::new(r.pmds[i].rx_packets))),
        )?;
        family(
            &mut enc,
            "pmd_tx_packets",
            "Packets transmitted by the PMD thread.",
            c,
            (0..r.pmds.len()).map(|i| (pmd_labels(i), ConstCounter::new(r.pmds[i].tx_packets))),
        )?;
        family(
            &mut enc,
            "pmd_busy_percent",
            "CPU time of the PMD thread in percent of wall time (polling included).",
            MetricType::Gauge,
            (0..r.pmds.len()).map(|i| (pmd_labels(i), ConstGauge::new(r.pmds[i].busy_pct))),
        )?;

        single(
            &mut enc,
            "watchdog_stalls",
            "PMD stall episodes the watchdog reported.",
            c,
            ConstCounter::new(r.watchdog.stalls),
        )?;
        single(
            &mut enc,
            "watchdog_max_stall_seconds",
            "Longest PMD stall seen, in seconds.",
            MetricType::Gauge,
            ConstGauge::new(r.watchdog.max_stall_ms as f64 / 1000.0),
        )?;
        single(
            &mut enc,
            "watchdog_starved",
            "Times a PMD waited for a CPU past the stall threshold (overload, not a stall).",
            c,
            ConstCounter::new(r.watchdog.starved),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(check_loopback("127.0.0.1:9".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:9".parse().unwrap()).is_ok());
        let e = check_loopback("0.0.0.0:9477".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        assert!(check_loopback("10.1.2.3:9".parse().unwrap()).is_err());
    }
}
