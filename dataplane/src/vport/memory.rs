//! An in-memory port: the test double and benchmark driver for the datapath.
//!
//! # What
//! [`MemoryPort`] implements [`Vport`] over bounded in-process rings instead
//! of a NIC, with the same four-ring buffer economy as an AF_XDP socket:
//!
//! ```text
//!   generator --inject--> [rx ring] --recv--> PMD --send--> [tx ring] --take_tx--> sink
//!       ^                                 |    ^                                    |
//!       +--take_fill-- [fill ring] <------+    +--(reclaim)-- [completion ring] <--complete
//! ```
//!
//! * `recv` moves a received frame into the PMD's batch and pays for it with
//!   an empty buffer from the PMD's pool, which goes to the queue's fill
//!   ring; the generator refills those buffers ([`MemoryPort::inject_frame`])
//!   so that, after warm-up, nothing allocates on either side.
//! * `send` moves accepted packets into the tx ring; the sink takes them,
//!   looks at the bytes and hands the buffers back through the completion
//!   ring ([`MemoryPort::complete`], or [`MemoryPort::drain_tx`] which does
//!   both); the next `send` on that queue returns them to the caller's pool.
//!
//! So a PMD pool's buffer count is conserved: `pool.available()` plus the
//! buffers the PMD has in flight on tx queues equals `pool.created()` once
//! every batch is flushed — the "zero leaked buffers" check in the tests.
//!
//! # Invariants
//! * Each ring is bounded (`ring_size` packets; the fill ring twice that).
//! * A tx queue never has more than `ring_size` buffers outstanding (in the tx
//!   ring, held by the sink, or in the completion ring): `send` accepts only
//!   that many, so completing a taken buffer never finds the completion ring
//!   full.
//! * Bad queue ids and faults are reported, never panics.
//!
//! # Locking
//! Each ring is a wait-free single-producer/single-consumer ring (`rtrb`).
//! Its two ends are separate handles, each behind its own mutex that only
//! one side ever takes: the PMD owns the consumer of rx and completion and
//! the producer of fill and tx; the generator and the sink own the other
//! ends. So the PMD and the threads feeding it never share a lock, and a
//! PMD's end is uncontended as long as one PMD serves the queue — the
//! `Vport` contract. The PMD side takes its ends with `try_lock` once per
//! batch: a second PMD on the same queue sees "nothing received" or "ring
//! full", never a blocked thread. Generator and sink calls may block on
//! each other (two generators on one queue) but never on a PMD. Counters
//! are relaxed atomics.
//!
//! # Doorbell
//! With [`MemoryPortConfig::rx_doorbell`] each rx queue also has a
//! doorbell, a Unix stream pair: injecting writes a byte, `recv` drains it,
//! and [`Vport::rx_wait_fd`] hands out the reading end, so the PMD threads'
//! block-on-rx idle path (`datapath/threads.rs`) can be tested without
//! AF_XDP. Without it the port has no wait fd and PMDs sleep on a timer.
//!
//! # Faults
//! [`MemoryPort::set_tx_fault`] makes `send` fail ([`TxFault::Fail`]) or keeps
//! the tx ring "full" ([`TxFault::RingFull`]) so tests can drive the output
//! path's retry and drop logic; the [`PortState`] flags are set directly.

use super::{PortState, TxError, Vport};
use crate::packet::{Packet, PacketBatch, PacketPool};
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use rtrb::{Consumer, Producer, PushError, RingBuffer};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// How [`MemoryPort`] is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPortConfig {
    /// Interface name.
    pub name: String,
    /// Rx queues (at least 1).
    pub n_rxq: usize,
    /// Tx queues; 0 models a device with no usable tx queue.
    pub n_txq: usize,
    /// Packets per ring (at least 1).
    pub ring_size: usize,
    /// Largest L2 frame (without FCS) the port transmits.
    pub mtu: usize,
    /// Give every rx queue a doorbell ([`Vport::rx_wait_fd`]): injecting
    /// rings it, so a PMD blocked on it wakes; off by default (a `recv`
    /// then costs a `read` to clear it).
    pub rx_doorbell: bool,
}

