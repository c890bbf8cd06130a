//! The daemon's malloc settings: after warm-up, allocating never changes
//! the process's memory map.
//!
//! # Why
//! Adding a port maps and populates its UMEM (`mmap` with
//! `MAP_POPULATE`: the process's `mmap_lock` held for reading while
//! megabytes are zeroed); deleting one unmaps it. Meanwhile any thread
//! that wants the lock for writing waits, and so does every later reader
//! queued behind it. glibc's malloc takes it for writing whenever a heap
//! grows or shrinks: `mprotect` to grow a per-thread arena, `brk` for the
//! main one, `mmap`/`munmap` for large blocks, trimming on free. Measured
//! with `flow add` while 100 ports churn (perf sched: the worker in `D`
//! state in `do_mprotect_pkey` → `rwsem_down_write_slowpath`): time in the
//! handler p50 11 µs, p99 3.1 ms, max 6.3 ms. With these settings: p99
//! 25 µs, max 0.9 ms (`cargo test --release -p xswitch --test daemon --
//! --ignored --nocapture flow_add`, `RUST_LOG=control::daemon=debug`).
//!
//! # What
//! * One arena (`M_ARENA_MAX` 1): every thread allocates from the main
//!   heap, which grows with `brk` by [`TOP_PAD`] at a time — once per
//!   64 MiB of growth instead of once per page. The PMDs allocate nothing
//!   per packet, so the shared arena lock is not on the hot path.
//! * No trimming (`M_TRIM_THRESHOLD` at its maximum): freed memory stays
//!   in the heap for the next allocation rather than going back to the
//!   kernel. The daemon's footprint is its high-water mark.
//! * Blocks up to [`MMAP_THRESHOLD`] come from the heap, not from their
//!   own `mmap` (a flow file of 100,000 flows is a 16 MiB request line).
//!
//! glibc only (what Debian ships); elsewhere this does nothing.

/// Extra heap requested from the kernel each time the heap grows.
pub const TOP_PAD: i32 = 64 << 20;
/// Largest block taken from the heap (glibc's maximum on 64-bit).
pub const MMAP_THRESHOLD: i32 = 32 << 20;

/// Applies the settings; call before other threads start (arenas already
/// created keep existing). Returns false if glibc refused one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // mallopt(3): libc's allocator settings, no wrapper in our dependencies.
pub fn keep_heap_mapped() -> bool {
    use nix::libc::{mallopt, M_ARENA_MAX, M_MMAP_THRESHOLD, M_TOP_PAD, M_TRIM_THRESHOLD};
    [
        (M_ARENA_MAX, 1),
        (M_TOP_PAD, TOP_PAD),
        (M_TRIM_THRESHOLD, i32::MAX),
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ]
    .into_iter()
    .all(|(param, value)| {
        // SAFETY: mallopt only stores integer settings in glibc's
        // allocator state (under its own lock); the parameters are the
        // documented ones and the values within their ranges.
        let ok = unsafe { mallopt(param, value) } == 1;
        if !ok {
            tracing::warn!(param, value, "mallopt refused a setting");
        }
        ok
    })
}

/// Not glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_heap_mapped() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_every_setting() {
        // mallopt answers 0 for a value out of range (e.g. a threshold
        // above glibc's maximum): all four must be accepted.
        assert!(keep_heap_mapped());
        // Blocks just under the threshold still come back whole.
        let v = vec![7u8; (MMAP_THRESHOLD as usize) - 4096];
        assert!(v.iter().all(|&b| b == 7));
    }
}
