//! The Bybit v5 server side for the simulator (feature `sim`): the public
//! endpoint `/v5/public/<category>`, `subscribe`/`unsubscribe` ops answered
//! with one ack per request (`success:false` for an unknown topic or, on
//! spot, more than 10 args), `{"op":"ping"}` answered with the category's
//! pong shape, and frames routed by `topic`. Generator operations render as
//! Bybit frames (`orderbook.50` snapshot and deltas with `u`, `publicTrade`
//! with a decimal id on spot and a UUID on linear and inverse, `tickers`).
//! A restart fault renders the book as a `u = 1` snapshot and renumbers the
//! connection's later deltas of that book from it.

use std::fmt::Write as _;

use simd_json::prelude::*;

use super::{Market, INVERSE_MARKET, LINEAR_MARKET, SPOT_MARKET};
use crate::event::Scale;
use crate::fixed;
use crate::sim::{MarketOp, RestRequest, Routed, StreamKey, StreamKind, VenueServer, WsRoute};

/// The server of one Bybit market.
#[derive(Debug)]
pub struct BybitServer {
    market: &'static Market,
}

/// Bybit spot's server.
pub static SPOT_SERVER: BybitServer = BybitServer {
    market: &SPOT_MARKET,
};
/// Bybit linear's server.
pub static LINEAR_SERVER: BybitServer = BybitServer {
    market: &LINEAR_MARKET,
};
/// Bybit inverse's server.
pub static INVERSE_SERVER: BybitServer = BybitServer {
    market: &INVERSE_MARKET,
};

/// Conn id of every simulated connection.
const CONN_ID: &str = "wiresignal-sim";

/// The routing key of a topic (`orderbook.<depth>.<SYMBOL>`,
/// `publicTrade.<SYMBOL>`, `tickers.<SYMBOL>`).
fn topic_key(topic: &str) -> Option<StreamKey> {
    let (channel, rest) = topic.split_once('.')?;
    let (kind, symbol) = match channel {
        "orderbook" => {
            let (depth, symbol) = rest.split_once('.')?;
            depth.parse::<u32>().ok()?;
            (StreamKind::Depth, symbol)
        }
        "publicTrade" => (StreamKind::Trade, rest),
        "tickers" => (StreamKind::Quote, rest),
        _ => return None,
    };
    if symbol.is_empty() || symbol.contains(['"', '\\']) {
        return None;
    }
    Some(StreamKey {
        kind,
        symbol: symbol.to_ascii_lowercase(),
    })
}

/// A trade id as the category sends it: decimal on spot, a UUID (derived
/// from the id, so it is stable) on linear and inverse.
fn push_trade_id(out: &mut String, market: &Market, id: u64) {
    if market.op_pong {
        let _ = write!(
            out,
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (id >> 32) as u32,
            (id >> 16) & 0xffff,
            id & 0xfff,
            (id >> 12) & 0xfff,
            id.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        );
    } else {
        let _ = write!(out, "{id}");
    }
}

fn levels(out: &mut String, lv: &[(i64, i64)], scale: Scale) {
    for (n, &(px, q)) in lv.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("[\"");
        fixed::push(out, px, scale.price_decimals);
        out.push_str("\",\"");
        if q == 0 {
            out.push('0');
        } else {
            fixed::push(out, q, scale.qty_decimals);
        }
        out.push_str("\"]");
    }
}

/// Replaces the number after the first `"u":` of `frame`.
fn with_u(frame: &str, f: impl FnOnce(u64) -> u64) -> Option<String> {
    let i = frame.find("\"u\":")? + 4;
    let j = i + frame[i..].find(|c: char| !c.is_ascii_digit())?;
    let u: u64 = frame[i..j].parse().ok()?;
    Some(format!("{}{}{}", &frame[..i], f(u), &frame[j..]))
}

impl BybitServer {
    fn ack(&self, op: &str, req_id: &str, error: Option<&str>) -> String {
        let ret_msg = match (error, self.market.op_pong) {
            (Some(e), _) => e,
            (None, false) => op,
            (None, true) => "",
        };
        format!(
            r#"{{"success":{},"ret_msg":"{ret_msg}","conn_id":"{CONN_ID}","req_id":"{req_id}","op":"{op}"}}"#,
            error.is_none()
        )
    }
}

impl VenueServer for BybitServer {
    fn ws_route(&self, path: &str, _query: &str) -> Option<WsRoute> {
        let category = path.trim_end_matches('/').strip_prefix("/v5/public/")?;
        (category == self.market.category).then(|| WsRoute {
            combined: false,
            streams: Vec::new(),
        })
    }

