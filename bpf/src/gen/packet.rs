//! The generator's second way out: an `AF_PACKET` socket, for kernels
//! that refuse `BPF_PROG_RUN` with live frames.
//!
//! # Why
//! A kernel may refuse live-frame runs to root: one build of the 6.18
//! kernel on this machine kind answers every `BPF_F_TEST_XDP_LIVE_FRAMES`
//! run with EPERM, even for a program that only returns `XDP_DROP`, while
//! plain test runs, XDP attach and AF_XDP work. Without a fallback every
//! benchmark and fault-injection run would stop there.
//!
//! # What
//! [`PacketSender`] sends the generator's frames, the same bytes and the
//! same flow rotation as xswitch_gen.bpf.c, through a raw `AF_PACKET`
//! socket bound to the interface, with `PACKET_QDISC_BYPASS` and
//! `sendmmsg` in batches of [`BATCH`]. Each frame becomes an skb, so it is
//! several times slower than live frames (DESIGN.md's trafgen note: about
//! 0.6 Mpps). [`super::Generator::method`] says which way was used, the
//! switch is logged once, and `xswitch bench` reports it per run.
//!
//! # Resting
//! Sending flat out, the thread never sleeps: every frame is a syscall
//! and the receiving veth's NAPI runs inline on the same CPU. On this
//! machine kind that starved the CPU's kernel workers for minutes
//! ("BUG: workqueue lockup", with `xp_release_deferred` and
//! `bpf_prog_free_deferred` pending), although the thread was preempted
//! a thousand times a second. A closed AF_XDP socket releases its queue
//! in that work, so the switch under test could not re-bind a queue
//! (EBUSY) and `ip link del` of its port waited in `netdev_run_todo`:
//! the chaos harness hung in 5 of 15 runs of link-del and flow-churn,
//! and failed a sixth. So the sender sleeps [`REST`] after every
//! [`REST_EVERY`] of sending: 15 of 15 runs passed, and the offered rate
//! stayed within run-to-run noise of the sender without rests (0.66-0.68
//! against 0.66-0.68 Mpps, same runs).
//!
//! # Invariants
//! * Frame `k` of the sender's life carries UDP source port
//!   `port_base + k % n_flows`, its checksum fixed from the template's
//!   (RFC 1624; a zero IPv4 UDP checksum stays zero).
//! * `sent` counts the frames the kernel accepted; a frame the receiver
//!   then drops still counts, as with live frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::frame::udp_offset;

/// Frames per `sendmmsg`.
pub const BATCH: usize = 64;

/// How long the sender runs before it sleeps for [`REST`] (module docs,
/// "Resting").
pub const REST_EVERY: Duration = Duration::from_millis(5);
/// The sleep: the CPU's kernel workers get to run.
pub const REST: Duration = Duration::from_micros(10);

