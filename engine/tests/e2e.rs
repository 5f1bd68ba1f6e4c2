//! End to end over a real loopback WebSocket: the exchange simulator serves a
//! real capture, `engine run` consumes it, and the output is compared with
//! `engine replay` of the same capture.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bench::sim::{SimConfig, SimHandle, Simulator, Speed as SimSpeed};
use bench::source::CaptureSource;
use common::{close, read_lines, rows, run_feed, shared_dir, spot_captures, start_sim, temp_dir};
use engine::app::{self, Output};
use engine::config::{Config, Speed};
use engine::live::{self, StopWhen};
use serde_json::Value;

/// Signals whose value depends on the local receive clock (bookTicker frames
/// carry no exchange time, so their `ts` is the receive time): they cannot
/// match between a capture and a fresh loopback run.
const RECV_CLOCK_SIGNALS: [&str; 3] = ["ofi_l1_10s", "rv_60s", "ema_mid_5s"];
/// Triggered by bookTicker quotes: `ts_ns` is the receive time.
const QUOTE_TRIGGERED: [&str; 5] = [
    "mid",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "zscore_mid_100",
];

/// Per-instrument stats a loopback run must share with the replay of the
/// same capture.
const SAME_AS_REPLAY: [&str; 8] = [
    "best_bid",
    "best_ask",
    "bid_levels",
    "ask_levels",
    "gaps",
    "trades",
    "book_updates",
    "crosscheck_ok",
];

fn run_against(sim: &SimHandle, out: &Path) -> Value {
    run_against_with(sim, out, "")
}

fn run_against_with(sim: &SimHandle, out: &Path, engine_extra: &str) -> Value {
    run_venue(sim, out, engine_extra, "binance-spot", "BTCUSDT")
}

fn run_venue(sim: &SimHandle, out: &Path, engine_extra: &str, venue: &str, symbol: &str) -> Value {
    run_feed(sim, out, engine_extra, "", venue, symbol, false)
}

fn replay(capture: &Path, out: &Path) -> Value {
    let mut cfg = Config::default();
    cfg.engine.pin_cores = Some(false);
    app::replay(
        &cfg,
        &[capture.to_path_buf()],
        Speed::Max,
        Output::File(out.to_path_buf()),
        &AtomicBool::new(false),
    )
    .unwrap()
    .stats
}

