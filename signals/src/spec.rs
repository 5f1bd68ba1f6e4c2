//! Signal specifications: typed kinds and parameters, validation of the
//! `[[signals]]` configuration (SIGNALS.md §11) and the default set (§3).

use std::fmt;

/// Largest accepted count window (`n` of `zscore`, `bollinger`,
/// `kyle_lambda`). Count windows are allocated up front, so an absurd `n`
/// is reported as a configuration error instead of aborting on allocation.
pub const MAX_COUNT_WINDOW: u32 = 1 << 24;

/// Source series of a source-series signal (SIGNALS.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The trade series, `X = P`, scale `Sp`.
    TradePx,
    /// The L1 series, `X = M2 = B + A`, scale `2·Sp`.
    Mid,
}

impl Source {
    /// Configuration name (`"trade_px"` / `"mid"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::TradePx => "trade_px",
            Self::Mid => "mid",
        }
    }
}

/// Where L1 events come from (SIGNALS.md §2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QuoteSource {
    /// Each bookTicker frame is an L1 event (default).
    #[default]
    BookTicker,
    /// Each applied live depth diff is an L1 event (top of the L2 book).
    Depth,
}

/// A signal kind with its typed parameters (SIGNALS.md §11).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SignalKind {
    /// `mid`.
    Mid,
    /// `spread_bps`.
    SpreadBps,
    /// `microprice`.
    Microprice,
    /// `imbalance_l1`.
    ImbalanceL1,
    /// `imbalance_depth` (L2 event).
    ImbalanceDepth {
        /// Levels per side (default 5).
        levels: u32,
    },
    /// `ofi` (L1 sample).
    Ofi {
        /// Window length, ns (default 10 s).
        window_ns: i64,
    },
    /// `rv` (L1 sample).
    Rv {
        /// Window length, ns (default 60 s).
        window_ns: i64,
    },
    /// `zscore`.
    Zscore {
        /// Window length in samples, ≥ 2 (default 100).
        n: u32,
        /// Source series (default `mid`).
        source: Source,
    },
    /// `ema` (count based).
    Ema {
        /// Span `N`, `α = 2/(N+1)` (default 10).
        span: u32,
        /// Source series (default `trade_px`).
        source: Source,
    },
    /// `ema_time`.
    EmaTime {
        /// Decay constant, ns (default 5 s).
        tau_ns: i64,
        /// Source series (default `mid`).
        source: Source,
    },
    /// `trade_imbalance` (trade).
    TradeImbalance {
        /// Window length, ns (default 10 s).
        window_ns: i64,
    },
    /// `vwap` (trade).
    Vwap {
        /// Window length, ns (default 60 s).
        window_ns: i64,
    },
    /// `rsi`.
    Rsi {
        /// Number of changes (default 14).
        n: u32,
        /// Source series (default `trade_px`).
        source: Source,
    },
    /// `bollinger` (three outputs).
    Bollinger {
        /// Window length in samples, ≥ 2 (default 20).
        n: u32,
        /// Band width in standard deviations, finite and > 0 (default 2.0).
        k: f64,
        /// Source series (default `trade_px`).
        source: Source,
    },
    /// `kyle_lambda` (trade).
    KyleLambda {
        /// Number of trade pairs (default 300).
        n: u32,
    },
}

/// Every kind name, in the order of SIGNALS.md §11.
pub const KIND_NAMES: [&str; 15] = [
    "mid",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "imbalance_depth",
    "ofi",
    "rv",
    "zscore",
    "ema",
    "ema_time",
    "trade_imbalance",
    "vwap",
    "rsi",
    "bollinger",
    "kyle_lambda",
];

/// What triggers a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Each accepted trade (trade series).
    Trade,
    /// Each valid L1 sample (L1 series).
    L1,
    /// Each applied live L2 event with a valid top.
    L2,
}

