//! The WebSocket gateway: `GET /ws` on the metrics listener streams JSON
//! rows to dashboards and other clients.
//!
//! Rows reach it like any sink (its own thread behind its own ring,
//! [`crate::sinks::FanOut`]); [`GatewayWorker`] renders each row once and
//! offers it to every client whose filter matches. A client says what it
//! wants with `{"subscribe":{"venue":…,"symbol":…,"signals":[…]}}` (each key
//! optional, absent = all; a new subscribe replaces the old one) and gets
//! `{"subscribed":{…}}`, then the latest row of every matching (instrument,
//! signal) it has not seen, then the live rows. Rows are the JSON Lines rows
//! with the row's per-(venue, symbol) sequence number added (`"seq"`).
//!
//! A client that keeps up gets every matching row. One that falls behind by
//! more than [`CLIENT_BACKLOG`] rows conflates: a new row replaces the
//! pending row of its (instrument, signal) in place (the latest value wins;
//! every replaced row is counted), and book-status rows are never replaced.
//! Neither the pipeline nor other clients wait for it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::pipeline::sink::JsonlWriter;
use crate::sinks::{Item, SinkCounters, Worker};

/// A client's filter (`None` = all).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Venue name (`binance-spot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// Symbol (`BTCUSDT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Signal (output) names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<String>>,
}

impl Filter {
    fn matches(&self, venue: &str, symbol: &str, signal: &str) -> bool {
        self.venue.as_deref().is_none_or(|v| v == venue)
            && self.symbol.as_deref().is_none_or(|s| s == symbol)
            && self
                .signals
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == signal))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    subscribe: Filter,
}

/// One rendered row.
#[derive(Clone)]
struct Row {
    venue: &'static str,
    symbol: Arc<str>,
    signal: u16,
    status: bool,
    json: Utf8Bytes,
}

/// Rows a client may fall behind by before its rows conflate.
pub const CLIENT_BACKLOG: usize = 8192;

/// Rows waiting for one client, in order.
#[derive(Default)]
struct Pending {
    rows: VecDeque<(u64, Utf8Bytes)>,
    /// Position (counting every row ever queued) of `rows[0]`.
    head: u64,
    /// Position of each (instrument, signal)'s last queued row.
    last: HashMap<u64, u64>,
}

/// One connected client.
struct Client {
    filter: Mutex<Option<Filter>>,
    pending: Mutex<Pending>,
    notify: Notify,
}

