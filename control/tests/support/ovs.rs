//! A private, userspace-only Open vSwitch, started and torn down by a test.
//!
//! # What
//! [`Ovs::start`] brings up `ovsdb-server` and `ovs-vswitchd` (Debian's
//! openvswitch-switch) in a fresh temporary directory, creates bridge `br0`
//! on the in-process `dummy` datapath (`--enable-dummy=override
//! --disable-system`: no kernel module, no systemd) with `fail-mode=secure`
//! (a table miss drops, as in xswitch once flows are installed), and adds
//! dummy ports `p1..pN` with `ofport_request=1..N`. The test then installs
//! flows with `ovs-ofctl add-flows` and asks `ovs-appctl ofproto/trace` what
//! the switch would do with a packet. OVS is the oracle of the differential
//! test (control/tests/ovs_differential.rs).
//!
//! # Invariants
//! * Nothing outside the private directory is touched: every OVS program
//!   runs with `OVS_RUNDIR`, `OVS_LOGDIR`, `OVS_DBDIR`, `OVS_SYSCONFDIR` and
//!   `OVS_PKGDATADIR` pointing at it, and every socket, pid file and log file
//!   is named explicitly. `/run/openvswitch` is never created or used, so a
//!   system OVS (if any) is left alone.
//! * The two daemons are our children (no `--detach`): [`Drop`] kills exactly
//!   those two PIDs and reaps them, then removes the directory. Drop also runs
//!   while a failing test unwinds, so a panic leaves no daemon behind. Nothing
//!   is ever killed by name.
//! * Datapath port numbers in `Datapath actions:` are mapped to OpenFlow port
//!   numbers with the table read once from `dpif/show`; the bridge's own
//!   LOCAL port (xswitch has none) is reported separately.
//!
//! # Why children rather than `--detach`
//! A detached daemon is re-parented away from us; killing it by its pid file
//! would work, but its zombie would outlive the test. A child we spawn is
//! killed and waited for through its `Child` handle: the PID we signal is
//! the PID we started, never a recycled one.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::odp::{parse_trace, OvsTrace};

/// Where Debian (and `make install`) put the OVS database schema.
const SCHEMA_DIRS: [&str; 2] = ["/usr/share/openvswitch", "/usr/local/share/openvswitch"];
/// Programs the harness runs. Daemons live in sbin on Debian.
const PROGRAMS: [&str; 6] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-ofctl",
    "ovs-appctl",
];
/// How long a daemon may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `ovs-appctl`/`ovs-ofctl`/`ovs-vsctl` call may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bridge name used throughout.
pub const BRIDGE: &str = "br0";

/// Why the harness could not do what was asked, with the detail a person
/// needs (the command, its stderr, the log to read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsError(pub String);

impl fmt::Display for OvsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OvsError {}

fn err<T>(msg: impl Into<String>) -> Result<T, OvsError> {
    Err(OvsError(msg.into()))
}

/// Full paths of the OVS programs, or the list of the missing ones.
#[derive(Debug, Clone)]
pub struct OvsPrograms {
    paths: HashMap<&'static str, PathBuf>,
}

impl OvsPrograms {
    /// Looks every program up in `PATH` and in the sbin directories a
    /// non-login `PATH` may lack.
    pub fn find() -> Result<Self, Vec<&'static str>> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for extra in [
            "/usr/sbin",
            "/usr/local/sbin",
            "/sbin",
            "/usr/bin",
            "/usr/local/bin",
        ] {
            dirs.push(PathBuf::from(extra));
        }
        let mut paths = HashMap::new();
        let mut missing = Vec::new();
        for prog in PROGRAMS {
            match dirs.iter().map(|d| d.join(prog)).find(|p| p.is_file()) {
                Some(p) => {
                    paths.insert(prog, p);
                }
                None => missing.push(prog),
            }
        }
        if missing.is_empty() {
            Ok(OvsPrograms { paths })
        } else {
            Err(missing)
        }
    }

    fn get(&self, prog: &str) -> &Path {
        // Every name in PROGRAMS was inserted by `find`.
        &self.paths[prog]
    }
}

