//! Zero allocations per event: a counting global allocator shows that the
//! default set (both quote sources) allocates nothing after construction
//! while processing ~100k synthetic events (trades, valid and invalid
//! quotes, depth events, equal and backwards timestamps).

use signals::{
    default_set, DepthView, Quote, QuoteSource, Scale, Side, SignalSet, SignalSetConfig, Trade,
};

/// Allocations are counted on the measuring thread only: the test harness's
/// own threads may allocate at any time.
#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// A fixed-size book on the stack (no allocation).
struct Book {
    bids: [(i64, i64); 8],
    asks: [(i64, i64); 8],
    nb: usize,
    na: usize,
}

impl DepthView for Book {
    fn best_bid(&self) -> Option<(i64, i64)> {
        (self.nb > 0).then(|| self.bids[0])
    }
    fn best_ask(&self) -> Option<(i64, i64)> {
        (self.na > 0).then(|| self.asks[0])
    }
    fn bid_depth(&self, levels: usize) -> i64 {
        self.bids[..self.nb.min(levels)].iter().map(|l| l.1).sum()
    }
    fn ask_depth(&self, levels: usize) -> i64 {
        self.asks[..self.na.min(levels)].iter().map(|l| l.1).sum()
    }
}

#[test]
fn no_allocation_per_event() {
    let scale = Scale::default();
    let mut cfg = SignalSetConfig::new(scale, default_set());
    let mut bt = SignalSet::new(&cfg).unwrap();
    cfg.quote_source = QuoteSource::Depth;
    let mut depth = SignalSet::new(&cfg).unwrap();

    let mut rows = 0u64;
    let mut acc = 0.0f64;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ts: i64 = 1_700_000_000_000_000_000;
    let mut mid: i64 = 9_700_000_000_000; // 97 000.00000000
    let probe = alloc_count::on_this_thread(|| std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(probe.1, 1, "the counter counts");
    alloc_count::start_here();
    for _ in 0..100_000 {
        let r = rnd();
        match r % 16 {
            0 => {}               // equal timestamp
            1 => ts -= 3_000_000, // backwards
            _ => ts += (r >> 8) as i64 % 2_000_000,
        }
        mid += (r >> 20) as i64 % 2_001 - 1_000;
        let mut out = |_: signals::OutputId, v: f64| {
            rows += 1;
            acc += v;
        };
        match (r >> 40) % 10 {
            0..=3 => {
                let side = if r & (1 << 50) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let qty = (r >> 52) as i64 % 100_000_000 - 1_000;
                let t = Trade {
                    ts_ns: ts,
                    px: mid,
                    qty,
                    side,
                };
                bt.on_trade(&t, &mut out);
                depth.on_trade(&t, &mut out);
            }
            4..=7 => {
                let spread = (r >> 44) as i64 % 1_000 - 20; // sometimes crossed
                let q = Quote {
                    ts_ns: ts,
                    bid_px: mid,
                    bid_qty: (r >> 30) as i64 % 500_000_000,
                    ask_px: mid + spread,
                    ask_qty: (r >> 33) as i64 % 500_000_000 + 1,
                };
                bt.on_quote(&q, &mut out);
                depth.on_quote(&q, &mut out);
            }
            _ => {
                let mut book = Book {
                    bids: [(0, 0); 8],
                    asks: [(0, 0); 8],
                    nb: (r >> 45) as usize % 9,
                    na: 1 + (r >> 49) as usize % 8,
                };
                for i in 0..8 {
                    book.bids[i] = (mid - 100 * i as i64, 1_000 + (r >> i) as i64 % 100_000);
                    book.asks[i] = (
                        mid + 100 + 100 * i as i64,
                        1_000 + (r >> (i + 3)) as i64 % 100_000,
                    );
                }
                bt.on_depth(ts, &book, &mut out);
                depth.on_depth(ts, &book, &mut out);
            }
        }
    }
    let allocs = alloc_count::stop_here();
    assert!(rows > 100_000, "too few rows: {rows}");
    assert!(acc.is_finite());
    assert_eq!(allocs, Some(0), "allocations while processing events");
    println!("rows={rows}, overflows={}", bt.window_overflows());
}
