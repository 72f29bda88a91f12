//! Running statistics of a stretch of events: counts, first and last `Log` step, last event.
//!
//! Segment headers, step-index entries and version headers store these for the events before them, so
//! `info`, `runs` and fork-point lookups never replay a history.

use serde::{Deserialize, Serialize};

use crate::codec::RawEvent;
use crate::format::NO_STEP;

/// Statistics of a sequence of events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct Stats {
    /// Number of `Log` events (history rows).
    pub rows: u64,
    /// Number of events of every kind.
    pub events: u64,
    /// Step of the first `Log` event.
    pub first_log: Option<u64>,
    /// Step of the last `Log` event.
    pub last_log: Option<u64>,
    /// Step of the last event.
    pub last_event: Option<u64>,
    /// True when the last event is a `Finish`.
    pub last_is_finish: bool,
}

impl Stats {
    /// Adds one event at the end.
    pub(crate) fn push(&mut self, ev: &RawEvent) {
        self.record(ev.step(), ev.is_log(), matches!(ev, RawEvent::Finish { .. }));
    }

    /// Adds one event at the end, described by its step and kind.
    pub(crate) fn record(&mut self, step: u64, is_log: bool, is_finish: bool) {
        // Counts saturate: they may come from a damaged (yet CRC-valid) index entry or segment header, and
        // reading one must not panic (fuzz/, segment_recovery).
        self.events = self.events.saturating_add(1);
        if is_log {
            self.rows = self.rows.saturating_add(1);
            self.first_log.get_or_insert(step);
            self.last_log = Some(step);
        }
        self.last_event = Some(step);
        self.last_is_finish = is_finish;
    }

    /// Adds `n >= 1` `Log` events at the end, the first at step `first` and the last at step `last`.
    pub(crate) fn record_logs(&mut self, first: u64, last: u64, n: u64) {
        self.events = self.events.saturating_add(n);
        self.rows = self.rows.saturating_add(n);
        self.first_log.get_or_insert(first);
        self.last_log = Some(last);
        self.last_event = Some(last);
        self.last_is_finish = false;
    }

    /// The statistics of `self` followed by `later`.
    pub(crate) fn then(&self, later: &Stats) -> Stats {
        if later.events == 0 {
            return *self;
        }
        Stats {
            rows: self.rows.saturating_add(later.rows),
            events: self.events.saturating_add(later.events),
            first_log: self.first_log.or(later.first_log),
            last_log: later.last_log.or(self.last_log),
            last_event: later.last_event.or(self.last_event),
            last_is_finish: later.last_is_finish,
        }
    }
}

/// An optional step as a fixed-size field (`NO_STEP` for none).
pub(crate) fn opt(x: Option<u64>) -> u64 {
    x.unwrap_or(NO_STEP)
}

/// Flag bits 1, 2, 3: `first_log`, `last_log`, `last_event` are present (so a step of `u64::MAX` survives;
/// files written before these bits read as before: `NO_STEP` = none). Used by segment headers and index entries.
pub(crate) fn presence(s: &Stats) -> u32 {
    u32::from(s.first_log.is_some()) << 1
        | u32::from(s.last_log.is_some()) << 2
        | u32::from(s.last_event.is_some()) << 3
}

/// Reads an optional step field whose presence bit is `bit` of `flags`.
pub(crate) fn unopt(x: u64, flags: u32, bit: u32) -> Option<u64> {
    (flags & (1 << bit) != 0 || x != NO_STEP).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_instead_of_overflowing() {
        // Found by fuzz/ (segment_recovery): an index entry claiming u64::MAX rows made `info` panic with
        // "attempt to add with overflow" in `then` (debug builds; release builds wrapped silently).
        let huge = Stats { rows: u64::MAX, events: u64::MAX, ..Stats::default() };
        let mut s = Stats::default();
        s.record(3, true, false);
        assert_eq!(s.then(&huge).rows, u64::MAX);
        assert_eq!(huge.then(&s).events, u64::MAX);
        let mut h = huge;
        h.record(4, true, true);
        assert_eq!((h.rows, h.events, h.last_is_finish), (u64::MAX, u64::MAX, true));
    }
}
