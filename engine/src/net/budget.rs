//! Request budgets shared by every connection of a venue in the process, so
//! that neither reconnects nor book recoveries can hammer the venue: a token
//! bucket sized to the venue's published limit (connection attempts per
//! window, REST weight per minute), plus the pause the venue itself imposes
//! (`Retry-After` of a 429 or 503, the ban period of a Binance 418).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use engine::net::budget::Budget;
//!
//! let b = Budget::new(100, Duration::from_secs(60)); // 100 per minute
//! let t = Instant::now();
//! assert!(b.take(t, 60).is_ok());
//! let wait = b.take(t, 60).unwrap_err(); // 40 left: wait for 20 more
//! assert!(wait >= t + Duration::from_secs(11) && wait <= t + Duration::from_secs(13));
//! b.pause_until(t + Duration::from_secs(30)); // the venue said "retry after 30 s"
//! assert_eq!(b.take(t + Duration::from_secs(29), 1), Err(t + Duration::from_secs(30)));
//! ```

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket with a venue-imposed pause.
#[derive(Debug)]
pub struct Budget {
    inner: Mutex<Bucket>,
    capacity: f64,
    per_sec: f64,
    /// The venue's own limit per window (what its usage headers count against).
    venue_limit: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
    paused_until: Option<Instant>,
    /// Tokens taken since creation.
    used: u64,
}

impl Budget {
    /// `capacity` tokens, refilled at `capacity` per `window` (a full bucket
    /// at start: a burst up to the limit, then the limit's rate).
    #[must_use]
    pub fn new(capacity: u32, window: Duration) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            inner: Mutex::new(Bucket {
                tokens: capacity,
                last: None,
                paused_until: None,
                used: 0,
            }),
            capacity,
            per_sec: capacity / window.as_secs_f64().max(1e-3),
            venue_limit: capacity as u32,
        }
    }

    /// `share` (0–1] of the venue's `limit` per `window`: the bucket's
    /// capacity, and the limit its usage reports count against.
    #[must_use]
    pub fn share_of(limit: u32, share: f64, window: Duration) -> Self {
        let capacity = (f64::from(limit) * share.clamp(0.01, 1.0)).floor() as u32;
        let mut b = Self::new(capacity.max(1), window);
        b.venue_limit = limit.max(1);
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // Plain numbers: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        if let Some(last) = b.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            b.tokens = (b.tokens + dt * self.per_sec).min(self.capacity);
        }
        // Threads may pass slightly older instants: never move back.
        b.last = Some(b.last.map_or(now, |l| l.max(now)));
    }

    /// Takes `cost` tokens now, or returns when to ask again (the pause's
    /// end, or when enough tokens will have refilled). A cost above the
    /// capacity is charged as the capacity.
    ///
    /// # Errors
    /// The instant at which the request may be made.
    pub fn take(&self, now: Instant, cost: u32) -> Result<(), Instant> {
        let mut b = self.lock();
        if let Some(until) = b.paused_until {
            if now < until {
                return Err(until);
            }
            b.paused_until = None;
        }
        self.refill(&mut b, now);
        let cost = f64::from(cost).min(self.capacity);
        if b.tokens >= cost {
            b.tokens -= cost;
            b.used += cost as u64;
            Ok(())
        } else {
            let secs = (cost - b.tokens) / self.per_sec;
            Err(now + Duration::from_secs_f64(secs.min(86_400.0)))
        }
    }

    /// The venue asked for a pause until `until` (a later pause wins).
    pub fn pause_until(&self, until: Instant) {
        let mut b = self.lock();
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
    }

    /// The venue reports `used` of its limit in its current window
    /// (Binance `x-mbx-used-weight-1m`): the bucket holds no more than our
    /// share of what is left (other clients on the same IP count too).
    pub fn observe_used(&self, now: Instant, used: u32) {
        let mut b = self.lock();
        self.refill(&mut b, now);
        let limit = self.venue_limit;
        let share = self.capacity / f64::from(limit);
        let left = (f64::from(limit.saturating_sub(used)) * share).max(0.0);
        b.tokens = b.tokens.min(left);
    }

    /// Tokens taken since creation (`rest_weight_used`).
    #[must_use]
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// The end of the venue's pause, if one is running at `now`.
    #[must_use]
    pub fn paused(&self, now: Instant) -> Option<Instant> {
        self.lock().paused_until.filter(|&u| u > now)
    }
}

/// Exponential backoff with full jitter for one instrument's recovery
/// requests: attempt `n` (1-based) waits a uniform random time in
/// `[0, min(max, base · 2^(n-1))]`, at least `floor`.
#[must_use]
pub fn full_jitter(attempt: u32, base: Duration, max: Duration, floor: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(max);
    cap.mul_f64(unit()).max(floor)
}

/// A uniform draw in `[0, 1)` (SplitMix64 over a process-wide counter seeded
/// from the clock: jitter needs spread, not cryptography).
fn unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
    }
    let next = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    STATE.store(next, Ordering::Relaxed);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_limit_rate_and_never_above_capacity() {
        let b = Budget::new(10, Duration::from_secs(10)); // 1 per second
        let t = Instant::now();
        for _ in 0..10 {
            assert!(b.take(t, 1).is_ok());
        }
        assert_eq!(b.take(t, 1), Err(t + Duration::from_secs(1)));
        assert!(b.take(t + Duration::from_secs(1), 1).is_ok());
        // A long idle refills to capacity only.
        let later = t + Duration::from_secs(1000);
        assert!(b.take(later, 10).is_ok());
        assert!(b.take(later, 1).is_err());
        assert_eq!(b.used(), 21);
    }

    #[test]
    fn venue_pauses_and_reported_weight_hold_requests_back() {
        let b = Budget::share_of(1200, 0.5, Duration::from_secs(60));
        let t = Instant::now();
        b.pause_until(t + Duration::from_secs(5));
        b.pause_until(t + Duration::from_secs(2)); // an earlier pause does not shorten it
        assert_eq!(b.paused(t), Some(t + Duration::from_secs(5)));
        assert_eq!(b.take(t, 1), Err(t + Duration::from_secs(5)));
        let t5 = t + Duration::from_secs(5);
        assert!(b.take(t5, 1).is_ok());
        // The venue says 1150 of 1200 are used: our half-share has ~25 left.
        b.observe_used(t5, 1150);
        assert!(b.take(t5, 25).is_ok());
        assert!(b.take(t5, 5).is_err());
    }

    #[test]
    fn full_jitter_stays_in_its_window() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 1..30 {
            let d = full_jitter(attempt, base, max, Duration::from_millis(10));
            assert!(
                d >= Duration::from_millis(10) && d <= max,
                "{attempt}: {d:?}"
            );
            if attempt == 1 {
                assert!(d <= base);
            }
        }
    }
}