impl MemoryPortConfig {
    /// Default L2 MTU: 1500 bytes of payload, Ethernet header and one VLAN tag.
    pub const DEFAULT_MTU: usize = 1518;
    /// Default packets per ring.
    pub const DEFAULT_RING_SIZE: usize = 256;

    /// One rx and one tx queue, default ring size and MTU.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryPortConfig {
            name: name.into(),
            n_rxq: 1,
            n_txq: 1,
            ring_size: Self::DEFAULT_RING_SIZE,
            mtu: Self::DEFAULT_MTU,
            rx_doorbell: false,
        }
    }
    /// Sets the queue counts.
    pub fn queues(mut self, n_rxq: usize, n_txq: usize) -> Self {
        self.n_rxq = n_rxq;
        self.n_txq = n_txq;
        self
    }
    /// Sets the ring size.
    pub fn ring_size(mut self, n: usize) -> Self {
        self.ring_size = n;
        self
    }
    /// Sets the MTU.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }
    /// Gives every rx queue a doorbell an idle PMD can block on.
    pub fn rx_doorbell(mut self, on: bool) -> Self {
        self.rx_doorbell = on;
        self
    }
}

/// A transmit fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxFault {
    /// Normal operation.
    None,
    /// Every `send` fails with this error and accepts nothing.
    Fail(TxError),
    /// Every `send` accepts nothing, as if the tx ring never drained.
    RingFull,
}

impl TxFault {
    fn encode(self) -> u8 {
        match self {
            TxFault::None => 0,
            TxFault::Fail(TxError::Failed) => 1,
            TxFault::Fail(TxError::Gone) => 2,
            TxFault::RingFull => 3,
        }
    }
    fn decode(v: u8) -> Self {
        match v {
            1 => TxFault::Fail(TxError::Failed),
            2 => TxFault::Fail(TxError::Gone),
            3 => TxFault::RingFull,
            _ => TxFault::None,
        }
    }
}

/// Ring-level counters of a [`MemoryPort`] (what the device saw; the
/// datapath keeps its own per-port statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryPortCounters {
    /// Frames the generator put on rx rings.
    pub injected: u64,
    /// Frames the generator could not inject because an rx ring was full.
    pub inject_full: u64,
    /// Frames `recv` handed to a PMD.
    pub received: u64,
    /// Bytes of those frames.
    pub received_bytes: u64,
    /// Calls to `send`.
    pub send_calls: u64,
    /// Calls to `send` that left packets in the batch (ring full).
    pub send_short: u64,
    /// Calls to `send` that returned an error.
    pub send_errors: u64,
    /// Packets accepted onto tx rings.
    pub sent: u64,
    /// Bytes of those packets.
    pub sent_bytes: u64,
    /// Buffers the sink returned through completion rings.
    pub completed: u64,
    /// Buffers freed instead of recycled because a fill ring was full or the
    /// caller's pool was already complete (a generator that brings its own
    /// buffers, or a queue shared by two PMDs).
    pub released: u64,
    /// Buffers handed back to their owner at teardown
    /// ([`Vport::release_buffers`]).
    pub returned: u64,
}

