//! Frame classification and normalization (SIGNALS.md 2.2-2.4).

use simd_json::Node;

use super::messages::{req, Fields, Value};
use super::{Binance, DepthSeen};
use crate::event::{
    BookSide, DepthHeader, Event, InstrumentId, Level, QuoteEvent, Scale, Side, SnapshotHeader,
    Symbol, TradeEvent, TradeKind,
};
use crate::fixed;
use crate::instruments::{InstrumentSpec, NO_WIRE};
use crate::tape::decimal_text;
use crate::venue::{exchange_ts_ns, FrameKind, ParseError};

/// Event types Binance sends that the engine does not use.
const IGNORED_EVENTS: &[&str] = &[
    "kline",
    "24hrTicker",
    "24hrMiniTicker",
    "1hTicker",
    "4hTicker",
    "1dTicker",
    "avgPrice",
    "markPriceUpdate",
    "forceOrder",
    "contractInfo",
    "indexPriceUpdate",
];

/// What the tape is to be read as.
#[derive(Clone, Copy)]
pub(super) enum Mode<'a> {
    /// A WebSocket frame (or inline snapshot of a capture).
    Frame,
    /// A REST snapshot body fetched for this symbol.
    RestSnapshot(&'a str),
}

impl Binance {
    /// Parses `frame` in place and dispatches; on anything but a data frame,
    /// whatever was pushed (a first-sight announcement) is discarded.
    pub(super) fn parse_impl(
        &mut self,
        mode: Mode<'_>,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let start = out.len();
        // Nearly every frame: a compact combined-stream frame, read straight
        // into its fields (no tape).
        if let Mode::Frame = mode {
            let mut f = Fields::default();
            if let Some(stream) = super::combined::scan_into(frame, &mut f) {
                let res = self.dispatch_fields(&f, Some(stream), recv_ns, out);
                return crate::tape::keep_data(res, start, out, &mut self.instruments);
            }
        }
        self.parse_tape(mode, recv_ns, frame, out, start)
    }

