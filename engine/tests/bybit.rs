//! Bybit v5 public (spot, linear): the shared `orderbook.1` captures
//! replayed without a config against an independent reconstruction written
//! from Bybit's documented procedure (a `snapshot` resets the book, a
//! `delta` applies with size "0" deleting, `u` must be the previous `u` + 1,
//! `u == 1` is a restarted service whose snapshot overwrites the book);
//! crafted frames in Bybit's documented shapes (gaps, a restart, UUID trade
//! ids, a refused subscription); and the simulator speaking Bybit over
//! loopback to `engine run`: rows equal the replay's, a `u` gap resubscribes
//! one instrument, a `u == 1` restart overwrites one book.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bench::sim::{Faults, SimHandle};
use common::{close, read_lines, rows, shared_dir, start_sim, temp_dir};
use serde_json::Value;

type Side = BTreeMap<(u128, u128), (String, String)>;

/// Exact key of a decimal string: (integer part, fraction padded to 18).
fn key(p: &str) -> (u128, u128) {
    let (i, f) = p.split_once('.').unwrap_or((p, ""));
    let f = format!("{f:0<18}");
    (i.parse().unwrap(), f[..18].parse().unwrap())
}

fn zero(q: &str) -> bool {
    q.bytes().all(|c| c == b'0' || c == b'.')
}

#[derive(Debug, Default)]
struct RefBook {
    bids: Side,
    asks: Side,
    last_u: Option<u64>,
    synced: bool,
    gaps: u64,
    /// Exchange times (`cts`, else `ts`) of the frames that changed the book.
    times: Vec<i64>,
}

/// Independent reconstruction of every book of a Bybit capture.
fn reference(lines: &[String]) -> BTreeMap<String, RefBook> {
    let mut books: BTreeMap<String, RefBook> = BTreeMap::new();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let (_, frame) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(frame).unwrap();
        let Some(topic) = v["topic"].as_str() else {
            continue;
        };
        if !topic.starts_with("orderbook.") {
            continue;
        }
        let depth: usize = topic.split('.').nth(1).unwrap().parse().unwrap();
        let d = &v["data"];
        let b = books
            .entry(d["s"].as_str().unwrap().to_owned())
            .or_default();
        let u = d["u"].as_u64().unwrap();
        let snapshot = v["type"] == "snapshot" || depth == 1;
        if snapshot {
            b.bids.clear();
            b.asks.clear();
            b.synced = true;
        } else if !b.synced {
            continue;
        } else if b.last_u.is_some_and(|l| u != l + 1) {
            b.gaps += 1;
            b.synced = false;
            b.bids.clear();
            b.asks.clear();
            continue;
        }
        for (side, k) in [(&mut b.bids, "b"), (&mut b.asks, "a")] {
            for lv in d[k].as_array().unwrap() {
                let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                if zero(q) {
                    side.remove(&key(p));
                } else {
                    side.insert(key(p), (p.to_owned(), q.to_owned()));
                }
            }
        }
        // The book keeps the subscribed depth.
        while b.bids.len() > depth {
            b.bids.pop_first();
        }
        while b.asks.len() > depth {
            b.asks.pop_last();
        }
        b.last_u = Some(u);
        b.times
            .push(v["cts"].as_i64().or(v["ts"].as_i64()).unwrap() * 1_000_000);
    }
    books
}

/// The `url=` header token of a capture.
fn header_url(lines: &[String]) -> String {
    lines
        .iter()
        .take_while(|l| l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .find_map(|t| t.strip_prefix("url="))
        .unwrap()
        .to_owned()
}

fn venue_of(url: &str) -> &'static str {
    if url.contains("/v5/public/spot") {
        "bybit-spot"
    } else if url.contains("/v5/public/linear") {
        "bybit-linear"
    } else {
        "bybit-inverse"
    }
}

