//! xswitch dataplane: everything on the packet path.
//!
//! The layers follow the packet walk (DESIGN.md):
//! * [`wire`] — zero-copy, checked views over frame bytes, one file per protocol;
//! * [`flow_key`] — the fields a rule can match, extracted in one pass;
//! * [`classifier`] — OpenFlow table semantics: tuple-space search with a
//!   linear-scan reference oracle, published to readers lock-free;
//! * [`cache`] — the per-PMD exact-match cache in front of the classifier;
//! * [`actions`] and [`learning`] — what a matched rule does, and the MAC table
//!   behind `normal`;
//! * [`vport`] — ports: the trait, the in-memory implementation;
//! * [`stats`] — drop reasons and counters.
//!
//! `unsafe` is denied crate-wide; only OS-facing modules (AF_XDP, later) opt
//! out, each block with a `// SAFETY:` comment.

pub mod actions;
pub mod affinity;
pub mod cache;
pub mod checksum;
pub mod classifier;
pub mod datapath;
pub mod extract;
pub mod flow_key;
pub mod learning;
pub mod locks;
pub mod packet;
pub mod port_table;
pub mod rcu;
pub mod stats;
pub mod sync;
pub mod vport;
pub mod watchdog;
pub mod wire;
