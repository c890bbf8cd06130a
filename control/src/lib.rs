//! xswitch control plane: flow syntax, CLI, daemon (later issues).

pub mod afxdp;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod flow_syntax;
pub mod metrics;
pub mod mgmt;
pub mod monitor;
pub mod report;
pub mod run;
pub mod topo;
