//! `imbalance_l1 = (QB − QA) / (QB + QA)` (SIGNALS.md §4). Warm-up: none.

use crate::num::f64_of;
use crate::Quote;

/// Top-of-book size imbalance, in (−1, 1).
#[derive(Clone, Debug, Default)]
pub struct ImbalanceL1 {
    value: Option<f64>,
}

impl ImbalanceL1 {
    /// A new L1 imbalance signal.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes one L1 event; `None` if it is not a valid sample.
    #[inline]
    pub fn update(&mut self, q: &Quote) -> Option<f64> {
        if !q.is_valid() {
            return None;
        }
        let (b, a) = (i128::from(q.bid_qty), i128::from(q.ask_qty));
        self.value = Some(f64_of(b - a) / f64_of(b + a));
        self.value
    }

    /// Value at the last valid sample.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_heavy_is_positive() {
        let mut s = ImbalanceL1::new();
        let q = Quote {
            ts_ns: 0,
            bid_px: 1,
            bid_qty: 3,
            ask_px: 2,
            ask_qty: 1,
        };
        assert_eq!(s.update(&q), Some(0.5));
        assert_eq!(s.update(&Quote { ask_qty: 0, ..q }), None);
    }
}