#[derive(Default)]
struct Counters {
    injected: AtomicU64,
    inject_full: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
    send_calls: AtomicU64,
    send_short: AtomicU64,
    send_errors: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    completed: AtomicU64,
    released: AtomicU64,
    returned: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// One SPSC ring; each end behind the mutex of the one side that uses it.
struct Ring {
    prod: Mutex<Producer<Packet>>,
    cons: Mutex<Consumer<Packet>>,
}

/// Takes `m` without waiting (PMD side); a poisoned lock is taken over (a
/// ring end holds no invariant a panic could break).
#[inline]
fn try_take<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Takes `m`, waiting if needed (generator and sink side).
#[inline]
fn take<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ring {
    fn new(capacity: usize) -> Self {
        let (p, c) = RingBuffer::new(capacity);
        Ring {
            prod: Mutex::new(p),
            cons: Mutex::new(c),
        }
    }
}

struct RxQueue {
    rx: Ring,
    fill: Ring,
    /// The queue's doorbell, if configured.
    bell: Option<Doorbell>,
}

/// A non-blocking Unix stream pair: the generator writes a byte after every
/// inject, the PMD blocks on the other end and `recv` drains it. Every
/// write is a new readability edge, so an edge-triggered waiter never
/// misses an inject; a write that finds the buffer full is dropped, which
/// is harmless because the PMD has not drained the bytes before it, so the
/// end is still readable and the PMD has not gone to sleep on it.
struct Doorbell {
    /// The PMD's end ([`Vport::rx_wait_fd`]).
    wait: UnixStream,
    /// The generator's end.
    ring: UnixStream,
}

impl Doorbell {
    fn new() -> std::io::Result<Doorbell> {
        let (wait, ring) = UnixStream::pair()?;
        wait.set_nonblocking(true)?;
        ring.set_nonblocking(true)?;
        Ok(Doorbell { wait, ring })
    }

    /// Generator side, after a push.
    fn ring(&self) {
        // WouldBlock: bytes nobody drained yet keep the end readable.
        let _ = (&self.ring).write(&[1]);
    }

    /// PMD side, before popping: clears the bell (a frame pushed after
    /// this rings it again).
    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wait).read(&mut buf), Ok(n) if n == buf.len()) {}
    }
}

struct TxQueue {
    tx: Ring,
    completion: Ring,
    /// Buffers accepted by `send` and not yet reclaimed (tx ring + sink +
    /// completion ring). Written by the queue's PMD only.
    outstanding: AtomicUsize,
}

/// A port whose wire is a set of in-memory rings (see the module docs).
pub struct MemoryPort {
    name: String,
    mtu: AtomicUsize,
    state: PortState,
    rxqs: Box<[RxQueue]>,
    txqs: Box<[TxQueue]>,
    ring_size: usize,
    fault: AtomicU8,
    counters: Counters,
}

impl core::fmt::Debug for MemoryPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryPort")
            .field("name", &self.name)
            .field("n_rxq", &self.rxqs.len())
            .field("n_txq", &self.txqs.len())
            .field("ring_size", &self.ring_size)
            .field("state", &self.state)
            .finish()
    }
}

impl MemoryPort {
    /// Builds a port that is registered, up, running, with carrier and
    /// `n_txq` usable tx queues. Allocates every ring here.
    pub fn new(cfg: MemoryPortConfig) -> Self {
        let ring = cfg.ring_size.max(1);
        let rxqs = (0..cfg.n_rxq.max(1))
            .map(|_| RxQueue {
                rx: Ring::new(ring),
                fill: Ring::new(2 * ring),
                bell: cfg.rx_doorbell.then(Doorbell::new).and_then(|b| {
                    b.map_err(|e| tracing::warn!(port = %cfg.name, error = %e, "no rx doorbell"))
                        .ok()
                }),
            })
            .collect();
        let txqs = (0..cfg.n_txq)
            .map(|_| TxQueue {
                tx: Ring::new(ring),
                completion: Ring::new(ring),
                outstanding: AtomicUsize::new(0),
            })
            .collect();
        MemoryPort {
            name: cfg.name,
            mtu: AtomicUsize::new(cfg.mtu),
            state: PortState::up(u32::try_from(cfg.n_txq).unwrap_or(u32::MAX)),
            rxqs,
            txqs,
            ring_size: ring,
            fault: AtomicU8::new(0),
            counters: Counters::default(),
        }
    }

    /// A port with one rx and one tx queue and default ring size and MTU.
    pub fn with_name(name: impl Into<String>) -> Self {
        MemoryPort::new(MemoryPortConfig::new(name))
    }

