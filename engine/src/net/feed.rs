//! The per-connection WebSocket feed loop.
//!
//! [`run_feed`] owns one WebSocket connection (and its reconnects) plus at most one
//! in-flight REST snapshot, which the process's REST control thread performs
//! ([`super::http::submit`]): the receiver only parses its body. It is meant for a
//! tokio current-thread runtime driven by the engine's pinned receiver thread.
//! Ordering contract, which makes runs against the simulator deterministic: every
//! WebSocket frame that is readable when a snapshot's answer arrives is delivered to
//! [`FeedHandler::on_frame`] before the snapshot is delivered to
//! [`FeedHandler::on_snapshot`]; and the snapshot's HTTP connection is closed right
//! before `on_snapshot` runs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{watch, Notify};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use super::conn::{ConnMachine, Down, SnapshotFailure, Up};
use super::http::{self, Answer, HttpError, Pending, RateHeaders};
use super::socket::{Compression, FeedSocket, Plain, SocketError};
use crate::pipeline::stats::Counter;
/// Upper bound on sending our Close frame at shutdown.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Initial capacity of the reused frame buffer (grows to the largest frame seen).
pub(super) const FRAME_BUF: usize = 64 << 10;

/// The one snapshot in flight, performed by the REST control thread. Its
/// answer is taken when it arrives but delivered only once no WebSocket frame
/// is readable, so it never overtakes a frame that came before it.
pub(super) struct InFlight {
    pub symbol: String,
    pub pending: Pending,
    /// The answer, held behind the frames readable when it came.
    pub ready: Option<Result<Answer, HttpError>>,
}

impl InFlight {
    /// Submits the snapshot request of `symbol` to the control thread.
    pub fn start(opts: &FeedOptions, symbol: String) -> Self {
        let url = format!("{}{}", opts.rest_base, (opts.snapshot_path)(&symbol));
        Self {
            symbol,
            pending: http::submit(url, opts.http_timeout, http::MAX_BODY),
            ready: None,
        }
    }

    /// Delivers the held answer: the connection is closed, then the body
    /// goes to the handler (or the failure to the machine).
    pub fn deliver(
        self,
        m: &mut ConnMachine<'_>,
        opts: &FeedOptions,
        handler: &mut impl FeedHandler,
    ) {
        let recv_ns = realtime_ns();
        match self.ready {
            Some(Ok(mut answer)) => {
                answer.close();
                let rate = answer.response.rate;
                let body = &mut answer.response.body;
                snapshot_arrived(m, opts, handler, &self.symbol, recv_ns, body, rate);
            }
            Some(Err(e)) => snapshot_error(m, handler, &self.symbol, &e),
            None => {}
        }
    }
}

/// Maps a symbol to the REST path (with query) of its snapshot, appended to `rest_base`.
pub type SnapshotPath = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Configuration of one feed connection.
#[derive(Clone)]
pub struct FeedOptions {
    /// Full WebSocket URL, `ws://` or `wss://`, including combined-stream query.
    pub ws_url: String,
    /// Text messages sent after every (re)connect, in order, one per
    /// `send_interval` (the venue's message rate limit).
    pub subscribe: Vec<String>,
    /// Least time between two subscribe messages.
    pub send_interval: Duration,
    /// REST base URL without trailing slash, e.g. `https://api.binance.com`.
    pub rest_base: String,
    /// Snapshots fetched after every (re)connect, in this order.
    pub snapshot_symbols: Vec<String>,
    /// Symbol → path and query, e.g. `|s| format!("/api/v3/depth?symbol={s}&limit=1000")`.
    pub snapshot_path: SnapshotPath,
    /// Reconnect backoff: `(initial, max, jitter_fraction)`, see [`Backoff`].
    pub backoff: (Duration, Duration, f64),
    /// Bound on TCP connect + TLS + WebSocket handshake + subscribe.
    pub connect_timeout: Duration,
    /// Client Ping period; `Duration::ZERO` disables pings.
    pub ping_interval: Duration,
    /// Send this text instead of a WebSocket Ping (an application-level
    /// heartbeat such as Kraken's `{"event":"ping"}`).
    pub ping_text: Option<String>,
    /// Symbols whose books recover by resubscribing: the messages that do
    /// it (a request for such a symbol sends them instead of a snapshot).
    pub resubscribe: std::collections::HashMap<String, Vec<String>>,
    /// Reconnect when no message (of any kind) arrived for this long; zero disables.
    pub idle_timeout: Duration,
    /// The data watchdog: reconnect when no market data arrived for this
    /// long — heartbeats, pings, pongs and acks do not count (a connection
    /// that stays open but sends nothing is replaced); zero disables.
    pub data_timeout: Duration,
    /// A session counts as healthy, and the reconnect backoff starts over,
    /// only after it stayed up this long with its books in sync (no
    /// recovery pending, in flight or waiting out a retry): a server
    /// dropping every few hundred frames cannot reset it.
    pub healthy_after: Duration,
    /// Connection attempts of the venue, shared by all its connections in
    /// the process (`None`: unlimited).
    pub connect_budget: Option<Arc<crate::net::budget::Budget>>,
    /// REST weight of the venue, shared likewise (`None`: unlimited).
    pub rest_budget: Option<Arc<crate::net::budget::Budget>>,
    /// Weight of one snapshot request against `rest_budget`.
    pub snapshot_weight: u32,
    /// Backoff of one instrument's failed snapshot requests: full jitter
    /// over `(base, max)`, or the venue's `Retry-After` when it sent one.
    pub retry_backoff: (Duration, Duration),
    /// Planned rollover: after this long a connection is replaced make
    /// before break (the venue's lifetime minus a lead); zero: only when
    /// the venue announces a shutdown.
    pub rollover_after: Duration,
    /// How long both connections run side by side once the replacement
    /// delivers data (duplicates are dropped by update and trade id).
    pub rollover_overlap: Duration,
    /// Bound on one snapshot GET.
    pub http_timeout: Duration,
    /// Stop after this many reconnect attempts (`Some(0)`: never reconnect).
    pub max_reconnects: Option<u64>,
    /// Offer permessage-deflate in the handshake ([`Compression`]).
    pub compression: Compression,
    /// Counts the bytes read from the TCP socket of every connection
    /// (framing, compressed payloads and TLS included); `None`: not counted.
    pub wire_bytes: Option<Arc<Counter>>,
}

