//! `microprice = (B·QA + A·QB) / ((QB + QA)·Sp)` (SIGNALS.md §4), numerator
//! in `i128`. Warm-up: none.

use crate::num::f64_of;
use crate::{Quote, Scale};

/// Size-weighted mid price.
#[derive(Clone, Debug)]
pub struct Microprice {
    sp: i128,
    value: Option<f64>,
}

impl Microprice {
    /// A microprice signal for an instrument with scales `scale`.
    #[must_use]
    pub fn new(scale: Scale) -> Self {
        Self {
            sp: i128::from(scale.price_scale()),
            value: None,
        }
    }

    /// Consumes one L1 event; `None` if it is not a valid sample.
    #[inline]
    pub fn update(&mut self, q: &Quote) -> Option<f64> {
        if !q.is_valid() {
            return None;
        }
        let num = i128::from(q.bid_px) * i128::from(q.ask_qty)
            + i128::from(q.ask_px) * i128::from(q.bid_qty);
        let den = (i128::from(q.bid_qty) + i128::from(q.ask_qty)) * self.sp;
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
    fn weights_toward_thin_side() {
        let mut m = Microprice::new(Scale {
            price_decimals: 2,
            qty_decimals: 3,
        });
        let q = Quote {
            ts_ns: 0,
            bid_px: 10_000,
            bid_qty: 1_000,
            ask_px: 10_002,
            ask_qty: 2_000,
        };
        let v = m.update(&q).unwrap();
        assert!((v - 100.006_666_666_666_66).abs() < 1e-12);
    }
}
