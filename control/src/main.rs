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
    /// Three hosts in namespaces bridged by xswitch: ping, TCP, stats
    /// (root); `--memory`: the packet walk on in-memory ports.
    Demo(control::demo::DemoArgs),
    /// Bridge interfaces on AF_XDP in the foreground until SIGINT/SIGTERM;
    /// then print the final statistics.
    Run(RunArgs),
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
    /// The daemon with its management socket (becomes `run`).
    #[command(hide = true)]
    Daemon(control::cli::RunArgs),
}

/// `xswitch run` (see control::run).
#[derive(clap::Args)]
struct RunArgs {
    /// An interface to bridge (repeat; ofports 1..n in this order).
    #[arg(long = "port", value_name = "IFNAME", required = true)]
    ports: Vec<String>,
    /// CPUs for the PMD threads, one PMD per CPU ("1", "0,1", "0-1");
    /// default: one PMD on the last CPU.
    #[arg(long, value_name = "LIST")]
    pmd_cpus: Option<String>,
    /// How to attach the XDP program: native (driver), generic (skb), or
    /// auto (native, falling back to generic).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    mode: xswitch_bpf::XdpMode,
    /// Log per-port rates every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    stats_interval: Option<std::time::Duration>,
    /// Print the final statistics as JSON (the `stats --json` shape).
    #[arg(long)]
    json_stats: bool,
}

fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(std::time::Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
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
        Cmd::Daemon(a) => a.run(),
        Cmd::Bench(a) => {
            control::bench::main(&a, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
        Cmd::Run(a) => {
            let cfg = control::run::RunConfig {
                ports: a.ports,
                pmd_cpus: a.pmd_cpus,
                mode: a.mode,
                stats_interval: a.stats_interval,
                json_stats: a.json_stats,
            };
            control::run::run(&cfg, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
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