impl fmt::Debug for FeedOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedOptions")
            .field("ws_url", &self.ws_url)
            // Requests may carry credentials (a Coinbase JWT): never printed.
            .field("subscribe", &self.subscribe.len())
            .field("send_interval", &self.send_interval)
            .field("rest_base", &self.rest_base)
            .field("snapshot_symbols", &self.snapshot_symbols)
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("ping_text", &self.ping_text)
            .field("idle_timeout", &self.idle_timeout)
            .field("data_timeout", &self.data_timeout)
            .field("healthy_after", &self.healthy_after)
            .field("snapshot_weight", &self.snapshot_weight)
            .field("retry_backoff", &self.retry_backoff)
            .field("rollover_after", &self.rollover_after)
            .field("rollover_overlap", &self.rollover_overlap)
            .field("http_timeout", &self.http_timeout)
            .field("max_reconnects", &self.max_reconnects)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl FeedOptions {
    /// Options for `ws_url` with snapshots from `rest_base`: no subscribe
    /// messages, no snapshot symbols, backoff 100 ms → 5 s (30 % jitter),
    /// 10 s connect and HTTP timeouts, pings every 20 s, 60 s idle timeout.
    #[must_use]
    pub fn new(ws_url: &str, rest_base: &str) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            subscribe: Vec::new(),
            send_interval: Duration::from_millis(250),
            rest_base: rest_base.trim_end_matches('/').to_owned(),
            snapshot_symbols: Vec::new(),
            snapshot_path: Arc::new(|_: &str| String::new()),
            backoff: (Duration::from_millis(100), Duration::from_secs(5), 0.3),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            ping_text: None,
            resubscribe: std::collections::HashMap::new(),
            idle_timeout: Duration::from_secs(60),
            data_timeout: Duration::ZERO,
            healthy_after: super::conn::HEALTHY_UPTIME,
            connect_budget: None,
            rest_budget: None,
            snapshot_weight: 1,
            retry_backoff: (Duration::from_millis(250), Duration::from_secs(30)),
            rollover_after: Duration::ZERO,
            rollover_overlap: Duration::from_secs(2),
            http_timeout: Duration::from_secs(10),
            max_reconnects: None,
            compression: Compression::None,
            wire_bytes: None,
        }
    }
}

