//! The configuration file of `xswitch run --config FILE` (TOML).
//!
//! # What
//! One file describes a whole switch: its ports, its flows (inline and/or a
//! flow file in `ovs-ofctl add-flows` format), the PMD CPUs, the management
//! socket, the metrics address and datapath options. A complete example,
//! with every key explained, is `control/examples/xswitch.toml`:
//!
//! ```toml
//! socket = "/run/xswitch/xswitch.sock"   # optional
//! metrics = "127.0.0.1:9477"             # optional; loopback only
//! pmd_cpus = "0-1"                       # optional; kernel cpulist syntax
//! helper_cpus = "0"                      # optional; port-change threads
//! mode = "auto"                          # default XDP mode of every port
//! flows_file = "flows.txt"               # relative to this file
//! flows = ["priority=10,in_port=a0,actions=output:b0"]
//!
//! [options]
//! mac_aging_secs = 300
//!
//! [[ports]]
//! name = "a0"
//! ofport = 1            # optional
//! mode = "native"       # optional
//! ```
//!
//! [`Config::load`] reads a file, [`Config::parse`] a string (with the
//! directory `flows_file` is relative to). Both return a fully checked
//! [`Config`]: ofports assigned, modes parsed, the CPU list's syntax
//! checked, the metrics address parsed and loopback, every flow parsed into
//! a [`RuleSpec`] with port names resolved against the configured ports.
//!
//! # Errors
//! A [`ConfigError`] is one line that names the file, the 1-based line and
//! column, and what is wrong: `xswitch.toml:7:1: unknown field `prots`,
//! expected one of ...` (unknown keys are errors, at every level), or
//! `flows.txt:3:18: flow 3: bad flow at col 18 ("nw_dts=1.2.3.4"):
//! unknown field ...` (the flow's index in the combined list, the line it
//! is on and the offending token). Nothing is applied from a file that has
//! any error.
//!
//! # Ports and ofports
//! A port with `ofport` keeps it; the others get the lowest free numbers,
//! in file order (so a file without any `ofport` numbers its ports 1..n like
//! `--port` flags do). Names and ofports must be unique. Flows may name
//! ports by number or by the names listed in this file.
//!
//! # Merging with command-line flags ([`Config::merge_flags`])
//! Flags complete a file, they never silently drop any of it:
//! * `--port IFNAME` adds a port after the file's ports (next free ofport,
//!   the default mode); naming a port the file already has is an error;
//! * `--pmd-cpus`, `--helper-cpus`, `--socket`, `--metrics` replace the
//!   file's value;
//! * `--mode` sets the default mode for ports without a `mode` of their own.
//!
//! # Why
//! A switch with many ports and flows should be reproducible from a file
//! under version control; refusing unknown keys catches typos (`prots`)
//! that would otherwise start a switch without its ports. Flows are parsed
//! at load time so a bad flow stops the start, not the hundredth install.
//!
//! # Locking
//! None: plain data built on the control thread before anything starts.

use crate::flow_syntax::{parse_flow, FlowSyntaxError, MAX_PORT};
use crate::run::parse_cpu_list;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{DatapathConfig, PmdConfig};
use dataplane::flow_key::PortNo;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;
use xswitch_bpf::XdpMode;

/// A loaded, checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Ports in file order (then flag order), ofports assigned.
    pub ports: Vec<PortConfig>,
    /// Flows in order: the file's `flows_file` first, then `flows`.
    pub flows: Vec<FlowConfig>,
    /// PMD CPU list (cpulist syntax, checked); `None`: the default.
    pub pmd_cpus: Option<String>,
    /// CPUs of the threads that change and tear down ports (cpulist
    /// syntax, checked); `None`: the CPUs without a PMD.
    pub helper_cpus: Option<String>,
    /// Management socket path; `None`: the default.
    pub socket: Option<PathBuf>,
    /// Metrics listen address (loopback); `None`: metrics off.
    pub metrics: Option<SocketAddr>,
    /// Datapath and PMD tuning.
    pub options: Options,
    /// The default XDP mode for ports without one.
    pub mode: XdpMode,
}

/// One port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number (given or assigned).
    pub ofport: PortNo,
    /// XDP mode for this port; `None`: the config's default mode.
    pub mode: Option<XdpMode>,
}

/// One flow, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// The text as written.
    pub text: String,
    /// The parsed rule.
    pub rule: RuleSpec,
    /// Where it came from: `file:line`.
    pub origin: String,
}

