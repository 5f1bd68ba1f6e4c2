//! A counting global allocator for the workspace's zero-allocation tests
//! (STYLE.md: a test that processes a real capture and asserts no allocation
//! after warm-up). One copy for every crate's tests.
//!
//! A test binary installs it, then counts either on the measuring thread only
//! (libtest's own threads may allocate at any time) or on every thread (the
//! binary must then run nothing else meanwhile):
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: alloc_count::Counting = alloc_count::Counting;
//!
//! let (v, n) = alloc_count::on_this_thread(|| Vec::<u8>::with_capacity(8));
//! assert_eq!((v.capacity(), n), (8, 1));
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The system allocator, counting the allocations (`alloc`, `alloc_zeroed`,
/// `realloc`) made while counting is on.
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static EVERY_THREAD: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's count while it counts on its own (`None`: it does not).
    static HERE: Cell<Option<u64>> = const { Cell::new(None) };
}

#[inline]
fn note() {
    if EVERY_THREAD.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    // `try_with`: an allocation during the thread's TLS teardown is not counted.
    let _ = HERE.try_with(|h| {
        if let Some(n) = h.get() {
            h.set(Some(n + 1));
        }
    });
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Counts this thread's allocations from now on, from zero (other threads,
/// counting or not, do not add to it).
pub fn start_here() {
    HERE.set(Some(0));
}

/// Stops counting on this thread: its count, `None` if it was not counting.
pub fn stop_here() -> Option<u64> {
    HERE.replace(None)
}

/// Runs `f`, returning its result and the allocations it made on this thread.
pub fn on_this_thread<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let outer = HERE.replace(Some(0));
    let out = f();
    let n = HERE.replace(outer).unwrap_or(0);
    (out, n)
}

/// Counts every thread's allocations from now on, from zero.
pub fn start_everywhere() {
    ALLOCS.store(0, Ordering::SeqCst);
    EVERY_THREAD.store(true, Ordering::SeqCst);
}

/// Stops counting on every thread: the count since [`start_everywhere`].
pub fn stop_everywhere() -> u64 {
    EVERY_THREAD.store(false, Ordering::SeqCst);
    allocations()
}

/// Allocations on every thread since [`start_everywhere`].
#[must_use]
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::SeqCst)
}