/// Rows per signal id, in stream order.
fn by_signal(rows: &[Value]) -> HashMap<String, Vec<&Value>> {
    let mut m: HashMap<String, Vec<&Value>> = HashMap::new();
    for r in rows {
        m.entry(r["signal"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    m
}

fn capture() -> Option<PathBuf> {
    let shared = shared_dir()?;
    spot_captures(&shared).into_iter().next()
}

#[test]
fn run_over_websocket_emits_the_replay_stream() {
    run_matches_replay("e2e-same", "");
}

#[test]
fn inline_signal_placement_emits_the_replay_stream() {
    run_matches_replay("e2e-inline", "signal_placement = \"inline\"");
}

#[test]
fn threads_signal_placement_emits_the_replay_stream() {
    run_matches_replay("e2e-threads", "signal_placement = \"threads\"");
}

#[test]
fn busy_poll_receiver_emits_the_replay_stream() {
    run_matches_replay("e2e-busy", "receiver_mode = \"busy_poll\"");
}

#[test]
fn busy_poll_with_signal_threads_emits_the_replay_stream() {
    run_matches_replay(
        "e2e-busy-threads",
        "receiver_mode = \"busy_poll\"\nsignal_placement = \"threads\"",
    );
}

#[test]
fn busy_poll_with_inline_signals_emits_the_replay_stream() {
    run_matches_replay(
        "e2e-busy-inline",
        "receiver_mode = \"busy_poll\"\nsignal_placement = \"inline\"",
    );
}

fn run_matches_replay(name: &str, engine_extra: &str) {
    let Some(cap) = capture() else { return };
    let dir = temp_dir(name);
    let sim = start_sim(&cap, bench::sim::Faults::default());
    let live_stats = run_against_with(&sim, &dir.join("live.jsonl"), engine_extra);
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    sim.shutdown().unwrap();

    let inst = "binance-spot:BTCUSDT";
    for key in SAME_AS_REPLAY {
        assert_eq!(
            live_stats["instruments"][inst][key], replay_stats["instruments"][inst][key],
            "{key}"
        );
    }
    assert_eq!(live_stats["parse_errors"], 0);
    assert_eq!(live_stats["connects"], 1, "{live_stats}");
    let live = rows(&dir.join("live.jsonl"));
    let rep = rows(&dir.join("replay.jsonl"));
    let (live, rep) = (by_signal(&live), by_signal(&rep));
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

#[test]
fn disconnect_and_gap_faults_reconnect_resync_and_never_emit_from_a_broken_book() {
    let Some(cap) = capture() else { return };
    let dir = temp_dir("e2e-faults");
    let faults = bench::sim::Faults {
        corrupt_checksum_at: Vec::new(),
        reorder_levels_at: Vec::new(),
        restart_at: Vec::new(),
        drop_after_frames: Some(20_000),
        skip_depth_at: vec![500],
        stall: None,
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let stats = run_against(&sim, &dir.join("live.jsonl"));
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    sim.shutdown().unwrap();

    let inst = &stats["instruments"]["binance-spot:BTCUSDT"];
    assert!(stats["disconnects"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["connects"].as_u64().unwrap() >= 2, "{stats}");
    assert!(inst["gaps"].as_u64().unwrap() >= 1, "{inst}");
    assert!(
        inst["resyncs"].as_u64().unwrap() >= 2,
        "gap and reconnect both resync: {inst}"
    );
    assert_eq!(inst["synced"], true, "{inst}");
    let want = &replay_stats["instruments"]["binance-spot:BTCUSDT"];
    assert_eq!(inst["best_bid"], want["best_bid"]);
    assert_eq!(inst["best_ask"], want["best_ask"]);
    // Level counts may differ: a resync snapshot carries only the best 1000
    // levels per side (as Binance's does), the capture's book held more.

    // Every depth-book row of the faulty run equals the replay's row for the
    // same diff (same exchange time): nothing came from a broken book.
    let reference: HashMap<i64, f64> = rows(&dir.join("replay.jsonl"))
        .iter()
        .filter(|r| r["signal"] == "imbalance_l5")
        .map(|r| (r["ts_ns"].as_i64().unwrap(), r["value"].as_f64().unwrap()))
        .collect();
    let live = rows(&dir.join("live.jsonl"));
    let l2: Vec<&Value> = live
        .iter()
        .filter(|r| r["signal"] == "imbalance_l5")
        .collect();
    assert!(!l2.is_empty());
    assert!(
        l2.len() < reference.len(),
        "rows were lost while out of sync"
    );
    for r in l2 {
        let ts = r["ts_ns"].as_i64().unwrap();
        let want = reference
            .get(&ts)
            .unwrap_or_else(|| panic!("row not in replay: {r}"));
        assert!(close(r["value"].as_f64().unwrap(), *want), "{r} vs {want}");
    }
}

/// The first shared capture of `venue` and its symbol (`symbols=` header).
fn venue_capture(venue: &str) -> Option<(PathBuf, String)> {
    let shared = shared_dir()?;
    let mut caps: Vec<PathBuf> = std::fs::read_dir(shared.join("data").join(venue))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    caps.sort();
    let cap = caps.into_iter().next()?;
    let symbol = read_lines(&cap)
        .iter()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("symbols="))
                .map(str::to_owned)
        })?;
    Some((cap, symbol))
}

/// Futures over loopback: every row of every signal equals the replay's
/// (futures bookTickers carry exchange time, so even the quote-clock
/// signals match), and the final book is the replay's. USD-M opens two
/// connections (book streams on `/public`, trades on `/market`), so rows of
/// trade and book signals may interleave differently: compared per signal;
/// the simulator plays only once both are subscribed.
fn futures_run_matches_replay(venue: &str, connections: u64) {
    let Some((cap, symbol)) = venue_capture(venue) else {
        return;
    };
    let dir = temp_dir(&format!("e2e-{venue}"));
    // Playback waits for every planned connection, so none misses the start.
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Max;
    sc.min_subscribed = connections as usize;
    let sim = Simulator::start(sc, Box::new(CaptureSource::new(vec![cap.clone()]))).unwrap();
    let live_stats = run_venue(&sim, &dir.join("live.jsonl"), "", venue, &symbol);
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    sim.shutdown().unwrap();
    let inst = format!("{venue}:{symbol}");
    for key in SAME_AS_REPLAY {
        assert_eq!(
            live_stats["instruments"][&inst][key], replay_stats["instruments"][&inst][key],
            "{inst}.{key}"
        );
    }
    assert_eq!(live_stats["parse_errors"], 0);
    assert_eq!(live_stats["unknown_messages"], 0, "{live_stats}");
    assert_eq!(live_stats["connects"], connections, "{live_stats}");
    let (live, rep) = (
        rows(&dir.join("live.jsonl")),
        rows(&dir.join("replay.jsonl")),
    );
    assert!(rep.len() > 10_000);
    assert_eq!(live.len(), rep.len(), "row count");
    let (live, rep) = (by_signal(&live), by_signal(&rep));
    assert_eq!(rep.len(), 17, "every default signal id is emitted");
    for (sig, want) in &rep {
        let got = &live[sig];
        assert_eq!(got.len(), want.len(), "{sig}: row count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            for k in ["ts_ns", "venue", "symbol"] {
                assert_eq!(g[k], w[k], "{sig} row {i}: {g} vs {w}");
            }
            let (gv, wv) = (g["value"].as_f64().unwrap(), w["value"].as_f64().unwrap());
            assert!(close(gv, wv), "{sig} row {i}: {g} vs {w}");
        }
    }
}

#[test]
fn usdm_run_over_websocket_emits_the_replay_stream() {
    futures_run_matches_replay("binance-usdm", 2);
}

#[test]
fn coinm_run_over_websocket_emits_the_replay_stream() {
    futures_run_matches_replay("binance-coinm", 1);
}

/// Futures with a disconnect and a skipped diff: reconnect, `pu` gap,
/// resync from the simulator's snapshot, and no depth row from a broken book.
/// Faults apply to every first connection (USD-M opens two, and which one
/// connects first is a race): each drops once, the book's skips a diff.
fn futures_faults_recover(venue: &str, connections: u64) {
    let Some((cap, symbol)) = venue_capture(venue) else {
        return;
    };
    let dir = temp_dir(&format!("e2e-faults-{venue}"));
    let faults = bench::sim::Faults {
        corrupt_checksum_at: Vec::new(),
        reorder_levels_at: Vec::new(),
        restart_at: Vec::new(),
        drop_after_frames: Some(15_000),
        skip_depth_at: vec![500],
        stall: None,
        ..Default::default()
    };
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Max;
    sc.faults = faults;
    sc.fault_connections = Some(connections);
    sc.min_subscribed = connections as usize;
    let sim = Simulator::start(sc, Box::new(CaptureSource::new(vec![cap.clone()]))).unwrap();
    let stats = run_venue(&sim, &dir.join("live.jsonl"), "", venue, &symbol);
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    sim.shutdown().unwrap();
    let key = format!("{venue}:{symbol}");
    let inst = &stats["instruments"][&key];
    assert!(stats["connects"].as_u64().unwrap() >= 2, "{stats}");
    assert!(inst["gaps"].as_u64().unwrap() >= 1, "{inst}");
    assert!(inst["resyncs"].as_u64().unwrap() >= 2, "{inst}");
    assert_eq!(inst["synced"], true, "{inst}");
    assert_eq!(inst["crosscheck_failed"], 0, "{inst}");
    let want = &replay_stats["instruments"][&key];
    assert_eq!(inst["best_bid"], want["best_bid"]);
    assert_eq!(inst["best_ask"], want["best_ask"]);
    let mut reference: HashMap<i64, Vec<f64>> = HashMap::new();
    for r in rows(&dir.join("replay.jsonl"))
        .iter()
        .filter(|r| r["signal"] == "imbalance_l5")
    {
        reference
            .entry(r["ts_ns"].as_i64().unwrap())
            .or_default()
            .push(r["value"].as_f64().unwrap());
    }
    let live = rows(&dir.join("live.jsonl"));
    let l2: Vec<&Value> = live
        .iter()
        .filter(|r| r["signal"] == "imbalance_l5")
        .collect();
    assert!(!l2.is_empty());
    assert!(
        l2.len() < reference.values().map(Vec::len).sum::<usize>(),
        "rows were lost while out of sync"
    );
    for r in l2 {
        let ts = r["ts_ns"].as_i64().unwrap();
        let v = r["value"].as_f64().unwrap();
        let same = reference
            .get(&ts)
            .is_some_and(|vs| vs.iter().any(|w| close(v, *w)));
        assert!(same, "row not in replay: {r}");
    }
}

#[test]
fn usdm_disconnect_and_gap_recover() {
    futures_faults_recover("binance-usdm", 2);
}

#[test]
fn coinm_disconnect_and_gap_recover() {
    futures_faults_recover("binance-coinm", 1);
}

/// 40 symbols: 120 streams are too many for the URL, so the connection
/// subscribes with paced `SUBSCRIBE` requests; the simulator acks them, and
/// every book starts from its snapshot and stays in sync.
#[test]
fn many_symbols_subscribe_by_request_and_every_book_syncs() {
    use bench::generator::{GenConfig, Generator};
    use bench::source::GeneratorSource;
    let mut g = GenConfig::new(11, 40);
    g.duration = Duration::from_secs(20);
    let symbols: Vec<String> = g.symbols.iter().map(|s| s.name.clone()).collect();
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Max;
    let sim = Simulator::start(sc, Box::new(GeneratorSource::new(Generator::new(g)))).unwrap();
    let addr = sim.local_addr();
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    let toml = format!(
        "[engine]\npin_cores = false\n[[feeds]]\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [{}]\n",
        list.join(",")
    );
    let cfg = Config::from_toml_str(&toml, "e2e").unwrap();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = live::run(
        &cfg,
        Output::None,
        StopWhen {
            duration: Some(Duration::from_secs(60)),
            stop: &stop,
            done: Some(Box::new(|_| {
                sim.is_exhausted() || Instant::now() > deadline
            })),
            tick: None,
        },
    )
    .unwrap();
    sim.shutdown().unwrap();
    let st = &report.stats;
    assert!(
        st["control_messages"].as_u64().unwrap() >= 1,
        "SUBSCRIBE acks: {st}"
    );
    assert_eq!(st["rejected_requests"], 0, "{st}");
    assert_eq!(st["parse_errors"], 0);
    assert_eq!(st["connects"], 1, "{st}");
    for s in &symbols {
        let inst = &st["instruments"][format!("binance-spot:{s}")];
        assert_eq!(inst["synced"], true, "{s}: {inst}");
        assert!(inst["book_updates"].as_u64().unwrap() > 0, "{s}: {inst}");
        assert_eq!(inst["gaps"], 0, "{s}: {inst}");
    }
}

/// The `symbols=` header of a venue's first shared capture, as a list.
fn header_symbols(cap: &Path) -> Vec<String> {
    read_lines(cap)
        .iter()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("symbols="))
                .map(str::to_owned)
        })
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// L2 rows (`imbalance_l5`) per symbol: (ts, value) in stream order.
fn l2_rows(rows: &[Value]) -> HashMap<String, Vec<(i64, f64)>> {
    let mut m: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for r in rows.iter().filter(|r| r["signal"] == "imbalance_l5") {
        m.entry(r["symbol"].as_str().unwrap().to_owned())
            .or_default()
            .push((r["ts_ns"].as_i64().unwrap(), r["value"].as_f64().unwrap()));
    }
    m
}

