//! Drop reasons and counters.
//!
//! Every packet the switch receives is either transmitted or counted under
//! exactly one [`DropReason`]. Counting goes through one path
//! ([`DropCounters::add`]) so that the accounting invariant can be checked by
//! tests: `rx == tx + sum(drops)` per port and in total.
//!
//! Counters live per PMD thread (plain `u64`, no atomics on the hot path) and
//! per port (relaxed atomics, written in batches); readers sum them.

use core::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was not delivered. The names are the counter names users see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    NoPort,
    PortUnregistering,
    PortDown,
    NoCarrier,
    NoTxQueue,
    TxRingFull,
    TxError,
    MtuExceeded,
    Malformed,
    TtlExpired,
    NoMatch,
    ActionDrop,
    LoopPrevented,
    UmemExhausted,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 14;
    /// All reasons, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NoPort,
        DropReason::PortUnregistering,
        DropReason::PortDown,
        DropReason::NoCarrier,
        DropReason::NoTxQueue,
        DropReason::TxRingFull,
        DropReason::TxError,
        DropReason::MtuExceeded,
        DropReason::Malformed,
        DropReason::TtlExpired,
        DropReason::NoMatch,
        DropReason::ActionDrop,
        DropReason::LoopPrevented,
        DropReason::UmemExhausted,
    ];

    /// The counter name (DESIGN.md "Drop reasons").
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::NoPort => "no_port",
            DropReason::PortUnregistering => "port_unregistering",
            DropReason::PortDown => "port_down",
            DropReason::NoCarrier => "no_carrier",
            DropReason::NoTxQueue => "no_tx_queue",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::TxError => "tx_error",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::Malformed => "malformed",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoMatch => "no_match",
            DropReason::ActionDrop => "action_drop",
            DropReason::LoopPrevented => "loop_prevented",
            DropReason::UmemExhausted => "umem_exhausted",
        }
    }

    /// Parses a counter name.
    pub fn from_name(s: &str) -> Option<DropReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Single-writer drop counters (one per PMD, or per port in a PMD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl DropCounters {
    /// Counts `n` packets dropped for `reason`.
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.counts[reason as usize] += n;
    }
    /// Packets dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Adds another set of counters into this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
    /// `(reason, count)` for every non-zero reason.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

/// Drop counters shared between a writer thread and readers (per port).
#[derive(Debug, Default)]
pub struct AtomicDropCounters {
    counts: [AtomicU64; DropReason::COUNT],
}

impl AtomicDropCounters {
    /// Adds `n` drops for `reason` (relaxed; readers need no ordering).
    #[inline]
    pub fn add(&self, reason: DropReason, n: u64) {
        if n != 0 {
            self.counts[reason as usize].fetch_add(n, Ordering::Relaxed);
        }
    }
    /// A consistent-enough snapshot for reporting.
    pub fn snapshot(&self) -> DropCounters {
        let mut out = DropCounters::default();
        for r in DropReason::ALL {
            out.add(r, self.counts[r as usize].load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_name(r.as_str()), Some(r));
            assert_eq!(DropReason::ALL[r as usize], r);
        }
        assert_eq!(DropReason::from_name("bogus"), None);
    }

    #[test]
    fn counters_add_and_merge() {
        let mut a = DropCounters::default();
        a.add(DropReason::NoCarrier, 3);
        let mut b = DropCounters::default();
        b.add(DropReason::NoCarrier, 2);
        b.add(DropReason::Malformed, 1);
        a.merge(&b);
        assert_eq!(a.get(DropReason::NoCarrier), 5);
        assert_eq!(a.total(), 6);
        assert_eq!(a.nonzero().count(), 2);
    }
}
