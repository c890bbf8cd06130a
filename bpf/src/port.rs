//! The port program's loader: one `xswitch_port` XDP program per switch port.
//!
//! # What
//! [`PortProgram::attach`] loads a fresh instance of `xswitch_port`
//! (`src/bpf/xswitch_port.bpf.c`) with its own two maps and attaches it to
//! one interface. The AF_XDP vport then binds one socket per rx queue and
//! enters it with [`PortProgram::register_xsk`]; from then on the program
//! redirects every frame of that queue to the socket. A queue without a
//! socket passes its frames to the kernel stack, so a port never blackholes
//! traffic while it comes up or goes down. [`PortProgram::queue_stats`] sums
//! the program's per-CPU counters of redirected and passed frames.
//!
//! # Invariants
//! * The program is attached through a BPF link, never through the old
//!   netlink interface. The link's fd belongs to the `PortProgram`: dropping
//!   it detaches the program, and so does the death of the process in any
//!   way (SIGKILL included), because the kernel releases a link when its
//!   last fd closes. An xswitch run therefore cannot leave a program behind,
//!   and while one runs no other process can replace its program (the
//!   kernel refuses to replace a link-attached program).
//! * Someone else's program is never replaced. Before attaching, the
//!   interface is queried: a program named `xswitch_port` attached the old
//!   way is the leftover of an earlier, crashed xswitch (or of a tool that
//!   used netlink) and is detached with a warning, exactly that program
//!   (`XDP_FLAGS_REPLACE` with its fd, so a program attached meanwhile is
//!   not hit); an `xswitch_port` held by a live link belongs to a running
//!   xswitch → [`BpfError::InUse`]; any other program → [`BpfError::Busy`].
//! * [`XdpMode::Auto`] means native (driver) mode, falling back to generic
//!   (SKB) mode when the driver refuses; what is actually attached is in
//!   [`PortProgram::mode`]. Privilege errors, a vanished interface and a
//!   busy interface are not reasons to fall back: they fail in either mode.
//! * Queue indices are bounded by [`MAX_QUEUES`] (= `XSWITCH_MAX_QUEUES` in
//!   the C program, the size of both maps); a larger queue is an error, not
//!   a silent no-op.
//!
//! # Locking
//! None. The maps are updated by single syscalls, which the kernel makes
//! atomic per entry; `PortProgram` is `Send + Sync` and all its methods take
//! `&self`, so the control plane may register sockets from any thread. The
//! program itself reads the XSKMAP under RCU in the kernel.
//!
//! # Why each instance has its own maps
//! An XSKMAP entry is a socket bound to one (interface, queue); a map shared
//! between ports would need a key that encodes the interface, and a port's
//! deletion would have to scrub its entries from a map others use. With one
//! program instance per port, deleting the port is dropping its
//! `PortProgram`: link, program and maps go away together.
//!
//! # Unsafe
//! The libbpf calls libbpf-rs 0.25 does not wrap (link creation with mode
//! flags, link detach, `bpf_xdp_query`, `bpf_xdp_detach`, program info) and
//! `if_nametoindex`/`SIOCGIFMTU` are FFI calls; each is one `unsafe` block
//! with its justification. Nothing else here is unsafe.
#![allow(unsafe_code)] // FFI to libbpf and libc (see "Unsafe" above).

use std::ffi::{CStr, CString};
use std::fmt;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::sync::Once;

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, PrintLevel, Program};

use crate::error::BpfError;
use crate::skel::XswitchPortSkelBuilder;

/// How many rx queues a port program serves (`XSWITCH_MAX_QUEUES` in
/// `xswitch_port.bpf.c`: the size of its XSKMAP and counter array).
pub const MAX_QUEUES: u32 = 256;

