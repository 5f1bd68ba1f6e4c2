//! Clocks: a monotonic nanosecond clock for latency stages and the wall clock
//! for receive timestamps.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static EPOCH: OnceLock<u64> = OnceLock::new();

/// `CLOCK_MONOTONIC` in nanoseconds (the clock behind [`std::time::Instant`]).
///
/// Read directly: `Instant::now().saturating_duration_since(epoch).as_nanos()`
/// adds a normalising `timespec` subtraction and 128-bit arithmetic to every
/// read, ~2.5 % of a replay's instructions at several reads per event.
#[inline]
fn raw_mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC is always
    // supported; on the impossible failure `ts` stays zero (no UB either way).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Monotonic nanoseconds since the first call in this process.
#[inline]
pub fn mono_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(raw_mono_ns);
    raw_mono_ns().saturating_sub(epoch)
}

/// Wall-clock nanoseconds since the Unix epoch.
#[inline]
pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
