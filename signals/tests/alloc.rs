//! Zero allocations per event: a counting global allocator shows that the
//! default set (both quote sources) allocates nothing after construction
//! while processing ~100k synthetic events (trades, valid and invalid
//! quotes, depth events, equal and backwards timestamps).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use signals::{
    default_set, DepthView, Quote, QuoteSource, Scale, Side, SignalSet, SignalSetConfig, Trade,
};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations are counted on the measuring thread only: the test
    /// harness's own threads may allocate at any time.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
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
    COUNTING.with(|c| c.set(false));
    let after = ALLOCS.load(Ordering::Relaxed);
    assert!(rows > 100_000, "too few rows: {rows}");
    assert!(acc.is_finite());
    assert_eq!(after - before, 0, "allocations while processing events");
    println!("rows={rows}, overflows={}", bt.window_overflows());
}
