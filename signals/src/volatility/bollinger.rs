//! `bollinger` — SMA ± K population standard deviations over the last `N`
//! values (SIGNALS.md §6); exact `S`, `D = N·S2 − S²`. Identical to TA-Lib
//! `BBANDS(N, K, K, SMA)`.
//!
//! Warm-up: emitted from sample `N` on, as three outputs.

use crate::num::f64_of;
use crate::ring::CountMoments;

/// The three Bollinger outputs, in emission order upper, middle, lower.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bands {
    /// `middle + K·sd`.
    pub upper: f64,
    /// `S / (N·scale)`.
    pub middle: f64,
    /// `middle − K·sd`.
    pub lower: f64,
}

/// Rolling Bollinger bands.
#[derive(Clone, Debug)]
pub struct Bollinger {
    m: CountMoments,
    k: f64,
    n_scale: f64,
}

impl Bollinger {
    /// Bands over the last `n` (≥ 2) values of `X / scale`, width `k` (> 0).
    #[must_use]
    pub fn new(n: usize, k: f64, scale: f64) -> Self {
        Self {
            m: CountMoments::new(n),
            k,
            n_scale: n as f64 * scale,
        }
    }

    /// Consumes integer sample `x`.
    #[inline]
    pub fn update(&mut self, x: i64) -> Option<Bands> {
        self.m.push(x);
        self.value()
    }

    /// Bands at the last sample, once `N` samples were seen.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<Bands> {
        if !self.m.is_full() {
            return None;
        }
        let middle = f64_of(self.m.sum()) / self.n_scale;
        let sd = f64_of(self.m.d()).sqrt() / self.n_scale;
        Some(Bands {
            upper: middle + self.k * sd,
            middle,
            lower: middle - self.k * sd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_series_collapses() {
        let mut b = Bollinger::new(3, 2.0, 100.0);
        assert_eq!(b.update(500), None);
        assert_eq!(b.update(500), None);
        let v = b.update(500).unwrap();
        assert_eq!((v.upper, v.middle, v.lower), (5.0, 5.0, 5.0));
    }

    #[test]
    fn population_std() {
        let mut b = Bollinger::new(2, 1.0, 1.0);
        b.update(1);
        let v = b.update(3).unwrap();
        assert_eq!((v.upper, v.middle, v.lower), (3.0, 2.0, 1.0));
    }
}
