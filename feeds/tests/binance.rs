//! Binance spot adapter against real frames from `shared/`.

mod common;

use common::shared_dir;
use std::io::{BufRead, BufReader};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::event::{
    BookSide, DepthHeader, Event, InstrumentId, Level, QuoteEvent, Scale, Side, SnapshotHeader,
    Symbol, TradeEvent, TradeKind,
};
use feeds::instruments::{InstrumentSpec, Instruments};
use feeds::venue::{venue_by_name, FrameKind, ParseError, VenueAdapter};
use feeds::venues::binance::{Binance, SPOT_MARKET};

// ---------------------------------------------------------------- fixtures

/// A capture: `#` header lines and `(recv_ns, frame)` records (lines whose
/// prefix is not an integer are kept with `recv_ns = -1` so tests see them).
struct Capture {
    headers: Vec<String>,
    records: Vec<(i64, Vec<u8>)>,
}

fn read_capture(rel: &str) -> Option<Capture> {
    let path = shared_dir()?.join(rel);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut headers = Vec::new();
    let mut records = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line.expect("gzip text");
        if let Some(h) = line.strip_prefix('#') {
            headers.push(h.trim().to_owned());
            continue;
        }
        let Some((ts, frame)) = line.split_once(' ') else {
            continue;
        };
        records.push((ts.parse().unwrap_or(-1), frame.as_bytes().to_vec()));
    }
    Some(Capture { headers, records })
}

fn header_symbols(c: &Capture) -> Vec<String> {
    c.headers
        .iter()
        .flat_map(|h| h.split_whitespace())
        .filter_map(|t| t.strip_prefix("symbols="))
        .flat_map(|s| s.split(','))
        .map(str::to_owned)
        .collect()
}

/// The `n`th (0-based) record whose frame contains all of `needles` (a
/// needle starting with `^` must be a prefix of the frame).
fn find(c: &Capture, needles: &[&str], n: usize) -> (i64, Vec<u8>) {
    c.records
        .iter()
        .filter(|(_, f)| {
            let s = std::str::from_utf8(f).unwrap_or("");
            needles.iter().all(|x| match x.strip_prefix('^') {
                Some(p) => s.starts_with(p),
                None => s.contains(x),
            })
        })
        .nth(n)
        .cloned()
        .unwrap_or_else(|| panic!("no frame with {needles:?}"))
}

fn spot() -> Option<Capture> {
    read_capture("data/binance-spot/btcusdt_20240808.txt.gz")
}

fn small() -> Option<Capture> {
    read_capture("vectors/capture_small.txt.gz")
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn spec(s: &str, trade_source: TradeKind, scale: Scale) -> InstrumentSpec {
    InstrumentSpec {
        symbol: sym(s),
        scale,
        trade_source,
    }
}

fn adapter(configured: Vec<InstrumentSpec>) -> Binance {
    let ids = Arc::new(AtomicU32::new(0));
    Binance::new(
        &SPOT_MARKET,
        Instruments::new(0, configured, Scale::default(), ids),
    )
}

fn parse(a: &mut Binance, rec: &(i64, Vec<u8>)) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    let mut frame = rec.1.clone();
    let mut out = Vec::new();
    let r = a.parse(rec.0, &mut frame, &mut out);
    (r, out)
}

/// Events after the first-sight announcement (which must come first).
fn body(out: &[Event]) -> &[Event] {
    match out.first() {
        Some(Event::Instrument(_)) => &out[1..],
        _ => out,
    }
}

fn with_replaced(rec: &(i64, Vec<u8>), from: &str, to: &str) -> (i64, Vec<u8>) {
    let s = String::from_utf8(rec.1.clone()).unwrap();
    assert!(s.contains(from), "{from} not in frame");
    (rec.0, s.replacen(from, to, 1).into_bytes())
}

const ID0: InstrumentId = InstrumentId(0);

// ---------------------------------------------------------------- kinds

