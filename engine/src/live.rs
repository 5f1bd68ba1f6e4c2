//! `engine run`: live feeds (a venue or the simulator) into the pipeline.
//!
//! One receiver thread per `[[feeds]]` entry, pinned, each running a tokio
//! current-thread runtime with the feed loop of [`crate::net::feed`]: the
//! WebSocket, REST depth snapshots, pings, reconnects with backoff.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feeds::event::InstrumentInfo;
use feeds::venue::{ConnectionPlan, FrameKind, Heartbeat, Recovery, VenueAdapter};

use crate::app::{make_adapter, start_pipeline_with, Output, RunReport};
use crate::config::{Config, FeedConfig};
use crate::net::budget::Budget;
use crate::net::feed::{run_feeds, FeedHandler, FeedOptions, SnapshotRequests};
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

/// What the connections of one feed share on its receiver thread.
struct Shared {
    ingest: Ingest,
    stop: Arc<AtomicBool>,
}

/// The handler of one connection of a feed.
struct Handler {
    shared: Rc<RefCell<Shared>>,
    plan: ConnectionPlan,
    /// The last frame was market data (for the data watchdog).
    data: bool,
    /// The last snapshot was a book.
    usable: bool,
    /// The venue announced it will close the connection.
    closing: bool,
    /// The venue's REST budget (its use is exported).
    rest_budget: Option<Arc<Budget>>,
}

impl FeedHandler for Handler {
    fn on_connected(&mut self) {
        let s = &self.shared.borrow().ingest.stats;
        s.connects.inc();
        s.connected.set(s.connected.get() + 1);
    }

    fn on_compression(&mut self, agreed: bool) {
        let s = &self.shared.borrow().ingest.stats;
        s.compressed.set(i64::from(agreed));
        if agreed {
            s.compressed_connects.inc();
        } else {
            eprintln!(
                "feed{}: the server declined permessage-deflate; running uncompressed",
                connection_label(&self.plan)
            );
        }
    }

    fn on_disconnected(&mut self, reason: &str) {
        let mut sh = self.shared.borrow_mut();
        let s = &sh.ingest.stats;
        s.disconnects.inc();
        s.connected.set((s.connected.get() - 1).max(0));
        if reason.starts_with("data watchdog") {
            s.watchdog_reconnects.inc();
        }
        if !sh.stop.load(Ordering::Relaxed) {
            s.disconnect_reasons[crate::pipeline::stats::disconnect_reason(reason)].inc();
        }
        if sh.stop.load(Ordering::Relaxed) {
            // Shutting down: keep the final books for the report.
            return;
        }
        let label = connection_label(&self.plan);
        if self.plan.depth_symbols.is_empty() {
            eprintln!("feed disconnected{label}: {reason}");
        } else {
            eprintln!("feed disconnected{label}: {reason}; books resync after reconnect");
            sh.ingest.reset_symbols(&self.plan.depth_symbols);
        }
    }

    #[inline]
    fn on_frame(&mut self, recv_ns: i64, frame: &mut [u8]) {
        let t = mono_ns();
        let kind = self
            .shared
            .borrow_mut()
            .ingest
            .on_frame(recv_ns, frame, t, &|| "live frame".to_owned());
        self.data = matches!(
            kind,
            Some(FrameKind::Trade | FrameKind::Quote | FrameKind::Depth | FrameKind::Snapshot)
        );
        match kind {
            Some(FrameKind::Rejected(id)) => self.rejected(id),
            Some(FrameKind::Closing) => self.closing = true,
            _ => {}
        }
    }

    fn frame_was_data(&self) -> bool {
        self.data
    }

    fn take_closing_notice(&mut self) -> bool {
        std::mem::take(&mut self.closing)
    }

    fn on_rollover(&mut self) {
        self.shared.borrow().ingest.stats.rollovers.inc();
        eprintln!(
            "feed rolled over{}: the replacement took over, books kept",
            connection_label(&self.plan)
        );
    }

    fn on_snapshot(&mut self, symbol: &str, recv_ns: i64, body: &mut [u8]) {
        let t = mono_ns();
        let mut sh = self.shared.borrow_mut();
        self.usable = sh.ingest.on_snapshot(symbol, recv_ns, body, t);
        sh.ingest.stats.recovery_results[if self.usable { 0 } else { 2 }].inc();
        if let Some(b) = &self.rest_budget {
            let used = i64::try_from(b.used()).unwrap_or(i64::MAX);
            sh.ingest.stats.rest_weight_used.set(used);
        }
    }

    fn snapshot_was_usable(&self) -> bool {
        self.usable
    }

    fn on_snapshot_error(&mut self, symbol: &str, err: &str) {
        let sh = self.shared.borrow();
        sh.ingest.stats.snapshot_errors.inc();
        if !err.starts_with("not a book") {
            sh.ingest.stats.recovery_results[1].inc();
        }
        drop(sh);
        eprintln!("snapshot {symbol} failed: {err}");
    }

    fn on_connect_error(&mut self, err: &str) {
        eprintln!("connect failed{}: {err}", connection_label(&self.plan));
    }

