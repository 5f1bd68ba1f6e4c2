//! Paced load server: Binance-spot protocol on one loopback TCP port, frames
//! at a fixed target rate (or as fast as the client reads), with ramp, spike
//! and soak profiles.
//!
//! # Where the send timestamp rides
//!
//! Every frame carries its **scheduled send time** (Unix ns, `CLOCK_REALTIME`)
//! in the Binance exchange-time fields: `E` and `T` of trades, `E` of depth
//! diffs, and an `E` inserted into bookTicker frames (Binance spot's
//! bookTicker has none; the engine's parser reads `E` when present). The
//! engine's parser already accepts ms, µs or ns there
//! (`feeds::venue::exchange_ts_ns`), so the frames stay valid Binance frames
//! and the engine needs no bench-only code path: its `exchange_to_signal`
//! histogram (`engine::pipeline::wire`) is wall clock at signals done − `E`.
//! The baseline clients in [`client`] read the same field.
//!
//! At a fixed rate the stamp is the time the frame was **due**, not the time
//! it was written: a stall anywhere (the sender's own wake-up, TCP
//! back-pressure from a slow reader) is charged to every frame it delays.
//! That is the wrk2 "intended start time" fix for coordinated omission and
//! makes `record_correct` back-filling unnecessary (it would double count).
//! How late the sender itself was is reported separately
//! ([`LoadReport::sender_lag`]) so generator jitter is visible. In `max`
//! mode the stamp is the time the batch is written.
//!
//! # Content
//!
//! Frames come from the seeded [`Generator`] (trades, bookTicker, depth diffs
//! for N instruments with L levels per side), generated just ahead of the
//! sender. `GET /api/v3/depth` answers from the generator's current book,
//! which is at or ahead of every frame sent, so the Binance depth-sync rule
//! (`U <= lastUpdateId + 1 <= u`) holds for the first diff after it.
//!
//! # HTTP and threads
//!
//! One thread runs a current-thread tokio runtime with hyper behind the
//! front door of [`crate::http`]: the depth route and the venue's other REST
//! replies (404 elsewhere), and the WebSocket handshake on any path. After
//! the 101 the socket is taken back from hyper, set blocking and handed to
//! its own sender thread, which paces frames with synchronous tungstenite
//! (sleep, then yield near the due time) and never touches the runtime.

pub mod client;
pub mod outputs;
pub mod procfs;
pub mod profile;
pub mod report;
pub mod suite;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};

use feeds::sim::RestRequest;

use crate::generator::{GenConfig, Generator};
use crate::http::{Answer, Door, Reply};
pub use profile::Profile;

/// Width of a stamp: Unix ns has 19 digits until the year 2286.
const STAMP_DIGITS: usize = 19;
const PLACEHOLDER: &str = "0000000000000000000";

/// Wall-clock ns since the Unix epoch.
#[inline]
#[must_use]
pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A latency histogram: 1 ns .. 60 s, 3 significant digits.
#[must_use]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|e| unreachable!("static bounds: {e}"))
}

/// Load server configuration.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Instruments (generator presets, then `SYM<i>USDT`).
    pub symbols: usize,
    /// Book levels per side.
    pub levels: usize,
    /// Generator seed.
    pub seed: u64,
    /// Depth-diff cadence of the generator (its own clock, not the wire's).
    pub depth_interval: Duration,
    /// Rate profile, started per WebSocket connection.
    pub profile: Profile,
    /// Pause between the WebSocket handshake and the first frame, so the
    /// client can fetch its depth snapshots.
    pub start_delay: Duration,
    /// At the end of the profile: send a close frame (baselines) or keep the
    /// connection open and idle (the engine, until it exits).
    pub close_at_end: bool,
}

impl LoadConfig {
    /// Three instruments, 300 levels, `profile`, close at end.
    #[must_use]
    pub fn new(profile: Profile) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            symbols: 3,
            levels: 300,
            seed: 7,
            depth_interval: Duration::from_millis(100),
            profile,
            start_delay: Duration::from_millis(300),
            close_at_end: true,
        }
    }

    /// The upper-case symbols served.
    #[must_use]
    pub fn symbol_names(&self) -> Vec<String> {
        (0..self.symbols.max(1))
            .map(|i| crate::generator::SymbolSpec::preset(i).name)
            .collect()
    }
}

/// What the server did, summed over connections.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Data frames written.
    pub frames: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// Wall time from the first to the last frame of the first connection.
    pub send_window: Duration,
    /// Actual write − scheduled time per frame (paced profiles only).
    pub sender_lag: Histogram<u64>,
    /// Depth snapshots served.
    pub snapshots: u64,
    /// WebSocket connections accepted.
    pub connections: u64,
}