    fn stream_key(&self, name: &str) -> Option<StreamKey> {
        topic_key(name)
    }

    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        let mut bytes = text.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            replies.push(self.ack("", "", Some("error:invalid json")));
            return;
        };
        let op = v.get_str("op").unwrap_or("");
        let req_id: String = v
            .get_str("req_id")
            .unwrap_or("")
            .chars()
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        match op {
            "ping" if self.market.op_pong => {
                replies.push(format!(
                    r#"{{"req_id":"{req_id}","op":"pong","args":["0"],"conn_id":"{CONN_ID}"}}"#
                ));
            }
            "ping" => replies.push(format!(
                r#"{{"success":true,"ret_msg":"pong","conn_id":"{CONN_ID}","req_id":"{req_id}","op":"ping"}}"#
            )),
            "subscribe" | "unsubscribe" => {
                let args: Vec<&str> = v
                    .get_array("args")
                    .into_iter()
                    .flatten()
                    .map(|a| a.as_str().unwrap_or(""))
                    .collect();
                if self.market.args_per_request < 100 && args.len() > self.market.args_per_request
                {
                    let e = format!("args size >{}", self.market.args_per_request);
                    replies.push(self.ack(op, &req_id, Some(&e)));
                    return;
                }
                let mut bad = None;
                for topic in args {
                    if topic_key(topic).is_none() {
                        bad.get_or_insert(topic.replace(['"', '\\'], ""));
                        continue;
                    }
                    let name = topic.to_owned();
                    if op == "subscribe" {
                        if !subscriptions.contains(&name) {
                            subscriptions.push(name);
                        }
                    } else {
                        subscriptions.retain(|s| *s != name);
                    }
                }
                let error = bad.map(|t| format!("error:handler not found,topic:{t}"));
                replies.push(self.ack(op, &req_id, error.as_deref()));
            }
            _ => replies.push(self.ack(op, &req_id, Some("error:unknown op"))),
        }
    }

    fn route(&self, frame: &str) -> Routed {
        let mut bytes = frame.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            return Routed::Other;
        };
        let Some(key) = v.get_str("topic").and_then(topic_key) else {
            return Routed::Other;
        };
        if v.get("data").is_none() {
            return Routed::Other;
        }
        Routed::Stream {
            key,
            payload: 0..frame.len(),
            wrapper_stream: None,
        }
    }

    fn rest(&self, path: &str, query: &str) -> Option<RestRequest> {
        if path != "/v5/market/orderbook" {
            return None;
        }
        let (mut symbol, mut limit) = (None, 25usize);
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("symbol", v)) if !v.is_empty() => symbol = Some(v.to_ascii_uppercase()),
                Some(("limit", v)) => {
                    limit = v
                        .parse()
                        .unwrap_or(25)
                        .clamp(1, self.market.rest_limit as usize);
                }
                _ => {}
            }
        }
        Some(match symbol {
            Some(symbol) => RestRequest::Depth { symbol, limit },
            None => RestRequest::Reply(
                "200 OK",
                r#"{"retCode":10001,"retMsg":"params error: symbol is required","result":{},"retExtInfo":{},"time":0}"#
                    .to_owned(),
            ),
        })
    }

    fn unknown_symbol(&self) -> (&'static str, String) {
        (
            "200 OK",
            r#"{"retCode":10001,"retMsg":"params error: symbol invalid","result":{},"retExtInfo":{},"time":0}"#
                .to_owned(),
        )
    }

    fn no_snapshot(&self) -> (&'static str, String) {
        (
            "200 OK",
            r#"{"retCode":10016,"retMsg":"service unavailable","result":{},"retExtInfo":{},"time":0}"#
                .to_owned(),
        )
    }

    fn snapshot_on_subscribe(&self) -> bool {
        true
    }

    fn reorder_levels(&self, frame: &str) -> Option<String> {
        let mut bytes = frame.as_bytes().to_vec();
        let mut v = simd_json::to_owned_value(&mut bytes).ok()?;
        let data = v.get_mut("data")?;
        let side = ["b", "a"].into_iter().find(|k| {
            data.get(*k)
                .and_then(|s| s.as_array())
                .is_some_and(|a| a.len() > 1)
        })?;
        data.get_mut(side)?.as_array_mut()?.reverse();
        Some(v.encode())
    }

    fn restart(&self, snapshot: &str) -> Option<(String, u64)> {
        let mut shift = 0;
        let frame = with_u(snapshot, |u| {
            shift = u.saturating_sub(1);
            1
        })?;
        Some((frame, shift))
    }

    fn renumber(&self, frame: &str, shift: u64) -> Option<String> {
        with_u(frame, |u| u.saturating_sub(shift).max(1))
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, _wrap: bool, out: &mut String) {
        match *op {
            MarketOp::Trade {
                symbol,
                id,
                px,
                qty,
                buyer_maker,
                trade_ms,
                event_ms,
            } => {
                let _ = write!(
                    out,
                    r#"{{"topic":"publicTrade.{symbol}","type":"snapshot","ts":{event_ms},"data":[{{"T":{trade_ms},"s":"{symbol}","S":"{}","v":""#,
                    if buyer_maker { "Sell" } else { "Buy" }
                );
                fixed::push(out, qty, scale.qty_decimals);
                out.push_str("\",\"p\":\"");
                fixed::push(out, px, scale.price_decimals);
                out.push_str("\",\"L\":\"ZeroPlusTick\",\"i\":\"");
                push_trade_id(out, self.market, id);
                out.push_str("\",\"BT\":false}]}");
            }
            MarketOp::Quote {
                symbol,
                event_ms,
                update_id,
                bid_px,
                bid_qty,
                ask_px,
                ask_qty,
            } => {
                let _ = write!(
                    out,
                    r#"{{"topic":"tickers.{symbol}","type":"snapshot","data":{{"symbol":"{symbol}","bid1Price":""#
                );
                fixed::push(out, bid_px, scale.price_decimals);
                out.push_str("\",\"bid1Size\":\"");
                fixed::push(out, bid_qty, scale.qty_decimals);
                out.push_str("\",\"ask1Price\":\"");
                fixed::push(out, ask_px, scale.price_decimals);
                out.push_str("\",\"ask1Size\":\"");
                fixed::push(out, ask_qty, scale.qty_decimals);
                let _ = write!(out, r#""}},"cs":{update_id},"ts":{event_ms}}}"#);
            }
            MarketOp::Depth {
                symbol,
                last_id,
                event_ms,
                bids,
                asks,
                ..
            } => {
                let _ = write!(
                    out,
                    r#"{{"topic":"orderbook.{}.{symbol}","type":"delta","ts":{event_ms},"data":{{"s":"{symbol}","b":["#,
                    super::DEPTH
                );
                levels(out, bids, scale);
                out.push_str("],\"a\":[");
                levels(out, asks, scale);
                let _ = write!(
                    out,
                    r#"],"u":{last_id},"seq":{last_id}}},"cts":{event_ms}}}"#
                );
            }
            MarketOp::Snapshot {
                symbol,
                rest,
                last_update_id,
                bids,
                asks,
                ..
            } => {
                if rest {
                    let _ = write!(
                        out,
                        r#"{{"retCode":0,"retMsg":"OK","result":{{"s":"{symbol}","b":["#
                    );
                } else {
                    let _ = write!(
                        out,
                        r#"{{"topic":"orderbook.{}.{symbol}","type":"snapshot","ts":0,"data":{{"s":"{symbol}","b":["#,
                        super::DEPTH
                    );
                }
                levels(out, bids, scale);
                out.push_str("],\"a\":[");
                levels(out, asks, scale);
                if rest {
                    let _ = write!(
                        out,
                        r#"],"ts":0,"u":{last_update_id},"seq":{last_update_id},"cts":0}},"retExtInfo":{{}},"time":0}}"#
                    );
                } else {
                    let _ = write!(
                        out,
                        r#"],"u":{last_update_id},"seq":{last_update_id}}},"cts":0}}"#
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_pongs_routes_and_restarts() {
        let mut subs = Vec::new();
        let mut r = Vec::new();
        SPOT_SERVER.on_client_text(
            &mut subs,
            r#"{"req_id":"7","op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"]}"#,
            &mut r,
        );
        assert_eq!(subs, ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]);
        assert_eq!(
            r[0],
            r#"{"success":true,"ret_msg":"subscribe","conn_id":"wiresignal-sim","req_id":"7","op":"subscribe"}"#
        );
        r.clear();
        let eleven: Vec<String> = (0..11).map(|i| format!("\"publicTrade.S{i}\"")).collect();
        SPOT_SERVER.on_client_text(
            &mut subs,
            &format!(
                r#"{{"req_id":"8","op":"subscribe","args":[{}]}}"#,
                eleven.join(",")
            ),
            &mut r,
        );
        assert!(r[0].starts_with(r#"{"success":false"#), "{}", r[0]);
        assert_eq!(subs.len(), 2);
        r.clear();
        SPOT_SERVER.on_client_text(&mut subs, r#"{"op":"ping"}"#, &mut r);
        assert!(r[0].contains(r#""ret_msg":"pong""#));
        r.clear();
        LINEAR_SERVER.on_client_text(&mut subs, r#"{"op":"ping"}"#, &mut r);
        assert!(r[0].contains(r#""op":"pong""#));
        let f = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":41,"seq":9},"cts":1}"#;
        let Routed::Stream { key, .. } = SPOT_SERVER.route(f) else {
            panic!("not routed")
        };
        assert_eq!(SPOT_SERVER.stream_key("orderbook.50.BTCUSDT"), Some(key));
        let (snap, shift) = SPOT_SERVER.restart(f).unwrap();
        assert_eq!(shift, 40);
        assert!(snap.contains(r#""u":1,"seq":9"#), "{snap}");
        let later = f.replace("\"u\":41", "\"u\":42");
        assert!(SPOT_SERVER
            .renumber(&later, shift)
            .unwrap()
            .contains(r#""u":2,"#));
        assert!(SPOT_SERVER.ws_route("/v5/public/spot", "").is_some());
        assert!(SPOT_SERVER.ws_route("/v5/public/linear", "").is_none());
    }
}
