//! The OS side of an idle PMD's wait: an epoll set over the wait fds of its
//! rx queues plus an eventfd other threads ring to wake it.
//!
//! # What
//! [`Waker`] is an eventfd: [`Waker::wake`] adds one to its counter, which
//! makes it readable until the PMD clears it. [`WaitSet`] is one epoll
//! instance holding the waker (level-triggered) and the rx queues' wait fds
//! (edge-triggered, `EPOLLIN`); [`WaitSet::wait`] blocks until one of them
//! signals or the timeout passes, with nanosecond timeouts
//! (`epoll_pwait2`, or `epoll_wait` rounded up to whole milliseconds on a
//! kernel older than 5.11).
//!
//! # Why epoll, and why edge-triggered
//! An epoll registration names the open file, not the fd number: after the
//! owner closes the fd the kernel removes the registration by itself
//! (`eventpoll_release`), and a number reused by another file is not in
//! the set. That is what lets a PMD keep a port's socket in its set
//! without keeping the port (or the socket) alive — the reasoning is in
//! the `threads` module docs, "Blocking on rx". A set is never edited by
//! fd number after it was built: it is rebuilt whole (a new epoll
//! instance) when the PMD's queues change.
//!
//! Rx fds are edge-triggered so that a queue the PMD cannot drain (its
//! pool is dry, or a second PMD polls the same queue for one assignment
//! round) does not turn the wait into a spin: a readable-but-unreceivable
//! queue wakes the PMD once per arrival, not on every wait. No edge is
//! lost: an arrival while the PMD is awake puts the registration on the
//! epoll ready list, and the next wait returns at once.
//!
//! # Unsafe
//! Creating the eventfd and the epoll instance and the `epoll_*` calls are
//! raw libc calls; this module allows `unsafe_code` for them alone, each
//! block with a `// SAFETY:` comment. The eventfd is read and written
//! through `std::fs::File`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Epoll token of the waker (rx fds use their index).
const WAKER_TOKEN: u64 = u64::MAX;

/// Events one wait collects (more ready fds are reported by the next one).
const MAX_EVENTS: usize = 16;

/// Takes ownership of `fd` if a libc call returned one, else the OS error.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful eventfd/epoll_create1
    // call: an open fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd that wakes one PMD (module docs).
#[derive(Debug)]
pub(crate) struct Waker {
    file: File,
}

impl Waker {
    /// A non-blocking, close-on-exec eventfd.
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; the result is checked by `owned`.
        let fd = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Waker {
            file: File::from(fd),
        })
    }

    /// Makes the eventfd readable (wakes the PMD, now or at its next wait).
    /// Never blocks: a counter at its maximum (EAGAIN) is readable already.
    pub(crate) fn wake(&self) {
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }

    /// Clears the counter (PMD side).
    fn clear(&self) {
        let mut v = [0u8; 8];
        let _ = (&self.file).read(&mut v);
    }

    fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.file.as_fd()
    }
}

/// Why [`WaitSet::wait`] returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Woke {
    /// At least one rx fd signalled.
    pub(crate) rx: bool,
    /// The waker was rung (and is now cleared).
    pub(crate) kicked: bool,
    /// The timeout passed with nothing signalled (or a signal interrupted
    /// the wait).
    pub(crate) timeout: bool,
}

/// One PMD's epoll set (module docs).
#[derive(Debug)]
pub(crate) struct WaitSet {
    ep: OwnedFd,
    rx_fds: u64,
    events: [libc::epoll_event; MAX_EVENTS],
    /// `epoll_pwait2` exists (cleared on ENOSYS).
    pwait2: bool,
}

