//! Kraken v1 frames → events.

use simd_json::Node;

use super::Kraken;
use crate::event::{
    BookSide, Event, InstrumentId, Level, QuoteEvent, Scale, Side, TradeEvent, TradeKind,
};
use crate::instruments::{InstrumentSpec, NO_WIRE};
use crate::tape::{
    as_str, as_u64, close_book, decimal, decimal_text, elements, entries, learn_levels, BookFrame,
    Raw,
};
use crate::venue::{FrameKind, ParseError};

/// Kraken timestamps: decimal seconds (`"1618678123.481570"`) → ns, exactly.
#[inline]
fn seconds_ns(v: Raw<'_, '_>, field: &'static str) -> Result<i64, ParseError> {
    decimal_text(as_str(v, field)?, field, 9)
}

/// The book objects of a data frame (between the channel id and the channel name).
fn book_objects<'a, 't, 'i>(items: &'a [Raw<'t, 'i>]) -> impl Iterator<Item = Raw<'t, 'i>> + 'a {
    items[1..items.len() - 2].iter().copied()
}

/// Decimals of a book frame's level strings.
fn book_wire(items: &[Raw<'_, '_>]) -> Scale {
    let mut w = NO_WIRE;
    for obj in book_objects(items) {
        for (_, levels) in entries(obj).into_iter().flatten() {
            learn_levels(&mut w, levels);
        }
    }
    w
}

impl Kraken {
    /// A v1 event, or any v2 frame.
    fn object(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let v2 = entries(nodes)
            .into_iter()
            .flatten()
            .any(|(k, _)| k == "channel" || k == "method");
        if !v2 {
            return Ok(event(nodes));
        }
        self.numbers.index(nodes);
        self.v2(nodes, recv_ns, out)
    }

    pub(super) fn dispatch(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        match nodes.first() {
            Some(Node::Object { .. }) => self.object(nodes, recv_ns, out),
            Some(Node::Array { .. }) => {
                // [channelID, payload.., channelName, pair]: at most 5 items.
                let mut items: [Raw<'_, '_>; 5] = [&[]; 5];
                let mut n = 0;
                for e in elements(nodes).into_iter().flatten() {
                    if n == items.len() {
                        return Ok(FrameKind::Unknown);
                    }
                    items[n] = e;
                    n += 1;
                }
                if n < 4 {
                    return Ok(FrameKind::Unknown);
                }
                let items = &items[..n];
                let (Ok(channel), Ok(pair)) = (
                    as_str(items[n - 2], "channelName"),
                    as_str(items[n - 1], "pair"),
                ) else {
                    return Ok(FrameKind::Unknown);
                };
                if let Some(depth) = channel.strip_prefix("book-") {
                    let depth = depth
                        .parse::<u32>()
                        .map_err(|_| ParseError::wrong_type("channelName"))?;
                    return self.book(items, pair, depth, recv_ns, out);
                }
                match channel {
                    "trade" => self.trades(items[1], pair, recv_ns, out),
                    "spread" => self.spread(items[1], pair, recv_ns, out),
                    c if c == "ticker" || c.starts_with("ohlc") => Ok(FrameKind::Ignored),
                    _ => Ok(FrameKind::Unknown),
                }
            }
            _ => Ok(FrameKind::Unknown),
        }
    }

    fn resolve(
        &mut self,
        pair: &str,
        wire: impl FnOnce() -> Scale,
        out: &mut Vec<Event>,
    ) -> Option<(InstrumentId, InstrumentSpec)> {
        self.instruments
            .resolve_learning(pair.as_bytes(), out, wire)
    }

