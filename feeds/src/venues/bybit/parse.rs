//! Bybit v5 frames → events.

use simd_json::{Node, StaticNode};

use super::{Bybit, TickerState};
use crate::event::{
    BookSide, DepthHeader, Event, Level, QuoteEvent, Scale, Side, TradeEvent, TradeKind,
};
use crate::fixed;
use crate::instruments::NO_WIRE;
use crate::tape::{
    as_bool, as_str, close_book, decimal_text, elements, entries, for_each_level, learn_levels,
    trade_id, BookFrame, Raw,
};
use crate::venue::{exchange_ts_ns, FrameKind, ParseError};

/// The fields of a book body (`data` of a stream frame, `result` of REST).
#[derive(Default, Clone, Copy)]
struct BookBody<'t, 'i> {
    symbol: Option<&'i str>,
    bids: Option<Raw<'t, 'i>>,
    asks: Option<Raw<'t, 'i>>,
    u: Option<Raw<'t, 'i>>,
    ts: Option<Raw<'t, 'i>>,
    cts: Option<Raw<'t, 'i>>,
}

impl<'t, 'i> BookBody<'t, 'i> {
    fn scan(v: Raw<'t, 'i>, field: &'static str) -> Result<Self, ParseError> {
        let mut b = Self::default();
        for (k, v) in entries(v).ok_or_else(|| ParseError::wrong_type(field))? {
            match k {
                "s" => b.symbol = Some(as_str(v, "s")?),
                "b" => b.bids = Some(v),
                "a" => b.asks = Some(v),
                "u" => b.u = Some(v),
                "ts" => b.ts = Some(v),
                "cts" => b.cts = Some(v),
                _ => {}
            }
        }
        Ok(b)
    }

    fn wire(&self) -> Scale {
        let mut w = NO_WIRE;
        for side in [self.bids, self.asks].into_iter().flatten() {
            learn_levels(&mut w, side);
        }
        w
    }
}

/// How a book body is read.
#[derive(Clone, Copy)]
struct BookKind {
    snapshot: bool,
    /// Subscribed depth (the snapshot's `max_depth`).
    depth: u32,
    from_rest: bool,
}

/// An integer sent as a JSON number or a decimal string.
fn int(v: Raw<'_, '_>, field: &'static str) -> Result<i64, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::I64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::U64(n))) => {
            i64::try_from(*n).map_err(|_| ParseError::wrong_type(field))
        }
        Some(Node::String(s)) => s.parse().map_err(|_| ParseError::wrong_type(field)),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// An update id: a non-negative integer.
fn update_id(v: Option<Raw<'_, '_>>, field: &'static str) -> Result<u64, ParseError> {
    let n = int(v.ok_or_else(|| ParseError::missing(field))?, field)?;
    u64::try_from(n).map_err(|_| ParseError::wrong_type(field))
}

/// The first exchange time present among `candidates` (ms), else `recv_ns`.
fn exchange_time(
    candidates: &[(Option<Raw<'_, '_>>, &'static str)],
    recv_ns: i64,
) -> Result<i64, ParseError> {
    for &(v, field) in candidates {
        if let Some(v) = v {
            return Ok(exchange_ts_ns(int(v, field)?));
        }
    }
    Ok(recv_ns)
}

/// A string field; `""` (Bybit's "not sent") as absent.
fn opt_str<'i>(v: Option<Raw<'_, 'i>>, field: &'static str) -> Result<Option<&'i str>, ParseError> {
    match v {
        None => Ok(None),
        Some(v) => as_str(v, field).map(|s| (!s.is_empty()).then_some(s)),
    }
}

