//! The kernel-limit reference device: two veths joined by XDP_REDIRECT
//! through a devmap, in both directions, with no parsing at all.
//!
//! Attach it in the namespace that holds both interfaces. Frames from
//! either go straight out of the other; the receiving peers need NAPI (an
//! XDP program, or GRO on) like any redirect target.

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags};

use super::{object_slot, skel, GenError};

/// Frames the reference device forwarded, and frames it passed to the
/// stack because their interface had no peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwdCounts {
    /// Redirected to the other interface.
    pub redirected: u64,
    /// Passed to the kernel stack.
    pub passed: u64,
}

/// `xswitch_redirect` attached to two interfaces, each the other's peer.
pub struct XdpRedirect {
    // Field order: the links detach before the program is unloaded.
    _links: [Link; 2],
    skel: skel::redirect::XswitchRedirectSkel<'static>,
    ifindexes: [u32; 2],
}

impl std::fmt::Debug for XdpRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpRedirect")
            .field("ifindexes", &self.ifindexes)
            .finish()
    }
}

impl XdpRedirect {
    /// Joins `a` and `b`: whatever arrives on one leaves by the other.
    pub fn attach_pair(a: u32, b: u32) -> Result<XdpRedirect, GenError> {
        let skel = skel::redirect::XswitchRedirectSkelBuilder::default()
            .open(object_slot())
            .map_err(|e| GenError::bpf("opening the redirect program", e))?
            .load()
            .map_err(|e| GenError::bpf("loading the redirect program", e))?;
        for (from, to) in [(a, b), (b, a)] {
            skel.maps
                .peer_of
                .update(&from.to_ne_bytes(), &to.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| GenError::bpf(format!("devmap entry ifindex {from} -> {to}"), e))?;
        }
        let attach = |ifindex: u32| {
            skel.progs
                .xswitch_redirect
                .attach_xdp(ifindex as i32)
                .map_err(|e| {
                    GenError::bpf(format!("attaching the redirect to ifindex {ifindex}"), e)
                })
        };
        let links = [attach(a)?, attach(b)?];
        Ok(XdpRedirect {
            _links: links,
            skel,
            ifindexes: [a, b],
        })
    }

    /// Totals since attach, summed over CPUs.
    pub fn counts(&self) -> Result<FwdCounts, GenError> {
        let per_cpu = self
            .skel
            .maps
            .fwd_stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| GenError::bpf("reading the redirect's counters", e))?
            .unwrap_or_default();
        let mut c = FwdCounts::default();
        for v in per_cpu {
            let (r, p) = super::two_u64(&v);
            c.redirected += r;
            c.passed += p;
        }
        Ok(c)
    }
}
