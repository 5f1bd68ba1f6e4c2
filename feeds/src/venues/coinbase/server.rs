//! The Coinbase server side for the simulator (feature `sim`), both feeds:
//! one endpoint, `subscribe`/`unsubscribe` answered with the venue's
//! `subscriptions` message, frames routed by product, a full-depth snapshot
//! on subscribe. Advanced Trade frames are numbered per connection
//! (`sequence_num`, [`VenueServer::stamp`]): a frame the simulator skips
//! (a fault) leaves a hole in the numbers, as a lost message does.

use std::fmt::Write as _;

use simd_json::prelude::*;

use super::Api;
use crate::event::Scale;
use crate::fixed;
use crate::sim::{MarketOp, Routed, StreamKey, StreamKind, VenueServer, WsRoute};
use crate::time::push_rfc3339;

/// Coinbase's server, for either feed: what both share is here, the rest
/// is the feed's ([`Advanced`], [`Exchange`]).
#[derive(Debug)]
pub struct CoinbaseServer {
    api: Api,
}

/// The registry's Advanced Trade instance.
pub static ADVANCED_SERVER: CoinbaseServer = CoinbaseServer {
    api: Api::AdvancedTrade,
};

/// The registry's Exchange feed instance.
pub static EXCHANGE_SERVER: CoinbaseServer = CoinbaseServer { api: Api::Exchange };

/// The Advanced Trade protocol's own answers, routes and frames.
struct Advanced;

/// The Exchange feed's own answers, routes and frames.
struct Exchange;

const NOT_FOUND: (&str, &str) = ("404 Not Found", r#"{"message":"NotFound"}"#);

fn advanced_kind(channel: &str) -> Option<StreamKind> {
    Some(match channel {
        "level2" | "l2_data" => StreamKind::Depth,
        "market_trades" => StreamKind::Trade,
        "ticker" => StreamKind::Quote,
        _ => return None,
    })
}

fn exchange_kind(channel: &str) -> Option<StreamKind> {
    Some(match channel {
        "level2" | "level2_batch" | "level2_50" => StreamKind::Depth,
        "matches" => StreamKind::Trade,
        "ticker" => StreamKind::Quote,
        _ => return None,
    })
}

fn key(kind: StreamKind, name: &str) -> Option<StreamKey> {
    let (_, product) = name.split_once(':')?;
    Some(StreamKey {
        kind,
        symbol: product.to_ascii_lowercase(),
    })
}

fn stream(kind: Option<StreamKind>, product: Option<&str>, len: usize) -> Routed {
    match (kind, product) {
        (Some(kind), Some(p)) => Routed::Stream {
            key: StreamKey {
                kind,
                symbol: p.to_ascii_lowercase(),
            },
            payload: 0..len,
            wrapper_stream: None,
        },
        _ => Routed::Other,
    }
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

/// Applies a subscribe/unsubscribe of `channel` for `products` to the
/// connection's stream names (`channel:PRODUCT`, or `channel` alone).
fn apply(subscriptions: &mut Vec<String>, subscribe: bool, channel: &str, products: &[String]) {
    let names: Vec<String> = if products.is_empty() {
        vec![channel.to_owned()]
    } else {
        products
            .iter()
            .map(|p| format!("{channel}:{}", p.to_ascii_uppercase()))
            .collect()
    };
    for name in names {
        if subscribe {
            if !subscriptions.contains(&name) {
                subscriptions.push(name);
            }
        } else {
            subscriptions.retain(|s| *s != name);
        }
    }
}

/// The connection's subscriptions grouped by channel, in first-seen order.
fn grouped(subscriptions: &[String]) -> Vec<(String, Vec<String>)> {
    let mut g: Vec<(String, Vec<String>)> = Vec::new();
    for s in subscriptions {
        let (c, p) = s.split_once(':').unwrap_or((s.as_str(), ""));
        let found = g.iter().position(|(k, _)| k == c);
        let at = found.unwrap_or_else(|| {
            g.push((c.to_owned(), Vec::new()));
            g.len() - 1
        });
        if !p.is_empty() {
            g[at].1.push(p.to_owned());
        }
    }
    g
}

fn quoted_list(out: &mut String, items: &[String]) {
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{p}\"");
    }
}

fn time_ms(out: &mut String, ms: i64) {
    push_rfc3339(out, ms.saturating_mul(1_000_000), 6);
}

fn products_of(v: &simd_json::BorrowedValue<'_>) -> Vec<String> {
    v.get_array("product_ids")
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(clean))
        .collect()
}

impl VenueServer for CoinbaseServer {
    fn ws_route(&self, _path: &str, _query: &str) -> Option<WsRoute> {
        Some(WsRoute {
            combined: false,
            streams: Vec::new(),
        })
    }

