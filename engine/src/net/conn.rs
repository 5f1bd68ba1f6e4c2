//! The connection state machine: connect, subscribe (paced at the venue's
//! message limit), heartbeats, the idle timer, reconnects with backoff and
//! the per-instrument recovery queue — with no socket in it. Both receivers
//! drive it: the tokio loop ([`super::feed::run_feed`]) and the busy-poll
//! loop ([`super::busy::run_feed_busy`]); they only do what it says and
//! tell it what happened, so the two cannot drift apart.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use engine::net::conn::{ConnMachine, Down, Up};
//! use engine::net::{FeedOptions, SnapshotRequests};
//!
//! let mut opts = FeedOptions::new("ws://127.0.0.1:1/stream", "http://127.0.0.1:1");
//! opts.subscribe = vec!["a".into(), "b".into()];
//! opts.send_interval = Duration::from_millis(100);
//! opts.ping_interval = Duration::from_secs(20);
//! opts.snapshot_symbols = vec!["BTCUSDT".into()];
//! let requests = SnapshotRequests::new();
//! let mut m = ConnMachine::new(&opts);
//! let t0 = Instant::now();
//! assert_eq!(m.poll_down(t0), Down::Connect);
//! m.connected(t0, &requests);
//! assert_eq!(requests.pending(), ["BTCUSDT"]); // the book starts on connect
//! assert_eq!(m.poll_up(t0), Up::Send(0)); // first request at once ...
//! assert_eq!(m.poll_up(t0), Up::Wait(t0 + Duration::from_millis(100))); // ... the next paced
//! assert_eq!(m.poll_up(t0 + Duration::from_millis(100)), Up::Send(1));
//! assert_eq!(m.poll_up(t0 + Duration::from_secs(20)), Up::Ping);
//! m.lost(t0 + Duration::from_secs(21), None, &requests);
//! assert!(matches!(m.poll_down(t0 + Duration::from_secs(21)), Down::Wait(_))); // backoff
//! ```

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::budget::full_jitter;
use super::feed::{FeedOptions, FeedStats, SnapshotRequests};

/// A connection that stayed up with its books in sync (no recovery pending,
/// in flight or waiting out a retry) at least this long resets the backoff
/// (the default of [`FeedOptions::healthy_after`]); frames alone do not, so
/// a server that drops every connection after a few hundred frames, or
/// keeps its books from syncing, sees the backoff grow.
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(30);

/// The longest pause a venue's `Retry-After` can impose (a misbehaving
/// server's huge value is clamped; Binance bans last up to 3 days).
pub const MAX_PAUSE: Duration = Duration::from_secs(3 * 24 * 3600);

/// A failed rollover is tried again after this long.
pub const ROLLOVER_RETRY: Duration = Duration::from_secs(10);

/// Pause of a venue that answered 429 or 418 without a `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(30);

/// How a snapshot request failed ([`ConnMachine::snapshot_failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFailure {
    /// The venue answered this status, with its `Retry-After` if sent.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Timeout, connection error, malformed or unusable answer.
    Transport,
}

/// A failed snapshot waiting out its backoff.
#[derive(Debug)]
struct Retry {
    symbol: String,
    due: Instant,
    attempts: u32,
    /// Queued again once due.
    requeued: bool,
    /// A REST fetch on a venue that otherwise resubscribes (a bootstrap).
    fetch: bool,
}

/// What to do while disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// Open a connection now (bounded by `connect_timeout`), then report
    /// [`ConnMachine::connected`] or [`ConnMachine::connect_failed`].
    Connect,
    /// Nothing to do before this instant.
    Wait(Instant),
    /// No more attempts (`max_reconnects` exhausted).
    Stop,
}

/// What to do on an open connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Up {
    /// Send subscribe request `i` of [`FeedOptions::subscribe`].
    Send(usize),
    /// Send a WebSocket Ping.
    Ping,
    /// Send this text (an application heartbeat, or a recovery request).
    Text(String),
    /// Close the connection for this reason, then report [`ConnMachine::lost`].
    Drop(String),
    /// Nothing to do before this instant (unless I/O arrives).
    Wait(Instant),
}

