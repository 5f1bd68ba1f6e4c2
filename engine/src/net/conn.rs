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
use super::feed::{FeedOptions, FeedStats, SnapshotRequests};

/// A connection that stayed up at least this long (or delivered a frame)
/// resets the backoff.
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(5);

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
    frames: u64,
    next_request: usize,
    next_send: Instant,
    next_ping: Option<Instant>,
    /// Messages queued by recoveries, sent paced after the subscribe requests.
    queued: std::collections::VecDeque<String>,
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
            stats: FeedStats::default(),
        }
    }

    /// The next step while disconnected (`Stop` also when connected: the
    /// caller mixed up the phases).
    pub fn poll_down(&mut self, now: Instant) -> Down {
        match self.phase {
            Phase::Down { retry_at } if now >= retry_at => {
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
            frames: 0,
            next_request: 0,
            next_send: now,
            next_ping: (!o.ping_interval.is_zero()).then(|| now + o.ping_interval),
            queued: std::collections::VecDeque::new(),
        });
        requests.prepend(o.snapshot_symbols.iter().map(String::as_str));
    }

    /// The attempt failed: wait out the backoff (or stop).
    pub fn connect_failed(&mut self, now: Instant) {
        self.retry_after(now);
    }

    /// A message arrived (`data`: a text or binary frame, not a control frame).
    #[inline]
    pub fn received(&mut self, now: Instant, data: bool) {
        if let Phase::Up(s) = &mut self.phase {
            s.last_rx = now;
            s.frames += u64::from(data);
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
        let far = now + Duration::from_secs(3600);
        let next = [pending_request.then_some(s.next_send), s.next_ping, idle_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far);
        Up::Wait(next)
    }

    /// The next recovery request to serve with a REST snapshot. Requests for
    /// symbols that recover by resubscribing queue their messages instead
    /// (sent paced by [`poll_up`](Self::poll_up)).
    pub fn take_request(&mut self, requests: &SnapshotRequests) -> Option<String> {
        loop {
            let symbol = requests.pop()?;
            if requests.take_fetch(&symbol) {
                return Some(symbol);
            }
            match (self.opts.resubscribe.get(&symbol), &mut self.phase) {
                (Some(msgs), Phase::Up(s)) => s.queued.extend(msgs.iter().cloned()),
                (Some(_), _) => {}
                (None, _) => return Some(symbol),
            }
        }
    }

    /// Messages are queued and may be due now.
    #[inline]
    #[must_use]
    pub fn wants_send(&self) -> bool {
        matches!(&self.phase, Phase::Up(s) if !s.queued.is_empty())
    }

    /// The connection is gone: the snapshot that was in flight (if any) is
    /// queued again so a request from another thread is not lost; a healthy
    /// session resets the backoff; then wait it out (or stop).
    pub fn lost(&mut self, now: Instant, inflight: Option<&str>, requests: &SnapshotRequests) {
        if let Some(sym) = inflight {
            requests.prepend(std::iter::once(sym));
        }
        if let Phase::Up(s) = &self.phase {
            if s.frames > 0 || now.duration_since(s.started) >= HEALTHY_UPTIME {
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
        assert_eq!(m.take_request(&r).as_deref(), Some("ETH/USD"));
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
        o.max_reconnects = Some(3);
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
        m.lost(t, Some("ETH"), &r);
        assert_eq!(
            r.pending(),
            ["ETH"],
            "the in-flight snapshot is queued again"
        );
        // A session that delivered a frame resets the backoff.
        assert_eq!(m.poll_down(t), Down::Wait(t + Duration::from_millis(100)));
        t += Duration::from_millis(100);
        assert_eq!(m.poll_down(t), Down::Connect);
        assert_eq!(m.stats.reconnects, 3);
        m.connect_failed(t);
        assert_eq!(m.poll_down(t + Duration::from_secs(9)), Down::Stop);
        assert_eq!(m.stats.connects, 1);
    }
}
