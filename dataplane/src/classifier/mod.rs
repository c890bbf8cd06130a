//! OpenFlow classifier (in progress).
pub mod rule;
pub use rule::{RuleSpec, DEFAULT_PRIORITY};
