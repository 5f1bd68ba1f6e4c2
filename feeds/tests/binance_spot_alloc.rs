//! The Binance spot parser allocates nothing per frame after warm-up.
//!
//! Its own test binary: the counting global allocator sees every thread, so
//! nothing else may run concurrently.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::event::Scale;
use feeds::instruments::Instruments;
use feeds::venue::VenueAdapter;
use feeds::venues::binance::{Binance, SPOT_MARKET};

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

fn records(rel: &str) -> Option<Vec<(i64, Vec<u8>)>> {
    let path = common::shared_dir()?.join(rel);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line.expect("gzip text");
        if line.starts_with('#') {
            continue;
        }
        if let Some((t, f)) = line.split_once(' ') {
            out.push((t.parse().unwrap_or(0), f.as_bytes().to_vec()));
        }
    }
    Some(out)
}

#[test]
fn no_allocation_per_frame_after_warm_up() {
    let (Some(spot), Some(small)) = (
        records("data/binance-spot/btcusdt_20240808.txt.gz"),
        records("vectors/capture_small.txt.gz"),
    ) else {
        return;
    };
    let ids = Arc::new(AtomicU32::new(0));
    let mut a = Binance::new(
        &SPOT_MARKET,
        Instruments::new(0, vec![], Scale::default(), ids),
    );
    a.set_capture_symbols(&["BTCUSDT".to_owned()]);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut run = |a: &mut Binance| {
        let mut errors = 0;
        for (recv, f) in spot.iter().chain(&small) {
            buf.clear();
            buf.extend_from_slice(f);
            errors += usize::from(a.parse(*recv, &mut buf, &mut out).is_err());
            out.clear();
        }
        errors
    };
    assert_eq!(run(&mut a), 1); // the "this is not json" line
                                // The counter works.
    alloc_count::start_everywhere();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(alloc_count::allocations(), 1);
    alloc_count::start_everywhere();
    let errors = run(&mut a);
    let _ = alloc_count::stop_everywhere();
    assert_eq!(errors, 1);
    assert_eq!(alloc_count::allocations(), 0, "allocations after warm-up");
}
