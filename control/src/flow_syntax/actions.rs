//! The action list after `actions=`.
//!
//! Actions are separated like match tokens (commas or whitespace, outside
//! parentheses). An action is `name`, `name:arg` (also `name=arg` or
//! `name(arg)`), a bare port number (`2` = `output:2`) or a bare port name.
//! Action and reserved-port names are case-insensitive (`NORMAL`, `Output:2`),
//! as in `ovs-ofctl`. An empty list, or `drop` alone, drops.
//!
//! The OpenFlow 1.0 `mod_*` actions carry no prerequisite (they do nothing
//! to packets that lack the header, as in OVS); `set_field` is checked
//! against the match as `ovs-ofctl` does (`set_field:1.2.3.4->ip_src` needs
//! `ip`). `set_field` forms are stored as the equivalent `mod_*` action and
//! printed that way, as `ovs-ofctl` prints them for OpenFlow 1.0.

use super::error::{ErrorKind, FlowSyntaxError};
use super::fields::{later_fragment, parse_port, PortRef, PortResolver, Prereq};
use super::lex::{next_token, Tok};
use super::value::{parse_ipv4, parse_mac, parse_u64};
use dataplane::actions::Action;
use dataplane::flow_key::{ethertype, FlowMatch, VLAN_VID_MASK};

/// Open vSwitch actions xswitch does not implement, for a better error.
const OVS_ONLY_ACTIONS: &[&str] = &[
    "resubmit",
    "learn",
    "ct",
    "ct_clear",
    "enqueue",
    "set_queue",
    "pop_queue",
    "set_tunnel",
    "set_tunnel64",
    "load",
    "move",
    "note",
    "group",
    "meter",
    "goto_table",
    "write_actions",
    "clear_actions",
    "write_metadata",
    "multipath",
    "bundle",
    "bundle_load",
    "mod_nw_ecn",
    "mod_nw_ttl",
    "set_mpls_label",
    "push_mpls",
    "pop_mpls",
    "dec_mpls_ttl",
    "sample",
    "clone",
    "check_pkt_larger",
    "exit",
    "fin_timeout",
    "conjunction",
    "output_trunc",
    "encap",
    "decap",
    "nat",
    "mod_vlan_vid_stack",
];

/// Splits an action token into lower-cased name and optional argument.
fn split_action(tok: &str) -> (String, Option<&str>, bool) {
    let end = tok.find([':', '=', '(']).unwrap_or(tok.len());
    let name = tok[..end].to_ascii_lowercase();
    let rest = &tok[end..];
    let by_eq = rest.starts_with('=');
    let arg = if let Some(inner) = rest.strip_prefix('(') {
        Some(inner.strip_suffix(')').unwrap_or(inner))
    } else {
        rest.get(1..)
    };
    (name, arg, by_eq)
}

/// Parses the text after `actions=` (starting at byte `start` of `text`).
///
/// `m` is the finished match (for `set_field` prerequisites);
/// `is_match_word` says whether a word is a match field, shorthand or flow
/// keyword, to report "actions must come last" instead of "unknown action".
pub(super) fn parse_actions(
    text: &str,
    start: usize,
    m: &FlowMatch,
    ports: PortResolver<'_>,
    is_match_word: &dyn Fn(&str) -> bool,
) -> Result<Vec<Action>, FlowSyntaxError> {
    let mut out = Vec::new();
    let mut drop_tok: Option<Tok<'_>> = None;
    let mut other_seen = false;
    let mut pos = start;
    while let Some(tok) = next_token(text, &mut pos) {
        let err = |kind| FlowSyntaxError::at(text, tok.off, tok.text, kind);
        let (name, arg, by_eq) = split_action(tok.text);
        let misplaced_field = by_eq && is_match_word(&name);
        let misplaced_word = arg.is_none() && !is_action_name(&name) && is_match_word(tok.text);
        if misplaced_field || misplaced_word {
            return Err(err(ErrorKind::ActionsNotLast));
        }
        if name == "drop" && arg.is_none() {
            drop_tok.get_or_insert(tok);
            continue;
        }
        let action = parse_one(&name, arg, tok.text, m, ports).map_err(err)?;
        other_seen = true;
        out.push(action);
    }
    match drop_tok {
        Some(t) if other_seen => Err(FlowSyntaxError::at(
            text,
            t.off,
            t.text,
            ErrorKind::DropNotAlone,
        )),
        _ => Ok(out),
    }
}

