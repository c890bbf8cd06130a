//! The benchmark's traffic generator, its XDP sink and the kernel-limit
//! reference device (`xswitch bench`, benches/).
//!
//! # What
//! * [`Generator`]: a line-rate UDP generator on one core, with no NIC and
//!   no socket. It uses `BPF_PROG_RUN` in *live-frames* mode
//!   (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel ≥ 5.18), the technique of
//!   xdp-trafficgen: the kernel turns a template frame into real xdp_frames
//!   from a page pool, runs `xswitch_gen.bpf.c` on each, and carries out the
//!   `bpf_redirect` it returns — out of the generator's veth, in batches of
//!   64, `repeat` frames per syscall. No skb is ever built on the sending
//!   side, which is why one core reaches several Mpps.
//! * [`XdpSink`]: `xswitch_sink.bpf.c` on the receiving veth — counts per
//!   CPU and drops: the cheapest receiver there is.
//! * [`XdpRedirect`]: `xswitch_redirect.bpf.c` on two veths, forwarding
//!   each to the other through a devmap: the fastest forwarding between
//!   veths on this kernel, the yardstick every switch is held against.
//!
//! # Invariants
//! * Everything that resolves an interface (load + run of the generator,
//!   attach of sink and redirect) happens in the network namespace of the
//!   calling thread; [`netns::NetnsGuard`] moves a thread there. Once
//!   attached, a program stays on its interface whatever thread holds it.
//! * Attachments are BPF links: dropping the owner, or the process dying
//!   (even by SIGKILL), detaches them. Nothing is left on an interface.
//! * Counters are per CPU in the kernel and summed here; a reader never
//!   stops the programs.
//! * A veth only delivers redirected frames if its *peer* has NAPI (an XDP
//!   program attached or GRO on); otherwise they vanish silently. The
//!   harness sees to that; the generator cannot.
//!
//! # Why live frames and not AF_XDP or packet sockets
//! netsniff-ng's `trafgen` (packet mmap) tops out near 0.6 Mpps here and
//! Debian's xdp-trafficgen fails on this kernel (DESIGN.md "Platform
//! facts"). An AF_XDP tx socket on veth is copy mode: an skb per frame. A
//! live-frame run has none of those costs, and the frames it sends are real
//! frames the receiving veth cannot tell from any others.
//!
//! # Frame sizes
//! See [`frame`]: sizes count the FCS, as RFC 2544 does; 64 bytes is a
//! 60-byte buffer.

pub mod frame;
pub mod netns;
mod packet;
mod redirect;
mod sink;
#[cfg(test)]
mod tests;

pub use redirect::{FwdCounts, XdpRedirect};
pub use sink::{SinkCounts, XdpSink};

use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use frame::FrameSpec;

pub(crate) mod skel {
    #![allow(
        clippy::all,
        missing_docs,
        unused,
        unsafe_code,
        clippy::undocumented_unsafe_blocks
    )]
    pub mod gen {
        include!(concat!(env!("OUT_DIR"), "/xswitch_gen.skel.rs"));
    }
    pub mod sink {
        include!(concat!(env!("OUT_DIR"), "/xswitch_sink.skel.rs"));
    }
    pub mod redirect {
        include!(concat!(env!("OUT_DIR"), "/xswitch_redirect.skel.rs"));
    }
}

/// `GEN_MAGIC` in xswitch_gen.bpf.c: the XDP metadata that marks a frame
/// as the generator's own.
const GEN_MAGIC: u32 = 0x7873_7767;
/// `sizeof(struct xdp_md)`: data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex.
const XDP_MD_LEN: usize = 24;
/// `BPF_F_TEST_XDP_LIVE_FRAMES` from <linux/bpf.h>.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// Frames per syscall at full speed: adapted so one call lasts about
/// [`CALL_TARGET`]; starts here.
const FIRST_CHUNK: u32 = 4096;
const MIN_CHUNK: u32 = 64;
const MAX_CHUNK: u32 = 1 << 20;
/// How long one BPF_PROG_RUN call should take at full speed: short enough
/// that a run ends close to its deadline, long enough that the syscall
/// itself costs nothing.
const CALL_TARGET: Duration = Duration::from_millis(2);
/// Pacing tick for a fixed rate: one burst per tick.
const PACE_TICK: Duration = Duration::from_millis(1);

