//! `kind = "iceoryx2"`: every row as a 48-byte [`records::Record`] over
//! iceoryx2 publish-subscribe (same host, zero-copy shared memory).
//!
//! - **One service per engine**, `wiresignal/<engine>` unless `service` is
//!   set, payload [`Payload`] (`[u8; 48]`, the record's bytes). A bot opens
//!   one service and filters by id; per-instrument services would multiply
//!   shared-memory segments and ports by instruments × signals, and one
//!   service keeps the engine's order across instruments. The sequence
//!   numbers are per (venue, symbol) as on every sink, so holes are exact.
//! - **The catalog** ([`records::Catalog`], JSON) on `<service>/catalog`
//!   ([`catalog_name`]), payload `[u8]`, with a history of one: a subscriber
//!   that connects late gets the latest catalog at once. It is published
//!   before the first row of every newly announced instrument.
//! - **Never blocks the engine**: the service has safe overflow (a full
//!   subscriber buffer loses its *oldest* record; the subscriber sees the
//!   hole in the sequence numbers) and the publisher discards instead of
//!   retrying. A record that cannot be loaned or sent is counted in
//!   `dropped` and `errors`; `rows` counts records published (to however
//!   many subscribers are connected, none included).
//! - Each record is loaned from the publisher's shared memory, written
//!   once ([`records::Record::encode`]) and sent: no other copy.
//!
//! [`subscribe`] is what a bot (or a test) uses to get both services:
//! `engine/examples/iox_bot.rs`.
//!
//! iceoryx2 keeps its state under `/tmp/iceoryx2` and `/dev/shm/iox2_*`;
//! a node removes its services when it goes, and the resources of nodes
//! that died are cleaned up when the next node is created.

use std::io;
use std::sync::Arc;

use ::iceoryx2::port::publisher::Publisher;
use ::iceoryx2::port::subscriber::Subscriber;
use ::iceoryx2::port::update_connections::UpdateConnections;
use ::iceoryx2::prelude::*;
use ::iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use records::Catalog;

use super::fanout::{Item, SinkCounters, Worker};
use super::{IoxSpec, MakeWorker};

/// A record on the wire: [`records::Record::encode`]'s bytes.
pub type Payload = [u8; records::SIZE];
/// The records' service.
pub type RowsService = PubSub<ipc::Service, Payload, ()>;
/// The catalog's service (JSON bytes).
pub type CatalogService = PubSub<ipc::Service, [u8], ()>;

/// A subscriber of the records.
pub type RowsSubscriber = Subscriber<ipc::Service, Payload, ()>;
/// A subscriber of the catalog (JSON bytes).
pub type CatalogSubscriber = Subscriber<ipc::Service, [u8], ()>;

/// The catalog's service is the records' one plus this.
pub const CATALOG_SUFFIX: &str = "/catalog";
/// First size of a catalog sample; larger catalogs grow it (power of two).
const CATALOG_SLICE: usize = 16 * 1024;

/// The records' service name: `service`, else `wiresignal/<engine>`.
#[must_use]
pub fn service_name(configured: Option<&str>, engine: &str) -> String {
    configured.map_or_else(|| format!("wiresignal/{engine}"), str::to_owned)
}

/// The catalog's service name of a records' service.
#[must_use]
pub fn catalog_name(service: &str) -> String {
    format!("{service}{CATALOG_SUFFIX}")
}

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("iceoryx2 sink: {what}: {e}"))
}

fn name(s: &str) -> io::Result<ServiceName> {
    ServiceName::new(s).map_err(|e| err(s, e))
}

/// A node for a subscriber (a bot, a test): no signal handlers of its own.
///
/// # Errors
/// When iceoryx2 cannot create the node.
pub fn subscriber_node(node_name: &str) -> io::Result<Node<ipc::Service>> {
    let mut b = NodeBuilder::new().signal_handling_mode(SignalHandlingMode::Disabled);
    if let Ok(n) = NodeName::new(node_name) {
        b = b.name(&n);
    }
    b.create::<ipc::Service>().map_err(|e| err("node", e))
}

/// Opens the records' service `service` (or creates it with `spec`'s
/// settings, so a subscriber may start before the engine). An existing
/// service must offer at least what `spec` asks for.
///
/// # Errors
/// When the service cannot be opened or created (incompatible settings,
/// another payload type).
pub fn rows_service(
    node: &Node<ipc::Service>,
    service: &str,
    spec: &IoxSpec,
) -> io::Result<RowsService> {
    node.service_builder(&name(service)?)
        .publish_subscribe::<Payload>()
        .enable_safe_overflow(true)
        .subscriber_max_buffer_size(spec.buffer)
        .history_size(spec.history)
        .max_subscribers(spec.max_subscribers)
        .max_publishers(1)
        .max_nodes(spec.max_subscribers + 4)
        .open_or_create()
        .map_err(|e| err(service, e))
}

/// Opens (or creates) the catalog's service of the records' `service`.
///
/// # Errors
/// As [`rows_service`].
pub fn catalog_service(
    node: &Node<ipc::Service>,
    service: &str,
    spec: &IoxSpec,
) -> io::Result<CatalogService> {
    let catalog = catalog_name(service);
    node.service_builder(&name(&catalog)?)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(true)
        .subscriber_max_buffer_size(4)
        .history_size(1)
        .max_subscribers(spec.max_subscribers)
        .max_publishers(1)
        .max_nodes(spec.max_subscribers + 4)
        .open_or_create()
        .map_err(|e| err(&catalog, e))
}

