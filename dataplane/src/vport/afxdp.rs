//! AF_XDP vport: one Linux interface driven through AF_XDP sockets.
//!
//! # What
//! [`AfXdpPort`] implements [`Vport`] over `xsk-rs` 0.11. It binds one
//! AF_XDP socket (XSK) to every queue of the interface — `max(rx, tx)`
//! sockets, because DESIGN.md's platform facts say traffic lands on the rx
//! queue matching the peer's tx queue and bypasses the switch on any rx
//! queue without a socket; tx queue `qid` uses the socket of queue `qid`.
//! The sockets share one UMEM sized from the queue count
//! (`queues × frames_per_queue` frames of [`UMEM_FRAME_SIZE`] bytes), and
//! each socket has its own fill and completion rings (per (device, queue)
//! context, as the kernel requires). The port never loads an XDP program:
//! sockets are created with `XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD` and handed
//! to an [`XskSteering`] — the control plane's wrapper around the xswitch
//! port program's XSKMAP — which redirects rx queue `q` to socket `q`.
//!
//! # Buffer economy: the copy model
//! UMEM frames never leave the port. Each queue owns a fixed slice of the
//! UMEM: `ring_size` rx frames and `frames_per_queue - ring_size` tx frames.
//!
//! ```text
//!  rx:  kernel --[rx ring]--> recv: copy into a Packet of the PMD's pool
//!          ^                         |
//!          +-------[fill ring]<------+  (the same frames, at once)
//!
//!  tx:  send: reclaim [completion ring] -> free tx frames
//!             copy packets into free frames -> [tx ring] -> kick (sendto)
//!             accepted Packets -> back to the PMD's pool
//! ```
//!
//! * `recv` consumes at most `min(batch room, pool.available())` rx
//!   descriptors — with no pool buffer a frame stays on the rx ring — copies
//!   each into a pool packet and gives the frames straight back to the same
//!   queue's fill ring. The rx frames of a queue number exactly the fill
//!   ring's size, so that produce always fits; a wake-up (`recvfrom`,
//!   `MSG_DONTWAIT`) follows only when the fill ring asks for one.
//! * `send` first reclaims the completion ring into the queue's free tx
//!   frames, copies as many packets as there are free frames *and* free tx
//!   ring slots (`xsk-rs` produce is all-or-nothing, so it is asked for
//!   exactly what fits), produces them, kicks once with `sendto`
//!   (`MSG_DONTWAIT`) when the ring needs a wake-up (always, when
//!   `need_wakeup` is off), and returns the accepted packets to the pool.
//!   Packets that did not fit stay in the batch: the PMD retries a bounded
//!   number of times, then drops them as `tx_ring_full`. An empty `send` is
//!   the idle PMD's reap: it reclaims completions and kicks only if the tx
//!   ring still holds descriptors the kernel has not taken.
//! * Hence [`Vport::release_buffers`] keeps its default (no pool buffer is
//!   ever held by the device) and teardown needs no cross-pool return. The
//!   [`FrameCensus`] places every UMEM frame — free for tx, in flight on tx,
//!   owned by the kernel on fill/rx — and must always add up to the total.
//!
//! Why copy rather than a UMEM shared across ports (measured for issue 4,
//! `benches/src/bin/umem_choice.rs`, results in
//! `benches/results/umem-choice-2026-11-22.md`): a minimal two-port
//! forwarder was run in both models, alternated, on veth. The shared UMEM
//! passes A's rx descriptor straight to B's tx ring. It saves the userspace
//! memcpy (about 20 ns per packet at 64 B, 185 ns at 1518 B), but the
//! forwarder's CPU time per packet changes by only +3 % at 64 B and −4 % at
//! 1518 B (paired medians of 7 repetitions). Mpps differed by less than the
//! run-to-run noise. About 90 % of that time (1.3–1.6 µs per packet) is
//! the kernel's copy-mode tx, which builds an skb per frame and copies it
//! out of the UMEM whatever we do; without our copy, that kernel copy reads
//! cache lines the rx CPU wrote and gives the saving back. Zero-copy binds
//! are EOPNOTSUPP on veth. A gain that small does not pay for what sharing
//! costs: a cross-port return path, a per-frame owner and a teardown
//! hand-back, none of which a frame that never leaves its queue needs. So
//! the copy model stays. (The extra hop through a `Packet`, UMEM → Packet →
//! UMEM, measured 0.5–3 % over a single copy.) Measure again for drivers
//! with zero-copy tx, where the shared UMEM would remove the only copy.
//!
//! # Waking an idle PMD
//! [`Vport::rx_wait_fd`] hands out queue `q`'s socket: an AF_XDP socket
//! polls readable while its rx ring holds descriptors, and the kernel
//! wakes its waiters at every rx flush (`xsk_flush` calls
//! `sock_def_readable` after the XDP_REDIRECT batch, in native and in SKB
//! mode alike), so a PMD blocked in epoll on it wakes on the first frame.
//! Nothing must be refilled first: `recv` hands every frame back to the
//! fill ring in the same call, so the fill ring always holds the queue's
//! `ring_size` rx frames when a PMD goes to sleep, and in copy mode the
//! kernel takes fill entries itself (the fill ring's need-wakeup flag is a
//! zero-copy driver's request and `recv` honours it anyway).
//!
//! # Kick and poll errors
//! One `sendto` per `send`, never in a loop. EAGAIN, EBUSY and ENOBUFS are
//! transient (the ring drains on the next kick): they are counted and the
//! call succeeds. ENETDOWN, ENXIO (socket unbound because its device was
//! unregistered) and EBADF/ENODEV return [`TxError::Gone`], so the PMD starts
//! the deletion protocol. Anything else is [`TxError::Failed`]. A fill-ring
//! wake-up error is counted and never retried; `recv` itself makes no
//! syscall otherwise.
//!
//! # Locking
//! Queue `q` has two halves, each behind its own `Mutex`: the rx half (rx
//! ring, fill ring, rx scratch) and the tx half (tx ring, completion ring,
//! free tx frames). PMDs take a half with `try_lock`, once per call — the
//! same pattern as `MemoryPort`: a second PMD on the same queue sees
//! "nothing received" or "ring full" (counted as contention) and the PMD's
//! bounded retry handles it; nobody ever blocks on the packet path. Rx and
//! tx of one queue never contend with each other. [`AfXdpPort::frame_census`]
//! takes the halves with a blocking `lock` (control side, not the packet
//! path; a PMD holds a half only for one batch). Counters are relaxed
//! atomics, per queue and cache-padded, so PMDs on different queues share
//! no written cache line. Nothing allocates per packet: rx descriptors go
//! through a per-queue scratch array and tx descriptors through the free
//! stack, both sized at open.
//!
//! # Teardown
//! `Drop` unregisters every registered queue from the steering (the XDP
//! program falls back to XDP_PASS for that queue), then the sockets close,
//! then the UMEM is unmapped (after its last socket), then the steering is
//! dropped, which detaches the program. Field order in [`AfXdpPort`] is what
//! enforces the last three steps. Drop never panics; a failed unregister is
//! logged. The datapath calls it only after every PMD passed a quiescent
//! point (DESIGN.md deletion step 4), so no PMD holds a half then.
//!
//! # Unsafe
//! This is the one dataplane module that touches the OS, so it allows
//! `unsafe_code`: `xsk-rs` ring and UMEM accessors are `unsafe` (the caller
//! must pass frames of the right UMEM that no ring owns), and the kick,
//! fill wake-up, statistics and name lookup are raw libc calls. Every block
//! carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

