//! Binance message fields, read in one pass: from a simd-json tape, or
//! straight from the bytes of a compact combined-stream frame
//! ([`super::combined`]).
//!
//! Binance reuses one-letter keys across message kinds with different types
//! (`a` is the aggTrade id, the bookTicker ask price and the depth asks), so
//! the scan keeps each field as the raw value ([`Value`]: a tape slice or a
//! [`Flat`] value) and the normalizer reads it with the type its kind
//! requires. One normalizer serves both: it is generic over the value.

use simd_json::Node;

use crate::event::Scale;
use crate::tape::span;
pub(super) use crate::tape::Raw;
use crate::venue::ParseError;

/// One field value as the normalizer reads it.
pub(super) trait Value<'i>: Copy {
    /// A string value.
    fn str(self, field: &'static str) -> Result<&'i str, ParseError>;
    /// A non-negative integer value.
    fn u64(self, field: &'static str) -> Result<u64, ParseError>;
    /// An integer value that fits in `i64`.
    fn i64(self, field: &'static str) -> Result<i64, ParseError>;
    /// A boolean value.
    fn bool(self, field: &'static str) -> Result<bool, ParseError>;
    /// Calls `f(price, qty)` for each `[price, qty, ...]` entry of a level array.
    fn levels(
        self,
        field: &'static str,
        f: impl FnMut(&'i str, &'i str) -> Result<(), ParseError>,
    ) -> Result<(), ParseError>;
    /// Raises `wire` to the decimals of a level array's strings (nothing
    /// for any other value).
    fn learn_levels(self, wire: &mut Scale);
    /// The text of a string value (`None` for any other value).
    fn text(self) -> Option<&'i str> {
        self.str("").ok()
    }
}

impl<'i> Value<'i> for Raw<'_, 'i> {
    #[inline]
    fn str(self, field: &'static str) -> Result<&'i str, ParseError> {
        crate::tape::as_str(self, field)
    }
    #[inline]
    fn u64(self, field: &'static str) -> Result<u64, ParseError> {
        crate::tape::as_u64(self, field)
    }
    #[inline]
    fn i64(self, field: &'static str) -> Result<i64, ParseError> {
        crate::tape::as_i64(self, field)
    }
    #[inline]
    fn bool(self, field: &'static str) -> Result<bool, ParseError> {
        crate::tape::as_bool(self, field)
    }
    #[inline]
    fn levels(
        self,
        field: &'static str,
        f: impl FnMut(&'i str, &'i str) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        crate::tape::for_each_level(self, field, f)
    }
    fn learn_levels(self, wire: &mut Scale) {
        crate::tape::learn_levels(wire, self);
    }
    fn text(self) -> Option<&'i str> {
        match self.first() {
            Some(Node::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// A value of a compact combined-stream frame, read straight from its
/// bytes ([`super::combined::scan`] has checked its syntax).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Flat<'i> {
    /// A plain string (no escapes, ASCII).
    Str(&'i str),
    /// An unsigned integer.
    U64(u64),
    /// `true` / `false`.
    Bool(bool),
    /// A level array's text between its brackets: `["px","qty"],…` (empty
    /// for `[]`); every entry has exactly two plain strings.
    Levels(&'i [u8]),
}

impl<'i> Value<'i> for Flat<'i> {
    #[inline]
    fn str(self, field: &'static str) -> Result<&'i str, ParseError> {
        match self {
            Flat::Str(s) => Ok(s),
            _ => Err(ParseError::wrong_type(field)),
        }
    }
    #[inline]
    fn u64(self, field: &'static str) -> Result<u64, ParseError> {
        match self {
            Flat::U64(n) => Ok(n),
            _ => Err(ParseError::wrong_type(field)),
        }
    }
    #[inline]
    fn i64(self, field: &'static str) -> Result<i64, ParseError> {
        match self {
            Flat::U64(n) => i64::try_from(n).map_err(|_| ParseError::wrong_type(field)),
            _ => Err(ParseError::wrong_type(field)),
        }
    }
    #[inline]
    fn bool(self, field: &'static str) -> Result<bool, ParseError> {
        match self {
            Flat::Bool(b) => Ok(b),
            _ => Err(ParseError::wrong_type(field)),
        }
    }
    #[inline]
    fn levels(
        self,
        field: &'static str,
        mut f: impl FnMut(&'i str, &'i str) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        let Flat::Levels(b) = self else {
            return Err(ParseError::wrong_type(field));
        };
        for entry in super::combined::Levels::new(b) {
            let (px, qty) = entry.ok_or_else(|| ParseError::wrong_type(field))?;
            f(px, qty)?;
        }
        Ok(())
    }
    fn learn_levels(self, wire: &mut Scale) {
        let Flat::Levels(b) = self else {
            return;
        };
        for (p, q) in super::combined::Levels::new(b).map_while(|e| e) {
            crate::tape::learn_pair(wire, Some(p), Some(q));
        }
    }
}

/// A required field.
#[inline]
pub(super) fn req<V>(v: Option<V>, field: &'static str) -> Result<V, ParseError> {
    v.ok_or_else(|| ParseError::missing(field))
}

/// Fields of one Binance object (a raw payload, a wrapper or its `data`).
#[allow(non_snake_case)]
#[derive(Clone, Copy)]
pub(super) struct Fields<V> {
    pub e: Option<V>,
    pub E: Option<V>,
    pub T: Option<V>,
    pub s: Option<V>,
    pub symbol: Option<V>,
    pub t: Option<V>,
    pub a: Option<V>,
    pub p: Option<V>,
    pub q: Option<V>,
    pub m: Option<V>,
    pub u: Option<V>,
    pub U: Option<V>,
    pub pu: Option<V>,
    pub b: Option<V>,
    pub B: Option<V>,
    pub A: Option<V>,
    pub last_update_id: Option<V>,
    pub bids: Option<V>,
    pub asks: Option<V>,
    pub stream: Option<V>,
    pub data: Option<V>,
    pub result: Option<V>,
    pub error: Option<V>,
    pub id: Option<V>,
}

impl<V> Default for Fields<V> {
    fn default() -> Self {
        Self {
            e: None,
            E: None,
            T: None,
            s: None,
            symbol: None,
            t: None,
            a: None,
            p: None,
            q: None,
            m: None,
            u: None,
            U: None,
            pu: None,
            b: None,
            B: None,
            A: None,
            last_update_id: None,
            bids: None,
            asks: None,
            stream: None,
            data: None,
            result: None,
            error: None,
            id: None,
        }
    }
}

impl<V> Fields<V> {
    /// The field a key names (`None`: a key the normalizer does not read).
    #[inline(always)]
    pub(super) fn slot(&mut self, key: &[u8]) -> Option<&mut Option<V>> {
        let f = self;
        Some(match key {
            b"e" => &mut f.e,
            b"E" => &mut f.E,
            b"T" => &mut f.T,
            b"s" => &mut f.s,
            b"t" => &mut f.t,
            b"a" => &mut f.a,
            b"p" => &mut f.p,
            b"q" => &mut f.q,
            b"m" => &mut f.m,
            b"u" => &mut f.u,
            b"U" => &mut f.U,
            b"b" => &mut f.b,
            b"B" => &mut f.B,
            b"A" => &mut f.A,
            b"pu" => &mut f.pu,
            b"id" => &mut f.id,
            b"data" => &mut f.data,
            b"bids" => &mut f.bids,
            b"asks" => &mut f.asks,
            b"stream" => &mut f.stream,
            b"symbol" => &mut f.symbol,
            b"result" => &mut f.result,
            b"error" => &mut f.error,
            b"lastUpdateId" => &mut f.last_update_id,
            _ => return None,
        })
    }
}

impl<'t, 'i> Fields<Raw<'t, 'i>> {
    /// Scans the object starting at `obj[0]`; `None` if it is not an object
    /// (or the tape is inconsistent).
    #[inline]
    pub(super) fn scan(obj: Raw<'t, 'i>) -> Option<Self> {
        let mut f = Self::default();
        f.scan_into(obj).then_some(f)
    }

    /// [`scan`](Self::scan) into `self` (a default value): no copy of the
    /// struct (24 fields) on the way out; `false` where `scan` is `None`.
    #[inline]
    pub(super) fn scan_into(&mut self, obj: Raw<'t, 'i>) -> bool {
        self.scan_fields(obj).is_some()
    }

    #[inline]
    fn scan_fields(&mut self, obj: Raw<'t, 'i>) -> Option<()> {
        let &Node::Object { len, .. } = obj.first()? else {
            return None;
        };
        let f = self;
        let mut idx = 1;
        for _ in 0..len {
            let Node::String(key) = *obj.get(idx)? else {
                return None;
            };
            let n = span(obj.get(idx + 1)?);
            let v = obj.get(idx + 1..idx + 1 + n)?;
            idx += 1 + n;
            let Some(slot) = f.slot(key.as_bytes()) else {
                continue;
            };
            *slot = Some(v);
        }
        Some(())
    }
}
