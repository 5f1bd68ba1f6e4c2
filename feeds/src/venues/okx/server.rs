//! The OKX v5 server side for the simulator (feature `sim`): one public
//! endpoint, `subscribe`/`unsubscribe` ops acknowledged per argument, the
//! text `ping` answered with `pong`, and frames routed by `arg.channel` and
//! `arg.instId`. Generator operations render as OKX frames with
//! `checksum: 0` (absent, as OKX sends since 2026: the operation carries no book).

use std::fmt::Write as _;

use simd_json::prelude::*;

use crate::event::Scale;
use crate::fixed;
use crate::sim::{MarketOp, RestRequest, Routed, StreamKey, StreamKind, VenueServer, WsRoute};

/// OKX's server.
#[derive(Debug)]
pub struct OkxServer;

/// The registry's instance.
pub static OKX_SERVER: OkxServer = OkxServer;

fn kind(channel: &str) -> Option<StreamKind> {
    Some(match channel {
        "books" | "books5" | "books-l2-tbt" | "books50-l2-tbt" => StreamKind::Depth,
        "trades" | "trades-all" => StreamKind::Trade,
        "tickers" | "bbo-tbt" => StreamKind::Quote,
        _ => return None,
    })
}

/// The shortest decimal text of a fixed-point value (`30316`, `5.16`), as OKX sends.
fn shortest(out: &mut String, v: i64, d: u8) {
    let start = out.len();
    fixed::push(out, v, d);
    if out[start..].contains('.') {
        let t = out[start..]
            .trim_end_matches('0')
            .trim_end_matches('.')
            .len();
        out.truncate(start + t);
    }
}

impl VenueServer for OkxServer {
    fn ws_route(&self, _path: &str, _query: &str) -> Option<WsRoute> {
        Some(WsRoute {
            combined: false,
            streams: Vec::new(),
        })
    }

