//! OKX v5 frames → events.

use simd_json::{Node, StaticNode};

use super::Okx;
use crate::event::{
    BookSide, Event, InstrumentId, Level, QuoteEvent, Scale, Side, TradeEvent, TradeKind,
};
use crate::fixed;
use crate::instruments::{InstrumentSpec, NO_WIRE};
use crate::tape::{as_str, close_book, decimal, elements, entries, learn_levels, BookFrame, Raw};
use crate::venue::{exchange_ts_ns, FrameKind, ParseError};

/// The fields of one `data` entry (books, trades, tickers, bbo).
#[derive(Default, Clone, Copy)]
struct Entry<'t, 'i> {
    asks: Option<Raw<'t, 'i>>,
    bids: Option<Raw<'t, 'i>>,
    ts: Option<Raw<'t, 'i>>,
    checksum: Option<Raw<'t, 'i>>,
    seq_id: Option<Raw<'t, 'i>>,
    prev_seq_id: Option<Raw<'t, 'i>>,
    trade_id: Option<Raw<'t, 'i>>,
    px: Option<Raw<'t, 'i>>,
    sz: Option<Raw<'t, 'i>>,
    side: Option<Raw<'t, 'i>>,
    bid_px: Option<Raw<'t, 'i>>,
    bid_sz: Option<Raw<'t, 'i>>,
    ask_px: Option<Raw<'t, 'i>>,
    ask_sz: Option<Raw<'t, 'i>>,
}

impl<'t, 'i> Entry<'t, 'i> {
    fn scan(v: Raw<'t, 'i>) -> Option<Self> {
        let mut e = Self::default();
        for (k, v) in entries(v)? {
            let slot = match k {
                "asks" => &mut e.asks,
                "bids" => &mut e.bids,
                "ts" => &mut e.ts,
                "checksum" => &mut e.checksum,
                "seqId" => &mut e.seq_id,
                "prevSeqId" => &mut e.prev_seq_id,
                "tradeId" => &mut e.trade_id,
                "px" => &mut e.px,
                "sz" => &mut e.sz,
                "side" => &mut e.side,
                "bidPx" => &mut e.bid_px,
                "bidSz" => &mut e.bid_sz,
                "askPx" => &mut e.ask_px,
                "askSz" => &mut e.ask_sz,
                _ => continue,
            };
            *slot = Some(v);
        }
        Some(e)
    }
}

