//! The busy-poll feed loop (`[engine] receiver_mode = "busy_poll"`).
//!
//! [`run_feed_busy`] is [`super::feed::run_feed`] without a reactor: the pinned
//! receiver thread never sleeps in `epoll_wait`, it spins on a non-blocking
//! socket (`recv` returning `EAGAIN` is the poll) with the sync `tungstenite`
//! client. Same [`FeedHandler`] callbacks, same [`SnapshotRequests`], same
//! reconnect [`Backoff`], pings, idle and data timeouts, the same
//! make-before-break rollovers (the replacement's connect and subscribe
//! block the thread, as a connect does; its frames are held until the
//! switch, [`super::feed::Replacement`]), and the same ordering
//! contract: the REST control thread performs the snapshot GET (one in
//! flight), its answer is delivered only when no WebSocket frame is readable,
//! every frame readable when it arrived is delivered before it, and the HTTP
//! connection is closed right before [`FeedHandler::on_snapshot`] runs.
//!
//! Plain `ws://` only (co-located or loopback feeds, the benchmark; snapshots
//! may be `https://`, the control thread fetches them): [`unsupported`] says
//! why a feed must use the epoll loop. The WebSocket connect is blocking,
//! bounded by `connect_timeout`; everything after it is non-blocking. While
//! disconnected the thread sleeps out the backoff in 10 ms steps.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::{Error as WsError, Message, WebSocket};

use super::conn::{ConnMachine, Down, Up};
use super::feed::{
    close_reason, deliver, realtime_ns, switched, ws_config, FeedHandler, FeedOptions, FeedStats,
    InFlight, RecvBatch, Replacement, SnapshotRequests, Verdict, CLOSE_TIMEOUT, FRAME_BUF,
};
use super::http::Target;

type Ws = WebSocket<TcpStream>;

/// Timers (ping, idle timeout) are checked once per this
/// many empty polls, not on every spin.
const TIMER_EVERY: u32 = 64;
/// Longest sleep while waiting out a reconnect backoff.
const BACKOFF_STEP: Duration = Duration::from_millis(10);

/// Why `opts` cannot run busy-polled (`None`: it can): a TLS WebSocket
/// (`wss://`) needs the epoll loop.
#[must_use]
pub fn unsupported(opts: &FeedOptions) -> Option<String> {
    if opts.compression != super::socket::Compression::None {
        // Sync tungstenite has no permessage-deflate (the config rejects it too).
        return Some("permessage-deflate is not supported by the busy-poll receiver".to_owned());
    }
    match Target::parse(&opts.ws_url, "ws", "wss") {
        Ok(t) if t.tls => Some(format!(
            "{}: TLS is not supported by the busy-poll receiver",
            opts.ws_url
        )),
        Ok(_) => None,
        Err(e) => Some(e),
    }
}

/// How one connected session ended.
enum SessionEnd {
    Stop,
    Lost,
}

/// Runs the feed until the handler asks to stop or `max_reconnects` is
/// exhausted (the shutdown signal of this loop is [`FeedHandler::should_stop`],
/// polled on every spin). Never panics on network input. The decisions are
/// the [`ConnMachine`]'s, as in the epoll loop.
pub fn run_feed_busy(
    opts: &FeedOptions,
    requests: &SnapshotRequests,
    handler: &mut impl FeedHandler,
) -> FeedStats {
    let mut m = ConnMachine::new(opts);
    let mut frame_buf = Vec::with_capacity(FRAME_BUF);
    while !handler.should_stop() {
        match m.poll_down(Instant::now()) {
            Down::Stop => break,
            Down::Wait(until) => {
                let left = until.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(BACKOFF_STEP));
            }
            Down::Connect => match connect(opts) {
                Ok(mut ws) => {
                    m.connected(Instant::now(), requests);
                    handler.on_connected();
                    let end = session(&mut m, opts, &mut ws, requests, handler, &mut frame_buf);
                    if let SessionEnd::Stop = end {
                        close_quietly(&mut ws);
                        handler.on_disconnected("shutdown");
                        break;
                    }
                }
                Err(err) => {
                    handler.on_connect_error(&err);
                    m.connect_failed(Instant::now());
                }
            },
        }
    }
    m.stop();
    m.stats
}

/// Queues `msg` on the socket (flushed by the next reads); `Err` with a
/// reason when the connection is unusable.
fn queue(ws: &mut Ws, msg: Message, what: &str) -> Result<(), String> {
    match ws.send(msg) {
        Ok(()) => Ok(()),
        Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(format!("{what} send failed: {e}")),
    }
}