    fn stream_key(&self, name: &str) -> Option<StreamKey> {
        let (channel, inst) = name.split_once(':')?;
        Some(StreamKey {
            kind: kind(channel)?,
            symbol: inst.to_ascii_lowercase(),
        })
    }

    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    ) {
        if text.trim() == "ping" {
            replies.push("pong".to_owned());
            return;
        }
        let mut bytes = text.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            replies.push(r#"{"event":"error","code":"60012","msg":"Invalid request"}"#.to_owned());
            return;
        };
        let op = v.get_str("op").unwrap_or("");
        if op != "subscribe" && op != "unsubscribe" {
            replies.push(r#"{"event":"error","code":"60012","msg":"Invalid request"}"#.to_owned());
            return;
        }
        for arg in v.get_array("args").into_iter().flatten() {
            let channel = arg.get_str("channel").unwrap_or("");
            let inst: String = arg
                .get_str("instId")
                .unwrap_or("")
                .chars()
                .filter(|c| *c != '"' && *c != '\\')
                .collect();
            if kind(channel).is_none() || inst.is_empty() {
                replies.push(format!(
                    r#"{{"event":"error","code":"60018","msg":"Wrong URL or channel:{channel},instId:{inst} doesn't exist."}}"#
                ));
                continue;
            }
            let name = format!("{channel}:{}", inst.to_ascii_uppercase());
            if op == "subscribe" {
                if !subscriptions.contains(&name) {
                    subscriptions.push(name);
                }
            } else {
                subscriptions.retain(|s| *s != name);
            }
            replies.push(format!(
                r#"{{"event":"{op}","arg":{{"channel":"{channel}","instId":"{inst}"}}}}"#
            ));
        }
    }

    fn route(&self, frame: &str) -> Routed {
        let mut bytes = frame.as_bytes().to_vec();
        let Ok(v) = simd_json::to_borrowed_value(&mut bytes) else {
            return Routed::Other;
        };
        if v.get("event").is_some() || v.get("data").is_none() {
            return Routed::Other;
        }
        let Some(arg) = v.get("arg") else {
            return Routed::Other;
        };
        let (Some(channel), Some(inst)) = (arg.get_str("channel"), arg.get_str("instId")) else {
            return Routed::Other;
        };
        let Some(kind) = kind(channel) else {
            return Routed::Other;
        };
        Routed::Stream {
            key: StreamKey {
                kind,
                symbol: inst.to_ascii_lowercase(),
            },
            payload: 0..frame.len(),
            wrapper_stream: None,
        }
    }

    fn rest(&self, path: &str, query: &str) -> Option<RestRequest> {
        if path != "/api/v5/market/books" {
            return None;
        }
        let (mut inst, mut sz) = (None, 400usize);
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("instId", v)) if !v.is_empty() => inst = Some(v.to_ascii_uppercase()),
                Some(("sz", v)) => sz = v.parse().unwrap_or(400).clamp(1, 5000),
                _ => {}
            }
        }
        Some(match inst {
            Some(symbol) => RestRequest::Depth { symbol, limit: sz },
            None => RestRequest::Reply(
                "200 OK",
                r#"{"code":"50014","msg":"Parameter instId can not be empty","data":[]}"#
                    .to_owned(),
            ),
        })
    }

    fn unknown_symbol(&self) -> (&'static str, String) {
        (
            "200 OK",
            r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#.to_owned(),
        )
    }

    fn no_snapshot(&self) -> (&'static str, String) {
        (
            "200 OK",
            r#"{"code":"50001","msg":"Service temporarily unavailable","data":[]}"#.to_owned(),
        )
    }

    fn snapshot_on_subscribe(&self) -> bool {
        true
    }

    fn corrupt_checksum(&self, frame: &str) -> Option<String> {
        let i = frame.find("\"checksum\":")? + 11;
        let j = i + frame[i..].find(|c: char| c != '-' && !c.is_ascii_digit())?;
        let c: i64 = frame[i..j].parse().ok()?;
        Some(format!("{}{}{}", &frame[..i], c ^ 1, &frame[j..]))
    }

    fn reorder_levels(&self, frame: &str) -> Option<String> {
        let mut bytes = frame.as_bytes().to_vec();
        let mut v = simd_json::to_owned_value(&mut bytes).ok()?;
        let entry = v.get_mut("data")?.as_array_mut()?.first_mut()?;
        let side = ["asks", "bids"].into_iter().find(|k| {
            entry
                .get(*k)
                .and_then(|s| s.as_array())
                .is_some_and(|a| a.len() > 1)
        })?;
        entry.get_mut(side)?.as_array_mut()?.reverse();
        Some(v.encode())
    }

    fn render(&self, op: &MarketOp<'_>, scale: Scale, _wrap: bool, out: &mut String) {
        let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
        let levels = |out: &mut String, lv: &[(i64, i64)]| {
            for (n, &(px, q)) in lv.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str("[\"");
                shortest(out, px, pd);
                out.push_str("\",\"");
                shortest(out, q, qd);
                out.push_str(if q == 0 {
                    "\",\"0\",\"0\"]"
                } else {
                    "\",\"0\",\"1\"]"
                });
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
                let _ = write!(
                    out,
                    r#"{{"arg":{{"channel":"trades","instId":"{symbol}"}},"data":[{{"instId":"{symbol}","tradeId":"{id}","px":""#
                );
                shortest(out, px, pd);
                out.push_str("\",\"sz\":\"");
                shortest(out, qty, qd);
                let side = if buyer_maker { "sell" } else { "buy" };
                let _ = write!(out, r#"","side":"{side}","ts":"{trade_ms}"}}]}}"#);
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
                    r#"{{"arg":{{"channel":"tickers","instId":"{symbol}"}},"data":[{{"instId":"{symbol}","askPx":""#
                );
                shortest(out, ask_px, pd);
                out.push_str("\",\"askSz\":\"");
                shortest(out, ask_qty, qd);
                out.push_str("\",\"bidPx\":\"");
                shortest(out, bid_px, pd);
                out.push_str("\",\"bidSz\":\"");
                shortest(out, bid_qty, qd);
                let _ = write!(out, r#"","ts":"{event_ms}"}}]}}"#);
            }
            MarketOp::Depth {
                symbol,
                last_id,
                prev_last_id,
                event_ms,
                bids,
                asks,
                ..
            } => {
                let _ = write!(
                    out,
                    r#"{{"arg":{{"channel":"books","instId":"{symbol}"}},"action":"update","data":[{{"asks":["#
                );
                levels(out, asks);
                out.push_str("],\"bids\":[");
                levels(out, bids);
                let _ = write!(
                    out,
                    r#"],"ts":"{event_ms}","checksum":0,"prevSeqId":{prev_last_id},"seqId":{last_id}}}]}}"#
                );
            }
            MarketOp::Snapshot {
                last_update_id,
                bids,
                asks,
                rest: true,
                ..
            } => {
                out.push_str(r#"{"code":"0","msg":"","data":[{"asks":["#);
                levels(out, asks);
                out.push_str("],\"bids\":[");
                levels(out, bids);
                let _ = write!(out, r#"],"ts":"0","seqId":{last_update_id}}}]}}"#);
            }
            MarketOp::Snapshot {
                symbol,
                last_update_id,
                bids,
                asks,
                ..
            } => {
                let _ = write!(
                    out,
                    r#"{{"arg":{{"channel":"books","instId":"{symbol}"}},"action":"snapshot","data":[{{"asks":["#
                );
                levels(out, asks);
                out.push_str("],\"bids\":[");
                levels(out, bids);
                let _ = write!(
                    out,
                    r#"],"ts":"0","checksum":0,"prevSeqId":-1,"seqId":{last_update_id}}}]}}"#
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_pings_and_routes() {
        let mut subs = Vec::new();
        let mut r = Vec::new();
        OKX_SERVER.on_client_text(
            &mut subs,
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"nope","instId":"X"}]}"#,
            &mut r,
        );
        assert_eq!(subs, ["books:BTC-USDT"]);
        assert_eq!(
            r[0],
            r#"{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}"#
        );
        assert!(r[1].starts_with(r#"{"event":"error""#));
        r.clear();
        OKX_SERVER.on_client_text(&mut subs, "ping", &mut r);
        assert_eq!(r, ["pong"]);
        let f = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","checksum":0}]}"#;
        let Routed::Stream { key, .. } = OKX_SERVER.route(f) else {
            panic!("not routed")
        };
        assert_eq!(OKX_SERVER.stream_key("books:BTC-USDT"), Some(key));
        let mut s = String::new();
        shortest(&mut s, 3_031_600_000_000, 8);
        assert_eq!(s, "30316");
    }
}
