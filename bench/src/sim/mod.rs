//! Local exchange simulator: a venue's WebSocket market streams and its REST
//! depth snapshots on one TCP port, speaking the protocol of the venue whose
//! capture (or generator) it serves.
//!
//! # Protocol
//!
//! Venue-neutral here: playback, the clock, snapshot rendezvous and fault
//! injection. Everything the venue decides comes from its
//! [`feeds::sim::VenueServer`] (in the venue's folder of `feeds`): WebSocket
//! routes (Binance: combined `/stream?streams=a/b/c`, raw `/ws/<stream>`,
//! under any route prefix), replies to client messages (Binance `SUBSCRIBE`,
//! `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`), where each source frame goes, the
//! combined-stream wrapper, the REST routes and error bodies, and snapshot
//! rendering. HTTP is hyper's, through the front door in [`crate::http`]:
//! a request with `Upgrade: websocket` on a venue route gets its 101 from
//! hyper and the raw socket is handed to tokio-tungstenite (404 for an
//! unknown route, 400 without `Sec-WebSocket-Key`); pings are answered with
//! pongs (by tungstenite) and the simulator pings every
//! [`SimConfig::ping_interval`]. Only subscribed streams are sent; payloads
//! are sliced out of the source text, never re-serialised. HTTP answers
//! carry `Content-Length` and `Connection: close` (one request per
//! connection; the server half-closes after the answer); unknown routes get
//! 404, bad or oversized request heads hyper's 400 / 431, and a client that
//! does not send its head within 10 s is dropped.
//!
//! # Playback clock
//!
//! One playback position is shared by all connections. Playback starts when a
//! WebSocket client has a subscription ([`SimConfig::min_subscribed`]
//! clients, for venues spread over several connections) and **stops while no
//! subscribed client is connected** (the simulator clock stops while nobody
//! listens), while a
//! depth response is being served and during a stall fault. Records are paced
//! by their original receive-time gaps divided by the speed factor, measured
//! on that clock, so pauses never cause bursts. At the end of the source the
//! connections stay open and idle until shutdown ([`EndBehaviour::Idle`]) and
//! [`SimHandle::is_exhausted`] turns true.
//!
//! # Deterministic snapshots
//!
//! The simulator keeps a book per symbol (the source's snapshot record plus
//! the diffs played), parsed by the venue's own adapter into the `feeds`
//! book with the venue's policy ([`feeds::sim::SimBooks`]). A depth request for a symbol whose playback has
//! not reached the source's snapshot record is **held** until it does and is
//! then answered with the recorded body verbatim; later requests get a
//! snapshot rendered from the simulator's book (`lastUpdateId` = `u` of the
//! last diff played). Generator sources answer from the generator's book at
//! once. While a response is served, playback pauses: frames written before
//! the response precede the snapshot, frames after it follow it. Playback
//! resumes when the client closes the HTTP connection (or after
//! [`SimConfig::http_eof_timeout`]): the answer carries a
//! [`Lease`] that the connection drops exactly once, at
//! the earlier of the two. A request still held when the source ends gets
//! 503 (400 for a symbol the source never mentioned).
//!
//! Faulted depth answers ([`Faults::rest_failures`]): an error status (with
//! `Retry-After` when given) or a hang (no answer; the connection is closed
//! after the given time). Neither pauses playback.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::stream::StreamExt;
use futures_util::SinkExt;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use feeds::sim::{RestRequest, Routed, SimBooks, StreamKey, StreamKind, VenueServer};
use feeds::venue::VenueDef;

use crate::http::{Answer, Door, Lease, Reply};
use crate::source::{FrameSource, SourceRecord};

/// Playback speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// No pacing: send as fast as the clients read.
    Max,
    /// Original inter-record gaps divided by this factor (1.0 = real time).
    Factor(f64),
}

/// Fault injection, counted per WebSocket connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Close the TCP connection (no close frame) right after this many
    /// frames on the connection. Playback continues from the same position
    /// on the next connection.
    pub drop_after_frames: Option<u64>,
    /// Do not send the Nth (1-based) depth diff due on the connection,
    /// producing a U/u gap (and a hole in the message numbers of venues
    /// that number a connection's messages).
    pub skip_depth_at: Vec<u64>,
    /// Alter the book checksum of the Nth (1-based) depth frame due on the
    /// connection (venues that send one: Kraken, OKX).
    pub corrupt_checksum_at: Vec<u64>,
    /// Reverse the levels of the first book side of the Nth (1-based) depth
    /// frame due on the connection (OKX).
    pub reorder_levels_at: Vec<u64>,
    /// At the Nth (1-based) depth frame due on the connection, the venue's
    /// book service restarts (venues with a restart signal,
    /// [`VenueServer::restart`]: Bybit's `u = 1` snapshot): instead of the
    /// frame the connection gets the venue's restart snapshot of that
    /// frame's book, and its later frames of that book are renumbered from
    /// it ([`VenueServer::renumber`]).
    pub restart_at: Vec<u64>,
    /// After this many frames on the connection, stop sending for the given
    /// time (the socket stays open; the playback clock stops meanwhile).
    pub stall: Option<(u64, Duration)>,
    /// The first depth requests (of any connection) get these answers, in
    /// order, instead of a snapshot.
    pub rest_failures: Vec<RestFault>,
    /// A misbehaving server: every stream frame goes to every connection,
    /// subscribed or not (symbols nobody asked for on the wire).
    pub broadcast: bool,
    /// After every Nth frame on the connection, a malformed text frame.
    pub garbage_every: Option<u64>,
    /// After this many frames on the connection, the venue's closing notice
    /// ([`VenueServer::closing_notice`]), and a close (1001 "server
    /// shutdown") after the given time; frames flow until then.
    pub closing_after: Option<(u64, Duration)>,
}

