//! Binance USD-M and COIN-M futures, merged multi-venue replay and Tardis
//! raw input, replayed without a configuration (the venue comes from each
//! capture's header) and checked against an independent reconstruction.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::{read_lines, shared_dir, temp_dir};
use engine::app::{self, Output};
use engine::config::{Config, Speed};
use engine::replay::ReplayDefaults;
use serde_json::Value;

fn cfg() -> Config {
    let mut c = Config::default();
    c.engine.pin_cores = Some(false);
    c
}

fn replay(paths: &[PathBuf], defaults: &ReplayDefaults, out: &Path) -> Value {
    app::replay_with(
        &cfg(),
        paths,
        defaults,
        Speed::Max,
        Output::File(out.to_path_buf()),
        None,
        &AtomicBool::new(false),
    )
    .unwrap()
    .stats
}

fn captures(shared: &Path, venue: &str) -> Vec<PathBuf> {
    common::venue_captures(shared, venue)
}

/// What the reference replay finds for one symbol.
#[derive(Debug, Default, PartialEq)]
struct RefBook {
    best_bid: Option<String>,
    best_ask: Option<String>,
    bid_levels: usize,
    ask_levels: usize,
    gaps: u64,
    crosschecks: u64,
}

/// Independent futures reconstruction from the raw JSON (serde_json,
/// BTreeMap keyed by exact decimals), written from Binance's documented
/// USD-M / COIN-M procedure: buffer diffs, load the REST snapshot, drop
/// diffs with `u < lastUpdateId`, the first applied diff has
/// `U <= lastUpdateId <= u`, later ones `pu ==` the previous `u`. A
/// bookTicker whose `u` is the `u` of the last applied diff must equal the
/// book's best levels.
fn futures_reference(paths: &[PathBuf]) -> BTreeMap<String, RefBook> {
    type Side = BTreeMap<(u128, u128), (String, String)>;
    #[derive(Default)]
    struct Book {
        bids: Side,
        asks: Side,
        last_u: Option<u64>,
        snapshot_id: u64,
        synced: bool,
        buffer: Vec<Value>,
        tickers: HashMap<u64, [String; 4]>,
        out: RefBook,
    }
    /// Exact key of a decimal string: (integer part, fraction padded to 18).
    fn key(p: &str) -> (u128, u128) {
        let (i, f) = p.split_once('.').unwrap_or((p, ""));
        let f = format!("{f:0<18}");
        (i.parse().unwrap(), f[..18].parse().unwrap())
    }
    fn zero(q: &str) -> bool {
        q.bytes().all(|c| c == b'0' || c == b'.')
    }
    fn set(side: &mut Side, levels: &Value) {
        for lv in levels.as_array().unwrap() {
            let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
            if zero(q) {
                side.remove(&key(p));
            } else {
                side.insert(key(p), (p.to_owned(), q.to_owned()));
            }
        }
    }
    /// Applies `d` if it continues the book; `false` on a gap.
    fn step(b: &mut Book, d: &Value) -> bool {
        let (first, last, pu) = (
            d["U"].as_u64().unwrap(),
            d["u"].as_u64().unwrap(),
            d["pu"].as_u64().unwrap(),
        );
        match b.last_u {
            None => {
                if last < b.snapshot_id {
                    return true;
                }
                if !(first <= b.snapshot_id || pu == b.snapshot_id) {
                    return false;
                }
            }
            Some(prev) => {
                if last <= prev {
                    return true;
                }
                if pu != prev {
                    return false;
                }
            }
        }
        set(&mut b.bids, &d["b"]);
        set(&mut b.asks, &d["a"]);
        b.last_u = Some(last);
        true
    }
    fn top(b: &Book) -> [Option<(String, String)>; 2] {
        [
            b.bids.values().next_back().cloned(),
            b.asks.values().next().cloned(),
        ]
    }
    fn check(b: &mut Book, t: &[String; 4]) {
        let n = |s: &str| key(s);
        let [bid, ask] = top(b);
        let (bid, ask) = (bid.unwrap(), ask.unwrap());
        assert_eq!(
            (n(&bid.0), n(&bid.1)),
            (n(&t[0]), n(&t[1])),
            "bid vs bookTicker"
        );
        assert_eq!(
            (n(&ask.0), n(&ask.1)),
            (n(&t[2]), n(&t[3])),
            "ask vs bookTicker"
        );
        b.out.crosschecks += 1;
    }
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    for path in paths {
        let mut header_symbol = None;
        for line in read_lines(path) {
            if let Some(h) = line.strip_prefix('#') {
                if let Some(s) = h
                    .split_whitespace()
                    .find_map(|t| t.strip_prefix("symbols="))
                {
                    header_symbol = Some(s.to_uppercase());
                }
                continue;
            }
            let (_, frame) = line.split_once(' ').unwrap();
            let v: Value = serde_json::from_str(frame).unwrap();
            let d = if v.get("stream").is_some() {
                &v["data"]
            } else {
                &v
            };
            let sym = d
                .get("s")
                .or(d.get("symbol"))
                .and_then(Value::as_str)
                .map(str::to_uppercase)
                .or(header_symbol.clone())
                .unwrap();
            let b = books.entry(sym).or_default();
            if d["e"] == "depthUpdate" {
                if !b.synced {
                    b.buffer.push(d.clone());
                    continue;
                }
                if !step(b, d) {
                    b.out.gaps += 1;
                    b.synced = false;
                    b.bids.clear();
                    b.asks.clear();
                    b.buffer = vec![d.clone()];
                    continue;
                }
                if let Some(t) = b.tickers.remove(&b.last_u.unwrap()) {
                    check(b, &t);
                }
                let u = b.last_u.unwrap();
                b.tickers.retain(|&k, _| k > u);
            } else if d["e"] == "bookTicker" {
                let u = d["u"].as_u64().unwrap();
                let t = ["b", "B", "a", "A"].map(|k| d[k].as_str().unwrap().to_owned());
                if b.synced && b.last_u == Some(u) {
                    check(b, &t);
                } else if !b.synced || b.last_u.is_none_or(|l| u > l) {
                    b.tickers.insert(u, t);
                }
            } else if d.get("lastUpdateId").is_some() && !b.synced {
                b.bids.clear();
                b.asks.clear();
                set(&mut b.bids, &d["bids"]);
                set(&mut b.asks, &d["asks"]);
                b.snapshot_id = d["lastUpdateId"].as_u64().unwrap();
                b.last_u = None;
                b.synced = true;
                for diff in std::mem::take(&mut b.buffer) {
                    assert!(step(b, &diff), "gap while replaying the buffer");
                }
            }
        }
    }
    books
        .into_iter()
        .map(|(s, b)| {
            let [bid, ask] = top(&b);
            let out = RefBook {
                best_bid: bid.map(|l| l.0),
                best_ask: ask.map(|l| l.0),
                bid_levels: b.bids.len(),
                ask_levels: b.asks.len(),
                ..b.out
            };
            (s, out)
        })
        .collect()
}