/// Every L2 row of the run at `path` is one of the replay's rows of its
/// symbol (same exchange time, same value): no row came from a broken book.
fn assert_l2_rows_in(path: &Path, want_l2: &HashMap<String, Vec<(i64, f64)>>) {
    for (sym, got) in l2_rows(&rows(path)) {
        for (ts, v) in got {
            assert!(
                want_l2[&sym].iter().any(|(t, w)| *t == ts && close(v, *w)),
                "{sym}: row {ts} {v} not in the replay"
            );
        }
    }
}

/// Venues whose books start from a stream snapshot and carry a CRC32
/// (Kraken v1, OKX v5), over the simulator: every checksum verifies and the
/// rows equal the replay's; with a corrupted checksum, that instrument
/// alone is resubscribed (the simulator answers with a snapshot of its
/// book), its book syncs again and no row comes from the broken book.
fn checksummed_venue_over_loopback(venue: &str) {
    let Some((cap, _)) = venue_capture(venue) else {
        return;
    };
    let symbols = header_symbols(&cap).join("\",\"");
    let dir = temp_dir(&format!("e2e-{venue}"));
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    let rep = rows(&dir.join("replay.jsonl"));

    let sim = start_sim(&cap, bench::sim::Faults::default());
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", venue, &symbols);
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    assert!(
        live["control_messages"].as_u64().unwrap() > 0,
        "acks: {live}"
    );
    let insts = replay_stats["instruments"].as_object().unwrap();
    assert!(!insts.is_empty());
    for (k, want) in insts {
        let got = &live["instruments"][k];
        for f in [
            "checksum_ok",
            "checksum_failed",
            "best_bid",
            "best_ask",
            "bid_levels",
            "ask_levels",
            "trades",
        ] {
            assert_eq!(got[f], want[f], "{k}.{f}");
        }
        assert!(want["checksum_ok"].as_u64().unwrap() > 0, "{k}");
    }
    let (want_l2, got_l2) = (l2_rows(&rep), l2_rows(&rows(&dir.join("live.jsonl"))));
    assert_eq!(got_l2, want_l2, "L2 rows equal the replay's");

    // A corrupted checksum on the 40th book frame of the connection.
    let faults = bench::sim::Faults {
        corrupt_checksum_at: vec![40],
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let live = run_venue(&sim, &dir.join("fault.jsonl"), "", venue, &symbols);
    sim.shutdown().unwrap();
    let failed: Vec<&String> = insts
        .keys()
        .filter(|k| {
            live["instruments"][*k]["checksum_failed"]
                .as_u64()
                .unwrap_or(0)
                > 0
        })
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one instrument's checksum was corrupted: {live}"
    );
    let bad = &live["instruments"][failed[0]];
    assert_eq!(bad["checksum_failed"], 1, "{bad}");
    assert!(bad["resyncs"].as_u64().unwrap() >= 1, "resubscribed: {bad}");
    assert_eq!(bad["synced"], true, "{bad}");
    assert_eq!(
        live["connects"], 1,
        "no reconnect for one instrument: {live}"
    );
    for k in insts.keys().filter(|k| *k != failed[0]) {
        let got = &live["instruments"][k];
        assert_eq!(got["checksum_failed"], 0, "{k}: others unaffected");
        assert_eq!(
            got["checksum_ok"], insts[k]["checksum_ok"],
            "{k}: others unaffected"
        );
    }
    // No L2 row that is not the replay's (same exchange time and value).
    assert_l2_rows_in(&dir.join("fault.jsonl"), &want_l2);
}

#[test]
fn kraken_over_loopback_verifies_checksums_and_resubscribes_one_pair() {
    checksummed_venue_over_loopback("kraken");
}

