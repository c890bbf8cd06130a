//! What a flow-mod installs: match, priority, actions and metadata.

use crate::actions::Action;
use crate::flow_key::FlowMatch;

/// The OpenFlow default priority (`ovs-ofctl` uses it when none is given).
pub const DEFAULT_PRIORITY: u16 = 32768;

/// A rule as the control plane describes it, before it is installed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    /// Higher wins.
    pub priority: u16,
    /// The fields the rule matches, with masks.
    pub matcher: FlowMatch,
    /// Executed in order; empty means drop.
    pub actions: Vec<Action>,
    /// Opaque controller cookie.
    pub cookie: u64,
    /// Seconds without a hit before the rule expires (0 = never).
    pub idle_timeout: u16,
    /// Seconds after install before the rule expires (0 = never).
    pub hard_timeout: u16,
}

impl RuleSpec {
    /// A rule with default priority, no cookie and no timeouts.
    pub fn new(matcher: FlowMatch, actions: Vec<Action>) -> Self {
        RuleSpec {
            priority: DEFAULT_PRIORITY,
            matcher,
            actions,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
        }
    }
}
