//! Seeded synthetic Binance **spot** market-data feed.
//!
//! The model, per symbol:
//!
//! * a latent *fair price* that follows a random walk whose volatility switches
//!   between a calm and a volatile regime (two-state Markov chain with
//!   exponential holding times);
//! * a price-level book of a few hundred levels per side on the symbol's tick
//!   grid, driven by Poisson order-flow events (adds near the fair price, deep
//!   adds, partial/full cancels, makers pulling quotes that the fair price has
//!   moved through);
//! * trades arriving as a Hawkes (self-exciting) process simulated by Ogata
//!   thinning; each trade takes liquidity from the top of the opposite side and
//!   may sweep a few levels, biased toward the side the fair price points to.
//!
//! Every level change consumes one book update id. The generator emits frames
//! byte-for-byte in Binance's format (combined-stream wrappers by default):
//! `trade`, `bookTicker` (whenever the top changes; `u` is the update id at that
//! moment and the prices/quantities are exactly the book's best levels at that
//! id) and `depthUpdate` diffs every `depth_interval` with `U = previous u + 1`,
//! listing every level changed since the previous diff (`"0.00000000"` for
//! deletions). [`Generator::snapshot`] renders a REST depth snapshot of the
//! current state. The book is never crossed.
//!
//! ```
//! use bench::generator::{GenConfig, Generator};
//! let mut cfg = GenConfig::new(7, 2);
//! cfg.duration = std::time::Duration::from_secs(1);
//! let frames: Vec<_> = Generator::new(cfg).collect();
//! assert!(frames.windows(2).all(|w| w[0].recv_ns <= w[1].recv_ns));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, StandardNormal};

use feeds::event::Scale;
use feeds::sim::MarketOp;
use feeds::venue::VenueDef;

use crate::fixed8::SCALE;

/// Static description of one generated instrument.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolSpec {
    /// Upper-case Binance symbol, e.g. `BTCUSDT`.
    pub name: String,
    /// Initial mid price (quote currency).
    pub mid: f64,
    /// Price tick in `1e-8` units (`1_000_000` = 0.01).
    pub tick: i64,
    /// Quantity step in `1e-8` units (`1_000` = 0.00001).
    pub lot: i64,
    /// Calm-regime volatility of the fair price, basis points per √second.
    pub vol_bps: f64,
    /// Mean trade size in base units.
    pub mean_trade_qty: f64,
}

impl SymbolSpec {
    /// Built-in presets: BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT, XRPUSDT, then
    /// synthetic `SYM<i>USDT` names.
    pub fn preset(i: usize) -> SymbolSpec {
        let (name, mid, tick, lot, vol, q) = match i {
            0 => (
                "BTCUSDT".to_string(),
                61_837.63,
                1_000_000,
                1_000,
                1.0,
                0.02,
            ),
            1 => ("ETHUSDT".to_string(), 2_687.41, 1_000_000, 10_000, 2.0, 0.3),
            2 => ("SOLUSDT".to_string(), 153.27, 1_000_000, 100_000, 3.0, 5.0),
            3 => ("BNBUSDT".to_string(), 512.3, 1_000_000, 100_000, 2.0, 1.0),
            4 => (
                "XRPUSDT".to_string(),
                0.5612,
                1_000,
                100_000_000,
                3.0,
                500.0,
            ),
            n => (
                format!("SYM{n}USDT"),
                10.0 + n as f64,
                100_000,
                1_000_000,
                3.0,
                20.0,
            ),
        };
        SymbolSpec {
            name,
            mid,
            tick,
            lot,
            vol_bps: vol,
            mean_trade_qty: q,
        }
    }
}