impl Client {
    fn offer(&self, key: u64, row: &Row, conflated: &AtomicU64) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !row.status && p.rows.len() >= CLIENT_BACKLOG {
            // Behind: the pair's pending row (if still queued) takes the new value.
            if let Some(&at) = p.last.get(&key) {
                if at >= p.head {
                    let i = (at - p.head) as usize;
                    p.rows[i].1 = row.json.clone();
                    conflated.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let at = p.head + p.rows.len() as u64;
        p.rows.push_back((key, row.json.clone()));
        if !row.status {
            p.last.insert(key, at);
        }
    }

    fn take(&self, out: &mut Vec<Utf8Bytes>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.head += p.rows.len() as u64;
        out.extend(p.rows.drain(..).map(|(_, r)| r));
        p.last.clear();
    }
}

/// What the gateway's sink thread and the listener's client tasks share.
pub struct Hub {
    outputs: Arc<[String]>,
    clients: Mutex<Vec<Arc<Client>>>,
    /// The latest row per (instrument, signal), for new subscribers.
    latest: Mutex<HashMap<u64, Row>>,
    /// Rows a slow client's newer row replaced (all clients).
    pub conflated: AtomicU64,
    /// Clients connected now.
    pub connected: AtomicU64,
    /// The listener is stopping: clients send what they hold, then close.
    closing: tokio::sync::watch::Sender<bool>,
}

fn key(instrument: u32, signal: u16) -> u64 {
    (u64::from(instrument) << 16) | u64::from(signal)
}

impl Hub {
    /// A hub for rows of these outputs.
    #[must_use]
    pub fn new(outputs: Arc<[String]>) -> Arc<Self> {
        Arc::new(Self {
            outputs,
            clients: Mutex::new(Vec::new()),
            latest: Mutex::new(HashMap::new()),
            conflated: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// The worker feeding this hub (for a [`crate::sinks::FanOut`]).
    #[must_use]
    pub fn worker(self: &Arc<Self>) -> GatewayWorker {
        GatewayWorker {
            hub: self.clone(),
            json: JsonlWriter::<io::Sink>::renderer(self.outputs.clone()),
            names: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// The run is over (every row was offered): each client sends what it
    /// holds and closes; waits up to `limit` for them.
    pub async fn close(&self, limit: std::time::Duration) {
        self.closing.send_replace(true);
        let t0 = std::time::Instant::now();
        while self.connected.load(Ordering::Relaxed) > 0 && t0.elapsed() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Client>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves one upgraded WebSocket until it closes.
    pub async fn serve<S>(self: Arc<Self>, mut ws: tokio_tungstenite::WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let client = Arc::new(Client {
            filter: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
        });
        self.clients().push(client.clone());
        self.connected.fetch_add(1, Ordering::Relaxed);
        let mut closing = self.closing.subscribe();
        let mut out = Vec::new();
        loop {
            let last = *closing.borrow();
            tokio::select! {
                _ = closing.changed(), if !last => {
                    // Send what is held (the loop below), then close.
                    client.notify.notify_one();
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let reply = self.subscribe(&client, t.as_str());
                        if ws.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                () = client.notify.notified() => {
                    out.clear();
                    client.take(&mut out);
                    let mut failed = false;
                    for row in out.drain(..) {
                        if ws.feed(Message::Text(row)).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || ws.flush().await.is_err() || *closing.borrow() {
                        break;
                    }
                }
            }
        }
        self.clients().retain(|c| !Arc::ptr_eq(c, &client));
        self.connected.fetch_sub(1, Ordering::Relaxed);
        let _ = ws.close(None).await;
    }

    /// Applies a subscribe request; the answer to send.
    fn subscribe(&self, client: &Client, text: &str) -> String {
        let filter = match serde_json::from_str::<Request>(text) {
            Ok(r) => r.subscribe,
            Err(e) => {
                return serde_json::json!({ "error": format!("expected {{\"subscribe\":{{\"venue\",\"symbol\",\"signals\"}}}}: {e}") })
                    .to_string();
            }
        };
        {
            // The latest matching rows first: a new page shows values at once.
            let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            let mut rows: Vec<(&u64, &Row)> = latest
                .iter()
                .filter(|(_, r)| {
                    let signal = self
                        .outputs
                        .get(usize::from(r.signal))
                        .map_or("", String::as_str);
                    filter.matches(r.venue, &r.symbol, signal)
                })
                .collect();
            rows.sort_by_key(|(k, _)| **k);
            let unused = AtomicU64::new(0);
            for (k, r) in rows {
                client.offer(*k, r, &unused);
            }
        }
        let reply = serde_json::json!({ "subscribed": filter }).to_string();
        *client.filter.lock().unwrap_or_else(PoisonError::into_inner) = Some(filter);
        client.notify.notify_one();
        reply
    }
}

/// The gateway's sink worker: renders rows and offers them to the clients.
pub struct GatewayWorker {
    hub: Arc<Hub>,
    json: JsonlWriter<io::Sink>,
    /// By instrument: venue and symbol.
    names: Vec<Option<(&'static str, Arc<str>)>>,
    batch: Vec<(u64, Row)>,
}

impl Worker for GatewayWorker {
    fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
        self.batch.clear();
        for item in batch {
            let msg = crate::sinks::sink_msg(item);
            match item {
                Item::Instrument(info) => {
                    let i = info.inst.index();
                    if i >= self.names.len() {
                        self.names.resize(i + 1, None);
                    }
                    let venue = feeds::venue::venue_at(info.venue).map_or("unknown", |v| v.name);
                    self.names[i] = Some((venue, Arc::from(info.symbol.as_str())));
                    let _ = self.json.render_row(&msg);
                }
                Item::Row(r) => {
                    let Some(Some((venue, symbol))) = self.names.get(r.instrument as usize) else {
                        c.dropped.inc();
                        continue;
                    };
                    let line = self.json.render_row(&msg);
                    let Some(body) = line.strip_suffix(b"}") else {
                        c.dropped.inc();
                        continue;
                    };
                    let mut s = String::with_capacity(line.len() + 24);
                    s.push_str(&String::from_utf8_lossy(body));
                    s.push_str(",\"seq\":");
                    s.push_str(itoa::Buffer::new().format(r.seq));
                    s.push('}');
                    let row = Row {
                        venue,
                        symbol: symbol.clone(),
                        signal: r.signal,
                        status: r.is_status(),
                        json: Utf8Bytes::from(s),
                    };
                    self.batch.push((key(r.instrument, r.signal), row));
                    c.rows.inc();
                }
            }
        }
        if self.batch.is_empty() {
            return;
        }
        {
            let mut latest = self
                .hub
                .latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (k, row) in &self.batch {
                if !row.status {
                    latest.insert(*k, row.clone());
                }
            }
        }
        let clients = self.hub.clients().clone();
        for client in clients {
            let filter = client
                .filter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let Some(filter) = filter else { continue };
            let mut any = false;
            for (k, row) in &self.batch {
                let signal = self
                    .hub
                    .outputs
                    .get(usize::from(row.signal))
                    .map_or("", String::as_str);
                if filter.matches(row.venue, &row.symbol, signal) {
                    client.offer(*k, row, &self.hub.conflated);
                    any = true;
                }
            }
            if any {
                client.notify.notify_one();
            }
        }
    }
}