    fn should_stop(&mut self) -> bool {
        self.shared.borrow().stop.load(Ordering::Relaxed)
    }

    #[inline]
    fn drain_staged(&mut self) -> bool {
        self.shared.borrow_mut().ingest.drain_staged()
    }

    #[inline]
    fn begin_batch(&mut self) {
        self.shared.borrow_mut().ingest.begin_batch();
    }

    #[inline]
    fn end_batch(&mut self) {
        self.shared.borrow_mut().ingest.end_batch();
    }
}

impl Handler {
    /// The venue refused request `id`: name its streams.
    #[cold]
    fn rejected(&self, id: u64) {
        let streams = self
            .plan
            .subscribe
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| "(unknown request)".to_owned(), |s| s.streams.join(", "));
        eprintln!(
            "subscription rejected by the venue{}: request {id}: {streams}",
            connection_label(&self.plan)
        );
    }
}

fn connection_label(plan: &ConnectionPlan) -> String {
    if plan.label.is_empty() {
        String::new()
    } else {
        format!(" ({})", plan.label)
    }
}

/// Routes a signal thread's resync requests to the connection carrying the
/// instrument's book.
struct FeedResync {
    routes: Vec<(u16, String, Arc<SnapshotRequests>)>,
}

impl FeedResync {
    fn route(&self, info: &InstrumentInfo) -> Option<(&String, &Arc<SnapshotRequests>)> {
        self.routes
            .iter()
            .find(|(v, s, _)| *v == info.venue && s == info.symbol.as_str())
            .map(|(_, s, r)| (s, r))
    }
}

impl ResyncHook for FeedResync {
    fn request(&mut self, info: &InstrumentInfo) {
        if let Some((sym, req)) = self.route(info) {
            req.request(sym);
        }
    }

    fn bootstrap(&mut self, info: &InstrumentInfo) {
        if let Some((sym, req)) = self.route(info) {
            req.request_fetch(sym);
        }
    }
}

/// The planned rollover of a venue whose connections live `lifetime`:
/// five minutes before the end (a tenth of it for short lifetimes); zero
/// for venues that never close connections.
fn rollover_lead(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(Duration::from_secs(300).min(lifetime / 10))
}

