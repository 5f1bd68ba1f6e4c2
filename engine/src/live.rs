//! `engine run`: live feeds (a venue or the simulator) into the pipeline.
//!
//! One receiver thread per `[[feeds]]` entry, pinned, each running a tokio
//! current-thread runtime with the feed loop of [`crate::net::feed`]: the
//! WebSocket, REST depth snapshots, pings, reconnects with backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feeds::event::InstrumentInfo;

use crate::app::{make_adapter, start_pipeline, Output, RunReport};
use crate::config::{Config, FeedConfig};
use crate::net::feed::{run_feed, FeedHandler, FeedOptions, SnapshotRequests};
use crate::pipeline::clock::mono_ns;
use crate::pipeline::ingest::Ingest;
use crate::pipeline::processor::ResyncHook;
use crate::pipeline::runtime::Pipeline;
use crate::report;

/// A stop condition checked every 20 ms.
pub type DoneFn<'a> = Box<dyn Fn(&Pipeline) -> bool + 'a>;
/// A periodic callback with the running pipeline.
pub type TickFn<'a> = Box<dyn FnMut(&Pipeline) + 'a>;

/// When a live run ends.
pub struct StopWhen<'a> {
    /// Wall-clock limit.
    pub duration: Option<Duration>,
    /// The global stop flag (Ctrl-C).
    pub stop: &'a AtomicBool,
    /// Extra condition checked every 20 ms (tests: "the simulator is done").
    pub done: Option<DoneFn<'a>>,
    /// Called every 20 ms with the running pipeline (live view).
    pub tick: Option<TickFn<'a>>,
}

struct Handler {
    ingest: Ingest,
    stop: Arc<AtomicBool>,
}

impl FeedHandler for Handler {
    fn on_connected(&mut self) {
        self.ingest.stats.connects.inc();
        self.ingest.stats.connected.set(1);
    }

    fn on_disconnected(&mut self, reason: &str) {
        self.ingest.stats.disconnects.inc();
        self.ingest.stats.connected.set(0);
        if self.stop.load(Ordering::Relaxed) {
            // Shutting down: keep the final books for the report.
            return;
        }
        eprintln!("feed disconnected: {reason}; books resync after reconnect");
        self.ingest.reset_all();
    }

    #[inline]
    fn on_frame(&mut self, recv_ns: i64, frame: &mut [u8]) {
        let t = mono_ns();
        self.ingest
            .on_frame(recv_ns, frame, t, &|| "live frame".to_owned());
    }

    fn on_snapshot(&mut self, symbol: &str, recv_ns: i64, body: &mut [u8]) {
        let t = mono_ns();
        self.ingest.on_snapshot(symbol, recv_ns, body, t);
    }

    fn on_snapshot_error(&mut self, symbol: &str, err: &str) {
        self.ingest.stats.snapshot_errors.inc();
        eprintln!("snapshot {symbol} failed: {err}");
    }