impl SignalKind {
    /// Configuration name of the kind.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Mid => "mid",
            Self::SpreadBps => "spread_bps",
            Self::Microprice => "microprice",
            Self::ImbalanceL1 => "imbalance_l1",
            Self::ImbalanceDepth { .. } => "imbalance_depth",
            Self::Ofi { .. } => "ofi",
            Self::Rv { .. } => "rv",
            Self::Zscore { .. } => "zscore",
            Self::Ema { .. } => "ema",
            Self::EmaTime { .. } => "ema_time",
            Self::TradeImbalance { .. } => "trade_imbalance",
            Self::Vwap { .. } => "vwap",
            Self::Rsi { .. } => "rsi",
            Self::Bollinger { .. } => "bollinger",
            Self::KyleLambda { .. } => "kyle_lambda",
        }
    }

    /// The event that triggers this kind.
    #[must_use]
    pub const fn trigger(&self) -> Trigger {
        match self {
            Self::Mid
            | Self::SpreadBps
            | Self::Microprice
            | Self::ImbalanceL1
            | Self::Ofi { .. }
            | Self::Rv { .. } => Trigger::L1,
            Self::ImbalanceDepth { .. } => Trigger::L2,
            Self::TradeImbalance { .. } | Self::Vwap { .. } | Self::KyleLambda { .. } => {
                Trigger::Trade
            }
            Self::Zscore { source, .. }
            | Self::Ema { source, .. }
            | Self::EmaTime { source, .. }
            | Self::Rsi { source, .. }
            | Self::Bollinger { source, .. } => match source {
                Source::TradePx => Trigger::Trade,
                Source::Mid => Trigger::L1,
            },
        }
    }

    /// Number of output ids (3 for `bollinger`, else 1).
    #[must_use]
    pub const fn output_count(&self) -> usize {
        match self {
            Self::Bollinger { .. } => 3,
            _ => 1,
        }
    }

    /// The kind named `name` with every parameter at its default.
    #[must_use]
    pub fn default_for(name: &str) -> Option<Self> {
        Some(match name {
            "mid" => Self::Mid,
            "spread_bps" => Self::SpreadBps,
            "microprice" => Self::Microprice,
            "imbalance_l1" => Self::ImbalanceL1,
            "imbalance_depth" => Self::ImbalanceDepth { levels: 5 },
            "ofi" => Self::Ofi {
                window_ns: 10 * SEC,
            },
            "rv" => Self::Rv {
                window_ns: 60 * SEC,
            },
            "zscore" => Self::Zscore {
                n: 100,
                source: Source::Mid,
            },
            "ema" => Self::Ema {
                span: 10,
                source: Source::TradePx,
            },
            "ema_time" => Self::EmaTime {
                tau_ns: 5 * SEC,
                source: Source::Mid,
            },
            "trade_imbalance" => Self::TradeImbalance {
                window_ns: 10 * SEC,
            },
            "vwap" => Self::Vwap {
                window_ns: 60 * SEC,
            },
            "rsi" => Self::Rsi {
                n: 14,
                source: Source::TradePx,
            },
            "bollinger" => Self::Bollinger {
                n: 20,
                k: 2.0,
                source: Source::TradePx,
            },
            "kyle_lambda" => Self::KyleLambda { n: 300 },
            _ => return None,
        })
    }

    /// Parameter names accepted by this kind.
    #[must_use]
    pub const fn param_names(&self) -> &'static [&'static str] {
        match self {
            Self::Mid | Self::SpreadBps | Self::Microprice | Self::ImbalanceL1 => &[],
            Self::ImbalanceDepth { .. } => &["levels"],
            Self::Ofi { .. }
            | Self::Rv { .. }
            | Self::TradeImbalance { .. }
            | Self::Vwap { .. } => &["window_ns"],
            Self::Zscore { .. } | Self::Rsi { .. } => &["n", "source"],
            Self::Ema { .. } => &["span", "source"],
            Self::EmaTime { .. } => &["tau_ns", "source"],
            Self::Bollinger { .. } => &["n", "k", "source"],
            Self::KyleLambda { .. } => &["n"],
        }
    }

    /// Checks the parameter ranges of §11 (for kinds built directly rather
    /// than through [`SignalSpec::parse`]).
    ///
    /// # Errors
    /// [`SpecError::InvalidParam`] naming the offending parameter.
    pub fn validate(&self) -> Result<(), SpecError> {
        let pos = |param: &'static str, v: i64| {
            if v > 0 {
                Ok(())
            } else {
                Err(invalid(
                    param,
                    format!("must be a positive integer, got {v}"),
                ))
            }
        };
        let count = |param: &'static str, v: u32, min: u32, max: u32| {
            if v < min {
                Err(invalid(
                    param,
                    format!("must be an integer >= {min}, got {v}"),
                ))
            } else if v > max {
                Err(invalid(param, format!("must be <= {max}, got {v}")))
            } else {
                Ok(())
            }
        };
        match *self {
            Self::Mid | Self::SpreadBps | Self::Microprice | Self::ImbalanceL1 => Ok(()),
            Self::ImbalanceDepth { levels } => count("levels", levels, 1, u32::MAX),
            Self::Ofi { window_ns }
            | Self::Rv { window_ns }
            | Self::TradeImbalance { window_ns }
            | Self::Vwap { window_ns } => pos("window_ns", window_ns),
            Self::EmaTime { tau_ns, .. } => pos("tau_ns", tau_ns),
            Self::Zscore { n, .. } => count("n", n, 2, MAX_COUNT_WINDOW),
            Self::Ema { span, .. } => count("span", span, 1, u32::MAX),
            Self::Rsi { n, .. } => count("n", n, 1, u32::MAX),
            Self::KyleLambda { n } => count("n", n, 1, MAX_COUNT_WINDOW),
            Self::Bollinger { n, k, .. } => {
                count("n", n, 2, MAX_COUNT_WINDOW)?;
                if k.is_finite() && k > 0.0 {
                    Ok(())
                } else {
                    Err(invalid(
                        "k",
                        format!("must be a finite number > 0, got {k}"),
                    ))
                }
            }
        }
    }
}