    /// Packets per ring.
    pub fn ring_size(&self) -> usize {
        self.ring_size
    }

    /// Number of tx queues the device has (the state's `tx_queues` is how
    /// many are usable now).
    pub fn n_txq(&self) -> usize {
        self.txqs.len()
    }

    /// Changes the MTU.
    pub fn set_mtu(&self, mtu: usize) {
        self.mtu.store(mtu, Ordering::Relaxed);
    }

    /// Injects a transmit fault (or clears it with [`TxFault::None`]).
    pub fn set_tx_fault(&self, fault: TxFault) {
        self.fault.store(fault.encode(), Ordering::Release);
    }

    /// The fault in force.
    pub fn tx_fault(&self) -> TxFault {
        TxFault::decode(self.fault.load(Ordering::Acquire))
    }

    /// Sets carrier (IFF_LOWER_UP).
    pub fn set_carrier(&self, on: bool) {
        self.state.carrier.store(on, Ordering::Release);
    }

    /// Sets admin-up (IFF_UP).
    pub fn set_admin_up(&self, on: bool) {
        self.state.admin_up.store(on, Ordering::Release);
    }

    /// Sets running (IFF_RUNNING).
    pub fn set_running(&self, on: bool) {
        self.state.running.store(on, Ordering::Release);
    }

    /// Sets the number of usable tx queues (0 models an unregistering veth).
    pub fn set_tx_queues(&self, n: u32) {
        self.state.tx_queues.store(n, Ordering::Release);
    }

    /// A snapshot of the ring counters.
    pub fn counters(&self) -> MemoryPortCounters {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MemoryPortCounters {
            injected: l(&c.injected),
            inject_full: l(&c.inject_full),
            received: l(&c.received),
            received_bytes: l(&c.received_bytes),
            send_calls: l(&c.send_calls),
            send_short: l(&c.send_short),
            send_errors: l(&c.send_errors),
            sent: l(&c.sent),
            sent_bytes: l(&c.sent_bytes),
            completed: l(&c.completed),
            released: l(&c.released),
            returned: l(&c.returned),
        }
    }

    // ---- generator side -------------------------------------------------

    /// Puts a received frame on rx queue `qid`. Gives the packet back when
    /// the ring is full or `qid` does not exist.
    pub fn inject(&self, qid: usize, pkt: Packet) -> Result<(), Packet> {
        let Some(q) = self.rxqs.get(qid) else {
            return Err(pkt);
        };
        let pushed = take(&q.rx.prod).push(pkt);
        match pushed {
            Ok(()) => {
                bump(&self.counters.injected, 1);
                if let Some(b) = &q.bell {
                    b.ring();
                }
                Ok(())
            }
            Err(PushError::Full(p)) => {
                bump(&self.counters.inject_full, 1);
                Err(p)
            }
        }
    }

    /// Copies `frame` into a buffer from rx queue `qid`'s fill ring (a new
    /// buffer only while the fill ring is empty, i.e. during warm-up) and
    /// injects it. False when the frame does not fit a buffer, the ring is
    /// full or `qid` does not exist.
    pub fn inject_frame(&self, qid: usize, frame: &[u8]) -> bool {
        self.inject_frames(qid, core::iter::once(frame)) == 1
    }

