//! Exchange time → signals computed (`exchange_to_signal`), on the wall clock.
//!
//! Every trade, quote and completed depth diff carries the venue's event time
//! (`T`/`E`, parsed to ns). Once its signals are computed the processor
//! records `now_realtime − ts_ns`. On a live venue this is exchange→signal
//! latency (network + engine, plus clock skew, at the venue's ms
//! resolution). The benchmark load server (`bench::load`) writes its
//! scheduled send time in ns into `E`/`T`, so there it is **wire→signal**:
//! frame due on the wire → signals computed, coordinated-omission free by
//! construction (the stamp is the intended send time, not the actual one).
//!
//! Samples outside (0, 10 s) are dropped (historical captures, skewed
//! clocks), so replays record nothing. The wall clock is derived from the
//! monotonic clock the processor already reads, rebased at every publish, so
//! this costs no extra clock read on the hot path.
//!
//! The histogram is process-wide (one pipeline per engine process); besides
//! the total it keeps a per-second series for latency-over-time plots.

use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::clock::{mono_ns, unix_ns};
use super::stats::{new_histogram, Summary};

/// Largest sample kept.
const MAX_NS: i64 = 10_000_000_000;

/// One second of the series: (unix second, count, p50, p99, p99.9, max) in ns.
pub type SeriesPoint = (i64, u64, u64, u64, u64, u64);

struct Shared {
    total: Option<Histogram<u64>>,
    second: i64,
    current: Option<Histogram<u64>>,
    series: Vec<SeriesPoint>,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    total: None,
    second: 0,
    current: None,
    series: Vec::new(),
});

fn point(second: i64, h: &Histogram<u64>) -> SeriesPoint {
    (
        second,
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    )
}

/// A signal thread's local recorder.
pub struct WireRecorder {
    /// Made at the first sample: replays never record one, and a histogram
    /// is 216 KB to zero (~55 page faults) at every processor's start.
    hist: Option<Histogram<u64>>,
    /// `unix_ns − mono_ns`, rebased at every publish.
    offset: i64,
}

impl Default for WireRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl WireRecorder {
    /// New recorder.
    #[must_use]
    pub fn new() -> Self {
        Self {
            hist: None,
            offset: unix_ns() - mono_ns() as i64,
        }
    }

    /// Records an event with exchange time `ts_ns` whose signals were done at
    /// monotonic `t_done`.
    #[inline]
    pub fn record(&mut self, ts_ns: i64, t_done: u64) {
        let d = (t_done as i64 + self.offset) - ts_ns;
        if d > 0 && d < MAX_NS {
            let _ = self.hist.get_or_insert_with(new_histogram).record(d as u64);
        }
    }

    /// Merges into the process-wide histogram and rebases the clock offset.
    pub fn publish(&mut self) {
        self.offset = unix_ns() - mono_ns() as i64;
        let Some(hist) = self.hist.as_mut().filter(|h| !h.is_empty()) else {
            return;
        };
        let second = (self.offset + mono_ns() as i64) / 1_000_000_000;
        if let Ok(mut s) = SHARED.lock() {
            let s = &mut *s;
            let _ = s.total.get_or_insert_with(new_histogram).add(&*hist);
            if s.second != second {
                if let Some(cur) = s.current.as_mut().filter(|c| !c.is_empty()) {
                    s.series.push(point(s.second, cur));
                    cur.reset();
                }
                s.second = second;
            }
            let _ = s.current.get_or_insert_with(new_histogram).add(&*hist);
        }
        hist.reset();
    }
}

impl Drop for WireRecorder {
    fn drop(&mut self) {
        self.publish();
    }
}

/// The process-wide distribution so far.
#[must_use]
pub fn total() -> Summary {
    SHARED
        .lock()
        .ok()
        .and_then(|s| s.total.as_ref().map(Summary::of))
        .unwrap_or_default()
}

/// The per-second series so far (including the current second).
#[must_use]
pub fn series() -> Vec<SeriesPoint> {
    SHARED
        .lock()
        .map(|s| {
            let mut v = s.series.clone();
            if let Some(cur) = s.current.as_ref().filter(|c| !c.is_empty()) {
                v.push(point(s.second, cur));
            }
            v
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_plausible_wall_clock_gaps() {
        let mut r = WireRecorder::new();
        let now = mono_ns();
        let wall = now as i64 + r.offset;
        r.record(1_723_161_600_000_000_000, now); // a 2024 capture: dropped
        r.record(wall + 1_000_000, now); // future: dropped
        assert!(r.hist.is_none(), "no histogram until a sample is kept");
        r.record(wall - 5_000, now); // 5 µs
        let h = r.hist.as_ref().expect("made at the first sample");
        assert_eq!(h.len(), 1);
        assert!((4_990..=5_010).contains(&h.max()));
    }
}
