//! The link monitor: the kernel's view of the switch's interfaces, over
//! rtnetlink.
//!
//! # What
//! [`LinkMonitor`] is a NETLINK_ROUTE socket subscribed to `RTNLGRP_LINK` in
//! the network namespace of the thread that opened it (a netlink socket
//! stays in the namespace it was created in; [`LinkMonitor::open_in`] opens
//! one in another namespace from a short-lived thread). It reads
//! `RTM_NEWLINK`/`RTM_DELLINK` notifications as [`LinkEvent`]s
//! ([`LinkMonitor::next_events`]) and the full interface list with an
//! `RTM_GETLINK` dump ([`LinkMonitor::dump`]). [`PortTracker`] decides what
//! each event means for the switch's ports and [`apply`] carries out the
//! part the datapath can do alone (issue 5; DESIGN.md "Port lifecycle").
//!
//! # What the kernel sends (measured on this machine, kernel 6.18)
//! * veth created: `RTM_NEWLINK` for both ends (several per end as it comes
//!   up); the peer set down: `RTM_NEWLINK` for our end with `IFF_LOWER_UP`
//!   and `IFLA_CARRIER` cleared, oper state `LOWERLAYERDOWN`.
//! * `ip link del`: one `RTM_DELLINK` per end in its namespace.
//! * Latency from the `ip` command's return to `next_events` returning the
//!   event (tests/link_monitor.rs): carrier off/on ≈ 0.1–0.2 ms median,
//!   < 1 ms max over 10 rounds; deletion ≈ 0.1–0.2 ms; our end's
//!   `RTM_DELLINK` after `ip netns del` of the peer's namespace 6–17 ms
//!   (the kernel tears namespaces down in deferred work).
//! * An interface moved to another namespace (`ip link set X netns N`)
//!   arrives here as `RTM_DELLINK`, and as `RTM_NEWLINK` there; deleting the
//!   namespace that holds a veth's peer deletes our end too: `RTM_DELLINK`.
//! * Rename works on an up interface (live rename): `RTM_NEWLINK`, same
//!   ifindex, new `IFLA_IFNAME`.
//! * `ethtool -L` (veth: `tx`/`rx` channels, up to the `numtxqueues` it was
//!   made with) sends `RTM_NEWLINK`, but `IFLA_NUM_TX_QUEUES` is the
//!   *allocated* count and does not move; the count in use is read from
//!   ethtool over generic netlink (module `ethtool`).
//! * Bridge port messages come to the same group with family `AF_BRIDGE`,
//!   including `RTM_DELLINK` when a port leaves a bridge; they are not link
//!   deletions and are ignored.
//!
//! # Invariants
//! * **Lost messages are never silent.** When the kernel cannot queue a
//!   notification (receive buffer full) the next read fails with ENOBUFS;
//!   the monitor returns [`LinkEvent::Resync`] in place of every event it
//!   read before the error in that call (they are superseded), then the
//!   events after it. The caller must [`LinkMonitor::dump`] and diff
//!   ([`PortTracker::resync`]). The default receive buffer is large (8 MiB,
//!   `SO_RCVBUFFORCE` when privileged) so that this is rare.
//! * **A dump is a fresh start.** [`LinkMonitor::dump`] first discards
//!   every notification already queued (a dump started after them
//!   supersedes them), retries when the kernel flags the dump as
//!   interrupted (`NLM_F_DUMP_INTR`), and keeps the notifications that
//!   arrive while it runs for the next [`LinkMonitor::next_events`]: each
//!   notification carries a device's full state, so applying one that is
//!   older than the dump only repeats a state a later notification corrects.
//! * Dump replies and notifications share the socket: a datagram from a
//!   multicast group is a notification, a unicast one a reply (matched by
//!   sequence number; stale replies are dropped).
//! * Nothing blocks without a bound: `next_events` waits at most its
//!   timeout, `dump` at most [`DUMP_TIMEOUT`], the ethtool query never.
//! * Malformed messages are counted ([`MonitorStats::malformed`]) and
//!   skipped, never a panic.
//!
//! # Locking
//! None. A monitor is owned by one thread (the daemon's monitor thread),
//! is `Send`, and touches the datapath only through [`apply`], which uses
//! the port-state setters (`ports` lock only) — never `flow_table`, so
//! interface churn cannot delay flow installs.
//!
//! # Why netlink-sys + netlink-packet-route and not `rtnetlink`
//! `rtnetlink` is these same two crates behind a tokio connection. The
//! monitor is one blocking loop — wait for a message, act, repeat — so a
//! runtime would add a thread pool, a channel hop per message and two
//! dozen crates for nothing; the synchronous socket is `poll` plus `recv`,
//! about as much code as building and driving a current-thread runtime. We
//! use the same message types (`LinkMessage`, `LinkAttribute`) `rtnetlink`
//! does, resolved to the versions `rtnetlink` 0.24 uses (netlink-sys 0.9,
//! netlink-packet-core 0.9, netlink-packet-route 0.34), so switching later
//! is a local change.

