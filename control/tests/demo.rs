//! The README's main command runs this demo; it must show the packet walk
//! doing what it says.

#[test]
fn demo_shows_learning_flows_trace_and_carrier_drop() {
    let mut out = Vec::new();
    control::demo::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
            .to_string()
    };
    assert!(line("h1 ARP who-has").ends_with("-> h2, h3"));
    assert!(line("h2 ARP reply").ends_with("-> h1"));
    assert!(line("h1 UDP to h2 (h2 learned)").ends_with("-> h2"));
    assert!(line("h1 UDP to h2 port 53").contains("dropped: action_drop x1"));
    assert!(line("h1 UDP to h3 with TTL 1").contains("dropped: ttl_expired x1"));
    assert!(line("h1 UDP to h3  ").contains("dropped: no_carrier x1"));
    assert!(line("h1 UDP to h3 (carrier back)").ends_with("-> h3"));
    assert!(line("dropped:").contains("no"));
    assert!(text.contains("dropped: no_carrier\n"));
    assert!(text
        .contains("n_packets=1, n_bytes=64, idle_age=0, priority=300,udp,tp_dst=53 actions=drop"));
    assert!(text.contains("accounting balanced: true"));
}
