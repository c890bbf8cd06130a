//! Open vSwitch as a device under test: a private `ovsdb-server` and
//! `ovs-vswitchd` with the userspace (netdev) datapath, in the DUT
//! namespace.
//!
//! # What
//! Bridge `br0`, `datapath_type=netdev`, the two DUT veths as ports 1 and
//! 2 — `type=afxdp` (`xdp-mode=native`: copy mode on veth) for
//! `ovs-afxdp`, or plain netdev-linux ports for `ovs-system` — and the
//! default NORMAL flow, i.e. a learning bridge, like xswitch with no flows.
//! PMD threads run on the DUT CPUs (`pmd-cpu-mask`), and the whole daemon
//! is confined to them with `taskset`, so netdev-linux ports (polled by the
//! main thread, not a PMD) are on the DUT CPUs as well.
//!
//! # Invariants
//! * Nothing outside a fresh private directory is used: `OVS_RUNDIR`,
//!   `OVS_DBDIR`, `OVS_LOGDIR`, `OVS_SYSCONFDIR` and `OVS_PKGDATADIR` point
//!   there and every socket and pid file is named. A system OVS, if any,
//!   is never touched. No systemd, no kernel module (`--disable-system`).
//! * Both daemons are our children, started without `--detach`
//!   (`ip netns exec` execs, so the child's PID is the daemon's): drop
//!   kills exactly those PIDs and reaps them, then removes the directory.
//! * Missing programs, or a build without AF_XDP, make the DUT
//!   *unavailable* (skipped with the reason), not an error.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::dut::DutError;
use crate::topo::{ChildGuard, Netns};

const PROGRAMS: [&str; 4] = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"];
const SCHEMA_DIRS: [&str; 2] = ["/usr/share/openvswitch", "/usr/local/share/openvswitch"];
const STARTUP: Duration = Duration::from_secs(20);

/// Finds the OVS programs in PATH and the sbin directories.
fn find_programs() -> Result<Vec<PathBuf>, DutError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for prog in PROGRAMS {
        match dirs.iter().map(|d| d.join(prog)).find(|p| p.is_file()) {
            Some(p) => found.push(p),
            None => missing.push(prog),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(DutError::Unavailable(format!(
            "Open vSwitch is not installed ({} missing; Debian package openvswitch-switch)",
            missing.join(", ")
        )))
    }
}

/// A private OVS bridging two interfaces of one namespace.
#[derive(Debug)]
pub struct OvsDut {
    /// Killed in reverse order on drop.
    daemons: Vec<ChildGuard>,
    dir: PathBuf,
    progs: Vec<PathBuf>,
}

impl OvsDut {
    /// Starts OVS in `ns` with `ports` on bridge br0; `afxdp` selects the
    /// port type. `cpus` are the CPUs for its PMDs and its main thread.
    pub fn start(
        ns: &Netns,
        ports: [&str; 2],
        afxdp: bool,
        cpus: &[usize],
    ) -> Result<OvsDut, DutError> {
        let progs = find_programs()?;
        let schema = SCHEMA_DIRS
            .iter()
            .map(|d| Path::new(d).join("vswitch.ovsschema"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                DutError::Unavailable("vswitch.ovsschema not found (openvswitch-common)".into())
            })?;
        let dir = std::env::temp_dir().join(format!(
            "xsw-bench-ovs-{}-{}",
            std::process::id(),
            crate::topo::unique_name("o")
        ));
        fs::create_dir(&dir).map_err(|e| DutError::Failed(format!("{}: {e}", dir.display())))?;
        let mut ovs = OvsDut {
            daemons: Vec::new(),
            dir,
            progs,
        };
        ovs.bring_up(ns, ports, afxdp, cpus, &schema)?;
        Ok(ovs)
    }

