//! `trade_imbalance = Σ s·Q / Σ Q` over a time window of the trade series
//! (SIGNALS.md §5), exact integer sums.
//!
//! Warm-up: emitted once `τ_k − τ_1 ≥ W`.

use crate::num::{add, f64_of, sub};
use crate::ring::TimeWindow;
use crate::Trade;

/// Signed-volume share of the trades in the window, in [−1, 1].
#[derive(Clone, Debug)]
pub struct TradeImbalance {
    window: TimeWindow<(i64, i64)>,
    signed: i128,
    volume: i128,
}

impl TradeImbalance {
    /// Trade imbalance over `window_ns`, keeping at most `capacity` trades.
    #[must_use]
    pub fn new(window_ns: i64, capacity: usize) -> Self {
        Self {
            window: TimeWindow::new(window_ns, capacity),
            signed: 0,
            volume: 0,
        }
    }

    /// Consumes one trade. Trades with `px ≤ 0` or `qty ≤ 0` are ignored
    /// (not samples).
    #[inline]
    pub fn update(&mut self, t: &Trade) -> Option<f64> {
        if t.px <= 0 || t.qty <= 0 {
            return None;
        }
        let sq = t.side.sign() * t.qty;
        let (signed, volume) = (&mut self.signed, &mut self.volume);
        self.window.push(t.ts_ns, (sq, t.qty), |(s, q)| {
            *signed = sub(*signed, i128::from(s));
            *volume = sub(*volume, i128::from(q));
        });
        self.signed = add(self.signed, i128::from(sq));
        self.volume = add(self.volume, i128::from(t.qty));
        self.value()
    }

    /// Value at the last trade, if warm.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        (self.window.is_warm() && self.volume > 0)
            .then(|| f64_of(self.signed) / f64_of(self.volume))
    }

    /// Trades evicted early because the window was full.
    #[must_use]
    pub fn overflows(&self) -> u64 {
        self.window.overflows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    #[test]
    fn window_and_warmup() {
        let mut ti = TradeImbalance::new(10, 8);
        let tr = |ts, qty, side| Trade {
            ts_ns: ts,
            px: 1,
            qty,
            side,
        };
        assert_eq!(ti.update(&tr(0, 3, Side::Buy)), None);
        assert_eq!(ti.update(&tr(5, 1, Side::Sell)), None);
        // τ = 10: the trade at 0 leaves the window (τ_m ≤ τ − W).
        assert_eq!(ti.update(&tr(10, 1, Side::Sell)), Some(-1.0));
        // Zero quantity: ignored, nothing emitted.
        assert_eq!(ti.update(&tr(11, 0, Side::Sell)), None);
    }
}