#[test]
fn bybit_captures_replay_without_config_and_match_the_reference() {
    let Some(shared) = shared_dir() else { return };
    let caps = common::venue_captures(&shared, "bybit");
    assert_eq!(caps.len(), 2, "spot and linear");
    let mut venues = Vec::new();
    for cap in &caps {
        let dir = temp_dir("bybit-replay");
        let lines = read_lines(cap);
        let venue = venue_of(&header_url(&lines));
        venues.push(venue);
        let stats = common::replay_no_config(std::slice::from_ref(cap), &dir.join("o.jsonl"));
        let name = cap.display();
        assert_eq!(stats["parse_errors"], 0, "{name}");
        assert_eq!(stats["unknown_messages"], 0, "{name}");
        assert!(stats["control_messages"].as_u64().unwrap() >= 4, "acks");
        let refs = reference(&lines);
        assert!(refs.len() >= 4, "{name}");
        let out = rows(&dir.join("o.jsonl"));
        for (sym, r) in &refs {
            let got = &stats["instruments"][format!("{venue}:{sym}")];
            assert!(got.is_object(), "{sym} missing: {stats}");
            assert_eq!(got["gaps"], 0, "{sym}: orderbook.1 repeats u, never a gap");
            assert_eq!(r.gaps, 0);
            assert_eq!(got["synced"], true, "{sym}");
            let best_bid = r.bids.values().next_back().map(|l| l.0.as_str());
            let best_ask = r.asks.values().next().map(|l| l.0.as_str());
            common::assert_book(got, best_bid, best_ask, (r.bids.len(), r.asks.len()), sym);
            // One book-top row set per push, stamped with the push's `cts`.
            let mids: Vec<i64> = out
                .iter()
                .filter(|row| row["symbol"] == sym.as_str() && row["signal"] == "mid")
                .map(|row| row["ts_ns"].as_i64().unwrap())
                .collect();
            assert_eq!(
                mids, r.times,
                "{sym}: a mid row per orderbook.1 push at cts"
            );
        }
    }
    venues.sort_unstable();
    assert_eq!(venues, ["bybit-linear", "bybit-spot"]);
}

