//! xswitch's XDP programs and their loader.
//!
//! The C programs live in `src/bpf/*.bpf.c`; `build.rs` compiles each with
//! clang into a libbpf-rs skeleton. This crate wraps them in a small safe API:
//!
//! * [`port`]: `xswitch_port`, the program on every switch port. It steers
//!   each rx queue's frames to the AF_XDP socket registered for that queue
//!   and passes them to the kernel stack when none is. [`PortProgram`]
//!   attaches it through a BPF link (detached on drop and when the process
//!   dies), replaces a stale copy left by a crashed run and refuses to touch
//!   anyone else's program.
//! * [`error`]: [`BpfError`], one-line messages a user can act on.

mod skel {
    #![allow(
        clippy::all,
        missing_docs,
        unused,
        unsafe_code,
        clippy::undocumented_unsafe_blocks
    )]
    include!(concat!(env!("OUT_DIR"), "/xswitch_port.skel.rs"));
}

pub mod error;
pub mod port;

pub use error::BpfError;
pub use port::{
    attached_program, ifindex_of, AttachedProgram, PortProgram, QueueStats, XdpMode, MAX_QUEUES,
    PORT_PROG_NAME,
};
pub mod gen;