/// The request budgets of each venue of one run, shared by all its feeds
/// and connections: connection attempts at 80 % of the venue's limit, REST
/// weight at half of it.
#[derive(Debug, Default)]
pub(crate) struct Budgets(HashMap<&'static str, (Arc<Budget>, Arc<Budget>)>);

impl Budgets {
    fn of(&mut self, def: &'static feeds::venue::VenueDef) -> (Arc<Budget>, Arc<Budget>) {
        let p = &def.protocol;
        self.0
            .entry(def.name)
            .or_insert_with(|| {
                (
                    Arc::new(Budget::share_of(p.max_connects, 0.8, p.connect_window)),
                    Arc::new(Budget::share_of(
                        p.rest_weight_per_min,
                        0.5,
                        Duration::from_secs(60),
                    )),
                )
            })
            .clone()
    }
}

/// The connections of `feed` with their options (venue protocol applied,
/// the venue's budgets from `budgets`).
pub(crate) fn feed_connections(
    feed: &FeedConfig,
    adapter: &dyn VenueAdapter,
    budgets: &mut Budgets,
) -> std::io::Result<Vec<(ConnectionPlan, FeedOptions)>> {
    let (_, def) = feeds::venue::venue_by_name(&feed.venue)
        .ok_or_else(|| std::io::Error::other(format!("unknown venue {:?}", feed.venue)))?;
    let p = def.protocol;
    let (connect_budget, rest_budget) = budgets.of(def);
    let plans = adapter.connections(&feed.ws_url, &feed.symbols);
    if plans.is_empty() {
        return Err(std::io::Error::other(format!(
            "feed of {}: no stream to subscribe for {:?}",
            feed.venue, feed.symbols
        )));
    }
    let paths: HashMap<String, String> = feed
        .symbols
        .iter()
        .map(|s| (s.clone(), adapter.snapshot_path(s, feed.snapshot_limit)))
        .collect();
    let paths = Arc::new(paths);
    Ok(plans
        .into_iter()
        .map(|plan| {
            let mut o = FeedOptions::new(&plan.url, &feed.rest_url);
            o.subscribe = plan.subscribe.iter().map(|s| s.message.clone()).collect();
            o.data_timeout = feed.data_timeout;
            o.compression = feed.compression;
            o.rollover_after = feed
                .rollover_after
                .unwrap_or_else(|| rollover_lead(p.connection_lifetime));
            o.connect_budget = Some(connect_budget.clone());
            o.rest_budget = Some(rest_budget.clone());
            o.snapshot_weight = adapter.snapshot_weight(feed.snapshot_limit);
            // 20 % under the venue's message rate.
            o.send_interval =
                Duration::from_secs_f64(1.25 / f64::from(p.max_client_messages_per_s.max(1)));
            match p.recovery {
                Recovery::RestSnapshot => o.snapshot_symbols = plan.depth_symbols.clone(),
                // The venue sends a snapshot on subscribe: nothing to fetch
                // on connect; a lost book resubscribes.
                Recovery::Resubscribe => {
                    o.resubscribe = plan
                        .depth_symbols
                        .iter()
                        .map(|s| (s.clone(), adapter.resubscribe(&plan, s)))
                        .collect();
                }
            }
            let paths = paths.clone();
            o.snapshot_path = Arc::new(move |s: &str| paths.get(s).cloned().unwrap_or_default());
            match p.heartbeat {
                Heartbeat::WsPing { every } => o.ping_interval = every,
                Heartbeat::Text { message, every } => {
                    o.ping_interval = every;
                    o.ping_text = Some(plan.ping_text.unwrap_or(message).to_owned());
                }
            }
            (plan, o)
        })
        .collect())
}

/// Whether feed `i` runs busy-polled: `receiver_mode = "busy_poll"` and a
/// feed the busy loop supports (else a warning, and the epoll loop).
fn busy_poll(cfg: &Config, i: usize, conns: &[(ConnectionPlan, FeedOptions)]) -> bool {
    if cfg.engine.receiver_mode != crate::config::ReceiverMode::BusyPoll {
        return false;
    }
    let why = match conns {
        [(_, opts)] => crate::net::busy::unsupported(opts),
        _ => Some(format!(
            "{} connections (the busy loop drives one)",
            conns.len()
        )),
    };
    match why {
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
    // Per feed: its adapter and connections, each connection with its own
    // recovery queue; a symbol's resync requests go to the connection that
    // carries its book.
    let mut planned = Vec::new();
    let mut routes = Vec::new();
    let mut budgets = Budgets::default();
    for feed in &cfg.feeds {
        let adapter = make_adapter(cfg, &feed.venue, &ids, Some(&feed.symbols))?;
        let (venue, _) = feeds::venue::venue_by_name(&feed.venue)
            .ok_or_else(|| std::io::Error::other(format!("unknown venue {:?}", feed.venue)))?;
        let conns: Vec<(ConnectionPlan, FeedOptions, Arc<SnapshotRequests>)> =
            feed_connections(feed, adapter.as_ref(), &mut budgets)?
                .into_iter()
                .map(|(plan, opts)| (plan, opts, Arc::new(SnapshotRequests::new())))
                .collect();
        for (plan, _, req) in &conns {
            for s in &plan.depth_symbols {
                routes.push((venue, s.clone(), req.clone()));
            }
        }
        planned.push((adapter, conns));
    }
    let resync: crate::pipeline::runtime::ResyncFactory = Box::new(move || {
        Box::new(FeedResync {
            routes: routes.clone(),
        }) as Box<dyn ResyncHook>
    });
    // Only a tick (the demo's table) reads the live view.
    let live_view = when.tick.is_some();
    let mut pipeline =
        start_pipeline_with(cfg, cfg.feeds.len(), output, Some(resync), None, live_view)?;
    let registry = pipeline.registry.clone();
    let _metrics = crate::metrics::serve(cfg, &registry, crate::metrics::Mode::Live)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    let mut threads = Vec::new();
    let feeds_planned = cfg.feeds.iter().zip(planned).zip(pipeline.txs.drain(..));
    for (i, ((feed, (adapter, conns)), tx)) in feeds_planned.enumerate() {
        let ingest = Ingest::new(adapter, tx, &registry, &format!("{}#{i}", feed.venue));
        ingest.stats.connections.set(conns.len() as i64);
        let stop = stop.clone();
        let shutdown = shutdown_rx.clone();
        let cores = pipeline.cores.clone();
        let plain: Vec<(ConnectionPlan, FeedOptions)> = conns
            .iter()
            .map(|(p, o, _)| (p.clone(), o.clone()))
            .collect();
        let busy = busy_poll(cfg, i, &plain);
        threads.push(
            std::thread::Builder::new()
                .name(format!("feed-{i}"))
                .spawn(move || {
                    cores.pin_current("feed receiver");
                    let shared = Rc::new(RefCell::new(Shared { ingest, stop }));
                    let mut conns: Vec<(FeedOptions, Arc<SnapshotRequests>, Handler)> = conns
                        .into_iter()
                        .map(|(plan, mut opts, req)| {
                            let wire = Arc::clone(&shared.borrow().ingest.stats.wire_bytes);
                            opts.wire_bytes = Some(wire);
                            let shared = shared.clone();
                            let handler = Handler {
                                shared,
                                plan,
                                data: false,
                                usable: false,
                                closing: false,
                                rest_budget: opts.rest_budget.clone(),
                            };
                            (opts, req, handler)
                        })
                        .collect();
                    if busy {
                        if let Some((opts, requests, handler)) = conns.first_mut() {
                            crate::net::busy::run_feed_busy(opts, requests, handler);
                        }
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
                    rt.block_on(run_feeds(conns, shutdown));
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
    let stats = report::stats_json(&registry, started.elapsed(), rows);
    Ok(RunReport {
        latency_table: report::latency_table(&stats),
        stats,
    })
}
