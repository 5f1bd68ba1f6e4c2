//! `rsi` — Wilder RSI seeded with simple averages (TA-Lib RSI), in tick
//! units (SIGNALS.md §6). Seed sums of the first `N` gains/losses are exact
//! integers with one `f64` division; afterwards `AG = (AG·(N−1) + G)/N` in
//! `f64`. A flat window gives the neutral `50.0` (TA-Lib returns 0).
//!
//! Warm-up: emitted from sample `N+1` on.

use crate::num::add;

/// Wilder relative strength index.
#[derive(Clone, Debug)]
pub struct Rsi {
    n: u64,
    nf: f64,
    count: u64,
    prev: i64,
    seed_gain: i128,
    seed_loss: i128,
    ag: f64,
    al: f64,
}

impl Rsi {
    /// RSI over `n` (≥ 1) changes.
    #[must_use]
    pub fn new(n: u32) -> Self {
        let n = n.max(1);
        Self {
            n: u64::from(n),
            nf: f64::from(n),
            count: 0,
            prev: 0,
            seed_gain: 0,
            seed_loss: 0,
            ag: 0.0,
            al: 0.0,
        }
    }

    /// Consumes integer sample `x` (ticks; the scale cancels out).
    #[inline]
    pub fn update(&mut self, x: i64) -> Option<f64> {
        self.count += 1;
        if self.count >= 2 {
            let d = i128::from(x) - i128::from(self.prev);
            let (g, l) = if d > 0 { (d, 0) } else { (0, -d) };
            if self.count <= self.n + 1 {
                self.seed_gain = add(self.seed_gain, g);
                self.seed_loss = add(self.seed_loss, l);
                if self.count == self.n + 1 {
                    self.ag = self.seed_gain as f64 / self.nf;
                    self.al = self.seed_loss as f64 / self.nf;
                }
            } else {
                self.ag = (self.ag * (self.nf - 1.0) + g as f64) / self.nf;
                self.al = (self.al * (self.nf - 1.0) + l as f64) / self.nf;
            }
        }
        self.prev = x;
        self.value()
    }

    /// Value at the last sample, from sample `N+1` on.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        if self.count <= self.n {
            return None;
        }
        let s = self.ag + self.al;
        Some(if s == 0.0 { 50.0 } else { 100.0 * self.ag / s })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_and_flat() {
        let mut r = Rsi::new(3);
        for _ in 0..3 {
            assert_eq!(r.update(7), None);
        }
        assert_eq!(r.update(7), Some(50.0));
        assert!((r.update(8).unwrap() - 100.0).abs() < 1e-12);
    }

    #[test]
    fn seed_is_simple_average() {
        let mut r = Rsi::new(2);
        r.update(10);
        r.update(13); // +3
        let v = r.update(12).unwrap(); // −1 → AG = 1.5, AL = 0.5
        assert_eq!(v, 75.0);
        let v = r.update(12).unwrap(); // AG = 0.75, AL = 0.25
        assert_eq!(v, 75.0);
    }
}
