//! Which link event concerns which switch port, and what the datapath must
//! do about it.
//!
//! # What
//! [`PortTracker`] is pure bookkeeping (no I/O, no datapath): it maps the
//! ports the daemon was configured with (ofport → interface name) to the
//! devices that carry them (ifindex), and turns each [`LinkEvent`], or a
//! whole dump after a [`LinkEvent::Resync`], into [`PortAction`]s.
//! [`apply`] carries out the actions the datapath can do alone (state
//! flags); removing and (re)attaching a port need the AF_XDP opener and are
//! left to the daemon.
//!
//! # The rules
//! * **A port follows its device, not its name.** Once attached, a port is
//!   bound to an ifindex. A message for that ifindex with another name is a
//!   rename: [`PortAction::Renamed`], and the port takes the new name. A
//!   device that takes the old name afterwards is a stranger.
//! * **Deletion** (`RTM_DELLINK` — `ip link del`, the peer's namespace
//!   deleted, the device moved to another namespace) of the bound ifindex →
//!   [`PortAction::Remove`]; the port stays configured, detached.
//! * **Re-creation**: a device appearing under the name of a detached port →
//!   [`PortAction::Reattach`]; the port is then "attaching" until the daemon
//!   reports [`PortTracker::attached`] (which hands back an `Update` with the
//!   newest state seen meanwhile) or [`PortTracker::attach_failed`] (the next
//!   message for that name retries).
//! * **State**: a message for the bound ifindex whose datapath-relevant
//!   state (running, carrier, tx queues, admin up) differs from the last one
//!   applied → [`PortAction::Update`]; identical ones (the kernel sends
//!   many, e.g. on statistics or address changes) → [`PortAction::None`].
//! * A message that carries both a rename and a state change yields the
//!   `Update` (forwarding correctness first); the rename is reported with
//!   the next message for that device, or by the next resync.
//! * **Resync** diffs a complete dump against what the tracker knows: bound
//!   ifindexes that vanished → `Remove`, renamed → `Renamed`, changed →
//!   `Update`; detached names present → `Reattach`. Removals, renames and
//!   updates come before reattachments.
//! * Interfaces no port is configured for are ignored.
//!
//! # Locking
//! None: the tracker is owned by the monitor's thread. [`apply`] calls the
//! datapath's port-state setters, which take only the `ports` lock.

use super::{LinkEvent, LinkState};
use dataplane::datapath::{Datapath, DatapathError};
use dataplane::flow_key::PortNo;
use std::collections::BTreeMap;

/// What the datapath must do about one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortAction {
    /// Set the port's state flags to these values.
    Update {
        /// The port.
        ofport: PortNo,
        /// `IFF_RUNNING`.
        running: bool,
        /// Carrier.
        carrier: bool,
        /// Usable tx queues (0 possible).
        tx_queues: u32,
        /// `IFF_UP`.
        admin_up: bool,
    },
    /// The port's device is gone: run the deletion protocol
    /// (`Datapath::del_port`) and close its sockets. The port stays
    /// configured and is re-attached if its name comes back.
    Remove {
        /// The port.
        ofport: PortNo,
    },
    /// A device now carries the configured name of a detached port: open
    /// it and add it under [`PortTracker::ofport`]`(name)`, then report
    /// [`PortTracker::attached`] or [`PortTracker::attach_failed`].
    Reattach {
        /// The configured (current) interface name.
        name: String,
    },
    /// The port's device was renamed; the port keeps its ofport and takes
    /// the new name.
    Renamed {
        /// The port.
        ofport: PortNo,
        /// The name it had.
        old: String,
        /// The name it has now.
        new: String,
    },
    /// Nothing to do.
    None,
}

/// The part of a link's state the datapath keeps per port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags {
    running: bool,
    carrier: bool,
    tx_queues: u32,
    admin_up: bool,
}

impl Flags {
    fn of(s: &LinkState) -> Flags {
        Flags {
            running: s.running,
            carrier: s.carrier,
            tx_queues: s.tx_queues,
            admin_up: s.admin_up,
        }
    }

