//! Every registry venue's frame and REST-snapshot parser on arbitrary bytes:
//! the first byte picks the venue, the rest is the frame. A frame that fails
//! must append nothing.
#![no_main]

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::event::Scale;
use feeds::instruments::Instruments;
use feeds::venue::VENUES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let venue = usize::from(pick) % VENUES.len();
    let ids = Arc::new(AtomicU32::new(0));
    let instruments = Instruments::new(venue as u16, vec![], Scale::default(), ids);
    let mut adapter = (VENUES[venue].new)(venue as u16, instruments);
    let mut buf = frame.to_vec();
    let mut out = Vec::new();
    if adapter.parse(1, &mut buf, &mut out).is_err() {
        assert!(out.is_empty());
    }
    let mut buf = frame.to_vec();
    out.clear();
    if adapter.parse_snapshot("BTCUSDT", 1, &mut buf, &mut out).is_err() {
        assert!(out.is_empty());
    }
});
