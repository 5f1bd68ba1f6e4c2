//! `/metrics`: the registry's counters, gauges and stage histograms as
//! Prometheus text. Names and labels are listed in docs/observability.md.

use crate::pipeline::stats::{max_rss_bytes, Counter, FeedStats, InstrumentStats, Registry, Stage};

use super::expo::{Exposition, Kind};
use super::health::{Health, InstrumentHealth};

/// The `quantile` labels of the stage latency summaries: those of
/// [`Summary::QUANTILES`](crate::pipeline::stats::Summary::QUANTILES), then
/// `1` (the maximum).
const QUANTILE_LABELS: [&str; 6] = ["0.5", "0.9", "0.95", "0.99", "0.999", "1"];

type FeedCounter = (&'static str, &'static str, fn(&FeedStats) -> u64);
/// A labelled counter family of a feed: name, help, label, label values,
/// and the counters (one per value).
type LabelledCounter = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    fn(&FeedStats) -> &[Counter],
);
type InstrumentCounter = (&'static str, &'static str, fn(&InstrumentStats) -> u64);

const FEED_COUNTERS: &[FeedCounter] = &[
    (
        "wiresignal_feed_messages_total",
        "Frames parsed into events.",
        |s| s.messages.get(),
    ),
    (
        "wiresignal_feed_bytes_total",
        "Bytes of frames and snapshots received.",
        |s| s.bytes.get(),
    ),
    (
        "wiresignal_feed_wire_bytes_total",
        "Bytes read from the feed's sockets (framing, compressed payloads, TLS).",
        |s| s.wire_bytes.get(),
    ),
    (
        "wiresignal_feed_parse_errors_total",
        "Frames that failed to parse.",
        |s| s.parse_errors.get(),
    ),
    (
        "wiresignal_feed_unknown_messages_total",
        "Frames of an unknown kind.",
        |s| s.unknown_messages.get(),
    ),
    (
        "wiresignal_feed_ignored_messages_total",
        "Frames recognised but not used.",
        |s| s.ignored_messages.get(),
    ),
    (
        "wiresignal_feed_control_messages_total",
        "Control frames (subscription acks).",
        |s| s.control_messages.get(),
    ),
    (
        "wiresignal_feed_rejected_requests_total",
        "Requests (subscriptions) the venue refused.",
        |s| s.rejected_requests.get(),
    ),
    (
        "wiresignal_feed_bad_records_total",
        "Capture lines that were not records (replay).",
        |s| s.bad_records.get(),
    ),
    (
        "wiresignal_feed_connects_total",
        "WebSocket connections made (live).",
        |s| s.connects.get(),
    ),
    (
        "wiresignal_feed_disconnects_total",
        "WebSocket disconnections (live).",
        |s| s.disconnects.get(),
    ),
    (
        "wiresignal_feed_snapshots_total",
        "Depth snapshots received.",
        |s| s.snapshots.get(),
    ),
    (
        "wiresignal_feed_snapshot_errors_total",
        "Depth snapshot fetch failures (live; each retried after its backoff).",
        |s| s.snapshot_errors.get(),
    ),
    (
        "wiresignal_feed_rollovers_total",
        "Connections replaced make before break (24 h limit, venue shutdown notice).",
        |s| s.rollovers.get(),
    ),
    (
        "wiresignal_feed_watchdog_reconnects_total",
        "Connections replaced because no market data arrived for data_timeout.",
        |s| s.watchdog_reconnects.get(),
    ),
];