/// One connected session: returns when the connection is lost (after
/// telling the machine and the handler) or a stop is requested.
fn session(
    m: &mut ConnMachine<'_>,
    opts: &FeedOptions,
    ws: &mut Ws,
    requests: &SnapshotRequests,
    handler: &mut impl FeedHandler,
    frame_buf: &mut Vec<u8>,
) -> SessionEnd {
    let mut inflight: Option<InFlight> = None;
    // The replacement connection of a rollover, while both run.
    let mut next: Option<Replacement<Ws>> = None;
    // The venue announced it will close this connection.
    let mut notice = false;
    // The machine's next deadline; timers are looked at once per
    // `TIMER_EVERY` empty polls, not on every spin.
    let mut wake = Instant::now();
    let mut empty_polls = 0u32;
    // The frames read back to back (one wake-up of the signal threads).
    let mut batch = RecvBatch::default();

    let end = 'session: loop {
        if handler.should_stop() {
            batch.end(handler);
            return SessionEnd::Stop;
        }
        m.requeue_due(Instant::now(), requests);
        if inflight.is_none() {
            if let Some(symbol) = m.take_request(Instant::now(), requests) {
                inflight = Some(InFlight::start(opts, symbol));
            }
        }

        match ws.read() {
            Ok(msg) => {
                let recv_ns = realtime_ns();
                let now = Instant::now();
                empty_polls = 0;
                let full = !matches!(msg, Message::Close(_)) && !batch.frame(handler);
                match msg {
                    Message::Text(t) => {
                        deliver(handler, &mut m.stats, frame_buf, recv_ns, t.as_bytes());
                        m.received(now, handler.frame_was_data());
                        notice |= handler.take_closing_notice();
                    }
                    Message::Binary(b) => {
                        deliver(handler, &mut m.stats, frame_buf, recv_ns, &b);
                        m.received(now, handler.frame_was_data());
                        notice |= handler.take_closing_notice();
                    }
                    // tungstenite queued the Pong; the next read flushes it.
                    Message::Ping(_) | Message::Frame(_) => m.received(now, false),
                    Message::Pong(_) => {
                        m.received(now, false);
                        m.stats.pongs += 1;
                    }
                    Message::Close(frame) => {
                        batch.end(handler);
                        // Answer the close handshake (the reply is queued).
                        let _ = ws.flush();
                        if next.is_none() {
                            break close_reason(frame.as_ref());
                        }
                        // The replacement is up: it takes over (books kept).
                        switch_over(m, ws, &mut next, handler, frame_buf, now);
                    }
                }
                if full {
                    // Wake downstream now, then go on reading.
                    batch.end(handler);
                }
                // More frames may be readable: the snapshot waits behind them.
                continue;
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => batch.end(handler),
            Err(_) if next.is_some() => {
                batch.end(handler);
                switch_over(m, ws, &mut next, handler, frame_buf, Instant::now());
                continue;
            }
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                break "websocket stream ended".to_owned();
            }
            Err(e) => break format!("websocket error: {e}"),
        }

        // The replacement's frames are held until the switch.
        if let Some(n) = next.as_mut() {
            let now = Instant::now();
            match n.ws.read() {
                Ok(Message::Text(t)) => n.hold(now, realtime_ns(), t.as_bytes()),
                Ok(Message::Binary(b)) => n.hold(now, realtime_ns(), &b),
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    next = None;
                    m.rollover_failed(now);
                }
            }
        }

        // No WebSocket frame is readable: only now may the snapshot be delivered.
        if let Some(f) = inflight.as_mut() {
            if f.ready.is_some() {
                // Every frame that was readable when it arrived has been
                // delivered: close its connection, then deliver it.
                if let Some(f) = inflight.take() {
                    f.deliver(m, opts, handler);
                }
                continue;
            }
            if let Some(r) = f.pending.try_take() {
                // Arrived: poll the WebSocket once more before delivering it.
                f.ready = Some(r);
                continue;
            }
        }

        // Nothing readable: events waiting in the overflow stage move on.
        handler.drain_staged();
        empty_polls = empty_polls.wrapping_add(1);
        if empty_polls % TIMER_EVERY == 0 {
            let mut now = Instant::now();
            // Make before break: open the replacement, let both run, then switch.
            if next.is_none() && m.rollover_due(now, std::mem::take(&mut notice)) {
                next = open_replacement(m, opts, handler);
                // The old socket was not read meanwhile: its timers do not count it.
                let after = Instant::now();
                m.excuse(after.saturating_duration_since(now));
                now = after;
            }
            match next.as_ref().map(|n| n.verdict(now, opts)) {
                Some(Verdict::Fail) => {
                    next = None;
                    m.rollover_failed(now);
                }
                Some(Verdict::Switch) => switch_over(m, ws, &mut next, handler, frame_buf, now),
                Some(Verdict::Wait(_)) | None => {}
            }
            if m.wants_send() {
                wake = now;
            }
            if now >= wake {
                wake = loop {
                    match m.poll_up(Instant::now()) {
                        Up::Wait(t) => break t,
                        Up::Send(i) => {
                            let text = Message::text(opts.subscribe[i].as_str());
                            if let Err(e) = queue(ws, text, "subscribe") {
                                break 'session e;
                            }
                        }
                        Up::Ping => {
                            if let Err(e) = queue(ws, Message::Ping(Vec::new().into()), "ping") {
                                break 'session e;
                            }
                        }
                        Up::Text(text) => {
                            if let Err(e) = queue(ws, Message::text(text), "text") {
                                break 'session e;
                            }
                        }
                        Up::Drop(reason) => break 'session reason,
                    }
                };
            }
        }
        std::hint::spin_loop();
    };

    batch.end(handler);
    // The connection is gone, and the in-flight snapshot (if any) with it.
    let symbol = inflight.as_ref().map(|f| f.symbol.as_str());
    m.lost(Instant::now(), symbol, requests);
    handler.on_disconnected(&end);
    SessionEnd::Lost
}