/// Generator configuration. [`GenConfig::new`] gives realistic defaults.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// RNG seed; equal configs produce byte-identical output.
    pub seed: u64,
    /// Instruments (at least one).
    pub symbols: Vec<SymbolSpec>,
    /// Unix time (ns) of the first event.
    pub start_ns: i64,
    /// Length of the generated session.
    pub duration: Duration,
    /// Hawkes background trade intensity per symbol (trades/s, calm regime).
    pub trade_rate: f64,
    /// Hawkes excitation jump per trade (1/s). `alpha / beta` must be < 1.
    pub hawkes_alpha: f64,
    /// Hawkes excitation decay rate (1/s).
    pub hawkes_beta: f64,
    /// Order-book events (adds/cancels) per second per symbol, calm regime.
    pub book_rate: f64,
    /// Target number of price levels per side.
    pub levels: usize,
    /// Diff-depth cadence (100 ms like `@depth@100ms`). Zero emits one diff
    /// after every book-changing event.
    pub depth_interval: Duration,
    /// Volatility / activity multiplier of the volatile regime.
    pub volatile_multiplier: f64,
    /// Mean holding time of the calm regime.
    pub calm_mean: Duration,
    /// Mean holding time of the volatile regime.
    pub volatile_mean: Duration,
    /// Mean receive latency added to event times for `recv_ns`.
    pub latency: Duration,
    /// Emit one REST snapshot record per symbol after this many of its diffs
    /// (like real recordings). `None`: no snapshot records.
    pub inline_snapshot_after_diffs: Option<u32>,
    /// Level limit of inline snapshot records.
    pub inline_snapshot_limit: usize,
    /// Wrap frames as combined-stream messages `{"stream":..,"data":..}`.
    pub wrap: bool,
    /// Venue whose frames are rendered (registry name; its server renders
    /// the generator's market operations).
    pub venue: String,
}

impl GenConfig {
    /// Defaults with the first `n_symbols` presets (at least one).
    pub fn new(seed: u64, n_symbols: usize) -> GenConfig {
        GenConfig {
            seed,
            symbols: (0..n_symbols.max(1)).map(SymbolSpec::preset).collect(),
            start_ns: 1_723_161_600_000_000_000, // 2024-08-09T00:00:00Z
            duration: Duration::from_secs(60),
            trade_rate: 15.0,
            hawkes_alpha: 40.0,
            hawkes_beta: 60.0,
            book_rate: 150.0,
            levels: 300,
            depth_interval: Duration::from_millis(100),
            volatile_multiplier: 3.0,
            calm_mean: Duration::from_secs(20),
            volatile_mean: Duration::from_secs(5),
            latency: Duration::from_micros(800),
            inline_snapshot_after_diffs: None,
            inline_snapshot_limit: 1000,
            wrap: true,
            venue: "binance-spot".to_owned(),
        }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig::new(1, 3)
    }
}

/// One generated record: receive time and the frame text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenRecord {
    /// Local receive time, Unix ns. Non-decreasing.
    pub recv_ns: i64,
    /// The frame exactly as Binance would send it.
    pub frame: String,
}

type Top = (i64, i64, i64, i64);

struct SymState {
    spec: SymbolSpec,
    /// price (ticks) -> qty (lots)
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    update_id: u64,
    last_diff_u: u64,
    changed_bids: Vec<i64>,
    changed_asks: Vec<i64>,
    /// Fair price in ticks.
    fair: f64,
    fair_t: i64,
    /// Calm-regime volatility in ticks per √s.
    sigma: f64,
    /// Price range (ticks from the fair price) the book's levels spread over.
    span: i64,
    /// Tolerance (ticks) of quotes lagging the fair price.
    band: f64,
    mean_lots: f64,
    volatile: bool,
    next_regime: i64,
    next_book: i64,
    next_trade: i64,
    hawkes_t: i64,
    hawkes_excite: f64,
    hawkes_bound: f64,
    next_diff: i64,
    trade_id: u64,
    diffs: u32,
    snapshot_pending: bool,
    snapshot_done: bool,
    last_top: Top,
}

impl SymState {
    fn top(&self) -> Top {
        let (bp, bq) = self
            .bids
            .iter()
            .next_back()
            .map_or((0, 0), |(p, q)| (*p, *q));
        let (ap, aq) = self.asks.iter().next().map_or((0, 0), |(p, q)| (*p, *q));
        (bp, bq, ap, aq)
    }
    fn best_bid(&self) -> Option<i64> {
        self.bids.keys().next_back().copied()
    }
    fn best_ask(&self) -> Option<i64> {
        self.asks.keys().next().copied()
    }
    fn mult(&self, m: f64) -> f64 {
        if self.volatile {
            m
        } else {
            1.0
        }
    }
    /// Sets a level (qty 0 deletes) and consumes one update id.
    fn set_level(&mut self, bid: bool, px: i64, qty: i64) {
        let (side, changed) = if bid {
            (&mut self.bids, &mut self.changed_bids)
        } else {
            (&mut self.asks, &mut self.changed_asks)
        };
        if qty <= 0 {
            if side.remove(&px).is_none() {
                return;
            }
        } else {
            side.insert(px, qty);
        }
        changed.push(px);
        self.update_id += 1;
    }
}

