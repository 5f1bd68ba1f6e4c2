//! Wiring: configuration → adapters, pipeline and sources. Every subcommand
//! of the binary is a function here, callable from tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feeds::event::{InstrumentInfo, Scale, TradeKind};
use feeds::instruments::{InstrumentSpec, Instruments};
use feeds::venue::{venue_by_name, VenueAdapter};
use signals::QuoteSource;

use crate::config::{Config, Speed};
use crate::pipeline::ingest::Ingest;
use crate::pipeline::processor::{InstrumentRules, ProcessorConfig, ResyncHook};
use crate::pipeline::runtime::{CorePlan, Pipeline, PipelineConfig, ResyncFactory};
use crate::pipeline::sink::RowCollector;
use crate::replay::{ReplayDefaults, ReplayInput};
use crate::report;

/// Where signal rows go.
pub enum Output {
    /// Discard (count only).
    None,
    /// Standard output.
    Stdout,
    /// A file.
    File(PathBuf),
    /// Any writer (tests).
    Writer(Box<dyn Write + Send>),
}

impl Output {
    /// `-` = stdout, else a file path.
    #[must_use]
    pub fn from_arg(s: &str) -> Self {
        if s == "-" {
            Output::Stdout
        } else {
            Output::File(PathBuf::from(s))
        }
    }

    fn open(self) -> std::io::Result<Option<Box<dyn Write + Send>>> {
        Ok(match self {
            Output::None => None,
            Output::Stdout => Some(Box::new(std::io::stdout())),
            Output::File(p) => {
                Some(Box::new(std::fs::File::create(&p).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
                })?))
            }
            Output::Writer(w) => Some(w),
        })
    }
}

/// The result of a run: the stats JSON.
pub struct RunReport {
    /// Stats (see README).
    pub stats: serde_json::Value,
    /// Latency table for humans.
    pub latency_table: String,
}

/// Builds a venue adapter for `venue` with the configured instruments.
///
/// State from the wire stays bounded: a live feed's adapter accepts only
/// its `requested` symbols (when no `[[instruments]]` are configured), a
/// replay's at most `[engine] max_instruments` of them.
pub fn make_adapter(
    cfg: &Config,
    venue: &str,
    ids: &Arc<AtomicU32>,
    requested: Option<&[String]>,
) -> std::io::Result<Box<dyn VenueAdapter>> {
    let (index, def) = venue_by_name(venue)
        .ok_or_else(|| std::io::Error::other(format!("unknown venue {venue:?}")))?;
    let configured = cfg
        .instruments
        .iter()
        .filter(|i| i.venue == def.name)
        .map(|i| InstrumentSpec {
            symbol: i.symbol,
            scale: i.scale,
            trade_source: i.trade_source,
        })
        .collect();
    let mut instruments = Instruments::new(index, configured, Scale::default(), ids.clone());
    instruments.limit(cfg.engine.max_instruments);
    if let Some(symbols) = requested {
        instruments.restrict(symbols);
    }
    Ok((def.new)(index, instruments))
}

/// Per-thread processor configuration from the config.
pub fn processor_factory(
    cfg: &Config,
    status_rows: bool,
) -> Box<dyn Fn() -> ProcessorConfig + Send + Sync> {
    let signals = cfg.signals.clone();
    let instruments = cfg.instruments.clone();
    let e = cfg.engine.clone();
    Box::new(move || {
        let instruments = instruments.clone();
        ProcessorConfig {
            signals: signals.clone(),
            rules: Box::new(move |info: &InstrumentInfo| {
                let def = feeds::venue::venue_at(info.venue);
                let venue = def.map_or("", |v| v.name);
                // The venue's L1 source unless configured (Binance:
                // bookTicker; venues without a tick-by-tick BBO: the book).
                let quotes = def.map_or(QuoteSource::BookTicker, |v| v.quote_source);
                instruments
                    .iter()
                    .find(|i| i.symbol == info.symbol && i.venue == venue)
                    .map_or(
                        InstrumentRules {
                            trade_source: TradeKind::Trade,
                            quote_source: quotes,
                        },
                        |i| InstrumentRules {
                            trade_source: i.trade_source,
                            quote_source: i.quote_source.unwrap_or(quotes),
                        },
                    )
            }),
            window_capacity: e.window_capacity,
            book_capacity: e.book_capacity,
            max_instruments: e.max_instruments,
            status_rows,
        }
    })
}

