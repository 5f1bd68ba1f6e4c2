//! Recovery benchmark (issue "Self-healing feeds"): the shared Binance spot
//! capture served by the simulator with one fault on the first connection,
//! `engine run` over loopback, repeated; reports per fault type the time
//! from the book going out of sync to its first in-sync signal (`book_gap_s`
//! of the status rows, receive clock; for a silent feed plus the data
//! watchdog's detection delay), and the messages lost per planned rollover
//! (trades of the live run vs the replay). Writes a Markdown table to stdout.
//!
//! `cargo run --release -p engine --example recovery -- [repetitions] [shared dir]`
//! (scripts/bench.sh runs it and appends the table to the day's results).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bench::sim::{Faults, RestFault, SimConfig, SimHandle, Simulator, Speed};
use bench::source::CaptureSource;
use engine::app::Output;
use engine::config::Config;
use serde_json::Value;

/// Data watchdog of the silent-feed scenario.
const DATA_TIMEOUT_MS: u64 = 1000;

fn sim(cap: &Path, faults: Faults, speed: f64) -> std::io::Result<SimHandle> {
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = Speed::Factor(speed);
    sc.faults = faults;
    sc.fault_connections = Some(1);
    sc.ping_interval = Duration::from_millis(200);
    Simulator::start(sc, Box::new(CaptureSource::new(vec![cap.to_path_buf()])))
}

/// A live run against `sim` until it is exhausted and the book in sync
/// (the tests' loop), with status rows; returns the stats and the rows.
fn run(sim: &SimHandle, out: &Path, feed_extra: &str) -> Result<(Value, Vec<Value>), String> {
    let stats = common::run_feed(
        sim,
        out,
        "[output]\nstatus_rows = true",
        feed_extra,
        "binance-spot",
        "BTCUSDT",
        true,
    );
    Ok((stats, common::rows(out)))
}

fn gaps(rows: &[Value]) -> Vec<f64> {
    rows.iter()
        .filter(|r| r["signal"] == "book_gap_s")
        .filter_map(|r| r["value"].as_f64())
        .collect()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let shared = args
        .next()
        .map_or_else(|| PathBuf::from("../shared"), PathBuf::from);
    let cap = shared.join("data/binance-spot/btcusdt_20240808.txt.gz");
    if !cap.is_file() {
        return Err(format!("no capture at {}", cap.display()));
    }
    let dir = std::env::temp_dir().join(format!("wiresignal-recovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("rows.jsonl");
    type Scenario = (&'static str, fn(usize) -> Faults, &'static str, f64);
    let scenarios: [Scenario; 3] = [
        (
            "drop (connection lost)",
            |i| Faults {
                drop_after_frames: Some(3000 + 500 * i as u64),
                ..Default::default()
            },
            "",
            0.0,
        ),
        (
            "gap (a skipped diff)",
            |i| Faults {
                skip_depth_at: vec![200 + 20 * i as u64],
                ..Default::default()
            },
            "",
            0.0,
        ),
        (
            "silent feed (pings only)",
            |i| Faults {
                stall: Some((3000 + 500 * i as u64, Duration::from_secs(3))),
                ..Default::default()
            },
            "data_timeout_ms = 1000",
            DATA_TIMEOUT_MS as f64 / 1000.0,
        ),
    ];
    println!("| fault | runs | recovered | p50 s | p99 s | max s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, faults, extra, detect) in &scenarios {
        let mut spans = Vec::new();
        for i in 0..reps {
            let s = sim(&cap, faults(i), 40.0).map_err(|e| e.to_string())?;
            let (_, rows) = run(&s, &out, extra)?;
            s.shutdown().map_err(|e| e.to_string())?;
            spans.extend(gaps(&rows).into_iter().map(|g| g + detect));
        }
        let n = spans.len();
        println!(
            "| {name} | {reps} | {n} | {:.3} | {:.3} | {:.3} |",
            pct(&mut spans, 0.5),
            pct(&mut spans, 0.99),
            spans.iter().copied().fold(f64::NAN, f64::max)
        );
    }
    // 429 at the start: time from the first request to the synced book.
    let mut starts = Vec::new();
    for _ in 0..reps {
        let f = Faults {
            rest_failures: vec![RestFault::Status {
                status: 429,
                retry_after_s: Some(1),
            }],
            ..Default::default()
        };
        let s = sim(&cap, f, 40.0).map_err(|e| e.to_string())?;
        let (stats, _) = run(&s, &out, "")?;
        let req = s.depth_requests();
        s.shutdown().map_err(|e| e.to_string())?;
        if req.len() >= 2 && stats["instruments"]["binance-spot:BTCUSDT"]["synced"] == true {
            starts.push((req[1] - req[0]).as_secs_f64());
        }
    }
    let n = starts.len();
    println!(
        "| 429 on the first snapshot (Retry-After 1 s): wait before the retry | {reps} | {n} | {:.3} | {:.3} | {:.3} |",
        pct(&mut starts, 0.5),
        pct(&mut starts, 0.99),
        starts.iter().copied().fold(f64::NAN, f64::max)
    );
    // Messages lost per planned rollover.
    let s = sim(&cap, Faults::default(), 40.0).map_err(|e| e.to_string())?;
    let (live_stats, _) = run(&s, &out, "rollover_after_ms = 1500")?;
    s.shutdown().map_err(|e| e.to_string())?;
    let mut cfg = Config::default();
    cfg.engine.pin_cores = Some(false);
    let replay = engine::app::replay(
        &cfg,
        std::slice::from_ref(&cap),
        engine::config::Speed::Max,
        Output::None,
        &AtomicBool::new(false),
    )
    .map_err(|e| e.to_string())?;
    let key = "binance-spot:BTCUSDT";
    let want = replay.stats["instruments"][key]["trades"]
        .as_u64()
        .unwrap_or(0);
    let got = live_stats["instruments"][key]["trades"]
        .as_u64()
        .unwrap_or(0);
    let rollovers = live_stats["rollovers"].as_u64().unwrap_or(0);
    println!();
    println!(
        "Planned rollovers: {rollovers}; trades lost {} of {want} (live {got}), gaps {}, resyncs {}.",
        want.saturating_sub(got),
        live_stats["instruments"][key]["gaps"],
        live_stats["instruments"][key]["resyncs"]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
