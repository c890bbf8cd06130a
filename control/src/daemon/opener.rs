//! How the daemon turns an interface name into a datapath port: the
//! [`PortOpener`] seam, with the AF_XDP implementation the real daemon uses
//! and room for in-memory ports in tests.

use crate::afxdp::{open_port, OpenError, OpenedPort};
use crate::report::PortExtra;
use dataplane::vport::afxdp::{AfXdpConfig, AfXdpError, LinkInfo};
use dataplane::vport::Vport;
use std::sync::Arc;
use xswitch_bpf::XdpMode;

/// A device opened for the datapath.
pub struct OpenedDevice {
    /// The port to add to the datapath.
    pub vport: Arc<dyn Vport>,
    /// The interface as it was when opened (name, index, flags).
    pub link: LinkInfo,
    /// The AF_XDP handles (sockets, program), kept open while the port is
    /// attached; `None` for devices without them (tests).
    pub afxdp: Option<OpenedPort>,
}

impl core::fmt::Debug for OpenedDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedDevice")
            .field("link", &self.link)
            .field("afxdp", &self.afxdp)
            .finish_non_exhaustive()
    }
}

impl OpenedDevice {
    /// The mode the XDP program is attached in (`None`: no program).
    pub fn xdp_mode(&self) -> Option<XdpMode> {
        self.afxdp.as_ref().map(OpenedPort::mode)
    }

    /// Device-level figures for `stats` (per-queue rx, XDP counters).
    pub fn extra(&self) -> PortExtra {
        match &self.afxdp {
            Some(o) => {
                let (queues, device) = o.device_report();
                PortExtra {
                    queues,
                    xdp: o.xdp_report(),
                    device: Some(device),
                }
            }
            None => PortExtra::default(),
        }
    }
}

/// Why a device could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// No interface of that name exists (yet): a configured port waits for
    /// it.
    #[error("{0}")]
    NoDevice(String),
    /// Anything else (MTU, foreign XDP program, privileges, sockets).
    #[error("{0}")]
    Failed(String),
}

/// Opens interfaces as datapath ports.
pub trait PortOpener: Send + Sync {
    /// Opens `ifname`, attaching in `mode` where that applies.
    fn open(&self, ifname: &str, mode: XdpMode) -> Result<OpenedDevice, AttachError>;
}

/// The real opener: [`open_port`] (XDP program + one AF_XDP socket per rx
/// queue).
#[derive(Debug, Clone, Default)]
pub struct AfXdpOpener {
    /// Ring and UMEM sizes of every port.
    pub cfg: AfXdpConfig,
}

impl PortOpener for AfXdpOpener {
    fn open(&self, ifname: &str, mode: XdpMode) -> Result<OpenedDevice, AttachError> {
        match open_port(ifname, mode, &self.cfg) {
            Ok(o) => Ok(OpenedDevice {
                vport: o.port.clone(),
                link: o.link.clone(),
                afxdp: Some(o),
            }),
            Err(OpenError::Port(e @ AfXdpError::NoSuchInterface { .. })) => {
                Err(AttachError::NoDevice(e.to_string()))
            }
            Err(e) => Err(AttachError::Failed(e.to_string())),
        }
    }
}