/// The kernel-visible name of the port program (its function name).
pub const PORT_PROG_NAME: &str = "xswitch_port";

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native if the driver takes it, generic otherwise.
    Auto,
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the generic path, after the skb is built (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl XdpMode {
    fn as_str(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }

    /// The attach flag selecting this mode; `Auto` has none (it is resolved
    /// to one of the others before attaching).
    fn flag(self) -> u32 {
        match self {
            XdpMode::Auto => 0,
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for XdpMode {
    type Err = BpfError;

    fn from_str(s: &str) -> Result<XdpMode, BpfError> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            _ => Err(BpfError::UnknownMode {
                given: s.to_string(),
            }),
        }
    }
}

/// Frames one rx queue's program has handled, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Sent to the queue's AF_XDP socket.
    pub redirected: u64,
    /// Passed to the kernel stack (no socket registered for the queue).
    pub passed: u64,
}

impl std::ops::Add for QueueStats {
    type Output = QueueStats;

    fn add(self, o: QueueStats) -> QueueStats {
        QueueStats {
            redirected: self.redirected + o.redirected,
            passed: self.passed + o.passed,
        }
    }
}

impl std::iter::Sum for QueueStats {
    fn sum<I: Iterator<Item = QueueStats>>(iter: I) -> QueueStats {
        iter.fold(QueueStats::default(), |a, b| a + b)
    }
}

/// An XDP program attached to an interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The program's id.
    pub id: u32,
    /// The program's name (at most 15 bytes, the kernel's limit).
    pub name: String,
    /// `Native` or `Generic`.
    pub mode: XdpMode,
}

/// `xswitch_port` attached to one interface through a BPF link, with its
/// maps. Dropping it detaches the program.
pub struct PortProgram {
    ifindex: u32,
    ifname: String,
    mode: XdpMode,
    prog_id: u32,
    /// The BPF link: the attachment itself.
    link: OwnedFd,
    /// `xsks_map`: rx queue → AF_XDP socket.
    xsks: MapHandle,
    /// `queue_stats`: per-CPU {redirected, passed} per rx queue.
    stats: MapHandle,
}

impl fmt::Debug for PortProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("prog_id", &self.prog_id)
            .finish_non_exhaustive()
    }
}

impl PortProgram {
    /// Loads `xswitch_port` and attaches it to `ifindex` through a BPF link
    /// (so the kernel detaches it when the link fd closes: on drop, and when
    /// the process dies, even by SIGKILL). `ifname` is for messages.
    ///
    /// A leftover `xswitch_port` attached without a link (a crashed run) is
    /// detached first, with a warning. Another program on the interface is
    /// [`BpfError::Busy`]; an `xswitch_port` held by a live process is
    /// [`BpfError::InUse`].
    pub fn attach(ifindex: u32, ifname: &str, mode: XdpMode) -> Result<PortProgram, BpfError> {
        let ifindex_c = c_ifindex(ifindex, ifname)?;
        route_libbpf_log();
        let loaded = Loaded::load(ifname)?;
        detach_leftover(ifindex_c, ifname)?;

        let (mode, link) = match mode {
            XdpMode::Native | XdpMode::Generic => {
                let link = create_link(loaded.prog.as_fd(), ifindex_c, mode)
                    .map_err(|errno| attach_error(errno, ifindex_c, ifname, mode))?;
                (mode, link)
            }
            XdpMode::Auto => match create_link(loaded.prog.as_fd(), ifindex_c, XdpMode::Native) {
                Ok(link) => (XdpMode::Native, link),
                Err(errno) => {
                    let native_err = attach_error(errno, ifindex_c, ifname, XdpMode::Native);
                    if !falls_back(&native_err) {
                        return Err(native_err);
                    }
                    let link = create_link(loaded.prog.as_fd(), ifindex_c, XdpMode::Generic)
                        .map_err(|errno| {
                            attach_error(errno, ifindex_c, ifname, XdpMode::Generic)
                        })?;
                    tracing::info!(
                        "{ifname}: native XDP refused ({native_err}); attached in generic mode"
                    );
                    (XdpMode::Generic, link)
                }
            },
        };
        let prog_id = Program::id_from_fd(loaded.prog.as_fd())
            .map_err(|e| BpfError::from_libbpf("reading the port program's id", ifname, &e))?;
        tracing::info!("{ifname}: xswitch_port (id {prog_id}) attached in {mode} mode");
        // `loaded.prog` closes here; the link keeps the program alive.
        Ok(PortProgram {
            ifindex,
            ifname: ifname.to_string(),
            mode,
            prog_id,
            link,
            xsks: loaded.xsks,
            stats: loaded.stats,
        })
    }

