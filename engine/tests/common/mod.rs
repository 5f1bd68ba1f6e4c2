//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// `../shared` next to the repository (override: `WIRESIGNAL_SHARED`).
/// `None` (test skipped) when absent, unless `CI=true`, where it is a failure.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WIRESIGNAL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("data").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data folder missing at {} (CI=true)", dir.display());
    }
    eprintln!("skipping: shared data folder missing at {}", dir.display());
    None
}

/// All lines of a (possibly gzip) text file.
pub fn read_lines(path: &std::path::Path) -> Vec<String> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let text: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    BufReader::new(text).lines().map(|l| l.unwrap()).collect()
}

/// A fresh temporary directory for one test, removed when the test passes
/// (kept for inspection when it panics). Tests write hundreds of megabytes
/// of signal rows; a suite run must not leave them behind.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// See [`TempDir`].
pub fn temp_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("wiresignal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// The engine's decimal string equals the wire's (`61800.20` vs
/// `61800.20000000`; trailing zeros are cut only after a decimal point).
pub fn same_decimal(engine: &serde_json::Value, wire: Option<&str>) -> bool {
    let norm = |s: &str| {
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        };
        s.to_owned()
    };
    engine.as_str().map(norm) == wire.map(norm)
}

/// A `stats.instruments` entry has this reference book: top (as wire
/// decimals) and depth on each side. `ctx` names the book in failures.
pub fn assert_book(
    got: &serde_json::Value,
    best_bid: Option<&str>,
    best_ask: Option<&str>,
    levels: (usize, usize),
    ctx: &str,
) {
    assert!(
        same_decimal(&got["best_bid"], best_bid),
        "{ctx} bid {got} vs {best_bid:?}"
    );
    assert!(
        same_decimal(&got["best_ask"], best_ask),
        "{ctx} ask {got} vs {best_ask:?}"
    );
    assert_eq!(got["bid_levels"].as_u64(), Some(levels.0 as u64), "{ctx}");
    assert_eq!(got["ask_levels"].as_u64(), Some(levels.1 as u64), "{ctx}");
}

/// Tolerance of SIGNALS.md section 8.
pub fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= f64::max(1e-12, 1e-9 * want.abs())
}

