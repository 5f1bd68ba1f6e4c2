//! The `[[sinks]]`: where signal rows go besides `--out`.
//!
//! ```toml
//! [[sinks]]
//! kind = "nats"                 # jsonl | nats | iceoryx2 | parquet | websocket
//! url = "nats://127.0.0.1:4222"
//! format = "json"               # or "binary" (records::Record, 48 bytes)
//! ```
//!
//! Every sink but `parquet` (research output, written losslessly by the sink
//! thread like `--out`) runs on its own thread, fed by its own SPSC ring from the sink
//! thread ([`fanout`]): a slow or dead sink never slows the pipeline. When
//! its ring is full the sink **conflates**: it keeps only the latest row per
//! (instrument, signal) until the ring has room again and counts every row
//! it replaced (`conflated`); book-status rows and instrument announcements
//! are never dropped or conflated. Every row carries a per-(venue, symbol)
//! sequence number (from 1, gapless when nothing was lost), in the binary
//! record and, for JSON payloads, in the `Wiresignal-Seq` header.

mod fanout;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
mod jsonl;
pub use jsonl::sink_msg;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
pub use nats::SEQ_HEADER as NATS_SEQ_HEADER;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use fanout::{FanOut, Item, MakeWorker, SinkCounters, Worker};

use crate::config::ConfigError;
use crate::pipeline::sink::RowCollector;

/// Slots of a sink's ring unless configured.
pub const DEFAULT_RING: usize = 65_536;

/// Payload of the network sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// The JSON Lines row (SIGNALS.md section 10), without its newline.
    #[default]
    Json,
    /// The 48-byte [`records::Record`].
    Binary,
}

/// A validated `[[sinks]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkSpec {
    /// Name in stats and metrics (`name`, else `<kind><index>`).
    pub name: String,
    /// Ring slots between the sink thread and this sink's thread.
    pub ring_capacity: usize,
    /// What it is.
    pub kind: SinkKind,
}

/// The kinds of sink.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// JSON Lines into a file.
    Jsonl {
        /// The file (truncated at start).
        path: PathBuf,
    },
    /// NATS subjects `wiresignal.<venue>.<symbol>.<signal>`.
    Nats(NatsSpec),
    /// iceoryx2 publish-subscribe (same host, shared memory).
    Iceoryx2(IoxSpec),
    /// A Parquet file (research output; feature `parquet`, polars), written
    /// losslessly by the sink thread like `--out` (not behind a ring of its
    /// own: a research file that conflated rows away would be wrong).
    Parquet {
        /// The file (truncated at start).
        path: PathBuf,
    },
    /// The WebSocket gateway (`GET /ws` on the metrics listener) and its
    /// live page; at most one. Without this entry the gateway still runs
    /// whenever the metrics listener does, with the defaults.
    WebSocket {
        /// Where the listener binds (`listen`; `None`: `[metrics] addr`).
        listen: Option<std::net::SocketAddr>,
    },
}

/// An iceoryx2 sink: records on one service per engine, its catalog on
/// `<service>/catalog` (see `sinks::iceoryx2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoxSpec {
    /// The records' service (`service`; `None`: `wiresignal/<engine>`).
    pub service: Option<String>,
    /// Records each subscriber's buffer holds before the oldest are
    /// overwritten (`buffer`, default 16384).
    pub buffer: usize,
    /// Latest records a subscriber gets when it connects (`history`, default 0).
    pub history: usize,
    /// Subscribers at most (`max_subscribers`, default 8).
    pub max_subscribers: usize,
}

impl Default for IoxSpec {
    fn default() -> Self {
        Self {
            service: None,
            buffer: 16_384,
            history: 0,
            max_subscribers: 8,
        }
    }
}

/// A NATS sink.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSpec {
    /// Server URL(s), comma-separated (`nats://host:port`).
    pub url: String,
    /// Payload format.
    pub format: Format,
    /// JetStream stream capturing `wiresignal.>` (created if missing), so a
    /// restarted bot can catch up; `None`: core NATS only.
    pub stream: Option<String>,
    /// The stream's retention (`max_age_s`, default one hour).
    pub max_age: Duration,
}

