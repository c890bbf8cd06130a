//! The `ovs-ofctl` flow syntax: parser, printer, and errors that point at
//! the token.
//!
//! # What
//! xswitch reads and writes flows in the syntax of `ovs-ofctl(8)`,
//! `ovs-fields(7)` and `ovs-actions(7)`, restricted to what the dataplane
//! implements, so an existing OVS flow file works unchanged and dump output
//! looks like `ovs-ofctl dump-flows`. Three entry points serve the CLI:
//!
//! | command | entry point | result |
//! |---|---|---|
//! | `flow add` | [`parse_flow`] | [`RuleSpec`] (`actions=` required, last) |
//! | `flow del`, `flow dump` | [`parse_flow_filter`] | [`FlowFilter`] (no actions) |
//! | `trace` | [`parse_packet`] | [`FlowKey`] (exact values, no masks) |
//!
//! and four printers: [`format_match`], [`format_actions`], [`format_flow`]
//! (add-flow text) and [`format_dump_flow`] (a dump-flows line).
//!
//! # Syntax in one paragraph
//! Tokens are separated by commas and/or whitespace. A token is a protocol
//! shorthand (`ip`, `ipv6`, `icmp`, `icmp6`/`icmpv6`, `tcp`, `tcp6`, `udp`,
//! `udp6`, `sctp`, `sctp6`, `arp`, `rarp`, `mpls`, `mplsm`), a match field
//! `name=value[/mask]` (see the field list in `fields.rs`; names are case
//! sensitive, OVS aliases such as `eth_src`, `ip_dst`, `tcp_src` accepted),
//! metadata (`priority`, `cookie`, `idle_timeout`, `hard_timeout`,
//! `table=0`), the read-only dump fields (`duration`, `n_packets`,
//! `n_bytes`, `idle_age`, `hard_age`, `reset_counts`; accepted and ignored so
//! dump output can be fed back), and finally `actions=` with the rest of the
//! text. Port names resolve through a caller-supplied [`PortResolver`];
//! numbers are used as they are (0..=65279; LOCAL and CONTROLLER do not
//! exist in xswitch and are rejected).
//!
//! # Invariants
//! * No input panics; every rejection is a [`FlowSyntaxError`] with the byte
//!   offset, the column and the token, and a message that says what to do.
//! * Every match field is checked against its OVS prerequisite (`nw_src`
//!   needs `ip` or `arp`, `tp_src` needs an L4 protocol, …). Where
//!   `ovs-ofctl` 3.1 silently drops such a field — widening the rule, so
//!   `nw_src=1.2.3.4,actions=drop` would drop *everything* — xswitch refuses.
//!   Likewise duplicated fields, values out of range (`dl_vlan=5000`,
//!   `nw_tos=3`, `10.0.0.300`) and misplaced `actions=` are errors here,
//!   where `ovs-ofctl` truncates or keeps the last value.
//! * Round trip: for every rule [`check_rule`] accepts, `parse_flow` of
//!   [`format_flow`] and of [`format_dump_flow`] (with or without stats)
//!   returns the identical [`RuleSpec`]. Everything the parser produces is
//!   accepted by [`check_rule`].
//!
//! # Locking
//! None: pure functions over strings, run on the control thread. The port
//! resolver is called synchronously and only during the call.
//!
//! # Why
//! Operators carry OVS flow files and muscle memory; matching its syntax
//! (and its printing, byte for byte where it is deterministic) makes xswitch
//! a drop-in. Errors that name the token turn "ovs-ofctl: unknown keyword"
//! style messages into something a user can fix in one try.

mod actions;
mod error;
mod fields;
mod format;
mod lex;
mod value;

pub use error::{ErrorKind, FlowSyntaxError};
pub use fields::{PortResolver, MAX_PORT};
pub use format::{
    check_match, check_rule, format_actions, format_dump_flow, format_flow, format_match, FlowStats,
};