/// Callbacks from [`run_feed`], all on the feed thread.
///
/// Every `on_connected` is followed by exactly one `on_disconnected` (also at
/// shutdown) before the next `on_connected`.
pub trait FeedHandler {
    /// The WebSocket is up; subscribe messages (if any) follow, paced.
    fn on_connected(&mut self);
    /// Right after [`on_connected`](Self::on_connected) on a feed that
    /// offered permessage-deflate: whether the server agreed (`false`: it
    /// declined, the connection runs uncompressed).
    fn on_compression(&mut self, _agreed: bool) {}
    /// The connection is gone (`reason` is human-readable); books are now unsynced.
    fn on_disconnected(&mut self, reason: &str);
    /// A text or binary message payload, in a buffer reused across frames.
    /// `recv_ns` is `CLOCK_REALTIME` in ns when the message was taken off the socket.
    fn on_frame(&mut self, recv_ns: i64, frame: &mut [u8]);
    /// Whether the frame just delivered was market data (the data watchdog
    /// ignores heartbeats, acks and pongs). Default: every frame is.
    fn frame_was_data(&self) -> bool {
        true
    }
    /// Whether the venue announced (in the frame just delivered) that it
    /// will close this connection soon: a rollover starts. Default: never.
    fn take_closing_notice(&mut self) -> bool {
        false
    }
    /// The connection was replaced make before break (books kept).
    fn on_rollover(&mut self) {}
    /// A snapshot body (2xx) for `symbol`; its HTTP connection is already closed.
    fn on_snapshot(&mut self, symbol: &str, recv_ns: i64, body: &mut [u8]);
    /// Whether the snapshot just delivered was a book (a 2xx error body is
    /// retried like a failed request). Default: it was.
    fn snapshot_was_usable(&self) -> bool {
        true
    }
    /// A snapshot request failed; the connection machine retries it after
    /// its backoff (`err` names the delay).
    fn on_snapshot_error(&mut self, symbol: &str, err: &str);
    /// A connect attempt (TCP, TLS, handshake or subscribe) failed; a retry follows
    /// after the backoff unless `max_reconnects` is exhausted.
    fn on_connect_error(&mut self, _err: &str) {}
    /// Polled after each loop event (frame, snapshot, tick); `true` ends [`run_feed`].
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Moves events that waited in the overflow stage (a full ring) on to
    /// the signal threads; `true`: some are still waiting, so the loop must
    /// poll again soon rather than sleep until the next frame. Default:
    /// nothing is ever staged.
    fn drain_staged(&mut self) -> bool {
        false
    }
    /// The frames readable at one wake-up follow ([`RecvBatch`]): the
    /// handler may hold its downstream wake-ups until [`end_batch`](Self::end_batch).
    fn begin_batch(&mut self) {}
    /// The batch is over (nothing more was readable, or it reached
    /// [`RecvBatch::MAX`] frames): wake downstream once.
    fn end_batch(&mut self) {}
}

/// The frames read in one wake-up of a receive loop: the loop reads on
/// while frames are readable (up to [`RecvBatch::MAX`]). The first frame
/// wakes the signal threads at once (its latency is a lone frame's); the
/// rest of the batch is pushed without a wake-up each and the handler wakes
/// them once at its end — so a burst of n frames costs at most two
/// wake-ups, and a thread that is awake anyway sees every push at once.
#[derive(Debug, Default)]
pub(super) struct RecvBatch {
    frames: u32,
}

impl RecvBatch {
    /// Frames per batch at most, so timers and sends are looked at between
    /// batches even when the socket never runs dry.
    pub(super) const MAX: u32 = 64;

    /// A frame was read (call before delivering it); the second opens the
    /// handler's batch. Whether the batch may take another one after it.
    #[inline]
    pub(super) fn frame(&mut self, handler: &mut impl FeedHandler) -> bool {
        if self.frames == 1 {
            handler.begin_batch();
        }
        self.frames += 1;
        self.frames < Self::MAX
    }

    /// Nothing more is readable (or the batch is full): closes it.
    #[inline]
    pub(super) fn end(&mut self, handler: &mut impl FeedHandler) {
        if self.frames > 1 {
            handler.end_batch();
        }
        self.frames = 0;
    }
}

/// Snapshot requests shared with other threads (e.g. the signal thread after a
/// sequence gap). Duplicate pending requests are merged.
#[derive(Debug, Default)]
pub struct SnapshotRequests {
    queue: Mutex<VecDeque<String>>,
    /// Symbols whose pending request must be a REST fetch even on a venue
    /// that recovers by resubscribing (a book the stream never started).
    fetch: Mutex<Vec<String>>,
    /// Cheap "queue non-empty" hint so the hot loop does not take the lock per frame.
    pending: AtomicBool,
    notify: Notify,
}

impl SnapshotRequests {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the feed loop to fetch a snapshot of `symbol` (no-op if already pending).
    pub fn request(&self, symbol: &str) {
        {
            let mut q = self.lock();
            if q.iter().any(|s| s == symbol) {
                return;
            }
            q.push_back(symbol.to_owned());
            self.pending.store(true, Ordering::Release);
        }
        self.notify.notify_one();
    }

    /// Ask for a REST snapshot of `symbol` even where the venue recovers by
    /// resubscribing (bootstrapping a book the stream never sent a snapshot of).
    pub fn request_fetch(&self, symbol: &str) {
        {
            let mut f = self.fetch.lock().unwrap_or_else(PoisonError::into_inner);
            if !f.iter().any(|s| s == symbol) {
                f.push(symbol.to_owned());
            }
        }
        self.request(symbol);
    }

