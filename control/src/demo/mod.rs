//! `xswitch demo`: the README's main command.
//!
//! * `xswitch demo` (root) builds three hosts in network namespaces, bridges
//!   them with `xswitch run` on AF_XDP in a namespace of its own, pings
//!   between the hosts, runs a short TCP transfer with iperf3, prints the
//!   switch's statistics and removes everything ([`netns`]).
//! * `xswitch demo --memory` walks the packet path on in-memory ports with
//!   no privileges: learning, flows, trace, drops ([`memory`]).

pub mod memory;
pub mod netns;

use std::path::PathBuf;

/// `xswitch demo [--memory]`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Walk the packet path on in-memory ports instead (no root needed).
    #[arg(long)]
    pub memory: bool,
    /// Seconds of TCP transfer.
    #[arg(long, value_name = "SECS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub tcp_secs: u32,
}

impl DemoArgs {
    /// Runs the chosen demo, writing to stdout; a one-line error otherwise.
    pub fn run(&self) -> Result<(), String> {
        let out = std::io::stdout().lock();
        if self.memory {
            return memory::run(out).map_err(|e| e.to_string());
        }
        let exe: PathBuf = std::env::current_exe()
            .map_err(|e| format!("cannot find the xswitch binary to run the switch: {e}"))?;
        let opts = netns::DemoOptions {
            xswitch: exe,
            tcp_secs: self.tcp_secs,
        };
        netns::run(&opts, out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
