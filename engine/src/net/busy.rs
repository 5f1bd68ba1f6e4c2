//! The busy-poll feed loop (`[engine] receiver_mode = "busy_poll"`).
//!
//! [`run_feed_busy`] is [`super::feed::run_feed`] without a reactor: the pinned
//! receiver thread never sleeps in `epoll_wait`, it spins on a non-blocking
//! socket (`recv` returning `EAGAIN` is the poll) with the sync `tungstenite`
//! client. Same [`FeedHandler`] callbacks, same [`SnapshotRequests`], same
//! reconnect [`Backoff`], pings and idle timeout, and the same ordering
//! contract: a snapshot GET is sent eagerly (one in flight), its response is
//! read only when no WebSocket frame is readable, every frame readable when
//! the response completed is delivered before it, and the HTTP connection is
//! closed before [`FeedHandler::on_snapshot`] runs.
//!
//! Plain `ws://` and `http://` only (co-located or loopback feeds, the
//! benchmark): [`unsupported`] says why a feed must use the epoll loop.
//! TCP connects (WebSocket and snapshot) are blocking, bounded by
//! `connect_timeout` / `http_timeout`; everything after them is non-blocking.
//! While disconnected the thread sleeps out the backoff in 10 ms steps.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::{Error as WsError, Message, WebSocket};

use super::conn::{ConnMachine, Down, Up};
use super::feed::{
    close_reason, deliver, realtime_ns, FeedHandler, FeedOptions, FeedStats, SnapshotRequests,
    CLOSE_TIMEOUT, FRAME_BUF,
};
use super::http::{self, Framing, HttpError, Target};

type Ws = WebSocket<TcpStream>;

/// Timers (ping, idle timeout, snapshot deadline) are checked once per this
/// many empty polls, not on every spin.
const TIMER_EVERY: u32 = 64;
/// Longest sleep while waiting out a reconnect backoff.
const BACKOFF_STEP: Duration = Duration::from_millis(10);

/// Why `opts` cannot run busy-polled (`None`: it can): TLS (`wss://`,
/// `https://`) needs the epoll loop.
#[must_use]
pub fn unsupported(opts: &FeedOptions) -> Option<String> {
    let check = |url: &str, plain: &str, secure: &str| match Target::parse(url, plain, secure) {
        Ok(t) if t.tls => Some(format!(
            "{url}: TLS is not supported by the busy-poll receiver"
        )),
        Ok(_) => None,
        Err(e) => Some(e),
    };
    check(&opts.ws_url, "ws", "wss").or_else(|| check(&opts.rest_base, "http", "https"))
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
    // The machine's next deadline; timers are looked at once per
    // `TIMER_EVERY` empty polls, not on every spin.
    let mut wake = Instant::now();
    let mut empty_polls = 0u32;

    let end = 'session: loop {
        if handler.should_stop() {
            return SessionEnd::Stop;
        }
        m.requeue_due(Instant::now(), requests);
        if inflight.is_none() {
            if let Some(symbol) = m.take_request(Instant::now(), requests) {
                match InFlight::start(opts, &symbol) {
                    Ok(f) => inflight = Some(f),
                    Err(e) => super::feed::snapshot_error(m, handler, &symbol, &e),
                }
            }
        }
        // The request goes out ahead of the WebSocket, even during a burst.
        if let Some(Err(e)) = inflight.as_mut().map(InFlight::send) {
            if let Some(f) = inflight.take() {
                super::feed::snapshot_error(m, handler, &f.symbol, &e);
            }
        }

        match ws.read() {
            Ok(msg) => {
                let recv_ns = realtime_ns();
                let now = Instant::now();
                empty_polls = 0;
                match msg {
                    Message::Text(t) => {
                        deliver(handler, &mut m.stats, frame_buf, recv_ns, t.as_bytes());
                        m.received(now, handler.frame_was_data());
                    }
                    Message::Binary(b) => {
                        deliver(handler, &mut m.stats, frame_buf, recv_ns, &b);
                        m.received(now, handler.frame_was_data());
                    }
                    // tungstenite queued the Pong; the next read flushes it.
                    Message::Ping(_) | Message::Frame(_) => m.received(now, false),
                    Message::Pong(_) => {
                        m.received(now, false);
                        m.stats.pongs += 1;
                    }
                    Message::Close(frame) => {
                        // Answer the close handshake (the reply is queued).
                        let _ = ws.flush();
                        break close_reason(frame.as_ref());
                    }
                }
                // More frames may be readable: the snapshot waits behind them.
                continue;
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                break "websocket stream ended".to_owned();
            }
            Err(e) => break format!("websocket error: {e}"),
        }

        // No WebSocket frame is readable: only now may the snapshot advance.
        if let Some(f) = inflight.as_mut() {
            if f.done.is_some() {
                // Complete, and every frame that was readable when it completed
                // has been delivered: close the connection, then deliver.
                if let Some(f) = inflight.take() {
                    let recv_ns = realtime_ns();
                    let InFlight {
                        symbol,
                        conn,
                        done,
                        head,
                        ..
                    } = f;
                    let rate = head.map(|h| h.3).unwrap_or_default();
                    drop(conn);
                    match done {
                        Some(Ok(mut body)) => super::feed::snapshot_arrived(
                            m, opts, handler, &symbol, recv_ns, &mut body, rate,
                        ),
                        Some(Err(e)) => super::feed::snapshot_error(m, handler, &symbol, &e),
                        None => {}
                    }
                }
                continue;
            }
            if f.receive() {
                // Complete: poll the WebSocket once more before delivering it.
                continue;
            }
        }

        empty_polls = empty_polls.wrapping_add(1);
        if empty_polls % TIMER_EVERY == 0 {
            let now = Instant::now();
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
            if let Some(f) = inflight.as_mut() {
                if f.done.is_none() && now >= f.deadline {
                    f.done = Some(Err(HttpError::Timeout(opts.http_timeout)));
                }
            }
        }
        std::hint::spin_loop();
    };

    // The connection is gone, and the in-flight snapshot (if any) with it.
    let symbol = inflight.as_ref().map(|f| f.symbol.as_str());
    m.lost(Instant::now(), symbol, requests);
    handler.on_disconnected(&end);
    SessionEnd::Lost
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
    let (mut ws, _response) = tungstenite::client::client(opts.ws_url.as_str(), tcp)
        .map_err(|e| format!("websocket handshake with {}: {e}", target.host_header))?;
    let tcp = ws.get_mut();
    tcp.set_read_timeout(None).map_err(io_err)?;
    tcp.set_write_timeout(None).map_err(io_err)?;
    tcp.set_nonblocking(true).map_err(io_err)?;
    Ok(ws)
}

