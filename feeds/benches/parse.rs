//! ns/frame of the Binance spot parser on real frames, per kind, and the same
//! work done with the two other simd-json strategies (borrowed-`Value` DOM,
//! serde derive into borrowed structs) for comparison.
//!
//! `cargo bench -p feeds --bench parse` (needs `shared/`; `WIRESIGNAL_SHARED`
//! overrides its location). Each iteration copies the frame into a reused
//! buffer (simd-json parses in place), parses it and clears the output: the
//! copy is common to all strategies.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use feeds::event::{
    BookSide, DepthHeader, Event, Level, QuoteEvent, Scale, Side, SnapshotHeader, TradeEvent,
    TradeKind,
};
use feeds::fixed;
use feeds::instruments::{InstrumentSpec, Instruments};
use feeds::venue::{FrameKind, VenueAdapter};
use feeds::venues::binance::{Binance, SPOT_MARKET};
use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::{Buffers, Deserializer, Tape};

fn registry() -> Instruments {
    Instruments::new(0, vec![], Scale::default(), Arc::new(AtomicU32::new(0)))
}

fn decimal(s: &str, d: u8) -> Option<i64> {
    fixed::parse(s.as_bytes(), d).ok()
}

fn ts(v: i64) -> i64 {
    feeds::venue::exchange_ts_ns(v)
}

// ------------------------------------------------------------------ DOM

struct Dom {
    buffers: Buffers,
    inst: Instruments,
}

impl Dom {
    fn levels(
        out: &mut Vec<Event>,
        arr: Option<&Vec<simd_json::BorrowedValue<'_>>>,
        side: BookSide,
        spec: &InstrumentSpec,
    ) -> Option<u32> {
        let mut n = 0;
        for l in arr? {
            let l = l.as_array()?;
            out.push(Event::Level(Level {
                side,
                px: decimal(l.first()?.as_str()?, spec.scale.price_decimals)?,
                qty: decimal(l.get(1)?.as_str()?, spec.scale.qty_decimals)?,
            }));
            n += 1;
        }
        Some(n)
    }