/// Starts a pipeline for `receivers` receivers writing rows to `output`,
/// then to `collector` (`--parquet`) and the `[[sinks]]`; `live_view`:
/// keep the latest values for [`Pipeline::view`] (the demo's table).
pub fn start_pipeline_with(
    cfg: &Config,
    receivers: usize,
    output: Output,
    resync: Option<ResyncFactory>,
    collector: Option<Box<dyn RowCollector>>,
    live_view: bool,
) -> std::io::Result<Pipeline> {
    let outputs: Arc<[String]> = crate::pipeline::processor::Processor::<
        fn(crate::pipeline::processor::SinkMsg),
    >::output_names(&cfg.signals)
    .into();
    let engine = crate::sinks::engine_name(cfg.output.engine.as_deref());
    let (mut collectors, mut sinks) = crate::sinks::open(&cfg.sinks, &outputs, &engine)?;
    if let Some(c) = collector {
        collectors.insert(0, c);
    }
    // The WebSocket gateway rides the metrics listener: a sink like the
    // others (a `kind = "websocket"` entry names it and sizes its ring).
    let gateway = match cfg.metrics.addr {
        Some(_) => {
            let (name, ring) = crate::sinks::websocket(&cfg.sinks).map_or_else(
                || ("gateway".to_owned(), crate::sinks::DEFAULT_RING),
                |(s, _)| (s.name.clone(), s.ring_capacity),
            );
            let hub = crate::metrics::gateway::Hub::new(outputs.clone());
            let fan = crate::sinks::FanOut::start(&name, ring, &outputs, Box::new(hub.worker()))?;
            sinks.push((name, fan.counters()));
            collectors.push(Box::new(fan));
            Some(hub)
        }
        None => {
            if let Some((s, _)) = crate::sinks::websocket(&cfg.sinks) {
                return Err(std::io::Error::other(format!(
                    "sink {}: the WebSocket gateway needs a listener: set its `listen`, \
                     [metrics] addr or --metrics-addr",
                    s.name
                )));
            }
            None
        }
    };
    let live = resync.is_some();
    // `[[sinks]]` entries (and the gateway) take rows to consumers that
    // want them at once; `--out`, `--parquet` and the live view do not.
    let latency_sinks = !sinks.is_empty();
    let pipeline = Pipeline::start(PipelineConfig {
        receivers,
        signal_threads: cfg.engine.signal_threads,
        ring_capacity: cfg.engine.ring_capacity,
        // Live runs mark outages for consumers; a replay's stream stays
        // exactly SIGNALS.md's unless asked.
        processor: processor_factory(cfg, cfg.output.status_rows.unwrap_or(resync.is_some())),
        outputs,
        output: output.open()?,
        collectors,
        live_view,
        resync,
        cores: CorePlan::new(cfg.engine.pin_cores.unwrap_or_else(|| {
            let inline = cfg.engine.signal_placement == crate::config::SignalPlacement::Inline;
            let pinned = receivers + if inline { 0 } else { cfg.engine.signal_threads };
            CorePlan::pays(CorePlan::machine_cores(), pinned)
        })),
        busy_poll: cfg.engine.receiver_mode == crate::config::ReceiverMode::BusyPoll,
        inline: cfg.engine.signal_placement == crate::config::SignalPlacement::Inline,
        adaptive: cfg.engine.signal_placement == crate::config::SignalPlacement::Adaptive,
        // Replays block: their output stays exactly the capture's.
        overload: if live {
            cfg.engine.overload
        } else {
            crate::pipeline::overload::Overload::Block
        },
        stage_capacity: cfg.engine.stage_capacity,
        signal_delay_ns: cfg.engine.debug_signal_delay_ns,
        signal_sched: cfg.engine.signal_thread_sched,
        // Rows only for the file and the live view: the sink may sleep ~1 ms
        // between frames; bots and dashboards get them once per batch.
        sink_wake: std::time::Duration::from_micros(
            cfg.engine
                .sink_wake_us
                .unwrap_or(if latency_sinks { 0 } else { 1000 }),
        ),
    });
    for (name, counters) in sinks {
        pipeline.registry.add_sink(name, counters);
    }
    if let Some(hub) = gateway {
        pipeline.registry.set_gateway(hub);
    }
    Ok(pipeline)
}