#[test]
fn trade_wrapped_real_frame() {
    let Some(c) = spot() else { return };
    let rec = find(&c, &["\"e\":\"trade\"", "\"t\":3735683259"], 0);
    let mut a = adapter(vec![]);
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Trade));
    match out[0] {
        Event::Instrument(i) => {
            assert_eq!(
                (i.inst, i.venue, i.symbol, i.scale),
                (ID0, 0, sym("BTCUSDT"), Scale::default())
            );
        }
        ref e => panic!("announcement first, got {e:?}"),
    }
    assert_eq!(
        out[1..],
        [Event::Trade(TradeEvent {
            inst: ID0,
            id: 3_735_683_259,
            ts_ns: 1_723_161_255_342_000_000,
            recv_ns: 1_723_161_254_087_896_568,
            px: 6_183_763_000_000,
            qty: 2_000_000,
            side: Side::Sell,
            kind: TradeKind::Trade,
        })]
    );
    // Second sight: no announcement.
    let (r, out) = parse(&mut a, &rec);
    assert_eq!((r, out.len()), (Ok(FrameKind::Trade), 1));
}

#[test]
fn book_ticker_wrapped_and_raw() {
    let Some(c) = spot() else { return };
    let rec = find(&c, &["\"u\":50093239212,"], 0);
    let mut a = adapter(vec![]);
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Quote));
    assert_eq!(
        body(&out),
        [Event::Quote(QuoteEvent {
            inst: ID0,
            update_id: 50_093_239_212,
            ts_ns: 1_723_161_254_087_891_268, // no T/E: receive time
            recv_ns: 1_723_161_254_087_891_268,
            bid_px: 6_183_763_000_000,
            bid_qty: 378_826_000,
            ask_px: 6_183_764_000_000,
            ask_qty: 154_698_000,
        })]
    );

    let Some(s) = small() else { return };
    // Raw payload without "e": recognised by u,s,b,B,a,A.
    let rec = find(&s, &["^{\"u\":12530830,"], 0);
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Quote));
    assert_eq!(
        out,
        [Event::Quote(QuoteEvent {
            inst: ID0,
            update_id: 12_530_830,
            ts_ns: 1_700_000_339_575_612_241,
            recv_ns: 1_700_000_339_575_612_241,
            bid_px: 9_700_000_000_000,
            bid_qty: 3_235_000,
            ask_px: 9_700_001_000_000,
            ask_qty: 308_000,
        })]
    );
    // With "e":"bookTicker" (futures-style) and a T: ts = T.
    let tagged = with_replaced(
        &rec,
        "{\"u\"",
        "{\"e\":\"bookTicker\",\"T\":1700000339575123,\"u\"",
    );
    let (r, out) = parse(&mut a, &tagged);
    assert_eq!(r, Ok(FrameKind::Quote));
    let Event::Quote(q) = out[0] else { panic!() };
    assert_eq!(q.ts_ns, 1_700_000_339_575_123_000);
    // A bookTicker-like frame missing `A` is not a quote.
    let partial = with_replaced(&rec, ",\"A\":\"0.00308000\"", "");
    assert_eq!(parse(&mut a, &partial), (Ok(FrameKind::Unknown), vec![]));
}

#[test]
fn depth_update_real_frame() {
    let Some(c) = spot() else { return };
    let rec = find(&c, &["\"U\":50093239189,"], 0);
    let mut a = adapter(vec![]);
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Depth));
    let out = body(&out);
    assert_eq!(
        out[0],
        Event::Depth(DepthHeader {
            inst: ID0,
            first_id: 50_093_239_189,
            last_id: 50_093_239_202,
            prev_last_id: 0,
            ts_ns: 1_723_161_255_208_000_000,
            recv_ns: 1_723_161_253_937_085_768,
            levels: 12,
            checksum: None,
        })
    );
    assert_eq!(out.len(), 13);
    assert_eq!(
        out[1..4],
        [
            Event::Level(Level {
                side: BookSide::Bid,
                px: 6_173_763_000_000,
                qty: 0
            }),
            Event::Level(Level {
                side: BookSide::Bid,
                px: 6_173_017_000_000,
                qty: 0
            }),
            Event::Level(Level {
                side: BookSide::Bid,
                px: 5_685_458_000_000,
                qty: 0
            }),
        ]
    );
    assert_eq!(
        out[4],
        Event::Level(Level {
            side: BookSide::Ask,
            px: 6_183_764_000_000,
            qty: 154_698_000
        })
    );
    assert_eq!(
        out[12],
        Event::Level(Level {
            side: BookSide::Ask,
            px: 6_193_764_000_000,
            qty: 2_000_000
        })
    );

    // `pu` (futures) is carried; empty sides are fine.
    let Some(s) = small() else { return };
    let rec = find(&s, &["\"U\":12530846,"], 0);
    let rec = with_replaced(&rec, "\"U\":12530846,", "\"U\":12530846,\"pu\":12530845,");
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Depth));
    let Event::Depth(h) = out[0] else { panic!() };
    assert_eq!(
        (h.first_id, h.last_id, h.prev_last_id, h.levels),
        (12_530_846, 12_530_847, 12_530_845, 2)
    );
    assert!(out[1..]
        .iter()
        .all(|e| matches!(e, Event::Level(l) if l.side == BookSide::Bid)));
}

