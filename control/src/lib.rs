//! xswitch control plane: flow syntax, CLI, daemon (later issues).

pub mod bench;
pub mod config;
pub mod demo;
pub mod flow_syntax;
pub mod metrics;
pub mod monitor;
pub mod topo;
pub mod report;
pub mod cli;
pub mod mgmt;
