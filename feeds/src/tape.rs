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

/// A trade id sent as text: its decimal value; anything else (a UUID, as
/// Bybit linear and inverse send) is 0, "not numbered": the engine then
/// deduplicates nothing by id (hashes would carry no order).
#[inline]
pub(crate) fn text_id(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// A trade id sent as a JSON number or as text (see [`text_id`]).
#[inline]
pub(crate) fn trade_id(v: Option<Raw<'_, '_>>) -> u64 {
    match v.and_then(<[Node<'_>]>::first) {
        Some(Node::Static(StaticNode::U64(n))) => *n,
        Some(Node::Static(StaticNode::I64(n))) => u64::try_from(*n).unwrap_or(0),
        Some(Node::String(s)) => text_id(s),
        _ => 0,
    }
}

/// A decimal text as fixed point at `decimals` (`field` names it in errors).
#[inline(always)]
pub(crate) fn decimal_text(s: &str, field: &'static str, decimals: u8) -> Result<i64, ParseError> {
    crate::fixed::parse(s.as_bytes(), decimals).map_err(|e| ParseError::fixed(field, e))
}

/// A required decimal-string field as fixed point.
#[inline]
pub(crate) fn decimal(
    v: Option<Raw<'_, '_>>,
    field: &'static str,
    decimals: u8,
) -> Result<i64, ParseError> {
    decimal_text(as_str(req(v, field)?, field)?, field, decimals)
}

/// A required decimal string (already read off the tape) as fixed point.
#[inline]
pub(crate) fn decimal_str(
    v: Option<&str>,
    field: &'static str,
    decimals: u8,
) -> Result<i64, ParseError> {
    decimal_text(
        v.ok_or_else(|| ParseError::missing(field))?,
        field,
        decimals,
    )
}

/// Raises `wire` to the decimals of a price and a size string.
#[inline]
pub(crate) fn learn_pair(wire: &mut crate::event::Scale, px: Option<&str>, qty: Option<&str>) {
    if let Some(p) = px {
        wire.price_decimals = wire
            .price_decimals
            .max(crate::fixed::decimals(p.as_bytes()));
    }
    if let Some(q) = qty {
        wire.qty_decimals = wire.qty_decimals.max(crate::fixed::decimals(q.as_bytes()));
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
        Self::parse_shaped(this, frame, |_, _| false, f)
    }

    /// [`parse`](Self::parse), trying `shaped` first: a venue's builder for
    /// the tape of its commonest frame shape, which returns `false` (and
    /// the general paths run) for any frame it does not build exactly.
    #[inline]
    pub(crate) fn parse_shaped<R>(
        this: &mut Option<Self>,
        frame: &mut [u8],
        shaped: impl for<'a> FnOnce(&'a [u8], &mut Vec<Node<'a>>) -> bool,
        f: impl FnOnce(&[Node<'_>]) -> Result<R, ParseError>,
    ) -> Result<R, ParseError> {
        let Some(p) = this.as_mut() else {
            return Err(ParseError::missing("parser"));
        };
        // `reset` empties the tape and rebinds its lifetime to this frame.
        let mut tape: simd_json::Tape<'_> =
            std::mem::replace(&mut p.tape, simd_json::Tape(Vec::new())).reset();
        // Plain frames (nearly all) skip simd-json: the same tape, built in
        // one pass; anything else is simd-json's to parse or reject.
        if shaped(frame, &mut tape.0) || crate::plain_json::fill(frame, &mut tape.0) {
            let res = f(&tape.0);
            p.tape = tape.reset();
            return res;
        }
        let mut tape: simd_json::Tape<'_> = tape.reset();
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

/// The source text of a frame's JSON numbers. simd-json's tape keeps
/// numbers as binary values (floats through `f64`); venues that send prices
/// as JSON numbers (Kraken v2) need the text to parse them exactly and to
/// learn their precision. The frame is copied before parsing (simd-json
/// rewrites it in place) and its number tokens are indexed in document
/// order, which is the tape's order. Buffers are reused: no allocation per
/// frame once grown.
#[derive(Default)]
pub(crate) struct NumberTexts {
    copy: Vec<u8>,
    spans: Vec<(u32, u32)>,
    /// Tape index → 1 + span index (0: not a number node).
    at: Vec<u32>,
    base: usize,
}

impl NumberTexts {
    /// Records the number tokens of `frame` (call before it is parsed).
    pub(crate) fn scan(&mut self, frame: &[u8]) {
        self.copy.clear();
        self.copy.extend_from_slice(frame);
        self.spans.clear();
        let b = &self.copy;
        let (mut i, mut in_str) = (0usize, false);
        while i < b.len() {
            let c = b[i];
            if in_str {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_str = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if c == b'"' {
                in_str = true;
                i += 1;
            } else if c == b'-' || c.is_ascii_digit() {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                self.spans.push((start as u32, i as u32));
            } else {
                i += 1;
            }
        }
    }

    /// Indexes the number nodes of the frame's whole tape (`nodes`, its root
    /// slice) to the recorded tokens.
    pub(crate) fn index(&mut self, nodes: &[Node<'_>]) {
        self.at.clear();
        self.at.resize(nodes.len(), 0);
        self.base = nodes.as_ptr() as usize;
        let mut k = 0u32;
        for (i, n) in nodes.iter().enumerate() {
            if let Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)) = n {
                k += 1;
                self.at[i] = k;
            }
        }
    }

    /// The source text of a number value of the indexed tape; `None` if `v`
    /// is not a number (or not from that tape).
    pub(crate) fn text(&self, v: Raw<'_, '_>) -> Option<&str> {
        let addr = v.as_ptr() as usize;
        let i = addr.checked_sub(self.base)? / std::mem::size_of::<Node<'_>>();
        let k = *self.at.get(i)?;
        let (s, e) = *self.spans.get(k.checked_sub(1)? as usize)?;
        std::str::from_utf8(self.copy.get(s as usize..e as usize)?).ok()
    }
}

/// The header of a book frame whose levels have been pushed after a
/// placeholder at `out[header]` (stream-started venues: Kraken, OKX).
pub(crate) struct BookFrame {
    /// Instrument.
    pub inst: crate::event::InstrumentId,
    /// A snapshot (else an update).
    pub snapshot: bool,
    /// The venue's sequence number of this frame and of the previous one (0: none).
    pub seq: u64,
    /// See [`crate::event::DepthHeader::prev_last_id`].
    pub prev_seq: u64,
    /// Exchange time, ns.
    pub ts_ns: i64,
    /// Receive time, ns.
    pub recv_ns: i64,
    /// The venue's checksum.
    pub checksum: Option<u32>,
    /// Subscribed depth (snapshots).
    pub max_depth: u32,
    /// Decimals of the snapshot's strings.
    pub wire: crate::event::Scale,
    /// A REST answer.
    pub from_rest: bool,
}

/// Writes the header of a book frame over its placeholder at `out[header]`
/// (its levels follow it) and returns the frame's kind.
pub(crate) fn close_book(
    out: &mut [crate::event::Event],
    header: usize,
    f: &BookFrame,
) -> Result<crate::venue::FrameKind, ParseError> {
    use crate::event::{DepthHeader, Event, SnapshotHeader};
    use crate::venue::FrameKind;
    let levels =
        u32::try_from(out.len() - header - 1).map_err(|_| ParseError::too_many_levels())?;
    out[header] = if f.snapshot {
        Event::Snapshot(SnapshotHeader {
            inst: f.inst,
            last_update_id: f.seq,
            recv_ns: f.recv_ns,
            levels,
            checksum: f.checksum,
            max_depth: f.max_depth,
            wire: f.wire,
            from_rest: f.from_rest,
        })
    } else {
        Event::Depth(DepthHeader {
            inst: f.inst,
            first_id: f.seq,
            last_id: f.seq,
            prev_last_id: f.prev_seq,
            ts_ns: f.ts_ns,
            recv_ns: f.recv_ns,
            levels,
            checksum: f.checksum,
        })
    };
    Ok(if f.snapshot {
        FrameKind::Snapshot
    } else {
        FrameKind::Depth
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_texts_follow_the_tape() {
        let src = br#"{"a":"x\"1","price":45283.50,"qty":0.10000000,"n":[1,-2.5e3],"ok":true,"c":3310070434}"#;
        let mut nt = NumberTexts::default();
        nt.scan(src);
        let mut frame = src.to_vec();
        let mut p = Some(TapeParser::new(1024));
        let texts = TapeParser::parse(&mut p, &mut frame, |nodes| {
            nt.index(nodes);
            let mut out = Vec::new();
            for (k, v) in entries(nodes).into_iter().flatten() {
                match k {
                    "n" => out.extend(
                        elements(v)
                            .into_iter()
                            .flatten()
                            .filter_map(|e| nt.text(e))
                            .map(str::to_owned),
                    ),
                    _ => out.extend(nt.text(v).map(str::to_owned)),
                }
            }
            Ok(out)
        })
        .unwrap();
        assert_eq!(
            texts,
            ["45283.50", "0.10000000", "1", "-2.5e3", "3310070434"]
        );
    }
}
