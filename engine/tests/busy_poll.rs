//! `receiver_mode = "busy_poll"` end to end over a real loopback WebSocket:
//! the busy-poll receiver (non-blocking socket, sync tungstenite, spinning
//! signal threads) emits the same stream as `engine replay` of the capture,
//! like the epoll receiver does in `e2e.rs`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bench::sim::{SimConfig, Simulator, Speed as SimSpeed};
use bench::source::CaptureSource;
use common::{close, read_lines, shared_dir, spot_captures, temp_dir};
use engine::app::{self, Output};
use engine::config::{Config, ReceiverMode, Speed};
use engine::live::{self, StopWhen};
use serde_json::Value;

/// Signals whose value depends on the local receive clock (see e2e.rs).
const RECV_CLOCK_SIGNALS: [&str; 3] = ["ofi_l1_10s", "rv_60s", "ema_mid_5s"];
/// Triggered by bookTicker quotes: `ts_ns` is the receive time.
const QUOTE_TRIGGERED: [&str; 5] = [
    "mid",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "zscore_mid_100",
];

fn rows(path: &Path) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for l in read_lines(path) {
        let r: Value = serde_json::from_str(&l).unwrap();
        m.entry(r["signal"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    m
}

#[test]
fn busy_poll_run_over_websocket_emits_the_replay_stream() {
    let Some(shared) = shared_dir() else { return };
    let cap = spot_captures(&shared).into_iter().next().unwrap();
    let dir = temp_dir("busy-poll");

    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Max;
    let sim = Simulator::start(sc, Box::new(CaptureSource::new(vec![cap.clone()]))).unwrap();
    let addr = sim.local_addr();
    let toml = format!(
        "[engine]\npin_cores = false\nreceiver_mode = \"busy_poll\"\n[[feeds]]\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [\"BTCUSDT\"]\n"
    );
    let cfg = Config::from_toml_str(&toml, "busy_poll").unwrap();
    assert_eq!(cfg.engine.receiver_mode, ReceiverMode::BusyPoll);
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(120);
    let sim_ref = &sim;
    let live_stats = live::run(
        &cfg,
        Output::File(dir.join("live.jsonl")),
        StopWhen {
            duration: Some(Duration::from_secs(120)),
            stop: &stop,
            done: Some(Box::new(move |p| {
                let now = engine::pipeline::clock::mono_ns() as i64;
                let idle = p
                    .registry
                    .feeds()
                    .iter()
                    .all(|(_, f)| now - f.last_frame_mono.get() > 300_000_000);
                (sim_ref.is_exhausted() && idle) || Instant::now() > deadline
            })),
            tick: None,
        },
    )
    .unwrap()
    .stats;
    assert!(sim.is_exhausted(), "simulator did not finish: {live_stats}");
    let mut rcfg = Config::default();
    rcfg.engine.pin_cores = false;
    let replay_stats = app::replay(
        &rcfg,
        &[cap],
        Speed::Max,
        Output::File(dir.join("replay.jsonl")),
        &AtomicBool::new(false),
    )
    .unwrap()
    .stats;
    sim.shutdown().unwrap();

    assert_eq!(live_stats["parse_errors"], 0);
    assert_eq!(live_stats["connects"], 1, "{live_stats}");
    let inst = "binance-spot:BTCUSDT";
    for key in [
        "best_bid",
        "best_ask",
        "bid_levels",
        "ask_levels",
        "gaps",
        "trades",
        "book_updates",
        "checksum_ok",
    ] {
        assert_eq!(
            live_stats["instruments"][inst][key], replay_stats["instruments"][inst][key],
            "{key}"
        );
    }
    let (live, rep) = (
        rows(&dir.join("live.jsonl")),
        rows(&dir.join("replay.jsonl")),
    );
    assert_eq!(rep.len(), 17, "every default signal id is emitted");
    for (sig, want) in &rep {
        if RECV_CLOCK_SIGNALS.contains(&sig.as_str()) {
            continue;
        }
        let got = live
            .get(sig)
            .unwrap_or_else(|| panic!("{sig} missing from the live run"));
        assert_eq!(got.len(), want.len(), "{sig}: row count");
        let exchange_time = !QUOTE_TRIGGERED.contains(&sig.as_str());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                close(g["value"].as_f64().unwrap(), w["value"].as_f64().unwrap()),
                "{sig} row {i}: {g} vs {w}"
            );
            if exchange_time {
                assert_eq!(g["ts_ns"], w["ts_ns"], "{sig} row {i}");
            }
        }
    }
}