    /// [`parse_impl`](Self::parse_impl) through a tape (plain JSON or
    /// simd-json): any frame, and REST snapshots.
    pub(super) fn parse_tape(
        &mut self,
        mode: Mode<'_>,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
        start: usize,
    ) -> Result<FrameKind, ParseError> {
        // Taken out for the parse so the dispatch can borrow the adapter
        // (a move of a few words; nothing is allocated).
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, frame, |nodes| match mode {
            Mode::Frame => self.dispatch(nodes, recv_ns, out),
            Mode::RestSnapshot(sym) => self.rest_snapshot(nodes, sym, recv_ns, out),
        });
        self.parser = parser;
        crate::tape::keep_data(res, start, out, &mut self.instruments)
    }

    fn dispatch(
        &mut self,
        nodes: &[Node<'_>],
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // Scanned in place and borrowed (a copy of `Fields` is 400 bytes).
        let mut root = Fields::default();
        if !root.scan_into(nodes) {
            return Ok(FrameKind::Unknown);
        }
        let mut data_fields = Fields::default();
        let (f, stream) = match (root.stream, root.data) {
            (Some(st), Some(data)) => {
                let Ok(st) = st.str("stream") else {
                    return Ok(FrameKind::Unknown);
                };
                if !data_fields.scan_into(data) {
                    return Ok(FrameKind::Unknown);
                }
                (&data_fields, Some(st))
            }
            _ => (&root, None),
        };
        self.dispatch_fields(f, stream, recv_ns, out)
    }

    /// Classifies and normalizes a message by its fields (`stream`: the
    /// combined-stream wrapper's name, `None` for a raw payload).
    #[inline]
    fn dispatch_fields<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        stream: Option<&str>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        if let Some(e) = f.e {
            return match e.str("e") {
                Ok("trade") => self.trade(f, TradeKind::Trade, recv_ns, out),
                Ok("aggTrade") => self.trade(f, TradeKind::AggTrade, recv_ns, out),
                Ok("depthUpdate") => self.depth(f, recv_ns, out),
                Ok("bookTicker") => self.quote(f, recv_ns, out),
                // The venue will close this connection soon (maintenance,
                // the 24 h limit): a planned rollover.
                Ok("serverShutdown") => Ok(FrameKind::Closing),
                Ok(e) if IGNORED_EVENTS.contains(&e) => Ok(FrameKind::Ignored),
                _ => Ok(FrameKind::Unknown),
            };
        }
        if f.u.is_some()
            && f.s.is_some()
            && f.b.is_some()
            && f.B.is_some()
            && f.a.is_some()
            && f.A.is_some()
        {
            return self.quote(f, recv_ns, out);
        }
        if f.last_update_id.is_some() && f.bids.is_some() && f.asks.is_some() {
            if stream.is_some_and(is_partial_depth) {
                return Ok(FrameKind::Ignored);
            }
            return self.snapshot(f, stream, recv_ns, out);
        }
        if stream.is_none() && f.result.is_some() && f.id.is_some() {
            return Ok(FrameKind::Control);
        }
        if stream.is_none() && f.error.is_some() {
            // `{"error":{"code":2,"msg":".."},"id":N}`: a refused request.
            let id = f.id.and_then(|v| v.u64("id").ok()).unwrap_or(0);
            return Ok(FrameKind::Rejected(id));
        }
        Ok(FrameKind::Unknown)
    }

    /// Resolves the `s` field; `None`: not configured.
    #[inline]
    fn symbol<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        out: &mut Vec<Event>,
    ) -> Result<Option<(InstrumentId, InstrumentSpec)>, ParseError> {
        let s = req(f.s, "s")?.str("s")?;
        Ok(self
            .instruments
            .resolve_learning(s.as_bytes(), out, || wire_decimals(f)))
    }

    fn trade<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        kind: TradeKind,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some((inst, spec)) = self.symbol(f, out)? else {
            return Ok(FrameKind::Ignored);
        };
        if spec.trade_source != kind {
            return Ok(FrameKind::Ignored);
        }
        let (id_field, id) = match kind {
            TradeKind::Trade => ("t", f.t),
            TradeKind::AggTrade => ("a", f.a),
        };
        let id = req(id, id_field)?.u64(id_field)?;
        let px = decimal(f.p, "p", spec.scale.price_decimals)?;
        let qty = decimal(f.q, "q", spec.scale.qty_decimals)?;
        let side = match f.m {
            Some(m) if m.bool("m")? => Side::Sell,
            _ => Side::Buy,
        };
        let ts_ns = exchange_ts(f, recv_ns)?;
        out.push(Event::Trade(TradeEvent {
            inst,
            id,
            ts_ns,
            recv_ns,
            px,
            qty,
            side,
            kind,
        }));
        Ok(FrameKind::Trade)
    }

    fn quote<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some((inst, spec)) = self.symbol(f, out)? else {
            return Ok(FrameKind::Ignored);
        };
        let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
        out.push(Event::Quote(QuoteEvent {
            inst,
            update_id: req(f.u, "u")?.u64("u")?,
            ts_ns: exchange_ts(f, recv_ns)?,
            recv_ns,
            bid_px: decimal(f.b, "b", pd)?,
            bid_qty: decimal(f.B, "B", qd)?,
            ask_px: decimal(f.a, "a", pd)?,
            ask_qty: decimal(f.A, "A", qd)?,
        }));
        Ok(FrameKind::Quote)
    }

    fn depth<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let Some((inst, spec)) = self.symbol(f, out)? else {
            return Ok(FrameKind::Ignored);
        };
        let first_id = req(f.U, "U")?.u64("U")?;
        let last_id = req(f.u, "u")?.u64("u")?;
        let prev_last_id = match f.pu {
            Some(v) => v.u64("pu")?,
            None => 0,
        };
        let ts_ns = exchange_ts(f, recv_ns)?;
        let (bids, asks) = (req(f.b, "b")?, req(f.a, "a")?);
        let header = out.len();
        out.push(Event::Depth(DepthHeader {
            inst,
            first_id,
            last_id,
            prev_last_id,
            ts_ns,
            recv_ns,
            levels: 0,
            checksum: None,
        }));
        let levels = push_levels(out, bids, "b", asks, "a", &spec)?;
        if let Event::Depth(h) = &mut out[header] {
            h.levels = levels;
        }
        self.depth_seen = match self.depth_seen {
            DepthSeen::None => DepthSeen::One(spec.symbol),
            DepthSeen::One(s) if s != spec.symbol => DepthSeen::Many,
            seen => seen,
        };
        Ok(FrameKind::Depth)
    }

    /// A snapshot inside the stream: attribute a symbol (SIGNALS.md 2.2).
    fn snapshot<'i, V: Value<'i>>(
        &mut self,
        f: &Fields<V>,
        stream: Option<&str>,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let sym = if let Some(v) = f.symbol.or(f.s) {
            Symbol::new(v.str("symbol")?)
        } else if let Some(st) = stream {
            Symbol::new(st.split('@').next().unwrap_or(st))
        } else if let Some(s) = self.capture_symbol {
            Some(s)
        } else if let [only] = self.instruments.configured() {
            Some(only.symbol)
        } else if let (true, DepthSeen::One(s)) =
            (self.instruments.configured().is_empty(), self.depth_seen)
        {
            Some(s)
        } else {
            None
        };
        let Some(sym) = sym else {
            return Ok(FrameKind::Ignored);
        };
        let wire = || wire_decimals(f);
        let Some((inst, spec)) =
            self.instruments
                .resolve_learning(sym.as_str().as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        emit_snapshot(f, inst, &spec, recv_ns, out)
    }

    fn rest_snapshot(
        &mut self,
        nodes: &[Node<'_>],
        symbol: &str,
        recv_ns: i64,
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let f = Fields::scan(nodes).unwrap_or_default();
        req(f.last_update_id, "lastUpdateId")?;
        req(f.bids, "bids")?;
        req(f.asks, "asks")?;
        let wire = || wire_decimals(&f);
        let Some((inst, spec)) = self
            .instruments
            .resolve_learning(symbol.as_bytes(), out, wire)
        else {
            return Ok(FrameKind::Ignored);
        };
        emit_snapshot(&f, inst, &spec, recv_ns, out)
    }
}

fn emit_snapshot<'i, V: Value<'i>>(
    f: &Fields<V>,
    inst: InstrumentId,
    spec: &InstrumentSpec,
    recv_ns: i64,
    out: &mut Vec<Event>,
) -> Result<FrameKind, ParseError> {
    let last_update_id = req(f.last_update_id, "lastUpdateId")?.u64("lastUpdateId")?;
    let (bids, asks) = (req(f.bids, "bids")?, req(f.asks, "asks")?);
    let header = out.len();
    out.push(Event::Snapshot(SnapshotHeader {
        inst,
        last_update_id,
        recv_ns,
        levels: 0,
        checksum: None,
        max_depth: 0,
        wire: NO_WIRE,
        from_rest: true,
    }));
    let levels = push_levels(out, bids, "bids", asks, "asks", spec)?;
    if let Event::Snapshot(h) = &mut out[header] {
        h.levels = levels;
    }
    Ok(FrameKind::Snapshot)
}

/// Pushes bid then ask levels (size 0 kept: it deletes); returns their count.
#[inline]
fn push_levels<'i, V: Value<'i>>(
    out: &mut Vec<Event>,
    bids: V,
    bids_field: &'static str,
    asks: V,
    asks_field: &'static str,
    spec: &InstrumentSpec,
) -> Result<u32, ParseError> {
    let before = out.len();
    let (pd, qd) = (spec.scale.price_decimals, spec.scale.qty_decimals);
    for (v, field, side) in [
        (bids, bids_field, BookSide::Bid),
        (asks, asks_field, BookSide::Ask),
    ] {
        v.levels(field, |px, qty| {
            out.push(Event::Level(Level {
                side,
                px: decimal_text(px, field, pd)?,
                qty: decimal_text(qty, field, qd)?,
            }));
            Ok(())
        })?;
    }
    u32::try_from(out.len() - before).map_err(|_| ParseError::too_many_levels())
}

/// The decimals of a frame's prices and quantities (its first sight of an
/// instrument): the most of any price / quantity string it carries.
#[cold]
fn wire_decimals<'i, V: Value<'i>>(f: &Fields<V>) -> Scale {
    let mut w = NO_WIRE;
    let mut see = |v: Option<V>, price: bool| {
        let Some(s) = v.and_then(Value::text) else {
            return;
        };
        let d = fixed::decimals(s.as_bytes());
        let slot = if price {
            &mut w.price_decimals
        } else {
            &mut w.qty_decimals
        };
        *slot = (*slot).max(d);
    };
    // trade `p`/`q`; bookTicker `b`/`B`/`a`/`A` (strings; depth's `b`/`a` are arrays).
    see(f.p, true);
    see(f.q, false);
    for (v, price) in [(f.b, true), (f.B, false), (f.a, true), (f.A, false)] {
        see(v, price);
    }
    for levels in [f.b, f.a, f.bids, f.asks].into_iter().flatten() {
        levels.learn_levels(&mut w);
    }
    w
}

/// A required decimal-string field as fixed point (inlined: a call
/// returned its `Result` through memory, ~20 instructions of each
/// bookTicker price and size).
#[inline(always)]
fn decimal<'i, V: Value<'i>>(
    v: Option<V>,
    field: &'static str,
    decimals: u8,
) -> Result<i64, ParseError> {
    decimal_text(req(v, field)?.str(field)?, field, decimals)
}

/// Exchange time: `T` if present, else `E`, else the receive time (SIGNALS.md 1.2).
#[inline]
fn exchange_ts<'i, V: Value<'i>>(f: &Fields<V>, recv_ns: i64) -> Result<i64, ParseError> {
    Ok(match (f.T, f.E) {
        (Some(t), _) => exchange_ts_ns(t.i64("T")?),
        (None, Some(e)) => exchange_ts_ns(e.i64("E")?),
        (None, None) => recv_ns,
    })
}

/// A partial-depth stream name: `@depth` followed by a digit (`btcusdt@depth20@100ms`).
pub(super) fn is_partial_depth(stream: &str) -> bool {
    let b = stream.as_bytes();
    stream
        .match_indices("@depth")
        .any(|(i, _)| b.get(i + 6).is_some_and(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::is_partial_depth;

    #[test]
    fn partial_depth_names() {
        assert!(is_partial_depth("btcusdt@depth5"));
        assert!(is_partial_depth("btcusdt@depth20@100ms"));
        assert!(!is_partial_depth("btcusdt@depth@100ms"));
        assert!(!is_partial_depth("btcusdt@depth"));
        assert!(!is_partial_depth("btcusdt@bookTicker"));
    }
}
