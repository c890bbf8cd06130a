//! `xswitch run`'s command line: the daemon in the foreground, configured
//! by a TOML file ([`crate::config`]) and/or flags.

use crate::config::{Config, FlagOverrides};
use crate::daemon::service::{run_until_signal, PortSpec, ServiceConfig};
use crate::mgmt::socket_path;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use xswitch_bpf::XdpMode;

/// `xswitch run [--config FILE] [--port IFNAME]... [--pmd-cpus LIST]
/// [--helper-cpus LIST] [--mode M] [--socket PATH] [--metrics ADDR]`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A TOML configuration (ports, flows, PMD CPUs, socket, metrics,
    /// options); flags add ports and override the rest.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// An interface to bridge (repeat; the lowest free ofports in this
    /// order). More can be added at runtime with `xswitch port add`.
    #[arg(long = "port", value_name = "IFNAME")]
    ports: Vec<String>,
    /// CPUs for the PMD threads, one PMD per CPU ("1", "0,1", "0-1");
    /// default: one PMD on the last CPU.
    #[arg(long, value_name = "LIST")]
    pmd_cpus: Option<String>,
    /// CPUs for the threads that add, tear down and re-attach ports (their
    /// kernel work holds a CPU for milliseconds at a time); default: the
    /// CPUs without a PMD.
    #[arg(long, value_name = "LIST")]
    helper_cpus: Option<String>,
    /// How to attach the XDP program by default: native (driver), generic
    /// (skb), or auto (native, falling back to generic; the default).
    #[arg(long, value_name = "MODE")]
    mode: Option<XdpMode>,
    /// The management socket (default: $XSWITCH_SOCKET, else
    /// /run/xswitch/xswitch.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback only).
    #[arg(long, value_name = "ADDR", value_parser = crate::config::check_metrics_addr)]
    metrics: Option<SocketAddr>,
    /// Log per-port rates and PMD busy % every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    stats_interval: Option<Duration>,
    /// Print the final statistics as JSON (the `stats --json` shape).
    #[arg(long)]
    json_stats: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

impl RunArgs {
    /// The daemon's configuration: the file (if any) with the flags merged
    /// in.
    pub fn service_config(self) -> Result<(ServiceConfig, bool), String> {
        let mut config = match &self.config {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::empty(),
        };
        config
            .merge_flags(&FlagOverrides {
                ports: self.ports,
                pmd_cpus: self.pmd_cpus,
                helper_cpus: self.helper_cpus,
                socket: self.socket,
                metrics: self.metrics,
                mode: self.mode,
            })
            .map_err(|e| e.to_string())?;
        let mut cfg = ServiceConfig::new(socket_path(config.socket.clone()));
        cfg.mode = config.mode;
        cfg.ports = config
            .ports
            .iter()
            .map(|p| PortSpec {
                name: p.name.clone(),
                mode: p.mode,
                ofport: Some(p.ofport),
            })
            .collect();
        cfg.rules = config.flows.iter().map(|f| f.rule.clone()).collect();
        cfg.pmd_cpus = config.pmd_cpus.clone();
        cfg.helper_cpus = config.helper_cpus.clone();
        cfg.datapath = config.options.datapath_config();
        cfg.pmd = config.options.pmd_config();
        cfg.metrics = config.metrics;
        cfg.stats_interval = self.stats_interval;
        Ok((cfg, self.json_stats))
    }

    /// Runs the daemon until SIGINT/SIGTERM, then prints the final report.
    pub fn run(self) -> Result<(), String> {
        let (cfg, json) = self.service_config()?;
        let report = run_until_signal(&cfg).map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        let r = if json {
            writeln!(out, "{}", report.to_json())
        } else {
            report.write_table(&mut out)
        };
        r.and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the stats report: {e}"))
    }
}
