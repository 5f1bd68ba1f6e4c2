//! `kind = "nats"`: rows to NATS subjects `wiresignal.<venue>.<symbol>.<signal>`
//! ([`records::subject`]), with `async-nats` on the sink's own thread (a
//! current-thread tokio runtime of its own).
//!
//! Payload: the JSON Lines row without its newline (`format = "json"`) or
//! the 48-byte [`records::Record`] (`format = "binary"`); every message has
//! a `Wiresignal-Seq` header (the row's per-(venue, symbol) sequence
//! number). The engine's [`records::Catalog`] goes to
//! `wiresignal._catalog.<engine>` when an instrument is added and every
//! [`CATALOG_EVERY`]. Messages are batched by the client and flushed once
//! per batch.
//!
//! The server may be down at start or go away: the client reconnects in
//! the background, the rows meanwhile are counted as dropped (the engine
//! never waits for NATS), and delivery resumes on reconnect. With `stream`
//! set, a JetStream stream capturing `wiresignal.>` is created (or reused)
//! with `max_age` retention, so a restarted bot can replay what it missed.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, HeaderMap, Subject};
use bytes::Bytes;
use records::Catalog;

use super::fanout::{Item, SinkCounters, Worker};
use super::jsonl::sink_msg;
use super::{Format, NatsSpec};
use crate::pipeline::sink::JsonlWriter;

/// The catalog is published again this often (and on every change).
pub const CATALOG_EVERY: Duration = Duration::from_secs(5);
/// Bound on a flush: a connection that does not take the batch is not waited for.
const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the start waits for the first connection.
const CONNECT_WAIT: Duration = Duration::from_secs(2);
/// Name of the sequence-number header.
pub const SEQ_HEADER: &str = "Wiresignal-Seq";

/// The worker of a NATS sink.
pub struct NatsSink {
    rt: tokio::runtime::Runtime,
    state: Conn,
}

/// Everything but the runtime (which drives it).
struct Conn {
    client: Client,
    format: Format,
    json: JsonlWriter<io::Sink>,
    /// Subjects by instrument, then output (empty until announced).
    subjects: Vec<Vec<Subject>>,
    outputs: Arc<[String]>,
    catalog: Catalog,
    catalog_subject: Subject,
    catalog_due: Option<Instant>,
    /// The connection state last seen (logged once per change).
    connected: bool,
}

impl NatsSink {
    /// Starts connecting to `spec.url` (in the background: an unreachable
    /// server is no error) and sets up the JetStream stream if asked.
    ///
    /// # Errors
    /// When the runtime cannot be built or the URL is not a NATS URL.
    pub fn connect(spec: &NatsSpec, outputs: Arc<[String]>, engine: &str) -> io::Result<Self> {
        // One worker thread drives the client's connection task (connects,
        // pings, reconnects) while the sink thread waits for rows.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sink-nats-io")
            .enable_all()
            .build()?;
        let url = spec.url.clone();
        let client = rt
            .block_on(
                async_nats::ConnectOptions::new()
                    .name(format!("wiresignal {engine}"))
                    .retry_on_initial_connect()
                    // A cluster: `nats://a:4222,nats://b:4222,…`.
                    .connect(url.split(',').map(str::trim).collect::<Vec<_>>()),
            )
            .map_err(|e| io::Error::other(format!("nats sink {url}: {e}")))?;
        // A server that is up is connected to before the first row (a short
        // replay would otherwise miss it); one that is down is not waited for.
        rt.block_on(async {
            let t0 = Instant::now();
            while client.connection_state() != State::Connected && t0.elapsed() < CONNECT_WAIT {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        if let Some(name) = &spec.stream {
            let js = async_nats::jetstream::new(client.clone());
            let config = async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.>", records::SUBJECT_PREFIX)],
                max_age: spec.max_age,
                ..Default::default()
            };
            let created = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), js.get_or_create_stream(config)).await
            });
            match created {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("warning: nats sink {url}: JetStream stream {name}: {e}"),
                Err(_) => eprintln!(
                    "warning: nats sink {url}: JetStream stream {name}: no answer in 5 s (server down?)"
                ),
            }
        }
        let catalog = super::new_catalog(engine, &outputs);
        Ok(Self {
            rt,
            state: Conn {
                client,
                format: spec.format,
                json: JsonlWriter::<io::Sink>::renderer(outputs.clone()),
                subjects: Vec::new(),
                outputs,
                catalog,
                catalog_subject: Subject::from(records::catalog_subject(engine)),
                catalog_due: Some(Instant::now()),
                connected: false,
            },
        })
    }
}