mod ethtool;
mod link;
mod tracker;

pub use link::{LinkState, OperState};
pub use tracker::{apply, Applied, PortAction, PortTracker};

use link::{parse_datagram, Parsed, RTM_GETLINK};
use netlink_packet_core::{NetlinkBuffer, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `RTNLGRP_LINK` (linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
/// How long a dump may take before [`MonitorError::DumpTimeout`].
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(5);
/// Dump attempts before [`MonitorError::DumpInterrupted`].
const DUMP_TRIES: u32 = 5;
/// Datagrams one `next_events` call reads at most (bounds its latency
/// under a flood; the rest wait for the next call).
const MAX_DATAGRAMS_PER_CALL: usize = 1024;
/// Receive buffer for one datagram: the kernel's dump skbs are at most
/// 32 KiB; notifications are far smaller.
const RECV_BUF: usize = 64 * 1024;

/// One thing that happened to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: the interface exists with this state (new, or any
    /// change: flags, carrier, name, queues, MTU).
    Changed(LinkState),
    /// `RTM_DELLINK`: the interface left this namespace (deleted, moved to
    /// another namespace, or its veth peer's namespace was deleted).
    Deleted {
        /// Its index (the identity to match on).
        ifindex: u32,
        /// Its last name.
        name: String,
    },
    /// Notifications were lost (ENOBUFS): re-read every interface with
    /// [`LinkMonitor::dump`].
    Resync,
}

/// How a monitor is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Socket receive buffer in bytes. `SO_RCVBUFFORCE` when the process may
    /// (CAP_NET_ADMIN), else `SO_RCVBUF`, which the kernel caps at
    /// `net.core.rmem_max`. The kernel doubles the value for bookkeeping
    /// and enforces a minimum of a few KiB; tests use a tiny one to provoke
    /// ENOBUFS.
    pub rcvbuf_bytes: usize,
    /// Read each device's queue counts from ethtool (see [`LinkState`]'s
    /// `tx_queues`); off: rtnetlink's allocated counts.
    pub ethtool_queues: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            rcvbuf_bytes: 8 << 20,
            ethtool_queues: true,
        }
    }
}

/// Counters of one monitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// `Changed`/`Deleted` events returned.
    pub events: u64,
    /// ENOBUFS seen (each became a `Resync`, or was absorbed by a dump).
    pub overruns: u64,
    /// Dumps completed.
    pub dumps: u64,
    /// Dumps restarted because the kernel flagged them interrupted.
    pub dump_retries: u64,
    /// Messages that could not be parsed (skipped).
    pub malformed: u64,
}

