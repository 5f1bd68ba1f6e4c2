//! A tape builder for plain JSON: the fast path in front of simd-json.
//!
//! Venue frames are almost always "plain": ASCII only, strings without
//! escapes, integers without sign, fraction or exponent. For those, one
//! scalar pass over the bytes builds the very tape simd-json would build
//! (same nodes, same order, same `len`/`count`) at a fraction of its fixed
//! cost per frame (simd-json's two stages were ~3,700 instructions per
//! Binance frame, this is ~1,000). Anything else — an escape, a byte
//! ≥ 0x80 or < 0x20 inside a string, a float, a negative number, a leading
//! zero, deeper nesting than [`MAX_DEPTH`], a syntax error — makes
//! [`fill`] return `false` without judging it, and the caller hands the
//! untouched frame to simd-json, which decides (parses it, or reports the
//! error). So the fast path never accepts what simd-json rejects and never
//! reads an accepted frame differently (tested against simd-json on every
//! frame of the shared captures and on mutations of them).

use simd_json::{Node, StaticNode};

use crate::bytes::ascii;

/// Deepest nesting the fast path handles (Binance frames nest 4 deep; the
/// stack of open containers is initialised per frame, so it stays small).
const MAX_DEPTH: usize = 8;

/// Most digits of an integer the fast path converts: any 19-digit number
/// fits `u64` without a check (10^19 - 1 < 2^64), and simd-json reads every
/// non-negative integer up to `u64::MAX` as `U64` (tested below). Nineteen,
/// not eighteen: Unix-ns timestamps have 19 digits (the load generator's
/// send stamps; 18 sent each of its frames to simd-json).
pub(crate) const MAX_DIGITS: usize = 19;

/// `0x01` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Builds the tape of `b` into `tape` (cleared first) and returns `true`
/// if `b` is plain JSON whose root is an object or an array; `false`
/// (`tape` then holds garbage) for anything else.
#[inline]
pub(crate) fn fill<'i>(b: &'i [u8], tape: &mut Vec<Node<'i>>) -> bool {
    tape.clear();
    // Enclosing open containers: (index of the header node, elements so
    // far, object); the innermost one lives in `header`/`len`/`obj`.
    let mut stack = [(0usize, 0usize, false); MAX_DEPTH];
    let mut depth = 0usize;
    let (mut header, mut len, mut obj) = (0usize, 0usize, false);
    let mut i = ws(b, 0);
    if !matches!(b.get(i), Some(b'{' | b'[')) {
        return false;
    }
    'value: loop {
        // A value starts at `b[i]` (whitespace skipped).
        let Some(&c) = b.get(i) else {
            return false;
        };
        match c {
            b'"' => {
                let Some(end) = string_end(b, i + 1) else {
                    return false;
                };
                tape.push(Node::String(ascii(&b[i + 1..end])));
                i = end + 1;
            }
            b'0'..=b'9' => {
                let (v, n) = crate::fixed::digit_run(&b[i..]);
                i += n;
                if n > MAX_DIGITS
                    || (c == b'0' && n > 1)
                    || matches!(b.get(i), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
                tape.push(Node::Static(StaticNode::U64(v)));
            }
            b'{' | b'[' => {
                let is_obj = c == b'{';
                i = ws(b, i + 1);
                if b.get(i) == Some(if is_obj { &b'}' } else { &b']' }) {
                    tape.push(if is_obj {
                        Node::Object { len: 0, count: 0 }
                    } else {
                        Node::Array { len: 0, count: 0 }
                    });
                    i += 1;
                } else {
                    if depth > 0 {
                        if depth == MAX_DEPTH {
                            return false;
                        }
                        stack[depth] = (header, len, obj);
                    }
                    depth += 1;
                    (header, len, obj) = (tape.len(), 0, is_obj);
                    // Placeholder, rewritten when the container closes.
                    tape.push(Node::Static(StaticNode::Null));
                    if obj {
                        match key(b, i, tape) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    continue 'value;
                }
            }
            b't' if b[i..].starts_with(b"true") => {
                tape.push(Node::Static(StaticNode::Bool(true)));
                i += 4;
            }
            b'f' if b[i..].starts_with(b"false") => {
                tape.push(Node::Static(StaticNode::Bool(false)));
                i += 5;
            }
            b'n' if b[i..].starts_with(b"null") => {
                tape.push(Node::Static(StaticNode::Null));
                i += 4;
            }
            _ => return false,
        }
        // A value ended before `b[i]`: it is an element of the innermost
        // open container; close containers until one goes on.
        loop {
            if depth == 0 {
                return ws(b, i) == b.len();
            }
            len += 1;
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => {
                    i = ws(b, i + 1);
                    if obj {
                        match key(b, i, tape) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    continue 'value;
                }
                Some(b'}') if obj => {
                    let count = tape.len() - header - 1;
                    tape[header] = Node::Object { len, count };
                }
                Some(b']') if !obj => {
                    let count = tape.len() - header - 1;
                    tape[header] = Node::Array { len, count };
                }
                _ => return false,
            }
            depth -= 1;
            i += 1;
            if depth > 0 {
                (header, len, obj) = stack[depth];
            }
        }
    }
}

