//! Putting the calling thread into a named network namespace, and on a CPU.
//!
//! # What and why
//! Interface indexes, XDP attachment and BPF_PROG_RUN's live-frame
//! redirects are all resolved in the network namespace of the *calling
//! thread*. The benchmark's generator, sink and reference device live in
//! namespaces made by `ip netns add`, so the thread that loads, attaches or
//! runs them first enters that namespace with `setns(CLONE_NEWNET)` (which
//! Linux allows per thread, also in a multi-threaded process).
//!
//! # Invariants
//! * [`NetnsGuard`] returns the thread to the namespace it was in when the
//!   guard was made, on drop (also while unwinding). It is `!Send`: the
//!   namespace belongs to the thread, so the guard must die on it.
//! * Threads spawned while a guard is live inherit the entered namespace.
//! * An XDP link or BPF object made inside stays valid after the thread
//!   leaves: the kernel resolved the interface when it was attached.

use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{sched_getcpu, sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::unistd::Pid;

use super::GenError;

/// Where `ip netns add NAME` keeps the namespace handle.
const NETNS_RUN_DIR: &str = "/run/netns";

/// While alive, the calling thread is in another network namespace.
#[derive(Debug)]
pub struct NetnsGuard {
    original: File,
    entered: PathBuf,
    _not_send: PhantomData<*const ()>,
}

impl NetnsGuard {
    /// Enters the namespace `ip netns` knows as `name`.
    pub fn enter(name: &str) -> Result<NetnsGuard, GenError> {
        Self::enter_path(&Path::new(NETNS_RUN_DIR).join(name))
    }

    /// Enters the namespace whose handle is the file at `path`
    /// (`/run/netns/NAME` or `/proc/PID/ns/net`).
    pub fn enter_path(path: &Path) -> Result<NetnsGuard, GenError> {
        let netns_err = |e: std::io::Error| GenError::Netns {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let original = File::open("/proc/thread-self/ns/net").map_err(netns_err)?;
        let target = File::open(path).map_err(netns_err)?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| GenError::Netns {
            path: path.display().to_string(),
            reason: e.desc().to_string(),
        })?;
        Ok(NetnsGuard {
            original,
            entered: path.to_path_buf(),
            _not_send: PhantomData,
        })
    }

    /// The namespace handle entered.
    pub fn path(&self) -> &Path {
        &self.entered
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // Going back to a namespace we were in cannot fail for lack of
        // privilege; if it still does, say so rather than panic in drop.
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!(
                "xswitch-bpf: cannot return from network namespace {}: {e}",
                self.entered.display()
            );
        }
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), GenError> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|_| GenError::Pin {
        cpu,
        reason: "CPU number out of range".into(),
    })?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| GenError::Pin {
        cpu,
        reason: e.desc().to_string(),
    })
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    sched_getcpu().ok()
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex_of(name: &str) -> Result<u32, GenError> {
    nix::net::if_::if_nametoindex(name).map_err(|_| GenError::NoSuchInterface(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespace_is_a_clear_error() {
        let e = NetnsGuard::enter("xswitch-no-such-namespace").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("xswitch-no-such-namespace"), "{msg}");
    }

    #[test]
    fn entering_our_own_namespace_and_leaving_keeps_loopback_visible() {
        let g = match NetnsGuard::enter_path(Path::new("/proc/self/ns/net")) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipped: setns needs CAP_SYS_ADMIN: {e}");
                return;
            }
        };
        assert_eq!(ifindex_of("lo").unwrap(), 1);
        drop(g);
        assert_eq!(ifindex_of("lo").unwrap(), 1);
    }

    #[test]
    fn unknown_interface_is_named_in_the_error() {
        let e = ifindex_of("xsw-nope0").unwrap_err();
        assert!(e.to_string().contains("xsw-nope0"), "{e}");
    }

    #[test]
    fn pinning_moves_the_thread_to_that_cpu() {
        std::thread::spawn(|| {
            pin_current_thread(0).unwrap();
            assert_eq!(current_cpu(), Some(0));
            assert!(pin_current_thread(100_000).is_err());
        })
        .join()
        .unwrap();
    }
}
