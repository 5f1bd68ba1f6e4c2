//! Conformance of every registry venue on its shared captures: 0 parse
//! errors, 0 unknown frames, and no allocation per frame after warm-up.
//!
//! Its own test binary: the counting global allocator sees every thread, so
//! nothing else may run concurrently.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::venues::{adapter, venue_captures};
use feeds::venue::{FrameKind, VENUES};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn every_venue_parses_its_captures_cleanly_without_allocating() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let caps = venue_captures(&shared);
    for (i, v) in VENUES.iter().enumerate() {
        // Entries of one protocol family (one `capture_venue`, one parser:
        // Bybit spot / linear / inverse) may share their family's captures.
        let family = |c: &common::venues::VenueCapture| {
            VENUES[usize::from(c.venue)].capture_venue == v.capture_venue
        };
        assert!(
            caps.iter().any(|c| usize::from(c.venue) == i)
                || (!v.capture_url.is_empty() && caps.iter().any(family)),
            "venue {} has no shared capture: a venue ships with one",
            v.name
        );
    }
    for cap in &caps {
        let name = cap.path.display();
        let mut a = adapter(cap.venue);
        a.set_capture_symbols(&cap.symbols);
        let mut out = Vec::with_capacity(1 << 14);
        let mut buf = Vec::with_capacity(1 << 20);
        let mut run = |a: &mut dyn feeds::venue::VenueAdapter| {
            let (mut errors, mut unknown, mut data) = (0usize, 0usize, 0usize);
            for (recv, f) in &cap.records {
                buf.clear();
                buf.extend_from_slice(f);
                match a.parse(*recv, &mut buf, &mut out) {
                    Err(_) => errors += 1,
                    Ok(FrameKind::Unknown) => unknown += 1,
                    Ok(FrameKind::Control | FrameKind::Ignored) => {}
                    Ok(_) => data += 1,
                }
                out.clear();
            }
            (errors, unknown, data)
        };
        let (errors, unknown, data) = run(a.as_mut());
        assert_eq!(
            (errors, unknown),
            (0, 0),
            "{name}: parse errors, unknown frames"
        );
        assert!(
            data * 10 >= cap.records.len() * 9,
            "{name}: {data} data frames of {}",
            cap.records.len()
        );
        // Warmed up: the second pass over the same frames allocates nothing.
        COUNTING.store(true, Ordering::SeqCst);
        drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
        assert_eq!(ALLOCS.swap(0, Ordering::SeqCst), 1, "the counter counts");
        let again = run(a.as_mut());
        COUNTING.store(false, Ordering::SeqCst);
        assert_eq!(again, (errors, unknown, data));
        assert_eq!(
            ALLOCS.swap(0, Ordering::SeqCst),
            0,
            "{name}: allocations after warm-up"
        );
    }
}
