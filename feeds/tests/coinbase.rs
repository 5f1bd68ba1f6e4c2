//! Coinbase Advanced Trade and Exchange frames in their documented shapes:
//! books, trades, quotes, and the loss rules (a `sequence_num` hole resets
//! every book of the connection; Exchange trade-id holes and heartbeats).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::event::{BookSide, Event, InstrumentId, Scale, Side};
use feeds::instruments::Instruments;
use feeds::venue::{venue_by_name, FrameKind, ParseError, VenueAdapter};

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

fn gaps(out: &[Event]) -> Vec<u32> {
    out.iter()
        .filter_map(|e| match e {
            Event::Gap(i) => Some(i.0),
            _ => None,
        })
        .collect()
}

fn l2(seq: u64, ty: &str, product: &str, updates: &str) -> String {
    format!(
        r#"{{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":{seq},"events":[{{"type":"{ty}","product_id":"{product}","updates":[{updates}]}}]}}"#
    )
}

fn lv(side: &str, px: &str, qty: &str) -> String {
    format!(
        r#"{{"side":"{side}","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"{px}","new_quantity":"{qty}"}}"#
    )
}

#[test]
fn advanced_trade_books_parse_with_nanosecond_times() {
    let mut a = adapter("coinbase");
    let snap = l2(
        0,
        "snapshot",
        "BTC-USD",
        &[
            lv("bid", "21921.73", "0.06317902"),
            lv("offer", "21921.74", "1.5"),
        ]
        .join(","),
    );
    let (r, out) = parse(a.as_mut(), &snap);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    let Event::Instrument(info) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(info.symbol.as_str(), "BTC-USD");
    let Event::Snapshot(h) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(h.levels, 2);
    let Event::Level(l) = out[2] else { panic!() };
    assert_eq!(
        (l.side, l.px, l.qty),
        (BookSide::Bid, 2_192_173_000_000, 6_317_902)
    );
    let Event::Level(l) = out[3] else { panic!() };
    assert_eq!(l.side, BookSide::Ask);

    let (r, out) = parse(
        a.as_mut(),
        &l2(1, "update", "BTC-USD", &lv("bid", "21921.73", "0")),
    );
    assert_eq!(r, Ok(FrameKind::Depth));
    let Event::Depth(d) = out[0] else {
        panic!("{out:?}")
    };
    // 2023-02-09T20:32:50Z = 1675974770 s, all nine digits kept.
    assert_eq!(d.ts_ns, 1_675_974_770_714_964_855);
    assert_eq!(
        out[1],
        Event::Level(feeds::event::Level {
            side: BookSide::Bid,
            px: 2_192_173_000_000,
            qty: 0
        })
    );
    assert!(gaps(&out).is_empty());
}