use super::{linger, PortState, TxError, Vport};
use crate::packet::{PacketBatch, PacketPool, BATCH_SIZE, FRAME_SIZE, MAX_FRAME_LEN};
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Bytes per UMEM frame (one chunk of the aligned UMEM): the size of a
/// packet buffer, the smallest chunk the kernel accepts.
pub const UMEM_FRAME_SIZE: u32 = FRAME_SIZE as u32;

/// Headroom the kernel keeps in front of every frame it writes into a UMEM
/// chunk (uapi `XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// L2 bytes a frame carries beyond the MTU: the Ethernet header (14) and one
/// VLAN tag (4). The FCS is not part of an AF_XDP frame.
pub const L2_OVERHEAD: u32 = 14 + 4;

/// The largest interface MTU an [`AfXdpPort`] accepts.
///
/// A received frame is written `XDP_PACKET_HEADROOM` bytes into its chunk
/// and must end inside it; a frame is at most `MTU + L2_OVERHEAD` bytes. So
/// `MTU + 18 ≤ 2048 - 256`, i.e. `MTU ≤ 1774`. (The copy into a [`Packet`]
/// buffer, [`MAX_FRAME_LEN`] = 1984 bytes, is then never the limit.)
///
/// [`Packet`]: crate::packet::Packet
pub const MAX_MTU: u32 = UMEM_FRAME_SIZE - XDP_PACKET_HEADROOM - L2_OVERHEAD;

const _: () = assert!((MAX_MTU + L2_OVERHEAD) as usize <= MAX_FRAME_LEN);

/// IFF_UP in `/sys/class/net/IF/flags` (uapi `if.h`).
const IFF_UP: u32 = 0x1;
/// Longest interface name (`IFNAMSIZ - 1`).
const IFNAME_MAX: usize = 15;
/// Where the kernel lists interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Steering of an interface's rx queues to sockets: the XDP program's
/// XSKMAP. Implemented outside dataplane (`xswitch_bpf::PortProgram`,
/// wrapped by the control plane); dropping it detaches the program.
pub trait XskSteering: Send + Sync {
    /// Redirects rx queue `queue` to the AF_XDP socket `xsk_fd`.
    fn register(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()>;
    /// Stops redirecting rx queue `queue` (its frames pass to the stack).
    fn unregister(&self, queue: u32) -> io::Result<()>;
}

/// Why an AF_XDP port could not be described or opened. Messages are one
/// line and name the interface.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The interface does not exist in this network namespace (or its name
    /// cannot be an interface name).
    #[error("no such network interface: {ifname:?}")]
    NoSuchInterface {
        /// The name asked for.
        ifname: String,
    },
    /// A sysfs attribute could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Sysfs {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `/sys` shows another network namespace than the caller's.
    #[error(
        "/sys/class/net/{ifname} is ifindex {sysfs_ifindex} but {ifname} is ifindex {ifindex} in \
         this network namespace: /sys belongs to another namespace (run under `ip netns exec`)"
    )]
    NetnsMismatch {
        /// The interface.
        ifname: String,
        /// What sysfs says.
        sysfs_ifindex: u32,
        /// What the caller's namespace says.
        ifindex: u32,
    },
    /// The interface MTU is larger than a UMEM frame can carry.
    #[error(
        "{ifname}: MTU {mtu} is too large for AF_XDP: a frame (MTU + {l2} bytes of Ethernet and \
         VLAN header) must fit a {frame}-byte UMEM frame after {head} bytes of XDP headroom, so \
         the largest MTU is {max} (ip link set dev {ifname} mtu {max})",
        l2 = L2_OVERHEAD,
        frame = UMEM_FRAME_SIZE,
        head = XDP_PACKET_HEADROOM
    )]
    MtuTooLarge {
        /// The interface.
        ifname: String,
        /// Its MTU.
        mtu: u32,
        /// [`MAX_MTU`].
        max: u32,
    },
    /// The interface reports no rx queue.
    #[error("{ifname}: the interface has no rx queue to bind an AF_XDP socket to")]
    NoQueues {
        /// The interface.
        ifname: String,
    },
    /// [`AfXdpConfig`] is out of range.
    #[error("invalid AF_XDP configuration: {0}")]
    InvalidConfig(String),
    /// The UMEM could not be created or registered.
    #[error("{ifname}: cannot create a UMEM of {frames} frames: {reason}")]
    Umem {
        /// The interface.
        ifname: String,
        /// Frames asked for.
        frames: u32,
        /// What went wrong (with the OS error and a hint).
        reason: String,
    },
    /// A socket could not be created or bound.
    #[error("{ifname}: cannot bind an AF_XDP socket to queue {queue}: {reason}")]
    Socket {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// What went wrong (with the OS error and a hint).
        reason: String,
    },
    /// The steering (XSKMAP) refused a socket.
    #[error("{ifname}: cannot steer rx queue {queue} to its AF_XDP socket: {reason}")]
    Steering {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// The steering's error.
        reason: String,
    },
}

/// A hint for the errno a socket or UMEM call failed with.
fn errno_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EPERM | libc::EACCES) => {
            " (needs root: CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK)"
        }
        Some(libc::EBUSY) => {
            " (the queue already has an AF_XDP socket: is another switch running?)"
        }
        Some(libc::ENOMEM | libc::ENOBUFS) => {
            " (out of locked memory: lower frames_per_queue or raise RLIMIT_MEMLOCK)"
        }
        Some(libc::ENODEV | libc::ENXIO) => " (the interface vanished)",
        Some(libc::EOPNOTSUPP) => " (the driver does not support AF_XDP in this mode)",
        _ => "",
    }
}

/// `reason: os error (hint)` for an error whose source may be an OS error.
fn describe(err: &dyn std::error::Error) -> String {
    let os = err.source().and_then(|s| s.downcast_ref::<io::Error>());
    match os {
        Some(e) => format!("{err}: {e}{}", errno_hint(e.raw_os_error())),
        None => err.to_string(),
    }
}

/// What the port needs to know about an interface, read from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// L3 MTU (what `ip link` shows).
    pub mtu: u32,
    /// Rx queues (`queues/rx-N`).
    pub rx_queues: u32,
    /// Tx queues (`queues/tx-N`).
    pub tx_queues: u32,
    /// IFF_UP.
    pub admin_up: bool,
    /// IFF_RUNNING: up and operationally up (`operstate` "up" or
    /// "unknown", as the kernel's `netif_oper_up`).
    pub running: bool,
    /// Carrier (`carrier` reads 1; unreadable while the link is down).
    pub carrier: bool,
}

impl LinkInfo {
    /// Describes `ifname` from `/sys/class/net/IFNAME` (index, MTU, flags,
    /// carrier and `queues/rx-*`, `queues/tx-*`).
    ///
    /// sysfs shows the network namespace it was mounted in, which is the
    /// caller's unless the thread entered another one with `setns` without
    /// remounting `/sys`: the index is therefore cross-checked against
    /// `if_nametoindex` (which asks the caller's namespace) and a mismatch is
    /// [`AfXdpError::NetnsMismatch`]. An unknown interface, or a name that
    /// cannot be one, is [`AfXdpError::NoSuchInterface`].
    pub fn query(ifname: &str) -> Result<LinkInfo, AfXdpError> {
        let info = LinkInfo::from_sysfs(Path::new(SYS_CLASS_NET), ifname)?;
        let here = if_nametoindex(ifname).ok_or_else(|| AfXdpError::NoSuchInterface {
            ifname: ifname.to_string(),
        })?;
        if here != info.ifindex {
            return Err(AfXdpError::NetnsMismatch {
                ifname: ifname.to_string(),
                sysfs_ifindex: info.ifindex,
                ifindex: here,
            });
        }
        Ok(info)
    }