/// Binance spot captures in the shared data folder.
pub fn spot_captures(shared: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join("data/binance-spot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    v.sort();
    v
}

/// Replays `paths` with no configuration (each capture names its venue),
/// writing rows to `out`; returns the stats.
pub fn replay_no_config(paths: &[PathBuf], out: &std::path::Path) -> serde_json::Value {
    let mut cfg = engine::config::Config::default();
    cfg.engine.pin_cores = false;
    engine::app::replay_with(
        &cfg,
        paths,
        &engine::replay::ReplayDefaults::default(),
        engine::config::Speed::Max,
        engine::app::Output::File(out.to_path_buf()),
        None,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
    .stats
}

/// The shared captures of `venue` (`shared/data/<venue>/*.txt.gz`), sorted.
pub fn venue_captures(shared: &std::path::Path, venue: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join("data").join(venue))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    v.sort();
    v
}

/// The shared v1 capture rewritten as WebSocket v2 frames (objects, prices
/// and sizes as JSON numbers with the same text, the same checksums).
pub fn kraken_v1_to_v2(cap: &std::path::Path) -> String {
    let mut out = String::from("# venue=kraken url=wss://ws.kraken.com/v2\n");
    let level = |lv: &serde_json::Value| {
        format!(
            r#"{{"price":{},"qty":{}}}"#,
            lv[0].as_str().unwrap(),
            lv[1].as_str().unwrap()
        )
    };
    for line in read_lines(cap) {
        if line.starts_with('#') {
            continue;
        }
        let (t, frame) = line.split_once(' ').unwrap();
        let v: serde_json::Value = serde_json::from_str(frame).unwrap();
        let Some(a) = v.as_array() else {
            // Events: a v2 heartbeat stands in for each.
            out.push_str(&format!("{t} {{\"channel\":\"heartbeat\"}}\n"));
            continue;
        };
        let pair = a[a.len() - 1].as_str().unwrap();
        let (mut bids, mut asks, mut checksum, mut snapshot) = (vec![], vec![], None, false);
        for obj in &a[1..a.len() - 2] {
            for (k, levels) in obj.as_object().unwrap() {
                match k.as_str() {
                    "c" => checksum = Some(levels.as_str().unwrap().to_owned()),
                    k => {
                        snapshot |= k.len() == 2;
                        let side = if k.starts_with('a') {
                            &mut asks
                        } else {
                            &mut bids
                        };
                        side.extend(levels.as_array().unwrap().iter().map(level));
                    }
                }
            }
        }
        let kind = if snapshot { "snapshot" } else { "update" };
        let c = checksum
            .map(|c| format!(r#","checksum":{c}"#))
            .unwrap_or_default();
        out.push_str(&format!(
            r#"{t} {{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair}","bids":[{}],"asks":[{}]{c}}}]}}"#,
            bids.join(","),
            asks.join(",")
        ));
        out.push('\n');
    }
    out
}

/// The shared Coinbase Exchange capture rewritten in Advanced Trade's
/// shapes: `l2_data` snapshots and updates (`bid`/`offer`, the same
/// strings), `market_trades` for `match` and `last_match`, the
/// `subscriptions` ack, each numbered by `sequence_num` on one connection.
/// Tickers (no sizes in 2021) are left out. `drop_after(n)` leaves a hole in
/// the numbers after the `n`th message (0: none) and then re-sends every
/// product's current book as a snapshot, as a resubscribe does.
pub fn coinbase_exchange_to_advanced(cap: &std::path::Path, hole_after: u64) -> String {
    use std::collections::BTreeMap;
    let symbols = read_lines(cap)
        .iter()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("symbols="))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let mut out =
        format!("# venue=coinbase url=wss://advanced-trade-ws.coinbase.com symbols={symbols}\n");
    // Books as strings (price key normalised) for the re-sent snapshots.
    type Side = BTreeMap<(u128, u128), (String, String)>;
    let key = |p: &str| {
        let (i, f) = p.split_once('.').unwrap_or((p, ""));
        let f = format!("{f:0<18}");
        (i.parse::<u128>().unwrap(), f[..18].parse::<u128>().unwrap())
    };
    let mut books: BTreeMap<String, (Side, Side)> = BTreeMap::new();
    let lv = |side: &str, p: &str, q: &str| {
        format!(
            r#"{{"side":"{side}","event_time":"1970-01-01T00:00:00Z","price_level":"{p}","new_quantity":"{q}"}}"#
        )
    };
    let seq = std::cell::Cell::new(0u64);
    let emit = |out: &mut String, t: &str, ts: &str, channel: &str, events: String| {
        out.push_str(&format!(
            r#"{t} {{"channel":"{channel}","client_id":"","timestamp":"{ts}","sequence_num":{},"events":[{events}]}}"#,
            seq.get()
        ));
        out.push('\n');
        seq.set(seq.get() + 1);
    };
    let mut n = 0u64;
    for line in read_lines(cap) {
        if line.starts_with('#') {
            continue;
        }
        let (t, frame) = line.split_once(' ').unwrap();
        let v: serde_json::Value = serde_json::from_str(frame).unwrap();
        let product = v["product_id"].as_str().unwrap_or("").to_owned();
        let ts = v["time"]
            .as_str()
            .unwrap_or("2021-04-17T16:43:37Z")
            .to_owned();
        match v["type"].as_str().unwrap() {
            "subscriptions" => {
                let list = symbols
                    .split(',')
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(",");
                emit(
                    &mut out,
                    t,
                    &ts,
                    "subscriptions",
                    format!(r#"{{"subscriptions":{{"level2":[{list}]}}}}"#),
                );
            }
            "snapshot" => {
                let (bids, asks) = books.entry(product.clone()).or_default();
                bids.clear();
                asks.clear();
                let mut ups = Vec::new();
                for (k, side, book) in [("bids", "bid", &mut *bids), ("asks", "offer", &mut *asks)]
                {
                    for l in v[k].as_array().unwrap() {
                        let (p, q) = (l[0].as_str().unwrap(), l[1].as_str().unwrap());
                        book.insert(key(p), (p.to_owned(), q.to_owned()));
                        ups.push(lv(side, p, q));
                    }
                }
                emit(
                    &mut out,
                    t,
                    &ts,
                    "l2_data",
                    format!(
                        r#"{{"type":"snapshot","product_id":"{product}","updates":[{}]}}"#,
                        ups.join(",")
                    ),
                );
            }
            "l2update" => {
                let (bids, asks) = books.entry(product.clone()).or_default();
                let mut ups = Vec::new();
                for c in v["changes"].as_array().unwrap() {
                    let (s, p, q) = (
                        c[0].as_str().unwrap(),
                        c[1].as_str().unwrap(),
                        c[2].as_str().unwrap(),
                    );
                    let (side, book) = if s == "buy" {
                        ("bid", &mut *bids)
                    } else {
                        ("offer", &mut *asks)
                    };
                    if q.chars().all(|c| c == '0' || c == '.') {
                        book.remove(&key(p));
                    } else {
                        book.insert(key(p), (p.to_owned(), q.to_owned()));
                    }
                    ups.push(lv(side, p, q));
                }
                emit(
                    &mut out,
                    t,
                    &ts,
                    "l2_data",
                    format!(
                        r#"{{"type":"update","product_id":"{product}","updates":[{}]}}"#,
                        ups.join(",")
                    ),
                );
            }
            "match" | "last_match" => {
                let side = v["side"].as_str().unwrap().to_ascii_uppercase();
                emit(
                    &mut out,
                    t,
                    &ts,
                    "market_trades",
                    format!(
                        r#"{{"type":"update","trades":[{{"trade_id":"{}","product_id":"{product}","price":"{}","size":"{}","side":"{side}","time":"{ts}"}}]}}"#,
                        v["trade_id"],
                        v["price"].as_str().unwrap(),
                        v["size"].as_str().unwrap()
                    ),
                );
            }
            _ => continue,
        }
        n += 1;
        if n == hole_after {
            seq.set(seq.get() + 1);
            for (product, (bids, asks)) in &books {
                let ups: Vec<String> = bids
                    .values()
                    .map(|(p, q)| lv("bid", p, q))
                    .chain(asks.values().map(|(p, q)| lv("offer", p, q)))
                    .collect();
                emit(
                    &mut out,
                    t,
                    &ts,
                    "l2_data",
                    format!(
                        r#"{{"type":"snapshot","product_id":"{product}","updates":[{}]}}"#,
                        ups.join(",")
                    ),
                );
            }
        }
    }
    out
}