/// A `[[sinks]]` entry as written.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    kind: Option<String>,
    name: Option<String>,
    path: Option<String>,
    url: Option<String>,
    format: Option<String>,
    ring_capacity: Option<i64>,
    stream: Option<String>,
    max_age_s: Option<i64>,
    service: Option<String>,
    buffer: Option<i64>,
    history: Option<i64>,
    max_subscribers: Option<i64>,
    listen: Option<String>,
}

/// The kinds, as the errors list them.
const KINDS: &str = "jsonl | nats | iceoryx2 | parquet | websocket";

impl SinkSpec {
    /// Validates `sinks[i]`.
    ///
    /// # Errors
    /// Every problem, with its key path.
    pub fn validate(i: usize, raw: RawSink) -> Result<Self, ConfigError> {
        let at = |key: &str| format!("sinks[{i}].{key}");
        let bad = |key: &str, message: String| ConfigError {
            path: at(key),
            message,
        };
        let kind = raw.kind.as_deref().unwrap_or("");
        let ring_capacity = match raw.ring_capacity {
            None => DEFAULT_RING,
            Some(n) if (16..=1 << 24).contains(&n) => n as usize,
            Some(n) => return Err(bad("ring_capacity", format!("{n} is not in 16..=16777216"))),
        };
        let format = match raw.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("binary") => Format::Binary,
            Some(f) => {
                return Err(bad(
                    "format",
                    format!("{f:?} is not \"json\" or \"binary\""),
                ))
            }
        };
        let unused = |key: &str, set: bool| {
            if set {
                Err(bad(key, format!("not a key of a {kind:?} sink")))
            } else {
                Ok(())
            }
        };
        let iox_keys = [
            ("service", raw.service.is_some()),
            ("buffer", raw.buffer.is_some()),
            ("history", raw.history.is_some()),
            ("max_subscribers", raw.max_subscribers.is_some()),
        ];
        if kind != "iceoryx2" {
            for (key, set) in iox_keys {
                unused(key, set)?;
            }
        }
        if kind != "websocket" {
            unused("listen", raw.listen.is_some())?;
        }
        let no_network_keys = || {
            unused("url", raw.url.is_some())?;
            unused("format", raw.format.is_some())?;
            unused("stream", raw.stream.is_some())?;
            unused("max_age_s", raw.max_age_s.is_some())
        };
        let kind = match kind {
            "jsonl" => {
                let path = raw
                    .path
                    .ok_or_else(|| bad("path", "a jsonl sink needs a path".into()))?;
                no_network_keys()?;
                SinkKind::Jsonl { path: path.into() }
            }
            "parquet" => {
                let path = raw
                    .path
                    .ok_or_else(|| bad("path", "a parquet sink needs a path".into()))?;
                no_network_keys()?;
                SinkKind::Parquet { path: path.into() }
            }
            "websocket" => {
                unused("path", raw.path.is_some())?;
                no_network_keys()?;
                let listen = match raw.listen.as_deref() {
                    None => None,
                    Some(a) => Some(
                        crate::config::MetricsConfig::parse_addr(&at("listen"), a)
                            .map_err(|e| bad("listen", e.message))?,
                    ),
                };
                SinkKind::WebSocket { listen }
            }
            "nats" => {
                unused("path", raw.path.is_some())?;
                let url = raw
                    .url
                    .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
                let max_age = match raw.max_age_s {
                    None => Duration::from_secs(3600),
                    Some(s) if s > 0 => Duration::from_secs(s as u64),
                    Some(s) => return Err(bad("max_age_s", format!("{s} is not positive"))),
                };
                if raw.stream.as_deref().is_some_and(|s| {
                    s.is_empty()
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }) {
                    return Err(bad("stream", "letters, digits, '_' and '-' only".into()));
                }
                SinkKind::Nats(NatsSpec {
                    url,
                    format,
                    stream: raw.stream,
                    max_age,
                })
            }
            "iceoryx2" => {
                for (key, set) in [
                    ("path", raw.path.is_some()),
                    ("url", raw.url.is_some()),
                    ("format", raw.format.is_some()),
                    ("stream", raw.stream.is_some()),
                    ("max_age_s", raw.max_age_s.is_some()),
                ] {
                    unused(key, set)?;
                }
                let count = |key: &str, v: Option<i64>, default: usize, range: (i64, i64)| match v {
                    None => Ok(default),
                    Some(n) if (range.0..=range.1).contains(&n) => Ok(n as usize),
                    Some(n) => Err(bad(key, format!("{n} is not in {}..={}", range.0, range.1))),
                };
                let d = IoxSpec::default();
                let buffer = count("buffer", raw.buffer, d.buffer, (1, 1 << 22))?;
                let history = count("history", raw.history, d.history, (0, 1 << 16))?;
                let max_subscribers = count(
                    "max_subscribers",
                    raw.max_subscribers,
                    d.max_subscribers,
                    (1, 64),
                )?;
                if let Some(s) = &raw.service {
                    if s.is_empty()
                        || s.len() > 240
                        || s.starts_with("iox2://")
                        || !s.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(bad(
                            "service",
                            "1 to 240 printable ASCII characters, no spaces, not iox2://".into(),
                        ));
                    }
                }
                SinkKind::Iceoryx2(IoxSpec {
                    service: raw.service,
                    buffer,
                    history,
                    max_subscribers,
                })
            }
            "" => return Err(bad("kind", format!("missing ({KINDS})"))),
            k => return Err(bad("kind", format!("unknown kind {k:?} ({KINDS})"))),
        };
        let default_name = match &kind {
            SinkKind::Jsonl { .. } => format!("jsonl{i}"),
            SinkKind::Nats(_) => format!("nats{i}"),
            SinkKind::Iceoryx2(_) => format!("iox{i}"),
            SinkKind::Parquet { .. } => format!("parquet{i}"),
            SinkKind::WebSocket { .. } => "gateway".to_owned(),
        };
        Ok(Self {
            name: raw.name.unwrap_or(default_name),
            ring_capacity,
            kind,
        })
    }
}