    fn stream_key(&self, name: &str) -> Option<StreamKey> {
        let (channel, _) = name.split_once(':')?;
        let kind = match self.api {
            Api::AdvancedTrade => advanced_kind(channel),
            Api::Exchange => exchange_kind(channel),
        };
        key(kind?, name)
    }

    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        match self.api {
            Api::AdvancedTrade => Advanced.on_client_text(subscriptions, text, replies),
            Api::Exchange => Exchange.on_client_text(subscriptions, text, replies),
        }
    }

    fn route(&self, frame: &str) -> Routed {
        match self.api {
            Api::AdvancedTrade => Advanced.route(frame),
            Api::Exchange => Exchange.route(frame),
        }
    }

    fn unknown_symbol(&self) -> (&'static str, String) {
        (NOT_FOUND.0, NOT_FOUND.1.to_owned())
    }

    fn no_snapshot(&self) -> (&'static str, String) {
        (NOT_FOUND.0, NOT_FOUND.1.to_owned())
    }

    fn snapshot_on_subscribe(&self) -> bool {
        true
    }

    fn snapshot_levels(&self) -> usize {
        usize::MAX
    }

    fn stamp(&self, frame: &str, seq: u64) -> Option<String> {
        match self.api {
            Api::AdvancedTrade => Advanced.stamp(frame, seq),
            Api::Exchange => None,
        }
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, wrap: bool, out: &mut String) {
        match self.api {
            Api::AdvancedTrade => Advanced.render(op, scale, wrap, out),
            Api::Exchange => Exchange.render(op, scale, wrap, out),
        }
    }
}

impl Advanced {
    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        let mut bytes = text.as_bytes().to_vec();
        let parsed = simd_json::to_borrowed_value(&mut bytes).ok();
        let ok = parsed.as_ref().and_then(|v| {
            let op = v.get_str("type")?;
            let channel = v.get_str("channel")?;
            let known = advanced_kind(channel).is_some()
                || matches!(
                    channel,
                    "heartbeats" | "status" | "candles" | "ticker_batch"
                );
            ((op == "subscribe" || op == "unsubscribe") && known).then(|| {
                apply(subscriptions, op == "subscribe", channel, &products_of(v));
            })
        });
        if ok.is_none() {
            replies.push(r#"{"type":"error","message":"Failure to subscribe"}"#.to_owned());
            return;
        }
        let mut r = String::from(
            r#"{"channel":"subscriptions","client_id":"","timestamp":"1970-01-01T00:00:00Z","sequence_num":0,"events":[{"subscriptions":{"#,
        );
        for (i, (c, ps)) in grouped(subscriptions).iter().enumerate() {
            if i > 0 {
                r.push(',');
            }
            let _ = write!(r, "\"{c}\":[");
            quoted_list(&mut r, ps);
            r.push(']');
        }
        r.push_str("}}]}");
        replies.push(r);
    }