#[test]
fn futures_captures_replay_without_config_and_match_the_reference() {
    let Some(shared) = shared_dir() else { return };
    for venue in ["binance-usdm", "binance-coinm"] {
        let caps = captures(&shared, venue);
        assert!(!caps.is_empty(), "no {venue} capture");
        for cap in &caps {
            let dir = temp_dir(venue);
            let stats = replay(
                std::slice::from_ref(cap),
                &ReplayDefaults::default(),
                &dir.join("o.jsonl"),
            );
            let name = cap.display();
            assert_eq!(stats["parse_errors"], 0, "{name}");
            assert_eq!(stats["unknown_messages"], 0, "{name}");
            assert_eq!(stats["bad_records"], 0, "{name}");
            let reference = futures_reference(std::slice::from_ref(cap));
            assert!(!reference.is_empty());
            for (sym, want) in &reference {
                let got = &stats["instruments"][format!("{venue}:{sym}")];
                assert!(got.is_object(), "{name}: no {venue}:{sym} in {stats}");
                common::assert_book(
                    got,
                    want.best_bid.as_deref(),
                    want.best_ask.as_deref(),
                    (want.bid_levels, want.ask_levels),
                    &format!("{name} {sym}"),
                );
                assert_eq!(got["gaps"].as_u64(), Some(want.gaps), "{name} {sym}");
                assert_eq!(got["crosscheck_failed"], 0, "{name} {sym}");
                assert_eq!(
                    got["crosscheck_ok"].as_u64(),
                    Some(want.crosschecks),
                    "{name} {sym}"
                );
                assert!(want.crosschecks > 0, "{name} {sym}: nothing cross-checked");
                assert_eq!(got["checksum_ok"], 0, "Binance sends no checksum");
                assert!(got["book_updates"].as_u64().unwrap() > 1000, "{got}");
            }
            // Futures bookTickers carry exchange time: quote rows use it.
            let mids: Vec<Value> = read_lines(&dir.join("o.jsonl"))
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|r| r["signal"] == "mid")
                .take(100)
                .collect();
            assert!(!mids.is_empty());
            for r in &mids {
                assert_eq!(r["venue"], venue);
                assert_ne!(r["ts_ns"], r["recv_ns"], "{r}");
                assert_eq!(
                    r["ts_ns"].as_i64().unwrap() % 1_000_000,
                    0,
                    "ms exchange time: {r}"
                );
            }
        }
    }
}