/// A failed answer to a depth request (fault injection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestFault {
    /// An HTTP error status, with `Retry-After: <seconds>` when given.
    Status {
        /// 429, 418, 500, 503, ...
        status: u16,
        /// `Retry-After` in seconds.
        retry_after_s: Option<u64>,
    },
    /// No answer: the connection is held open this long, then closed.
    Hang(Duration),
}

/// What happens when the source is exhausted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndBehaviour {
    /// Keep connections open and idle until shutdown.
    #[default]
    Idle,
    /// Send a close frame to every client and stop accepting WebSockets.
    Close,
}

/// Simulator configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Playback speed.
    pub speed: Speed,
    /// Faults applied to each faulty connection.
    pub faults: Faults,
    /// Faults apply to the first N WebSocket connections only (`None`: all).
    pub fault_connections: Option<u64>,
    /// Interval of the simulator's own pings.
    pub ping_interval: Duration,
    /// End-of-source behaviour.
    pub at_end: EndBehaviour,
    /// How long to wait for a depth client to close its connection.
    pub http_eof_timeout: Duration,
    /// Snapshot rendezvous: when playback reaches a recorded REST snapshot
    /// while a depth-subscribed client is connected and no request for it is
    /// waiting, playback pauses up to this long for the client's request, so
    /// the recorded snapshot is served at its recorded position even at max
    /// speed (the client asks right after connecting, but at max speed the
    /// frames would otherwise outrun the request). Zero disables it.
    pub snapshot_rendezvous: Duration,
    /// Venue whose protocol is spoken (registry name); `None`: the
    /// source's (`venue=` header of the capture, the generator's venue),
    /// else Binance spot.
    pub venue: Option<String>,
    /// Send the book snapshots of stream-started venues on the stream (as
    /// recorded, and on subscribe). `false` plays them into the simulator's
    /// books only, so clients must bootstrap from REST (OKX since 2026).
    pub stream_snapshots: bool,
    /// Playback runs only while at least this many connections hold a
    /// subscription (at least 1). Venues whose clients open several
    /// connections (Binance USD-M: book streams on `/public`, trades on
    /// `/market`) set it to that number so no connection misses the start.
    pub min_subscribed: usize,
    /// Playback waits until the connected clients hold at least this many
    /// streams in all (0: any): venues that subscribe one channel per
    /// request (Coinbase Advanced Trade) set it so no channel misses the start.
    pub min_streams: usize,
    /// Agree on permessage-deflate (RFC 7692) when a client offers it, and
    /// compress every frame (level 6, context takeover). Needs the
    /// `deflate` feature; without it the offer is declined.
    pub deflate: bool,
}

impl SimConfig {
    /// Defaults: max speed, no faults, pings every 20 s, idle at end.
    pub fn new(listen: SocketAddr) -> Self {
        SimConfig {
            listen,
            speed: Speed::Max,
            faults: Faults::default(),
            fault_connections: None,
            ping_interval: Duration::from_secs(20),
            at_end: EndBehaviour::Idle,
            http_eof_timeout: Duration::from_secs(2),
            snapshot_rendezvous: Duration::from_secs(2),
            venue: None,
            stream_snapshots: true,
            min_subscribed: 1,
            min_streams: 0,
            deflate: false,
        }
    }
}

#[derive(Default)]
struct Stats {
    frames_sent: AtomicU64,
    records_played: AtomicU64,
    exhausted: AtomicBool,
    connections: AtomicU64,
    accepted: AtomicU64,
    depth_served: AtomicU64,
    /// When each depth request arrived.
    depth_requests: std::sync::Mutex<Vec<Instant>>,
    /// When each WebSocket was accepted.
    accept_times: std::sync::Mutex<Vec<Instant>>,
    error: std::sync::Mutex<Option<String>>,
}

/// Entry point; see the module docs.
pub struct Simulator;