    fn parse(&mut self, recv_ns: i64, frame: &mut [u8], out: &mut Vec<Event>) -> Option<FrameKind> {
        let v = simd_json::to_borrowed_value_with_buffers(frame, &mut self.buffers).ok()?;
        let d = match (v.get("stream"), v.get("data")) {
            (Some(_), Some(d)) => d,
            _ => &v,
        };
        match d.get_str("e") {
            Some(e @ ("trade" | "aggTrade")) => {
                let (inst, spec) = self.inst.resolve(d.get_str("s")?.as_bytes(), out)?;
                let kind = if e == "trade" {
                    TradeKind::Trade
                } else {
                    TradeKind::AggTrade
                };
                if kind != spec.trade_source {
                    return Some(FrameKind::Ignored);
                }
                let id = d.get_u64(if e == "trade" { "t" } else { "a" })?;
                out.push(Event::Trade(TradeEvent {
                    inst,
                    id,
                    ts_ns: ts(d.get_i64("T")?),
                    recv_ns,
                    px: decimal(d.get_str("p")?, spec.scale.price_decimals)?,
                    qty: decimal(d.get_str("q")?, spec.scale.qty_decimals)?,
                    side: if d.get_bool("m")? {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                    kind,
                }));
                Some(FrameKind::Trade)
            }
            Some("depthUpdate") => {
                let (inst, spec) = self.inst.resolve(d.get_str("s")?.as_bytes(), out)?;
                let h = out.len();
                out.push(Event::Depth(DepthHeader {
                    inst,
                    first_id: d.get_u64("U")?,
                    last_id: d.get_u64("u")?,
                    prev_last_id: d.get_u64("pu").unwrap_or(0),
                    ts_ns: ts(d.get_i64("E")?),
                    recv_ns,
                    levels: 0,
                    checksum: None,
                }));
                let n = Self::levels(out, d.get_array("b"), BookSide::Bid, &spec)?
                    + Self::levels(out, d.get_array("a"), BookSide::Ask, &spec)?;
                if let Event::Depth(x) = &mut out[h] {
                    x.levels = n;
                }
                Some(FrameKind::Depth)
            }
            None if d.contains_key("u") && d.contains_key("A") => {
                let (inst, spec) = self.inst.resolve(d.get_str("s")?.as_bytes(), out)?;
                let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
                out.push(Event::Quote(QuoteEvent {
                    inst,
                    update_id: d.get_u64("u")?,
                    ts_ns: recv_ns,
                    recv_ns,
                    bid_px: decimal(d.get_str("b")?, pd)?,
                    bid_qty: decimal(d.get_str("B")?, qd)?,
                    ask_px: decimal(d.get_str("a")?, pd)?,
                    ask_qty: decimal(d.get_str("A")?, qd)?,
                }));
                Some(FrameKind::Quote)
            }
            None if d.contains_key("lastUpdateId") => {
                let (inst, spec) = self.inst.resolve(b"BTCUSDT", out)?;
                let h = out.len();
                out.push(Event::Snapshot(SnapshotHeader {
                    inst,
                    last_update_id: d.get_u64("lastUpdateId")?,
                    recv_ns,
                    levels: 0,
                    checksum: None,
                    max_depth: 0,
                    wire: feeds::instruments::NO_WIRE,
                    from_rest: true,
                }));
                let n = Self::levels(out, d.get_array("bids"), BookSide::Bid, &spec)?
                    + Self::levels(out, d.get_array("asks"), BookSide::Ask, &spec)?;
                if let Event::Snapshot(x) = &mut out[h] {
                    x.levels = n;
                }
                Some(FrameKind::Snapshot)
            }
            _ => Some(FrameKind::Unknown),
        }
    }
}

// ------------------------------------------------------------------ serde

#[derive(Deserialize)]
struct PeekInner<'a> {
    #[serde(borrow)]
    e: Option<&'a str>,
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<u64>,
    u: Option<u64>,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    stream: Option<&'a str>,
    #[serde(borrow)]
    data: Option<PeekInner<'a>>,
    #[serde(borrow)]
    e: Option<&'a str>,
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<u64>,
    u: Option<u64>,
}

#[derive(Deserialize)]
struct Wrapped<T> {
    data: T,
}

#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(borrow)]
    s: &'a str,
    t: u64,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    q: &'a str,
    #[serde(rename = "T")]
    time: i64,
    m: bool,
}

#[derive(Deserialize)]
struct QuoteMsg<'a> {
    u: u64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    b: &'a str,
    #[serde(rename = "B", borrow)]
    bq: &'a str,
    #[serde(borrow)]
    a: &'a str,
    #[serde(rename = "A", borrow)]
    aq: &'a str,
}

#[derive(Deserialize)]
struct DepthMsg<'a> {
    #[serde(rename = "E")]
    time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(rename = "U")]
    first: u64,
    u: u64,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}

#[derive(Deserialize)]
struct SnapMsg<'a> {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    #[serde(borrow)]
    bids: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    asks: Vec<[&'a str; 2]>,
}

struct Serde {
    buffers: Buffers,
    tape: Tape<'static>,
    inst: Instruments,
}

fn serde_levels(
    out: &mut Vec<Event>,
    l: &[[&str; 2]],
    side: BookSide,
    spec: &InstrumentSpec,
) -> Option<u32> {
    for [p, q] in l {
        out.push(Event::Level(Level {
            side,
            px: decimal(p, spec.scale.price_decimals)?,
            qty: decimal(q, spec.scale.qty_decimals)?,
        }));
    }
    u32::try_from(l.len()).ok()
}

fn de<'de, T: Deserialize<'de>>(d: &mut Deserializer<'de>, wrapped: bool) -> Option<T> {
    d.restart();
    if wrapped {
        Wrapped::<T>::deserialize(d).ok().map(|w| w.data)
    } else {
        T::deserialize(d).ok()
    }
}

