//! Kraken v1 and v2 frames in their documented shapes, and connection plans.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::event::{Event, Scale, Side};
use feeds::instruments::Instruments;
use feeds::venue::{venue_by_name, FrameKind, VenueAdapter};

fn adapter() -> Box<dyn VenueAdapter> {
    let (idx, def) = venue_by_name("kraken").unwrap();
    let ids = Arc::new(AtomicU32::new(0));
    (def.new)(idx, Instruments::new(idx, vec![], Scale::default(), ids))
}

fn parse(
    a: &mut dyn VenueAdapter,
    frame: &str,
) -> (Result<FrameKind, feeds::venue::ParseError>, Vec<Event>) {
    let mut out = Vec::new();
    let mut f = frame.as_bytes().to_vec();
    let r = a.parse(1, &mut f, &mut out);
    (r, out)
}

#[test]
fn v2_trades_read_numbers_exactly_with_ids_and_rfc3339_times() {
    let mut a = adapter();
    let (r, out) = parse(
        a.as_mut(),
        r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"}]}"#,
    );
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Trade(t) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (t.px, t.qty, t.id, t.side),
        (51_470_000, 642_346_326_000, 4_665_846, Side::Sell)
    );
    // 2023-09-25T07:48:36Z = 1695628116 s.
    assert_eq!(t.ts_ns, 1_695_628_116_925_533_000);
}

#[test]
fn v2_replies_heartbeats_and_errors() {
    let mut a = adapter();
    let ok = r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}"#;
    assert_eq!(parse(a.as_mut(), ok).0, Ok(FrameKind::Control));
    let err = r#"{"error":"Currency pair not supported","method":"subscribe","success":false,"req_id":7}"#;
    assert_eq!(parse(a.as_mut(), err).0, Ok(FrameKind::Rejected(7)));
    assert_eq!(
        parse(a.as_mut(), r#"{"channel":"heartbeat"}"#).0,
        Ok(FrameKind::Control)
    );
    assert_eq!(
        parse(a.as_mut(), r#"{"method":"pong","req_id":3}"#).0,
        Ok(FrameKind::Control)
    );
    // v1 events still read.
    assert_eq!(
        parse(a.as_mut(), r#"{"event":"heartbeat"}"#).0,
        Ok(FrameKind::Control)
    );
    let v1err = r#"{"errorMessage":"Currency pair not supported XBT/EUX","event":"subscriptionStatus","pair":"XBT/EUX","reqid":4,"status":"error","subscription":{"name":"book"}}"#;
    assert_eq!(parse(a.as_mut(), v1err).0, Ok(FrameKind::Rejected(4)));
}

#[test]
fn v2_book_snapshot_learns_precision_from_number_text() {
    let mut a = adapter();
    let snap = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,"qty":0.10000000}],"asks":[{"price":45285.2,"qty":0.00100000}],"checksum":3310070434}]}"#;
    let (r, out) = parse(a.as_mut(), snap);
    assert_eq!(r, Ok(FrameKind::Snapshot));
    let Event::Instrument(info) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!((info.wire.price_decimals, info.wire.qty_decimals), (1, 8));
    let Event::Snapshot(h) = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (h.checksum, h.levels, h.wire),
        (Some(3_310_070_434), 2, info.wire)
    );
}

#[test]
fn connection_plans_for_v1_and_v2() {
    let a = adapter();
    let symbols = ["XBT/USD".to_owned()];
    let v1 = &a.connections("wss://ws.kraken.com", &symbols)[0];
    assert!(
        v1.subscribe[0]
            .message
            .starts_with(r#"{"event":"subscribe""#),
        "{}",
        v1.subscribe[0].message
    );
    assert_eq!(v1.ping_text, None);
    let v2 = &a.connections("wss://ws.kraken.com/v2", &symbols)[0];
    assert_eq!(
        v2.subscribe[0].message,
        r#"{"method":"subscribe","params":{"channel":"book","symbol":["XBT/USD"],"depth":1000},"req_id":1}"#
    );
    assert_eq!(v2.ping_text, Some(r#"{"method":"ping"}"#));
    let re = a.resubscribe(v2, "XBT/USD");
    assert!(
        re[0].starts_with(r#"{"method":"unsubscribe""#)
            && re[1].starts_with(r#"{"method":"subscribe""#)
    );
}