/// The one snapshot GET in flight, driven by non-blocking calls only.
struct InFlight {
    symbol: String,
    deadline: Instant,
    conn: TcpStream,
    request: Vec<u8>,
    written: usize,
    /// Response bytes received so far.
    buf: Vec<u8>,
    /// Parsed head: status, framing, offset of the body in `buf`.
    head: Option<(u16, Framing, usize, http::RateHeaders)>,
    /// The outcome, once complete (delivered after the WebSocket is drained).
    done: Option<Result<Vec<u8>, HttpError>>,
}

impl InFlight {
    /// Connects (blocking, bounded by `http_timeout`) and prepares the request.
    fn start(opts: &FeedOptions, symbol: &str) -> Result<Self, HttpError> {
        let url = format!("{}{}", opts.rest_base, (opts.snapshot_path)(symbol));
        let t = Target::parse(&url, "http", "https").map_err(HttpError::InvalidUrl)?;
        if t.tls {
            return Err(HttpError::Tls(
                "https snapshots need the epoll receiver".to_owned(),
            ));
        }
        let conn = connect_tcp(&t.host, t.port, opts.http_timeout).map_err(HttpError::Connect)?;
        conn.set_nonblocking(true)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
            t.path,
            t.host_header,
            http::USER_AGENT
        )
        .into_bytes();
        Ok(Self {
            symbol: symbol.to_owned(),
            deadline: Instant::now() + opts.http_timeout,
            conn,
            request,
            written: 0,
            buf: Vec::with_capacity(64 << 10),
            head: None,
            done: None,
        })
    }

    /// Writes what the socket takes of the request.
    fn send(&mut self) -> Result<(), HttpError> {
        while self.written < self.request.len() {
            match self.conn.write(&self.request[self.written..]) {
                Ok(0) => return Err(HttpError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HttpError::Io(e)),
            }
        }
        Ok(())
    }

    /// Reads what is available; true when the response is complete (or failed).
    fn receive(&mut self) -> bool {
        if self.written < self.request.len() {
            return false;
        }
        let eof = match self.conn.read_to_end(&mut self.buf) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e) => {
                self.done = Some(Err(HttpError::Io(e)));
                return true;
            }
        };
        self.done = parse_response(&self.buf, &mut self.head, eof, http::MAX_BODY);
        self.done.is_some()
    }
}