    /// Whether the request just popped for `symbol` must be a fetch (clears the mark).
    pub(super) fn take_fetch(&self, symbol: &str) -> bool {
        let mut f = self.fetch.lock().unwrap_or_else(PoisonError::into_inner);
        match f.iter().position(|s| s == symbol) {
            Some(i) => {
                f.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether no request is waiting (one atomic load).
    #[must_use]
    pub fn is_idle(&self) -> bool {
        !self.pending.load(Ordering::Acquire)
    }

    /// Symbols waiting to be fetched (not counting the one in flight), in order.
    #[must_use]
    pub fn pending(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn pop(&self) -> Option<String> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.lock();
        let next = q.pop_front();
        self.pending.store(!q.is_empty(), Ordering::Release);
        next
    }

    /// Put `first` (in order) at the front, ahead of other pending requests, and
    /// drop their duplicates further back.
    pub(super) fn prepend<'a>(&self, first: impl DoubleEndedIterator<Item = &'a str>) {
        let mut q = self.lock();
        for sym in first.rev() {
            match q.iter().position(|s| s == sym) {
                Some(i) => {
                    if let Some(s) = q.remove(i) {
                        q.push_front(s);
                    }
                }
                None => q.push_front(sym.to_owned()),
            }
        }
        self.pending.store(!q.is_empty(), Ordering::Release);
    }

    async fn notified(&self) {
        self.notify.notified().await;
    }
}

/// Counters returned by [`run_feed`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedStats {
    /// Successful handshakes (each followed by `on_connected`).
    pub connects: u64,
    /// Reconnect attempts after the first connect attempt (successful or not).
    pub reconnects: u64,
    /// Text and binary messages delivered to `on_frame`.
    pub frames: u64,
    /// Payload bytes delivered to `on_frame`.
    pub bytes: u64,
    /// Snapshots delivered to `on_snapshot`.
    pub snapshots: u64,
    /// Snapshot failures delivered to `on_snapshot_error`.
    pub snapshot_errors: u64,
    /// Client Pings sent.
    pub pings_sent: u64,
    /// Pongs received.
    pub pongs: u64,
    /// Snapshot failures scheduled for a retry.
    pub snapshot_retries: u64,
    /// Connect attempts deferred by the venue's connection budget.
    pub connect_waits: u64,
    /// Snapshot requests deferred by the venue's REST budget or pause.
    pub rest_waits: u64,
    /// Connections replaced by the data watchdog.
    pub watchdog_drops: u64,
    /// Connections replaced make before break (planned rollovers).
    pub rollovers: u64,
    /// Rollover attempts that failed (the old connection carried on).
    pub rollover_failures: u64,
}

/// How one connected session ended.
enum SessionEnd {
    Stop,
    Lost,
}

/// Run the feed until `shutdown` turns `true` (or its sender is dropped), the
/// handler asks to stop, or `max_reconnects` is exhausted. Never panics on
/// network input; all network failures end in a reconnect. Every decision
/// (when to connect, subscribe, ping, give up on a silent connection) is the
/// [`ConnMachine`]'s.
pub async fn run_feed(
    opts: FeedOptions,
    requests: Arc<SnapshotRequests>,
    handler: &mut impl FeedHandler,
    shutdown: watch::Receiver<bool>,
) -> FeedStats {
    // One session loop; only the socket type differs (see `super::socket`).
    match opts.compression {
        Compression::None => run_feed_on::<Plain>(opts, requests, handler, shutdown).await,
        #[cfg(feature = "deflate")]
        Compression::Deflate => {
            run_feed_on::<super::socket::Deflate>(opts, requests, handler, shutdown).await
        }
        #[cfg(not(feature = "deflate"))]
        Compression::Deflate => {
            // Rejected by the configuration; reached only by a programmatic caller.
            handler.on_connect_error("permessage-deflate needs the engine's `deflate` feature");
            FeedStats::default()
        }
    }
}

async fn run_feed_on<W: FeedSocket>(
    opts: FeedOptions,
    requests: Arc<SnapshotRequests>,
    handler: &mut impl FeedHandler,
    mut shutdown: watch::Receiver<bool>,
) -> FeedStats {
    let mut m = ConnMachine::new(&opts);
    let mut frame_buf = Vec::with_capacity(FRAME_BUF);
    loop {
        if *shutdown.borrow() || stop_requested(&mut shutdown) || handler.should_stop() {
            break;
        }
        match m.poll_down(Instant::now()) {
            Down::Stop => break,
            Down::Wait(t) => tokio::select! {
                biased;
                () = wait_shutdown(&mut shutdown) => break,
                () = tokio::time::sleep_until(t.into()) => {}
            },
            Down::Connect => {
                let connected = tokio::select! {
                    biased;
                    () = wait_shutdown(&mut shutdown) => break,
                    r = timeout(opts.connect_timeout, W::connect(&opts)) => {
                        r.unwrap_or_else(|_| Err(format!("connect timed out after {:?}", opts.connect_timeout)))
                    }
                };
                match connected {
                    Ok(mut ws) => {
                        m.connected(Instant::now(), &requests);
                        handler.on_connected();
                        if let Some(agreed) = ws.compression() {
                            handler.on_compression(agreed);
                        }
                        let end = session(
                            &mut m,
                            &opts,
                            &mut ws,
                            &requests,
                            handler,
                            &mut shutdown,
                            &mut frame_buf,
                        )
                        .await;
                        if let SessionEnd::Stop = end {
                            // Best effort: tell the server, but never hang on it.
                            let _ = timeout(CLOSE_TIMEOUT, ws.close()).await;
                            handler.on_disconnected("shutdown");
                            break;
                        }
                    }
                    Err(err) => {
                        handler.on_connect_error(&err);
                        m.connect_failed(Instant::now());
                    }
                }
            }
        }
    }
    m.stop();
    m.stats
}

/// Runs several connections of one feed concurrently on the current
/// thread's runtime, each with its own handler (handlers that share state
/// use `Rc<RefCell<_>>`: callbacks never overlap on one thread). Returns
/// each connection's counters, in order.
pub async fn run_feeds<H: FeedHandler>(
    conns: Vec<(FeedOptions, Arc<SnapshotRequests>, H)>,
    shutdown: watch::Receiver<bool>,
) -> Vec<FeedStats> {
    let runs = conns.into_iter().map(|(opts, requests, mut handler)| {
        let shutdown = shutdown.clone();
        async move { run_feed(opts, requests, &mut handler, shutdown).await }
    });
    futures_util::future::join_all(runs).await
}

/// One connected session: returns when the connection is lost (after
/// telling the machine and the handler) or a stop is requested.
async fn session<W: FeedSocket>(
    m: &mut ConnMachine<'_>,
    opts: &FeedOptions,
    ws: &mut W,
    requests: &SnapshotRequests,
    handler: &mut impl FeedHandler,
    shutdown: &mut watch::Receiver<bool>,
    frame_buf: &mut Vec<u8>,
) -> SessionEnd {
    let mut inflight: Option<InFlight> = None;
    // The replacement connection of a rollover, while both run.
    let mut next: Option<Replacement<W>> = None;
    // `now` is refreshed by every event (a frame reads the clock anyway), so
    // the machine is consulted without a clock read per frame of its own.
    let mut now = Instant::now();
    let mut wake = now;
    // The timer and the shutdown wait are made once per session and
    // re-armed, not made and dropped at every turn of the loop: a new
    // `Sleep` enters the timer wheel and a new `wait_for` the watch's
    // waiters at their first poll, and both leave them (a lock each) when
    // dropped, ~800 instructions per frame (callgrind of a live run).
    let mut timer = std::pin::pin!(tokio::time::sleep_until(wake.into()));
    let mut stop_rx = shutdown.clone();
    let mut stop = std::pin::pin!(wait_shutdown(&mut stop_rx));
    let end = 'session: loop {
        // Make before break: open the replacement, let both run, then switch.
        let notice = handler.take_closing_notice();
        if next.is_none() && m.rollover_due(now, notice) {
            next = open_replacement(m, opts, handler).await;
            // The old socket was not read meanwhile: its timers do not count it.
            let after = Instant::now();
            m.excuse(after.saturating_duration_since(now));
            now = after;
        }
        let mut next_due = None;
        match next.as_ref().map(|n| n.verdict(now, opts)) {
            Some(Verdict::Fail) => {
                next = None;
                m.rollover_failed(now);
            }
            Some(Verdict::Switch) => {
                switch_over(m, ws, &mut next, handler, frame_buf, now).await;
            }
            Some(Verdict::Wait(t)) => next_due = Some(t),
            None => {}
        }
        // Everything the machine wants done now, then its next deadline.
        m.requeue_due(now, requests);
        if inflight.is_none() {
            if let Some(symbol) = m.take_request(now, requests) {
                inflight = Some(InFlight::start(opts, symbol));
            }
        }
        if m.wants_send() {
            wake = now;
        }
        if let Some(t) = m.recovery_due(now) {
            wake = wake.min(t);
        }
        if let Some(t) = m.rollover_at() {
            wake = wake.min(t);
        }
        if let Some(t) = next_due {
            wake = wake.min(t);
        }
        while now >= wake {
            match m.poll_up(now) {
                Up::Wait(t) => wake = t,
                Up::Send(i) => {
                    let text = opts.subscribe[i].as_str();
                    if let Err(e) = ws.send(Message::text(text)).await {
                        break 'session format!("subscribe send failed: {e}");
                    }
                }
                Up::Text(text) => {
                    if let Err(e) = ws.send(Message::text(text)).await {
                        break 'session format!("send failed: {e}");
                    }
                }
                Up::Ping => {
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        break 'session format!("ping send failed: {e}");
                    }
                }
                Up::Drop(reason) => break 'session reason,
            }
        }
        let idle_snapshots = inflight.is_none();
        // Events wait in the overflow stage: poll again right away (frames
        // first) instead of sleeping until the next frame.
        let staged = handler.drain_staged();
        let waiting = inflight.as_ref().is_some_and(|f| f.ready.is_none());
        let held = inflight.as_ref().is_some_and(|f| f.ready.is_some());
        let mut old_ended = false;
        let deadline = tokio::time::Instant::from_std(wake);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }

        tokio::select! {
            biased;
            msg = ws.next() => {
                // Every frame readable now is one batch (one wake-up of the
                // signal threads); a close, an error or the end leave it.
                let mut msg = msg;
                let mut batch = RecvBatch::default();
                let last = loop {
                    let recv_ns = realtime_ns();
                    now = Instant::now();
                    let room = batch.frame(handler);
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            deliver(handler, &mut m.stats, frame_buf, recv_ns, t.as_bytes());
                            m.received(now, handler.frame_was_data());
                        }
                        Some(Ok(Message::Binary(b))) => {
                            deliver(handler, &mut m.stats, frame_buf, recv_ns, &b);
                            m.received(now, handler.frame_was_data());
                        }
                        // tungstenite queued the Pong; the next read (polled right away) flushes it.
                        Some(Ok(Message::Ping(_) | Message::Frame(_))) => m.received(now, false),
                        Some(Ok(Message::Pong(_))) => {
                            m.received(now, false);
                            m.stats.pongs += 1;
                        }
                        other => break Some(other),
                    }
                    if !room || handler.should_stop() {
                        break None;
                    }
                    match ws.next().now_or_never() {
                        Some(more) => msg = more,
                        None => break None,
                    }
                };
                batch.end(handler);
                match last {
                    // Nothing more was readable, or the batch is full.
                    None => {}
                    Some(Some(Ok(Message::Close(frame)))) => {
                        // Answer the close handshake (tungstenite queued the
                        // reply): the venue sees a clean 1000, not 1006.
                        let _ = timeout(CLOSE_TIMEOUT, ws.flush()).await;
                        if next.is_none() {
                            break close_reason(frame.as_ref());
                        }
                        old_ended = true;
                    }
                    Some(Some(Err(e))) if next.is_none() => break format!("websocket error: {e}"),
                    Some(None) if next.is_none() => break "websocket stream ended".to_owned(),
                    // The replacement is up: it takes over (books kept).
                    Some(Some(Err(_)) | None) => old_ended = true,
                    // Data, pings and pongs were handled in the batch.
                    Some(Some(Ok(_))) => {}
                }
            }
            msg = replacement_frame(&mut next) => {
                let recv_ns = realtime_ns();
                now = Instant::now();
                // Held until the switch (see `Replacement::hold`).
                let payload = match &msg {
                    Some(Ok(Message::Text(t))) => Some(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => Some(&b[..]),
                    _ => None,
                };
                match (payload, next.as_mut()) {
                    (Some(p), Some(n)) => n.hold(now, recv_ns, p),
                    (None, Some(_)) if !matches!(msg, Some(Ok(_))) => {
                        next = None;
                        m.rollover_failed(now);
                    }
                    _ => {}
                }
            }
            r = pending(&mut inflight), if waiting => {
                if let Some(f) = inflight.as_mut() {
                    f.ready = Some(r);
                }
                // It came from another thread, not through this runtime's
                // reactor: a yield polls the reactor, so frames that arrived
                // before it are seen readable (and delivered first) next turn.
                tokio::task::yield_now().await;
                now = Instant::now();
            }
            () = std::future::ready(()), if held => {
                if let Some(f) = inflight.take() {
                    f.deliver(m, opts, handler);
                }
                now = Instant::now();
            }
            () = requests.notified(), if idle_snapshots => now = Instant::now(),
            () = stage_pause(), if staged => now = Instant::now(),
            () = timer.as_mut() => now = Instant::now(),
            () = stop.as_mut() => return SessionEnd::Stop,
        }

        if old_ended {
            switch_over(m, ws, &mut next, handler, frame_buf, now).await;
        }
        if handler.should_stop() || stop_requested(shutdown) {
            return SessionEnd::Stop;
        }
    };

    // The connection is gone, and the in-flight snapshot (if any) with it.
    let symbol = inflight.as_ref().map(|f| f.symbol.as_str());
    m.lost(Instant::now(), symbol, requests);
    handler.on_disconnected(&end);
    SessionEnd::Lost
}