impl Simulator {
    /// Binds `cfg.listen` and starts the simulator on its own thread (tokio
    /// current-thread runtime).
    ///
    /// # Errors
    /// The listen address cannot be bound, or the venue is not in the registry.
    pub fn start(cfg: SimConfig, mut source: Box<dyn FrameSource + Send>) -> io::Result<SimHandle> {
        let name = cfg
            .venue
            .clone()
            .or_else(|| source.venue())
            .unwrap_or_else(|| "binance-spot".to_owned());
        let (index, venue) = feeds::venue::venue_for_capture(&name, None)
            .ok_or_else(|| io::Error::other(format!("simulator: unknown venue {name:?}")))?;
        let listener = StdListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("wiresignal-sim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(run(cfg, (index, venue), source, listener, st, stop_rx))
            })?;
        Ok(SimHandle {
            addr,
            stats,
            stop: stop_tx,
            thread: Some(thread),
        })
    }
}

/// Handle to a running simulator. Dropping it shuts the simulator down.
pub struct SimHandle {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SimHandle {
    /// The bound address (resolves port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// WebSocket data frames written, summed over connections.
    pub fn frames_sent(&self) -> u64 {
        self.stats.frames_sent.load(Ordering::Acquire)
    }

    /// Source records consumed by playback (including snapshots and
    /// unroutable records).
    pub fn records_played(&self) -> u64 {
        self.stats.records_played.load(Ordering::Acquire)
    }

    /// True once the source has no more records (and all were played).
    pub fn is_exhausted(&self) -> bool {
        self.stats.exhausted.load(Ordering::Acquire)
    }

    /// Currently open WebSocket connections.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Acquire)
    }

