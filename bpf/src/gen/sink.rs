//! The XDP drop sink: counts what reaches an interface, then drops it.
//!
//! Attach it in the namespace of the interface (see
//! [`super::netns::NetnsGuard`]); read [`XdpSink::counts`] from anywhere.
//! The attachment is a BPF link, gone when the sink drops or the process
//! dies. It also gives the veth NAPI, which a veth needs to receive
//! redirected frames at all.

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags};

use super::{object_slot, skel, GenError};

/// Frames and bytes the sink saw (bytes without FCS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Frames counted and dropped.
    pub packets: u64,
    /// Their bytes, as seen by XDP (no FCS).
    pub bytes: u64,
}

/// `xswitch_sink` attached to one interface.
pub struct XdpSink {
    // Field order: the link detaches before the program is unloaded.
    _link: Link,
    skel: skel::sink::XswitchSinkSkel<'static>,
    ifindex: u32,
}

impl std::fmt::Debug for XdpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpSink")
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

impl XdpSink {
    /// Loads the sink and attaches it to `ifindex` (native mode where the
    /// driver has it, as veth does).
    pub fn attach(ifindex: u32) -> Result<XdpSink, GenError> {
        let skel = skel::sink::XswitchSinkSkelBuilder::default()
            .open(object_slot())
            .map_err(|e| GenError::bpf("opening the sink program", e))?
            .load()
            .map_err(|e| GenError::bpf("loading the sink program", e))?;
        let link = skel
            .progs
            .xswitch_sink
            .attach_xdp(ifindex as i32)
            .map_err(|e| GenError::bpf(format!("attaching the sink to ifindex {ifindex}"), e))?;
        Ok(XdpSink {
            _link: link,
            skel,
            ifindex,
        })
    }

    /// The interface it is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Totals since attach, summed over CPUs.
    pub fn counts(&self) -> Result<SinkCounts, GenError> {
        let per_cpu = self
            .skel
            .maps
            .sink_stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| GenError::bpf("reading the sink's counters", e))?
            .unwrap_or_default();
        let mut c = SinkCounts::default();
        for v in per_cpu {
            let (p, b) = super::two_u64(&v);
            c.packets += p;
            c.bytes += b;
        }
        Ok(c)
    }
}
