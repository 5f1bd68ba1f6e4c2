//! Exact decimal-string to fixed-point conversion (never via a float).

use std::fmt;

/// Why a decimal string could not be converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    /// Empty string, stray characters or no digits.
    #[error("not a decimal number")]
    Syntax,
    /// A non-zero digit beyond the configured number of decimals.
    #[error("more precision than the configured decimals")]
    Precision,
    /// Does not fit in `i64` at this scale.
    #[error("out of range")]
    Overflow,
}

/// Parses an ASCII decimal (`-12.3400`, `0.5`, `7`) into an integer count of
/// `10^-decimals` units. Trailing zeros beyond `decimals` are accepted; a
/// non-zero digit beyond `decimals` is [`FixedError::Precision`].
///
/// ```
/// assert_eq!(feeds::fixed::parse(b"97000.01000000", 2), Ok(9_700_001));
/// assert!(feeds::fixed::parse(b"0.015", 2).is_err());
/// ```
#[inline(always)]
pub fn parse(s: &[u8], decimals: u8) -> Result<i64, FixedError> {
    // Only the SWAR shape is inlined into the caller (a few dozen
    // instructions, no call); everything else is one call away.
    match parse_shaped(s, decimals) {
        Some(v) => Ok(v),
        None => parse_unshaped(s, decimals),
    }
}

/// [`parse`] where [`parse_shaped`] did not take `s`.
#[inline(never)]
fn parse_unshaped(s: &[u8], decimals: u8) -> Result<i64, FixedError> {
    match parse_plain(s, decimals) {
        Some(v) => Ok(v),
        None => parse_general(s, decimals),
    }
}

/// `10^i` for `i` in `0..=19` (every power of ten a `u64` holds).
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `10^n` while it fits a `u64` (a table lookup, not a `checked_pow` loop).
#[inline]
#[must_use]
pub(crate) fn pow10(n: u8) -> Option<u64> {
    POW10.get(usize::from(n)).copied()
}

/// The common case, as venues send it: unsigned `digits[.digits]` whose
/// integer digits plus `decimals` are at most 18 (so nothing can overflow:
/// no checked arithmetic) and with no non-zero digit beyond `decimals`.
/// `None` for anything else; [`parse_general`] then decides, so both give the
/// same result on every input (tested below).
#[inline]
fn parse_plain(s: &[u8], decimals: u8) -> Option<i64> {
    if let Some(v) = parse_shaped(s, decimals) {
        return Some(v);
    }
    let d = usize::from(decimals);
    let mut v: u64 = 0;
    let mut i = 0;
    while i < s.len() {
        let c = s[i].wrapping_sub(b'0');
        if c > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(c));
        i += 1;
    }
    if i == 0 || i + d > 18 {
        return None;
    }
    let mut taken = 0;
    if i < s.len() {
        if s[i] != b'.' {
            return None;
        }
        if let (Some(w), 1..=8, 9) = (s[i + 1..].first_chunk::<8>(), d, s.len() - i) {
            // Exactly eight fraction digits, as Binance sends every price
            // and size: one SWAR step.
            return eight_digits(u64::from_le_bytes(*w), d).map(|f| (v * POW10[d] + f) as i64);
        }
        for &b in &s[i + 1..] {
            let c = b.wrapping_sub(b'0');
            if c > 9 {
                return None;
            }
            if taken < d {
                v = v * 10 + u64::from(c);
                taken += 1;
            } else if c != 0 {
                return None;
            }
        }
    }
    // < 10^18 by the digit count check: fits in i64.
    Some((v * POW10[d - taken]) as i64)
}

/// [`parse_plain`] of Binance's shape: one to eight integer digits, a point
/// and exactly eight fraction digits (`61837.63000000`), at 1 to 8
/// decimals: two SWAR steps, no loop. `None` for anything else (then
/// `parse_plain` decides).
#[inline(always)]
fn parse_shaped(s: &[u8], decimals: u8) -> Option<i64> {
    let d = usize::from(decimals);
    if let (10..=17, 1..=8) = (s.len(), d) {
        let n = s.len() - 9;
        if s[n] == b'.' {
            if let (Some(a), Some(f)) = (s.first_chunk::<8>(), s[n + 1..].first_chunk::<8>()) {
                let int = lead_digits(u64::from_le_bytes(*a), n)?;
                let frac = eight_digits(u64::from_le_bytes(*f), d)?;
                // n + d <= 16 digits: no overflow.
                return Some((int * POW10[d] + frac) as i64);
            }
        }
    }
    None
}

