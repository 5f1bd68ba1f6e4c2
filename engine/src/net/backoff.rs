//! Exponential reconnect backoff with multiplicative jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff: the `n`-th delay after a [`reset`](Backoff::reset) is drawn
/// uniformly from `[base·(1-jitter), base]` with `base = min(max, initial·2ⁿ)`.
///
/// Jitter only ever shortens a delay, so a delay never exceeds `max`, and with
/// `jitter_fraction = 0` the sequence is exactly `initial, 2·initial, … , max, max, …`.
///
/// ```
/// use std::time::Duration;
/// use engine::net::Backoff;
///
/// let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.0);
/// assert_eq!(b.next_delay(), Duration::from_millis(100));
/// assert_eq!(b.next_delay(), Duration::from_millis(200));
/// b.reset();
/// assert_eq!(b.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// `initial` is the first delay, `max` caps every delay (a `max` below `initial`
    /// is raised to `initial`), and `jitter_fraction` is clamped to `[0, 1]`
    /// (NaN counts as 0).
    #[must_use]
    pub fn new(initial: Duration, max: Duration, jitter_fraction: f64) -> Self {
        let jitter = if jitter_fraction.is_nan() {
            0.0
        } else {
            jitter_fraction.clamp(0.0, 1.0)
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Truncation is fine: this only seeds the jitter generator.
        #[allow(clippy::cast_possible_truncation)]
        let seed = (nanos as u64) ^ (std::ptr::addr_of!(jitter) as u64).rotate_left(32);
        Self {
            initial,
            max: max.max(initial),
            jitter,
            attempt: 0,
            rng: seed,
        }
    }

    /// The delay to sleep before the next attempt; advances the exponent.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay();
        self.attempt = self.attempt.saturating_add(1);
        if self.jitter == 0.0 {
            return base;
        }
        let keep = 1.0 - self.jitter * self.next_unit();
        // Float rounding near `Duration::MAX` could overflow: fall back to `base`,
        // and never let rounding push the delay above `base`.
        Duration::try_from_secs_f64(base.as_secs_f64() * keep).map_or(base, |d| d.min(base))
    }

    /// Start again from `initial` (call after a connection proved healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Number of delays handed out since construction or the last reset.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    fn base_delay(&self) -> Duration {
        // 2^31 · initial overflows nothing we care about: saturate and cap.
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Uniform in `[0, 1)` from a `SplitMix64` step (no external RNG dependency).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 high bits → exact f64 in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_jitter_doubles_then_caps() {
        let mut b = Backoff::new(100 * MS, 1000 * MS, 0.0);
        let got: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let (initial, max, f) = (50 * MS, 3000 * MS, 0.3);
        let mut b = Backoff::new(initial, max, f);
        let mut distinct = std::collections::HashSet::new();
        for round in 0..200u32 {
            if round % 20 == 0 {
                b.reset();
            }
            let base = (initial * 2u32.pow(b.attempt())).min(max);
            let d = b.next_delay();
            assert!(d <= base, "{d:?} > {base:?}");
            assert!(
                d >= base.mul_f64(1.0 - f),
                "{d:?} < {:?}",
                base.mul_f64(1.0 - f)
            );
            assert!(d <= max);
            distinct.insert(d);
        }
        assert!(distinct.len() > 20, "jitter should vary delays");
    }

    #[test]
    fn reset_restarts_from_initial() {
        let mut b = Backoff::new(10 * MS, 10_000 * MS, 0.0);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), 10 * MS);
    }

    #[test]
    fn degenerate_parameters_do_not_panic() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1), f64::NAN);
        assert_eq!(
            b.next_delay(),
            Duration::from_secs(5),
            "max raised to initial"
        );
        let mut b = Backoff::new(Duration::from_secs(1), Duration::MAX, 7.0);
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d <= Duration::MAX);
        }
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 0.5);
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