/// Linear frames in Bybit's documented shapes.
fn crafted_linear() -> String {
    let book = |sym: &str, ty: &str, u: u64, b: &str, a: &str, t: i64| {
        format!(
            r#"{t}000000 {{"topic":"orderbook.50.{sym}","type":"{ty}","ts":{t},"data":{{"s":"{sym}","b":[{b}],"a":[{a}],"u":{u},"seq":{}}},"cts":{}}}"#,
            u * 10 + 3,
            t - 1
        )
    };
    let lines = [
        "# venue=bybit url=wss://stream.bybit.com/v5/public/linear symbols=AAAUSDT,BBBUSDT".to_owned(),
        r#"1000000000 {"success":true,"ret_msg":"","conn_id":"c1","req_id":"1","op":"subscribe"}"#.to_owned(),
        r#"1000000000 {"success":false,"ret_msg":"error:handler not found,topic:orderbook.50.NOPEUSDT","conn_id":"c1","req_id":"2","op":"subscribe"}"#.to_owned(),
        book("AAAUSDT", "snapshot", 100, r#"["10.00","1"],["9.90","2"]"#, r#"["10.10","1"],["10.20","3"]"#, 1001),
        book("BBBUSDT", "snapshot", 500, r#"["5.5","10"]"#, r#"["5.6","10"]"#, 1002),
        book("AAAUSDT", "delta", 101, r#"["10.00","0"]"#, r#"["10.10","5"]"#, 1003),
        book("BBBUSDT", "delta", 501, r#"["5.4","1"]"#, "", 1004),
        r#"1004500000 {"req_id":"","op":"pong","args":["1004"],"conn_id":"c1"}"#.to_owned(),
        // `u` 102 never came: AAAUSDT alone resyncs.
        book("AAAUSDT", "delta", 103, r#"["9.80","4"]"#, "", 1005),
        book("BBBUSDT", "delta", 502, "", r#"["5.7","2"]"#, 1006),
        book("AAAUSDT", "delta", 104, r#"["9.70","4"]"#, "", 1007),
        // The answer to the resubscribe: a fresh snapshot.
        book("AAAUSDT", "snapshot", 200, r#"["9.95","7"]"#, r#"["10.05","8"]"#, 1008),
        book("AAAUSDT", "delta", 201, r#"["9.96","1"]"#, "", 1009),
        // BBBUSDT's service restarted: `u` 1 overwrites the book.
        book("BBBUSDT", "snapshot", 1, r#"["6.0","3"]"#, r#"["6.2","4"]"#, 1010),
        book("BBBUSDT", "delta", 2, r#"["6.1","1"]"#, "", 1011),
        // Linear trade ids are UUIDs: both trades count.
        r#"1012000000 {"topic":"publicTrade.AAAUSDT","type":"snapshot","ts":1012,"data":[{"T":1011,"s":"AAAUSDT","S":"Buy","v":"0.5","p":"10.05","L":"PlusTick","i":"f4a2c0de-9b1e-5c3a-8e1f-2d3c4b5a6978","BT":false},{"T":1011,"s":"AAAUSDT","S":"Sell","v":"0.7","p":"9.96","L":"MinusTick","i":"0a1b2c3d-4e5f-5a6b-9c7d-8e9f0a1b2c3d","BT":false}]}"#.to_owned(),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[test]
fn crafted_gaps_restart_uuid_trades_and_rejections() {
    let dir = temp_dir("bybit-crafted");
    let path = dir.join("crafted.txt");
    std::fs::write(&path, crafted_linear()).unwrap();
    let stats = common::replay_no_config(std::slice::from_ref(&path), &dir.join("c.jsonl"));
    assert_eq!(stats["parse_errors"], 0, "{stats}");
    assert_eq!(stats["unknown_messages"], 0, "{stats}");
    assert_eq!(stats["rejected_requests"], 1, "{stats}");
    assert_eq!(stats["control_messages"], 2, "ack and pong: {stats}");
    let a = &stats["instruments"]["bybit-linear:AAAUSDT"];
    assert_eq!(a["gaps"], 1, "{a}");
    assert_eq!(a["resyncs"], 1, "{a}");
    assert_eq!(a["synced"], true, "{a}");
    common::assert_book(a, Some("9.96"), Some("10.05"), (2, 1), "AAAUSDT");
    assert_eq!(a["trades"], 2, "UUID ids are not deduplicated: {a}");
    let b = &stats["instruments"]["bybit-linear:BBBUSDT"];
    assert_eq!(b["gaps"], 0, "{b}: the other instrument is unaffected");
    assert_eq!(b["synced"], true);
    common::assert_book(b, Some("6.1"), Some("6.2"), (2, 1), "BBBUSDT");
    // The reconstruction agrees.
    let refs = reference(&read_lines(&path));
    assert_eq!(refs["AAAUSDT"].gaps, 1);
    for (sym, got) in [("AAAUSDT", a), ("BBBUSDT", b)] {
        let r = &refs[sym];
        let best_bid = r.bids.values().next_back().map(|l| l.0.as_str());
        let best_ask = r.asks.values().next().map(|l| l.0.as_str());
        common::assert_book(got, best_bid, best_ask, (r.bids.len(), r.asks.len()), sym);
    }
    // Rows at `cts`, never from AAAUSDT's broken book (cts 1004 and 1006).
    let out = rows(&dir.join("c.jsonl"));
    let a_ts: Vec<i64> = out
        .iter()
        .filter(|r| r["symbol"] == "AAAUSDT" && r["signal"] == "mid")
        .map(|r| r["ts_ns"].as_i64().unwrap())
        .collect();
    assert_eq!(a_ts, [1_002_000_000, 1_008_000_000]);
}

// ---------------------------------------------------------------------------
// Over the simulator
// ---------------------------------------------------------------------------

/// The shared OKX capture (400-level books, trades, tickers of three
/// instruments) rewritten as Bybit linear frames: `orderbook.50` snapshots
/// and deltas with `u` + 1 each, `publicTrade` with UUID ids, `tickers`.
fn okx_as_bybit(cap: &Path) -> (String, Vec<String>) {
    let sym = |inst: &str| inst.replace('-', "");
    let mut us: HashMap<String, u64> = HashMap::new();
    let mut symbols = Vec::new();
    let mut out = String::new();
    for line in read_lines(cap) {
        if let Some(h) = line.strip_prefix("# symbols=") {
            symbols = h.split(',').map(sym).collect();
            out.push_str(&format!(
                "# venue=bybit url=wss://stream.bybit.com/v5/public/linear symbols={}\n",
                symbols.join(",")
            ));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (t, frame) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(frame).unwrap();
        if v.get("event").is_some() {
            out.push_str(&format!(
                r#"{t} {{"success":true,"ret_msg":"","conn_id":"c","req_id":"","op":"subscribe"}}"#
            ));
            out.push('\n');
            continue;
        }
        let s = sym(v["arg"]["instId"].as_str().unwrap());
        let d = &v["data"][0];
        let ts: i64 = d["ts"].as_str().unwrap().parse().unwrap();
        let frame = match v["arg"]["channel"].as_str().unwrap() {
            "books" => {
                let snapshot = v["action"] == "snapshot";
                let u = us.entry(s.clone()).or_insert(7_000);
                *u = if snapshot { 7_000 } else { *u + 1 };
                let lv = |k: &str| {
                    d[k].as_array()
                        .unwrap()
                        .iter()
                        .map(|l| format!("[{},{}]", l[0], l[1]))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!(
                    r#"{{"topic":"orderbook.50.{s}","type":"{}","ts":{ts},"data":{{"s":"{s}","b":[{}],"a":[{}],"u":{u},"seq":{}}},"cts":{}}}"#,
                    if snapshot { "snapshot" } else { "delta" },
                    lv("bids"),
                    lv("asks"),
                    *u * 3,
                    ts - 2
                )
            }
            "trades" => {
                let trades: Vec<String> = v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let id: u64 = e["tradeId"].as_str().unwrap().parse().unwrap();
                        let side = if e["side"] == "sell" { "Sell" } else { "Buy" };
                        format!(
                            r#"{{"T":{},"s":"{s}","S":"{side}","v":{},"p":{},"L":"PlusTick","i":"{:08x}-1111-4222-8333-{:012x}","BT":false}}"#,
                            e["ts"].as_str().unwrap(),
                            e["sz"],
                            e["px"],
                            id >> 20,
                            id & 0xffff_ffff_ffff
                        )
                    })
                    .collect();
                format!(
                    r#"{{"topic":"publicTrade.{s}","type":"snapshot","ts":{ts},"data":[{}]}}"#,
                    trades.join(",")
                )
            }
            "tickers" => format!(
                r#"{{"topic":"tickers.{s}","type":"snapshot","data":{{"symbol":"{s}","bid1Price":{},"bid1Size":{},"ask1Price":{},"ask1Size":{}}},"cs":1,"ts":{ts}}}"#,
                d["bidPx"], d["bidSz"], d["askPx"], d["askSz"]
            ),
            _ => continue,
        };
        out.push_str(t);
        out.push(' ');
        out.push_str(&frame);
        out.push('\n');
    }
    (out, symbols)
}

/// `engine run` of `venue` with `symbols` against the simulator, until the
/// source is played, the feed idle and every lost book recovered.
fn run_venue(sim: &SimHandle, out: &Path, venue: &str, symbols: &[String]) -> Value {
    common::run_feed(sim, out, "", "", venue, &symbols.join("\",\""), false)
}

fn replay(capture: &Path, out: &Path) -> Value {
    common::replay_no_config(&[capture.to_path_buf()], out)
}

/// Rows per (signal, symbol): (ts, value) in stream order.
fn by_signal(rows: &[Value]) -> BTreeMap<(String, String), Vec<(i64, f64)>> {
    let mut m: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for r in rows {
        m.entry((
            r["signal"].as_str().unwrap().to_owned(),
            r["symbol"].as_str().unwrap().to_owned(),
        ))
        .or_default()
        .push((r["ts_ns"].as_i64().unwrap(), r["value"].as_f64().unwrap()));
    }
    m
}

/// Signals of the book alone (no history): a run that skipped some book
/// updates still emits only rows of the replay.
const BOOK_TOP: [&str; 5] = [
    "mid",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "imbalance_l5",
];

/// Every book-top row of `got` is a row of `want` (same exchange time and value).
fn rows_within(
    got: &BTreeMap<(String, String), Vec<(i64, f64)>>,
    want: &BTreeMap<(String, String), Vec<(i64, f64)>>,
) {
    let mut n = 0;
    for (k, rows) in got
        .iter()
        .filter(|((s, _), _)| BOOK_TOP.contains(&s.as_str()))
    {
        n += rows.len();
        let w = &want[k];
        for (ts, v) in rows {
            assert!(
                w.iter().any(|(t, x)| t == ts && close(*v, *x)),
                "{k:?}: row {ts} {v} not in the replay"
            );
        }
    }
    assert!(n > 100, "book rows compared: {n}");
}

fn converted(dir: &Path) -> Option<(PathBuf, Vec<String>)> {
    let shared = shared_dir()?;
    let cap = shared.join("data/okx/books_20220513.txt.gz");
    if !cap.exists() {
        return None;
    }
    let (text, symbols) = okx_as_bybit(&cap);
    let path = dir.join("bybit-linear.txt");
    std::fs::write(&path, text).unwrap();
    Some((path, symbols))
}

/// Stats a loopback run shares with the replay of the same capture.
const SAME_AS_REPLAY: [&str; 7] = [
    "best_bid",
    "best_ask",
    "bid_levels",
    "ask_levels",
    "gaps",
    "trades",
    "book_updates",
];

#[test]
fn shared_spot_capture_over_loopback_equals_the_replay() {
    let Some(shared) = shared_dir() else { return };
    let cap = shared.join("data/bybit/spot-orderbook1_20250613.txt.gz");
    let dir = temp_dir("bybit-e2e-spot");
    let want = replay(&cap, &dir.join("replay.jsonl"));
    let symbols: Vec<String> = want["instruments"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.trim_start_matches("bybit-spot:").to_owned())
        .collect();
    assert_eq!(symbols.len(), 6);
    // Five instruments: their ten topics fit one spot request (at most 10
    // args), so none misses the start of a max-speed playback.
    let symbols = &symbols[..5];
    let sim = start_sim(&cap, Faults::default());
    let live = run_venue(&sim, &dir.join("live.jsonl"), "bybit-spot", symbols);
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    assert_eq!(live["unknown_messages"], 0, "{live}");
    assert_eq!(live["rejected_requests"], 0, "{live}");
    assert!(
        live["control_messages"].as_u64().unwrap() > 0,
        "acks: {live}"
    );
    for sym in symbols {
        let k = format!("bybit-spot:{sym}");
        for f in SAME_AS_REPLAY {
            assert_eq!(
                live["instruments"][&k][f], want["instruments"][&k][f],
                "{k}.{f}"
            );
        }
    }
    let mut want = by_signal(&rows(&dir.join("replay.jsonl")));
    want.retain(|(_, sym), _| symbols.contains(sym));
    assert!(want.len() >= 5 * 5, "book signals of every instrument");
    let got = by_signal(&rows(&dir.join("live.jsonl")));
    assert_eq!(got, want, "live rows equal the replay's");
}

#[test]
fn linear_over_loopback_equals_the_replay_and_a_u_gap_resubscribes_one_instrument() {
    let dir = temp_dir("bybit-e2e-linear");
    let Some((cap, symbols)) = converted(&dir) else {
        return;
    };
    let want = replay(&cap, &dir.join("replay.jsonl"));
    let insts = want["instruments"].as_object().unwrap().clone();
    assert_eq!(insts.len(), 3);
    for (k, i) in &insts {
        assert_eq!(i["gaps"], 0, "{k}: the converted chains are intact");
        assert!(i["trades"].as_u64().unwrap() > 0, "{k}");
    }
    let want_rows = by_signal(&rows(&dir.join("replay.jsonl")));
    assert!(
        want_rows
            .keys()
            .filter(|(s, _)| s == "imbalance_l5")
            .count()
            == 3,
        "L2 rows for every instrument"
    );

    let sim = start_sim(&cap, Faults::default());
    let live = run_venue(&sim, &dir.join("live.jsonl"), "bybit-linear", &symbols);
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    assert_eq!(live["unknown_messages"], 0, "{live}");
    for (k, w) in &insts {
        for f in SAME_AS_REPLAY {
            assert_eq!(live["instruments"][k][f], w[f], "{k}.{f}");
        }
    }
    assert_eq!(
        by_signal(&rows(&dir.join("live.jsonl"))),
        want_rows,
        "live rows equal the replay's"
    );

    // The 30th delta of the connection is not sent: a `u` gap.
    let faults = Faults {
        skip_depth_at: vec![30],
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let live = run_venue(&sim, &dir.join("gap.jsonl"), "bybit-linear", &symbols);
    sim.shutdown().unwrap();
    let got = live["instruments"].as_object().unwrap();
    let gapped: Vec<&String> = got
        .keys()
        .filter(|k| got[*k]["gaps"].as_u64() > Some(0))
        .collect();
    assert_eq!(gapped.len(), 1, "{live}");
    let bad = &got[gapped[0]];
    assert_eq!(bad["gaps"], 1, "{bad}");
    assert!(bad["resyncs"].as_u64().unwrap() >= 1, "resubscribed: {bad}");
    assert_eq!(bad["synced"], true, "{bad}");
    assert_eq!(
        live["connects"], 1,
        "no reconnect for one instrument: {live}"
    );
    for (k, w) in &insts {
        for f in ["best_bid", "best_ask", "bid_levels", "ask_levels"] {
            assert_eq!(got[k][f], w[f], "{k}.{f}: back in sync with the venue");
        }
        if k != gapped[0] {
            assert_eq!(got[k]["gaps"], 0, "{k}: others unaffected");
            assert_eq!(got[k]["book_updates"], w["book_updates"], "{k}");
        }
    }
    rows_within(&by_signal(&rows(&dir.join("gap.jsonl"))), &want_rows);
}

#[test]
fn linear_service_restart_snapshot_overwrites_one_book_over_loopback() {
    let dir = temp_dir("bybit-e2e-restart");
    let Some((cap, symbols)) = converted(&dir) else {
        return;
    };
    let want = replay(&cap, &dir.join("replay.jsonl"));
    let want_rows = by_signal(&rows(&dir.join("replay.jsonl")));
    // The 40th delta of the connection comes as a `u = 1` snapshot of the
    // book it leads to; that book's later deltas continue from `u = 2`.
    let faults = Faults {
        restart_at: vec![40],
        ..Default::default()
    };
    let sim = start_sim(&cap, faults);
    let live = run_venue(&sim, &dir.join("restart.jsonl"), "bybit-linear", &symbols);
    sim.shutdown().unwrap();
    assert_eq!(live["parse_errors"], 0, "{live}");
    assert_eq!(live["connects"], 1, "{live}");
    let mut restarted = Vec::new();
    for (k, w) in want["instruments"].as_object().unwrap() {
        let got = &live["instruments"][k];
        assert_eq!(got["gaps"], 0, "{k}: the restart is no gap: {got}");
        assert_eq!(got["synced"], true, "{k}");
        for f in ["best_bid", "best_ask", "bid_levels", "ask_levels", "trades"] {
            assert_eq!(got[f], w[f], "{k}.{f}");
        }
        let (g, w) = (
            got["book_updates"].as_u64().unwrap(),
            w["book_updates"].as_u64().unwrap(),
        );
        if g + 1 == w {
            restarted.push(k.clone());
        } else {
            assert_eq!(g, w, "{k}");
        }
    }
    assert_eq!(
        restarted.len(),
        1,
        "one delta became the restart snapshot: {live}"
    );
    rows_within(&by_signal(&rows(&dir.join("restart.jsonl"))), &want_rows);
}