#[test]
fn a_sequence_hole_resets_every_book_of_the_connection() {
    let mut a = adapter("coinbase");
    let hb = |seq: u64| {
        format!(
            r#"{{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:56.121961769Z","sequence_num":{seq},"events":[{{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105","heartbeat_counter":3049}}]}}"#
        )
    };
    let ack = r#"{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:32:50Z","sequence_num":0,"events":[{"subscriptions":{"level2":["BTC-USD","ETH-USD"]}}]}"#;
    assert_eq!(parse(a.as_mut(), ack).0, Ok(FrameKind::Control));
    let (_, out) = parse(
        a.as_mut(),
        &l2(1, "snapshot", "BTC-USD", &lv("bid", "1", "1")),
    );
    let Event::Instrument(btc) = out[0] else {
        panic!()
    };
    let (_, out) = parse(
        a.as_mut(),
        &l2(2, "snapshot", "ETH-USD", &lv("bid", "1", "1")),
    );
    let Event::Instrument(eth) = out[0] else {
        panic!()
    };
    let (r, out) = parse(a.as_mut(), &hb(3));
    assert_eq!((r, out.len()), (Ok(FrameKind::Control), 0));
    // 4 is lost: the heartbeat numbered 5 shows it, for both books.
    let (r, out) = parse(a.as_mut(), &hb(5));
    assert_eq!(r, Ok(FrameKind::Control));
    assert_eq!(gaps(&out), [btc.inst.0, eth.inst.0]);
    // Back in step: nothing more.
    let (_, out) = parse(
        a.as_mut(),
        &l2(6, "update", "BTC-USD", &lv("bid", "1", "2")),
    );
    assert!(gaps(&out).is_empty());
    // A hole found on a snapshot: the resets come first, so the snapshot restarts its book.
    let (_, out) = parse(
        a.as_mut(),
        &l2(9, "snapshot", "BTC-USD", &lv("bid", "1", "3")),
    );
    assert_eq!(gaps(&out), [btc.inst.0, eth.inst.0]);
    assert!(matches!(out[2], Event::Snapshot(_)), "{out:?}");
    // A frame that fails to parse consumes no number: the next one shows the loss.
    let (r, _) = parse(
        a.as_mut(),
        &l2(10, "update", "BTC-USD", &lv("bid", "x", "1")),
    );
    assert!(r.is_err());
    let (_, out) = parse(a.as_mut(), &hb(11));
    assert_eq!(gaps(&out), [btc.inst.0, eth.inst.0]);
    // A new connection numbers from 0: no loss.
    let (_, out) = parse(a.as_mut(), ack);
    assert!(gaps(&out).is_empty());
    let (_, out) = parse(a.as_mut(), &hb(1));
    assert!(gaps(&out).is_empty());
}

#[test]
fn advanced_trade_trades_are_time_ordered_deduplicated_and_maker_sided() {
    let mut a = adapter("coinbase");
    let trades = |seq: u64, ty: &str, list: &str| {
        format!(
            r#"{{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z","sequence_num":{seq},"events":[{{"type":"{ty}","trades":[{list}]}}]}}"#
        )
    };
    let t = |id: &str, side: &str, time: &str| {
        format!(
            r#"{{"trade_id":"{id}","product_id":"ETH-USD","price":"1260.01","size":"0.3","side":"{side}","time":"{time}"}}"#
        )
    };
    // Newest first, as a snapshot lists them.
    let snap = trades(
        0,
        "snapshot",
        &[
            t("12", "BUY", "2023-02-09T20:19:35.2Z"),
            t("11", "SELL", "2023-02-09T20:19:35.1Z"),
        ]
        .join(","),
    );
    let (r, out) = parse(a.as_mut(), &snap);
    assert_eq!(r, Ok(FrameKind::Trade));
    let ids: Vec<(u64, Side)> = out
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some((t.id, t.side)),
            _ => None,
        })
        .collect();
    // The maker sold 11 (a buy aggressor), the maker bought 12.
    assert_eq!(ids, [(11, Side::Buy), (12, Side::Sell)]);
    // Seen again after a resubscribe: dropped.
    let again = trades(1, "update", &t("12", "BUY", "2023-02-09T20:19:35.2Z"));
    assert_eq!(parse(a.as_mut(), &again).0, Ok(FrameKind::Ignored));
    let next = trades(2, "update", &t("13", "BUY", "2023-02-09T20:19:35.3Z"));
    let (_, out) = parse(a.as_mut(), &next);
    assert!(matches!(out[0], Event::Trade(t) if t.id == 13));
    // A UUID id is not a number: 0, "not numbered" (nothing deduplicated by it).
    let uuid = trades(
        3,
        "update",
        &t(
            "0f8e1b2a-0000-4000-8000-000000000001",
            "SELL",
            "2023-02-09T20:19:36Z",
        ),
    );
    let (r, o) = parse(a.as_mut(), &uuid);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert!(matches!(o[0], Event::Trade(t) if t.id == 0), "{o:?}");
}

