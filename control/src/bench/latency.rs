//! Round-trip latency through a DUT at a low fixed rate: a UDP echo from
//! the generator namespace to the sink namespace and back.
//!
//! # How
//! The two sockets are made on this thread while it is briefly inside each
//! namespace (a socket stays in the namespace it was created in), then
//! used from ordinary threads: an echo thread in the sink bounces every
//! datagram back; the prober sends one probe per interval, each carrying
//! its sequence number and send time (nanoseconds since the prober
//! started) in the payload, and takes the round trip from the timestamp in
//! the echoed payload. One probe in flight at a time; a probe not back
//! within the timeout is lost. The same exchange, with a short timeout,
//! is the harness's "does this DUT forward yet?" check.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use xswitch_bpf::gen::netns::NetnsGuard;

use super::net::BenchNet;
use super::BenchError;

/// UDP port of the echo server.
const ECHO_PORT: u16 = 7;
/// Probe payload: sequence number, send time, padding.
const PROBE_LEN: usize = 32;

/// Latency figures of one DUT.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyRecord {
    /// The DUT.
    pub dut: String,
    /// Probes per second.
    pub rate_pps: u64,
    /// Probes answered.
    pub samples: usize,
    /// Probes not answered within the timeout.
    pub lost: usize,
    /// Median round trip, microseconds.
    pub p50_us: f64,
    /// 99th percentile round trip, microseconds.
    pub p99_us: f64,
    /// Largest round trip, microseconds.
    pub max_us: f64,
}

/// A UDP echo server in the sink namespace and a client socket in the
/// generator namespace.
pub struct Echo {
    client: UdpSocket,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    epoch: Instant,
    seq: u64,
}

impl Echo {
    /// Starts the echo server on the sink's address and connects a client
    /// from the generator's.
    pub fn start(net: &BenchNet, ipv6: bool) -> Result<Echo, BenchError> {
        let (src, dst) = net.addrs(ipv6);
        let io = |what: &str, e: std::io::Error| BenchError::Setup(format!("{what}: {e}"));
        let server = {
            let _in = NetnsGuard::enter(net.sink.name())?;
            UdpSocket::bind(SocketAddr::new(dst, ECHO_PORT)).map_err(|e| io("echo bind", e))?
        };
        let client = {
            let _in = NetnsGuard::enter(net.gen.name())?;
            UdpSocket::bind(SocketAddr::new(src, 0)).map_err(|e| io("probe bind", e))?
        };
        client
            .connect(SocketAddr::new(dst, ECHO_PORT))
            .map_err(|e| io("probe connect", e))?;
        server
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| io("echo timeout", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&buf[..n], from);
                }
            }
        });
        Ok(Echo {
            client,
            stop,
            server: Some(handle),
            epoch: Instant::now(),
            seq: 0,
        })
    }

    /// Sends one probe and waits up to `timeout` for its echo; returns the
    /// round trip measured from the timestamp carried in the payload.
    pub fn probe(&mut self, timeout: Duration) -> Result<Option<Duration>, BenchError> {
        self.seq += 1;
        let mut msg = [0u8; PROBE_LEN];
        msg[..8].copy_from_slice(&self.seq.to_be_bytes());
        let sent_ns = self.epoch.elapsed().as_nanos() as u64;
        msg[8..16].copy_from_slice(&sent_ns.to_be_bytes());
        self.client
            .send(&msg)
            .map_err(|e| BenchError::Setup(format!("probe send: {e}")))?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.client
                .set_read_timeout(Some(left))
                .map_err(|e| BenchError::Setup(format!("probe timeout: {e}")))?;
            match self.client.recv(&mut buf) {
                Ok(n) if n == PROBE_LEN => {
                    let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    if seq != self.seq {
                        continue; // a late echo of an earlier, lost probe
                    }
                    let t = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                    let now = self.epoch.elapsed().as_nanos() as u64;
                    return Ok(Some(Duration::from_nanos(now.saturating_sub(t))));
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                // An ICMP error (no route yet) surfaces as ECONNREFUSED on a
                // connected socket: the probe is lost, try again later.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
                Err(e) => return Err(BenchError::Setup(format!("probe receive: {e}"))),
            }
        }
    }

    /// Probes until one comes back, for at most `within`: whether the DUT
    /// forwards in both directions.
    pub fn wait_forwarding(
        &mut self,
        within: Duration,
        stop: &AtomicBool,
    ) -> Result<bool, BenchError> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            if self.probe(Duration::from_millis(100))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `count` probes at `rate_pps`; the figures, named after `dut`.
    pub fn measure(
        &mut self,
        dut: &str,
        count: usize,
        rate_pps: u64,
        stop: &AtomicBool,
    ) -> Result<LatencyRecord, BenchError> {
        let interval = Duration::from_nanos(1_000_000_000 / rate_pps.max(1));
        let mut rtts = Vec::with_capacity(count);
        let mut lost = 0;
        let t0 = Instant::now();
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let slot = t0 + interval * i as u32;
            let now = Instant::now();
            if slot > now {
                std::thread::sleep(slot - now);
            }
            match self.probe(Duration::from_millis(200))? {
                Some(rtt) => rtts.push(rtt),
                None => lost += 1,
            }
        }
        rtts.sort();
        let us = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
        Ok(LatencyRecord {
            dut: dut.to_string(),
            rate_pps,
            samples: rtts.len(),
            lost,
            p50_us: us(percentile(&rtts, 50.0)),
            p99_us: us(percentile(&rtts, 99.0)),
            max_us: us(rtts.last()),
        })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile<T>(sorted: &[T], p: f64) -> Option<&T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(&50));
        assert_eq!(percentile(&v, 99.0), Some(&99));
        assert_eq!(percentile(&v, 100.0), Some(&100));
        assert_eq!(percentile(&v, 0.0), Some(&1));
        assert_eq!(percentile(&[7u32], 99.0), Some(&7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }
}