    /// [`MemoryPort::inject_frame`] for several frames, taking the rings
    /// once. Stops at the first frame that does not fit or finds the ring
    /// full; returns how many were injected.
    pub fn inject_frames<'a>(
        &self,
        qid: usize,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) -> usize {
        let Some(q) = self.rxqs.get(qid) else {
            return 0;
        };
        let mut fill = take(&q.fill.cons);
        let mut rx = take(&q.rx.prod);
        let mut n = 0;
        for frame in frames {
            if rx.is_full() {
                bump(&self.counters.inject_full, 1);
                break;
            }
            let mut p = fill.pop().unwrap_or_default();
            // An oversized frame or (not reached: `is_full` was checked and
            // only we produce) a full ring frees the buffer: the fill ring's
            // producer end belongs to the PMD.
            if !p.set_data(frame) || rx.push(p).is_err() {
                bump(&self.counters.released, 1);
                break;
            }
            n += 1;
        }
        drop((fill, rx));
        bump(&self.counters.injected, n as u64);
        if let (Some(b), true) = (&q.bell, n != 0) {
            b.ring();
        }
        n
    }

    /// An empty buffer from rx queue `qid`'s fill ring, for generators that
    /// fill buffers themselves.
    pub fn take_fill(&self, qid: usize) -> Option<Packet> {
        take(&self.rxqs.get(qid)?.fill.cons).pop().ok()
    }

    /// Frames waiting on rx queue `qid`.
    pub fn rx_pending(&self, qid: usize) -> usize {
        self.rxqs
            .get(qid)
            .map_or(0, |q| self.ring_size - take(&q.rx.prod).slots())
    }

    // ---- sink side ------------------------------------------------------

    /// The next transmitted packet on tx queue `qid`. Hand the buffer back
    /// with [`MemoryPort::complete`].
    pub fn take_tx(&self, qid: usize) -> Option<Packet> {
        take(&self.txqs.get(qid)?.tx.cons).pop().ok()
    }

    /// Returns a buffer obtained from [`MemoryPort::take_tx`] on the same
    /// queue, for the next `send` to recycle into the PMD's pool.
    pub fn complete(&self, qid: usize, pkt: Packet) {
        let Some(q) = self.txqs.get(qid) else {
            bump(&self.counters.released, 1);
            return;
        };
        if take(&q.completion.prod).push(pkt).is_ok() {
            bump(&self.counters.completed, 1);
        } else {
            // Only a buffer that did not come from this queue's tx ring can
            // find the completion ring full; free it.
            bump(&self.counters.released, 1);
        }
    }

    /// Takes every packet waiting on tx queue `qid`, shows each frame to
    /// `f`, and completes the buffers (the rings are taken once). Returns
    /// how many.
    pub fn drain_tx(&self, qid: usize, mut f: impl FnMut(&[u8])) -> usize {
        let Some(q) = self.txqs.get(qid) else {
            return 0;
        };
        let mut tx = take(&q.tx.cons);
        let mut completion = take(&q.completion.prod);
        let mut n = 0;
        let mut released = 0;
        while let Ok(p) = tx.pop() {
            f(p.data());
            if completion.push(p).is_err() {
                released += 1;
            }
            n += 1;
        }
        bump(&self.counters.completed, n - released);
        bump(&self.counters.released, released);
        n as usize
    }

    /// Drains every tx queue (queue order, then ring order) into owned
    /// frames; for tests.
    pub fn drain_tx_frames(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for qid in 0..self.txqs.len() {
            self.drain_tx(qid, |f| out.push(f.to_vec()));
        }
        out
    }

    /// Packets waiting on tx queue `qid`.
    pub fn tx_pending(&self, qid: usize) -> usize {
        self.txqs.get(qid).map_or(0, |q| take(&q.tx.cons).slots())
    }

    /// Buffers accepted on tx queue `qid` and not yet reclaimed by a `send`.
    pub fn tx_outstanding(&self, qid: usize) -> usize {
        self.txqs
            .get(qid)
            .map_or(0, |q| q.outstanding.load(Ordering::Relaxed))
    }

    /// Moves completed buffers of tx queue `qid` into `pool`; returns how
    /// many. `send` does this itself; call it for a queue no PMD sends on
    /// any more (a deleted port) so that its buffers come home.
    pub fn reclaim(&self, qid: usize, pool: &mut PacketPool) -> usize {
        match self.txqs.get(qid) {
            Some(q) => self.reclaim_queue(q, pool),
            None => 0,
        }
    }

    #[inline]
    fn reclaim_queue(&self, q: &TxQueue, pool: &mut PacketPool) -> usize {
        let Some(mut completion) = try_take(&q.completion.cons) else {
            return 0;
        };
        let mut n = 0;
        let mut released = 0;
        while let Ok(p) = completion.pop() {
            n += 1;
            if pool.available() < pool.created() {
                pool.free(p);
            } else {
                // Not this pool's buffer (two PMDs on one queue): free it
                // rather than grow the pool.
                released += 1;
            }
        }
        if n != 0 {
            q.outstanding.fetch_sub(n, Ordering::Relaxed);
        }
        bump(&self.counters.released, released);
        n
    }
}

