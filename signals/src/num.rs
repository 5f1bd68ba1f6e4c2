//! Exact-integer helpers and compensated floating summation (SIGNALS.md §9).
//!
//! Integer window sums are kept in `i128`. The helpers below are *checked* in
//! debug builds (overflow panics with a message naming the operation) and
//! wrapping in release builds, so the hot path carries no branch there while
//! tests still catch any overflow. With realistic scales every quantity fits
//! with many orders of magnitude to spare (§9.6).

/// `a + b`, overflow-checked in debug builds.
#[inline(always)]
pub(crate) fn add(a: i128, b: i128) -> i128 {
    if cfg!(debug_assertions) {
        a.checked_add(b).expect("signals: i128 overflow in add")
    } else {
        a.wrapping_add(b)
    }
}

/// `a - b`, overflow-checked in debug builds.
#[inline(always)]
pub(crate) fn sub(a: i128, b: i128) -> i128 {
    if cfg!(debug_assertions) {
        a.checked_sub(b).expect("signals: i128 overflow in sub")
    } else {
        a.wrapping_sub(b)
    }
}

/// `a * b`, overflow-checked in debug builds.
#[inline(always)]
pub(crate) fn mul(a: i128, b: i128) -> i128 {
    if cfg!(debug_assertions) {
        a.checked_mul(b).expect("signals: i128 overflow in mul")
    } else {
        a.wrapping_mul(b)
    }
}

/// `x as f64`, through `i64` when it fits: the same value (either
/// conversion rounds the exact integer to nearest, ties to even) without
/// the ~45-instruction software `i128` conversion of every signal update.
/// (`black_box`: LLVM otherwise sees the equivalence and folds both arms
/// back into the `i128` conversion.) Beyond `i64` (`microprice`'s
/// numerator, `zscore`'s `D` at 8 price decimals) it rounds the top 64
/// significant bits instead ([`f64_of_wide`]).
#[inline(always)]
pub(crate) fn f64_of(x: i128) -> f64 {
    match i64::try_from(x) {
        Ok(v) => std::hint::black_box(v) as f64,
        Err(_) => f64_of_wide(x),
    }
}

/// `x as f64` for `|x| >= 2^63`, in ~20 instructions: the magnitude's top
/// 64 bits, with bit 0 set if any bit below them is (a sticky bit: the
/// 11 bits that `u64 -> f64` rounds away still decide the rounding the
/// same way, ties to even included), converted once and scaled by an exact
/// power of two.
#[inline]
fn f64_of_wide(x: i128) -> f64 {
    let n = x.unsigned_abs();
    // |x| >= 2^63, so at most 64 leading zeros: `hi` has its top bit set.
    let lz = n.leading_zeros();
    let m = n << lz;
    let hi = (m >> 64) as u64 | u64::from(m as u64 != 0);
    // 2^(64 - lz), 0 <= 64 - lz <= 64: a normal power of two.
    let scale = f64::from_bits(u64::from(1023 + 64 - lz) << 52);
    let v = hi as f64 * scale;
    if x < 0 {
        -v
    } else {
        v
    }
}

/// `a + b` on `i64`, overflow-checked in debug builds.
#[inline(always)]
pub(crate) fn add64(a: i64, b: i64) -> i64 {
    if cfg!(debug_assertions) {
        a.checked_add(b).expect("signals: i64 overflow in add")
    } else {
        a.wrapping_add(b)
    }
}

/// `b - a` for series times with `b >= a`, as an exact unsigned distance.
#[inline(always)]
pub(crate) fn elapsed(a: i64, b: i64) -> u64 {
    debug_assert!(b >= a);
    b.wrapping_sub(a) as u64
}

/// Neumaier (improved Kahan–Babuška) compensated sum.
///
/// Used for the only floating window sum, `rv`'s `Σ ρ²` (§9.3).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NeumaierSum {
    sum: f64,
    comp: f64,
}

impl NeumaierSum {
    /// Adds `x` (use a negative `x` to subtract).
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The compensated total.
    #[inline]
    #[must_use]
    pub fn total(&self) -> f64 {
        self.sum + self.comp
    }

    /// Resets to zero.
    #[inline]
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn f64_of_is_the_i128_conversion() {
        let edges = [
            0i128,
            1,
            -1,
            (1 << 53) + 1,
            -(1 << 53) - 1,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            (1 << 80) + 12_345,
            i128::MAX,
            i128::MIN,
        ];
        for x in edges
            .into_iter()
            .chain((0..10_000).map(|k| k * 0x1234_5678_9abc_def1_i128 - (1 << 70)))
        {
            assert_eq!(super::f64_of(x).to_bits(), (x as f64).to_bits(), "{x}");
        }
        // Every magnitude from 2^63 to 2^127, at and around the rounding
        // points of the bits `u64 -> f64` drops (halfway: ties to even),
        // and pseudo-random bits below them.
        let mut r: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for top in 63..127u32 {
            for ulp_bit in [top.saturating_sub(52), top.saturating_sub(53)] {
                let base = 1u128 << top;
                for d in [0u128, 1, 2, 3] {
                    for low in [0, 1, (1u128 << ulp_bit) - 1, 1u128 << ulp_bit] {
                        r = r
                            .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                            .wrapping_add(0x5851_f42d_4c95_7f2d);
                        let noise = (r >> 7) & ((1u128 << top) - 1);
                        for m in [
                            base + (d << ulp_bit) + low,
                            base | noise,
                            (base | noise) & !((1u128 << ulp_bit) - 1),
                        ] {
                            let Ok(x) = i128::try_from(m) else { continue };
                            for x in [x, -x] {
                                assert_eq!(super::f64_of(x).to_bits(), (x as f64).to_bits(), "{x}");
                            }
                        }
                    }
                }
            }
        }
    }

    use super::*;

    #[test]
    fn neumaier_recovers_small_terms() {
        let mut s = NeumaierSum::default();
        s.add(1.0);
        s.add(1e100);
        s.add(1.0);
        s.add(-1e100);
        assert_eq!(s.total(), 2.0);
    }

    #[test]
    fn elapsed_is_exact_across_sign() {
        assert_eq!(elapsed(i64::MIN, i64::MAX), u64::MAX);
        assert_eq!(elapsed(-5, 5), 10);
    }
}
