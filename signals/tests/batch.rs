//! `signals::batch` (feature `polars`) against the streaming `SignalSet` on
//! the shared golden capture: the batch DataFrame must equal the streaming
//! rows exactly (same rows, same order, bit-identical `f64`).
//!
//! The capture is normalized by a deliberately small, independent reader
//! (serde_json + BTreeMap book; `feeds` is not a dependency of `signals`):
//! SIGNALS.md 2.1–2.5 for one symbol, `trade_source = "trade"`,
//! `quote_source = "bookTicker"`. As a check of that reader, the streaming
//! rows are also compared with `capture_small.expected.jsonl.gz` (tolerance
//! of section 8).
#![cfg(feature = "polars")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;
use signals::{
    batch, default_set, Quote, Scale, Side, SignalSet, SignalSetConfig, SliceDepth, Trade,
};

/// `../shared` next to the repository (override: `WIRESIGNAL_SHARED`).
/// `None` (test skipped) when absent, unless `CI=true`.
fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WIRESIGNAL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        });
    if dir.join("vectors").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared folder missing at {} (CI=true)", dir.display());
    }
    eprintln!("skipping: shared folder missing at {}", dir.display());
    None
}

fn read_lines(path: &Path) -> Vec<String> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_to_end(&mut raw)
        .unwrap();
    let text: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    BufReader::new(text).lines().map(Result::unwrap).collect()
}

const SCALE: Scale = Scale {
    price_decimals: 8,
    qty_decimals: 8,
};

/// Exact decimal string → fixed point with `decimals` digits.
fn fixed(s: &str, decimals: u8) -> i64 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let d = usize::from(decimals);
    assert!(
        frac.len() <= d || frac[d..].bytes().all(|b| b == b'0'),
        "{s}: too many decimals"
    );
    let mut f: String = frac.chars().take(d).collect();
    while f.len() < d {
        f.push('0');
    }
    let scale = 10i64.pow(u32::from(decimals));
    int.parse::<i64>().unwrap() * scale + if d == 0 { 0 } else { f.parse::<i64>().unwrap() }
}

/// Exchange time in ns from a `T`/`E` value (SIGNALS.md 1.2).
fn exch_ns(v: i64) -> i64 {
    if v < 100_000_000_000_000 {
        v * 1_000_000
    } else if v < 100_000_000_000_000_000 {
        v * 1_000
    } else {
        v
    }
}

/// Book levels `(price, size)`, best first.
type Levels = Vec<(i64, i64)>;

#[derive(Clone, Debug)]
enum Ev {
    Trade(Trade),
    Quote(Quote),
    /// Applied live diff: ts and the book after it, best levels first.
    Depth {
        ts: i64,
        bids: Levels,
        asks: Levels,
    },
}

struct Diff {
    first: u64,
    last: u64,
    ts: i64,
    levels: Vec<(bool, i64, i64)>,
}

#[derive(Default)]
struct Book {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    id: u64,
    synced: bool,
    buffer: Vec<Diff>,
}

impl Book {
    /// Update procedure of 2.5: `Some(true)` applied, `Some(false)` stale,
    /// `None` gap.
    fn apply(&mut self, d: &Diff) -> Option<bool> {
        if d.last <= self.id {
            return Some(false);
        }
        if d.first > self.id + 1 {
            return None;
        }
        for &(bid, px, qty) in &d.levels {
            let side = if bid { &mut self.bids } else { &mut self.asks };
            if qty == 0 {
                side.remove(&px);
            } else {
                side.insert(px, qty);
            }
        }
        self.id = d.last;
        Some(true)
    }

    fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.synced = false;
    }

    fn levels(&self) -> (Levels, Levels) {
        (
            self.bids.iter().rev().map(|(&p, &q)| (p, q)).collect(),
            self.asks.iter().map(|(&p, &q)| (p, q)).collect(),
        )
    }
}

fn levels_of(v: &Value, bid: bool) -> Vec<(bool, i64, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                bid,
                fixed(l[0].as_str().unwrap(), SCALE.price_decimals),
                fixed(l[1].as_str().unwrap(), SCALE.qty_decimals),
            )
        })
        .collect()
}

