//! Exchange book checksums: CRC32 over the top of the book rendered as text
//! ([`Crc32Spec`]), recomputed from the fixed-point book after every update.
//!
//! Rendering is exact: a value held at the instrument's scale is written at
//! the venue's wire precision (`InstrumentInfo::wire`, learned from its
//! strings) or as its shortest decimal text, so a correct book never raises
//! a false alarm from number formatting.

use crate::book::{ChecksumLayout, ChecksumNumber, Crc32Spec, OrderBook};
use crate::event::Scale;

/// The checksum of `book` per `spec`; `buf` is a reused scratch buffer.
/// Prices and sizes are held at `scale` and were sent at `wire` decimals.
#[must_use]
pub fn crc32(
    book: &OrderBook,
    spec: &Crc32Spec,
    scale: Scale,
    wire: Scale,
    buf: &mut Vec<u8>,
) -> u32 {
    buf.clear();
    let n = spec.levels;
    let num = |buf: &mut Vec<u8>, v: i64, held: u8, sent: u8| match spec.number {
        ChecksumNumber::WireDigits => wire_digits(buf, v, held, sent),
        ChecksumNumber::Shortest => shortest(buf, v, held),
    };
    let (pd, qd) = (scale.price_decimals, scale.qty_decimals);
    let (wp, wq) = (wire.price_decimals, wire.qty_decimals);
    match spec.layout {
        ChecksumLayout::AsksThenBids => {
            for (px, qty) in book.asks().take(n).chain(book.bids().take(n)) {
                num(buf, px, pd, wp);
                num(buf, qty, qd, wq);
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
                    if !buf.is_empty() {
                        buf.push(b':');
                    }
                    num(buf, px, pd, wp);
                    buf.push(b':');
                    num(buf, qty, qd, wq);
                }
            }
        }
    }
    crc32fast::hash(buf)
}

/// `v` (at `held` decimals) at `sent` decimals, digits only, no leading
/// zeros (`"0.05120"` → `5120`).
fn wire_digits(buf: &mut Vec<u8>, v: i64, held: u8, sent: u8) {
    let v = i128::from(v);
    let at = if held >= sent {
        v / 10i128.pow(u32::from(held - sent))
    } else {
        v.saturating_mul(10i128.pow(u32::from(sent - held).min(30)))
    };
    if at < 0 {
        buf.push(b'-');
    }
    push_digits(buf, at.unsigned_abs(), 1);
}

/// `v` (at `held` decimals) as its shortest decimal text (`30316`, `5.16`).
fn shortest(buf: &mut Vec<u8>, v: i64, held: u8) {
    let scale = 10u128.pow(u32::from(held.min(30)));
    let a = i128::from(v).unsigned_abs();
    if v < 0 {
        buf.push(b'-');
    }
    push_digits(buf, a / scale, 1);
    let mut frac = a % scale;
    if frac != 0 {
        let mut width = usize::from(held);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        buf.push(b'.');
        push_digits(buf, frac, width);
    }
}

/// The decimal digits of `v`, left-padded with zeros to at least `width`.
fn push_digits(buf: &mut Vec<u8>, mut v: u128, width: usize) {
    let mut digits = [b'0'; 40];
    let mut n = 0;
    while v > 0 || n < width {
        digits[n] = b'0' + (v % 10) as u8;
        v /= 10;
        n += 1;
        if n == digits.len() {
            break;
        }
    }
    buf.extend(digits[..n].iter().rev());
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
        let mut buf = Vec::new();
        let c = crc32(&bk, &spec, scale, scale, &mut buf);
        assert_eq!(buf, b"3366.1:7:3366.8:9:3366:6:3368:8");
        assert_eq!(c, crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8"));
        // One side longer: its leftovers follow.
        let bk = book(&[(336_610, 7), (336_600, 6), (336_500, 1)], &[(336_680, 9)]);
        let _ = crc32(&bk, &spec, scale, scale, &mut buf);
        assert_eq!(buf, b"3366.1:7:3366.8:9:3366:6:3365:1");
    }
}