/// Each sink's name and counters.
pub type NamedCounters = Vec<(String, Arc<SinkCounters>)>;

/// A name two sinks share, if any.
#[must_use]
pub fn duplicate_name(specs: &[SinkSpec]) -> Option<&str> {
    specs.iter().enumerate().find_map(|(i, a)| {
        specs[..i]
            .iter()
            .any(|b| b.name == a.name)
            .then_some(a.name.as_str())
    })
}

/// Starts every configured sink: their collectors (for the sink thread, in
/// config order) and their counters (for stats and metrics).
///
/// # Errors
/// A sink that cannot start (a file that cannot be created; a NATS or
/// iceoryx2 sink in a build without its feature; an iceoryx2 service that
/// cannot be created or already has a publisher). An unreachable NATS server
/// is no error: the sink connects in the background and counts what it drops.
pub fn open(
    specs: &[SinkSpec],
    outputs: &Arc<[String]>,
    engine: &str,
) -> std::io::Result<(Vec<Box<dyn RowCollector>>, NamedCounters)> {
    let mut collectors: Vec<Box<dyn RowCollector>> = Vec::new();
    let mut counters = Vec::new();
    for spec in specs {
        let make: MakeWorker = match &spec.kind {
            SinkKind::Jsonl { path } => ready(jsonl::JsonlSink::create(path, outputs.clone())?),
            #[cfg(feature = "nats")]
            SinkKind::Nats(n) => ready(nats::NatsSink::connect(n, outputs.clone(), engine)?),
            #[cfg(not(feature = "nats"))]
            SinkKind::Nats(_) => {
                let _ = engine;
                return Err(no_feature(&spec.name, "NATS", "nats"));
            }
            // Its ports are bound to one thread: made on the sink's own.
            #[cfg(feature = "iceoryx2")]
            SinkKind::Iceoryx2(x) => iceoryx2::IoxSink::maker(x, outputs.clone(), engine),
            #[cfg(not(feature = "iceoryx2"))]
            SinkKind::Iceoryx2(_) => return Err(no_feature(&spec.name, "iceoryx2", "iceoryx2")),
            // Research output is complete or it is nothing: written by the
            // sink thread itself, lossless like `--out` (a full ring would
            // conflate rows away), never on a signal thread.
            SinkKind::Parquet { path } => {
                let c = crate::parquet::open_collector(Some(path))
                    .map_err(|e| std::io::Error::new(e.kind(), format!("sink {}: {e}", spec.name)))?
                    .ok_or_else(|| std::io::Error::other("no parquet collector"))?;
                collectors.push(c);
                continue;
            }
            // Started with the metrics listener it rides (`app`).
            SinkKind::WebSocket { .. } => continue,
        };
        let fan = FanOut::spawn(&spec.name, spec.ring_capacity, outputs, make)?;
        counters.push((spec.name.clone(), fan.counters()));
        collectors.push(Box::new(fan));
    }
    Ok((collectors, counters))
}