/// Frames of a replacement held at most until the switch.
const REPLACEMENT_BUFFER: usize = 100_000;

/// A short pause while events wait in the overflow stage: gives the core to
/// the signal thread that is behind, then the loop drains the stage again.
async fn stage_pause() {
    std::thread::yield_now();
    tokio::task::yield_now().await;
}

/// The replacement connection of a rollover (either loop's socket).
pub(super) struct Replacement<W> {
    pub ws: W,
    /// When it was opened and subscribed.
    opened: Instant,
    /// When it delivered its first frame.
    first_frame: Option<Instant>,
    /// Its frames so far (receive time, payload), delivered at the switch.
    pub buffer: Vec<(i64, Vec<u8>)>,
}

/// What to do with a replacement now.
pub(super) enum Verdict {
    /// Subscribed but silent for `connect_timeout`: give up on it (the old
    /// connection carries on).
    Fail,
    /// Both ran for `rollover_overlap` (or its buffer is full): switch.
    Switch,
    /// Nothing before this instant.
    Wait(Instant),
}

impl<W> Replacement<W> {
    /// A replacement just opened and subscribed.
    pub fn new(ws: W, now: Instant) -> Self {
        Self {
            ws,
            opened: now,
            first_frame: None,
            buffer: Vec::new(),
        }
    }

