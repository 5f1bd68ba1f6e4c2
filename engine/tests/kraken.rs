//! Kraken v1: the shared `book-1000` capture replayed without a config,
//! against an independent reconstruction written from Kraken's documented
//! procedure (snapshot on subscribe, updates applied in order, truncation to
//! the subscribed depth, CRC32 of the top 10 asks then bids from the
//! strings as received).

mod common;

use common::{read_lines, shared_dir, temp_dir};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, PartialEq)]
struct RefBook {
    best_bid: Option<String>,
    best_ask: Option<String>,
    bid_levels: usize,
    ask_levels: usize,
    checksums_ok: u64,
}

type Side = BTreeMap<(u128, u128), (String, String)>;

fn key(p: &str) -> (u128, u128) {
    let (i, f) = p.split_once('.').unwrap_or((p, ""));
    let f = format!("{f:0<18}");
    (i.parse().unwrap(), f[..18].parse().unwrap())
}

fn zero(q: &str) -> bool {
    q.bytes().all(|c| c == b'0' || c == b'.')
}

/// Kraken's checksum text of one number: `.` removed, leading zeros stripped.
fn digits(s: &str) -> String {
    let d: String = s.chars().filter(|c| *c != '.').collect();
    let t = d.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

fn checksum(bids: &Side, asks: &Side) -> u32 {
    let mut text = String::new();
    for (p, q) in asks.values().take(10) {
        text.push_str(&digits(p));
        text.push_str(&digits(q));
    }
    for (p, q) in bids.values().rev().take(10) {
        text.push_str(&digits(p));
        text.push_str(&digits(q));
    }
    crc32fast::hash(text.as_bytes())
}

fn reference(path: &std::path::Path) -> BTreeMap<String, RefBook> {
    let mut books: BTreeMap<String, (Side, Side, usize, u64)> = BTreeMap::new();
    for line in read_lines(path) {
        if line.starts_with('#') {
            continue;
        }
        let (_, frame) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(frame).unwrap();
        let Some(a) = v.as_array() else { continue };
        let channel = a[a.len() - 2].as_str().unwrap();
        let Some(depth) = channel.strip_prefix("book-") else {
            continue;
        };
        let depth: usize = depth.parse().unwrap();
        let pair = a[a.len() - 1].as_str().unwrap().to_owned();
        let b = books.entry(pair).or_default();
        b.2 = depth;
        let mut sent = None;
        for obj in &a[1..a.len() - 2] {
            for (k, levels) in obj.as_object().unwrap() {
                if k == "c" {
                    sent = Some(levels.as_str().unwrap().parse::<u32>().unwrap());
                    continue;
                }
                let side = if k.starts_with('a') {
                    &mut b.1
                } else {
                    &mut b.0
                };
                if k.len() == 2 {
                    side.clear();
                }
                for lv in levels.as_array().unwrap() {
                    let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                    if zero(q) {
                        side.remove(&key(p));
                    } else {
                        side.insert(key(p), (p.to_owned(), q.to_owned()));
                    }
                }
            }
        }
        // Truncate to the subscribed depth: the worst levels go.
        while b.0.len() > b.2 {
            let k = *b.0.keys().next().unwrap();
            b.0.remove(&k);
        }
        while b.1.len() > b.2 {
            let k = *b.1.keys().next_back().unwrap();
            b.1.remove(&k);
        }
        if let Some(c) = sent {
            assert_eq!(checksum(&b.0, &b.1), c, "reference checksum");
            b.3 += 1;
        }
    }
    books
        .into_iter()
        .map(|(pair, (bids, asks, _, ok))| {
            let r = RefBook {
                best_bid: bids.values().next_back().map(|l| l.0.clone()),
                best_ask: asks.values().next().map(|l| l.0.clone()),
                bid_levels: bids.len(),
                ask_levels: asks.len(),
                checksums_ok: ok,
            };
            (pair, r)
        })
        .collect()
}

#[test]
fn kraken_v1_capture_verifies_every_checksum_and_matches_the_reference() {
    let Some(shared) = shared_dir() else { return };
    let caps = common::venue_captures(&shared, "kraken");
    assert!(!caps.is_empty());
    for cap in &caps {
        let dir = temp_dir("kraken");
        let stats = common::replay_no_config(std::slice::from_ref(cap), &dir.join("o.jsonl"));
        let name = cap.display();
        assert_eq!(stats["parse_errors"], 0, "{name}");
        assert_eq!(stats["unknown_messages"], 0, "{name}");
        assert!(
            stats["control_messages"].as_u64().unwrap() > 0,
            "heartbeats and acks"
        );
        let want = reference(cap);
        assert!(!want.is_empty());
        for (pair, r) in &want {
            let got = &stats["instruments"][format!("kraken:{pair}")];
            assert!(got.is_object(), "{pair} missing: {stats}");
            assert_eq!(got["checksum_failed"], 0, "{pair}");
            assert_eq!(
                got["checksum_ok"].as_u64(),
                Some(r.checksums_ok),
                "{pair}: every checksum verified"
            );
            assert!(r.checksums_ok > 0);
            common::assert_book(
                got,
                r.best_bid.as_deref(),
                r.best_ask.as_deref(),
                (r.bid_levels, r.ask_levels),
                pair,
            );
            assert_eq!(got["synced"], true);
            assert_eq!(got["gaps"], 0);
        }
        // L1 rows come from the book's top (Kraken's default quote source),
        // stamped with the exchange time of the update's levels.
        let rows: Vec<Value> = read_lines(&dir.join("o.jsonl"))
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        let mids = rows.iter().filter(|r| r["signal"] == "mid").count();
        assert!(mids > 1000, "{mids} mid rows");
        assert!(rows.iter().all(|r| r["venue"] == "kraken"));
        assert!(rows.iter().all(|r| r["ts_ns"] != r["recv_ns"]));
    }
}

#[test]
fn checksums_use_the_snapshots_precision_whatever_frame_came_first() {
    let Some(shared) = shared_dir() else { return };
    let cap = &common::venue_captures(&shared, "kraken")[0];
    let dir = temp_dir("kraken-first");
    // A spread and a trade with fewer decimals than XMR/USD's book strings
    // announce the pair before its snapshot.
    let mut text = String::new();
    let mut inserted = false;
    for line in read_lines(cap) {
        if !inserted && !line.starts_with('#') && line.contains("\"XMR/USD\"]") {
            let t: i64 = line.split(' ').next().unwrap().parse().unwrap();
            text.push_str(&format!("{} [0,[\"354.1\",\"354.2\",\"1618678133.1\",\"1.5\",\"2\"],\"spread\",\"XMR/USD\"]\n", t - 2));
            text.push_str(&format!("{} [0,[[\"354.1\",\"0.5\",\"1618678133.2\",\"s\",\"m\",\"\"]],\"trade\",\"XMR/USD\"]\n", t - 1));
            inserted = true;
        }
        text.push_str(&line);
        text.push('\n');
    }
    assert!(inserted);
    std::fs::write(dir.join("k.txt"), text).unwrap();
    let stats = common::replay_no_config(&[dir.join("k.txt")], &dir.join("k.jsonl"));
    let xmr = &stats["instruments"]["kraken:XMR/USD"];
    assert_eq!(xmr["checksum_failed"], 0, "{xmr}");
    assert!(xmr["checksum_ok"].as_u64().unwrap() > 800, "{xmr}");
    assert_eq!(xmr["trades"], 1, "{xmr}");
}

#[test]
fn v1_and_v2_frames_of_the_same_book_give_the_same_book() {
    let Some(shared) = shared_dir() else { return };
    let cap = &common::venue_captures(&shared, "kraken")[0];
    let dir = temp_dir("kraken-v2");
    std::fs::write(dir.join("v2.txt"), common::kraken_v1_to_v2(cap)).unwrap();
    let v1 = common::replay_no_config(std::slice::from_ref(cap), &dir.join("v1.jsonl"));
    let v2 = common::replay_no_config(&[dir.join("v2.txt")], &dir.join("v2.jsonl"));
    assert_eq!(v2["parse_errors"], 0, "{v2}");
    assert_eq!(v2["unknown_messages"], 0, "{v2}");
    let pairs = v1["instruments"].as_object().unwrap();
    assert_eq!(pairs.len(), 10);
    for (k, want) in pairs {
        let got = &v2["instruments"][k];
        for f in [
            "checksum_ok",
            "checksum_failed",
            "best_bid",
            "best_ask",
            "bid_levels",
            "ask_levels",
            "synced",
        ] {
            assert_eq!(got[f], want[f], "{k}.{f}");
        }
    }
    // The same L2 values in the same order.
    let l2 = |p: &str| -> Vec<(String, f64)> {
        read_lines(&dir.join(p))
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["signal"] == "imbalance_l5")
            .map(|r| {
                (
                    r["symbol"].as_str().unwrap().to_owned(),
                    r["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(l2("v1.jsonl"), l2("v2.jsonl"));
}