    /// PIDs of the daemons (ovsdb-server, ovs-vswitchd).
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(ChildGuard::id).collect()
    }

    fn prog(&self, name: &str) -> &Path {
        let i = PROGRAMS.iter().position(|p| *p == name).expect("known");
        &self.progs[i]
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn env(&self, c: &mut Command) {
        for var in [
            "OVS_RUNDIR",
            "OVS_LOGDIR",
            "OVS_DBDIR",
            "OVS_SYSCONFDIR",
            "OVS_PKGDATADIR",
        ] {
            c.env(var, &self.dir);
        }
        c.current_dir(&self.dir).stdin(Stdio::null());
    }

    /// Runs an OVS client to completion.
    fn run(&self, prog: &str, args: &[String]) -> Result<String, DutError> {
        let mut c = Command::new(self.prog(prog));
        self.env(&mut c);
        let out = c
            .args(args)
            .output()
            .map_err(|e| DutError::Failed(format!("cannot run {prog}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(DutError::Failed(format!(
                "`{prog} {}` failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail()
            )))
        }
    }

    fn log_tail(&self) -> String {
        let Ok(text) = fs::read_to_string(self.dir.join("ovs-vswitchd.log")) else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        format!("\n--- ovs-vswitchd.log ---\n{}", tail.join("\n"))
    }

    /// Starts a daemon inside `ns`, confined to `cpus`.
    fn spawn(
        &mut self,
        ns: &Netns,
        prog: &str,
        args: &[String],
        cpus: &str,
    ) -> Result<(), DutError> {
        let stderr = fs::File::create(self.dir.join(format!("{prog}.stderr")))
            .map_err(|e| DutError::Failed(format!("stderr file: {e}")))?;
        let mut c = Command::new("taskset");
        c.args(["-c", cpus, "ip", "netns", "exec", ns.name()])
            .arg(self.prog(prog))
            .args(args);
        self.env(&mut c);
        let child = c
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| DutError::Failed(format!("cannot start {prog}: {e}")))?;
        self.daemons.push(ChildGuard::new(child));
        Ok(())
    }

    fn wait_for(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&OvsDut) -> bool,
    ) -> Result<(), DutError> {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if probe(self) {
                return Ok(());
            }
            for d in &mut self.daemons {
                if let Ok(Some(st)) = d.child_mut().try_wait() {
                    return Err(DutError::Failed(format!(
                        "an OVS daemon exited ({st}) before {what}{}",
                        self.log_tail()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(DutError::Failed(format!(
            "OVS: {what} did not happen within {STARTUP:?}{}",
            self.log_tail()
        )))
    }

    fn bring_up(
        &mut self,
        ns: &Netns,
        ports: [&str; 2],
        afxdp: bool,
        cpus: &[usize],
        schema: &Path,
    ) -> Result<(), DutError> {
        let cpu_list = cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mask: u64 = cpus.iter().fold(0, |m, &c| m | (1u64 << c.min(63)));
        self.run(
            "ovsdb-tool",
            &[
                "create".into(),
                self.path("conf.db"),
                schema.display().to_string(),
            ],
        )?;
        let db = format!("unix:{}", self.path("db.sock"));
        let args = vec![
            self.path("conf.db"),
            format!("--remote=punix:{}", self.path("db.sock")),
            format!("--unixctl={}", self.path("ovsdb-server.ctl")),
            format!("--pidfile={}", self.path("ovsdb-server.pid")),
            format!("--log-file={}", self.path("ovsdb-server.log")),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ];
        self.spawn(ns, "ovsdb-server", &args, &cpu_list)?;
        let db_arg = format!("--db={db}");
        self.wait_for("the database answers", |o| {
            o.run(
                "ovs-vsctl",
                &[
                    db_arg.clone(),
                    "--no-wait".into(),
                    "--timeout=5".into(),
                    "init".into(),
                ],
            )
            .is_ok()
        })?;
        // PMDs on the DUT CPUs, set before the datapath exists.
        self.run(
            "ovs-vsctl",
            &[
                db_arg.clone(),
                "--no-wait".into(),
                "set".into(),
                "Open_vSwitch".into(),
                ".".into(),
                format!("other_config:pmd-cpu-mask=0x{mask:x}"),
            ],
        )?;
        let args = vec![
            db.clone(),
            "--disable-system".into(),
            format!("--unixctl={}", self.path("ovs-vswitchd.ctl")),
            format!("--pidfile={}", self.path("ovs-vswitchd.pid")),
            format!("--log-file={}", self.path("ovs-vswitchd.log")),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ];
        self.spawn(ns, "ovs-vswitchd", &args, &cpu_list)?;
        let ctl = self.path("ovs-vswitchd.ctl");
        self.wait_for("ovs-vswitchd starts", |_| Path::new(&ctl).exists())?;
        if afxdp {
            let types = self.run(
                "ovs-vsctl",
                &[
                    db_arg.clone(),
                    "--timeout=20".into(),
                    "get".into(),
                    "Open_vSwitch".into(),
                    ".".into(),
                    "iface_types".into(),
                ],
            )?;
            if !types.contains("afxdp") {
                return Err(DutError::Unavailable(format!(
                    "this Open vSwitch build has no AF_XDP support (iface_types: {})",
                    types.trim()
                )));
            }
        }
        let mut args: Vec<String> = vec![
            db_arg,
            "--timeout=30".into(),
            "add-br".into(),
            "br0".into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            "br0".into(),
            "datapath_type=netdev".into(),
        ];
        for (i, p) in ports.iter().enumerate() {
            args.extend([
                "--".into(),
                "add-port".into(),
                "br0".into(),
                p.to_string(),
                "--".into(),
                "set".into(),
                "interface".into(),
                p.to_string(),
                format!("ofport_request={}", i + 1),
            ]);
            if afxdp {
                args.extend(["type=afxdp".into(), "options:xdp-mode=native".into()]);
            }
        }
        self.run("ovs-vsctl", &args)?;
        Ok(())
    }
}

impl Drop for OvsDut {
    fn drop(&mut self) {
        // Switch first, then its database; each guard kills its own PID.
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
