//! A compact combined-stream frame read straight into its [`Fields`]:
//! `{"stream":"…","data":{"k":v,…}}` with no whitespace, `data` a flat
//! object whose values are plain strings, unsigned integers, booleans or
//! depth level arrays (`[["px","qty"],…]`). That is every trade,
//! bookTicker and depthUpdate frame Binance sends; reading it here costs
//! no tape at all (no node per value, no second pass over the nodes to
//! find the fields), and level arrays are read once more, in place, as
//! the normalizer takes their levels.
//!
//! Anything else returns `None` and the frame goes on to the general paths
//! (`plain_json`, then simd-json) and the same normalizer, so an accepted
//! frame gives exactly the events those give (tested on every Binance
//! frame of `../shared` and on mutations).

use super::messages::{Fields, Flat};
use crate::bytes::ascii;
use crate::plain_json::string_end;

// Most digits of an integer taken here: as in `plain_json`.
use crate::plain_json::MAX_DIGITS;

/// The stream name of `b` if it has the shape above, its `data` fields
/// read into `f` (a default value; garbage where this is `None`). Filled in
/// place: `Fields<Flat>` is 576 bytes, and returning it by value cost two
/// `memcpy` calls per frame (~180 instructions).
#[inline]
pub(super) fn scan_into<'i>(b: &'i [u8], f: &mut Fields<Flat<'i>>) -> Option<&'i str> {
    const HEAD: &[u8] = b"{\"stream\":\"";
    const DATA: &[u8] = b",\"data\":{";
    if !b.starts_with(HEAD) {
        return None;
    }
    let end = string_end(b, HEAD.len())?;
    let stream = ascii(&b[HEAD.len()..end]);
    let mut i = end + 1;
    if !b.get(i..)?.starts_with(DATA) {
        return None;
    }
    i += DATA.len();
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (k, at) = key(b, i)?;
            let (v, at) = value(b, at)?;
            if let Some(slot) = f.slot(k) {
                // A repeated key keeps its last value, as the tape scan does.
                *slot = Some(v);
            }
            i = at;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    // The root closes right after `data`, and the frame ends there.
    if i + 1 != b.len() || b[i] != b'}' {
        return None;
    }
    Some(stream)
}

/// A key at `b[i]` (`"k":`); returns its text and where its value starts.
#[inline(always)]
fn key(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    // One-letter keys: `"k":` in one 4-byte test.
    if let Some(&[b'"', c, b'"', b':']) = b.get(i..i + 4) {
        if (0x20..0x80).contains(&c) && c != b'"' && c != b'\\' {
            return Some((&b[i + 1..i + 2], i + 4));
        }
    }
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = string_end(b, i + 1)?;
    (b.get(end + 1) == Some(&b':')).then_some((&b[i + 1..end], end + 2))
}

/// A value at `b[i]`; returns it and the index after it.
#[inline(always)]
fn value(b: &[u8], i: usize) -> Option<(Flat<'_>, usize)> {
    match *b.get(i)? {
        b'"' => {
            let end = string_end(b, i + 1)?;
            Some((Flat::Str(ascii(&b[i + 1..end])), end + 1))
        }
        c @ b'0'..=b'9' => {
            let (v, n) = crate::fixed::digit_run(&b[i..]);
            let j = i + n;
            // Only `,` or `}` may follow (no fraction, no exponent).
            if n > MAX_DIGITS || (c == b'0' && n > 1) || !matches!(b.get(j), Some(b',' | b'}')) {
                return None;
            }
            Some((Flat::U64(v), j))
        }
        b't' if b[i..].starts_with(b"true") => Some((Flat::Bool(true), i + 4)),
        b'f' if b[i..].starts_with(b"false") => Some((Flat::Bool(false), i + 5)),
        b'[' => {
            let end = levels_end(b, i + 1)?;
            Some((Flat::Levels(&b[i + 1..end]), end + 1))
        }
        _ => None,
    }
}

/// A level array whose `[` is just before `b[i]`: `[]` or
/// `[["px","qty"],…]`; returns the index of its closing `]`.
#[inline]
fn levels_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b']') {
        return Some(i);
    }
    loop {
        i = entry(b, i)?.2;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Some(i),
            _ => return None,
        }
    }
}

