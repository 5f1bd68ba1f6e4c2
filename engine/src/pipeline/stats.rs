//! Counters and latency histograms published by the pipeline threads and read
//! off the hot path (stats file, live view, metrics).
//!
//! Every counter has exactly one writer thread, so increments are a relaxed
//! load + store (a plain `mov`, no locked instruction).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use feeds::event::InstrumentInfo;
use hdrhistogram::Histogram;

/// A single-writer counter.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one (single writer).
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n` (single writer).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A single-writer gauge.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    /// Current value.
    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Per-instrument counters, written by the instrument's signal thread.
#[derive(Default, Debug)]
pub struct InstrumentStats {
    /// Events processed (trades, quotes, depth diffs, snapshots).
    pub events: Counter,
    /// Nanoseconds the book was out of sync after its first sync (receive clock).
    pub lost_ns: Counter,
    /// Accepted trades.
    pub trades: Counter,
    /// Applied live depth diffs.
    pub book_updates: Counter,
    /// Sequence gaps (live and during snapshot replay).
    pub gaps: Counter,
    /// Times the book synced again after a gap, checksum mismatch or reset.
    pub resyncs: Counter,
    /// Applied diffs that left the book crossed or locked.
    pub crossed: Counter,
    /// Applied diffs that left a book side empty.
    pub empty_side: Counter,
    /// Crossed or locked L1 quotes.
    pub quotes_crossed: Counter,
    /// L1 quotes with an empty side.
    pub quotes_empty_side: Counter,
    /// Exchange book checksums that matched the book.
    pub checksum_ok: Counter,
    /// Exchange book checksums that did not match (book resynced).
    pub checksum_failed: Counter,
    /// Checksums the venue sent as "absent" (OKX's 0 since 2026).
    pub checksum_absent: Counter,
    /// Top-of-book cross-checks (Binance `bookTicker`) that matched the book.
    pub crosscheck_ok: Counter,
    /// Top-of-book cross-checks that did not match (book resynced).
    pub crosscheck_failed: Counter,
    /// Duplicate or old trade ids dropped.
    pub dup_trades: Counter,
    /// Trades dropped for a non-positive price or size.
    pub bad_trades: Counter,
    /// Stale bookTicker updates dropped.
    pub stale_quotes: Counter,
    /// Stale depth diffs dropped.
    pub stale_diffs: Counter,
    /// Feed resets (reconnects) seen.
    pub resets: Counter,
    /// Signal rows emitted.
    pub rows: Counter,
    /// Best bid price, ticks (0 = none).
    pub best_bid: Gauge,
    /// Best ask price, ticks (0 = none).
    pub best_ask: Gauge,
    /// Bid levels in the book.
    pub bid_levels: Gauge,
    /// Ask levels in the book.
    pub ask_levels: Gauge,
    /// 1 when the depth book is synced.
    pub synced: Gauge,
    /// Monotonic ns of the last event.
    pub last_event_mono: Gauge,
}

/// Per-feed (receiver thread) counters.
#[derive(Default, Debug)]
pub struct FeedStats {
    /// Frames parsed into events.
    pub messages: Counter,
    /// Frames that failed to parse (malformed JSON, bad numbers, ...).
    pub parse_errors: Counter,
    /// Frames of an unknown kind.
    pub unknown_messages: Counter,
    /// Frames recognised but not used (other trade stream, other symbols).
    pub ignored_messages: Counter,
    /// Control frames (subscription acks).
    pub control_messages: Counter,
    /// Requests (subscriptions) the venue refused.
    pub rejected_requests: Counter,
    /// Capture lines that were not records (no timestamp, not UTF-8, truncated).
    pub bad_records: Counter,
    /// Bytes of frames received (payloads as the parser sees them: inflated
    /// when the connection is compressed).
    pub bytes: Counter,
    /// Bytes read from the feed's TCP sockets (live): WebSocket framing,
    /// compressed payloads and TLS included. Shared with the sockets.
    pub wire_bytes: std::sync::Arc<Counter>,
    /// 1 when the feed's latest handshake agreed on permessage-deflate, 0
    /// when it was not offered or the server declined (`compression`).
    pub compressed: Gauge,
    /// Handshakes that agreed on permessage-deflate.
    pub compressed_connects: Counter,
    /// Connections made (live).
    pub connects: Counter,
    /// Disconnections (live).
    pub disconnects: Counter,
    /// Snapshots fetched (live).
    pub snapshots: Counter,
    /// Snapshot fetch failures (live; each is retried after its backoff).
    pub snapshot_errors: Counter,
    /// Connections replaced by the data watchdog (open, but no market data).
    pub watchdog_reconnects: Counter,
    /// Connections replaced make before break (planned rollovers).
    pub rollovers: Counter,
    /// REST weight this process spent on the feed's venue (shared budget).
    pub rest_weight_used: Gauge,
    /// Disconnections by reason ([`DISCONNECT_REASONS`]).
    pub disconnect_reasons: [Counter; DISCONNECT_REASONS.len()],
    /// Snapshot requests by result: ok, failed (retried), not a book.
    pub recovery_results: [Counter; RECOVERY_RESULTS.len()],
    /// Open connections (live; a feed may open several).
    pub connected: Gauge,
    /// Connections the feed keeps open when healthy (live).
    pub connections: Gauge,
    /// Monotonic ns of the last frame.
    pub last_frame_mono: Gauge,
}

/// Why a connection ended (the `reason` label of
/// `wiresignal_feed_reconnects_total`), from the receiver's reason text.
pub const DISCONNECT_REASONS: [&str; 6] = ["watchdog", "idle", "closed", "error", "send", "other"];

/// The index in [`DISCONNECT_REASONS`] of a receiver's reason text.
#[must_use]
pub fn disconnect_reason(text: &str) -> usize {
    let prefixes: [(&str, usize); 6] = [
        ("data watchdog", 0),
        ("idle", 1),
        ("closed by server", 2),
        ("websocket", 3),
        ("send failed", 4),
        ("ping send failed", 4),
    ];
    prefixes
        .iter()
        .find(|(p, _)| text.starts_with(p))
        .map_or(5, |&(_, i)| i)
}

/// Results of recovery (snapshot) requests (the `result` label of
/// `wiresignal_recovery_requests_total`).
pub const RECOVERY_RESULTS: [&str; 3] = ["ok", "failed", "not_a_book"];

/// Occupancy of one SPSC ring, written by its consumer (a signal thread)
/// before each drain.
#[derive(Debug)]
pub struct RingStats {
    /// Capacity in slots.
    pub capacity: u64,
    /// Slots in use when the consumer last looked.
    pub occupancy: Gauge,
    /// Highest occupancy seen.
    pub high_water: Gauge,
}

impl RingStats {
    /// Records an occupancy sample (single writer; stores only on change).
    #[inline]
    pub fn observe(&self, used: usize) {
        let used = used as i64;
        if self.occupancy.get() != used {
            self.occupancy.set(used);
            if used > self.high_water.get() {
                self.high_water.set(used);
            }
        }
    }
}

/// Pipeline stages measured with hdrhistogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Frame received → its events pushed into the ring (parse + normalize).
    Parse = 0,
    /// Pushed → popped by the signal thread.
    RingHop = 1,
    /// Popped → book applied and signals computed.
    Signal = 2,
    /// Frame received → signals computed.
    FrameToSignal = 3,
    /// Frame received → output row written by the sink.
    FrameToSink = 4,
}

impl Stage {
    /// All stages in report order.
    pub const ALL: [Stage; 5] = [
        Stage::Parse,
        Stage::RingHop,
        Stage::Signal,
        Stage::FrameToSignal,
        Stage::FrameToSink,
    ];

    /// Stable name used in stats and metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::RingHop => "ring_hop",
            Stage::Signal => "book_and_signals",
            Stage::FrameToSignal => "frame_to_signal",
            Stage::FrameToSink => "frame_to_sink",
        }
    }
}

/// A latency histogram (1 ns .. 60 s, 3 significant digits).
#[must_use]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|e| unreachable!("static bounds: {e}"))
}

/// One stage's latency distribution as every table shows it, in ns (see
/// [`Registry::summary`]); all zero without samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// The values at [`Summary::QUANTILES`]: p50, p90, p95, p99, p99.9.
    pub quantiles: [u64; 5],
    /// The largest sample (at bucket resolution, as hdrhistogram's `max`).
    pub max: u64,
    /// The mean, each sample at its bucket's midpoint (hdrhistogram's).
    pub mean: f64,
}

impl Summary {
    /// The quantiles of [`Summary::quantiles`].
    pub const QUANTILES: [f64; 5] = [0.50, 0.90, 0.95, 0.99, 0.999];

    /// The summary of histogram `h` (one pass for the quantiles).
    #[must_use]
    pub fn of(h: &Histogram<u64>) -> Self {
        let mut q = h.value_at_quantiles(Self::QUANTILES);
        Self {
            count: h.len(),
            quantiles: std::array::from_fn(|_| q.next().unwrap_or(0)),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// The value at p50.
    #[must_use]
    pub const fn p50(&self) -> u64 {
        self.quantiles[0]
    }

    /// The value at p99.
    #[must_use]
    pub const fn p99(&self) -> u64 {
        self.quantiles[3]
    }
}

/// One thread's latency samples of one stage, counted in place in the
/// shared histogram's own bucket layout; readers ([`Registry::summary`])
/// sum the counts of every thread.
///
/// Recording into an hdrhistogram costs ~60 instructions per sample (index,
/// bounds, count, total, min and max) and needs it locked or merged; at
/// four or five stages per message that was ~300 of the engine's ~7,000
/// instructions per message. Here a sample is one bucket index (a
/// `leading_zeros` and a shift) and a single-writer counter increment (a
/// plain `add`, no lock, no locked instruction), for 216 KB of counters per
/// thread and stage. The histogram a reader builds equals one that recorded
/// every sample (counts, total, and min and max, which hdrhistogram reports
/// at bucket resolution): see the tests.
pub struct StageSamples {
    /// Samples per bucket index of [`new_histogram`]'s layout; shared with
    /// the registry, written only here.
    counts: Arc<[Counter]>,
}

/// The bucket layout of [`new_histogram`]: 3 significant digits give 2048
/// sub-buckets (half: 1024), 1 ns units.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKET_MASK: u64 = (1 << (SUB_BUCKET_HALF_MAGNITUDE + 1)) - 1;
/// Buckets per group of [`Registry::summary`]'s first pass: one power of
/// two's sub-buckets.
const GROUP: usize = 1 << SUB_BUCKET_HALF_MAGNITUDE;

impl StageSamples {
    /// Buckets of [`new_histogram`] (its `distinct_values`): 26 power-of-two
    /// buckets of 1024 sub-buckets past the first 2048, up to 2^36 ns.
    const BUCKETS: usize = (26 + 1) << SUB_BUCKET_HALF_MAGNITUDE;

    /// Power-of-two bucket of `v` (hdrhistogram's `bucket_for`).
    #[inline(always)]
    const fn bucket(v: u64) -> u32 {
        (64 - SUB_BUCKET_HALF_MAGNITUDE - 1) - (v | SUB_BUCKET_MASK).leading_zeros()
    }

    /// Index of `v` in the counts array (hdrhistogram's `index_for`).
    #[inline(always)]
    const fn index(v: u64) -> usize {
        let b = Self::bucket(v);
        (((b + 1) << SUB_BUCKET_HALF_MAGNITUDE) as usize) + (v >> b) as usize
            - (1 << SUB_BUCKET_HALF_MAGNITUDE)
    }

    /// The lowest value counted at `index` (hdrhistogram's `value_from_index`).
    #[inline]
    const fn lowest_value(index: usize) -> u64 {
        let half = 1usize << SUB_BUCKET_HALF_MAGNITUDE;
        if index < 2 * half {
            return index as u64;
        }
        let b = (index >> SUB_BUCKET_HALF_MAGNITUDE) - 1;
        (((index & (half - 1)) + half) as u64) << b
    }

    /// The highest value counted at `index` (hdrhistogram's
    /// `highest_equivalent`).
    #[inline]
    const fn highest_value(index: usize) -> u64 {
        Self::lowest_value(index) + Self::width(index) - 1
    }

    /// The middle of the values counted at `index` (hdrhistogram's
    /// `median_equivalent`, which its mean takes for each sample).
    #[inline]
    const fn midpoint(index: usize) -> u64 {
        Self::lowest_value(index) + (Self::width(index) >> 1)
    }

    /// How many values `index` counts together (hdrhistogram's
    /// `equivalent_range`).
    #[inline]
    const fn width(index: usize) -> u64 {
        let half = 1usize << SUB_BUCKET_HALF_MAGNITUDE;
        if index < 2 * half {
            1
        } else {
            1 << ((index >> SUB_BUCKET_HALF_MAGNITUDE) - 1)
        }
    }

    /// Adds a sample in ns (0 counts as 1 ns; beyond the histogram's range,
    /// about 68 s: dropped, as `Histogram::record` would). No allocation,
    /// no lock.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if let Some(c) = self.counts.get(Self::index(ns.max(1))) {
            c.inc();
        }
    }

    /// Adds these counts to `h`.
    #[cfg(test)]
    fn add_to(counts: &[Counter], h: &mut Histogram<u64>) {
        for (i, c) in counts.iter().enumerate() {
            let n = c.get();
            if n != 0 {
                let _ = h.record_n(Self::lowest_value(i), n);
            }
        }
    }
}

/// Shared registry of everything the threads publish.
#[derive(Default)]
pub struct Registry {
    instruments: Mutex<Vec<(InstrumentInfo, Arc<InstrumentStats>)>>,
    feeds: Mutex<Vec<(String, Arc<FeedStats>)>>,
    /// Per stage: every thread's in-place counts ([`StageSamples`]).
    samples: Mutex<Vec<(Stage, Arc<[Counter]>)>>,
    /// Pushes that found a ring full.
    pub ring_full_waits: Arc<AtomicU64>,
    /// Times a producer woke the sleeping sink thread (`sink_wake_us`
    /// coalesces them).
    pub sink_wakeups: Arc<AtomicU64>,
    /// The receivers' overflow stages (`overload = "merge"`).
    pub overload: Arc<super::overload::OverloadCounters>,
    rings: Mutex<Vec<(String, Arc<RingStats>)>>,
    sinks: Mutex<Vec<(String, Arc<crate::sinks::SinkCounters>)>>,
    gateway: OnceLock<Arc<crate::metrics::gateway::Hub>>,
    metrics_addr: OnceLock<SocketAddr>,
}

impl Registry {
    /// New, empty registry.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// Registers an instrument (signal thread, first sight).
    pub fn add_instrument(&self, info: InstrumentInfo) -> Arc<InstrumentStats> {
        let stats = Arc::new(InstrumentStats::default());
        if let Ok(mut v) = self.instruments.lock() {
            v.push((info, stats.clone()));
        }
        stats
    }

    /// Registers a feed (receiver thread).
    pub fn add_feed(&self, name: &str) -> Arc<FeedStats> {
        let stats = Arc::new(FeedStats::default());
        if let Ok(mut v) = self.feeds.lock() {
            v.push((name.to_owned(), stats.clone()));
        }
        stats
    }

    /// Snapshot of the instruments.
    pub fn instruments(&self) -> Vec<(InstrumentInfo, Arc<InstrumentStats>)> {
        self.instruments
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Snapshot of the feeds.
    pub fn feeds(&self) -> Vec<(String, Arc<FeedStats>)> {
        self.feeds.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Registers a ring of `capacity` slots under `name`.
    pub fn add_ring(&self, name: String, capacity: usize) -> Arc<RingStats> {
        let stats = Arc::new(RingStats {
            capacity: capacity as u64,
            occupancy: Gauge::default(),
            high_water: Gauge::default(),
        });
        if let Ok(mut v) = self.rings.lock() {
            v.push((name, stats.clone()));
        }
        stats
    }

    /// Registers a `[[sinks]]` entry's counters.
    pub fn add_sink(&self, name: String, counters: Arc<crate::sinks::SinkCounters>) {
        if let Ok(mut v) = self.sinks.lock() {
            v.push((name, counters));
        }
    }

    /// The WebSocket gateway's hub (set once when the run has a listener).
    pub fn set_gateway(&self, hub: Arc<crate::metrics::gateway::Hub>) {
        let _ = self.gateway.set(hub);
    }

    /// The WebSocket gateway's hub, if the run has one.
    pub fn gateway(&self) -> Option<Arc<crate::metrics::gateway::Hub>> {
        self.gateway.get().cloned()
    }

    /// Snapshot of the sinks.
    pub fn sinks(&self) -> Vec<(String, Arc<crate::sinks::SinkCounters>)> {
        self.sinks.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Snapshot of the rings.
    pub fn rings(&self) -> Vec<(String, Arc<RingStats>)> {
        self.rings.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Where the metrics listener serving this registry is bound, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr.get().copied()
    }

    /// Set once by the metrics listener after it binds.
    pub fn set_metrics_addr(&self, addr: SocketAddr) {
        let _ = self.metrics_addr.set(addr);
    }

    /// A new sample counter of `stage` for one thread.
    pub fn stage_samples(&self, stage: Stage) -> StageSamples {
        let counts: Arc<[Counter]> = (0..StageSamples::BUCKETS)
            .map(|_| Counter::default())
            .collect();
        if let Ok(mut v) = self.samples.lock() {
            v.push((stage, counts.clone()));
        }
        StageSamples { counts }
    }

    /// What the latency tables show of `stage` (every thread's samples so
    /// far): the answers an hdrhistogram of these samples gives, read off
    /// the counts without building one (a histogram is 216 KB to zero and fill,
    /// and each `value_at_quantile` another pass over it): one pass over the
    /// counts, then one group of 1024 per quantile.
    pub fn summary(&self, stage: Stage) -> Summary {
        let Ok(v) = self.samples.lock() else {
            return Summary::default();
        };
        let arrays: Vec<&[Counter]> = v
            .iter()
            .filter(|(s, _)| *s == stage)
            .map(|(_, c)| &c[..])
            .collect();
        // Pass 1, array by array: count, sum, the last bucket used, and the
        // count of every group of `GROUP` buckets.
        let mut groups = [0u64; StageSamples::BUCKETS / GROUP];
        let mut s = Summary::default();
        let mut sum: u128 = 0;
        let mut last = 0;
        for a in &arrays {
            for (g, chunk) in a.chunks(GROUP).enumerate() {
                for (j, c) in chunk.iter().enumerate() {
                    let n = c.get();
                    if n != 0 {
                        let i = g * GROUP + j;
                        groups[g] += n;
                        sum += u128::from(StageSamples::midpoint(i)) * u128::from(n);
                        last = last.max(i);
                    }
                }
            }
        }
        s.count = groups.iter().sum();
        if s.count == 0 {
            return s;
        }
        s.max = StageSamples::highest_value(last);
        s.mean = sum as f64 / s.count as f64;
        // Pass 2, one group per quantile: hdrhistogram's `value_at_quantile`,
        // the first bucket whose running count reaches ceil(q × count) (at
        // least 1), at its highest value.
        let mut before = 0; // samples in the groups before `g`
        let mut g = 0;
        for (q, out) in Summary::QUANTILES.iter().zip(&mut s.quantiles) {
            let target = ((q * s.count as f64).ceil() as u64).clamp(1, s.count);
            while before + groups[g] < target {
                before += groups[g];
                g += 1;
            }
            let mut seen = before;
            for i in g * GROUP..(g + 1) * GROUP {
                seen += arrays.iter().map(|a| a[i].get()).sum::<u64>();
                if seen >= target {
                    *out = StageSamples::highest_value(i);
                    break;
                }
            }
        }
        s
    }

    /// The histogram of `stage`: every thread's samples so far (the
    /// reference [`summary`](Self::summary) is tested against).
    #[cfg(test)]
    pub fn stage(&self, stage: Stage) -> Histogram<u64> {
        let mut h = new_histogram();
        if let Ok(v) = self.samples.lock() {
            for (_, counts) in v.iter().filter(|(s, _)| *s == stage) {
                StageSamples::add_to(counts, &mut h);
            }
        }
        h
    }
}

/// Maximum resident set size of this process, bytes.
#[must_use]
pub fn max_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other invariant.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an rusage struct.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc == 0 {
        (ru.ru_maxrss.max(0) as u64) * 1024
    } else {
        0
    }
}

/// Current resident set size of this process, bytes (Linux `/proc/self/statm`).
#[must_use]
pub fn current_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {

    #[test]
    fn disconnect_reasons_are_classified() {
        let r = |t: &str| DISCONNECT_REASONS[disconnect_reason(t)];
        assert_eq!(r("data watchdog: no market data for 10s"), "watchdog");
        assert_eq!(r("idle: no message for 60s"), "idle");
        assert_eq!(r("closed by server: 1001 server shutdown"), "closed");
        assert_eq!(r("websocket error: reset"), "error");
        assert_eq!(r("ping send failed: broken pipe"), "send");
        assert_eq!(r("something new"), "other");
    }

    use super::*;

    #[test]
    fn every_threads_samples_reach_the_stage_histogram() {
        let r = Registry::new();
        let mut a = r.stage_samples(Stage::Signal);
        let mut b = r.stage_samples(Stage::Signal);
        let mut other = r.stage_samples(Stage::Parse);
        let mut want = new_histogram();
        for i in 0..5000u64 {
            let v = i * 7919;
            if i % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            let _ = want.record(v.max(1));
        }
        other.record(5);
        assert!(r.stage(Stage::Signal) == want);
        assert_eq!(r.stage(Stage::Parse).len(), 1);
        assert!(r.stage(Stage::RingHop).is_empty());
        let s = r.summary(Stage::Signal);
        assert_eq!((s.count, s.max), (want.len(), want.max()));
        assert_eq!(s.p99(), want.value_at_quantile(0.99));
        assert_eq!(r.summary(Stage::Parse).p50(), 5);
        assert_eq!(r.summary(Stage::RingHop), Summary::default());
        drop(a);
        assert!(
            r.stage(Stage::Signal) == want,
            "a finished thread's samples stay"
        );
    }

    #[test]
    fn buckets_follow_the_histograms_layout() {
        let h = new_histogram();
        assert_eq!(StageSamples::BUCKETS, h.distinct_values());
        let mut v = 1u64;
        while StageSamples::index(v) < StageSamples::BUCKETS {
            for x in [v, v + 1, v | (v >> 1), (v << 1) - 1] {
                let i = StageSamples::index(x);
                if i >= StageSamples::BUCKETS {
                    continue;
                }
                assert_eq!(StageSamples::lowest_value(i), h.lowest_equivalent(x), "{x}");
                assert_eq!(StageSamples::index(h.lowest_equivalent(x)), i, "{x}");
                assert_eq!(StageSamples::index(h.highest_equivalent(x)), i, "{x}");
            }
            v <<= 1;
        }
        // The first value past the last bucket is one the histogram refuses.
        let past = h.highest_equivalent(StageSamples::lowest_value(StageSamples::BUCKETS - 1)) + 1;
        assert_eq!(StageSamples::index(past), StageSamples::BUCKETS);
        assert!(new_histogram().record(past).is_err());
        assert!(new_histogram().record(past - 1).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn counted_samples_equal_recording_each_one(
            samples in proptest::collection::vec(
                proptest::prop_oneof![
                    0u64..5_000,
                    0u64..40_000_000,
                    60_000_000_000u64..80_000_000_000,
                    proptest::prelude::any::<u64>(),
                ],
                0..5_000,
            )
        ) {
            let r = Registry::new();
            let mut s = r.stage_samples(Stage::Parse);
            // A second thread's counts of the same stage (every third sample):
            // the summary sums them bucket by bucket.
            let mut t = r.stage_samples(Stage::Parse);
            let mut want = new_histogram();
            for (i, &v) in samples.iter().enumerate() {
                if i % 3 == 2 {
                    t.record(v);
                } else {
                    s.record(v);
                }
                let _ = want.record(v.max(1));
            }
            let got = r.stage(Stage::Parse);
            proptest::prop_assert_eq!(got.len(), want.len());
            proptest::prop_assert_eq!(got.max(), want.max());
            proptest::prop_assert_eq!(got.min_nz(), want.min_nz());
            proptest::prop_assert_eq!(got.value_at_quantile(0.99), want.value_at_quantile(0.99));
            proptest::prop_assert!(got == want);
            let sum = r.summary(Stage::Parse);
            proptest::prop_assert_eq!(sum.count, want.len());
            proptest::prop_assert_eq!(sum.max, want.max());
            for (q, v) in Summary::QUANTILES.iter().zip(sum.quantiles) {
                proptest::prop_assert_eq!(v, want.value_at_quantile(*q), "q {}", q);
            }
            let mean = want.mean();
            proptest::prop_assert!((sum.mean - mean).abs() <= 1e-9 * mean.abs(), "{} {}", sum.mean, mean);
        }
    }
}
