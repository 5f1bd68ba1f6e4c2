//! `spread_bps = 20000·(A − B) / (A + B)` (SIGNALS.md §4). Warm-up: none.

use crate::num::f64_of;
use crate::Quote;

/// Relative quoted spread in basis points of the mid.
#[derive(Clone, Debug, Default)]
pub struct SpreadBps {
    value: Option<f64>,
}

impl SpreadBps {
    /// A new spread signal.
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
        let num = 20_000 * (i128::from(q.ask_px) - i128::from(q.bid_px));
        let den = i128::from(q.ask_px) + i128::from(q.bid_px);
        self.value = Some(f64_of(num) / f64_of(den));
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
    fn one_tick_on_100() {
        let mut s = SpreadBps::new();
        let q = Quote {
            ts_ns: 0,
            bid_px: 10_000,
            bid_qty: 1,
            ask_px: 10_002,
            ask_qty: 2,
        };
        assert_eq!(s.update(&q), Some(1.999_800_019_998_000_2));
    }
}
