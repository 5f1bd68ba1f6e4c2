//! Coinbase: the shared Exchange-feed capture (`level2` + `matches` +
//! `ticker`, 10 products) replayed without a config against an independent
//! reconstruction written from the feed's documented rules (a `snapshot`
//! sets the book, `l2update` changes carry absolute sizes, size 0 removes
//! the level), and the same capture in Advanced Trade's shapes, with and
//! without a hole in `sequence_num`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{read_lines, shared_dir, temp_dir};
use serde_json::Value;

type Side = BTreeMap<(u128, u128), String>;

fn key(p: &str) -> (u128, u128) {
    let (i, f) = p.split_once('.').unwrap_or((p, ""));
    let f = format!("{f:0<18}");
    (i.parse().unwrap(), f[..18].parse().unwrap())
}

fn is_zero(q: &str) -> bool {
    q.chars().all(|c| c == '0' || c == '.')
}

#[derive(Debug, Default)]
struct RefBook {
    bids: Side,
    asks: Side,
    trades: u64,
    last_trade: u64,
}

fn reference(path: &Path) -> BTreeMap<String, RefBook> {
    let mut books: BTreeMap<String, RefBook> = BTreeMap::new();
    for line in read_lines(path) {
        if line.starts_with('#') {
            continue;
        }
        let (_, frame) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(frame).unwrap();
        let Some(product) = v["product_id"].as_str() else {
            continue;
        };
        let b = books.entry(product.to_owned()).or_default();
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                b.bids.clear();
                b.asks.clear();
                for (side, k) in [(&mut b.bids, "bids"), (&mut b.asks, "asks")] {
                    for lv in v[k].as_array().unwrap() {
                        let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                        if !is_zero(q) {
                            side.insert(key(p), p.to_owned());
                        }
                    }
                }
            }
            "l2update" => {
                for c in v["changes"].as_array().unwrap() {
                    let side = match c[0].as_str().unwrap() {
                        "buy" => &mut b.bids,
                        "sell" => &mut b.asks,
                        s => panic!("side {s}"),
                    };
                    let (p, q) = (c[1].as_str().unwrap(), c[2].as_str().unwrap());
                    if is_zero(q) {
                        side.remove(&key(p));
                    } else {
                        side.insert(key(p), p.to_owned());
                    }
                }
            }
            "match" | "last_match" => {
                let id = v["trade_id"].as_u64().unwrap();
                if id > b.last_trade {
                    b.trades += 1;
                    b.last_trade = id;
                }
            }
            _ => {}
        }
    }
    books
}

fn check_books(stats: &Value, venue: &str, want: &BTreeMap<String, RefBook>, ctx: &str) {
    assert_eq!(stats["parse_errors"], 0, "{ctx}");
    assert_eq!(stats["unknown_messages"], 0, "{ctx}");
    assert_eq!(want.len(), 10, "{ctx}: ten products");
    for (product, r) in want {
        let got = &stats["instruments"][format!("{venue}:{product}")];
        assert!(got.is_object(), "{ctx}: {product} missing: {stats}");
        let best_bid = r.bids.values().next_back().map(String::as_str);
        let best_ask = r.asks.values().next().map(String::as_str);
        common::assert_book(
            got,
            best_bid,
            best_ask,
            (r.bids.len(), r.asks.len()),
            product,
        );
        assert_eq!(got["trades"].as_u64(), Some(r.trades), "{ctx}: {product}");
        assert_eq!(got["synced"], true, "{ctx}: {product}");
    }
}

fn exchange_capture() -> Option<std::path::PathBuf> {
    let shared = shared_dir()?;
    common::venue_captures(&shared, "coinbase")
        .into_iter()
        .next()
}