impl WaitSet {
    /// A new epoll instance holding `waker`.
    pub(crate) fn new(waker: &Waker) -> io::Result<WaitSet> {
        // SAFETY: epoll_create1 takes no pointers; checked by `owned`.
        let ep = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let mut set = WaitSet {
            ep,
            rx_fds: 0,
            events: [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            pwait2: true,
        };
        set.add(waker.fd(), libc::EPOLLIN as u32, WAKER_TOKEN)?;
        Ok(set)
    }

    /// Adds an rx queue's wait fd, edge-triggered. The fd only has to be
    /// open during the call (module docs).
    pub(crate) fn add_rx(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let token = self.rx_fds;
        self.add(fd, (libc::EPOLLIN | libc::EPOLLET) as u32, token)?;
        self.rx_fds += 1;
        Ok(())
    }

    /// Rx fds in the set.
    pub(crate) fn rx_fds(&self) -> u64 {
        self.rx_fds
    }

    fn add(&mut self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event the kernel only reads; both
        // fds are open (one owned by self, one borrowed for the call).
        let r = unsafe {
            libc::epoll_ctl(
                self.ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Blocks until an fd of the set signals or `timeout` passes; clears
    /// the waker if it was rung.
    pub(crate) fn wait(&mut self, waker: &Waker, timeout: Duration) -> io::Result<Woke> {
        let n = loop {
            let r = if self.pwait2 {
                let ts = libc::timespec {
                    tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                    tv_nsec: timeout.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `events` is a live array of MAX_EVENTS entries the
                // kernel may write; `ts` is a live timespec it only reads; a
                // null sigmask means "keep the current mask".
                unsafe {
                    libc::epoll_pwait2(
                        self.ep.as_raw_fd(),
                        self.events.as_mut_ptr(),
                        MAX_EVENTS as libc::c_int,
                        &ts,
                        core::ptr::null(),
                    )
                }
            } else {
                // Rounded up: a wait must never be shorter than asked.
                let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
                // SAFETY: as above; no timespec.
                unsafe {
                    libc::epoll_wait(
                        self.ep.as_raw_fd(),
                        self.events.as_mut_ptr(),
                        MAX_EVENTS as libc::c_int,
                        ms as libc::c_int,
                    )
                }
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOSYS) if self.pwait2 => self.pwait2 = false,
                Some(libc::EINTR) => {
                    return Ok(Woke {
                        timeout: true,
                        ..Woke::default()
                    })
                }
                _ => return Err(e),
            }
        };
        let mut woke = Woke {
            timeout: n == 0,
            ..Woke::default()
        };
        for ev in &self.events[..n] {
            let token = ev.u64;
            if token == WAKER_TOKEN {
                woke.kicked = true;
            } else {
                woke.rx = true;
            }
        }
        if woke.kicked {
            waker.clear();
        }
        Ok(woke)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn a_rung_waker_ends_the_wait_and_is_cleared() {
        let w = Waker::new().unwrap();
        let mut set = WaitSet::new(&w).unwrap();
        w.wake();
        let woke = set.wait(&w, Duration::from_secs(5)).unwrap();
        assert!(woke.kicked && !woke.rx && !woke.timeout, "{woke:?}");
        // Cleared: the next wait runs into its timeout.
        let t = Instant::now();
        let woke = set.wait(&w, Duration::from_millis(20)).unwrap();
        assert!(woke.timeout && !woke.kicked, "{woke:?}");
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn an_rx_fd_wakes_once_per_arrival_not_while_it_stays_readable() {
        let w = Waker::new().unwrap();
        let mut set = WaitSet::new(&w).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        set.add_rx(a.as_fd()).unwrap();
        assert_eq!(set.rx_fds(), 1);
        b.write_all(b"x").unwrap();
        let woke = set.wait(&w, Duration::from_secs(5)).unwrap();
        assert!(woke.rx && !woke.kicked, "{woke:?}");
        // Still readable (nobody read the byte) but no new arrival: the
        // edge-triggered registration does not fire again.
        let woke = set.wait(&w, Duration::from_millis(20)).unwrap();
        assert!(woke.timeout && !woke.rx, "{woke:?}");
        b.write_all(b"y").unwrap();
        assert!(set.wait(&w, Duration::from_secs(5)).unwrap().rx);
    }

    #[test]
    fn closing_a_registered_fd_removes_it_and_a_reused_number_is_not_watched() {
        let w = Waker::new().unwrap();
        let mut set = WaitSet::new(&w).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let num = a.as_raw_fd();
        set.add_rx(a.as_fd()).unwrap();
        drop(a);
        drop(b);
        // A new stream likely gets the same number; its traffic must not
        // wake the set, and the closed one no longer reports anything.
        let (c, mut d) = UnixStream::pair().unwrap();
        d.write_all(b"z").unwrap();
        let woke = set.wait(&w, Duration::from_millis(20)).unwrap();
        assert!(
            woke.timeout && !woke.rx,
            "{woke:?} (old fd {num}, new {})",
            c.as_raw_fd()
        );
    }

    #[test]
    fn a_timeout_below_a_millisecond_is_honoured() {
        let w = Waker::new().unwrap();
        let mut set = WaitSet::new(&w).unwrap();
        let t = Instant::now();
        let woke = set.wait(&w, Duration::from_micros(200)).unwrap();
        let took = t.elapsed();
        assert!(woke.timeout);
        assert!(took >= Duration::from_micros(200), "{took:?}");
    }
}
