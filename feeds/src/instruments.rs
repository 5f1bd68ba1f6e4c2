//! Per-feed instrument registry: venue symbol → interned [`InstrumentId`].
//!
//! One registry lives in each venue adapter, on the receiver thread of that
//! feed. Ids come from a counter shared by all feeds of an engine, so they are
//! unique across venues and can index per-instrument arrays downstream.
//!
//! The first time a symbol is resolved its [`InstrumentInfo`] is pushed into
//! the output *before* the events of the frame that named it. Later lookups
//! of the same symbol allocate nothing.
//!
//! **Scales.** A configured instrument uses its configured scales. Any other
//! accepted symbol uses the default scale (8 decimals), raised to the
//! decimals of the frame that announced it when that frame carries more
//! (learned from the wire: a venue that sends 10-decimal prices needs no
//! configuration). Either way the announcement records the decimals the
//! venue sent ([`InstrumentInfo::wire`]). A later string with more decimals
//! than the scale is a counted parse error, never rounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::event::{Event, InstrumentId, InstrumentInfo, Scale, Symbol, TradeKind};

/// Validated configuration of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Upper-case venue symbol (`BTCUSDT`).
    pub symbol: Symbol,
    /// Fixed-point scales of prices and quantities.
    pub scale: Scale,
    /// The one trade stream used for this instrument (SIGNALS.md 2.3).
    pub trade_source: TradeKind,
}

/// A symbol seen on the wire: either configured (with its id) or rejected.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// `None`: not configured, frames of this symbol are ignored.
    known: Option<(InstrumentId, InstrumentSpec)>,
    /// Whether the [`InstrumentInfo`] has been emitted.
    announced: bool,
}

/// Symbols remembered as refused at most (beyond, a refused symbol is not
/// remembered: state from the wire stays bounded).
const MAX_REFUSED: usize = 4096;

/// Symbol registry of one feed.
#[derive(Debug)]
pub struct Instruments {
    venue: u16,
    configured: Vec<InstrumentSpec>,
    /// With no configured instruments: only these symbols are accepted
    /// (a live feed's requested symbols); `None`: any, up to `max_accepted`.
    requested: Option<Vec<Symbol>>,
    max_accepted: usize,
    accepted: usize,
    default_scale: Scale,
    ids: Arc<AtomicU32>,
    seen: HashMap<Symbol, Entry>,
    /// Most recent hit: a feed usually carries long runs of one symbol.
    last: Option<(Symbol, Entry)>,
}

impl Instruments {
    /// A registry for the feed at `venue` (index into [`crate::venue::VENUES`]).
    ///
    /// With `configured` empty every symbol is accepted with `default_scale`
    /// and `trade_source` [`TradeKind::Trade`]; otherwise only the configured
    /// symbols are (SIGNALS.md 2.2). `ids` is the engine-wide id counter.
    #[must_use]
    pub fn new(
        venue: u16,
        configured: Vec<InstrumentSpec>,
        default_scale: Scale,
        ids: Arc<AtomicU32>,
    ) -> Self {
        Self {
            venue,
            configured,
            requested: None,
            max_accepted: usize::MAX,
            accepted: 0,
            default_scale,
            ids,
            seen: HashMap::new(),
            last: None,
        }
    }

    /// Accept only `symbols` (a live feed's requested symbols) when no
    /// instrument is configured: anything else on the wire gets no state
    /// (its frames are ignored and counted).
    pub fn restrict(&mut self, symbols: &[String]) {
        self.requested = Some(symbols.iter().filter_map(|s| Symbol::new(s)).collect());
    }

    /// Accept at most `max` instruments when no instrument is configured
    /// and none requested (a replay of a capture of many symbols); later
    /// symbols are ignored.
    pub fn limit(&mut self, max: usize) {
        self.max_accepted = max;
    }

    /// The configured instruments (empty: every symbol accepted).
    #[must_use]
    pub fn configured(&self) -> &[InstrumentSpec] {
        &self.configured
    }

    /// Venue index this registry belongs to.
    #[must_use]
    pub fn venue(&self) -> u16 {
        self.venue
    }

