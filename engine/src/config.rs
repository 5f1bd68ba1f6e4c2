//! Configuration: TOML is deserialized into raw structs, then validated once
//! into typed values that cannot hold a bad state. Every problem is reported
//! with its key path (`instruments[1].price_decimals: ...`).

use std::fmt;
use std::path::Path;

use feeds::event::{Scale, Symbol, TradeKind};
use serde::Deserialize;
use signals::{ParamValue, QuoteSource, SignalSpec};

/// A configuration problem, with the key path where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path (`signals[3].params.n`), or the file for syntax errors.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------- raw layer

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    instruments: Option<Vec<RawInstrument>>,
    #[serde(default)]
    signals: Option<Vec<RawSignal>>,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    #[serde(default)]
    output: RawOutput,
    #[serde(default)]
    replay: RawReplay,
    #[serde(default)]
    demo: RawDemo,
    #[serde(default)]
    record: RawRecord,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    sinks: Vec<crate::sinks::RawSink>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    venue: Option<String>,
    signal_threads: Option<i64>,
    pin_cores: Option<bool>,
    ring_capacity: Option<i64>,
    max_instruments: Option<i64>,
    window_capacity: Option<i64>,
    book_capacity: Option<i64>,
    receiver_mode: Option<String>,
    signal_placement: Option<String>,
    signal_thread_sched: Option<String>,
    overload: Option<String>,
    stage_capacity: Option<i64>,
    debug_signal_delay_ns: Option<i64>,
    sink_wake_us: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstrument {
    venue: Option<String>,
    symbol: String,
    price_decimals: Option<i64>,
    qty_decimals: Option<i64>,
    trade_source: Option<String>,
    quote_source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    id: String,
    kind: String,
    #[serde(default)]
    params: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    venue: Option<String>,
    ws_url: String,
    rest_url: String,
    symbols: Vec<String>,
    snapshot_limit: Option<i64>,
    data_timeout_ms: Option<i64>,
    rollover_after_ms: Option<i64>,
    compression: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    status_rows: Option<bool>,
    engine: Option<String>,
    signals: Option<String>,
    stats: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    speed: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDemo {
    symbols: Option<Vec<String>>,
    seed: Option<i64>,
    duration_s: Option<f64>,
    speed: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    max_bytes: Option<i64>,
    max_age_s: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    addr: Option<String>,
    stale_after_ms: Option<i64>,
    memory_budget_mb: Option<i64>,
}

// ---------------------------------------------------------------- typed layer

/// Replay / simulator pacing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as possible.
    Max,
    /// Original pacing divided by this factor (`1` = real time).
    Factor(f64),
}

impl Speed {
    /// Parses `max`, `1`, `10`, `0.5`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!("expected \"max\" or a positive number, got {s:?}")),
        }
    }

    fn from_toml(path: &str, v: &toml::Value) -> Result<Self, ConfigError> {
        match v {
            toml::Value::String(s) => Speed::parse(s).map_err(|m| err(path, m)),
            toml::Value::Integer(i) if *i > 0 => Ok(Speed::Factor(*i as f64)),
            toml::Value::Float(f) if f.is_finite() && *f > 0.0 => Ok(Speed::Factor(*f)),
            other => Err(err(
                path,
                format!("expected \"max\" or a positive number, got {other}"),
            )),
        }
    }
}

/// One configured instrument, keyed by (venue, symbol).
#[derive(Clone, Debug, PartialEq)]
pub struct InstrumentConfig {
    /// Registry name of its venue (`[[instruments]] venue`, default
    /// `[engine] venue`).
    pub venue: &'static str,
    /// Upper-case venue symbol.
    pub symbol: Symbol,
    /// Fixed-point scales.
    pub scale: Scale,
    /// Which trade stream is used.
    pub trade_source: TradeKind,
    /// Which stream provides L1 quotes (`None`: the venue's default).
    pub quote_source: Option<QuoteSource>,
}

