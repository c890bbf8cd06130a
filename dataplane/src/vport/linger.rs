//! Keeping a closed AF_XDP port's UMEM pages mapped until the kernel has
//! let go of them, so that the pages are freed by this process and not by
//! a kernel worker.
//!
//! # Why
//! The kernel pins a UMEM's pages while a socket uses it. Closing the
//! last socket schedules the unpinning as deferred work
//! (`xp_release_deferred`, a kworker), and `Umem`'s drop unmaps the region
//! right after the close. So the kworker holds the last reference: it
//! unpins, frees and uncharges every page of the UMEM (2,048 pages for one
//! 8 MiB queue) in one work item that does not yield the CPU. On a kernel
//! built `PREEMPT_NONE` that item ran up to 1.9 ms, and a management
//! thread woken on that CPU waited for it (perf sched: 90 of 126 wake-ups
//! over 300 µs during port churn were behind a kworker).
//!
//! # What
//! Before the port's sockets and UMEM are dropped, [`hold`] maps the same
//! pages a second time (`mremap` with old size 0 on the shared mapping)
//! and keeps that mapping for [`LINGER`]. The kworker then only unpins:
//! the pages are still mapped, so nothing is freed there. [`release_due`]
//! (from the datapath's housekeeping, and at every [`hold`]) unmaps
//! mappings older than [`LINGER`]; that unmap frees the pages in this
//! process, in code that yields to other threads. Measured (`flow add`
//! round trip on one connection while 100 ports churn, p99 over idle
//! p99): 5.2-5.8× without, 1.3-2.1× with.
//!
//! The second mapping is never read or written; it costs address space,
//! and holds the memory at most [`LINGER`] plus a housekeeping interval
//! longer. If the kernel's release runs later than that, the pages are
//! freed where they were before; nothing is wrong, only slower.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a second mapping is kept. The deferred release normally runs
/// within milliseconds of the close.
pub const LINGER: Duration = Duration::from_millis(200);

/// A second mapping of a closed UMEM's pages.
struct Echo {
    addr: usize,
    len: usize,
    since: Instant,
}

/// Every mapping [`hold`] made and [`release_due`] has not yet unmapped.
static HELD: Mutex<Vec<Echo>> = Mutex::new(Vec::new());

/// Maps the `len` bytes of the shared mapping at `base` a second time and
/// keeps that mapping for [`LINGER`]. Returns false (and keeps nothing)
/// if the kernel refused, e.g. the region is not a shared mapping.
///
/// `base` must be the start of a shared mapping of at least `len` bytes
/// that is still mapped (the caller's UMEM, before it is dropped).
#[allow(unsafe_code)] // mremap(2): a second mapping of our own UMEM.
pub fn hold(base: usize, len: usize) -> bool {
    release_due(Instant::now());
    if base == 0 || len == 0 {
        return false;
    }
    // SAFETY: with old_size 0, mremap creates a new mapping of the pages
    // of the shared mapping at `base` (which the caller keeps mapped for
    // the duration of this call) at an address the kernel chooses; it
    // moves and unmaps nothing, so no existing pointer is invalidated.
    let p = unsafe { libc::mremap(base as *mut libc::c_void, 0, len, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            len,
            "UMEM: no second mapping; the kernel frees its pages on release"
        );
        return false;
    }
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Echo {
            addr: p as usize,
            len,
            since: Instant::now(),
        });
    true
}

/// Unmaps every held mapping older than [`LINGER`] at `now`. Never waits
/// for the registry: if another thread has it, returns false and the next
/// call does the work.
#[allow(unsafe_code)] // munmap(2) of mappings this module made.
pub fn release_due(now: Instant) -> bool {
    let mut held = match HELD.try_lock() {
        Ok(h) => h,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return false,
    };
    held.retain(|e| {
        if now.saturating_duration_since(e.since) < LINGER {
            return true;
        }
        // SAFETY: `e` is a mapping `hold` made; nothing reads or writes
        // it and it is unmapped exactly once (removed from the list here).
        if unsafe { libc::munmap(e.addr as *mut libc::c_void, e.len) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "UMEM: munmap of a second mapping");
        }
        false
    });
    true
}

/// Bytes of second mappings currently held.
pub fn held_bytes() -> usize {
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|e| e.len)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared anonymous mapping like xsk-rs's UMEM, unmapped on drop.
    struct Shared {
        addr: *mut u8,
        len: usize,
    }

    impl Shared {
        #[allow(unsafe_code)]
        fn new(len: usize) -> Shared {
            // SAFETY: a fresh anonymous mapping; checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            Shared {
                addr: p.cast(),
                len,
            }
        }
    }

    impl Drop for Shared {
        #[allow(unsafe_code)]
        fn drop(&mut self) {
            // SAFETY: our own mapping, unmapped once.
            unsafe { libc::munmap(self.addr.cast(), self.len) };
        }
    }

    /// Whether some mapping in /proc/self/maps has exactly `len` bytes and
    /// is the shared zero-page file (`/dev/zero (deleted)`).
    fn shared_mappings_of(len: usize) -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains("/dev/zero") || l.contains("SYSV"))
            .filter(|l| {
                let range = l.split(' ').next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                b - a == len
            })
            .count()
    }

    #[test]
    fn a_held_umem_outlives_its_mapping_until_released() {
        // An odd size so no other mapping of the test process matches.
        let len = 77 * 4096;
        let before = shared_mappings_of(len);
        let umem = Shared::new(len);
        assert!(hold(umem.addr as usize, len));
        assert!(held_bytes() >= len);
        drop(umem);
        assert_eq!(
            shared_mappings_of(len),
            before + 1,
            "the second mapping stays"
        );
        release_due(Instant::now());
        assert_eq!(shared_mappings_of(len), before + 1, "not before LINGER");
        while !release_due(Instant::now() + LINGER) {
            std::thread::yield_now();
        }
        assert_eq!(shared_mappings_of(len), before, "released after LINGER");
    }

    #[test]
    fn a_private_mapping_is_refused_and_nothing_is_held() {
        let mut v = vec![0u8; 3 * 4096];
        let aligned = (v.as_mut_ptr() as usize + 4095) & !4095;
        // A heap page: private, so mremap refuses a second mapping.
        assert!(!hold(aligned, 4096));
        assert!(!hold(0, 4096));
    }
}