/// Finds the OVS programs; if any is missing, runs
/// `scripts/install-test-deps.sh` once (the suite installs what it needs)
/// and looks again. The error says what is missing and what the install
/// attempt printed, so a test can fail loudly with it.
pub fn find_or_install_programs() -> Result<OvsPrograms, OvsError> {
    let missing = match OvsPrograms::find() {
        Ok(p) => return Ok(p),
        Err(missing) => missing,
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-test-deps.sh");
    let out = Command::new("sh").arg(&script).output();
    match OvsPrograms::find() {
        Ok(p) => Ok(p),
        Err(still) => {
            let detail = match out {
                Ok(o) => format!(
                    "exit {}; stdout: {}; stderr: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => format!("could not run it: {e}"),
            };
            err(format!(
                "Open vSwitch is required for the differential test but {missing:?} are not \
                 installed, and {} did not fix it ({detail}); still missing: {still:?}. \
                 Install Debian package openvswitch-switch (it needs root).",
                script.display()
            ))
        }
    }
}

/// One private Open vSwitch: `ovsdb-server` + `ovs-vswitchd` + bridge `br0`.
pub struct Ovs {
    progs: OvsPrograms,
    dir: PathBuf,
    /// Children in start order; killed in reverse.
    daemons: Vec<(&'static str, Child)>,
    vswitchd_ctl: PathBuf,
    /// `ovs-ofctl` target: the bridge's management socket.
    mgmt: String,
    /// Datapath port number -> OpenFlow port number.
    dp_to_ofport: HashMap<u32, u32>,
    /// Datapath number of the bridge's LOCAL port.
    dp_local: u32,
    n_ports: u32,
}

impl fmt::Debug for Ovs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ovs")
            .field("dir", &self.dir)
            .field("pids", &self.pids())
            .field("n_ports", &self.n_ports)
            .finish()
    }
}

/// A fresh, private, empty directory under the system temp dir. The name is
/// short: Unix socket paths are limited to 107 bytes.
fn make_private_dir() -> Result<PathBuf, OvsError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for _ in 0..100 {
        let name = format!(
            "xsw-ovs-{}-{}-{:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let dir = std::env::temp_dir().join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| OvsError(format!("chmod {}: {e}", dir.display())))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    err("cannot find a free temporary directory name")
}

impl Ovs {
    /// Starts a private OVS with bridge `br0` and dummy ports `p1..pN`
    /// (ofports `1..=n_ports`). Fails with the reason (and the log to read)
    /// if anything does not come up.
    pub fn start(progs: OvsPrograms, n_ports: u32) -> Result<Ovs, OvsError> {
        let dir = make_private_dir()?;
        let mut ovs = Ovs {
            progs,
            vswitchd_ctl: dir.join("ovs-vswitchd.ctl"),
            mgmt: format!("unix:{}", dir.join(format!("{BRIDGE}.mgmt")).display()),
            dir,
            daemons: Vec::new(),
            dp_to_ofport: HashMap::new(),
            dp_local: u32::MAX,
            n_ports,
        };
        // On any error below, dropping `ovs` kills what was started.
        ovs.bring_up()?;
        Ok(ovs)
    }

    /// The private directory (logs are there while the harness lives).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PIDs of the daemons this harness started.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|(_, c)| c.id()).collect()
    }

    fn command(&self, prog: &str) -> Command {
        let mut c = Command::new(self.progs.get(prog));
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
        c
    }

    /// Runs a program to completion; its stdout, or an error with stderr.
    /// Clients that talk to a daemon get [`COMMAND_TIMEOUT`], so a wedged
    /// daemon fails the test instead of hanging it.
    fn run(&self, prog: &str, args: &[&str]) -> Result<String, OvsError> {
        let mut cmd = self.command(prog);
        if matches!(prog, "ovs-appctl" | "ovs-ofctl" | "ovs-vsctl")
            && !args.iter().any(|a| a.starts_with("--timeout"))
        {
            cmd.arg(format!("--timeout={}", COMMAND_TIMEOUT.as_secs()));
        }
        let out: Output = cmd
            .args(args)
            .output()
            .map_err(|e| OvsError(format!("cannot run {prog}: {e}")))?;
        if out.status.success() {
            String::from_utf8(out.stdout)
                .map_err(|e| OvsError(format!("{prog} {args:?}: output is not UTF-8: {e}")))
        } else {
            err(format!(
                "`{prog} {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn spawn_daemon(&mut self, prog: &'static str, args: &[String]) -> Result<(), OvsError> {
        let stderr = fs::File::create(self.dir.join(format!("{prog}.stderr")))
            .map_err(|e| OvsError(format!("cannot create stderr file: {e}")))?;
        let child = self
            .command(prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| OvsError(format!("cannot start {prog}: {e}")))?;
        self.daemons.push((prog, child));
        Ok(())
    }

    /// The tail of a daemon's log and stderr, for error messages.
    fn daemon_log(&self, prog: &str) -> String {
        let mut s = String::new();
        for file in [format!("{prog}.log"), format!("{prog}.stderr")] {
            if let Ok(text) = fs::read_to_string(self.dir.join(&file)) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(8)..];
                s.push_str(&format!(
                    "\n--- {file} (last lines) ---\n{}",
                    tail.join("\n")
                ));
            }
        }
        s
    }

    /// Retries `probe` until it succeeds, the daemon exits, or time runs out.
    fn wait_until(
        &mut self,
        prog: &'static str,
        what: &str,
        mut probe: impl FnMut(&Ovs) -> Result<(), OvsError>,
    ) -> Result<(), OvsError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let last = match probe(self) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let Some((_, child)) = self.daemons.iter_mut().find(|(p, _)| *p == prog) {
                if let Ok(Some(status)) = child.try_wait() {
                    return err(format!(
                        "{prog} exited ({status}) before {what}{}",
                        self.daemon_log(prog)
                    ));
                }
            }
            if Instant::now() > deadline {
                return err(format!(
                    "{prog}: {what} did not happen within {STARTUP_TIMEOUT:?}: {last}{}",
                    self.daemon_log(prog)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bring_up(&mut self) -> Result<(), OvsError> {
        let d = self.dir.clone();
        let p = |name: &str| d.join(name).display().to_string();

        // A private copy of the schema, so OVS_PKGDATADIR can point here too.
        let schema_src = SCHEMA_DIRS
            .iter()
            .map(|dir| Path::new(dir).join("vswitch.ovsschema"))
            .find(|f| f.is_file())
            .ok_or_else(|| {
                OvsError(format!(
                    "vswitch.ovsschema not found in {SCHEMA_DIRS:?}: is openvswitch-common installed?"
                ))
            })?;
        fs::copy(&schema_src, d.join("vswitch.ovsschema"))
            .map_err(|e| OvsError(format!("copy {}: {e}", schema_src.display())))?;
        self.run(
            "ovsdb-tool",
            &["create", &p("conf.db"), &p("vswitch.ovsschema")],
        )?;

        let db_sock = format!("unix:{}", p("db.sock"));
        self.spawn_daemon(
            "ovsdb-server",
            &[
                p("conf.db"),
                format!("--remote=punix:{}", p("db.sock")),
                format!("--unixctl={}", p("ovsdb-server.ctl")),
                format!("--pidfile={}", p("ovsdb-server.pid")),
                format!("--log-file={}", p("ovsdb-server.log")),
                "--no-chdir".into(),
                "-vconsole:off".into(),
            ],
        )?;
        let db_arg = format!("--db={db_sock}");
        self.wait_until("ovsdb-server", "the database accepts `init`", |o| {
            o.run("ovs-vsctl", &[&db_arg, "--no-wait", "--timeout=5", "init"])
                .map(drop)
        })?;

        self.spawn_daemon(
            "ovs-vswitchd",
            &[
                db_sock.clone(),
                "--enable-dummy=override".into(),
                "--disable-system".into(),
                format!("--unixctl={}", p("ovs-vswitchd.ctl")),
                format!("--pidfile={}", p("ovs-vswitchd.pid")),
                format!("--log-file={}", p("ovs-vswitchd.log")),
                "--no-chdir".into(),
                "-vconsole:off".into(),
            ],
        )?;
        let ctl = self.vswitchd_ctl.display().to_string();
        self.wait_until("ovs-vswitchd", "its control socket answers", |o| {
            o.run("ovs-appctl", &["-t", &ctl, "--timeout=5", "version"])
                .map(drop)
        })?;

        // One transaction: bridge + ports. Without --no-wait, ovs-vsctl
        // returns once ovs-vswitchd has applied it.
        let mut args: Vec<String> = vec![
            db_arg.clone(),
            "add-br".into(),
            BRIDGE.into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            BRIDGE.into(),
            "datapath_type=dummy".into(),
            "fail-mode=secure".into(),
        ];
        for n in 1..=self.n_ports {
            args.extend([
                "--".into(),
                "add-port".into(),
                BRIDGE.into(),
                format!("p{n}"),
                "--".into(),
                "set".into(),
                "interface".into(),
                format!("p{n}"),
                "type=dummy".into(),
                format!("ofport_request={n}"),
            ]);
        }
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("ovs-vsctl", &args_ref)
            .map_err(|e| OvsError(format!("{e}{}", self.daemon_log("ovs-vswitchd"))))?;

        self.read_port_map()
    }

    /// Reads `dpif/show` once: `  p3 3/3: (dummy)` is "name ofport/dp-port".
    fn read_port_map(&mut self) -> Result<(), OvsError> {
        let ctl = self.vswitchd_ctl.display().to_string();
        let text = self.run("ovs-appctl", &["-t", &ctl, "dpif/show"])?;
        let (map, local) = parse_dpif_show(&text)
            .map_err(|e| OvsError(format!("{e} in dpif/show output:\n{text}")))?;
        for n in 1..=self.n_ports {
            if !map.values().any(|&of| of == n) {
                return err(format!(
                    "port p{n} (ofport {n}) missing from dpif/show:\n{text}"
                ));
            }
        }
        self.dp_to_ofport = map;
        self.dp_local = local;
        Ok(())
    }

    /// Installs flows (one `ovs-ofctl add-flows` for the whole list) with
    /// the default protocol negotiation: OpenFlow 1.0 with Nicira
    /// extensions, the dialect whose `mod_vlan_vid` pushes a tag when the
    /// packet has none and whose `mod_nw_*`/`mod_tp_*` need no match
    /// prerequisites — the semantics xswitch implements.
    pub fn add_flows(&self, flows: &[String]) -> Result<(), OvsError> {
        self.add_flows_as(flows, None)
    }

    /// Installs flows over OpenFlow `version` (e.g. `OpenFlow13`), for
    /// actions OpenFlow 1.0 cannot carry (`push_vlan`). OpenFlow 1.1+ also
    /// refuses actions inconsistent with the match (ovs-actions(7),
    /// "Inconsistencies"), so such flows must be consistent.
    pub fn add_flows_as(&self, flows: &[String], version: Option<&str>) -> Result<(), OvsError> {
        if flows.is_empty() {
            return Ok(());
        }
        let file = self.dir.join("flows.txt");
        let mut text = flows.join("\n");
        text.push('\n');
        fs::write(&file, text).map_err(|e| OvsError(format!("write {}: {e}", file.display())))?;
        let file = file.display().to_string();
        let mut args = Vec::new();
        if let Some(v) = version {
            args.extend(["-O", v]);
        }
        args.extend(["add-flows", &self.mgmt, &file]);
        self.run("ovs-ofctl", &args).map(drop)
    }

    /// Deletes every flow.
    pub fn del_flows(&self) -> Result<(), OvsError> {
        self.run("ovs-ofctl", &["del-flows", &self.mgmt]).map(drop)
    }

    /// The installed flows as `ovs-ofctl dump-flows --no-stats` prints them.
    pub fn dump_flows(&self) -> Result<String, OvsError> {
        self.run("ovs-ofctl", &["dump-flows", "--no-stats", &self.mgmt])
    }

    /// Forgets every learned MAC. `ofproto/trace` runs the real translation,
    /// and its NORMAL action *does* learn in OVS 3.1 (measured): the test
    /// flushes after every trace that went through NORMAL so that each case
    /// starts from an empty MAC table, like xswitch's side-effect-free trace.
    pub fn flush_fdb(&self) -> Result<(), OvsError> {
        let ctl = self.vswitchd_ctl.display().to_string();
        self.run("ovs-appctl", &["-t", &ctl, "fdb/flush", BRIDGE])
            .map(drop)
    }

    /// `ofproto/trace br0 FLOW`, parsed. `packet_hex`, if given, is a frame
    /// for OVS to parse itself (then `flow` carries only `in_port=N`).
    pub fn trace(&self, flow: &str, packet_hex: Option<&str>) -> Result<OvsTrace, OvsError> {
        let ctl = self.vswitchd_ctl.display().to_string();
        let mut args = vec!["-t", ctl.as_str(), "ofproto/trace", BRIDGE, flow];
        if let Some(hex) = packet_hex {
            args.push(hex);
        }
        let text = self.run("ovs-appctl", &args)?;
        parse_trace(&text, &self.dp_to_ofport, self.dp_local)
            .map_err(|e| OvsError(format!("{e} in ofproto/trace output for `{flow}`:\n{text}")))
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // Reverse start order: the switch first, then its database.
        while let Some((prog, mut child)) = self.daemons.pop() {
            // `Child::kill` signals exactly this PID (SIGKILL); `wait` reaps it.
            if let Err(e) = child.kill() {
                eprintln!("ovs harness: kill {prog} (pid {}): {e}", child.id());
            }
            let _ = child.wait();
        }
        if std::env::var_os("XSWITCH_DIFF_KEEP_DIR").is_some() {
            eprintln!("ovs harness: keeping {}", self.dir.display());
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("ovs harness: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// Parses `ovs-appctl dpif/show` into (dp port -> ofport, LOCAL's dp port).
///
/// ```text
/// dummy@ovs-dummy: hit:0 missed:0
///   br0:
///     br0 65534/100: (dummy-internal)
///     p1 1/1: (dummy)
/// ```
pub fn parse_dpif_show(text: &str) -> Result<(HashMap<u32, u32>, u32), OvsError> {
    const OFPP_LOCAL: u32 = 65534;
    let mut map = HashMap::new();
    let mut local = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(_name), Some(nums)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(nums) = nums.strip_suffix(':') else {
            continue;
        };
        let Some((of, dp)) = nums.split_once('/') else {
            continue;
        };
        let (Ok(of), Ok(dp)) = (of.parse::<u32>(), dp.parse::<u32>()) else {
            continue;
        };
        if of == OFPP_LOCAL {
            local = Some(dp);
        } else {
            map.insert(dp, of);
        }
    }
    match local {
        Some(l) => Ok((map, l)),
        None => err("no LOCAL port (ofport 65534)"),
    }
}