/// The synthetic feed. Iterate it for [`GenRecord`]s in time order.
pub struct Generator {
    rng: SmallRng,
    syms: Vec<SymState>,
    out: VecDeque<GenRecord>,
    end_ns: i64,
    last_recv: i64,
    depth_interval_ns: i64,
    book_rate: f64,
    trade_rate: f64,
    alpha: f64,
    beta: f64,
    levels: usize,
    vol_mult: f64,
    calm_mean_s: f64,
    volatile_mean_s: f64,
    latency_ns: f64,
    inline_after: Option<u32>,
    inline_limit: usize,
    wrap: bool,
    depth_interval_ms: u64,
    venue: &'static VenueDef,
    buf: String,
    bids_buf: Vec<(i64, i64)>,
    asks_buf: Vec<(i64, i64)>,
}

fn exp_s(rng: &mut SmallRng, rate: f64) -> i64 {
    let x: f64 = Exp1.sample(rng);
    ((x / rate.max(1e-9)) * 1e9).ceil().max(1.0) as i64
}

impl Generator {
    /// Builds the initial books and schedules the first events.
    ///
    /// # Panics
    /// If `cfg.venue` is not in the registry (a programming error of the caller:
    /// [`GenConfig::venue`] names a registry entry).
    pub fn new(mut cfg: GenConfig) -> Generator {
        let venue = feeds::venue::venue_by_name(&cfg.venue)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("generator: unknown venue {:?}", cfg.venue));
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let start = cfg.start_ns;
        let depth_interval_ns = cfg.depth_interval.as_nanos() as i64;
        let specs = std::mem::take(&mut cfg.symbols);
        let mut syms = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let tick_px = spec.tick as f64 / SCALE as f64;
            let fair = spec.mid / tick_px;
            let sigma = fair * spec.vol_bps / 1e4;
            let mean_lots = (spec.mean_trade_qty * SCALE as f64 / spec.lot as f64).max(1.0);
            let span = book_span(cfg.levels.max(8), sigma);
            let mut s = SymState {
                spec,
                bids: BTreeMap::new(),
                asks: BTreeMap::new(),
                update_id: 1_000_000 * (i as u64 + 1) + rng.gen_range(0..1_000_000),
                last_diff_u: 0,
                changed_bids: Vec::new(),
                changed_asks: Vec::new(),
                fair,
                fair_t: start,
                sigma,
                span,
                band: (3.0 * sigma / cfg.book_rate.max(1.0).sqrt()).max(1.0),
                mean_lots,
                volatile: false,
                next_regime: 0,
                next_book: 0,
                next_trade: 0,
                hawkes_t: start,
                hawkes_excite: 0.0,
                hawkes_bound: 0.0,
                next_diff: start + depth_interval_ns.max(1),
                trade_id: 100_000_000 * (i as u64 + 1) + rng.gen_range(0..1_000_000),
                diffs: 0,
                snapshot_pending: false,
                snapshot_done: false,
                last_top: (0, 0, 0, 0),
            };
            // Initial book: levels spread over `span` ticks each side.
            let occupancy = cfg.levels.max(8) as f64 / span as f64;
            let fb = fair.floor() as i64;
            for d in 0..span {
                for bid in [true, false] {
                    if d > 0 && rng.gen::<f64>() > occupancy {
                        continue;
                    }
                    let px = if bid { fb - d } else { fb + 1 + d };
                    if px <= 0 {
                        continue;
                    }
                    let q = level_qty(&mut rng, mean_lots, d);
                    if bid {
                        s.bids.insert(px, q);
                    } else {
                        s.asks.insert(px, q);
                    }
                }
            }
            s.last_diff_u = s.update_id;
            s.last_top = s.top();
            syms.push(s);
        }
        let mut g = Generator {
            rng,
            syms,
            out: VecDeque::with_capacity(64),
            end_ns: start.saturating_add(cfg.duration.as_nanos() as i64),
            last_recv: i64::MIN,
            depth_interval_ns,
            book_rate: cfg.book_rate,
            trade_rate: cfg.trade_rate,
            alpha: cfg.hawkes_alpha,
            beta: cfg.hawkes_beta,
            levels: cfg.levels.max(8),
            vol_mult: cfg.volatile_multiplier,
            calm_mean_s: cfg.calm_mean.as_secs_f64(),
            volatile_mean_s: cfg.volatile_mean.as_secs_f64(),
            latency_ns: cfg.latency.as_nanos() as f64,
            inline_after: cfg.inline_snapshot_after_diffs,
            inline_limit: cfg.inline_snapshot_limit,
            wrap: cfg.wrap,
            depth_interval_ms: u64::try_from(cfg.depth_interval.as_millis()).unwrap_or(u64::MAX),
            venue,
            buf: String::with_capacity(4096),
            bids_buf: Vec::new(),
            asks_buf: Vec::new(),
        };
        for i in 0..g.syms.len() {
            let calm = g.calm_mean_s;
            g.syms[i].next_regime = start + exp_s(&mut g.rng, 1.0 / calm.max(1e-3));
            let br = g.book_rate;
            g.syms[i].next_book = start + exp_s(&mut g.rng, br);
            g.schedule_trade(i, start);
        }
        g
    }

    /// The venue whose frames are rendered.
    pub fn venue(&self) -> &'static str {
        self.venue.name
    }

    /// Symbols in configuration order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.syms.iter().map(|s| s.spec.name.as_str())
    }

    /// Current book update id of `symbol`.
    pub fn update_id(&self, symbol: &str) -> Option<u64> {
        self.sym(symbol).map(|s| s.update_id)
    }

    /// Current best `(bid, bid_qty, ask, ask_qty)` of `symbol` in `1e-8` units.
    pub fn top(&self, symbol: &str) -> Option<(i64, i64, i64, i64)> {
        self.sym(symbol).map(|s| {
            let (bp, bq, ap, aq) = s.top();
            (
                bp * s.spec.tick,
                bq * s.spec.lot,
                ap * s.spec.tick,
                aq * s.spec.lot,
            )
        })
    }

    fn sym(&self, symbol: &str) -> Option<&SymState> {
        self.syms
            .iter()
            .find(|s| s.spec.name.eq_ignore_ascii_case(symbol))
    }

    /// REST depth snapshot body of the current state:
    /// `{"lastUpdateId":N,"bids":[[p,q],..],"asks":[..]}`, best levels first,
    /// at most `limit` per side. `None` for an unknown symbol.
    pub fn snapshot(&self, symbol: &str, limit: usize) -> Option<String> {
        let s = self.sym(symbol)?;
        let mut out = String::with_capacity(64 + 2 * limit.min(s.bids.len()) * 36);
        render_snapshot(self.venue, &mut out, s, limit, false, true);
        Some(out)
    }

    /// The frame the venue sends on the stream with a snapshot of `symbol`
    /// (venues that start books on the stream), at most `limit` levels per side.
    #[must_use]
    pub fn stream_snapshot(&self, symbol: &str, limit: usize) -> Option<String> {
        let s = self.sym(symbol)?;
        let mut out = String::with_capacity(64 + 2 * limit.min(s.bids.len()) * 36);
        render_snapshot(self.venue, &mut out, s, limit, false, false);
        Some(out)
    }

    /// Processes the earliest pending event. `false` once the session is over.
    fn step(&mut self) -> bool {
        let mut best = (i64::MAX, 0usize, 0u8);
        for (i, s) in self.syms.iter().enumerate() {
            for (t, k) in [
                (s.next_diff, 0u8),
                (s.next_trade, 1),
                (s.next_book, 2),
                (s.next_regime, 3),
            ] {
                if t < best.0 {
                    best = (t, i, k);
                }
            }
        }
        let (t, i, kind) = best;
        if t > self.end_ns {
            return false;
        }
        self.advance_fair(i, t);
        match kind {
            0 => {
                self.emit_diff(i, t);
                let iv = self.depth_interval_ns.max(1);
                self.syms[i].next_diff = if self.depth_interval_ns == 0 {
                    i64::MAX
                } else {
                    t + iv
                };
            }
            1 => {
                self.trade_candidate(i, t);
            }
            2 => {
                self.book_event(i, t);
                let rate = self.book_rate * self.syms[i].mult(self.vol_mult);
                self.syms[i].next_book = t + exp_s(&mut self.rng, rate);
            }
            _ => {
                let s = &mut self.syms[i];
                s.volatile = !s.volatile;
                let mean = if s.volatile {
                    self.volatile_mean_s
                } else {
                    self.calm_mean_s
                };
                s.next_regime = t + exp_s(&mut self.rng, 1.0 / mean.max(1e-3));
                self.schedule_trade(i, t);
            }
        }
        if self.depth_interval_ns == 0 {
            let s = &self.syms[i];
            if !s.changed_bids.is_empty() || !s.changed_asks.is_empty() {
                self.emit_diff(i, t);
            }
        }
        if self.syms[i].snapshot_pending && kind != 0 {
            self.syms[i].snapshot_pending = false;
            self.syms[i].snapshot_done = true;
            let mut frame = String::with_capacity(64 * 1024);
            let with_symbol = self.syms.len() > 1;
            render_snapshot(
                self.venue,
                &mut frame,
                &self.syms[i],
                self.inline_limit,
                with_symbol,
                true,
            );
            self.push_frame(t, frame);
        }
        true
    }

    fn advance_fair(&mut self, i: usize, t: i64) {
        let s = &mut self.syms[i];
        let dt = (t - s.fair_t) as f64 * 1e-9;
        if dt > 0.0 {
            let z: f64 = StandardNormal.sample(&mut self.rng);
            let sig = s.sigma * if s.volatile { self.vol_mult } else { 1.0 };
            s.fair = (s.fair + sig * dt.sqrt() * z).max(10.0);
            s.fair_t = t;
        }
    }

    /// Hawkes thinning: draw the next candidate from the current bound.
    fn schedule_trade(&mut self, i: usize, now: i64) {
        let beta = self.beta;
        let mu = self.trade_rate * self.syms[i].mult(self.vol_mult);
        let s = &mut self.syms[i];
        let dt = (now - s.hawkes_t).max(0) as f64 * 1e-9;
        s.hawkes_excite *= (-beta * dt).exp();
        s.hawkes_t = now;
        s.hawkes_bound = mu + s.hawkes_excite;
        let w = exp_s(&mut self.rng, s.hawkes_bound);
        s.next_trade = now + w;
    }

    fn trade_candidate(&mut self, i: usize, t: i64) {
        let beta = self.beta;
        let mu = self.trade_rate * self.syms[i].mult(self.vol_mult);
        let s = &mut self.syms[i];
        let dt = (t - s.hawkes_t).max(0) as f64 * 1e-9;
        let excite = s.hawkes_excite * (-beta * dt).exp();
        let accept = self.rng.gen::<f64>() * s.hawkes_bound < mu + excite;
        s.hawkes_excite = excite;
        s.hawkes_t = t;
        if accept {
            s.hawkes_excite += self.alpha;
            self.trade(i, t);
        }
        self.schedule_trade(i, t);
    }

    fn trade(&mut self, i: usize, t: i64) {
        let s = &self.syms[i];
        let (Some(bb), Some(ba)) = (s.best_bid(), s.best_ask()) else {
            return;
        };
        let mid = (bb + ba) as f64 * 0.5;
        let p_buy = 0.5 + 0.45 * ((s.fair - mid) / 2.0).tanh();
        let buy = self.rng.gen::<f64>() < p_buy;
        let z: f64 = StandardNormal.sample(&mut self.rng);
        let mut want = (s.mean_lots * (0.9 * z - 0.405).exp()).round().max(1.0) as i64;
        // A taker chasing the fair price sweeps through the stale levels.
        let through = if buy {
            (s.fair - s.band).floor() as i64
        } else {
            (s.fair + s.band).ceil() as i64
        };
        let mut levels = 0;
        let ms = t / 1_000_000;
        while levels < 8 {
            let s = &self.syms[i];
            let lvl = if buy {
                s.asks.iter().next().map(|(p, q)| (*p, *q))
            } else {
                s.bids.iter().next_back().map(|(p, q)| (*p, *q))
            };
            let Some((px, q)) = lvl else { break };
            let beyond = if buy { px < through } else { px > through };
            if want <= 0 && !beyond {
                break;
            }
            let side_len = if buy { s.asks.len() } else { s.bids.len() };
            if side_len <= 2 {
                break;
            }
            let take = if beyond { q } else { want.min(q) };
            self.syms[i].set_level(!buy, px, q - take);
            want -= take;
            levels += 1;
            self.emit_trade(i, t, ms, px, take, !buy);
        }
        self.refill(i);
        self.maybe_ticker(i, t);
    }

    fn book_event(&mut self, i: usize, t: i64) {
        let levels = self.levels;
        let r: f64 = self.rng.gen();
        let s = &self.syms[i];
        let (Some(bb), Some(ba)) = (s.best_bid(), s.best_ask()) else {
            self.refill(i);
            return;
        };
        let fair = s.fair;
        // Quotes are stale once the fair price has moved more than the
        // typical per-event jitter through them.
        let band = s.band;
        let stale_bid = bb as f64 > fair + band;
        let stale_ask = (ba as f64) < fair - band;
        let bid_side: bool = self.rng.gen();
        if (stale_bid || stale_ask) && r < 0.5 {
            // Makers pull quotes the fair price has moved through.
            if stale_bid && self.syms[i].bids.len() > 2 {
                self.syms[i].set_level(true, bb, 0);
            }
            if stale_ask && self.syms[i].asks.len() > 2 {
                self.syms[i].set_level(false, ba, 0);
            }
        } else if r < 0.55 {
            // Add near the fair price (possibly improving the top). With a
            // wide spread, half of the adds improve it from inside.
            let e: f64 = Exp1.sample(&mut self.rng);
            let d = (e * 3.0) as i64;
            let spread = ba - bb;
            let improve = spread > 2 && self.rng.gen::<f64>() < 0.5;
            let k = if improve {
                (e * spread as f64 / 4.0) as i64
            } else {
                0
            };
            let q = level_qty(&mut self.rng, self.syms[i].mean_lots, d);
            let s = &mut self.syms[i];
            if bid_side {
                // Quote from the fair price, never through the ask.
                let px = if improve {
                    (bb + 1 + k).min(ba - 1)
                } else {
                    (fair.floor() as i64).min(ba - 1) - d
                };
                if px > 0 {
                    let cur = s.bids.get(&px).copied().unwrap_or(0);
                    s.set_level(true, px, cur + q);
                }
            } else {
                let px = if improve {
                    (ba - 1 - k).max(bb + 1)
                } else {
                    (fair.ceil() as i64)
                        .max(bb + 1)
                        .max(fair.floor() as i64 + 1)
                        + d
                };
                let cur = s.asks.get(&px).copied().unwrap_or(0);
                s.set_level(false, px, cur + q);
            }
        } else {
            // Cancel: partial or full, uniformly over the occupied range,
            // biased deep when the side has more levels than the target.
            let s = &self.syms[i];
            let side = if bid_side { &s.bids } else { &s.asks };
            let n = side.len();
            let deep = n > levels && self.rng.gen::<f64>() < 0.7;
            let pick = if deep {
                if bid_side {
                    side.iter().next().map(|(p, q)| (*p, *q))
                } else {
                    side.iter().next_back().map(|(p, q)| (*p, *q))
                }
            } else {
                let span = self.syms[i].span;
                let off = self.rng.gen_range(0..span);
                if bid_side {
                    side.range(..=bb - off).next_back().map(|(p, q)| (*p, *q))
                } else {
                    side.range(ba + off..).next().map(|(p, q)| (*p, *q))
                }
            };
            if let Some((px, q)) = pick {
                if n > 2 {
                    let full = deep || self.rng.gen::<f64>() < 0.5;
                    let left = if full {
                        0
                    } else {
                        q - (q as f64 * self.rng.gen::<f64>()) as i64
                    };
                    self.syms[i].set_level(bid_side, px, left);
                }
            }
        }
        self.refill(i);
        self.maybe_ticker(i, t);
    }

    /// Keeps each side populated: an almost empty side is refilled at once;
    /// below 90% of the level target a deep level is added every other event.
    fn refill(&mut self, i: usize) {
        let target = self.levels;
        let span = self.syms[i].span;
        for bid in [true, false] {
            for _ in 0..64 {
                let s = &self.syms[i];
                let n = if bid { s.bids.len() } else { s.asks.len() };
                if n >= 8 && (n >= target * 9 / 10 || self.rng.gen::<f64>() < 0.5) {
                    break;
                }
                let d = self.rng.gen_range(0..span);
                let q = level_qty(&mut self.rng, self.syms[i].mean_lots, d);
                let s = &mut self.syms[i];
                let px = if bid {
                    let lim = s.best_ask().map_or(i64::MAX, |a| a - 1);
                    (s.fair.floor() as i64 - d).min(lim)
                } else {
                    let lim = s.best_bid().map_or(1, |b| b + 1);
                    (s.fair.ceil() as i64 + d).max(lim)
                };
                let side = if bid { &s.bids } else { &s.asks };
                if px > 0 && !side.contains_key(&px) {
                    s.set_level(bid, px, q);
                }
                if n >= 8 {
                    break;
                }
            }
        }
    }

    fn push_frame(&mut self, event_ns: i64, frame: String) {
        let jitter: f64 = Exp1.sample(&mut self.rng);
        let lat = (self.latency_ns * (0.5 + 0.5 * jitter)) as i64;
        let recv = (event_ns + lat).max(self.last_recv);
        self.last_recv = recv;
        self.out.push_back(GenRecord {
            recv_ns: recv,
            frame,
        });
    }

    /// Queues the frame rendered into `self.buf` at `event_ns`.
    fn emit(&mut self, event_ns: i64) {
        let frame = self.buf.clone();
        self.push_frame(event_ns, frame);
    }

    fn emit_trade(&mut self, i: usize, t: i64, ms: i64, px: i64, lots: i64, buyer_maker: bool) {
        self.syms[i].trade_id += 1;
        let s = &self.syms[i];
        let op = MarketOp::Trade {
            symbol: &s.spec.name,
            id: s.trade_id,
            px: px * s.spec.tick,
            qty: lots * s.spec.lot,
            buyer_maker,
            trade_ms: ms,
            event_ms: ms + 1,
        };
        self.buf.clear();
        self.venue
            .server
            .render(&op, FIXED8, self.wrap, &mut self.buf);
        self.emit(t);
    }

    fn maybe_ticker(&mut self, i: usize, t: i64) {
        let top = self.syms[i].top();
        if top == self.syms[i].last_top {
            return;
        }
        self.syms[i].last_top = top;
        let s = &self.syms[i];
        let (tick, lot) = (s.spec.tick, s.spec.lot);
        let op = MarketOp::Quote {
            symbol: &s.spec.name,
            event_ms: t / 1_000_000,
            update_id: s.update_id,
            bid_px: top.0 * tick,
            bid_qty: top.1 * lot,
            ask_px: top.2 * tick,
            ask_qty: top.3 * lot,
        };
        self.buf.clear();
        self.venue
            .server
            .render(&op, FIXED8, self.wrap, &mut self.buf);
        self.emit(t);
    }

    fn emit_diff(&mut self, i: usize, t: i64) {
        let s = &mut self.syms[i];
        if s.changed_bids.is_empty() && s.changed_asks.is_empty() {
            return;
        }
        s.changed_bids.sort_unstable_by(|a, b| b.cmp(a));
        s.changed_bids.dedup();
        s.changed_asks.sort_unstable();
        s.changed_asks.dedup();
        // Venues that start books on the stream number their book messages
        // (Bybit `u`: previous + 1): one id per diff there.
        if self.venue.book.start == feeds::book::BookStart::StreamSnapshot {
            s.update_id = s.last_diff_u + 1;
        }
        let (tick, lot) = (s.spec.tick, s.spec.lot);
        for (changed, book, out) in [
            (&s.changed_bids, &s.bids, &mut self.bids_buf),
            (&s.changed_asks, &s.asks, &mut self.asks_buf),
        ] {
            out.clear();
            out.extend(
                changed
                    .iter()
                    .map(|px| (px * tick, book.get(px).copied().unwrap_or(0) * lot)),
            );
        }
        let op = MarketOp::Depth {
            symbol: &s.spec.name,
            first_id: s.last_diff_u + 1,
            last_id: s.update_id,
            prev_last_id: s.last_diff_u,
            event_ms: t / 1_000_000,
            interval_ms: self.depth_interval_ms,
            bids: &self.bids_buf,
            asks: &self.asks_buf,
        };
        self.buf.clear();
        self.venue
            .server
            .render(&op, FIXED8, self.wrap, &mut self.buf);
        s.changed_bids.clear();
        s.changed_asks.clear();
        s.last_diff_u = s.update_id;
        s.diffs += 1;
        if !s.snapshot_done && self.inline_after.is_some_and(|n| s.diffs >= n) {
            s.snapshot_pending = true;
        }
        self.emit(t);
    }
}

