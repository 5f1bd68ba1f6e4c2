//! The Binance server side for the simulator (feature `sim`): stream routes
//! (`/stream?streams=`, `/ws/<stream>`, under any route prefix such as USD-M's
//! `/public` and `/market`), `SUBSCRIBE` / `UNSUBSCRIBE` /
//! `LIST_SUBSCRIPTIONS` with Binance's replies, the market's REST depth route
//! and the frames each market sends (spot, USD-M and COIN-M differ in a few
//! fields: futures carry `T`, `pu`, `X` and an event time on bookTicker).

use std::fmt::Write as _;

use simd_json::prelude::*;

use super::messages::Fields;
use super::parse::is_partial_depth;
use super::Market;
use crate::event::Scale;
use crate::fixed;
use crate::sim::{MarketOp, RestRequest, Routed, StreamKey, StreamKind, VenueServer, WsRoute};
use crate::tape::{as_str, as_u64};

/// The server of one Binance market.
#[derive(Debug)]
pub struct BinanceServer(pub &'static Market);

/// Binance spot's server.
pub static SPOT_SERVER: BinanceServer = BinanceServer(&super::SPOT_MARKET);
/// Binance USD-M's server.
pub static USDM_SERVER: BinanceServer = BinanceServer(&super::USDM_MARKET);
/// Binance COIN-M's server.
pub static COINM_SERVER: BinanceServer = BinanceServer(&super::COINM_MARKET);

impl BinanceServer {
    fn is_futures(&self) -> bool {
        self.0.depth_path != super::SPOT_MARKET.depth_path
    }
}

/// The payload range and stream name of a combined-stream wrapper
/// `{"stream":"<name>","data":<payload>}` (Binance's key order).
fn unwrap(frame: &str) -> Option<(std::ops::Range<usize>, &str)> {
    let rest = frame.strip_prefix("{\"stream\":\"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    let after = &rest[end..];
    let data = after.strip_prefix("\",\"data\":")?;
    let start = frame.len() - data.len();
    let body = data.trim_end();
    let body = body.strip_suffix('}')?;
    Some((start..start + body.len(), name))
}

impl BinanceServer {
    /// The reply to a client request (`None`: no reply).
    fn reply(&self, subscriptions: &mut Vec<String>, text: &str) -> Option<String> {
        let mut bytes = text.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            return Some(r#"{"error":{"code":3,"msg":"Invalid JSON"},"id":null}"#.to_owned());
        };
        let id = match v.get("id") {
            Some(id) if id.is_u64() || id.is_i64() || id.is_str() => id.encode(),
            _ => "null".to_owned(),
        };
        let params: Vec<String> = v
            .get_array("params")
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let invalid = |msg: &str| format!(r#"{{"error":{{"code":2,"msg":"{msg}"}},"id":{id}}}"#);
        let result = match v.get_str("method") {
            Some("SUBSCRIBE") => {
                // A stream name is `<symbol>@<stream>`.
                if let Some(bad) = params.iter().find(|p| {
                    p.split_once('@')
                        .is_none_or(|(s, k)| s.is_empty() || k.is_empty())
                }) {
                    let bad = bad.replace(['"', '\\'], "");
                    return Some(invalid(&format!(
                        "Invalid request: invalid stream name {bad}"
                    )));
                }
                for name in params {
                    if !subscriptions.contains(&name) {
                        subscriptions.push(name);
                    }
                }
                "null".to_owned()
            }
            Some("UNSUBSCRIBE") => {
                subscriptions.retain(|s| !params.contains(s));
                "null".to_owned()
            }
            Some("LIST_SUBSCRIPTIONS") => {
                let names: Vec<String> = subscriptions.iter().map(|s| format!("\"{s}\"")).collect();
                format!("[{}]", names.join(","))
            }
            _ => return Some(invalid("Invalid request")),
        };
        // Binance's field order: result first.
        Some(format!(r#"{{"result":{result},"id":{id}}}"#))
    }
}

impl VenueServer for BinanceServer {
    fn closing_notice(&self) -> Option<String> {
        Some(r#"{"e":"serverShutdown","E":1723161600000}"#.to_owned())
    }

    fn ws_route(&self, path: &str, query: &str) -> Option<WsRoute> {
        let split = |s: &str| -> Vec<String> {
            s.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let route = path.trim_end_matches('/');
        if route.ends_with("/stream") {
            let streams = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("streams="))
                .map(split)
                .unwrap_or_default();
            return Some(WsRoute {
                combined: true,
                streams,
            });
        }
        if route.ends_with("/ws") {
            return Some(WsRoute {
                combined: false,
                streams: Vec::new(),
            });
        }
        let i = route.find("/ws/")?;
        Some(WsRoute {
            combined: false,
            streams: split(&route[i + 4..]),
        })
    }

    fn stream_key(&self, name: &str) -> Option<StreamKey> {
        let (sym, rest) = name.split_once('@')?;
        let rest = rest.to_ascii_lowercase();
        let kind = match rest.as_str() {
            "trade" => StreamKind::Trade,
            "aggtrade" => StreamKind::AggTrade,
            "bookticker" => StreamKind::Quote,
            "depth" => StreamKind::Depth,
            r => {
                let ms = r.strip_prefix("depth@")?.strip_suffix("ms")?;
                if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                StreamKind::Depth
            }
        };
        Some(StreamKey {
            kind,
            symbol: sym.to_ascii_lowercase(),
        })
    }

    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        if let Some(r) = self.reply(subscriptions, text) {
            replies.push(r);
        }
    }

    fn route(&self, frame: &str) -> Routed {
        let (payload, wrapper) = match unwrap(frame) {
            Some((r, name)) => (r, Some(name)),
            None => (0..frame.len(), None),
        };
        let mut bytes = frame.as_bytes()[payload.clone()].to_vec();
        let Ok(tape) = simd_json::to_tape(&mut bytes) else {
            return Routed::Other;
        };
        let Some(f) = Fields::scan(&tape.0) else {
            return Routed::Other;
        };
        let text = |v: Option<super::messages::Raw<'_, '_>>, k: &'static str| {
            v.and_then(|v| as_str(v, k).ok()).map(str::to_owned)
        };
        let symbol = text(f.s, "s").map(|s| s.to_ascii_lowercase());
        let stream = |kind| match &symbol {
            Some(s) => Routed::Stream {
                key: StreamKey {
                    kind,
                    symbol: s.clone(),
                },
                payload: payload.clone(),
                wrapper_stream: wrapper.map(str::to_owned),
            },
            None => Routed::Other,
        };
        match text(f.e, "e").as_deref() {
            Some("trade") => return stream(StreamKind::Trade),
            Some("aggTrade") => return stream(StreamKind::AggTrade),
            Some("bookTicker") => return stream(StreamKind::Quote),
            Some("depthUpdate") if f.U.is_some() && f.u.is_some() => {
                return stream(StreamKind::Depth)
            }
            Some(_) => return Routed::Other,
            None => {}
        }
        if f.u.is_some() && f.b.is_some() && f.B.is_some() && f.a.is_some() && f.A.is_some() {
            return stream(StreamKind::Quote);
        }
        let snapshot = f
            .last_update_id
            .is_some_and(|v| as_u64(v, "lastUpdateId").is_ok())
            && f.bids.is_some()
            && f.asks.is_some();
        if snapshot && !wrapper.is_some_and(is_partial_depth) {
            let named = text(f.symbol, "symbol")
                .or(text(f.s, "s"))
                .or_else(|| wrapper.map(|w| w.split('@').next().unwrap_or(w).to_owned()))
                .map(|s| s.to_ascii_uppercase());
            return Routed::Snapshot {
                symbol: named,
                payload,
            };
        }
        Routed::Other
    }

    fn wrap(&self, stream: &str, payload: &str, out: &mut String) {
        out.push_str("{\"stream\":\"");
        out.push_str(stream);
        out.push_str("\",\"data\":");
        out.push_str(payload);
        out.push('}');
    }

    fn rest(&self, path: &str, query: &str) -> Option<RestRequest> {
        if path == self.0.depth_path {
            let mut symbol = None;
            let mut limit = 100usize;
            for kv in query.split('&') {
                match kv.split_once('=') {
                    Some(("symbol", v)) if !v.is_empty() => symbol = Some(v.to_ascii_uppercase()),
                    Some(("limit", v)) => limit = v.parse().unwrap_or(100).clamp(1, 5000),
                    _ => {}
                }
            }
            return Some(match symbol {
                Some(symbol) => RestRequest::Depth { symbol, limit },
                None => RestRequest::Reply(
                    "400 Bad Request",
                    r#"{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}"#.to_owned(),
                ),
            });
        }
        let ping = self.0.depth_path.replace("/depth", "/ping");
        (path == ping).then(|| RestRequest::Reply("200 OK", "{}".to_owned()))
    }

    fn unknown_symbol(&self) -> (&'static str, String) {
        (
            "400 Bad Request",
            r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_owned(),
        )
    }

    fn no_snapshot(&self) -> (&'static str, String) {
        (
            "503 Service Unavailable",
            r#"{"code":-1,"msg":"No snapshot in the simulator source."}"#.to_owned(),
        )
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, wrap: bool, out: &mut String) {
        let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
        let futures = self.is_futures();
        let stream = |out: &mut String, symbol: &str, suffix: &str| {
            if wrap {
                out.push_str("{\"stream\":\"");
                out.extend(symbol.chars().map(|c| c.to_ascii_lowercase()));
                out.push_str(suffix);
                out.push_str("\",\"data\":");
            }
        };
        let levels = |out: &mut String, lv: &[(i64, i64)]| {
            for (n, &(px, q)) in lv.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str("[\"");
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
                event_ms,
            } => {
                stream(out, symbol, "@trade");
                let _ = write!(out, r#"{{"e":"trade","E":{event_ms},"#);
                if futures {
                    let _ = write!(out, r#""T":{trade_ms},"#);
                }
                let _ = write!(out, r#""s":"{symbol}","t":{id},"p":""#);
                fixed::push(out, px, pd);
                out.push_str("\",\"q\":\"");
                fixed::push(out, qty, qd);
                if futures {
                    let _ = write!(out, r#"","X":"MARKET","m":{buyer_maker}}}"#);
                } else {
                    let _ = write!(out, r#"","T":{trade_ms},"m":{buyer_maker},"M":true}}"#);
                }
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
                stream(out, symbol, "@bookTicker");
                if futures {
                    let _ = write!(
                        out,
                        r#"{{"e":"bookTicker","u":{update_id},"s":"{symbol}","b":""#
                    );
                } else {
                    let _ = write!(out, r#"{{"u":{update_id},"s":"{symbol}","b":""#);
                }
                fixed::push(out, bid_px, pd);
                out.push_str("\",\"B\":\"");
                fixed::push(out, bid_qty, qd);
                out.push_str("\",\"a\":\"");
                fixed::push(out, ask_px, pd);
                out.push_str("\",\"A\":\"");
                fixed::push(out, ask_qty, qd);
                if futures {
                    let _ = write!(out, r#"","T":{event_ms},"E":{event_ms}}}"#);
                } else {
                    out.push_str("\"}");
                }
            }
            MarketOp::Depth {
                symbol,
                first_id,
                last_id,
                prev_last_id,
                event_ms,
                interval_ms,
                bids,
                asks,
            } => {
                let suffix = match interval_ms {
                    1000 if !futures => "@depth".to_owned(),
                    ms => format!("@depth@{ms}ms"),
                };
                stream(out, symbol, &suffix);
                let _ = write!(out, r#"{{"e":"depthUpdate","E":{event_ms},"#);
                if futures {
                    let _ = write!(out, r#""T":{event_ms},"#);
                }
                let _ = write!(out, r#""s":"{symbol}","U":{first_id},"u":{last_id},"#);
                if futures {
                    let _ = write!(out, r#""pu":{prev_last_id},"#);
                }
                out.push_str("\"b\":[");
                levels(out, bids);
                out.push_str("],\"a\":[");
                levels(out, asks);
                out.push_str("]}");
            }
            MarketOp::Snapshot {
                symbol,
                rest: _,
                name_symbol,
                last_update_id,
                bids,
                asks,
            } => {
                let _ = write!(out, r#"{{"lastUpdateId":{last_update_id}"#);
                if name_symbol {
                    let _ = write!(out, r#","symbol":"{symbol}""#);
                }
                out.push_str(",\"bids\":[");
                levels(out, bids);
                out.push_str("],\"asks\":[");
                levels(out, asks);
                out.push_str("]}");
                return;
            }
        }
        if wrap {
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SPOT_SERVER as SPOT, USDM_SERVER as USDM, *};

    #[test]
    fn routes_wrapped_raw_and_snapshots() {
        let f = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00000000","q":"1.00000000","T":1,"m":true,"M":true}}"#;
        match SPOT.route(f) {
            Routed::Stream {
                key,
                payload,
                wrapper_stream,
            } => {
                assert_eq!(
                    (key.kind, key.symbol.as_str()),
                    (StreamKind::Trade, "btcusdt")
                );
                assert!(f[payload].starts_with(r#"{"e":"trade""#));
                assert_eq!(wrapper_stream.as_deref(), Some("btcusdt@trade"));
            }
            other => panic!("{other:?}"),
        }
        let bt = r#"{"u":5,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.1","A":"3.0"}"#;
        assert!(matches!(
            SPOT.route(bt),
            Routed::Stream {
                key: StreamKey {
                    kind: StreamKind::Quote,
                    ..
                },
                ..
            }
        ));
        let snap = r#"{"lastUpdateId":9,"bids":[["1.0","2.0"]],"asks":[["1.1","0.5"]]}"#;
        assert_eq!(
            SPOT.route(snap),
            Routed::Snapshot {
                symbol: None,
                payload: 0..snap.len()
            }
        );
        let coinm = r#"{"lastUpdateId":9,"symbol":"BTCUSD_PERP","bids":[],"asks":[]}"#;
        assert!(
            matches!(SPOT.route(coinm), Routed::Snapshot { symbol: Some(s), .. } if s == "BTCUSD_PERP")
        );
        let partial =
            r#"{"stream":"btcusdt@depth5","data":{"lastUpdateId":9,"bids":[],"asks":[]}}"#;
        assert_eq!(SPOT.route(partial), Routed::Other);
        assert_eq!(SPOT.route("not json"), Routed::Other);
        assert_eq!(SPOT.route(r#"{"result":null,"id":1}"#), Routed::Other);
    }

    #[test]
    fn stream_names_and_routes() {
        let k = |n| SPOT.stream_key(n).map(|k| k.kind);
        assert_eq!(k("btcusdt@depth@100ms"), Some(StreamKind::Depth));
        assert_eq!(k("btcusdt@depth@0ms"), Some(StreamKind::Depth));
        assert_eq!(k("btcusdt@depth"), Some(StreamKind::Depth));
        assert_eq!(
            SPOT.stream_key("BTCUSDT@bookTicker").map(|k| k.symbol),
            Some("btcusdt".into())
        );
        assert_eq!(k("btcusdt@aggTrade"), Some(StreamKind::AggTrade));
        assert_eq!(k("btcusdt@depth5"), None);
        assert_eq!(k("btcusdt@kline_1m"), None);
        let r = USDM
            .ws_route("/public/stream", "streams=a@trade/b@depth")
            .unwrap();
        assert!(r.combined);
        assert_eq!(r.streams, ["a@trade", "b@depth"]);
        assert_eq!(
            USDM.ws_route("/market/ws/a@trade", "").unwrap().streams,
            ["a@trade"]
        );
        assert!(USDM.ws_route("/nope", "").is_none());
    }

    #[test]
    fn requests_get_binance_replies() {
        let mut subs = Vec::new();
        let r = SPOT.reply(
            &mut subs,
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth"],"id":3}"#,
        );
        assert_eq!(r.as_deref(), Some(r#"{"result":null,"id":3}"#));
        assert_eq!(subs, ["btcusdt@trade", "btcusdt@depth"]);
        let r = SPOT.reply(&mut subs, r#"{"method":"LIST_SUBSCRIPTIONS","id":4}"#);
        assert_eq!(
            r.as_deref(),
            Some(r#"{"result":["btcusdt@trade","btcusdt@depth"],"id":4}"#)
        );
        let r = SPOT
            .reply(
                &mut subs,
                r#"{"method":"SUBSCRIBE","params":["nonsense"],"id":5}"#,
            )
            .unwrap();
        assert!(
            r.starts_with(r#"{"error":{"code":2"#) && r.ends_with(r#""id":5}"#),
            "{r}"
        );
        let r = SPOT.reply(
            &mut subs,
            r#"{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":6}"#,
        );
        assert_eq!(r.as_deref(), Some(r#"{"result":null,"id":6}"#));
        assert_eq!(subs, ["btcusdt@depth"]);
        assert!(SPOT.reply(&mut subs, "{").unwrap().contains("Invalid JSON"));
    }

    #[test]
    fn rest_routes_per_market() {
        assert_eq!(
            USDM.rest("/fapi/v1/depth", "symbol=btcusdt&limit=50"),
            Some(RestRequest::Depth {
                symbol: "BTCUSDT".into(),
                limit: 50
            })
        );
        assert!(USDM.rest("/api/v3/depth", "symbol=X").is_none());
        assert!(matches!(
            SPOT.rest("/api/v3/depth", ""),
            Some(RestRequest::Reply("400 Bad Request", _))
        ));
        assert!(matches!(
            SPOT.rest("/api/v3/ping", ""),
            Some(RestRequest::Reply("200 OK", _))
        ));
    }
}
