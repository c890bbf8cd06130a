//! `xswitch run --config FILE`: the example parses in full, every kind of
//! mistake is one line naming file, line and what is wrong, and flags merge
//! as documented.

use control::config::{Config, ConfigError, FlagOverrides};
use dataplane::actions::Action;
use std::path::{Path, PathBuf};
use xswitch_bpf::XdpMode;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &examples())
}

/// The error as its one line, checked to be one line.
fn err(text: &str) -> String {
    let e = parse(text)
        .expect_err("config should be refused")
        .to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("xswitch-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_example_config_loads_with_ports_flows_and_options() {
    let path = examples().join("xswitch.toml");
    let c = Config::load(&path).unwrap();
    let ports: Vec<(&str, u32, XdpMode)> = c
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.ofport, c.mode_of(p)))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("a0", 1, XdpMode::Auto),
            ("b0", 2, XdpMode::Native),
            ("c0", 3, XdpMode::Auto)
        ]
    );
    assert_eq!(c.pmd_cpus.as_deref(), Some("1"));
    assert_eq!(
        c.socket.as_deref(),
        Some(Path::new("/run/xswitch/xswitch.sock"))
    );
    assert_eq!(c.metrics, Some("127.0.0.1:9477".parse().unwrap()));
    // Flow file first (2 flows), then the inline list (3).
    assert_eq!(c.flows.len(), 5);
    assert!(
        c.flows[0].origin.ends_with("flows.txt:2"),
        "{}",
        c.flows[0].origin
    );
    assert_eq!(
        c.flows[1].text,
        "priority=150,ip,in_port=c0,nw_dst=10.0.0.0/24,actions=normal"
    );
    // Port names resolved against [[ports]]: in_port=c0 is ofport 3.
    assert_eq!(c.flows[1].rule.matcher.key.in_port(), 3);
    let inline = &c.flows[3].rule;
    assert_eq!(inline.priority, 100);
    assert_eq!(inline.matcher.key.in_port(), 1);
    assert_eq!(inline.actions, vec![Action::Output(2)]);
    assert!(
        c.flows[2].rule.actions.is_empty(),
        "actions=drop is an empty list"
    );
    assert_eq!(c.options.mac_aging_secs, Some(300));
    assert_eq!(c.options.datapath_config().mac_aging_secs, 300);
    assert_eq!(c.options.pmd_config().emc_entries, 8192);
    assert_eq!(
        c.options.datapath_config().watchdog.threshold,
        std::time::Duration::from_millis(100)
    );
}

#[test]
fn an_empty_file_is_a_valid_empty_config() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::empty());
}

#[test]
fn bad_toml_syntax_names_file_line_and_column() {
    let e = err("socket = \"/tmp/s\"\nmetrics = 127.0.0.1:9\n");
    assert!(e.starts_with("<config>:2:"), "{e}");
}