/// Why the monitor failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A socket call failed.
    #[error("link monitor: netlink {op} failed: {source}")]
    Io {
        /// Which call.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered the dump request with an error.
    #[error("link monitor: the kernel refused the link dump: {0}")]
    Kernel(io::Error),
    /// Every dump attempt was interrupted by concurrent changes.
    #[error("link monitor: link dump interrupted by concurrent changes {0} times in a row")]
    DumpInterrupted(u32),
    /// The dump did not complete in time.
    #[error("link monitor: link dump not complete after {0:?}")]
    DumpTimeout(Duration),
    /// Entering the namespace failed.
    #[error("link monitor: cannot enter network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> MonitorError {
    move |source| MonitorError::Io { op, source }
}

/// What one read from the socket gave.
enum Recv {
    /// A datagram of this many bytes; `multicast` if it came from a group.
    Data { len: usize, multicast: bool },
    /// Nothing queued.
    Empty,
    /// The kernel dropped notifications (ENOBUFS).
    Overrun,
}

/// A NETLINK_ROUTE socket following `RTNLGRP_LINK`. See the module docs.
#[derive(Debug)]
pub struct LinkMonitor {
    sock: Socket,
    channels: Option<ethtool::Channels>,
    buf: Vec<u8>,
    pending: VecDeque<LinkEvent>,
    seq: u32,
    rcvbuf: usize,
    stats: MonitorStats,
}

impl LinkMonitor {
    /// Opens a monitor with the default configuration in the calling
    /// thread's network namespace.
    pub fn open() -> Result<LinkMonitor, MonitorError> {
        Self::open_with(MonitorConfig::default())
    }

