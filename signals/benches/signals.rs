//! Criterion micro-benchmarks: ns per update for each signal kind on its
//! triggering event, and for the whole default set per (mixed) event.
//!
//! Run: `cargo bench -p signals -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signals::{
    default_set, DepthView, OutputId, ParamValue, Quote, Scale, Side, SignalSet, SignalSetConfig,
    SignalSpec, Trade,
};

const N: usize = 4_096;

#[derive(Clone, Copy)]
enum Ev {
    Trade(Trade),
    Quote(Quote),
    /// Index into [`Feeder::books`].
    Depth(u32),
}

#[derive(Clone, Copy)]
struct Book {
    bids: [(i64, i64); 8],
    asks: [(i64, i64); 8],
}

impl DepthView for Book {
    fn best_bid(&self) -> Option<(i64, i64)> {
        Some(self.bids[0])
    }
    fn best_ask(&self) -> Option<(i64, i64)> {
        Some(self.asks[0])
    }
    fn bid_depth(&self, levels: usize) -> i64 {
        self.bids[..levels.min(8)].iter().map(|l| l.1).sum()
    }
    fn ask_depth(&self, levels: usize) -> i64 {
        self.asks[..levels.min(8)].iter().map(|l| l.1).sum()
    }
}

/// Deterministic BTCUSDT-like events, ~1 ms apart: 40 % trades, 45 %
/// quotes, 15 % depth events. Timestamps are re-based per lap by the caller.
fn events() -> (Vec<(i64, Ev)>, Vec<Book>) {
    let mut books = Vec::new();
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut mid: i64 = 9_700_000_000_000;
    let mut ts = 0i64;
    let evs = (0..N)
        .map(|_| {
            let r = rnd();
            ts += (r % 2_000_000) as i64;
            mid += (r >> 20) as i64 % 2_001 - 1_000;
            let ev = match (r >> 40) % 20 {
                0..=7 => Ev::Trade(Trade {
                    ts_ns: 0,
                    px: mid,
                    qty: 1 + (r >> 44) as i64 % 100_000_000,
                    side: if r & (1 << 60) == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                }),
                8..=16 => Ev::Quote(Quote {
                    ts_ns: 0,
                    bid_px: mid - 1,
                    bid_qty: 1 + (r >> 30) as i64 % 500_000_000,
                    ask_px: mid + 1 + (r >> 50) as i64 % 3,
                    ask_qty: 1 + (r >> 33) as i64 % 500_000_000,
                }),
                _ => {
                    let mut b = Book {
                        bids: [(0, 0); 8],
                        asks: [(0, 0); 8],
                    };
                    for i in 0..8 {
                        b.bids[i] = (mid - 1 - 100 * i as i64, 1_000 + (r >> i) as i64 % 100_000);
                        b.asks[i] = (
                            mid + 1 + 100 * i as i64,
                            1_000 + (r >> (i + 3)) as i64 % 100_000,
                        );
                    }
                    books.push(b);
                    Ev::Depth(books.len() as u32 - 1)
                }
            };
            (ts, ev)
        })
        .collect::<Vec<_>>();
    (evs, books)
}

/// Feeds events forever with increasing time; `pick` selects which events
/// are fed (to bench one trigger type).
struct Feeder {
    evs: Vec<(i64, Ev)>,
    books: Vec<Book>,
    i: usize,
    base: i64,
    span: i64,
}

impl Feeder {
    fn new(keep: impl Fn(&Ev) -> bool) -> Self {
        let (all, books) = events();
        let evs: Vec<_> = all.into_iter().filter(|(_, e)| keep(e)).collect();
        let span = evs.last().unwrap().0 + 1_000_000;
        Self {
            evs,
            books,
            i: 0,
            base: 1_700_000_000_000_000_000,
            span,
        }
    }

    #[inline]
    fn step(&mut self, set: &mut SignalSet, sink: &mut f64) {
        let (t, ev) = self.evs[self.i];
        let ts = self.base + t;
        self.i += 1;
        if self.i == self.evs.len() {
            self.i = 0;
            self.base += self.span;
        }
        let mut out = |_: OutputId, v: f64| *sink += v;
        match ev {
            Ev::Trade(mut x) => {
                x.ts_ns = ts;
                set.on_trade(&x, &mut out);
            }
            Ev::Quote(mut q) => {
                q.ts_ns = ts;
                set.on_quote(&q, &mut out);
            }
            Ev::Depth(b) => {
                set.on_depth(ts, &self.books[b as usize], &mut out);
            }
        }
    }
}

fn single(kind: &str, params: &[(&str, ParamValue<'_>)]) -> SignalSet {
    let spec = SignalSpec::parse("s", kind, params).unwrap();
    SignalSet::new(&SignalSetConfig::new(Scale::default(), vec![spec])).unwrap()
}

fn per_kind(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_kind");
    g.throughput(Throughput::Elements(1));
    let trade = |e: &Ev| matches!(e, Ev::Trade(_));
    let quote = |e: &Ev| matches!(e, Ev::Quote(_));
    let depth = |e: &Ev| matches!(e, Ev::Depth(_));
    let mid = ParamValue::Str("mid");
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, ParamValue<'a>)>,
        &'a dyn Fn(&Ev) -> bool,
    );
    let cases: Vec<Case<'_>> = vec![
        ("mid", vec![], &quote),
        ("spread_bps", vec![], &quote),
        ("microprice", vec![], &quote),
        ("imbalance_l1", vec![], &quote),
        ("imbalance_depth", vec![], &depth),
        ("ofi", vec![], &quote),
        ("rv", vec![], &quote),
        ("zscore", vec![("source", mid)], &quote),
        ("ema_time", vec![("source", mid)], &quote),
        ("trade_imbalance", vec![], &trade),
        ("vwap", vec![], &trade),
        ("ema", vec![], &trade),
        ("rsi", vec![], &trade),
        ("bollinger", vec![], &trade),
        ("kyle_lambda", vec![], &trade),
    ];
    for (kind, params, keep) in cases {
        let mut set = single(kind, &params);
        let mut feed = Feeder::new(keep);
        let mut sink = 0.0;
        g.bench_function(kind, |b| b.iter(|| feed.step(&mut set, &mut sink)));
        black_box(sink);
    }
    g.finish();
}

fn default_set_per_event(c: &mut Criterion) {
    let mut g = c.benchmark_group("default_set");
    g.throughput(Throughput::Elements(1));
    let mut set = SignalSet::new(&SignalSetConfig::new(Scale::default(), default_set())).unwrap();
    let mut feed = Feeder::new(|_| true);
    let mut sink = 0.0;
    g.bench_function("mixed_event", |b| b.iter(|| feed.step(&mut set, &mut sink)));
    black_box(sink);
    g.finish();
}

criterion_group!(benches, per_kind, default_set_per_event);
criterion_main!(benches);
