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