const INSTRUMENT_COUNTERS: &[InstrumentCounter] = &[
    (
        "wiresignal_instrument_events_total",
        "Events processed (trades, quotes, diffs, snapshots).",
        |s| s.events.get(),
    ),
    (
        "wiresignal_instrument_trades_total",
        "Accepted trades.",
        |s| s.trades.get(),
    ),
    (
        "wiresignal_instrument_book_updates_total",
        "Applied live depth diffs.",
        |s| s.book_updates.get(),
    ),
    ("wiresignal_instrument_gaps_total", "Sequence gaps.", |s| {
        s.gaps.get()
    }),
    (
        "wiresignal_instrument_resyncs_total",
        "Times the book synced again after a gap, mismatch or reset.",
        |s| s.resyncs.get(),
    ),
    (
        "wiresignal_instrument_resets_total",
        "Feed resets (reconnects) seen.",
        |s| s.resets.get(),
    ),
    (
        "wiresignal_instrument_checksum_ok_total",
        "Exchange book checksums that matched the book.",
        |s| s.checksum_ok.get(),
    ),
    (
        "wiresignal_instrument_checksum_failed_total",
        "Exchange book checksums that did not match (book resynced).",
        |s| s.checksum_failed.get(),
    ),
    (
        "wiresignal_instrument_checksum_absent_total",
        "Checksums the venue sent as absent (0).",
        |s| s.checksum_absent.get(),
    ),
    (
        "wiresignal_instrument_crosscheck_ok_total",
        "Top-of-book (bookTicker) cross-checks that matched the book.",
        |s| s.crosscheck_ok.get(),
    ),
    (
        "wiresignal_instrument_crosscheck_failed_total",
        "Top-of-book cross-checks that did not match (book resynced).",
        |s| s.crosscheck_failed.get(),
    ),
    (
        "wiresignal_instrument_crossed_books_total",
        "Applied diffs that left the book crossed or locked.",
        |s| s.crossed.get(),
    ),
    (
        "wiresignal_instrument_dup_trades_total",
        "Duplicate or old trade ids dropped.",
        |s| s.dup_trades.get(),
    ),
    (
        "wiresignal_instrument_stale_quotes_total",
        "Stale bookTicker updates dropped.",
        |s| s.stale_quotes.get(),
    ),
    (
        "wiresignal_instrument_stale_diffs_total",
        "Stale depth diffs dropped.",
        |s| s.stale_diffs.get(),
    ),
    (
        "wiresignal_instrument_rows_total",
        "Signal rows emitted.",
        |s| s.rows.get(),
    ),
];

