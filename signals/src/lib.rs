//! Embeddable, allocation-free market-data signal library.
//!
//! Fixed-point events in ([`Trade`], [`Quote`], any [`DepthView`]), `f64`
//! signal values out, exactly as specified by `shared/SIGNALS.md` (v1).
//! No I/O, no async runtime, no dependencies.
//!
//! Optional cargo feature `polars`: `signals::batch` computes the same signals over
//! a polars `DataFrame` of events (it drives [`SignalSet`], so the results
//! are identical). It pulls in polars and is off by default.
//!
//! # Layout
//!
//! One module per family, one file per signal, each with its state struct,
//! `update`, `value`, warm-up rule and unit tests:
//!
//! | family | signals |
//! | --- | --- |
//! | [`book`] | [`book::Mid`], [`book::SpreadBps`], [`book::Microprice`], [`book::ImbalanceL1`], [`book::DepthImbalance`] |
//! | [`flow`] | [`flow::Ofi`], [`flow::TradeImbalance`], [`flow::Vwap`] |
//! | [`averages`] | [`averages::Ema`], [`averages::EmaTime`] |
//! | [`volatility`] | [`volatility::Rv`], [`volatility::Zscore`], [`volatility::Bollinger`] |
//! | [`oscillators`] | [`oscillators::Rsi`] |
//! | [`microstructure`] | [`microstructure::KyleLambda`] |
//!
//! [`SignalSet`] bundles the configured signals of one instrument and is the
//! API the engine and bots use; [`SignalSpec`] / [`SignalSpec::parse`] /
//! [`default_set`] describe and validate the configuration.
//!
//! # Design
//!
//! * **Exact arithmetic** (SIGNALS.md §9): integer window sums in `i128`,
//!   exact `N·S2 − S²` / `N·Σxy − Σx·Σy`, one `f64` conversion at the end.
//!   Integer helpers are overflow-checked in debug builds. The only float
//!   window sum (`rv`) uses Neumaier summation with a rebuild every 1 024
//!   samples and whenever the window empties. `ema_time` uses `expm1`.
//! * **No allocation per event**: every window is a fixed-capacity ring
//!   ([`ring`]) allocated in [`SignalSet::new`]. Count windows hold `n`
//!   samples; time windows hold [`SignalSetConfig::window_capacity`]
//!   samples (default [`DEFAULT_WINDOW_CAPACITY`]); on overflow the oldest
//!   sample is evicted early and counted ([`SignalSet::window_overflows`]).
//! * **Dispatch**: the set keeps one configuration-ordered vector of small
//!   enums per triggering series, so an event is one linear pass that
//!   emits rows in `[[signals]]` order through a caller closure.
//! * **Series time**: `τ = max(ts, τ_prev)` per series for windows, warm-up
//!   and time-EMA increments; emitted rows carry no time (the caller writes
//!   the raw `ts` of the event).
//!
//! # Example
//!
//! ```
//! use signals::{default_set, Quote, Scale, Side, SignalSet, SignalSetConfig, Trade};
//!
//! let scale = Scale { price_decimals: 2, qty_decimals: 3 };
//! let mut set = SignalSet::new(&SignalSetConfig::new(scale, default_set())).unwrap();
//! let mid = set.output_id("mid").unwrap();
//! let ema = set.output_id("ema_px_10").unwrap();
//!
//! let mut rows = Vec::new();
//! let q = Quote { ts_ns: 0, bid_px: 10_000, bid_qty: 1_000, ask_px: 10_002, ask_qty: 2_000 };
//! set.on_quote(&q, &mut |id, v| rows.push((id, v)));
//! assert_eq!(set.last(mid), Some(100.01));
//!
//! for i in 0..10 {
//!     let t = Trade { ts_ns: i, px: 10_000 + i, qty: 500, side: Side::Buy };
//!     set.on_trade(&t, &mut |id, v| rows.push((id, v)));
//! }
//! // The count EMA (span 10) is emitted from the 10th trade on.
//! assert!(set.last(ema).is_some());
//! assert_eq!(rows.iter().filter(|(id, _)| *id == ema).count(), 1);
//! ```
#![deny(missing_docs)]

pub mod averages;
#[cfg(feature = "polars")]
pub mod batch;
pub mod book;
pub mod event;
pub mod flow;
pub mod microstructure;
pub(crate) mod num;
pub mod oscillators;
pub mod ring;
pub mod set;
pub mod spec;
pub mod volatility;

pub use event::{DepthView, Quote, Scale, Side, SliceDepth, Trade, Validity};
pub use num::NeumaierSum;
pub use set::{OutputId, SignalSet, SignalSetConfig, DEFAULT_WINDOW_CAPACITY};
pub use spec::{default_set, ParamValue, QuoteSource, SignalKind, SignalSpec, Source, SpecError};
