//! Bybit v5 public frames in their documented shapes (and real frames of
//! the shared `orderbook.1` captures) through the registry's adapters and
//! the registry's book policy.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::book::{DepthSync, DiffOutcome, SnapshotOutcome};
use feeds::event::{BookSide, DepthHeader, Event, Level, Scale, Side, SnapshotHeader};
use feeds::instruments::Instruments;
use feeds::venue::{venue_by_name, venue_for_capture, FrameKind, ParseError, VenueAdapter};

fn adapter(venue: &str) -> Box<dyn VenueAdapter> {
    let (idx, def) = venue_by_name(venue).unwrap();
    let ids = Arc::new(AtomicU32::new(0));
    (def.new)(idx, Instruments::new(idx, vec![], Scale::default(), ids))
}

fn parse(a: &mut dyn VenueAdapter, frame: &str) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    let mut out = Vec::new();
    let mut f = frame.as_bytes().to_vec();
    let r = a.parse(1, &mut f, &mut out);
    (r, out)
}

/// A best level: (price, size) in fixed point.
type Top = Option<(i64, i64)>;

/// The book of one instrument, fed the way the engine feeds it.
struct Book {
    sync: DepthSync,
}

impl Book {
    fn new(venue: &str) -> Self {
        let policy = venue_by_name(venue).unwrap().1.book;
        Self {
            sync: DepthSync::with_policy(policy, 64, 1024),
        }
    }

    /// Applies the book events of `out`; returns the outcomes as text.
    fn apply(&mut self, out: &[Event]) -> Vec<String> {
        let mut res = Vec::new();
        let mut i = 0;
        while i < out.len() {
            let lv = |n: u32| -> Vec<Level> {
                out[i + 1..i + 1 + n as usize]
                    .iter()
                    .map(|e| match e {
                        Event::Level(l) => *l,
                        other => panic!("{other:?}"),
                    })
                    .collect()
            };
            match out[i] {
                Event::Snapshot(h) => {
                    res.push(format!("{:?}", self.sync.on_snapshot(&h, &lv(h.levels))));
                    i += 1 + h.levels as usize;
                }
                Event::Depth(h) => {
                    res.push(format!("{:?}", self.sync.on_diff(&h, &lv(h.levels))));
                    i += 1 + h.levels as usize;
                }
                _ => i += 1,
            }
        }
        res
    }

    fn top(&self) -> (Top, Top) {
        (self.sync.book().best_bid(), self.sync.book().best_ask())
    }
}

fn frame(ty: &str, u: u64, b: &str, a: &str) -> String {
    format!(
        r#"{{"topic":"orderbook.50.BTCUSDT","type":"{ty}","ts":1672304484978,"data":{{"s":"BTCUSDT","b":[{b}],"a":[{a}],"u":{u},"seq":7961638724}},"cts":1672304484976}}"#
    )
}

#[test]
fn registry_maps_bybit_captures_by_url() {
    for (url, name) in [
        ("wss://stream.bybit.com/v5/public/spot", "bybit-spot"),
        ("wss://stream.bybit.com/v5/public/linear", "bybit-linear"),
        ("wss://stream.bybit.com/v5/public/inverse", "bybit-inverse"),
    ] {
        let (_, d) = venue_for_capture("bybit", Some(url)).unwrap();
        assert_eq!(d.name, name);
        assert_eq!(d.quote_source, signals::QuoteSource::Depth);
    }
}