/// `[options]`: datapath tuning. Unset keys keep the datapath's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Seconds before an unseen MAC entry is forgotten.
    pub mac_aging_secs: Option<u32>,
    /// Stations the MAC table holds.
    pub mac_capacity: Option<usize>,
    /// Exact-match cache entries per PMD (rounded up to a power of two).
    pub emc_entries: Option<usize>,
    /// Stall watchdog threshold in milliseconds.
    pub watchdog_threshold_ms: Option<u64>,
}

impl Options {
    /// The datapath configuration these options give.
    pub fn datapath_config(&self) -> DatapathConfig {
        let mut c = DatapathConfig::default();
        if let Some(v) = self.mac_aging_secs {
            c.mac_aging_secs = v;
        }
        if let Some(v) = self.mac_capacity {
            c.mac_capacity = v;
        }
        if let Some(v) = self.watchdog_threshold_ms {
            c.watchdog.threshold = std::time::Duration::from_millis(v);
        }
        c
    }

    /// The per-PMD configuration these options give.
    pub fn pmd_config(&self) -> PmdConfig {
        let mut c = PmdConfig::default();
        if let Some(v) = self.emc_entries {
            c.emc_entries = v;
        }
        c
    }
}

/// The flags `xswitch run` was given besides `--config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagOverrides {
    /// `--port IFNAME`, in order.
    pub ports: Vec<String>,
    /// `--pmd-cpus LIST`.
    pub pmd_cpus: Option<String>,
    /// `--helper-cpus LIST`.
    pub helper_cpus: Option<String>,
    /// `--socket PATH`.
    pub socket: Option<PathBuf>,
    /// `--metrics ADDR`.
    pub metrics: Option<SocketAddr>,
    /// `--mode MODE`.
    pub mode: Option<XdpMode>,
}

/// Why a configuration was refused. One line each.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or the flow file) could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something wrong at a place in a file: TOML syntax, an unknown key, a
    /// wrong type, a bad value.
    #[error("{}:{line}:{col}: {msg}", file.display())]
    At {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// A flow that does not parse.
    #[error("{}:{line}:{col}: flow {index}: {error}", file.display())]
    Flow {
        /// The file the flow is in (the config or the flow file).
        file: PathBuf,
        /// 1-based line of the flow.
        line: usize,
        /// 1-based column of the offending token in that line.
        col: usize,
        /// 1-based index of the flow in the combined list.
        index: usize,
        /// The parser's error (token and reason).
        error: Box<FlowSyntaxError>,
    },
    /// A command-line flag that conflicts with the file.
    #[error("{0}")]
    Flag(String),
}

impl ConfigError {
    /// The 1-based line the error points at, if it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } | ConfigError::Flow { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// The file as TOML describes it, before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default)]
    flows: Vec<Spanned<String>>,
    flows_file: Option<Spanned<String>>,
    pmd_cpus: Option<Spanned<String>>,
    helper_cpus: Option<Spanned<String>>,
    socket: Option<PathBuf>,
    metrics: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    #[serde(default)]
    options: RawOptions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    ofport: Option<Spanned<i64>>,
    mode: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    mac_aging_secs: Option<Spanned<i64>>,
    mac_capacity: Option<Spanned<i64>>,
    emc_entries: Option<Spanned<i64>>,
    watchdog_threshold_ms: Option<Spanned<i64>>,
}

/// Most exact-match cache entries accepted (the cache clamps higher).
pub const MAX_EMC_ENTRIES: usize = 1 << 20;

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Builds errors that point into one file.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, span: Range<usize>, msg: impl fmt::Display) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError::At {
            file: self.file.to_path_buf(),
            line,
            col,
            msg: msg.to_string(),
        }
    }
}

fn parse_mode(src: &Source<'_>, s: &Spanned<String>) -> Result<XdpMode, ConfigError> {
    XdpMode::from_str(s.get_ref()).map_err(|_| {
        src.at(
            s.span(),
            format!(
                "mode {:?} is not one of \"auto\", \"native\", \"generic\"",
                s.get_ref()
            ),
        )
    })
}

fn in_range<T: TryFrom<i64>>(
    src: &Source<'_>,
    key: &str,
    v: &Spanned<i64>,
    lo: i64,
    hi: i64,
) -> Result<T, ConfigError> {
    let n = *v.get_ref();
    if n < lo || n > hi {
        return Err(src.at(
            v.span(),
            format!("{key} = {n} is out of range ({lo}..={hi})"),
        ));
    }
    T::try_from(n).map_err(|_| src.at(v.span(), format!("{key} = {n} is out of range")))
}

