//! The loader's one error type.
//!
//! Every message is a single line that names the interface and says what the
//! user can do about it: missing privileges, an MTU that native XDP refuses,
//! an interface someone else's XDP program occupies. Kernel errors that have
//! no better explanation carry the operation and the errno text.

use std::io;

/// What can go wrong loading, attaching or driving a port program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// The interface name or index names no interface (in this network
    /// namespace).
    #[error("no such network interface: {ifname}")]
    NoSuchInterface {
        /// The name, or `ifindex N` when only the index was known.
        ifname: String,
    },

    /// The kernel refused for lack of privileges (EPERM/EACCES).
    #[error("{op} on {ifname} needs CAP_BPF and CAP_NET_ADMIN (run as root)")]
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The interface concerned.
        ifname: String,
    },

    /// Native XDP refused the interface's MTU (ERANGE).
    #[error(
        "MTU too large for native XDP on {ifname} (mtu {}; native XDP without multi-buffer takes < 3520)",
        mtu.map_or_else(|| "unknown".to_string(), |m| m.to_string())
    )]
    MtuTooLarge {
        /// The interface.
        ifname: String,
        /// Its MTU, when it could be read.
        mtu: Option<u32>,
    },

    /// Another program (not xswitch's) is attached to the interface.
    #[error(
        "interface {ifname} already has XDP program {prog_name} (id {prog_id}) attached; detach it first"
    )]
    Busy {
        /// The interface.
        ifname: String,
        /// The attached program's name.
        prog_name: String,
        /// The attached program's id.
        prog_id: u32,
    },

    /// An xswitch port program is attached through a BPF link that a live
    /// process holds: another xswitch is driving this interface.
    #[error(
        "interface {ifname} is in use by another xswitch process (its XDP program {prog_name} id {prog_id} is held by a live BPF link)"
    )]
    InUse {
        /// The interface.
        ifname: String,
        /// The attached program's name.
        prog_name: String,
        /// The attached program's id.
        prog_id: u32,
    },

    /// A queue index at or above [`crate::MAX_QUEUES`].
    #[error("queue {queue} on {ifname} is out of range (the port program serves queues 0..{max})")]
    QueueOutOfRange {
        /// The interface.
        ifname: String,
        /// The queue asked for.
        queue: u32,
        /// [`crate::MAX_QUEUES`].
        max: u32,
    },

    /// `--mode` got something other than auto, native or generic.
    #[error("unknown XDP mode '{given}' (expected auto, native or generic)")]
    UnknownMode {
        /// What was given.
        given: String,
    },

    /// Any other kernel or libbpf failure: the operation and the reason.
    #[error("{op} on {ifname} failed: {reason}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The interface concerned.
        ifname: String,
        /// The errno text (or libbpf's message).
        reason: String,
    },
}

impl BpfError {
    /// The errno-classified error for `op` on `ifname`: privileges and a
    /// vanished interface get their own variants, the rest carry the text.
    pub(crate) fn from_errno(op: &'static str, ifname: &str, errno: i32) -> BpfError {
        match errno {
            libc::EPERM | libc::EACCES => BpfError::PermissionDenied {
                op,
                ifname: ifname.to_string(),
            },
            libc::ENODEV | libc::ENXIO => BpfError::NoSuchInterface {
                ifname: ifname.to_string(),
            },
            _ => BpfError::Os {
                op,
                ifname: ifname.to_string(),
                reason: io::Error::from_raw_os_error(errno).to_string(),
            },
        }
    }

    /// The same classification for an error libbpf-rs reports (it keeps the
    /// errno's kind, not the number).
    pub(crate) fn from_libbpf(op: &'static str, ifname: &str, err: &libbpf_rs::Error) -> BpfError {
        match err.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => BpfError::PermissionDenied {
                op,
                ifname: ifname.to_string(),
            },
            _ => BpfError::Os {
                op,
                ifname: ifname.to_string(),
                // `{:#}` prints libbpf-rs's whole context chain on one line.
                reason: format!("{err:#}"),
            },
        }
    }
}