    fn update(self, ofport: PortNo) -> PortAction {
        PortAction::Update {
            ofport,
            running: self.running,
            carrier: self.carrier,
            tx_queues: self.tx_queues,
            admin_up: self.admin_up,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// No device carries the port (never seen, or deleted).
    Detached,
    /// `Reattach` was returned for device `ifindex`; the daemon is opening
    /// it. `seen` is the newest state of that device.
    Attaching { ifindex: u32, seen: Flags },
    /// The port runs on device `ifindex`; `last` is the state last handed
    /// out in an `Update` (`None`: none yet).
    Attached { ifindex: u32, last: Option<Flags> },
}

impl Binding {
    fn ifindex(&self) -> Option<u32> {
        match self {
            Binding::Detached => None,
            Binding::Attaching { ifindex, .. } | Binding::Attached { ifindex, .. } => {
                Some(*ifindex)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    binding: Binding,
}

/// Configured ports ↔ the devices that carry them. See the module docs.
#[derive(Debug, Default)]
pub struct PortTracker {
    ports: BTreeMap<PortNo, Tracked>,
}

impl PortTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Configures port `ofport` as interface `name`, detached (replacing
    /// whatever `ofport` was). After a [`LinkMonitor::dump`], a
    /// [`PortTracker::resync`] returns `Reattach` for it if the device
    /// exists — the daemon's start-up path.
    ///
    /// [`LinkMonitor::dump`]: super::LinkMonitor::dump
    pub fn configure(&mut self, name: &str, ofport: PortNo) {
        self.ports.insert(
            ofport,
            Tracked {
                name: name.to_owned(),
                binding: Binding::Detached,
            },
        );
    }

    /// The daemon attached `ofport` to device `ifindex` (after `port add`
    /// or a `Reattach`). Returns an `Update` with the newest state the
    /// tracker saw for that device while it was being attached (apply it),
    /// or `None`. Unknown ofport: `None`, nothing changes.
    pub fn attached(&mut self, ofport: PortNo, ifindex: u32) -> PortAction {
        let Some(p) = self.ports.get_mut(&ofport) else {
            return PortAction::None;
        };
        let seen = match p.binding {
            Binding::Attaching { ifindex: i, seen } if i == ifindex => Some(seen),
            _ => None,
        };
        p.binding = Binding::Attached {
            ifindex,
            last: seen,
        };
        seen.map_or(PortAction::None, |f| f.update(ofport))
    }

    /// The daemon could not attach `ofport`: it is detached again, and the
    /// next message naming its interface retries.
    pub fn attach_failed(&mut self, ofport: PortNo) {
        if let Some(p) = self.ports.get_mut(&ofport) {
            p.binding = Binding::Detached;
        }
    }

    /// Forgets port `ofport` (`port del`); returns its name.
    pub fn forget(&mut self, ofport: PortNo) -> Option<String> {
        self.ports.remove(&ofport).map(|p| p.name)
    }

    /// The ofport configured for interface `name`. When several entries
    /// carry the name (a rename made a bound port take the name of a
    /// detached one), the one being attached wins, then the bound one.
    pub fn ofport(&self, name: &str) -> Option<PortNo> {
        let rank = |b: &Binding| match b {
            Binding::Attaching { .. } => 0,
            Binding::Attached { .. } => 1,
            Binding::Detached => 2,
        };
        self.ports
            .iter()
            .filter(|(_, p)| p.name == name)
            .min_by_key(|(_, p)| rank(&p.binding))
            .map(|(&o, _)| o)
    }

    /// Port `ofport`'s current interface name.
    pub fn name(&self, ofport: PortNo) -> Option<&str> {
        self.ports.get(&ofport).map(|p| p.name.as_str())
    }

    /// The ifindex port `ofport` is bound to (attached or attaching).
    pub fn ifindex(&self, ofport: PortNo) -> Option<u32> {
        self.ports.get(&ofport).and_then(|p| p.binding.ifindex())
    }

    /// True when `ofport` runs on a device.
    pub fn is_attached(&self, ofport: PortNo) -> bool {
        matches!(
            self.ports.get(&ofport).map(|p| &p.binding),
            Some(Binding::Attached { .. })
        )
    }

    fn bound_to(&mut self, ifindex: u32) -> Option<(PortNo, &mut Tracked)> {
        self.ports
            .iter_mut()
            .find(|(_, p)| p.binding.ifindex() == Some(ifindex))
            .map(|(&o, p)| (o, p))
    }

    fn detached_named(&mut self, name: &str) -> Option<(PortNo, &mut Tracked)> {
        self.ports
            .iter_mut()
            .find(|(_, p)| p.binding == Binding::Detached && p.name == name)
            .map(|(&o, p)| (o, p))
    }

    /// The action one event calls for. [`LinkEvent::Resync`] returns
    /// `None`: the caller dumps and calls [`PortTracker::resync`].
    pub fn on_event(&mut self, ev: &LinkEvent) -> PortAction {
        match ev {
            LinkEvent::Changed(s) => self.on_changed(s),
            LinkEvent::Deleted { ifindex, .. } => match self.bound_to(*ifindex) {
                Some((ofport, p)) => {
                    p.binding = Binding::Detached;
                    PortAction::Remove { ofport }
                }
                None => PortAction::None,
            },
            LinkEvent::Resync => PortAction::None,
        }
    }

    fn on_changed(&mut self, s: &LinkState) -> PortAction {
        let now = Flags::of(s);
        if let Some((ofport, p)) = self.bound_to(s.ifindex) {
            return match &mut p.binding {
                Binding::Attached { last, .. } => {
                    if *last != Some(now) {
                        *last = Some(now);
                        now.update(ofport)
                    } else if p.name != s.name {
                        let old = std::mem::replace(&mut p.name, s.name.clone());
                        PortAction::Renamed {
                            ofport,
                            old,
                            new: s.name.clone(),
                        }
                    } else {
                        PortAction::None
                    }
                }
                Binding::Attaching { seen, .. } => {
                    *seen = now;
                    if p.name != s.name {
                        let old = std::mem::replace(&mut p.name, s.name.clone());
                        PortAction::Renamed {
                            ofport,
                            old,
                            new: s.name.clone(),
                        }
                    } else {
                        PortAction::None
                    }
                }
                Binding::Detached => PortAction::None,
            };
        }
        match self.detached_named(&s.name) {
            Some((_, p)) => {
                p.binding = Binding::Attaching {
                    ifindex: s.ifindex,
                    seen: now,
                };
                PortAction::Reattach {
                    name: s.name.clone(),
                }
            }
            None => PortAction::None,
        }
    }

    /// Diffs a complete dump (taken after a [`LinkEvent::Resync`], or at
    /// start-up) against what the tracker knows; see the module docs.
    pub fn resync(&mut self, dump: &[LinkState]) -> Vec<PortAction> {
        let mut first = Vec::new();
        // Pass 1: ports bound to a device.
        for (&ofport, p) in self.ports.iter_mut() {
            let Some(ifindex) = p.binding.ifindex() else {
                continue;
            };
            let Some(s) = dump.iter().find(|s| s.ifindex == ifindex) else {
                p.binding = Binding::Detached;
                first.push(PortAction::Remove { ofport });
                continue;
            };
            if p.name != s.name {
                let old = std::mem::replace(&mut p.name, s.name.clone());
                first.push(PortAction::Renamed {
                    ofport,
                    old,
                    new: s.name.clone(),
                });
            }
            let now = Flags::of(s);
            match &mut p.binding {
                Binding::Attached { last, .. } if *last != Some(now) => {
                    *last = Some(now);
                    first.push(now.update(ofport));
                }
                Binding::Attaching { seen, .. } => *seen = now,
                _ => {}
            }
        }
        // Pass 2: detached ports whose name a device (not bound to another
        // port) carries now.
        let bound: Vec<u32> = self
            .ports
            .values()
            .filter_map(|p| p.binding.ifindex())
            .collect();
        for p in self.ports.values_mut() {
            if p.binding != Binding::Detached {
                continue;
            }
            if let Some(s) = dump
                .iter()
                .find(|s| s.name == p.name && !bound.contains(&s.ifindex))
            {
                p.binding = Binding::Attaching {
                    ifindex: s.ifindex,
                    seen: Flags::of(s),
                };
                first.push(PortAction::Reattach {
                    name: p.name.clone(),
                });
            }
        }
        first
    }
}

/// What [`apply`] did with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// Carried out (or nothing to do).
    Done,
    /// `Remove`, `Reattach` or `Renamed`: the daemon's job (it owns the
    /// AF_XDP sockets and the port names).
    LeftToCaller,
}

/// Carries out `action` on `dp` where the datapath alone can: an `Update`
/// sets the port's flags — every flag that turns off first, then the tx
/// queue count, then the flags that turn on, so a port going down stops
/// taking output at the first store. Other actions are
/// [`Applied::LeftToCaller`].
pub fn apply(dp: &Datapath, action: &PortAction) -> Result<Applied, DatapathError> {
    match *action {
        PortAction::Update {
            ofport,
            running,
            carrier,
            tx_queues,
            admin_up,
        } => {
            type Setter = fn(&Datapath, PortNo, bool) -> Result<(), DatapathError>;
            let flags: [(Setter, bool); 3] = [
                (Datapath::set_admin_up, admin_up),
                (Datapath::set_running, running),
                (Datapath::set_carrier, carrier),
            ];
            for (set, on) in flags {
                if !on {
                    set(dp, ofport, false)?;
                }
            }
            dp.set_tx_queues(ofport, tx_queues)?;
            for (set, on) in flags {
                if on {
                    set(dp, ofport, true)?;
                }
            }
            Ok(Applied::Done)
        }
        PortAction::None => Ok(Applied::Done),
        PortAction::Remove { .. } | PortAction::Reattach { .. } | PortAction::Renamed { .. } => {
            Ok(Applied::LeftToCaller)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::OperState;
    use dataplane::vport::memory::{MemoryPort, MemoryPortConfig};
    use std::sync::Arc;

    fn link(ifindex: u32, name: &str) -> LinkState {
        LinkState {
            ifindex,
            name: name.into(),
            admin_up: true,
            running: true,
            carrier: true,
            tx_queues: 2,
            rx_queues: 2,
            mtu: 1500,
            oper_state: OperState::Up,
        }
    }

    fn changed(s: &LinkState) -> LinkEvent {
        LinkEvent::Changed(s.clone())
    }

    fn deleted(ifindex: u32, name: &str) -> LinkEvent {
        LinkEvent::Deleted {
            ifindex,
            name: name.into(),
        }
    }

    /// A tracker with port 1 = "p1" attached to ifindex 10.
    fn attached_p1() -> PortTracker {
        let mut t = PortTracker::new();
        t.configure("p1", 1);
        assert_eq!(t.attached(1, 10), PortAction::None);
        t
    }

    #[test]
    fn first_state_of_an_attached_port_is_an_update_and_repeats_are_none() {
        let mut t = attached_p1();
        let s = link(10, "p1");
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Update {
                ofport: 1,
                running: true,
                carrier: true,
                tx_queues: 2,
                admin_up: true
            }
        );
        assert_eq!(t.on_event(&changed(&s)), PortAction::None);
        // MTU and oper state are not datapath state: still nothing to do.
        let mut s2 = s.clone();
        s2.mtu = 9000;
        s2.oper_state = OperState::Unknown;
        assert_eq!(t.on_event(&changed(&s2)), PortAction::None);
    }

    #[test]
    fn carrier_loss_and_queue_change_are_updates() {
        let mut t = attached_p1();
        let mut s = link(10, "p1");
        let _ = t.on_event(&changed(&s));
        s.carrier = false;
        s.running = false;
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Update {
                ofport: 1,
                running: false,
                carrier: false,
                tx_queues: 2,
                admin_up: true
            }
        );
        s.tx_queues = 0;
        assert!(matches!(
            t.on_event(&changed(&s)),
            PortAction::Update { tx_queues: 0, .. }
        ));
        s.admin_up = false;
        assert!(matches!(
            t.on_event(&changed(&s)),
            PortAction::Update {
                admin_up: false,
                ..
            }
        ));
    }

    #[test]
    fn deletion_of_the_bound_device_removes_the_port_and_keeps_it_configured() {
        let mut t = attached_p1();
        assert_eq!(
            t.on_event(&deleted(10, "p1")),
            PortAction::Remove { ofport: 1 }
        );
        assert!(!t.is_attached(1));
        assert_eq!(t.ofport("p1"), Some(1));
        // A second deletion message for the same device: nothing.
        assert_eq!(t.on_event(&deleted(10, "p1")), PortAction::None);
    }

    #[test]
    fn deletion_is_matched_by_ifindex_not_by_name() {
        let mut t = attached_p1();
        // Another device that happens to have carried the name.
        assert_eq!(t.on_event(&deleted(11, "p1")), PortAction::None);
        assert!(t.is_attached(1));
    }

    #[test]
    fn recreated_name_is_reattached_with_its_newest_state() {
        let mut t = attached_p1();
        let _ = t.on_event(&deleted(10, "p1"));
        let mut s = link(12, "p1");
        s.carrier = false;
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Reattach { name: "p1".into() }
        );
        // While the daemon attaches, messages only refresh the state.
        s.carrier = true;
        assert_eq!(t.on_event(&changed(&s)), PortAction::None);
        assert_eq!(t.ifindex(1), Some(12));
        assert_eq!(
            t.attached(1, 12),
            PortAction::Update {
                ofport: 1,
                running: true,
                carrier: true,
                tx_queues: 2,
                admin_up: true
            }
        );
        assert!(t.is_attached(1));
        assert_eq!(t.on_event(&changed(&s)), PortAction::None);
    }

    #[test]
    fn failed_attach_retries_on_the_next_message() {
        let mut t = PortTracker::new();
        t.configure("p1", 1);
        let s = link(12, "p1");
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Reattach { name: "p1".into() }
        );
        t.attach_failed(1);
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Reattach { name: "p1".into() }
        );
    }

    #[test]
    fn device_deleted_while_attaching_is_removed() {
        let mut t = PortTracker::new();
        t.configure("p1", 1);
        let _ = t.on_event(&changed(&link(12, "p1")));
        assert_eq!(
            t.on_event(&deleted(12, "p1")),
            PortAction::Remove { ofport: 1 }
        );
        assert_eq!(t.ifindex(1), None);
    }

    #[test]
    fn rename_is_followed_and_the_old_name_becomes_a_stranger() {
        let mut t = attached_p1();
        let _ = t.on_event(&changed(&link(10, "p1")));
        assert_eq!(
            t.on_event(&changed(&link(10, "wan0"))),
            PortAction::Renamed {
                ofport: 1,
                old: "p1".into(),
                new: "wan0".into()
            }
        );
        assert_eq!(t.name(1), Some("wan0"));
        assert_eq!(t.ofport("wan0"), Some(1));
        assert_eq!(t.ofport("p1"), None);
        // A new device called p1 is not ours.
        assert_eq!(t.on_event(&changed(&link(13, "p1"))), PortAction::None);
        // Deleting the renamed device removes the port.
        assert_eq!(
            t.on_event(&deleted(10, "wan0")),
            PortAction::Remove { ofport: 1 }
        );
    }

    #[test]
    fn rename_with_a_state_change_updates_first_and_renames_next() {
        let mut t = attached_p1();
        let _ = t.on_event(&changed(&link(10, "p1")));
        let mut s = link(10, "wan0");
        s.carrier = false;
        assert!(matches!(
            t.on_event(&changed(&s)),
            PortAction::Update { carrier: false, .. }
        ));
        assert_eq!(
            t.on_event(&changed(&s)),
            PortAction::Renamed {
                ofport: 1,
                old: "p1".into(),
                new: "wan0".into()
            }
        );
    }

    #[test]
    fn unknown_interfaces_are_ignored() {
        let mut t = attached_p1();
        assert_eq!(t.on_event(&changed(&link(99, "eth9"))), PortAction::None);
        assert_eq!(t.on_event(&deleted(99, "eth9")), PortAction::None);
        assert_eq!(t.on_event(&LinkEvent::Resync), PortAction::None);
        let mut empty = PortTracker::new();
        assert_eq!(empty.on_event(&changed(&link(1, "lo"))), PortAction::None);
        assert!(empty.resync(&[link(1, "lo")]).is_empty());
    }

    #[test]
    fn startup_resync_reattaches_configured_ports_that_exist() {
        let mut t = PortTracker::new();
        t.configure("p1", 1);
        t.configure("p2", 2);
        t.configure("absent", 3);
        let acts = t.resync(&[link(1, "lo"), link(10, "p1"), link(11, "p2")]);
        assert_eq!(
            acts,
            vec![
                PortAction::Reattach { name: "p1".into() },
                PortAction::Reattach { name: "p2".into() }
            ]
        );
        assert_eq!(t.ifindex(1), Some(10));
        assert_eq!(t.ifindex(3), None);
    }

    #[test]
    fn resync_diff_removes_renames_updates_and_reattaches() {
        let mut t = PortTracker::new();
        for (name, ofport, ifindex) in [("a", 1, 10), ("b", 2, 20), ("c", 3, 30), ("d", 4, 40)] {
            t.configure(name, ofport);
            let _ = t.attached(ofport, ifindex);
            let _ = t.on_event(&changed(&link(ifindex, name)));
        }
        t.configure("e", 5); // detached
        let _ = t.on_event(&deleted(40, "d")); // d detached
        let mut c = link(30, "c");
        c.carrier = false;
        let dump = vec![
            // a (10) vanished; b renamed; c lost carrier; d re-created; e appeared.
            link(20, "b2"),
            c,
            link(41, "d"),
            link(50, "e"),
            link(60, "stranger"),
        ];
        let acts = t.resync(&dump);
        assert_eq!(
            acts,
            vec![
                PortAction::Remove { ofport: 1 },
                PortAction::Renamed {
                    ofport: 2,
                    old: "b".into(),
                    new: "b2".into()
                },
                PortAction::Update {
                    ofport: 3,
                    running: true,
                    carrier: false,
                    tx_queues: 2,
                    admin_up: true
                },
                PortAction::Reattach { name: "d".into() },
                PortAction::Reattach { name: "e".into() },
            ]
        );
        // A second identical resync has nothing left to do (reattaches are
        // pending with the daemon).
        assert!(t.resync(&dump).is_empty());
    }

    #[test]
    fn resync_removes_then_reattaches_a_port_whose_device_was_replaced() {
        let mut t = attached_p1();
        let acts = t.resync(&[link(11, "p1")]);
        assert_eq!(
            acts,
            vec![
                PortAction::Remove { ofport: 1 },
                PortAction::Reattach { name: "p1".into() }
            ]
        );
    }

    #[test]
    fn resync_does_not_reattach_onto_a_device_another_port_is_bound_to() {
        let mut t = attached_p1();
        t.configure("p1new", 2);
        // ifindex 10 was renamed to p1new: port 1 follows it; port 2 (same
        // name, detached) must not grab the same device.
        let acts = t.resync(&[link(10, "p1new")]);
        assert_eq!(
            acts,
            vec![
                PortAction::Renamed {
                    ofport: 1,
                    old: "p1".into(),
                    new: "p1new".into()
                },
                PortAction::Update {
                    ofport: 1,
                    running: true,
                    carrier: true,
                    tx_queues: 2,
                    admin_up: true
                }
            ]
        );
        assert_eq!(t.ofport("p1new"), Some(1));
    }

    #[test]
    fn forget_drops_the_port() {
        let mut t = attached_p1();
        assert_eq!(t.forget(1).as_deref(), Some("p1"));
        assert_eq!(t.on_event(&deleted(10, "p1")), PortAction::None);
        assert_eq!(t.forget(1), None);
    }

    #[test]
    fn apply_sets_datapath_flags_and_leaves_the_rest_to_the_daemon() {
        let dp = Datapath::new();
        let port = Arc::new(MemoryPort::new(MemoryPortConfig::new("p1")));
        dp.add_port(1, port).unwrap();
        let down = PortAction::Update {
            ofport: 1,
            running: false,
            carrier: false,
            tx_queues: 0,
            admin_up: false,
        };
        assert_eq!(apply(&dp, &down).unwrap(), Applied::Done);
        let info = dp.port_list().into_iter().find(|i| i.ofport == 1).unwrap();
        assert!(!info.running && !info.carrier && !info.admin_up);
        assert_eq!(info.tx_queues, 0);
        let up = PortAction::Update {
            ofport: 1,
            running: true,
            carrier: true,
            tx_queues: 3,
            admin_up: true,
        };
        assert_eq!(apply(&dp, &up).unwrap(), Applied::Done);
        let info = dp.port_list().into_iter().find(|i| i.ofport == 1).unwrap();
        assert!(info.running && info.carrier && info.admin_up);
        assert_eq!(info.tx_queues, 3);
        for a in [
            PortAction::Remove { ofport: 1 },
            PortAction::Reattach { name: "p1".into() },
            PortAction::Renamed {
                ofport: 1,
                old: "p1".into(),
                new: "q".into(),
            },
        ] {
            assert_eq!(apply(&dp, &a).unwrap(), Applied::LeftToCaller);
        }
        assert_eq!(apply(&dp, &PortAction::None).unwrap(), Applied::Done);
        // The port is untouched by the actions left to the caller.
        assert!(dp.port(1).is_some());
        let err = apply(
            &dp,
            &PortAction::Update {
                ofport: 9,
                running: true,
                carrier: true,
                tx_queues: 1,
                admin_up: true,
            },
        )
        .unwrap_err();
        assert_eq!(err, DatapathError::NoSuchPort(9));
    }
}