use dataplane::actions::Action;
use dataplane::classifier::{filter_covers, RuleSpec, DEFAULT_PRIORITY};
use dataplane::flow_key::{FlowKey, FlowMatch, PortNo};
use fields::{col_of, shorthand, unknown_field_hint, Field, MatchBuilder, Origin};
use lex::{next_token, Tok};
use value::parse_u64;

/// A resolver that knows no port names (numbers still work).
pub fn no_port_names(_: &str) -> Option<PortNo> {
    None
}

/// What `del-flows` / `dump-flows` select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFilter {
    /// The match to compare rules against.
    pub matcher: FlowMatch,
    /// `Some` in strict mode: the priority a rule must have (the given one,
    /// or 32768 when none was given, as `ovs-ofctl --strict` does).
    pub priority: Option<u16>,
    /// `cookie=VALUE/MASK`: a rule is selected only if
    /// `rule.cookie & cookie_mask == cookie & cookie_mask` (mask 0: any).
    pub cookie: u64,
    /// See [`FlowFilter::cookie`].
    pub cookie_mask: u64,
}

impl FlowFilter {
    /// Does this filter select `rule`? Loose mode (no priority): the rule's
    /// match is the filter's match or more specific (every bit the filter
    /// matches on, the rule matches on with the same value). Strict mode:
    /// identical match and priority. The cookie condition applies in both.
    pub fn selects(&self, rule: &RuleSpec) -> bool {
        if (rule.cookie ^ self.cookie) & self.cookie_mask != 0 {
            return false;
        }
        match self.priority {
            Some(p) => rule.priority == p && rule.matcher == self.matcher,
            None => filter_covers(&self.matcher, &rule.matcher),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Filter { strict: bool },
    Packet,
}

/// Metadata keywords (besides match fields and shorthands).
const META_KEYWORDS: &[&str] = &[
    "priority",
    "cookie",
    "idle_timeout",
    "hard_timeout",
    "table",
    "duration",
    "n_packets",
    "n_bytes",
    "idle_age",
    "hard_age",
];

/// OpenFlow flow-mod flags `ovs-ofctl` accepts and prints; only
/// `reset_counts` is harmless to ignore.
const FLAG_KEYWORDS: &[&str] = &[
    "send_flow_rem",
    "check_overlap",
    "no_packet_counts",
    "no_byte_counts",
    "no_readonly_table",
];

fn is_match_word(w: &str) -> bool {
    Field::lookup(w).is_some()
        || shorthand(w).is_some()
        || META_KEYWORDS.contains(&w)
        || FLAG_KEYWORDS.contains(&w)
        || w == "reset_counts"
        || w == "actions"
        || w == "action"
}

struct Parsed {
    matcher: FlowMatch,
    priority: Option<u16>,
    cookie: Option<(u64, Option<u64>)>,
    idle_timeout: u16,
    hard_timeout: u16,
    actions: Option<Vec<Action>>,
}

fn parse(text: &str, ports: PortResolver<'_>, mode: Mode) -> Result<Parsed, FlowSyntaxError> {
    let err = |t: &Tok<'_>, kind| FlowSyntaxError::at(text, t.off, t.text, kind);
    let mut mb = MatchBuilder::new(text, mode == Mode::Packet);
    let mut out = Parsed {
        matcher: FlowMatch::ANY,
        priority: None,
        cookie: None,
        idle_timeout: 0,
        hard_timeout: 0,
        actions: None,
    };
    let mut meta_seen: Vec<(&str, usize)> = Vec::new();
    let mut actions_at: Option<(Tok<'_>, usize)> = None;
    let mut pos = 0;
    while let Some(tok) = next_token(text, &mut pos) {
        let (key, value) = tok.key_value();
        if key == "actions" || key == "action" {
            if value.is_none() {
                return Err(err(&tok, ErrorKind::MissingValue { field: key.into() }));
            }
            actions_at = Some((tok, tok.off + key.len() + 1));
            break;
        }
        let origin = Origin {
            off: tok.off,
            token: tok.text,
            name: key,
        };
        let Some(value) = value else {
            if mb.shorthand(origin)? {
                continue;
            }
            if key == "reset_counts" && mode != Mode::Packet {
                continue;
            }
            let kind = if Field::lookup(key).is_some() || META_KEYWORDS.contains(&key) {
                ErrorKind::MissingValue { field: key.into() }
            } else if FLAG_KEYWORDS.contains(&key) || key == "reset_counts" {
                ErrorKind::NotAllowedHere {
                    keyword: key.into(),
                    why: "is a flow-mod flag xswitch does not support",
                }
            } else {
                ErrorKind::UnknownField {
                    name: key.into(),
                    hint: unknown_field_hint(key),
                }
            };
            return Err(err(&tok, kind));
        };
        if shorthand(key).is_some() {
            return Err(err(&tok, ErrorKind::UnexpectedValue { name: key.into() }));
        }
        if let Some(f) = Field::lookup(key) {
            mb.field(f, value, origin, ports)?;
            continue;
        }
        if !META_KEYWORDS.contains(&key) {
            return Err(err(
                &tok,
                ErrorKind::UnknownField {
                    name: key.into(),
                    hint: unknown_field_hint(key),
                },
            ));
        }
        if mode == Mode::Packet {
            return Err(err(
                &tok,
                ErrorKind::NotAllowedHere {
                    keyword: key.into(),
                    why: "is not a packet field (trace takes header fields only)",
                },
            ));
        }
        if let Some(&(_, first)) = meta_seen.iter().find(|(k, _)| *k == key) {
            return Err(err(
                &tok,
                ErrorKind::DuplicateField {
                    field: key.into(),
                    first_col: col_of(text, first),
                },
            ));
        }
        meta_seen.push((key, tok.off));
        if value.is_empty() {
            return Err(err(&tok, ErrorKind::MissingValue { field: key.into() }));
        }
        meta(&mut out, key, value, mode).map_err(|k| err(&tok, k))?;
    }
    out.matcher = mb.finish()?;
    match (mode, actions_at) {
        (Mode::Add, None) => {
            return Err(FlowSyntaxError::at(
                text,
                text.len(),
                "",
                ErrorKind::MissingActions,
            ))
        }
        (Mode::Add, Some((_, start))) => {
            out.actions = Some(actions::parse_actions(
                text,
                start,
                &out.matcher,
                ports,
                &is_match_word,
            )?);
        }
        (Mode::Filter { .. }, Some((tok, _))) => {
            return Err(err(
                &tok,
                ErrorKind::ActionsNotAllowed {
                    what: "a match filter (del-flows, dump-flows)",
                },
            ))
        }
        (Mode::Packet, Some((tok, _))) => {
            return Err(err(
                &tok,
                ErrorKind::ActionsNotAllowed {
                    what: "a packet description (trace)",
                },
            ))
        }
        (_, None) => {}
    }
    Ok(out)
}

fn u16_value(key: &str, value: &str) -> Result<u16, ErrorKind> {
    let v = parse_u64(value).map_err(|e| ErrorKind::Invalid(format!("{key}: {e}")))?;
    u16::try_from(v).map_err(|_| ErrorKind::OutOfRange {
        field: key.into(),
        value: v,
        range: "0..=65535",
    })
}

fn cookie_value(value: &str) -> Result<u64, ErrorKind> {
    if value == "-1" {
        return Ok(u64::MAX);
    }
    parse_u64(value).map_err(|e| ErrorKind::Invalid(format!("cookie: {e}")))
}

/// Applies one metadata keyword (not in packet mode).
fn meta(out: &mut Parsed, key: &str, value: &str, mode: Mode) -> Result<(), ErrorKind> {
    let not_here = |why| ErrorKind::NotAllowedHere {
        keyword: key.into(),
        why,
    };
    match key {
        "priority" => match mode {
            Mode::Filter { strict: false } => {
                return Err(not_here("selects flows only with --strict"))
            }
            _ => out.priority = Some(u16_value(key, value)?),
        },
        "cookie" => {
            let (v, mask) = match value.split_once('/') {
                Some((v, m)) => (cookie_value(v)?, Some(cookie_value(m)?)),
                None => (cookie_value(value)?, None),
            };
            match (mode, mask) {
                (Mode::Add, Some(_)) => {
                    return Err(not_here(
                        "cannot have a mask when adding a flow (a mask selects flows in \
                         del-flows/dump-flows)",
                    ))
                }
                (Mode::Filter { .. }, None) => {
                    return Err(not_here(
                        "without a mask cannot select flows (to match on a cookie, specify a \
                         mask, e.g. cookie=0x5/-1)",
                    ))
                }
                _ => out.cookie = Some((v, mask)),
            }
        }
        "idle_timeout" | "hard_timeout" => {
            if mode != Mode::Add {
                return Err(not_here("cannot select flows"));
            }
            let v = u16_value(key, value)?;
            if key == "idle_timeout" {
                out.idle_timeout = v;
            } else {
                out.hard_timeout = v;
            }
        }
        "table" => match parse_u64(value) {
            Ok(0) => {}
            Ok(_) => return Err(ErrorKind::TableNotZero),
            Err(e) => return Err(ErrorKind::Invalid(format!("table: {e}"))),
        },
        // duration, n_packets, n_bytes, idle_age, hard_age: dump-flows
        // output, ignored so that it can be fed back (as ovs-ofctl does).
        _ => {}
    }
    Ok(())
}

/// Parses a flow for `add-flow`: match, metadata and `actions=` (required,
/// last). A `dump-flows` line (with its read-only fields) is valid input.
///
/// ```
/// use control::flow_syntax::{parse_flow, no_port_names};
/// let r = parse_flow("priority=100,in_port=1,ip,nw_dst=10.0.0.0/24,actions=output:2",
///                    &no_port_names).unwrap();
/// assert_eq!(r.priority, 100);
/// ```
pub fn parse_flow(text: &str, ports: PortResolver<'_>) -> Result<RuleSpec, FlowSyntaxError> {
    let p = parse(text, ports, Mode::Add)?;
    Ok(RuleSpec {
        priority: p.priority.unwrap_or(DEFAULT_PRIORITY),
        matcher: p.matcher,
        actions: p.actions.unwrap_or_default(),
        cookie: p.cookie.map_or(0, |(v, _)| v),
        idle_timeout: p.idle_timeout,
        hard_timeout: p.hard_timeout,
    })
}

/// Parses a match for `del-flows` / `dump-flows`: match fields, `table=0`,
/// `cookie=VALUE/MASK`, and — only when `strict` — `priority` (default
/// 32768, as `ovs-ofctl --strict`). Actions and timeouts are errors. The
/// empty string selects every flow.
pub fn parse_flow_filter(
    text: &str,
    ports: PortResolver<'_>,
    strict: bool,
) -> Result<FlowFilter, FlowSyntaxError> {
    let p = parse(text, ports, Mode::Filter { strict })?;
    let (cookie, cookie_mask) = match p.cookie {
        Some((v, Some(m))) => (v & m, m),
        _ => (0, 0),
    };
    Ok(FlowFilter {
        matcher: p.matcher,
        priority: strict.then(|| p.priority.unwrap_or(DEFAULT_PRIORITY)),
        cookie,
        cookie_mask,
    })
}

/// Parses a packet description for `trace`
/// (`in_port=1,dl_src=..,dl_dst=..,ip,nw_src=..,nw_dst=..`) into the key
/// the datapath would extract. Fields take exact values (no masks);
/// unspecified fields are zero; prerequisites apply as in a match
/// (`nw_src` needs `ip` or `arp`). `dl_vlan=N` means a tagged frame
/// (CFI set), `dl_vlan=0xffff` or no VLAN field an untagged one.
pub fn parse_packet(text: &str, ports: PortResolver<'_>) -> Result<FlowKey, FlowSyntaxError> {
    Ok(parse(text, ports, Mode::Packet)?.matcher.key)
}
