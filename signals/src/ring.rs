//! Fixed-capacity ring buffers and time windows.
//!
//! All storage is allocated once, at construction; `push`/`pop` never
//! allocate. Count windows (`zscore`, `bollinger`, `kyle_lambda`) use a
//! [`Ring`] of capacity `n`. Time windows (`ofi`, `rv`, `trade_imbalance`,
//! `vwap`) use a [`TimeWindow`] whose capacity is the configured
//! `window_capacity` (default [`crate::DEFAULT_WINDOW_CAPACITY`]).
//!
//! **Overflow policy (time windows).** A time window holds at most
//! `capacity` samples. If a new sample arrives while the window is full, the
//! *oldest* sample is evicted early (its contribution is removed from the
//! running sums) and the window's `overflows` counter is incremented. The
//! value then covers a shorter span than `window_ns` (the newest `capacity`
//! samples). With the default capacity of 65 536 this needs > 6 553 samples per
//! second in a 10 s window; size `window_capacity` for the instrument's peak
//! rate and alert on [`TimeWindow::overflows`] (exposed per set through
//! [`crate::SignalSet::window_overflows`]).

use crate::num::elapsed;

/// A fixed-capacity FIFO (storage reserved once, at construction).
///
/// The storage is reserved but not written up front: slots are initialised
/// as the ring first fills, so a large, mostly idle window (a quiet
/// instrument's 60 s window sized for a busy one) costs address space, not
/// resident memory. Pushing never reallocates.
#[derive(Clone, Debug)]
pub struct Ring<T> {
    /// Initialised slots; grows (within its reserved capacity) until `cap`.
    buf: Vec<T>,
    cap: usize,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    /// A ring holding at most `capacity` (≥ 1) elements.
    ///
    /// # Panics
    /// If `capacity == 0`.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "ring capacity must be >= 1");
        Self {
            buf: Vec::with_capacity(capacity),
            cap: capacity,
            head: 0,
            len: 0,
        }
    }

    /// Maximum number of elements.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Number of elements held.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when no element is held.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `true` when `len() == capacity()`.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// Appends `v`; when full, first removes and returns the oldest element.
    #[inline]
    pub fn push_back(&mut self, v: T) -> Option<T> {
        let cap = self.cap;
        let evicted = if self.len == cap {
            self.pop_front()
        } else {
            None
        };
        let mut i = self.head + self.len;
        if i >= cap {
            i -= cap;
        }
        // Slots below `buf.len()` are initialised; the next fresh one is
        // exactly `buf.len()` (the ring has not wrapped through it yet).
        if i < self.buf.len() {
            self.buf[i] = v;
        } else {
            debug_assert_eq!(i, self.buf.len());
            self.buf.push(v);
        }
        self.len += 1;
        evicted
    }

    /// Removes and returns the oldest element.
    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.buf[self.head];
        self.head += 1;
        if self.head == self.cap {
            self.head = 0;
        }
        self.len -= 1;
        Some(v)
    }

    /// The oldest element.
    #[inline]
    #[must_use]
    pub fn front(&self) -> Option<&T> {
        if self.len == 0 {
            None
        } else {
            Some(&self.buf[self.head])
        }
    }

    /// The newest element.
    #[inline]
    #[must_use]
    pub fn back(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.head + self.len - 1;
        if i >= self.cap {
            i -= self.cap;
        }
        Some(&self.buf[i])
    }

    /// The contents as two slices, oldest first.
    #[must_use]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let first = (self.cap - self.head).min(self.len);
        (
            &self.buf[self.head..self.head + first],
            &self.buf[..self.len - first],
        )
    }

    /// Oldest-to-newest iteration.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let (a, b) = self.as_slices();
        a.iter().chain(b.iter())
    }

    /// Removes every element (keeps the storage).
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// A sample of a time window: `(series time τ, value)`.
pub type Stamped<T> = (i64, T);

/// A right-closed time window `(τ_n − W, τ_n]` over one series (SIGNALS.md §1.2),
/// with the series-time clamp `τ_n = max(ts_n, τ_(n−1))` and the time-window
/// warm-up rule `τ_n − τ_1 ≥ W` built in.
#[derive(Clone, Debug)]
pub struct TimeWindow<T> {
    ring: Ring<(i64, T)>,
    window_ns: u64,
    first: i64,
    last: i64,
    started: bool,
    overflows: u64,
}

impl<T: Copy + Default> TimeWindow<T> {
    /// A window of length `window_ns` (> 0) holding at most `capacity` samples.
    #[must_use]
    pub fn new(window_ns: i64, capacity: usize) -> Self {
        debug_assert!(window_ns > 0);
        Self {
            ring: Ring::new(capacity),
            window_ns: window_ns.max(1) as u64,
            first: 0,
            last: 0,
            started: false,
            overflows: 0,
        }
    }