/// An integer sent as a JSON number or a decimal string (`-1` → `None`).
fn int(v: Option<Raw<'_, '_>>, field: &'static str) -> Result<Option<i64>, ParseError> {
    let Some(v) = v else { return Ok(None) };
    match v.first() {
        Some(Node::Static(StaticNode::I64(n))) => Ok(Some(*n)),
        Some(Node::Static(StaticNode::U64(n))) => i64::try_from(*n)
            .map(Some)
            .map_err(|_| ParseError::wrong_type(field)),
        Some(Node::String("")) => Ok(None),
        Some(Node::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ParseError::wrong_type(field)),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// A sequence number: non-negative, `-1` (none) as 0.
fn seq(v: Option<Raw<'_, '_>>, field: &'static str) -> Result<u64, ParseError> {
    Ok(int(v, field)?
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0))
}

/// Exchange time of an entry (ms string), else the receive time.
fn ts(e: &Entry<'_, '_>, recv_ns: i64) -> Result<i64, ParseError> {
    Ok(int(e.ts, "ts")?.map_or(recv_ns, exchange_ts_ns))
}

/// Decimals of the level strings of `asks`/`bids`.
fn levels_wire(e: &Entry<'_, '_>) -> Scale {
    let mut w = NO_WIRE;
    for side in [e.asks, e.bids].into_iter().flatten() {
        learn_levels(&mut w, side);
    }
    w
}

fn field_wire(pairs: &[(Option<Raw<'_, '_>>, bool)]) -> Scale {
    let mut w = NO_WIRE;
    for &(v, price) in pairs {
        if let Some(Ok(s)) = v.map(|v| as_str(v, "number")) {
            let d = fixed::decimals(s.as_bytes());
            let slot = if price {
                &mut w.price_decimals
            } else {
                &mut w.qty_decimals
            };
            *slot = (*slot).max(d);
        }
    }
    w
}

impl Okx {
    pub(super) fn dispatch(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (mut arg, mut action, mut data, mut event) = (None, None, None, None);
        for (k, v) in entries(nodes).into_iter().flatten() {
            match k {
                "arg" => arg = Some(v),
                "action" => action = as_str(v, "action").ok(),
                "data" => data = Some(v),
                "event" => event = as_str(v, "event").ok(),
                _ => {}
            }
        }
        if let Some(event) = event {
            return Ok(match event {
                "error" => FrameKind::Rejected(0),
                _ => FrameKind::Control,
            });
        }
        let (Some(arg), Some(data)) = (arg, data) else {
            return Ok(FrameKind::Unknown);
        };
        let (mut channel, mut inst_id) = (None, None);
        for (k, v) in entries(arg).into_iter().flatten() {
            match k {
                "channel" => channel = as_str(v, "channel").ok(),
                "instId" => inst_id = as_str(v, "instId").ok(),
                _ => {}
            }
        }
        let (Some(channel), Some(inst_id)) = (channel, inst_id) else {
            return Ok(FrameKind::Unknown);
        };
        let entries_of = || elements(data).into_iter().flatten().filter_map(Entry::scan);
        match channel {
            "books" | "books-l2-tbt" | "books50-l2-tbt" | "books5" => {
                let Some(e) = entries_of().next() else {
                    return Err(ParseError::missing("data"));
                };
                let snapshot = channel == "books5" || action != Some("update");
                self.book(&e, inst_id, snapshot, recv_ns, out)
            }
            "trades" | "trades-all" => {
                let mut n = 0;
                for e in entries_of() {
                    if self.trade(&e, inst_id, recv_ns, out)? == FrameKind::Ignored {
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
            "tickers" | "bbo-tbt" => {
                let Some(e) = entries_of().next() else {
                    return Err(ParseError::missing("data"));
                };
                self.quote(&e, inst_id, recv_ns, out)
            }
            _ => Ok(FrameKind::Ignored),
        }
    }

    /// A REST books body `{"code":"0","data":[{asks,bids,ts,seqId}]}` for `inst_id`.
    pub(super) fn rest_books(
        &mut self,
        nodes: &[Node<'_>],
        inst_id: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let (mut code, mut data) = (None, None);
        for (k, v) in entries(nodes).into_iter().flatten() {
            match k {
                "code" => code = as_str(v, "code").ok(),
                "data" => data = Some(v),
                _ => {}
            }
        }
        let entry = data.and_then(|d| elements(d)?.next()).and_then(Entry::scan);
        let (Some("0"), Some(e)) = (code, entry) else {
            return Err(ParseError::missing("data"));
        };
        let res = self.book(&e, inst_id, true, recv_ns, out)?;
        if let Some(Event::Snapshot(h)) = out
            .iter_mut()
            .rev()
            .find(|e| matches!(e, Event::Snapshot(_)))
        {
            h.from_rest = true;
        }
        Ok(res)
    }

    fn resolve(
        &mut self,
        inst_id: &str,
        wire: impl FnOnce() -> Scale,
        out: &mut Vec<Event>,
    ) -> Option<(InstrumentId, InstrumentSpec)> {
        self.instruments
            .resolve_learning(inst_id.as_bytes(), out, wire)
    }

    fn book(
        &mut self,
        e: &Entry<'_, '_>,
        inst_id: &str,
        snapshot: bool,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some((inst, spec)) = self.resolve(inst_id, || levels_wire(e), out) else {
            return Ok(FrameKind::Ignored);
        };
        let checksum = int(e.checksum, "checksum")?.map(|c| c as i32 as u32);
        let (seq_id, prev) = (seq(e.seq_id, "seqId")?, seq(e.prev_seq_id, "prevSeqId")?);
        let ts_ns = ts(e, recv_ns)?;
        let header = out.len();
        out.push(Event::Reset(inst)); // placeholder, replaced below
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        for (v, side, field) in [
            (e.bids, BookSide::Bid, "bids"),
            (e.asks, BookSide::Ask, "asks"),
        ] {
            let Some(v) = v else { continue };
            for lv in elements(v).ok_or_else(|| ParseError::wrong_type(field))? {
                let mut it = elements(lv).ok_or_else(|| ParseError::wrong_type(field))?;
                let px = decimal(it.next(), field, pd)?;
                let qty = decimal(it.next(), field, qd)?;
                out.push(Event::Level(Level { side, px, qty }));
            }
        }
        let frame = BookFrame {
            inst,
            snapshot,
            seq: seq_id,
            prev_seq: prev,
            ts_ns,
            recv_ns,
            checksum,
            max_depth: 0,
            wire: if snapshot { levels_wire(e) } else { NO_WIRE },
            from_rest: false,
        };
        close_book(out, header, &frame)
    }

    fn trade(
        &mut self,
        e: &Entry<'_, '_>,
        inst_id: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let wire = || field_wire(&[(e.px, true), (e.sz, false)]);
        let Some((inst, spec)) = self.resolve(inst_id, wire, out) else {
            return Ok(FrameKind::Ignored);
        };
        let id = seq(e.trade_id, "tradeId")?;
        let side = match e.side.map(|v| as_str(v, "side")).transpose()? {
            Some("sell") => Side::Sell,
            _ => Side::Buy,
        };
        out.push(Event::Trade(TradeEvent {
            inst,
            id,
            ts_ns: ts(e, recv_ns)?,
            recv_ns,
            px: decimal(e.px, "px", spec.scale.price_decimals)?,
            qty: decimal(e.sz, "sz", spec.scale.qty_decimals)?,
            side,
            kind: TradeKind::Trade,
        }));
        Ok(FrameKind::Trade)
    }

    fn quote(
        &mut self,
        e: &Entry<'_, '_>,
        inst_id: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let wire = || {
            field_wire(&[
                (e.bid_px, true),
                (e.bid_sz, false),
                (e.ask_px, true),
                (e.ask_sz, false),
            ])
        };
        let Some((inst, spec)) = self.resolve(inst_id, wire, out) else {
            return Ok(FrameKind::Ignored);
        };
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        // `tickers` name the fields; `bbo-tbt` sends one level per side.
        let top =
            |side: Option<Raw<'_, '_>>, field: &'static str| -> Result<(i64, i64), ParseError> {
                let lv = side
                    .and_then(|v| elements(v)?.next())
                    .ok_or_else(|| ParseError::missing(field))?;
                let mut it = elements(lv).ok_or_else(|| ParseError::wrong_type(field))?;
                Ok((
                    decimal(it.next(), field, pd)?,
                    decimal(it.next(), field, qd)?,
                ))
            };
        let ((bid_px, bid_qty), (ask_px, ask_qty)) = if e.bid_px.is_some() {
            (
                (
                    decimal(e.bid_px, "bidPx", pd)?,
                    decimal(e.bid_sz, "bidSz", qd)?,
                ),
                (
                    decimal(e.ask_px, "askPx", pd)?,
                    decimal(e.ask_sz, "askSz", qd)?,
                ),
            )
        } else {
            (top(e.bids, "bids")?, top(e.asks, "asks")?)
        };
        out.push(Event::Quote(QuoteEvent {
            inst,
            update_id: seq(e.seq_id, "seqId")?,
            ts_ns: ts(e, recv_ns)?,
            recv_ns,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
        }));
        Ok(FrameKind::Quote)
    }
}