#[test]
fn rest_snapshot_real_frame() {
    let Some(c) = spot() else { return };
    let rec = find(&c, &["\"lastUpdateId\""], 0);
    let mut a = adapter(vec![]);
    a.set_capture_symbols(&header_symbols(&c));
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    let out = body(&out);
    assert_eq!(
        out[0],
        Event::Snapshot(SnapshotHeader {
            inst: ID0,
            last_update_id: 50_093_239_218,
            recv_ns: 1_723_161_254_206_652_067,
            levels: 2000,
            checksum: None,
            max_depth: 0,
            wire: feeds::instruments::NO_WIRE,
            from_rest: true,
        })
    );
    assert_eq!(out.len(), 2001);
    assert_eq!(
        out[1],
        Event::Level(Level {
            side: BookSide::Bid,
            px: 6_183_763_000_000,
            qty: 378_826_000
        })
    );
    assert_eq!(
        out[2000],
        Event::Level(Level {
            side: BookSide::Ask,
            px: 6_205_318_000_000,
            qty: 10_000
        })
    );
    assert_eq!(
        out[1..1001]
            .iter()
            .filter(|e| matches!(e, Event::Level(l) if l.side == BookSide::Bid))
            .count(),
        1000
    );

    // The same body fetched live over REST.
    let mut b = adapter(vec![]);
    let mut body_bytes = rec.1.clone();
    let mut out2 = Vec::new();
    assert_eq!(
        b.parse_snapshot("btcusdt", rec.0, &mut body_bytes, &mut out2),
        Ok(FrameKind::Snapshot)
    );
    assert_eq!(body(&out2), out);
    let mut err = br#"{"code":-1121,"msg":"Invalid symbol."}"#.to_vec();
    let mut out3 = Vec::new();
    assert_eq!(
        b.parse_snapshot("XXX", 0, &mut err, &mut out3),
        Err(ParseError::MissingField("lastUpdateId"))
    );
    assert!(out3.is_empty());
}

