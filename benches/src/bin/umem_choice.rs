//! `umem_choice`: copy into the destination port's UMEM, or share one UMEM
//! across ports? A measurement for issue 4, in one run.
//!
//! # What
//! A minimal two-port AF_XDP forwarder — no flow table, no parsing: every
//! frame received on port A (`d0`) leaves by port B (`d1`) — built on
//! `xsk-rs` 0.11 and the project's own port program
//! ([`xswitch_bpf::PortProgram`]), in one of three buffer models:
//!
//! * `copy` — each port has its own UMEM. An rx frame of A is copied into a
//!   free tx frame of B's UMEM, produced on B's tx ring, and A's frame goes
//!   straight back to A's fill ring. B's completion ring returns its frames
//!   to B's free stack. This is xswitch's vport model minus the flow table.
//! * `copy2` — as `copy`, but through an intermediate packet buffer (UMEM →
//!   buffer → UMEM): the two copies xswitch makes today (vport `recv` into a
//!   `Packet`, vport `send` out of it).
//! * `shared` — one UMEM for both ports (`XDP_SHARED_UMEM` across devices:
//!   B's socket is bound with A's UMEM and gets its own fill/completion
//!   rings). The rx descriptor of A is produced unchanged on B's tx ring —
//!   no copy in userspace — and frames that come back on B's completion
//!   ring are put on A's fill ring, the fill ring of the queue that will use
//!   them (DESIGN.md "Platform facts").
//!
//! ```text
//!  gen ns             DUT ns (forwarder, pinned)              sink ns
//!  g0 ──veth── d0 [xswitch_port → XSK A] ⇒ [XSK B] d1 ──veth── s0 [XDP drop]
//!  generator (live frames, BPF_PROG_RUN), pinned to the other CPU
//! ```
//!
//! # Fairness between the modes
//! Same topology (built once), same port program, same ring sizes (`R`
//! descriptors per ring), same batch (32, xswitch's `BATCH_SIZE`), same
//! frame budget: A always has exactly `R` frames in the kernel (fill + rx)
//! and `R` frames for tx in flight; B keeps `R` frames on its own fill ring
//! for stray frames from the sink side (IPv6 router solicitations), which
//! go straight back. Same syscall policy in every mode: a `sendto` kick
//! after each batch produced (or while the last kick asked to retry) when
//! the tx ring wants a wake-up, a fill wake-up (`recvfrom`) when the fill
//! ring wants one — xswitch's `need_wakeup` policy. The forwarder takes from
//! A's rx ring only what B's tx side can take at once, so no mode drops in
//! userspace: backpressure reaches the kernel's rx ring in every mode alike.
//! The kernel publishes its fill-ring consumer index lazily, so a fill
//! ring can look full although the port owns no more frames than it holds:
//! frames it does not take at once wait in userspace (held in the copy
//! modes, spare in shared mode) and go first next time — never leaked.
//! Modes alternate within each repetition, and the order rotates from one
//! repetition to the next.
//!
//! # Measured
//! Frames counted by the XDP drop sink on `s0` over a window after a
//! warm-up (and `s0`'s kernel rx counter as a cross-check), bytes per frame
//! at the sink (proves the frames arrive whole), the forwarder thread's CPU
//! time from `/proc/self/task/TID/schedstat` (nanoseconds) and its user /
//! system split from `.../stat`, the time spent in iterations that moved
//! frames ("busy": the forwarder polls, so its CPU time alone is always
//! the whole window), `/proc/stat` busy per CPU (veth NAPI — the rx copy
//! into A's UMEM, the sink's XDP — runs in softirq on the transmitting
//! CPU), and the load average.
//!
//! # Cleanup
//! Namespaces (and with them veths and addresses) are guards deleted on
//! drop; programs are BPF links detached when their owners drop or the
//! process dies. SIGINT/SIGTERM only set a flag: the run stops at the next
//! check and unwinds through the guards.
//!
//! # Unsafe
//! `xsk-rs` ring and UMEM accessors are `unsafe` (frames must belong to the
//! UMEM and be on no ring), and the kicks are raw `sendto`/`recvfrom`.
//! Each block carries a `// SAFETY:` comment.
#![allow(unsafe_code)] // AF_XDP rings, UMEM access and kick syscalls (see "Unsafe").

use std::io::Write as _;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use control::bench::cpu::CpuSnapshot;
use control::bench::net::{if_counters, BenchNet};
use dataplane::vport::afxdp;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};
use xswitch_bpf::gen::netns::{ifindex_of, pin_current_thread, NetnsGuard};
use xswitch_bpf::gen::{GenConfig, Generator, XdpSink};
use xswitch_bpf::{PortProgram, XdpMode};

/// Frames per batch: xswitch's `BATCH_SIZE`, and the kernel's copy-mode tx
/// budget per `sendto` (`TX_BATCH_SIZE` in net/xdp/xsk.c).
const BATCH: usize = 32;
/// Bytes per UMEM frame (xswitch's `UMEM_FRAME_SIZE`).
const FRAME: u32 = 2048;

/// Buffer model of the forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One UMEM per port; one copy A → B.
    Copy,
    /// One UMEM per port; two copies A → buffer → B (xswitch today).
    Copy2,
    /// One UMEM shared by both ports; descriptors move, bytes do not.
    Shared,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Copy2 => "copy2",
            Mode::Shared => "shared",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Measure copy vs shared UMEM forwarding between two AF_XDP veth ports")]
