//! [`SignalSet`]: the per-instrument bundle of configured signals.

use crate::averages::{Ema, EmaTime};
use crate::book::{DepthImbalance, ImbalanceL1, Microprice, Mid, SpreadBps};
use crate::flow::{Ofi, TradeImbalance, Vwap};
use crate::microstructure::KyleLambda;
use crate::oscillators::Rsi;
use crate::spec::{QuoteSource, SignalKind, SignalSpec, Source, SpecError};
use crate::volatility::{Bollinger, Rv, Zscore};
use crate::{DepthView, Quote, Scale, Trade, Validity};

/// Default capacity (samples) of every time window; see
/// [`crate::ring`] for the overflow policy. Memory per time-window signal is
/// `capacity × slot size` (16–32 bytes), i.e. 1–2 MiB at the default.
pub const DEFAULT_WINDOW_CAPACITY: usize = 65_536;

/// Configuration of one instrument's [`SignalSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct SignalSetConfig {
    /// Fixed-point scales of the instrument.
    pub scale: Scale,
    /// Where L1 events come from.
    pub quote_source: QuoteSource,
    /// Signals in output order.
    pub signals: Vec<SignalSpec>,
    /// Capacity (samples) of each time window, allocated at construction.
    pub window_capacity: usize,
}

impl SignalSetConfig {
    /// `quote_source = bookTicker` and [`DEFAULT_WINDOW_CAPACITY`].
    #[must_use]
    pub fn new(scale: Scale, signals: Vec<SignalSpec>) -> Self {
        Self {
            scale,
            quote_source: QuoteSource::BookTicker,
            signals,
            window_capacity: DEFAULT_WINDOW_CAPACITY,
        }
    }
}

/// Index of an output id in [`SignalSet::output_names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub u16);

/// A source-series signal (runs on either series).
#[derive(Clone, Debug)]
enum SrcSig {
    Zscore(Zscore),
    Ema(Ema),
    EmaTime(EmaTime),
    Rsi(Rsi),
    Bollinger(Bollinger),
}

#[derive(Clone, Debug)]
enum TradeSig {
    TradeImbalance(TradeImbalance),
    Vwap(Vwap),
    Kyle(KyleLambda),
    Src(SrcSig),
}

#[derive(Clone, Debug)]
enum BookSig {
    Mid(Mid),
    Spread(SpreadBps),
    Micro(Microprice),
    Imbalance(ImbalanceL1),
    Depth(DepthImbalance),
    Ofi(Ofi),
    Rv(Rv),
    Src(SrcSig),
}

#[derive(Clone, Debug)]
struct Slot<S> {
    out: u16,
    sig: S,
}

/// Writes a row if the value is defined and finite (SIGNALS.md §1.3, §7).
#[inline(always)]
fn emit(last: &mut [f64], out: &mut impl FnMut(OutputId, f64), id: u16, v: Option<f64>) {
    if let Some(v) = v {
        if v.is_finite() {
            last[usize::from(id)] = v;
            out(OutputId(id), v);
        }
    }
}

impl SrcSig {
    #[inline(always)]
    fn update(
        &mut self,
        id: u16,
        ts: i64,
        x: i64,
        last: &mut [f64],
        out: &mut impl FnMut(OutputId, f64),
    ) {
        match self {
            Self::Zscore(s) => emit(last, out, id, s.update(x)),
            Self::Ema(s) => emit(last, out, id, s.update(x)),
            Self::EmaTime(s) => emit(last, out, id, s.update(ts, x)),
            Self::Rsi(s) => emit(last, out, id, s.update(x)),
            Self::Bollinger(s) => {
                if let Some(b) = s.update(x) {
                    if b.upper.is_finite() && b.middle.is_finite() && b.lower.is_finite() {
                        emit(last, out, id, Some(b.upper));
                        emit(last, out, id + 1, Some(b.middle));
                        emit(last, out, id + 2, Some(b.lower));
                    }
                }
            }
        }
    }
}