    /// `Native` or `Generic`: the mode actually attached.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's name as given to [`PortProgram::attach`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The kernel's id of this program instance.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// Steers rx queue `queue` to the AF_XDP socket `xsk_fd`, which must be
    /// bound to this interface and queue (the kernel drops frames redirected
    /// to a socket bound elsewhere). Replaces any socket registered before.
    /// A descriptor that is not an AF_XDP socket is refused by the kernel.
    pub fn register_xsk(&self, queue: u32, xsk_fd: RawFd) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        let Ok(fd) = u32::try_from(xsk_fd) else {
            return Err(BpfError::Os {
                op: "registering an AF_XDP socket",
                ifname: self.ifname.clone(),
                reason: format!("invalid file descriptor {xsk_fd}"),
            });
        };
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| {
                match BpfError::from_libbpf("registering an AF_XDP socket", &self.ifname, &e) {
                    BpfError::Os { op, ifname, reason } => BpfError::Os {
                        op,
                        ifname,
                        reason: format!("fd {xsk_fd} for queue {queue}: {reason}"),
                    },
                    other => other,
                }
            })
    }

    /// Stops steering rx queue `queue` to a socket: its frames go to the
    /// kernel stack again. A queue with no socket registered is fine.
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        match self.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BpfError::from_libbpf(
                "unregistering an AF_XDP socket",
                &self.ifname,
                &e,
            )),
        }
    }

    /// Per-queue counters, summed over CPUs: index = rx queue. The vector
    /// stops at the last queue with a non-zero counter (queues past its end
    /// have seen nothing), so it is empty before any traffic.
    pub fn queue_stats(&self) -> Result<Vec<QueueStats>, BpfError> {
        let mut out = Vec::new();
        for queue in 0..MAX_QUEUES {
            let per_cpu = self
                .stats
                .lookup_percpu(&queue.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| BpfError::from_libbpf("reading queue counters", &self.ifname, &e))?;
            let sum = per_cpu
                .unwrap_or_default()
                .iter()
                .map(|v| QueueStats {
                    redirected: read_u64(v, 0),
                    passed: read_u64(v, 8),
                })
                .sum();
            out.push(sum);
        }
        while out.last() == Some(&QueueStats::default()) {
            out.pop();
        }
        Ok(out)
    }

    fn check_queue(&self, queue: u32) -> Result<(), BpfError> {
        if queue >= MAX_QUEUES {
            return Err(BpfError::QueueOutOfRange {
                ifname: self.ifname.clone(),
                queue,
                max: MAX_QUEUES,
            });
        }
        Ok(())
    }
}

impl Drop for PortProgram {
    fn drop(&mut self) {
        // Detach explicitly rather than only closing: a forked child that
        // has not exec'd yet may briefly share the fd, and the port must be
        // gone from the interface when its owner drops it. The fd closes
        // afterwards with the field.
        // SAFETY: `self.link` is an open BPF link fd owned by `self`;
        // bpf_link_detach only issues BPF_LINK_DETACH on it.
        let ret = unsafe { libbpf_sys::bpf_link_detach(self.link.as_raw_fd()) };
        if ret < 0 {
            // Nothing to do about it: the fd closes next, which releases
            // the link in any case. (A deleted interface is not an error:
            // the kernel already cut the link loose and detach returns 0.)
            tracing::debug!(
                "{}: detaching xswitch_port (id {}): {}",
                self.ifname,
                self.prog_id,
                std::io::Error::from_raw_os_error(-ret)
            );
        } else {
            tracing::debug!(
                "{}: xswitch_port (id {}) detached",
                self.ifname,
                self.prog_id
            );
        }
    }
}