#[test]
fn a_file_that_does_not_exist_is_named() {
    let e = Config::load(Path::new("/nonexistent/xswitch.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/xswitch.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn an_unknown_top_level_key_is_refused_with_its_line() {
    let e = err("pmd_cpus = \"0\"\nprots = []\n");
    assert!(e.starts_with("<config>:2:1:"), "{e}");
    assert!(e.contains("unknown field `prots`"), "{e}");
}

#[test]
fn an_unknown_key_in_a_port_or_options_is_refused() {
    let e = err("[[ports]]\nname = \"a0\"\nofprot = 1\n");
    assert!(e.starts_with("<config>:3:"), "{e}");
    assert!(e.contains("ofprot"), "{e}");
    let e = err("[options]\nmac_aging = 5\n");
    assert!(e.starts_with("<config>:2:"), "{e}");
    assert!(e.contains("mac_aging"), "{e}");
}

#[test]
fn a_wrong_type_is_refused_with_its_line() {
    let e = err("[[ports]]\nname = \"a0\"\nofport = \"one\"\n");
    assert!(e.starts_with("<config>:3:"), "{e}");
}

#[test]
fn a_port_without_a_name_is_refused() {
    let e = err("[[ports]]\nofport = 1\n");
    assert!(e.contains("name"), "{e}");
}

#[test]
fn duplicate_port_names_and_ofports_are_refused() {
    let e = err("[[ports]]\nname = \"a0\"\n[[ports]]\nname = \"a0\"\n");
    assert!(e.starts_with("<config>:4:8:"), "{e}");
    assert!(e.contains("port a0 is listed twice"), "{e}");
    let e = err("[[ports]]\nname = \"a0\"\nofport = 3\n[[ports]]\nname = \"b0\"\nofport = 3\n");
    assert!(e.starts_with("<config>:6:"), "{e}");
    assert!(e.contains("ofport 3 is given to both a0 and b0"), "{e}");
}

#[test]
fn out_of_range_ofport_and_options_are_refused() {
    let e = err("[[ports]]\nname = \"a0\"\nofport = 0\n");
    assert!(e.contains("ofport = 0 is out of range (1..=65279)"), "{e}");
    let e = err("[[ports]]\nname = \"a0\"\nofport = 65280\n");
    assert!(e.contains("out of range"), "{e}");
    let e = err("[options]\nemc_entries = 0\n");
    assert!(e.starts_with("<config>:2:"), "{e}");
    assert!(e.contains("emc_entries = 0 is out of range"), "{e}");
    let e = err("[options]\nmac_aging_secs = -1\n");
    assert!(e.contains("mac_aging_secs"), "{e}");
}

#[test]
fn a_bad_interface_name_is_refused() {
    let e = err("[[ports]]\nname = \"a-very-long-interface-name\"\n");
    assert!(e.contains("not an interface name"), "{e}");
}

#[test]
fn a_bad_mode_is_refused_with_the_choices() {
    let e = err("[[ports]]\nname = \"a0\"\nmode = \"fast\"\n");
    assert!(e.starts_with("<config>:3:8:"), "{e}");
    assert!(
        e.contains("\"fast\" is not one of \"auto\", \"native\", \"generic\""),
        "{e}"
    );
    let e = err("mode = \"zerocopy\"\n");
    assert!(e.contains("zerocopy"), "{e}");
}

#[test]
fn a_bad_cpu_list_is_refused_at_its_line() {
    let e = err("\npmd_cpus = \"3-1\"\n");
    assert!(e.starts_with("<config>:2:12:"), "{e}");
    assert!(e.contains("bad CPU list"), "{e}");
    let e = err("pmd_cpus = \"1\"\nhelper_cpus = \"0,x\"\n");
    assert!(e.starts_with("<config>:2:15:"), "{e}");
    assert!(e.contains("\"x\" is not a CPU number"), "{e}");
}

#[test]
fn a_bad_or_non_loopback_metrics_address_is_refused() {
    let e = err("metrics = \"localhost\"\n");
    assert!(e.contains("is not IP:PORT"), "{e}");
    let e = err("metrics = \"0.0.0.0:9477\"\n");
    assert!(e.contains("not a loopback address"), "{e}");
    let c = parse("metrics = \"[::1]:9477\"\n").unwrap();
    assert_eq!(c.metrics, Some("[::1]:9477".parse().unwrap()));
}

#[test]
fn a_bad_inline_flow_reports_index_line_column_and_token() {
    let text = "flows = [\n  \"actions=drop\",\n  \"ip,nw_dts=10.0.0.1,actions=drop\",\n]\n";
    let e = parse(text).unwrap_err();
    match &e {
        ConfigError::Flow {
            index,
            line,
            col,
            error,
            ..
        } => {
            assert_eq!((*index, *line), (2, 3));
            // `  "ip,` — the token starts at column 7 of the line.
            assert_eq!(*col, 7);
            assert_eq!(error.token, "nw_dts=10.0.0.1");
        }
        other => panic!("not a flow error: {other}"),
    }
    let s = e.to_string();
    assert!(
        s.starts_with("<config>:3:7: flow 2: bad flow at col 4"),
        "{s}"
    );
    assert!(s.contains("nw_dts"), "{s}");
}

#[test]
fn a_flow_naming_an_unknown_port_is_refused() {
    let e = err("flows = [\"in_port=zz9,actions=drop\"]\n[[ports]]\nname = \"a0\"\n");
    assert!(e.contains("unknown port `zz9`"), "{e}");
}

#[test]
fn a_bad_flow_in_the_flow_file_names_that_file_and_line() {
    let d = TempDir::new("flowfile");
    std::fs::write(
        d.0.join("f.txt"),
        "# comment\n\npriority=5,actions=drop\n   tcp,tp_dst=99999,actions=drop\n",
    )
    .unwrap();
    std::fs::write(d.0.join("x.toml"), "flows_file = \"f.txt\"\n").unwrap();
    let e = Config::load(&d.0.join("x.toml")).unwrap_err();
    let s = e.to_string();
    let want = format!("{}:4:8: flow 2:", d.0.join("f.txt").display());
    assert!(s.starts_with(&want), "{s}");
    assert!(s.contains("tp_dst"), "{s}");
    assert_eq!(e.line(), Some(4));
}

#[test]
fn a_missing_flow_file_is_refused_at_the_key() {
    let e = err("\nflows_file = \"no-such-flows.txt\"\n");
    assert!(e.starts_with("<config>:2:14:"), "{e}");
    assert!(e.contains("no-such-flows.txt: cannot read"), "{e}");
}

#[test]
fn flags_add_ports_and_override_cpus_socket_metrics_and_mode() {
    let mut c = parse(
        "pmd_cpus = \"0\"\nhelper_cpus = \"1\"\nsocket = \"/tmp/a.sock\"\n\
         [[ports]]\nname = \"a0\"\nofport = 2\n",
    )
    .unwrap();
    assert_eq!(c.helper_cpus.as_deref(), Some("1"));
    c.merge_flags(&FlagOverrides {
        ports: vec!["b0".into(), "c0".into()],
        pmd_cpus: Some("0-1".into()),
        helper_cpus: Some("0".into()),
        socket: Some("/tmp/b.sock".into()),
        metrics: Some("127.0.0.1:9100".parse().unwrap()),
        mode: Some(XdpMode::Generic),
    })
    .unwrap();
    let ports: Vec<(&str, u32)> = c
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.ofport))
        .collect();
    assert_eq!(ports, vec![("a0", 2), ("b0", 1), ("c0", 3)]);
    assert_eq!(c.pmd_cpus.as_deref(), Some("0-1"));
    assert_eq!(c.helper_cpus.as_deref(), Some("0"));
    assert_eq!(c.socket.as_deref(), Some(Path::new("/tmp/b.sock")));
    assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(c.mode_of(&c.ports[1]), XdpMode::Generic);
}

#[test]
fn a_flag_port_already_in_the_file_is_refused_and_changes_nothing() {
    let mut c = parse("[[ports]]\nname = \"a0\"\n").unwrap();
    let before = c.clone();
    let e = c
        .merge_flags(&FlagOverrides {
            ports: vec!["b0".into(), "a0".into()],
            pmd_cpus: Some("0".into()),
            ..FlagOverrides::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("--port a0"), "{e}");
    assert_eq!(c, before);
    let e = c
        .merge_flags(&FlagOverrides {
            pmd_cpus: Some("x".into()),
            ..FlagOverrides::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("bad CPU list"), "{e}");
    assert_eq!(c, before);
    let e = c
        .merge_flags(&FlagOverrides {
            ports: vec!["b0".into()],
            helper_cpus: Some("1-0".into()),
            ..FlagOverrides::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("\"1-0\" runs backwards"), "{e}");
    assert_eq!(c, before);
}