/// Why the generator, sink or reference device could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Frame size outside what the family allows (sizes include the FCS).
    #[error("frame size {size} is out of range: {min}..={max} bytes (including the 4-byte FCS)")]
    FrameSize {
        /// Asked for.
        size: usize,
        /// Smallest allowed for the address family.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// Flow count that the UDP source-port range cannot hold.
    #[error("{flows} flows do not fit the UDP source ports {base}..=65535 (need 1..={max})")]
    Flows {
        /// Asked for.
        flows: u32,
        /// First source port.
        base: u16,
        /// Most flows possible from `base`.
        max: u32,
    },
    /// Source and destination addresses of different families.
    #[error("source and destination IP addresses must both be IPv4 or both IPv6")]
    MixedAddressFamilies,
    /// Interface not present in the calling thread's namespace.
    #[error("no interface named {0:?} in this network namespace")]
    NoSuchInterface(String),
    /// setns failed.
    #[error("cannot enter network namespace {path}: {reason}")]
    Netns {
        /// The namespace handle.
        path: String,
        /// The OS's reason.
        reason: String,
    },
    /// CPU affinity failed.
    #[error("cannot pin thread to CPU {cpu}: {reason}")]
    Pin {
        /// Requested CPU.
        cpu: usize,
        /// The OS's reason.
        reason: String,
    },
    /// The packet-socket fallback ([`GenMethod::PacketSocket`]) failed.
    #[error("{what}: {source}")]
    Packet {
        /// What was being done.
        what: &'static str,
        /// The OS's error.
        source: std::io::Error,
    },
    /// Loading, attaching or reading a BPF program or map failed.
    #[error("{what}: {source}{hint}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        source: libbpf_rs::Error,
        /// A hint for the usual cause (permissions), or empty.
        hint: &'static str,
    },
}

impl GenError {
    fn bpf(what: impl Into<String>, source: libbpf_rs::Error) -> GenError {
        let hint = match source.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => {
                " (loading BPF programs needs root: CAP_BPF and CAP_NET_ADMIN)"
            }
            _ => "",
        };
        GenError::Bpf {
            what: what.into(),
            source,
            hint,
        }
    }
}

/// What the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenConfig {
    /// Ethernet frame size including the FCS: 64..=1518 (IPv6: 66..).
    pub frame_size: usize,
    /// Distinct flows: UDP source ports `src_port .. src_port + flows`,
    /// cycled frame by frame.
    pub flows: u32,
    /// Ethernet source (the generator interface's MAC, usually).
    pub src_mac: [u8; 6],
    /// Ethernet destination (the sink interface's MAC, usually).
    pub dst_mac: [u8; 6],
    /// IP source; same family as `dst_ip` (the family selects IPv4/IPv6).
    pub src_ip: IpAddr,
    /// IP destination.
    pub dst_ip: IpAddr,
    /// First UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Frames per second, or `None` for as fast as the core goes.
    pub rate_pps: Option<u64>,
    /// Send through an `AF_PACKET` socket from the start
    /// ([`GenMethod::PacketSocket`]), not only after the kernel refused
    /// live frames.
    pub packet_socket: bool,
}

impl GenConfig {
    /// One flow, as fast as possible, from UDP port 1024 to port 9
    /// (discard).
    pub fn new(
        frame_size: usize,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: IpAddr,
        dst_ip: IpAddr,
    ) -> GenConfig {
        GenConfig {
            frame_size,
            flows: 1,
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            src_port: 1024,
            dst_port: 9,
            rate_pps: None,
            packet_socket: false,
        }
    }

    /// True when the frames are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.src_ip.is_ipv6()
    }

    fn frame_spec(&self) -> FrameSpec {
        FrameSpec {
            frame_size: self.frame_size,
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
    }
}

/// What one [`Generator::run_for`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenReport {
    /// Frames the program handed to the redirect (counted by the program
    /// itself). A frame the receiving veth had no room for is still
    /// counted here: the sink's count is the one that matters.
    pub sent: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The CPU the run finished on (pin the thread to make this stable).
    pub cpu: Option<usize>,
    /// How the frames went out (at the end of the run).
    pub method: GenMethod,
}

impl GenReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.sent as f64 / s
        } else {
            0.0
        }
    }
}

/// How the generator's frames leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenMethod {
    /// `BPF_PROG_RUN` with live frames: no skb, several Mpps per core.
    LiveFrames,
    /// A raw `AF_PACKET` socket (`sendmmsg`, qdisc bypassed): an skb per
    /// frame, several times slower. Used when the kernel refuses live
    /// frames (see `packet.rs`).
    PacketSocket,
}

impl GenMethod {
    /// Its name in reports (`bpf-live-frames`, `af-packet`).
    pub const fn as_str(self) -> &'static str {
        match self {
            GenMethod::LiveFrames => "bpf-live-frames",
            GenMethod::PacketSocket => "af-packet",
        }
    }
}