/// Engine threading and capacity options (`[engine]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    /// Default venue for replays (`binance-spot`).
    pub venue: String,
    /// Number of signal threads (instruments are sharded by id).
    pub signal_threads: usize,
    /// Pin receiver and signal threads to cores (`pin_cores`). `None`:
    /// only where two cores stay free beside the pinned threads (see
    /// [`crate::pipeline::runtime::CorePlan::pays`]).
    pub pin_cores: Option<bool>,
    /// Capacity of each SPSC ring, in events.
    pub ring_capacity: usize,
    /// Instruments pre-allocated per signal thread.
    pub max_instruments: usize,
    /// Capacity of each time-window ring of the signal library.
    pub window_capacity: usize,
    /// Levels pre-allocated per book side.
    pub book_capacity: usize,
    /// How feed receivers wait for data (`receiver_mode`).
    pub receiver_mode: ReceiverMode,
    /// Where books and signals are computed (`signal_placement`).
    pub signal_placement: SignalPlacement,
    /// The signal threads' scheduling policy (`signal_thread_sched`).
    pub signal_thread_sched: crate::pipeline::runtime::ThreadSched,
    /// What a live receiver does when a ring is full (`overload`, default
    /// `"merge"`; replays always block). See [`crate::pipeline::overload`].
    pub overload: crate::pipeline::overload::Overload,
    /// Items each ring's overflow stage holds (`stage_capacity`, default
    /// `ring_capacity`).
    pub stage_capacity: usize,
    /// Test knob (`debug_signal_delay_ns`, default 0): each signal thread
    /// sleeps this long per event it processes, to check the overload policy
    /// against a deliberately slow signal stage; so does an adaptive
    /// receiver per event of the frames it runs itself. Not inline.
    pub debug_signal_delay_ns: u64,
    /// Wake the sink thread at most once per this many µs (`sink_wake_us`;
    /// 0: once per batch of rows). `None`: 0 when a `[[sinks]]` entry or
    /// the gateway consumes rows (bots want them within microseconds),
    /// else 1000 (the JSONL file and the live view: up to ~1 ms later,
    /// ~1k sink wake-ups a second instead of one per frame).
    pub sink_wake_us: Option<u64>,
}

/// Where books and signals are computed (`[engine] signal_placement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalPlacement {
    /// Pinned signal threads fed by SPSC rings (`"threads"`): receivers
    /// stay responsive, instruments shard over `signal_threads`, every
    /// frame wakes its signal thread.
    Threads,
    /// On each receiver thread, run to completion (`"inline"`): no ring hop
    /// and no wake-up per frame, the lowest latency and CPU on few cores.
    Inline,
    /// Signal threads as in `"threads"`, and a frame runs to completion on
    /// its receiver whenever the signal thread its instrument routes to is
    /// idle and that ring empty (`"adaptive"`): evenly spaced frames cost
    /// what inline costs (no wake-up), frames that queue still pipeline
    /// through the rings, and a receiver falling behind hands its batch to
    /// them (at most `EventTx::HERE_BUDGET_NS` of running per receive
    /// batch).
    /// The default. `engine replay` runs it as [`Inline`](Self::Inline): its
    /// frames come one at a time, so every one would run on the reader
    /// (unless `debug_signal_delay_ns` slows the signal stage to test it).
    Adaptive,
}

/// How a feed receiver thread waits for socket data (`[engine] receiver_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReceiverMode {
    /// A tokio current-thread runtime sleeping in `epoll_wait` (`"epoll"`).
    #[default]
    Epoll,
    /// Spin on a non-blocking socket, never sleep; signal threads never park
    /// either (`"busy_poll"`). Burns one core per receiver and signal thread.
    BusyPoll,
}

/// Default of `[[feeds]] data_timeout_ms`: no market data for 10 s on an
/// open connection replaces it.
pub const DEFAULT_DATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One live feed (`[[feeds]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedConfig {
    /// Venue name from the registry.
    pub venue: String,
    /// WebSocket base URL (`wss://stream.binance.com:9443`).
    pub ws_url: String,
    /// REST base URL for depth snapshots.
    pub rest_url: String,
    /// Symbols to subscribe.
    pub symbols: Vec<String>,
    /// Depth snapshot size.
    pub snapshot_limit: u32,
    /// The data watchdog (`data_timeout_ms`, default 10 000; 0 disables): a
    /// connection that delivers no market data for this long — heartbeats,
    /// pings and acks do not count — is replaced.
    pub data_timeout: std::time::Duration,
    /// Planned make-before-break rollover of each connection after this long
    /// (`rollover_after_ms`; `None`: five minutes before the venue's
    /// connection lifetime, Binance 24 h; `Some(0)`: only on a shutdown notice).
    pub rollover_after: Option<std::time::Duration>,
    /// `compression = "deflate"`: offer permessage-deflate (RFC 7692) in the
    /// handshake; a server that declines is run uncompressed (`"none"`, the
    /// default: nothing offered).
    pub compression: crate::net::Compression,
}