/// Sends libbpf's own messages to `tracing` (target `libbpf`) instead of
/// stderr, once per process. What fails comes back to the caller as a
/// [`BpfError`] anyway; the verifier's log and the kernel's netlink
/// messages stay reachable with `RUST_LOG=libbpf=debug`.
fn route_libbpf_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Info, libbpf_log)));
    });
}

fn libbpf_log(level: PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        PrintLevel::Warn => tracing::warn!(target: "libbpf", "{msg}"),
        PrintLevel::Info => tracing::debug!(target: "libbpf", "{msg}"),
        PrintLevel::Debug => tracing::trace!(target: "libbpf", "{msg}"),
    }
}

/// What `XswitchPortSkel::load` leaves us once the skeleton is gone: the
/// program's fd and owned handles on its two maps.
struct Loaded {
    prog: OwnedFd,
    xsks: MapHandle,
    stats: MapHandle,
}

impl Loaded {
    fn load(ifname: &str) -> Result<Loaded, BpfError> {
        const OP: &str = "loading the XDP port program";
        let err = |e: libbpf_rs::Error| BpfError::from_libbpf(OP, ifname, &e);
        let mut storage = MaybeUninit::uninit();
        let skel = XswitchPortSkelBuilder::default()
            .open(&mut storage)
            .map_err(err)?
            .load()
            .map_err(err)?;
        let prog = skel
            .progs
            .xswitch_port
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| BpfError::Os {
                op: OP,
                ifname: ifname.to_string(),
                reason: e.to_string(),
            })?;
        let xsks = MapHandle::try_from(&skel.maps.xsks_map).map_err(err)?;
        let stats = MapHandle::try_from(&skel.maps.queue_stats).map_err(err)?;
        // Dropping the skeleton closes libbpf's own fds; ours keep the
        // program and maps alive.
        Ok(Loaded { prog, xsks, stats })
    }
}

/// What XDP program (if any) is attached to `ifindex` now, in native or
/// generic mode (`bpf_xdp_query`, then the program's info for its name).
/// Hardware-offloaded programs are not reported: xswitch never uses them.
pub fn attached_program(ifindex: u32) -> Result<Option<AttachedProgram>, BpfError> {
    let ifname = format!("ifindex {ifindex}");
    let ifindex_c = c_ifindex(ifindex, &ifname)?;
    // A program may be detached between the query and the name lookup;
    // then ask again (bounded: the interface may be churning).
    for _ in 0..3 {
        let Some((id, mode)) = query(ifindex_c, &ifname)?.into_iter().next() else {
            return Ok(None);
        };
        if let Some(name) = prog_name(id, &ifname)? {
            return Ok(Some(AttachedProgram { id, name, mode }));
        }
    }
    Ok(None)
}

/// The index of interface `ifname` in the calling thread's network
/// namespace (`if_nametoindex`).
pub fn ifindex_of(ifname: &str) -> Result<u32, BpfError> {
    let no_such = || BpfError::NoSuchInterface {
        ifname: ifname.to_string(),
    };
    if ifname.is_empty() || ifname.len() >= libc::IF_NAMESIZE {
        return Err(no_such());
    }
    let name = CString::new(ifname).map_err(|_| no_such())?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(no_such());
    }
    Ok(index)
}

/// The `c_int` the libbpf calls take; an index that does not fit names no
/// interface.
fn c_ifindex(ifindex: u32, ifname: &str) -> Result<libc::c_int, BpfError> {
    match libc::c_int::try_from(ifindex) {
        Ok(i) if i > 0 => Ok(i),
        _ => Err(BpfError::NoSuchInterface {
            ifname: ifname.to_string(),
        }),
    }
}