    /// The spec of a configured symbol or, with none configured, the default spec.
    /// `None` if the symbol is not accepted. Does not register or announce.
    #[must_use]
    pub fn spec_for(&self, symbol: &str) -> Option<InstrumentSpec> {
        let sym = Symbol::new(symbol)?;
        if self.configured.is_empty() {
            return self.is_requested(sym).then(|| self.default_spec(sym));
        }
        self.configured.iter().find(|c| c.symbol == sym).copied()
    }

    fn is_requested(&self, sym: Symbol) -> bool {
        self.requested.as_ref().is_none_or(|r| r.contains(&sym))
    }

    fn default_spec(&self, symbol: Symbol) -> InstrumentSpec {
        InstrumentSpec {
            symbol,
            scale: self.default_scale,
            trade_source: TradeKind::Trade,
        }
    }

    /// Resolves a wire symbol (matched upper-cased). `None`: not configured,
    /// the frame is to be ignored. On first sight of an accepted symbol an
    /// [`Event::Instrument`] is pushed into `out`.
    #[inline]
    pub fn resolve(
        &mut self,
        symbol: &[u8],
        out: &mut Vec<Event>,
    ) -> Option<(InstrumentId, InstrumentSpec)> {
        self.resolve_learning(symbol, out, || NO_WIRE)
    }

    /// [`resolve`](Self::resolve), where `wire` gives the decimals of the
    /// frame being parsed (called only on first sight, off the hot path).
    #[inline]
    pub fn resolve_learning(
        &mut self,
        symbol: &[u8],
        out: &mut Vec<Event>,
        wire: impl FnOnce() -> Scale,
    ) -> Option<(InstrumentId, InstrumentSpec)> {
        // The run of one symbol, sent upper-case as it is stored: a byte
        // compare (a hit is exactly what the checked path below finds).
        if let Some((s, e)) = &self.last {
            if e.announced && s.as_bytes() == symbol {
                return e.known;
            }
        }
        let sym = symbol_from_bytes(symbol)?;
        if let Some((s, e)) = &self.last {
            if *s == sym && e.announced {
                return e.known;
            }
        }
        self.resolve_slow(sym, out, wire)
    }

    fn resolve_slow(
        &mut self,
        sym: Symbol,
        out: &mut Vec<Event>,
        wire: impl FnOnce() -> Scale,
    ) -> Option<(InstrumentId, InstrumentSpec)> {
        // Computed at most once, and only when an instrument is announced.
        let mut wire = Some(wire);
        let mut seen_wire: Option<Scale> = None;
        let mut learned = || *seen_wire.get_or_insert_with(|| wire.take().map_or(NO_WIRE, |f| f()));
        let entry = match self.seen.get_mut(&sym) {
            Some(e) => e,
            None => {
                let spec = if !self.configured.is_empty() {
                    self.configured.iter().find(|c| c.symbol == sym).copied()
                } else if self.is_requested(sym) && self.accepted < self.max_accepted {
                    let mut s = self.default_spec(sym);
                    let w = learned();
                    s.scale.price_decimals = s.scale.price_decimals.max(w.price_decimals);
                    s.scale.qty_decimals = s.scale.qty_decimals.max(w.qty_decimals);
                    Some(s)
                } else {
                    None
                };
                if spec.is_none() && self.seen.len() >= MAX_REFUSED {
                    // Not remembered: refused again on next sight.
                    return None;
                }
                self.accepted += usize::from(spec.is_some());
                let known =
                    spec.map(|s| (InstrumentId(self.ids.fetch_add(1, Ordering::Relaxed)), s));
                self.seen.entry(sym).or_insert(Entry {
                    known,
                    announced: known.is_none(),
                })
            }
        };
        if !entry.announced {
            if let Some((inst, spec)) = entry.known {
                out.push(Event::Instrument(InstrumentInfo {
                    inst,
                    venue: self.venue,
                    symbol: spec.symbol,
                    scale: spec.scale,
                    wire: learned(),
                }));
            }
            entry.announced = true;
        }
        let entry = *entry;
        self.last = Some((sym, entry));
        entry.known
    }