/// A subscriber's two ports on the records' `service` and its catalog: the
/// services as the engine made them, or (a bot started before its engine)
/// made here with `spec`'s settings, which the engine's must then match.
/// The catalog port gets the latest catalog at once when there is one.
///
/// # Errors
/// When a service cannot be opened or created, or has no room for
/// another subscriber.
pub fn subscribe(
    node: &Node<ipc::Service>,
    service: &str,
    spec: &IoxSpec,
) -> io::Result<(RowsSubscriber, CatalogSubscriber)> {
    let rows = match node
        .service_builder(&name(service)?)
        .publish_subscribe::<Payload>()
        .open()
    {
        Ok(s) => s,
        Err(_) => rows_service(node, service, spec)?,
    };
    let catalog = catalog_name(service);
    let catalogs = match node
        .service_builder(&name(&catalog)?)
        .publish_subscribe::<[u8]>()
        .open()
    {
        Ok(s) => s,
        Err(_) => catalog_service(node, service, spec)?,
    };
    Ok((
        rows.subscriber_builder()
            .create()
            .map_err(|e| err(service, e))?,
        catalogs
            .subscriber_builder()
            .create()
            .map_err(|e| err(&catalog, e))?,
    ))
}

/// The worker of an iceoryx2 sink (lives on its sink thread: iceoryx2's
/// `ipc` ports are single-threaded).
pub struct IoxSink {
    // Fields drop in this order: ports, then services, then the node.
    rows: Publisher<ipc::Service, Payload, ()>,
    catalog_port: Publisher<ipc::Service, [u8], ()>,
    _services: (RowsService, CatalogService),
    _node: Node<ipc::Service>,
    catalog: Catalog,
    /// An instrument was announced since the catalog was last sent.
    catalog_due: bool,
    service: String,
}

impl IoxSink {
    /// What makes the sink on its own thread ([`super::FanOut::spawn`]).
    #[must_use]
    pub fn maker(spec: &IoxSpec, outputs: Arc<[String]>, engine: &str) -> MakeWorker {
        let (spec, engine) = (spec.clone(), engine.to_owned());
        Box::new(move || {
            let sink: Box<dyn Worker> = Box::new(Self::create(&spec, &outputs, &engine)?);
            Ok(sink)
        })
    }

    /// Creates the node, both services and their publishers, and publishes
    /// the (empty) catalog.
    ///
    /// # Errors
    /// When a service cannot be created or opened, or already has a
    /// publisher (another engine on the same service).
    pub fn create(spec: &IoxSpec, outputs: &[String], engine: &str) -> io::Result<Self> {
        let service = service_name(spec.service.as_deref(), engine);
        // The engine handles its own signals (Ctrl-C ends a run cleanly).
        let node = subscriber_node(&format!("wiresignal-{engine}"))?;
        let rows_svc = rows_service(&node, &service, spec)?;
        let catalog_svc = catalog_service(&node, &service, spec)?;
        let one_publisher = |e: &dyn std::fmt::Display| {
            err(
                &service,
                format!("{e} (does another engine publish on this service?)"),
            )
        };
        let rows = rows_svc
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            .create()
            .map_err(|e| one_publisher(&e))?;
        let catalog_port = catalog_svc
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            .initial_max_slice_len(CATALOG_SLICE)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .create()
            .map_err(|e| one_publisher(&e))?;
        let catalog = super::new_catalog(engine, outputs);
        let mut sink = Self {
            rows,
            catalog_port,
            _services: (rows_svc, catalog_svc),
            _node: node,
            catalog,
            catalog_due: true,
            service,
        };
        sink.publish_catalog(None);
        Ok(sink)
    }

    /// The records' service name.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    fn publish_catalog(&mut self, c: Option<&SinkCounters>) {
        let json = self.catalog.to_json();
        let sent = self
            .catalog_port
            .loan_slice_uninit(json.len())
            .map_err(|e| e.to_string())
            .and_then(|s| s.write_from_slice(&json).send().map_err(|e| e.to_string()));
        match sent {
            Ok(_) => self.catalog_due = false,
            Err(e) => {
                eprintln!("warning: iceoryx2 sink {}: catalog: {e}", self.service);
                if let Some(c) = c {
                    c.errors.inc();
                }
            }
        }
    }

    #[inline]
    fn publish(&self, r: &records::Record, c: &SinkCounters) {
        let sent = match self.rows.loan_uninit() {
            Ok(sample) => sample.write_payload(r.encode()).send().is_ok(),
            Err(_) => false,
        };
        if sent {
            c.rows.inc();
        } else {
            c.dropped.inc();
            c.errors.inc();
        }
    }
}

impl Worker for IoxSink {
    fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
        // A busy engine may never be idle: hand late subscribers the
        // catalog's history here too (cheap when nobody came).
        let _ = self.catalog_port.update_connections();
        for item in batch {
            match item {
                Item::Instrument(info) => {
                    self.catalog
                        .add(info.inst.0, info.venue, info.symbol.as_str());
                    self.catalog_due = true;
                }
                Item::Row(r) => {
                    // A new instrument's names go out before its first row.
                    if self.catalog_due {
                        self.publish_catalog(Some(c));
                    }
                    self.publish(r, c);
                }
            }
        }
        if self.catalog_due {
            self.publish_catalog(Some(c));
        }
    }

    fn idle(&mut self, c: &SinkCounters) {
        // Connects subscribers that came meanwhile (and hands them the
        // catalog's history) without waiting for the next row.
        let _ = self.rows.update_connections();
        let _ = self.catalog_port.update_connections();
        if self.catalog_due {
            self.publish_catalog(Some(c));
        }
    }
}