    /// WebSocket connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::Acquire)
    }

    /// Depth responses written so far.
    pub fn depth_served(&self) -> u64 {
        self.stats.depth_served.load(Ordering::Acquire)
    }

    /// When each WebSocket handshake completed, in order.
    pub fn accept_times(&self) -> Vec<Instant> {
        self.stats
            .accept_times
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// When each depth request arrived (faulted ones included), in order.
    pub fn depth_requests(&self) -> Vec<Instant> {
        self.stats
            .depth_requests
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Source read error that stopped playback, if any.
    pub fn error(&self) -> Option<String> {
        self.stats.error.lock().ok().and_then(|e| e.clone())
    }

    /// Polls until the source is exhausted; `false` on timeout.
    pub fn wait_exhausted(&self, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while !self.is_exhausted() {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Stops the simulator, closes every connection and joins its thread.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        let _ = self.stop.send(true);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("simulator thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

use crate::ws::WsSink;

enum Ctl {
    Open {
        id: u64,
        sink: WsSink,
        kill: oneshot::Sender<()>,
        combined: bool,
        streams: Vec<String>,
    },
    Msg {
        id: u64,
        msg: Message,
    },
    Gone {
        id: u64,
    },
    Depth {
        symbol: String,
        limit: usize,
        reply: oneshot::Sender<Answer>,
    },
}

async fn run(
    cfg: SimConfig,
    venue: (u16, &'static VenueDef),
    source: Box<dyn FrameSource + Send>,
    listener: StdListener,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let (ctl_tx, ctl_rx) = mpsc::channel::<Ctl>(1024);
    let door = Arc::new(SimDoor {
        server: venue.1.server,
        ctl: ctl_tx,
        stats: Arc::clone(&stats),
        next_id: AtomicU64::new(0),
        deflate: cfg.deflate,
    });
    let accept = crate::http::accept_loop(listener, door, stop.clone());
    let actor = Actor::new(cfg, venue, source, stats);
    tokio::select! {
        _ = accept => {}
        r = actor.run(ctl_rx) => r?,
        _ = stop.changed() => {}
    }
    Ok(())
}

/// The simulator behind the HTTP front door ([`crate::http`]).
struct SimDoor {
    server: &'static dyn VenueServer,
    ctl: mpsc::Sender<Ctl>,
    stats: Arc<Stats>,
    next_id: AtomicU64,
    /// Agree on permessage-deflate when a client offers it.
    deflate: bool,
}

impl Door for SimDoor {
    type Route = feeds::sim::WsRoute;

    fn ws_route(&self, path: &str, query: &str) -> Option<Self::Route> {
        self.server.ws_route(path, query)
    }

    fn deflate(&self) -> bool {
        // Without the feature there is no compressing socket: declined.
        self.deflate && cfg!(feature = "deflate")
    }

    async fn websocket(&self, route: Self::Route, io: TcpStream, read_buf: Bytes, deflate: bool) {
        let feeds::sim::WsRoute { combined, streams } = route;
        let id = self.next_id.fetch_add(1, Ordering::AcqRel) + 1;
        let Some((sink, mut read)) = crate::ws::accept(io, read_buf, deflate).await else {
            return;
        };
        self.stats.accepted.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut v) = self.stats.accept_times.lock() {
            v.push(Instant::now());
        }
        let (kill, mut killed) = oneshot::channel();
        let ctl = &self.ctl;
        if ctl
            .send(Ctl::Open {
                id,
                sink,
                kill,
                combined,
                streams,
            })
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                m = read.next() => match m {
                    Some(Ok(msg)) => {
                        if ctl.send(Ctl::Msg { id, msg }).await.is_err() {
                            return;
                        }
                    }
                    _ => break,
                },
                _ = &mut killed => return,
            }
        }
        let _ = ctl.send(Ctl::Gone { id }).await;
    }

    async fn request(&self, method: &Method, path: &str, query: &str) -> Answer {
        if method != Method::GET {
            return Reply::new(StatusCode::NOT_FOUND, "").into();
        }
        match self.server.rest(path, query) {
            Some(RestRequest::Depth { symbol, limit }) => {
                // The actor answers, maybe only when playback reaches the
                // snapshot (held); gone: the simulator is shutting down.
                let (reply, answer) = oneshot::channel();
                if self
                    .ctl
                    .send(Ctl::Depth {
                        symbol,
                        limit,
                        reply,
                    })
                    .await
                    .is_err()
                {
                    return Answer::Close(Duration::ZERO);
                }
                answer.await.unwrap_or(Answer::Close(Duration::ZERO))
            }
            Some(RestRequest::Reply(status, body)) => Reply::status_line(status, body).into(),
            None => Reply::new(StatusCode::NOT_FOUND, "").into(),
        }
    }
}

/// A faulted answer to a depth request.
fn fault_answer(fault: RestFault) -> Answer {
    match fault {
        RestFault::Status {
            status,
            retry_after_s,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = format!(r#"{{"code":-1003,"msg":"fault {status}"}}"#);
            let mut r = Reply::new(code, body).header(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(s) = retry_after_s {
                r = r.header(hyper::header::RETRY_AFTER, HeaderValue::from(s));
            }
            r.into()
        }
        RestFault::Hang(d) => Answer::Close(d),
    }
}

/// One depth answer being served: playback pauses while any is alive
/// (dropped when the client closes the connection, at the latest
/// [`SimConfig::http_eof_timeout`] after the answer; see [`Lease`]).
struct Serving {
    count: Arc<AtomicUsize>,
    released: Arc<Notify>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.released.notify_one();
    }
}

struct Sub {
    name: String,
    /// `None`: a stream the simulator never produces.
    key: Option<StreamKey>,
}

struct Conn {
    id: u64,
    sink: WsSink,
    _kill: oneshot::Sender<()>,
    combined: bool,
    subs: Vec<Sub>,
    frames: u64,
    depth_seen: u64,
    /// Messages numbered on this connection (venues that number them, see
    /// `VenueServer::stamp`), including skipped ones.
    seq: u64,
    /// A planned close (the closing fault).
    close_at: Option<Instant>,
    /// Update-id shift of each book restarted on this connection (a
    /// restart fault), applied to its later frames.
    shifts: Vec<(StreamKey, u64)>,
    faulty: bool,
    dirty: bool,
    dead: bool,
}

struct Held {
    symbol: String,
    reply: oneshot::Sender<Answer>,
}

struct Actor {
    cfg: SimConfig,
    server: &'static dyn VenueServer,
    source: Box<dyn FrameSource + Send>,
    stats: Arc<Stats>,
    conns: Vec<Conn>,
    ws_ordinal: u64,
    rec: SourceRecord,
    /// Where the pulled record goes (routed once, when pulled).
    routed: Routed,
    have_rec: bool,
    exhausted: bool,
    books: SimBooks,
    drop_pending: bool,
    known: std::collections::HashSet<String>,
    held: Vec<Held>,
    /// Depth answers being served ([`Serving`] alive).
    serving: Arc<AtomicUsize>,
    /// Woken when one is released.
    released: Arc<Notify>,
    stall_until: Option<Instant>,
    /// Faulted answers still to give to depth requests.
    rest_failures: std::collections::VecDeque<RestFault>,
    /// Playback clock: (instant, recv_ns) anchor, shifted by pauses.
    anchor: Option<(Instant, i64)>,
    paused_at: Option<Instant>,
    /// Since when playback waits at a snapshot record for a depth request.
    rendezvous_since: Option<Instant>,
}

impl Actor {
    fn new(
        mut cfg: SimConfig,
        (index, venue): (u16, &'static VenueDef),
        source: Box<dyn FrameSource + Send>,
        stats: Arc<Stats>,
    ) -> Self {
        let rest_failures = std::mem::take(&mut cfg.faults.rest_failures).into();
        Actor {
            cfg,
            server: venue.server,
            source,
            stats,
            conns: Vec::new(),
            ws_ordinal: 0,
            rec: SourceRecord::default(),
            routed: Routed::Other,
            have_rec: false,
            exhausted: false,
            books: SimBooks::new(index, venue),
            drop_pending: false,
            known: std::collections::HashSet::new(),
            held: Vec::new(),
            serving: Arc::new(AtomicUsize::new(0)),
            released: Arc::new(Notify::new()),
            stall_until: None,
            rest_failures,
            anchor: None,
            paused_at: None,
            rendezvous_since: None,
        }
    }

    fn playing(&self, now: Instant) -> bool {
        !self.exhausted
            && self.serving.load(Ordering::Acquire) == 0
            && self.stall_until.is_none_or(|t| t <= now)
            && self.conns.iter().filter(|c| !c.subs.is_empty()).count()
                >= self.cfg.min_subscribed.max(1)
            && self.conns.iter().map(|c| c.subs.len()).sum::<usize>() >= self.cfg.min_streams
    }

    /// True while playback should wait at the pending snapshot record for a
    /// client's depth request (see [`SimConfig::snapshot_rendezvous`]).
    fn awaiting_depth_request(&mut self, now: Instant) -> bool {
        let wait = self.cfg.snapshot_rendezvous;
        let at_snapshot = self.have_rec && matches!(self.routed, Routed::Snapshot { .. });
        let depth_client = self.conns.iter().any(|c| {
            !c.dead
                && c.subs
                    .iter()
                    .any(|s| s.key.as_ref().is_some_and(|k| k.kind == StreamKind::Depth))
        });
        if wait.is_zero() || !at_snapshot || !self.held.is_empty() || !depth_client {
            self.rendezvous_since = None;
            return false;
        }
        let since = *self.rendezvous_since.get_or_insert(now);
        now.saturating_duration_since(since) < wait
    }

    /// Pulls the next record if needed; false at the end of the source.
    fn pull(&mut self) -> bool {
        if self.have_rec {
            return true;
        }
        match self.source.next_record(&mut self.rec) {
            Ok(true) => {
                self.have_rec = true;
                self.routed = self.server.route(&self.rec.frame);
                true
            }
            Ok(false) => false,
            Err(e) => {
                if let Ok(mut g) = self.stats.error.lock() {
                    *g = Some(e.to_string());
                }
                false
            }
        }
    }

    fn due(&mut self, now: Instant) -> Instant {
        match self.cfg.speed {
            Speed::Max => now,
            Speed::Factor(f) => {
                let (t0, ns0) = *self.anchor.get_or_insert((now, self.rec.recv_ns));
                let gap = (self.rec.recv_ns - ns0).max(0) as f64 / f.max(1e-9);
                t0 + Duration::from_nanos(gap as u64)
            }
        }
    }

    async fn run(mut self, mut ctl_rx: mpsc::Receiver<Ctl>) -> io::Result<()> {
        let mut ping = tokio::time::interval(self.cfg.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            let now = Instant::now();
            if self.stall_until.is_some_and(|t| t <= now) {
                self.stall_until = None;
            }
            let mut playing = self.playing(now);
            if playing && !self.pull() {
                self.finish().await;
                playing = false;
            }
            let mut rendezvous_end = None;
            if playing && self.awaiting_depth_request(now) {
                playing = false;
                rendezvous_end = self
                    .rendezvous_since
                    .map(|t| t + self.cfg.snapshot_rendezvous);
            }
            // Stop / restart the playback clock.
            match (playing, self.paused_at) {
                (false, None) => self.paused_at = Some(now),
                (true, Some(p)) => {
                    if let Some((t0, _)) = self.anchor.as_mut() {
                        *t0 += now - p;
                    }
                    self.paused_at = None;
                }
                _ => {}
            }
            let due = if playing { self.due(now) } else { now };
            let stall = self.stall_until;
            let close_due = self.conns.iter().filter_map(|c| c.close_at).min();
            tokio::select! {
                biased;
                c = ctl_rx.recv() => match c {
                    Some(c) => self.control(c).await,
                    None => return Ok(()),
                },
                () = self.released.notified() => {}
                _ = ping.tick() => {
                    for c in &mut self.conns {
                        if c.sink.send(Message::Ping(Bytes::from_static(b"wiresignal"))).await.is_err() {
                            c.dead = true;
                        }
                    }
                    self.reap();
                }
                _ = tokio::time::sleep_until(stall.unwrap_or(now)), if stall.is_some() => {}
                _ = tokio::time::sleep_until(close_due.unwrap_or(now)), if close_due.is_some() => {
                    self.close_due(Instant::now()).await;
                }
                _ = tokio::time::sleep_until(rendezvous_end.unwrap_or(now)), if rendezvous_end.is_some() => {}
                _ = tokio::time::sleep_until(due), if playing => self.play_batch().await,
            }
        }
    }

    async fn finish(&mut self) {
        self.exhausted = true;
        self.stats.exhausted.store(true, Ordering::Release);
        for h in std::mem::take(&mut self.held) {
            let (status, body) = self.unanswerable(&h.symbol);
            // Playback is over: nothing to pause.
            let _ = h.reply.send(Reply::status_line(status, body).into());
        }
        if self.cfg.at_end == EndBehaviour::Close {
            for c in &mut self.conns {
                let _ = c.sink.send(Message::Close(None)).await;
            }
            self.conns.clear();
            self.stats.connections.store(0, Ordering::Release);
        }
    }

    /// Closes the connections whose planned close is due (the closing fault).
    async fn close_due(&mut self, now: Instant) {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        for c in &mut self.conns {
            if c.close_at.is_some_and(|t| t <= now) {
                c.close_at = None;
                let frame = CloseFrame {
                    code: CloseCode::Away,
                    reason: "server shutdown".into(),
                };
                let _ = c.sink.send(Message::Close(Some(frame))).await;
                c.dead = true;
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        let before = self.conns.len();
        self.conns.retain(|c| !c.dead);
        let gone = (before - self.conns.len()) as u64;
        if gone > 0 {
            self.stats.connections.fetch_sub(gone, Ordering::AcqRel);
        }
    }

    async fn control(&mut self, c: Ctl) {
        match c {
            Ctl::Open {
                id,
                sink,
                kill,
                combined,
                streams,
            } => {
                let faulty = self
                    .cfg
                    .fault_connections
                    .is_none_or(|n| self.ws_ordinal < n);
                self.ws_ordinal += 1;
                let subs = streams
                    .into_iter()
                    .map(|name| Sub {
                        key: self.server.stream_key(&name),
                        name,
                    })
                    .collect();
                self.conns.push(Conn {
                    id,
                    sink,
                    _kill: kill,
                    combined,
                    subs,
                    frames: 0,
                    depth_seen: 0,
                    seq: 0,
                    close_at: None,
                    shifts: Vec::new(),
                    faulty,
                    dirty: false,
                    dead: false,
                });
                self.stats.connections.fetch_add(1, Ordering::AcqRel);
                if self.exhausted && self.cfg.at_end == EndBehaviour::Close {
                    if let Some(mut c) = self.conns.pop() {
                        let _ = c.sink.send(Message::Close(None)).await;
                        self.stats.connections.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
            Ctl::Msg { id, msg } => {
                let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) else {
                    return;
                };
                if let Message::Text(t) = msg {
                    let mut names: Vec<String> = conn.subs.iter().map(|s| s.name.clone()).collect();
                    let before = names.clone();
                    let mut replies = Vec::new();
                    self.server
                        .on_client_text(&mut names, t.as_str(), &mut replies);
                    // Keep existing subscriptions' state; add the new ones.
                    conn.subs.retain(|s| names.contains(&s.name));
                    for name in names {
                        if !conn.subs.iter().any(|s| s.name == name) {
                            conn.subs.push(Sub {
                                key: self.server.stream_key(&name),
                                name,
                            });
                        }
                    }
                    // Venues that start books on the stream send a snapshot of
                    // each newly subscribed book, after the acks.
                    if self.server.snapshot_on_subscribe() {
                        for s in conn.subs.iter().filter(|s| !before.contains(&s.name)) {
                            let Some(k) = s.key.as_ref().filter(|k| k.kind == StreamKind::Depth)
                            else {
                                continue;
                            };
                            if !self.cfg.stream_snapshots {
                                break;
                            }
                            let levels = self.server.snapshot_levels();
                            let snap = self
                                .books
                                .snapshot(self.server, &k.symbol, levels, false)
                                .or_else(|| {
                                    self.source.synthesize_stream_snapshot(&k.symbol, levels)
                                });
                            if let Some(snap) = snap {
                                // In the numbering of a restarted book.
                                let shift = conn.shifts.iter().find(|(sk, _)| sk == k);
                                replies.push(
                                    shift
                                        .and_then(|(_, n)| self.server.renumber(&snap, *n))
                                        .unwrap_or(snap),
                                );
                            }
                        }
                    }
                    for mut reply in replies {
                        if let Some(stamped) = self.server.stamp(&reply, conn.seq) {
                            reply = stamped;
                        }
                        conn.seq += 1;
                        if conn.sink.send(Message::text(reply)).await.is_err() {
                            conn.dead = true;
                            self.reap();
                            break;
                        }
                    }
                }
                // Pings are answered by tungstenite itself (the pong is
                // flushed by the reader); close frames end the reader.
            }
            Ctl::Gone { id } => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                    c.dead = true;
                }
                self.reap();
            }
            Ctl::Depth {
                symbol,
                limit,
                reply,
            } => {
                if let Ok(mut v) = self.stats.depth_requests.lock() {
                    v.push(Instant::now());
                }
                if let Some(fault) = self.rest_failures.pop_front() {
                    let _ = reply.send(fault_answer(fault));
                } else if let Some(body) = self.source.synthesize_snapshot(&symbol, limit) {
                    self.serve(reply, "200 OK", body);
                } else if self.source.has_live_book() {
                    let (status, body) = self.server.unknown_symbol();
                    self.serve(reply, status, body);
                } else if let Some(body) = self.books.snapshot(self.server, &symbol, limit, true) {
                    self.serve(reply, "200 OK", body);
                } else if self.exhausted {
                    let (status, body) = self.unanswerable(&symbol);
                    self.serve(reply, status, body);
                } else {
                    self.held.push(Held { symbol, reply });
                }
            }
        }
    }

    /// The reply to a depth request that cannot be answered: no snapshot
    /// for a symbol the source mentions, else an unknown symbol.
    fn unanswerable(&self, symbol: &str) -> (&'static str, String) {
        if self.known.contains(&symbol.to_ascii_lowercase()) {
            self.server.no_snapshot()
        } else {
            self.server.unknown_symbol()
        }
    }

    /// Answers a depth request; playback pauses until the client closes the
    /// connection (at most [`SimConfig::http_eof_timeout`]). A client already
    /// gone drops the answer, and with it the pause, at once.
    fn serve(&mut self, reply: oneshot::Sender<Answer>, status: &'static str, body: String) {
        self.serving.fetch_add(1, Ordering::AcqRel);
        let serving = Serving {
            count: Arc::clone(&self.serving),
            released: Arc::clone(&self.released),
        };
        self.stats.depth_served.fetch_add(1, Ordering::AcqRel);
        let until = Instant::now() + self.cfg.http_eof_timeout;
        let answer = Reply::status_line(status, body).lease(Lease::new(serving, until));
        let _ = reply.send(answer.into());
    }

    /// Plays due records (up to a batch), then flushes every touched sink.
    async fn play_batch(&mut self) {
        let mut n = 0;
        loop {
            self.play_one().await;
            n += 1;
            let now = Instant::now();
            if n >= 256
                || self.drop_pending
                || !self.playing(now)
                || !self.pull()
                || self.awaiting_depth_request(now)
                || self.due(now) > now
            {
                break;
            }
        }
        for c in &mut self.conns {
            if c.dirty {
                c.dirty = false;
                if c.sink.flush().await.is_err() {
                    c.dead = true;
                }
            }
        }
        // Drop faults: close after the flush so the client gets every frame.
        self.drop_pending = false;
        let drop_after = self.cfg.faults.drop_after_frames;
        for c in &mut self.conns {
            if c.faulty && drop_after.is_some_and(|n| c.frames >= n) {
                c.dead = true;
            }
        }
        self.reap();
    }

    async fn play_one(&mut self) {
        self.have_rec = false;
        self.stats.records_played.fetch_add(1, Ordering::AcqRel);
        let frame = std::mem::take(&mut self.rec.frame);
        let routed = std::mem::replace(&mut self.routed, Routed::Other);
        match &routed {
            Routed::Stream {
                key,
                payload,
                wrapper_stream,
            } => {
                let mut snapshot = None;
                if key.kind == StreamKind::Depth {
                    snapshot = self.books.play(self.rec.recv_ns, &frame);
                }
                if let Some(sym) = snapshot {
                    // Depth requests held until this book existed.
                    let (now, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
                        .into_iter()
                        .partition(|h| h.symbol.eq_ignore_ascii_case(sym.as_str()));
                    self.held = rest;
                    for h in now {
                        if let Some(body) = self.books.snapshot(self.server, &h.symbol, 400, true) {
                            self.serve(h.reply, "200 OK", body);
                        }
                    }
                }
                if snapshot.is_none() || self.cfg.stream_snapshots {
                    self.send(&frame, payload, wrapper_stream.as_deref(), key)
                        .await;
                }
                self.known.insert(key.symbol.clone());
            }
            Routed::Snapshot { symbol, payload } => {
                let symbol = symbol
                    .clone()
                    .or_else(|| self.source.snapshot_symbol().map(str::to_string));
                if let Some(symbol) = symbol {
                    self.books
                        .set_capture_symbols(std::slice::from_ref(&symbol));
                    self.books.play(self.rec.recv_ns, &frame);
                    let body = frame[payload.clone()].to_string();
                    let (now, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
                        .into_iter()
                        .partition(|h| h.symbol.eq_ignore_ascii_case(&symbol));
                    self.held = rest;
                    // Flush before answering so every frame played so far
                    // precedes the snapshot.
                    for c in &mut self.conns {
                        if c.dirty {
                            c.dirty = false;
                            if c.sink.flush().await.is_err() {
                                c.dead = true;
                            }
                        }
                    }
                    for h in now {
                        self.serve(h.reply, "200 OK", body.clone());
                    }
                    self.known.insert(symbol.to_ascii_lowercase());
                }
            }
            Routed::Other => {}
        }
        self.rec.frame = frame;
    }

    async fn send(
        &mut self,
        frame: &str,
        payload: &std::ops::Range<usize>,
        wrapper: Option<&str>,
        key: &StreamKey,
    ) {
        let kind = key.kind;
        let mut raw: Option<Utf8Bytes> = None;
        let mut total = 0u64;
        let stall = self.cfg.faults.stall;
        let drop_after = self.cfg.faults.drop_after_frames;
        let garbage_every = self.cfg.faults.garbage_every;
        for c in &mut self.conns {
            if c.dead || (c.faulty && drop_after.is_some_and(|n| c.frames >= n)) {
                continue;
            }
            let subscribed = c.subs.iter().any(|s| s.key.as_ref() == Some(key));
            if self.cfg.faults.broadcast && c.faulty && !subscribed && !c.subs.is_empty() {
                // Nobody asked for it: the frame as the source has it.
                let text = self
                    .server
                    .stamp(frame, c.seq)
                    .unwrap_or_else(|| frame.to_owned());
                c.seq += 1;
                if c.sink
                    .feed(Message::Text(Utf8Bytes::from(text)))
                    .await
                    .is_err()
                {
                    c.dead = true;
                    continue;
                }
                c.dirty = true;
                c.frames += 1;
                total += 1;
                continue;
            }
            let mut depth_counted = false;
            let mut corrupt = false;
            let mut reorder = false;
            let mut restart = false;
            for s in &c.subs {
                if s.key.as_ref() != Some(key) {
                    continue;
                }
                if kind == StreamKind::Depth && !depth_counted {
                    depth_counted = true;
                    c.depth_seen += 1;
                    if c.faulty && self.cfg.faults.skip_depth_at.contains(&c.depth_seen) {
                        // A lost message: where messages are numbered, the
                        // next one shows the hole.
                        c.seq += 1;
                        break;
                    }
                    corrupt =
                        c.faulty && self.cfg.faults.corrupt_checksum_at.contains(&c.depth_seen);
                    reorder = c.faulty && self.cfg.faults.reorder_levels_at.contains(&c.depth_seen);
                    restart = c.faulty && self.cfg.faults.restart_at.contains(&c.depth_seen);
                }
                let shift = c.shifts.iter().find(|(k, _)| k == key).map(|(_, n)| *n);
                let corrupted = if restart {
                    let restarted = self
                        .books
                        .snapshot(self.server, &key.symbol, 1000, false)
                        .and_then(|snap| self.server.restart(&snap));
                    restarted.map(|(frame, n)| {
                        c.shifts.retain(|(k, _)| k != key);
                        c.shifts.push((key.clone(), n));
                        frame
                    })
                } else if corrupt {
                    self.server.corrupt_checksum(&frame[payload.clone()])
                } else if reorder {
                    self.server.reorder_levels(&frame[payload.clone()])
                } else if let Some(n) = shift {
                    self.server.renumber(&frame[payload.clone()], n)
                } else {
                    None
                };
                let numbered = self.server.stamp(&frame[payload.clone()], c.seq);
                c.seq += 1;
                let msg = if let Some(bad) = corrupted {
                    Utf8Bytes::from(self.server.stamp(&bad, c.seq - 1).unwrap_or(bad))
                } else if let Some(stamped) = numbered {
                    Utf8Bytes::from(stamped)
                } else if c.combined {
                    if wrapper == Some(s.name.as_str()) {
                        Utf8Bytes::from(frame)
                    } else {
                        let p = &frame[payload.clone()];
                        let mut w = String::with_capacity(p.len() + s.name.len() + 22);
                        self.server.wrap(&s.name, p, &mut w);
                        Utf8Bytes::from(w)
                    }
                } else {
                    raw.get_or_insert_with(|| Utf8Bytes::from(&frame[payload.clone()]))
                        .clone()
                };
                if c.sink.feed(Message::Text(msg)).await.is_err() {
                    c.dead = true;
                    break;
                }
                c.dirty = true;
                c.frames += 1;
                total += 1;
                if let Some((n, after)) = self.cfg.faults.closing_after {
                    if c.faulty && c.frames == n {
                        if let Some(notice) = self.server.closing_notice() {
                            if c.sink
                                .feed(Message::Text(Utf8Bytes::from(notice)))
                                .await
                                .is_err()
                            {
                                c.dead = true;
                                break;
                            }
                        }
                        c.close_at = Some(Instant::now() + after);
                    }
                }
                if c.faulty && garbage_every.is_some_and(|n| n > 0 && c.frames % n == 0) {
                    let bad = Message::Text(Utf8Bytes::from_static(r#"{"e":"trade","s":[1,"#));
                    if c.sink.feed(bad).await.is_err() {
                        c.dead = true;
                        break;
                    }
                }
                if c.faulty && drop_after == Some(c.frames) {
                    self.drop_pending = true;
                    break;
                }
                if c.faulty {
                    if let Some((after, dur)) = stall {
                        if c.frames == after {
                            self.stall_until = Some(Instant::now() + dur);
                        }
                    }
                }
            }
        }
        self.stats.frames_sent.fetch_add(total, Ordering::AcqRel);
    }
}
