//! The tape of a compact combined-stream frame, built straight from its
//! shape: `{"stream":"…","data":{"k":v,…}}` with no whitespace, `data` a
//! flat object whose values are plain strings, unsigned integers, booleans
//! or depth level arrays (`[["px","qty"],…]`). That is every trade,
//! bookTicker and depthUpdate frame Binance sends, and it reads as about
//! half the instructions of the general plain-JSON pass (no container
//! stack, no whitespace skipping, one 4-byte test per one-letter key).
//!
//! Anything else returns `false` and the frame goes on to the general
//! paths (`plain_json`, then simd-json), so an accepted frame has exactly
//! the tape those would build (tested against them on every Binance frame
//! of `../shared` and on mutations).

use simd_json::{Node, StaticNode};

use crate::bytes::ascii;
use crate::plain_json::string_end;

/// Most digits of an integer taken here (as in `plain_json`).
const MAX_DIGITS: usize = 18;

/// Builds the tape of `b` into `tape` if `b` has the shape above.
#[inline]
pub(crate) fn fill<'i>(b: &'i [u8], tape: &mut Vec<Node<'i>>) -> bool {
    tape.clear();
    fill_inner(b, tape).is_some()
}

#[inline]
fn fill_inner<'i>(b: &'i [u8], tape: &mut Vec<Node<'i>>) -> Option<()> {
    const HEAD: &[u8] = b"{\"stream\":\"";
    const DATA: &[u8] = b",\"data\":{";
    if !b.starts_with(HEAD) {
        return None;
    }
    let end = string_end(b, HEAD.len())?;
    tape.push(Node::Static(StaticNode::Null)); // root header, set below
    tape.push(Node::String("stream"));
    tape.push(Node::String(ascii(&b[HEAD.len()..end])));
    let mut i = end + 1;
    if !b.get(i..)?.starts_with(DATA) {
        return None;
    }
    i += DATA.len();
    tape.push(Node::String("data"));
    let data = tape.len();
    tape.push(Node::Static(StaticNode::Null)); // data header, set below
    let mut len = 0usize;
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            i = key(b, i, tape)?;
            i = value(b, i, tape)?;
            len += 1;
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
    tape[data] = Node::Object {
        len,
        count: tape.len() - data - 1,
    };
    tape[0] = Node::Object {
        len: 2,
        count: tape.len() - 1,
    };
    Some(())
}

/// A key at `b[i]` (`"k":`); returns where its value starts.
#[inline(always)]
fn key<'i>(b: &'i [u8], i: usize, tape: &mut Vec<Node<'i>>) -> Option<usize> {
    // One-letter keys: `"k":` in one 4-byte test.
    if let Some(&[b'"', c, b'"', b':']) = b.get(i..i + 4) {
        if (0x20..0x80).contains(&c) && c != b'"' && c != b'\\' {
            tape.push(Node::String(ascii(&b[i + 1..i + 2])));
            return Some(i + 4);
        }
    }
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = string_end(b, i + 1)?;
    tape.push(Node::String(ascii(&b[i + 1..end])));
    (b.get(end + 1) == Some(&b':')).then_some(end + 2)
}

/// A value at `b[i]`; returns the index after it.
#[inline(always)]
fn value<'i>(b: &'i [u8], i: usize, tape: &mut Vec<Node<'i>>) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string(b, i, tape),
        c @ b'0'..=b'9' => {
            let mut j = i;
            let mut v: u64 = 0;
            while let Some(&d) = b.get(j) {
                let d = d.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                v = v.wrapping_mul(10).wrapping_add(u64::from(d));
                j += 1;
            }
            let n = j - i;
            // Only `,` or `}` may follow (no fraction, no exponent).
            if n > MAX_DIGITS || (c == b'0' && n > 1) || !matches!(b.get(j), Some(b',' | b'}')) {
                return None;
            }
            tape.push(Node::Static(StaticNode::U64(v)));
            Some(j)
        }
        b't' if b[i..].starts_with(b"true") => {
            tape.push(Node::Static(StaticNode::Bool(true)));
            Some(i + 4)
        }
        b'f' if b[i..].starts_with(b"false") => {
            tape.push(Node::Static(StaticNode::Bool(false)));
            Some(i + 5)
        }
        b'[' => levels(b, i + 1, tape),
        _ => None,
    }
}

/// A plain string value at `b[i]` (its opening quote); returns the index
/// after its closing quote.
#[inline(always)]
fn string<'i>(b: &'i [u8], i: usize, tape: &mut Vec<Node<'i>>) -> Option<usize> {
    let end = string_end(b, i + 1)?;
    tape.push(Node::String(ascii(&b[i + 1..end])));
    Some(end + 1)
}

/// A level array whose `[` is just before `b[i]`: `[]` or
/// `[["px","qty"],…]`; returns the index after its `]`.
#[inline]
fn levels<'i>(b: &'i [u8], mut i: usize, tape: &mut Vec<Node<'i>>) -> Option<usize> {
    let header = tape.len();
    tape.push(Node::Static(StaticNode::Null));
    let mut len = 0usize;
    if b.get(i) != Some(&b']') {
        loop {
            if b.get(i..i + 2) != Some(b"[\"") {
                return None;
            }
            tape.push(Node::Array { len: 2, count: 2 });
            i = string(b, i + 1, tape)?;
            if b.get(i..i + 2) != Some(b",\"") {
                return None;
            }
            i = string(b, i + 1, tape)?;
            if b.get(i) != Some(&b']') {
                return None;
            }
            len += 1;
            match b.get(i + 1) {
                Some(b',') => i += 2,
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    tape[header] = Node::Array {
        len,
        count: tape.len() - header - 1,
    };
    Some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::fill;

    /// Where this path accepts `src`, the general plain-JSON pass (itself
    /// tested against simd-json) builds the same tape.
    fn agrees(src: &[u8]) -> bool {
        let mut ours = Vec::new();
        if !fill(src, &mut ours) {
            return false;
        }
        let mut general = Vec::new();
        assert!(
            crate::plain_json::fill(src, &mut general),
            "{:?}",
            String::from_utf8_lossy(src)
        );
        assert_eq!(ours, general, "{:?}", String::from_utf8_lossy(src));
        true
    }

    #[test]
    fn shapes() {
        for src in [
            &br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":false}}"#[..],
            br#"{"stream":"x","data":{"u":0,"s":"BTCUSDT","b":"1","B":"2","a":"3","A":"4"}}"#,
            br#"{"stream":"x","data":{"e":"depthUpdate","b":[["1.0","0"],["2","3"]],"a":[],"lastUpdateId":7}}"#,
            br#"{"stream":"","data":{}}"#,
        ] {
            assert!(agrees(src), "{:?}", String::from_utf8_lossy(src));
        }
        for src in [
            &br#" {"stream":"x","data":{}}"#[..],
            br#"{"stream":"x","data":{}} "#,
            br#"{"stream":"x","data":{},"x":1}"#,
            br#"{"stream":"x","data":{"a":1.5}}"#,
            br#"{"stream":"x","data":{"a":01}}"#,
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
            let mut tape = Vec::new();
            assert!(!fill(src, &mut tape), "{:?}", String::from_utf8_lossy(src));
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
