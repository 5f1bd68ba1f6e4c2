//! The `--stats` JSON report and the latency table.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::pipeline::stats::{max_rss_bytes, Registry, Stage, Summary};

/// Builds the stats JSON (see README for the fields).
#[must_use]
pub fn stats_json(registry: &Registry, elapsed: Duration, rows: u64) -> Value {
    let feeds = registry.feeds();
    let sum = |f: &dyn Fn(&crate::pipeline::stats::FeedStats) -> u64| -> u64 {
        feeds.iter().map(|(_, s)| f(s)).sum()
    };
    let mut instruments = Map::new();
    for (info, s) in registry.instruments() {
        let venue = feeds::venue::VENUES
            .get(info.venue as usize)
            .map_or("unknown", |v| v.name);
        let pd = info.scale.price_decimals;
        let px = |v: i64| {
            if v > 0 {
                Value::String(feeds::fixed::format(v, pd))
            } else {
                Value::Null
            }
        };
        instruments.insert(
            format!("{venue}:{}", info.symbol),
            json!({
                "events": s.events.get(),
                "trades": s.trades.get(),
                "book_updates": s.book_updates.get(),
                "gaps": s.gaps.get(),
                "resyncs": s.resyncs.get(),
                "crossed": s.crossed.get(),
                "empty_side": s.empty_side.get(),
                "quotes_crossed": s.quotes_crossed.get(),
                "quotes_empty_side": s.quotes_empty_side.get(),
                "checksum_ok": s.checksum_ok.get(),
                "checksum_failed": s.checksum_failed.get(),
                "checksum_absent": s.checksum_absent.get(),
                "crosscheck_ok": s.crosscheck_ok.get(),
                "crosscheck_failed": s.crosscheck_failed.get(),
                "dup_trades": s.dup_trades.get(),
                "stale_quotes": s.stale_quotes.get(),
                "stale_diffs": s.stale_diffs.get(),
                "resets": s.resets.get(),
                "lost_s": s.lost_ns.get() as f64 / 1e9,
                "rows": s.rows.get(),
                "synced": s.synced.get() == 1,
                "best_bid": px(s.best_bid.get()),
                "best_ask": px(s.best_ask.get()),
                "bid_levels": s.bid_levels.get(),
                "ask_levels": s.ask_levels.get(),
            }),
        );
    }
    let mut latency = Map::new();
    for stage in Stage::ALL {
        latency.insert(
            stage.name().to_owned(),
            latency_row(&registry.summary(stage)),
        );
    }
    // Exchange (bench: frame-write) time → signals, wall clock; see pipeline::wire.
    let mut wire = latency_row(&crate::pipeline::wire::total());
    wire["series"] = json!(crate::pipeline::wire::series());
    latency.insert("exchange_to_signal".to_owned(), wire);
    let secs = elapsed.as_secs_f64();
    let messages = sum(&|s| s.messages.get());
    json!({
        "messages": messages,
        "parse_errors": sum(&|s| s.parse_errors.get()),
        "unknown_messages": sum(&|s| s.unknown_messages.get()),
        "ignored_messages": sum(&|s| s.ignored_messages.get()),
        "control_messages": sum(&|s| s.control_messages.get()),
        "rejected_requests": sum(&|s| s.rejected_requests.get()),
        "bad_records": sum(&|s| s.bad_records.get()),
        "bytes": sum(&|s| s.bytes.get()),
        "wire_bytes": sum(&|s| s.wire_bytes.get()),
        "compressed": sum(&|s| s.compressed.get().max(0).unsigned_abs()),
        "compressed_connects": sum(&|s| s.compressed_connects.get()),
        "connects": sum(&|s| s.connects.get()),
        "disconnects": sum(&|s| s.disconnects.get()),
        "snapshots": sum(&|s| s.snapshots.get()),
        "snapshot_errors": sum(&|s| s.snapshot_errors.get()),
        "watchdog_reconnects": sum(&|s| s.watchdog_reconnects.get()),
        "rollovers": sum(&|s| s.rollovers.get()),
        "rest_weight_used": sum(&|s| s.rest_weight_used.get().max(0).unsigned_abs()),
        "signal_rows": rows,
        "ring_full_waits": registry.ring_full_waits.load(std::sync::atomic::Ordering::Relaxed),
        "sink_wakeups": registry.sink_wakeups.load(std::sync::atomic::Ordering::Relaxed),
        "overload": overload_json(registry),
        "rings": registry
            .rings()
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "capacity": r.capacity,
                        "high_water": r.high_water.get(),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>(),
        "elapsed_s": secs,
        "messages_per_s": if secs > 0.0 { messages as f64 / secs } else { 0.0 },
        "max_rss_bytes": max_rss_bytes(),
        "instruments": instruments,
        "sinks": registry
            .sinks()
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    json!({
                        "rows": c.rows.get(),
                        "conflated": c.conflated.get(),
                        "dropped": c.dropped.get(),
                        "errors": c.errors.get(),
                    }),
                )
            })
            .collect::<Map<String, Value>>(),
        "gateway": registry.gateway().map_or(Value::Null, |g| json!({
            "clients": g.connected.load(std::sync::atomic::Ordering::Relaxed),
            "conflated": g.conflated.load(std::sync::atomic::Ordering::Relaxed),
        })),
        "latency_ns": latency,
    })
}

/// A latency row of the stats JSON: count, p50 … p99.9 and max, in ns.
fn latency_row(h: &Summary) -> Value {
    let [p50, p90, p95, p99, p999] = h.quantiles;
    json!({
        "count": h.count,
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "p999": p999,
        "max": h.max,
    })
}

/// Human-readable latency table (ns → µs) of [`stats_json`]'s `latency_ns`.
#[must_use]
pub fn latency_table(stats: &Value) -> String {
    let mut s = String::from(
        "stage                 count        p50 µs    p90 µs    p95 µs    p99 µs  p99.9 µs    max µs\n",
    );
    // The stats' own figures (ns): each stage's counts are read once.
    for stage in Stage::ALL {
        let l = &stats["latency_ns"][stage.name()];
        let us = |k: &str| l[k].as_u64().unwrap_or(0) as f64 / 1000.0;
        s.push_str(&format!(
            "{:<18} {:>10} {:>11.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            stage.name(),
            l["count"].as_u64().unwrap_or(0),
            us("p50"),
            us("p90"),
            us("p95"),
            us("p99"),
            us("p999"),
            us("max")
        ));
    }
    s
}

/// The overflow stages' counters (`overload = "merge"`).
fn overload_json(registry: &Registry) -> Value {
    let o = &registry.overload;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    serde_json::json!({
        "staged_events": get(&o.staged_events),
        "diffs_merged": get(&o.diffs_merged),
        "quotes_conflated": get(&o.quotes_conflated),
        "stage_full_blocks": get(&o.stage_full_blocks),
        "stage_high_water": get(&o.stage_high_water),
    })
}
