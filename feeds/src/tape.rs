//! Reading values off a simd-json tape in place (shared by the venue
//! parsers): a value is the slice of tape nodes it occupies ([`Raw`]), read
//! with the type its message kind requires.

use simd_json::{Node, StaticNode};

use crate::venue::ParseError;

/// The tape nodes of one JSON value (header node first for containers).
pub(crate) type Raw<'t, 'i> = &'t [Node<'i>];

/// Number of tape nodes a value occupies.
#[inline]
pub(crate) fn span(n: &Node<'_>) -> usize {
    match *n {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// The elements of an array value (`None`: not an array or an inconsistent tape).
#[inline]
pub(crate) fn elements<'t, 'i>(v: Raw<'t, 'i>) -> Option<impl Iterator<Item = Raw<'t, 'i>>> {
    let &Node::Array { len, .. } = v.first()? else {
        return None;
    };
    let mut idx = 1;
    Some((0..len).map_while(move |_| {
        let n = span(v.get(idx)?);
        let e = v.get(idx..idx + n)?;
        idx += n;
        Some(e)
    }))
}

/// The `(key, value)` pairs of an object value (`None`: not an object).
#[inline]
pub(crate) fn entries<'t, 'i>(
    v: Raw<'t, 'i>,
) -> Option<impl Iterator<Item = (&'i str, Raw<'t, 'i>)>> {
    let &Node::Object { len, .. } = v.first()? else {
        return None;
    };
    let mut idx = 1;
    Some((0..len).map_while(move |_| {
        let Node::String(key) = *v.get(idx)? else {
            return None;
        };
        let n = span(v.get(idx + 1)?);
        let e = v.get(idx + 1..idx + 1 + n)?;
        idx += 1 + n;
        Some((key, e))
    }))
}

/// A required field.
#[inline]
pub(crate) fn req<'t, 'i>(
    v: Option<Raw<'t, 'i>>,
    field: &'static str,
) -> Result<Raw<'t, 'i>, ParseError> {
    v.ok_or_else(|| ParseError::missing(field))
}

/// A string value.
#[inline]
pub(crate) fn as_str<'i>(v: Raw<'_, 'i>, field: &'static str) -> Result<&'i str, ParseError> {
    match v.first() {
        Some(Node::String(s)) => Ok(s),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// A non-negative integer value.
#[inline]
pub(crate) fn as_u64(v: Raw<'_, '_>, field: &'static str) -> Result<u64, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::U64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::I64(n))) if *n >= 0 => Ok(n.unsigned_abs()),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// An integer value that fits in `i64`.
#[inline]
pub(crate) fn as_i64(v: Raw<'_, '_>, field: &'static str) -> Result<i64, ParseError> {
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
pub(crate) fn as_bool(v: Raw<'_, '_>, field: &'static str) -> Result<bool, ParseError> {
    match v.first() {
        Some(Node::Static(StaticNode::Bool(b))) => Ok(*b),
        _ => Err(ParseError::wrong_type(field)),
    }
}

/// Calls `f(price, qty)` for each `[price, qty, ...]` entry of a level array.
#[inline]
pub(crate) fn for_each_level<'i>(
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

/// Raises `wire` to the decimals of the `[price, size, ..]` string entries
/// of a level array (the wire precision an instrument is announced with).
pub(crate) fn learn_levels(wire: &mut crate::event::Scale, levels: Raw<'_, '_>) {
    for lv in elements(levels).into_iter().flatten() {
        let mut it = elements(lv).into_iter().flatten();
        if let (Some(Node::String(p)), Some(Node::String(q))) = (
            it.next().and_then(<[Node<'_>]>::first),
            it.next().and_then(<[Node<'_>]>::first),
        ) {
            wire.price_decimals = wire
                .price_decimals
                .max(crate::fixed::decimals(p.as_bytes()));
            wire.qty_decimals = wire.qty_decimals.max(crate::fixed::decimals(q.as_bytes()));
        }
    }
}

/// A reusable simd-json tape: parse frames in place without allocating once
/// its buffers have grown (one per adapter).
pub(crate) struct TapeParser {
    buffers: simd_json::Buffers,
    /// Empty between frames; keeps its allocation.
    tape: simd_json::Tape<'static>,
}

impl TapeParser {
    /// Buffers sized for frames of `bytes` bytes without regrowth.
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            buffers: simd_json::Buffers::new(bytes),
            tape: simd_json::Tape(Vec::with_capacity(bytes / 8)),
        }
    }

    /// Parses `frame` in place and hands its tape to `f`. The parser is
    /// an adapter's `Option` taken out for the call (so `f` may borrow the
    /// adapter); `None` (never the case) is a parse error, not a panic.
    #[inline]
    pub(crate) fn parse<R>(
        this: &mut Option<Self>,
        frame: &mut [u8],
        f: impl FnOnce(&[Node<'_>]) -> Result<R, ParseError>,
    ) -> Result<R, ParseError> {
        let Some(p) = this.as_mut() else {
            return Err(ParseError::missing("parser"));
        };
        // `reset` empties the tape and rebinds its lifetime to this frame.
        let mut tape: simd_json::Tape<'_> =
            std::mem::replace(&mut p.tape, simd_json::Tape(Vec::new())).reset();
        let res = match simd_json::fill_tape(frame, &mut p.buffers, &mut tape) {
            Ok(()) => f(&tape.0),
            Err(e) => Err(ParseError::json(&e)),
        };
        p.tape = tape.reset();
        res
    }
}

/// Keeps the events of a data frame; for anything else (an error, a control
/// or ignored frame) drops whatever was pushed since `start` (a first-sight
/// announcement), which is then announced again on next sight.
#[inline]
pub(crate) fn keep_data(
    res: Result<crate::venue::FrameKind, ParseError>,
    start: usize,
    out: &mut Vec<crate::event::Event>,
    instruments: &mut crate::instruments::Instruments,
) -> Result<crate::venue::FrameKind, ParseError> {
    use crate::venue::FrameKind;
    match res {
        Ok(k @ (FrameKind::Trade | FrameKind::Quote | FrameKind::Depth | FrameKind::Snapshot)) => {
            Ok(k)
        }
        other => {
            if out.len() > start {
                discard(start, out, instruments);
            }
            other
        }
    }
}

#[cold]
#[inline(never)]
fn discard(
    start: usize,
    out: &mut Vec<crate::event::Event>,
    instruments: &mut crate::instruments::Instruments,
) {
    instruments.rollback(&out[start..]);
    out.truncate(start);
}
