//! The OpenFlow classifier: rules, the published flow table, and its oracle.
//!
//! # What?
//! A flow table maps a packet's [`FlowKey`](crate::flow_key::FlowKey) to the
//! rule that decides its fate. Rules have a priority and a
//! [`FlowMatch`](crate::flow_key::FlowMatch) with arbitrary per-bit masks
//! (CIDR prefixes are just contiguous masks). The answer for a key is the
//! matching rule with the highest priority; among overlapping rules of equal
//! priority the one installed first (OpenFlow leaves this undefined; we
//! define it so that results are reproducible and testable).
//!
//! # Pieces
//! * [`rule`] — [`RuleSpec`] (what the control plane asks for) and [`Rule`]
//!   (an installed rule: immutable spec plus relaxed-atomic counters).
//! * [`tss`] — tuple-space search: the immutable [`Classifier`] snapshot that
//!   PMDs read, and the writer-side editor that builds snapshots
//!   copy-on-write (one subtable per distinct mask, hashed on the masked
//!   key, probed in order of the subtables' highest priority with early exit).
//! * [`table`] — [`FlowTable`]: the shared table. Readers load a snapshot
//!   lock-free (arc-swap); writers serialise on the table's own mutex and
//!   publish a new snapshot per change (or per batch of changes).
//! * [`linear`] — [`LinearClassifier`], a sorted vector scanned in order with
//!   the same semantics: the reference for property tests and benchmarks.
//!
//! The per-PMD exact-match cache that sits in front of the classifier is
//! [`crate::cache::ExactMatchCache`]; it tags entries with
//! [`Classifier::generation`] so a rule change is never missed.
//!
//! # Locking summary
//! Readers (PMDs): no locks, one `snapshot()` per batch, drop it before
//! blocking. Writers: only the `flow_table` mutex inside [`FlowTable`]
//! (hierarchy `config → ports → flow_table → fdb`); port churn never waits
//! for it and it never waits for ports.

pub mod linear;
pub mod rule;
pub mod table;
pub mod tss;

pub use linear::LinearClassifier;
pub use rule::{filter_covers, ExpiryReason, Rule, RuleSpec, DEFAULT_PRIORITY};
pub use table::{FlowTable, Snapshot};
pub use tss::Classifier;

#[cfg(test)]
mod tests;
