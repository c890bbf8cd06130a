//! The reference oracle: a vector of rules scanned in order.
//!
//! # What
//! [`LinearClassifier`] implements the same OpenFlow table semantics as
//! [`super::FlowTable`] in the most obvious way, so property tests can check
//! the tuple-space search against it and benchmarks can show what TSS buys.
//!
//! # Invariants
//! `rules` is sorted by priority (descending), then install sequence
//! (ascending); the first rule whose match a key satisfies is the answer.
//! At most one rule per (match, priority). A replacement takes the replaced
//! rule's place and install sequence, exactly as in the flow table.
//!
//! # Locking
//! None: it is a plain single-owner value (`&mut self` to change it).

use super::rule::{filter_covers, Rule, RuleSpec};
use crate::flow_key::{FlowKey, FlowMatch};
use std::sync::Arc;
use std::time::Instant;

/// A linear-scan classifier with flow-table semantics (test and bench oracle).
#[derive(Debug, Default)]
pub struct LinearClassifier {
    rules: Vec<Arc<Rule>>,
    next_seq: u64,
}

impl LinearClassifier {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `spec`, replacing a rule with the identical match and
    /// priority (which keeps its position; counters restart). Returns the
    /// installed rule.
    pub fn insert(&mut self, spec: RuleSpec) -> Arc<Rule> {
        let now = Instant::now();
        let m = FlowMatch::new(spec.matcher.key, spec.matcher.mask);
        let prio = spec.priority;
        if let Some(i) = self
            .rules
            .iter()
            .position(|r| r.priority() == prio && *r.matcher() == m)
        {
            let rule = Arc::new(Rule::new(spec, self.rules[i].install_seq(), now));
            self.rules[i] = Arc::clone(&rule);
            return rule;
        }
        let rule = Arc::new(Rule::new(spec, self.next_seq, now));
        self.next_seq += 1;
        let key = rule.order_key();
        let at = self.rules.partition_point(|r| r.order_key() < key);
        self.rules.insert(at, Arc::clone(&rule));
        rule
    }

    /// Removes rules: with `strict_priority = Some(p)` the rule with exactly
    /// match `filter` and priority `p`; with `None` every rule whose match is
    /// equal to or more specific than `filter`. Returns them in table order.
    pub fn remove(&mut self, filter: &FlowMatch, strict_priority: Option<u16>) -> Vec<Arc<Rule>> {
        let f = FlowMatch::new(filter.key, filter.mask);
        let selected = |r: &Rule| match strict_priority {
            Some(p) => r.priority() == p && *r.matcher() == f,
            None => filter_covers(&f, r.matcher()),
        };
        self.take_where(|r| selected(r))
    }

    /// Removes and returns every rule expired at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<Rule>> {
        self.take_where(|r| r.expiry(now).is_some())
    }

    fn take_where(&mut self, mut pred: impl FnMut(&Rule) -> bool) -> Vec<Arc<Rule>> {
        let mut taken = Vec::new();
        self.rules.retain(|r| {
            if pred(r) {
                taken.push(Arc::clone(r));
                false
            } else {
                true
            }
        });
        taken
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.rules.len();
        self.rules.clear();
        n
    }

    /// The first rule (highest priority, earliest installed) matching `key`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| r.matcher().matches(key))
    }

    /// Rules in lookup order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