/// Programs attached to the interface now, native first, with their modes.
fn query(ifindex: libc::c_int, ifname: &str) -> Result<Vec<(u32, XdpMode)>, BpfError> {
    let mut opts = libbpf_sys::bpf_xdp_query_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    // SAFETY: `opts` is a properly sized, initialised bpf_xdp_query_opts
    // (its `sz` says so) that lives across the call; libbpf writes only
    // within it.
    let ret = unsafe { libbpf_sys::bpf_xdp_query(ifindex, 0, &mut opts) };
    if ret < 0 {
        return Err(BpfError::from_errno(
            "querying the attached XDP program",
            ifname,
            -ret,
        ));
    }
    let mut found = Vec::new();
    if opts.drv_prog_id != 0 {
        found.push((opts.drv_prog_id, XdpMode::Native));
    }
    if opts.skb_prog_id != 0 {
        found.push((opts.skb_prog_id, XdpMode::Generic));
    }
    Ok(found)
}

/// A program's fd by id; `None` when it no longer exists.
fn prog_fd(id: u32, ifname: &str) -> Result<Option<OwnedFd>, BpfError> {
    match Program::fd_from_id(id) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BpfError::from_libbpf(
            "opening the attached XDP program",
            ifname,
            &e,
        )),
    }
}

/// A program's name by id; `None` when it no longer exists.
fn prog_name(id: u32, ifname: &str) -> Result<Option<String>, BpfError> {
    let Some(fd) = prog_fd(id, ifname)? else {
        return Ok(None);
    };
    prog_name_of(fd.as_fd(), ifname).map(Some)
}

fn prog_name_of(fd: BorrowedFd<'_>, ifname: &str) -> Result<String, BpfError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `fd` is an open program fd; `info` is a bpf_prog_info of
    // `len` bytes that the kernel fills (it writes at most `len` bytes and
    // follows no pointers, all of which are zero).
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(BpfError::from_errno(
            "reading the attached XDP program's info",
            ifname,
            -ret,
        ));
    }
    // The kernel NUL-terminates the name within its 16 bytes.
    let bytes: Vec<u8> = info.name.iter().map(|&c| c as u8).collect();
    Ok(CStr::from_bytes_until_nul(&bytes)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Clears the way for our link: detaches an `xswitch_port` left attached
/// the old way (netlink, no link) by a crashed run; refuses anything else.
fn detach_leftover(ifindex: libc::c_int, ifname: &str) -> Result<(), BpfError> {
    for (id, mode) in query(ifindex, ifname)? {
        let Some(fd) = prog_fd(id, ifname)? else {
            continue; // detached meanwhile
        };
        let name = prog_name_of(fd.as_fd(), ifname)?;
        if name != PORT_PROG_NAME {
            return Err(BpfError::Busy {
                ifname: ifname.to_string(),
                prog_name: name,
                prog_id: id,
            });
        }
        let opts = libbpf_sys::bpf_xdp_attach_opts {
            sz: size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t,
            old_prog_fd: fd.as_raw_fd(),
            ..Default::default()
        };
        // SAFETY: `opts` is a properly sized bpf_xdp_attach_opts living
        // across the call; `old_prog_fd` is an open program fd (`fd`), which
        // makes the kernel detach exactly that program (XDP_FLAGS_REPLACE).
        let ret = unsafe {
            libbpf_sys::bpf_xdp_detach(ifindex, mode.flag() | libbpf_sys::XDP_FLAGS_REPLACE, &opts)
        };
        match -ret {
            0 => tracing::warn!(
                "{ifname}: detached a stale {PORT_PROG_NAME} (id {id}, {mode} mode) left by an earlier run"
            ),
            // The program is held by a BPF link: a live process owns it.
            libc::EBUSY => {
                return Err(BpfError::InUse {
                    ifname: ifname.to_string(),
                    prog_name: name,
                    prog_id: id,
                })
            }
            // Replaced by another program since the query: report that one.
            libc::EEXIST => return Err(occupied_error(ifindex, ifname, libc::EEXIST)),
            errno => {
                return Err(BpfError::from_errno(
                    "detaching a stale xswitch_port",
                    ifname,
                    errno,
                ))
            }
        }
    }
    Ok(())
}

/// Attaches `prog` to the interface in `mode` (Native or Generic) through a
/// new BPF link; the errno on failure.
fn create_link(prog: BorrowedFd<'_>, ifindex: libc::c_int, mode: XdpMode) -> Result<OwnedFd, i32> {
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: size_of::<libbpf_sys::bpf_link_create_opts>() as libbpf_sys::size_t,
        flags: mode.flag(),
        ..Default::default()
    };
    // SAFETY: `prog` is an open program fd; `opts` is a properly sized,
    // otherwise zeroed bpf_link_create_opts living across the call.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex, libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(-fd);
    }
    // SAFETY: bpf_link_create returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The error for a failed link creation in `mode`.
