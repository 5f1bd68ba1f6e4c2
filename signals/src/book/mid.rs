//! `mid = M2 / (2·Sp)` (SIGNALS.md §4). Warm-up: none (every valid sample).

use crate::{Quote, Scale};

/// Mid price.
#[derive(Clone, Debug)]
pub struct Mid {
    scale: f64,
    value: Option<f64>,
}

impl Mid {
    /// A mid-price signal for an instrument with scales `scale`.
    #[must_use]
    pub fn new(scale: Scale) -> Self {
        Self {
            scale: 2.0 * scale.price_scale() as f64,
            value: None,
        }
    }

    /// Consumes one L1 event; `None` if it is not a valid sample.
    #[inline]
    pub fn update(&mut self, q: &Quote) -> Option<f64> {
        if !q.is_valid() {
            return None;
        }
        let v = q.m2() as f64 / self.scale;
        self.value = Some(v);
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
    fn mid_of_valid_quote() {
        let mut m = Mid::new(Scale {
            price_decimals: 2,
            qty_decimals: 3,
        });
        let q = Quote {
            ts_ns: 0,
            bid_px: 10_000,
            bid_qty: 1,
            ask_px: 10_002,
            ask_qty: 1,
        };
        assert_eq!(m.update(&q), Some(100.01));
        let crossed = Quote {
            bid_px: 10_003,
            ..q
        };
        assert_eq!(m.update(&crossed), None);
        assert_eq!(m.value(), Some(100.01));
    }
}