/// A worker made here (on the engine's thread), moved to its sink thread.
fn ready(worker: impl Worker + Send + 'static) -> MakeWorker {
    Box::new(move || Ok(Box::new(worker)))
}

/// The WebSocket gateway's entry, if configured (at most one: validated).
#[must_use]
pub fn websocket(specs: &[SinkSpec]) -> Option<(&SinkSpec, Option<std::net::SocketAddr>)> {
    specs.iter().find_map(|s| match s.kind {
        SinkKind::WebSocket { listen } => Some((s, listen)),
        _ => None,
    })
}

#[cold]
#[cfg(not(all(feature = "nats", feature = "iceoryx2")))]
fn no_feature(sink: &str, what: &str, feature: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "sink {sink}: this build has no {what} support (feature `{feature}`)"
    ))
}

/// An empty catalog of this engine's ids: every registry venue and these
/// outputs; instruments are added as they are announced.
#[must_use]
pub fn new_catalog(engine: &str, outputs: &[String]) -> records::Catalog {
    records::Catalog {
        version: records::VERSION,
        engine: engine.to_owned(),
        venues: feeds::venue::VENUES
            .iter()
            .map(|v| v.name.to_owned())
            .collect(),
        signals: outputs.to_vec(),
        instruments: Vec::new(),
    }
}