    /// Holds a frame until the switch: the old connection delivers
    /// everything up to it, then these follow in their own order (what the
    /// old one already gave is dropped by id), so a faster replacement
    /// cannot overtake the old one.
    pub fn hold(&mut self, now: Instant, recv_ns: i64, payload: &[u8]) {
        self.buffer.push((recv_ns, payload.to_vec()));
        self.first_frame.get_or_insert(now);
    }

    pub fn verdict(&self, now: Instant, opts: &FeedOptions) -> Verdict {
        match self.first_frame {
            None if now >= self.opened + opts.connect_timeout => Verdict::Fail,
            None => Verdict::Wait(self.opened + opts.connect_timeout),
            Some(_) if self.buffer.len() >= REPLACEMENT_BUFFER => Verdict::Switch,
            Some(t) if now >= t + opts.rollover_overlap => Verdict::Switch,
            Some(t) => Verdict::Wait(t + opts.rollover_overlap),
        }
    }
}

/// Opens and subscribes the replacement of the current connection (`None`:
/// it failed; the current one carries on and the machine retries later).
async fn open_replacement<W: FeedSocket>(
    m: &mut ConnMachine<'_>,
    opts: &FeedOptions,
    handler: &mut impl FeedHandler,
) -> Option<Replacement<W>> {
    let mut ws = match timeout(opts.connect_timeout, W::connect(opts)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            m.rollover_failed(Instant::now());
            handler.on_connect_error(&format!("rollover: {e}"));
            return None;
        }
        Err(_) => {
            m.rollover_failed(Instant::now());
            handler.on_connect_error("rollover: connect timed out");
            return None;
        }
    };
    for (i, text) in opts.subscribe.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(opts.send_interval).await;
        }
        if ws.send(Message::text(text.as_str())).await.is_err() {
            m.rollover_failed(Instant::now());
            return None;
        }
    }
    Some(Replacement::new(ws, Instant::now()))
}

