//! Conformance of every registry venue on its shared captures: 0 parse
//! errors, 0 unknown frames, and no allocation per frame after warm-up.
//!
//! Its own test binary: the counting global allocator sees every thread, so
//! nothing else may run concurrently.

mod common;

use common::venues::{adapter, venue_captures};
use feeds::venue::{FrameKind, VENUES};

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

#[test]
fn every_venue_parses_its_captures_cleanly_without_allocating() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let caps = venue_captures(&shared);
    for (i, v) in VENUES.iter().enumerate() {
        assert!(
            caps.iter().any(|c| usize::from(c.venue) == i),
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
        alloc_count::start_everywhere();
        drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
        assert_eq!(alloc_count::allocations(), 1, "the counter counts");
        alloc_count::start_everywhere();
        let again = run(a.as_mut());
        let _ = alloc_count::stop_everywhere();
        // Venues that drop trades already seen (Coinbase, by trade id)
        // find fewer data frames in the same frames a second time.
        assert_eq!((again.0, again.1), (errors, unknown), "{name}");
        assert!(
            again.2 <= data && again.2 * 10 >= data * 9,
            "{name}: {again:?}"
        );
        assert_eq!(
            alloc_count::allocations(),
            0,
            "{name}: allocations after warm-up"
        );
    }
}