/// An open connection's timers.
#[derive(Debug)]
struct Session {
    started: Instant,
    last_rx: Instant,
    /// Last market-data frame (the data watchdog's clock).
    last_data: Instant,
    frames: u64,
    next_request: usize,
    next_send: Instant,
    next_ping: Option<Instant>,
    /// Messages queued by recoveries, sent paced after the subscribe requests.
    queued: std::collections::VecDeque<String>,
    /// When the planned rollover is due (`None`: none planned).
    rollover_at: Option<Instant>,
    /// Since when no recovery was pending, in flight or waiting for a
    /// retry (`None`: one is): the clock of a healthy session.
    calm_since: Option<Instant>,
}

#[derive(Debug)]
enum Phase {
    Down { retry_at: Instant },
    Up(Session),
    Done,
}

/// The state of one feed connection and its reconnects.
#[derive(Debug)]
pub struct ConnMachine<'a> {
    opts: &'a FeedOptions,
    backoff: Backoff,
    first_attempt: bool,
    phase: Phase,
    /// Failed snapshots waiting out their backoff (one entry per symbol).
    retries: Vec<Retry>,
    /// REST requests wait for the venue's budget until then.
    rest_wait: Option<Instant>,
    /// The request last handed out was a fetch ([`SnapshotRequests::request_fetch`]).
    last_fetch: bool,
    /// A request handed out by `take_request` has no outcome yet.
    inflight: bool,
    /// Counters.
    pub stats: FeedStats,
}

impl<'a> ConnMachine<'a> {
    /// Disconnected, the first attempt due at once.
    #[must_use]
    pub fn new(opts: &'a FeedOptions) -> Self {
        let (initial, max, jitter) = opts.backoff;
        Self {
            opts,
            backoff: Backoff::new(initial, max, jitter),
            first_attempt: true,
            phase: Phase::Down {
                retry_at: Instant::now(),
            },
            retries: Vec::new(),
            rest_wait: None,
            last_fetch: false,
            inflight: false,
            stats: FeedStats::default(),
        }
    }

    /// The next step while disconnected (`Stop` also when connected: the
    /// caller mixed up the phases).
    pub fn poll_down(&mut self, now: Instant) -> Down {
        match self.phase {
            Phase::Down { retry_at } if now >= retry_at => {
                // Attempts per venue stay under its connection limit.
                if let Some(b) = &self.opts.connect_budget {
                    if let Err(t) = b.take(now, 1) {
                        self.stats.connect_waits += 1;
                        self.phase = Phase::Down { retry_at: t };
                        return Down::Wait(t);
                    }
                }
                if !self.first_attempt {
                    self.stats.reconnects += 1;
                }
                self.first_attempt = false;
                Down::Connect
            }
            Phase::Down { retry_at } => Down::Wait(retry_at),
            Phase::Up(_) | Phase::Done => Down::Stop,
        }
    }

    /// The handshake succeeded: the session starts, and every snapshot
    /// symbol is queued ahead of other requests (books start on connect).
    pub fn connected(&mut self, now: Instant, requests: &SnapshotRequests) {
        self.stats.connects += 1;
        let o = self.opts;
        self.phase = Phase::Up(Session {
            started: now,
            last_rx: now,
            last_data: now,
            frames: 0,
            next_request: 0,
            next_send: now,
            next_ping: (!o.ping_interval.is_zero()).then(|| now + o.ping_interval),
            queued: std::collections::VecDeque::new(),
            rollover_at: (!o.rollover_after.is_zero()).then(|| now + o.rollover_after),
            calm_since: None,
        });
        requests.prepend(o.snapshot_symbols.iter().map(String::as_str));
        self.settle(now, requests);
    }

    /// Starts or stops the healthy clock: calm while no recovery is
    /// pending, in flight or waiting out a retry.
    fn settle(&mut self, now: Instant, requests: &SnapshotRequests) {
        let calm = !self.inflight && self.retries.is_empty() && requests.is_idle();
        if let Phase::Up(s) = &mut self.phase {
            if !calm {
                s.calm_since = None;
            } else if s.calm_since.is_none() {
                s.calm_since = Some(now);
            }
        }
    }

    /// The attempt failed: wait out the backoff (or stop).
    pub fn connect_failed(&mut self, now: Instant) {
        self.retry_after(now);
    }

    /// A message arrived (`data`: market data — not a WebSocket control
    /// frame, nor a venue heartbeat, ack or pong).
    #[inline]
    pub fn received(&mut self, now: Instant, data: bool) {
        if let Phase::Up(s) = &mut self.phase {
            s.last_rx = now;
            if data {
                s.frames += 1;
                s.last_data = now;
            }
        }
    }

