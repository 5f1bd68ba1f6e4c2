//! Timestamps from text, without allocation: RFC 3339 / ISO 8601 UTC
//! (`2024-08-08T23:54:13.9370000Z`, Tardis.dev raw files and venues that
//! send string times) to nanoseconds since the Unix epoch.

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (a space is
/// accepted for `T`, `z` for `Z`) to ns since the epoch. The fraction may
/// have any number of digits; digits past the ninth are truncated. `None`
/// for anything else, an invalid date or time, or a result outside `i64`.
#[must_use]
pub fn parse_rfc3339_ns(s: &[u8]) -> Option<i64> {
    if s.len() < 20 {
        return None;
    }
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let (hour, min, sec) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 admits a leap second (folded onto the next second, as POSIX does).
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale = 100_000_000;
        while let Some(c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            nanos += i64::from(c - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_s: i64 = match &s[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2], 0, 2)?;
            let m = digits(&[*m1, *m2], 0, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// `n` ASCII digits at `at` as a number.
#[inline]
fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for &c in s.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H.
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Appends `ns` since the epoch as RFC 3339 UTC with `digits` (0-9)
/// fractional digits (`2021-04-17T16:43:37.075687Z` for 6): the inverse of
/// [`parse_rfc3339_ns`] at that precision (the fraction is truncated).
pub fn push_rfc3339(out: &mut String, ns: i64, digits: u32) {
    use std::fmt::Write as _;
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    let digits = digits.min(9);
    if digits > 0 {
        let frac = nanos / 10i64.pow(9 - digits);
        let _ = write!(out, ".{frac:0w$}", w = digits as usize);
    }
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339_ns, push_rfc3339};

    #[test]
    fn formats_what_it_parses() {
        for (ns, digits, text) in [
            (1_618_677_817_075_687_000, 6, "2021-04-17T16:43:37.075687Z"),
            (0, 0, "1970-01-01T00:00:00Z"),
            (-500_000_000, 3, "1969-12-31T23:59:59.500Z"),
            (
                1_709_251_199_123_456_789,
                9,
                "2024-02-29T23:59:59.123456789Z",
            ),
        ] {
            let mut s = String::new();
            push_rfc3339(&mut s, ns, digits);
            assert_eq!(s, text);
            assert_eq!(parse_rfc3339_ns(s.as_bytes()), Some(ns));
        }
    }

    #[test]
    fn tardis_and_rfc3339_forms() {
        // date -u -d '2024-08-08T23:54:13Z' +%s = 1723161253
        let base = 1_723_161_253_000_000_000;
        assert_eq!(
            parse_rfc3339_ns(b"2024-08-08T23:54:13.9370000Z"),
            Some(base + 937_000_000)
        );
        assert_eq!(parse_rfc3339_ns(b"2024-08-08T23:54:13Z"), Some(base));
        assert_eq!(
            parse_rfc3339_ns(b"2024-08-08T23:54:13.123456789123Z"),
            Some(base + 123_456_789)
        );
        assert_eq!(
            parse_rfc3339_ns(b"2024-08-09T01:54:13.5+02:00"),
            Some(base + 500_000_000)
        );
        assert_eq!(parse_rfc3339_ns(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns(b"1969-12-31T23:59:59.5Z"),
            Some(-500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns(b"2000-02-29T00:00:00Z"),
            Some(951_782_400_000_000_000)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"2024-08-08",
            b"2024-08-08T23:54:13",
            b"2024-08-08T23:54:13.Z",
            b"2024-13-08T23:54:13Z",
            b"2023-02-29T00:00:00Z",
            b"2024-08-08T24:00:00Z",
            b"2024-08-08X23:54:13Z",
            b"2024-08-08T23:54:13Zjunk",
            b"9999-12-31T23:59:59Z", // past i64 ns
            b"20a4-08-08T23:54:13Z",
        ] {
            assert_eq!(
                parse_rfc3339_ns(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
