//! The management socket: how the CLI talks to a running `xswitch run`.
//!
//! # What
//! A Unix stream socket, by default `/run/xswitch/xswitch.sock` (mode 0600:
//! root only; the directory is created), overridable with `--socket PATH`
//! or the environment variable `XSWITCH_SOCKET` ([`socket_path`]). A
//! daemon in another network namespace than the host's defaults to a path
//! named after that namespace ([`default_socket`]): one switch per
//! namespace, and `ip netns exec NS xswitch ...` finds its own.
//!
//! # Protocol
//! Line-delimited JSON. The client writes one request per line and reads
//! one response line per request; a connection may carry any number of
//! requests, one at a time.
//!
//! ```text
//! → {"cmd":"flow_add","flows":"priority=100,in_port=1,actions=output:2"}
//! ← {"ok":true,"result":{"added":1},"text":"added 1 flow"}
//! → {"cmd":"port_del","port":"nope0"}
//! ← {"ok":false,"error":"no port named or numbered \"nope0\""}
//! ```
//!
//! * Requests ([`Request`]) are tagged by `cmd`: `ping`, `port_add`
//!   (`ifname`, optional `mode`, `ofport`), `port_del` (`port`: name or
//!   ofport), `port_list`, `flow_add` (`flows`: one flow or many lines in
//!   `ovs-ofctl` flow-file format), `flow_del` (optional `filter`,
//!   `strict`), `flow_dump`, `fdb_show`, `stats`, `trace` (`flow`).
//! * A success is `{"ok":true,"result":R,"text":T}`: `R` is the structured
//!   answer (what `--json` prints; `stats` is DESIGN.md's `stats --json`
//!   shape, `trace` has `rule`, `actions`, `outputs`, `dropped`), `T` the
//!   human rendering the CLI prints without `--json`. Rendering in the
//!   daemon keeps the client thin and the two outputs consistent.
//! * A failure is `{"ok":false,"error":E}`, `E` one line naming what is
//!   wrong. A failed request changes nothing.
//! * A request line longer than [`MAX_REQUEST_BYTES`], or one that is not
//!   valid JSON or not a known request, is answered with an error; an
//!   over-long line also closes the connection (the rest of it cannot be
//!   framed). Nothing a client sends can stop the daemon.
//!
//! # Invariants
//! * One daemon per socket path: at start, a path where a daemon answers
//!   is refused ("another xswitch daemon is listening on PATH"); a path
//!   left by a dead daemon (connect refused) is replaced. The file is
//!   removed when the server stops.
//! * The accept loop waits in `poll` with a timeout, so stopping the
//!   server takes at most [`ACCEPT_POLL`]; connections (at most
//!   [`MAX_CONNECTIONS`] at once, each with an idle timeout) are served
//!   by a fixed pool of threads started with the server, port changes on
//!   their own lane (see `server.rs`).
//!
//! # Locking
//! None here: the server hands each request to a [`Handler`] (the daemon),
//! which takes its own locks.

mod client;
mod priority;
mod protocol;
mod server;

pub use client::{call, Client, ClientError};
pub use protocol::{
    FdbRow, FlowRow, PortAdded, PortDeleted, PortRow, Reply, Request, Response, TraceReport,
};
pub use server::{
    Handler, Server, ServerError, ServerOptions, ACCEPT_POLL, MAX_CONNECTIONS, MAX_REQUEST_BYTES,
};

use std::path::PathBuf;

/// The socket path when neither `--socket` nor `XSWITCH_SOCKET` is given,
/// in the host's network namespace.
pub const DEFAULT_SOCKET: &str = "/run/xswitch/xswitch.sock";

/// The environment variable that overrides the default path.
pub const SOCKET_ENV: &str = "XSWITCH_SOCKET";

/// The inode of a network namespace file (`/proc/PID/ns/net`).
fn netns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The default socket path for the calling process: [`DEFAULT_SOCKET`] in
/// the host's network namespace (that of PID 1), and
/// `/run/xswitch/xswitch.net<INODE>.sock` in any other, so that a daemon
/// per namespace (`ip netns exec NS xswitch run`) gets its own socket and
/// the CLI run in the same namespace finds it. When PID 1's namespace
/// cannot be read (not root), [`DEFAULT_SOCKET`].
pub fn default_socket() -> PathBuf {
    match (
        netns_inode("/proc/self/ns/net"),
        netns_inode("/proc/1/ns/net"),
    ) {
        (Some(me), Some(host)) if me != host => {
            PathBuf::from(format!("/run/xswitch/xswitch.net{me}.sock"))
        }
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// The socket path to use: `flag` (`--socket`), else `$XSWITCH_SOCKET`
/// (when set and not empty), else [`default_socket`].
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    match std::env::var_os(SOCKET_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default_socket(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_environment_and_the_default() {
        assert_eq!(
            socket_path(Some(PathBuf::from("/tmp/x.sock"))),
            PathBuf::from("/tmp/x.sock")
        );
    }
}
