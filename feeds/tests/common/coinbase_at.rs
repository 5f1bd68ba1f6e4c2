//! The shared Coinbase Exchange capture in Advanced Trade's shapes (there
//! is no shared Advanced Trade capture): used by the feeds conformance
//! tests and, through `#[path]`, by the engine's tests. One copy.
#![allow(dead_code)]

/// The shared Coinbase Exchange capture rewritten in Advanced Trade's
/// shapes: `l2_data` snapshots and updates (`bid`/`offer`, the same
/// strings), `market_trades` for `match` and `last_match`, the
/// `subscriptions` ack, each numbered by `sequence_num` on one connection.
/// Tickers (no sizes in 2021) are left out. `hole_after = n` leaves a hole in
/// the numbers after the `n`th message (0: none) and then re-sends every
/// product's current book as a snapshot, as a resubscribe does.
pub fn exchange_to_advanced(lines: &[String], hole_after: u64) -> String {
    use std::collections::BTreeMap;
    let symbols = lines
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
    for line in lines {
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