fn is_action_name(name: &str) -> bool {
    matches!(
        name,
        "drop"
            | "output"
            | "in_port"
            | "normal"
            | "flood"
            | "all"
            | "local"
            | "controller"
            | "mod_dl_src"
            | "mod_dl_dst"
            | "mod_vlan_vid"
            | "mod_vlan_pcp"
            | "strip_vlan"
            | "pop_vlan"
            | "push_vlan"
            | "mod_nw_src"
            | "mod_nw_dst"
            | "mod_nw_tos"
            | "mod_tp_src"
            | "mod_tp_dst"
            | "dec_ttl"
            | "set_field"
    )
}

fn no_arg(name: &str, arg: Option<&str>, a: Action) -> Result<Action, ErrorKind> {
    match arg {
        None => Ok(a),
        Some(_) => Err(ErrorKind::Invalid(format!("`{name}` takes no argument"))),
    }
}

fn need_arg<'a>(name: &str, arg: Option<&'a str>) -> Result<&'a str, ErrorKind> {
    match arg {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(ErrorKind::MissingArgument {
            action: name.into(),
        }),
    }
}

fn number(name: &str, s: &str, max: u64, range: &'static str) -> Result<u64, ErrorKind> {
    let v = parse_u64(s).map_err(|e| ErrorKind::Invalid(format!("{name}: {e}")))?;
    if v > max {
        return Err(ErrorKind::OutOfRange {
            field: name.into(),
            value: v,
            range,
        });
    }
    Ok(v)
}

fn tos(name: &str, v: u64) -> Result<u8, ErrorKind> {
    if v & 3 != 0 {
        return Err(ErrorKind::TosNotMultipleOf4 {
            field: name.into(),
            value: v,
            dscp: v >> 2,
        });
    }
    Ok(v as u8)
}

fn port_action(p: PortRef) -> Action {
    match p {
        PortRef::Number(n) => Action::Output(n),
        PortRef::InPort => Action::InPort,
        PortRef::Normal => Action::Normal,
        PortRef::Flood => Action::Flood,
        PortRef::All => Action::All,
    }
}

fn parse_one(
    name: &str,
    arg: Option<&str>,
    token: &str,
    m: &FlowMatch,
    ports: PortResolver<'_>,
) -> Result<Action, ErrorKind> {
    let mac =
        |s: &str| parse_mac(s).ok_or_else(|| ErrorKind::Invalid("invalid Ethernet address".into()));
    let ip =
        |s: &str| parse_ipv4(s).ok_or_else(|| ErrorKind::Invalid("invalid IPv4 address".into()));
    Ok(match name {
        "output" => port_action(parse_port(need_arg(name, arg)?, ports)?),
        "in_port" => no_arg(name, arg, Action::InPort)?,
        "normal" => no_arg(name, arg, Action::Normal)?,
        "flood" => no_arg(name, arg, Action::Flood)?,
        "all" => no_arg(name, arg, Action::All)?,
        "local" | "controller" => {
            return Err(ErrorKind::NoSuchReservedPort {
                name: name.to_ascii_uppercase(),
            })
        }
        "mod_dl_src" => Action::SetDlSrc(mac(need_arg(name, arg)?)?),
        "mod_dl_dst" => Action::SetDlDst(mac(need_arg(name, arg)?)?),
        "mod_vlan_vid" => {
            Action::SetVlanVid(number(name, need_arg(name, arg)?, 4095, "0..=4095")? as u16)
        }
        "mod_vlan_pcp" => Action::SetVlanPcp(number(name, need_arg(name, arg)?, 7, "0..=7")? as u8),
        "strip_vlan" | "pop_vlan" => no_arg(name, arg, Action::StripVlan)?,
        "push_vlan" => {
            let t = number(name, need_arg(name, arg)?, 0xffff, "0x8100 or 0x88a8")?;
            if t != u64::from(ethertype::VLAN) && t != u64::from(ethertype::QINQ) {
                return Err(ErrorKind::Invalid(format!(
                    "push_vlan takes ethertype 0x8100 or 0x88a8, not {t:#x}"
                )));
            }
            Action::PushVlan(t as u16)
        }
        "mod_nw_src" => Action::SetNwSrc(ip(need_arg(name, arg)?)?),
        "mod_nw_dst" => Action::SetNwDst(ip(need_arg(name, arg)?)?),
        "mod_nw_tos" => Action::SetNwTos(tos(
            name,
            number(name, need_arg(name, arg)?, 0xff, "0..=255")?,
        )?),
        "mod_tp_src" => {
            Action::SetTpSrc(number(name, need_arg(name, arg)?, 0xffff, "0..=65535")? as u16)
        }
        "mod_tp_dst" => {
            Action::SetTpDst(number(name, need_arg(name, arg)?, 0xffff, "0..=65535")? as u16)
        }
        "dec_ttl" => match arg {
            None => Action::DecTtl,
            Some(_) => {
                return Err(ErrorKind::Invalid(
                    "`dec_ttl` takes no argument (controller ids are not supported)".into(),
                ))
            }
        },
        "set_field" => set_field(need_arg(name, arg)?, m)?,
        _ if arg.is_none() && token.starts_with(|c: char| c.is_ascii_digit()) => {
            port_action(parse_port(token, ports)?)
        }
        _ => {
            if arg.is_none() && ports(token).is_some() {
                return Ok(port_action(parse_port(token, ports)?));
            }
            let hint = if OVS_ONLY_ACTIONS.contains(&name) {
                " (an Open vSwitch action xswitch does not support)"
            } else if arg.is_none() {
                " (nor a known port name)"
            } else {
                ""
            };
            return Err(ErrorKind::UnknownAction {
                name: name.into(),
                hint,
            });
        }
    })
}

