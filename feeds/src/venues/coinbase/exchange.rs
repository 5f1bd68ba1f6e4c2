//! Coinbase Exchange feed frames → events: `type`-tagged objects.
//! `snapshot` (`bids`/`asks` of `[price, size]`) and `l2update`
//! (`changes` of `[side, price, size]`, side `buy`/`sell`) of the `level2`,
//! `level2_batch` and `level2_50` channels; `match`/`last_match`; `ticker`;
//! `heartbeat` (`last_trade_id`, see the loss rules in `mod.rs`);
//! `subscriptions`; `error`. Full-channel messages (`received`, `open`,
//! `done`, `change`, `activate`) and `status` are known and ignored.

use simd_json::{Node, StaticNode};

use super::advanced::maker_side;
use super::Coinbase;
use crate::event::{BookSide, Event, Level, QuoteEvent, Scale, TradeEvent, TradeKind};
use crate::instruments::NO_WIRE;
use crate::tape::{
    as_str, close_book, decimal_str, elements, entries, for_each_level, learn_levels, learn_pair,
    BookFrame, Raw,
};
use crate::time::parse_rfc3339_ns;
use crate::venue::{FrameKind, ParseError};

/// The top-level fields of a frame.
#[derive(Default, Clone, Copy)]
struct Msg<'t, 'i> {
    ty: Option<&'i str>,
    product: Option<&'i str>,
    bids: Option<Raw<'t, 'i>>,
    asks: Option<Raw<'t, 'i>>,
    changes: Option<Raw<'t, 'i>>,
    time: Option<&'i str>,
    trade_id: Option<Raw<'t, 'i>>,
    last_trade_id: Option<Raw<'t, 'i>>,
    price: Option<&'i str>,
    size: Option<&'i str>,
    side: Option<&'i str>,
    bid: Option<&'i str>,
    bid_qty: Option<&'i str>,
    ask: Option<&'i str>,
    ask_qty: Option<&'i str>,
}

impl<'t, 'i> Msg<'t, 'i> {
    fn scan(nodes: Raw<'t, 'i>) -> Self {
        let mut m = Self::default();
        for (k, v) in entries(nodes).into_iter().flatten() {
            let s = || as_str(v, "field").ok();
            match k {
                "type" => m.ty = s(),
                "product_id" => m.product = s(),
                "bids" => m.bids = Some(v),
                "asks" => m.asks = Some(v),
                "changes" => m.changes = Some(v),
                "time" => m.time = s(),
                "trade_id" => m.trade_id = Some(v),
                "last_trade_id" => m.last_trade_id = Some(v),
                "price" => m.price = s(),
                "size" => m.size = s(),
                "side" => m.side = s(),
                "best_bid" => m.bid = s(),
                "best_bid_size" => m.bid_qty = s(),
                "best_ask" => m.ask = s(),
                "best_ask_size" => m.ask_qty = s(),
                _ => {}
            }
        }
        m
    }

    fn ts(&self, recv_ns: i64) -> i64 {
        self.time
            .and_then(|t| parse_rfc3339_ns(t.as_bytes()))
            .unwrap_or(recv_ns)
    }
}

