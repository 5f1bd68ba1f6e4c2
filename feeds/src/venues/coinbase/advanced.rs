//! Coinbase Advanced Trade frames → events: `{"channel", "timestamp",
//! "sequence_num", "events": [..]}` with channels `l2_data` (events
//! `snapshot`/`update` of `updates[{side: "bid"|"offer", event_time,
//! price_level, new_quantity}]`), `market_trades` (`trades[{trade_id,
//! product_id, price, size, side, time}]`), `ticker`/`ticker_batch`
//! (`tickers[{product_id, best_bid, best_bid_quantity, ..}]`),
//! `heartbeats` and `subscriptions`; errors are `{"type":"error",..}`.

use simd_json::Node;

use super::Coinbase;
use crate::event::{BookSide, Event, Level, QuoteEvent, Scale, Side, TradeEvent, TradeKind};
use crate::instruments::NO_WIRE;
use crate::tape::{
    as_str, as_u64, close_book, decimal_str, elements, entries, learn_pair, req, text_id,
    BookFrame, Raw,
};
use crate::time::parse_rfc3339_ns;
use crate::venue::{FrameKind, ParseError};

/// The events array of a frame.
fn events<'t, 'i>(v: Option<Raw<'t, 'i>>) -> Result<impl Iterator<Item = Raw<'t, 'i>>, ParseError> {
    elements(req(v, "events")?).ok_or_else(|| ParseError::wrong_type("events"))
}

/// `side`, `price_level` and `new_quantity` of a level update.
type Update<'i> = (Option<&'i str>, Option<&'i str>, Option<&'i str>);

/// One level update of an `l2_data` event.
fn update<'i>(u: Raw<'_, 'i>) -> Result<Update<'i>, ParseError> {
    let (mut side, mut px, mut qty) = (None, None, None);
    for (k, v) in entries(u).ok_or_else(|| ParseError::wrong_type("updates"))? {
        match k {
            "side" => side = Some(as_str(v, "side")?),
            "price_level" => px = Some(as_str(v, "price_level")?),
            "new_quantity" => qty = Some(as_str(v, "new_quantity")?),
            _ => {}
        }
    }
    Ok((side, px, qty))
}

/// Decimals of the levels of an `updates` array (first sight only).
fn updates_wire(updates: Raw<'_, '_>) -> Scale {
    let mut w = NO_WIRE;
    for u in elements(updates).into_iter().flatten() {
        if let Ok((_, px, qty)) = update(u) {
            learn_pair(&mut w, px, qty);
        }
    }
    w
}

/// The fields of one trade or ticker entry.
#[derive(Default)]
struct Fields<'i> {
    product: Option<&'i str>,
    trade_id: Option<&'i str>,
    price: Option<&'i str>,
    size: Option<&'i str>,
    side: Option<&'i str>,
    time: Option<&'i str>,
    bid: Option<&'i str>,
    bid_qty: Option<&'i str>,
    ask: Option<&'i str>,
    ask_qty: Option<&'i str>,
}

impl<'i> Fields<'i> {
    fn scan(v: Raw<'_, 'i>, what: &'static str) -> Result<Self, ParseError> {
        let mut f = Self::default();
        for (k, v) in entries(v).ok_or_else(|| ParseError::wrong_type(what))? {
            let slot = match k {
                "product_id" => &mut f.product,
                "trade_id" => &mut f.trade_id,
                "price" => &mut f.price,
                "size" => &mut f.size,
                "side" => &mut f.side,
                "time" => &mut f.time,
                "best_bid" => &mut f.bid,
                "best_bid_quantity" => &mut f.bid_qty,
                "best_ask" => &mut f.ask,
                "best_ask_quantity" => &mut f.ask_qty,
                _ => continue,
            };
            // Numbers and nulls where strings are expected: absent.
            *slot = as_str(v, what).ok();
        }
        Ok(f)
    }
}