/// All configured signals of one instrument, fed by its events.
///
/// *Design.* Signals are stored in two configuration-ordered vectors of
/// small enums, one per triggering series: `trade` (trade-triggered kinds and
/// `source = trade_px`) and `book` (L1 kinds, `source = mid` and the L2
/// `imbalance_depth`). An event walks its vector once, so rows come out in
/// `[[signals]]` order, including a depth event that triggers both L2 and
/// (with `quote_source = depth`) L1 signals. Each signal owns its state
/// contiguously (window rings are allocated once in [`SignalSet::new`]); the
/// per-event path performs no allocation. Rows are passed to a caller
/// closure, so the set never buffers output.
///
/// Series time (`τ = max(ts, τ_prev)`) is applied by each time-based signal;
/// since every signal of a series sees the same samples this equals the
/// per-series clamp of SIGNALS.md §1.2.
#[derive(Clone, Debug)]
pub struct SignalSet {
    names: Vec<String>,
    last: Vec<f64>,
    trade: Vec<Slot<TradeSig>>,
    book: Vec<Slot<BookSig>>,
    quote_source: QuoteSource,
    scale: Scale,
}

impl SignalSet {
    /// Builds the set, allocating every window.
    ///
    /// # Errors
    /// A duplicate or invalid id, an out-of-range parameter, a zero
    /// `window_capacity` or more than 65 535 outputs.
    pub fn new(cfg: &SignalSetConfig) -> Result<Self, SpecError> {
        if cfg.window_capacity == 0 {
            return Err(SpecError::InvalidWindowCapacity(0));
        }
        let total: usize = cfg.signals.iter().map(|s| s.kind.output_count()).sum();
        if total > usize::from(u16::MAX) {
            return Err(SpecError::TooManyOutputs(total));
        }
        for (i, s) in cfg.signals.iter().enumerate() {
            s.validate()?;
            if cfg.signals[..i].iter().any(|o| o.id == s.id) {
                return Err(SpecError::DuplicateId(s.id.clone()));
            }
        }
        let scale = cfg.scale;
        let cap = cfg.window_capacity;
        let sp = scale.price_scale() as f64;
        let src_scale = |src: Source| match src {
            Source::TradePx => sp,
            Source::Mid => 2.0 * sp,
        };
        let mut set = Self {
            names: Vec::with_capacity(total),
            last: vec![f64::NAN; total],
            trade: Vec::new(),
            book: Vec::new(),
            quote_source: cfg.quote_source,
            scale,
        };
        for spec in &cfg.signals {
            let out = set.names.len() as u16;
            if let SignalKind::Bollinger { .. } = spec.kind {
                for part in ["upper", "middle", "lower"] {
                    set.names.push(format!("{}.{part}", spec.id));
                }
            } else {
                set.names.push(spec.id.clone());
            }
            let src = match spec.kind {
                SignalKind::Zscore { n, source } => {
                    Some((SrcSig::Zscore(Zscore::new(n as usize)), source))
                }
                SignalKind::Ema { span, source } => {
                    Some((SrcSig::Ema(Ema::new(span, src_scale(source))), source))
                }
                SignalKind::EmaTime { tau_ns, source } => Some((
                    SrcSig::EmaTime(EmaTime::new(tau_ns, src_scale(source))),
                    source,
                )),
                SignalKind::Rsi { n, source } => Some((SrcSig::Rsi(Rsi::new(n)), source)),
                SignalKind::Bollinger { n, k, source } => Some((
                    SrcSig::Bollinger(Bollinger::new(n as usize, k, src_scale(source))),
                    source,
                )),
                _ => None,
            };
            if let Some((sig, source)) = src {
                match source {
                    Source::TradePx => set.trade.push(Slot {
                        out,
                        sig: TradeSig::Src(sig),
                    }),
                    Source::Mid => set.book.push(Slot {
                        out,
                        sig: BookSig::Src(sig),
                    }),
                }
                continue;
            }
            let book = |sig| Some(Slot { out, sig });
            let (b, t) = match spec.kind {
                SignalKind::Mid => (book(BookSig::Mid(Mid::new(scale))), None),
                SignalKind::SpreadBps => (book(BookSig::Spread(SpreadBps::new())), None),
                SignalKind::Microprice => (book(BookSig::Micro(Microprice::new(scale))), None),
                SignalKind::ImbalanceL1 => (book(BookSig::Imbalance(ImbalanceL1::new())), None),
                SignalKind::ImbalanceDepth { levels } => (
                    book(BookSig::Depth(DepthImbalance::new(levels as usize))),
                    None,
                ),
                SignalKind::Ofi { window_ns } => {
                    (book(BookSig::Ofi(Ofi::new(window_ns, scale, cap))), None)
                }
                SignalKind::Rv { window_ns } => (book(BookSig::Rv(Rv::new(window_ns, cap))), None),
                SignalKind::TradeImbalance { window_ns } => (
                    None,
                    Some(TradeSig::TradeImbalance(TradeImbalance::new(
                        window_ns, cap,
                    ))),
                ),
                SignalKind::Vwap { window_ns } => {
                    (None, Some(TradeSig::Vwap(Vwap::new(window_ns, scale, cap))))
                }
                SignalKind::KyleLambda { n } => (
                    None,
                    Some(TradeSig::Kyle(KyleLambda::new(n as usize, scale))),
                ),
                SignalKind::Zscore { .. }
                | SignalKind::Ema { .. }
                | SignalKind::EmaTime { .. }
                | SignalKind::Rsi { .. }
                | SignalKind::Bollinger { .. } => unreachable!("source kinds handled above"),
            };
            if let Some(b) = b {
                set.book.push(b);
            }
            if let Some(sig) = t {
                set.trade.push(Slot { out, sig });
            }
        }
        Ok(set)
    }