/// A trade id: a JSON number (or a decimal string).
fn trade_id(v: Option<Raw<'_, '_>>, field: &'static str) -> Result<u64, ParseError> {
    match v.and_then(<[Node<'_>]>::first) {
        Some(Node::Static(StaticNode::U64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::I64(n))) if *n >= 0 => Ok(n.unsigned_abs()),
        Some(Node::String(s)) => s.parse().map_err(|_| ParseError::wrong_type(field)),
        None => Err(ParseError::missing(field)),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// Decimals of a `changes` array (first sight only).
fn changes_wire(changes: Raw<'_, '_>) -> Scale {
    let mut w = NO_WIRE;
    for c in elements(changes).into_iter().flatten() {
        let mut it = elements(c).into_iter().flatten().skip(1);
        let mut next = || match it.next().and_then(<[Node<'_>]>::first) {
            Some(Node::String(s)) => Some(*s),
            _ => None,
        };
        let (px, qty) = (next(), next());
        learn_pair(&mut w, px, qty);
    }
    w
}

impl Coinbase {
    pub(super) fn exchange(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let m = Msg::scan(nodes);
        let Some(ty) = m.ty else {
            return Ok(FrameKind::Unknown);
        };
        match ty {
            "snapshot" => self.ex_snapshot(&m, recv_ns, out),
            "l2update" => self.ex_update(&m, recv_ns, out),
            "match" | "last_match" => self.ex_trade(&m, ty == "last_match", recv_ns, out),
            "ticker" => self.ex_ticker(&m, recv_ns, out),
            "heartbeat" => self.ex_heartbeat(&m, out),
            "subscriptions" => Ok(FrameKind::Control),
            "error" => Ok(FrameKind::Rejected(0)),
            "received" | "open" | "done" | "change" | "activate" | "status" => {
                Ok(FrameKind::Ignored)
            }
            _ => Ok(FrameKind::Unknown),
        }
    }

    fn ex_snapshot(
        &mut self,
        m: &Msg<'_, '_>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let product = m.product.ok_or_else(|| ParseError::missing("product_id"))?;
        let wire = || {
            let mut w = NO_WIRE;
            for side in [m.bids, m.asks].into_iter().flatten() {
                learn_levels(&mut w, side);
            }
            w
        };
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(product.as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        self.current = Some(inst);
        self.carries(inst);
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        for (v, side, field) in [
            (m.bids, BookSide::Bid, "bids"),
            (m.asks, BookSide::Ask, "asks"),
        ] {
            let v = v.ok_or_else(|| ParseError::missing(field))?;
            for_each_level(v, field, |px, qty| {
                out.push(Event::Level(Level {
                    side,
                    px: decimal_str(Some(px), field, pd)?,
                    qty: decimal_str(Some(qty), field, qd)?,
                }));
                Ok(())
            })?;
        }
        let frame = BookFrame {
            inst,
            snapshot: true,
            seq: 0,
            prev_seq: 0,
            ts_ns: recv_ns,
            recv_ns,
            checksum: None,
            max_depth: 0,
            wire: NO_WIRE,
            from_rest: false,
        };
        close_book(out, header, &frame)
    }

    fn ex_update(
        &mut self,
        m: &Msg<'_, '_>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let product = m.product.ok_or_else(|| ParseError::missing("product_id"))?;
        let changes = m.changes.ok_or_else(|| ParseError::missing("changes"))?;
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(product.as_bytes(), out, || changes_wire(changes))
        else {
            return Ok(FrameKind::Ignored);
        };
        self.current = Some(inst);
        self.carries(inst);
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        for c in elements(changes).ok_or_else(|| ParseError::wrong_type("changes"))? {
            let mut it = elements(c).ok_or_else(|| ParseError::wrong_type("changes"))?;
            let mut next = || match it.next().and_then(<[Node<'_>]>::first) {
                Some(Node::String(s)) => Ok(*s),
                _ => Err(ParseError::wrong_type("changes")),
            };
            let side = match next()? {
                "buy" => BookSide::Bid,
                "sell" => BookSide::Ask,
                _ => return Err(ParseError::wrong_type("changes")),
            };
            let (px, qty) = (next()?, next()?);
            out.push(Event::Level(Level {
                side,
                px: decimal_str(Some(px), "changes", pd)?,
                qty: decimal_str(Some(qty), "changes", qd)?,
            }));
        }
        let frame = BookFrame {
            inst,
            snapshot: false,
            seq: 0,
            prev_seq: 0,
            ts_ns: m.ts(recv_ns),
            recv_ns,
            checksum: None,
            max_depth: 0,
            wire: NO_WIRE,
            from_rest: false,
        };
        close_book(out, header, &frame)
    }

    fn ex_trade(
        &mut self,
        m: &Msg<'_, '_>,
        last_match: bool,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let product = m.product.ok_or_else(|| ParseError::missing("product_id"))?;
        let wire = || {
            let mut w = NO_WIRE;
            learn_pair(&mut w, m.price, m.size);
            w
        };
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(product.as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        let id = trade_id(m.trade_id, "trade_id")?;
        let trade = TradeEvent {
            inst,
            id,
            ts_ns: m.ts(recv_ns),
            recv_ns,
            px: decimal_str(m.price, "price", spec.scale.price_decimals)?,
            qty: decimal_str(m.size, "size", spec.scale.qty_decimals)?,
            side: maker_side(m.side)?,
            kind: TradeKind::Trade,
        };
        let w = self.watch(inst);
        if w.last != 0 && id <= w.last {
            // Seen before (a resubscribe's `last_match`, a replayed message).
            return Ok(FrameKind::Ignored);
        }
        // `last_match` restarts the trade stream (sent on subscribe): the
        // trades between it and the previous one were never on this stream.
        let skipped = !last_match && w.last != 0 && id > w.last + 1;
        w.last = id;
        if w.announced <= id {
            w.announced = 0;
        }
        if skipped {
            self.lost.push(inst);
        }
        out.push(Event::Trade(trade));
        Ok(FrameKind::Trade)
    }

    fn ex_ticker(
        &mut self,
        m: &Msg<'_, '_>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // Older tickers name no sizes: nothing to quote.
        if m.bid.is_none() || m.bid_qty.is_none() || m.ask.is_none() || m.ask_qty.is_none() {
            return Ok(FrameKind::Ignored);
        }
        let product = m.product.ok_or_else(|| ParseError::missing("product_id"))?;
        let wire = || {
            let mut w = NO_WIRE;
            learn_pair(&mut w, m.bid, m.bid_qty);
            learn_pair(&mut w, m.ask, m.ask_qty);
            w
        };
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(product.as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        out.push(Event::Quote(QuoteEvent {
            inst,
            update_id: 0,
            ts_ns: m.ts(recv_ns),
            recv_ns,
            bid_px: decimal_str(m.bid, "best_bid", pd)?,
            bid_qty: decimal_str(m.bid_qty, "best_bid_size", qd)?,
            ask_px: decimal_str(m.ask, "best_ask", pd)?,
            ask_qty: decimal_str(m.ask_qty, "best_ask_size", qd)?,
        }));
        Ok(FrameKind::Quote)
    }

    /// A heartbeat's `last_trade_id` announces the product's latest trade:
    /// when the previous heartbeat announced trades that have still not
    /// arrived, they were lost. Only judged once the product's trades are
    /// known to stream (a trade was seen).
    fn ex_heartbeat(
        &mut self,
        m: &Msg<'_, '_>,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (Some(product), Some(_)) = (m.product, m.last_trade_id) else {
            return Ok(FrameKind::Control);
        };
        let last_trade = trade_id(m.last_trade_id, "last_trade_id")?;
        let Some((inst, _)) = self
            .instruments
            .resolve_learning(product.as_bytes(), out, || NO_WIRE)
        else {
            return Ok(FrameKind::Control);
        };
        let w = self.watch(inst);
        if w.last == 0 {
            return Ok(FrameKind::Control);
        }
        let lost = w.announced != 0 && w.last < w.announced;
        if lost {
            w.last = w.announced;
        }
        w.announced = if last_trade > w.last { last_trade } else { 0 };
        if lost {
            self.lost.push(inst);
        }
        Ok(FrameKind::Control)
    }
}
