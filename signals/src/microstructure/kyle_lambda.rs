//! `kyle_lambda` — OLS slope (with intercept) of the trade-to-trade price
//! change `y_k = P_k − P_(k−1)` (ticks) on signed size `x_k = s_k·Q_k`
//! (lots) over the last `N` pairs (SIGNALS.md §5). Exact `i128` sums;
//! `value = (N·Σxy − Σx·Σy)·Sq / ((N·Σx² − (Σx)²)·Sp)`.
//!
//! Warm-up: emitted from trade `N+1` on; not emitted when the denominator
//! is 0 (all `x` equal).

use crate::num::{add, f64_of, mul, sub};
use crate::ring::Ring;
use crate::{Scale, Trade};

/// Rolling Kyle's lambda (price impact per unit of signed base quantity).
#[derive(Clone, Debug)]
pub struct KyleLambda {
    pairs: Ring<(i64, i64)>,
    prev_px: Option<i64>,
    sx: i128,
    sy: i128,
    sxx: i128,
    sxy: i128,
    ratio: f64,
}

impl KyleLambda {
    /// Lambda over the last `n` (≥ 1) trade pairs.
    #[must_use]
    pub fn new(n: usize, scale: Scale) -> Self {
        Self {
            pairs: Ring::new(n.max(1)),
            prev_px: None,
            sx: 0,
            sy: 0,
            sxx: 0,
            sxy: 0,
            ratio: scale.qty_scale() as f64 / scale.price_scale() as f64,
        }
    }

    /// Consumes one trade. Trades with `px ≤ 0` or `qty ≤ 0` are ignored.
    #[inline]
    pub fn update(&mut self, t: &Trade) -> Option<f64> {
        if t.px <= 0 || t.qty <= 0 {
            return None;
        }
        let prev = self.prev_px.replace(t.px)?;
        // Both prices are > 0, so the difference fits in i64.
        let x = t.side.sign() * t.qty;
        let y = t.px - prev;
        if let Some((ox, oy)) = self.pairs.push_back((x, y)) {
            let (ox, oy) = (i128::from(ox), i128::from(oy));
            self.sx = sub(self.sx, ox);
            self.sy = sub(self.sy, oy);
            self.sxx = sub(self.sxx, mul(ox, ox));
            self.sxy = sub(self.sxy, mul(ox, oy));
        }
        let (x, y) = (i128::from(x), i128::from(y));
        self.sx = add(self.sx, x);
        self.sy = add(self.sy, y);
        self.sxx = add(self.sxx, mul(x, x));
        self.sxy = add(self.sxy, mul(x, y));
        self.value()
    }

    /// Value at the last trade, once `N` pairs exist and the denominator
    /// is non-zero.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        if !self.pairs.is_full() {
            return None;
        }
        let n = self.pairs.len() as i128;
        let den = sub(mul(n, self.sxx), mul(self.sx, self.sx));
        if den == 0 {
            return None;
        }
        let num = sub(mul(n, self.sxy), mul(self.sx, self.sy));
        Some(f64_of(num) / f64_of(den) * self.ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    #[test]
    fn exact_linear_impact() {
        // y = 2·x exactly → slope 2 ticks/lot → 2·Sq/Sp.
        let scale = Scale {
            price_decimals: 0,
            qty_decimals: 0,
        };
        let mut k = KyleLambda::new(3, scale);
        let mut px = 1_000;
        assert_eq!(
            k.update(&Trade {
                ts_ns: 0,
                px,
                qty: 1,
                side: Side::Buy
            }),
            None
        );
        let mut last = None;
        for (q, s) in [(1, Side::Buy), (2, Side::Sell), (3, Side::Buy)] {
            px += 2 * s.sign() * q;
            last = k.update(&Trade {
                ts_ns: 0,
                px,
                qty: q,
                side: s,
            });
        }
        assert_eq!(last, Some(2.0));
    }

    #[test]
    fn equal_x_is_not_emitted() {
        let scale = Scale::default();
        let mut k = KyleLambda::new(2, scale);
        for px in [10, 11, 12, 13] {
            assert_eq!(
                k.update(&Trade {
                    ts_ns: 0,
                    px,
                    qty: 5,
                    side: Side::Buy
                }),
                None
            );
        }
    }
}
