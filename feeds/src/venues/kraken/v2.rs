//! Kraken WebSocket v2 frames: `{"channel":"book","type":"snapshot"|"update",
//! "data":[{"symbol","bids":[{"price","qty"}],"asks":[..],"checksum",
//! "timestamp"}]}`, `trade` (`trade_id`, RFC 3339 `timestamp`), `heartbeat`,
//! `status`, and method replies (`success: false` → a refused request).
//! Prices and sizes are JSON numbers sent at full precision: they are read
//! exactly from their text ([`crate::tape::NumberTexts`]), which also gives
//! the pair's precision for the checksum (the same algorithm as v1, over the
//! top 10 levels, in snapshots and updates).

use simd_json::{Node, StaticNode};

use super::subscription::BOOK_DEPTH;
use super::Kraken;
use crate::event::{BookSide, Event, Level, Scale, Side, TradeEvent, TradeKind};
use crate::fixed;
use crate::instruments::NO_WIRE;
use crate::tape::{as_str, as_u64, close_book, decimal_text, elements, entries, BookFrame, Raw};
use crate::venue::{FrameKind, ParseError};

/// The fields of one `data` entry.
#[derive(Default, Clone, Copy)]
struct Entry<'t, 'i> {
    symbol: Option<&'i str>,
    bids: Option<Raw<'t, 'i>>,
    asks: Option<Raw<'t, 'i>>,
    checksum: Option<Raw<'t, 'i>>,
    timestamp: Option<&'i str>,
    price: Option<Raw<'t, 'i>>,
    qty: Option<Raw<'t, 'i>>,
    side: Option<&'i str>,
    trade_id: Option<Raw<'t, 'i>>,
}

fn scan<'t, 'i>(v: Raw<'t, 'i>) -> Option<Entry<'t, 'i>> {
    let mut e = Entry::default();
    for (k, v) in entries(v)? {
        match k {
            "symbol" => e.symbol = as_str(v, "symbol").ok(),
            "bids" => e.bids = Some(v),
            "asks" => e.asks = Some(v),
            "checksum" => e.checksum = Some(v),
            "timestamp" => e.timestamp = as_str(v, "timestamp").ok(),
            "price" => e.price = Some(v),
            "qty" => e.qty = Some(v),
            "side" => e.side = as_str(v, "side").ok(),
            "trade_id" => e.trade_id = Some(v),
            _ => {}
        }
    }
    Some(e)
}