    /// Output ids; the index is [`OutputId`]`.0`. A Bollinger signal
    /// contributes `"<id>.upper"`, `"<id>.middle"`, `"<id>.lower"`.
    #[must_use]
    pub fn output_names(&self) -> &[String] {
        &self.names
    }

    /// The id of output `name`, if configured.
    #[must_use]
    pub fn output_id(&self, name: &str) -> Option<OutputId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| OutputId(i as u16))
    }

    /// The last value emitted for `id` (`None` before the first row or for
    /// an unknown id).
    #[inline]
    #[must_use]
    pub fn last(&self, id: OutputId) -> Option<f64> {
        self.last
            .get(usize::from(id.0))
            .copied()
            .filter(|v| !v.is_nan())
    }

    /// The configured quote source.
    #[must_use]
    pub fn quote_source(&self) -> QuoteSource {
        self.quote_source
    }

    /// The instrument's scales.
    #[must_use]
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Total samples evicted early from full time windows (overflow policy
    /// in [`crate::ring`]). Non-zero means `window_capacity` is too small.
    #[must_use]
    pub fn window_overflows(&self) -> u64 {
        let t: u64 = self
            .trade
            .iter()
            .map(|s| match &s.sig {
                TradeSig::TradeImbalance(x) => x.overflows(),
                TradeSig::Vwap(x) => x.overflows(),
                _ => 0,
            })
            .sum();
        let b: u64 = self
            .book
            .iter()
            .map(|s| match &s.sig {
                BookSig::Ofi(x) => x.overflows(),
                BookSig::Rv(x) => x.overflows(),
                _ => 0,
            })
            .sum();
        t + b
    }

    /// One accepted trade: one sample of the trade series; rows of the
    /// trade-triggered signals in configuration order. A trade with
    /// `px ≤ 0` or `qty ≤ 0` is not a sample and emits nothing.
    #[inline]
    pub fn on_trade(&mut self, t: &Trade, out: &mut impl FnMut(OutputId, f64)) {
        if t.px <= 0 || t.qty <= 0 {
            return;
        }
        let last = &mut self.last[..];
        for slot in &mut self.trade {
            let id = slot.out;
            match &mut slot.sig {
                TradeSig::TradeImbalance(s) => emit(last, out, id, s.update(t)),
                TradeSig::Vwap(s) => emit(last, out, id, s.update(t)),
                TradeSig::Kyle(s) => emit(last, out, id, s.update(t)),
                TradeSig::Src(s) => s.update(id, t.ts_ns, t.px, last, out),
            }
        }
    }

    /// One bookTicker L1 event (`quote_source = bookTicker`). A valid quote
    /// is one sample of the L1 series and emits the L1 rows; an invalid one
    /// emits nothing and is not a sample. With `quote_source = depth`
    /// bookTicker frames are ignored (§2.4): nothing is updated or emitted
    /// and the quote's validity is returned.
    #[inline]
    pub fn on_quote(&mut self, q: &Quote, out: &mut impl FnMut(OutputId, f64)) -> Validity {
        let v = q.validity();
        if v == Validity::Valid && self.quote_source == QuoteSource::BookTicker {
            self.run_book(q, None::<&crate::SliceDepth<'_>>, out);
        }
        v
    }

    /// One *applied live* L2 event at exchange time `ts_ns` with the book
    /// after the diff. If the top is valid, emits the L2 signals and, with
    /// `quote_source = depth`, also the L1 signals on the book top (one L1
    /// sample), all in configuration order. Otherwise emits nothing.
    #[inline]
    pub fn on_depth(
        &mut self,
        ts_ns: i64,
        book: &impl DepthView,
        out: &mut impl FnMut(OutputId, f64),
    ) -> Validity {
        let q = Quote::from_depth(ts_ns, book);
        let v = q.validity();
        if v == Validity::Valid {
            self.run_book(&q, Some(book), out);
        }
        v
    }

    /// Walks the book slots. `depth = None`: an L1 event (bookTicker);
    /// `Some`: an L2 event, which also drives the L1 slots iff
    /// `quote_source = depth`.
    #[inline(always)]
    fn run_book<D: DepthView + ?Sized>(
        &mut self,
        q: &Quote,
        depth: Option<&D>,
        out: &mut impl FnMut(OutputId, f64),
    ) {
        let l1 = depth.is_none() || self.quote_source == QuoteSource::Depth;
        let last = &mut self.last[..];
        for slot in &mut self.book {
            let id = slot.out;
            match &mut slot.sig {
                BookSig::Depth(s) => {
                    if let Some(book) = depth {
                        emit(last, out, id, s.update(book));
                    }
                }
                _ if !l1 => {}
                BookSig::Mid(s) => emit(last, out, id, s.update(q)),
                BookSig::Spread(s) => emit(last, out, id, s.update(q)),
                BookSig::Micro(s) => emit(last, out, id, s.update(q)),
                BookSig::Imbalance(s) => emit(last, out, id, s.update(q)),
                BookSig::Ofi(s) => emit(last, out, id, s.update(q)),
                BookSig::Rv(s) => emit(last, out, id, s.update(q.ts_ns, q.m2())),
                BookSig::Src(s) => s.update(id, q.ts_ns, q.m2(), last, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_set, ParamValue, Side, SliceDepth};

    fn rows_of(
        set: &mut SignalSet,
        f: impl FnOnce(&mut SignalSet, &mut Vec<OutputId>),
    ) -> Vec<String> {
        let mut ids = Vec::new();
        f(set, &mut ids);
        ids.iter()
            .map(|id| set.output_names()[usize::from(id.0)].clone())
            .collect()
    }

    #[test]
    fn default_outputs_and_ids() {
        let set = SignalSet::new(&SignalSetConfig::new(Scale::default(), default_set())).unwrap();
        assert_eq!(set.output_names().len(), 17);
        assert_eq!(set.output_id("bb_20_2.middle"), Some(OutputId(14)));
        assert_eq!(set.output_id("kyle_lambda_300"), Some(OutputId(16)));
        assert_eq!(set.output_id("bb_20_2"), None);
        assert_eq!(set.last(OutputId(0)), None);
        assert_eq!(set.last(OutputId(999)), None);
    }

    #[test]
    fn rejects_duplicates_and_bad_specs() {
        let mut sigs = default_set();
        sigs.push(sigs[0].clone());
        let e = SignalSet::new(&SignalSetConfig::new(Scale::default(), sigs)).unwrap_err();
        assert_eq!(e, SpecError::DuplicateId("mid".into()));
        let bad = vec![SignalSpec {
            id: "z".into(),
            kind: SignalKind::Zscore {
                n: 1,
                source: Source::Mid,
            },
        }];
        assert!(SignalSet::new(&SignalSetConfig::new(Scale::default(), bad)).is_err());
        let mut cfg = SignalSetConfig::new(Scale::default(), default_set());
        cfg.window_capacity = 0;
        assert!(SignalSet::new(&cfg).is_err());
    }

    #[test]
    fn depth_mode_rows_follow_config_order() {
        let p = |id, k, ps: &[(&str, ParamValue<'_>)]| SignalSpec::parse(id, k, ps).unwrap();
        let sigs = vec![
            p("a_mid", "mid", &[]),
            p("b_l5", "imbalance_depth", &[]),
            p("c_l1", "imbalance_l1", &[]),
        ];
        let scale = Scale {
            price_decimals: 2,
            qty_decimals: 3,
        };
        let bids = [(10_000, 1_000), (9_999, 2_000)];
        let asks = [(10_001, 700)];
        let book = SliceDepth {
            bids: &bids,
            asks: &asks,
        };

        let mut cfg = SignalSetConfig::new(scale, sigs);
        let mut bt = SignalSet::new(&cfg).unwrap();
        assert_eq!(
            rows_of(&mut bt, |s, r| {
                s.on_depth(1, &book, &mut |id, _| r.push(id));
            }),
            ["b_l5"]
        );
        let q = Quote {
            ts_ns: 2,
            bid_px: 10_000,
            bid_qty: 1,
            ask_px: 10_001,
            ask_qty: 1,
        };
        assert_eq!(
            rows_of(&mut bt, |s, r| {
                s.on_quote(&q, &mut |id, _| r.push(id));
            }),
            ["a_mid", "c_l1"]
        );

        cfg.quote_source = QuoteSource::Depth;
        let mut d = SignalSet::new(&cfg).unwrap();
        assert_eq!(
            rows_of(&mut d, |s, r| {
                s.on_depth(1, &book, &mut |id, _| r.push(id));
            }),
            ["a_mid", "b_l5", "c_l1"]
        );
        assert_eq!(
            rows_of(&mut d, |s, r| {
                s.on_quote(&q, &mut |id, _| r.push(id));
            }),
            Vec::<String>::new()
        );
        let l1 = d.last(d.output_id("c_l1").unwrap()).unwrap();
        assert!((l1 - 0.176_470_588_235_294_13).abs() < 1e-15);

        let crossed = SliceDepth {
            bids: &bids,
            asks: &[(10_000, 5)],
        };
        let mut rows = 0;
        assert_eq!(
            d.on_depth(3, &crossed, &mut |_, _| rows += 1),
            Validity::Crossed
        );
        let empty = SliceDepth {
            bids: &[],
            asks: &asks,
        };
        assert_eq!(
            d.on_depth(3, &empty, &mut |_, _| rows += 1),
            Validity::EmptySide
        );
        assert_eq!(rows, 0);
    }

    #[test]
    fn bad_trades_and_quotes_are_not_samples() {
        let mut set =
            SignalSet::new(&SignalSetConfig::new(Scale::default(), default_set())).unwrap();
        let mut n = 0;
        set.on_trade(
            &Trade {
                ts_ns: 0,
                px: 1,
                qty: 0,
                side: Side::Buy,
            },
            &mut |_, _| n += 1,
        );
        set.on_trade(
            &Trade {
                ts_ns: 0,
                px: -1,
                qty: 5,
                side: Side::Sell,
            },
            &mut |_, _| n += 1,
        );
        set.on_trade(
            &Trade {
                ts_ns: 0,
                px: i64::MAX,
                qty: -5,
                side: Side::Sell,
            },
            &mut |_, _| n += 1,
        );
        let q = Quote {
            ts_ns: 0,
            bid_px: 5,
            bid_qty: 1,
            ask_px: 5,
            ask_qty: 1,
        };
        assert_eq!(set.on_quote(&q, &mut |_, _| n += 1), Validity::Crossed);
        assert_eq!(
            set.on_quote(&Quote { bid_qty: 0, ..q }, &mut |_, _| n += 1),
            Validity::EmptySide
        );
        assert_eq!(n, 0);
    }
}