/// Normalized events of a single-symbol Binance spot capture, with the
/// receive time of each (recv_ns is carried for the golden comparison).
fn normalize(lines: &[String]) -> Vec<(i64, Ev)> {
    let mut out = Vec::new();
    let mut last_trade: Option<u64> = None;
    let mut last_u: Option<u64> = None;
    let mut book = Book::default();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let Some((recv, frame)) = line.split_once(' ') else {
            continue;
        };
        let Ok(recv) = recv.parse::<i64>() else {
            continue;
        };
        let Ok(mut v) = serde_json::from_str::<Value>(frame) else {
            continue;
        };
        if let (Some(_), Some(data)) = (v.get("stream"), v.get("data")) {
            v = data.clone();
        }
        let e = v.get("e").and_then(Value::as_str);
        match e {
            Some("trade") => {
                let id = v["t"].as_u64().unwrap();
                if last_trade.is_some_and(|l| id <= l) {
                    continue;
                }
                last_trade = Some(id);
                let (px, qty) = (
                    fixed(v["p"].as_str().unwrap(), SCALE.price_decimals),
                    fixed(v["q"].as_str().unwrap(), SCALE.qty_decimals),
                );
                if px <= 0 || qty <= 0 {
                    continue;
                }
                let side = if v["m"].as_bool().unwrap() {
                    Side::Sell
                } else {
                    Side::Buy
                };
                let ts_ns = exch_ns(v["T"].as_i64().unwrap());
                out.push((
                    recv,
                    Ev::Trade(Trade {
                        ts_ns,
                        px,
                        qty,
                        side,
                    }),
                ));
            }
            Some("depthUpdate") => {
                let ts = exch_ns(v.get("E").and_then(Value::as_i64).unwrap_or(recv));
                let mut levels = levels_of(&v["b"], true);
                levels.extend(levels_of(&v["a"], false));
                let d = Diff {
                    first: v["U"].as_u64().unwrap(),
                    last: v["u"].as_u64().unwrap(),
                    ts,
                    levels,
                };
                if !book.synced {
                    book.buffer.push(d);
                    continue;
                }
                match book.apply(&d) {
                    Some(true) => {
                        let (bids, asks) = book.levels();
                        out.push((
                            recv,
                            Ev::Depth {
                                ts: d.ts,
                                bids,
                                asks,
                            },
                        ));
                    }
                    Some(false) => {}
                    None => {
                        book.clear();
                        book.buffer = vec![d];
                    }
                }
            }
            Some("bookTicker") | None
                if ["u", "s", "b", "B", "a", "A"]
                    .iter()
                    .all(|k| v.get(k).is_some()) =>
            {
                let u = v["u"].as_u64().unwrap();
                if last_u.is_some_and(|l| u <= l) {
                    continue;
                }
                last_u = Some(u);
                let p = |k: &str| fixed(v[k].as_str().unwrap(), SCALE.price_decimals);
                let q = |k: &str| fixed(v[k].as_str().unwrap(), SCALE.qty_decimals);
                out.push((
                    recv,
                    Ev::Quote(Quote {
                        ts_ns: recv,
                        bid_px: p("b"),
                        bid_qty: q("B"),
                        ask_px: p("a"),
                        ask_qty: q("A"),
                    }),
                ));
            }
            None if v.get("lastUpdateId").is_some() && v.get("bids").is_some() => {
                if book.synced {
                    continue;
                }
                book.clear();
                for (bid, px, qty) in levels_of(&v["bids"], true)
                    .into_iter()
                    .chain(levels_of(&v["asks"], false))
                {
                    if qty != 0 {
                        let side = if bid { &mut book.bids } else { &mut book.asks };
                        side.insert(px, qty);
                    }
                }
                book.id = v["lastUpdateId"].as_u64().unwrap();
                book.synced = true;
                let buffered = std::mem::take(&mut book.buffer);
                let mut rest = buffered.into_iter();
                while let Some(d) = rest.next() {
                    if book.apply(&d).is_none() {
                        book.clear();
                        book.buffer = std::iter::once(d).chain(rest).collect();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Depth list length written to the frame (≥ every configured `levels`).
const LIST_LEVELS: usize = 10;

fn events_frame(events: &[(i64, Ev)]) -> DataFrame {
    let n = events.len();
    let mut ts = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let (mut px, mut qty, mut side) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bp, mut bq, mut ap, mut aq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bid_sizes =
        ListPrimitiveChunkedBuilder::<Int64Type>::new("bid_sizes".into(), n, n, DataType::Int64);
    let mut ask_sizes =
        ListPrimitiveChunkedBuilder::<Int64Type>::new("ask_sizes".into(), n, n, DataType::Int64);
    for (_, ev) in events {
        match ev {
            Ev::Trade(t) => {
                ts.push(t.ts_ns);
                kind.push("trade");
                px.push(Some(t.px));
                qty.push(Some(t.qty));
                side.push(Some(t.side.sign() as i32));
                bp.push(None);
                bq.push(None);
                ap.push(None);
                aq.push(None);
                bid_sizes.append_null();
                ask_sizes.append_null();
            }
            Ev::Quote(q) => {
                ts.push(q.ts_ns);
                kind.push("quote");
                px.push(None);
                qty.push(None);
                side.push(None);
                bp.push(Some(q.bid_px));
                bq.push(Some(q.bid_qty));
                ap.push(Some(q.ask_px));
                aq.push(Some(q.ask_qty));
                bid_sizes.append_null();
                ask_sizes.append_null();
            }
            Ev::Depth { ts: t, bids, asks } => {
                ts.push(*t);
                kind.push("depth");
                px.push(None);
                qty.push(None);
                side.push(None);
                bp.push(bids.first().map(|l| l.0));
                bq.push(bids.first().map(|l| l.1));
                ap.push(asks.first().map(|l| l.0));
                aq.push(None); // optional on depth rows
                let sizes = |v: &[(i64, i64)]| -> Vec<i64> {
                    v.iter().take(LIST_LEVELS).map(|l| l.1).collect()
                };
                bid_sizes.append_slice(&sizes(bids));
                ask_sizes.append_slice(&sizes(asks));
            }
        }
    }
    DataFrame::new(vec![
        Column::new("ts_ns".into(), ts),
        Column::new("kind".into(), kind),
        Column::new("px".into(), px),
        Column::new("qty".into(), qty),
        Column::new("side".into(), side),
        Column::new("bid_px".into(), bp),
        Column::new("bid_qty".into(), bq),
        Column::new("ask_px".into(), ap),
        Column::new("ask_qty".into(), aq),
        bid_sizes.finish().into_column(),
        ask_sizes.finish().into_column(),
    ])
    .unwrap()
}

/// One streaming row: (event index, ts_ns, recv_ns, signal, value).
type Row = (usize, i64, i64, String, f64);

fn stream_rows(cfg: &SignalSetConfig, events: &[(i64, Ev)]) -> Vec<Row> {
    let mut set = SignalSet::new(cfg).unwrap();
    let names = set.output_names().to_vec();
    let mut rows = Vec::new();
    for (i, (recv, ev)) in events.iter().enumerate() {
        let mut got = Vec::new();
        let ts = match ev {
            Ev::Trade(t) => {
                set.on_trade(t, &mut |id, v| got.push((id, v)));
                t.ts_ns
            }
            Ev::Quote(q) => {
                set.on_quote(q, &mut |id, v| got.push((id, v)));
                q.ts_ns
            }
            Ev::Depth { ts, bids, asks } => {
                // The full book here; the frame carries only LIST_LEVELS.
                let book = SliceDepth { bids, asks };
                set.on_depth(*ts, &book, &mut |id, v| got.push((id, v)));
                *ts
            }
        };
        for (id, v) in got {
            rows.push((i, ts, *recv, names[usize::from(id.0)].clone(), v));
        }
    }
    rows
}

#[test]
fn batch_equals_streaming_on_golden_capture() {
    let Some(shared) = shared_dir() else { return };
    let lines = read_lines(&shared.join("vectors/capture_small.txt.gz"));
    let events = normalize(&lines);
    let n_depth = events
        .iter()
        .filter(|(_, e)| matches!(e, Ev::Depth { .. }))
        .count();
    assert!(n_depth > 100, "reader built only {n_depth} depth events");

    let cfg = SignalSetConfig::new(SCALE, default_set());
    let want = stream_rows(&cfg, &events);
    let frame = events_frame(&events);
    let got = batch::compute(&frame, &cfg).unwrap();

    assert_eq!(got.get_column_names(), ["row", "ts_ns", "signal", "value"]);
    assert_eq!(got.height(), want.len(), "row count");
    let row = got.column("row").unwrap().u64().unwrap();
    let ts = got.column("ts_ns").unwrap().i64().unwrap();
    let signal = got.column("signal").unwrap().str().unwrap();
    let value = got.column("value").unwrap().f64().unwrap();
    for (k, w) in want.iter().enumerate() {
        let g = (
            row.get(k).unwrap() as usize,
            ts.get(k).unwrap(),
            signal.get(k).unwrap(),
            value.get(k).unwrap(),
        );
        assert!(
            g.0 == w.0 && g.1 == w.1 && g.2 == w.3 && g.3.to_bits() == w.4.to_bits(),
            "row {k}: batch {g:?} != streaming {w:?}"
        );
    }

    // Frame by frame through one set (state carries over) gives the same rows.
    let mut set = SignalSet::new(&cfg).unwrap();
    let half = frame.height() / 2;
    let a = batch::run(&mut set, &frame.slice(0, half)).unwrap();
    let b = batch::run(&mut set, &frame.slice(half as i64, frame.height() - half)).unwrap();
    assert_eq!(a.height() + b.height(), want.len());
    let vb = b.column("value").unwrap().f64().unwrap();
    for k in 0..b.height() {
        assert_eq!(
            vb.get(k).unwrap().to_bits(),
            want[a.height() + k].4.to_bits()
        );
    }

    // The reader itself: streaming rows vs the golden expected stream.
    let expected: Vec<Value> = read_lines(&shared.join("vectors/capture_small.expected.jsonl.gz"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(want.len(), expected.len(), "streaming vs golden row count");
    for (w, e) in want.iter().zip(&expected) {
        let ev = e["value"].as_f64().unwrap();
        assert!(
            w.1 == e["ts_ns"].as_i64().unwrap()
                && w.2 == e["recv_ns"].as_i64().unwrap()
                && w.3 == e["signal"].as_str().unwrap()
                && (w.4 - ev).abs() <= f64::max(1e-12, 1e-9 * ev.abs()),
            "streaming {w:?} != golden {e}"
        );
    }
}
