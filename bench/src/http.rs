//! One HTTP/1.1 front door (hyper) for the exchange simulator ([`crate::sim`])
//! and the load server ([`crate::load`]).
//!
//! Every accepted connection is served by hyper's `server::conn::http1`
//! with one request per connection, as both servers always did:
//!
//! * a **WebSocket upgrade** (`Upgrade: websocket`) on a route the [`Door`]
//!   knows is answered `101 Switching Protocols` with `Sec-WebSocket-Accept`
//!   (400 without `Sec-WebSocket-Key` or for a method other than GET, 404
//!   for an unknown route). The raw socket is then taken back from hyper
//!   (`without_shutdown`, so there is no extra layer between the WebSocket
//!   and the `TcpStream`) and handed to [`Door::websocket`] together with
//!   any bytes hyper read past the request head;
//! * any other request is answered by [`Door::request`]: a [`Reply`]
//!   (sent with `Content-Length` and `Connection: close`, then the server
//!   half-closes) or [`Answer::Close`] (no answer: the connection is closed
//!   after a while, a hanging server). A reply may carry a [`Lease`], a value
//!   kept alive until the client closes its side of the connection or the
//!   lease's deadline passes, whichever comes first; the simulator pauses
//!   playback while a depth answer's lease is alive.
//!
//! Bad or oversized request heads get hyper's own 400 / 431; a client that
//! does not send its head within [`HEADER_TIMEOUT`] is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A client that does not send its whole request head in this time is dropped.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read (a longer one gets 431).
pub const MAX_HEAD: usize = 16 * 1024;

/// A value kept alive after its [`Reply`] was sent, until the client closes
/// the connection or `until`, whichever comes first; then dropped (once).
pub struct Lease {
    _hold: Box<dyn Send>,
    until: Instant,
}

impl Lease {
    /// Holds `hold` until the client closes, at most until `until`.
    pub fn new(hold: impl Send + 'static, until: Instant) -> Self {
        Self {
            _hold: Box::new(hold),
            until,
        }
    }
}

/// A plain HTTP answer (`Content-Type: application/json;charset=UTF-8`
/// unless a header says otherwise).
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    lease: Option<Lease>,
}

impl Reply {
    /// `status` with `body`.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            lease: None,
        }
    }

    /// From a status line as venues write it (`"400 Bad Request"`); a line
    /// without a valid code answers 500.
    pub fn status_line(line: &str, body: impl Into<String>) -> Self {
        let status = line
            .get(..3)
            .and_then(|c| StatusCode::from_bytes(c.as_bytes()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, body)
    }

    /// Sets a header (replacing the default of the same name).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Keeps `lease` alive after the answer (see [`Lease`]).
    #[must_use]
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// What a [`Door`] does with a plain request.
pub enum Answer {
    /// Send this reply.
    Reply(Reply),
    /// No answer: close the connection after this long (zero: at once).
    Close(Duration),
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Self {
        Answer::Reply(r)
    }
}

/// What a server puts behind the front door.
pub trait Door: Send + Sync + 'static {
    /// What a WebSocket route resolves to.
    type Route: Send + 'static;

    /// The WebSocket route of `path` and `query` (`None`: 404).
    fn ws_route(&self, path: &str, query: &str) -> Option<Self::Route>;

    /// Serves an accepted WebSocket (the 101 is written): `io` is the raw
    /// socket, `read_buf` what the client sent after its request head,
    /// `deflate` whether the 101 agreed on permessage-deflate (see
    /// [`Door::deflate`]).
    fn websocket(
        &self,
        route: Self::Route,
        io: TcpStream,
        read_buf: Bytes,
        deflate: bool,
    ) -> impl Future<Output = ()> + Send;

    /// Whether to agree on permessage-deflate (RFC 7692) when a client
    /// offers it: the 101 then answers `Sec-WebSocket-Extensions:
    /// permessage-deflate` (both windows 15 bits, context takeover).
    fn deflate(&self) -> bool {
        false
    }

    /// Answers a plain (non-upgrade) request.
    fn request(
        &self,
        method: &Method,
        path: &str,
        query: &str,
    ) -> impl Future<Output = Answer> + Send;
}

