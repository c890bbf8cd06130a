//! The `xswitch` command line (DESIGN.md "The user's contract").
//!
//! Today it runs the dataplane demo; the daemon, port, flow, stats and trace
//! subcommands arrive with the AF_XDP and control-plane issues.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "xswitch",
    version,
    about = "An OVS-style userspace switch on AF_XDP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the packet walk on in-memory ports: learning, flows, trace, drops.
    Demo,
    /// Throughput and latency of xswitch against the Linux bridge, Open
    /// vSwitch and the kernel XDP limit, with the project's own generator.
    Bench(control::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: Result<(), String> = match cli.cmd {
        Cmd::Demo => control::demo::run(std::io::stdout().lock()).map_err(|e| e.to_string()),
        Cmd::Bench(a) => {
            control::bench::main(&a, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