/// RFC 1624 eqn. 3 on raw 16-bit words: the checksum `check` after a word
/// `old` of the summed data became `new`.
fn csum_replace16(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// An `AF_PACKET` socket sending copies of one template frame, rotating
/// the UDP source port over the flows.
pub struct PacketSender {
    fd: OwnedFd,
    /// [`BATCH`] copies of the template, back to back.
    batch: Vec<u8>,
    frame_len: usize,
    udp_off: usize,
    template_port: u16,
    template_csum: u16,
    n_flows: u32,
    port_base: u16,
    next_flow: u32,
    /// Frames the kernel accepted so far.
    pub sent: u64,
    /// When the sender last slept (see [`REST_EVERY`]).
    last_rest: Instant,
}

impl std::fmt::Debug for PacketSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSender")
            .field("fd", &self.fd)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl PacketSender {
    /// Opens a socket that sends `frame` (a generator frame, see
    /// [`super::frame`]) out of `ifindex` in the calling thread's network
    /// namespace, varying the source port over `n_flows` ports from
    /// `port_base`.
    #[allow(unsafe_code)] // socket(2), bind(2), setsockopt(2): the OS's packet socket.
    pub fn open(
        ifindex: u32,
        frame: &[u8],
        ipv6: bool,
        n_flows: u32,
        port_base: u16,
    ) -> io::Result<PacketSender> {
        let udp_off = udp_offset(ipv6);
        if frame.len() < udp_off + 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame too short for a UDP header",
            ));
        }
        // Protocol 0: the socket receives nothing, it only sends.
        // SAFETY: plain integer arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is
        // its size; bind only reads it.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        // SAFETY: `one` is a c_int that outlives the call, which reads
        // size_of::<c_int>() bytes of it.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const one).cast::<libc::c_void>(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            // Only slower through the qdisc; still correct.
            tracing::debug!(error = %io::Error::last_os_error(), "PACKET_QDISC_BYPASS refused");
        }
        let word = |o: usize| u16::from_be_bytes([frame[o], frame[o + 1]]);
        Ok(PacketSender {
            fd,
            batch: frame.repeat(BATCH),
            frame_len: frame.len(),
            udp_off,
            template_port: word(udp_off),
            template_csum: word(udp_off + 6),
            n_flows: n_flows.max(1),
            port_base,
            next_flow: 0,
            sent: 0,
            last_rest: Instant::now(),
        })
    }

    /// Writes the next flow's port and checksum into the first `n` frames
    /// of the batch.
    fn stamp(&mut self, n: usize) {
        if self.n_flows == 1 {
            return;
        }
        for i in 0..n {
            let port = self.port_base.wrapping_add(self.next_flow as u16);
            self.next_flow = (self.next_flow + 1) % self.n_flows;
            let f = &mut self.batch[i * self.frame_len..(i + 1) * self.frame_len];
            let o = self.udp_off;
            f[o..o + 2].copy_from_slice(&port.to_be_bytes());
            if self.template_csum != 0 {
                let c = csum_replace16(self.template_csum, self.template_port, port);
                // 0 means "no checksum" in UDP: send its other form.
                let c = if c == 0 { 0xffff } else { c };
                f[o + 6..o + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
    }

    /// Sends `n` frames. Returns false if a signal interrupted the send
    /// (the caller should stop); frames sent before that are counted.
    /// A full device queue (ENOBUFS, EAGAIN) waits a moment and retries.
    #[allow(unsafe_code)] // sendmmsg(2) on our own socket.
    pub fn send(&mut self, n: u64) -> io::Result<bool> {
        let mut left = n;
        while left > 0 {
            if self.last_rest.elapsed() >= REST_EVERY {
                std::thread::sleep(REST);
                self.last_rest = Instant::now();
            }
            let k = left.min(BATCH as u64) as usize;
            self.stamp(k);
            let mut iov: [libc::iovec; BATCH] = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            // SAFETY: mmsghdr is plain old data; all zeroes is valid.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..k {
                iov[i] = libc::iovec {
                    iov_base: self.batch[i * self.frame_len..].as_mut_ptr().cast(),
                    iov_len: self.frame_len,
                };
                msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `msgs[..k]` each point at one iovec of `iov`, which
            // points into `self.batch`; all outlive the call, and the
            // kernel only reads them (the socket is bound, so no address).
            let r = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), k as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => return Ok(false),
                    Some(libc::ENOBUFS | libc::EAGAIN) => {
                        std::thread::yield_now();
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            let done = r as u64;
            self.sent += done;
            left -= done;
            if (done as usize) < k {
                // Keep the rotation exact: the unsent frames' ports are
                // stamped again on the next round.
                let unsent = (k - done as usize) as u32;
                self.next_flow =
                    (self.next_flow + self.n_flows - unsent % self.n_flows) % self.n_flows;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{build_udp_frame, checksums_ok, FrameSpec};
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_port_rewritten_with_the_incremental_checksum_still_verifies() {
        for (src_ip, dst_ip) in [
            (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            ),
            (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into()),
        ] {
            let spec = FrameSpec {
                frame_size: 128,
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 2],
                src_ip,
                dst_ip,
                src_port: 1024,
                dst_port: 9,
            };
            let template = build_udp_frame(&spec).unwrap();
            let o = udp_offset(src_ip.is_ipv6());
            let check = u16::from_be_bytes([template[o + 6], template[o + 7]]);
            for port in [0u16, 1, 1025, 0x8000, 0xfbff, 0xffff] {
                let mut f = template.clone();
                f[o..o + 2].copy_from_slice(&port.to_be_bytes());
                let c = csum_replace16(check, 1024, port);
                f[o + 6..o + 8].copy_from_slice(&c.to_be_bytes());
                assert!(checksums_ok(&f), "{src_ip} port {port:#x}");
            }
        }
    }
}
