//! `ofi` — order-flow imbalance (Cont, Kukanov & Stoikov 2014) on the L1
//! series, summed exactly over a time window (SIGNALS.md §4).
//!
//! Warm-up: emitted once `τ_n − τ_1 ≥ W`.

use crate::num::{add, f64_of, sub};
use crate::ring::TimeWindow;
use crate::{Quote, Scale};

/// Windowed L1 order-flow imbalance, base-asset units.
#[derive(Clone, Debug)]
pub struct Ofi {
    window: TimeWindow<i128>,
    prev: Option<Quote>,
    sum: i128,
    sq: f64,
}

impl Ofi {
    /// OFI over `window_ns`, keeping at most `capacity` samples.
    #[must_use]
    pub fn new(window_ns: i64, scale: Scale, capacity: usize) -> Self {
        Self {
            window: TimeWindow::new(window_ns, capacity),
            prev: None,
            sum: 0,
            sq: scale.qty_scale() as f64,
        }
    }

    /// The contribution `e_n` (lots) of quote `q` after quote `p`.
    #[inline]
    #[must_use]
    pub fn contribution(p: &Quote, q: &Quote) -> i128 {
        let mut e: i128 = 0;
        if q.bid_px >= p.bid_px {
            e += i128::from(q.bid_qty);
        }
        if q.bid_px <= p.bid_px {
            e -= i128::from(p.bid_qty);
        }
        if q.ask_px <= p.ask_px {
            e -= i128::from(q.ask_qty);
        }
        if q.ask_px >= p.ask_px {
            e += i128::from(p.ask_qty);
        }
        e
    }

    /// Consumes one L1 event; returns the value if it is a valid sample and
    /// the signal is warm.
    #[inline]
    pub fn update(&mut self, q: &Quote) -> Option<f64> {
        if !q.is_valid() {
            return None;
        }
        let e = match &self.prev {
            Some(p) => Self::contribution(p, q),
            None => 0,
        };
        self.prev = Some(*q);
        let sum = &mut self.sum;
        self.window.push(q.ts_ns, e, |old| *sum = sub(*sum, old));
        self.sum = add(self.sum, e);
        self.value()
    }

    /// Value at the last sample, if warm.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.window.is_warm().then(|| f64_of(self.sum) / self.sq)
    }

    /// Samples evicted early because the window was full.
    #[must_use]
    pub fn overflows(&self) -> u64 {
        self.window.overflows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(t: i64, b: i64, qb: i64, a: i64, qa: i64) -> Quote {
        Quote {
            ts_ns: t,
            bid_px: b,
            bid_qty: qb,
            ask_px: a,
            ask_qty: qa,
        }
    }

    #[test]
    fn l1_sequence_contributions_and_window() {
        // shared/vectors l1_sequence (valid samples only), W = 3 s.
        let s = 1_000_000_000;
        let seq = [
            q(0, 10_000, 1_000, 10_002, 2_000),
            q(s, 10_001, 500, 10_002, 2_500),
            q(2 * s, 10_001, 700, 10_003, 1_000),
            q(2 * s, 10_000, 1_200, 10_003, 1_500),
            q(4 * s, 10_001, 800, 10_002, 600),
        ];
        let want_e = [0, 0, 2_700, -1_200, 200];
        for i in 1..seq.len() {
            assert_eq!(Ofi::contribution(&seq[i - 1], &seq[i]), want_e[i]);
        }
        let mut o = Ofi::new(
            3 * s,
            Scale {
                price_decimals: 2,
                qty_decimals: 3,
            },
            16,
        );
        let got: Vec<_> = seq.iter().map(|x| o.update(x)).collect();
        assert_eq!(&got[..4], &[None; 4]);
        assert!((got[4].unwrap() - 1.7).abs() < 1e-12);
    }
}