/// The replacement takes over: the old connection is closed politely, the
/// replacement's held frames are delivered (duplicates of what the old one
/// gave are dropped downstream by update and trade id), and the session
/// carries on with the books as they are.
async fn switch_over<W: FeedSocket>(
    m: &mut ConnMachine<'_>,
    ws: &mut W,
    next: &mut Option<Replacement<W>>,
    handler: &mut impl FeedHandler,
    frame_buf: &mut Vec<u8>,
    now: Instant,
) {
    if let Some(n) = next.take() {
        // The replacement's own handshake decides what runs from now on.
        if let Some(agreed) = n.ws.compression() {
            handler.on_compression(agreed);
        }
        let mut old = std::mem::replace(ws, n.ws);
        let _ = timeout(CLOSE_TIMEOUT, old.close()).await;
        switched(m, handler, frame_buf, &n.buffer, now);
    }
}

/// The replacement took over (the old connection is closed): its held
/// frames are delivered and the handler is told.
pub(super) fn switched(
    m: &mut ConnMachine<'_>,
    handler: &mut impl FeedHandler,
    frame_buf: &mut Vec<u8>,
    held: &[(i64, Vec<u8>)],
    now: Instant,
) {
    m.rolled_over(now);
    // One batch: one wake-up of the consumers, and a receiver under
    // `adaptive` hands the held burst to the signal threads once it has run
    // its budget.
    handler.begin_batch();
    for (recv_ns, frame) in held {
        deliver(handler, &mut m.stats, frame_buf, *recv_ns, frame);
        m.received(now, handler.frame_was_data());
    }
    handler.end_batch();
    handler.on_rollover();
}

/// The next message of the replacement connection (pending while none).
async fn replacement_frame<W: FeedSocket>(
    next: &mut Option<Replacement<W>>,
) -> Option<Result<Message, SocketError>> {
    match next {
        Some(n) => n.ws.next().await,
        None => std::future::pending().await,
    }
}