impl MemoryPort {
    /// Frees every buffer on the port's rings (see
    /// [`Vport::release_buffers`]); counted in `released`. Takes the
    /// generator and sink ends too, so call it only once the port is out of
    /// the PMDs' reach (teardown, or a test's final tally).
    pub fn release_all(&self) -> u64 {
        let n = self.take_all(&mut drop);
        bump(&self.counters.released, n);
        n
    }

    /// Hands every buffer on the port's rings to `back` (generator and sink
    /// ends included: see [`MemoryPort::release_all`]). Returns how many.
    fn take_all(&self, back: &mut dyn FnMut(Packet)) -> u64 {
        let mut n = 0;
        let mut drain = |c: &Mutex<Consumer<Packet>>| {
            let mut c = take(c);
            let mut k = 0u64;
            while let Ok(p) = c.pop() {
                back(p);
                k += 1;
            }
            k
        };
        for q in self.rxqs.iter() {
            n += drain(&q.rx.cons);
            n += drain(&q.fill.cons);
        }
        for q in self.txqs.iter() {
            let k = drain(&q.tx.cons) + drain(&q.completion.cons);
            q.outstanding
                .fetch_sub(usize::try_from(k).unwrap_or(0), Ordering::Relaxed);
            n += k;
        }
        n
    }
}

impl Vport for MemoryPort {
    fn release_buffers(&self, back: &mut dyn FnMut(Packet)) -> u64 {
        let n = self.take_all(back);
        bump(&self.counters.returned, n);
        n
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> &PortState {
        &self.state
    }

    fn mtu(&self) -> usize {
        self.mtu.load(Ordering::Relaxed)
    }

    fn n_rxq(&self) -> usize {
        self.rxqs.len()
    }

    fn rx_wait_fd(&self, qid: usize) -> Option<BorrowedFd<'_>> {
        self.rxqs.get(qid)?.bell.as_ref().map(|b| b.wait.as_fd())
    }

    fn recv(&self, qid: usize, pool: &mut PacketPool, out: &mut PacketBatch) -> usize {
        let Some(q) = self.rxqs.get(qid) else {
            return 0;
        };
        let (Some(mut rx), Some(mut fill)) = (try_take(&q.rx.cons), try_take(&q.fill.prod)) else {
            return 0;
        };
        if let Some(b) = &q.bell {
            b.drain();
        }
        let mut n = 0;
        let mut bytes = 0;
        let mut released = 0;
        while !out.is_full() {
            // Pay for the frame with a pool buffer first, as AF_XDP does
            // through its fill ring: no buffer, no receive.
            if pool.available() == 0 {
                break;
            }
            let Ok(pkt) = rx.pop() else { break };
            if let Some(empty) = pool.alloc() {
                if fill.push(empty).is_err() {
                    released += 1;
                }
            }
            bytes += pkt.len() as u64;
            if let Err(pkt) = out.push(pkt) {
                // Not reached (the loop checks for room); keep the buffer.
                pool.free(pkt);
                break;
            }
            n += 1;
        }
        bump(&self.counters.received, n);
        bump(&self.counters.received_bytes, bytes);
        bump(&self.counters.released, released);
        n as usize
    }