#[test]
fn control_unknown_and_malformed() {
    let Some(s) = small() else { return };
    let mut a = adapter(vec![]);
    let ack = find(&s, &["\"result\":null"], 0);
    assert_eq!(parse(&mut a, &ack), (Ok(FrameKind::Control), vec![]));
    // The venue's notice that it will close the connection: expected.
    let shutdown = (1, br#"{"e":"serverShutdown","E":1730345478345}"#.to_vec());
    assert_eq!(parse(&mut a, &shutdown), (Ok(FrameKind::Closing), vec![]));

    let not_json = find(&s, &["this is not json"], 0);
    let mut out = vec![Event::Reset(InstrumentId(9))];
    let mut f = not_json.1;
    assert!(matches!(
        a.parse(0, &mut f, &mut out),
        Err(ParseError::Json { .. })
    ));
    assert_eq!(out, [Event::Reset(InstrumentId(9))]);

    // Truncated real frame: error, nothing appended, no announcement lost.
    let trade = find(&s, &["\"e\":\"trade\""], 0);
    let mut cut = trade.1[..trade.1.len() - 3].to_vec();
    let mut out = Vec::new();
    assert!(matches!(
        a.parse(0, &mut cut, &mut out),
        Err(ParseError::Json { .. })
    ));
    assert!(out.is_empty());

    // Valid JSON of no known kind.
    for frame in [
        br#"{"e":"somethingNew","E":1,"s":"BTCUSDT"}"#.as_slice(),
        b"[1,2,3]",
        b"42",
        br#"{"stream":"btcusdt@trade","data":[1]}"#,
        br#"{"code":0,"msg":"x"}"#,
    ] {
        assert_eq!(
            parse(&mut a, &(0, frame.to_vec())),
            (Ok(FrameKind::Unknown), vec![])
        );
    }
    // Known but unused.
    let kline = br#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}"#;
    assert_eq!(
        parse(&mut a, &(0, kline.to_vec())),
        (Ok(FrameKind::Ignored), vec![])
    );

    // Missing required field / wrong type.
    let no_p = with_replaced(&trade, "\"p\":", "\"px\":");
    assert_eq!(
        parse(&mut a, &no_p),
        (Err(ParseError::MissingField("p")), vec![])
    );
    let bad_t = with_replaced(&trade, "\"t\":", "\"t\":\"x\",\"z\":");
    assert_eq!(
        parse(&mut a, &bad_t),
        (Err(ParseError::WrongType("t")), vec![])
    );
    let bad_q = with_replaced(&trade, "\"q\":\"", "\"q\":\"1e");
    assert!(
        matches!(parse(&mut a, &bad_q), (Err(ParseError::BadNumber { field: "q", .. }), ref o) if o.is_empty())
    );

    // The instrument is announced with the first frame that succeeds.
    let (r, out) = parse(&mut a, &trade);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert!(matches!(out[0], Event::Instrument(_)));
}

#[test]
fn precision_error_appends_nothing_and_reannounces() {
    let Some(c) = spot() else { return };
    let scale = Scale {
        price_decimals: 1,
        qty_decimals: 8,
    };
    let mut a = adapter(vec![spec("BTCUSDT", TradeKind::Trade, scale)]);
    let depth = find(&c, &["\"U\":50093239189,"], 0);
    assert_eq!(
        parse(&mut a, &depth),
        (Err(ParseError::Precision { field: "b" }), vec![])
    );
    let trade = find(&c, &["\"t\":3735683259"], 0);
    assert_eq!(
        parse(&mut a, &trade),
        (Err(ParseError::Precision { field: "p" }), vec![])
    );
    // 2 decimals fit the price; the announcement comes with the first success.
    let scale = Scale {
        price_decimals: 2,
        qty_decimals: 5,
    };
    let mut a = adapter(vec![spec("BTCUSDT", TradeKind::Trade, scale)]);
    let (r, out) = parse(&mut a, &trade);
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Instrument(info) = out[0] else {
        panic!()
    };
    assert_eq!(info.scale, scale);
    let Event::Trade(t) = out[1] else { panic!() };
    assert_eq!((t.px, t.qty), (6_183_763, 2_000));
}

#[test]
fn timestamp_unit_detection() {
    let Some(s) = small() else { return };
    let trade = find(&s, &["\"e\":\"trade\"", "\"T\":1700000339928"], 0);
    let mut a = adapter(vec![]);
    let cases = [
        ("1700000339928", 1_700_000_339_928_000_000),
        ("1700000339928123", 1_700_000_339_928_123_000),
        ("1700000339928123456", 1_700_000_339_928_123_456),
    ];
    for (t, want) in cases {
        let rec = with_replaced(&trade, "\"T\":1700000339928", &format!("\"T\":{t}"));
        let (r, out) = parse(&mut a, &rec);
        assert_eq!(r, Ok(FrameKind::Trade));
        let Some(Event::Trade(ev)) = body(&out).first() else {
            panic!()
        };
        assert_eq!(ev.ts_ns, want, "T={t}");
    }
    // No T: E; depthUpdate uses E.
    let rec = with_replaced(&trade, ",\"T\":1700000339928", "");
    let (_, out) = parse(&mut a, &rec);
    let Event::Trade(ev) = out[0] else { panic!() };
    assert_eq!(ev.ts_ns, 1_700_000_339_929_000_000);
    // Neither: receive time.
    let rec = with_replaced(&rec, "\"E\":1700000339929,", "");
    let (_, out) = parse(&mut a, &rec);
    let Event::Trade(ev) = out[0] else { panic!() };
    assert_eq!(ev.ts_ns, rec.0);
}

#[test]
fn trade_source_selection() {
    let Some(s) = small() else { return };
    let trade = find(&s, &["^{\"e\":\"trade\""], 0);
    let agg_raw = find(&s, &["^{\"e\":\"aggTrade\""], 0);
    let agg_wrapped = find(&s, &["\"stream\":\"btcusdt@aggTrade\""], 0);

    // Default: trade; aggTrade ignored, and no announcement for it.
    let mut a = adapter(vec![]);
    assert_eq!(parse(&mut a, &agg_raw), (Ok(FrameKind::Ignored), vec![]));
    let (r, out) = parse(&mut a, &trade);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert!(matches!(out[0], Event::Instrument(_)));
    let Event::Trade(t) = out[1] else { panic!() };
    assert_eq!(
        (t.id, t.kind, t.side),
        (1_867_019, TradeKind::Trade, Side::Buy)
    );

    // aggTrade configured: trade frames ignored.
    let mut a = adapter(vec![spec("BTCUSDT", TradeKind::AggTrade, Scale::default())]);
    assert_eq!(parse(&mut a, &trade), (Ok(FrameKind::Ignored), vec![]));
    let (r, out) = parse(&mut a, &agg_raw);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(
        out[1],
        Event::Trade(TradeEvent {
            inst: ID0,
            id: 174_116,
            ts_ns: 1_700_000_339_589_000_000,
            recv_ns: 1_700_000_339_592_070_077,
            px: 9_700_000_000_000,
            qty: 2_295_000,
            side: Side::Sell,
            kind: TradeKind::AggTrade,
        })
    );
    let (r, out) = parse(&mut a, &agg_wrapped);
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Trade(t) = out[0] else { panic!() };
    assert_eq!(t.id, 174_117);

    // Unconfigured symbol: ignored.
    let mut a = adapter(vec![spec("ETHUSDT", TradeKind::Trade, Scale::default())]);
    assert_eq!(parse(&mut a, &trade), (Ok(FrameKind::Ignored), vec![]));
}

#[test]
fn snapshot_symbol_attribution() {
    let Some(s) = small() else { return };
    let snap = find(&s, &["^{\"lastUpdateId\":12530860"], 0);
    let depth = find(&s, &["^{\"e\":\"depthUpdate\""], 0);
    let snap_inst = |out: &[Event]| -> Option<(Symbol, u64)> {
        let info = out.iter().find_map(|e| match e {
            Event::Instrument(i) => Some(i.symbol),
            _ => None,
        });
        match body(out).first() {
            Some(Event::Snapshot(h)) => Some((info.unwrap_or_default(), h.last_update_id)),
            _ => None,
        }
    };

    // 1. `symbol` field, then `s`.
    let mut a = adapter(vec![]);
    let rec = with_replaced(&snap, "{", "{\"symbol\":\"ethusdt\",");
    let (r, out) = parse(&mut a, &rec);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    assert_eq!(snap_inst(&out), Some((sym("ETHUSDT"), 12_530_860)));
    let rec = with_replaced(&snap, "{", "{\"s\":\"SOLUSDT\",");
    assert_eq!(snap_inst(&parse(&mut a, &rec).1).unwrap().0, sym("SOLUSDT"));

    // 2. Wrapper stream name up to '@'; partial-depth streams are ignored.
    let wrap = |stream: &str| {
        let body = String::from_utf8(snap.1.clone()).unwrap();
        (
            snap.0,
            format!("{{\"stream\":\"{stream}\",\"data\":{body}}}").into_bytes(),
        )
    };
    let mut a = adapter(vec![]);
    let (r, out) = parse(&mut a, &wrap("xrpusdt@depth"));
    assert_eq!(r, Ok(FrameKind::Snapshot));
    assert_eq!(snap_inst(&out).unwrap().0, sym("XRPUSDT"));
    assert_eq!(
        parse(&mut a, &wrap("btcusdt@depth20@100ms")),
        (Ok(FrameKind::Ignored), vec![])
    );
    assert_eq!(
        parse(&mut a, &wrap("btcusdt@depth5")),
        (Ok(FrameKind::Ignored), vec![])
    );

    // 3. The capture's `symbols=` header when it names exactly one symbol.
    let mut a = adapter(vec![]);
    a.set_capture_symbols(&["BNBUSDT".to_owned()]);
    assert_eq!(
        snap_inst(&parse(&mut a, &snap).1).unwrap().0,
        sym("BNBUSDT")
    );
    let mut a = adapter(vec![]);
    a.set_capture_symbols(&["BNBUSDT".to_owned(), "BTCUSDT".to_owned()]);
    assert_eq!(parse(&mut a, &snap), (Ok(FrameKind::Ignored), vec![]));

    // 4. The only configured instrument.
    let mut a = adapter(vec![spec("BTCUSDT", TradeKind::Trade, Scale::default())]);
    assert_eq!(
        snap_inst(&parse(&mut a, &snap).1).unwrap().0,
        sym("BTCUSDT")
    );
    // Two configured: no rule applies (rule 5 is for no configuration).
    let mut a = adapter(vec![
        spec("BTCUSDT", TradeKind::Trade, Scale::default()),
        spec("ETHUSDT", TradeKind::Trade, Scale::default()),
    ]);
    assert_eq!(parse(&mut a, &depth).0, Ok(FrameKind::Depth));
    assert_eq!(parse(&mut a, &snap), (Ok(FrameKind::Ignored), vec![]));

    // 5. None configured: the single symbol whose depthUpdate frames were seen.
    let mut a = adapter(vec![]);
    assert_eq!(parse(&mut a, &snap), (Ok(FrameKind::Ignored), vec![]));
    let (r, _) = parse(&mut a, &depth);
    assert_eq!(r, Ok(FrameKind::Depth));
    let (r, out) = parse(&mut a, &snap);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    assert_eq!(
        out[0],
        Event::Snapshot(SnapshotHeader {
            inst: ID0,
            last_update_id: 12_530_860,
            recv_ns: snap.0,
            levels: 12,
            checksum: None,
            max_depth: 0,
            wire: feeds::instruments::NO_WIRE,
            from_rest: true,
        })
    );
    // ... but not once a second symbol's depth has been seen.
    let eth = with_replaced(&depth, "\"s\":\"BTCUSDT\"", "\"s\":\"ETHUSDT\"");
    assert_eq!(parse(&mut a, &eth).0, Ok(FrameKind::Depth));
    assert_eq!(parse(&mut a, &snap), (Ok(FrameKind::Ignored), vec![]));
}

// ---------------------------------------------------------------- replay

fn replay(c: &Capture, a: &mut Binance) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    let mut frame = Vec::new();
    for (recv, f) in &c.records {
        frame.clear();
        frame.extend_from_slice(f);
        let before = out.len();
        let key = match a.parse(*recv, &mut frame, &mut out) {
            Ok(k) => format!("{k:?}"),
            Err(e) => {
                assert_eq!(out.len(), before);
                format!("error: {e}")
            }
        };
        *counts.entry(key).or_insert(0) += 1;
        // Headers announce exactly the levels that follow.
        let evs = &out[before..];
        let mut i = 0;
        while i < evs.len() {
            let n = match evs[i] {
                Event::Depth(h) => h.levels as usize,
                Event::Snapshot(h) => h.levels as usize,
                _ => 0,
            };
            assert!(evs[i + 1..=i + n]
                .iter()
                .all(|e| matches!(e, Event::Level(_))));
            i += n + 1;
        }
        out.clear();
    }
    counts
}