fn attach_error(errno: i32, ifindex: libc::c_int, ifname: &str, mode: XdpMode) -> BpfError {
    const OP_NATIVE: &str = "attaching the XDP program in native mode";
    const OP_GENERIC: &str = "attaching the XDP program in generic mode";
    let op = if mode == XdpMode::Native {
        OP_NATIVE
    } else {
        OP_GENERIC
    };
    match errno {
        libc::ERANGE if mode == XdpMode::Native => BpfError::MtuTooLarge {
            ifname: ifname.to_string(),
            mtu: read_mtu(ifname),
        },
        libc::EBUSY | libc::EEXIST => occupied_error(ifindex, ifname, errno),
        _ => BpfError::from_errno(op, ifname, errno),
    }
}

/// The interface was taken between our check and our attach: say by whom.
fn occupied_error(ifindex: libc::c_int, ifname: &str, errno: i32) -> BpfError {
    const OP: &str = "attaching the XDP program";
    let Ok(found) = query(ifindex, ifname) else {
        return BpfError::from_errno(OP, ifname, errno);
    };
    for (id, _) in found {
        if let Ok(Some(name)) = prog_name(id, ifname) {
            let (ifname, prog_name, prog_id) = (ifname.to_string(), name, id);
            return if prog_name == PORT_PROG_NAME {
                BpfError::InUse {
                    ifname,
                    prog_name,
                    prog_id,
                }
            } else {
                BpfError::Busy {
                    ifname,
                    prog_name,
                    prog_id,
                }
            };
        }
    }
    BpfError::from_errno(OP, ifname, errno)
}

/// Whether `Auto` may retry in generic mode after native failed so: not for
/// errors that generic mode would hit as well.
fn falls_back(err: &BpfError) -> bool {
    !matches!(
        err,
        BpfError::PermissionDenied { .. }
            | BpfError::NoSuchInterface { .. }
            | BpfError::Busy { .. }
            | BpfError::InUse { .. }
    )
}

/// The interface's MTU (`SIOCGIFMTU` in the calling thread's namespace,
/// where /sys/class/net may show another namespace's devices).
fn read_mtu(ifname: &str) -> Option<u32> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `sock` is an open socket; `req` is an ifreq with a
    // NUL-terminated name, which SIOCGIFMTU reads and fills in place.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if ret < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok()
}