    fn send(
        &self,
        qid: usize,
        batch: &mut PacketBatch,
        pool: &mut PacketPool,
    ) -> Result<usize, TxError> {
        bump(&self.counters.send_calls, 1);
        let Some(q) = self.txqs.get(qid) else {
            bump(&self.counters.send_errors, 1);
            return Err(TxError::Failed);
        };
        self.reclaim_queue(q, pool);
        match self.tx_fault() {
            TxFault::None => {}
            TxFault::Fail(e) => {
                bump(&self.counters.send_errors, 1);
                return Err(e);
            }
            TxFault::RingFull => {
                if !batch.is_empty() {
                    bump(&self.counters.send_short, 1);
                }
                return Ok(0);
            }
        }
        let accepted = match try_take(&q.tx.prod) {
            None => 0,
            Some(mut tx) => {
                let outstanding = q.outstanding.load(Ordering::Relaxed);
                let n = batch
                    .len()
                    .min(self.ring_size.saturating_sub(outstanding))
                    .min(tx.slots());
                q.outstanding.fetch_add(n, Ordering::Relaxed);
                let mut bytes = 0;
                for p in batch.drain_front(n) {
                    bytes += p.len() as u64;
                    if let Err(PushError::Full(p)) = tx.push(p) {
                        // Not reached: `slots()` only grows under us.
                        pool.free(p);
                        q.outstanding.fetch_sub(1, Ordering::Relaxed);
                        bump(&self.counters.released, 1);
                    }
                }
                bump(&self.counters.sent_bytes, bytes);
                n
            }
        };
        if !batch.is_empty() {
            bump(&self.counters.send_short, 1);
        }
        bump(&self.counters.sent, accepted as u64);
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(frames: &[&[u8]], pool: &mut PacketPool) -> PacketBatch {
        let mut b = PacketBatch::new();
        for f in frames {
            let mut p = pool.alloc().unwrap();
            assert!(p.set_data(f));
            b.push(p).unwrap();
        }
        b
    }

    #[test]
    fn recv_pays_each_frame_with_a_pool_buffer() {
        let port = MemoryPort::with_name("m0");
        let mut pool = PacketPool::new(8);
        assert!(port.inject_frame(0, &[1; 60]));
        assert!(port.inject_frame(0, &[2; 61]));
        let mut out = PacketBatch::new();
        assert_eq!(port.recv(0, &mut pool, &mut out), 2);
        assert_eq!(pool.available(), 6, "two buffers went to the fill ring");
        let lens: Vec<_> = out.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [60, 61]);
        // The generator reuses the fill buffers: no new allocation.
        assert!(port.take_fill(0).is_some());
        let c = port.counters();
        assert_eq!((c.injected, c.received, c.received_bytes), (2, 2, 121));
        for p in out.drain() {
            pool.free(p);
        }
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn recv_stops_when_the_pool_is_empty() {
        let port = MemoryPort::with_name("m0");
        let mut pool = PacketPool::new(1);
        for _ in 0..3 {
            assert!(port.inject_frame(0, &[0; 60]));
        }
        let mut out = PacketBatch::new();
        assert_eq!(port.recv(0, &mut pool, &mut out), 1);
        assert_eq!(port.rx_pending(0), 2);
    }

    #[test]
    fn inject_into_a_full_rx_ring_is_refused_and_counted() {
        let port = MemoryPort::new(MemoryPortConfig::new("m0").ring_size(2));
        assert!(port.inject_frame(0, &[0; 60]));
        assert!(port.inject_frame(0, &[0; 60]));
        assert!(!port.inject_frame(0, &[0; 60]));
        assert!(!port.inject_frame(5, &[0; 60]), "no such queue");
        assert_eq!(port.counters().inject_full, 1);
    }

    #[test]
    fn send_then_complete_returns_buffers_to_the_pool() {
        let port = MemoryPort::with_name("m0");
        let mut pool = PacketPool::new(4);
        let mut b = batch_of(&[&[7; 64], &[8; 70]], &mut pool);
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(2));
        assert!(b.is_empty());
        assert_eq!(port.tx_outstanding(0), 2);
        let mut seen = Vec::new();
        assert_eq!(port.drain_tx(0, |f| seen.push(f.len())), 2);
        assert_eq!(seen, [64, 70]);
        assert_eq!(pool.available(), 2);
        assert_eq!(port.reclaim(0, &mut pool), 2);
        assert_eq!(pool.available(), 4);
        assert_eq!(port.tx_outstanding(0), 0);
    }

