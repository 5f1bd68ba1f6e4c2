//! Generator invariants, checked from the emitted frames only (serde_json).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bench::generator::{write_capture, GenConfig, GenRecord, Generator};
use bench::source::read_all;
use serde_json::Value;

type Side = BTreeMap<i64, i64>;
type Top = (i64, i64, i64, i64);

fn fx(v: &Value) -> i64 {
    let s = v.as_str().expect("decimal string");
    let (i, f) = s.split_once('.').expect("8 decimals");
    assert_eq!(f.len(), 8, "{s}");
    i.parse::<i64>().unwrap() * 100_000_000 + f.parse::<i64>().unwrap()
}

#[derive(Default)]
struct Book {
    id: u64,
    bids: Side,
    asks: Side,
}

impl Book {
    fn from_snapshot(v: &Value) -> Book {
        let mut b = Book {
            id: v["lastUpdateId"].as_u64().unwrap(),
            ..Book::default()
        };
        for (side, key) in [(&mut b.bids, "bids"), (&mut b.asks, "asks")] {
            for l in v[key].as_array().unwrap() {
                side.insert(fx(&l[0]), fx(&l[1]));
            }
        }
        b
    }
    fn apply(&mut self, d: &Value) {
        for (side, key) in [(&mut self.bids, "b"), (&mut self.asks, "a")] {
            for l in d[key].as_array().unwrap() {
                let (p, q) = (fx(&l[0]), fx(&l[1]));
                if q == 0 {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
        self.id = d["u"].as_u64().unwrap();
    }
    fn top(&self) -> Top {
        let (bp, bq) = self.bids.iter().next_back().map(|(p, q)| (*p, *q)).unwrap();
        let (ap, aq) = self.asks.iter().next().map(|(p, q)| (*p, *q)).unwrap();
        (bp, bq, ap, aq)
    }
}

fn data(frame: &str) -> Value {
    let v: Value = serde_json::from_str(frame).expect("valid JSON");
    match v.get("data") {
        Some(d) => d.clone(),
        None => v,
    }
}

/// Rebuilds every symbol's book from the initial snapshots plus the diffs and
/// checks U/u continuity, uncrossed books and bookTicker == book top at its u.
/// Returns (bookTickers checked, bookTickers total).
fn check_session(cfg: GenConfig) -> (usize, usize) {
    let mut g = Generator::new(cfg);
    let names: Vec<String> = g.symbols().map(str::to_string).collect();
    let mut books: HashMap<String, Book> = names
        .iter()
        .map(|s| {
            let snap: Value = serde_json::from_str(&g.snapshot(s, usize::MAX).unwrap()).unwrap();
            (s.clone(), Book::from_snapshot(&snap))
        })
        .collect();
    let mut pending: HashMap<String, Vec<(u64, Top)>> = HashMap::new();
    let mut last_t: HashMap<String, i64> = HashMap::new();
    let mut last_trade_id: HashMap<String, u64> = HashMap::new();
    let (mut checked, mut tickers, mut diffs) = (0, 0, 0);
    let mut prev_recv = i64::MIN;
    for GenRecord { recv_ns, frame } in g.by_ref() {
        assert!(recv_ns >= prev_recv, "records out of order");
        prev_recv = recv_ns;
        let d = data(&frame);
        let sym = d["s"].as_str().unwrap().to_string();
        match d.get("e").and_then(Value::as_str) {
            Some("depthUpdate") => {
                diffs += 1;
                let book = books.get_mut(&sym).unwrap();
                assert_eq!(d["U"].as_u64().unwrap(), book.id + 1, "U/u gap in {sym}");
                assert!(d["u"].as_u64().unwrap() >= d["U"].as_u64().unwrap());
                book.apply(&d);
                let top = book.top();
                assert!(top.0 < top.2, "crossed book {sym}: {top:?}");
                for (u, t) in pending.remove(&sym).unwrap_or_default() {
                    if u == book.id {
                        assert_eq!(t, top, "bookTicker u={u} differs from the book");
                        checked += 1;
                    } else {
                        assert!(u < book.id, "bookTicker u ahead of its diff");
                    }
                }
            }
            Some("trade") => {
                let t = d["T"].as_i64().unwrap();
                assert!(t >= *last_t.get(&sym).unwrap_or(&0), "trade T decreased");
                last_t.insert(sym.clone(), t);
                let id = d["t"].as_u64().unwrap();
                assert!(id > *last_trade_id.get(&sym).unwrap_or(&0));
                last_trade_id.insert(sym.clone(), id);
                assert!(fx(&d["p"]) > 0 && fx(&d["q"]) > 0);
                assert!(d["E"].as_i64().unwrap() >= t);
            }
            None => {
                tickers += 1;
                let t = (fx(&d["b"]), fx(&d["B"]), fx(&d["a"]), fx(&d["A"]));
                assert!(t.0 < t.2, "crossed bookTicker {t:?}");
                pending
                    .entry(sym)
                    .or_default()
                    .push((d["u"].as_u64().unwrap(), t));
            }
            other => panic!("unexpected frame kind {other:?}: {frame}"),
        }
    }
    assert!(diffs > 0);
    // The final book equals the generator's own snapshot (all changes were
    // published, except those after the last diff).
    for s in &names {
        let snap: Value = serde_json::from_str(&g.snapshot(s, usize::MAX).unwrap()).unwrap();
        let b = &books[s];
        if snap["lastUpdateId"].as_u64().unwrap() == b.id {
            let fresh = Book::from_snapshot(&snap);
            assert_eq!(fresh.bids, b.bids);
            assert_eq!(fresh.asks, b.asks);
        }
        assert!(
            b.bids.len() >= 100 && b.asks.len() >= 100,
            "{s}: too few levels"
        );
    }
    (checked, tickers)
}

#[test]
fn book_consistency_100ms() {
    let mut cfg = GenConfig::new(42, 3);
    cfg.duration = Duration::from_secs(60);
    let (checked, total) = check_session(cfg);
    assert!(total > 1000, "{total} bookTickers");
    assert!(checked > 50, "only {checked} bookTickers matched a diff u");
}

#[test]
fn book_consistency_every_update() {
    // With per-event diffs every bookTicker's u is some diff's u: all checked.
    let mut cfg = GenConfig::new(7, 2);
    cfg.duration = Duration::from_secs(20);
    cfg.depth_interval = Duration::ZERO;
    let (checked, total) = check_session(cfg);
    assert!(total > 100);
    assert_eq!(checked, total);
}

#[test]
fn deterministic_per_seed() {
    let run = |seed| {
        let mut cfg = GenConfig::new(seed, 3);
        cfg.duration = Duration::from_secs(10);
        Generator::new(cfg).collect::<Vec<_>>()
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

#[test]
fn frames_have_binance_shape() {
    let mut cfg = GenConfig::new(3, 1);
    cfg.duration = Duration::from_secs(5);
    let recs: Vec<_> = Generator::new(cfg).collect();
    let trade = recs.iter().find(|r| r.frame.contains("@trade")).unwrap();
    assert!(trade
        .frame
        .starts_with(r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":"#));
    assert!(trade.frame.contains(r#","M":true}}"#));
    let bt = recs
        .iter()
        .find(|r| r.frame.contains("@bookTicker"))
        .unwrap();
    assert!(bt
        .frame
        .starts_with(r#"{"stream":"btcusdt@bookTicker","data":{"u":"#));
    let depth = recs
        .iter()
        .find(|r| r.frame.contains("depthUpdate"))
        .unwrap();
    assert!(depth
        .frame
        .starts_with(r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":"#));
}

#[test]
fn capture_round_trip() {
    let dir = std::env::temp_dir().join(format!("wiresignal-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gen.txt.gz");
    let mut cfg = GenConfig::new(11, 2);
    cfg.duration = Duration::from_secs(5);
    let n = write_capture(&path, &cfg).unwrap();
    let (venue, symbols, recs) = read_all(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(venue.as_deref(), Some("binance-spot"));
    assert_eq!(symbols, ["BTCUSDT", "ETHUSDT"]);
    assert_eq!(recs.len() as u64, n);
    let snaps: Vec<_> = recs
        .iter()
        .filter(|r| r.frame.starts_with(r#"{"lastUpdateId":"#))
        .collect();
    assert_eq!(snaps.len(), 2);
    // Each snapshot follows some diffs of its symbol and syncs with the next.
    for s in snaps {
        let v: Value = serde_json::from_str(&s.frame).unwrap();
        let sym = v["symbol"].as_str().unwrap();
        let id = v["lastUpdateId"].as_u64().unwrap();
        let pos = recs.iter().position(|r| r.frame == s.frame).unwrap();
        let before = recs[..pos]
            .iter()
            .filter(|r| r.frame.contains("depthUpdate") && r.frame.contains(sym))
            .count();
        assert!(before >= 3);
        let next = recs[pos..]
            .iter()
            .map(|r| data(&r.frame))
            .find(|d| d["e"] == "depthUpdate" && d["s"] == sym && d["u"].as_u64().unwrap() > id)
            .unwrap();
        assert!(next["U"].as_u64().unwrap() <= id + 1);
    }
}

#[test]
fn generator_throughput() {
    let mut cfg = GenConfig::new(1, 3);
    cfg.duration = Duration::from_secs(600);
    let t = Instant::now();
    let mut frames = 0u64;
    let mut bytes = 0usize;
    for r in Generator::new(cfg) {
        frames += 1;
        bytes += r.frame.len();
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "generator: {frames} frames ({:.1} MB) in {secs:.2} s = {:.0} frames/s",
        bytes as f64 / 1e6,
        frames as f64 / secs
    );
    assert!(frames > 100_000);
}