fn read_u64(v: &[u8], at: usize) -> u64 {
    v.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

// PortProgram is shared between the control plane's threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<PortProgram>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip_through_display_and_from_str() {
        for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Generic] {
            assert_eq!(mode.to_string().parse::<XdpMode>(), Ok(mode));
        }
        assert_eq!("native".parse::<XdpMode>(), Ok(XdpMode::Native));
    }

    #[test]
    fn unknown_mode_is_refused_naming_the_input_and_the_choices() {
        let err = "driver".parse::<XdpMode>().expect_err("not a mode");
        assert_eq!(
            err.to_string(),
            "unknown XDP mode 'driver' (expected auto, native or generic)"
        );
        assert!("Native".parse::<XdpMode>().is_err(), "names are lower case");
    }

    #[test]
    fn mode_flags_select_driver_and_skb_mode() {
        assert_eq!(XdpMode::Native.flag(), libbpf_sys::XDP_FLAGS_DRV_MODE);
        assert_eq!(XdpMode::Generic.flag(), libbpf_sys::XDP_FLAGS_SKB_MODE);
        assert_eq!(XdpMode::Auto.flag(), 0);
    }

    #[test]
    fn errno_classification_names_privileges_and_missing_interfaces() {
        for errno in [libc::EPERM, libc::EACCES] {
            let err = BpfError::from_errno("attaching the XDP program", "veth0", errno);
            assert_eq!(
                err.to_string(),
                "attaching the XDP program on veth0 needs CAP_BPF and CAP_NET_ADMIN (run as root)"
            );
        }
        assert_eq!(
            BpfError::from_errno("x", "veth0", libc::ENODEV),
            BpfError::NoSuchInterface {
                ifname: "veth0".into()
            }
        );
        let other = BpfError::from_errno("attaching the XDP program", "veth0", libc::EINVAL);
        assert_eq!(
            other.to_string(),
            format!(
                "attaching the XDP program on veth0 failed: {}",
                std::io::Error::from_raw_os_error(libc::EINVAL)
            )
        );
    }

    #[test]
    fn range_error_in_native_mode_is_the_mtu_message() {
        // ifindex 1 with a name no interface has: the MTU cannot be read.
        let err = attach_error(libc::ERANGE, 1, "xnoexist0", XdpMode::Native);
        assert_eq!(
            err.to_string(),
            "MTU too large for native XDP on xnoexist0 (mtu unknown; native XDP without multi-buffer takes < 3520)"
        );
        let generic = attach_error(libc::ERANGE, 1, "xnoexist0", XdpMode::Generic);
        assert!(matches!(generic, BpfError::Os { .. }), "{generic:?}");
    }

    #[test]
    fn auto_falls_back_only_on_errors_generic_mode_may_not_hit() {
        let ifname = "veth0".to_string();
        assert!(falls_back(&BpfError::MtuTooLarge {
            ifname: ifname.clone(),
            mtu: Some(9000)
        }));
        assert!(falls_back(&BpfError::Os {
            op: "x",
            ifname: ifname.clone(),
            reason: "Operation not supported".into()
        }));
        assert!(!falls_back(&BpfError::PermissionDenied {
            op: "x",
            ifname: ifname.clone()
        }));
        assert!(!falls_back(&BpfError::NoSuchInterface {
            ifname: ifname.clone()
        }));
        assert!(!falls_back(&BpfError::Busy {
            ifname: ifname.clone(),
            prog_name: "other".into(),
            prog_id: 7
        }));
        assert!(!falls_back(&BpfError::InUse {
            ifname,
            prog_name: PORT_PROG_NAME.into(),
            prog_id: 7
        }));
    }

    #[test]
    fn queue_stats_sum_field_by_field() {
        let qs = [
            QueueStats {
                redirected: 3,
                passed: 1,
            },
            QueueStats {
                redirected: 4,
                passed: 10,
            },
        ];
        assert_eq!(
            qs.iter().copied().sum::<QueueStats>(),
            QueueStats {
                redirected: 7,
                passed: 11
            }
        );
    }

    #[test]
    fn per_cpu_values_are_read_in_native_byte_order_and_short_ones_as_zero() {
        let mut v = 5u64.to_ne_bytes().to_vec();
        v.extend_from_slice(&9u64.to_ne_bytes());
        assert_eq!((read_u64(&v, 0), read_u64(&v, 8)), (5, 9));
        assert_eq!(read_u64(&v[..12], 8), 0);
    }

    #[test]
    fn interface_indices_that_libbpf_cannot_take_name_no_interface() {
        for bad in [0, u32::MAX, i32::MAX as u32 + 1] {
            assert_eq!(
                c_ifindex(bad, "x"),
                Err(BpfError::NoSuchInterface { ifname: "x".into() })
            );
        }
        assert_eq!(c_ifindex(7, "x"), Ok(7));
    }
}