    fn route(&self, frame: &str) -> Routed {
        let mut bytes = frame.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            return Routed::Other;
        };
        let Some(channel) = v.get_str("channel") else {
            return Routed::Other;
        };
        let Some(ev) = v.get_array("events").and_then(|e| e.first()) else {
            return Routed::Other;
        };
        let product = match channel {
            "l2_data" => ev.get_str("product_id"),
            "market_trades" => ev
                .get_array("trades")
                .and_then(|t| t.first())
                .and_then(|t| t.get_str("product_id")),
            "ticker" => ev
                .get_array("tickers")
                .and_then(|t| t.first())
                .and_then(|t| t.get_str("product_id")),
            _ => None,
        };
        stream(advanced_kind(channel), product, frame.len())
    }

    fn stamp(&self, frame: &str, seq: u64) -> Option<String> {
        const KEY: &str = "\"sequence_num\":";
        let i = frame.find(KEY)? + KEY.len();
        let j = i + frame[i..].find(|c: char| !c.is_ascii_digit())?;
        Some(format!("{}{seq}{}", &frame[..i], &frame[j..]))
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, _wrap: bool, out: &mut String) {
        let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
        let head = |out: &mut String, channel: &str, ms: i64| {
            let _ = write!(
                out,
                r#"{{"channel":"{channel}","client_id":"","timestamp":""#
            );
            time_ms(out, ms);
            out.push_str(r#"","sequence_num":0,"events":["#);
        };
        let levels = |out: &mut String, n: &mut usize, side: &str, lv: &[(i64, i64)]| {
            for &(px, q) in lv {
                if *n > 0 {
                    out.push(',');
                }
                *n += 1;
                let _ = write!(
                    out,
                    r#"{{"side":"{side}","event_time":"1970-01-01T00:00:00Z","price_level":""#
                );
                fixed::push(out, px, pd);
                out.push_str(r#"","new_quantity":""#);
                fixed::push(out, q, qd);
                out.push_str("\"}");
            }
        };
        match *op {
            MarketOp::Trade {
                symbol,
                id,
                px,
                qty,
                buyer_maker,
                trade_ms,
                ..
            } => {
                head(out, "market_trades", trade_ms);
                let _ = write!(
                    out,
                    r#"{{"type":"update","trades":[{{"trade_id":"{id}","product_id":"{symbol}","price":""#
                );
                fixed::push(out, px, pd);
                out.push_str(r#"","size":""#);
                fixed::push(out, qty, qd);
                // The maker's side.
                let side = if buyer_maker { "BUY" } else { "SELL" };
                let _ = write!(out, r#"","side":"{side}","time":""#);
                time_ms(out, trade_ms);
                out.push_str("\"}]}]}");
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
                head(out, "ticker", event_ms);
                let _ = write!(
                    out,
                    r#"{{"type":"update","tickers":[{{"type":"ticker","product_id":"{symbol}","best_bid":""#
                );
                fixed::push(out, bid_px, pd);
                out.push_str(r#"","best_bid_quantity":""#);
                fixed::push(out, bid_qty, qd);
                out.push_str(r#"","best_ask":""#);
                fixed::push(out, ask_px, pd);
                out.push_str(r#"","best_ask_quantity":""#);
                fixed::push(out, ask_qty, qd);
                out.push_str("\"}]}]}");
            }
            MarketOp::Depth {
                symbol,
                event_ms,
                bids,
                asks,
                ..
            } => {
                head(out, "l2_data", event_ms);
                let _ = write!(
                    out,
                    r#"{{"type":"update","product_id":"{symbol}","updates":["#
                );
                let mut n = 0;
                levels(out, &mut n, "bid", bids);
                levels(out, &mut n, "offer", asks);
                out.push_str("]}]}");
            }
            MarketOp::Snapshot {
                symbol, bids, asks, ..
            } => {
                head(out, "l2_data", 0);
                let _ = write!(
                    out,
                    r#"{{"type":"snapshot","product_id":"{symbol}","updates":["#
                );
                let mut n = 0;
                levels(out, &mut n, "bid", bids);
                levels(out, &mut n, "offer", asks);
                out.push_str("]}]}");
            }
        }
    }
}

impl Exchange {
    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        let mut bytes = text.as_bytes().to_vec();
        let parsed = simd_json::to_borrowed_value(&mut bytes).ok();
        let ok = parsed.as_ref().and_then(|v| {
            let op = v.get_str("type")?;
            if op != "subscribe" && op != "unsubscribe" {
                return None;
            }
            let products = products_of(v);
            for c in v.get_array("channels")? {
                // A channel is a name, or `{"name":..,"product_ids":[..]}`.
                let (name, ps) = match c.as_str() {
                    Some(n) => (n, products.clone()),
                    None => (c.get_str("name")?, products_of(c)),
                };
                let known = exchange_kind(name).is_some()
                    || matches!(name, "heartbeat" | "status" | "full" | "level3");
                if !known || ps.is_empty() {
                    return None;
                }
                apply(subscriptions, op == "subscribe", name, &ps);
            }
            Some(())
        });
        if ok.is_none() {
            replies.push(
                r#"{"type":"error","message":"Failed to subscribe","reason":"invalid channel or product"}"#
                    .to_owned(),
            );
            return;
        }
        let mut r = String::from(r#"{"type":"subscriptions","channels":["#);
        for (i, (c, ps)) in grouped(subscriptions).iter().enumerate() {
            if i > 0 {
                r.push(',');
            }
            let _ = write!(r, r#"{{"name":"{c}","product_ids":["#);
            quoted_list(&mut r, ps);
            r.push_str("]}");
        }
        r.push_str("]}");
        replies.push(r);
    }

    fn route(&self, frame: &str) -> Routed {
        let mut bytes = frame.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            return Routed::Other;
        };
        let kind = match v.get_str("type") {
            Some("snapshot" | "l2update") => Some(StreamKind::Depth),
            Some("match" | "last_match") => Some(StreamKind::Trade),
            Some("ticker") => Some(StreamKind::Quote),
            _ => None,
        };
        stream(kind, v.get_str("product_id"), frame.len())
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, _wrap: bool, out: &mut String) {
        let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
        let pairs = |out: &mut String, side: Option<&str>, lv: &[(i64, i64)]| {
            for (n, &(px, q)) in lv.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push('[');
                if let Some(s) = side {
                    let _ = write!(out, "\"{s}\",");
                }
                out.push('"');
                fixed::push(out, px, pd);
                out.push_str("\",\"");
                fixed::push(out, q, qd);
                out.push_str("\"]");
            }
        };
        match *op {
            MarketOp::Trade {
                symbol,
                id,
                px,
                qty,
                buyer_maker,
                trade_ms,
                ..
            } => {
                let side = if buyer_maker { "buy" } else { "sell" };
                let _ = write!(
                    out,
                    r#"{{"type":"match","trade_id":{id},"maker_order_id":"","taker_order_id":"","side":"{side}","size":""#
                );
                fixed::push(out, qty, qd);
                out.push_str(r#"","price":""#);
                fixed::push(out, px, pd);
                let _ = write!(out, r#"","product_id":"{symbol}","sequence":0,"time":""#);
                time_ms(out, trade_ms);
                out.push_str("\"}");
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
                let _ = write!(
                    out,
                    r#"{{"type":"ticker","sequence":0,"product_id":"{symbol}","best_bid":""#
                );
                fixed::push(out, bid_px, pd);
                out.push_str(r#"","best_bid_size":""#);
                fixed::push(out, bid_qty, qd);
                out.push_str(r#"","best_ask":""#);
                fixed::push(out, ask_px, pd);
                out.push_str(r#"","best_ask_size":""#);
                fixed::push(out, ask_qty, qd);
                out.push_str(r#"","time":""#);
                time_ms(out, event_ms);
                out.push_str("\"}");
            }
            MarketOp::Depth {
                symbol,
                event_ms,
                bids,
                asks,
                ..
            } => {
                let _ = write!(
                    out,
                    r#"{{"type":"l2update","product_id":"{symbol}","changes":["#
                );
                pairs(out, Some("buy"), bids);
                if !bids.is_empty() && !asks.is_empty() {
                    out.push(',');
                }
                pairs(out, Some("sell"), asks);
                out.push_str(r#"],"time":""#);
                time_ms(out, event_ms);
                out.push_str("\"}");
            }
            MarketOp::Snapshot {
                symbol, bids, asks, ..
            } => {
                let _ = write!(
                    out,
                    r#"{{"type":"snapshot","product_id":"{symbol}","bids":["#
                );
                pairs(out, None, bids);
                out.push_str("],\"asks\":[");
                pairs(out, None, asks);
                out.push_str("]}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advanced_trade_acks_routes_and_stamps() {
        let mut subs = Vec::new();
        let mut r = Vec::new();
        ADVANCED_SERVER.on_client_text(
            &mut subs,
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}"#,
            &mut r,
        );
        ADVANCED_SERVER.on_client_text(
            &mut subs,
            r#"{"type":"subscribe","channel":"heartbeats"}"#,
            &mut r,
        );
        assert_eq!(subs, ["level2:BTC-USD", "heartbeats"]);
        assert!(
            r[1].contains(r#""subscriptions":{"level2":["BTC-USD"],"heartbeats":[]}"#),
            "{}",
            r[1]
        );
        ADVANCED_SERVER.on_client_text(
            &mut subs,
            r#"{"type":"subscribe","channel":"nope"}"#,
            &mut r,
        );
        assert!(r[2].starts_with(r#"{"type":"error""#));
        let f = r#"{"channel":"l2_data","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":7,"events":[{"type":"update","product_id":"BTC-USD","updates":[]}]}"#;
        let Routed::Stream { key, .. } = ADVANCED_SERVER.route(f) else {
            panic!("not routed")
        };
        assert_eq!(ADVANCED_SERVER.stream_key("level2:BTC-USD"), Some(key));
        let s = ADVANCED_SERVER.stamp(f, 12).unwrap();
        assert!(s.contains(r#""sequence_num":12,"#));
        assert_eq!(s.len(), f.len() + 1);
    }

    #[test]
    fn exchange_acks_both_channel_forms() {
        let mut subs = Vec::new();
        let mut r = Vec::new();
        EXCHANGE_SERVER.on_client_text(
            &mut subs,
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch",{"name":"matches","product_ids":["ETH-USD"]}]}"#,
            &mut r,
        );
        assert_eq!(subs, ["level2_batch:BTC-USD", "matches:ETH-USD"]);
        assert_eq!(
            r[0],
            r#"{"type":"subscriptions","channels":[{"name":"level2_batch","product_ids":["BTC-USD"]},{"name":"matches","product_ids":["ETH-USD"]}]}"#
        );
        EXCHANGE_SERVER.on_client_text(
            &mut subs,
            r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2_batch"]}"#,
            &mut r,
        );
        assert_eq!(subs, ["matches:ETH-USD"]);
        assert_eq!(EXCHANGE_SERVER.stamp("{}", 1), None);
    }
}