    /// Reads `ifname` from a sysfs-style directory `root` (`root/IFNAME/...`).
    fn from_sysfs(root: &Path, ifname: &str) -> Result<LinkInfo, AfXdpError> {
        let missing = || AfXdpError::NoSuchInterface {
            ifname: ifname.to_string(),
        };
        if !valid_ifname(ifname) {
            return Err(missing());
        }
        let dir = root.join(ifname);
        if !dir.is_dir() {
            return Err(missing());
        }
        let read = |file: &str| -> Result<String, AfXdpError> {
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(s.trim().to_string()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
                Err(e) => Err(AfXdpError::Sysfs {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            }
        };
        let parse = |file: &str, text: &str, radix: u32| -> Result<u32, AfXdpError> {
            let digits = if radix == 16 {
                text.trim_start_matches("0x")
            } else {
                text
            };
            u32::from_str_radix(digits, radix).map_err(|e| AfXdpError::Sysfs {
                path: dir.join(file).display().to_string(),
                reason: format!("{text:?} is not a number: {e}"),
            })
        };
        let ifindex = parse("ifindex", &read("ifindex")?, 10)?;
        let mtu = parse("mtu", &read("mtu")?, 10)?;
        let flags = parse("flags", &read("flags")?, 16)?;
        // IFF_RUNNING is not kept in `flags`: the kernel derives it from the
        // operational state (`netif_oper_up`: "up" or "unknown").
        let operstate = read("operstate")?;
        let running = flags & IFF_UP != 0 && matches!(operstate.as_str(), "up" | "unknown");
        // `carrier` fails with EINVAL while the interface is down.
        let carrier = std::fs::read_to_string(dir.join("carrier")).is_ok_and(|s| s.trim() == "1");
        let queues = dir.join("queues");
        let entries = std::fs::read_dir(&queues).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => missing(),
            _ => AfXdpError::Sysfs {
                path: queues.display().to_string(),
                reason: e.to_string(),
            },
        })?;
        let (mut rx_queues, mut tx_queues) = (0u32, 0u32);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("rx-") {
                rx_queues += 1;
            } else if name.starts_with("tx-") {
                tx_queues += 1;
            }
        }
        Ok(LinkInfo {
            name: ifname.to_string(),
            ifindex,
            mtu,
            rx_queues,
            tx_queues,
            admin_up: flags & IFF_UP != 0,
            running,
            carrier,
        })
    }
}

/// Whether `name` can be an interface name (and is safe as a path part).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
}