#[test]
fn snapshot_then_deltas_apply_and_a_u_gap_is_a_gap() {
    let mut a = adapter("bybit-linear");
    let mut book = Book::new("bybit-linear");
    let (r, out) = parse(
        a.as_mut(),
        &frame(
            "snapshot",
            100,
            r#"["16493.50","0.006"],["16493.00","0.100"]"#,
            r#"["16611.00","0.029"]"#,
        ),
    );
    assert_eq!(r, Ok(FrameKind::Snapshot));
    let Event::Snapshot(SnapshotHeader {
        last_update_id,
        max_depth,
        levels,
        ..
    }) = out[1]
    else {
        panic!("{out:?}")
    };
    assert_eq!((last_update_id, max_depth, levels), (100, 50, 3));
    assert_eq!(book.apply(&out), ["Synced { replayed: 0 }"]);
    // Delete the best bid, change the ask.
    let (r, out) = parse(
        a.as_mut(),
        &frame("delta", 101, r#"["16493.50","0"]"#, r#"["16611.00","0.5"]"#),
    );
    assert_eq!(r, Ok(FrameKind::Depth));
    let Event::Depth(DepthHeader {
        last_id,
        prev_last_id,
        ts_ns,
        ..
    }) = out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!((last_id, prev_last_id), (101, 100), "u chained to u - 1");
    assert_eq!(ts_ns, 1_672_304_484_976_000_000, "cts is the exchange time");
    assert_eq!(book.apply(&out), ["Applied"]);
    assert_eq!(
        book.top(),
        (
            Some((1_649_300_000_000, 10_000_000)),
            Some((1_661_100_000_000, 50_000_000))
        )
    );
    // u + 2 is a gap (so is a repeated delta u: anything but u + 1).
    let (_, out) = parse(a.as_mut(), &frame("delta", 103, "", r#"["16611.00","9"]"#));
    assert_eq!(book.apply(&out), ["Gap"]);
    assert!(!book.sync.is_synced());
    // The resubscribe's snapshot syncs it again.
    let (_, out) = parse(
        a.as_mut(),
        &frame("snapshot", 300, r#"["1.0","1"]"#, r#"["2.0","1"]"#),
    );
    assert_eq!(book.apply(&out), ["Synced { replayed: 0 }"]);
    let (_, out) = parse(a.as_mut(), &frame("delta", 301, r#"["1.5","2"]"#, ""));
    assert_eq!(book.apply(&out), ["Applied"]);
}

#[test]
fn a_u_1_snapshot_overwrites_a_synced_book() {
    let mut a = adapter("bybit-spot");
    let mut book = Book::new("bybit-spot");
    let (_, out) = parse(
        a.as_mut(),
        &frame("snapshot", 5000, r#"["10","1"]"#, r#"["11","1"]"#),
    );
    book.apply(&out);
    let (_, out) = parse(a.as_mut(), &frame("delta", 5001, r#"["10.5","1"]"#, ""));
    assert_eq!(book.apply(&out), ["Applied"]);
    // The service restarted.
    let (_, out) = parse(
        a.as_mut(),
        &frame("snapshot", 1, r#"["20","3"]"#, r#"["21","4"]"#),
    );
    assert_eq!(
        book.apply(&out),
        [format!("{:?}", SnapshotOutcome::Replaced)]
    );
    assert_eq!(
        book.top(),
        (
            Some((2_000_000_000, 300_000_000)),
            Some((2_100_000_000, 400_000_000))
        )
    );
    assert_eq!(
        book.sync.book().bids().count(),
        1,
        "nothing of the old book"
    );
    let (_, out) = parse(a.as_mut(), &frame("delta", 2, r#"["19","1"]"#, ""));
    assert_eq!(book.apply(&out), [format!("{:?}", DiffOutcome::Applied)]);
}

#[test]
fn orderbook_1_pushes_replace_the_top_and_may_repeat_u() {
    // Real frames of the shared spot capture (MASAUSDT, twice with u 1933707).
    let push = |bid: &str| {
        format!(
            r#"{{"topic":"orderbook.1.MASAUSDT","ts":1749833475455,"type":"snapshot","data":{{"s":"MASAUSDT","b":[["{bid}","535.96"]],"a":[["0.02173","535.96"]],"u":1933707,"seq":136075702567}},"cts":1749833474978}}"#
        )
    };
    let mut a = adapter("bybit-spot");
    let mut book = Book::new("bybit-spot");
    for (bid, want) in [
        ("0.02169", "Synced { replayed: 0 }"),
        ("0.02170", "Replaced"),
    ] {
        let (r, out) = parse(a.as_mut(), &push(bid));
        assert_eq!(r, Ok(FrameKind::Snapshot));
        let Some(Event::Snapshot(h)) = out.iter().find(|e| matches!(e, Event::Snapshot(_))) else {
            panic!("{out:?}")
        };
        assert_eq!(h.max_depth, 1);
        // Followed by an empty unsequenced update, so book signals run.
        let Some(Event::Depth(d)) = out.last() else {
            panic!("{out:?}")
        };
        assert_eq!((d.levels, d.last_id, d.prev_last_id), (0, 0, 0));
        assert_eq!(d.ts_ns, 1_749_833_474_978_000_000);
        assert_eq!(book.apply(&out), [want, "Applied"]);
    }
    assert_eq!(book.top().0, Some((2_170_000, 53_596_000_000)));
    assert_eq!(book.sync.book().bids().count(), 1);
}

#[test]
fn public_trades_spot_numeric_and_linear_uuid_ids() {
    let mut spot = adapter("bybit-spot");
    let (r, out) = parse(
        spot.as_mut(),
        r#"{"topic":"publicTrade.BTCUSDT","ts":1672304486868,"type":"snapshot","data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"2290000000007764263","BT":false}]}"#,
    );
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Trade(t) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (t.id, t.px, t.qty, t.side, t.ts_ns),
        (
            2_290_000_000_007_764_263,
            1_657_850_000_000,
            100_000,
            Side::Buy,
            1_672_304_486_865_000_000
        )
    );
    let mut linear = adapter("bybit-linear");
    let (r, out) = parse(
        linear.as_mut(),
        r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Sell","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false},{"T":1672304486866,"s":"BTCUSDT","S":"Buy","v":"2","p":"16579","L":"PlusTick","i":"8ab3d2f1-0000-5b31-9112-a178eb6023b0","BT":false}]}"#,
    );
    assert_eq!(r, Ok(FrameKind::Trade));
    let trades: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some((t.id, t.side)),
            _ => None,
        })
        .collect();
    assert_eq!(
        trades,
        [(0, Side::Sell), (0, Side::Buy)],
        "UUIDs: not numbered"
    );
    let (r, out) = parse(
        linear.as_mut(),
        r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Hold","v":"1","p":"1","i":"x"}]}"#,
    );
    assert_eq!(r, Err(ParseError::WrongType("S")));
    assert!(out.is_empty());
}

#[test]
fn linear_ticker_deltas_keep_the_last_known_bbo() {
    let mut a = adapter("bybit-linear");
    let snap = r#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","tickDirection":"PlusTick","price24hPcnt":"0.017103","lastPrice":"17216.00","bid1Price":"17215.50","bid1Size":"84.489","ask1Price":"17216.00","ask1Size":"83.020"},"cs":24987956059,"ts":1673272861686}"#;
    let (r, out) = parse(a.as_mut(), snap);
    assert_eq!(r, Ok(FrameKind::Quote));
    let Event::Quote(q) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!((q.bid_px, q.ask_qty), (1_721_550_000_000, 8_302_000_000));
    // A delta without BBO fields: ignored; one with the bid only: the ask is kept.
    let no_bbo = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","lastPrice":"17216.50"},"cs":24987956060,"ts":1673272861700}"#;
    assert_eq!(parse(a.as_mut(), no_bbo).0, Ok(FrameKind::Ignored));
    let bid = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"17215.00","bid1Size":"1.5"},"cs":24987956061,"ts":1673272861800}"#;
    let (r, out) = parse(a.as_mut(), bid);
    assert_eq!(r, Ok(FrameKind::Quote));
    let Event::Quote(q) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.ts_ns),
        (
            1_721_500_000_000,
            150_000_000,
            1_721_600_000_000,
            8_302_000_000,
            1_673_272_861_800_000_000
        )
    );
    // A first delta of another instrument with half the BBO: nothing yet.
    let half = r#"{"topic":"tickers.ETHUSDT","type":"delta","data":{"symbol":"ETHUSDT","bid1Price":"1200.00"},"ts":1}"#;
    let (r, out) = parse(a.as_mut(), half);
    assert_eq!(r, Ok(FrameKind::Ignored));
    assert!(out.is_empty(), "announcement rolled back: {out:?}");
    // Spot tickers carry no BBO.
    let mut spot = adapter("bybit-spot");
    let spot_ticker = r#"{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,"data":{"symbol":"BTCUSDT","lastPrice":"21109.77","highPrice24h":"21426.99","volume24h":"6780.866843","usdIndexPrice":"21120.2400136"}}"#;
    assert_eq!(parse(spot.as_mut(), spot_ticker).0, Ok(FrameKind::Ignored));
}

#[test]
fn acks_pongs_and_rejections() {
    let mut spot = adapter("bybit-spot");
    for ok in [
        r#"{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"10001","op":"subscribe"}"#,
        r#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#,
        r#"{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}"#,
    ] {
        assert_eq!(parse(spot.as_mut(), ok).0, Ok(FrameKind::Control), "{ok}");
    }
    let refused = r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.50.NOPE","conn_id":"x","req_id":"3","op":"subscribe"}"#;
    assert_eq!(parse(spot.as_mut(), refused).0, Ok(FrameKind::Rejected(3)));
    let anonymous =
        r#"{"success":false,"ret_msg":"args size >10","conn_id":"x","req_id":"","op":"subscribe"}"#;
    assert_eq!(
        parse(spot.as_mut(), anonymous).0,
        Ok(FrameKind::Rejected(0))
    );
    assert_eq!(parse(spot.as_mut(), "[1,2]").0, Ok(FrameKind::Unknown));
    assert_eq!(
        parse(spot.as_mut(), r#"{"topic":"kline.1.BTCUSDT","data":[]}"#).0,
        Ok(FrameKind::Ignored)
    );
    // A bad number appends nothing.
    let (r, out) = parse(spot.as_mut(), &frame("snapshot", 1, r#"["1.2.3","1"]"#, ""));
    assert!(
        matches!(r, Err(ParseError::BadNumber { field: "b", .. })),
        "{r:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn rest_orderbook_bootstraps_a_book() {
    let mut a = adapter("bybit-linear");
    let body = r#"{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","a":[["65557.7","16.606"]],"b":[["65485.47","47.081"]],"ts":1716863719031,"u":230704,"seq":1432604333,"cts":1716863718905},"retExtInfo":{},"time":1716863719382}"#;
    let mut out = Vec::new();
    let mut b = body.as_bytes().to_vec();
    assert_eq!(
        a.parse_snapshot("BTCUSDT", 1, &mut b, &mut out),
        Ok(FrameKind::Snapshot)
    );
    let Event::Snapshot(h) = out[1] else {
        panic!("{out:?}")
    };
    assert!(h.from_rest);
    assert_eq!(h.last_update_id, 230_704);
    assert_eq!(
        out[2],
        Event::Level(Level {
            side: BookSide::Bid,
            px: 6_548_547_000_000,
            qty: 4_708_100_000
        })
    );
    let mut err = br#"{"retCode":10001,"retMsg":"params error","result":{}}"#.to_vec();
    assert!(a
        .parse_snapshot("BTCUSDT", 1, &mut err, &mut Vec::new())
        .is_err());
    assert_eq!(
        a.snapshot_path("btcusdt", 1000),
        "/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=500"
    );
}