/// Output rows grouped by `venue:symbol`, in order.
fn rows_by_instrument(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in read_lines(path) {
        let v: Value = serde_json::from_str(&l).unwrap();
        let k = format!(
            "{}:{}",
            v["venue"].as_str().unwrap(),
            v["symbol"].as_str().unwrap()
        );
        m.entry(k).or_default().push(l);
    }
    m
}

#[test]
fn merged_replay_of_three_venues_equals_each_alone() {
    let Some(shared) = shared_dir() else { return };
    let inputs: Vec<PathBuf> = ["binance-spot", "binance-usdm", "binance-coinm"]
        .iter()
        .map(|v| captures(&shared, v)[0].clone())
        .collect();
    let dir = temp_dir("merged");
    let d = ReplayDefaults::default();
    let merged = replay(&inputs, &d, &dir.join("merged.jsonl"));
    let merged_rows = rows_by_instrument(&dir.join("merged.jsonl"));
    assert_eq!(merged_rows.len(), 3, "{:?}", merged_rows.keys());
    // Rows of the merged file come in receive-time order across venues.
    let recv: Vec<i64> = read_lines(&dir.join("merged.jsonl"))
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["recv_ns"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(
        recv.windows(2).all(|w| w[0] <= w[1]),
        "merged output not in receive order"
    );
    let mut total = 0;
    for (i, cap) in inputs.iter().enumerate() {
        let out = dir.join(format!("alone{i}.jsonl"));
        let alone = replay(std::slice::from_ref(cap), &d, &out);
        let alone_rows = rows_by_instrument(&out);
        for (k, rows) in &alone_rows {
            assert!(!rows.is_empty());
            assert_eq!(
                merged_rows.get(k),
                Some(rows),
                "{k}: merged rows differ from alone"
            );
            total += rows.len();
            let (a, m) = (&alone["instruments"][k], &merged["instruments"][k]);
            for f in [
                "best_bid",
                "best_ask",
                "bid_levels",
                "ask_levels",
                "gaps",
                "trades",
                "book_updates",
                "crosscheck_ok",
            ] {
                assert_eq!(a[f], m[f], "{k}.{f}");
            }
        }
    }
    assert_eq!(merged_rows.values().map(Vec::len).sum::<usize>(), total);
    assert_eq!(merged["parse_errors"], 0);
}

#[test]
fn futures_capture_split_at_midnight_replays_as_one_stream() {
    let Some(shared) = shared_dir() else { return };
    let cap = &captures(&shared, "binance-usdm")[0];
    let lines = read_lines(cap);
    let dir = temp_dir("split-usdm");
    let header: String = lines
        .iter()
        .take_while(|l| l.starts_with('#'))
        .map(|h| format!("{h}\n"))
        .collect();
    let body: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    let cut = body.len() * 2 / 3;
    let piece =
        |ls: &[&String]| header.clone() + &ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(dir.join("a.txt"), piece(&body[..cut])).unwrap();
    std::fs::write(dir.join("b.txt"), piece(&body[cut..])).unwrap();
    let d = ReplayDefaults::default();
    let whole = replay(std::slice::from_ref(cap), &d, &dir.join("whole.jsonl"));
    // Given in either order, the pieces chain by receive time.
    let parts = replay(
        &[dir.join("b.txt"), dir.join("a.txt")],
        &d,
        &dir.join("parts.jsonl"),
    );
    let w = std::fs::read(dir.join("whole.jsonl")).unwrap();
    assert!(!w.is_empty());
    assert_eq!(w, std::fs::read(dir.join("parts.jsonl")).unwrap());
    let k = "binance-usdm:BTCUSDT";
    assert_eq!(whole["instruments"][k], parts["instruments"][k]);
}

/// `recv_ns` as a Tardis local timestamp (`2024-08-08T23:54:13.9370000Z`,
/// 100 ns resolution), via the calendar of the `date` command's epoch.
fn tardis_stamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000) / 100;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant), written out independently of the engine's inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:07}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[test]
fn tardis_raw_files_replay_to_the_same_rows() {
    assert_eq!(
        tardis_stamp(1_723_161_253_937_000_000),
        "2024-08-08T23:54:13.9370000Z"
    );
    let Some(shared) = shared_dir() else { return };
    for (venue, symbol) in [("binance-spot", "BTCUSDT"), ("binance-usdm", "BTCUSDT")] {
        let cap = &captures(&shared, venue)[0];
        let dir = temp_dir(&format!("tardis-{venue}"));
        // The same capture at Tardis's 100 ns resolution, once in our format
        // (with header) and once as a Tardis raw file (no header; the REST
        // snapshot wrapped as Tardis does, `<sym>@depthSnapshot`).
        let (mut ours, mut tardis) = (String::new(), String::new());
        for l in read_lines(cap) {
            if l.starts_with('#') {
                ours.push_str(&l);
                ours.push('\n');
                continue;
            }
            let (t, frame) = l.split_once(' ').unwrap();
            let t = t.parse::<i64>().unwrap() / 100 * 100;
            ours.push_str(&format!("{t} {frame}\n"));
            let frame = if frame.starts_with("{\"lastUpdateId\"") {
                format!(
                    "{{\"stream\":\"{}@depthSnapshot\",\"generated\":true,\"data\":{frame}}}",
                    symbol.to_lowercase()
                )
            } else {
                frame.to_owned()
            };
            tardis.push_str(&format!("{} {frame}\n", tardis_stamp(t)));
        }
        std::fs::write(dir.join("ours.txt"), ours).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, tardis.as_bytes()).unwrap();
        std::fs::write(dir.join("tardis.csv.gz"), gz.finish().unwrap()).unwrap();
        let a = replay(
            &[dir.join("ours.txt")],
            &ReplayDefaults::default(),
            &dir.join("a.jsonl"),
        );
        let d = ReplayDefaults {
            venue: venue.to_owned(),
            symbols: vec![symbol.to_owned()],
        };
        let b = replay(&[dir.join("tardis.csv.gz")], &d, &dir.join("b.jsonl"));
        assert_eq!(b["bad_records"], 0);
        assert_eq!(b["parse_errors"], 0);
        let rows = std::fs::read(dir.join("a.jsonl")).unwrap();
        assert!(rows.len() > 1000);
        assert_eq!(rows, std::fs::read(dir.join("b.jsonl")).unwrap(), "{venue}");
        let k = format!("{venue}:{symbol}");
        assert_eq!(a["instruments"][&k], b["instruments"][&k]);
        assert_eq!(b["instruments"][&k]["synced"], true);
    }
}