/// `set_field:VALUE->FIELD` for the fields that map onto an xswitch action.
fn set_field(arg: &str, m: &FlowMatch) -> Result<Action, ErrorKind> {
    let Some((value, field)) = arg.rsplit_once("->") else {
        return Err(ErrorKind::Invalid(
            "set_field is written set_field:VALUE->FIELD".into(),
        ));
    };
    if value.contains('/') {
        return Err(ErrorKind::Invalid(
            "masked set_field is not supported".into(),
        ));
    }
    let mac =
        |s: &str| parse_mac(s).ok_or_else(|| ErrorKind::Invalid("invalid Ethernet address".into()));
    let ip =
        |s: &str| parse_ipv4(s).ok_or_else(|| ErrorKind::Invalid("invalid IPv4 address".into()));
    let (action, pre) = match field {
        "eth_src" | "dl_src" => (Action::SetDlSrc(mac(value)?), Prereq::None),
        "eth_dst" | "dl_dst" => (Action::SetDlDst(mac(value)?), Prereq::None),
        "vlan_vid" => {
            // OpenFlow 1.2+ writes the VID with the "present" bit (0x1000).
            let v = number(field, value, 0x1fff, "0..=4095, optionally | 0x1000")?;
            (
                Action::SetVlanVid((v as u16) & VLAN_VID_MASK),
                Prereq::VlanTag,
            )
        }
        "vlan_pcp" => (
            Action::SetVlanPcp(number(field, value, 7, "0..=7")? as u8),
            Prereq::VlanTag,
        ),
        "ip_src" | "nw_src" => (Action::SetNwSrc(ip(value)?), Prereq::Ipv4),
        "ip_dst" | "nw_dst" => (Action::SetNwDst(ip(value)?), Prereq::Ipv4),
        "ip_dscp" => (
            Action::SetNwTos((number(field, value, 63, "0..=63")? as u8) << 2),
            Prereq::IpAny,
        ),
        "nw_tos" => (
            Action::SetNwTos(tos(field, number(field, value, 0xff, "0..=255")?)?),
            Prereq::IpAny,
        ),
        "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" | "tp_src" | "tp_dst" => {
            let v = number(field, value, 0xffff, "0..=65535")? as u16;
            let pre = match &field[..3] {
                "tcp" => Prereq::Tcp,
                "udp" => Prereq::Udp,
                _ => Prereq::TcpOrUdp,
            };
            let a = if field.ends_with("_src") {
                Action::SetTpSrc(v)
            } else {
                Action::SetTpDst(v)
            };
            (a, pre)
        }
        _ => {
            return Err(ErrorKind::Invalid(format!(
                "set_field to `{field}` is not supported (supported: eth_src, eth_dst, \
                 vlan_vid, vlan_pcp, ip_src, ip_dst, ip_dscp, nw_tos, tcp_src, tcp_dst, \
                 udp_src, udp_dst)"
            )))
        }
    };
    if !pre.met_by(m) {
        let (needs, example) = pre.describe();
        return Err(ErrorKind::ActionPrerequisite {
            field: field.into(),
            needs,
            example,
        });
    }
    if pre.is_l4() && later_fragment(m) {
        return Err(ErrorKind::L4OnLaterFragment {
            field: format!("set_field:...->{field}"),
        });
    }
    Ok(action)
}