/// Output files (`[output]`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OutputConfig {
    /// Signal JSONL path (`-` = stdout).
    pub signals: Option<String>,
    /// `book_status` / `book_gap_s` rows around outages (`None`: on in
    /// live runs, off in replays).
    pub status_rows: Option<bool>,
    /// Stats JSON path.
    pub stats: Option<String>,
    /// This engine's name in the sinks' catalogs (`None`: host and pid).
    pub engine: Option<String>,
}

/// Demo options (`[demo]`).
#[derive(Clone, Debug, PartialEq)]
pub struct DemoConfig {
    /// Symbols the generator produces.
    pub symbols: Vec<String>,
    /// Generator seed.
    pub seed: u64,
    /// How long the demo runs, seconds.
    pub duration_s: f64,
    /// Simulator pacing.
    pub speed: Speed,
}

/// Recorder rotation (`[record]`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RecordConfig {
    /// Rotate after this many uncompressed bytes.
    pub max_bytes: Option<u64>,
    /// Rotate after this many seconds.
    pub max_age_s: Option<u64>,
}

/// Observability listener (`[metrics]`, see docs/observability.md).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// Where `/metrics` and `/health` listen; `None` = off.
    pub addr: Option<std::net::SocketAddr>,
    /// An instrument without an update for longer than this is stale.
    pub stale_after: std::time::Duration,
    /// RSS budget in bytes (gauge, and one warning on stderr when exceeded).
    pub memory_budget_bytes: Option<u64>,
}

impl MetricsConfig {
    /// Parses an `ip:port` listen address (`key` names it in the error).
    pub fn parse_addr(key: &str, s: &str) -> Result<std::net::SocketAddr, ConfigError> {
        s.parse().map_err(|_| {
            err(
                key,
                format!("expected ip:port, e.g. 127.0.0.1:9100, got {s:?}"),
            )
        })
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Engine options.
    pub engine: EngineOptions,
    /// Configured instruments. A venue none of them names accepts every
    /// symbol with the defaults.
    pub instruments: Vec<InstrumentConfig>,
    /// Signals, in output order.
    pub signals: Vec<SignalSpec>,
    /// Live feeds.
    pub feeds: Vec<FeedConfig>,
    /// Output files.
    pub output: OutputConfig,
    /// Replay pacing.
    pub replay_speed: Speed,
    /// Demo options.
    pub demo: DemoConfig,
    /// Recorder options.
    pub record: RecordConfig,
    /// Metrics and health listener.
    pub metrics: MetricsConfig,
    /// Where rows go besides `--out` (`[[sinks]]`, see [`crate::sinks`]).
    pub sinks: Vec<crate::sinks::SinkSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_toml_str("", "<default>").unwrap_or_else(|e| unreachable!("{e}"))
    }
}

fn positive(path: &str, v: Option<i64>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) if n > 0 => usize::try_from(n).map_err(|_| err(path, "too large")),
        Some(n) => Err(err(path, format!("must be a positive integer, got {n}"))),
    }
}

fn decimals(path: &str, v: Option<i64>) -> Result<u8, ConfigError> {
    match v {
        None => Ok(8),
        Some(n @ 0..=12) => Ok(n as u8),
        Some(n) => Err(err(path, format!("must be in 0..=12, got {n}"))),
    }
}

