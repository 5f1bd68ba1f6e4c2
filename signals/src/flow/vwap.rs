//! `vwap = Σ P·Q / (Σ Q · Sp)` over a time window of the trade series
//! (SIGNALS.md §5), `Σ P·Q` exact in `i128`.
//!
//! Warm-up: emitted once `τ_k − τ_1 ≥ W`.

use crate::num::{add, f64_of, mul, sub};
use crate::ring::TimeWindow;
use crate::{Scale, Trade};

/// Volume-weighted average trade price over a time window.
#[derive(Clone, Debug)]
pub struct Vwap {
    window: TimeWindow<(i64, i64)>,
    notional: i128,
    volume: i128,
    sp: f64,
}

impl Vwap {
    /// VWAP over `window_ns`, keeping at most `capacity` trades.
    #[must_use]
    pub fn new(window_ns: i64, scale: Scale, capacity: usize) -> Self {
        Self {
            window: TimeWindow::new(window_ns, capacity),
            notional: 0,
            volume: 0,
            sp: scale.price_scale() as f64,
        }
    }

    /// Consumes one trade. Trades with `px ≤ 0` or `qty ≤ 0` are ignored.
    #[inline]
    pub fn update(&mut self, t: &Trade) -> Option<f64> {
        if t.px <= 0 || t.qty <= 0 {
            return None;
        }
        let (notional, volume) = (&mut self.notional, &mut self.volume);
        self.window.push(t.ts_ns, (t.px, t.qty), |(p, q)| {
            *notional = sub(*notional, mul(i128::from(p), i128::from(q)));
            *volume = sub(*volume, i128::from(q));
        });
        self.notional = add(self.notional, mul(i128::from(t.px), i128::from(t.qty)));
        self.volume = add(self.volume, i128::from(t.qty));
        self.value()
    }

    /// Value at the last trade, if warm.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        (self.window.is_warm() && self.volume > 0)
            .then(|| f64_of(self.notional) / f64_of(self.volume) / self.sp)
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
    fn weights_by_volume() {
        let scale = Scale {
            price_decimals: 2,
            qty_decimals: 0,
        };
        let mut v = Vwap::new(10, scale, 8);
        let tr = |ts, px, qty| Trade {
            ts_ns: ts,
            px,
            qty,
            side: Side::Buy,
        };
        assert_eq!(v.update(&tr(0, 10_000, 1)), None);
        assert_eq!(v.update(&tr(9, 10_300, 2)), None);
        assert_eq!(
            v.update(&tr(10, 10_000, 1)),
            Some((10_300.0 * 2.0 + 10_000.0) / 3.0 / 100.0)
        );
        // Ignored trade: not a sample, state unchanged.
        assert_eq!(v.update(&tr(50, 1, -1)), None);
        assert!(v.value().is_some());
    }
}