#[derive(Default)]
struct Shared {
    frames: AtomicU64,
    bytes: AtomicU64,
    snapshots: AtomicU64,
    connections: AtomicU64,
    /// Unix ns of the first connection's profile start / end (0 = not yet).
    started_ns: AtomicU64,
    ended_ns: AtomicU64,
    lag: Mutex<Option<Histogram<u64>>>,
}

/// Entry point.
pub struct LoadServer;

impl LoadServer {
    /// Binds and starts the accept thread (a current-thread tokio runtime
    /// serving HTTP through [`crate::http`]); every WebSocket then gets its
    /// own sender thread.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start(cfg: LoadConfig) -> io::Result<LoadHandle> {
        let listener = TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut g = GenConfig::new(cfg.seed, cfg.symbols);
        g.levels = cfg.levels;
        g.depth_interval = cfg.depth_interval;
        g.duration = Duration::from_secs(10_000_000);
        let generator = Arc::new(Mutex::new(Generator::new(g)));
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = tokio::sync::watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let door = Arc::new(LoadDoor {
            cfg,
            generator,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
            senders: Mutex::new(Vec::new()),
        });
        let thread = std::thread::Builder::new()
            .name("load-accept".into())
            .spawn(move || {
                rt.block_on(crate::http::accept_loop(listener, Arc::clone(&door), woken));
                // Ends the HTTP connections still open, then the senders.
                drop(rt);
                let senders = door
                    .senders
                    .lock()
                    .map(|mut v| std::mem::take(&mut *v))
                    .unwrap_or_default();
                for s in senders {
                    let _ = s.join();
                }
            })?;
        Ok(LoadHandle {
            addr,
            shared,
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

/// A running load server; dropping it stops it.
pub struct LoadHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    wake: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl LoadHandle {
    /// Bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://addr` (append `/stream?streams=..` or let the engine do it).
    #[must_use]
    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Frames written so far.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.shared.frames.load(Ordering::Acquire)
    }

    /// Unix ns when the first connection's profile started (frames began).
    #[must_use]
    pub fn started_ns(&self) -> Option<i64> {
        match self.shared.started_ns.load(Ordering::Acquire) {
            0 => None,
            v => Some(v as i64),
        }
    }

    /// Unix ns when the first connection's profile ended.
    #[must_use]
    pub fn ended_ns(&self) -> Option<i64> {
        match self.shared.ended_ns.load(Ordering::Acquire) {
            0 => None,
            v => Some(v as i64),
        }
    }

    /// Stops the server and returns what it did.
    #[must_use]
    pub fn finish(mut self) -> LoadReport {
        self.stop_and_join();
        let s = &self.shared;
        let (a, b) = (
            s.started_ns.load(Ordering::Acquire),
            s.ended_ns.load(Ordering::Acquire),
        );
        LoadReport {
            frames: s.frames.load(Ordering::Acquire),
            bytes: s.bytes.load(Ordering::Acquire),
            send_window: Duration::from_nanos(b.saturating_sub(a)),
            sender_lag: s
                .lag
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_else(histogram),
            snapshots: s.snapshots.load(Ordering::Acquire),
            connections: s.connections.load(Ordering::Acquire),
        }
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The load server behind the HTTP front door: every WebSocket path streams,
/// REST routes are the generator's venue's.
struct LoadDoor {
    cfg: LoadConfig,
    generator: Arc<Mutex<Generator>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// Sender threads, joined at shutdown.
    senders: Mutex<Vec<JoinHandle<()>>>,
}

impl Door for LoadDoor {
    type Route = ();

    fn ws_route(&self, _path: &str, _query: &str) -> Option<()> {
        Some(())
    }

    /// The socket goes back to blocking mode and its own thread: the
    /// synchronous send loop paces frames more precisely than a task.
    async fn websocket(&self, (): (), io: tokio::net::TcpStream, read_buf: Bytes, _: bool) {
        let Ok(stream) = io.into_std() else {
            return;
        };
        if stream.set_nonblocking(false).is_err() {
            return;
        }
        let ws = tungstenite::WebSocket::from_partially_read(
            stream,
            read_buf.to_vec(),
            tungstenite::protocol::Role::Server,
            None,
        );
        let first = self.shared.connections.fetch_add(1, Ordering::AcqRel) == 0;
        let (cfg, g, sh, st) = (
            self.cfg.clone(),
            Arc::clone(&self.generator),
            Arc::clone(&self.shared),
            Arc::clone(&self.stop),
        );
        let spawned = std::thread::Builder::new()
            .name("load-conn".into())
            .spawn(move || {
                let _ = send_loop(ws, &cfg, &g, &sh, &st, first);
            });
        if let (Ok(h), Ok(mut v)) = (spawned, self.senders.lock()) {
            v.push(h);
        }
    }

    async fn request(&self, method: &Method, path: &str, query: &str) -> Answer {
        if method != Method::GET {
            return Reply::new(StatusCode::NOT_FOUND, "").into();
        }
        // Routes, replies and error bodies are the generator's venue's.
        let venue = self.generator.lock().ok().map(|g| g.venue());
        let server = venue
            .and_then(feeds::venue::venue_by_name)
            .map(|(_, d)| d.server);
        let (status, body) = match server.and_then(|s| Some((s, s.rest(path, query)?))) {
            Some((server, RestRequest::Depth { symbol, limit })) => {
                let snap = self
                    .generator
                    .lock()
                    .ok()
                    .and_then(|g| g.snapshot(&symbol, limit));
                match snap {
                    Some(b) => {
                        self.shared.snapshots.fetch_add(1, Ordering::AcqRel);
                        ("200 OK", b)
                    }
                    None => server.unknown_symbol(),
                }
            }
            Some((_, RestRequest::Reply(status, body))) => (status, body),
            None => ("404 Not Found", String::new()),
        };
        Reply::status_line(status, body)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .into()
    }
}

/// A generated frame with the byte offsets of its stamp placeholders.
#[derive(Clone, Debug, Default)]
pub struct Template {
    text: String,
    stamps: [usize; 2],
    n: usize,
}

impl Template {
    /// Rewrites `E`/`T` values of a Binance frame into stamp placeholders,
    /// inserting `"E"` after the payload's opening brace when absent.
    #[must_use]
    pub fn new(frame: &str) -> Self {
        let mut text = String::with_capacity(frame.len() + 32);
        let mut stamps = [0usize; 2];
        let mut n = 0;
        let mut rest = frame;
        let mut saw_e = false;
        while let Some(p) = find_key(rest) {
            let key_end = p + 4; // `"E":` / `"T":`
            saw_e |= rest.as_bytes()[p + 1] == b'E';
            text.push_str(&rest[..key_end]);
            let digits = rest[key_end..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if n < 2 {
                stamps[n] = text.len();
                n += 1;
            }
            text.push_str(PLACEHOLDER);
            rest = &rest[key_end + digits..];
        }
        text.push_str(rest);
        if !saw_e {
            let at = text.find("\"data\":{").map_or(1, |p| p + 8);
            if at <= text.len() && n < 2 {
                text.insert_str(at, "\"E\":0000000000000000000,");
                for s in stamps[..n].iter_mut().filter(|s| **s >= at) {
                    *s += 24;
                }
                stamps[n] = at + 4;
                n += 1;
            }
        }
        Self { text, stamps, n }
    }

    /// The frame with `stamp` (Unix ns, 19 digits) written in.
    #[must_use]
    pub fn render(&self, stamp: i64) -> String {
        let mut out = self.text.clone();
        let mut b = itoa::Buffer::new();
        let s = b.format(stamp);
        if s.len() == STAMP_DIGITS {
            for &at in &self.stamps[..self.n] {
                out.replace_range(at..at + STAMP_DIGITS, s);
            }
        }
        out
    }
}

/// Position of the next `"E":` or `"T":` key.
fn find_key(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(3)).find(|&i| {
        b[i] == b'"'
            && (b[i + 1] == b'E' || b[i + 1] == b'T')
            && b[i + 2] == b'"'
            && b[i + 3] == b':'
    })
}

/// Reads the first stamp (`"E":<digits>`) of a frame; 0 when absent.
#[inline]
#[must_use]
pub fn read_stamp(frame: &[u8]) -> i64 {
    let Some(p) = frame.windows(4).position(|w| w == b"\"E\":") else {
        return 0;
    };
    let mut v: i64 = 0;
    for &c in &frame[p + 4..] {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
    }
    v
}

/// Reduces timer slack so short sleeps wake within a few µs (Linux).
fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and only affects the
    // calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Waits until `elapsed()` reaches `due_ns`: sleeps when far, yields when near.
fn wait_until(start: Instant, due_ns: u64) {
    loop {
        let now = start.elapsed().as_nanos() as u64;
        if now >= due_ns {
            return;
        }
        let gap = due_ns - now;
        if gap > 40_000 {
            std::thread::sleep(Duration::from_nanos(gap - 25_000));
        } else {
            // Not a pure spin: on a small machine the engine's threads need
            // this core; the stamp is the due time, so a late wake-up is
            // charged to the frames, never hidden.
            std::thread::yield_now();
        }
    }
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn refill(generator: &Mutex<Generator>, queue: &mut std::collections::VecDeque<Template>) {
    if let Ok(mut g) = generator.lock() {
        for _ in 0..256 {
            match g.next() {
                Some(r) => queue.push_back(Template::new(&r.frame)),
                None => break,
            }
        }
    }
}

fn send_loop(
    mut ws: Ws,
    cfg: &LoadConfig,
    generator: &Mutex<Generator>,
    shared: &Shared,
    stop: &AtomicBool,
    first: bool,
) -> io::Result<()> {
    tight_timer_slack();
    let err = |e: tungstenite::Error| io::Error::other(e.to_string());
    let mut queue = std::collections::VecDeque::with_capacity(512);
    let until = Instant::now() + cfg.start_delay;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut lag = histogram();
    let (mut frames, mut bytes) = (0u64, 0u64);
    let profile = cfg.profile.clone();
    let total = profile.duration().as_nanos() as u64;
    let start = Instant::now();
    let t0 = unix_ns();
    if first {
        shared.started_ns.store(t0 as u64, Ordering::Release);
    }
    let mut sched: u64 = 0;
    let mut res = Ok(());
    'run: while !stop.load(Ordering::Relaxed) {
        if queue.len() < 1024 {
            refill(generator, &mut queue);
        }
        match profile.rate_at(Duration::from_nanos(sched)) {
            None => {
                // Max: stamp = write time of the batch.
                if start.elapsed().as_nanos() as u64 >= total {
                    break;
                }
                let stamp = unix_ns();
                for _ in 0..64 {
                    let Some(t) = queue.pop_front() else { break };
                    let text = t.render(stamp);
                    bytes += text.len() as u64;
                    frames += 1;
                    if let Err(e) = ws.write(Message::text(text)) {
                        res = Err(err(e));
                        break 'run;
                    }
                }
            }
            Some(rate) => {
                // Bounded by wall time too: a sender that cannot keep up
                // sends fewer frames (achieved < offered), it does not overrun.
                if sched >= total || start.elapsed().as_nanos() as u64 >= total {
                    break;
                }
                wait_until(start, sched);
                let now = start.elapsed().as_nanos() as u64;
                let mut k = 0;
                while sched <= now && sched < total && k < 512 {
                    let Some(t) = queue.pop_front() else { break };
                    let text = t.render(t0 + sched as i64);
                    let _ = lag.record((now - sched).max(1));
                    bytes += text.len() as u64;
                    frames += 1;
                    k += 1;
                    if let Err(e) = ws.write(Message::text(text)) {
                        res = Err(err(e));
                        break 'run;
                    }
                    let r = profile
                        .rate_at(Duration::from_nanos(sched))
                        .unwrap_or(rate)
                        .max(1.0);
                    sched += (1e9 / r) as u64;
                }
            }
        }
        if let Err(e) = ws.flush() {
            res = Err(err(e));
            break;
        }
    }
    let end = unix_ns();
    if first {
        shared.ended_ns.store(end as u64, Ordering::Release);
    }
    shared.frames.fetch_add(frames, Ordering::AcqRel);
    shared.bytes.fetch_add(bytes, Ordering::AcqRel);
    if let Ok(mut l) = shared.lag.lock() {
        let _ = l.get_or_insert_with(histogram).add(&lag);
    }
    if res.is_ok() {
        if cfg.close_at_end {
            let _ = ws.close(None);
            let _ = ws.flush();
            let _ = ws
                .get_mut()
                .set_read_timeout(Some(Duration::from_millis(500)));
            // Drain until the close handshake completes or times out.
            while ws.read().is_ok() {}
        } else {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_stamps_trade_ticker_and_depth() {
        let trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600001,"s":"BTCUSDT","t":5,"p":"1.00","q":"2.00","T":1723161600000,"m":true,"M":true}}"#;
        let t = Template::new(trade).render(1_723_161_600_123_456_789);
        assert!(t.contains(r#""E":1723161600123456789,"#), "{t}");
        assert!(t.contains(r#""T":1723161600123456789,"#), "{t}");
        assert_eq!(read_stamp(t.as_bytes()), 1_723_161_600_123_456_789);
        let ticker = r#"{"stream":"btcusdt@bookTicker","data":{"u":7,"s":"BTCUSDT","b":"1.0","B":"1","a":"2.0","A":"1"}}"#;
        let t = Template::new(ticker).render(1_723_161_600_123_456_789);
        assert!(t.starts_with(
            r#"{"stream":"btcusdt@bookTicker","data":{"E":1723161600123456789,"u":7,"#
        ));
        serde_json::from_str::<serde_json::Value>(&t).unwrap();
        let depth = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161600001,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}}"#;
        let t = Template::new(depth).render(1_723_161_600_123_456_789);
        assert_eq!(read_stamp(t.as_bytes()), 1_723_161_600_123_456_789);
        serde_json::from_str::<serde_json::Value>(&t).unwrap();
    }
}
