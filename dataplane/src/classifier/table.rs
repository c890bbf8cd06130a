//! The flow table: one OpenFlow table shared by the control plane and PMDs.
//!
//! # What
//! [`FlowTable`] owns the rule set. Writers (flow add/delete, expiry) change
//! it; PMDs read an immutable [`Classifier`] snapshot of it, loaded once per
//! batch with [`FlowTable::snapshot`].
//!
//! # Publication (RCU-like)
//! The current snapshot sits in an `ArcSwap<Classifier>`. A reader's `load`
//! is lock-free and wait-free in the common case; it never blocks a writer
//! and a writer never blocks it. A writer takes the table's own mutex (the
//! `flow_table` level of [`crate::locks`], below `ports` and above `fdb`,
//! checked in debug builds; it takes no other lock while holding it), edits
//! the working copy in the [`TssEditor`] copy-on-write — only the touched
//! subtable, one shard group and one shard are copied, everything else is
//! shared with the previous snapshot — and stores
//! a new `Arc<Classifier>` with a fresh generation. `add_batch`, loose
//! deletes and `expire` publish once for all their changes.
//!
//! Every publication gets a new generation number (process-wide unique,
//! never 0), so a cache that tags entries with the generation of the
//! snapshot they were computed from can never serve a stale answer.
//!
//! # Reclamation
//! An old snapshot is freed when its last reader drops its guard (arc-swap
//! reference counting); that may happen on a PMD thread at a batch boundary.
//! A snapshot only holds rules and tables, never ports, so keeping an old
//! one alive a little longer has no effect beyond memory.
//!
//! # Semantics (OpenFlow 1.0 single table, as `ovs-ofctl`)
//! * Highest priority wins; among overlapping rules of equal priority the
//!   earlier installed wins (OpenFlow leaves it undefined; xswitch makes it
//!   deterministic).
//! * `add` with the identical (normalised) match and priority replaces the
//!   rule: new actions, cookie and timeouts, counters and install time
//!   restart, but the replacement keeps the old rule's install order.
//! * Loose delete removes every rule equal to or more specific than the
//!   filter; strict delete the one with the identical match and priority.
//! * Hard timeouts count from installation, idle timeouts from the last hit.

use super::rule::{Rule, RuleSpec};
use super::tss::{Classifier, TssEditor};
use crate::flow_key::FlowMatch;
use crate::locks::{LockLevel, OrderedGuard, OrderedMutex};
use arc_swap::ArcSwap;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What [`FlowTable::snapshot`] returns: a lock-free guard on the current
/// classifier. Hold it for one batch, not across blocking calls.
pub type Snapshot = arc_swap::Guard<Arc<Classifier>>;

/// Process-wide generation counter (0 is never handed out).
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

struct Writer {
    editor: TssEditor,
    next_seq: u64,
}

impl Writer {
    fn install(&mut self, mut spec: RuleSpec, now: Instant) -> Arc<Rule> {
        spec.matcher = FlowMatch::new(spec.matcher.key, spec.matcher.mask);
        let seq = match self.editor.find(&spec.matcher, spec.priority) {
            Some(old) => old.install_seq(),
            None => {
                self.next_seq += 1;
                self.next_seq - 1
            }
        };
        let rule = Arc::new(Rule::new(spec, seq, now));
        self.editor.insert(Arc::clone(&rule));
        rule
    }

    fn remove_all(&mut self, victims: &[Arc<Rule>]) {
        for r in victims {
            self.editor.remove(r.matcher(), r.priority());
        }
    }
}

/// One OpenFlow table (see the module docs).
pub struct FlowTable {
    published: ArcSwap<Classifier>,
    writer: OrderedMutex<Writer>,
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowTable")
            .field("snapshot", &**self.snapshot())
            .finish()
    }
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        let editor = TssEditor::new();
        let first = editor.publish(next_generation());
        FlowTable {
            published: ArcSwap::from_pointee(first),
            writer: OrderedMutex::new(
                LockLevel::FlowTable,
                Writer {
                    editor,
                    next_seq: 0,
                },
            ),
        }
    }

    /// The `flow_table` lock. `OrderedMutex` checks the hierarchy in debug
    /// builds and takes over a poisoned lock: a panicking writer cannot leave
    /// readers inconsistent (they only see published snapshots).
    fn lock(&self) -> OrderedGuard<'_, Writer> {
        self.writer.lock()
    }

    fn publish(&self, w: &Writer) {
        self.published
            .store(Arc::new(w.editor.publish(next_generation())));
    }

    /// Installs one rule (replacing one with the identical match and
    /// priority) and publishes. Returns the installed rule.
    pub fn add(&self, spec: RuleSpec) -> Arc<Rule> {
        let mut w = self.lock();
        let rule = w.install(spec, Instant::now());
        self.publish(&w);
        rule
    }

    /// Installs every spec in order, then publishes once. Returns how many
    /// specs were installed (replacements included).
    pub fn add_batch(&self, specs: impl IntoIterator<Item = RuleSpec>) -> usize {
        let mut w = self.lock();
        let now = Instant::now();
        let mut n = 0;
        for spec in specs {
            w.install(spec, now);
            n += 1;
        }
        if n > 0 {
            self.publish(&w);
        }
        n
    }

    /// `del-flows`: with `strict_priority = None`, removes every rule whose
    /// match is equal to or more specific than `filter` (loose); with
    /// `Some(p)`, the rule with exactly match `filter` and priority `p`.
    /// Returns how many rules were removed.
    pub fn delete(&self, filter: &FlowMatch, strict_priority: Option<u16>) -> usize {
        self.remove(filter, strict_priority).len()
    }

    /// Like [`FlowTable::delete`], returning the removed rules (priority
    /// descending, then install order), e.g. for flow-removed reports.
    pub fn remove(&self, filter: &FlowMatch, strict_priority: Option<u16>) -> Vec<Arc<Rule>> {
        let f = FlowMatch::new(filter.key, filter.mask);
        let mut w = self.lock();
        let mut victims = match strict_priority {
            Some(p) => w.editor.find(&f, p).cloned().into_iter().collect(),
            None => w.editor.covered(&f),
        };
        if !victims.is_empty() {
            w.remove_all(&victims);
            self.publish(&w);
        }
        victims.sort_by_key(|r| r.order_key());
        victims
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut w = self.lock();
        let n = w.editor.len();
        if n > 0 {
            w.editor = TssEditor::new();
            self.publish(&w);
        }
        n
    }

    /// Every rule, priority descending, then install order (from the
    /// current snapshot; takes no lock).
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.snapshot().rules()
    }

    /// Number of rules in the current snapshot.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// True when the current snapshot has no rules.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Removes and returns every rule whose idle or hard timeout has expired
    /// at `now` (see [`Rule::expiry`]), in one publication.
    pub fn expire(&self, now: Instant) -> Vec<Arc<Rule>> {
        let mut w = self.lock();
        let mut victims: Vec<Arc<Rule>> = w
            .editor
            .rules()
            .filter(|r| r.expiry(now).is_some())
            .cloned()
            .collect();
        if !victims.is_empty() {
            w.remove_all(&victims);
            self.publish(&w);
        }
        victims.sort_by_key(|r| r.order_key());
        victims
    }

    /// The current classifier, lock-free. A PMD loads it once per batch.
    #[inline]
    pub fn snapshot(&self) -> Snapshot {
        self.published.load()
    }

    /// The generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation()
    }

    /// Checks the writer's internal bookkeeping (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.lock().editor.check_invariants();
    }
}