#[test]
fn advanced_trade_tickers_quote_and_errors_are_rejections() {
    let mut a = adapter("coinbase");
    let ticker = r#"{"channel":"ticker","client_id":"","timestamp":"2023-02-09T20:30:37.167359596Z","sequence_num":0,"events":[{"type":"snapshot","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"21932.98","volume_24_h":"16038.28770938","low_24_h":"21835.29","high_24_h":"23011.18","low_52_w":"15460","high_52_w":"48240","price_percent_chg_24_h":"-4.15775596190603","best_bid":"21931.98","best_bid_quantity":"0.5","best_ask":"21933.00","best_ask_quantity":"0.25"}]}]}"#;
    let (r, out) = parse(a.as_mut(), ticker);
    assert_eq!(r, Ok(FrameKind::Quote));
    let Event::Quote(q) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty),
        (2_193_198_000_000, 50_000_000, 2_193_300_000_000, 25_000_000)
    );
    assert_eq!(q.ts_ns, 1_675_974_637_167_359_596);
    let err = r#"{"type":"error","message":"failure to subscribe"}"#;
    assert_eq!(parse(a.as_mut(), err).0, Ok(FrameKind::Rejected(0)));
    let odd = r#"{"channel":"something_new","sequence_num":1,"events":[]}"#;
    assert_eq!(parse(a.as_mut(), odd).0, Ok(FrameKind::Unknown));
}

fn ex_match(id: u64, product: &str) -> String {
    format!(
        r#"{{"type":"match","trade_id":{id},"maker_order_id":"a","taker_order_id":"b","side":"sell","size":"0.04","price":"14.7775","product_id":"{product}","sequence":333938799,"time":"2021-04-17T16:43:30.244075Z"}}"#
    )
}

fn ex_heartbeat(last: u64, product: &str) -> String {
    format!(
        r#"{{"type":"heartbeat","last_trade_id":{last},"product_id":"{product}","sequence":333938800,"time":"2021-04-17T16:43:31.000000Z"}}"#
    )
}

