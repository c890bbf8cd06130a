//! xswitch's XDP programs and their loader.

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
