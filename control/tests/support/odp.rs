//! Reading `ovs-appctl ofproto/trace` output.
//!
//! The parts the differential test relies on:
//!
//! ```text
//! Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=...      <- OVS's view of the packet
//!
//! bridge("br0")
//! -------------
//!  0. udp, priority 70                                 <- matched rule ("No match." on a miss)
//!     mod_nw_src:1.2.3.4
//!     output:2
//!
//! Final flow: ...
//! Megaflow: ...
//! Datapath actions: set(ipv4(src=1.2.3.4)),2,set(eth(dst=00:00:00:00:00:09)),3
//! ```
//!
//! `Datapath actions` is a comma-separated list (commas inside parentheses
//! belong to the action): datapath port numbers, `drop`, `set(LAYER(k=v,...))`,
//! `push_vlan(vid=..,pcp=..)`, `pop_vlan`, `userspace(...)` (the packet would
//! go to the controller, e.g. the `dec_ttl` exception).

use std::collections::HashMap;

/// One datapath action, with ports already mapped to OpenFlow numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OdpAction {
    /// Output to OpenFlow port N.
    Output(u32),
    /// Output to the bridge's LOCAL port (xswitch has none).
    Local,
    /// `set(LAYER(k=v,...))`, e.g. layer `eth`, fields `[("src", "..")]`.
    /// A masked value keeps its `/mask` suffix.
    Set {
        layer: String,
        fields: Vec<(String, String)>,
    },
    /// `push_vlan(vid=V,pcp=P)` (optionally `tpid=`).
    PushVlan { tpid: u16, vid: u16, pcp: u8 },
    /// `pop_vlan`.
    PopVlan,
    /// `userspace(...)`: to the controller (no port).
    Userspace(String),
    /// Anything else, verbatim.
    Other(String),
}

/// A parsed trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsTrace {
    /// The `Flow:` line: how OVS understood the packet.
    pub flow: String,
    /// Priority of the rule table 0 matched; `None` on a table miss.
    pub rule_priority: Option<u16>,
    /// The datapath actions, in order (`drop` is the empty list).
    pub actions: Vec<OdpAction>,
    /// The translation ran NORMAL (which, in OVS, may have learned a MAC).
    pub ran_normal: bool,
    /// The whole text, for failure reports.
    pub raw: String,
}