impl std::fmt::Display for GenMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Set once the "live frames refused" warning was logged.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The loaded generator program and its template frame.
///
/// Load it, and call [`Generator::run_for`], on a thread that is in the
/// network namespace of the interface (see [`netns::NetnsGuard`]).
pub struct Generator {
    // Field order: the link detaches before the program is unloaded.
    _link: libbpf_rs::Link,
    skel: skel::gen::XswitchGenSkel<'static>,
    /// GEN_MAGIC (XDP metadata) followed by the frame.
    input: Vec<u8>,
    /// The `struct xdp_md` BPF_PROG_RUN starts from: the frame after 4
    /// bytes of metadata.
    ctx: [u8; XDP_MD_LEN],
    frame: Vec<u8>,
    cfg: GenConfig,
    ifindex: u32,
    /// Set when the kernel refused a live-frames run: every later frame
    /// goes out through this socket.
    fallback: Option<packet::PacketSender>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("ifindex", &self.ifindex)
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Storage for a skeleton's open object. A loaded skeleton borrows it for
/// as long as it lives; the generator, sink and redirect objects live as
/// long as their owner decides, so the slot is given a static lifetime. It
/// is one pointer (the object itself is freed when the skeleton drops), so
/// leaking it costs 8 bytes per load.
pub(crate) fn object_slot() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

impl Generator {
    /// Builds the template frame and loads the program that sends it out
    /// of `ifindex`, attaching it there too (a pass-through for real
    /// traffic; see xswitch_gen.bpf.c). Call it in the namespace of
    /// `ifindex`; fails if another XDP program holds the interface.
    pub fn new(ifindex: u32, cfg: GenConfig) -> Result<Generator, GenError> {
        let frame = frame::build_udp_frame(&cfg.frame_spec())?;
        let max_flows = 65536 - u32::from(cfg.src_port);
        if cfg.flows == 0 || cfg.flows > max_flows {
            return Err(GenError::Flows {
                flows: cfg.flows,
                base: cfg.src_port,
                max: max_flows,
            });
        }
        let open = skel::gen::XswitchGenSkelBuilder::default()
            .open(object_slot())
            .map_err(|e| GenError::bpf("opening the generator program", e))?;
        let mut open = open;
        {
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .expect("the generator program has read-only data");
            ro.out_ifindex = ifindex;
            ro.n_flows = cfg.flows;
            ro.port_base = u32::from(cfg.src_port);
            ro.is_ipv6 = u32::from(cfg.is_ipv6());
        }
        let skel = open
            .load()
            .map_err(|e| GenError::bpf("loading the generator program", e))?;
        // Attached to its own interface it stays in the XDP dispatcher (see
        // xswitch_gen.bpf.c), and passes whatever real traffic arrives.
        let link = skel
            .progs
            .xswitch_gen
            .attach_xdp(ifindex as i32)
            .map_err(|e| {
                GenError::bpf(format!("attaching the generator to ifindex {ifindex}"), e)
            })?;
        let mut input = GEN_MAGIC.to_ne_bytes().to_vec();
        input.extend_from_slice(&frame);
        let mut ctx = [0u8; XDP_MD_LEN];
        ctx[0..4].copy_from_slice(&4u32.to_ne_bytes());
        ctx[4..8].copy_from_slice(&(input.len() as u32).to_ne_bytes());
        let mut g = Generator {
            _link: link,
            skel,
            input,
            ctx,
            frame,
            cfg,
            ifindex,
            fallback: None,
        };
        if cfg.packet_socket {
            g.fallback = Some(g.open_packet_socket()?);
        }
        Ok(g)
    }

    fn open_packet_socket(&self) -> Result<packet::PacketSender, GenError> {
        packet::PacketSender::open(
            self.ifindex,
            &self.frame,
            self.cfg.is_ipv6(),
            self.cfg.flows,
            self.cfg.src_port,
        )
        .map_err(|source| GenError::Packet {
            what: "opening an AF_PACKET socket",
            source,
        })
    }