/// The value of the first `d` (1..=8) of the eight ASCII digits in `w`
/// (first digit in the lowest byte); `None` if a byte is not a digit or a
/// digit after the first `d` is not 0.
#[inline(always)]
fn eight_digits(w: u64, d: usize) -> Option<u64> {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // High nibble 3 and low nibble <= 9 (adding 6 does not carry into it).
    if w & HI != ZEROS || w.wrapping_add(0x0606_0606_0606_0606) & HI != ZEROS {
        return None;
    }
    let x = w & 0x0F0F_0F0F_0F0F_0F0F;
    if d < 8 && x >> (8 * d) != 0 {
        return None;
    }
    // The first `d` digits right-aligned behind leading zeros, then the
    // classic three multiply-shift steps (pairs, quads, all eight).
    let x = x << (8 * (8 - d));
    let x = (x.wrapping_mul(10) + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((x.wrapping_mul(10_000) + (x >> 32)) & 0xFFFF_FFFF)
}

/// The value of the first `n` (1..=8) ASCII digits in `w` (first digit in
/// the lowest byte; the bytes after them are ignored); `None` if one of
/// them is not a digit.
#[inline(always)]
fn lead_digits(w: u64, n: usize) -> Option<u64> {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Digits become 0..=9, any other byte something else; shifting left
    // drops the bytes after the first `n` and puts leading zeros in front.
    let x = (w ^ 0x3030_3030_3030_3030) << (8 * (8 - n));
    // A byte above 9 (or with its high bit set) sets its high bit here;
    // `(b & 0x7F) + 0x76` never carries into the next byte.
    if ((x & LOW7).wrapping_add(0x7676_7676_7676_7676) | x) & HIGHS != 0 {
        return None;
    }
    let x = (x.wrapping_mul(10) + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((x.wrapping_mul(10_000) + (x >> 32)) & 0xFFFF_FFFF)
}

/// The run of ASCII digits `b` starts with: its value and its length.
/// The value is exact for runs of up to 19 digits (any of them fits a
/// `u64`) and wrapped beyond: the JSON readers refuse longer integers.
/// Eight bytes at a time (a Binance id or ms time is 9–13 digits: two
/// steps instead of a multiply-add per digit); bytes one at a time only
/// within the last seven of `b`.
#[inline(always)]
pub(crate) fn digit_run(b: &[u8]) -> (u64, usize) {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut v: u64 = 0;
    let mut n = 0;
    while let Some(w) = b.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        // Digits become 0..=9, and any other byte sets its high bit in
        // `bad` (as in `lead_digits`); the lowest such byte ends the run.
        let x = u64::from_le_bytes(*w) ^ 0x3030_3030_3030_3030;
        let bad = ((x & LOW7).wrapping_add(0x7676_7676_7676_7676) | x) & HIGHS;
        let k = (bad.trailing_zeros() / 8) as usize;
        if k == 0 {
            return (v, n);
        }
        // The first `k` digits behind leading zeros (a shift by 64 would
        // overflow: k = 8 keeps `x`).
        let x = if k == 8 { x } else { x << (8 * (8 - k)) };
        let x = (x.wrapping_mul(10) + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
        let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
        let x = (x.wrapping_mul(10_000) + (x >> 32)) & 0xFFFF_FFFF;
        v = v.wrapping_mul(POW10[k]).wrapping_add(x);
        n += k;
        if k < 8 {
            return (v, n);
        }
    }
    while let Some(&c) = b.get(n) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(d));
        n += 1;
    }
    (v, n)
}

/// The value of eight ASCII digits (the first in `b[0]`); `None` if a byte
/// is not a digit. The capture reader's receive timestamps.
#[inline]
pub(crate) fn digits8(b: &[u8; 8]) -> Option<u64> {
    lead_digits(u64::from_le_bytes(*b), 8)
}