impl Kraken {
    /// The exact text of a number value of this frame.
    fn number<'a>(
        &'a self,
        v: Option<Raw<'a, 'a>>,
        field: &'static str,
    ) -> Result<&'a str, ParseError> {
        let v = v.ok_or_else(|| ParseError::missing(field))?;
        match v.first() {
            Some(Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))) => {
                self.numbers
                    .text(v)
                    .ok_or_else(|| ParseError::wrong_type(field))
            }
            // Strings are accepted too (exact by construction).
            Some(Node::String(s)) => Ok(s),
            _ => Err(ParseError::wrong_type(field)),
        }
    }

    fn decimal(
        &self,
        v: Option<Raw<'_, '_>>,
        field: &'static str,
        decimals: u8,
    ) -> Result<i64, ParseError> {
        decimal_text(self.number(v, field)?, field, decimals)
    }

    /// Decimals of the `price`/`qty` texts of level objects.
    fn levels_wire(&self, e: &Entry<'_, '_>) -> Scale {
        let mut w = NO_WIRE;
        for side in [e.asks, e.bids].into_iter().flatten() {
            for lv in elements(side).into_iter().flatten() {
                let lv = scan(lv).unwrap_or_default();
                if let (Ok(p), Ok(q)) = (self.number(lv.price, "price"), self.number(lv.qty, "qty"))
                {
                    w.price_decimals = w.price_decimals.max(fixed::decimals(p.as_bytes()));
                    w.qty_decimals = w.qty_decimals.max(fixed::decimals(q.as_bytes()));
                }
            }
        }
        w
    }

    pub(super) fn v2(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (mut channel, mut kind, mut data, mut method, mut success, mut req_id) =
            (None, None, None, None, None, 0u64);
        for (k, v) in entries(nodes).into_iter().flatten() {
            match k {
                "channel" => channel = as_str(v, "channel").ok(),
                "type" => kind = as_str(v, "type").ok(),
                "data" => data = Some(v),
                "method" => method = as_str(v, "method").ok(),
                "success" => {
                    success = Some(matches!(
                        v.first(),
                        Some(Node::Static(StaticNode::Bool(true)))
                    ));
                }
                "req_id" => req_id = as_u64(v, "req_id").unwrap_or(0),
                _ => {}
            }
        }
        if method.is_some() {
            return Ok(if success == Some(false) {
                FrameKind::Rejected(req_id)
            } else {
                FrameKind::Control
            });
        }
        let items = data.and_then(elements);
        match channel {
            Some("book") => {
                let Some(e) = items.into_iter().flatten().find_map(scan) else {
                    return Err(ParseError::missing("data"));
                };
                self.book_v2(&e, kind == Some("snapshot"), recv_ns, out)
            }
            Some("trade") => {
                let mut n = 0;
                for e in items.into_iter().flatten().filter_map(scan) {
                    if self.trade_v2(&e, recv_ns, out)? == FrameKind::Ignored {
                        return Ok(FrameKind::Ignored);
                    }
                    n += 1;
                }
                Ok(if n > 0 {
                    FrameKind::Trade
                } else {
                    FrameKind::Ignored
                })
            }
            Some("heartbeat" | "status") => Ok(FrameKind::Control),
            Some("ticker" | "ohlc" | "instrument" | "level3") => Ok(FrameKind::Ignored),
            _ => Ok(FrameKind::Unknown),
        }
    }

    fn book_v2(
        &mut self,
        e: &Entry<'_, '_>,
        snapshot: bool,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let symbol = e.symbol.ok_or_else(|| ParseError::missing("symbol"))?;
        let wire = self.levels_wire(e);
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(symbol.as_bytes(), out, || wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        let checksum = match e.checksum {
            Some(v) => Some(
                u32::try_from(as_u64(v, "checksum")?)
                    .map_err(|_| ParseError::wrong_type("checksum"))?,
            ),
            None => None,
        };
        let ts_ns = match e.timestamp {
            Some(t) => crate::time::parse_rfc3339_ns(t.as_bytes())
                .ok_or_else(|| ParseError::wrong_type("timestamp"))?,
            None => recv_ns,
        };
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        for (v, side, field) in [
            (e.bids, BookSide::Bid, "bids"),
            (e.asks, BookSide::Ask, "asks"),
        ] {
            let Some(v) = v else { continue };
            for lv in elements(v).ok_or_else(|| ParseError::wrong_type(field))? {
                let lv = scan(lv).ok_or_else(|| ParseError::wrong_type(field))?;
                let px = self.decimal(lv.price, "price", pd)?;
                let qty = self.decimal(lv.qty, "qty", qd)?;
                out.push(Event::Level(Level { side, px, qty }));
            }
        }
        let frame = BookFrame {
            inst,
            snapshot,
            seq: 0,
            prev_seq: 0,
            ts_ns,
            recv_ns,
            checksum,
            // v2 frames do not name the depth: the one this adapter subscribes.
            max_depth: BOOK_DEPTH,
            wire,
            from_rest: false,
        };
        close_book(out, header, &frame)
    }

    fn trade_v2(
        &mut self,
        e: &Entry<'_, '_>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let symbol = e.symbol.ok_or_else(|| ParseError::missing("symbol"))?;
        let mut wire = NO_WIRE;
        if let (Ok(p), Ok(q)) = (self.number(e.price, "price"), self.number(e.qty, "qty")) {
            wire.price_decimals = fixed::decimals(p.as_bytes());
            wire.qty_decimals = fixed::decimals(q.as_bytes());
        }
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(symbol.as_bytes(), out, || wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        let id = match e.trade_id {
            Some(v) => as_u64(v, "trade_id")?,
            None => 0,
        };
        let ts_ns = match e.timestamp {
            Some(t) => crate::time::parse_rfc3339_ns(t.as_bytes())
                .ok_or_else(|| ParseError::wrong_type("timestamp"))?,
            None => recv_ns,
        };
        out.push(Event::Trade(TradeEvent {
            inst,
            id,
            ts_ns,
            recv_ns,
            px: self.decimal(e.price, "price", spec.scale.price_decimals)?,
            qty: self.decimal(e.qty, "qty", spec.scale.qty_decimals)?,
            side: if e.side == Some("sell") {
                Side::Sell
            } else {
                Side::Buy
            },
            kind: TradeKind::Trade,
        }));
        Ok(FrameKind::Trade)
    }
}