/// This engine's name in catalogs (`[output] engine`, else host and pid).
#[must_use]
pub fn engine_name(configured: Option<&str>) -> String {
    match configured {
        Some(n) => n.to_owned(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default();
            let host = if host.is_empty() {
                "engine".to_owned()
            } else {
                host
            };
            format!("{host}-{}", std::process::id())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn sinks_are_validated_with_their_key_paths() {
        let cfg = Config::from_toml_str(
            "[[sinks]]\nkind = \"nats\"\nformat = \"binary\"\nstream = \"WS\"\n\
             [[sinks]]\nkind = \"jsonl\"\npath = \"x.jsonl\"\nname = \"copy\"\nring_capacity = 1024\n",
            "t",
        )
        .unwrap();
        assert_eq!(cfg.sinks.len(), 2);
        assert_eq!(cfg.sinks[0].name, "nats0");
        assert_eq!(
            cfg.sinks[0].kind,
            SinkKind::Nats(NatsSpec {
                url: "nats://127.0.0.1:4222".into(),
                format: Format::Binary,
                stream: Some("WS".into()),
                max_age: Duration::from_secs(3600),
            })
        );
        assert_eq!(
            (cfg.sinks[1].name.as_str(), cfg.sinks[1].ring_capacity),
            ("copy", 1024)
        );
        for (toml, path) in [
            ("[[sinks]]\nkind = \"kafka\"\n", "sinks[0].kind"),
            ("[[sinks]]\nurl = \"nats://x\"\n", "sinks[0].kind"),
            ("[[sinks]]\nkind = \"jsonl\"\n", "sinks[0].path"),
            (
                "[[sinks]]\nkind = \"jsonl\"\npath = \"a\"\nurl = \"nats://x\"\n",
                "sinks[0].url",
            ),
            (
                "[[sinks]]\nkind = \"nats\"\nformat = \"xml\"\n",
                "sinks[0].format",
            ),
            (
                "[[sinks]]\nkind = \"nats\"\nring_capacity = 1\n",
                "sinks[0].ring_capacity",
            ),
            (
                "[[sinks]]\nkind = \"nats\"\nstream = \"a.b\"\n",
                "sinks[0].stream",
            ),
            (
                "[[sinks]]\nkind = \"nats\"\nmax_age_s = 0\n",
                "sinks[0].max_age_s",
            ),
            (
                "[[sinks]]\nkind = \"nats\"\n[[sinks]]\nkind = \"nats\"\nname = \"nats0\"\n",
                "sinks",
            ),
        ] {
            let e = Config::from_toml_str(toml, "t").unwrap_err();
            assert_eq!(e.path, path, "{toml}: {e}");
        }
        assert!(Config::from_toml_str("[[sinks]]\nkind = \"nats\"\nbogus = 1\n", "t").is_err());
    }

    #[test]
    fn iceoryx2_sinks_are_validated() {
        let cfg = Config::from_toml_str(
            "[[sinks]]\nkind = \"iceoryx2\"\n\
             [[sinks]]\nkind = \"iceoryx2\"\nservice = \"bots/a\"\nbuffer = 1024\nhistory = 16\nmax_subscribers = 2\n",
            "t",
        )
        .unwrap();
        assert_eq!(cfg.sinks[0].name, "iox0");
        assert_eq!(cfg.sinks[0].kind, SinkKind::Iceoryx2(IoxSpec::default()));
        assert_eq!(
            cfg.sinks[1].kind,
            SinkKind::Iceoryx2(IoxSpec {
                service: Some("bots/a".into()),
                buffer: 1024,
                history: 16,
                max_subscribers: 2,
            })
        );
        for (toml, path) in [
            ("kind = \"iceoryx2\"\nservice = \"\"\n", "sinks[0].service"),
            (
                "kind = \"iceoryx2\"\nservice = \"a b\"\n",
                "sinks[0].service",
            ),
            (
                "kind = \"iceoryx2\"\nservice = \"iox2://x\"\n",
                "sinks[0].service",
            ),
            ("kind = \"iceoryx2\"\nbuffer = 0\n", "sinks[0].buffer"),
            ("kind = \"iceoryx2\"\nhistory = -1\n", "sinks[0].history"),
            (
                "kind = \"iceoryx2\"\nmax_subscribers = 0\n",
                "sinks[0].max_subscribers",
            ),
            (
                "kind = \"iceoryx2\"\nformat = \"binary\"\n",
                "sinks[0].format",
            ),
            ("kind = \"iceoryx2\"\nurl = \"nats://x\"\n", "sinks[0].url"),
            ("kind = \"nats\"\nservice = \"x\"\n", "sinks[0].service"),
            (
                "kind = \"jsonl\"\npath = \"a\"\nbuffer = 4\n",
                "sinks[0].buffer",
            ),
        ] {
            let toml = format!("[[sinks]]\n{toml}");
            let e = Config::from_toml_str(&toml, "t").unwrap_err();
            assert_eq!(e.path, path, "{toml}: {e}");
        }
    }

    #[test]
    fn parquet_and_websocket_sinks_are_validated() {
        let cfg = Config::from_toml_str(
            "[[sinks]]\nkind = \"parquet\"\npath = \"s.parquet\"\n\
             [[sinks]]\nkind = \"websocket\"\nlisten = \"127.0.0.1:9300\"\nring_capacity = 4096\n",
            "t",
        )
        .unwrap();
        assert_eq!(cfg.sinks[0].name, "parquet0");
        assert_eq!(
            cfg.sinks[0].kind,
            SinkKind::Parquet {
                path: "s.parquet".into()
            }
        );
        let addr: std::net::SocketAddr = "127.0.0.1:9300".parse().unwrap();
        assert_eq!(cfg.sinks[1].name, "gateway");
        assert_eq!(cfg.sinks[1].ring_capacity, 4096);
        assert_eq!(
            cfg.sinks[1].kind,
            SinkKind::WebSocket { listen: Some(addr) }
        );
        // The gateway rides the metrics listener: `listen` sets it.
        assert_eq!(cfg.metrics.addr, Some(addr));
        let same = Config::from_toml_str(
            "[metrics]\naddr = \"127.0.0.1:9300\"\n[[sinks]]\nkind = \"websocket\"\nlisten = \"127.0.0.1:9300\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(same.metrics.addr, Some(addr));
        for (toml, path) in [
            ("[[sinks]]\nkind = \"parquet\"\n", "sinks[0].path"),
            (
                "[[sinks]]\nkind = \"parquet\"\npath = \"a\"\nurl = \"nats://x\"\n",
                "sinks[0].url",
            ),
            (
                "[[sinks]]\nkind = \"websocket\"\nlisten = \"nowhere\"\n",
                "sinks[0].listen",
            ),
            (
                "[[sinks]]\nkind = \"websocket\"\npath = \"a\"\n",
                "sinks[0].path",
            ),
            (
                "[[sinks]]\nkind = \"jsonl\"\npath = \"a\"\nlisten = \"127.0.0.1:1\"\n",
                "sinks[0].listen",
            ),
            (
                "[[sinks]]\nkind = \"websocket\"\n[[sinks]]\nkind = \"websocket\"\nname = \"g2\"\n",
                "sinks[1].kind",
            ),
            (
                "[metrics]\naddr = \"127.0.0.1:9301\"\n[[sinks]]\nkind = \"websocket\"\nlisten = \"127.0.0.1:9300\"\n",
                "metrics.addr",
            ),
        ] {
            let e = Config::from_toml_str(toml, "t").unwrap_err();
            assert_eq!(e.path, path, "{toml}: {e}");
        }
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn a_parquet_sink_needs_its_feature() {
        let cfg =
            Config::from_toml_str("[[sinks]]\nkind = \"parquet\"\npath = \"x\"\n", "t").unwrap();
        let outputs: Arc<[String]> = Vec::new().into();
        let Err(e) = open(&cfg.sinks, &outputs, "e") else {
            panic!("opened without the feature");
        };
        assert!(e.to_string().contains("parquet feature"), "{e}");
    }

    #[test]
    fn a_websocket_sink_needs_a_listener() {
        let cfg = Config::from_toml_str("[[sinks]]\nkind = \"websocket\"\n", "t").unwrap();
        let Err(e) =
            crate::app::start_pipeline_with(&cfg, 1, crate::app::Output::None, None, None, false)
        else {
            panic!("started without a listener");
        };
        assert!(e.to_string().contains("needs a listener"), "{e}");
    }

    #[cfg(not(feature = "iceoryx2"))]
    #[test]
    fn an_iceoryx2_sink_needs_its_feature() {
        let cfg = Config::from_toml_str("[[sinks]]\nkind = \"iceoryx2\"\n", "t").unwrap();
        let outputs: Arc<[String]> = Vec::new().into();
        let Err(e) = open(&cfg.sinks, &outputs, "e") else {
            panic!("opened without the feature");
        };
        assert!(e.to_string().contains("feature `iceoryx2`"), "{e}");
    }

    #[test]
    fn engine_names_default_to_host_and_pid() {
        assert_eq!(engine_name(Some("shard-a")), "shard-a");
        assert!(engine_name(None).ends_with(&format!("-{}", std::process::id())));
    }
}