fn ilabels(i: &InstrumentHealth) -> [(&'static str, &str); 2] {
    [("venue", &i.venue), ("symbol", &i.symbol)]
}

fn flag(b: bool) -> u64 {
    u64::from(b)
}

/// Renders the registry and `health` (judged at the same instant).
#[must_use]
pub fn render(registry: &Registry, health: &Health) -> String {
    let mut e = Exposition::new();
    e.family(
        "wiresignal_build_info",
        Kind::Gauge,
        "Engine version (value is always 1).",
    );
    e.sample_u64(
        "wiresignal_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("mode", health.mode.as_str()),
        ],
        1,
    );
    e.family(
        "wiresignal_health_ok",
        Kind::Gauge,
        "1 when /health reports ok, 0 when degraded.",
    );
    e.sample_u64("wiresignal_health_ok", &[], flag(health.ok));

    // Feeds.
    let feeds = registry.feeds();
    for (name, help, get) in FEED_COUNTERS {
        e.family(name, Kind::Counter, help);
        for (feed, s) in &feeds {
            e.sample_u64(name, &[("feed", feed)], get(s));
        }
    }
    let labelled: [LabelledCounter; 2] = [
        (
            "wiresignal_feed_reconnects_total",
            "Connections lost, by reason (each followed by a reconnect).",
            "reason",
            &crate::pipeline::stats::DISCONNECT_REASONS,
            |s| &s.disconnect_reasons,
        ),
        (
            "wiresignal_recovery_requests_total",
            "Book recovery (snapshot) requests by result; failed ones are retried.",
            "result",
            &crate::pipeline::stats::RECOVERY_RESULTS,
            |s| &s.recovery_results,
        ),
    ];
    for (name, help, label, values, get) in labelled {
        e.family(name, Kind::Counter, help);
        for (feed, s) in &feeds {
            for (v, c) in values.iter().zip(get(s)) {
                e.sample_u64(name, &[("feed", feed), (label, v)], c.get());
            }
        }
    }
    e.family(
        "wiresignal_feed_connected",
        Kind::Gauge,
        "Open WebSocket connections of the feed (live; a feed may open several).",
    );
    for (feed, s) in &feeds {
        e.sample_i64(
            "wiresignal_feed_connected",
            &[("feed", feed)],
            s.connected.get(),
        );
    }
    e.family(
        "wiresignal_feed_compressed",
        Kind::Gauge,
        "1 when the feed's latest handshake agreed on permessage-deflate.",
    );
    for (feed, s) in &feeds {
        e.sample_i64(
            "wiresignal_feed_compressed",
            &[("feed", feed)],
            s.compressed.get(),
        );
    }
    e.family(
        "wiresignal_rest_weight_used",
        Kind::Gauge,
        "REST request weight spent on the feed's venue by this process (shared budget).",
    );
    for (feed, s) in &feeds {
        e.sample_i64(
            "wiresignal_rest_weight_used",
            &[("feed", feed)],
            s.rest_weight_used.get(),
        );
    }
    e.family(
        "wiresignal_feed_last_message_age_seconds",
        Kind::Gauge,
        "Seconds since the feed's last frame (absent before the first).",
    );
    for f in &health.feeds {
        if let Some(a) = f.last_message_age_s {
            e.sample_f64(
                "wiresignal_feed_last_message_age_seconds",
                &[("feed", &f.name)],
                a,
            );
        }
    }

    // Instruments.
    let instruments = registry.instruments();
    let labels: Vec<(String, String)> = instruments
        .iter()
        .map(|(info, _)| {
            let venue = feeds::venue::VENUES
                .get(info.venue as usize)
                .map_or("unknown", |v| v.name);
            (venue.to_owned(), info.symbol.as_str().to_owned())
        })
        .collect();
    let lbl = |k: usize| {
        [
            ("venue", labels[k].0.as_str()),
            ("symbol", labels[k].1.as_str()),
        ]
    };
    for (name, help, get) in INSTRUMENT_COUNTERS {
        e.family(name, Kind::Counter, help);
        for (k, (_, s)) in instruments.iter().enumerate() {
            e.sample_u64(name, &lbl(k), get(s));
        }
    }
    e.family(
        "wiresignal_instrument_lost_seconds_total",
        Kind::Counter,
        "Time the book was out of sync after its first sync (receive clock).",
    );
    for (k, (_, s)) in instruments.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)] // ns of lost time: exact below 104 days
        let secs = s.lost_ns.get() as f64 / 1e9;
        e.sample_f64("wiresignal_instrument_lost_seconds_total", &lbl(k), secs);
    }
    e.family(
        "wiresignal_instrument_book_levels",
        Kind::Gauge,
        "Price levels per book side.",
    );
    for (k, (_, s)) in instruments.iter().enumerate() {
        let [v, sym] = lbl(k);
        e.sample_i64(
            "wiresignal_instrument_book_levels",
            &[v, sym, ("side", "bid")],
            s.bid_levels.get(),
        );
        e.sample_i64(
            "wiresignal_instrument_book_levels",
            &[v, sym, ("side", "ask")],
            s.ask_levels.get(),
        );
    }
    e.family(
        "wiresignal_instrument_in_sync",
        Kind::Gauge,
        "1 when the instrument's depth book is in sync.",
    );
    for i in &health.instruments {
        e.sample_u64(
            "wiresignal_instrument_in_sync",
            &ilabels(i),
            flag(i.in_sync),
        );
    }
    e.family(
        "wiresignal_instrument_staleness_seconds",
        Kind::Gauge,
        "Seconds since the instrument's last trade, quote or applied diff (absent before the first).",
    );
    for i in &health.instruments {
        if let Some(a) = i.last_update_age_s {
            e.sample_f64("wiresignal_instrument_staleness_seconds", &ilabels(i), a);
        }
    }
    e.family(
        "wiresignal_instrument_stale",
        Kind::Gauge,
        "1 when the instrument has had no update for longer than the stale threshold.",
    );
    for i in &health.instruments {
        e.sample_u64("wiresignal_instrument_stale", &ilabels(i), flag(i.stale));
    }
    e.family(
        "wiresignal_stale_threshold_seconds",
        Kind::Gauge,
        "Configured stale threshold ([metrics] stale_after_ms).",
    );
    e.sample_f64(
        "wiresignal_stale_threshold_seconds",
        &[],
        health.stale_after_s,
    );

    // Rings and back-pressure.
    let rings = registry.rings();
    e.family(
        "wiresignal_ring_occupancy",
        Kind::Gauge,
        "Events waiting in a receiver-to-signal-thread ring when its consumer last looked.",
    );
    for (name, r) in &rings {
        e.sample_i64(
            "wiresignal_ring_occupancy",
            &[("ring", name)],
            r.occupancy.get(),
        );
    }
    e.family(
        "wiresignal_ring_occupancy_high_water",
        Kind::Gauge,
        "Highest ring occupancy seen.",
    );
    for (name, r) in &rings {
        e.sample_i64(
            "wiresignal_ring_occupancy_high_water",
            &[("ring", name)],
            r.high_water.get(),
        );
    }
    e.family(
        "wiresignal_ring_capacity",
        Kind::Gauge,
        "Ring capacity in events.",
    );
    for (name, r) in &rings {
        e.sample_u64("wiresignal_ring_capacity", &[("ring", name)], r.capacity);
    }
    e.family(
        "wiresignal_ring_full_waits_total",
        Kind::Counter,
        "Pushes that found a ring full and waited (back-pressure events).",
    );
    e.sample_u64(
        "wiresignal_ring_full_waits_total",
        &[],
        registry
            .ring_full_waits
            .load(std::sync::atomic::Ordering::Relaxed),
    );

    e.family(
        "wiresignal_sink_wakeups_total",
        Kind::Counter,
        "Times a signal or receiver thread woke the sleeping sink thread (coalesced by sink_wake_us).",
    );
    e.sample_u64(
        "wiresignal_sink_wakeups_total",
        &[],
        registry
            .sink_wakeups
            .load(std::sync::atomic::Ordering::Relaxed),
    );

    // The overflow stages (`overload = "merge"`).
    let o = &registry.overload;
    let staged: [(&str, &str, &std::sync::atomic::AtomicU64); 4] = [
        (
            "wiresignal_overload_staged_events_total",
            "Events that waited in an overflow stage because their ring was full.",
            &o.staged_events,
        ),
        (
            "wiresignal_overload_diffs_merged_total",
            "Book diffs merged into an earlier pending diff of their instrument.",
            &o.diffs_merged,
        ),
        (
            "wiresignal_overload_quotes_conflated_total",
            "Quotes that replaced a pending quote of their instrument.",
            &o.quotes_conflated,
        ),
        (
            "wiresignal_overload_stage_full_blocks_total",
            "Times a full overflow stage fell back to the blocking push.",
            &o.stage_full_blocks,
        ),
    ];
    for (name, help, c) in staged {
        e.family(name, Kind::Counter, help);
        e.sample_u64(name, &[], c.load(std::sync::atomic::Ordering::Relaxed));
    }
    e.family(
        "wiresignal_overload_stage_high_water",
        Kind::Gauge,
        "Most items an overflow stage held at once.",
    );
    e.sample_u64(
        "wiresignal_overload_stage_high_water",
        &[],
        o.stage_high_water
            .load(std::sync::atomic::Ordering::Relaxed),
    );

    // The [[sinks]].
    let sinks = registry.sinks();
    type SinkCounter = fn(&crate::sinks::SinkCounters) -> u64;
    let sink_counters: [(&str, &str, SinkCounter); 4] = [
        ("wiresignal_sink_rows_total", "Rows a sink delivered.", |c| c.rows.get()),
        (
            "wiresignal_sink_conflated_total",
            "Rows replaced by a later value of the same instrument and signal while the sink's ring was full.",
            |c| c.conflated.get(),
        ),
        (
            "wiresignal_sink_dropped_total",
            "Rows a sink could not deliver (server down, write failed).",
            |c| c.dropped.get(),
        ),
        ("wiresignal_sink_errors_total", "Delivery errors of a sink.", |c| c.errors.get()),
    ];
    for (name, help, get) in sink_counters {
        e.family(name, Kind::Counter, help);
        for (sink, c) in &sinks {
            e.sample_u64(name, &[("sink", sink)], get(c));
        }
    }

    if let Some(g) = registry.gateway() {
        e.family(
            "wiresignal_gateway_clients",
            Kind::Gauge,
            "WebSocket gateway clients connected now.",
        );
        e.sample_u64(
            "wiresignal_gateway_clients",
            &[],
            g.connected.load(std::sync::atomic::Ordering::Relaxed),
        );
        e.family(
            "wiresignal_gateway_conflated_total",
            Kind::Counter,
            "Rows a slow gateway client got only as a later value of the same instrument and signal.",
        );
        e.sample_u64(
            "wiresignal_gateway_conflated_total",
            &[],
            g.conflated.load(std::sync::atomic::Ordering::Relaxed),
        );
    }

    // Stage latencies.
    e.family(
        "wiresignal_stage_latency_seconds",
        Kind::Summary,
        "Per-stage latency since start (hdrhistogram, 3 significant digits).",
    );
    for stage in Stage::ALL {
        let h = registry.summary(stage);
        let s = [("stage", stage.name())];
        // p50 .. p99.9, then the maximum as quantile 1.
        let values = h.quantiles.into_iter().chain([h.max]);
        for (ns, qs) in values.zip(QUANTILE_LABELS) {
            let v = if h.count == 0 {
                f64::NAN
            } else {
                ns as f64 / 1e9
            };
            e.sample_f64(
                "wiresignal_stage_latency_seconds",
                &[s[0], ("quantile", qs)],
                v,
            );
        }
        e.sample_f64(
            "wiresignal_stage_latency_seconds_sum",
            &s,
            h.mean * h.count as f64 / 1e9,
        );
        e.sample_u64("wiresignal_stage_latency_seconds_count", &s, h.count);
    }

    // Memory.
    e.family(
        "wiresignal_process_resident_memory_bytes",
        Kind::Gauge,
        "Current resident set size (/proc/self/statm).",
    );
    e.sample_u64(
        "wiresignal_process_resident_memory_bytes",
        &[],
        health.rss_bytes,
    );
    e.family(
        "wiresignal_process_max_resident_memory_bytes",
        Kind::Gauge,
        "Peak resident set size (getrusage).",
    );
    e.sample_u64(
        "wiresignal_process_max_resident_memory_bytes",
        &[],
        max_rss_bytes(),
    );
    if let Some(b) = health.memory_budget_bytes {
        e.family(
            "wiresignal_memory_budget_bytes",
            Kind::Gauge,
            "Configured memory budget ([metrics] memory_budget_mb).",
        );
        e.sample_u64("wiresignal_memory_budget_bytes", &[], b);
        e.family(
            "wiresignal_memory_over_budget",
            Kind::Gauge,
            "1 while the resident set size exceeds the memory budget.",
        );
        e.sample_u64(
            "wiresignal_memory_over_budget",
            &[],
            flag(health.rss_bytes > b),
        );
    }
    e.finish()
}
