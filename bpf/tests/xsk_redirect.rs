//! The port program with a real AF_XDP socket: a registered socket gets its
//! queue's frames (and the stack none), unregistering gives them back to the
//! stack. Runs in namespaces it creates and deletes (see `common`).
//!
//! xsk-rs's socket, ring and frame accessors are `unsafe` (their contracts
//! tie descriptors to the UMEM they came from), hence the allowance; each
//! use states why it holds.
#![allow(unsafe_code)]

mod common;

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;

use common::{is_root, Pair};
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, SocketConfig, UmemConfig};
use xsk_rs::{Socket, Umem};
use xswitch_bpf::{ifindex_of, PortProgram, QueueStats, XdpMode};

const FRAMES: u32 = 64;
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

#[test]
fn registered_socket_takes_its_queue_and_unregistering_returns_frames_to_the_stack() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    pair.up();
    pair.a.enter(|| {
        let ifindex = ifindex_of(&pair.va).expect("ifindex");
        let prog = PortProgram::attach(ifindex, &pair.va, XdpMode::Native).expect("attach");

        let (umem, mut descs) = Umem::new(
            UmemConfig::default(),
            NonZeroU32::new(FRAMES).expect("non-zero"),
            false,
        )
        .expect("umem");
        let config = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        let ifname = Interface::new(CString::new(pair.va.as_str()).expect("no NUL"));
        // SAFETY: the first and only socket on this UMEM, bound to a
        // (interface, queue) nobody else binds; the program is ours
        // (INHIBIT_PROG_LOAD keeps libxdp from loading its own).
        let (_tx, mut rx, rings) =
            unsafe { Socket::new(config, &umem, &ifname, 0) }.expect("AF_XDP socket on queue 0");
        let (mut fill, _comp) = rings.expect("the first socket on a UMEM gets its rings");
        // SAFETY: every descriptor came from `umem`.
        let filled = unsafe { fill.produce(&descs) };
        assert_eq!(filled, descs.len(), "fill ring takes all frames");

        prog.register_xsk(0, rx.fd().as_raw_fd())
            .expect("register the socket for queue 0");

        // B's ARP requests for A now land in the socket, not in A's stack:
        // no reply comes back.
        assert!(
            !pair.ping_a_from_b_within(2, 2),
            "the stack answered although queue 0 is redirected"
        );
        let got = {
            let _ = rx.poll(1000).expect("poll the socket");
            // SAFETY: `descs` is ours (the frames are in the rings), and
            // the kernel writes into it descriptors of `umem`'s frames.
            unsafe { rx.consume(&mut descs) }
        };
        assert!(got >= 1, "no frame reached the socket");
        for desc in &descs[..got] {
            // SAFETY: `desc` was just consumed from `rx`, so it names a
            // frame of `umem` that the kernel no longer writes.
            let data = unsafe { umem.data(desc) };
            let frame: &[u8] = data.contents();
            assert!(frame.len() >= 42, "an ARP frame is at least 42 bytes");
            assert_eq!(frame[12..14], ETHERTYPE_ARP, "B's ARP request");
        }
        let stats = prog.queue_stats().expect("stats");
        assert_eq!(stats.len(), 1, "{stats:?}");
        assert!(stats[0].redirected >= got as u64, "{stats:?}");
        assert_eq!(stats[0].passed, 0, "{stats:?}");

        prog.unregister_xsk(0).expect("unregister");
        assert!(pair.ping_a_from_b(3), "the stack answers again");
        let after: QueueStats = prog.queue_stats().expect("stats").into_iter().sum();
        assert_eq!(after.redirected, stats[0].redirected, "nothing redirected");
        // 3 echo requests and at least one ARP frame.
        assert!(after.passed >= 4, "{after:?}");
    });
}