#[test]
fn replay_binance_spot_capture_matches_manifest() {
    let Some(c) = spot() else { return };
    let mut a = adapter(vec![]);
    a.set_capture_symbols(&header_symbols(&c));
    let counts = replay(&c, &mut a);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!(get("Quote"), 28_040, "{counts:?}");
    assert_eq!(get("Trade"), 9_757, "{counts:?}");
    assert_eq!(get("Depth"), 3_451, "{counts:?}");
    assert_eq!(get("Snapshot"), 1, "{counts:?}");
    assert_eq!(
        counts.values().sum::<usize>(),
        28_040 + 9_757 + 3_451 + 1,
        "{counts:?}"
    );
}

#[test]
fn replay_capture_small() {
    let Some(s) = small() else { return };
    let mut a = adapter(vec![]);
    let counts = replay(&s, &mut a);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    // 727 trade, 726 aggTrade (ignored: default trade_source), 873 depth,
    // 2 inline snapshots, 1 subscription ack, 1 malformed line.
    assert_eq!(get("Trade"), 727, "{counts:?}");
    assert_eq!(get("Ignored"), 726, "{counts:?}");
    assert_eq!(get("Depth"), 873, "{counts:?}");
    assert_eq!(get("Snapshot"), 2, "{counts:?}");
    assert_eq!(get("Control"), 1, "{counts:?}");
    assert_eq!(get("Unknown"), 0, "{counts:?}");
    let errors: usize = counts
        .iter()
        .filter(|(k, _)| k.starts_with("error"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, 1, "{counts:?}");
    assert_eq!(
        get("Quote"),
        s.records.len() - 727 - 726 - 873 - 2 - 1 - 1,
        "{counts:?}"
    );
}

// ---------------------------------------------------------------- subscription

#[test]
fn subscription_strings() {
    let ids = Arc::new(AtomicU32::new(0));
    let (idx, def) = venue_by_name("binance-spot").unwrap();
    let inst = Instruments::new(
        idx,
        vec![
            spec("BTCUSDT", TradeKind::Trade, Scale::default()),
            spec("ETHUSDT", TradeKind::AggTrade, Scale::default()),
        ],
        Scale::default(),
        ids,
    );
    let a = (def.new)(idx, inst);
    assert_eq!(a.name(), "binance-spot");
    let plans = a.connections(
        "wss://stream.binance.com:9443/",
        &["BTCUSDT".into(), "ethusdt".into(), "XRPUSDT".into()],
    );
    assert_eq!(plans.len(), 1);
    assert_eq!(
        plans[0].url,
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@bookTicker/\
         btcusdt@depth@100ms/ethusdt@aggTrade/ethusdt@bookTicker/ethusdt@depth@100ms"
    );
    assert!(plans[0].subscribe.is_empty());
    assert_eq!(plans[0].depth_symbols, ["BTCUSDT", "ETHUSDT"]);
    assert_eq!(
        a.snapshot_path("btcusdt", 1000),
        "/api/v3/depth?symbol=BTCUSDT&limit=1000"
    );
}

fn open_adapter(venue: &str) -> Box<dyn VenueAdapter> {
    let (idx, def) = venue_by_name(venue).unwrap();
    let ids = Arc::new(AtomicU32::new(0));
    (def.new)(idx, Instruments::new(idx, vec![], Scale::default(), ids))
}

#[test]
fn usdm_splits_book_and_trade_streams_across_endpoints() {
    let a = open_adapter("binance-usdm");
    let plans = a.connections(
        "wss://fstream.binance.com",
        &["BTCUSDT".into(), "ETHUSDT".into()],
    );
    let urls: Vec<(&str, &str)> = plans.iter().map(|p| (p.label, p.url.as_str())).collect();
    assert_eq!(
        urls,
        [
            (
                "public",
                "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker/\
                 btcusdt@depth@100ms/ethusdt@bookTicker/ethusdt@depth@100ms"
            ),
            (
                "market",
                "wss://fstream.binance.com/market/stream?streams=btcusdt@trade/ethusdt@trade"
            ),
        ]
    );
    assert_eq!(plans[0].depth_symbols, ["BTCUSDT", "ETHUSDT"]);
    assert!(
        plans[1].depth_symbols.is_empty(),
        "the trade endpoint carries no book"
    );
    assert_eq!(
        a.snapshot_path("btcusdt", 1000),
        "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    );
    let c = open_adapter("binance-coinm");
    let plans = c.connections("wss://dstream.binance.com", &["BTCUSD_PERP".into()]);
    assert_eq!(plans.len(), 1);
    assert!(plans[0]
        .url
        .ends_with("btcusd_perp@trade/btcusd_perp@bookTicker/btcusd_perp@depth@100ms"));
    assert_eq!(
        c.snapshot_path("btcusd_perp", 500),
        "/dapi/v1/depth?symbol=BTCUSD_PERP&limit=500"
    );
}

#[test]
fn many_symbols_split_at_the_stream_limit_and_subscribe_by_message() {
    let a = open_adapter("binance-spot");
    // 500 symbols x 3 streams: 1500 > 1024 per connection.
    let symbols: Vec<String> = (0..500).map(|i| format!("S{i}USDT")).collect();
    let plans = a.connections("ws://127.0.0.1:9", &symbols);
    assert_eq!(plans.len(), 2);
    let mut seen = Vec::new();
    for p in &plans {
        assert_eq!(
            p.url, "ws://127.0.0.1:9/stream",
            "long lists subscribe by message"
        );
        let n: usize = p.subscribe.iter().map(|s| s.streams.len()).sum();
        assert!(n <= 1024 && n % 3 == 0, "{n}");
        for (i, s) in p.subscribe.iter().enumerate() {
            assert_eq!(s.id, i as u64 + 1);
            assert!(s.streams.len() <= 200);
            let params: Vec<String> = s.streams.iter().map(|x| format!("\"{x}\"")).collect();
            assert_eq!(
                s.message,
                format!(
                    r#"{{"method":"SUBSCRIBE","params":[{}],"id":{}}}"#,
                    params.join(","),
                    s.id
                )
            );
        }
        // A symbol's book streams stay on one connection.
        for sym in &p.depth_symbols {
            let lower = sym.to_lowercase();
            let on_it = p
                .subscribe
                .iter()
                .flat_map(|s| &s.streams)
                .filter(|s| s.starts_with(&format!("{lower}@")))
                .count();
            assert_eq!(on_it, 3, "{sym}");
        }
        seen.extend(p.depth_symbols.iter().cloned());
    }
    assert_eq!(
        seen,
        symbols.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>()
    );
}

#[test]
fn subscription_errors_are_rejections_acks_are_control() {
    let mut a = open_adapter("binance-spot");
    let mut out = Vec::new();
    let mut f = br#"{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":7}"#.to_vec();
    assert_eq!(a.parse(1, &mut f, &mut out), Ok(FrameKind::Rejected(7)));
    let mut f = br#"{"result":null,"id":7}"#.to_vec();
    assert_eq!(a.parse(1, &mut f, &mut out), Ok(FrameKind::Control));
    assert!(out.is_empty());
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    fn sample_frames() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for c in [spot(), small()].into_iter().flatten() {
            // A spread of kinds: every 97th record plus every snapshot.
            for (i, (_, f)) in c.records.iter().enumerate() {
                if i % 97 == 0 || f.starts_with(b"{\"lastUpdateId\"") {
                    v.push(f.clone());
                }
            }
        }
        v
    }

    fn check(frame: &mut [u8]) {
        let mut a = adapter(vec![]);
        let mut out = vec![Event::Reset(InstrumentId(1))];
        if a.parse(1, frame, &mut out).is_err() {
            assert_eq!(out, [Event::Reset(InstrumentId(1))]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&mut bytes);
        }

        #[test]
        fn mutated_real_frames_never_panic(
            pick in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            thread_local!(static FRAMES: Vec<Vec<u8>> = sample_frames());
            let Some(mut f) = FRAMES.with(|fs| (!fs.is_empty()).then(|| pick.get(fs).clone())) else {
                return Ok(());
            };
            for (at, byte, op) in edits {
                if f.is_empty() { break; }
                let i = at.index(f.len());
                match op {
                    0 => f[i] = byte,
                    1 => { f.remove(i); }
                    _ => f.truncate(i),
                }
            }
            check(&mut f);
        }
    }
}

#[test]
fn scales_are_learned_from_the_wire_for_unconfigured_symbols() {
    let mut a = open_adapter("binance-spot");
    let mut out = Vec::new();
    // A 10-decimal price: the default 8 would refuse it; the announcing frame raises the scale.
    let mut f = br#"{"e":"trade","E":1,"s":"TINYUSDT","t":1,"p":"0.0000012345","q":"12.5","T":1,"m":false,"M":true}"#.to_vec();
    assert_eq!(a.parse(1, &mut f, &mut out), Ok(FrameKind::Trade));
    let Event::Instrument(info) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (info.scale.price_decimals, info.scale.qty_decimals),
        (10, 8)
    );
    assert_eq!((info.wire.price_decimals, info.wire.qty_decimals), (10, 1));
    let Event::Trade(t) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!((t.px, t.qty), (12_345, 1_250_000_000));
    // More decimals than the learned scale later: a counted error, never rounded.
    out.clear();
    let mut f = br#"{"e":"trade","E":1,"s":"TINYUSDT","t":2,"p":"0.00000123451","q":"1","T":1,"m":false,"M":true}"#.to_vec();
    assert!(matches!(
        a.parse(1, &mut f, &mut out),
        Err(ParseError::Precision { field: "p" })
    ));
    assert!(out.is_empty());
}

#[test]
fn configured_scales_win_and_the_wire_precision_is_recorded() {
    let ids = Arc::new(AtomicU32::new(0));
    let (idx, def) = venue_by_name("binance-usdm").unwrap();
    let scale = Scale {
        price_decimals: 2,
        qty_decimals: 3,
    };
    let inst = Instruments::new(
        idx,
        vec![spec("BTCUSDT", TradeKind::Trade, scale)],
        Scale::default(),
        ids,
    );
    let mut a = (def.new)(idx, inst);
    let mut f = br#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[["58710.20","0.014"]],"a":[["61800.30","1.5"]]}}"#.to_vec();
    let mut out = Vec::new();
    assert_eq!(a.parse(1, &mut f, &mut out), Ok(FrameKind::Depth));
    let Event::Instrument(info) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(info.scale, scale);
    assert_eq!((info.wire.price_decimals, info.wire.qty_decimals), (2, 3));
    assert!(matches!(out[1], Event::Depth(h) if h.prev_last_id == 4 && h.levels == 2));
    assert!(matches!(out[2], Event::Level(l) if l.px == 5_871_020 && l.qty == 14));
}