struct Args {
    /// Modes to compare (alternated within each repetition).
    #[arg(long, value_delimiter = ',', default_value = "copy,copy2,shared")]
    modes: Vec<Mode>,
    /// Frame sizes, FCS included (64..=1518).
    #[arg(long, value_delimiter = ',', default_value = "64,1518")]
    sizes: Vec<usize>,
    /// Repetitions of every (mode, size).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Measurement window per trial, seconds.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// CPU of the forwarder thread.
    #[arg(long, default_value_t = 1)]
    fwd_cpu: usize,
    /// CPU of the generator thread.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// Descriptors per ring (rx, tx, fill, completion); a power of two.
    #[arg(long, default_value_t = 2048)]
    ring: u32,
}

/// Trial settings (the part of [`Args`] one trial needs).
#[derive(Debug, Clone, Copy)]
struct TrialCfg {
    mode: Mode,
    size: usize,
    warmup: Duration,
    window: Duration,
    fwd_cpu: usize,
    gen_cpu: usize,
    ring: u32,
}

// ---------------------------------------------------------------------------
// Sockets and rings.

/// One AF_XDP socket's four rings.
struct Xsk {
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    fd: RawFd,
}

fn umem(frames: u32, ring: u32) -> Result<(Umem, Vec<FrameDesc>), String> {
    let q = QueueSize::new(ring).map_err(|e| format!("ring size {ring}: {e}"))?;
    let cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME).map_err(|e| e.to_string())?)
        .fill_queue_size(q)
        .comp_queue_size(q)
        .frame_headroom(0)
        .build()
        .map_err(|e| e.to_string())?;
    let n = NonZeroU32::new(frames).ok_or("empty UMEM")?;
    Umem::new(cfg, n, false).map_err(|e| format!("UMEM of {frames} frames: {e}"))
}

/// Binds a socket to queue 0 of `ifname` on `umem` and fills its fill ring
/// with `fill`. A second socket on the same UMEM (another device) is an
/// `XDP_SHARED_UMEM` bind with its own fill and completion rings.
fn xsk(umem: &Umem, ifname: &str, ring: u32, fill: &[FrameDesc]) -> Result<Xsk, String> {
    let q = QueueSize::new(ring).map_err(|e| e.to_string())?;
    let cfg = SocketConfig::builder()
        .rx_queue_size(q)
        .tx_queue_size(q)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let iface: Interface = ifname
        .parse()
        .map_err(|_| format!("bad interface name {ifname:?}"))?;
    // SAFETY: INHIBIT_PROG_LOAD is set (Socket::new's requirement when a
    // UMEM is shared), and each (interface, queue) is bound once per run.
    let (tx, rx, rings) = unsafe { Socket::new(cfg, umem, &iface, 0) }
        .map_err(|e| format!("{ifname}: AF_XDP socket: {e}"))?;
    let (mut fq, comp) =
        rings.ok_or_else(|| format!("{ifname}: no fill/completion ring came back"))?;
    // SAFETY: the frames come fresh from Umem::new for this UMEM and are on
    // no ring; the kernel owns them until they come back on an rx ring.
    let put = unsafe { fq.produce(fill) };
    if put != fill.len() {
        return Err(format!(
            "{ifname}: fill ring took {put} of {} frames",
            fill.len()
        ));
    }
    let fd = rx.fd().as_raw_fd();
    Ok(Xsk {
        tx,
        rx,
        fill: fq,
        comp,
        fd,
    })
}

