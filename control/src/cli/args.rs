//! The command-line shapes of the client subcommands (clap), each with a
//! `run` that executes it against the daemon and prints the answer.

use super::{execute, Command, FlowSource};
use crate::mgmt::socket_path;
use std::path::PathBuf;

fn go(socket: Option<PathBuf>, cmd: &Command, json: bool) -> Result<(), String> {
    let path = socket_path(socket);
    execute(&path, cmd, json, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
}

/// `xswitch port ...`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    #[command(subcommand)]
    cmd: PortCmd,
    /// The daemon's management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum PortCmd {
    /// Add an interface as a port (opens AF_XDP sockets on it).
    Add {
        /// The interface.
        ifname: String,
        /// How to attach the XDP program: auto, native or generic.
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
        /// The OpenFlow port number (default: the lowest free one).
        #[arg(long, value_name = "N")]
        ofport: Option<u32>,
    },
    /// Delete a port, by interface name or ofport.
    Del {
        /// IFNAME or OFPORT.
        port: String,
    },
    /// List the configured ports and their state.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

impl PortArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), String> {
        let (cmd, json) = match self.cmd {
            PortCmd::Add {
                ifname,
                mode,
                ofport,
            } => (
                Command::PortAdd {
                    ifname,
                    mode,
                    ofport,
                },
                false,
            ),
            PortCmd::Del { port } => (Command::PortDel { port }, false),
            PortCmd::List { json } => (Command::PortList, json),
        };
        go(self.socket, &cmd, json)
    }
}

/// `xswitch flow ...`.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    #[command(subcommand)]
    cmd: FlowCmd,
    /// The daemon's management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum FlowCmd {
    /// Add a flow ('priority=100,in_port=1,ip,actions=output:2'), or every
    /// flow of a file (--file; one per line, # comments). All or nothing.
    Add {
        /// The flow.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        flow: Option<String>,
        /// A flow file in `ovs-ofctl add-flows` format.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Delete the flows a match selects (all without one).
    Del {
        /// The match.
        filter: Option<String>,
        /// Only the flow with exactly this match and priority.
        #[arg(long)]
        strict: bool,
    },
    /// Print every flow with its counters.
    Dump {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

impl FlowArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), String> {
        let (cmd, json) = match self.cmd {
            FlowCmd::Add { flow, file } => {
                let src = match (flow, file) {
                    (_, Some(f)) => FlowSource::File(f),
                    (Some(t), None) => FlowSource::Text(t),
                    (None, None) => return Err("give a flow or --file FILE".into()),
                };
                (Command::FlowAdd(src), false)
            }
            FlowCmd::Del { filter, strict } => (Command::FlowDel { filter, strict }, false),
            FlowCmd::Dump { json } => (Command::FlowDump, json),
        };
        go(self.socket, &cmd, json)
    }
}

/// `xswitch fdb show`.
#[derive(Debug, clap::Args)]
pub struct FdbArgs {
    #[command(subcommand)]
    cmd: FdbCmd,
    /// The daemon's management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum FdbCmd {
    /// Print the learned MAC addresses.
    Show {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

impl FdbArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), String> {
        let FdbCmd::Show { json } = self.cmd;
        go(self.socket, &Command::FdbShow, json)
    }
}

/// `xswitch stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// JSON output (ports[], pmds[], watchdog).
    #[arg(long)]
    json: bool,
    /// The daemon's management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl StatsArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), String> {
        go(self.socket, &Command::Stats, self.json)
    }
}

/// `xswitch trace 'FLOW'`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The packet: 'in_port=1,dl_src=..,dl_dst=..,ip,nw_src=..,nw_dst=..'.
    flow: String,
    /// JSON output (rule, actions, outputs, dropped).
    #[arg(long)]
    json: bool,
    /// The daemon's management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl TraceArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), String> {
        go(self.socket, &Command::Trace { flow: self.flow }, self.json)
    }
}
