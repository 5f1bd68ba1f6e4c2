//! Offered-rate profiles of the load server.

use std::time::Duration;

/// Offered rate over time.
#[derive(Clone, Debug, PartialEq)]
pub enum Profile {
    /// `rate` msg/s for `duration` (also the soak profile).
    Fixed {
        /// Messages per second.
        rate: f64,
        /// Length.
        duration: Duration,
    },
    /// As fast as the client reads, for `duration`.
    Max {
        /// Length.
        duration: Duration,
    },
    /// Linear ramp from `from` to `to` msg/s over `duration`.
    Ramp {
        /// Start rate.
        from: f64,
        /// End rate.
        to: f64,
        /// Length.
        duration: Duration,
    },
    /// `base` msg/s with `factor`× `base` from `at` for `len`.
    Spike {
        /// Base rate.
        base: f64,
        /// Spike multiplier.
        factor: f64,
        /// Spike start.
        at: Duration,
        /// Spike length.
        len: Duration,
        /// Total length.
        duration: Duration,
    },
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid seconds {s:?}"))
}

fn rate(s: &str) -> Result<f64, String> {
    let (num, mul) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match s.strip_suffix(['m', 'M']) {
            Some(n) => (n, 1e6),
            None => (s, 1.0),
        },
    };
    num.parse::<f64>()
        .ok()
        .map(|v| v * mul)
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("invalid rate {s:?}"))
}

impl Profile {
    /// Parses `fixed:<rate>:<s>`, `soak:<rate>:<s>`, `max:<s>`,
    /// `ramp:<from>:<to>:<s>`, `spike:<base>:<factor>:<at s>:<len s>:<s>`;
    /// rates accept `k`/`m` suffixes (`100k`).
    ///
    /// # Errors
    /// On an unknown form or a bad number.
    pub fn parse(s: &str) -> Result<Profile, String> {
        let p: Vec<&str> = s.split(':').collect();
        Ok(match p.as_slice() {
            ["fixed" | "soak", r, d] => Profile::Fixed {
                rate: rate(r)?,
                duration: secs(d)?,
            },
            ["max", d] => Profile::Max { duration: secs(d)? },
            ["ramp", a, b, d] => Profile::Ramp {
                from: rate(a)?,
                to: rate(b)?,
                duration: secs(d)?,
            },
            ["spike", b, f, at, len, d] => Profile::Spike {
                base: rate(b)?,
                factor: rate(f)?,
                at: secs(at)?,
                len: secs(len)?,
                duration: secs(d)?,
            },
            _ => return Err(format!("unknown profile {s:?}")),
        })
    }

    /// Total length.
    #[must_use]
    pub fn duration(&self) -> Duration {
        match *self {
            Profile::Fixed { duration, .. }
            | Profile::Max { duration }
            | Profile::Ramp { duration, .. }
            | Profile::Spike { duration, .. } => duration,
        }
    }

    /// Offered rate at `t` (msg/s); `None` = unpaced.
    #[must_use]
    pub fn rate_at(&self, t: Duration) -> Option<f64> {
        match *self {
            Profile::Fixed { rate, .. } => Some(rate),
            Profile::Max { .. } => None,
            Profile::Ramp { from, to, duration } => {
                let x = (t.as_secs_f64() / duration.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
                Some(from + (to - from) * x)
            }
            Profile::Spike {
                base,
                factor,
                at,
                len,
                ..
            } => Some(if t >= at && t < at + len {
                base * factor
            } else {
                base
            }),
        }
    }

    /// Nominal (peak for ramps and spikes) rate; `None` for max.
    #[must_use]
    pub fn nominal_rate(&self) -> Option<f64> {
        match *self {
            Profile::Fixed { rate, .. } => Some(rate),
            Profile::Max { .. } => None,
            Profile::Ramp { from, to, .. } => Some(from.max(to)),
            Profile::Spike { base, factor, .. } => Some(base * factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_shapes() {
        let p = Profile::parse("spike:10k:10:2:1:5").unwrap();
        assert_eq!(p.rate_at(Duration::from_secs(1)), Some(10_000.0));
        assert_eq!(p.rate_at(Duration::from_millis(2500)), Some(100_000.0));
        assert_eq!(p.duration(), Duration::from_secs(5));
        let r = Profile::parse("ramp:1k:3k:10").unwrap();
        assert_eq!(r.rate_at(Duration::from_secs(5)), Some(2_000.0));
        assert_eq!(
            Profile::parse("max:3").unwrap().rate_at(Duration::ZERO),
            None
        );
        assert!(Profile::parse("fixed:0:1").is_err());
        assert!(Profile::parse("bogus").is_err());
    }
}
