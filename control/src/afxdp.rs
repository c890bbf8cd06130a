//! Opening an AF_XDP port: the glue between the XDP program loader
//! (`xswitch_bpf`) and the AF_XDP vport (`dataplane::vport::afxdp`).
//!
//! # What
//! [`open_port`] turns an interface name into a port the datapath can
//! take, in the only order that leaves no gap for traffic to slip past the
//! switch and nothing behind on failure:
//!
//! ```text
//! LinkInfo::query(ifname)            index, MTU, queue counts, flags (sysfs)
//! MTU check against afxdp::MAX_MTU   before anything is attached
//! PortProgram::attach(ifindex, mode) XDP program, XSKMAP empty: all frames pass
//! AfXdpPort::open(link, cfg, steering)  one socket per rx queue, each
//!                                    registered in the XSKMAP as it binds
//! ```
//!
//! The vport knows nothing about BPF: it registers its sockets through the
//! [`XskSteering`] trait, which [`ProgramSteering`] implements over a
//! shared [`PortProgram`]. The caller keeps a second handle on the program
//! for its per-queue counters ([`OpenedPort::xdp_report`]).
//!
//! # Invariants
//! * Every failure after the attach drops what was built, in reverse: the
//!   sockets close (the vport unregisters them first), then the last
//!   program handle goes and the BPF link closes, which detaches the
//!   program. A failed open leaves the interface as it found it.
//! * The program is attached through a BPF link owned by this process, so
//!   even a SIGKILL detaches it (the kernel closes the link fd).
//! * An MTU the UMEM frame cannot carry is refused before the program is
//!   attached, naming the MTU and the maximum.
//!
//! # Locking
//! None here. The steering adapter is called by the vport while it opens
//! and drops; the map updates are single syscalls.

use dataplane::vport::afxdp::{AfXdpConfig, AfXdpError, AfXdpPort, LinkInfo, XskSteering, MAX_MTU};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use xswitch_bpf::{BpfError, PortProgram, XdpMode};

use crate::report::{DeviceReport, XdpReport};

/// Why a port could not be opened. Each message is one line naming the
/// interface.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The interface, its MTU or its sockets (`dataplane`'s message).
    #[error(transparent)]
    Port(#[from] AfXdpError),
    /// The XDP program (`xswitch_bpf`'s message).
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

/// [`XskSteering`] over an attached [`PortProgram`]: registering a socket
/// puts its fd into the program's XSKMAP at its queue.
#[derive(Debug, Clone)]
pub struct ProgramSteering {
    prog: Arc<PortProgram>,
}

impl ProgramSteering {
    /// Steers through `prog`.
    pub fn new(prog: Arc<PortProgram>) -> Self {
        ProgramSteering { prog }
    }
}

impl XskSteering for ProgramSteering {
    fn register(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        self.prog
            .register_xsk(queue, xsk_fd)
            .map_err(io::Error::other)
    }

    fn unregister(&self, queue: u32) -> io::Result<()> {
        self.prog.unregister_xsk(queue).map_err(io::Error::other)
    }
}

/// An open AF_XDP port and the program that steers its queues.
pub struct OpenedPort {
    /// The vport (give a clone to the datapath).
    pub port: Arc<AfXdpPort>,
    /// The attached program (shared with the port's steering).
    pub program: Arc<PortProgram>,
    /// The interface as it was when opened.
    pub link: LinkInfo,
}

impl core::fmt::Debug for OpenedPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedPort")
            .field("link", &self.link)
            .field("mode", &self.program.mode())
            .finish_non_exhaustive()
    }
}

impl OpenedPort {
    /// How the program is attached (native or generic).
    pub fn mode(&self) -> XdpMode {
        self.program.mode()
    }

    /// Packets received per rx queue, as the vport counted them.
    pub fn rx_per_queue(&self) -> Vec<u64> {
        self.port.counters().rx_per_queue
    }

    /// Per-queue rx packets and the ring-level counters, read together.
    pub fn device_report(&self) -> (Vec<u64>, DeviceReport) {
        let c = self.port.counters();
        let census = self.port.frame_census();
        let d = DeviceReport {
            kernel_rx_dropped: c.kernel_rx_dropped,
            kernel_rx_ring_full: c.kernel_rx_ring_full,
            fill_ring_empty: c.fill_ring_empty,
            tx_ring_full: c.tx_ring_full,
            kicks: c.kicks,
            kick_errors: c.kick_errors.total(),
            umem_frames: census.total,
            umem_placed: census.accounted(),
        };
        (c.rx_per_queue, d)
    }

    /// The program's per-queue redirect/pass counters for the
    /// interface's rx queues (`None` if the map cannot be read).
    pub fn xdp_report(&self) -> Option<XdpReport> {
        let stats = match self.program.queue_stats() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(port = %self.link.name, error = %e, "cannot read queue stats");
                return None;
            }
        };
        let n = (self.link.rx_queues.max(1) as usize).min(stats.len());
        Some(XdpReport {
            mode: self.mode().to_string(),
            redirected: stats[..n].iter().map(|q| q.redirected).collect(),
            passed: stats[..n].iter().map(|q| q.passed).collect(),
        })
    }
}

/// Opens `ifname` as an AF_XDP port with its program attached in `mode`
/// (see the module docs for the order and the cleanup on failure).
pub fn open_port(ifname: &str, mode: XdpMode, cfg: &AfXdpConfig) -> Result<OpenedPort, OpenError> {
    let link = LinkInfo::query(ifname)?;
    if link.mtu > MAX_MTU {
        return Err(AfXdpError::MtuTooLarge {
            ifname: link.name.clone(),
            mtu: link.mtu,
            max: MAX_MTU,
        }
        .into());
    }
    let program = Arc::new(PortProgram::attach(link.ifindex, &link.name, mode)?);
    let steering = Box::new(ProgramSteering::new(program.clone()));
    let port = Arc::new(AfXdpPort::open(&link, cfg, steering)?);
    Ok(OpenedPort {
        port,
        program,
        link,
    })
}
