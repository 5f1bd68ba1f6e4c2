//! The Kraken v1 server side for the simulator (feature `sim`): one
//! WebSocket endpoint, `subscribe`/`unsubscribe` events answered with a
//! `subscriptionStatus` per pair, `ping` → `pong`, and frames routed by their
//! channel name and pair. Generator operations render as Kraken frames
//! (without a checksum: the operation carries no book).

use std::fmt::Write as _;

use simd_json::prelude::*;

use crate::event::Scale;
use crate::fixed;
use crate::sim::{MarketOp, Routed, StreamKey, StreamKind, VenueServer, WsRoute};

/// Kraken's server.
#[derive(Debug)]
pub struct KrakenServer;

/// The registry's instance.
pub static KRAKEN_SERVER: KrakenServer = KrakenServer;

/// Subscription names in the simulator: `<channel>:<PAIR>`.
fn sub_name(channel: &str, pair: &str) -> String {
    format!("{channel}:{}", pair.to_ascii_uppercase())
}

impl VenueServer for KrakenServer {
    fn ws_route(&self, _path: &str, _query: &str) -> Option<WsRoute> {
        Some(WsRoute {
            combined: false,
            streams: Vec::new(),
        })
    }

    fn stream_key(&self, name: &str) -> Option<StreamKey> {
        let (channel, pair) = name.split_once(':')?;
        let kind = match channel {
            "book" => StreamKind::Depth,
            "trade" => StreamKind::Trade,
            "spread" => StreamKind::Quote,
            _ => return None,
        };
        Some(StreamKey {
            kind,
            symbol: pair.to_ascii_lowercase(),
        })
    }

    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        let mut bytes = text.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            replies.push(r#"{"errorMessage":"Malformed request","event":"error"}"#.to_owned());
            return;
        };
        if v.get("method").is_some() {
            v2_request(&v, subscriptions, replies);
            return;
        }
        let reqid = v
            .get("reqid")
            .map(|r| format!(r#","reqid":{}"#, r.encode()))
            .unwrap_or_default();
        let event = v.get_str("event").unwrap_or("");
        if event == "ping" {
            replies.push(format!(r#"{{"event":"pong"{reqid}}}"#));
            return;
        }
        let name = v
            .get("subscription")
            .and_then(|s| s.get_str("name"))
            .unwrap_or("")
            .to_owned();
        let depth = v.get("subscription").and_then(|s| s.get_u64("depth"));
        let pairs: Vec<String> = v
            .get_array("pair")
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let channel = match (name.as_str(), depth) {
            ("book", d) => format!("book-{}", d.unwrap_or(10)),
            (n, _) => n.to_owned(),
        };
        let status = match event {
            "subscribe" => "subscribed",
            "unsubscribe" => "unsubscribed",
            _ => {
                replies.push(format!(
                    r#"{{"errorMessage":"Unsupported event","event":"error"{reqid}}}"#
                ));
                return;
            }
        };
        for pair in pairs {
            let clean: String = pair.chars().filter(|c| *c != '"' && *c != '\\').collect();
            let known = matches!(name.as_str(), "book" | "trade" | "spread");
            if !known {
                replies.push(format!(
                    r#"{{"errorMessage":"Subscription name invalid","event":"subscriptionStatus","pair":"{clean}"{reqid},"status":"error"}}"#
                ));
                continue;
            }
            let key = sub_name(&name, &clean);
            if event == "subscribe" {
                if !subscriptions.contains(&key) {
                    subscriptions.push(key);
                }
            } else {
                subscriptions.retain(|s| *s != key);
            }
            let mut r = format!(
                r#"{{"channelName":"{channel}","event":"subscriptionStatus","pair":"{clean}"{reqid},"status":"{status}","subscription":{{"#
            );
            if let Some(d) = depth {
                let _ = write!(r, r#""depth":{d},"#);
            }
            let _ = write!(r, r#""name":"{name}"}}}}"#);
            replies.push(r);
        }
    }

    fn route(&self, frame: &str) -> Routed {
        if frame.trim_start().starts_with('{') {
            return v2_route(frame);
        }
        // [channelID, payload.., "channelName", "PAIR"]: the last two strings.
        let t = frame.trim_end();
        if !t.starts_with('[') || !t.ends_with("\"]") {
            return Routed::Other;
        }
        let body = &t[..t.len() - 2];
        let Some(q) = body.rfind('"') else {
            return Routed::Other;
        };
        let pair = &body[q + 1..];
        let before = body[..q].trim_end();
        let Some(before) = before
            .strip_suffix(",")
            .map(str::trim_end)
            .and_then(|b| b.strip_suffix('"'))
        else {
            return Routed::Other;
        };
        let Some(c) = before.rfind('"') else {
            return Routed::Other;
        };
        let channel = &before[c + 1..];
        let kind = if channel.starts_with("book-") {
            StreamKind::Depth
        } else {
            match channel {
                "trade" => StreamKind::Trade,
                "spread" => StreamKind::Quote,
                _ => return Routed::Other,
            }
        };
        Routed::Stream {
            key: StreamKey {
                kind,
                symbol: pair.to_ascii_lowercase(),
            },
            payload: 0..frame.len(),
            wrapper_stream: None,
        }
    }

    fn unknown_symbol(&self) -> (&'static str, String) {
        (
            "200 OK",
            r#"{"error":["EQuery:Unknown asset pair"]}"#.to_owned(),
        )
    }

    fn no_snapshot(&self) -> (&'static str, String) {
        ("200 OK", r#"{"error":["EService:Unavailable"]}"#.to_owned())
    }

    fn snapshot_on_subscribe(&self) -> bool {
        true
    }

    fn corrupt_checksum(&self, frame: &str) -> Option<String> {
        if let Some(i) = frame.find("\"checksum\":").map(|i| i + 11) {
            // v2: a JSON number.
            let j = i + frame[i..].find(|c: char| !c.is_ascii_digit())?;
            let c: u64 = frame[i..j].parse().ok()?;
            return Some(format!("{}{}{}", &frame[..i], c ^ 1, &frame[j..]));
        }
        let i = frame.find("\"c\":\"")? + 5;
        let j = i + frame[i..].find('"')?;
        let c: u32 = frame[i..j].parse().ok()?;
        Some(format!("{}{}{}", &frame[..i], c ^ 1, &frame[j..]))
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, _wrap: bool, out: &mut String) {
        let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
        let secs = |out: &mut String, ms: i64| {
            fixed::push(out, ms.saturating_mul(1000), 6);
        };
        let levels = |out: &mut String, lv: &[(i64, i64)], ms: i64| {
            for (n, &(px, q)) in lv.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str("[\"");
                fixed::push(out, px, pd);
                out.push_str("\",\"");
                fixed::push(out, q, qd);
                out.push_str("\",\"");
                secs(out, ms);
                out.push_str("\"]");
            }
        };
        match *op {
            MarketOp::Trade {
                symbol,
                px,
                qty,
                buyer_maker,
                trade_ms,
                ..
            } => {
                out.push_str("[0,[[\"");
                fixed::push(out, px, pd);
                out.push_str("\",\"");
                fixed::push(out, qty, qd);
                out.push_str("\",\"");
                secs(out, trade_ms);
                let side = if buyer_maker { "s" } else { "b" };
                let _ = write!(out, r#"","{side}","l",""]],"trade","{symbol}"]"#);
            }
            MarketOp::Quote {
                symbol,
                event_ms,
                bid_px,
                bid_qty,
                ask_px,
                ask_qty,
                ..
            } => {
                out.push_str("[0,[\"");
                fixed::push(out, bid_px, pd);
                out.push_str("\",\"");
                fixed::push(out, ask_px, pd);
                out.push_str("\",\"");
                secs(out, event_ms);
                out.push_str("\",\"");
                fixed::push(out, bid_qty, qd);
                out.push_str("\",\"");
                fixed::push(out, ask_qty, qd);
                let _ = write!(out, r#""],"spread","{symbol}"]"#);
            }
            MarketOp::Depth {
                symbol,
                event_ms,
                bids,
                asks,
                ..
            } => {
                out.push_str("[0,{\"a\":[");
                levels(out, asks, event_ms);
                out.push_str("],\"b\":[");
                levels(out, bids, event_ms);
                let _ = write!(out, r#"]}},"book-1000","{symbol}"]"#);
            }
            MarketOp::Snapshot {
                symbol, bids, asks, ..
            } => {
                out.push_str("[0,{\"as\":[");
                levels(out, asks, 0);
                out.push_str("],\"bs\":[");
                levels(out, bids, 0);
                let _ = write!(out, r#"]}},"book-1000","{symbol}"]"#);
            }
        }
    }
}

/// A WebSocket v2 request: `subscribe`/`unsubscribe` (one reply per
/// symbol) and `ping`.
fn v2_request(
    v: &simd_json::BorrowedValue<'_>,
    subscriptions: &mut Vec<String>,
    replies: &mut Vec<String>,
) {
    let req_id = v
        .get("req_id")
        .map(|r| format!(r#","req_id":{}"#, r.encode()))
        .unwrap_or_default();
    let method = v.get_str("method").unwrap_or("");
    if method == "ping" {
        replies.push(format!(r#"{{"method":"pong"{req_id}}}"#));
        return;
    }
    let params = v.get("params");
    let channel = params.and_then(|p| p.get_str("channel")).unwrap_or("");
    let symbols: Vec<String> = params
        .and_then(|p| p.get_array("symbol"))
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let subscribe = match method {
        "subscribe" => true,
        "unsubscribe" => false,
        _ => {
            replies.push(format!(
                r#"{{"error":"Method not found","method":"{method}","success":false{req_id}}}"#
            ));
            return;
        }
    };
    for symbol in symbols {
        let clean: String = symbol.chars().filter(|c| *c != '"' && *c != '\\').collect();
        if !matches!(channel, "book" | "trade") {
            replies.push(format!(
                r#"{{"error":"Channel not supported","method":"{method}","success":false{req_id}}}"#
            ));
            continue;
        }
        let key = sub_name(channel, &clean);
        if subscribe {
            if !subscriptions.contains(&key) {
                subscriptions.push(key);
            }
        } else {
            subscriptions.retain(|s| *s != key);
        }
        replies.push(format!(
            r#"{{"method":"{method}","result":{{"channel":"{channel}","symbol":"{clean}"}},"success":true{req_id}}}"#
        ));
    }
}

/// A WebSocket v2 frame: routed by its `channel` and `data[0].symbol`.
fn v2_route(frame: &str) -> Routed {
    let mut bytes = frame.as_bytes().to_vec();
    let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
        return Routed::Other;
    };
    let kind = match v.get_str("channel") {
        Some("book") => StreamKind::Depth,
        Some("trade") => StreamKind::Trade,
        _ => return Routed::Other,
    };
    let Some(symbol) = v
        .get_array("data")
        .and_then(|d| d.first())
        .and_then(|e| e.get_str("symbol"))
    else {
        return Routed::Other;
    };
    Routed::Stream {
        key: StreamKey {
            kind,
            symbol: symbol.to_ascii_lowercase(),
        },
        payload: 0..frame.len(),
        wrapper_stream: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_acks_per_pair_and_routes_by_channel() {
        let mut subs = Vec::new();
        let mut replies = Vec::new();
        KRAKEN_SERVER.on_client_text(
            &mut subs,
            r#"{"event":"subscribe","reqid":1,"pair":["XBT/USD","ETH/USD"],"subscription":{"name":"book","depth":1000}}"#,
            &mut replies,
        );
        assert_eq!(subs, ["book:XBT/USD", "book:ETH/USD"]);
        assert_eq!(replies.len(), 2);
        assert!(replies[0].contains(r#""channelName":"book-1000","event":"subscriptionStatus","pair":"XBT/USD","reqid":1,"status":"subscribed""#), "{}", replies[0]);
        replies.clear();
        KRAKEN_SERVER.on_client_text(&mut subs, r#"{"event":"ping","reqid":9}"#, &mut replies);
        assert_eq!(replies, [r#"{"event":"pong","reqid":9}"#]);
        let f = r#"[1920,{"a":[["0.042990","364630.28272081","1618678145.920470"]]},{"b":[["0.042990","0.00000000","1618678145.920708"]],"c":"4105471083"},"book-1000","SC/EUR"]"#;
        match KRAKEN_SERVER.route(f) {
            Routed::Stream { key, .. } => {
                assert_eq!(
                    (key.kind, key.symbol.as_str()),
                    (StreamKind::Depth, "sc/eur")
                );
                assert_eq!(KRAKEN_SERVER.stream_key("book:SC/EUR"), Some(key));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            KRAKEN_SERVER.route(r#"{"event":"heartbeat"}"#),
            Routed::Other
        );
    }
}