/// The index of `name` in the caller's network namespace.
fn if_nametoindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call;
    // if_nametoindex only reads it and returns 0 on failure.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Ring and UMEM sizing of an [`AfXdpPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Descriptors per ring (rx, tx, fill, completion); a power of two.
    pub ring_size: u32,
    /// UMEM frames per queue: `ring_size` for rx (exactly the fill ring),
    /// the rest for tx. At least `2 × ring_size`.
    pub frames_per_queue: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP` and make syscalls only when a ring
    /// asks for them; when false every `send` that produced kicks.
    pub need_wakeup: bool,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            ring_size: 2048,
            frames_per_queue: 4096,
            need_wakeup: true,
        }
    }
}

impl AfXdpConfig {
    /// Smallest ring: two PMD batches.
    pub const MIN_RING_SIZE: u32 = 2 * BATCH_SIZE as u32;
    /// Largest ring.
    pub const MAX_RING_SIZE: u32 = 32768;
    /// Largest UMEM, in frames (4 GiB of 2 KiB frames).
    pub const MAX_UMEM_FRAMES: u32 = 1 << 21;

    /// Checks the sizes on their own.
    pub fn validate(&self) -> Result<(), AfXdpError> {
        let r = self.ring_size;
        if !r.is_power_of_two() || !(Self::MIN_RING_SIZE..=Self::MAX_RING_SIZE).contains(&r) {
            return Err(AfXdpError::InvalidConfig(format!(
                "ring_size {r} must be a power of two between {} and {}",
                Self::MIN_RING_SIZE,
                Self::MAX_RING_SIZE
            )));
        }
        if self.frames_per_queue < 2 * r {
            return Err(AfXdpError::InvalidConfig(format!(
                "frames_per_queue {} must be at least 2 x ring_size ({}): ring_size frames for \
                 the fill ring and at least as many for tx",
                self.frames_per_queue,
                2 * r
            )));
        }
        Ok(())
    }

    /// UMEM frames for `queues` queues, checked against
    /// [`Self::MAX_UMEM_FRAMES`].
    pub fn umem_frames(&self, queues: u32) -> Result<u32, AfXdpError> {
        self.validate()?;
        match queues.checked_mul(self.frames_per_queue) {
            Some(n) if n <= Self::MAX_UMEM_FRAMES => Ok(n),
            _ => Err(AfXdpError::InvalidConfig(format!(
                "{queues} queues x {} frames_per_queue exceeds the UMEM limit of {} frames",
                self.frames_per_queue,
                Self::MAX_UMEM_FRAMES
            ))),
        }
    }
}

/// Kick (`sendto`) errors by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KickErrorCounts {
    /// EAGAIN (transient: completion ring full or tx budget used up).
    pub again: u64,
    /// EBUSY (transient: the driver's queue was busy or dropped the frame).
    pub busy: u64,
    /// ENOBUFS (transient: no memory for an skb).
    pub nobufs: u64,
    /// ENETDOWN (gone: the interface is down).
    pub netdown: u64,
    /// ENXIO (gone: the socket was unbound, its device unregistered).
    pub nxio: u64,
    /// EBADF / ENODEV (gone).
    pub gone_other: u64,
    /// Anything else (reported as [`TxError::Failed`]).
    pub other: u64,
}

impl KickErrorCounts {
    /// All kick errors.
    pub fn total(&self) -> u64 {
        self.transient() + self.gone() + self.other
    }
    /// Errors after which the port keeps working.
    pub fn transient(&self) -> u64 {
        self.again + self.busy + self.nobufs
    }
    /// Errors that reported [`TxError::Gone`].
    pub fn gone(&self) -> u64 {
        self.netdown + self.nxio + self.gone_other
    }
}

/// Ring-level counters of an [`AfXdpPort`] (what the device saw; the
/// datapath keeps its own per-port statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfXdpCounters {
    /// Frames copied off rx rings into packets.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Packets copied onto tx rings.
    pub tx_packets: u64,
    /// Bytes of those packets.
    pub tx_bytes: u64,
    /// `sendto` kicks made.
    pub kicks: u64,
    /// Kicks that failed, by errno.
    pub kick_errors: KickErrorCounts,
    /// The errno of the last failed kick (0: none yet).
    pub last_kick_errno: i32,
    /// Fill-ring wake-ups (`recvfrom`) made.
    pub fill_wakeups: u64,
    /// Fill-ring wake-ups that failed.
    pub fill_wakeup_errors: u64,
    /// The errno of the last failed fill wake-up (0: none yet).
    pub last_fill_wakeup_errno: i32,
    /// `send` calls that left packets in the batch (no free tx frame, no tx
    /// ring slot, or the tx half taken by another PMD).
    pub tx_ring_full: u64,
    /// `recv` calls that found the rx half taken by another PMD.
    pub rx_contended: u64,
    /// `send` calls that found the tx half taken by another PMD.
    pub tx_contended: u64,
    /// Received frames too long for a packet buffer (dropped; not reachable
    /// with an MTU ≤ [`MAX_MTU`]).
    pub rx_oversize: u64,
    /// Packets too long for a UMEM frame (left in the batch; the PMD's MTU
    /// check keeps them out).
    pub tx_oversize: u64,
    /// Accepted packets freed instead of returned because the caller's pool
    /// was already complete (a queue shared by PMDs).
    pub released: u64,
    /// Kernel: frames that found the fill ring empty (`XDP_STATISTICS`
    /// `rx_fill_ring_empty_descs`, summed over sockets).
    pub fill_ring_empty: u64,
    /// Kernel: rx frames dropped (`rx_dropped`).
    pub kernel_rx_dropped: u64,
    /// Kernel: rx frames dropped because the rx ring was full.
    pub kernel_rx_ring_full: u64,
    /// Kernel: invalid rx descriptors.
    pub kernel_rx_invalid_descs: u64,
    /// Kernel: invalid tx descriptors.
    pub kernel_tx_invalid_descs: u64,
    /// Frames received per queue (index = queue).
    pub rx_per_queue: Vec<u64>,
}

/// Where every UMEM frame of a port is. `total == accounted()` always; a
/// difference is a leak (or a double count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCensus {
    /// Frames in the UMEM.
    pub total: u64,
    /// Tx frames free for `send`.
    pub tx_free: u64,
    /// Tx frames produced and not yet reclaimed (on the tx ring, in the
    /// kernel, or on the completion ring).
    pub tx_in_flight: u64,
    /// Rx frames owned by the kernel (on the fill ring or the rx ring).
    pub rx_kernel: u64,
    /// Rx frames in the port's hands (taken off the rx ring, not yet back on
    /// the fill ring; 0 between calls).
    pub rx_held: u64,
}

impl FrameCensus {
    /// Frames placed somewhere.
    pub fn accounted(&self) -> u64 {
        self.tx_free + self.tx_in_flight + self.rx_kernel + self.rx_held
    }
    /// Every frame is placed exactly once.
    pub fn is_balanced(&self) -> bool {
        self.accounted() == self.total
    }
}

/// What a kick or wake-up errno means for the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrnoClass {
    /// Retry on the next call (counted).
    Transient,
    /// The device is gone: report [`TxError::Gone`].
    Gone,
    /// Unexpected: report [`TxError::Failed`].
    Other,
}

fn classify_errno(errno: i32) -> ErrnoClass {
    match errno {
        libc::EAGAIN | libc::EBUSY | libc::ENOBUFS => ErrnoClass::Transient,
        libc::ENETDOWN | libc::ENXIO | libc::EBADF | libc::ENODEV => ErrnoClass::Gone,
        _ => ErrnoClass::Other,
    }
}

/// Kicks tx processing of AF_XDP socket `fd` (one non-blocking `sendto`);
/// the errno on failure. Public for tools that drive their own sockets.
#[inline]
pub fn kick(fd: RawFd) -> Result<(), i32> {
    // SAFETY: a zero-length sendto with null buffer and address reads and
    // writes no user memory; `fd` is this queue's AF_XDP socket, kept open
    // by the queue's rings for as long as the port lives.
    let r = unsafe {
        libc::sendto(
            fd,
            core::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null(),
            0,
        )
    };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Wakes the kernel to use a refilled fill ring (one non-blocking
/// `recvfrom`); the errno on failure. Public like [`kick`].
#[inline]
pub fn wake_fill(fd: RawFd) -> Result<(), i32> {
    // SAFETY: a zero-length recvfrom with null buffer and address writes
    // no user memory; `fd` is this queue's AF_XDP socket, open for as long
    // as the port lives.
    let r = unsafe {
        libc::recvfrom(
            fd,
            core::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The kernel's statistics of AF_XDP socket `fd` (`XDP_STATISTICS`), or
/// `None` if the kernel refused or returned a short struct. Public for
/// tools that drive their own sockets (benches/src/bin/umem_choice.rs).
pub fn xdp_statistics(fd: RawFd) -> Option<libc::xdp_statistics> {
    let mut s = libc::xdp_statistics {
        rx_dropped: 0,
        rx_invalid_descs: 0,
        tx_invalid_descs: 0,
        rx_ring_full: 0,
        rx_fill_ring_empty_descs: 0,
        tx_ring_empty_descs: 0,
    };
    let size = core::mem::size_of::<libc::xdp_statistics>();
    let mut len = size as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `s`, which is a
    // live, properly sized and aligned struct; `len` is a valid in/out
    // pointer; `fd` is an open AF_XDP socket of this port.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut s as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    (r == 0 && len as usize == size).then_some(s)
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Takes `m` without waiting (PMD side). A poisoned half is taken over: its
/// fields are only counters and rings the kernel keeps consistent, and no
/// code between a ring operation and its bookkeeping can panic.
#[inline]
fn try_take<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Takes `m`, waiting (control side).
fn take<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The rx half of a queue.
struct RxHalf {
    ring: RxQueue,
    fill: FillQueue,
    /// Descriptors taken off the rx ring in one call (BATCH_SIZE entries).
    scratch: Vec<FrameDesc>,
    /// Rx frames that a fill produce did not take (not expected: the fill
    /// ring holds all of them); retried first on the next call.
    held: Vec<FrameDesc>,
    /// Rx frames on the fill or rx ring.
    in_kernel: usize,
}

/// The tx half of a queue.
struct TxHalf {
    ring: TxQueue,
    comp: CompQueue,
    /// Every tx frame of the queue: `free[..n_free]` are on no ring (a
    /// stack); the slots above hold stale copies of frames in flight, and
    /// the completion ring writes reclaimed frames straight into them.
    free: Box<[FrameDesc]>,
    /// Free frames at the bottom of `free`.
    n_free: usize,
    /// Produced and not yet reclaimed: `free.len() - n_free`.
    in_flight: usize,
}

impl TxHalf {
    /// Moves completed frames back to the free list; returns how many.
    #[inline]
    fn reclaim(&mut self) -> usize {
        if self.in_flight == 0 {
            return 0;
        }
        // The completion ring holds at most `in_flight` of our frames: the
        // length of the slice above the free stack.
        // SAFETY: this is the completion ring of this queue's socket, bound
        // to the port's UMEM; it returns frames this queue produced on its
        // tx ring, which the kernel no longer uses.
        let n = unsafe { self.comp.consume(&mut self.free[self.n_free..]) };
        self.n_free += n;
        self.in_flight -= n;
        n
    }
}

#[derive(Default)]
struct RxStats {
    packets: AtomicU64,
    bytes: AtomicU64,
    contended: AtomicU64,
    oversize: AtomicU64,
    fill_wakeups: AtomicU64,
    fill_wakeup_errors: AtomicU64,
    last_fill_errno: AtomicI32,
}

#[derive(Default)]
struct TxStats {
    packets: AtomicU64,
    bytes: AtomicU64,
    kicks: AtomicU64,
    again: AtomicU64,
    busy: AtomicU64,
    nobufs: AtomicU64,
    netdown: AtomicU64,
    nxio: AtomicU64,
    gone_other: AtomicU64,
    other: AtomicU64,
    last_errno: AtomicI32,
    ring_full: AtomicU64,
    contended: AtomicU64,
    oversize: AtomicU64,
    released: AtomicU64,
}

impl TxStats {
    fn kick_error(&self, errno: i32) {
        let c = match errno {
            libc::EAGAIN => &self.again,
            libc::EBUSY => &self.busy,
            libc::ENOBUFS => &self.nobufs,
            libc::ENETDOWN => &self.netdown,
            libc::ENXIO => &self.nxio,
            libc::EBADF | libc::ENODEV => &self.gone_other,
            _ => &self.other,
        };
        bump(c, 1);
        self.last_errno.store(errno, Ordering::Relaxed);
    }
}

/// One queue: its socket's fd and its two halves.
struct XskQueue {
    /// The socket (kept open by the rings in the halves).
    fd: RawFd,
    rx: Mutex<RxHalf>,
    tx: Mutex<TxHalf>,
    rx_stats: CachePadded<RxStats>,
    tx_stats: CachePadded<TxStats>,
}

impl XskQueue {
    /// Binds a socket to `queue` and puts `rx_frames` on its fill ring.
    fn open(
        umem: &Umem,
        iface: &Interface,
        ifname: &str,
        queue: u32,
        cfg: SocketConfig,
        rx_frames: Vec<FrameDesc>,
        tx_frames: Vec<FrameDesc>,
    ) -> Result<XskQueue, AfXdpError> {
        let sock_err = |reason: String| AfXdpError::Socket {
            ifname: ifname.to_string(),
            queue,
            reason,
        };
        // SAFETY: Socket::new demands XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD when
        // the (interface, queue) pair is already bound with this UMEM; each
        // queue is bound once here, and `cfg` sets that flag anyway.
        let (tx, rx, rings) =
            unsafe { Socket::new(cfg, umem, iface, queue) }.map_err(|e| sock_err(describe(&e)))?;
        let Some((mut fill, comp)) = rings else {
            return Err(sock_err(
                "no fill/completion ring came back (the queue is already bound with this UMEM)"
                    .to_string(),
            ));
        };
        let fd = rx.fd().as_raw_fd();
        // SAFETY: the frames come fresh from Umem::new for this UMEM and are
        // on no ring; from here on the kernel owns them until they come back
        // on this socket's rx ring.
        let put = unsafe { fill.produce(&rx_frames) };
        if put != rx_frames.len() {
            return Err(sock_err(format!(
                "the fill ring took {put} of {} frames",
                rx_frames.len()
            )));
        }
        let n_free = tx_frames.len();
        Ok(XskQueue {
            fd,
            rx: Mutex::new(RxHalf {
                ring: rx,
                fill,
                scratch: vec![FrameDesc::default(); BATCH_SIZE],
                held: Vec::with_capacity(put),
                in_kernel: put,
            }),
            tx: Mutex::new(TxHalf {
                ring: tx,
                comp,
                free: tx_frames.into_boxed_slice(),
                n_free,
                in_flight: 0,
            }),
            rx_stats: CachePadded::new(RxStats::default()),
            tx_stats: CachePadded::new(TxStats::default()),
        })
    }
}

/// Start and length of `umem`'s memory, from its first frame: xsk-rs
/// places frame `d` at `start + d.addr()`. `(0, 0)` without frames.
#[allow(unsafe_code)] // Umem::data: a zero-length view of a fresh frame, to take its address.
fn umem_region(umem: &Umem, descs: &[FrameDesc], frames: u32) -> (usize, usize) {
    let Some(d) = descs.first() else {
        return (0, 0);
    };
    // SAFETY: `d` comes fresh from Umem::new for this UMEM and is on no
    // ring; the view is only used for its address.
    let data = unsafe { umem.data(d) }.as_ptr() as usize;
    (data - d.addr(), frames as usize * UMEM_FRAME_SIZE as usize)
}

/// A port over AF_XDP sockets on a Linux interface (see the module docs).
pub struct AfXdpPort {
    name: String,
    ifindex: u32,
    /// Largest L2 frame: MTU + [`L2_OVERHEAD`].
    l2_mtu: usize,
    n_rxq: usize,
    need_wakeup: bool,
    ring_size: u32,
    frames_total: u32,
    /// Start and length of the UMEM's mapping (see [`linger`]).
    umem_region: (usize, usize),
    state: PortState,
    /// Queues registered with the steering (unregistered on drop).
    registered: Vec<bool>,
    // Drop order is load-bearing (module docs, "Teardown"): after
    // `Drop::drop` unregistered the queues, fields drop in declaration
    // order — the sockets, then the UMEM, then the steering (detach).
    queues: Box<[XskQueue]>,
    umem: Umem,
    steering: Box<dyn XskSteering>,
}

impl core::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("queues", &self.queues.len())
            .field("ring_size", &self.ring_size)
            .field("frames", &self.frames_total)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AfXdpPort {
    /// Opens `link`: one UMEM of `queues × frames_per_queue` frames, one
    /// socket per queue (`max(rx_queues, tx_queues)`), each fill ring
    /// filled, then every socket registered in `steering`.
    ///
    /// Checks come first, before anything is created: the configuration,
    /// then the MTU (> [`MAX_MTU`] is [`AfXdpError::MtuTooLarge`]). On any
    /// error everything built so far is torn down in the `Drop` order and
    /// `steering` is dropped (which detaches its program).
    pub fn open(
        link: &LinkInfo,
        cfg: &AfXdpConfig,
        steering: Box<dyn XskSteering>,
    ) -> Result<AfXdpPort, AfXdpError> {
        cfg.validate()?;
        if link.mtu > MAX_MTU {
            return Err(AfXdpError::MtuTooLarge {
                ifname: link.name.clone(),
                mtu: link.mtu,
                max: MAX_MTU,
            });
        }
        if link.rx_queues == 0 {
            return Err(AfXdpError::NoQueues {
                ifname: link.name.clone(),
            });
        }
        let n_queues = link.rx_queues.max(link.tx_queues);
        let frames = cfg.umem_frames(n_queues)?;
        let invalid = |e: &dyn std::fmt::Display| AfXdpError::InvalidConfig(e.to_string());
        let ring = QueueSize::new(cfg.ring_size).map_err(|e| invalid(&e))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(UMEM_FRAME_SIZE).map_err(|e| invalid(&e))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .frame_headroom(0)
            .build()
            .map_err(|e| invalid(&e))?;
        let iface: Interface = link.name.parse().map_err(|_| AfXdpError::NoSuchInterface {
            ifname: link.name.clone(),
        })?;
        let bind = if cfg.need_wakeup {
            BindFlags::XDP_USE_NEED_WAKEUP
        } else {
            BindFlags::empty()
        };
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();

        let nonzero = NonZeroU32::new(frames).ok_or_else(|| invalid(&"empty UMEM"))?;
        let (umem, descs) = Umem::new(umem_cfg, nonzero, false).map_err(|e| AfXdpError::Umem {
            ifname: link.name.clone(),
            frames,
            reason: describe(&e),
        })?;
        let umem_region = umem_region(&umem, &descs, frames);
        let rx_per_q = cfg.ring_size as usize;
        let tx_per_q = (cfg.frames_per_queue - cfg.ring_size) as usize;
        let mut descs = descs.into_iter();
        let mut queues = Vec::with_capacity(n_queues as usize);
        for q in 0..n_queues {
            let rx_frames: Vec<FrameDesc> = descs.by_ref().take(rx_per_q).collect();
            let tx_frames: Vec<FrameDesc> = descs.by_ref().take(tx_per_q).collect();
            match XskQueue::open(&umem, &iface, &link.name, q, sock_cfg, rx_frames, tx_frames) {
                Ok(x) => queues.push(x),
                Err(e) => {
                    // Same order as Drop: sockets, UMEM, steering.
                    drop(queues);
                    drop(umem);
                    drop(steering);
                    return Err(e);
                }
            }
        }

        let state = PortState::up(link.tx_queues);
        state.admin_up.store(link.admin_up, Ordering::Release);
        state.running.store(link.running, Ordering::Release);
        state.carrier.store(link.carrier, Ordering::Release);
        let mut port = AfXdpPort {
            name: link.name.clone(),
            ifindex: link.ifindex,
            l2_mtu: (link.mtu + L2_OVERHEAD) as usize,
            n_rxq: link.rx_queues as usize,
            need_wakeup: cfg.need_wakeup,
            ring_size: cfg.ring_size,
            frames_total: frames,
            umem_region,
            state,
            registered: vec![false; queues.len()],
            queues: queues.into_boxed_slice(),
            umem,
            steering,
        };
        // Fill rings are full before any queue is steered, so the first
        // redirected frame finds a buffer. A failure drops `port`, whose
        // Drop unregisters the queues registered so far.
        for q in 0..port.queues.len() {
            let fd = port.queues[q].fd;
            port.steering
                .register(q as u32, fd)
                .map_err(|e| AfXdpError::Steering {
                    ifname: port.name.clone(),
                    queue: q as u32,
                    reason: e.to_string(),
                })?;
            port.registered[q] = true;
        }
        tracing::info!(
            port = %port.name,
            ifindex = port.ifindex,
            queues = port.queues.len(),
            ring_size = cfg.ring_size,
            umem_frames = frames,
            need_wakeup = cfg.need_wakeup,
            "AF_XDP port open"
        );
        Ok(port)
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sockets bound (one per queue).
    pub fn n_sockets(&self) -> usize {
        self.queues.len()
    }

    /// The socket fd of each queue (index = queue), e.g. to inspect it.
    pub fn xsk_fds(&self) -> Vec<RawFd> {
        self.queues.iter().map(|q| q.fd).collect()
    }

    /// Ring-level counters, plus the kernel's per-socket statistics.
    /// Lock-free (atomics and one `getsockopt` per socket).
    pub fn counters(&self) -> AfXdpCounters {
        let mut c = AfXdpCounters {
            rx_per_queue: Vec::with_capacity(self.queues.len()),
            ..AfXdpCounters::default()
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for q in self.queues.iter() {
            let (r, t) = (&q.rx_stats, &q.tx_stats);
            let rx = get(&r.packets);
            c.rx_per_queue.push(rx);
            c.rx_packets += rx;
            c.rx_bytes += get(&r.bytes);
            c.rx_contended += get(&r.contended);
            c.rx_oversize += get(&r.oversize);
            c.fill_wakeups += get(&r.fill_wakeups);
            c.fill_wakeup_errors += get(&r.fill_wakeup_errors);
            let fe = r.last_fill_errno.load(Ordering::Relaxed);
            if fe != 0 {
                c.last_fill_wakeup_errno = fe;
            }
            c.tx_packets += get(&t.packets);
            c.tx_bytes += get(&t.bytes);
            c.kicks += get(&t.kicks);
            let k = &mut c.kick_errors;
            k.again += get(&t.again);
            k.busy += get(&t.busy);
            k.nobufs += get(&t.nobufs);
            k.netdown += get(&t.netdown);
            k.nxio += get(&t.nxio);
            k.gone_other += get(&t.gone_other);
            k.other += get(&t.other);
            let ke = t.last_errno.load(Ordering::Relaxed);
            if ke != 0 {
                c.last_kick_errno = ke;
            }
            c.tx_ring_full += get(&t.ring_full);
            c.tx_contended += get(&t.contended);
            c.tx_oversize += get(&t.oversize);
            c.released += get(&t.released);
            if let Some(s) = xdp_statistics(q.fd) {
                c.fill_ring_empty += s.rx_fill_ring_empty_descs;
                c.kernel_rx_dropped += s.rx_dropped;
                c.kernel_rx_ring_full += s.rx_ring_full;
                c.kernel_rx_invalid_descs += s.rx_invalid_descs;
                c.kernel_tx_invalid_descs += s.tx_invalid_descs;
            }
        }
        c
    }

    /// Where every UMEM frame is. Takes each queue's halves with a blocking
    /// lock (control side; a PMD holds one for a batch at most).
    pub fn frame_census(&self) -> FrameCensus {
        let mut c = FrameCensus {
            total: u64::from(self.frames_total),
            ..FrameCensus::default()
        };
        for q in self.queues.iter() {
            {
                let rx = take(&q.rx);
                c.rx_kernel += rx.in_kernel as u64;
                c.rx_held += rx.held.len() as u64;
            }
            let tx = take(&q.tx);
            c.tx_free += tx.n_free as u64;
            c.tx_in_flight += tx.in_flight as u64;
        }
        c
    }

    /// Gives held rx frames back to the fill ring; returns how many went.
    #[inline]
    fn refill_held(rx: &mut RxHalf) -> usize {
        if rx.held.is_empty() {
            return 0;
        }
        // SAFETY: held frames came off this socket's rx ring (this UMEM) and
        // are referenced nowhere else.
        let put = unsafe { rx.fill.produce(&rx.held) };
        if put != 0 {
            rx.held.clear();
            rx.in_kernel += put;
        }
        put
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        for (q, reg) in self.registered.iter().enumerate() {
            if !*reg {
                continue;
            }
            if let Err(e) = self.steering.unregister(q as u32) {
                tracing::warn!(port = %self.name, queue = q, error = %e, "unregistering an AF_XDP socket failed");
            }
        }
        tracing::debug!(port = %self.name, "AF_XDP port closing");
        // The pages outlive the kernel's deferred release (linger.rs).
        linger::hold(self.umem_region.0, self.umem_region.1);
        // Fields drop next, in declaration order: sockets, UMEM, steering.
    }
}

impl Vport for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> &PortState {
        &self.state
    }

    fn mtu(&self) -> usize {
        self.l2_mtu
    }

    fn n_rxq(&self) -> usize {
        self.n_rxq
    }

    /// The queue's socket (module docs, "Waking an idle PMD").
    fn rx_wait_fd(&self, qid: usize) -> Option<BorrowedFd<'_>> {
        if qid >= self.n_rxq {
            return None;
        }
        let q = self.queues.get(qid)?;
        // SAFETY: `q.fd` is the socket of this queue, kept open by the rings
        // in `q`'s halves until `self` is dropped; the returned borrow is
        // tied to `&self`, so it cannot outlive the port (or the fd).
        Some(unsafe { BorrowedFd::borrow_raw(q.fd) })
    }

    fn recv(&self, qid: usize, pool: &mut PacketPool, out: &mut PacketBatch) -> usize {
        let Some(q) = self.queues.get(qid) else {
            return 0;
        };
        let Some(mut guard) = try_take(&q.rx) else {
            bump(&q.rx_stats.contended, 1);
            return 0;
        };
        let rx = &mut *guard;
        let mut refilled = Self::refill_held(rx);
        let want = out.room().min(pool.available()).min(rx.scratch.len());
        let mut n = 0;
        if want != 0 {
            // SAFETY: the descriptors are filled from this socket's rx ring,
            // bound to the port's UMEM; the frames are ours until produced
            // on the fill ring below.
            n = unsafe { rx.ring.consume(&mut rx.scratch[..want]) };
        }
        if n != 0 {
            rx.in_kernel -= n;
            let mut bytes = 0u64;
            let mut oversize = 0u64;
            let mut delivered = 0usize;
            for desc in &rx.scratch[..n] {
                // SAFETY: `desc` came off this socket's rx ring: a frame of
                // this UMEM that neither the kernel nor another thread
                // touches until it goes back on the fill ring below.
                let frame = unsafe { self.umem.data(desc) };
                // `want ≤ pool.available()`: alloc succeeds.
                let Some(mut pkt) = pool.alloc() else { break };
                if pkt.set_data(frame.contents()) {
                    bytes += pkt.len() as u64;
                    match out.push(pkt) {
                        Ok(()) => delivered += 1,
                        // Not reached: `want ≤ out.room()`.
                        Err(pkt) => pool.free(pkt),
                    }
                } else {
                    oversize += 1;
                    pool.free(pkt);
                }
            }
            // SAFETY: the frames came off this socket's rx ring (this
            // UMEM), were only read above, and are not referenced again.
            let put = unsafe { rx.fill.produce(&rx.scratch[..n]) };
            if put == n {
                rx.in_kernel += n;
                refilled += n;
            } else {
                // Not expected: the fill ring has room for every rx frame.
                rx.held.extend_from_slice(&rx.scratch[..n]);
            }
            let s = &q.rx_stats;
            bump(&s.packets, delivered as u64);
            bump(&s.bytes, bytes);
            bump(&s.oversize, oversize);
            n = delivered;
        }
        if refilled != 0 && self.need_wakeup && rx.fill.needs_wakeup() {
            bump(&q.rx_stats.fill_wakeups, 1);
            if let Err(errno) = wake_fill(q.fd) {
                bump(&q.rx_stats.fill_wakeup_errors, 1);
                q.rx_stats.last_fill_errno.store(errno, Ordering::Relaxed);
            }
        }
        n
    }

    fn send(
        &self,
        qid: usize,
        batch: &mut PacketBatch,
        pool: &mut PacketPool,
    ) -> Result<usize, TxError> {
        let Some(q) = self.queues.get(qid) else {
            return Err(TxError::Failed);
        };
        let s = &q.tx_stats;
        let Some(mut guard) = try_take(&q.tx) else {
            if !batch.is_empty() {
                bump(&s.contended, 1);
                bump(&s.ring_full, 1);
            }
            return Ok(0);
        };
        let tx = &mut *guard;
        tx.reclaim();

        // As many as there are free frames and free ring slots: produce is
        // all-or-nothing.
        let mut n = batch.len().min(tx.n_free);
        if n != 0 {
            n = n.min(tx.ring.nb_free(n as u32) as usize);
        }
        let start = tx.n_free - n;
        let mut copied = 0;
        let mut bytes = 0u64;
        for (desc, pkt) in tx.free[start..tx.n_free].iter_mut().zip(batch.iter()) {
            // SAFETY: `desc` is on this queue's free list: a frame of this
            // UMEM on no ring, so neither the kernel nor another thread (the
            // tx half is locked) touches it.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            if cursor.write_all(pkt.data()).is_err() {
                // Longer than a frame: it stays in the batch.
                bump(&s.oversize, 1);
                break;
            }
            bytes += pkt.len() as u64;
            copied += 1;
        }
        let produced = if copied == 0 {
            0
        } else {
            // SAFETY: the descriptors are free frames of this UMEM written
            // just above; once on the tx ring they are not touched until the
            // completion ring returns them.
            unsafe { tx.ring.produce(&tx.free[start..start + copied]) }
        };
        if produced != 0 {
            // Pop them: frames left above them (a packet too long for a
            // frame ended the copy early) move down onto the stack.
            tx.free.copy_within(start + produced..tx.n_free, start);
            tx.n_free -= produced;
            tx.in_flight += produced;
        }
        let mut released = 0u64;
        for p in batch.drain_front(produced) {
            if pool.available() < pool.created() {
                pool.free(p);
            } else {
                released += 1;
            }
        }
        bump(&s.packets, produced as u64);
        bump(&s.bytes, if produced == copied { bytes } else { 0 });
        bump(&s.released, released);
        if !batch.is_empty() {
            bump(&s.ring_full, 1);
        }

        // Kick once if the kernel has descriptors to take (new ones, or old
        // ones a transient error left behind) and the ring asks for it.
        let pending = produced != 0 || (tx.ring.nb_free_exact() < self.ring_size);
        if pending && (!self.need_wakeup || tx.ring.needs_wakeup()) {
            bump(&s.kicks, 1);
            if let Err(errno) = kick(q.fd) {
                s.kick_error(errno);
                match classify_errno(errno) {
                    ErrnoClass::Transient => {}
                    ErrnoClass::Gone => return Err(TxError::Gone),
                    ErrnoClass::Other => return Err(TxError::Failed),
                }
            }
        }
        Ok(produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn query_of_a_missing_interface_is_no_such_interface_naming_it() {
        let e = LinkInfo::query("xsw-nope0").unwrap_err();
        assert!(matches!(&e, AfXdpError::NoSuchInterface { ifname } if ifname == "xsw-nope0"));
        let msg = e.to_string();
        assert!(msg.contains("xsw-nope0"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn query_refuses_names_that_are_paths_or_too_long() {
        for bad in ["", ".", "..", "../lo", "lo/", "a b", "sixteen-chars-xx"] {
            assert!(
                matches!(
                    LinkInfo::query(bad),
                    Err(AfXdpError::NoSuchInterface { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_of_loopback_reads_index_mtu_queues_and_flags() {
        let lo = LinkInfo::query("lo").unwrap();
        assert_eq!(lo.ifindex, if_nametoindex("lo").unwrap());
        let mtu: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(lo.mtu, mtu);
        assert!(lo.rx_queues >= 1 && lo.tx_queues >= 1);
        assert!(lo.admin_up && lo.running);
    }

    /// A fake sysfs tree for one interface.
    struct FakeSysfs {
        root: std::path::PathBuf,
    }

    impl FakeSysfs {
        fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!(
                "xsw-afxdp-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&root).unwrap();
            FakeSysfs { root }
        }
        fn iface(&self, name: &str, files: &[(&str, &str)], rx: u32, tx: u32) {
            let dir = self.root.join(name);
            std::fs::create_dir_all(dir.join("queues")).unwrap();
            for (f, v) in files {
                std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
            }
            for i in 0..rx {
                std::fs::create_dir_all(dir.join(format!("queues/rx-{i}"))).unwrap();
            }
            for i in 0..tx {
                std::fs::create_dir_all(dir.join(format!("queues/tx-{i}"))).unwrap();
            }
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn sysfs_flags_carrier_and_queue_dirs_are_parsed() {
        let fs = FakeSysfs::new("parse");
        // 0x1003 = UP | BROADCAST | MULTICAST.
        fs.iface(
            "up0",
            &[
                ("ifindex", "7"),
                ("mtu", "1500"),
                ("flags", "0x1003"),
                ("operstate", "up"),
                ("carrier", "1"),
            ],
            4,
            3,
        );
        // 0x1002 = BROADCAST | MULTICAST: down; no carrier file readable.
        fs.iface(
            "down0",
            &[
                ("ifindex", "8"),
                ("mtu", "9000"),
                ("flags", "0x1002"),
                ("operstate", "down"),
            ],
            1,
            1,
        );
        // Up, but the veth peer is down: not running, no carrier.
        fs.iface(
            "nolower0",
            &[
                ("ifindex", "9"),
                ("mtu", "1500"),
                ("flags", "0x1003"),
                ("operstate", "lowerlayerdown"),
                ("carrier", "0"),
            ],
            1,
            1,
        );
        let up = LinkInfo::from_sysfs(&fs.root, "up0").unwrap();
        assert_eq!(
            up,
            LinkInfo {
                name: "up0".into(),
                ifindex: 7,
                mtu: 1500,
                rx_queues: 4,
                tx_queues: 3,
                admin_up: true,
                running: true,
                carrier: true,
            }
        );
        let down = LinkInfo::from_sysfs(&fs.root, "down0").unwrap();
        assert!(!down.admin_up && !down.running && !down.carrier);
        assert_eq!((down.ifindex, down.mtu), (8, 9000));
        let nolower = LinkInfo::from_sysfs(&fs.root, "nolower0").unwrap();
        assert!(nolower.admin_up && !nolower.running && !nolower.carrier);
    }

    #[test]
    fn sysfs_garbage_is_a_one_line_error_naming_the_file() {
        let fs = FakeSysfs::new("garbage");
        fs.iface(
            "bad0",
            &[
                ("ifindex", "seven"),
                ("mtu", "1500"),
                ("flags", "0x1"),
                ("operstate", "up"),
            ],
            1,
            1,
        );
        let e = LinkInfo::from_sysfs(&fs.root, "bad0").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, AfXdpError::Sysfs { .. }), "{msg}");
        assert!(msg.contains("ifindex") && msg.contains("seven"), "{msg}");
        assert!(!msg.contains('\n'));
        assert!(matches!(
            LinkInfo::from_sysfs(&fs.root, "absent0"),
            Err(AfXdpError::NoSuchInterface { .. })
        ));
    }

    #[test]
    fn max_mtu_is_the_umem_frame_less_xdp_headroom_and_l2_header() {
        assert_eq!(MAX_MTU, 2048 - 256 - 14 - 4);
        // The same data room as xsk-rs computes for our UMEM layout.
        let cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(UMEM_FRAME_SIZE).unwrap())
            .frame_headroom(0)
            .build()
            .unwrap();
        assert_eq!(cfg.xdp_headroom(), XDP_PACKET_HEADROOM);
        assert_eq!(MAX_MTU + L2_OVERHEAD, cfg.mtu());
        assert!((MAX_MTU + L2_OVERHEAD) as usize <= MAX_FRAME_LEN);
    }

    #[test]
    fn config_validation_names_what_is_wrong() {
        assert!(AfXdpConfig::default().validate().is_ok());
        let small = AfXdpConfig {
            frames_per_queue: 2047,
            ..AfXdpConfig::default()
        };
        let msg = small.validate().unwrap_err().to_string();
        assert!(
            msg.contains("frames_per_queue 2047") && msg.contains("4096"),
            "{msg}"
        );
        for ring in [0, 100, 32, 65536] {
            let c = AfXdpConfig {
                ring_size: ring,
                frames_per_queue: 1 << 20,
                need_wakeup: true,
            };
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.contains(&format!("ring_size {ring}")), "{msg}");
        }
        let huge = AfXdpConfig::default().umem_frames(1024).unwrap_err();
        assert!(huge.to_string().contains("1024 queues"), "{huge}");
        assert_eq!(AfXdpConfig::default().umem_frames(4).unwrap(), 4 * 4096);
    }

    #[test]
    fn kick_errnos_split_into_transient_gone_and_other() {
        for e in [libc::EAGAIN, libc::EBUSY, libc::ENOBUFS] {
            assert_eq!(classify_errno(e), ErrnoClass::Transient, "{e}");
        }
        for e in [libc::ENETDOWN, libc::ENXIO, libc::EBADF, libc::ENODEV] {
            assert_eq!(classify_errno(e), ErrnoClass::Gone, "{e}");
        }
        for e in [libc::EINVAL, libc::EOVERFLOW, libc::EFAULT] {
            assert_eq!(classify_errno(e), ErrnoClass::Other, "{e}");
        }
        let s = TxStats::default();
        for e in [
            libc::EAGAIN,
            libc::ENXIO,
            libc::ENETDOWN,
            libc::EINVAL,
            libc::EBUSY,
        ] {
            s.kick_error(e);
        }
        assert_eq!(s.last_errno.load(Ordering::Relaxed), libc::EBUSY);
        let k = KickErrorCounts {
            again: s.again.load(Ordering::Relaxed),
            busy: s.busy.load(Ordering::Relaxed),
            nobufs: s.nobufs.load(Ordering::Relaxed),
            netdown: s.netdown.load(Ordering::Relaxed),
            nxio: s.nxio.load(Ordering::Relaxed),
            gone_other: s.gone_other.load(Ordering::Relaxed),
            other: s.other.load(Ordering::Relaxed),
        };
        assert_eq!((k.transient(), k.gone(), k.other, k.total()), (2, 2, 1, 5));
    }

    /// Steering that records what it was asked to do.
    struct Recording {
        registered: AtomicUsize,
        dropped: Arc<AtomicUsize>,
    }

    impl Recording {
        fn new(dropped: &Arc<AtomicUsize>) -> Box<Self> {
            Box::new(Recording {
                registered: AtomicUsize::new(0),
                dropped: Arc::clone(dropped),
            })
        }
    }

    impl XskSteering for Recording {
        fn register(&self, _queue: u32, _fd: RawFd) -> io::Result<()> {
            self.registered.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn unregister(&self, _queue: u32) -> io::Result<()> {
            Ok(())
        }
    }

    impl Drop for Recording {
        fn drop(&mut self) {
            assert_eq!(self.registered.load(Ordering::Relaxed), 0);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn link(name: &str, mtu: u32) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            ifindex: 1,
            mtu,
            rx_queues: 1,
            tx_queues: 1,
            admin_up: true,
            running: true,
            carrier: true,
        }
    }

    #[test]
    fn open_refuses_an_mtu_above_max_before_touching_anything() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let steering = Recording::new(&dropped);
        let e = AfXdpPort::open(&link("xsw-big0", 3000), &AfXdpConfig::default(), steering)
            .unwrap_err();
        assert!(matches!(
            &e,
            AfXdpError::MtuTooLarge { ifname, mtu: 3000, max: MAX_MTU } if ifname == "xsw-big0"
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("xsw-big0") && msg.contains("3000") && msg.contains("1774"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "steering dropped, never used"
        );
    }

    #[test]
    fn open_refuses_a_bad_config_and_a_queueless_link() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mk = || Recording::new(&dropped);
        let cfg = AfXdpConfig {
            frames_per_queue: 100,
            ..AfXdpConfig::default()
        };
        assert!(matches!(
            AfXdpPort::open(&link("xsw-c0", 1500), &cfg, mk()),
            Err(AfXdpError::InvalidConfig(_))
        ));
        let mut l = link("xsw-q0", 1500);
        l.rx_queues = 0;
        let e = AfXdpPort::open(&l, &AfXdpConfig::default(), mk()).unwrap_err();
        assert!(matches!(e, AfXdpError::NoQueues { .. }), "{e}");
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