const SEC: i64 = 1_000_000_000;

/// One configured signal: its output id and kind.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalSpec {
    /// Unique id, `[a-z0-9_]+`; also the output id (Bollinger appends
    /// `.upper`/`.middle`/`.lower`).
    pub id: String,
    /// Kind and parameters.
    pub kind: SignalKind,
}

/// A raw configuration parameter value (the engine maps TOML into this).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue<'a> {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(&'a str),
}

impl fmt::Display for ParamValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v:?}"),
            Self::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A configuration error in a signal specification or signal set.
/// `Display` gives a one-line message without key path (the caller adds it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// The id does not match `[a-z0-9_]+`.
    InvalidId(String),
    /// Two signals share an id.
    DuplicateId(String),
    /// Unknown `kind`.
    UnknownKind(String),
    /// A parameter that the kind does not accept.
    UnknownParam {
        /// The kind.
        kind: &'static str,
        /// The parameter as given.
        param: String,
    },
    /// A parameter given twice.
    DuplicateParam(String),
    /// A parameter with a wrong type or out of range.
    InvalidParam {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `window_capacity` must be ≥ 1.
    InvalidWindowCapacity(usize),
    /// More than 65 535 output ids.
    TooManyOutputs(usize),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidId(id) => {
                write!(
                    f,
                    "invalid id {id:?}: must be non-empty and match [a-z0-9_]+"
                )
            }
            Self::DuplicateId(id) => write!(f, "duplicate id {id:?}"),
            Self::UnknownKind(k) => {
                write!(
                    f,
                    "unknown kind {k:?} (expected one of: {})",
                    KIND_NAMES.join(", ")
                )
            }
            Self::UnknownParam { kind, param } => {
                let allowed = SignalKind::default_for(kind).map_or(&[][..], |k| k.param_names());
                if allowed.is_empty() {
                    write!(
                        f,
                        "unknown parameter {param:?}: kind {kind:?} takes no parameters"
                    )
                } else {
                    write!(
                        f,
                        "unknown parameter {param:?} for kind {kind:?} (allowed: {})",
                        allowed.join(", ")
                    )
                }
            }
            Self::DuplicateParam(p) => write!(f, "parameter {p:?} given more than once"),
            Self::InvalidParam { param, reason } => write!(f, "params.{param}: {reason}"),
            Self::InvalidWindowCapacity(c) => {
                write!(f, "window_capacity must be >= 1, got {c}")
            }
            Self::TooManyOutputs(n) => write!(f, "too many output ids ({n}, max 65535)"),
        }
    }
}

