//! Ctrl-C handling: the first SIGINT/SIGTERM asks every loop to stop and the
//! pipeline to drain and flush; a second one exits at once.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static HITS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    if HITS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Installs the handler (idempotent).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installing a handler that only touches atomics and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The process-wide stop flag.
#[must_use]
pub fn flag() -> &'static AtomicBool {
    &STOP
}

/// True once a stop was requested.
#[must_use]
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
