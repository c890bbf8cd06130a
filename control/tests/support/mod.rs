//! Test support for the OVS differential test: the OVS harness, OVS trace
//! parsing, and the random table/packet generator.

pub mod gen;
pub mod odp;
pub mod ovs;