#[test]
fn exchange_books_trades_and_quotes() {
    let mut a = adapter("coinbase-exchange");
    let snap = r#"{"type":"snapshot","product_id":"BAND-GBP","asks":[["14.8024","12.77"]],"bids":[["14.7550","3.1"],["14.7500","0.5"]]}"#;
    let (r, out) = parse(a.as_mut(), snap);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    let Event::Snapshot(h) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(h.levels, 3);
    let upd = r#"{"type":"l2update","product_id":"BAND-GBP","changes":[["sell","14.8024","0"],["buy","14.7600","1.0"]],"time":"2021-04-17T16:43:37.075687Z"}"#;
    let (r, out) = parse(a.as_mut(), upd);
    assert_eq!(r, Ok(FrameKind::Depth));
    let Event::Depth(d) = out[0] else { panic!() };
    assert_eq!(d.ts_ns, 1_618_677_817_075_687_000);
    assert_eq!(
        out[1],
        Event::Level(feeds::event::Level {
            side: BookSide::Ask,
            px: 1_480_240_000,
            qty: 0
        })
    );
    let (r, out) = parse(a.as_mut(), &ex_match(881_613, "BAND-GBP"));
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Trade(t) = out[0] else {
        panic!("{out:?}")
    };
    // The maker sold: a buy aggressor.
    assert_eq!(
        (t.id, t.side, t.px, t.qty),
        (881_613, Side::Buy, 1_477_750_000, 4_000_000)
    );
    let old = r#"{"type":"ticker","sequence":333938798,"product_id":"BAND-GBP","price":"14.7775","best_bid":"14.7550","best_ask":"14.8060","side":"buy","time":"2021-04-17T16:43:30.244075Z","trade_id":881613,"last_size":"0.04"}"#;
    assert_eq!(parse(a.as_mut(), old).0, Ok(FrameKind::Ignored));
    let new = r#"{"type":"ticker","sequence":1,"product_id":"BAND-GBP","price":"14.7775","best_bid":"14.7550","best_bid_size":"3.1","best_ask":"14.8060","best_ask_size":"2","time":"2021-04-17T16:43:30.244075Z"}"#;
    assert_eq!(parse(a.as_mut(), new).0, Ok(FrameKind::Quote));
    let subs =
        r#"{"type":"subscriptions","channels":[{"name":"level2","product_ids":["BAND-GBP"]}]}"#;
    assert_eq!(parse(a.as_mut(), subs).0, Ok(FrameKind::Control));
    let err =
        r#"{"type":"error","message":"Failed to subscribe","reason":"x is not a valid product"}"#;
    assert_eq!(parse(a.as_mut(), err).0, Ok(FrameKind::Rejected(0)));
    assert_eq!(
        parse(a.as_mut(), r#"{"type":"received"}"#).0,
        Ok(FrameKind::Ignored)
    );
}

#[test]
fn exchange_trade_holes_and_heartbeats_reveal_loss_for_one_product() {
    let mut a = adapter("coinbase-exchange");
    let (_, out) = parse(a.as_mut(), &ex_match(100, "A-USD"));
    let Event::Instrument(ia) = out[0] else {
        panic!()
    };
    let (_, out) = parse(a.as_mut(), &ex_match(500, "B-USD"));
    let Event::Instrument(ib) = out[0] else {
        panic!()
    };
    let inst_a = ia.inst;
    // Consecutive: fine; a duplicate is dropped.
    assert!(gaps(&parse(a.as_mut(), &ex_match(101, "A-USD")).1).is_empty());
    assert_eq!(
        parse(a.as_mut(), &ex_match(101, "A-USD")).0,
        Ok(FrameKind::Ignored)
    );
    // 102 skipped: A lost data, B did not.
    let (r, out) = parse(a.as_mut(), &ex_match(103, "A-USD"));
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(gaps(&out), [inst_a.0]);
    assert!(matches!(out[1], Event::Trade(t) if t.id == 103));
    // A heartbeat announcing a trade that then arrives: no loss.
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(504, "B-USD")).1).is_empty());
    for id in 501..=504 {
        assert!(gaps(&parse(a.as_mut(), &ex_match(id, "B-USD")).1).is_empty());
    }
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(504, "B-USD")).1).is_empty());
    // Announced twice and never arrived: lost.
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(506, "B-USD")).1).is_empty());
    let (r, out) = parse(a.as_mut(), &ex_heartbeat(506, "B-USD"));
    assert_eq!((r, gaps(&out)), (Ok(FrameKind::Control), vec![ib.inst.0]));
    // Not flagged again; the stream continues from the announced id.
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(506, "B-USD")).1).is_empty());
    assert!(gaps(&parse(a.as_mut(), &ex_match(507, "B-USD")).1).is_empty());
    // Heartbeats of a product whose trades are not known to stream say nothing.
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(9, "C-USD")).1).is_empty());
    assert!(gaps(&parse(a.as_mut(), &ex_heartbeat(12, "C-USD")).1).is_empty());
    // `last_match` restarts the stream (on subscribe): no loss.
    let last = ex_match(900, "A-USD").replace(r#""type":"match""#, r#""type":"last_match""#);
    let (r, out) = parse(a.as_mut(), &last);
    assert_eq!((r, gaps(&out)), (Ok(FrameKind::Trade), vec![]));
    // A book update that fails to parse: its product is flagged with the next frame.
    let snap = r#"{"type":"snapshot","product_id":"A-USD","asks":[["1","1"]],"bids":[]}"#;
    assert_eq!(parse(a.as_mut(), snap).0, Ok(FrameKind::Snapshot));
    let bad = r#"{"type":"l2update","product_id":"A-USD","changes":[["buy","1.x","1"]],"time":"2021-04-17T16:43:37Z"}"#;
    let (r, out) = parse(a.as_mut(), bad);
    assert!(r.is_err() && out.is_empty());
    let (_, out) = parse(a.as_mut(), &ex_match(901, "A-USD"));
    assert_eq!(gaps(&out), [inst_a.0]);
    assert_ne!(InstrumentId(inst_a.0), ib.inst);
}