impl std::error::Error for SpecError {}

#[cold]
fn invalid(param: &'static str, reason: String) -> SpecError {
    SpecError::InvalidParam { param, reason }
}

/// `true` iff `id` matches `[a-z0-9_]+`.
#[must_use]
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn int_param(param: &'static str, v: ParamValue<'_>) -> Result<i64, SpecError> {
    match v {
        ParamValue::Int(i) if i > 0 => Ok(i),
        ParamValue::Int(i) => Err(invalid(
            param,
            format!("must be a positive integer, got {i}"),
        )),
        other => Err(invalid(
            param,
            format!("must be a positive integer, got {other}"),
        )),
    }
}

fn u32_param(param: &'static str, v: ParamValue<'_>) -> Result<u32, SpecError> {
    let i = int_param(param, v)?;
    u32::try_from(i).map_err(|_| invalid(param, format!("must be <= {}, got {i}", u32::MAX)))
}

fn source_param(v: ParamValue<'_>) -> Result<Source, SpecError> {
    match v {
        ParamValue::Str("mid") => Ok(Source::Mid),
        ParamValue::Str("trade_px") => Ok(Source::TradePx),
        other => Err(invalid(
            "source",
            format!("expected \"trade_px\" or \"mid\", got {other}"),
        )),
    }
}

fn float_param(param: &'static str, v: ParamValue<'_>) -> Result<f64, SpecError> {
    match v {
        ParamValue::Float(f) => Ok(f),
        ParamValue::Int(i) => Ok(i as f64),
        other @ ParamValue::Str(_) => Err(invalid(param, format!("must be a number, got {other}"))),
    }
}

