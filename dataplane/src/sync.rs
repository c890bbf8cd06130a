//! The synchronisation primitives the reclamation protocol is built on, swapped
//! for [loom]'s model-checked versions when the crate is built with
//! `RUSTFLAGS="--cfg loom"`.
//!
//! Only the code whose memory ordering must be proven goes through this shim
//! ([`crate::rcu`]); everything else uses `std` directly. Under `cfg(loom)` the
//! types here only work inside `loom::model`, so a loom build is for the
//! loom test target alone (`tests/loom_reclaim.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p xswitch-dataplane --test loom_reclaim --release
//! ```
//!
//! (A separate target directory keeps the loom build from invalidating the
//! normal one.)
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};

/// Atomics and fences.
pub mod atomic {
    #[cfg(not(loom))]
    pub use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

    #[cfg(loom)]
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
}

/// Yielding inside wait loops: loom must see every spin so that it can
/// schedule the thread being waited for.
pub mod hint {
    /// One step of a wait loop.
    #[inline]
    pub fn spin_wait() {
        #[cfg(not(loom))]
        std::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}