/// [`parse`] for any input: signs, a leading point, long numbers, errors.
#[cold]
fn parse_general(s: &[u8], decimals: u8) -> Result<i64, FixedError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, s),
        None => return Err(FixedError::Syntax),
    };
    let mut value: i64 = 0;
    let mut frac: i32 = -1; // digits seen after the point; -1 = no point yet
    let mut any = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                any = true;
                let d = i64::from(c - b'0');
                if frac >= 0 {
                    if frac >= i32::from(decimals) {
                        if d != 0 {
                            return Err(FixedError::Precision);
                        }
                        continue;
                    }
                    frac += 1;
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(d))
                    .ok_or(FixedError::Overflow)?;
            }
            b'.' if frac < 0 => frac = 0,
            _ => return Err(FixedError::Syntax),
        }
    }
    if !any {
        return Err(FixedError::Syntax);
    }
    let have = frac.max(0);
    for _ in have..i32::from(decimals) {
        value = value.checked_mul(10).ok_or(FixedError::Overflow)?;
    }
    Ok(if neg { -value } else { value })
}

/// Formats `value` units of `10^-decimals` as a decimal string with exactly
/// `decimals` fraction digits (`9700001, 2` → `"97000.01"`).
#[must_use]
pub fn format(value: i64, decimals: u8) -> String {
    Display(value, decimals).to_string()
}

