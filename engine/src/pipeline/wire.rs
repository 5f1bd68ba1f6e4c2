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

/// A signal thread's local recorder: the samples since its last publish,
/// raw. Publishing records each into the process-wide histograms; merging a
/// local histogram instead walked and reset three 216 KB bucket arrays
/// every 200 ms (`Histogram::add` and `reset`: ~600k instructions per
/// publish, 41% of a 500 msg/s live run's receiver instructions outside
/// tungstenite's buffer zeroing, callgrind), and evicted that much cache.
pub struct WireRecorder {
    /// Allocated at the first sample (replays never record one).
    samples: Vec<u64>,
    /// `unix_ns − mono_ns`, rebased at every publish.
    offset: i64,
}

impl Default for WireRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl WireRecorder {
    /// Samples buffered before they are published regardless of the
    /// processor's 200 ms publish interval (32 KiB): above ~20k kept
    /// samples a second it fills within the interval.
    pub const BUFFER: usize = 4096;

    /// New recorder.
    #[must_use]
    pub fn new() -> Self {
        Self {
            samples: Vec::new(),
            offset: unix_ns() - mono_ns() as i64,
        }
    }

    /// Records an event with exchange time `ts_ns` whose signals were done at
    /// monotonic `t_done`.
    #[inline]
    pub fn record(&mut self, ts_ns: i64, t_done: u64) {
        let d = (t_done as i64 + self.offset) - ts_ns;
        if d > 0 && d < MAX_NS {
            // Empty and unallocated, or full: one test for both.
            if self.samples.len() == self.samples.capacity() {
                self.make_room();
            }
            self.samples.push(d as u64);
        }
    }

    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(Self::BUFFER);
        } else {
            self.merge();
        }
    }

    /// Merges into the process-wide histogram and rebases the clock offset.
    pub fn publish(&mut self) {
        self.offset = unix_ns() - mono_ns() as i64;
        self.merge();
    }

    /// Records the buffered samples into the process-wide histograms (the
    /// per-second series takes them in the second of the merge).
    fn merge(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let second = (self.offset + mono_ns() as i64) / 1_000_000_000;
        if let Ok(mut s) = SHARED.lock() {
            let s = &mut *s;
            if s.second != second {
                if let Some(cur) = s.current.as_mut().filter(|c| !c.is_empty()) {
                    s.series.push(point(s.second, cur));
                    cur.reset();
                }
                s.second = second;
            }
            let total = s.total.get_or_insert_with(new_histogram);
            let current = s.current.get_or_insert_with(new_histogram);
            for &d in &self.samples {
                // In range by `record`'s check (0 < d < 10 s).
                let _ = total.record(d);
                let _ = current.record(d);
            }
        }
        self.samples.clear();
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
        assert_eq!(r.samples.capacity(), 0, "no buffer until a sample is kept");
        r.record(wall - 5_000, now); // 5 µs
        assert_eq!(r.samples, [5_000]);
    }

    /// Published samples reach the process-wide total; a full buffer is
    /// published without waiting for the processor's interval and never
    /// grows. (Other tests share the process-wide histograms: counts are
    /// compared as at-least deltas.)
    #[test]
    fn samples_reach_the_total_and_the_buffer_stays_bounded() {
        let before = total().count;
        let mut r = WireRecorder::new();
        let now = mono_ns();
        let wall = now as i64 + r.offset;
        let n = WireRecorder::BUFFER + 10;
        for i in 0..n {
            r.record(wall - 7_000_000 - i as i64, now);
        }
        assert_eq!(r.samples.len(), 10, "the first BUFFER were merged");
        assert!(
            r.samples.capacity() < 2 * WireRecorder::BUFFER,
            "never grew"
        );
        assert!(total().count >= before + WireRecorder::BUFFER as u64);
        r.publish();
        assert!(r.samples.is_empty());
        let t = total();
        assert!(t.count >= before + n as u64, "{} < {before} + {n}", t.count);
        assert!(t.max >= 7_000_000, "{}", t.max);
        assert!(series().iter().map(|p| p.1).sum::<u64>() >= n as u64);
    }
}