#[test]
fn exchange_capture_replays_without_config_and_matches_the_reference() {
    let Some(cap) = exchange_capture() else {
        return;
    };
    let want = reference(&cap);
    let dir = temp_dir("coinbase");
    let stats = common::replay_no_config(std::slice::from_ref(&cap), &dir.join("o.jsonl"));
    check_books(&stats, "coinbase-exchange", &want, "exchange");
    for product in want.keys() {
        let got = &stats["instruments"][format!("coinbase-exchange:{product}")];
        assert_eq!(got["gaps"], 0, "{product}: consecutive trade ids");
    }
    // Every default signal family produces rows (book-top L1, L2, trades).
    let rows: Vec<Value> = read_lines(&dir.join("o.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().any(|r| r["signal"] == "trade_imbalance_10s"));
    for signal in ["mid", "microprice", "imbalance_l5", "ofi_l1_10s"] {
        assert!(
            rows.iter()
                .any(|r| r["symbol"] == "SKL-USD" && r["signal"] == signal),
            "{signal}"
        );
    }
}

#[test]
fn advanced_trade_form_of_the_capture_replays_to_the_same_books() {
    let Some(cap) = exchange_capture() else {
        return;
    };
    let want = reference(&cap);
    let dir = temp_dir("coinbase-at");
    let at = dir.join("at.txt");
    std::fs::write(&at, common::coinbase_exchange_to_advanced(&cap, 0)).unwrap();
    let stats = common::replay_no_config(std::slice::from_ref(&at), &dir.join("o.jsonl"));
    check_books(&stats, "coinbase", &want, "advanced trade");
    assert_eq!(stats["control_messages"], 3, "the subscriptions acks");
    for product in want.keys() {
        let got = &stats["instruments"][format!("coinbase:{product}")];
        assert_eq!(got["gaps"], 0, "{product}");
    }
}

/// A hole in `sequence_num` in the middle of the capture: every book on the
/// connection goes out of sync at once (one gap each), no L2 row comes from
/// them until their next snapshot, and the re-sent snapshots (as a
/// resubscribe delivers) restore them exactly.
#[test]
fn advanced_trade_sequence_hole_resyncs_every_book_of_the_connection() {
    let Some(cap) = exchange_capture() else {
        return;
    };
    let want = reference(&cap);
    let dir = temp_dir("coinbase-at-hole");
    let at = dir.join("at.txt");
    std::fs::write(&at, common::coinbase_exchange_to_advanced(&cap, 4000)).unwrap();
    let mut cfg = engine::config::Config::default();
    cfg.output.status_rows = Some(true);
    let stats = common::replay_cfg(cfg, std::slice::from_ref(&at), &dir.join("o.jsonl"));
    check_books(&stats, "coinbase", &want, "hole");
    let rows: Vec<Value> = read_lines(&dir.join("o.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for product in want.keys() {
        let got = &stats["instruments"][format!("coinbase:{product}")];
        assert_eq!(got["gaps"], 1, "{product}: {got}");
        assert_eq!(got["resyncs"], 1, "{product}: {got}");
        // Exactly one outage marked: out (0), back (1), and its span.
        let mine: Vec<&Value> = rows.iter().filter(|r| r["symbol"] == *product).collect();
        let status: Vec<(i64, f64)> = mine
            .iter()
            .filter(|r| r["signal"] == "book_status")
            .map(|r| (r["ts_ns"].as_i64().unwrap(), r["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(status.len(), 2, "{product}: {status:?}");
        assert_eq!((status[0].1, status[1].1), (0.0, 1.0), "{product}");
        let spans: Vec<&&Value> = mine
            .iter()
            .filter(|r| r["signal"] == "book_gap_s")
            .collect();
        assert_eq!(spans.len(), 1, "{product}");
        assert!(spans[0]["value"].as_f64().unwrap() >= 0.0);
    }
    // Off by default in a replay: the stream stays exactly SIGNALS.md's.
    let plain = common::replay_no_config(std::slice::from_ref(&at), &dir.join("p.jsonl"));
    assert_eq!(plain["instruments"]["coinbase:SKL-USD"]["gaps"], 1);
    assert!(!read_lines(&dir.join("p.jsonl"))
        .iter()
        .any(|l| l.contains("book_status")));
}