fn param_value<'a>(path: &str, v: &'a toml::Value) -> Result<ParamValue<'a>, ConfigError> {
    match v {
        toml::Value::Integer(i) => Ok(ParamValue::Int(*i)),
        toml::Value::Float(f) => Ok(ParamValue::Float(*f)),
        toml::Value::String(s) => Ok(ParamValue::Str(s)),
        other => Err(err(path, format!("unsupported value {other}"))),
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| err(origin, e.to_string().trim_end().to_owned()))?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let venue = raw
            .engine
            .venue
            .unwrap_or_else(|| "binance-spot".to_owned());
        if feeds::venue::venue_by_name(&venue).is_none() {
            return Err(err("engine.venue", format!("unknown venue {venue:?}")));
        }
        let engine = EngineOptions {
            venue,
            signal_threads: positive("engine.signal_threads", raw.engine.signal_threads, 1)?,
            pin_cores: raw.engine.pin_cores,
            ring_capacity: positive("engine.ring_capacity", raw.engine.ring_capacity, 1 << 16)?,
            max_instruments: positive("engine.max_instruments", raw.engine.max_instruments, 256)?,
            window_capacity: positive(
                "engine.window_capacity",
                raw.engine.window_capacity,
                1 << 16,
            )?,
            book_capacity: positive("engine.book_capacity", raw.engine.book_capacity, 8192)?,
            receiver_mode: match raw.engine.receiver_mode.as_deref() {
                None | Some("epoll") => ReceiverMode::Epoll,
                Some("busy_poll") => ReceiverMode::BusyPoll,
                Some(o) => {
                    return Err(err(
                        "engine.receiver_mode",
                        format!("expected \"epoll\" or \"busy_poll\", got {o:?}"),
                    ))
                }
            },
            signal_placement: match raw.engine.signal_placement.as_deref() {
                Some("threads") => SignalPlacement::Threads,
                Some("inline") => SignalPlacement::Inline,
                None | Some("adaptive") => SignalPlacement::Adaptive,
                Some(o) => {
                    return Err(err(
                        "engine.signal_placement",
                        format!("expected \"threads\", \"inline\" or \"adaptive\", got {o:?}"),
                    ))
                }
            },
            signal_thread_sched: match raw.engine.signal_thread_sched.as_deref() {
                None | Some("normal") => crate::pipeline::runtime::ThreadSched::Normal,
                Some("batch") => crate::pipeline::runtime::ThreadSched::Batch,
                Some(o) => {
                    return Err(err(
                        "engine.signal_thread_sched",
                        format!("expected \"normal\" or \"batch\", got {o:?}"),
                    ))
                }
            },
            overload: match raw.engine.overload.as_deref() {
                None | Some("merge") => crate::pipeline::overload::Overload::Merge,
                Some("block") => crate::pipeline::overload::Overload::Block,
                Some(o) => {
                    return Err(err(
                        "engine.overload",
                        format!("expected \"merge\" or \"block\", got {o:?}"),
                    ))
                }
            },
            stage_capacity: 0,
            debug_signal_delay_ns: match raw.engine.debug_signal_delay_ns {
                None => 0,
                Some(n) if (0..=1_000_000_000).contains(&n) => n.unsigned_abs(),
                Some(n) => {
                    return Err(err(
                        "engine.debug_signal_delay_ns",
                        format!("must be in 0..=1000000000, got {n}"),
                    ))
                }
            },
            sink_wake_us: match raw.engine.sink_wake_us {
                None => None,
                Some(n) if (0..=1_000_000).contains(&n) => Some(n.unsigned_abs()),
                Some(n) => {
                    return Err(err(
                        "engine.sink_wake_us",
                        format!("must be in 0..=1000000 (µs), got {n}"),
                    ))
                }
            },
        };
        let engine = EngineOptions {
            stage_capacity: positive(
                "engine.stage_capacity",
                raw.engine.stage_capacity,
                engine.ring_capacity,
            )?,
            ..engine
        };

        let mut instruments = Vec::new();
        for (i, ri) in raw.instruments.unwrap_or_default().into_iter().enumerate() {
            let p = format!("instruments[{i}]");
            let venue = match &ri.venue {
                None => feeds::venue::venue_by_name(&engine.venue),
                Some(v) => feeds::venue::venue_by_name(v),
            }
            .map(|(_, d)| d.name)
            .ok_or_else(|| {
                err(
                    format!("{p}.venue"),
                    format!("unknown venue {:?}", ri.venue.as_deref().unwrap_or("")),
                )
            })?;
            let symbol = Symbol::new(&ri.symbol)
                .filter(|_| !ri.symbol.is_empty())
                .ok_or_else(|| {
                    err(
                        format!("{p}.symbol"),
                        format!("invalid symbol {:?}", ri.symbol),
                    )
                })?;
            if instruments
                .iter()
                .any(|x: &InstrumentConfig| x.symbol == symbol && x.venue == venue)
            {
                return Err(err(
                    format!("{p}.symbol"),
                    format!("duplicate symbol {symbol} on {venue}"),
                ));
            }
            let scale = Scale {
                price_decimals: decimals(&format!("{p}.price_decimals"), ri.price_decimals)?,
                qty_decimals: decimals(&format!("{p}.qty_decimals"), ri.qty_decimals)?,
            };
            let trade_source = match ri.trade_source.as_deref() {
                None | Some("trade") => TradeKind::Trade,
                Some("aggTrade") => TradeKind::AggTrade,
                Some(o) => {
                    return Err(err(
                        format!("{p}.trade_source"),
                        format!("expected \"trade\" or \"aggTrade\", got {o:?}"),
                    ))
                }
            };
            let quote_source = match ri.quote_source.as_deref() {
                None => None,
                Some("bookTicker") => Some(QuoteSource::BookTicker),
                Some("depth") => Some(QuoteSource::Depth),
                Some(o) => {
                    return Err(err(
                        format!("{p}.quote_source"),
                        format!("expected \"bookTicker\" or \"depth\", got {o:?}"),
                    ))
                }
            };
            instruments.push(InstrumentConfig {
                venue,
                symbol,
                scale,
                trade_source,
                quote_source,
            });
        }

        let signals = match raw.signals {
            None => signals::default_set(),
            Some(list) => {
                let mut out: Vec<SignalSpec> = Vec::with_capacity(list.len());
                for (i, rs) in list.iter().enumerate() {
                    let p = format!("signals[{i}]");
                    let mut params = Vec::with_capacity(rs.params.len());
                    for (k, v) in &rs.params {
                        params.push((k.as_str(), param_value(&format!("{p}.params.{k}"), v)?));
                    }
                    let spec = SignalSpec::parse(&rs.id, &rs.kind, &params)
                        .map_err(|e| err(p.clone(), e.to_string()))?;
                    if out.iter().any(|s| s.id == spec.id) {
                        return Err(err(
                            format!("{p}.id"),
                            format!("duplicate id {:?}", spec.id),
                        ));
                    }
                    out.push(spec);
                }
                out
            }
        };

        let mut feeds_out = Vec::new();
        for (i, rf) in raw.feeds.into_iter().enumerate() {
            let p = format!("feeds[{i}]");
            let venue = rf.venue.unwrap_or_else(|| engine.venue.clone());
            if feeds::venue::venue_by_name(&venue).is_none() {
                return Err(err(
                    format!("{p}.venue"),
                    format!("unknown venue {venue:?}"),
                ));
            }
            for (key, url, schemes) in [
                ("ws_url", &rf.ws_url, ["ws://", "wss://"]),
                ("rest_url", &rf.rest_url, ["http://", "https://"]),
            ] {
                if !schemes.iter().any(|s| url.starts_with(s)) {
                    return Err(err(
                        format!("{p}.{key}"),
                        format!(
                            "expected a {} or {} URL, got {url:?}",
                            schemes[0], schemes[1]
                        ),
                    ));
                }
            }
            if rf.symbols.is_empty() {
                return Err(err(
                    format!("{p}.symbols"),
                    "at least one symbol is required",
                ));
            }
            for (j, s) in rf.symbols.iter().enumerate() {
                if Symbol::new(s).is_none() || s.is_empty() {
                    return Err(err(
                        format!("{p}.symbols[{j}]"),
                        format!("invalid symbol {s:?}"),
                    ));
                }
            }
            let limit = positive(&format!("{p}.snapshot_limit"), rf.snapshot_limit, 1000)?;
            let data_timeout = match rf.data_timeout_ms {
                None => DEFAULT_DATA_TIMEOUT,
                Some(0) => std::time::Duration::ZERO,
                Some(n) => std::time::Duration::from_millis(positive(
                    &format!("{p}.data_timeout_ms"),
                    Some(n),
                    0,
                )? as u64),
            };
            let rollover_after = match rf.rollover_after_ms {
                None => None,
                Some(0) => Some(std::time::Duration::ZERO),
                // Both connections run side by side: only venues whose
                // messages carry ids (duplicates dropped) may roll over.
                Some(_)
                    if feeds::venue::venue_by_name(&venue)
                        .is_some_and(|(_, d)| d.protocol.connection_lifetime.is_zero()) =>
                {
                    return Err(err(
                        format!("{p}.rollover_after_ms"),
                        format!(
                            "{venue} connections do not expire; a rollover would double its messages"
                        ),
                    ));
                }
                Some(n) => Some(std::time::Duration::from_millis(positive(
                    &format!("{p}.rollover_after_ms"),
                    Some(n),
                    0,
                )? as u64)),
            };

            let compression = match rf.compression.as_deref() {
                None | Some("none") => crate::net::Compression::None,
                Some("deflate") if !cfg!(feature = "deflate") => {
                    return Err(err(
                        format!("{p}.compression"),
                        "this engine was built without the `deflate` feature",
                    ));
                }
                // The busy-poll receiver runs sync tungstenite, which has no
                // permessage-deflate (only the epoll loop's socket has it).
                Some("deflate") if engine.receiver_mode == ReceiverMode::BusyPoll => {
                    return Err(err(
                        format!("{p}.compression"),
                        "\"deflate\" needs engine.receiver_mode = \"epoll\" (the busy-poll receiver has no permessage-deflate)",
                    ));
                }
                Some("deflate") => crate::net::Compression::Deflate,
                Some(other) => {
                    return Err(err(
                        format!("{p}.compression"),
                        format!("expected \"none\" or \"deflate\", got {other:?}"),
                    ));
                }
            };
            feeds_out.push(FeedConfig {
                venue,
                ws_url: rf.ws_url.trim_end_matches('/').to_owned(),
                rest_url: rf.rest_url.trim_end_matches('/').to_owned(),
                symbols: rf.symbols.iter().map(|s| s.to_ascii_uppercase()).collect(),
                snapshot_limit: u32::try_from(limit).unwrap_or(5000),
                data_timeout,
                rollover_after,
                compression,
            });
        }

        let replay_speed = match &raw.replay.speed {
            None => Speed::Max,
            Some(v) => Speed::from_toml("replay.speed", v)?,
        };
        let demo = DemoConfig {
            symbols: raw
                .demo
                .symbols
                .unwrap_or_else(|| vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()]),
            seed: u64::try_from(raw.demo.seed.unwrap_or(7))
                .map_err(|_| err("demo.seed", "must be non-negative"))?,
            duration_s: match raw.demo.duration_s {
                None => 45.0,
                Some(d) if d.is_finite() && d > 0.0 => d,
                Some(d) => {
                    return Err(err("demo.duration_s", format!("must be positive, got {d}")))
                }
            },
            speed: match &raw.demo.speed {
                None => Speed::Factor(1.0),
                Some(v) => Speed::from_toml("demo.speed", v)?,
            },
        };
        let record = RecordConfig {
            max_bytes: raw
                .record
                .max_bytes
                .map(|v| positive("record.max_bytes", Some(v), 0).map(|v| v as u64))
                .transpose()?,
            max_age_s: raw
                .record
                .max_age_s
                .map(|v| positive("record.max_age_s", Some(v), 0).map(|v| v as u64))
                .transpose()?,
        };
        let metrics = MetricsConfig {
            addr: raw
                .metrics
                .addr
                .as_deref()
                .map(|a| MetricsConfig::parse_addr("metrics.addr", a))
                .transpose()?,
            stale_after: std::time::Duration::from_millis(positive(
                "metrics.stale_after_ms",
                raw.metrics.stale_after_ms,
                5000,
            )? as u64),
            memory_budget_bytes: raw
                .metrics
                .memory_budget_mb
                .map(|v| positive("metrics.memory_budget_mb", Some(v), 0).map(|v| (v as u64) << 20))
                .transpose()?,
        };
        let sinks = raw
            .sinks
            .into_iter()
            .enumerate()
            .map(|(i, r)| crate::sinks::SinkSpec::validate(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(name) = crate::sinks::duplicate_name(&sinks) {
            return Err(err("sinks", format!("two sinks are named {name:?}")));
        }
        let mut metrics = metrics;
        let mut websockets = sinks.iter().enumerate().filter_map(|(i, s)| match s.kind {
            crate::sinks::SinkKind::WebSocket { listen } => Some((i, listen)),
            _ => None,
        });
        if let Some((_, listen)) = websockets.next() {
            if let Some((i, _)) = websockets.next() {
                return Err(err(
                    format!("sinks[{i}].kind"),
                    "one websocket sink at most (the gateway of the metrics listener)",
                ));
            }
            match (listen, metrics.addr) {
                (Some(l), Some(a)) if l != a => {
                    return Err(err(
                        "metrics.addr",
                        format!("{a} differs from the websocket sink's listen {l}: the gateway rides the metrics listener"),
                    ))
                }
                (Some(l), _) => metrics.addr = Some(l),
                (None, _) => {}
            }
        }
        Ok(Config {
            engine,
            instruments,
            signals,
            feeds: feeds_out,
            output: OutputConfig {
                signals: raw.output.signals,
                status_rows: raw.output.status_rows,
                stats: raw.output.stats,
                engine: raw.output.engine,
            },
            replay_speed,
            demo,
            record,
            metrics,
            sinks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default_set() {
        let c = Config::from_toml_str("", "t").unwrap();
        assert_eq!(c.signals, signals::default_set());
        assert!(c.instruments.is_empty());
        assert_eq!(c.replay_speed, Speed::Max);
    }

    #[test]
    fn errors_name_the_key_path() {
        let e = Config::from_toml_str("[[instruments]]\nsymbol='X'\nprice_decimals=13\n", "t")
            .unwrap_err();
        assert_eq!(e.path, "instruments[0].price_decimals");
        let e = Config::from_toml_str(
            "[[signals]]\nid='a'\nkind='ema'\n[[signals]]\nid='b'\nkind='nope'\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(e.path, "signals[1]");
        assert!(e.message.contains("nope"), "{e}");
        let e = Config::from_toml_str("[engine]\nvenue='mars'\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.venue");
        let e = Config::from_toml_str("[engine]\nreceiver_mode='spin'\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.receiver_mode");
        assert!(e.message.contains("busy_poll"), "{e}");
        let c = Config::from_toml_str("[engine]\nreceiver_mode='busy_poll'\n", "t").unwrap();
        assert_eq!(c.engine.receiver_mode, ReceiverMode::BusyPoll);
        assert_eq!(Config::default().engine.receiver_mode, ReceiverMode::Epoll);
        let e = Config::from_toml_str("[engine]\nsignal_placement='gpu'\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.signal_placement");
        let c = Config::from_toml_str("[engine]\nsignal_placement='inline'\n", "t").unwrap();
        assert_eq!(c.engine.signal_placement, SignalPlacement::Inline);
        let c = Config::from_toml_str("[engine]\nsignal_placement='adaptive'\n", "t").unwrap();
        assert_eq!(c.engine.signal_placement, SignalPlacement::Adaptive);
        assert_eq!(
            Config::default().engine.signal_placement,
            SignalPlacement::Adaptive
        );
        let c = Config::from_toml_str("[engine]\nsignal_thread_sched='batch'\n", "t").unwrap();
        assert_eq!(
            c.engine.signal_thread_sched,
            crate::pipeline::runtime::ThreadSched::Batch
        );
        assert_eq!(
            Config::default().engine.signal_thread_sched,
            crate::pipeline::runtime::ThreadSched::Normal
        );
        let e = Config::from_toml_str("[engine]\nsignal_thread_sched='fifo'\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.signal_thread_sched");
        let c = Config::from_toml_str("[engine]\nsignal_placement='threads'\n", "t").unwrap();
        assert_eq!(c.engine.signal_placement, SignalPlacement::Threads);
        let c = Config::from_toml_str(
            "[engine]\nsignal_placement='adaptive'\nsignal_threads=2\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.engine.signal_threads, 2);
        use crate::pipeline::overload::Overload;
        let d = Config::default().engine;
        assert_eq!(
            (d.overload, d.stage_capacity, d.debug_signal_delay_ns),
            (Overload::Merge, 1 << 16, 0)
        );
        let e = Config::from_toml_str("[engine]\noverload='drop'\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.overload");
        assert!(e.message.contains("\"block\""), "{e}");
        let c = Config::from_toml_str(
            "[engine]\noverload='block'\nring_capacity=512\ndebug_signal_delay_ns=2000\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            (c.engine.overload, c.engine.stage_capacity),
            (Overload::Block, 512)
        );
        assert_eq!(c.engine.debug_signal_delay_ns, 2000);
        let e = Config::from_toml_str("[engine]\nstage_capacity=0\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.stage_capacity");
        let e = Config::from_toml_str("[engine]\ndebug_signal_delay_ns=-1\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.debug_signal_delay_ns");
        assert_eq!(
            c.engine.sink_wake_us, None,
            "default: chosen from the sinks"
        );
        let c = Config::from_toml_str("[engine]\nsink_wake_us=250\n", "t").unwrap();
        assert_eq!(c.engine.sink_wake_us, Some(250));
        let e = Config::from_toml_str("[engine]\nsink_wake_us=-5\n", "t").unwrap_err();
        assert_eq!(e.path, "engine.sink_wake_us");
        let e =
            Config::from_toml_str("[[instruments]]\nvenue='mars'\nsymbol='X'\n", "t").unwrap_err();
        assert_eq!(e.path, "instruments[0].venue");
        let two = "[[instruments]]\nsymbol='BTCUSDT'\n[[instruments]]\nvenue='binance-usdm'\nsymbol='BTCUSDT'\nqty_decimals=3\n";
        let c = Config::from_toml_str(two, "t").unwrap();
        assert_eq!(c.instruments[0].venue, "binance-spot");
        assert_eq!(c.instruments[1].venue, "binance-usdm");
        let e = Config::from_toml_str(
            &format!("{two}[[instruments]]\nvenue='binance-usdm'\nsymbol='btcusdt'\n"),
            "t",
        )
        .unwrap_err();
        assert_eq!(e.path, "instruments[2].symbol");
        let e = Config::from_toml_str("[engine]\nbogus=1\n", "t").unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        let e = Config::from_toml_str(
            "[[feeds]]\nws_url='http://x'\nrest_url='http://x'\nsymbols=['A']\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(e.path, "feeds[0].ws_url");
    }

    #[test]
    fn rollover_needs_a_venue_whose_connections_expire() {
        let toml = |v: &str| {
            format!("[[feeds]]\nvenue = \"{v}\"\nws_url = \"wss://x\"\nrest_url = \"https://x\"\nsymbols = [\"A\"]\nrollover_after_ms = 1000\n")
        };
        let ok = Config::from_toml_str(&toml("binance-spot"), "t").unwrap();
        assert_eq!(
            ok.feeds[0].rollover_after,
            Some(std::time::Duration::from_secs(1))
        );
        let e = Config::from_toml_str(&toml("kraken"), "t").unwrap_err();
        assert_eq!(e.path, "feeds[0].rollover_after_ms");
    }

    #[test]
    fn shipped_configs_validate() {
        let dir = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../config");
        for name in [
            "default.toml",
            "binance-live.toml",
            "binance-usdm-live.toml",
            "binance-coinm-live.toml",
            "kraken-live.toml",
            "okx-live.toml",
            "coinbase-live.toml",
            "coinbase-exchange-live.toml",
            "bybit-spot-live.toml",
            "bybit-linear-live.toml",
            "replay.toml",
            "demo-nats.toml",
            "demo-iox.toml",
            "shard-a.toml",
            "shard-b.toml",
            "shard-c.toml",
        ] {
            Config::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