/// Checks a metrics listen address: it parses and is a loopback address.
pub fn check_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("metrics address {s:?} is not IP:PORT (e.g. 127.0.0.1:9477)"))?;
    crate::metrics::check_loopback(addr).map_err(|e| e.to_string())?;
    Ok(addr)
}

impl Config {
    /// Reads and checks the configuration file at `path`; a `flows_file` in
    /// it is relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_named(&text, path, base)
    }

    /// Checks configuration `text` (errors name the file `<config>`);
    /// `flows_file` is relative to `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::parse_named(text, Path::new("<config>"), base_dir)
    }

    fn parse_named(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let src = Source { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            src.at(e.span().unwrap_or(0..0), msg)
        })?;

        let default_mode = match &raw.mode {
            Some(m) => parse_mode(&src, m)?,
            None => XdpMode::Auto,
        };

        // Ports: explicit ofports first (so they win), then the rest.
        let mut taken: HashMap<PortNo, String> = HashMap::new();
        let mut names: HashMap<String, ()> = HashMap::new();
        let mut ports: Vec<(String, Option<PortNo>, Option<XdpMode>)> = Vec::new();
        for p in &raw.ports {
            let name = p.name.get_ref();
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(src.at(
                    p.name.span(),
                    format!("port name {name:?} is not an interface name (1..15 bytes, no '/' or space)"),
                ));
            }
            if names.insert(name.clone(), ()).is_some() {
                return Err(src.at(p.name.span(), format!("port {name} is listed twice")));
            }
            let ofport = match &p.ofport {
                Some(o) => {
                    let n: PortNo = in_range(&src, "ofport", o, 1, i64::from(MAX_PORT))?;
                    if let Some(other) = taken.insert(n, name.clone()) {
                        return Err(src.at(
                            o.span(),
                            format!("ofport {n} is given to both {other} and {name}"),
                        ));
                    }
                    Some(n)
                }
                None => None,
            };
            let mode = p.mode.as_ref().map(|m| parse_mode(&src, m)).transpose()?;
            ports.push((name.clone(), ofport, mode));
        }
        let mut next: PortNo = 1;
        let ports: Vec<PortConfig> = ports
            .into_iter()
            .map(|(name, ofport, mode)| {
                let ofport = ofport.unwrap_or_else(|| {
                    while taken.contains_key(&next) {
                        next += 1;
                    }
                    taken.insert(next, name.clone());
                    next
                });
                PortConfig { name, ofport, mode }
            })
            .collect();

        let cpu_list = |list: &Option<Spanned<String>>| match list {
            Some(c) => {
                parse_cpu_list(c.get_ref()).map_err(|e| src.at(c.span(), e))?;
                Ok(Some(c.get_ref().clone()))
            }
            None => Ok(None),
        };
        let pmd_cpus = cpu_list(&raw.pmd_cpus)?;
        let helper_cpus = cpu_list(&raw.helper_cpus)?;
        let metrics = match &raw.metrics {
            Some(m) => Some(check_metrics_addr(m.get_ref()).map_err(|e| src.at(m.span(), e))?),
            None => None,
        };

        let o = &raw.options;
        let options = Options {
            mac_aging_secs: o
                .mac_aging_secs
                .as_ref()
                .map(|v| in_range(&src, "mac_aging_secs", v, 1, i64::from(u32::MAX)))
                .transpose()?,
            mac_capacity: o
                .mac_capacity
                .as_ref()
                .map(|v| in_range(&src, "mac_capacity", v, 1, 1 << 24))
                .transpose()?,
            emc_entries: o
                .emc_entries
                .as_ref()
                .map(|v| in_range(&src, "emc_entries", v, 2, MAX_EMC_ENTRIES as i64))
                .transpose()?,
            watchdog_threshold_ms: o
                .watchdog_threshold_ms
                .as_ref()
                .map(|v| in_range(&src, "watchdog_threshold_ms", v, 1, 3_600_000))
                .transpose()?,
        };

        // Flows: the flow file first, then the inline list.
        let by_name: HashMap<&str, PortNo> =
            ports.iter().map(|p| (p.name.as_str(), p.ofport)).collect();
        let resolve = |n: &str| by_name.get(n).copied();
        let mut flows = Vec::new();
        if let Some(ff) = &raw.flows_file {
            let path = base_dir.join(ff.get_ref());
            let ftext = std::fs::read_to_string(&path).map_err(|e| {
                src.at(
                    ff.span(),
                    format!("flows_file {}: cannot read: {e}", path.display()),
                )
            })?;
            for (i, line) in ftext.lines().enumerate() {
                let flow = line.trim();
                if flow.is_empty() || flow.starts_with('#') {
                    continue;
                }
                let lead = line.len() - line.trim_start().len();
                let index = flows.len() + 1;
                let rule = parse_flow(flow, &resolve).map_err(|error| ConfigError::Flow {
                    file: path.clone(),
                    line: i + 1,
                    col: line[..lead].chars().count() + error.col,
                    index,
                    error: Box::new(error),
                })?;
                flows.push(FlowConfig {
                    text: flow.to_string(),
                    rule,
                    origin: format!("{}:{}", path.display(), i + 1),
                });
            }
        }
        for f in &raw.flows {
            let index = flows.len() + 1;
            let rule = parse_flow(f.get_ref(), &resolve).map_err(|error| {
                // The span covers the quoted string: the text starts one
                // byte in (exact for strings without escapes).
                let (line, col) = line_col(text, f.span().start + 1 + error.offset);
                ConfigError::Flow {
                    file: file.to_path_buf(),
                    line,
                    col,
                    index,
                    error: Box::new(error),
                }
            })?;
            let (line, _) = line_col(text, f.span().start);
            flows.push(FlowConfig {
                text: f.get_ref().clone(),
                rule,
                origin: format!("{}:{line}", file.display()),
            });
        }

        Ok(Config {
            ports,
            flows,
            pmd_cpus,
            helper_cpus,
            socket: raw.socket,
            metrics,
            options,
            mode: default_mode,
        })
    }

    /// A configuration with nothing in it (flags only).
    pub fn empty() -> Config {
        Config {
            ports: Vec::new(),
            flows: Vec::new(),
            pmd_cpus: None,
            helper_cpus: None,
            socket: None,
            metrics: None,
            options: Options::default(),
            mode: XdpMode::Auto,
        }
    }

    /// Applies command-line flags (module docs, "Merging"): ports are added,
    /// the rest replaces the file's values. A `--port` the file already
    /// lists, or a bad `--pmd-cpus` or `--helper-cpus`, is an error and
    /// changes nothing.
    pub fn merge_flags(&mut self, flags: &FlagOverrides) -> Result<(), ConfigError> {
        for (i, p) in flags.ports.iter().enumerate() {
            if self.ports.iter().any(|q| &q.name == p) || flags.ports[..i].contains(p) {
                return Err(ConfigError::Flag(format!(
                    "--port {p}: the port is already configured (each port once)"
                )));
            }
        }
        for c in [&flags.pmd_cpus, &flags.helper_cpus].into_iter().flatten() {
            parse_cpu_list(c).map_err(|e| ConfigError::Flag(e.to_string()))?;
        }
        if let Some(m) = flags.metrics {
            crate::metrics::check_loopback(m).map_err(|e| ConfigError::Flag(e.to_string()))?;
        }
        for p in &flags.ports {
            let mut n: PortNo = 1;
            while self.ports.iter().any(|q| q.ofport == n) {
                n += 1;
            }
            self.ports.push(PortConfig {
                name: p.clone(),
                ofport: n,
                mode: None,
            });
        }
        if let Some(c) = &flags.pmd_cpus {
            self.pmd_cpus = Some(c.clone());
        }
        if let Some(c) = &flags.helper_cpus {
            self.helper_cpus = Some(c.clone());
        }
        if let Some(s) = &flags.socket {
            self.socket = Some(s.clone());
        }
        if let Some(m) = flags.metrics {
            self.metrics = Some(m);
        }
        if let Some(m) = flags.mode {
            self.mode = m;
        }
        Ok(())
    }

    /// The XDP mode port `p` is attached in.
    pub fn mode_of(&self, p: &PortConfig) -> XdpMode {
        p.mode.unwrap_or(self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let t = "ab\nc\u{e9}d\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3), "é is one column");
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn ports_without_ofport_take_the_lowest_free_numbers() {
        let c = Config::parse(
            "[[ports]]\nname = \"a\"\n[[ports]]\nname = \"b\"\nofport = 1\n[[ports]]\nname = \"c\"\n",
            Path::new("."),
        )
        .unwrap();
        let got: Vec<(&str, PortNo)> = c
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.ofport))
            .collect();
        assert_eq!(got, vec![("a", 2), ("b", 1), ("c", 3)]);
    }
}
