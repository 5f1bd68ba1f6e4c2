//! `ema` — count-based EMA seeded with the first value (SIGNALS.md §6):
//! `α = 2/(N+1)`, `y_1 = x_1`, `y_k = (1 − α)·y_(k−1) + α·x_k`.
//!
//! Warm-up: emitted from sample `N` on. Equals polars
//! `ewm_mean(span=N, adjust=False, min_samples=N)`; *not* TA-Lib's SMA-seeded
//! EMA.

/// First-value-seeded exponential moving average.
#[derive(Clone, Debug)]
pub struct Ema {
    span: u64,
    alpha: f64,
    scale: f64,
    y: f64,
    count: u64,
}

impl Ema {
    /// EMA of span `span` (≥ 1) on values `X / scale`.
    #[must_use]
    pub fn new(span: u32, scale: f64) -> Self {
        let span = span.max(1);
        Self {
            span: u64::from(span),
            alpha: 2.0 / (f64::from(span) + 1.0),
            scale,
            y: 0.0,
            count: 0,
        }
    }

    /// Consumes sample `x_int` (integer source value).
    #[inline]
    pub fn update(&mut self, x_int: i64) -> Option<f64> {
        let x = x_int as f64 / self.scale;
        self.count += 1;
        self.y = if self.count == 1 {
            x
        } else {
            (1.0 - self.alpha) * self.y + self.alpha * x
        };
        self.value()
    }

    /// Value at the last sample, once `N` samples were seen.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        (self.count >= self.span).then_some(self.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_ema_of_1_to_10() {
        // shared/vectors ema_count_1_to_10.
        let mut e = Ema::new(10, 1.0);
        let mut last = None;
        for x in 1..=10 {
            last = e.update(x);
            if x < 10 {
                assert!(last.is_none());
            }
        }
        assert!((last.unwrap() - 6.239_368_480_121_215_5).abs() < 1e-12);
    }
}