impl Coinbase {
    pub(super) fn advanced(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (mut channel, mut ts, mut seq, mut evs, mut ty) = (None, None, None, None, None);
        for (k, v) in entries(nodes).into_iter().flatten() {
            match k {
                "channel" => channel = as_str(v, "channel").ok(),
                "timestamp" => ts = as_str(v, "timestamp").ok(),
                "sequence_num" => seq = Some(as_u64(v, "sequence_num")?),
                "events" => evs = Some(v),
                "type" => ty = as_str(v, "type").ok(),
                _ => {}
            }
        }
        if ty == Some("error") {
            return Ok(FrameKind::Rejected(0));
        }
        self.frame_seq = seq;
        let Some(channel) = channel else {
            return Ok(FrameKind::Unknown);
        };
        let ts_ns = ts
            .and_then(|t| parse_rfc3339_ns(t.as_bytes()))
            .unwrap_or(recv_ns);
        match channel {
            "l2_data" => self.l2(evs, ts_ns, recv_ns, out),
            "market_trades" => self.market_trades(evs, recv_ns, out),
            "ticker" | "ticker_batch" => self.tickers(evs, ts_ns, recv_ns, out),
            "heartbeats" | "subscriptions" => Ok(FrameKind::Control),
            "status" | "candles" | "user" | "futures_balance_summary" => Ok(FrameKind::Ignored),
            _ => Ok(FrameKind::Unknown),
        }
    }

    fn l2(
        &mut self,
        evs: Option<Raw<'_, '_>>,
        ts_ns: i64,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let mut kind = FrameKind::Ignored;
        for ev in events(evs)? {
            let (mut ty, mut product, mut updates) = (None, None, None);
            for (k, v) in entries(ev).ok_or_else(|| ParseError::wrong_type("events"))? {
                match k {
                    "type" => ty = Some(as_str(v, "type")?),
                    "product_id" => product = Some(as_str(v, "product_id")?),
                    "updates" => updates = Some(v),
                    _ => {}
                }
            }
            let snapshot = match ty {
                Some("snapshot") => true,
                Some("update") => false,
                Some(_) => continue,
                None => return Err(ParseError::missing("type")),
            };
            let product = product.ok_or_else(|| ParseError::missing("product_id"))?;
            let updates = req(updates, "updates")?;
            let Some((inst, spec)) =
                self.instruments
                    .resolve_learning(product.as_bytes(), out, || updates_wire(updates))
            else {
                continue;
            };
            self.current = Some(inst);
            self.carries(inst);
            let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
            let header = out.len();
            out.push(Event::Reset(inst)); // placeholder, replaced below
            for u in elements(updates).ok_or_else(|| ParseError::wrong_type("updates"))? {
                let (side, px, qty) = update(u)?;
                let side = match side {
                    Some("bid") => BookSide::Bid,
                    Some("offer" | "ask") => BookSide::Ask,
                    Some(_) => return Err(ParseError::wrong_type("side")),
                    None => return Err(ParseError::missing("side")),
                };
                out.push(Event::Level(Level {
                    side,
                    px: decimal_str(px, "price_level", pd)?,
                    qty: decimal_str(qty, "new_quantity", qd)?,
                }));
            }
            let frame = BookFrame {
                inst,
                snapshot,
                seq: 0,
                prev_seq: 0,
                ts_ns,
                recv_ns,
                checksum: None,
                max_depth: 0,
                wire: NO_WIRE,
                from_rest: false,
            };
            kind = close_book(out, header, &frame)?;
        }
        Ok(kind)
    }

    fn market_trades(
        &mut self,
        evs: Option<Raw<'_, '_>>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let mut any = false;
        for ev in events(evs)? {
            let mut trades = None;
            for (k, v) in entries(ev).ok_or_else(|| ParseError::wrong_type("events"))? {
                if k == "trades" {
                    trades = Some(v);
                }
            }
            let Some(trades) = trades else { continue };
            let list = || elements(trades).ok_or_else(|| ParseError::wrong_type("trades"));
            // Announcements first, so the trades that follow are contiguous.
            for t in list()? {
                let f = Fields::scan(t, "trades")?;
                let product = f.product.ok_or_else(|| ParseError::missing("product_id"))?;
                self.instruments
                    .resolve_learning(product.as_bytes(), out, || {
                        let mut w = NO_WIRE;
                        learn_pair(&mut w, f.price, f.size);
                        w
                    });
            }
            let seg = out.len();
            let mut numbered = true;
            for t in list()? {
                let f = Fields::scan(t, "trades")?;
                let product = f.product.ok_or_else(|| ParseError::missing("product_id"))?;
                let Some((inst, spec)) =
                    self.instruments
                        .resolve_learning(product.as_bytes(), out, || NO_WIRE)
                else {
                    continue;
                };
                let id_text = f.trade_id.ok_or_else(|| ParseError::missing("trade_id"))?;
                numbered &= id_text.parse::<u64>().is_ok();
                out.push(Event::Trade(TradeEvent {
                    inst,
                    id: text_id(id_text),
                    ts_ns: f
                        .time
                        .and_then(|t| parse_rfc3339_ns(t.as_bytes()))
                        .unwrap_or(recv_ns),
                    recv_ns,
                    px: decimal_str(f.price, "price", spec.scale.price_decimals)?,
                    qty: decimal_str(f.size, "size", spec.scale.qty_decimals)?,
                    side: maker_side(f.side)?,
                    kind: TradeKind::Trade,
                }));
            }
            any |= self.order_trades(seg, numbered, out);
        }
        Ok(if any {
            FrameKind::Trade
        } else {
            FrameKind::Ignored
        })
    }