/// `engine replay`: captures → pipeline → signals, no socket. Header-less
/// captures are taken as `[engine] venue` with no symbol list.
pub fn replay(
    cfg: &Config,
    paths: &[PathBuf],
    speed: Speed,
    output: Output,
    stop: &AtomicBool,
) -> std::io::Result<RunReport> {
    let defaults = ReplayDefaults {
        venue: cfg.engine.venue.clone(),
        symbols: Vec::new(),
    };
    replay_with(cfg, paths, &defaults, speed, output, None, stop)
}

/// [`replay`] with the venue and symbols of header-less captures (Tardis
/// raw files: `--venue`, `--symbols`), also feeding the rows to `collector`
/// (`--parquet`, see [`crate::parquet`]).
pub fn replay_with(
    cfg: &Config,
    paths: &[PathBuf],
    defaults: &ReplayDefaults,
    speed: Speed,
    output: Output,
    collector: Option<Box<dyn RowCollector>>,
    stop: &AtomicBool,
) -> std::io::Result<RunReport> {
    let started = Instant::now();
    // A replay reads its frames one by one: no receive batch, no socket to
    // fall behind on. The adaptive placement then runs every frame on the
    // reader (a lone frame, an idle signal thread), which is inline minus
    // the signal thread it starts and the lock and ring check per frame
    // (~130 instructions a message). Not with `debug_signal_delay_ns`: a
    // slowed signal stage is there to test the hand-off itself.
    let mut cfg = cfg.clone();
    if cfg.engine.signal_placement == crate::config::SignalPlacement::Adaptive
        && cfg.engine.debug_signal_delay_ns == 0
    {
        cfg.engine.signal_placement = crate::config::SignalPlacement::Inline;
    }
    let cfg = &cfg;
    let inputs = crate::replay::resolve_inputs(paths, defaults)?;
    // One adapter per venue, shared by that venue's files (pieces of one
    // recording keep their instruments and books).
    let mut venues: Vec<u16> = Vec::new();
    for inp in &inputs {
        if !venues.contains(&inp.venue) {
            venues.push(inp.venue);
        }
    }
    let ids = Arc::new(AtomicU32::new(0));
    let adapters = venues
        .iter()
        .map(|&v| {
            let name = feeds::venue::venue_at(v).map_or("", |d| d.name);
            make_adapter(cfg, name, &ids, None)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let feed_name = venues
        .iter()
        .filter_map(|&v| feeds::venue::venue_at(v).map(|d| d.name))
        .collect::<Vec<_>>()
        .join("+");
    let adapter_of = |inp: &ReplayInput| venues.iter().position(|&v| v == inp.venue).unwrap_or(0);
    let mut pipeline = start_pipeline_with(cfg, 1, output, None, collector, false)?;
    let registry = pipeline.registry.clone();
    let _metrics = crate::metrics::serve(cfg, &registry, crate::metrics::Mode::Replay)?;
    let tx = pipeline.txs.remove(0);
    let cores = pipeline.cores.clone();
    let res = std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("replay".into())
            .spawn_scoped(s, || {
                cores.pin_current("replay reader");
                let mut ingest = Ingest::with_adapters(adapters, tx, &registry, &feed_name);
                crate::replay::replay_inputs(&inputs, &adapter_of, speed, &mut ingest, stop)
            })?;
        reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("replay thread panicked")))
    });
    let rows = pipeline.finish()?;
    res?;
    let elapsed = started.elapsed();
    let stats = report::stats_json(&registry, elapsed, rows);
    Ok(RunReport {
        latency_table: report::latency_table(&stats),
        stats,
    })
}

/// Writes `stats` as pretty JSON to `path`.
pub fn write_stats(path: &Path, stats: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(stats).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// A resync hook that does nothing (replay).
pub fn no_resync() -> Box<dyn ResyncHook> {
    Box::new(crate::pipeline::processor::NoResync)
}

/// Sleeps in small steps until `deadline` or a stop request.
pub fn sleep_until(deadline: Instant, stop: &AtomicBool) {
    while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