#[test]
fn okx_over_loopback_verifies_checksums_and_resubscribes_one_instrument() {
    checksummed_venue_over_loopback("okx");
}

/// The OKX capture with `seqId`/`prevSeqId` chains added to its book frames
/// (per instrument from `start`, in steps of `step`; snapshots `prevSeqId
/// -1`), and with every checksum set to 0 (the 2026 form) when `zero`.
fn okx_with_seq_ids(cap: &Path, start: i64, step: i64, zero: bool) -> String {
    let mut seqs: HashMap<String, i64> = HashMap::new();
    let mut text = String::new();
    for line in read_lines(cap) {
        let mut l = line.clone();
        let book = l.contains("\"channel\":\"books\"") && l.contains("\"action\"");
        if let (Some(i), true) = (l.find("\"instId\":\""), book) {
            let inst = l[i + 10..].split('"').next().unwrap().to_owned();
            let prev = if l.contains("\"action\":\"snapshot\"") {
                -1
            } else {
                seqs[&inst]
            };
            let seq = seqs.get(&inst).copied().unwrap_or(start) + step;
            seqs.insert(inst, seq);
            let at = l.find("\"checksum\":").unwrap();
            let end = at
                + 11
                + l[at + 11..]
                    .find(|c: char| c != '-' && !c.is_ascii_digit())
                    .unwrap();
            let checksum = if zero {
                "0".to_owned()
            } else {
                l[at + 11..end].to_owned()
            };
            l.replace_range(
                at..end,
                &format!("\"prevSeqId\":{prev},\"seqId\":{seq},\"checksum\":{checksum}"),
            );
        }
        text.push_str(&l);
        text.push('\n');
    }
    text
}

/// OKX with `seqId`/`prevSeqId` chains (added to the shared capture's book
/// frames, steps of 3): a dropped update breaks the chain, that instrument
/// alone resubscribes, the simulator's snapshot (at its book's `seqId`)
/// restarts the chain, and no row comes from the broken book.
#[test]
fn okx_sequence_gap_resubscribes_one_instrument() {
    let Some((cap, _)) = venue_capture("okx") else {
        return;
    };
    let dir = temp_dir("e2e-okx-seq");
    let text = okx_with_seq_ids(&cap, 1_000, 3, false);
    let seq_cap = dir.join("okx-seq.txt");
    std::fs::write(&seq_cap, text).unwrap();
    let replay_stats = replay(&seq_cap, &dir.join("replay.jsonl"));
    let want_l2 = l2_rows(&rows(&dir.join("replay.jsonl")));
    for (k, i) in replay_stats["instruments"].as_object().unwrap() {
        assert_eq!(i["gaps"], 0, "{k}: the added chains are intact");
        assert_eq!(i["checksum_failed"], 0, "{k}");
    }
    let symbols = header_symbols(&cap).join("\",\"");
    let faults = bench::sim::Faults {
        skip_depth_at: vec![30],
        ..Default::default()
    };
    let sim = start_sim(&seq_cap, faults);
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", "okx", &symbols);
    sim.shutdown().unwrap();
    let insts = live["instruments"].as_object().unwrap();
    let gapped: Vec<&String> = insts
        .keys()
        .filter(|k| insts[*k]["gaps"].as_u64() > Some(0))
        .collect();
    assert_eq!(gapped.len(), 1, "{live}");
    let bad = &insts[gapped[0]];
    assert!(bad["resyncs"].as_u64().unwrap() >= 1, "{bad}");
    assert_eq!(bad["synced"], true, "{bad}");
    assert_eq!(
        bad["checksum_failed"], 0,
        "the chain caught it first: {bad}"
    );
    assert_eq!(live["connects"], 1);
    assert_l2_rows_in(&dir.join("live.jsonl"), &want_l2);
}

/// OKX's 2026 flow: no snapshot on the stream and `checksum: 0`. Each
/// instrument's updates are buffered, its book bootstraps from REST
/// (`/api/v5/market/books`, bridged by `seqId`), and the final books equal
/// the legacy flow's (the replay of the original capture).
#[test]
fn okx_2026_flow_bootstraps_books_from_rest() {
    let Some((cap, _)) = venue_capture("okx") else {
        return;
    };
    let dir = temp_dir("e2e-okx-2026");
    let text = okx_with_seq_ids(&cap, 5_000, 2, true);
    let cap26 = dir.join("okx-2026.txt");
    std::fs::write(&cap26, text).unwrap();
    let legacy = replay(&cap, &dir.join("legacy.jsonl"));
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    // Paced (the 10 s capture in 2.5 s), so updates keep coming after the
    // bootstrap and are bridged onto it.
    sc.speed = SimSpeed::Factor(4.0);
    sc.stream_snapshots = false;
    let sim = Simulator::start(sc, Box::new(CaptureSource::new(vec![cap26]))).unwrap();
    let symbols = header_symbols(&cap).join("\",\"");
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", "okx", &symbols);
    assert!(sim.depth_served() >= 3, "one REST bootstrap per instrument");
    sim.shutdown().unwrap();
    assert!(live["snapshots"].as_u64().unwrap() >= 3, "{live}");
    for (k, want) in legacy["instruments"].as_object().unwrap() {
        let got = &live["instruments"][k];
        assert_eq!(got["synced"], true, "{k}: {got}");
        assert_eq!(got["checksum_failed"], 0, "{k}");
        assert_eq!(got["checksum_ok"], 0, "{k}: no checksum sent");
        assert!(got["checksum_absent"].as_u64().unwrap() > 0, "{k}");
        for f in ["best_bid", "best_ask", "bid_levels", "ask_levels", "trades"] {
            assert_eq!(got[f], want[f], "{k}.{f}");
        }
    }
}