/// Digits after the decimal point of a decimal string (`"61800.20"` → 2,
/// `"1001"` → 0), at most 12 (the largest scale, SIGNALS.md 1.1).
#[inline]
#[must_use]
pub fn decimals(s: &[u8]) -> u8 {
    match s.iter().position(|&c| c == b'.') {
        Some(dot) => {
            let n = s[dot + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            n.min(12) as u8
        }
        None => 0,
    }
}

/// Appends `value` units of `10^-decimals` to `out` as [`format`] would,
/// without allocating (renderers of the simulator and generator).
/// `decimals` above 18 are treated as 18.
///
/// ```
/// let mut s = String::new();
/// feeds::fixed::push(&mut s, 6_180_020, 2);
/// s.push(' ');
/// feeds::fixed::push(&mut s, -5, 8);
/// assert_eq!(s, "61800.20 -0.00000005");
/// ```
pub fn push(out: &mut String, value: i64, decimals: u8) {
    let d = usize::from(decimals.min(18));
    // Least significant digit first; at least one integer digit.
    let mut buf = [b'0'; 40];
    let mut n = 0;
    let mut a = value.unsigned_abs();
    while a > 0 || n <= d {
        buf[n] = b'0' + (a % 10) as u8;
        a /= 10;
        n += 1;
    }
    if value < 0 {
        out.push('-');
    }
    for i in (0..n).rev() {
        out.push(char::from(buf[i]));
        if i == d && d > 0 {
            out.push('.');
        }
    }
}

/// [`fmt::Display`] adapter for a fixed-point value.
#[derive(Clone, Copy, Debug)]
pub struct Display(pub i64, pub u8);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Display(v, d) = *self;
        if d == 0 {
            return write!(f, "{v}");
        }
        let scale = 10u64.pow(u32::from(d));
        let sign = if v < 0 { "-" } else { "" };
        let a = v.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$}",
            a / scale,
            a % scale,
            width = usize::from(d)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_equals_format_and_round_trips() {
        for (v, d) in [
            (6_180_020, 2),
            (5, 8),
            (-150, 2),
            (7, 0),
            (0, 0),
            (0, 8),
            (i64::MAX, 8),
            (i64::MIN, 12),
            (100_000_000, 8),
        ] {
            let mut s = String::new();
            push(&mut s, v, d);
            assert_eq!(s, format(v, d), "{v} {d}");
            if v != i64::MIN {
                assert_eq!(parse(s.as_bytes(), d), Ok(v), "{s}");
            }
        }
    }

    /// `digit_run` against a digit at a time, on every run length up to
    /// 24 at every offset of a 32-byte buffer (so the run meets the
    /// buffer's end), with every byte value as the one after the run.
    #[test]
    fn digit_run_equals_a_digit_at_a_time() {
        let slow = |b: &[u8]| {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let v = b[..n].iter().fold(0u64, |v, &c| {
                v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
            });
            (v, n)
        };
        let digits = b"98765432109876543210123456789";
        for len in 0..=24 {
            for at in 0..=32 - len {
                for after in 0..=255u8 {
                    let mut buf = [b'7'; 32];
                    buf[at..at + len].copy_from_slice(&digits[..len]);
                    if at + len < 32 {
                        buf[at + len] = after;
                    }
                    let b = &buf[at..];
                    assert_eq!(digit_run(b), slow(b), "len {len} at {at} after {after}");
                    let b = &buf[at..at + len];
                    assert_eq!(digit_run(b), slow(b), "len {len}, slice ends");
                }
            }
        }
        assert_eq!(digit_run(b""), (0, 0));
        assert_eq!(
            digit_run(b"1234567890123456789,"),
            (1_234_567_890_123_456_789, 19)
        );
        assert_eq!(digit_run(b"18446744073709551615}"), (u64::MAX, 20));
    }

    #[test]
    fn parses_binance_strings() {
        assert_eq!(parse(b"97000.00000000", 8), Ok(9_700_000_000_000));
        assert_eq!(parse(b"0.00308000", 8), Ok(308_000));
        assert_eq!(parse(b"0.00000000", 8), Ok(0));
        assert_eq!(parse(b"97000.01000000", 2), Ok(9_700_001));
        assert_eq!(parse(b"12", 3), Ok(12_000));
        assert_eq!(parse(b"-1.5", 1), Ok(-15));
        assert_eq!(parse(b".5", 1), Ok(5));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse(b"", 8), Err(FixedError::Syntax));
        assert_eq!(parse(b"-", 8), Err(FixedError::Syntax));
        assert_eq!(parse(b"1.2.3", 8), Err(FixedError::Syntax));
        assert_eq!(parse(b"1e5", 8), Err(FixedError::Syntax));
        assert_eq!(parse(b"0.015", 2), Err(FixedError::Precision));
        assert_eq!(parse(b"99999999999999999999", 0), Err(FixedError::Overflow));
        assert_eq!(parse(b"99999999999", 8), Err(FixedError::Overflow));
    }

    /// The fast path agrees with the general one on every input it takes.
    #[test]
    fn plain_path_matches_general() {
        use proptest::prelude::*;
        let strat = (
            prop_oneof![
                "[-+]?[0-9]{0,20}(\\.[0-9]{0,20})?",
                "[0-9]{1,6}\\.[0-9]{0,12}",
                "[0-9]{1,10}\\.[0-9]{8}",
                "[0-9]{1,6}\\.[0-9]{1,4}0{4,7}",
                "[0-9]{1,6}\\.[0-9/:]{8}",
                "[0-9/: é]{0,9}\\.[0-9]{8}",
                "[-+.0-9x]{0,24}",
            ],
            0u8..=19,
        );
        proptest!(ProptestConfig::with_cases(20_000), |((s, d) in strat)| {
            prop_assert_eq!(parse(s.as_bytes(), d), parse_general(s.as_bytes(), d), "{:?} {}", s, d);
        });
        for (s, d) in [
            ("61737.63000000", 2u8),
            ("61737.63000000", 1),
            ("61737.63000001", 7),
            ("61737.63000001", 8),
            ("0.00200000", 5),
            ("0.0020000:", 5),
            ("0.002/0000", 5),
            ("1234567890.12345678", 8),
            ("0.00308000", 8),
            ("5.", 3),
            ("123456789012345678", 0),
            ("1234567890123456789", 0),
            ("99999999999", 8),
            ("9999999999", 8),
            ("0.0000000000000000001", 18),
            ("/1.00000000", 8),
            ("1:.00000000", 8),
            ("12345678.12345678", 8),
            ("00000000.00000001", 8),
            ("é1.00000000", 8),
        ] {
            assert_eq!(
                parse(s.as_bytes(), d),
                parse_general(s.as_bytes(), d),
                "{s} {d}"
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(9_700_001, 2), "97000.01");
        assert_eq!(format(308_000, 8), "0.00308000");
        assert_eq!(format(-15, 1), "-1.5");
        assert_eq!(format(7, 0), "7");
        for (s, d) in [("97000.01000000", 8u8), ("0.00000001", 8), ("-3.250", 3)] {
            let v = parse(s.as_bytes(), d).unwrap();
            assert_eq!(format(v, d), s);
        }
    }
}