impl SignalSpec {
    /// Builds and validates a spec from configuration values (SIGNALS.md
    /// §11): omitted parameters take their defaults; an unknown kind or
    /// parameter, a bad id or an out-of-range value is an error naming it.
    ///
    /// ```
    /// use signals::{ParamValue, SignalKind, SignalSpec, Source};
    /// let s = SignalSpec::parse("z", "zscore", &[("n", ParamValue::Int(50))]).unwrap();
    /// assert_eq!(s.kind, SignalKind::Zscore { n: 50, source: Source::Mid });
    /// let e = SignalSpec::parse("z", "zscore", &[("m", ParamValue::Int(50))]).unwrap_err();
    /// assert!(e.to_string().contains("unknown parameter \"m\""));
    /// ```
    ///
    /// # Errors
    /// A [`SpecError`] describing the first problem found.
    pub fn parse(
        id: &str,
        kind: &str,
        params: &[(&str, ParamValue<'_>)],
    ) -> Result<Self, SpecError> {
        if !is_valid_id(id) {
            return Err(SpecError::InvalidId(id.to_owned()));
        }
        let mut k =
            SignalKind::default_for(kind).ok_or_else(|| SpecError::UnknownKind(kind.to_owned()))?;
        for (i, (name, _)) in params.iter().enumerate() {
            if params[..i].iter().any(|(n, _)| n == name) {
                return Err(SpecError::DuplicateParam((*name).to_owned()));
            }
        }
        let kind_name = k.name();
        for &(name, v) in params {
            let unknown = || SpecError::UnknownParam {
                kind: kind_name,
                param: name.to_owned(),
            };
            match (&mut k, name) {
                (SignalKind::ImbalanceDepth { levels }, "levels") => {
                    *levels = u32_param("levels", v)?;
                }
                (
                    SignalKind::Ofi { window_ns }
                    | SignalKind::Rv { window_ns }
                    | SignalKind::TradeImbalance { window_ns }
                    | SignalKind::Vwap { window_ns },
                    "window_ns",
                ) => *window_ns = int_param("window_ns", v)?,
                (SignalKind::EmaTime { tau_ns, .. }, "tau_ns") => {
                    *tau_ns = int_param("tau_ns", v)?;
                }
                (SignalKind::Ema { span, .. }, "span") => *span = u32_param("span", v)?,
                (
                    SignalKind::Zscore { n, .. }
                    | SignalKind::Rsi { n, .. }
                    | SignalKind::Bollinger { n, .. }
                    | SignalKind::KyleLambda { n },
                    "n",
                ) => *n = u32_param("n", v)?,
                (SignalKind::Bollinger { k, .. }, "k") => *k = float_param("k", v)?,
                (
                    SignalKind::Zscore { source, .. }
                    | SignalKind::Ema { source, .. }
                    | SignalKind::EmaTime { source, .. }
                    | SignalKind::Rsi { source, .. }
                    | SignalKind::Bollinger { source, .. },
                    "source",
                ) => *source = source_param(v)?,
                _ => return Err(unknown()),
            }
        }
        k.validate()?;
        Ok(Self {
            id: id.to_owned(),
            kind: k,
        })
    }

    /// Checks the id and the parameter ranges.
    ///
    /// # Errors
    /// [`SpecError::InvalidId`] or [`SpecError::InvalidParam`].
    pub fn validate(&self) -> Result<(), SpecError> {
        if !is_valid_id(&self.id) {
            return Err(SpecError::InvalidId(self.id.clone()));
        }
        self.kind.validate()
    }
}

/// The default signal set (SIGNALS.md §3, `shared/vectors/default_config.toml`),
/// in output order.
#[must_use]
pub fn default_set() -> Vec<SignalSpec> {
    let s = |id: &str, kind| SignalSpec {
        id: id.to_owned(),
        kind,
    };
    vec![
        s("mid", SignalKind::Mid),
        s("spread_bps", SignalKind::SpreadBps),
        s("microprice", SignalKind::Microprice),
        s("imbalance_l1", SignalKind::ImbalanceL1),
        s("imbalance_l5", SignalKind::ImbalanceDepth { levels: 5 }),
        s(
            "ofi_l1_10s",
            SignalKind::Ofi {
                window_ns: 10 * SEC,
            },
        ),
        s(
            "rv_60s",
            SignalKind::Rv {
                window_ns: 60 * SEC,
            },
        ),
        s(
            "zscore_mid_100",
            SignalKind::Zscore {
                n: 100,
                source: Source::Mid,
            },
        ),
        s(
            "ema_mid_5s",
            SignalKind::EmaTime {
                tau_ns: 5 * SEC,
                source: Source::Mid,
            },
        ),
        s(
            "trade_imbalance_10s",
            SignalKind::TradeImbalance {
                window_ns: 10 * SEC,
            },
        ),
        s(
            "vwap_60s",
            SignalKind::Vwap {
                window_ns: 60 * SEC,
            },
        ),
        s(
            "ema_px_10",
            SignalKind::Ema {
                span: 10,
                source: Source::TradePx,
            },
        ),
        s(
            "rsi_14",
            SignalKind::Rsi {
                n: 14,
                source: Source::TradePx,
            },
        ),
        s(
            "bb_20_2",
            SignalKind::Bollinger {
                n: 20,
                k: 2.0,
                source: Source::TradePx,
            },
        ),
        s("kyle_lambda_300", SignalKind::KyleLambda { n: 300 }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParamValue::{Float, Int, Str};

    #[test]
    fn default_set_matches_parse_of_default_config() {
        type Entry<'a> = (&'a str, &'a str, Vec<(&'a str, ParamValue<'a>)>);
        let cfg: [Entry<'_>; 15] = [
            ("mid", "mid", vec![]),
            ("spread_bps", "spread_bps", vec![]),
            ("microprice", "microprice", vec![]),
            ("imbalance_l1", "imbalance_l1", vec![]),
            ("imbalance_l5", "imbalance_depth", vec![("levels", Int(5))]),
            (
                "ofi_l1_10s",
                "ofi",
                vec![("window_ns", Int(10_000_000_000))],
            ),
            ("rv_60s", "rv", vec![("window_ns", Int(60_000_000_000))]),
            (
                "zscore_mid_100",
                "zscore",
                vec![("n", Int(100)), ("source", Str("mid"))],
            ),
            (
                "ema_mid_5s",
                "ema_time",
                vec![("tau_ns", Int(5_000_000_000)), ("source", Str("mid"))],
            ),
            (
                "trade_imbalance_10s",
                "trade_imbalance",
                vec![("window_ns", Int(10_000_000_000))],
            ),
            ("vwap_60s", "vwap", vec![("window_ns", Int(60_000_000_000))]),
            (
                "ema_px_10",
                "ema",
                vec![("span", Int(10)), ("source", Str("trade_px"))],
            ),
            (
                "rsi_14",
                "rsi",
                vec![("n", Int(14)), ("source", Str("trade_px"))],
            ),
            (
                "bb_20_2",
                "bollinger",
                vec![
                    ("n", Int(20)),
                    ("k", Float(2.0)),
                    ("source", Str("trade_px")),
                ],
            ),
            ("kyle_lambda_300", "kyle_lambda", vec![("n", Int(300))]),
        ];
        let parsed: Vec<_> = cfg
            .iter()
            .map(|(id, k, p)| SignalSpec::parse(id, k, p).unwrap())
            .collect();
        assert_eq!(parsed, default_set());
        // Omitted params take the defaults.
        let bare: Vec<_> = default_set()
            .iter()
            .map(|s| SignalSpec::parse(&s.id, s.kind.name(), &[]).unwrap())
            .collect();
        assert_eq!(bare, default_set());
        let outputs: usize = default_set().iter().map(|s| s.kind.output_count()).sum();
        assert_eq!(outputs, 17);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |id, k, p: &[(&str, ParamValue<'_>)]| SignalSpec::parse(id, k, p).unwrap_err();
        assert_eq!(e("Bad", "mid", &[]), SpecError::InvalidId("Bad".into()));
        assert_eq!(e("", "mid", &[]), SpecError::InvalidId(String::new()));
        assert_eq!(e("x", "macd", &[]), SpecError::UnknownKind("macd".into()));
        assert!(e("x", "macd", &[]).to_string().contains("\"macd\""));
        let u = e("x", "vwap", &[("n", Int(3))]);
        assert_eq!(
            u.to_string(),
            "unknown parameter \"n\" for kind \"vwap\" (allowed: window_ns)"
        );
        assert!(e("x", "mid", &[("n", Int(3))])
            .to_string()
            .contains("takes no parameters"));
        assert!(matches!(
            e("x", "zscore", &[("n", Int(1))]),
            SpecError::InvalidParam { param: "n", .. }
        ));
        assert!(matches!(
            e("x", "bollinger", &[("n", Int(1))]),
            SpecError::InvalidParam { param: "n", .. }
        ));
        assert!(matches!(
            e("x", "rsi", &[("n", Int(0))]),
            SpecError::InvalidParam { param: "n", .. }
        ));
        assert!(matches!(
            e("x", "vwap", &[("window_ns", Int(-5))]),
            SpecError::InvalidParam { .. }
        ));
        assert!(matches!(
            e("x", "vwap", &[("window_ns", Float(5.0))]),
            SpecError::InvalidParam { .. }
        ));
        assert!(matches!(
            e("x", "bollinger", &[("k", Float(0.0))]),
            SpecError::InvalidParam { param: "k", .. }
        ));
        assert!(matches!(
            e("x", "bollinger", &[("k", Float(f64::NAN))]),
            SpecError::InvalidParam { param: "k", .. }
        ));
        assert!(matches!(
            e("x", "bollinger", &[("k", Str("2"))]),
            SpecError::InvalidParam { param: "k", .. }
        ));
        assert!(matches!(
            e("x", "ema", &[("source", Str("bid"))]),
            SpecError::InvalidParam {
                param: "source",
                ..
            }
        ));
        assert!(matches!(
            e("x", "ema", &[("span", Int(1)), ("span", Int(2))]),
            SpecError::DuplicateParam(_)
        ));
        assert!(matches!(
            e("x", "kyle_lambda", &[("n", Int(1 << 40))]),
            SpecError::InvalidParam { .. }
        ));
        // Integer k is accepted.
        let b = SignalSpec::parse("b", "bollinger", &[("k", Int(3))]).unwrap();
        assert_eq!(
            b.kind,
            SignalKind::Bollinger {
                n: 20,
                k: 3.0,
                source: Source::TradePx
            }
        );
    }
}
