//! OKX v5: the shared `books` + `trades` + `tickers` capture replayed without
//! a config, against an independent reconstruction written from OKX's
//! documented procedure (snapshot then updates, size "0" deletes, CRC32 of
//! `bid:size:ask:size:…` over the top 25 levels of each side, strings as
//! received, compared as a signed 32-bit integer).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{read_lines, shared_dir, temp_dir};
use serde_json::Value;

type Side = BTreeMap<(u128, u128), (String, String)>;

fn key(p: &str) -> (u128, u128) {
    let (i, f) = p.split_once('.').unwrap_or((p, ""));
    let f = format!("{f:0<18}");
    (i.parse().unwrap(), f[..18].parse().unwrap())
}

fn checksum(bids: &Side, asks: &Side) -> i32 {
    let b: Vec<&(String, String)> = bids.values().rev().take(25).collect();
    let a: Vec<&(String, String)> = asks.values().take(25).collect();
    let mut parts = Vec::new();
    for i in 0..25 {
        if let Some((p, q)) = b.get(i) {
            parts.push(format!("{p}:{q}"));
        }
        if let Some((p, q)) = a.get(i) {
            parts.push(format!("{p}:{q}"));
        }
    }
    crc32fast::hash(parts.join(":").as_bytes()) as i32
}

#[derive(Debug, Default)]
struct RefBook {
    bids: Side,
    asks: Side,
    checks: u64,
    trades: u64,
}

fn reference(path: &Path) -> BTreeMap<String, RefBook> {
    let mut books: BTreeMap<String, RefBook> = BTreeMap::new();
    for line in read_lines(path) {
        if line.starts_with('#') {
            continue;
        }
        let (_, frame) = line.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(frame).unwrap();
        if v.get("event").is_some() {
            continue;
        }
        let inst = v["arg"]["instId"].as_str().unwrap().to_owned();
        let b = books.entry(inst).or_default();
        match v["arg"]["channel"].as_str().unwrap() {
            "trades" => b.trades += v["data"].as_array().unwrap().len() as u64,
            "books" => {
                let d = &v["data"][0];
                if v["action"] == "snapshot" {
                    b.bids.clear();
                    b.asks.clear();
                }
                for (side, k) in [(&mut b.bids, "bids"), (&mut b.asks, "asks")] {
                    for lv in d[k].as_array().unwrap() {
                        let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                        if q == "0" {
                            side.remove(&key(p));
                        } else {
                            side.insert(key(p), (p.to_owned(), q.to_owned()));
                        }
                    }
                }
                let sent = d["checksum"].as_i64().unwrap();
                assert_eq!(
                    i64::from(checksum(&b.bids, &b.asks)),
                    sent,
                    "reference checksum"
                );
                b.checks += 1;
            }
            _ => {}
        }
    }
    books
}

#[test]
fn okx_capture_verifies_every_checksum_and_matches_the_reference() {
    let Some(shared) = shared_dir() else { return };
    let caps = common::venue_captures(&shared, "okx");
    assert!(!caps.is_empty());
    for cap in &caps {
        let dir = temp_dir("okx");
        let stats = common::replay_no_config(std::slice::from_ref(cap), &dir.join("o.jsonl"));
        let name = cap.display();
        assert_eq!(stats["parse_errors"], 0, "{name}");
        assert_eq!(stats["unknown_messages"], 0, "{name}");
        for (inst, r) in reference(cap) {
            let got = &stats["instruments"][format!("okx:{inst}")];
            assert!(got.is_object(), "{inst} missing: {stats}");
            assert_eq!(got["checksum_failed"], 0, "{inst}");
            assert_eq!(
                got["checksum_ok"].as_u64(),
                Some(r.checks),
                "{inst}: every checksum verified"
            );
            assert_eq!(got["trades"].as_u64(), Some(r.trades), "{inst}");
            let best_bid = r.bids.values().next_back().map(|l| l.0.as_str());
            let best_ask = r.asks.values().next().map(|l| l.0.as_str());
            common::assert_book(got, best_bid, best_ask, (r.bids.len(), r.asks.len()), &inst);
            assert_eq!(got["synced"], true);
        }
        // Book-top L1 rows and exchange-time trade rows for every instrument.
        let rows: Vec<Value> = read_lines(&dir.join("o.jsonl"))
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        for inst in ["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"] {
            assert!(
                rows.iter()
                    .any(|r| r["symbol"] == inst && r["signal"] == "mid"),
                "{inst}"
            );
        }
    }
}

#[test]
fn okx_checksum_zero_counts_as_absent_and_a_corrupt_one_resyncs() {
    let Some(shared) = shared_dir() else { return };
    let cap = shared.join("data/okx/books_20220513.txt.gz");
    if !cap.exists() {
        return;
    }
    let dir = temp_dir("okx-faults");
    // The 2026 form (checksum 0) for one instrument, a corrupt checksum on
    // one update of another.
    let mut out = String::new();
    let mut corrupted = false;
    for line in read_lines(&cap) {
        let mut l = line.clone();
        if l.contains(r#""instId":"UNI-USD-SWAP"},"action""#) {
            let i = l.find("\"checksum\":").unwrap() + 11;
            let j = i + l[i..]
                .find(|c: char| c != '-' && !c.is_ascii_digit())
                .unwrap();
            l.replace_range(i..j, "0");
        } else if !corrupted && l.contains(r#""instId":"BTC-USDT"},"action":"update""#) {
            let i = l.find("\"checksum\":").unwrap() + 11;
            l.insert(i, '1');
            corrupted = true;
        }
        out.push_str(&l);
        out.push('\n');
    }
    std::fs::write(dir.join("c.txt"), out).unwrap();
    let stats = common::replay_no_config(&[dir.join("c.txt")], &dir.join("c.jsonl"));
    let uni = &stats["instruments"]["okx:UNI-USD-SWAP"];
    assert_eq!(uni["checksum_failed"], 0, "{uni}");
    assert_eq!(uni["checksum_ok"], 0, "{uni}");
    assert!(uni["checksum_absent"].as_u64().unwrap() > 90, "{uni}");
    assert_eq!(uni["synced"], true);
    let btc = &stats["instruments"]["okx:BTC-USDT"];
    assert_eq!(btc["checksum_failed"], 1, "{btc}");
    // Replay has no venue to resubscribe from: the book stays out of sync
    // (nothing emitted from it) until the venue's next snapshot.
    assert_eq!(btc["synced"], false, "{btc}");
    let other = &stats["instruments"]["okx:BTC-USD-220527"];
    assert_eq!(other["checksum_failed"], 0);
    assert_eq!(other["synced"], true, "the others are unaffected");
}