/// Sans-IO: the response in `data` so far; `None` while incomplete. `head`
/// caches the parsed head between calls.
fn parse_response(
    data: &[u8],
    head: &mut Option<(u16, Framing, usize, http::RateHeaders)>,
    eof: bool,
    max_body: usize,
) -> Option<Result<Vec<u8>, HttpError>> {
    let mut start = 0;
    while head.is_none() {
        let mut headers = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&data[start..]) {
            Ok(httparse::Status::Complete(used)) => {
                let status = resp.code.unwrap_or(0);
                let framing = match http::framing(status, resp.headers) {
                    Ok(f) => f,
                    Err(e) => return Some(Err(e)),
                };
                start += used;
                // Skip interim responses (100 Continue, 103 Early Hints).
                if !(100..200).contains(&status) || status == 101 {
                    *head = Some((status, framing, start, http::rate_headers(resp.headers)));
                }
            }
            Ok(httparse::Status::Partial) => {
                if data.len() - start > http::MAX_HEAD {
                    return Some(Err(HttpError::TooLarge {
                        limit: http::MAX_HEAD,
                    }));
                }
                return eof.then_some(Err(HttpError::Malformed(
                    "connection closed before end of headers",
                )));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Some(Err(HttpError::Malformed("too many headers")));
            }
            Err(_) => return Some(Err(HttpError::Malformed("invalid status line or header"))),
        }
    }
    let (status, framing, start, rate) = (*head)?;
    let rest = &data[start..];
    let body = match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(n) if n > max_body => Err(HttpError::TooLarge { limit: max_body }),
        Framing::Length(n) if rest.len() >= n => Ok(rest[..n].to_vec()),
        Framing::Length(_) if eof => {
            Err(HttpError::Malformed("connection closed before end of body"))
        }
        Framing::Length(_) => return None,
        Framing::Eof if rest.len() > max_body => Err(HttpError::TooLarge { limit: max_body }),
        Framing::Eof if eof => Ok(rest.to_vec()),
        Framing::Eof => return None,
        Framing::Chunked => match decode_chunked(rest, max_body) {
            Ok(Some(body)) => Ok(body),
            Ok(None) if eof => Err(HttpError::Malformed(
                "connection closed inside chunked body",
            )),
            Ok(None) => return None,
            Err(e) => Err(e),
        },
    };
    Some(body.and_then(|b| {
        if (200..300).contains(&status) {
            Ok(b)
        } else {
            Err(http::status_error(status, &b, rate))
        }
    }))
}

/// Sans-IO chunked decoding of a whole body; `Ok(None)` while incomplete.
fn decode_chunked(data: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let size = match httparse::parse_chunk_size(&data[pos..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                pos += used;
                size
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HttpError::Malformed("invalid chunk size")),
        };
        if size == 0 {
            // Trailer lines up to and including the empty line.
            loop {
                match data[pos..].windows(2).position(|w| w == b"\r\n") {
                    None => return Ok(None),
                    Some(0) => return Ok(Some(body)),
                    Some(eol) => pos += eol + 2,
                }
            }
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= max_body.saturating_sub(body.len()))
            .ok_or(HttpError::TooLarge { limit: max_body })?;
        if data.len() - pos < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[pos..pos + size]);
        pos += size;
        if &data[pos..pos + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk data not followed by CRLF"));
        }
        pos += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(resp: &[u8], max: usize) -> Option<Result<Vec<u8>, HttpError>> {
        // Byte by byte: every prefix is incomplete, the whole is complete.
        let mut head = None;
        for i in 0..resp.len() {
            if let Some(r) = parse_response(&resp[..i], &mut head, false, max) {
                return Some(r);
            }
        }
        parse_response(resp, &mut head, true, max)
    }

    #[test]
    fn decodes_bodies_incrementally() {
        let r = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100);
        assert_eq!(r.unwrap().unwrap(), b"hello");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\nwire\r\n6;ext=1\r\nsignal\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse_all(chunked, 100).unwrap().unwrap(), b"wiresignal");
        let eof = b"HTTP/1.1 200 OK\r\n\r\nuntil eof";
        assert_eq!(parse_all(eof, 100).unwrap().unwrap(), b"until eof");
        let cont = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_all(cont, 100).unwrap().unwrap(), b"");
    }

    #[test]
    fn rejects_bad_responses() {
        let r = parse_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah",
            100,
        );
        assert!(
            matches!(r, Some(Err(HttpError::Status { status: 404, ref body, .. })) if body == "nah")
        );
        let r = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100);
        assert!(matches!(r, Some(Err(HttpError::TooLarge { limit: 100 }))));
        let r = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 100);
        assert!(matches!(r, Some(Err(HttpError::Malformed(_)))));
        let r = parse_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            100,
        );
        assert!(matches!(r, Some(Err(HttpError::Malformed(_)))));
        let r = parse_all(b"garbage\r\n\r\n", 100);
        assert!(matches!(r, Some(Err(HttpError::Malformed(_)))));
    }

    fn options(ws_url: &str, rest_base: &str) -> FeedOptions {
        FeedOptions::new(ws_url, rest_base)
    }

    #[test]
    fn tls_feeds_are_unsupported() {
        assert!(unsupported(&options("wss://x:1", "http://x:1")).is_some());
        assert!(unsupported(&options("ws://x:1", "https://x:1")).is_some());
        assert!(unsupported(&options("ws://x:1/stream", "http://x:1")).is_none());
    }
}