    fn on_connect_error(&mut self, err: &str) {
        eprintln!("connect failed: {err}");
    }

    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Routes a signal thread's resync requests to the feed serving the symbol.
struct FeedResync {
    routes: Vec<(u16, String, Arc<SnapshotRequests>)>,
}

impl ResyncHook for FeedResync {
    fn request(&mut self, info: &InstrumentInfo) {
        if let Some((_, sym, req)) = self
            .routes
            .iter()
            .find(|(v, s, _)| *v == info.venue && s == info.symbol.as_str())
        {
            req.request(sym);
        }
    }
}

pub(crate) fn feed_options(
    feed: &FeedConfig,
    adapter: &dyn feeds::venue::VenueAdapter,
) -> FeedOptions {
    let streams = adapter.streams(&feed.symbols);
    let paths: HashMap<String, String> = feed
        .symbols
        .iter()
        .map(|s| (s.clone(), adapter.snapshot_path(s, feed.snapshot_limit)))
        .collect();
    FeedOptions {
        ws_url: adapter.ws_url(&feed.ws_url, &streams),
        subscribe: None,
        rest_base: feed.rest_url.clone(),
        snapshot_symbols: feed.symbols.clone(),
        snapshot_path: Arc::new(move |s: &str| paths.get(s).cloned().unwrap_or_default()),
        backoff: (Duration::from_millis(100), Duration::from_secs(5), 0.3),
        connect_timeout: Duration::from_secs(10),
        ping_interval: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(60),
        http_timeout: Duration::from_secs(10),
        max_reconnects: None,
    }
}

/// Whether feed `i` runs busy-polled: `receiver_mode = "busy_poll"` and a
/// feed the busy loop supports (else a warning, and the epoll loop).
fn busy_poll(cfg: &Config, i: usize, opts: &FeedOptions) -> bool {
    if cfg.engine.receiver_mode != crate::config::ReceiverMode::BusyPoll {
        return false;
    }
    match crate::net::busy::unsupported(opts) {
        None => true,
        Some(why) => {
            eprintln!("warning: feeds[{i}] falls back to receiver_mode \"epoll\": {why}");
            false
        }
    }
}

/// Runs the configured feeds until `when` says stop; returns the stats.
pub fn run(cfg: &Config, output: Output, mut when: StopWhen<'_>) -> std::io::Result<RunReport> {
    if cfg.feeds.is_empty() {
        return Err(std::io::Error::other("no [[feeds]] in the configuration"));
    }
    let started = Instant::now();
    let ids = Arc::new(AtomicU32::new(0));
    let requests: Vec<Arc<SnapshotRequests>> = cfg
        .feeds
        .iter()
        .map(|_| Arc::new(SnapshotRequests::new()))
        .collect();
    let mut routes = Vec::new();
    for (feed, req) in cfg.feeds.iter().zip(&requests) {
        let (venue, _) = feeds::venue::venue_by_name(&feed.venue)
            .ok_or_else(|| std::io::Error::other(format!("unknown venue {:?}", feed.venue)))?;
        for s in &feed.symbols {
            routes.push((venue, s.clone(), req.clone()));
        }
    }
    let resync: crate::pipeline::runtime::ResyncFactory = Box::new(move || {
        Box::new(FeedResync {
            routes: routes.clone(),
        }) as Box<dyn ResyncHook>
    });
    let mut pipeline = start_pipeline(cfg, cfg.feeds.len(), output, Some(resync))?;
    let registry = pipeline.registry.clone();
    let _metrics = crate::metrics::serve(cfg, &registry, crate::metrics::Mode::Live)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    let mut threads = Vec::new();
    for (i, (feed, tx)) in cfg.feeds.iter().zip(pipeline.txs.drain(..)).enumerate() {
        let adapter = make_adapter(cfg, &feed.venue, &ids)?;
        let opts = feed_options(feed, adapter.as_ref());
        let ingest = Ingest::new(
            adapter,
            tx,
            registry.clone(),
            &format!("{}#{i}", feed.venue),
        );
        let requests = requests[i].clone();
        let stop = stop.clone();
        let shutdown = shutdown_rx.clone();
        let cores = pipeline.cores.clone();
        let busy = busy_poll(cfg, i, &opts);
        threads.push(
            std::thread::Builder::new()
                .name(format!("feed-{i}"))
                .spawn(move || {
                    cores.pin_current("feed receiver");
                    if busy {
                        let mut handler = Handler { ingest, stop };
                        crate::net::busy::run_feed_busy(&opts, &requests, &mut handler);
                        return;
                    }
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            eprintln!("cannot start the feed runtime: {e}");
                            return;
                        }
                    };
                    let mut handler = Handler { ingest, stop };
                    rt.block_on(run_feed(opts, requests, &mut handler, shutdown));
                })?,
        );
    }

    loop {
        if when.stop.load(Ordering::Relaxed)
            || when.duration.is_some_and(|d| started.elapsed() >= d)
            || when.done.as_ref().is_some_and(|f| f(&pipeline))
        {
            break;
        }
        if let Some(tick) = when.tick.as_mut() {
            tick(&pipeline);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    let rows = pipeline.finish()?;
    Ok(RunReport {
        stats: report::stats_json(&registry, started.elapsed(), rows),
        latency_table: report::latency_table(&registry),
    })
}
