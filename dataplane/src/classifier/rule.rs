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

use crate::flow_key::KEY_WORDS;
use core::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a rule expired (OpenFlow `OFPRR_IDLE_TIMEOUT` / `OFPRR_HARD_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryReason {
    /// No hit for `idle_timeout` seconds.
    Idle,
    /// `hard_timeout` seconds passed since the rule was installed.
    Hard,
}

/// An installed rule: the immutable [`RuleSpec`] plus its counters.
///
/// The spec never changes after installation (an OpenFlow "add" with the same
/// match and priority installs a *new* `Rule` in the old one's place, so
/// counters restart). Counters are relaxed atomics: the PMD that matched a
/// batch adds the batch's totals once ([`Rule::record_hit`]); readers only
/// report them, so no ordering with other memory is needed.
///
/// `install_seq` orders rules installed into one table: among overlapping
/// rules of equal priority the one with the smaller sequence number (the
/// earlier installed) wins. A replacement keeps the sequence number of the
/// rule it replaces, so modifying a rule's actions never changes which rule
/// other packets hit.
///
/// Cache-line aligned: in an `Arc<Rule>` the reference counts (changed by the
/// flow-table writer's copy-on-write and by caches) then sit on their own
/// line, apart from the spec and counters PMDs read and write.
#[repr(align(64))]
pub struct Rule {
    spec: RuleSpec,
    seq: u64,
    created: Instant,
    n_packets: AtomicU64,
    n_bytes: AtomicU64,
    /// Last hit, as nanoseconds after `created` (0 = never hit: idle time
    /// counts from installation, as in OpenFlow).
    used_ns: AtomicU64,
}

impl Rule {
    /// Builds a rule; the match is normalised (`key &= mask`) so that two
    /// specs that match the same packets compare equal.
    pub(crate) fn new(mut spec: RuleSpec, seq: u64, created: Instant) -> Self {
        spec.matcher = FlowMatch::new(spec.matcher.key, spec.matcher.mask);
        Rule {
            spec,
            seq,
            created,
            n_packets: AtomicU64::new(0),
            n_bytes: AtomicU64::new(0),
            used_ns: AtomicU64::new(0),
        }
    }

    /// The spec as installed (match normalised).
    #[inline]
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }
    /// Higher wins.
    #[inline]
    pub fn priority(&self) -> u16 {
        self.spec.priority
    }
    /// The match (normalised: `key == key & mask`).
    #[inline]
    pub fn matcher(&self) -> &FlowMatch {
        &self.spec.matcher
    }
    /// The action list; empty means drop.
    #[inline]
    pub fn actions(&self) -> &[Action] {
        &self.spec.actions
    }
    /// Controller cookie.
    #[inline]
    pub fn cookie(&self) -> u64 {
        self.spec.cookie
    }
    /// Idle timeout in seconds (0 = none).
    pub fn idle_timeout(&self) -> u16 {
        self.spec.idle_timeout
    }
    /// Hard timeout in seconds (0 = none).
    pub fn hard_timeout(&self) -> u16 {
        self.spec.hard_timeout
    }
    /// Install order within its table (see the type docs for tie-breaking).
    #[inline]
    pub fn install_seq(&self) -> u64 {
        self.seq
    }
    /// When the rule was installed.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Adds `packets`/`bytes` matched at time `now` (call once per batch per
    /// rule, not per packet). `now` earlier than the install time counts as
    /// the install time; the last-used time never moves backwards.
    #[inline]
    pub fn record_hit(&self, packets: u64, bytes: u64, now: Instant) {
        self.n_packets.fetch_add(packets, Ordering::Relaxed);
        self.n_bytes.fetch_add(bytes, Ordering::Relaxed);
        let ns = now.saturating_duration_since(self.created).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        if ns > self.used_ns.load(Ordering::Relaxed) {
            self.used_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }
    /// Packets matched so far.
    pub fn n_packets(&self) -> u64 {
        self.n_packets.load(Ordering::Relaxed)
    }
    /// Bytes matched so far.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes.load(Ordering::Relaxed)
    }
    /// The last hit, or the install time if never hit.
    pub fn last_used(&self) -> Instant {
        self.created + Duration::from_nanos(self.used_ns.load(Ordering::Relaxed))
    }
    /// Time since installation.
    pub fn duration(&self) -> Duration {
        self.duration_at(Instant::now())
    }
    /// Time between installation and `now` (0 if `now` is earlier).
    pub fn duration_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }
    /// Time since the last hit (or installation).
    pub fn idle_age(&self) -> Duration {
        self.idle_age_at(Instant::now())
    }
    /// Time between the last hit (or installation) and `now`.
    pub fn idle_age_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_used())
    }

    /// Whether the rule has expired at `now`, and why. A timeout of `t`
    /// seconds expires the rule once `t` seconds have fully elapsed; the hard
    /// timeout is reported when both apply.
    pub fn expiry(&self, now: Instant) -> Option<ExpiryReason> {
        let hard = self.spec.hard_timeout;
        if hard != 0 && self.duration_at(now) >= Duration::from_secs(hard.into()) {
            return Some(ExpiryReason::Hard);
        }
        let idle = self.spec.idle_timeout;
        if idle != 0 && self.idle_age_at(now) >= Duration::from_secs(idle.into()) {
            return Some(ExpiryReason::Idle);
        }
        None
    }

    /// The lookup order key: priority descending, then install order.
    #[inline]
    pub(crate) fn order_key(&self) -> (core::cmp::Reverse<u16>, u64) {
        (core::cmp::Reverse(self.spec.priority), self.seq)
    }
}

impl core::fmt::Debug for Rule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rule")
            .field("spec", &self.spec)
            .field("install_seq", &self.seq)
            .field("n_packets", &self.n_packets())
            .field("n_bytes", &self.n_bytes())
            .finish()
    }
}

/// The `del-flows` (loose) predicate: does `filter` select a rule with match
/// `m`? True when `m` is equal to or more specific than `filter`: for every
/// bit the filter matches on, the rule matches on it too (the filter's mask
/// is a subset of the rule's mask) and both want the same value. The empty
/// filter selects every rule.
pub fn filter_covers(filter: &FlowMatch, m: &FlowMatch) -> bool {
    (0..KEY_WORDS).all(|i| {
        let fm = filter.mask.words[i];
        fm & !m.mask.words[i] == 0 && (m.key.words[i] & fm) == (filter.key.words[i] & fm)
    })
}
