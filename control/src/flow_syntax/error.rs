//! Errors that point at the offending token.
//!
//! Every rejection carries the byte offset of the token in the input, its
//! 1-based character column, the token text and an [`ErrorKind`] whose
//! message says what to change. [`FlowSyntaxError::render`] draws the input
//! with carets under the token, for a CLI to print.

use thiserror::Error;

/// Why a flow, match or packet description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    /// A `name=value` or bare word that is no field, shorthand or keyword.
    #[error("unknown field `{name}`{hint}")]
    UnknownField { name: String, hint: &'static str },
    /// A field given without `=value`.
    #[error("`{field}` needs a value ({field}=...)")]
    MissingValue { field: String },
    /// An action that needs an argument written without one.
    #[error("`{action}` needs an argument ({action}:...)")]
    MissingArgument { action: String },
    /// A protocol shorthand or flag given a value.
    #[error("`{name}` is a shorthand and takes no value")]
    UnexpectedValue { name: String },
    /// A value that does not parse (the text says how).
    #[error("{0}")]
    Invalid(String),
    /// A number outside the field's range.
    #[error("{field} value {value} is out of range ({range})")]
    OutOfRange {
        field: String,
        value: u64,
        range: &'static str,
    },
    /// `nw_tos` / `mod_nw_tos` with ECN bits set.
    #[error(
        "{field} value {value} is not a multiple of 4 (it sets the DSCP bits of the TOS byte; \
         use ip_dscp={dscp} for DSCP {dscp}, nw_ecn for the low 2 bits)"
    )]
    TosNotMultipleOf4 {
        field: String,
        value: u64,
        dscp: u64,
    },
    /// `/mask` on a field that only matches exactly.
    #[error("`{field}` takes an exact value, not a mask")]
    MaskNotAllowed { field: String },
    /// `/mask` in a packet description.
    #[error("a packet has exact field values: drop the mask from `{field}`")]
    ExactValueRequired { field: String },
    /// The field's protocol prerequisite is missing from the match.
    #[error("`{field}` requires {needs} in the match (e.g. `{example},{field}=...`)")]
    MissingPrerequisite {
        field: String,
        needs: &'static str,
        example: &'static str,
    },
    /// An L4 field on a match that selects non-first fragments.
    #[error("`{field}` cannot be used with nw_frag=later: later fragments carry no L4 header")]
    L4OnLaterFragment { field: String },
    /// A `set_field` whose field the match does not guarantee.
    #[error(
        "set_field to `{field}` requires {needs} in the match (e.g. \
         `{example},...,actions=set_field:...->{field}`)"
    )]
    ActionPrerequisite {
        field: String,
        needs: &'static str,
        example: &'static str,
    },
    /// The same field given twice.
    #[error("`{field}` is given twice (first at col {first_col})")]
    DuplicateField { field: String, first_col: usize },
    /// Two fields (or a field and a shorthand) that set the same bits.
    #[error("`{field}` overlaps `{other}` at col {other_col}: give only one of them")]
    OverlappingField {
        field: String,
        other: String,
        other_col: usize,
    },
    /// Two fields or shorthands that demand different values of one field.
    #[error("`{field}` contradicts `{other}` at col {other_col}")]
    Contradiction {
        field: String,
        other: String,
        other_col: usize,
    },
    /// A match field written after `actions=`.
    #[error("match field after the actions: `actions=` must come last")]
    ActionsNotLast,
    /// `add-flow` text without `actions=`.
    #[error("a flow needs `actions=` at the end (e.g. `actions=drop`)")]
    MissingActions,
    /// `actions=` where only a match is wanted.
    #[error("actions are not allowed in {what}")]
    ActionsNotAllowed { what: &'static str },
    /// A keyword that exists but means nothing in this context.
    #[error("`{keyword}` {why}")]
    NotAllowedHere { keyword: String, why: &'static str },
    /// `table=N` with `N != 0`.
    #[error("xswitch has only table 0")]
    TableNotZero,
    /// An action name xswitch does not know.
    #[error("unknown action `{name}`{hint}")]
    UnknownAction { name: String, hint: &'static str },
    /// `drop` together with other actions.
    #[error("`drop` must not be accompanied by any other action")]
    DropNotAlone,
    /// A port name the resolver does not know.
    #[error("unknown port `{name}`")]
    UnknownPort { name: String },
    /// An OpenFlow reserved port xswitch does not have (LOCAL, CONTROLLER…).
    #[error("xswitch has no {name} port")]
    NoSuchReservedPort { name: String },
    /// A reserved OpenFlow port used where it means nothing.
    #[error("{name} is not valid here{hint}")]
    ReservedPortMisused { name: String, hint: &'static str },
    /// A port number out of the OpenFlow range.
    #[error(
        "port {number} is out of range (ports are 0..=65279; 65280..=65535 are reserved \
         OpenFlow ports)"
    )]
    PortOutOfRange { number: u64 },
}

/// A rejected flow: where, which token, and why.
///
/// Displays as `bad flow at col 24 ("nw_dst=10.0.0.300"): invalid IPv4 address`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad flow at col {col}{}: {kind}", token_part(.token))]
pub struct FlowSyntaxError {
    /// Byte offset of the token in the parsed text.
    pub offset: usize,
    /// 1-based column of the token, counted in characters.
    pub col: usize,
    /// The offending token (empty when the error is about the whole text,
    /// e.g. missing `actions=`; `offset` is then the end of the text).
    pub token: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

fn token_part(token: &str) -> String {
    if token.is_empty() {
        String::new()
    } else {
        format!(" ({token:?})")
    }
}

impl FlowSyntaxError {
    /// Builds an error for the token at byte `offset` of `text`.
    pub(super) fn at(text: &str, offset: usize, token: &str, kind: ErrorKind) -> Self {
        let offset = offset.min(text.len());
        let col = super::fields::col_of(text, offset);
        FlowSyntaxError {
            offset,
            col,
            token: token.to_string(),
            kind,
        }
    }

    /// The input on one line, carets under the offending token on the next,
    /// then the message:
    ///
    /// ```text
    /// ip,nw_dst=10.0.0.300,actions=drop
    ///    ^^^^^^^^^^^^^^^^^
    /// bad flow at col 4 ("nw_dst=10.0.0.300"): invalid IPv4 address
    /// ```
    ///
    /// Tabs and line breaks in `text` are shown as spaces so the carets line
    /// up. `text` must be the string that was parsed.
    pub fn render(&self, text: &str) -> String {
        let line: String = text
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let width = self.token.chars().count().max(1);
        format!(
            "{line}\n{}{}\n{self}",
            " ".repeat(self.col - 1),
            "^".repeat(width)
        )
    }
}
