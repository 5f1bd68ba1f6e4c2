//! `ema_time` — time-decay EMA with previous-point interpolation
//! (SIGNALS.md §6): the source is a step function holding `x_(k−1)` on
//! `[τ_(k−1), τ_k)`;
//! `α_k = −expm1(−Δ_k/τ)`, `y_k = y_(k−1) + α_k·(x_(k−1) − y_(k−1))`.
//!
//! The value at sample `k` does not include `x_k`. Equal (or clamped
//! backwards) timestamps give `α = 0`. Warm-up: emitted once `τ_k − τ_1 ≥ τ`.

use crate::num::elapsed;

/// Time-decay exponential moving average.
#[derive(Clone, Debug)]
pub struct EmaTime {
    tau_ns: u64,
    tau_f: f64,
    scale: f64,
    y: f64,
    prev_x: f64,
    first: i64,
    last: i64,
    started: bool,
}

impl EmaTime {
    /// Time EMA with decay constant `tau_ns` (> 0) on values `X / scale`.
    #[must_use]
    pub fn new(tau_ns: i64, scale: f64) -> Self {
        let tau_ns = tau_ns.max(1);
        Self {
            tau_ns: tau_ns as u64,
            tau_f: tau_ns as f64,
            scale,
            y: 0.0,
            prev_x: 0.0,
            first: 0,
            last: 0,
            started: false,
        }
    }

    /// Consumes sample `x_int` at raw time `ts` (clamped to series time).
    #[inline]
    pub fn update(&mut self, ts: i64, x_int: i64) -> Option<f64> {
        let x = x_int as f64 / self.scale;
        if self.started {
            let tau = ts.max(self.last);
            let dt = elapsed(self.last, tau) as f64;
            let alpha = -(-dt / self.tau_f).exp_m1();
            self.y += alpha * (self.prev_x - self.y);
            self.last = tau;
        } else {
            self.started = true;
            self.first = ts;
            self.last = ts;
            self.y = x;
        }
        self.prev_x = x;
        self.value()
    }

    /// Value at the last sample, once `τ_k − τ_1 ≥ τ`.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        (self.started && elapsed(self.first, self.last) >= self.tau_ns).then_some(self.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_point_interpolation() {
        let s = 1_000_000_000;
        let mut e = EmaTime::new(2 * s, 200.0);
        assert_eq!(e.update(0, 20_002), None);
        assert_eq!(e.update(s, 20_003), None);
        let v = e.update(2 * s, 20_004).unwrap();
        assert!((v - 100.011_967_346_701_44).abs() < 1e-12);
        // Equal timestamp: α = 0, value unchanged.
        assert_eq!(e.update(2 * s, 20_003), Some(v));
        // Backwards time is clamped: still α = 0.
        assert_eq!(e.update(s, 20_003), Some(v));
    }
}