/// One non-blocking `sendto`: asks the kernel to process the tx ring.
/// Returns false when it asks to be called again (EAGAIN/EBUSY/ENOBUFS).
fn kick(fd: RawFd) -> Result<bool, String> {
    match afxdp::kick(fd) {
        Ok(()) => Ok(true),
        Err(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => Ok(false),
        Err(e) => Err(format!(
            "sendto on the tx socket: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// One non-blocking `recvfrom`: tells the kernel the fill ring has frames
/// (an error is left for the next wake-up).
fn wake_fill(fd: RawFd) {
    let _ = afxdp::wake_fill(fd);
}

/// This thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
#[inline]
fn thread_cpu_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes one timespec into `ts`, a live local.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Kernel statistics of AF_XDP socket `fd` (`XDP_STATISTICS`): rx dropped
/// (no room), rx ring full, fill ring empty; zeros if unavailable.
fn xsk_stats(fd: RawFd) -> (u64, u64, u64) {
    afxdp::xdp_statistics(fd).map_or((0, 0, 0), |st| {
        (st.rx_dropped, st.rx_ring_full, st.rx_fill_ring_empty_descs)
    })
}

// ---------------------------------------------------------------------------
// The forwarder.

/// Counters the forwarder publishes (relaxed stores of its own totals;
/// read twice per trial by the main thread).
#[derive(Debug)]
struct Published {
    /// Batches by userspace nanoseconds per packet (1 ns bins; the last
    /// bin holds everything above). A median over batches ignores the few
    /// batches a preemption landed in, which a sum cannot.
    user_hist: Box<[AtomicU64]>,
    rx: AtomicU64,
    tx: AtomicU64,
    kicks: AtomicU64,
    iters: AtomicU64,
    empty_iters: AtomicU64,
    busy_ns: AtomicU64,
    user_ns: AtomicU64,
    strays: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rx: u64,
    tx: u64,
    kicks: u64,
    iters: u64,
    empty_iters: u64,
    busy_ns: u64,
    user_ns: u64,
    strays: u64,
}

/// Bins of [`Published::user_hist`].
const HIST_BINS: usize = 4096;

impl Default for Published {
    fn default() -> Self {
        Published {
            user_hist: (0..HIST_BINS).map(|_| AtomicU64::new(0)).collect(),
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
            iters: AtomicU64::new(0),
            empty_iters: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            user_ns: AtomicU64::new(0),
            strays: AtomicU64::new(0),
        }
    }
}

fn hist_read(p: &Published) -> Vec<u64> {
    p.user_hist
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect()
}

/// The median bin of `later - earlier` (NaN when empty).
fn hist_median(earlier: &[u64], later: &[u64]) -> f64 {
    let d: Vec<u64> = later
        .iter()
        .zip(earlier)
        .map(|(l, e)| l.saturating_sub(*e))
        .collect();
    let total: u64 = d.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let mut acc = 0;
    for (i, c) in d.iter().enumerate() {
        acc += c;
        if 2 * acc >= total {
            return i as f64;
        }
    }
    f64::NAN
}

impl Counts {
    fn publish(&self, p: &Published) {
        p.rx.store(self.rx, Ordering::Relaxed);
        p.tx.store(self.tx, Ordering::Relaxed);
        p.kicks.store(self.kicks, Ordering::Relaxed);
        p.iters.store(self.iters, Ordering::Relaxed);
        p.empty_iters.store(self.empty_iters, Ordering::Relaxed);
        p.busy_ns.store(self.busy_ns, Ordering::Relaxed);
        p.user_ns.store(self.user_ns, Ordering::Relaxed);
        p.strays.store(self.strays, Ordering::Relaxed);
    }

    fn read(p: &Published) -> Counts {
        Counts {
            rx: p.rx.load(Ordering::Relaxed),
            tx: p.tx.load(Ordering::Relaxed),
            kicks: p.kicks.load(Ordering::Relaxed),
            iters: p.iters.load(Ordering::Relaxed),
            empty_iters: p.empty_iters.load(Ordering::Relaxed),
            busy_ns: p.busy_ns.load(Ordering::Relaxed),
            user_ns: p.user_ns.load(Ordering::Relaxed),
            strays: p.strays.load(Ordering::Relaxed),
        }
    }
}

/// Both ports of a rig. Field order is drop order: sockets, then UMEMs,
/// then the programs (detached last).
struct Rig {
    a: Xsk,
    b: Xsk,
    /// A's UMEM, or the shared one.
    umem_a: Umem,
    /// B's UMEM (`None` in shared mode).
    umem_b: Option<Umem>,
    /// Frames for tx in flight: B's tx frames (copy modes) or A's spare
    /// frames (shared mode); `spare[..n_spare]` are free.
    spare: Vec<FrameDesc>,
    /// Descriptors per ring: the frames A keeps in the kernel.
    ring: usize,
    _progs: [PortProgram; 2],
}

/// Builds the rig for `mode` on `d0` (A) and `d1` (B) in the calling
/// thread's namespace: port programs in native mode, sockets, XSKMAP
/// entries.
fn build_rig(mode: Mode, d0: &str, d1: &str, ring: u32) -> Result<Rig, String> {
    let attach = |name: &str| -> Result<PortProgram, String> {
        let idx = ifindex_of(name).map_err(|e| e.to_string())?;
        PortProgram::attach(idx, name, XdpMode::Native).map_err(|e| e.to_string())
    };
    let progs = [attach(d0)?, attach(d1)?];
    let r = ring as usize;
    let (a, b, umem_a, umem_b, spare) = match mode {
        Mode::Copy | Mode::Copy2 => {
            // A: R on its fill ring (R unused tx frames, as an xswitch port
            // has); B: R on its fill ring, R for tx.
            let (ua, da) = umem(2 * ring, ring)?;
            let (ub, db) = umem(2 * ring, ring)?;
            let a = xsk(&ua, d0, ring, &da[..r])?;
            let b = xsk(&ub, d1, ring, &db[..r])?;
            (a, b, ua, Some(ub), db[r..].to_vec())
        }
        Mode::Shared => {
            // One UMEM: A's R fill frames, A's R spare frames (tx in flight),
            // B's R fill frames, R unused (same 4R as the copy modes).
            let (u, d) = umem(4 * ring, ring)?;
            let a = xsk(&u, d0, ring, &d[..r])?;
            let b = xsk(&u, d1, ring, &d[2 * r..3 * r])?;
            (a, b, u, None, d[r..2 * r].to_vec())
        }
    };
    progs[0].register_xsk(0, a.fd).map_err(|e| e.to_string())?;
    progs[1].register_xsk(0, b.fd).map_err(|e| e.to_string())?;
    Ok(Rig {
        a,
        b,
        umem_a,
        umem_b,
        spare,
        ring: r,
        _progs: progs,
    })
}

/// Frames B received (strays from the sink side) go back to B's fill ring.
#[inline]
fn recycle_strays(b: &mut Xsk, scratch: &mut [FrameDesc]) -> u64 {
    // Only as many as the fill ring takes back at once (its consumer index
    // is published lazily by the kernel).
    let room = b.fill.nb_free(scratch.len() as u32) as usize;
    if room == 0 {
        return 0;
    }
    let want = room.min(scratch.len());
    // SAFETY: descriptors come off B's rx ring (B's UMEM, or the shared
    // one) and go back, unread, to B's fill ring, which has room for them.
    let n = unsafe { b.rx.consume(&mut scratch[..want]) };
    if n != 0 {
        // SAFETY: as above.
        unsafe { b.fill.produce(&scratch[..n]) };
        if b.fill.needs_wakeup() {
            wake_fill(b.fd);
        }
    }
    n as u64
}

/// Runs the forwarding loop until `stop`; returns why it ended early, if
/// it did.
fn forward(rig: &mut Rig, mode: Mode, stop: &AtomicBool, out: &Published) -> Result<(), String> {
    let mut c = Counts::default();
    let mut rx_descs = [FrameDesc::default(); BATCH];
    let mut stray_descs = [FrameDesc::default(); BATCH];
    // copy2's packet buffers, allocated once.
    let mut bufs = vec![[0u8; FRAME as usize]; BATCH];
    let mut lens = [0usize; BATCH];
    let total_spare = rig.spare.len();
    let mut n_spare = total_spare;
    let mut in_flight = 0usize;
    // Frames A has in the kernel (fill + rx); kept at R in every mode.
    let ring = rig.ring;
    let mut a_in_kernel = ring;
    let mut retry_kick = false;
    // A's frames the fill ring had no room for (copy modes), retried first.
    let mut held: Vec<FrameDesc> = Vec::with_capacity(ring);
    let mut last = thread_cpu_now();
    let mut last_busy = false;
    while !stop.load(Ordering::Relaxed) {
        // CPU time of this thread (not wall time: the CPUs are shared, and
        // a preempted iteration must not count as work).
        let now = thread_cpu_now();
        if last_busy {
            c.busy_ns += now.saturating_sub(last);
        }
        last = now;
        c.iters += 1;
        // Wall time of the userspace part (ring operations and copies: what
        // the UMEM choice changes), up to the kick. Short enough that
        // preemption inside it is rare; medians take care of the rest.
        let t_user = Instant::now();

        // Completions of B: frames back to the spare stack (above its top).
        if in_flight != 0 {
            // SAFETY: B's completion ring returns frames this loop produced
            // on B's tx ring (of B's UMEM, or the shared one); the kernel is
            // done with them. At most `in_flight` come back: they fit above
            // `n_spare`.
            let k = unsafe { rig.b.comp.consume(&mut rig.spare[n_spare..]) };
            n_spare += k;
            in_flight -= k;
        }

        let mut refilled = false;
        if !held.is_empty() {
            let k = held
                .len()
                .min(rig.a.fill.nb_free(held.len() as u32) as usize);
            if k != 0 {
                let from = held.len() - k;
                // SAFETY: held frames of A's UMEM (on no ring), k ≤ room.
                unsafe { rig.a.fill.produce(&held[from..]) };
                held.truncate(from);
                a_in_kernel += k;
                refilled = true;
            }
        }
        if mode == Mode::Shared && a_in_kernel < ring && n_spare != 0 {
            // Completed frames go to the fill ring of the queue that will
            // use them: A's.
            let want = (ring - a_in_kernel).min(n_spare);
            let want = want.min(rig.a.fill.nb_free(want as u32) as usize);
            if want != 0 {
                // SAFETY: spare frames of the shared UMEM on no ring.
                let put = unsafe { rig.a.fill.produce(&rig.spare[n_spare - want..n_spare]) };
                n_spare -= put;
                a_in_kernel += put;
                refilled = put != 0;
            }
        }

        // Take from A only what B's tx side takes at once.
        let mut room = BATCH;
        if mode != Mode::Shared {
            room = room.min(n_spare);
        }
        if room != 0 {
            room = room.min(rig.b.tx.nb_free(room as u32) as usize);
        }
        let n = if room == 0 {
            0
        } else {
            // SAFETY: descriptors come off A's rx ring; the frames are ours
            // until they go to a fill or tx ring below.
            unsafe { rig.a.rx.consume(&mut rx_descs[..room]) }
        };

        if n != 0 {
            c.rx += n as u64;
            a_in_kernel -= n;
            let produced = match mode {
                Mode::Shared => {
                    // SAFETY: the rx frames (shared UMEM) move to B's tx
                    // ring untouched; nothing else refers to them until B's
                    // completion ring returns them. `n ≤ nb_free`.
                    unsafe { rig.b.tx.produce(&rx_descs[..n]) }
                }
                Mode::Copy | Mode::Copy2 => {
                    let umem_b = rig.umem_b.as_ref().ok_or("copy mode without B's UMEM")?;
                    let dst = &mut rig.spare[n_spare - n..n_spare];
                    if mode == Mode::Copy2 {
                        for (i, d) in rx_descs[..n].iter().enumerate() {
                            // SAFETY: an rx frame of A's UMEM, ours until it
                            // goes back to the fill ring below.
                            let src = unsafe { rig.umem_a.data(d) };
                            let s = src.contents();
                            bufs[i][..s.len()].copy_from_slice(s);
                            lens[i] = s.len();
                        }
                        for (i, d) in dst.iter_mut().enumerate() {
                            // SAFETY: a free tx frame of B's UMEM on no ring.
                            let mut data = unsafe { umem_b.data_mut(d) };
                            let mut cur = data.cursor();
                            cur.set_pos(0);
                            cur.write_all(&bufs[i][..lens[i]])
                                .map_err(|e| format!("frame copy: {e}"))?;
                        }
                    } else {
                        for (s, d) in rx_descs[..n].iter().zip(dst.iter_mut()) {
                            // SAFETY: an rx frame of A's UMEM, ours until it
                            // goes back to the fill ring below.
                            let src = unsafe { rig.umem_a.data(s) };
                            // SAFETY: a free tx frame of B's UMEM on no ring.
                            let mut data = unsafe { umem_b.data_mut(d) };
                            let mut cur = data.cursor();
                            cur.set_pos(0);
                            cur.write_all(src.contents())
                                .map_err(|e| format!("frame copy: {e}"))?;
                        }
                    }
                    // SAFETY: free frames of B's UMEM written above, not
                    // touched again until B's completion ring returns them.
                    let p = unsafe { rig.b.tx.produce(dst) };
                    n_spare -= p;
                    // A's rx frames go back to A's fill ring. The kernel
                    // publishes its fill consumer index lazily, so the ring
                    // can look full although A owns only R frames: what it
                    // does not take is held and retried first next time
                    // (as xswitch's vport does), never lost.
                    if rig.a.fill.nb_free(n as u32) as usize >= n {
                        // SAFETY: A's rx frames, only read above, not
                        // referenced again; the ring has room for all n.
                        unsafe { rig.a.fill.produce(&rx_descs[..n]) };
                        a_in_kernel += n;
                        refilled = true;
                    } else {
                        held.extend_from_slice(&rx_descs[..n]);
                    }
                    p
                }
            };
            if produced != n {
                return Err(format!("tx ring took {produced} of {n} reserved frames"));
            }
            in_flight += produced;
            c.tx += produced as u64;
        }
        if n != 0 {
            let ns = t_user.elapsed().as_nanos() as u64;
            c.user_ns += ns;
            let bin = ((ns / n as u64) as usize).min(HIST_BINS - 1);
            out.user_hist[bin].fetch_add(1, Ordering::Relaxed);
        }
        if refilled && rig.a.fill.needs_wakeup() {
            wake_fill(rig.a.fd);
        }
        if (n != 0 || retry_kick) && rig.b.tx.needs_wakeup() {
            c.kicks += 1;
            retry_kick = !kick(rig.b.fd)?;
        } else if n == 0 {
            retry_kick = false;
        }
        c.strays += recycle_strays(&mut rig.b, &mut stray_descs);

        last_busy = n != 0;
        if n == 0 {
            c.empty_iters += 1;
        }
        c.publish(out);
    }
    debug_assert!(n_spare + in_flight == total_spare);
    Ok(())
}

// ---------------------------------------------------------------------------
// One trial.

/// A point-in-time reading of everything a trial measures.
struct Snap {
    t: Instant,
    sink_pkts: u64,
    sink_bytes: u64,
    s0_rx: u64,
    fwd: Counts,
    /// Forwarder thread: ns on CPU, user and system ticks.
    cpu_ns: u64,
    utime: u64,
    stime: u64,
    cpus: CpuSnapshot,
    /// A's socket: rx dropped, rx ring full, fill ring empty.
    a_xsk: (u64, u64, u64),
    user_hist: Vec<u64>,
}

/// What one trial measured over its window.
#[derive(Debug, Clone)]
struct Trial {
    mode: Mode,
    size: usize,
    rep: usize,
    mpps: f64,
    gbps: f64,
    bytes_per_frame: f64,
    s0_kernel_mpps: f64,
    gen_offered_mpps: f64,
    fwd_cpu_ns_per_pkt: f64,
    fwd_busy_ns_per_pkt: f64,
    /// Of which: rings and copies in userspace (before the kick).
    fwd_user_ns_per_pkt: f64,
    /// Median over batches of the same, per packet.
    fwd_user_ns_median: f64,
    /// Frames A's socket lost over the window: no rx ring room, fill empty.
    a_rx_lost: u64,
    a_fill_empty: u64,
    fwd_sys_share: f64,
    empty_iter_pct: f64,
    kicks_per_pkt: f64,
    busy_pct: Vec<f64>,
    load1: f64,
    window_secs: f64,
    fwd_ran_on: Option<usize>,
    gen_ran_on: Option<usize>,
}

fn thread_cpu(tid: u32) -> (u64, u64, u64) {
    let ns = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // Fields after the ")" of the command: state is field 3; utime and
    // stime are fields 14 and 15.
    let (u, s) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|t| {
            let rest = &t[t.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
        })
        .unwrap_or((0, 0));
    (ns, u, s)
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn snap(
    net: &BenchNet,
    sink: &XdpSink,
    fwd: &Published,
    tid: u32,
    a_fd: RawFd,
) -> Result<Snap, String> {
    let t = Instant::now();
    let sc = sink.counts().map_err(|e| e.to_string())?;
    let s0 = if_counters(&net.sink, &net.s0).map_err(|e| e.to_string())?;
    let (cpu_ns, utime, stime) = thread_cpu(tid);
    Ok(Snap {
        t,
        sink_pkts: sc.packets,
        sink_bytes: sc.bytes,
        s0_rx: s0.rx_packets,
        fwd: Counts::read(fwd),
        cpu_ns,
        utime,
        stime,
        cpus: CpuSnapshot::take().map_err(|e| e.to_string())?,
        a_xsk: xsk_stats(a_fd),
        user_hist: hist_read(fwd),
    })
}

/// Sleeps `d`, waking early (false) when `stop` is set.
fn sleep_unless(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
    !stop.load(Ordering::Relaxed)
}

/// Stops a thread's loop on drop (also on an early return), then joins it.
struct StopJoin<T> {
    flag: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<T>>,
}

impl<T> StopJoin<T> {
    fn finish(mut self) -> Option<T> {
        self.flag.store(true, Ordering::Relaxed);
        self.handle.take()?.join().ok()
    }
}

impl<T> Drop for StopJoin<T> {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs one trial: forwarder up, generator flat out, warm-up, window.
/// Returns `Ok(None)` when interrupted.
fn trial(
    net: &BenchNet,
    sink: &XdpSink,
    cfg: TrialCfg,
    rep: usize,
    stop: &AtomicBool,
) -> Result<Option<Trial>, String> {
    let dut = net.dut.as_ref().ok_or("topology without a DUT namespace")?;
    let published = Arc::new(Published::default());

    // Forwarder: pinned, in the DUT namespace, reports its tid when ready.
    let fwd_stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(u32, Option<usize>, RawFd), String>>();
    let fwd = {
        let (dut, d0, d1) = (dut.name().to_string(), net.d0.clone(), net.d1.clone());
        let (flag, out) = (Arc::clone(&fwd_stop), Arc::clone(&published));
        std::thread::spawn(move || -> Result<(), String> {
            let setup = (|| {
                pin_current_thread(cfg.fwd_cpu).map_err(|e| e.to_string())?;
                let _in = NetnsGuard::enter(&dut).map_err(|e| e.to_string())?;
                let rig = build_rig(cfg.mode, &d0, &d1, cfg.ring)?;
                let tid = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| p.file_name()?.to_str()?.parse().ok())
                    .ok_or("cannot read /proc/thread-self")?;
                Ok::<_, String>((rig, tid))
            })();
            let mut rig = match setup {
                Ok((rig, tid)) => {
                    let cpu = xswitch_bpf::gen::netns::current_cpu();
                    let _ = ready_tx.send(Ok((tid, cpu, rig.a.fd)));
                    rig
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            forward(&mut rig, cfg.mode, &flag, &out)
        })
    };
    let fwd = StopJoin {
        flag: fwd_stop,
        handle: Some(fwd),
    };
    let (tid, fwd_ran_on, a_fd) = ready_rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "forwarder did not come up within 20 s".to_string())??;

    // Generator: pinned to the other CPU, in the generator namespace.
    let gen_stop = Arc::new(AtomicBool::new(false));
    let (src_ip, dst_ip) = net.addrs(false);
    let gcfg = GenConfig::new(cfg.size, net.g_mac, net.s_mac, src_ip, dst_ip);
    let (gready_tx, gready_rx) = mpsc::channel::<Result<(), String>>();
    let gen = {
        let (ns, g0, flag) = (
            net.gen.name().to_string(),
            net.g0.clone(),
            Arc::clone(&gen_stop),
        );
        std::thread::spawn(move || {
            let run = || -> Result<_, String> {
                pin_current_thread(cfg.gen_cpu).map_err(|e| e.to_string())?;
                let _in = NetnsGuard::enter(&ns).map_err(|e| e.to_string())?;
                let idx = ifindex_of(&g0).map_err(|e| e.to_string())?;
                let mut g = Generator::new(idx, gcfg).map_err(|e| e.to_string())?;
                let _ = gready_tx.send(Ok(()));
                g.run_until(Duration::from_secs(3600), || flag.load(Ordering::Relaxed))
                    .map_err(|e| e.to_string())
            };
            let r = run();
            if let Err(e) = &r {
                let _ = gready_tx.send(Err(e.clone()));
            }
            r
        })
    };
    let gen = StopJoin {
        flag: gen_stop,
        handle: Some(gen),
    };
    gready_rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "generator did not come up within 20 s".to_string())??;

    if !sleep_unless(cfg.warmup, stop) {
        return Ok(None);
    }
    let s0 = snap(net, sink, &published, tid, a_fd)?;
    let load = load1();
    if !sleep_unless(cfg.window, stop) {
        return Ok(None);
    }
    let s1 = snap(net, sink, &published, tid, a_fd)?;
    let g = gen.finish().ok_or("generator thread panicked")??;
    fwd.finish().ok_or("forwarder thread panicked")??;

    let secs = (s1.t - s0.t).as_secs_f64();
    let pkts = s1.sink_pkts - s0.sink_pkts;
    let bytes = s1.sink_bytes - s0.sink_bytes;
    let f = Counts {
        rx: s1.fwd.rx - s0.fwd.rx,
        tx: s1.fwd.tx - s0.fwd.tx,
        kicks: s1.fwd.kicks - s0.fwd.kicks,
        iters: s1.fwd.iters - s0.fwd.iters,
        empty_iters: s1.fwd.empty_iters - s0.fwd.empty_iters,
        busy_ns: s1.fwd.busy_ns - s0.fwd.busy_ns,
        user_ns: s1.fwd.user_ns - s0.fwd.user_ns,
        strays: s1.fwd.strays - s0.fwd.strays,
    };
    let per = |x: f64| if pkts == 0 { f64::NAN } else { x / pkts as f64 };
    let (du, ds) = (s1.utime - s0.utime, s1.stime - s0.stime);
    Ok(Some(Trial {
        mode: cfg.mode,
        size: cfg.size,
        rep,
        mpps: pkts as f64 / secs / 1e6,
        // On the wire: frame + FCS (bytes at the sink exclude it).
        gbps: (bytes + 4 * pkts) as f64 * 8.0 / secs / 1e9,
        bytes_per_frame: per(bytes as f64),
        s0_kernel_mpps: (s1.s0_rx - s0.s0_rx) as f64 / secs / 1e6,
        gen_offered_mpps: g.pps() / 1e6,
        fwd_cpu_ns_per_pkt: per((s1.cpu_ns - s0.cpu_ns) as f64),
        fwd_busy_ns_per_pkt: if f.tx == 0 {
            f64::NAN
        } else {
            f.busy_ns as f64 / f.tx as f64
        },
        fwd_user_ns_per_pkt: if f.tx == 0 {
            f64::NAN
        } else {
            f.user_ns as f64 / f.tx as f64
        },
        fwd_user_ns_median: hist_median(&s0.user_hist, &s1.user_hist),
        a_rx_lost: s1.a_xsk.0 - s0.a_xsk.0,
        a_fill_empty: s1.a_xsk.2 - s0.a_xsk.2,
        fwd_sys_share: if du + ds == 0 {
            f64::NAN
        } else {
            ds as f64 / (du + ds) as f64
        },
        empty_iter_pct: if f.iters == 0 {
            f64::NAN
        } else {
            100.0 * f.empty_iters as f64 / f.iters as f64
        },
        kicks_per_pkt: if f.tx == 0 {
            f64::NAN
        } else {
            f.kicks as f64 / f.tx as f64
        },
        busy_pct: s0.cpus.busy_pct_until(&s1.cpus),
        load1: load,
        window_secs: secs,
        fwd_ran_on,
        gen_ran_on: g.cpu,
    }))
}

// ---------------------------------------------------------------------------
// Summary.

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn print_trial(t: &Trial, fwd_cpu: usize, gen_cpu: usize) {
    let cpu = |i: usize| t.busy_pct.get(i).copied().unwrap_or(f64::NAN);
    println!(
        "{:>6} {:>5} rep {} | sink {:.3} Mpps ({:.2} Gb/s, {:.0} B/frame, s0 kernel {:.3}) | \
         offered {:.2} | fwd {:.0} ns/pkt cpu, {:.0} ns/pkt work ({:.1} in userspace rings+copies, batch median {:.0}), sys {:.0}%, empty {:.1}%, \
         kicks/pkt {:.3} | A lost {:.3} Mpps (fill empty {}) | busy fwd cpu{} {:.0}% gen cpu{} {:.0}% | load1 {:.2} | ran on fwd {:?} gen {:?}",
        t.mode.name(),
        t.size,
        t.rep,
        t.mpps,
        t.gbps,
        t.bytes_per_frame,
        t.s0_kernel_mpps,
        t.gen_offered_mpps,
        t.fwd_cpu_ns_per_pkt,
        t.fwd_busy_ns_per_pkt,
        t.fwd_user_ns_per_pkt,
        t.fwd_user_ns_median,
        100.0 * t.fwd_sys_share,
        t.empty_iter_pct,
        t.kicks_per_pkt,
        t.a_rx_lost as f64 / 1e6 / t.window_secs,
        t.a_fill_empty,
        fwd_cpu,
        cpu(fwd_cpu),
        gen_cpu,
        cpu(gen_cpu),
        t.load1,
        t.fwd_ran_on,
        t.gen_ran_on,
    );
    let _ = std::io::stdout().flush();
}

fn print_summary(trials: &[Trial], args: &Args) {
    println!();
    println!(
        "| size | mode | n | Mpps (median) | min–max | Gb/s | fwd CPU ns/pkt | fwd work ns/pkt | userspace ns/pkt (mean, batch median) | \
         sys share | A rx lost Mpps | cpu{} busy % (fwd) | cpu{} busy % (gen) | vs copy |",
        args.fwd_cpu, args.gen_cpu
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &size in &args.sizes {
        let of = |m: Mode| -> Vec<&Trial> {
            trials
                .iter()
                .filter(|t| t.size == size && t.mode == m)
                .collect()
        };
        let copy_mpps = median(of(Mode::Copy).iter().map(|t| t.mpps).collect());
        for &m in &args.modes {
            let ts = of(m);
            if ts.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&Trial) -> f64| median(ts.iter().map(|t| f(t)).collect());
            let mpps = col(&|t| t.mpps);
            let lo = ts.iter().map(|t| t.mpps).fold(f64::INFINITY, f64::min);
            let hi = ts.iter().map(|t| t.mpps).fold(0.0, f64::max);
            println!(
                "| {size} | {} | {} | {:.3} | {:.3}–{:.3} | {:.2} | {:.0} | {:.0} | {:.0}, {:.0} | {:.0} % | {:.3} | {:.0} | {:.0} | {:.3} |",
                m.name(),
                ts.len(),
                mpps,
                lo,
                hi,
                col(&|t| t.gbps),
                col(&|t| t.fwd_cpu_ns_per_pkt),
                col(&|t| t.fwd_busy_ns_per_pkt),
                col(&|t| t.fwd_user_ns_per_pkt),
                col(&|t| t.fwd_user_ns_median),
                100.0 * col(&|t| t.fwd_sys_share),
                col(&|t| t.a_rx_lost as f64 / 1e6 / t.window_secs),
                col(&|t| t.busy_pct.get(args.fwd_cpu).copied().unwrap_or(f64::NAN)),
                col(&|t| t.busy_pct.get(args.gen_cpu).copied().unwrap_or(f64::NAN)),
                mpps / copy_mpps,
            );
        }
    }
    // Paired ratios: each repetition's modes ran back to back.
    for &size in &args.sizes {
        for &m in args.modes.iter().filter(|&&m| m != Mode::Copy) {
            let mut r = Vec::new();
            for rep in 0..args.reps {
                let get = |mm: Mode| {
                    trials
                        .iter()
                        .find(|t| t.size == size && t.rep == rep && t.mode == mm)
                        .map(|t| t.mpps)
                };
                if let (Some(x), Some(c)) = (get(m), get(Mode::Copy)) {
                    r.push(x / c);
                }
            }
            if !r.is_empty() {
                let shown: Vec<String> = r.iter().map(|x| format!("{x:.3}")).collect();
                println!(
                    "paired {}/copy at {size} B: median {:.3} (per rep: {})",
                    m.name(),
                    median(r.clone()),
                    shown.join(", ")
                );
            }
        }
    }
}

fn machine_line() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("kernel {} | {cpus} CPUs | {model}", kernel.trim())
}

fn run(args: &Args, stop: &AtomicBool) -> Result<(), String> {
    if args.modes.is_empty() || args.sizes.is_empty() || args.reps == 0 {
        return Err("nothing to run: give at least one mode, size and repetition".into());
    }
    if args.fwd_cpu == args.gen_cpu {
        return Err(format!(
            "--fwd-cpu and --gen-cpu are both {}: put them on different CPUs",
            args.fwd_cpu
        ));
    }
    if !args.ring.is_power_of_two() || !(64..=16384).contains(&args.ring) {
        return Err(format!(
            "--ring {} must be a power of two in 64..=16384",
            args.ring
        ));
    }
    if !(args.secs > 0.0 && args.secs <= 600.0 && args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--secs must be in (0, 600] and --warmup in [0, 60]".into());
    }
    println!("umem_choice: {}", machine_line());
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let net = BenchNet::create(true).map_err(|e| e.to_string())?;
    let sink = {
        let _in = NetnsGuard::enter(net.sink.name()).map_err(|e| e.to_string())?;
        XdpSink::attach(ifindex_of(&net.s0).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?
    };
    println!(
        "topology: {} g0={} -> DUT {} d0={} d1={} -> {} s0={} (XDP drop sink)",
        net.gen.name(),
        net.g0,
        net.dut.as_ref().map_or("", |d| d.name()),
        net.d0,
        net.d1,
        net.sink.name(),
        net.s0
    );
    let mut trials = Vec::new();
    'all: for &size in &args.sizes {
        for rep in 0..args.reps {
            let n = args.modes.len();
            for i in 0..n {
                let mode = args.modes[(i + rep) % n];
                let cfg = TrialCfg {
                    mode,
                    size,
                    warmup: Duration::from_secs_f64(args.warmup),
                    window: Duration::from_secs_f64(args.secs),
                    fwd_cpu: args.fwd_cpu,
                    gen_cpu: args.gen_cpu,
                    ring: args.ring,
                };
                match trial(&net, &sink, cfg, rep, stop)? {
                    Some(t) => {
                        print_trial(&t, args.fwd_cpu, args.gen_cpu);
                        trials.push(t);
                    }
                    None => break 'all,
                }
            }
        }
    }
    print_summary(&trials, args);
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted; namespaces and programs have been removed".into());
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("umem_choice: cannot handle signal {sig}: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = run(&args, &stop) {
        eprintln!("umem_choice: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles_and_ignores_nan() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn thread_cpu_from_proc_agrees_with_the_thread_cpu_clock() {
        let tid: u32 = std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let (ns0, u0, s0) = thread_cpu(tid);
        let c0 = thread_cpu_now();
        let wall = Instant::now();
        // Spin until this thread has had 50 ms of CPU (however busy the
        // machine is), or give up after 10 s of wall time.
        let mut x = 0u64;
        while thread_cpu_now() - c0 < 50_000_000 && wall.elapsed() < Duration::from_secs(10) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let spun = thread_cpu_now() - c0;
        let (ns1, u1, s1) = thread_cpu(tid);
        assert!(x > 0);
        assert!(spun >= 50_000_000, "only {spun} ns of CPU in 10 s");
        let seen = ns1 - ns0;
        assert!(
            seen >= 45_000_000 && seen <= wall.elapsed().as_nanos() as u64 + 5_000_000,
            "schedstat says {seen} ns, the clock {spun} ns"
        );
        // 50 ms is at least one 10 ms tick (USER_HZ = 100).
        assert!(u1 + s1 > u0 + s0, "ticks {u0}+{s0} -> {u1}+{s1}");
    }

    /// Every mode, both sizes: the generator's frames cross the forwarder
    /// and reach the sink whole (bytes per frame = size − FCS), and the sink
    /// counts what the forwarder sent.
    #[test]
    fn every_mode_forwards_generator_frames_to_the_sink_whole() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let stop = AtomicBool::new(false);
        let net = BenchNet::create(true).unwrap();
        let sink = {
            let _in = NetnsGuard::enter(net.sink.name()).unwrap();
            XdpSink::attach(ifindex_of(&net.s0).unwrap()).unwrap()
        };
        for size in [64, 1518] {
            for mode in [Mode::Copy, Mode::Copy2, Mode::Shared] {
                let cfg = TrialCfg {
                    mode,
                    size,
                    warmup: Duration::from_millis(100),
                    window: Duration::from_millis(300),
                    fwd_cpu: 1,
                    gen_cpu: 0,
                    ring: 2048,
                };
                let t = trial(&net, &sink, cfg, 0, &stop).unwrap().unwrap();
                assert!(t.mpps > 0.01, "{t:?}");
                let want = (size - 4) as f64;
                // Stray frames (IPv6 RS/MLD, < 100 B) may shift the mean by
                // a hair; nothing else may.
                assert!((t.bytes_per_frame - want).abs() < 1.0, "{t:?}");
            }
        }
    }
}