    /// Undoes the announcements among `dropped` (events a parser pushed and
    /// then discarded because the frame failed or was ignored): those
    /// instruments are announced again, with the same id, on next sight.
    #[cold]
    pub fn rollback(&mut self, dropped: &[Event]) {
        for ev in dropped {
            if let Event::Instrument(info) = ev {
                if let Some(e) = self.seen.get_mut(&info.symbol) {
                    e.announced = false;
                }
                if matches!(&self.last, Some((s, _)) if *s == info.symbol) {
                    self.last = None;
                }
            }
        }
    }
}

/// The wire precision of an announcement whose frame showed no number.
pub const NO_WIRE: Scale = Scale {
    price_decimals: 0,
    qty_decimals: 0,
};

/// Upper-cased inline symbol from wire bytes; `None` if not UTF-8 or too long.
#[inline]
fn symbol_from_bytes(b: &[u8]) -> Option<Symbol> {
    Symbol::new(std::str::from_utf8(b).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str, kind: TradeKind) -> InstrumentSpec {
        InstrumentSpec {
            symbol: Symbol::new(s).unwrap(),
            scale: Scale::default(),
            trade_source: kind,
        }
    }

    #[test]
    fn announces_once_and_ids_are_shared() {
        let ids = Arc::new(AtomicU32::new(0));
        let mut a = Instruments::new(0, vec![], Scale::default(), ids.clone());
        let mut b = Instruments::new(1, vec![], Scale::default(), ids);
        let mut out = Vec::new();
        let (x, sx) = a.resolve(b"btcusdt", &mut out).unwrap();
        assert_eq!(sx.symbol.as_str(), "BTCUSDT");
        assert_eq!(out.len(), 1);
        assert_eq!(a.resolve(b"BTCUSDT", &mut out).unwrap().0, x);
        assert_eq!(out.len(), 1);
        let (y, _) = b.resolve(b"BTCUSDT", &mut out).unwrap();
        assert_ne!(x, y);
        assert_eq!(out.len(), 2);
        match out[1] {
            Event::Instrument(i) => assert_eq!((i.inst, i.venue), (y, 1)),
            _ => panic!("expected an announcement"),
        }
    }

    #[test]
    fn configured_filters_and_rollback_reannounces() {
        let ids = Arc::new(AtomicU32::new(7));
        let mut r = Instruments::new(
            0,
            vec![spec("ETHUSDT", TradeKind::AggTrade)],
            Scale::default(),
            ids,
        );
        let mut out = Vec::new();
        assert!(r.resolve(b"BTCUSDT", &mut out).is_none());
        assert!(r.resolve(b"BTCUSDT", &mut out).is_none());
        assert!(out.is_empty());
        let (id, s) = r.resolve(b"ethusdt", &mut out).unwrap();
        assert_eq!((id, s.trade_source), (InstrumentId(7), TradeKind::AggTrade));
        r.rollback(&out);
        out.clear();
        assert_eq!(r.resolve(b"ETHUSDT", &mut out).unwrap().0, id);
        assert_eq!(out.len(), 1);
        assert!(r.resolve(&[b'X'; 40], &mut out).is_none());
    }

    #[test]
    fn only_requested_symbols_get_state_and_the_rest_is_bounded() {
        let ids = Arc::new(AtomicU32::new(0));
        let mut r = Instruments::new(0, vec![], Scale::default(), ids.clone());
        r.restrict(&["BTCUSDT".to_owned()]);
        let mut out = Vec::new();
        assert!(r.resolve(b"btcusdt", &mut out).is_some());
        for i in 0..10_000 {
            assert!(r
                .resolve(format!("X{i}USDT").as_bytes(), &mut out)
                .is_none());
        }
        assert_eq!(out.len(), 1, "one announcement");
        assert!(r.seen.len() <= MAX_REFUSED, "refused symbols stay bounded");
        assert!(r.spec_for("ETHUSDT").is_none());
        assert!(r.spec_for("BTCUSDT").is_some());
        let mut open = Instruments::new(0, vec![], Scale::default(), ids);
        open.limit(2);
        let accepted = ["A", "B", "C"]
            .iter()
            .filter(|s| open.resolve(s.as_bytes(), &mut out).is_some())
            .count();
        assert_eq!(accepted, 2, "at most max_instruments");
    }
}
