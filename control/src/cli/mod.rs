//! The client side of the CLI subcommands that talk to a running daemon:
//! `port add|del|list`, `flow add|del|dump`, `fdb show`, `stats`, `trace`.
//!
//! # What
//! [`execute`] turns one [`Command`] into one management request
//! ([`crate::mgmt::Request`]), sends it to the daemon's socket and prints
//! the answer: the daemon's text rendering, or with `--json` its
//! structured result, pretty-printed. `flow add --file FILE` reads the
//! file here (the CLI's view of the file system, not the daemon's) and
//! sends its text whole, so the daemon can refuse it all-or-nothing.
//!
//! # Errors
//! Every failure is one line returned as [`CliError`] (main prints it as
//! `xswitch: ...` and exits 1): no daemon on the socket (naming the path
//! and `xswitch run`), the daemon's refusal verbatim, an unreadable flow
//! file. A refused request changed nothing in the daemon.
//!
//! # Locking
//! None; one connection, one request.

mod args;
mod run;

pub use args::{FdbArgs, FlowArgs, PortArgs, StatsArgs, TraceArgs};
pub use run::RunArgs;

use crate::mgmt::{call, ClientError, Request};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One client subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `port add IFNAME [--mode M] [--ofport N]`.
    PortAdd {
        /// Interface.
        ifname: String,
        /// XDP mode.
        mode: Option<String>,
        /// OpenFlow port number.
        ofport: Option<u32>,
    },
    /// `port del IFNAME|OFPORT`.
    PortDel {
        /// Name or number.
        port: String,
    },
    /// `port list [--json]`.
    PortList,
    /// `flow add 'FLOW'` or `flow add --file FILE`.
    FlowAdd(FlowSource),
    /// `flow del ['MATCH'] [--strict]`.
    FlowDel {
        /// The match (none: every flow).
        filter: Option<String>,
        /// Exact match and priority.
        strict: bool,
    },
    /// `flow dump [--json]`.
    FlowDump,
    /// `fdb show [--json]`.
    FdbShow,
    /// `stats [--json]`.
    Stats,
    /// `trace 'FLOW' [--json]`.
    Trace {
        /// The packet in flow syntax.
        flow: String,
    },
}

/// Where `flow add` takes its flows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowSource {
    /// One flow on the command line.
    Text(String),
    /// A flow file (`ovs-ofctl add-flows` format).
    File(PathBuf),
}

/// Why a subcommand failed. One line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The conversation with the daemon, or its refusal.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The flow file.
    #[error("cannot read flow file {}: {source}", path.display())]
    FlowFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the output.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl Command {
    /// The request this command sends.
    pub fn request(&self) -> Result<Request, CliError> {
        Ok(match self {
            Command::PortAdd {
                ifname,
                mode,
                ofport,
            } => Request::PortAdd {
                ifname: ifname.clone(),
                mode: mode.clone(),
                ofport: *ofport,
            },
            Command::PortDel { port } => Request::PortDel { port: port.clone() },
            Command::PortList => Request::PortList,
            Command::FlowAdd(FlowSource::Text(t)) => Request::FlowAdd { flows: t.clone() },
            Command::FlowAdd(FlowSource::File(p)) => {
                let flows = std::fs::read_to_string(p).map_err(|source| CliError::FlowFile {
                    path: p.clone(),
                    source,
                })?;
                // Always framed as a file (line numbers in errors), even
                // for a one-line file.
                let flows = if flows.ends_with('\n') {
                    flows
                } else {
                    flows + "\n"
                };
                Request::FlowAdd {
                    flows: if flows.trim_end().contains('\n') {
                        flows
                    } else {
                        format!("# {}\n{flows}", p.display())
                    },
                }
            }
            Command::FlowDel { filter, strict } => Request::FlowDel {
                filter: filter.clone(),
                strict: *strict,
            },
            Command::FlowDump => Request::FlowDump,
            Command::FdbShow => Request::FdbShow,
            Command::Stats => Request::Stats,
            Command::Trace { flow } => Request::Trace { flow: flow.clone() },
        })
    }
}

/// Runs `cmd` against the daemon on `socket` and writes its answer to
/// `out` (JSON when `json`).
pub fn execute(
    socket: &Path,
    cmd: &Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let req = cmd.request()?;
    let reply = call(socket, &req)?;
    let text = if json {
        serde_json::to_string_pretty(&reply.result).unwrap_or_default()
    } else {
        reply.text
    };
    if !text.is_empty() {
        out.write_all(text.as_bytes()).map_err(CliError::Output)?;
        if !text.ends_with('\n') {
            out.write_all(b"\n").map_err(CliError::Output)?;
        }
    }
    out.flush().map_err(CliError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_flow_file_is_still_sent_as_a_file() {
        let p = std::env::temp_dir().join(format!("xswitch-flows-{}.txt", std::process::id()));
        std::fs::write(&p, "actions=drop").unwrap();
        let r = Command::FlowAdd(FlowSource::File(p.clone()))
            .request()
            .unwrap();
        let Request::FlowAdd { flows } = r else {
            panic!("{r:?}")
        };
        assert!(flows.trim_end().contains('\n'));
        assert!(flows.ends_with("actions=drop\n"));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_missing_flow_file_names_the_file() {
        let e = Command::FlowAdd(FlowSource::File("/nonexistent/flows.txt".into()))
            .request()
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot read flow file /nonexistent/flows.txt"));
    }
}