    /// Records a sample with raw timestamp `ts`: clamps it to series time,
    /// evicts samples that left the window (and, on overflow, the oldest
    /// sample), calling `evicted` for each, then appends `v`. Returns `τ`.
    #[inline]
    pub fn push(&mut self, ts: i64, v: T, mut evicted: impl FnMut(T)) -> i64 {
        let tau = if self.started {
            ts.max(self.last)
        } else {
            self.started = true;
            self.first = ts;
            ts
        };
        self.last = tau;
        while let Some(&(t, old)) = self.ring.front() {
            if elapsed(t, tau) < self.window_ns {
                break;
            }
            self.ring.pop_front();
            evicted(old);
        }
        if let Some((_, old)) = self.ring.push_back((tau, v)) {
            self.overflows += 1;
            evicted(old);
        }
        tau
    }

    /// `τ_n − τ_1 ≥ W`: the window is fully covered by observed data.
    #[inline]
    #[must_use]
    pub fn is_warm(&self) -> bool {
        self.started && elapsed(self.first, self.last) >= self.window_ns
    }

    /// Samples currently in the window, oldest first.
    pub fn values(&self) -> impl Iterator<Item = T> + '_ {
        self.ring.iter().map(|&(_, v)| v)
    }

    /// The `(τ, value)` samples as two slices, oldest first.
    #[must_use]
    pub fn as_slices(&self) -> (&[Stamped<T>], &[Stamped<T>]) {
        self.ring.as_slices()
    }

    /// Number of samples in the window.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// `true` when the window holds no sample.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// How many samples were evicted early because the window was full.
    #[inline]
    #[must_use]
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Series time of the last sample (`None` before the first).
    #[inline]
    #[must_use]
    pub fn series_time(&self) -> Option<i64> {
        self.started.then_some(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_evicts_oldest() {
        let mut r = Ring::new(3);
        assert_eq!(r.push_back(1), None);
        assert_eq!(r.push_back(2), None);
        assert_eq!(r.push_back(3), None);
        assert!(r.is_full());
        assert_eq!(r.push_back(4), Some(1));
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.front(), Some(&2));
        assert_eq!(r.back(), Some(&4));
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![3, 4]);
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.pop_front(), None);
    }

    #[test]
    fn time_window_is_right_closed_and_clamps() {
        let mut w = TimeWindow::<i64>::new(10, 16);
        let mut out = Vec::new();
        w.push(100, 1, |v| out.push(v));
        w.push(105, 2, |v| out.push(v));
        assert!(!w.is_warm());
        // Backwards time is clamped to 105.
        assert_eq!(w.push(50, 3, |v| out.push(v)), 105);
        // τ = 110: sample at 100 is at τ − W exactly → out.
        w.push(110, 4, |v| out.push(v));
        assert!(w.is_warm());
        assert_eq!(out, vec![1]);
        assert_eq!(w.values().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn time_window_overflow_evicts_early_and_counts() {
        let mut w = TimeWindow::<i64>::new(1_000, 2);
        let mut out = Vec::new();
        for i in 0..4 {
            w.push(i, i, |v| out.push(v));
        }
        assert_eq!(w.overflows(), 2);
        assert_eq!(out, vec![0, 1]);
        assert_eq!(w.len(), 2);
    }
}

/// Exact rolling moments of the last `n` integer values: `S = ΣX`,
/// `S2 = ΣX²` in `i128` (SIGNALS.md §9.1–9.2). Shared by `zscore` and
/// `bollinger`.
#[derive(Clone, Debug)]
pub struct CountMoments {
    ring: Ring<i64>,
    s: i128,
    s2: i128,
}

impl CountMoments {
    /// Moments over the last `n` (≥ 1) values.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n.max(1)),
            s: 0,
            s2: 0,
        }
    }

    /// Appends `x`, evicting the value that leaves the window.
    #[inline]
    pub fn push(&mut self, x: i64) {
        use crate::num::{add, mul, sub};
        if let Some(old) = self.ring.push_back(x) {
            let o = i128::from(old);
            self.s = sub(self.s, o);
            self.s2 = sub(self.s2, mul(o, o));
        }
        let v = i128::from(x);
        self.s = add(self.s, v);
        self.s2 = add(self.s2, mul(v, v));
    }

    /// `true` once `n` values are held.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    /// Window length `n`.
    #[inline]
    #[must_use]
    pub fn n(&self) -> usize {
        self.ring.capacity()
    }

    /// `S = ΣX` over the held values.
    #[inline]
    #[must_use]
    pub fn sum(&self) -> i128 {
        self.s
    }

    /// `D = N·S2 − S²` (exact; `N` = values held), `≥ 0`.
    #[inline]
    #[must_use]
    pub fn d(&self) -> i128 {
        use crate::num::{mul, sub};
        sub(mul(self.ring.len() as i128, self.s2), mul(self.s, self.s))
    }
}