/// Opens and subscribes the replacement of the current connection (blocking,
/// like a connect; `None`: it failed, the current one carries on and the
/// machine retries later).
fn open_replacement(
    m: &mut ConnMachine<'_>,
    opts: &FeedOptions,
    handler: &mut impl FeedHandler,
) -> Option<Replacement<Ws>> {
    let subscribed = connect(opts).and_then(|mut ws| {
        for (i, text) in opts.subscribe.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(opts.send_interval);
            }
            queue(&mut ws, Message::text(text.as_str()), "subscribe")?;
        }
        Ok(ws)
    });
    match subscribed {
        Ok(ws) => Some(Replacement::new(ws, Instant::now())),
        Err(e) => {
            m.rollover_failed(Instant::now());
            handler.on_connect_error(&format!("rollover: {e}"));
            None
        }
    }
}

/// The replacement takes over: the old connection is closed politely and
/// the replacement's held frames are delivered (see [`switched`]).
fn switch_over(
    m: &mut ConnMachine<'_>,
    ws: &mut Ws,
    next: &mut Option<Replacement<Ws>>,
    handler: &mut impl FeedHandler,
    frame_buf: &mut Vec<u8>,
    now: Instant,
) {
    if let Some(n) = next.take() {
        let mut old = std::mem::replace(ws, n.ws);
        close_quietly(&mut old);
        switched(m, handler, frame_buf, &n.buffer, now);
    }
}

/// Best effort: send our Close frame, never hang on it.
fn close_quietly(ws: &mut Ws) {
    let _ = ws.close(None);
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    while Instant::now() < deadline {
        match ws.flush() {
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                std::hint::spin_loop();
            }
            _ => return,
        }
    }
}

/// Resolve and connect (blocking, bounded by `timeout`) with `TCP_NODELAY`.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address")))
}

/// Connect, handshake and subscribe (blocking, bounded by `connect_timeout`),
/// then switch the socket to non-blocking.
fn connect(opts: &FeedOptions) -> Result<Ws, String> {
    let target = Target::parse(&opts.ws_url, "ws", "wss")?;
    if target.tls {
        return Err(format!("{}: TLS needs the epoll receiver", opts.ws_url));
    }
    let tcp = connect_tcp(&target.host, target.port, opts.connect_timeout)
        .map_err(|e| format!("connect {}: {e}", target.host_header))?;
    let io_err = |e: io::Error| format!("socket {}: {e}", target.host_header);
    tcp.set_read_timeout(Some(opts.connect_timeout))
        .map_err(io_err)?;
    tcp.set_write_timeout(Some(opts.connect_timeout))
        .map_err(io_err)?;
    let (mut ws, _response) =
        tungstenite::client::client_with_config(opts.ws_url.as_str(), tcp, Some(ws_config()))
            .map_err(|e| format!("websocket handshake with {}: {e}", target.host_header))?;
    let tcp = ws.get_mut();
    tcp.set_read_timeout(None).map_err(io_err)?;
    tcp.set_write_timeout(None).map_err(io_err)?;
    tcp.set_nonblocking(true).map_err(io_err)?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(ws_url: &str, rest_base: &str) -> FeedOptions {
        FeedOptions::new(ws_url, rest_base)
    }

    #[test]
    fn tls_feeds_are_unsupported() {
        assert!(unsupported(&options("wss://x:1", "http://x:1")).is_some());
        assert!(unsupported(&options("ws://x:1", "https://x:1")).is_none());
        assert!(unsupported(&options("ws://x:1/stream", "http://x:1")).is_none());
    }
}