/// Accepts connections on `listener` and serves each ([`serve`]) on its own
/// task until `stop` turns true (or its sender is dropped).
pub async fn accept_loop<D: Door>(
    listener: TcpListener,
    door: Arc<D>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(serve(Arc::clone(&door), stream));
                }
                // Out of descriptors and the like: let connections finish.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            r = stop.changed() => if r.is_err() {
                return;
            },
        }
    }
}

/// What the connection does once hyper is done with it.
enum After<R> {
    /// The route, and whether permessage-deflate was agreed.
    Upgrade(R, bool),
    Lease(Lease),
}

type Slot<R> = Arc<Mutex<Option<After<R>>>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves one connection: one request, then a WebSocket, a lease or a close.
pub async fn serve<D: Door>(door: Arc<D>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let slot: Slot<D::Route> = Arc::new(Mutex::new(None));
    let service = {
        let (door, slot) = (Arc::clone(&door), Arc::clone(&slot));
        hyper::service::service_fn(move |req| -> BoxFuture<Result<_, Closed>> {
            Box::pin(answer(Arc::clone(&door), Arc::clone(&slot), req))
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .without_shutdown();
    // An error: a bad head (hyper answered it), a client gone, or
    // `Answer::Close` (no answer at all).
    let Ok(parts) = conn.await else {
        return;
    };
    let after = slot.lock().ok().and_then(|mut s| s.take());
    let mut io = parts.io.into_inner();
    match after {
        Some(After::Upgrade(route, deflate)) => {
            door.websocket(route, io, parts.read_buf, deflate).await;
        }
        Some(After::Lease(lease)) => {
            let _ = io.shutdown().await;
            // Until the client closes its side (or the lease runs out).
            let _ = tokio::time::timeout_at(lease.until, async {
                let mut b = [0u8; 1024];
                while matches!(io.read(&mut b).await, Ok(n) if n > 0) {}
            })
            .await;
            drop(lease);
        }
        None => {
            let _ = io.shutdown().await;
        }
    }
}

/// The service's error: the connection closes without an answer.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed without an answer")
    }
}

impl std::error::Error for Closed {}

type Body = Full<Bytes>;

async fn answer<D: Door>(
    door: Arc<D>,
    slot: Slot<D::Route>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Closed> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"));
    if upgrade {
        return Ok(upgrade_ws(&*door, &slot, &req, path, query));
    }
    match door.request(req.method(), path, query).await {
        Answer::Reply(mut reply) => {
            if let (Some(lease), Ok(mut s)) = (reply.lease.take(), slot.lock()) {
                *s = Some(After::Lease(lease));
            }
            Ok(response(reply))
        }
        Answer::Close(after) => {
            tokio::time::sleep(after).await;
            Err(Closed)
        }
    }
}

fn upgrade_ws<D: Door>(
    door: &D,
    slot: &Slot<D::Route>,
    req: &Request<Incoming>,
    path: &str,
    query: &str,
) -> Response<Body> {
    let Some(route) = door.ws_route(path, query) else {
        return response(Reply::new(StatusCode::NOT_FOUND, ""));
    };
    let key = req.headers().get(hyper::header::SEC_WEBSOCKET_KEY);
    let (Some(key), &Method::GET) = (key, req.method()) else {
        return response(Reply::new(StatusCode::BAD_REQUEST, ""));
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return response(Reply::new(StatusCode::BAD_REQUEST, ""));
    };
    // Agreed only when offered (RFC 7692 5): any offer of ours is taken
    // as is, with the parameters left at their defaults.
    let deflate = door.deflate()
        && req
            .headers()
            .get_all(hyper::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|offer| offer.trim_start().starts_with("permessage-deflate"));
    match slot.lock() {
        Ok(mut s) => *s = Some(After::Upgrade(route, deflate)),
        Err(_) => return response(Reply::new(StatusCode::INTERNAL_SERVER_ERROR, "")),
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    if deflate {
        h.insert(
            hyper::header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate"),
        );
    }
    r
}

fn response(reply: Reply) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() = reply.status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    for (name, value) in reply.headers {
        h.insert(name, value);
    }
    // One request per connection; hyper then ends the connection and hands
    // the socket back (see `serve`).
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    r
}
