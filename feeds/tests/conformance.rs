//! Conformance of every registry venue's parser: arbitrary bytes and
//! mutated real frames (from its shared captures) never panic, and a frame
//! that fails appends nothing.

mod common;

use common::venues::{adapter, venue_captures};
use feeds::event::{Event, InstrumentId};
use feeds::venue::VENUES;
use proptest::prelude::*;

/// A spread of real frames per venue: every 53rd record plus every snapshot.
fn samples() -> Vec<(u16, Vec<u8>)> {
    let Some(shared) = common::shared_dir() else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for c in venue_captures(&shared) {
        for (i, (_, f)) in c.records.iter().enumerate() {
            if i % 53 == 0 || f.windows(12).any(|w| w == b"lastUpdateId") {
                v.push((c.venue, f.clone()));
            }
        }
    }
    v
}

fn check(venue: u16, frame: &mut [u8]) {
    let mut a = adapter(venue);
    let mut out = vec![Event::Reset(InstrumentId(1))];
    if a.parse(1, frame, &mut out).is_err() {
        assert_eq!(
            out,
            [Event::Reset(InstrumentId(1))],
            "{}",
            VENUES[usize::from(venue)].name
        );
    }
    let mut out = Vec::new();
    let _ = a.parse_snapshot("BTCUSDT", 1, frame, &mut out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn arbitrary_bytes_never_panic(
        venue in 0..VENUES.len(),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        check(venue as u16, &mut bytes);
    }

    #[test]
    fn mutated_real_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        thread_local!(static FRAMES: Vec<(u16, Vec<u8>)> = samples());
        let Some((venue, mut f)) = FRAMES.with(|fs| (!fs.is_empty()).then(|| pick.get(fs).clone())) else {
            return Ok(());
        };
        for (at, byte, op) in edits {
            if f.is_empty() { break; }
            let i = at.index(f.len());
            match op {
                0 => f[i] = byte,
                1 => { f.remove(i); }
                _ => f.truncate(i),
            }
        }
        check(venue, &mut f);
    }
}
