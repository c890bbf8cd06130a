//! The chaos harness's HTTP server and load generator on real namespaces:
//! requests succeed over a veth, and a load whose namespace is deleted
//! under it stops promptly and lets the namespace die.
//!
//! Privileged (network namespaces); skipped with a message when not root.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use control::chaos::http::{ensure_fd_limit, HttpLoad, HttpServer, BODY_LEN};
use control::topo::{have_privileges, Netns, Side, Veth, VethOpts};

const SERVER_IP: [u8; 4] = [10, 201, 0, 1];

/// A server namespace and a client namespace joined by a veth, with
/// addresses; `None` (test skipped) without root.
fn two_hosts() -> Option<(Netns, Netns, Veth)> {
    if !have_privileges() {
        eprintln!("skipped: needs root (network namespaces)");
        return None;
    }
    let server = Netns::create("hsrv").expect("server netns");
    let client = Netns::create("hcli").expect("client netns");
    let veth = Veth::create(
        "hs",
        Side::In(&server),
        "hc",
        Side::In(&client),
        VethOpts::default(),
    )
    .expect("veth");
    server
        .ip(&["addr", "add", "10.201.0.1/24", "dev", veth.a()])
        .expect("server address");
    client
        .ip(&["addr", "add", "10.201.0.2/24", "dev", veth.b()])
        .expect("client address");
    Some((server, client, veth))
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn load_over_a_veth_gets_every_response_it_asks_for() {
    let Some((server_ns, client_ns, _veth)) = two_hosts() else {
        return;
    };
    let addr = SocketAddrV4::new(SERVER_IP.into(), 8080);
    let server = HttpServer::start_in(server_ns.name(), addr).expect("server");
    let load = HttpLoad::start_in(client_ns.name(), addr, 200).expect("load");
    assert!(
        wait_for(Duration::from_secs(10), || load.counts().ok >= 500),
        "only {:?} after 10 s",
        load.counts()
    );
    let report = load.stop();
    let served = server.stop();
    let c = report.counts;
    assert_eq!(c.failed, 0, "{report:?}");
    assert_eq!(c.timed_out, 0, "{report:?}");
    assert!(c.bytes >= c.ok * BODY_LEN as u64, "{report:?}");
    // Every ok was a 200 the server finished; the aborted ones may
    // have been finished by the server too.
    assert!(served.served >= c.ok, "{served:?} {report:?}");
    assert!(served.served <= c.ok + c.aborted, "{served:?} {report:?}");
    assert_eq!(served.rejected, 0);
    assert!(report.stop_took < Duration::from_secs(2), "{report:?}");
}

#[test]
fn load_from_a_deleted_namespace_stops_promptly_and_lets_it_die() {
    let Some((server_ns, client_ns, veth)) = two_hosts() else {
        return;
    };
    ensure_fd_limit(2 * 3000 + 512).expect("open-file limit");
    let addr = SocketAddrV4::new(SERVER_IP.into(), 8080);
    let server = HttpServer::start_in(server_ns.name(), addr).expect("server");
    let load = HttpLoad::start_in(client_ns.name(), addr, 3000).expect("load");
    assert!(
        wait_for(Duration::from_secs(10), || load.counts().ok >= 1000),
        "only {:?} after 10 s",
        load.counts()
    );
    let client_name = client_ns.name().to_string();
    client_ns.delete().expect("ip netns del");
    // The name is gone; the namespace lives on while the load is in it.
    assert!(!std::path::Path::new("/run/netns")
        .join(&client_name)
        .exists());
    assert!(server_ns.ip(&["link", "show", veth.a()]).is_ok());
    let report = load.stop();
    assert!(report.stop_took < Duration::from_secs(2), "{report:?}");
    assert!(report.counts.ok >= 1000, "{report:?}");
    // Once the load's threads and sockets are gone the namespace dies
    // and takes the veth pair with it.
    assert!(
        wait_for(Duration::from_secs(10), || server_ns
            .ip(&["link", "show", veth.a()])
            .is_err()),
        "veth {} still present 10 s after the load stopped",
        veth.a()
    );
    let counts = server.stop();
    assert!(counts.served >= report.counts.ok, "{counts:?} {report:?}");
}
