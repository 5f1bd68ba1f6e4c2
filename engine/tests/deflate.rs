//! permessage-deflate (`[[feeds]] compression = "deflate"`) over a real
//! loopback WebSocket: the simulator serves the same capture compressed and
//! uncompressed, and a hand-written server sends a corrupt compressed frame.

#![cfg(feature = "deflate")]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::sim::{SimConfig, SimHandle, Simulator, Speed};
use bench::source::CaptureSource;
use common::{read_lines, run_feed, spot_slice, temp_dir};
use engine::app::Output;
use engine::config::Config;
use engine::live::{self, StopWhen};
use serde_json::Value;

/// Signals whose value depends on the local receive clock: two live runs
/// cannot agree on them (see `e2e.rs`).
const RECV_CLOCK_SIGNALS: [&str; 3] = ["ofi_l1_10s", "rv_60s", "ema_mid_5s"];

/// Per-instrument stats both runs must share: the final book and what built it.
const SAME_BOOK: [&str; 9] = [
    "best_bid",
    "best_ask",
    "bid_levels",
    "ask_levels",
    "gaps",
    "trades",
    "book_updates",
    "crosscheck_ok",
    "synced",
];

fn sim(capture: &Path, deflate: bool) -> SimHandle {
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = Speed::Max;
    sc.deflate = deflate;
    Simulator::start(
        sc,
        Box::new(CaptureSource::new(vec![capture.to_path_buf()])),
    )
    .unwrap()
}

/// One live run of `capture`: the simulator compressing or not, the feed
/// offering deflate or not. The stats, and the rows as text without the
/// receive-clock parts (`recv_ns`; `ts_ns` of bookTicker-driven rows is the
/// receive time too; the receive-clock signals entirely), in stream order.
fn run(
    capture: &Path,
    dir: &Path,
    name: &str,
    sim_deflate: bool,
    offer: bool,
) -> (Value, Vec<String>) {
    let sim = sim(capture, sim_deflate);
    let out = dir.join(format!("{name}.jsonl"));
    let feed = if offer {
        "compression = \"deflate\""
    } else {
        ""
    };
    let stats = run_feed(&sim, &out, "", feed, "binance-spot", "BTCUSDT", true);
    sim.shutdown().unwrap();
    let rows = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Map<String, Value>>(l).unwrap())
        .filter(|r| !RECV_CLOCK_SIGNALS.contains(&r["signal"].as_str().unwrap()))
        .map(|mut r| {
            r.remove("recv_ns");
            serde_json::to_string(&r).unwrap()
        })
        .collect();
    (stats, rows)
}

/// Rows keyed by signal, in stream order (the interleaving of signals may
/// differ with batching; each signal's own sequence may not).
fn per_signal(rows: &[String]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        let v: Value = serde_json::from_str(r).unwrap();
        let mut v = v.as_object().unwrap().clone();
        let sig = v["signal"].as_str().unwrap().to_owned();
        // bookTicker-triggered rows carry the receive time as `ts_ns`.
        if [
            "mid",
            "spread_bps",
            "microprice",
            "imbalance_l1",
            "zscore_mid_100",
        ]
        .contains(&sig.as_str())
        {
            v.remove("ts_ns");
        }
        m.entry(sig)
            .or_default()
            .push(serde_json::to_string(&v).unwrap());
    }
    m
}

#[test]
fn compressed_uncompressed_and_declined_runs_give_the_same_rows_and_books() {
    let dir = temp_dir("deflate-same");
    let Some(slice) = spot_slice(&dir, 30_000) else {
        return;
    };
    let (plain, plain_rows) = run(&slice, &dir, "plain", false, false);
    let (comp, comp_rows) = run(&slice, &dir, "deflate", true, true);
    let (declined, declined_rows) = run(&slice, &dir, "declined", false, true);

    let inst = "binance-spot:BTCUSDT";
    for (name, st) in [("deflate", &comp), ("declined", &declined)] {
        for key in SAME_BOOK {
            assert_eq!(
                st["instruments"][inst][key], plain["instruments"][inst][key],
                "{name}: {key}"
            );
        }
        assert_eq!(st["messages"], plain["messages"], "{name}: messages");
        assert_eq!(st["bytes"], plain["bytes"], "{name}: payload bytes");
        assert_eq!(st["parse_errors"], 0, "{name}");
        assert_eq!(st["connects"], 1, "{name}: {st}");
    }
    assert_eq!(plain["instruments"][inst]["synced"], true);
    assert!(plain["instruments"][inst]["book_updates"].as_u64().unwrap() > 1000);

    // The switch is reported: agreed, declined, not offered.
    assert_eq!(comp["compressed"], 1, "{comp}");
    assert_eq!(comp["compressed_connects"], 1);
    assert_eq!(declined["compressed"], 0);
    assert_eq!(declined["compressed_connects"], 0);
    assert_eq!(plain["compressed"], 0);

    // Wire bytes: an uncompressed feed is its payloads plus framing (`bytes`
    // also counts the REST snapshot bodies, which never cross the WebSocket,
    // hence the lower bound); deflate makes it much smaller (JSON market data).
    let pb = plain["bytes"].as_u64().unwrap();
    let near = |w: u64| w * 10 > pb * 9 && w < pb + pb / 10;
    for (name, st) in [("plain", &plain), ("declined", &declined)] {
        let w = st["wire_bytes"].as_u64().unwrap();
        assert!(near(w), "{name}: wire {w} vs payload {pb}");
    }
    let cw = comp["wire_bytes"].as_u64().unwrap();
    assert!(cw * 2 < pb, "compressed wire {cw} vs payload {pb}");

    let want = per_signal(&plain_rows);
    assert!(want.len() >= 10, "signals: {}", want.len());
    for (name, rows) in [("deflate", &comp_rows), ("declined", &declined_rows)] {
        let got = per_signal(rows);
        assert_eq!(got.len(), want.len(), "{name}: signal ids");
        for (sig, w) in &want {
            assert_eq!(got.get(sig), Some(w), "{name}: {sig} rows differ");
        }
    }
}