/// One `["px","qty"]` entry at `b[i]`: its two strings and the index after
/// its `]`.
#[inline(always)]
fn entry(b: &[u8], i: usize) -> Option<(&str, &str, usize)> {
    if b.get(i..i + 2) != Some(b"[\"") {
        return None;
    }
    let pe = string_end(b, i + 2)?;
    if b.get(pe..pe + 3) != Some(b"\",\"") {
        return None;
    }
    let qe = string_end(b, pe + 3)?;
    if b.get(qe..qe + 2) != Some(b"\"]") {
        return None;
    }
    Some((ascii(&b[i + 2..pe]), ascii(&b[pe + 3..qe]), qe + 2))
}

/// The entries of a [`Flat::Levels`] text, in order. An item is `None`
/// where the text is not a level array (never, for a text [`scan`] took).
pub(super) struct Levels<'i> {
    b: &'i [u8],
    i: usize,
}

impl<'i> Levels<'i> {
    /// Entries of `b` (a level array's text between its brackets).
    #[inline]
    pub(super) fn new(b: &'i [u8]) -> Self {
        Self { b, i: 0 }
    }
}

impl<'i> Iterator for Levels<'i> {
    type Item = Option<(&'i str, &'i str)>;

    // Inlined into the normalizer's level loop: as a call it returned its
    // five-word item through memory (measured: ~45 instructions a level).
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.b.len() {
            return None;
        }
        match entry(self.b, self.i) {
            // `,` between entries, nothing after the last.
            Some((px, qty, end)) if matches!(self.b.get(end), None | Some(b',')) => {
                self.i = end + 1;
                Some(Some((px, qty)))
            }
            _ => {
                self.i = self.b.len();
                Some(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::venues::binance::messages::{Fields, Flat, Raw, Value};
    use simd_json::Node;

    /// [`super::scan_into`] into a fresh value.
    fn scan(b: &[u8]) -> Option<(&str, Fields<Flat<'_>>)> {
        let mut f = Fields::default();
        super::scan_into(b, &mut f).map(|stream| (stream, f))
    }

    /// A field value, comparable across the two readings.
    #[derive(Debug, PartialEq)]
    enum V {
        Str(String),
        U64(u64),
        Bool(bool),
        Levels(Vec<(String, String)>),
        Other,
    }

    fn of_flat(v: Flat<'_>) -> V {
        match v {
            Flat::Str(s) => V::Str(s.into()),
            Flat::U64(n) => V::U64(n),
            Flat::Bool(b) => V::Bool(b),
            Flat::Levels(_) => {
                let mut out = Vec::new();
                v.levels("t", |p, q| {
                    out.push((p.into(), q.into()));
                    Ok(())
                })
                .map_or(V::Other, |()| V::Levels(out))
            }
        }
    }

    fn of_tape(v: Raw<'_, '_>) -> V {
        match v.first() {
            Some(Node::String(s)) => V::Str((*s).into()),
            Some(Node::Static(simd_json::StaticNode::U64(n))) => V::U64(*n),
            Some(Node::Static(simd_json::StaticNode::Bool(b))) => V::Bool(*b),
            Some(Node::Array { .. }) => {
                let mut out = Vec::new();
                v.levels("t", |p, q| {
                    out.push((p.into(), q.into()));
                    Ok(())
                })
                .map_or(V::Other, |()| V::Levels(out))
            }
            _ => V::Other,
        }
    }

    /// Every field the normalizer reads, as comparable values.
    fn fields<T: Copy>(f: &Fields<T>, of: impl Fn(T) -> V) -> Vec<Option<V>> {
        [
            f.e,
            f.E,
            f.T,
            f.s,
            f.symbol,
            f.t,
            f.a,
            f.p,
            f.q,
            f.m,
            f.u,
            f.U,
            f.pu,
            f.b,
            f.B,
            f.A,
            f.last_update_id,
            f.bids,
            f.asks,
            f.stream,
            f.data,
            f.result,
            f.error,
            f.id,
        ]
        .into_iter()
        .map(|v| v.map(&of))
        .collect()
    }

    /// Where this path accepts `src`, the general plain-JSON tape (itself
    /// tested against simd-json) holds the same stream name and the same
    /// value in every field the normalizer reads.
    fn agrees(src: &[u8]) -> bool {
        let Some((stream, flat)) = scan(src) else {
            return false;
        };
        let mut tape = Vec::new();
        assert!(
            crate::plain_json::fill(src, &mut tape),
            "{:?}",
            String::from_utf8_lossy(src)
        );
        let root = Fields::scan(&tape).expect("an object");
        assert_eq!(root.stream.and_then(Value::text), Some(stream));
        let data = Fields::scan(root.data.expect("data")).expect("data object");
        assert_eq!(
            fields(&flat, of_flat),
            fields(&data, of_tape),
            "{:?}",
            String::from_utf8_lossy(src)
        );
        true
    }

    #[test]
    fn shapes() {
        for src in [
            &br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":false}}"#[..],
            br#"{"stream":"x","data":{"u":0,"s":"BTCUSDT","b":"1","B":"2","a":"3","A":"4"}}"#,
            br#"{"stream":"x","data":{"e":"depthUpdate","b":[["1.0","0"],["2","3"]],"a":[],"lastUpdateId":7}}"#,
            br#"{"stream":"","data":{}}"#,
            br#"{"stream":"x","data":{"a":"1","a":[["1","2"]],"pu":5,"zz":[],"lastUpdateId":1}}"#,
            // The load generator's bookTicker: a 19-digit Unix-ns `E` first.
            br#"{"stream":"btcusdt@bookTicker","data":{"E":1796352671123456789,"u":7,"s":"BTCUSDT","b":"1.0","B":"1","a":"2.0","A":"1"}}"#,
        ] {
            assert!(agrees(src), "{:?}", String::from_utf8_lossy(src));
        }
        for src in [
            &br#" {"stream":"x","data":{}}"#[..],
            br#"{"stream":"x","data":{}} "#,
            br#"{"stream":"x","data":{},"x":1}"#,
            br#"{"stream":"x","data":{"a":1.5}}"#,
            br#"{"stream":"x","data":{"a":01}}"#,
            br#"{"stream":"x","data":{"a":12345678901234567890}}"#,
            br#"{"stream":"x","data":{"a":-1}}"#,
            br#"{"stream":"x","data":{"a":null}}"#,
            br#"{"stream":"x","data":{"a":{}}}"#,
            br#"{"stream":"x","data":{"a":[1]}}"#,
            br#"{"stream":"x","data":{"a":[["1","2","3"]]}}"#,
            br#"{"stream":"x","data":{"a":"\u0041"}}"#,
            br#"{"stream":"x","data":{"a" :1}}"#,
            br#"{"stream":"x","data":{"a":1,}}"#,
            br#"{"data":{},"stream":"x"}"#,
            br#"{"stream":"x","data":{"a":1}"#,
        ] {
            assert!(scan(src).is_none(), "{:?}", String::from_utf8_lossy(src));
        }
    }

    /// Every Binance frame of the shared captures, and one-byte mutations
    /// and truncations of some of them.
    #[test]
    fn shared_binance_captures_agree() {
        let dir = std::env::var_os("WIRESIGNAL_SHARED").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            std::path::PathBuf::from,
        );
        let mut accepted = 0usize;
        for venue in ["binance-spot", "binance-usdm", "binance-coinm"] {
            let Ok(rd) = std::fs::read_dir(dir.join("data").join(venue)) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(mut r) = crate::capture::CaptureReader::open(&e.path()) else {
                    continue;
                };
                let mut n = 0usize;
                while let Some(rec) = r.next_record() {
                    let Ok(rec) = rec else { continue };
                    n += 1;
                    if n > 5000 {
                        break;
                    }
                    let frame = rec.frame.to_vec();
                    accepted += usize::from(agrees(&frame));
                    if n % 700 == 1 {
                        for pos in 0..frame.len() {
                            for byte in
                                [b'"', b'\\', b',', b'}', b']', b'[', b'0', b'.', b' ', 0x80]
                            {
                                let mut m = frame.clone();
                                m[pos] = byte;
                                agrees(&m);
                            }
                            agrees(&frame[..pos]);
                        }
                    }
                }
            }
        }
        eprintln!("combined-stream fast path: {accepted} frames");
        assert!(!dir.is_dir() || accepted > 0);
    }
}