impl Bybit {
    pub(super) fn dispatch(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some(fields) = entries(nodes) else {
            return Ok(FrameKind::Unknown);
        };
        let (mut topic, mut ty, mut ts, mut cts, mut data) = (None, None, None, None, None);
        let (mut op, mut success, mut req_id) = (None, None, None);
        for (k, v) in fields {
            match k {
                "topic" => topic = Some(as_str(v, "topic")?),
                "type" => ty = Some(as_str(v, "type")?),
                "ts" => ts = Some(v),
                "cts" => cts = Some(v),
                "data" => data = Some(v),
                "op" => op = as_str(v, "op").ok(),
                "success" => success = as_bool(v, "success").ok(),
                "req_id" => req_id = Some(v),
                _ => {}
            }
        }
        let Some(topic) = topic else {
            // Acks and pongs: `{"success":..,"ret_msg":..,"op":..}`, linear
            // pongs `{"op":"pong","args":[..]}`.
            return Ok(match (op, success) {
                (_, Some(false)) => FrameKind::Rejected(
                    req_id
                        .and_then(|v| int(v, "req_id").ok())
                        .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
                ),
                (Some(_), _) => FrameKind::Control,
                (None, _) => FrameKind::Unknown,
            });
        };
        let data = data.ok_or_else(|| ParseError::missing("data"))?;
        let (channel, rest) = topic.split_once('.').unwrap_or((topic, ""));
        match channel {
            "orderbook" => {
                let Some((depth, symbol)) = rest.split_once('.') else {
                    return Ok(FrameKind::Ignored);
                };
                let Ok(depth) = depth.parse::<u32>() else {
                    return Ok(FrameKind::Ignored);
                };
                // `orderbook.1` is snapshot-only: every push is the full top.
                let snapshot = match ty {
                    _ if depth == 1 => true,
                    Some("snapshot") => true,
                    Some("delta") => false,
                    Some(_) => return Ok(FrameKind::Ignored),
                    None => return Err(ParseError::missing("type")),
                };
                let mut body = BookBody::scan(data, "data")?;
                body.ts = ts;
                body.cts = cts;
                let kind = BookKind {
                    snapshot,
                    depth,
                    from_rest: false,
                };
                self.book(&body, symbol, kind, recv_ns, out)
            }
            "publicTrade" => self.trades(data, rest, ts, recv_ns, out),
            "tickers" => self.ticker(data, rest, ts, recv_ns, out),
            _ => Ok(FrameKind::Ignored),
        }
    }