    #[test]
    fn send_accepts_only_what_the_ring_holds_and_keeps_the_rest() {
        let port = MemoryPort::new(MemoryPortConfig::new("m0").ring_size(3));
        let mut pool = PacketPool::new(8);
        let mut b = batch_of(
            &[&[1; 60], &[2; 60], &[3; 60], &[4; 60], &[5; 60]],
            &mut pool,
        );
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(3));
        assert_eq!(b.len(), 2);
        assert_eq!(b.iter().next().unwrap().data()[0], 4, "order kept");
        // The sink taking packets without completing them does not free room.
        let held = port.take_tx(0).unwrap();
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(0));
        port.complete(0, held);
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(1));
        assert_eq!(port.counters().send_short, 3);
    }

    #[test]
    fn tx_fault_fail_reports_the_error_and_accepts_nothing() {
        let port = MemoryPort::with_name("m0");
        let mut pool = PacketPool::new(2);
        let mut b = batch_of(&[&[1; 60]], &mut pool);
        port.set_tx_fault(TxFault::Fail(TxError::Gone));
        assert_eq!(port.send(0, &mut b, &mut pool), Err(TxError::Gone));
        port.set_tx_fault(TxFault::Fail(TxError::Failed));
        assert_eq!(port.send(0, &mut b, &mut pool), Err(TxError::Failed));
        assert_eq!(b.len(), 1);
        port.set_tx_fault(TxFault::RingFull);
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(0));
        port.set_tx_fault(TxFault::None);
        assert_eq!(port.send(0, &mut b, &mut pool), Ok(1));
        let c = port.counters();
        assert_eq!(
            (c.send_calls, c.send_errors, c.send_short, c.sent),
            (4, 2, 1, 1)
        );
    }

    #[test]
    fn bad_queue_ids_fail_without_panicking() {
        let port = MemoryPort::new(MemoryPortConfig::new("m0").queues(1, 0));
        let mut pool = PacketPool::new(2);
        let mut b = batch_of(&[&[1; 60]], &mut pool);
        assert_eq!(port.send(0, &mut b, &mut pool), Err(TxError::Failed));
        let mut out = PacketBatch::new();
        assert_eq!(port.recv(3, &mut pool, &mut out), 0);
        assert!(port.take_tx(0).is_none());
        assert_eq!(
            port.state().output_check(),
            Err(crate::stats::DropReason::NoTxQueue)
        );
    }

    #[test]
    fn rings_carry_packets_between_threads() {
        use std::sync::Arc;
        let port = Arc::new(MemoryPort::new(MemoryPortConfig::new("m0").ring_size(16)));
        let sink = {
            let port = Arc::clone(&port);
            std::thread::spawn(move || {
                let mut got = 0u64;
                let mut sum = 0u64;
                while got < 10_000 {
                    got += port.drain_tx(0, |f| sum += u64::from(f[0])) as u64;
                    std::thread::yield_now();
                }
                sum
            })
        };
        let mut pool = PacketPool::new(64);
        let mut expect = 0u64;
        let mut queued = PacketBatch::new();
        let mut i = 0u64;
        while i < 10_000 || !queued.is_empty() {
            while i < 10_000 && !queued.is_full() {
                let Some(mut p) = pool.alloc() else { break };
                assert!(p.set_data(&[(i % 251) as u8; 60]));
                expect += i % 251;
                queued.push(p).unwrap();
                i += 1;
            }
            port.send(0, &mut queued, &mut pool).unwrap();
            std::thread::yield_now();
        }
        assert_eq!(sink.join().unwrap(), expect);
        port.reclaim(0, &mut pool);
        assert_eq!(pool.available(), 64, "every buffer came back");
    }
}