/// A snapshot answer (2xx): delivered; the venue's reported weight tightens
/// its budget; an unusable body is retried like a failure.
pub(super) fn snapshot_arrived(
    m: &mut ConnMachine<'_>,
    opts: &FeedOptions,
    handler: &mut impl FeedHandler,
    symbol: &str,
    recv_ns: i64,
    body: &mut [u8],
    rate: RateHeaders,
) {
    m.stats.snapshots += 1;
    let now = Instant::now();
    if let (Some(b), Some(used)) = (&opts.rest_budget, rate.used_weight) {
        b.observe_used(now, used);
    }
    handler.on_snapshot(symbol, recv_ns, body);
    if handler.snapshot_was_usable() {
        m.snapshot_ok(symbol);
    } else {
        let d = m.snapshot_failed(now, symbol, SnapshotFailure::Transport);
        handler.on_snapshot_error(symbol, &format!("not a book; retry in {d:.1?}"));
    }
}

/// A failed snapshot request: scheduled for a retry (its delay is logged).
pub(super) fn snapshot_error(
    m: &mut ConnMachine<'_>,
    handler: &mut impl FeedHandler,
    symbol: &str,
    e: &HttpError,
) {
    m.stats.snapshot_errors += 1;
    let failure = match e {
        HttpError::Status {
            status,
            retry_after,
            ..
        } => SnapshotFailure::Status {
            status: *status,
            retry_after: *retry_after,
        },
        _ => SnapshotFailure::Transport,
    };
    let d = m.snapshot_failed(Instant::now(), symbol, failure);
    handler.on_snapshot_error(symbol, &format!("{e}; retry in {d:.1?}"));
}

pub(super) fn deliver(
    handler: &mut impl FeedHandler,
    stats: &mut FeedStats,
    buf: &mut Vec<u8>,
    recv_ns: i64,
    payload: &[u8],
) {
    buf.clear();
    buf.extend_from_slice(payload);
    stats.frames += 1;
    stats.bytes += payload.len() as u64;
    handler.on_frame(recv_ns, buf);
}

/// The in-flight snapshot's answer (pending while there is none).
async fn pending(inflight: &mut Option<InFlight>) -> Result<Answer, HttpError> {
    match inflight {
        Some(f) => (&mut f.pending).await,
        None => std::future::pending().await,
    }
}

/// tungstenite's settings for every feed connection. The read buffer is
/// 16 KiB instead of tungstenite's 128 KiB: tungstenite zero-fills the free
/// part of it before every socket read (`FrameCodec::read_in`), two reads
/// per frame at low rates (the frame, then `WouldBlock`) — 256 KiB of
/// `memset` per frame, 11% of the receiver's CPU at 10k msg/s (perf), and
/// on every empty poll in busy-poll mode. 16 KiB still takes a burst of
/// frames, or most of a big depth frame, per read.
pub(super) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Bytes read from a feed socket at most per read (see [`ws_config`]).
pub(super) const READ_BUFFER: usize = 16 * 1024;

pub(super) fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => format!("closed by server: {} {}", f.code, f.reason),
        Some(f) => format!("closed by server: {}", f.code),
        None => "closed by server".to_owned(),
    }
}

/// Cheap per-event check (one atomic load unless the value changed); a dropped
/// sender counts as shutdown.
fn stop_requested(shutdown: &mut watch::Receiver<bool>) -> bool {
    match shutdown.has_changed() {
        Ok(false) => false,
        Ok(true) => *shutdown.borrow_and_update(),
        Err(_) => true,
    }
}

/// Resolves when shutdown is signalled or its sender is gone.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // `wait_for` errs only when the sender is dropped: treat that as shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// `CLOCK_REALTIME` in nanoseconds (0 before 1970, saturating after 2262).
pub(super) fn realtime_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_dedup_and_prepend() {
        let r = SnapshotRequests::new();
        assert_eq!(r.pop(), None);
        r.request("ETH");
        r.request("BTC");
        r.request("ETH");
        assert_eq!(r.pending(), ["ETH", "BTC"]);
        r.prepend(["BTC", "SOL"].into_iter());
        assert_eq!(r.pending(), ["BTC", "SOL", "ETH"]);
        assert_eq!(r.pop().as_deref(), Some("BTC"));
        assert_eq!(r.pop().as_deref(), Some("SOL"));
        assert_eq!(r.pop().as_deref(), Some("ETH"));
        assert_eq!(r.pop(), None);
        r.request("BTC");
        assert_eq!(r.pop().as_deref(), Some("BTC"));
    }

    #[test]
    fn close_reasons_are_readable() {
        assert_eq!(close_reason(None), "closed by server");
    }
}