impl Conn {
    fn announce(&mut self, info: &feeds::event::InstrumentInfo) {
        let i = info.inst.index();
        if i >= self.subjects.len() {
            self.subjects.resize_with(i + 1, Vec::new);
        }
        let venue = feeds::venue::venue_at(info.venue).map_or("unknown", |v| v.name);
        let symbol = info.symbol.as_str();
        self.subjects[i] = self
            .outputs
            .iter()
            .map(|o| Subject::from(records::subject(venue, symbol, o)))
            .collect();
        self.catalog.add(info.inst.0, info.venue, symbol);
        self.catalog_due = Some(Instant::now());
    }

    /// Whether the client is connected (logs each change once).
    fn up(&mut self) -> bool {
        let up = self.client.connection_state() == State::Connected;
        if up != self.connected {
            self.connected = up;
            if up {
                eprintln!("nats sink: connected");
                // A (re)connected server may have lost the catalog.
                self.catalog_due = Some(Instant::now());
            } else {
                eprintln!(
                    "warning: nats sink: disconnected; rows are dropped (counted) until it is back"
                );
            }
        }
        up
    }

    async fn publish_catalog(&mut self) {
        if self
            .client
            .publish(
                self.catalog_subject.clone(),
                Bytes::from(self.catalog.to_json()),
            )
            .await
            .is_ok()
        {
            self.catalog_due = Some(Instant::now() + CATALOG_EVERY);
        }
    }
}

impl Conn {
    async fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
        let mut sent = false;
        for item in batch {
            let r = match item {
                Item::Instrument(info) => {
                    self.announce(info);
                    let _ = self.json.render_row(&sink_msg(item));
                    continue;
                }
                Item::Row(r) => r,
            };
            if !self.up() {
                c.dropped.inc();
                continue;
            }
            let Some(subject) = self
                .subjects
                .get(r.instrument as usize)
                .and_then(|s| s.get(usize::from(r.signal)))
            else {
                c.dropped.inc();
                continue;
            };
            let payload = match self.format {
                Format::Json => Bytes::copy_from_slice(self.json.render_row(&sink_msg(item))),
                Format::Binary => Bytes::copy_from_slice(&r.encode()),
            };
            let mut headers = HeaderMap::new();
            headers.insert(SEQ_HEADER, itoa::Buffer::new().format(r.seq));
            match self
                .client
                .publish_with_headers(subject.clone(), headers, payload)
                .await
            {
                Ok(()) => {
                    c.rows.inc();
                    sent = true;
                }
                Err(_) => {
                    c.dropped.inc();
                    c.errors.inc();
                }
            }
        }
        if self.catalog_due.is_some_and(|t| Instant::now() >= t) && self.up() {
            self.publish_catalog().await;
        }
        if sent {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await;
        }
    }

    async fn idle(&mut self) {
        if self.catalog_due.is_some_and(|t| Instant::now() >= t) && self.up() {
            self.publish_catalog().await;
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await;
        }
    }
}

impl Worker for NatsSink {
    fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
        self.rt.block_on(self.state.deliver(batch, c));
    }

    fn idle(&mut self, _c: &SinkCounters) {
        self.rt.block_on(self.state.idle());
    }

    fn finish(&mut self, _c: &SinkCounters) {
        let client = self.state.client.clone();
        self.rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        });
    }
}