    /// A REST orderbook body `{"retCode":0,"result":{s,b,a,u,ts,..}}` for `symbol`.
    pub(super) fn rest_orderbook(
        &mut self,
        nodes: &[Node<'_>],
        symbol: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (mut code, mut result) = (None, None);
        for (k, v) in entries(nodes).into_iter().flatten() {
            match k {
                "retCode" => code = int(v, "retCode").ok(),
                "result" => result = Some(v),
                _ => {}
            }
        }
        let (Some(0), Some(result)) = (code, result) else {
            return Err(ParseError::missing("result"));
        };
        let body = BookBody::scan(result, "result")?;
        if body.u.is_none() {
            return Err(ParseError::missing("result"));
        }
        let kind = BookKind {
            snapshot: true,
            depth: super::DEPTH,
            from_rest: true,
        };
        self.book(&body, symbol, kind, recv_ns, out)
    }

    fn book(
        &mut self,
        body: &BookBody<'_, '_>,
        topic_symbol: &str,
        kind: BookKind,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let symbol = body.symbol.unwrap_or(topic_symbol);
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(symbol.as_bytes(), out, || body.wire())
        else {
            return Ok(FrameKind::Ignored);
        };
        let u = update_id(body.u, "u")?;
        let ts_ns = exchange_time(&[(body.cts, "cts"), (body.ts, "ts")], recv_ns)?;
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        for (v, side, field) in [
            (body.bids, BookSide::Bid, "b"),
            (body.asks, BookSide::Ask, "a"),
        ] {
            let Some(v) = v else { continue };
            for_each_level(v, field, |px, qty| {
                out.push(Event::Level(Level {
                    side,
                    px: decimal_text(px, field, pd)?,
                    qty: decimal_text(qty, field, qd)?,
                }));
                Ok(())
            })?;
        }
        let frame = BookFrame {
            inst,
            snapshot: kind.snapshot,
            seq: u,
            // "u must be the previous u + 1" as a linked chain.
            prev_seq: if kind.snapshot {
                0
            } else {
                u.saturating_sub(1)
            },
            ts_ns,
            recv_ns,
            checksum: None,
            max_depth: kind.depth,
            wire: if kind.snapshot { body.wire() } else { NO_WIRE },
            from_rest: kind.from_rest,
        };
        let res = close_book(out, header, &frame)?;
        if kind.depth == 1 {
            // An empty unsequenced update: book signals run on the new top.
            out.push(Event::Depth(DepthHeader {
                inst,
                first_id: 0,
                last_id: 0,
                prev_last_id: 0,
                ts_ns,
                recv_ns,
                levels: 0,
                checksum: None,
            }));
        }
        Ok(res)
    }

    fn trades(
        &mut self,
        data: Raw<'_, '_>,
        topic_symbol: &str,
        ts: Option<Raw<'_, '_>>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let mut n = 0usize;
        for e in elements(data).ok_or_else(|| ParseError::wrong_type("data"))? {
            let (mut t, mut s, mut side, mut v, mut p, mut i) =
                (None, None, None, None, None, None);
            for (k, val) in entries(e).ok_or_else(|| ParseError::wrong_type("data"))? {
                match k {
                    "T" => t = Some(val),
                    "s" => s = Some(as_str(val, "s")?),
                    "S" => side = Some(as_str(val, "S")?),
                    "v" => v = Some(as_str(val, "v")?),
                    "p" => p = Some(as_str(val, "p")?),
                    "i" => i = Some(val),
                    _ => {}
                }
            }
            let (px, qty) = (
                p.ok_or_else(|| ParseError::missing("p"))?,
                v.ok_or_else(|| ParseError::missing("v"))?,
            );
            let wire = || Scale {
                price_decimals: fixed::decimals(px.as_bytes()),
                qty_decimals: fixed::decimals(qty.as_bytes()),
            };
            let symbol = s.unwrap_or(topic_symbol);
            let Some((inst, spec)) =
                self.instruments
                    .resolve_learning(symbol.as_bytes(), out, wire)
            else {
                return Ok(FrameKind::Ignored);
            };
            let side = match side {
                Some("Buy") => Side::Buy,
                Some("Sell") => Side::Sell,
                Some(_) => return Err(ParseError::wrong_type("S")),
                None => return Err(ParseError::missing("S")),
            };
            out.push(Event::Trade(TradeEvent {
                inst,
                id: trade_id(i),
                ts_ns: exchange_time(&[(t, "T"), (ts, "ts")], recv_ns)?,
                recv_ns,
                px: decimal_text(px, "p", spec.scale.price_decimals)?,
                qty: decimal_text(qty, "v", spec.scale.qty_decimals)?,
                side,
                kind: TradeKind::Trade,
            }));
            n += 1;
        }
        Ok(if n > 0 {
            FrameKind::Trade
        } else {
            FrameKind::Ignored
        })
    }

    fn ticker(
        &mut self,
        data: Raw<'_, '_>,
        topic_symbol: &str,
        ts: Option<Raw<'_, '_>>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let mut symbol = None;
        let mut raw: [Option<Raw<'_, '_>>; 4] = [None; 4];
        for (k, v) in entries(data).ok_or_else(|| ParseError::wrong_type("data"))? {
            let slot = match k {
                "symbol" => {
                    symbol = Some(as_str(v, "symbol")?);
                    continue;
                }
                "bid1Price" => 0,
                "bid1Size" => 1,
                "ask1Price" => 2,
                "ask1Size" => 3,
                _ => continue,
            };
            raw[slot] = Some(v);
        }
        const NAMES: [&str; 4] = ["bid1Price", "bid1Size", "ask1Price", "ask1Size"];
        let mut text: [Option<&str>; 4] = [None; 4];
        for (i, v) in raw.iter().enumerate() {
            text[i] = opt_str(*v, NAMES[i])?;
        }
        if text.iter().all(Option::is_none) {
            // Spot tickers and deltas without a BBO change.
            return Ok(FrameKind::Ignored);
        }
        let wire = || {
            let d = |t: Option<&str>| t.map_or(0, |s| fixed::decimals(s.as_bytes()));
            Scale {
                price_decimals: d(text[0]).max(d(text[2])),
                qty_decimals: d(text[1]).max(d(text[3])),
            }
        };
        let symbol = symbol.unwrap_or(topic_symbol);
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(symbol.as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        let mut parsed = [None; 4];
        for (i, t) in text.iter().enumerate() {
            if let Some(t) = t {
                let d = if i % 2 == 0 { pd } else { qd };
                parsed[i] = Some(decimal_text(t, NAMES[i], d)?);
            }
        }
        let ts_ns = exchange_time(&[(ts, "ts")], recv_ns)?;
        let state = match self.tickers.iter().position(|s| s.inst == inst) {
            Some(i) => &mut self.tickers[i],
            None => {
                self.tickers.push(TickerState {
                    inst,
                    fields: [None; 4],
                });
                let last = self.tickers.len() - 1;
                &mut self.tickers[last]
            }
        };
        for (slot, v) in state.fields.iter_mut().zip(parsed) {
            if v.is_some() {
                *slot = v;
            }
        }
        let [Some(bid_px), Some(bid_qty), Some(ask_px), Some(ask_qty)] = state.fields else {
            return Ok(FrameKind::Ignored);
        };
        out.push(Event::Quote(QuoteEvent {
            inst,
            update_id: 0,
            ts_ns,
            recv_ns,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
        }));
        Ok(FrameKind::Quote)
    }
}