impl Serde {
    fn parse(&mut self, recv_ns: i64, frame: &mut [u8], out: &mut Vec<Event>) -> Option<FrameKind> {
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        simd_json::fill_tape(frame, &mut self.buffers, &mut tape).ok()?;
        let mut d = Deserializer::from_tape(tape);
        let r = self.dispatch(&mut d, recv_ns, out);
        self.tape = d.into_tape().reset();
        r
    }

    fn dispatch(
        &mut self,
        d: &mut Deserializer<'_>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Option<FrameKind> {
        let peek = Peek::deserialize(&mut *d).ok()?;
        let wrapped = peek.stream.is_some();
        let (e, lu, u) = match peek.data {
            Some(i) if wrapped => (i.e, i.last_update_id, i.u),
            _ => (peek.e, peek.last_update_id, peek.u),
        };
        match (e, lu, u) {
            (Some("trade"), _, _) => {
                let m: TradeMsg = de(d, wrapped)?;
                let (inst, spec) = self.inst.resolve(m.s.as_bytes(), out)?;
                out.push(Event::Trade(TradeEvent {
                    inst,
                    id: m.t,
                    ts_ns: ts(m.time),
                    recv_ns,
                    px: decimal(m.p, spec.scale.price_decimals)?,
                    qty: decimal(m.q, spec.scale.qty_decimals)?,
                    side: if m.m { Side::Sell } else { Side::Buy },
                    kind: TradeKind::Trade,
                }));
                Some(FrameKind::Trade)
            }
            (Some("depthUpdate"), _, _) => {
                let m: DepthMsg = de(d, wrapped)?;
                let (inst, spec) = self.inst.resolve(m.s.as_bytes(), out)?;
                out.push(Event::Depth(DepthHeader {
                    inst,
                    first_id: m.first,
                    last_id: m.u,
                    prev_last_id: 0,
                    ts_ns: ts(m.time),
                    recv_ns,
                    levels: u32::try_from(m.b.len() + m.a.len()).ok()?,
                    checksum: None,
                }));
                serde_levels(out, &m.b, BookSide::Bid, &spec)?;
                serde_levels(out, &m.a, BookSide::Ask, &spec)?;
                Some(FrameKind::Depth)
            }
            (None, _, Some(_)) => {
                let m: QuoteMsg = de(d, wrapped)?;
                let (inst, spec) = self.inst.resolve(m.s.as_bytes(), out)?;
                let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
                out.push(Event::Quote(QuoteEvent {
                    inst,
                    update_id: m.u,
                    ts_ns: recv_ns,
                    recv_ns,
                    bid_px: decimal(m.b, pd)?,
                    bid_qty: decimal(m.bq, qd)?,
                    ask_px: decimal(m.a, pd)?,
                    ask_qty: decimal(m.aq, qd)?,
                }));
                Some(FrameKind::Quote)
            }
            (None, Some(_), None) => {
                let m: SnapMsg = de(d, wrapped)?;
                let (inst, spec) = self.inst.resolve(b"BTCUSDT", out)?;
                out.push(Event::Snapshot(SnapshotHeader {
                    inst,
                    last_update_id: m.last_update_id,
                    recv_ns,
                    levels: u32::try_from(m.bids.len() + m.asks.len()).ok()?,
                    checksum: None,
                    max_depth: 0,
                    wire: feeds::instruments::NO_WIRE,
                    from_rest: true,
                }));
                serde_levels(out, &m.bids, BookSide::Bid, &spec)?;
                serde_levels(out, &m.asks, BookSide::Ask, &spec)?;
                Some(FrameKind::Snapshot)
            }
            _ => Some(FrameKind::Unknown),
        }
    }
}

// ------------------------------------------------------------------ harness

/// `(recv_ns, frame)` records of a capture.
type Records = Vec<(i64, Vec<u8>)>;