    /// Opens a monitor in the calling thread's network namespace.
    pub fn open_with(cfg: MonitorConfig) -> Result<LinkMonitor, MonitorError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(io_err("socket"))?;
        // SO_RCVBUFFORCE passes rmem_max but needs CAP_NET_ADMIN.
        if setsockopt(&sock, sockopt::RcvBufForce, &cfg.rcvbuf_bytes).is_err() {
            setsockopt(&sock, sockopt::RcvBuf, &cfg.rcvbuf_bytes)
                .map_err(|e| io_err("setsockopt(SO_RCVBUF)")(e.into()))?;
        }
        sock.bind_auto().map_err(io_err("bind"))?;
        sock.add_membership(RTNLGRP_LINK)
            .map_err(io_err("add_membership(RTNLGRP_LINK)"))?;
        let rcvbuf = sock.get_rx_buf_sz().map_err(io_err("getsockopt"))?;
        let channels = if cfg.ethtool_queues {
            ethtool::Channels::open()
        } else {
            None
        };
        Ok(LinkMonitor {
            sock,
            channels,
            buf: vec![0; RECV_BUF],
            pending: VecDeque::new(),
            seq: 0,
            rcvbuf,
            stats: MonitorStats::default(),
        })
    }

    /// Opens a monitor in the network namespace whose file is `netns` (e.g.
    /// `/run/netns/NAME`, or `/proc/PID/ns/net`), from a short-lived thread,
    /// so the caller's own namespace never changes.
    pub fn open_in(netns: &Path, cfg: MonitorConfig) -> Result<LinkMonitor, MonitorError> {
        let path = netns.to_path_buf();
        let worker = std::thread::Builder::new()
            .name("xswitch-netns".into())
            .spawn(move || {
                let ns_err = |source| MonitorError::Netns {
                    path: path.clone(),
                    source,
                };
                let f = std::fs::File::open(&path).map_err(ns_err)?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ns_err(e.into()))?;
                Self::open_with(cfg)
            })
            .map_err(io_err("spawn namespace thread"))?;
        worker.join().unwrap_or_else(|_| {
            Err(MonitorError::Netns {
                path: netns.to_path_buf(),
                source: io::Error::other("namespace thread panicked"),
            })
        })
    }

    /// The receive buffer the kernel granted (bytes, as `getsockopt`
    /// reports it: twice the request, capped).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// True when queue counts come from ethtool (see [`LinkState`]).
    pub fn ethtool_queues(&self) -> bool {
        self.channels.is_some()
    }

    /// The monitor's counters.
    pub fn stats(&self) -> MonitorStats {
        self.stats
    }

    /// Reads one datagram, waiting until `deadline` (`None`: not at all).
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Recv, MonitorError> {
        loop {
            match self
                .sock
                .recv_from(&mut &mut self.buf[..], nix::libc::MSG_DONTWAIT)
            {
                Ok((len, addr)) => {
                    return Ok(Recv::Data {
                        len: len.min(self.buf.len()),
                        multicast: addr.multicast_groups() != 0,
                    })
                }
                Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => {
                    self.stats.overruns += 1;
                    return Ok(Recv::Overrun);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_err("recv")(e)),
            }
            let Some(deadline) = deadline else {
                return Ok(Recv::Empty);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Recv::Empty);
            }
            // Round up so a sub-millisecond remainder still sleeps.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(io_err("poll")(e.into())),
            }
        }
    }

    /// The state in `s` with the queue counts ethtool reports, if any.
    fn with_queues(&mut self, mut s: LinkState) -> LinkState {
        if let Some(q) = self.channels.as_mut().and_then(|c| c.query(s.ifindex)) {
            s.tx_queues = q.tx;
            s.rx_queues = q.rx;
        }
        s
    }

    /// Parses the notification datagram in `self.buf[..len]` onto `out`.
    fn notifications(&mut self, len: usize, out: &mut Vec<LinkEvent>) {
        for m in parse_datagram(&self.buf[..len]) {
            match m {
                Parsed::NewLink { state, .. } => {
                    let s = self.with_queues(state);
                    out.push(LinkEvent::Changed(s));
                }
                Parsed::DelLink { ifindex, name } => {
                    out.push(LinkEvent::Deleted { ifindex, name });
                }
                Parsed::Malformed => self.stats.malformed += 1,
                _ => {}
            }
        }
    }

    /// Waits up to `timeout` for link notifications and returns every one
    /// that has arrived (possibly none). A [`LinkEvent::Resync`] replaces
    /// the events read before it in this call; see the module docs.
    pub fn next_events(&mut self, timeout: Duration) -> Result<Vec<LinkEvent>, MonitorError> {
        let deadline = Instant::now() + timeout;
        let mut out: Vec<LinkEvent> = self.pending.drain(..).collect();
        for _ in 0..MAX_DATAGRAMS_PER_CALL {
            // Wait only while there is nothing to return.
            let wait = if out.is_empty() { Some(deadline) } else { None };
            match self.recv(wait)? {
                Recv::Data { len, multicast } => {
                    // Unicast datagrams outside a dump are stale replies.
                    if multicast {
                        self.notifications(len, &mut out);
                    }
                }
                Recv::Overrun => {
                    out.clear();
                    out.push(LinkEvent::Resync);
                }
                // Nothing more queued, or the deadline passed.
                Recv::Empty => break,
            }
        }
        self.stats.events += out
            .iter()
            .filter(|e| !matches!(e, LinkEvent::Resync))
            .count() as u64;
        Ok(out)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Every interface in the monitor's namespace, from an `RTM_GETLINK`
    /// dump. Discards the notifications queued before it (superseded) and
    /// keeps those that arrive during it for [`LinkMonitor::next_events`].
    pub fn dump(&mut self) -> Result<Vec<LinkState>, MonitorError> {
        // Supersede everything queued, including a pending overrun.
        self.pending.clear();
        while !matches!(self.recv(None)?, Recv::Empty) {}
        for _ in 0..DUMP_TRIES {
            match self.dump_once()? {
                Some(links) => {
                    self.stats.dumps += 1;
                    return Ok(links.into_iter().map(|s| self.with_queues(s)).collect());
                }
                None => self.stats.dump_retries += 1,
            }
        }
        Err(MonitorError::DumpInterrupted(DUMP_TRIES))
    }

    /// One dump attempt: `None` if the kernel flagged it interrupted or
    /// answered "busy", so it must be redone.
    fn dump_once(&mut self) -> Result<Option<Vec<LinkState>>, MonitorError> {
        let seq = self.next_seq();
        // nlmsghdr + an all-zero ifinfomsg (AF_UNSPEC: every link).
        const LEN: usize = 16 + 16;
        let mut req = [0u8; LEN];
        {
            let mut nl = NetlinkBuffer::new(&mut req[..]);
            nl.set_length(LEN as u32);
            nl.set_message_type(RTM_GETLINK);
            nl.set_flags(NLM_F_REQUEST | NLM_F_DUMP);
            nl.set_sequence_number(seq);
        }
        self.sock
            .send_to(&req, &SocketAddr::new(0, 0), 0)
            .map_err(io_err("send(RTM_GETLINK)"))?;
        let deadline = Instant::now() + DUMP_TIMEOUT;
        let mut links = Vec::new();
        let mut interrupted = false;
        loop {
            let len = match self.recv(Some(deadline))? {
                Recv::Data { len, multicast } => {
                    if multicast {
                        let mut evs = Vec::new();
                        self.notifications(len, &mut evs);
                        self.pending.extend(evs);
                        continue;
                    }
                    len
                }
                Recv::Overrun => {
                    // Notifications were lost while dumping; this dump may
                    // already be older than one of them. Ask for another.
                    self.pending.clear();
                    self.pending.push_back(LinkEvent::Resync);
                    continue;
                }
                Recv::Empty => return Err(MonitorError::DumpTimeout(DUMP_TIMEOUT)),
            };
            for m in parse_datagram(&self.buf[..len]) {
                match m {
                    Parsed::NewLink {
                        seq: s,
                        dump_intr,
                        state,
                    } if s == seq => {
                        interrupted |= dump_intr;
                        links.push(state);
                    }
                    Parsed::Done { seq: s, dump_intr } if s == seq => {
                        interrupted |= dump_intr;
                        return Ok((!interrupted).then_some(links));
                    }
                    Parsed::Error { seq: s, errno } if s == seq => {
                        let e = Errno::from_raw(errno);
                        if matches!(e, Errno::EBUSY | Errno::EINTR | Errno::ENOBUFS) {
                            return Ok(None);
                        }
                        return Err(MonitorError::Kernel(io::Error::from_raw_os_error(errno)));
                    }
                    Parsed::Malformed => self.stats.malformed += 1,
                    // Replies to an older, abandoned dump.
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_asks_for_a_large_buffer_and_ethtool_counts() {
        let c = MonitorConfig::default();
        assert!(c.rcvbuf_bytes >= 4 << 20);
        assert!(c.ethtool_queues);
    }

    #[test]
    fn errors_say_what_failed() {
        let e = MonitorError::Netns {
            path: "/run/netns/nope".into(),
            source: io::Error::from_raw_os_error(2),
        };
        let s = e.to_string();
        assert!(
            s.contains("/run/netns/nope") && s.contains("No such file"),
            "{s}"
        );
        assert!(MonitorError::DumpInterrupted(5)
            .to_string()
            .contains("5 times"));
    }

    #[test]
    fn open_in_a_missing_namespace_is_a_clear_error() {
        let e = LinkMonitor::open_in(
            Path::new("/run/netns/xswitch-no-such-namespace"),
            MonitorConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(e, MonitorError::Netns { .. }), "{e}");
    }

    /// Opening a NETLINK_ROUTE socket and dumping needs no privilege; every
    /// namespace has `lo`.
    #[test]
    fn dump_of_the_own_namespace_lists_loopback() {
        let mut m = LinkMonitor::open().unwrap();
        let links = m.dump().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
        assert!(lo.ifindex > 0);
        assert_eq!(m.stats().dumps, 1);
        // A quiet socket returns an empty batch, at the deadline.
        let t = Instant::now();
        // (Other tests may change links in this namespace meanwhile.)
        let evs = m.next_events(Duration::from_millis(20)).unwrap();
        if evs.is_empty() {
            assert!(t.elapsed() >= Duration::from_millis(20));
        }
        assert!(
            evs.iter().all(|e| !matches!(e, LinkEvent::Resync)),
            "{evs:?}"
        );
    }
}
