//! Exchange book checksums: CRC32 over the top of the book rendered as text
//! ([`Crc32Spec`]), recomputed from the fixed-point book after every update.
//!
//! Rendering is exact: a value held at the instrument's scale is written at
//! the venue's wire precision (`InstrumentInfo::wire`, learned from its
//! strings) or as its shortest decimal text, so a correct book never raises
//! a false alarm from number formatting.

use crate::book::{ChecksumLayout, ChecksumNumber, Crc32Spec, OrderBook};
use crate::event::Scale;
use crate::fixed::pow10;

/// What [`crc32`] reuses between checksums: the text buffer, and the numbers
/// it rendered recently.
///
/// The top of a book changes by a level or two per update, so nearly every
/// number a checksum renders was rendered by the previous one: a rendering
/// costs ~140 instructions (`itoa`, padding, two `extend`s), a cache hit a
/// hash, a compare and one short copy. The cache is keyed by the value and
/// how it is rendered, so one scratch serves every instrument of a thread.
pub struct ChecksumScratch {
    buf: Vec<u8>,
    cache: Box<[Rendered]>,
}

/// One cached rendering (`how == 0`: empty).
#[derive(Clone, Copy)]
struct Rendered {
    v: i64,
    how: u32,
    len: u8,
    text: [u8; Rendered::MAX],
}

impl Rendered {
    /// Longest cached text (longer ones are rendered every time).
    const MAX: usize = 27;
    const EMPTY: Self = Self {
        v: 0,
        how: 0,
        len: 0,
        text: [0; Self::MAX],
    };
}

impl ChecksumScratch {
    /// Cached renderings (direct-mapped; 40 bytes each).
    const SLOTS: usize = 512;