#[test]
fn unknown_capture_venue_is_an_error_naming_the_file() {
    let dir = temp_dir("unknown-venue");
    let p = dir.join("x.txt");
    std::fs::write(&p, "# venue=mars\n1 {}\n").unwrap();
    let err = app::replay_with(
        &cfg(),
        std::slice::from_ref(&p),
        &ReplayDefaults::default(),
        Speed::Max,
        Output::None,
        None,
        &AtomicBool::new(false),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("x.txt") && err.contains("mars"), "{err}");
}

#[test]
fn coinm_live_config_scales_replay_the_capture_exactly() {
    let Some(shared) = shared_dir() else { return };
    let cap = &captures(&shared, "binance-coinm")[0];
    let dir = temp_dir("coinm-scales");
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../config/binance-coinm-live.toml");
    let mut scaled = Config::load(&path).unwrap();
    scaled.engine.pin_cores = Some(false);
    let stats = app::replay(
        &scaled,
        std::slice::from_ref(cap),
        Speed::Max,
        Output::File(dir.join("scaled.jsonl")),
        &AtomicBool::new(false),
    )
    .unwrap()
    .stats;
    assert_eq!(
        stats["parse_errors"], 0,
        "contracts are integers: qty_decimals = 0 is exact"
    );
    let default = replay(
        std::slice::from_ref(cap),
        &ReplayDefaults::default(),
        &dir.join("default.jsonl"),
    );
    let k = "binance-coinm:BTCUSD_PERP";
    for f in [
        "best_bid",
        "best_ask",
        "bid_levels",
        "ask_levels",
        "trades",
        "book_updates",
        "crosscheck_ok",
    ] {
        assert_eq!(
            stats["instruments"][k][f], default["instruments"][k][f],
            "{f}"
        );
    }
    let (a, b) = (
        read_lines(&dir.join("scaled.jsonl")),
        read_lines(&dir.join("default.jsonl")),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (x, y): (Value, Value) = (
            serde_json::from_str(x).unwrap(),
            serde_json::from_str(y).unwrap(),
        );
        assert_eq!(x["signal"], y["signal"]);
        assert!(
            common::close(x["value"].as_f64().unwrap(), y["value"].as_f64().unwrap()),
            "{x} vs {y}"
        );
    }
}