    /// The next step on an open connection.
    pub fn poll_up(&mut self, now: Instant) -> Up {
        let o = self.opts;
        let Phase::Up(s) = &mut self.phase else {
            return Up::Drop("not connected".to_owned());
        };
        let pending_request = s.next_request < o.subscribe.len() || !s.queued.is_empty();
        if pending_request && now >= s.next_send {
            s.next_send = now + o.send_interval;
            if s.next_request < o.subscribe.len() {
                let i = s.next_request;
                s.next_request += 1;
                return Up::Send(i);
            }
            if let Some(text) = s.queued.pop_front() {
                return Up::Text(text);
            }
        }
        if s.next_ping.is_some_and(|t| now >= t) {
            s.next_ping = Some(now + o.ping_interval);
            self.stats.pings_sent += 1;
            return match &o.ping_text {
                Some(text) => Up::Text(text.clone()),
                None => Up::Ping,
            };
        }
        let idle_at = (!o.idle_timeout.is_zero()).then(|| s.last_rx + o.idle_timeout);
        if idle_at.is_some_and(|t| now >= t) {
            return Up::Drop(format!("idle: no message for {:?}", o.idle_timeout));
        }
        let data_at = (!o.data_timeout.is_zero()).then(|| s.last_data + o.data_timeout);
        if data_at.is_some_and(|t| now >= t) {
            self.stats.watchdog_drops += 1;
            return Up::Drop(format!(
                "data watchdog: no market data for {:?}",
                o.data_timeout
            ));
        }
        let far = now + Duration::from_secs(3600);
        // Only future instants: a past one would never be waited for.
        let retry_at = self
            .retries
            .iter()
            .filter(|r| !r.requeued && r.due > now)
            .map(|r| r.due)
            .min();
        let next = [
            pending_request.then_some(s.next_send),
            s.next_ping,
            idle_at,
            data_at,
            self.rest_wait.filter(|&t| t > now),
            retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(far);
        Up::Wait(next)
    }

    /// The next recovery request to serve with a REST snapshot, within the
    /// venue's REST budget. Requests for symbols that recover by
    /// resubscribing queue their messages instead (sent paced by
    /// [`poll_up`](Self::poll_up)). A symbol whose last snapshot failed waits
    /// out its backoff (requests meanwhile are coalesced into its retry).
    pub fn take_request(&mut self, now: Instant, requests: &SnapshotRequests) -> Option<String> {
        self.requeue_due(now, requests);
        if self.rest_wait.is_some() {
            return None;
        }
        loop {
            let symbol = requests.pop()?;
            // A recovery: the books are not calm (resubscribes included).
            if let Phase::Up(s) = &mut self.phase {
                s.calm_since = None;
            }
            let fetch = requests.take_fetch(&symbol);
            if !fetch {
                match (self.opts.resubscribe.get(&symbol), &mut self.phase) {
                    (Some(msgs), Phase::Up(s)) => {
                        s.queued.extend(msgs.iter().cloned());
                        continue;
                    }
                    (Some(_), _) => continue,
                    (None, _) => {}
                }
            }
            if let Some(r) = self.retries.iter_mut().find(|r| r.symbol == symbol) {
                if r.due > now {
                    // Coalesced: asked again while waiting out its backoff.
                    r.requeued = false;
                    r.fetch |= fetch;
                    continue;
                }
            }
            if let Some(b) = &self.opts.rest_budget {
                if let Err(t) = b.take(now, self.opts.snapshot_weight) {
                    self.stats.rest_waits += 1;
                    if fetch {
                        requests.request_fetch(&symbol);
                    }
                    requests.prepend(std::iter::once(symbol.as_str()));
                    self.rest_wait = Some(t);
                    return None;
                }
            }
            self.last_fetch = fetch;
            self.inflight = true;
            return Some(symbol);
        }
    }

    /// Queues the retries that fell due and ends a budget wait that is
    /// over; call on every loop turn, a snapshot in flight or not.
    pub fn requeue_due(&mut self, now: Instant, requests: &SnapshotRequests) {
        for r in self
            .retries
            .iter_mut()
            .filter(|r| !r.requeued && r.due <= now)
        {
            r.requeued = true;
            if r.fetch {
                requests.request_fetch(&r.symbol);
            } else {
                requests.request(&r.symbol);
            }
        }
        if self.rest_wait.is_some_and(|t| now >= t) {
            self.rest_wait = None;
        }
        self.settle(now, requests);
    }

    /// A rollover should start now: the planned time came, or the venue
    /// announced a shutdown (`notice`). Budgeted like a connection attempt.
    pub fn rollover_due(&mut self, now: Instant, notice: bool) -> bool {
        let Phase::Up(s) = &mut self.phase else {
            return false;
        };
        if notice {
            s.rollover_at = Some(now);
        }
        if s.rollover_at.is_none_or(|t| now < t) {
            return false;
        }
        if let Some(b) = &self.opts.connect_budget {
            if let Err(t) = b.take(now, 1) {
                self.stats.connect_waits += 1;
                s.rollover_at = Some(t);
                return false;
            }
        }
        s.rollover_at = None;
        true
    }

    /// The replacement connection failed: the old one carries on; try again
    /// in a while.
    pub fn rollover_failed(&mut self, now: Instant) {
        self.stats.rollover_failures += 1;
        if let Phase::Up(s) = &mut self.phase {
            s.rollover_at = Some(now + ROLLOVER_RETRY);
        }
    }

    /// The replacement took over: the session starts again on it (timers,
    /// lifetime), the books carry on.
    pub fn rolled_over(&mut self, now: Instant) {
        self.stats.rollovers += 1;
        let o = self.opts;
        if let Phase::Up(s) = &mut self.phase {
            s.started = now;
            s.last_rx = now;
            s.last_data = now;
            s.next_ping = (!o.ping_interval.is_zero()).then(|| now + o.ping_interval);
            s.rollover_at = (!o.rollover_after.is_zero()).then(|| now + o.rollover_after);
        }
    }

    /// The socket was not read for `d` (a rollover's connect): its idle
    /// and data timers do not count that time.
    pub fn excuse(&mut self, d: Duration) {
        if let Phase::Up(s) = &mut self.phase {
            s.last_rx += d;
            s.last_data += d;
        }
    }

    /// When the planned rollover is due, if one is.
    #[must_use]
    pub fn rollover_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Up(s) => s.rollover_at,
            _ => None,
        }
    }

    /// When the recovery queue next needs a look (a retry falls due, the
    /// venue's budget or pause ends), if before anything else.
    #[must_use]
    pub fn recovery_due(&self, now: Instant) -> Option<Instant> {
        let retry = self
            .retries
            .iter()
            .filter(|r| !r.requeued)
            .map(|r| r.due)
            .min();
        // Never in the past: a past deadline would be waited for forever.
        [retry, self.rest_wait]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(now + Duration::from_millis(1)))
    }

    /// The snapshot of `symbol` arrived: its backoff starts over.
    pub fn snapshot_ok(&mut self, symbol: &str) {
        self.inflight = false;
        self.retries.retain(|r| r.symbol != symbol);
    }

    /// The snapshot of `symbol` failed: it is retried after its backoff
    /// (full jitter, growing per attempt), or after the venue's
    /// `Retry-After`; a 429 or 418 also pauses every REST request of the
    /// venue for that long; another 4xx (but 408) waits the longest backoff.
    /// Returns the delay.
    pub fn snapshot_failed(
        &mut self,
        now: Instant,
        symbol: &str,
        failure: SnapshotFailure,
    ) -> Duration {
        self.stats.snapshot_retries += 1;
        self.inflight = false;
        let at = match self.retries.iter().position(|r| r.symbol == symbol) {
            Some(i) => i,
            None => {
                self.retries.push(Retry {
                    symbol: symbol.to_owned(),
                    due: now,
                    attempts: 0,
                    requeued: false,
                    fetch: false,
                });
                self.retries.len() - 1
            }
        };
        let r = &mut self.retries[at];
        r.fetch |= self.last_fetch;
        r.attempts = r.attempts.saturating_add(1);
        let (base, max) = self.opts.retry_backoff;
        let jitter = full_jitter(r.attempts, base, max, Duration::from_millis(10));
        let delay = match failure {
            SnapshotFailure::Status {
                status: 429 | 418,
                retry_after,
            } => {
                let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
                if let Some(b) = &self.opts.rest_budget {
                    b.pause_until(now + pause);
                }
                self.rest_wait = Some(self.rest_wait.map_or(now + pause, |t| t.max(now + pause)));
                pause
            }
            SnapshotFailure::Status {
                retry_after: Some(ra),
                ..
            } => ra.min(MAX_PAUSE).max(jitter),
            // A request the venue calls wrong (400 bad symbol, 404) will not
            // get better soon: retried at the longest backoff only.
            SnapshotFailure::Status {
                status: 400..=499, ..
            } if !matches!(failure, SnapshotFailure::Status { status: 408, .. }) => max,
            _ => jitter,
        };
        r.due = now + delay;
        r.requeued = false;
        delay
    }

    /// Messages are queued and may be due now.
    #[inline]
    #[must_use]
    pub fn wants_send(&self) -> bool {
        matches!(&self.phase, Phase::Up(s) if !s.queued.is_empty())
    }

    /// The connection is gone: the snapshot that was in flight (if any) is
    /// queued again so a request from another thread is not lost; a healthy
    /// session (up with its books calm for `healthy_after`) resets the
    /// backoff; then wait it out (or stop).
    pub fn lost(&mut self, now: Instant, inflight: Option<&str>, requests: &SnapshotRequests) {
        if let Some(sym) = inflight {
            requests.prepend(std::iter::once(sym));
        }
        self.inflight = false;
        if let Phase::Up(s) = &self.phase {
            if s.calm_since
                .is_some_and(|t| now.duration_since(t) >= self.opts.healthy_after)
            {
                self.backoff.reset();
            }
        }
        self.retry_after(now);
    }

    /// Shutting down: no more attempts.
    pub fn stop(&mut self) {
        self.phase = Phase::Done;
    }

    fn retry_after(&mut self, now: Instant) {
        let exhausted = self
            .opts
            .max_reconnects
            .is_some_and(|m| self.stats.reconnects >= m);
        self.phase = if exhausted {
            Phase::Done
        } else {
            Phase::Down {
                retry_at: now + self.backoff.next_delay(),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> FeedOptions {
        let mut o = FeedOptions::new("ws://127.0.0.1:1", "http://127.0.0.1:1");
        o.backoff = (Duration::from_millis(100), Duration::from_secs(1), 0.0);
        o.ping_interval = Duration::from_secs(10);
        o.idle_timeout = Duration::from_secs(30);
        o
    }

    #[test]
    fn idle_timer_counts_any_message_and_drops_a_silent_connection() {
        let o = opts();
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        assert_eq!(m.poll_up(t), Up::Wait(t + Duration::from_secs(10)));
        m.received(t + Duration::from_secs(5), false);
        assert_eq!(m.poll_up(t + Duration::from_secs(10)), Up::Ping);
        assert_eq!(m.stats.pings_sent, 1);
        assert_eq!(
            m.poll_up(t + Duration::from_secs(11)),
            Up::Wait(t + Duration::from_secs(20))
        );
        assert_eq!(m.poll_up(t + Duration::from_secs(20)), Up::Ping);
        assert!(matches!(m.poll_up(t + Duration::from_secs(35)), Up::Ping));
        assert!(
            matches!(m.poll_up(t + Duration::from_secs(35)), Up::Drop(r) if r.contains("idle"))
        );
    }

    #[test]
    fn text_heartbeats_and_resubscribe_recoveries_are_paced_sends() {
        let mut o = opts();
        o.ping_text = Some(r#"{"event":"ping"}"#.to_owned());
        o.send_interval = Duration::from_millis(200);
        o.resubscribe
            .insert("XBT/USD".into(), vec!["unsub".into(), "sub".into()]);
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        r.request("XBT/USD");
        r.request("ETH/USD");
        // The resubscribing symbol queues its messages; the other is a snapshot.
        assert_eq!(m.take_request(t, &r).as_deref(), Some("ETH/USD"));
        assert!(m.wants_send());
        assert_eq!(m.poll_up(t), Up::Text("unsub".into()));
        assert_eq!(m.poll_up(t), Up::Wait(t + Duration::from_millis(200)));
        assert_eq!(
            m.poll_up(t + Duration::from_millis(200)),
            Up::Text("sub".into())
        );
        assert!(!m.wants_send());
        assert_eq!(
            m.poll_up(t + Duration::from_secs(10)),
            Up::Text(r#"{"event":"ping"}"#.into())
        );
    }

    #[test]
    fn backoff_grows_until_a_healthy_session_and_max_reconnects_stops() {
        let mut o = opts();
        o.max_reconnects = Some(5);
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let mut t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connect_failed(t);
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(100)));
        t += Duration::from_millis(100);
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connect_failed(t);
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(200)));
        t += Duration::from_millis(200);
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        m.received(t, true);
        m.lost(t + Duration::from_secs(1), Some("ETH"), &r);
        assert_eq!(
            r.pending(),
            ["ETH"],
            "the in-flight snapshot is queued again"
        );
        // Frames do not make a session healthy: the backoff keeps growing.
        t += Duration::from_secs(1);
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(400)));
        t += Duration::from_millis(400);
        assert_eq!(m.poll_down(t), Down::Connect);
        assert_eq!(m.stats.reconnects, 3);
        // Up for `healthy_after`, but its book never synced (the snapshot
        // keeps failing): not healthy either.
        m.connected(t, &r);
        assert_eq!(m.take_request(t, &r).as_deref(), Some("ETH"));
        m.snapshot_failed(t, "ETH", SnapshotFailure::Transport);
        t += o.healthy_after;
        m.requeue_due(t, &r);
        m.lost(t, None, &r);
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(800)));
        t += Duration::from_millis(800);
        assert_eq!(m.poll_down(t), Down::Connect);
        // Up with its books calm for `healthy_after`: the backoff resets.
        m.connected(t, &r);
        assert_eq!(m.take_request(t, &r).as_deref(), Some("ETH"));
        m.snapshot_ok("ETH");
        m.requeue_due(t, &r);
        t += o.healthy_after;
        m.lost(t, None, &r);
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(100)));
        t += Duration::from_millis(100);
        assert_eq!(m.poll_down(t), Down::Connect);
        assert_eq!(m.stats.reconnects, 5);
        m.connect_failed(t);
        assert_eq!(m.poll_down(t + Duration::from_secs(9)), Down::Stop);
        assert_eq!(m.stats.connects, 3);
    }

    #[test]
    fn the_data_watchdog_ignores_pings_and_heartbeats() {
        let mut o = opts();
        o.data_timeout = Duration::from_secs(3);
        o.ping_interval = Duration::ZERO;
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        m.received(t + Duration::from_secs(2), true);
        // Pongs, pings and heartbeats keep the idle timer quiet, not this one.
        for s in 3..5 {
            m.received(t + Duration::from_secs(s), false);
        }
        assert_eq!(
            m.poll_up(t + Duration::from_secs(4)),
            Up::Wait(t + Duration::from_secs(5))
        );
        assert!(matches!(
            m.poll_up(t + Duration::from_secs(5)),
            Up::Drop(r) if r.starts_with("data watchdog")
        ));
        assert_eq!(m.stats.watchdog_drops, 1);
    }

    #[test]
    fn connection_attempts_stay_within_the_venue_budget() {
        let mut o = opts();
        o.backoff = (Duration::from_millis(1), Duration::from_millis(1), 0.0);
        o.connect_budget = Some(std::sync::Arc::new(super::super::budget::Budget::new(
            3,
            Duration::from_secs(60),
        )));
        let mut m = ConnMachine::new(&o);
        let mut t = Instant::now();
        let mut attempts = 0;
        // Two minutes of a server refusing every connection.
        let end = t + Duration::from_secs(120);
        while t < end {
            match m.poll_down(t) {
                Down::Connect => {
                    attempts += 1;
                    m.connect_failed(t);
                }
                Down::Wait(w) => t = w.max(t + Duration::from_millis(1)),
                Down::Stop => break,
            }
        }
        // 3 at once, then one per 20 s.
        assert!((8..=9).contains(&attempts), "{attempts}");
        assert!(m.stats.connect_waits > 0);
    }

    #[test]
    fn failed_snapshots_retry_with_backoff_and_respect_retry_after() {
        let mut o = opts();
        o.retry_backoff = (Duration::from_millis(200), Duration::from_secs(2));
        let budget = std::sync::Arc::new(super::super::budget::Budget::new(
            1000,
            Duration::from_secs(60),
        ));
        o.rest_budget = Some(budget.clone());
        o.snapshot_weight = 50;
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        r.request("BTCUSDT");
        assert_eq!(m.take_request(t, &r).as_deref(), Some("BTCUSDT"));
        // 429 with Retry-After: 2 s: the symbol and every REST request wait.
        let failure = SnapshotFailure::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            m.snapshot_failed(t, "BTCUSDT", failure),
            Duration::from_secs(2)
        );
        r.request("ETHUSDT");
        r.request("BTCUSDT"); // coalesced into the pending retry
        assert_eq!(m.take_request(t + Duration::from_secs(1), &r), None);
        assert_eq!(m.recovery_due(t), Some(t + Duration::from_secs(2)));
        let t2 = t + Duration::from_secs(2);
        assert_eq!(m.take_request(t2, &r).as_deref(), Some("ETHUSDT"));
        assert_eq!(m.take_request(t2, &r).as_deref(), Some("BTCUSDT"));
        assert_eq!(m.take_request(t2, &r), None, "one request per symbol");
        // A 500 then a timeout: growing, jittered delays within the bounds.
        let d1 = m.snapshot_failed(
            t2,
            "BTCUSDT",
            SnapshotFailure::Status {
                status: 500,
                retry_after: None,
            },
        );
        let d2 = m.snapshot_failed(t2, "BTCUSDT", SnapshotFailure::Transport);
        assert!(d1 <= Duration::from_millis(400) && d2 <= Duration::from_millis(800));
        assert_eq!(m.take_request(t2, &r), None);
        assert_eq!(
            m.take_request(t2 + d2, &r).as_deref(),
            Some("BTCUSDT"),
            "due again"
        );
        m.snapshot_ok("BTCUSDT");
        assert_eq!(m.recovery_due(t), None);
        assert_eq!(budget.used(), 200, "four requests of weight 50");
        assert_eq!(m.stats.snapshot_retries, 3);
    }

    #[test]
    fn the_rest_budget_spaces_requests() {
        let mut o = opts();
        o.rest_budget = Some(std::sync::Arc::new(super::super::budget::Budget::new(
            100,
            Duration::from_secs(60),
        )));
        o.snapshot_weight = 50;
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        for s in ["A", "B", "C"] {
            r.request(s);
        }
        assert_eq!(m.take_request(t, &r).as_deref(), Some("A"));
        assert_eq!(m.take_request(t, &r).as_deref(), Some("B"));
        assert_eq!(m.take_request(t, &r), None);
        assert_eq!(r.pending(), ["C"], "kept, in order");
        assert_eq!(m.recovery_due(t), Some(t + Duration::from_secs(30)));
        assert_eq!(
            m.take_request(t + Duration::from_secs(30), &r).as_deref(),
            Some("C")
        );
        assert_eq!(m.stats.rest_waits, 1);
    }

    #[test]
    fn a_retry_due_while_a_snapshot_is_in_flight_is_queued_not_spun_on() {
        let mut o = opts();
        o.retry_backoff = (Duration::from_millis(100), Duration::from_millis(100));
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        r.request("A");
        r.request("B");
        assert_eq!(m.take_request(t, &r).as_deref(), Some("A"));
        m.snapshot_failed(t, "A", SnapshotFailure::Transport);
        assert_eq!(m.take_request(t, &r).as_deref(), Some("B")); // B in flight
        let later = t + Duration::from_millis(200);
        // No deadline in the past (the loop would spin on it).
        match m.poll_up(later) {
            Up::Wait(w) => assert!(w > later, "{w:?} <= {later:?}"),
            other => panic!("{other:?}"),
        }
        assert!(m.recovery_due(later).is_none_or(|w| w > later));
        m.requeue_due(later, &r);
        assert_eq!(r.pending(), ["A"], "queued while B is in flight");
    }

    #[test]
    fn a_failed_bootstrap_is_retried_as_a_fetch() {
        let mut o = opts();
        o.retry_backoff = (Duration::from_millis(100), Duration::from_millis(100));
        o.resubscribe
            .insert("X".into(), vec!["unsub".into(), "sub".into()]);
        let r = SnapshotRequests::new();
        let mut m = ConnMachine::new(&o);
        let t = Instant::now();
        assert_eq!(m.poll_down(t), Down::Connect);
        m.connected(t, &r);
        r.request_fetch("X");
        assert_eq!(m.take_request(t, &r).as_deref(), Some("X"));
        m.snapshot_failed(t, "X", SnapshotFailure::Transport);
        let later = t + Duration::from_millis(150);
        assert_eq!(
            m.take_request(later, &r).as_deref(),
            Some("X"),
            "a REST fetch again, not the resubscribe messages"
        );
        assert!(!m.wants_send());
    }
}
