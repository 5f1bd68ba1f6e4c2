//! `imbalance_depth` (SIGNALS.md §4): `(SB − SA) / (SB + SA)` over the best
//! `levels` levels of each side. Triggered by L2 events; warm-up: none.

use crate::num::f64_of;
use crate::DepthView;

/// Multi-level size imbalance of an L2 book.
#[derive(Clone, Debug)]
pub struct DepthImbalance {
    levels: usize,
    value: Option<f64>,
}

impl DepthImbalance {
    /// Imbalance over the best `levels` (≥ 1) levels per side.
    #[must_use]
    pub fn new(levels: usize) -> Self {
        Self {
            levels: levels.max(1),
            value: None,
        }
    }

    /// Consumes one applied L2 event. `None` (nothing emitted) if a side is
    /// empty. The caller (e.g. [`crate::SignalSet::on_depth`]) checks that
    /// the top is not crossed.
    #[inline]
    pub fn update(&mut self, book: &(impl DepthView + ?Sized)) -> Option<f64> {
        let sb = i128::from(book.bid_depth(self.levels));
        let sa = i128::from(book.ask_depth(self.levels));
        if sb <= 0 || sa <= 0 {
            return None;
        }
        self.value = Some(f64_of(sb - sa) / f64_of(sb + sa));
        self.value
    }

    /// Value at the last L2 event that emitted.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SliceDepth;

    #[test]
    fn uses_available_levels() {
        // shared/vectors depth_example: 3 bids, 6 asks, L = 5.
        let bids = [(10_000, 1_000), (9_999, 2_000), (9_998, 500)];
        let asks = [
            (10_001, 700),
            (10_002, 100),
            (10_003, 1_000),
            (10_005, 200),
            (10_006, 300),
            (10_007, 9_000),
        ];
        let mut s = DepthImbalance::new(5);
        let v = s
            .update(&SliceDepth {
                bids: &bids,
                asks: &asks,
            })
            .unwrap();
        assert!((v - 0.206_896_551_724_137_93).abs() < 1e-15);
        assert_eq!(
            s.update(&SliceDepth {
                bids: &[],
                asks: &asks
            }),
            None
        );
    }
}