    /// Puts the trades pushed at `seg..` in time order (a batch may list the
    /// newest first) and drops those already seen (ids at or below the
    /// product's last, when the ids are numbers). Whether any is left.
    pub(super) fn order_trades(
        &mut self,
        seg: usize,
        numbered: bool,
        out: &mut Vec<Event>,
    ) -> bool {
        let ts = |e: &Event| match e {
            Event::Trade(t) => t.ts_ns,
            _ => 0,
        };
        if out.len() > seg + 1 && ts(&out[seg]) > ts(&out[out.len() - 1]) {
            out[seg..].reverse();
        }
        let mut w = seg;
        for r in seg..out.len() {
            let e = out[r];
            if let Event::Trade(t) = e {
                if numbered {
                    let watch = self.watch(t.inst);
                    if watch.last != 0 && t.id <= watch.last {
                        continue;
                    }
                    watch.last = t.id;
                }
            }
            out[w] = e;
            w += 1;
        }
        out.truncate(w);
        w > seg
    }

    fn tickers(
        &mut self,
        evs: Option<Raw<'_, '_>>,
        ts_ns: i64,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let mut any = false;
        for ev in events(evs)? {
            let mut tickers = None;
            for (k, v) in entries(ev).ok_or_else(|| ParseError::wrong_type("events"))? {
                if k == "tickers" {
                    tickers = Some(v);
                }
            }
            let Some(tickers) = tickers else { continue };
            for t in elements(tickers).ok_or_else(|| ParseError::wrong_type("tickers"))? {
                let f = Fields::scan(t, "tickers")?;
                // `ticker_batch` omits the book's top: nothing to quote.
                if f.bid.is_none() || f.bid_qty.is_none() || f.ask.is_none() || f.ask_qty.is_none()
                {
                    continue;
                }
                let product = f.product.ok_or_else(|| ParseError::missing("product_id"))?;
                let wire = || {
                    let mut w = NO_WIRE;
                    learn_pair(&mut w, f.bid, f.bid_qty);
                    learn_pair(&mut w, f.ask, f.ask_qty);
                    w
                };
                let Some((inst, spec)) =
                    self.instruments
                        .resolve_learning(product.as_bytes(), out, wire)
                else {
                    continue;
                };
                let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
                out.push(Event::Quote(QuoteEvent {
                    inst,
                    update_id: 0,
                    ts_ns,
                    recv_ns,
                    bid_px: decimal_str(f.bid, "best_bid", pd)?,
                    bid_qty: decimal_str(f.bid_qty, "best_bid_quantity", qd)?,
                    ask_px: decimal_str(f.ask, "best_ask", pd)?,
                    ask_qty: decimal_str(f.ask_qty, "best_ask_quantity", qd)?,
                }));
                any = true;
            }
        }
        Ok(if any {
            FrameKind::Quote
        } else {
            FrameKind::Ignored
        })
    }
}

/// The aggressor of a trade whose `side` names the maker order's side.
pub(super) fn maker_side(side: Option<&str>) -> Result<Side, ParseError> {
    match side {
        Some(s) if s.eq_ignore_ascii_case("buy") => Ok(Side::Sell),
        Some(s) if s.eq_ignore_ascii_case("sell") => Ok(Side::Buy),
        Some(_) => Err(ParseError::wrong_type("side")),
        None => Err(ParseError::missing("side")),
    }
}