/// A reordered level: one BTC-USDT update of the shared OKX capture gets a
/// price it adds and removes again (net nothing: its recorded checksum still
/// holds). Reversing that side's levels leaves the price in the book; the
/// checksum catches it, that instrument alone resubscribes and recovers.
#[test]
fn okx_reordered_levels_are_detected_by_the_checksum() {
    let Some((cap, _)) = venue_capture("okx") else {
        return;
    };
    let dir = temp_dir("e2e-okx-reorder");
    let (mut text, mut books, mut at) = (String::new(), 0u64, None);
    for line in read_lines(&cap) {
        let mut l = line.clone();
        if l.contains("\"channel\":\"books\"") && l.contains("\"action\"") {
            books += 1;
            let update = l.contains(r#""instId":"BTC-USDT"},"action":"update""#)
                && l.contains(r#""asks":[["#);
            if at.is_none() && update && books > 10 {
                let i = l.find(r#""asks":[["#).unwrap() + 10;
                let px = l[i..].split('"').next().unwrap().to_owned();
                let j = l[i..].find("]]").unwrap() + i + 1;
                let p = format!("{px}1");
                l.insert_str(j, &format!(r#",["{p}","5","0","1"],["{p}","0","0","0"]"#));
                at = Some(books);
            }
        }
        text.push_str(&l);
        text.push('\n');
    }
    let at = at.expect("a BTC-USDT update with asks");
    let crafted = dir.join("okx-dup.txt");
    std::fs::write(&crafted, text).unwrap();
    let symbols = header_symbols(&cap).join("\",\"");
    // Control: as crafted, every checksum holds.
    let sim = start_sim(&crafted, bench::sim::Faults::default());
    let clean = run_venue(&sim, &dir.join("clean.jsonl"), "", "okx", &symbols);
    sim.shutdown().unwrap();
    assert_eq!(
        clean["instruments"]["okx:BTC-USDT"]["checksum_failed"], 0,
        "{clean}"
    );
    // Fault: that frame's asks reversed.
    let faults = bench::sim::Faults {
        reorder_levels_at: vec![at],
        ..Default::default()
    };
    let sim = start_sim(&crafted, faults);
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", "okx", &symbols);
    sim.shutdown().unwrap();
    let btc = &live["instruments"]["okx:BTC-USDT"];
    assert_eq!(btc["checksum_failed"], 1, "{btc}");
    assert!(btc["resyncs"].as_u64().unwrap() >= 1, "{btc}");
    assert_eq!(btc["synced"], true, "{btc}");
    for k in ["okx:BTC-USD-220527", "okx:UNI-USD-SWAP"] {
        assert_eq!(live["instruments"][k]["checksum_failed"], 0, "{k}");
    }
}

/// Kraken v1: a dropped update whose change reaches the top 10 levels makes
/// the pair's next checksum fail; that pair alone resubscribes and recovers.
#[test]
fn kraken_dropped_update_is_caught_by_the_next_checksum() {
    use std::collections::BTreeMap;
    let Some((cap, _)) = venue_capture("kraken") else {
        return;
    };
    // Find, with a reference book per pair, the first update (after a warm-up)
    // that changes its pair's top 10 levels, and its position among book frames.
    type Side = BTreeMap<(u64, u64), String>;
    type Top = (Vec<(u64, u64)>, Vec<(u64, u64)>);
    let key = |p: &str| {
        let (i, f) = p.split_once('.').unwrap_or((p, ""));
        (
            i.parse::<u64>().unwrap(),
            format!("{f:0<12}")[..12].parse::<u64>().unwrap(),
        )
    };
    let mut books: HashMap<String, (Side, Side)> = HashMap::new();
    let (mut n, mut target) = (0u64, None);
    for line in read_lines(&cap) {
        let Some((_, frame)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(frame) else {
            continue;
        };
        let Some(a) = v.as_array() else { continue };
        n += 1;
        let pair = a[a.len() - 1].as_str().unwrap().to_owned();
        let b = books.entry(pair.clone()).or_default();
        let top = |b: &(Side, Side)| -> Top {
            (
                b.0.keys().rev().take(10).copied().collect(),
                b.1.keys().take(10).copied().collect(),
            )
        };
        let before = top(b);
        let mut snapshot = false;
        for obj in &a[1..a.len() - 2] {
            for (k, levels) in obj.as_object().unwrap() {
                if k == "c" {
                    continue;
                }
                snapshot |= k.len() == 2;
                let side = if k.starts_with('a') {
                    &mut b.1
                } else {
                    &mut b.0
                };
                for lv in levels.as_array().unwrap() {
                    let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                    if q.bytes().all(|c| c == b'0' || c == b'.') {
                        side.remove(&key(p));
                    } else {
                        side.insert(key(p), q.to_owned());
                    }
                }
            }
        }
        if target.is_none() && !snapshot && n > 200 && top(b) != before {
            target = Some((n, pair));
        }
    }
    let (at, pair) = target.expect("an update that changes a top level");
    let dir = temp_dir("e2e-kraken-drop");
    let symbols = header_symbols(&cap).join("\",\"");
    let faults = bench::sim::Faults {
        skip_depth_at: vec![at],
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", "kraken", &symbols);
    sim.shutdown().unwrap();
    let bad = &live["instruments"][format!("kraken:{pair}")];
    assert!(
        bad["checksum_failed"].as_u64().unwrap() >= 1,
        "{pair}: {bad}"
    );
    assert!(bad["resyncs"].as_u64().unwrap() >= 1, "{bad}");
    assert_eq!(bad["synced"], true, "{bad}");
    for (k, i) in live["instruments"].as_object().unwrap() {
        if *k != format!("kraken:{pair}") {
            assert_eq!(i["checksum_failed"], 0, "{k}");
        }
    }
}

/// Kraken WebSocket v2 over the simulator (the shared capture rewritten as v2
/// frames): v2 subscribe requests are acknowledged, every checksum verifies;
/// a corrupted one resubscribes that pair in v2 form and it recovers.
#[test]
fn kraken_v2_over_loopback_verifies_checksums_and_resubscribes() {
    let Some((cap, _)) = venue_capture("kraken") else {
        return;
    };
    let dir = temp_dir("e2e-kraken-v2");
    let v2 = dir.join("kraken-v2.txt");
    std::fs::write(&v2, common::kraken_v1_to_v2(&cap)).unwrap();
    let replay_stats = replay(&v2, &dir.join("replay.jsonl"));
    let symbols = header_symbols(&cap).join("\",\"");
    let run = |faults: bench::sim::Faults, out: &str| {
        let sim = start_sim(&v2, faults);
        let addr = sim.local_addr();
        let toml = format!(
            "[engine]\npin_cores = false\n[[feeds]]\nvenue = \"kraken\"\nws_url = \"ws://{addr}/v2\"\nrest_url = \"http://{addr}\"\nsymbols = [\"{symbols}\"]\n"
        );
        let cfg = Config::from_toml_str(&toml, "e2e").unwrap();
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(60);
        let report = live::run(
            &cfg,
            Output::File(dir.join(out)),
            StopWhen {
                duration: Some(Duration::from_secs(60)),
                stop: &stop,
                done: Some(Box::new(|p| {
                    let now = engine::pipeline::clock::mono_ns() as i64;
                    let idle = p
                        .registry
                        .feeds()
                        .iter()
                        .all(|(_, f)| now - f.last_frame_mono.get() > 300_000_000);
                    let recovered = p
                        .registry
                        .instruments()
                        .iter()
                        .all(|(_, s)| s.synced.get() == 1 || s.checksum_failed.get() == 0);
                    (sim.is_exhausted() && idle && recovered) || Instant::now() > deadline
                })),
                tick: None,
            },
        )
        .unwrap();
        sim.shutdown().unwrap();
        report.stats
    };
    let clean = run(bench::sim::Faults::default(), "clean.jsonl");
    assert_eq!(clean["parse_errors"], 0, "{clean}");
    assert_eq!(clean["rejected_requests"], 0, "{clean}");
    for (k, want) in replay_stats["instruments"].as_object().unwrap() {
        let got = &clean["instruments"][k];
        for f in [
            "checksum_ok",
            "checksum_failed",
            "best_bid",
            "best_ask",
            "bid_levels",
            "ask_levels",
        ] {
            assert_eq!(got[f], want[f], "{k}.{f}");
        }
    }
    let faults = bench::sim::Faults {
        corrupt_checksum_at: vec![60],
        ..Default::default()
    };
    let live = run(faults, "fault.jsonl");
    let insts = live["instruments"].as_object().unwrap();
    let failed: Vec<&String> = insts
        .keys()
        .filter(|k| insts[*k]["checksum_failed"].as_u64() > Some(0))
        .collect();
    assert_eq!(failed.len(), 1, "{live}");
    let bad = &insts[failed[0]];
    assert!(bad["resyncs"].as_u64().unwrap() >= 1, "{bad}");
    assert_eq!(bad["synced"], true, "{bad}");
    assert_eq!(live["connects"], 1);
}

/// Book stats a loopback run of a Coinbase capture shares with its replay.
const COINBASE_BOOK: [&str; 4] = ["best_bid", "best_ask", "bid_levels", "ask_levels"];

/// The Coinbase Exchange feed over loopback: books, trades and L2 rows
/// equal the replay's; a dropped connection reconnects, the simulator's
/// snapshots restart every book, and the final books equal the replay's.
#[test]
fn coinbase_exchange_over_loopback_matches_the_replay_and_heals_a_drop() {
    let Some((cap, _)) = venue_capture("coinbase") else {
        return;
    };
    let symbols = header_symbols(&cap).join("\",\"");
    let dir = temp_dir("e2e-coinbase");
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    let want_l2 = l2_rows(&rows(&dir.join("replay.jsonl")));
    let sim = start_sim(&cap, bench::sim::Faults::default());
    let live = run_venue(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "coinbase-exchange",
        &symbols,
    );
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    assert!(
        live["control_messages"].as_u64().unwrap() > 0,
        "ack: {live}"
    );
    let insts = replay_stats["instruments"].as_object().unwrap();
    assert_eq!(insts.len(), 10);
    for (k, want) in insts {
        for f in COINBASE_BOOK.iter().chain(&["trades", "gaps"]) {
            assert_eq!(live["instruments"][k][f], want[f], "{k}.{f}");
        }
    }
    assert_eq!(l2_rows(&rows(&dir.join("live.jsonl"))), want_l2);

    let faults = bench::sim::Faults {
        drop_after_frames: Some(3000),
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let live = run_venue(
        &sim,
        &dir.join("drop.jsonl"),
        "",
        "coinbase-exchange",
        &symbols,
    );
    sim.shutdown().unwrap();
    assert_eq!(live["connects"], 2, "{live}");
    for (k, want) in insts {
        let got = &live["instruments"][k];
        assert_eq!(got["synced"], true, "{k}");
        for f in COINBASE_BOOK {
            assert_eq!(got[f], want[f], "{k}.{f} after the reconnect");
        }
    }
}

/// Coinbase Advanced Trade over loopback (the shared capture in its
/// shapes; the simulator numbers each connection's messages): rows equal
/// the replay's; a message the simulator skips leaves a hole in
/// `sequence_num`, every book of the connection is resubscribed (one gap
/// each, no reconnect), and every final book equals the replay's.
#[test]
fn coinbase_advanced_trade_sequence_hole_resubscribes_every_book() {
    let Some((cap, _)) = venue_capture("coinbase") else {
        return;
    };
    let symbols = header_symbols(&cap);
    let dir = temp_dir("e2e-coinbase-at");
    let at = dir.join("at.txt");
    std::fs::write(&at, common::coinbase_exchange_to_advanced(&cap, 0)).unwrap();
    let replay_stats = replay(&at, &dir.join("replay.jsonl"));
    let want_l2 = l2_rows(&rows(&dir.join("replay.jsonl")));
    let insts = replay_stats["instruments"].as_object().unwrap();
    assert_eq!(insts.len(), 10);
    let start = |faults| {
        let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        sc.speed = SimSpeed::Max;
        sc.faults = faults;
        sc.fault_connections = Some(1);
        // Heartbeats, then level2, market_trades and ticker for each product.
        sc.min_streams = 1 + 3 * symbols.len();
        Simulator::start(sc, Box::new(CaptureSource::new(vec![at.clone()]))).unwrap()
    };
    let list = symbols.join("\",\"");
    let sim = start(bench::sim::Faults::default());
    let live = run_venue(&sim, &dir.join("live.jsonl"), "", "coinbase", &list);
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    for (k, want) in insts {
        for f in COINBASE_BOOK.iter().chain(&["trades", "gaps"]) {
            assert_eq!(live["instruments"][k][f], want[f], "{k}.{f}");
        }
    }
    assert_eq!(l2_rows(&rows(&dir.join("live.jsonl"))), want_l2);

    let sim = start(bench::sim::Faults {
        skip_depth_at: vec![200],
        ..Default::default()
    });
    let live = run_venue(&sim, &dir.join("hole.jsonl"), "", "coinbase", &list);
    sim.shutdown().unwrap();
    assert_eq!(live["connects"], 1, "no reconnect: {live}");
    for (k, want) in insts {
        let got = &live["instruments"][k];
        assert_eq!(got["gaps"], 1, "{k}: {got}");
        assert!(got["resyncs"].as_u64() >= Some(1), "{k}: {got}");
        assert_eq!(got["synced"], true, "{k}");
        for f in COINBASE_BOOK {
            assert_eq!(got[f], want[f], "{k}.{f}");
        }
    }
    // No L2 row that is not the replay's.
    assert_l2_rows_in(&dir.join("hole.jsonl"), &want_l2);
}

/// The generator served in the protocol of every venue that starts books
/// from a stream snapshot (the demo's data on those venues): the simulator
/// sends each book's snapshot on subscribe from the generator's live book,
/// every book syncs and stays in sync, trades and L2 rows flow.
#[test]
fn generated_data_syncs_on_every_stream_started_venue() {
    use bench::generator::{GenConfig, Generator};
    use bench::source::GeneratorSource;
    use feeds::book::BookStart;
    for def in feeds::venue::VENUES
        .iter()
        .filter(|v| v.book.start == BookStart::StreamSnapshot)
    {
        let mut g = GenConfig::new(5, 2);
        g.duration = Duration::from_secs(10);
        g.venue = def.name.to_owned();
        let symbols: Vec<String> = g.symbols.iter().map(|s| s.name.clone()).collect();
        // Playback starts once every planned stream is subscribed.
        let (idx, _) = feeds::venue::venue_by_name(def.name).unwrap();
        let ids = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let instruments =
            feeds::instruments::Instruments::new(idx, vec![], Default::default(), ids);
        let streams: usize = (def.new)(idx, instruments)
            .connections("ws://127.0.0.1:1", &symbols)
            .iter()
            .flat_map(|p| &p.subscribe)
            .map(|s| s.streams.len())
            .sum();
        let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        sc.speed = SimSpeed::Max;
        sc.min_streams = streams;
        let sim = Simulator::start(sc, Box::new(GeneratorSource::new(Generator::new(g)))).unwrap();
        let dir = temp_dir(&format!("e2e-gen-{}", def.name));
        let st = run_venue(
            &sim,
            &dir.join("o.jsonl"),
            "",
            def.name,
            &symbols.join("\",\""),
        );
        sim.shutdown().unwrap();
        assert_eq!(st["parse_errors"], 0, "{}: {st}", def.name);
        for s in &symbols {
            let inst = &st["instruments"][format!("{}:{s}", def.name)];
            assert_eq!(inst["synced"], true, "{} {s}: {inst}", def.name);
            assert!(
                inst["book_updates"].as_u64() > Some(0),
                "{} {s}: {inst}",
                def.name
            );
            assert!(
                inst["trades"].as_u64() > Some(0),
                "{} {s}: {inst}",
                def.name
            );
            assert_eq!(inst["gaps"], 0, "{} {s}: {inst}", def.name);
        }
    }
}

/// The spot capture and the simulator with `faults` on its first connection.
fn spot_sim(
    faults: bench::sim::Faults,
    tune: impl FnOnce(&mut SimConfig),
) -> Option<(SimHandle, PathBuf)> {
    let shared = shared_dir()?;
    let cap = spot_captures(&shared).into_iter().next()?;
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Max;
    sc.faults = faults;
    sc.fault_connections = Some(1);
    tune(&mut sc);
    let sim = Simulator::start(sc, Box::new(CaptureSource::new(vec![cap.clone()]))).unwrap();
    Some((sim, cap))
}

/// A snapshot answered 429 with `Retry-After: 1`, then 500, then not at
/// all: the book recovers by itself once the venue allows, with one request
/// per attempt (no more), the second only after the `Retry-After`.
#[test]
fn failed_snapshots_are_retried_within_the_venues_limits() {
    use bench::sim::RestFault;
    let faults = bench::sim::Faults {
        rest_failures: vec![
            RestFault::Status {
                status: 429,
                retry_after_s: Some(1),
            },
            RestFault::Status {
                status: 500,
                retry_after_s: None,
            },
            RestFault::Hang(Duration::from_secs(2)),
        ],
        ..Default::default()
    };
    let Some((sim, cap)) = spot_sim(faults, |_| {}) else {
        return;
    };
    let dir = temp_dir("e2e-rest-retry");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    let times = sim.depth_requests();
    sim.shutdown().unwrap();
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    let inst = &live["instruments"]["binance-spot:BTCUSDT"];
    assert_eq!(inst["synced"], true, "{live}");
    assert_eq!(live["snapshot_errors"], 3, "{live}");
    assert_eq!(times.len(), 4, "one request per attempt: {times:?}");
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "the 429's Retry-After was respected: {times:?}"
    );
    assert_eq!(live["connects"], 1, "no reconnect for a REST failure");
    assert_eq!(
        live["rest_weight_used"], 200,
        "4 requests of weight 50: {live}"
    );
    // The top equals the replay's (a later snapshot of 1000 levels holds
    // fewer deep levels than the capture's own).
    let want = &replay_stats["instruments"]["binance-spot:BTCUSDT"];
    for f in ["best_bid", "best_ask"] {
        assert_eq!(inst[f], want[f], "{f}");
    }
}

/// The connection stays open and the simulator keeps pinging, but no data
/// comes: the data watchdog replaces the connection, the book resyncs, and
/// the final book equals the replay's.
#[test]
fn a_silent_connection_is_replaced_by_the_data_watchdog() {
    let faults = bench::sim::Faults {
        stall: Some((3000, Duration::from_secs(3))),
        ..Default::default()
    };
    let Some((sim, cap)) = spot_sim(faults, |sc| sc.ping_interval = Duration::from_millis(200))
    else {
        return;
    };
    let dir = temp_dir("e2e-watchdog");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "data_timeout_ms = 1000",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    sim.shutdown().unwrap();
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    assert!(live["watchdog_reconnects"].as_u64() >= Some(1), "{live}");
    assert!(live["connects"].as_u64() >= Some(2), "{live}");
    let inst = &live["instruments"]["binance-spot:BTCUSDT"];
    assert_eq!(inst["synced"], true, "{inst}");
    // Consumers see each outage: 0 when the book is lost, 1 when it is back.
    let status: Vec<f64> = rows(&dir.join("live.jsonl"))
        .iter()
        .filter(|r| r["signal"] == "book_status")
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert!(!status.is_empty(), "status rows around the outage");
    assert!(
        status.chunks(2).all(|p| p == [0.0, 1.0]),
        "alternating out/back, ending back: {status:?}"
    );
    assert!(inst["lost_s"].as_f64() > Some(0.0), "{inst}");
    // The top equals the replay's (a later snapshot of 1000 levels holds
    // fewer deep levels than the capture's own).
    let want = &replay_stats["instruments"]["binance-spot:BTCUSDT"];
    for f in ["best_bid", "best_ask"] {
        assert_eq!(inst[f], want[f], "{f}");
    }
}

/// A misbehaving server sends every product to the connection, with a
/// malformed frame after every 100th: only the two requested products get
/// state (the rest is counted as ignored), the errors are counted, and the
/// two books equal the replay's.
#[test]
fn symbols_nobody_asked_for_get_no_state() {
    let Some((cap, _)) = venue_capture("coinbase") else {
        return;
    };
    let faults = bench::sim::Faults {
        broadcast: true,
        garbage_every: Some(100),
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let dir = temp_dir("e2e-unrequested");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "",
        "coinbase-exchange",
        "BAND-BTC\", \"SKL-USD",
        true,
    );
    sim.shutdown().unwrap();
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    let insts = live["instruments"].as_object().unwrap();
    let mut names: Vec<&String> = insts.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["coinbase-exchange:BAND-BTC", "coinbase-exchange:SKL-USD"],
        "{live}"
    );
    assert!(live["parse_errors"].as_u64() > Some(10), "{live}");
    assert!(live["ignored_messages"].as_u64() > Some(1000), "{live}");
    for k in names {
        let want = &replay_stats["instruments"][k];
        for f in ["best_bid", "best_ask", "bid_levels", "ask_levels", "trades"] {
            assert_eq!(insts[k][f], want[f], "{k}.{f}");
        }
    }
}

/// A server that drops each of the first six connections after 300 frames:
/// the frames they delivered do not make them healthy, so the reconnect
/// backoff keeps growing (each wait at least 70 % of 100 ms · 2^k: the
/// jitter only shortens); one snapshot per connection; once the server
/// stops flapping the book syncs and stays in sync.
#[test]
fn a_flapping_server_cannot_reset_the_backoff() {
    let faults = bench::sim::Faults {
        drop_after_frames: Some(300),
        ..Default::default()
    };
    let Some((sim, cap)) = spot_sim(faults, |sc| sc.fault_connections = Some(6)) else {
        return;
    };
    let dir = temp_dir("e2e-flapping");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    let accepts = sim.accept_times();
    let requests = sim.depth_requests();
    sim.shutdown().unwrap();
    assert_eq!(accepts.len(), 7, "{live}");
    assert_eq!(live["connects"], 7);
    for (k, w) in accepts.windows(2).enumerate() {
        let min = Duration::from_millis(100 * (1 << k)).mul_f64(0.7);
        assert!(w[1] - w[0] >= min, "wait {k}: {:?} < {min:?}", w[1] - w[0]);
    }
    assert!(
        requests.len() <= 7,
        "one snapshot per connection: {requests:?}"
    );
    let replay_stats = replay(&cap, &dir.join("replay.jsonl"));
    let inst = &live["instruments"]["binance-spot:BTCUSDT"];
    assert_eq!(inst["synced"], true, "{inst}");
    let want = &replay_stats["instruments"]["binance-spot:BTCUSDT"];
    for f in ["best_bid", "best_ask"] {
        assert_eq!(inst[f], want[f], "{f}");
    }
}

/// Trade-triggered rows (exchange time) per signal: (ts, value) in order.
fn trade_rows(rows: &[Value]) -> HashMap<String, Vec<(i64, f64)>> {
    let mut m: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for r in rows {
        let s = r["signal"].as_str().unwrap();
        if [
            "ema_px_10",
            "rsi_14",
            "trade_imbalance_10s",
            "kyle_lambda_300",
        ]
        .contains(&s)
        {
            m.entry(s.to_owned())
                .or_default()
                .push((r["ts_ns"].as_i64().unwrap(), r["value"].as_f64().unwrap()));
        }
    }
    m
}

/// A rollover (planned, or announced by the venue) replaced the connection
/// make before break: no message lost or doubled (every trade row equals
/// the replay's), no gap, no reset, no resync.
fn assert_seamless(live: &Value, dir: &Path, cap: &Path) {
    let replay_stats = replay(cap, &dir.join("replay.jsonl"));
    assert!(live["rollovers"].as_u64() >= Some(1), "{live}");
    assert_eq!(
        live["connects"], 1,
        "the replacement is no reconnect: {live}"
    );
    let inst = &live["instruments"]["binance-spot:BTCUSDT"];
    let want = &replay_stats["instruments"]["binance-spot:BTCUSDT"];
    for f in [
        "trades", "gaps", "resets", "resyncs", "best_bid", "best_ask",
    ] {
        assert_eq!(inst[f], want[f], "{f}: {inst}");
    }
    assert!(
        inst["dup_trades"].as_u64() > Some(0),
        "both connections ran side by side: {inst}"
    );
    let got = trade_rows(&rows(&dir.join("live.jsonl")));
    let exp = trade_rows(&rows(&dir.join("replay.jsonl")));
    assert!(!exp.is_empty());
    for (s, w) in &exp {
        assert_eq!(got.get(s).map(Vec::len), Some(w.len()), "{s}");
        for ((gt, gv), (wt, wv)) in got[s].iter().zip(w) {
            assert!(gt == wt && close(*gv, *wv), "{s}: {gt} {gv} vs {wt} {wv}");
        }
    }
}

#[test]
fn a_planned_rollover_loses_no_message() {
    let Some((sim, cap)) = spot_sim(bench::sim::Faults::default(), |sc| {
        sc.speed = SimSpeed::Factor(40.0);
    }) else {
        return;
    };
    let dir = temp_dir("e2e-rollover");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "rollover_after_ms = 2500",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    sim.shutdown().unwrap();
    assert_seamless(&live, &dir, &cap);
}

#[test]
fn a_planned_rollover_of_the_busy_poll_receiver_loses_no_message() {
    let Some((sim, cap)) = spot_sim(bench::sim::Faults::default(), |sc| {
        sc.speed = SimSpeed::Factor(40.0);
    }) else {
        return;
    };
    let dir = temp_dir("e2e-rollover-busy");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "receiver_mode = \"busy_poll\"",
        "rollover_after_ms = 2500",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    sim.shutdown().unwrap();
    assert_seamless(&live, &dir, &cap);
}

#[test]
fn a_server_shutdown_notice_rolls_over_before_the_close() {
    let faults = bench::sim::Faults {
        closing_after: Some((4000, Duration::from_secs(3))),
        ..Default::default()
    };
    let Some((sim, cap)) = spot_sim(faults, |sc| sc.speed = SimSpeed::Factor(40.0)) else {
        return;
    };
    let dir = temp_dir("e2e-shutdown");
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        "",
        "",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    sim.shutdown().unwrap();
    assert_eq!(live["rollovers"], 1, "{live}");
    assert!(live["control_messages"].as_u64() >= Some(1), "the notice");
    assert_seamless(&live, &dir, &cap);
}