    /// How the frames go out: live frames until the kernel refuses one
    /// run, then the packet socket.
    pub fn method(&self) -> GenMethod {
        if self.fallback.is_some() {
            GenMethod::PacketSocket
        } else {
            GenMethod::LiveFrames
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// The template frame (without FCS).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Frames sent so far: the program's runs summed over CPUs, plus the
    /// frames the packet socket sent.
    pub fn runs(&self) -> Result<u64, GenError> {
        let socket = self.fallback.as_ref().map_or(0, |p| p.sent);
        Ok(self.program_runs()? + socket)
    }

    /// The program's runs, summed over CPUs.
    fn program_runs(&self) -> Result<u64, GenError> {
        let per_cpu = self
            .skel
            .maps
            .gen_state
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| GenError::bpf("reading the generator's counters", e))?
            .unwrap_or_default();
        Ok(per_cpu.iter().map(|v| two_u64(v).0).sum())
    }

    /// Sends `n` frames in one BPF_PROG_RUN call, or through the packet
    /// socket once the kernel has refused live frames (EPERM: refused
    /// once, refused always). Returns false if the call was interrupted
    /// by a signal (the caller should stop).
    fn burst(&mut self, n: u32) -> Result<bool, GenError> {
        if let Some(p) = &mut self.fallback {
            return p.send(u64::from(n)).map_err(|source| GenError::Packet {
                what: "sending through the AF_PACKET socket",
                source,
            });
        }
        let mut ctx = self.ctx;
        let input = libbpf_rs::ProgramInput {
            context_in: Some(&mut ctx),
            data_in: Some(&self.input),
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat: n,
            ..Default::default()
        };
        match self.skel.progs.xswitch_gen.test_run(input) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => Ok(false),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::PermissionDenied => {
                let p = self.open_packet_socket()?;
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "this kernel refuses BPF_PROG_RUN with live frames: the generator \
                         sends through an AF_PACKET socket instead (an skb per frame, slower)"
                    );
                }
                self.fallback = Some(p);
                self.burst(n)
            }
            Err(e) => Err(GenError::bpf(
                "BPF_PROG_RUN with live frames (needs Linux 5.18 or later)",
                e,
            )),
        }
    }

    /// Sends for `d` (at the configured rate, or flat out) and reports how
    /// many frames went out. Stops early, without error, if a signal
    /// interrupts a run (Ctrl-C).
    pub fn run_for(&mut self, d: Duration) -> Result<GenReport, GenError> {
        self.run_until(d, || false)
    }

    /// Like [`Generator::run_for`], and also stops as soon as `stop()`
    /// returns true (checked between syscalls).
    pub fn run_until(
        &mut self,
        d: Duration,
        mut stop: impl FnMut() -> bool,
    ) -> Result<GenReport, GenError> {
        let before = self.runs()?;
        let t0 = Instant::now();
        let deadline = t0 + d;
        match self.cfg.rate_pps {
            None => {
                let mut chunk = FIRST_CHUNK;
                while Instant::now() < deadline && !stop() {
                    let t = Instant::now();
                    if !self.burst(chunk)? {
                        break;
                    }
                    let took = t.elapsed();
                    if took < CALL_TARGET / 2 {
                        chunk = (chunk * 2).min(MAX_CHUNK);
                    } else if took > CALL_TARGET * 2 {
                        chunk = (chunk / 2).max(MIN_CHUNK);
                    }
                }
            }
            Some(pps) => {
                let pps = pps.max(1);
                // Frames per tick (at least one), and the tick that keeps
                // the average at `pps`.
                let per_tick = (pps as u128 * PACE_TICK.as_nanos() / 1_000_000_000).max(1) as u64;
                let tick =
                    Duration::from_nanos((per_tick as u128 * 1_000_000_000 / pps as u128) as u64);
                let mut next = t0;
                let mut sent = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= deadline || stop() {
                        break;
                    }
                    if now < next {
                        std::thread::sleep((next - now).min(deadline - now));
                        continue;
                    }
                    // Catch up at most a few ticks after an oversleep, so
                    // a stall does not turn into a burst.
                    let due = ((now - next).as_nanos() / tick.as_nanos().max(1)) as u64;
                    let n = per_tick * (1 + due.min(3));
                    if !self.burst(n.min(u64::from(MAX_CHUNK)) as u32)? {
                        break;
                    }
                    sent += n;
                    next = t0 + tick.mul_f64((sent / per_tick) as f64);
                }
            }
        }
        let elapsed = t0.elapsed();
        let sent = self.runs()?.saturating_sub(before);
        Ok(GenReport {
            sent,
            elapsed,
            cpu: netns::current_cpu(),
            method: self.method(),
        })
    }
}

/// The two native-endian u64 at the start of a per-CPU map value (missing
/// bytes read as zero).
pub(crate) fn two_u64(v: &[u8]) -> (u64, u64) {
    let word = |i: usize| {
        v.get(i * 8..i * 8 + 8)
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
    };
    (word(0), word(1))
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg() -> GenConfig {
        GenConfig::new(
            64,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
        )
    }

    #[test]
    fn zero_flows_or_too_many_are_refused_before_loading() {
        for flows in [0, 65536 - 1024 + 1] {
            let mut c = cfg();
            c.flows = flows;
            match Generator::new(1, c) {
                Err(GenError::Flows { flows: f, max, .. }) => {
                    assert_eq!(f, flows);
                    assert_eq!(max, 65536 - 1024);
                }
                other => panic!("{flows}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_frame_size_is_refused_before_loading() {
        let mut c = cfg();
        c.frame_size = 40;
        let e = Generator::new(1, c).unwrap_err();
        assert!(e.to_string().contains("frame size 40"), "{e}");
    }

    #[test]
    fn report_rate_is_frames_over_seconds() {
        let r = GenReport {
            sent: 3_000_000,
            elapsed: Duration::from_millis(1500),
            cpu: None,
            method: GenMethod::LiveFrames,
        };
        assert!((r.pps() - 2_000_000.0).abs() < 1e-6);
    }
}
