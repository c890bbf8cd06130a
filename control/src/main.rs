//! The `xswitch` command line (DESIGN.md "The user's contract").
//!
//! `run` is the daemon; `port`, `flow`, `fdb`, `stats` and `trace` talk to
//! it over its management socket; `demo`, `bench` and `chaos` build their
//! own namespaces and drive it.

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
    /// Three hosts in namespaces bridged by xswitch: ping, TCP, stats
    /// (root); `--memory`: the packet walk on in-memory ports.
    Demo(control::demo::DemoArgs),
    /// The switch daemon in the foreground: bridges interfaces on AF_XDP,
    /// serves the management socket, follows the interfaces' state; on
    /// SIGINT/SIGTERM stops cleanly and prints the final statistics.
    Run(control::cli::RunArgs),
    /// Throughput and latency of xswitch against the Linux bridge, Open
    /// vSwitch and the kernel XDP limit, with the project's own generator.
    Bench(control::bench::BenchArgs),
    /// Add, delete and list the running daemon's ports.
    Port(control::cli::PortArgs),
    /// Add, delete and dump the running daemon's flows (ovs-ofctl syntax).
    Flow(control::cli::FlowArgs),
    /// Show the MAC learning table.
    Fdb(control::cli::FdbArgs),
    /// Per-port and per-PMD counters, drops by reason, watchdog.
    Stats(control::cli::StatsArgs),
    /// What the switch would do with a packet: rule, actions, outputs.
    Trace(control::cli::TraceArgs),
    /// Fault injection: ports vanishing under load (link del, netns del,
    /// down, carrier, re-add, queue change, flow churn, SIGKILL), PASS/FAIL.
    Chaos(control::chaos::ChaosArgs),
}

/// Logs go to stderr (colour only on a terminal); the filter comes from
/// RUST_LOG (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let res: Result<(), String> = match cli.cmd {
        Cmd::Demo(a) => a.run(),
        Cmd::Port(a) => a.run(),
        Cmd::Flow(a) => a.run(),
        Cmd::Fdb(a) => a.run(),
        Cmd::Stats(a) => a.run(),
        Cmd::Trace(a) => a.run(),
        Cmd::Bench(a) => {
            control::bench::main(&a, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
        Cmd::Run(a) => a.run(),
        Cmd::Chaos(a) => control::chaos::main(&a, &mut std::io::stdout().lock()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