    fn book(
        &mut self,
        items: &[Raw<'_, '_>],
        pair: &str,
        depth: u32,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let wire = || book_wire(items);
        let Some((inst, spec)) = self.resolve(pair, wire, out) else {
            return Ok(FrameKind::Ignored);
        };
        let mut snapshot = false;
        let mut checksum = None;
        let mut ts_ns = 0i64;
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        for obj in book_objects(items) {
            let Some(fields) = entries(obj) else {
                return Err(ParseError::wrong_type("book"));
            };
            for (key, v) in fields {
                let side = match key {
                    "as" | "a" => BookSide::Ask,
                    "bs" | "b" => BookSide::Bid,
                    "c" => {
                        let c = as_str(v, "c")?;
                        checksum = Some(c.parse::<u32>().map_err(|_| ParseError::wrong_type("c"))?);
                        continue;
                    }
                    _ => continue,
                };
                snapshot |= key.len() == 2;
                let Some(levels) = elements(v) else {
                    return Err(ParseError::wrong_type(key_name(key)));
                };
                for lv in levels {
                    let mut it =
                        elements(lv).ok_or_else(|| ParseError::wrong_type(key_name(key)))?;
                    let (px, qty, ts) = (it.next(), it.next(), it.next());
                    let px = decimal(px, "price", pd)?;
                    let qty = decimal(qty, "volume", qd)?;
                    if let Some(ts) = ts {
                        ts_ns = ts_ns.max(seconds_ns(ts, "timestamp")?);
                    }
                    out.push(Event::Level(Level { side, px, qty }));
                }
            }
        }
        let frame = BookFrame {
            inst,
            snapshot,
            seq: 0,
            prev_seq: 0,
            ts_ns: if ts_ns > 0 { ts_ns } else { recv_ns },
            recv_ns,
            checksum,
            max_depth: depth,
            wire: if snapshot { book_wire(items) } else { NO_WIRE },
            from_rest: false,
        };
        close_book(out, header, &frame)
    }

    fn trades(
        &mut self,
        list: Raw<'_, '_>,
        pair: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // A trade is `[price, volume, ..]`, as a level is.
        let wire = || {
            let mut w = NO_WIRE;
            learn_levels(&mut w, list);
            w
        };
        let Some((inst, spec)) = self.resolve(pair, wire, out) else {
            return Ok(FrameKind::Ignored);
        };
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        for t in elements(list).ok_or_else(|| ParseError::wrong_type("trade"))? {
            let mut it = elements(t).ok_or_else(|| ParseError::wrong_type("trade"))?;
            let px = decimal(it.next(), "price", pd)?;
            let qty = decimal(it.next(), "volume", qd)?;
            let ts_ns = seconds_ns(
                it.next().ok_or_else(|| ParseError::missing("time"))?,
                "time",
            )?;
            let side = match as_str(
                it.next().ok_or_else(|| ParseError::missing("side"))?,
                "side",
            )? {
                "s" => Side::Sell,
                _ => Side::Buy,
            };
            out.push(Event::Trade(TradeEvent {
                inst,
                id: 0,
                ts_ns,
                recv_ns,
                px,
                qty,
                side,
                kind: TradeKind::Trade,
            }));
        }
        Ok(FrameKind::Trade)
    }

    fn spread(
        &mut self,
        v: Raw<'_, '_>,
        pair: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some((inst, spec)) = self.resolve(pair, || NO_WIRE, out) else {
            return Ok(FrameKind::Ignored);
        };
        let mut it = elements(v).ok_or_else(|| ParseError::wrong_type("spread"))?;
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        let bid_px = decimal(it.next(), "bid", pd)?;
        let ask_px = decimal(it.next(), "ask", pd)?;
        let ts_ns = seconds_ns(
            it.next().ok_or_else(|| ParseError::missing("timestamp"))?,
            "timestamp",
        )?;
        let bid_qty = decimal(it.next(), "bidVolume", qd)?;
        let ask_qty = decimal(it.next(), "askVolume", qd)?;
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

fn key_name(key: &str) -> &'static str {
    match key {
        "as" => "as",
        "bs" => "bs",
        "a" => "a",
        _ => "b",
    }
}

/// An event object: heartbeats, status and acks are control frames; a
/// `subscriptionStatus` with `status: "error"` is a refused request.
pub(super) fn event(nodes: &[Node<'_>]) -> FrameKind {
    let (mut kind, mut status, mut reqid) = (None, None, 0u64);
    for (k, v) in entries(nodes).into_iter().flatten() {
        match k {
            "event" => kind = as_str(v, "event").ok(),
            "status" => status = as_str(v, "status").ok(),
            "reqid" => reqid = as_u64(v, "reqid").unwrap_or(0),
            _ => {}
        }
    }
    match (kind, status) {
        (Some("subscriptionStatus"), Some("error")) => FrameKind::Rejected(reqid),
        (Some("heartbeat" | "systemStatus" | "subscriptionStatus" | "pong"), _) => {
            FrameKind::Control
        }
        _ => FrameKind::Unknown,
    }
}
