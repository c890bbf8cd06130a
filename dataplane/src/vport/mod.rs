//! Virtual ports: the device abstraction the PMDs poll and transmit on.
//!
//! A vport is one Linux interface (AF_XDP, later) or a test double
//! ([`memory::MemoryPort`]). Its [`PortState`] is what the output path checks
//! before every transmit (DESIGN.md "Output semantics"): output to a port
//! delivers only if it is registered, admin-up, running, has carrier and has
//! at least one tx queue. The state is plain atomics so PMDs read it without
//! a lock; the control plane (link monitor, CLI) writes it.
//!
//! Rx and tx queues are each used by one PMD thread at a time; the port table
//! (issue 3) assigns them.

pub mod afxdp;
pub mod linger;
pub mod memory;

use crate::packet::{Packet, PacketBatch, PacketPool};
use crate::stats::DropReason;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::os::fd::BorrowedFd;

/// Lock-free, per-port state (DESIGN.md "Port lifecycle").
#[derive(Debug)]
pub struct PortState {
    /// False once unregistering has started; never becomes true again.
    pub registered: AtomicBool,
    /// Administratively up (IFF_UP).
    pub admin_up: AtomicBool,
    /// IFF_RUNNING.
    pub running: AtomicBool,
    /// IFF_LOWER_UP / carrier.
    pub carrier: AtomicBool,
    /// Usable tx queues; may drop to 0 while the device unregisters.
    pub tx_queues: AtomicU32,
}

impl PortState {
    /// A registered, up, running port with carrier and `tx_queues` queues.
    pub fn up(tx_queues: u32) -> Self {
        PortState {
            registered: AtomicBool::new(true),
            admin_up: AtomicBool::new(true),
            running: AtomicBool::new(true),
            carrier: AtomicBool::new(true),
            tx_queues: AtomicU32::new(tx_queues),
        }
    }

    /// Why output to this port must not happen now, or `None` if it may.
    /// The checks run in DESIGN.md order so the reason is the first failure.
    #[inline]
    pub fn output_check(&self) -> Result<u32, DropReason> {
        if !self.registered.load(Ordering::Acquire) {
            return Err(DropReason::PortUnregistering);
        }
        if !self.admin_up.load(Ordering::Acquire) || !self.running.load(Ordering::Acquire) {
            return Err(DropReason::PortDown);
        }
        if !self.carrier.load(Ordering::Acquire) {
            return Err(DropReason::NoCarrier);
        }
        match self.tx_queues.load(Ordering::Acquire) {
            0 => Err(DropReason::NoTxQueue),
            n => Ok(n),
        }
    }
}

/// Why a transmit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The device is gone (ENETDOWN/ENXIO): start the deletion protocol.
    #[error("device is gone")]
    Gone,
    /// Any other send failure; the batch is dropped as `tx_error`.
    #[error("send failed")]
    Failed,
}

/// A port the PMDs can poll and transmit on.
pub trait Vport: Send + Sync {
    /// Interface name.
    fn name(&self) -> &str;
    /// The state the output path checks.
    fn state(&self) -> &PortState;
    /// Largest frame (L2, without FCS) the port transmits.
    fn mtu(&self) -> usize;
    /// Number of rx queues to poll.
    fn n_rxq(&self) -> usize;
    /// Moves up to `out.room()` received frames from rx queue `qid` into
    /// `out`, taking buffers from `pool` (stops early when it is empty).
    /// Returns how many arrived.
    fn recv(&self, qid: usize, pool: &mut PacketPool, out: &mut PacketBatch) -> usize;
    /// Offers the packets of `batch`, in order, to tx queue `qid`. Accepted
    /// packets leave the batch (their buffers go back to `pool` or to the
    /// device); packets the ring had no room for stay in `batch` for the
    /// caller to retry or drop. Returns how many were accepted.
    fn send(
        &self,
        qid: usize,
        batch: &mut PacketBatch,
        pool: &mut PacketPool,
    ) -> Result<usize, TxError>;
    /// Deletion step 5: called once, by the reclaimer, after the port was
    /// deleted and no PMD can reach it any more. Hands every buffer the
    /// device still holds (rx and fill rings, frames in flight on tx, the
    /// completion ring) to `back` — the datapath returns them to the PMDs'
    /// pools — and returns how many. A device that holds no buffers keeps
    /// the default.
    fn release_buffers(&self, back: &mut dyn FnMut(Packet)) -> u64 {
        let _ = back;
        0
    }
    /// A file descriptor an idle PMD may block on (epoll, `EPOLLIN`,
    /// edge-triggered) until rx queue `qid` has something for
    /// [`Vport::recv`], or `None` if the port has none; a PMD with a queue
    /// without one keeps its timed sleep backoff.
    ///
    /// The contract: every frame that becomes receivable on `qid` after
    /// the call makes the fd signal readability anew (a wake-up per
    /// arrival, or at least one per batch of arrivals), and while the PMD
    /// sleeps an arriving frame is not dropped for lack of a buffer (the
    /// port keeps its receive buffers stocked at the end of every `recv`).
    ///
    /// The fd borrows the port. A PMD registers it in its own epoll set
    /// while it holds the port snapshot — so the number names this port's
    /// file at that moment — and never uses the number again: the epoll set
    /// refers to the open file, not to the number, and the kernel drops the
    /// registration itself when the port closes the fd
    /// (`datapath/threads.rs`, "Blocking on rx").
    fn rx_wait_fd(&self, qid: usize) -> Option<BorrowedFd<'_>> {
        let _ = qid;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_check_reports_first_failure_in_order() {
        let s = PortState::up(1);
        assert_eq!(s.output_check(), Ok(1));
        s.tx_queues.store(0, Ordering::Release);
        assert_eq!(s.output_check(), Err(DropReason::NoTxQueue));
        s.carrier.store(false, Ordering::Release);
        assert_eq!(s.output_check(), Err(DropReason::NoCarrier));
        s.running.store(false, Ordering::Release);
        assert_eq!(s.output_check(), Err(DropReason::PortDown));
        s.registered.store(false, Ordering::Release);
        assert_eq!(s.output_check(), Err(DropReason::PortUnregistering));
    }
}