/// Reads an object key at `b[i]` and its `:`; returns where its value starts.
#[inline(always)]
fn key<'i>(b: &'i [u8], i: usize, tape: &mut Vec<Node<'i>>) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    // One-letter keys (most of Binance's) without the general scan.
    let end = match b.get(i + 1..i + 3) {
        Some(&[c, b'"']) if (0x20..0x80).contains(&c) && c != b'\\' && c != b'"' => i + 2,
        _ => string_end(b, i + 1)?,
    };
    tape.push(Node::String(ascii(&b[i + 1..end])));
    let colon = ws(b, end + 1);
    (b.get(colon) == Some(&b':')).then(|| ws(b, colon + 1))
}

/// First index at or after `i` that is not JSON whitespace.
#[inline(always)]
fn ws(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if c > b' ' => i,
        _ => ws_slow(b, i),
    }
}

/// [`ws`] where there is whitespace (or the end).
#[cold]
fn ws_slow(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The closing quote of a string whose text starts at `b[i]`; `None` if the
/// string is not plain (an escape, a byte < 0x20 or ≥ 0x80) or unterminated.
#[inline(always)]
pub(crate) fn string_end(b: &[u8], i: usize) -> Option<usize> {
    // Nearly every string of a frame (names, prices, sizes) ends within
    // its first 16 bytes, and stream names (`btcusdt@depth@100ms`) within
    // 32: those SSE2 tests are inlined into the scan (a call was ~48
    // instructions, ~15 of them the call and loop set-up).
    let stop = |at: usize, k: usize| (b.get(at + k) == Some(&b'"')).then_some(at + k);
    match crate::bytes::string_stop16(b, i) {
        Some(16) => match crate::bytes::string_stop16(b, i + 16) {
            Some(16) => string_end_from(b, i + 32),
            Some(k) => stop(i + 16, k),
            None => string_end_from(b, i + 16),
        },
        Some(k) => stop(i, k),
        None => string_end_from(b, i),
    }
}

/// [`string_end`] from `b[i]` on, any length.
#[inline(never)]
fn string_end_from(b: &[u8], mut i: usize) -> Option<usize> {
    // Sixteen bytes at a time (SSE2) while that many are left.
    while let Some(k) = crate::bytes::string_stop16(b, i) {
        if k < 16 {
            return (b[i + k] == b'"').then_some(i + k);
        }
        i += 16;
    }
    // Eight bytes at a time: the lowest flagged byte of each test is exact
    // (borrows only ever flag bytes above a true hit).
    while let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*w);
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | w;
        let hits = hits & HIGHS;
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f | 0x80..=0xff => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::fill;
    use simd_json::Node;

    /// simd-json's tape of `src`, or `None` where it rejects it.
    fn simd(src: &[u8]) -> Option<Vec<Node<'static>>> {
        let mut copy = src.to_vec();
        let mut buffers = simd_json::Buffers::new(copy.len().max(64));
        let mut tape = simd_json::Tape(Vec::new());
        simd_json::fill_tape(&mut copy, &mut buffers, &mut tape).ok()?;
        // Owned copies of the strings, so the tape outlives `copy`.
        Some(
            tape.0
                .iter()
                .map(|n| match *n {
                    Node::String(s) => Node::String(Box::leak(s.to_owned().into_boxed_str())),
                    Node::Object { len, count } => Node::Object { len, count },
                    Node::Array { len, count } => Node::Array { len, count },
                    Node::Static(s) => Node::Static(s),
                })
                .collect(),
        )
    }

    /// Where the fast path accepts `src`, simd-json accepts it with the same tape.
    fn agrees(src: &[u8]) -> bool {
        let mut tape = Vec::new();
        if !fill(src, &mut tape) {
            return false;
        }
        let theirs = simd(src);
        assert_eq!(
            theirs.as_deref(),
            Some(&tape[..]),
            "{:?}",
            String::from_utf8_lossy(src)
        );
        true
    }

    #[test]
    fn same_tape_as_simd_json() {
        for src in [
            &br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3715427125,"p":"61837.64000000","q":"0.00200000","T":1723161255342,"m":false,"M":true}}"#[..],
            br#"{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}"#,
            br#"{"e":"depthUpdate","b":[["1.0","0"],["2","3"]],"a":[],"x":{},"n":null,"o":{"k":[1,[2,{}],[]]}}"#,
            br#" [ 1 , "a" , true , false , null , { } , [ ] ] "#,
            br#"{"a":0,"b":123456789012345678,"a":"dup"}"#,
            // 19 digits: Unix ns, i64::MAX, above it, the most there are.
            br#"{"E":1723161600123456789,"a":9223372036854775807,"b":9223372036854775808,"c":9999999999999999999}"#,
            b"[\"\x7f\"]",
        ] {
            assert!(agrees(src), "{:?}", String::from_utf8_lossy(src));
        }
    }

    #[test]
    fn anything_else_goes_to_simd_json() {
        for src in [
            &b""[..],
            b"  ",
            b"1",
            b"\"s\"",
            br#"{"a":"x\"y"}"#,
            "{\"a\":\"é\"}".as_bytes(),
            br#"{"a":-1}"#,
            br#"{"a":1.5}"#,
            br#"{"a":1e3}"#,
            br#"{"a":01}"#,
            br#"{"a":12345678901234567890}"#,
            br#"{"a":1}x"#,
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{"a":tru}"#,
            br#"{"a":truex}"#,
            br#"{"a":[1,2}"#,
            br#"{"a":1]"#,
            br#"{"a":1"#,
            br#"{"a":"1"#,
            br#"{1:2}"#,
            b"[\"tab\tin\"]",
            br#"[[[[[[[[[1]]]]]]]]]"#,
        ] {
            let mut tape = Vec::new();
            assert!(!fill(src, &mut tape), "{:?}", String::from_utf8_lossy(src));
        }
    }

    /// Every frame of the shared captures, and every one-byte mutation of a
    /// few of them: accepted frames read exactly as simd-json reads them.
    #[test]
    fn shared_captures_agree() {
        let Some(dir) = shared() else {
            return;
        };
        let mut seen = 0usize;
        let mut accepted = 0usize;
        for entry in walk(&dir) {
            let Ok(mut r) = crate::capture::CaptureReader::open(&entry) else {
                continue;
            };
            let mut n = 0usize;
            while let Some(rec) = r.next_record() {
                let Ok(rec) = rec else { continue };
                n += 1;
                if n > 3000 {
                    break;
                }
                let frame = rec.frame.to_vec();
                seen += 1;
                accepted += usize::from(agrees(&frame));
                if n % 500 == 1 {
                    for pos in 0..frame.len() {
                        for byte in [b'"', b'\\', b',', b'}', b']', b'0', b'-', b'.', b' ', 0x80] {
                            let mut m = frame.clone();
                            m[pos] = byte;
                            agrees(&m);
                        }
                        let mut m = frame.clone();
                        m.truncate(pos);
                        agrees(&m);
                    }
                }
            }
        }
        eprintln!("plain fast path: {accepted} of {seen} frames");
        assert!(seen > 0 && accepted > 0, "{accepted} of {seen}");
    }

    pub(super) fn shared() -> Option<std::path::PathBuf> {
        let dir = std::env::var_os("WIRESIGNAL_SHARED").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            std::path::PathBuf::from,
        );
        dir.is_dir().then_some(dir)
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else if p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".txt") || n.ends_with(".txt.gz"))
                {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}