    /// An empty scratch.
    #[must_use]
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(4096),
            cache: vec![Rendered::EMPTY; Self::SLOTS].into_boxed_slice(),
        }
    }

    /// The text of the last checksum.
    #[must_use]
    pub fn text(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `v` (held at `held` decimals) rendered per `number` at `sent`
    /// decimals, from the cache when it is there.
    #[inline]
    fn number(&mut self, number: ChecksumNumber, v: i64, held: u8, sent: u8) {
        let how = 1 << 24
            | u32::from(matches!(number, ChecksumNumber::Shortest)) << 16
            | u32::from(held) << 8
            | u32::from(sent);
        // Fibonacci hashing of the value and how it is rendered.
        let h = (v as u64 ^ u64::from(how).rotate_left(40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = (h >> 55) as usize % Self::SLOTS;
        if let Some(r) = self.cache.get(slot) {
            if r.how == how && r.v == v {
                // The whole fixed-size text (two vector moves, no `memcpy`
                // call), then cut back to its length.
                let end = self.buf.len() + usize::from(r.len);
                self.buf.extend_from_slice(&r.text);
                self.buf.truncate(end);
                return;
            }
        }
        let start = self.buf.len();
        match number {
            ChecksumNumber::WireDigits => wire_digits(&mut self.buf, v, held, sent),
            ChecksumNumber::Shortest => shortest(&mut self.buf, v, held),
        }
        let text = &self.buf[start..];
        if let (Some(r), true) = (self.cache.get_mut(slot), text.len() <= Rendered::MAX) {
            r.v = v;
            r.how = how;
            r.len = text.len() as u8;
            r.text[..text.len()].copy_from_slice(text);
        }
    }
}

impl Default for ChecksumScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// The checksum of `book` per `spec` (its text stays in `scratch`).
/// Prices and sizes are held at `scale` and were sent at `wire` decimals.
#[must_use]
pub fn crc32(
    book: &OrderBook,
    spec: &Crc32Spec,
    scale: Scale,
    wire: Scale,
    scratch: &mut ChecksumScratch,
) -> u32 {
    scratch.buf.clear();
    let n = spec.levels;
    let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
    let (wp, wq) = (wire.price_decimals, wire.qty_decimals);
    let k = spec.number;
    match spec.layout {
        ChecksumLayout::AsksThenBids => {
            for (px, qty) in book.asks().take(n).chain(book.bids().take(n)) {
                scratch.number(k, px, pd, wp);
                scratch.number(k, qty, qd, wq);
            }
        }
        ChecksumLayout::Interleaved => {
            let mut bids = book.bids().take(n);
            let mut asks = book.asks().take(n);
            loop {
                let (b, a) = (bids.next(), asks.next());
                if b.is_none() && a.is_none() {
                    break;
                }
                for (px, qty) in [b, a].into_iter().flatten() {
                    if !scratch.buf.is_empty() {
                        scratch.buf.push(b':');
                    }
                    scratch.number(k, px, pd, wp);
                    scratch.buf.push(b':');
                    scratch.number(k, qty, qd, wq);
                }
            }
        }
    }
    crc32fast::hash(&scratch.buf)
}

/// `v` (at `held` decimals) at `sent` decimals, digits only, no leading
/// zeros (`"0.05120"` → `5120`).
///
/// In `i64`/`u64` arithmetic wherever the value allows (every book level
/// of a checksum is rendered after every update, so `i128` division —
/// a library call per digit — was half of a Kraken replay's instructions).
fn wire_digits(buf: &mut Vec<u8>, v: i64, held: u8, sent: u8) {
    if held >= sent {
        // |v| < 10^19: dropping 19 or more decimals leaves 0.
        let at = pow10(held - sent)
            .and_then(|p| i64::try_from(p).ok())
            .map_or(0, |scale| v / scale);
        if at < 0 {
            buf.push(b'-');
        }
        push_u64(buf, at.unsigned_abs(), 1);
        return;
    }
    let at = i128::from(v).saturating_mul(10i128.pow(u32::from(sent - held).min(30)));
    if at < 0 {
        buf.push(b'-');
    }
    push_digits(buf, at.unsigned_abs(), 1);
}

/// `v` (at `held` decimals) as its shortest decimal text (`30316`, `5.16`).
fn shortest(buf: &mut Vec<u8>, v: i64, held: u8) {
    let a = v.unsigned_abs();
    if v < 0 {
        buf.push(b'-');
    }
    // |v| < 10^19: with 19 or more decimals the integer part is 0.
    let (int, mut frac) = pow10(held).map_or((0, a), |scale| (a / scale, a % scale));
    push_u64(buf, int, 1);
    if frac != 0 {
        let mut width = usize::from(held);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        buf.push(b'.');
        push_u64(buf, frac, width);
    }
}

/// The decimal digits of `v`, left-padded with zeros to at least `width`.
fn push_digits(buf: &mut Vec<u8>, v: u128, width: usize) {
    const E19: u128 = 10_000_000_000_000_000_000;
    match u64::try_from(v) {
        Ok(small) => push_u64(buf, small, width),
        Err(_) => {
            push_digits(buf, v / E19, width.saturating_sub(19));
            // The low 19 digits, zero-padded (`v % E19` < 10^19 fits).
            push_u64(buf, u64::try_from(v % E19).unwrap_or(0), 19);
        }
    }
}

/// [`push_digits`] for a `u64`: `itoa`'s two digits per step, then the
/// padding in front.
fn push_u64(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut text = itoa::Buffer::new();
    let digits = text.format(v).as_bytes();
    buf.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    // `0` at width 0 is no digits (a fraction's zero part never reaches
    // here: `shortest` prints it only when non-zero).
    if !(v == 0 && width == 0) {
        buf.extend_from_slice(digits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BookSide;

    fn book(bids: &[(i64, i64)], asks: &[(i64, i64)]) -> OrderBook {
        let mut b = OrderBook::with_capacity(16);
        for &(p, q) in bids {
            b.set(BookSide::Bid, p, q);
        }
        for &(p, q) in asks {
            b.set(BookSide::Ask, p, q);
        }
        b
    }

    #[test]
    fn number_rendering() {
        let mut b = Vec::new();
        wire_digits(&mut b, 5_120_000, 8, 5);
        assert_eq!(b, b"5120");
        b.clear();
        wire_digits(&mut b, 3_541_500_000_000, 10, 5);
        assert_eq!(b, b"35415000");
        b.clear();
        shortest(&mut b, 3_031_600_000_000, 8);
        assert_eq!(b, b"30316");
        b.clear();
        shortest(&mut b, 516_000_000, 8);
        assert_eq!(b, b"5.16");
        b.clear();
        shortest(&mut b, 5_000_012, 8);
        assert_eq!(b, b"0.05000012");
        b.clear();
        shortest(&mut b, 0, 8);
        assert_eq!(b, b"0");
        b.clear();
        wire_digits(&mut b, 0, 8, 8);
        assert_eq!(b, b"0");
        b.clear();
        wire_digits(&mut b, -5_120_000, 8, 5);
        assert_eq!(b, b"-5120");
        b.clear();
        wire_digits(&mut b, 123, 2, 4);
        assert_eq!(b, b"12300");
        b.clear();
        wire_digits(&mut b, i64::MAX, 30, 5);
        assert_eq!(b, b"0");
        b.clear();
        wire_digits(&mut b, i64::MAX, 0, 2);
        assert_eq!(b, format!("{}00", i64::MAX).as_bytes());
        b.clear();
        shortest(&mut b, -516_000_000, 8);
        assert_eq!(b, b"-5.16");
        b.clear();
        shortest(&mut b, 7, 25);
        assert_eq!(b, format!("0.{}7", "0".repeat(24)).as_bytes());
        b.clear();
        shortest(&mut b, i64::MIN, 0);
        assert_eq!(b, i64::MIN.to_string().as_bytes());
        b.clear();
        push_digits(&mut b, u128::MAX, 1);
        assert_eq!(b, u128::MAX.to_string().as_bytes());
        b.clear();
        push_digits(&mut b, 42, 45);
        assert_eq!(b, format!("{}42", "0".repeat(43)).as_bytes());
    }

    #[test]
    fn okx_documented_example_layout() {
        // OKX's documented example: bids [["3366.1","7"],["3366","6"]], asks
        // [["3366.8","9"],["3368","8"]] → "3366.1:7:3366.8:9:3366:6:3368:8".
        let bk = book(&[(336_610, 7), (336_600, 6)], &[(336_680, 9), (336_800, 8)]);
        let spec = Crc32Spec {
            levels: 25,
            layout: ChecksumLayout::Interleaved,
            number: ChecksumNumber::Shortest,
            zero_is_absent: true,
        };
        let scale = Scale {
            price_decimals: 2,
            qty_decimals: 0,
        };
        let mut scratch = ChecksumScratch::new();
        let c = crc32(&bk, &spec, scale, scale, &mut scratch);
        assert_eq!(scratch.text(), b"3366.1:7:3366.8:9:3366:6:3368:8");
        assert_eq!(c, crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8"));
        // One side longer: its leftovers follow.
        let bk = book(&[(336_610, 7), (336_600, 6), (336_500, 1)], &[(336_680, 9)]);
        let _ = crc32(&bk, &spec, scale, scale, &mut scratch);
        assert_eq!(scratch.text(), b"3366.1:7:3366.8:9:3366:6:3365:1");
    }

    proptest::proptest! {
        /// Cached or not, a number renders the same; colliding slots,
        /// different decimals and both styles share one cache.
        #[test]
        fn cached_numbers_render_as_fresh_ones(
            vals in proptest::collection::vec(
                (
                    proptest::prop_oneof![-1_000i64..1_000, proptest::prelude::any::<i64>()],
                    0u8..12,
                    0u8..12,
                    proptest::prelude::any::<bool>(),
                ),
                1..400,
            )
        ) {
            let mut scratch = ChecksumScratch::new();
            for round in 0..2 {
                for &(v, held, sent, short) in &vals {
                    let k = if short { ChecksumNumber::Shortest } else { ChecksumNumber::WireDigits };
                    scratch.buf.clear();
                    scratch.number(k, v, held, sent);
                    let mut want = Vec::new();
                    match k {
                        ChecksumNumber::WireDigits => wire_digits(&mut want, v, held, sent),
                        ChecksumNumber::Shortest => shortest(&mut want, v, held),
                    }
                    proptest::prop_assert_eq!(&scratch.buf, &want, "round {}: {} {} {} {}", round, v, held, sent, short);
                }
            }
        }
    }
}
