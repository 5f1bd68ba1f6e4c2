//! `zscore` — population z-score of the newest value among the last `N`
//! (SIGNALS.md §6): `(N·X_n − S) / sqrt(N·S2 − S²)`, exact integer
//! numerator and `D`; `0.0` when `D = 0`.
//!
//! Warm-up: emitted from sample `N` on.

use crate::num::{f64_of, mul, sub};
use crate::ring::CountMoments;

/// Rolling population z-score.
#[derive(Clone, Debug)]
pub struct Zscore {
    m: CountMoments,
    last: i64,
}

impl Zscore {
    /// Z-score over the last `n` (≥ 2) values.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            m: CountMoments::new(n),
            last: 0,
        }
    }

    /// Consumes integer sample `x` (the scale cancels out).
    #[inline]
    pub fn update(&mut self, x: i64) -> Option<f64> {
        self.m.push(x);
        self.last = x;
        self.value()
    }

    /// Value at the last sample, once `N` samples were seen.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        if !self.m.is_full() {
            return None;
        }
        let d = self.m.d();
        if d == 0 {
            return Some(0.0);
        }
        let num = sub(mul(self.m.n() as i128, i128::from(self.last)), self.m.sum());
        Some(f64_of(num) / f64_of(d).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_sequence_zscore_3() {
        // Mid M2 values of shared/vectors l1_sequence.
        let m2 = [
            20_002, 20_003, 20_004, 20_003, 20_003, 20_003, 20_001, 20_006, 20_008,
        ];
        let want = [
            None,
            None,
            Some(1.224_744_871_391_589_2),
            Some(-0.707_106_781_186_547_5),
            Some(-0.707_106_781_186_547_5),
            Some(0.0),
            Some(-std::f64::consts::SQRT_2),
            Some(1.297_771_369_046_100_4),
            Some(1.019_049_330_730_136),
        ];
        let mut z = Zscore::new(3);
        for (x, w) in m2.iter().zip(want) {
            let g = z.update(*x);
            match (g, w) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-12, "{g} vs {w}"),
                _ => panic!("{g:?} vs {w:?}"),
            }
        }
    }
}
