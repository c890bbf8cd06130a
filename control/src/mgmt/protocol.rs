//! The request and response types of the management protocol (see the
//! module docs of [`crate::mgmt`] for the wire format).

use serde::{Deserialize, Serialize};

/// One request: a JSON object tagged by `cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is a daemon there? (Answers `"pong"`.)
    Ping,
    /// `port add IFNAME [--mode M] [--ofport N]`.
    PortAdd {
        /// The interface.
        ifname: String,
        /// `auto`, `native` or `generic` (default: the daemon's default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// The OpenFlow port number (default: the lowest free one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ofport: Option<u32>,
    },
    /// `port del IFNAME|OFPORT`.
    PortDel {
        /// A configured port's name, or its ofport.
        port: String,
    },
    /// `port list`.
    PortList,
    /// `flow add`: one flow, or many lines in flow-file format.
    FlowAdd {
        /// The flow text.
        flows: String,
    },
    /// `flow del ['MATCH'] [--strict]`.
    FlowDel {
        /// The match (`None`: every flow).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
        /// Exact match and priority.
        #[serde(default)]
        strict: bool,
    },
    /// `flow dump`.
    FlowDump,
    /// `fdb show`.
    FdbShow,
    /// `stats`.
    Stats,
    /// `trace 'FLOW'`.
    Trace {
        /// The packet, in flow syntax (`in_port=1,dl_src=..`).
        flow: String,
    },
}

impl Request {
    /// The request's `cmd` tag (for logs).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::PortAdd { .. } => "port_add",
            Request::PortDel { .. } => "port_del",
            Request::PortList => "port_list",
            Request::FlowAdd { .. } => "flow_add",
            Request::FlowDel { .. } => "flow_del",
            Request::FlowDump => "flow_dump",
            Request::FdbShow => "fdb_show",
            Request::Stats => "stats",
            Request::Trace { .. } => "trace",
        }
    }
}

/// A successful answer: the structured result and its text rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// What `--json` prints.
    pub result: serde_json::Value,
    /// What the CLI prints otherwise (may be empty).
    pub text: String,
}

impl Reply {
    /// A reply from any serialisable result and its text.
    pub fn new(result: &impl Serialize, text: impl Into<String>) -> Reply {
        Reply {
            // Plain data with string keys: serialisation cannot fail.
            result: serde_json::to_value(result).unwrap_or(serde_json::Value::Null),
            text: text.into(),
        }
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success?
    pub ok: bool,
    /// The result (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The text rendering (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The one-line error (failure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// The response for a handler's outcome.
    pub fn from_result(r: Result<Reply, String>) -> Response {
        match r {
            Ok(rep) => Response {
                ok: true,
                result: Some(rep.result),
                text: Some(rep.text),
                error: None,
            },
            Err(e) => Response::error(e),
        }
    }

    /// A failure; line breaks in `e` become "; " so it stays one line.
    pub fn error(e: impl Into<String>) -> Response {
        let e: String = e.into();
        let e = e
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Response {
            ok: false,
            result: None,
            text: None,
            error: Some(e),
        }
    }

    /// The response as one JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode the response"}"#.into())
    }

    /// Back to a handler outcome (the client side).
    pub fn into_result(self) -> Result<Reply, String> {
        if self.ok {
            Ok(Reply {
                result: self.result.unwrap_or(serde_json::Value::Null),
                text: self.text.unwrap_or_default(),
            })
        } else {
            Err(self
                .error
                .unwrap_or_else(|| "the daemon reported an error without a message".into()))
        }
    }
}

/// `port add`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAdded {
    /// The interface.
    pub name: String,
    /// Its OpenFlow port number.
    pub ofport: u32,
    /// How the XDP program is attached (`native`/`generic`; empty for a
    /// device without one).
    pub mode: String,
}

/// `port del`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDeleted {
    /// The interface.
    pub name: String,
    /// The OpenFlow port number it had.
    pub ofport: u32,
}

/// One row of `port list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRow {
    /// The interface name (follows renames).
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// True when a device carries the port and it is in the datapath.
    pub attached: bool,
    /// The XDP mode asked for (`auto`, `native`, `generic`).
    pub mode: String,
    /// The mode the program is attached in (attached ports only).
    pub xdp: Option<String>,
    /// The device's index (attached ports only).
    pub ifindex: Option<u32>,
    /// `registered` (false while the port unregisters).
    pub registered: bool,
    /// Administratively up.
    pub admin_up: bool,
    /// IFF_RUNNING.
    pub running: bool,
    /// Carrier.
    pub carrier: bool,
    /// Usable tx queues.
    pub tx_queues: u32,
    /// Why the last attach failed (detached ports).
    pub error: Option<String>,
}

/// One row of `flow dump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRow {
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// The match in flow syntax (empty: every packet).
    #[serde(rename = "match")]
    pub matcher: String,
    /// The actions in flow syntax.
    pub actions: String,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Seconds since install.
    pub duration_secs: f64,
    /// Idle timeout (0: none).
    pub idle_timeout: u16,
    /// Hard timeout (0: none).
    pub hard_timeout: u16,
}

/// One row of `fdb show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRow {
    /// The station's MAC address.
    pub mac: String,
    /// VLAN (0: untagged).
    pub vlan: u16,
    /// The port it was learned on.
    pub port: u32,
    /// Seconds since it was last seen.
    pub age_secs: u32,
}

/// `trace`'s result (DESIGN.md: `rule`, `actions`, `outputs`, `dropped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReport {
    /// The matched rule in flow syntax, or `None` (no rules installed: the
    /// learning bridge; or a table miss).
    pub rule: Option<String>,
    /// The actions that ran, one string each.
    pub actions: Vec<String>,
    /// The ofports the packet would leave by.
    pub outputs: Vec<u32>,
    /// Why the packet would not leave at all, or `None`.
    pub dropped: Option<String>,
    /// Outputs refused by a port check: `[ofport, reason]`.
    pub output_drops: Vec<(u32, String)>,
}
