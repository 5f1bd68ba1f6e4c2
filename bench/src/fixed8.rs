//! Tiny 8-decimal fixed-point helpers for Binance decimal strings.
//!
//! Binance spot prints prices and quantities with exactly eight decimals
//! (`"61837.63000000"`); values here are integers in units of `1e-8`.

/// `1.0` in fixed-point units.
pub const SCALE: i64 = 100_000_000;

/// Appends `v` (units of `1e-8`, non-negative) as `"<int>.<8 digits>"`.
pub fn push_fixed8(buf: &mut String, v: i64) {
    let mut ib = itoa::Buffer::new();
    buf.push_str(ib.format(v / SCALE));
    buf.push('.');
    let frac = (v % SCALE).unsigned_abs();
    let s = ib.format(frac);
    for _ in s.len()..8 {
        buf.push('0');
    }
    buf.push_str(s);
}

/// Parses a non-negative decimal string with at most eight decimals into
/// `1e-8` units. Returns `None` for anything else.
pub fn parse_fixed8(s: &str) -> Option<i64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || frac.len() > 8 {
        return None;
    }
    let mut v: i64 = 0;
    for b in int.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let mut f: i64 = 0;
    for b in frac.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        f = f * 10 + i64::from(b - b'0');
    }
    for _ in frac.len()..8 {
        f *= 10;
    }
    v.checked_mul(SCALE)?.checked_add(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in ["0.00000000", "61837.63000000", "0.00100000", "12.34567891"] {
            let v = parse_fixed8(s).unwrap();
            let mut out = String::new();
            push_fixed8(&mut out, v);
            assert_eq!(out, s);
        }
        assert_eq!(parse_fixed8("1.5"), Some(150_000_000));
        assert_eq!(parse_fixed8("1.123456789"), None);
        assert_eq!(parse_fixed8("-1"), None);
        assert_eq!(parse_fixed8(""), None);
    }
}