/// Reads one HTTP request head; `None` when the peer closed first.
fn read_head(s: &mut std::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    String::from_utf8(head).ok()
}

/// A server that agrees on permessage-deflate and then sends a frame with
/// RSV1 set (compressed) whose payload is not a deflate stream (BTYPE 11,
/// reserved), on every connection; REST requests are closed unanswered.
fn corrupt_server(accepted: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let Some(head) = read_head(&mut s) else {
                continue;
            };
            let Some(key) = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            }) else {
                continue; // a depth request: closed unanswered
            };
            assert!(
                head.to_ascii_lowercase().contains("permessage-deflate"),
                "{head}"
            );
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            );
            accepted.fetch_add(1, Ordering::Relaxed);
            // FIN + RSV1 + text, 8 bytes of 0xff.
            let mut frame = vec![0xC1, 8];
            frame.extend_from_slice(&[0xff; 8]);
            let _ = s.write_all(reply.as_bytes());
            let _ = s.write_all(&frame);
            open.push(s); // the client must close it, not us
        }
    });
    addr
}

#[test]
fn a_corrupt_compressed_frame_is_an_error_and_a_reconnect() {
    let accepted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = corrupt_server(accepted.clone(), stop.clone());
    let toml = format!(
        "[engine]\npin_cores = false\n[[feeds]]\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [\"BTCUSDT\"]\ncompression = \"deflate\"\n"
    );
    let cfg = Config::from_toml_str(&toml, "deflate").unwrap();
    let flag = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = live::run(
        &cfg,
        Output::None,
        StopWhen {
            duration: Some(Duration::from_secs(20)),
            stop: &flag,
            done: Some(Box::new(|p| {
                let disconnects: u64 = p
                    .registry
                    .feeds()
                    .iter()
                    .map(|(_, f)| f.disconnects.get())
                    .sum();
                disconnects >= 2 || Instant::now() > deadline
            })),
            tick: None,
        },
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let st = &report.stats;
    assert!(st["connects"].as_u64().unwrap() >= 2, "reconnected: {st}");
    assert!(st["disconnects"].as_u64().unwrap() >= 2, "{st}");
    assert!(accepted.load(Ordering::Relaxed) >= 2);
    assert_eq!(st["messages"], 0, "nothing was delivered: {st}");
    assert_eq!(st["compressed_connects"], st["connects"], "{st}");
    assert!(st["wire_bytes"].as_u64().unwrap() >= 2 * 10, "{st}");
}

#[test]
fn deflate_needs_the_epoll_receiver() {
    let e = Config::from_toml_str(
        "[engine]\nreceiver_mode = \"busy_poll\"\n[[feeds]]\nws_url = \"ws://127.0.0.1:1\"\nrest_url = \"http://127.0.0.1:1\"\nsymbols = [\"BTCUSDT\"]\ncompression = \"deflate\"\n",
        "t",
    )
    .unwrap_err();
    assert_eq!(e.path, "feeds[0].compression");
    assert!(e.message.contains("epoll"), "{e}");
    let e = Config::from_toml_str(
        "[[feeds]]\nws_url = \"ws://127.0.0.1:1\"\nrest_url = \"http://127.0.0.1:1\"\nsymbols = [\"BTCUSDT\"]\ncompression = \"gzip\"\n",
        "t",
    )
    .unwrap_err();
    assert_eq!(e.path, "feeds[0].compression");
}