fn capture() -> Option<(Vec<String>, Records)> {
    let dir = std::env::var_os("WIRESIGNAL_SHARED").map_or_else(
        || {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        },
        PathBuf::from,
    );
    let path = dir.join("data/binance-spot/btcusdt_20240808.txt.gz");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return None;
    };
    let mut symbols = Vec::new();
    let mut recs = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line.ok()?;
        if let Some(h) = line.strip_prefix('#') {
            symbols.extend(
                h.split_whitespace()
                    .filter_map(|t| t.strip_prefix("symbols="))
                    .map(str::to_owned),
            );
        } else if let Some((t, f)) = line.split_once(' ') {
            recs.push((t.parse().ok()?, f.as_bytes().to_vec()));
        }
    }
    Some((symbols, recs))
}

fn bench(c: &mut Criterion) {
    let Some((symbols, recs)) = capture() else {
        return;
    };
    // Classify every frame once with the production parser.
    let mut tape = Binance::new(&SPOT_MARKET, registry());
    tape.set_capture_symbols(&symbols);
    let mut kinds: Vec<(FrameKind, Records)> = [
        FrameKind::Trade,
        FrameKind::Quote,
        FrameKind::Depth,
        FrameKind::Snapshot,
    ]
    .into_iter()
    .map(|k| (k, Vec::new()))
    .collect();
    let mut out = Vec::new();
    for (recv, f) in &recs {
        let mut buf = f.clone();
        let k = tape
            .parse(*recv, &mut buf, &mut out)
            .expect("capture parses");
        out.clear();
        if let Some((_, v)) = kinds.iter_mut().find(|(kk, _)| *kk == k) {
            if v.len() < 256 {
                v.push((*recv, f.clone()));
            }
        }
    }

    let mut dom = Dom {
        buffers: Buffers::new(128 * 1024),
        inst: registry(),
    };
    let mut ser = Serde {
        buffers: Buffers::new(128 * 1024),
        tape: Tape(Vec::new()),
        inst: registry(),
    };
    // The alternatives must produce the same events.
    for (_, frames) in &kinds {
        for (recv, f) in frames {
            let (mut a, mut b, mut c2) = (Vec::new(), Vec::new(), Vec::new());
            tape.parse(*recv, &mut f.clone(), &mut a).expect("tape");
            dom.parse(*recv, &mut f.clone(), &mut b).expect("dom");
            ser.parse(*recv, &mut f.clone(), &mut c2).expect("serde");
            let strip = |v: Vec<Event>| -> Vec<Event> {
                v.into_iter()
                    .filter(|e| !matches!(e, Event::Instrument(_)))
                    .collect()
            };
            let a = strip(a);
            assert_eq!(a, strip(b), "dom differs");
            assert_eq!(a, strip(c2), "serde differs");
        }
    }

    let mut buf = Vec::with_capacity(128 * 1024);
    for (kind, frames) in &kinds {
        let mut g = c.benchmark_group(format!("parse/{kind:?}"));
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("tape"), |b| {
            b.iter(|| {
                for (recv, f) in frames {
                    buf.clear();
                    buf.extend_from_slice(f);
                    let _ = tape.parse(*recv, &mut buf, &mut out);
                    out.clear();
                }
            });
        });
        g.bench_function(BenchmarkId::from_parameter("dom"), |b| {
            b.iter(|| {
                for (recv, f) in frames {
                    buf.clear();
                    buf.extend_from_slice(f);
                    let _ = dom.parse(*recv, &mut buf, &mut out);
                    out.clear();
                }
            });
        });
        g.bench_function(BenchmarkId::from_parameter("serde"), |b| {
            b.iter(|| {
                for (recv, f) in frames {
                    buf.clear();
                    buf.extend_from_slice(f);
                    let _ = ser.parse(*recv, &mut buf, &mut out);
                    out.clear();
                }
            });
        });
        g.finish();
    }

    // Whole capture, production parser.
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.sample_size(10);
    g.bench_function("binance-spot capture (tape)", |b| {
        b.iter(|| {
            for (recv, f) in &recs {
                buf.clear();
                buf.extend_from_slice(f);
                let _ = tape.parse(*recv, &mut buf, &mut out);
                out.clear();
            }
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