/// Generator prices and sizes: units of `1e-8` (Binance's 8 decimals).
const FIXED8: Scale = Scale {
    price_decimals: 8,
    qty_decimals: 8,
};

/// Levels spread over at least three ticks per level and at least 20 s of
/// calm-regime price movement, so the book outlives ordinary moves.
fn book_span(levels: usize, sigma: f64) -> i64 {
    ((levels * 3) as f64).max(20.0 * sigma) as i64
}

fn level_qty(rng: &mut SmallRng, mean_lots: f64, depth: i64) -> i64 {
    let z: f64 = StandardNormal.sample(rng);
    let scale = mean_lots * (1.0 + (depth as f64 / 50.0).min(10.0));
    (scale * (1.0 * z - 0.5).exp()).round().max(1.0) as i64
}

fn render_snapshot(
    venue: &VenueDef,
    out: &mut String,
    s: &SymState,
    limit: usize,
    with_symbol: bool,
    rest: bool,
) {
    let (tick, lot) = (s.spec.tick, s.spec.lot);
    let bids: Vec<(i64, i64)> = s
        .bids
        .iter()
        .rev()
        .take(limit)
        .map(|(p, q)| (p * tick, q * lot))
        .collect();
    let asks: Vec<(i64, i64)> = s
        .asks
        .iter()
        .take(limit)
        .map(|(p, q)| (p * tick, q * lot))
        .collect();
    let op = MarketOp::Snapshot {
        symbol: &s.spec.name,
        rest,
        name_symbol: with_symbol,
        last_update_id: s.update_id,
        bids: &bids,
        asks: &asks,
    };
    venue.server.render(&op, FIXED8, false, out);
}