impl OvsTrace {
    /// OpenFlow ports the packet leaves by, in order, LOCAL excluded.
    pub fn outputs(&self) -> Vec<u32> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                OdpAction::Output(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    /// The trace's last lines (rule, actions), for a compact report.
    pub fn summary(&self) -> String {
        let start = self.raw.find("bridge(").unwrap_or(0);
        self.raw[start..]
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("---"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Splits at commas that are not inside parentheses.
pub fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

fn parse_kv_list(s: &str) -> Vec<(String, String)> {
    split_top_level(s)
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses one datapath action.
pub fn parse_odp_action(
    a: &str,
    dp_to_ofport: &HashMap<u32, u32>,
    dp_local: u32,
) -> Result<OdpAction, String> {
    if let Ok(dp) = a.parse::<u32>() {
        if dp == dp_local {
            return Ok(OdpAction::Local);
        }
        return dp_to_ofport
            .get(&dp)
            .map(|&of| OdpAction::Output(of))
            .ok_or_else(|| format!("datapath port {dp} is not in dpif/show"));
    }
    if a == "pop_vlan" {
        return Ok(OdpAction::PopVlan);
    }
    if let Some(body) = a.strip_prefix("set(").and_then(|r| r.strip_suffix(')')) {
        // Also `masked_set(...)`-free here: OVS prints masks inline (tos=0x10/0xfc).
        let open = body
            .find('(')
            .ok_or_else(|| format!("bad set action `{a}`"))?;
        let layer = body[..open].to_string();
        let inner = body[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("bad set action `{a}`"))?;
        return Ok(OdpAction::Set {
            layer,
            fields: parse_kv_list(inner),
        });
    }
    if let Some(body) = a
        .strip_prefix("push_vlan(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let mut tpid = 0x8100u16;
        let mut vid = None;
        let mut pcp = 0u8;
        for (k, v) in parse_kv_list(body) {
            let n = parse_num(&v).ok_or_else(|| format!("bad number in `{a}`"))?;
            match k.as_str() {
                "tpid" => tpid = n as u16,
                "vid" => vid = Some(n as u16),
                "pcp" => pcp = n as u8,
                _ => {}
            }
        }
        let vid = vid.ok_or_else(|| format!("push_vlan without vid: `{a}`"))?;
        return Ok(OdpAction::PushVlan { tpid, vid, pcp });
    }
    if a.starts_with("userspace(") {
        return Ok(OdpAction::Userspace(a.to_string()));
    }
    Ok(OdpAction::Other(a.to_string()))
}

/// Parses a whole `ofproto/trace` output.
pub fn parse_trace(
    text: &str,
    dp_to_ofport: &HashMap<u32, u32>,
    dp_local: u32,
) -> Result<OvsTrace, String> {
    let flow = text
        .lines()
        .find_map(|l| l.strip_prefix("Flow: "))
        .ok_or("no `Flow:` line")?
        .to_string();

    // The first table-0 line: " 0. <match>, priority N[, cookie C]" or " 0. No match."
    let rule_line = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("0. "))
        .ok_or("no table 0 line")?;
    let rule_priority = if rule_line.starts_with("No match") {
        None
    } else {
        let at = rule_line
            .find("priority ")
            .ok_or_else(|| format!("no priority in `{rule_line}`"))?;
        let digits: String = rule_line[at + "priority ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(
            digits
                .parse::<u16>()
                .map_err(|_| format!("bad priority in `{rule_line}`"))?,
        )
    };

    let acts = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .ok_or("no `Datapath actions:` line")?
        .trim();
    let actions = if acts == "drop" {
        Vec::new()
    } else {
        split_top_level(acts)
            .into_iter()
            .map(|a| parse_odp_action(a, dp_to_ofport, dp_local))
            .collect::<Result<Vec<_>, _>>()?
    };

    // Translation steps are indented lines; NORMAL prints as "NORMAL".
    let ran_normal = text.lines().any(|l| l.trim() == "NORMAL");

    Ok(OvsTrace {
        flow,
        rule_priority,
        actions,
        ran_normal,
        raw: text.to_string(),
    })
}

/// Splits `value[/mask]`.
fn split_mask(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    }
}

fn parse_mac_bits(s: &str) -> Result<u64, String> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC `{s}`"))?;
    if bytes.len() != 6 {
        return Err(format!("bad MAC `{s}`"));
    }
    Ok(bytes.iter().fold(0u64, |a, b| (a << 8) | *b as u64))
}

/// A `set(...)` field value as raw bits: number, IPv4, IPv6 or MAC.
fn parse_bits(s: &str) -> Result<u128, String> {
    if let Ok(a) = s.parse::<core::net::Ipv4Addr>() {
        return Ok(u32::from(a) as u128);
    }
    if let Ok(a) = s.parse::<core::net::Ipv6Addr>() {
        return Ok(u128::from(a));
    }
    if s.len() == 17 && s.as_bytes().get(2) == Some(&b':') {
        return parse_mac_bits(s).map(u128::from);
    }
    parse_num(s)
        .map(u128::from)
        .ok_or_else(|| format!("bad value `{s}`"))
}

/// The packets OVS's datapath actions emit, replayed on a `FlowKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// For every output (LOCAL excluded): the port and the packet's key as
    /// it leaves.
    pub outputs: Vec<(u32, dataplane::flow_key::FlowKey)>,
    /// Datapath actions deliberately not replayed (see [`replay_on_key`]).
    pub ignored: Vec<String>,
}

/// Replays OVS's datapath actions on `start` (see [`Replay`]). Fails on an
/// action this replay does not model.
///
/// One deliberate exception: OVS 3.1 turns `mod_tp_src`/`mod_tp_dst` on an
/// ICMP or ICMPv6 packet into `set(icmp(type=..,code=..))` (the low 8 bits
/// of the port), while ovs-actions(7) documents those actions as setting
/// "the TCP or UDP or SCTP" port and says an action inconsistent with the
/// packet is a no-op. The replay follows the documentation: such sets are
/// listed in [`Replay::ignored`] and not applied.
pub fn replay_on_key(
    actions: &[OdpAction],
    start: &dataplane::flow_key::FlowKey,
) -> Result<Replay, String> {
    use dataplane::flow_key::{field, VLAN_CFI, VLAN_PCP_SHIFT};
    let mut k = *start;
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for a in actions {
        match a {
            OdpAction::Output(p) => out.push((*p, k)),
            OdpAction::Set { layer, fields } if layer == "icmp" || layer == "icmpv6" => {
                let f: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                ignored.push(format!("set({layer}({}))", f.join(",")));
            }
            OdpAction::Local | OdpAction::Userspace(_) => {}
            OdpAction::PopVlan => {
                let inner = k.vlan_tci2();
                k.set_vlan_tci(inner);
                k.set_vlan_tci2(0);
            }
            OdpAction::PushVlan { tpid, vid, pcp } => {
                // A key does not record TPIDs: 802.1Q and 802.1ad tags
                // extract alike.
                if *tpid != 0x8100 && *tpid != 0x88a8 {
                    return Err(format!("push_vlan with tpid 0x{tpid:04x} is not modelled"));
                }
                let outer = k.vlan_tci();
                k.set_vlan_tci2(outer);
                k.set_vlan_tci(VLAN_CFI | (*pcp as u16) << VLAN_PCP_SHIFT | (*vid & 0xfff));
            }
            OdpAction::Set { layer, fields } => {
                for (name, value) in fields {
                    let (v, m) = split_mask(value);
                    let v = parse_bits(v)?;
                    let m = m.map(parse_bits).transpose()?;
                    let pos = match (layer.as_str(), name.as_str()) {
                        ("eth", "src") => field::DL_SRC,
                        ("eth", "dst") => field::DL_DST,
                        ("ipv4", "src") => field::NW_SRC,
                        ("ipv4", "dst") => field::NW_DST,
                        ("ipv4" | "ipv6", "proto") => field::NW_PROTO,
                        ("ipv4", "tos") | ("ipv6", "tclass") => field::NW_TOS,
                        ("ipv4", "ttl") | ("ipv6", "hlimit") => field::NW_TTL,
                        ("ipv6", "label") => field::IPV6_LABEL,
                        ("tcp" | "udp", "src") => field::TP_SRC,
                        ("tcp" | "udp", "dst") => field::TP_DST,
                        ("ipv6", "src" | "dst") => {
                            let (hi, lo) = if name == "src" {
                                (field::IPV6_SRC_HI, field::IPV6_SRC_LO)
                            } else {
                                (field::IPV6_DST_HI, field::IPV6_DST_LO)
                            };
                            let m = m.unwrap_or(u128::MAX);
                            let old = (k.get(hi) as u128) << 64 | k.get(lo) as u128;
                            let new = (old & !m) | (v & m);
                            k.set(hi, (new >> 64) as u64);
                            k.set(lo, new as u64);
                            continue;
                        }
                        _ => {
                            return Err(format!(
                                "set({layer}({name}=...)) is not modelled by the replay"
                            ))
                        }
                    };
                    let width = if pos.bits == 64 {
                        u64::MAX
                    } else {
                        (1u64 << pos.bits) - 1
                    };
                    let m = m.map_or(width, |m| m as u64 & width);
                    let new = (k.get(pos) & !m) | (v as u64 & m);
                    k.set(pos, new);
                }
            }
            OdpAction::Other(s) => return Err(format!("datapath action `{s}` is not modelled")),
        }
    }
    Ok(Replay {
        outputs: out,
        ignored,
    })
}
