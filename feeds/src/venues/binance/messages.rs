//! Binance spot message fields, read from a simd-json tape in one pass.
//!
//! Binance reuses one-letter keys across message kinds with different types
//! (`a` is the aggTrade id, the bookTicker ask price and the depth asks), so
//! the scan keeps each field as the raw tape slice of its value and the
//! normalizer reads it with the type its kind requires.

use simd_json::{Node, StaticNode};

use crate::venue::ParseError;

/// The tape nodes of one JSON value (header node first for containers).
pub(super) type Raw<'t, 'i> = &'t [Node<'i>];

/// Fields of one Binance object (a raw payload, a wrapper or its `data`).
#[allow(non_snake_case)]
#[derive(Default, Clone, Copy)]
pub(super) struct Fields<'t, 'i> {
    pub e: Option<Raw<'t, 'i>>,
    pub E: Option<Raw<'t, 'i>>,
    pub T: Option<Raw<'t, 'i>>,
    pub s: Option<Raw<'t, 'i>>,
    pub symbol: Option<Raw<'t, 'i>>,
    pub t: Option<Raw<'t, 'i>>,
    pub a: Option<Raw<'t, 'i>>,
    pub p: Option<Raw<'t, 'i>>,
    pub q: Option<Raw<'t, 'i>>,
    pub m: Option<Raw<'t, 'i>>,
    pub u: Option<Raw<'t, 'i>>,
    pub U: Option<Raw<'t, 'i>>,
    pub pu: Option<Raw<'t, 'i>>,
    pub b: Option<Raw<'t, 'i>>,
    pub B: Option<Raw<'t, 'i>>,
    pub A: Option<Raw<'t, 'i>>,
    pub last_update_id: Option<Raw<'t, 'i>>,
    pub bids: Option<Raw<'t, 'i>>,
    pub asks: Option<Raw<'t, 'i>>,
    pub stream: Option<Raw<'t, 'i>>,
    pub data: Option<Raw<'t, 'i>>,
    pub result: Option<Raw<'t, 'i>>,
    pub error: Option<Raw<'t, 'i>>,
    pub id: Option<Raw<'t, 'i>>,
}

/// Number of tape nodes a value occupies.
#[inline]
fn span(n: &Node<'_>) -> usize {
    match *n {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'t, 'i> Fields<'t, 'i> {
    /// Scans the object starting at `obj[0]`; `None` if it is not an object
    /// (or the tape is inconsistent).
    #[inline]
    pub(super) fn scan(obj: Raw<'t, 'i>) -> Option<Self> {
        let &Node::Object { len, .. } = obj.first()? else {
            return None;
        };
        let mut f = Self::default();
        let mut idx = 1;
        for _ in 0..len {
            let Node::String(key) = *obj.get(idx)? else {
                return None;
            };
            let n = span(obj.get(idx + 1)?);
            let v = obj.get(idx + 1..idx + 1 + n)?;
            idx += 1 + n;
            let slot = match key {
                "e" => &mut f.e,
                "E" => &mut f.E,
                "T" => &mut f.T,
                "s" => &mut f.s,
                "t" => &mut f.t,
                "a" => &mut f.a,
                "p" => &mut f.p,
                "q" => &mut f.q,
                "m" => &mut f.m,
                "u" => &mut f.u,
                "U" => &mut f.U,
                "b" => &mut f.b,
                "B" => &mut f.B,
                "A" => &mut f.A,
                "pu" => &mut f.pu,
                "id" => &mut f.id,
                "data" => &mut f.data,
                "bids" => &mut f.bids,
                "asks" => &mut f.asks,
                "stream" => &mut f.stream,
                "symbol" => &mut f.symbol,
                "result" => &mut f.result,
                "error" => &mut f.error,
                "lastUpdateId" => &mut f.last_update_id,
                _ => continue,
            };
            *slot = Some(v);
        }
        Some(f)
    }
}

/// A required field.
#[inline]
pub(super) fn req<'t, 'i>(
    v: Option<Raw<'t, 'i>>,
    field: &'static str,
) -> Result<Raw<'t, 'i>, ParseError> {
    v.ok_or_else(|| ParseError::missing(field))
}

/// A string value.
#[inline]
pub(super) fn as_str<'i>(v: Raw<'_, 'i>, field: &'static str) -> Result<&'i str, ParseError> {
    match v.first() {
        Some(Node::String(s)) => Ok(s),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// A non-negative integer value.
#[inline]
pub(super) fn as_u64(v: Raw<'_, '_>, field: &'static str) -> Result<u64, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::U64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::I64(n))) if *n >= 0 => Ok(n.unsigned_abs()),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// An integer value that fits in `i64`.
#[inline]
pub(super) fn as_i64(v: Raw<'_, '_>, field: &'static str) -> Result<i64, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::I64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::U64(n))) => {
            i64::try_from(*n).map_err(|_| ParseError::wrong_type(field))
        }
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// A boolean value.
#[inline]
pub(super) fn as_bool(v: Raw<'_, '_>, field: &'static str) -> Result<bool, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::Bool(b))) => Ok(*b),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// Calls `f(price, qty)` for each `[price, qty, ...]` entry of a level array.
#[inline]
pub(super) fn for_each_level<'i>(
    v: Raw<'_, 'i>,
    field: &'static str,
    mut f: impl FnMut(&'i str, &'i str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let Some(&Node::Array { len, .. }) = v.first() else {
        return Err(ParseError::wrong_type(field));
    };
    let mut idx = 1;
    for _ in 0..len {
        let Some(&Node::Array { len: n, count }) = v.get(idx) else {
            return Err(ParseError::wrong_type(field));
        };
        match (n >= 2, v.get(idx + 1), v.get(idx + 2)) {
            (true, Some(Node::String(px)), Some(Node::String(qty))) => f(px, qty)?,
            _ => return Err(ParseError::wrong_type(field)),
        }
        idx += count + 1;
    }
    Ok(())
}