impl Iterator for Generator {
    type Item = GenRecord;

    fn next(&mut self) -> Option<GenRecord> {
        while self.out.is_empty() {
            if !self.step() {
                return None;
            }
        }
        self.out.pop_front()
    }
}

/// Writes a generated session as a capture file (gzip when `path` ends in
/// `.gz`): header `# venue=binance-spot symbols=A,B source=wiresignal-generator
/// seed=N`, then `<recv_ns> <frame>` lines. One REST snapshot record per symbol
/// follows its third diff unless `cfg.inline_snapshot_after_diffs` says
/// otherwise. With several symbols the snapshot records carry a `"symbol"`
/// field (a bare REST body names no symbol). Returns the number of records.
pub fn write_capture(path: &Path, cfg: &GenConfig) -> io::Result<u64> {
    let mut cfg = cfg.clone();
    if cfg.inline_snapshot_after_diffs.is_none() {
        cfg.inline_snapshot_after_diffs = Some(3);
    }
    let file = BufWriter::with_capacity(1 << 16, File::create(path)?);
    let gz = path.extension().is_some_and(|e| e == "gz");
    let mut w: Box<dyn Write> = if gz {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let names: Vec<&str> = cfg.symbols.iter().map(|s| s.name.as_str()).collect();
    writeln!(
        w,
        "# venue=binance-spot symbols={} source=wiresignal-generator seed={}",
        names.join(","),
        cfg.seed
    )?;
    let mut n = 0u64;
    let mut ib = itoa::Buffer::new();
    for rec in Generator::new(cfg) {
        w.write_all(ib.format(rec.recv_ns).as_bytes())?;
        w.write_all(b" ")?;
        w.write_all(rec.frame.as_bytes())?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    drop(w);
    Ok(n)
}
