//! REST `GET`s on hyper, performed off the receiver threads.
//!
//! One control thread per process (`wiresignal-rest`, started on first use)
//! runs every snapshot and bootstrap request on its own tokio runtime with
//! hyper's HTTP/1.1 client, plain `http://` or `https://` (rustls with the
//! `ring` provider and the webpki roots). A receiver [`submit`]s a URL and
//! gets a [`Pending`] answer that it awaits (epoll loop) or polls with
//! [`Pending::try_take`] (busy-poll loop): it never connects, writes or parses
//! HTTP itself, it only parses the body it is handed.
//!
//! Why hyper's connection API and not reqwest's pooled client: the feed loops'
//! ordering contract (see [`super::feed`]) closes a snapshot's connection only
//! when the receiver delivers its body, behind every WebSocket frame readable
//! at that moment (the simulator resumes playback at that close, which makes
//! runs deterministic). `conn::http1::Connection::without_shutdown` hands the
//! socket back with the body; a pool keeps it. Snapshots are rare, so one
//! connection per request (`Connection: close`) costs nothing measurable.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes};
use hyper::header::{HeaderMap, ACCEPT, ACCEPT_ENCODING, CONNECTION, HOST, USER_AGENT as UA};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Default cap on a response body.
pub const MAX_BODY: usize = 16 << 20;
/// Bytes of a non-2xx body kept in [`HttpError::Status`].
const STATUS_BODY_SNIPPET: usize = 512;
pub(crate) const USER_AGENT: &str = concat!("wiresignal/", env!("CARGO_PKG_VERSION"));

/// A complete 2xx response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code (always 2xx; other codes are [`HttpError::Status`]).
    pub status: u16,
    /// Decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// The venue's rate-limit headers.
    pub rate: RateHeaders,
}

/// The rate-limit headers of an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// `Retry-After` (its seconds form; an HTTP date counts as absent).
    pub retry_after: Option<Duration>,
    /// Binance `x-mbx-used-weight-1m`: REST weight used in the current minute.
    pub used_weight: Option<u32>,
}

/// Reads the rate-limit headers.
fn rate_headers(headers: &HeaderMap) -> RateHeaders {
    let num = |name: &str| {
        let v = headers.get(name)?.to_str().ok()?;
        v.trim().parse::<u32>().ok()
    };
    RateHeaders {
        retry_after: num("retry-after").map(|s| Duration::from_secs(u64::from(s))),
        used_weight: num("x-mbx-used-weight-1m"),
    }
}

/// Why a [`get`] failed.
#[derive(Debug)]
pub enum HttpError {
    /// The URL is not `http://host[:port]/path` or `https://…`.
    InvalidUrl(String),
    /// TCP connect (or name resolution) failed.
    Connect(io::Error),
    /// TLS configuration, server name or handshake failed.
    Tls(String),
    /// The whole exchange did not finish within the timeout.
    Timeout(Duration),
    /// The server answered with a non-2xx status; `body` is the start of its body
    /// (lossy UTF-8, at most 512 bytes).
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// The response violates HTTP/1.1 (hyper's reason).
    Malformed(String),
    /// The body exceeds the configured limit.
    TooLarge { limit: usize },
    /// The control thread could not be started or is gone.
    Io(io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid url: {why}"),
            Self::Connect(e) => write!(f, "connect failed: {e}"),
            Self::Tls(e) => write!(f, "tls: {e}"),
            Self::Timeout(t) => write!(f, "timed out after {t:?}"),
            Self::Status { status, body, .. } => write!(f, "http status {status}: {body}"),
            Self::Malformed(why) => write!(f, "malformed response: {why}"),
            Self::TooLarge { limit } => write!(f, "response exceeds {limit} bytes"),
            Self::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) | Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A 2xx answer with its connection, which stays open until [`Answer::close`]
/// (or drop): the feed loops close it right before delivering the body.
pub struct Answer {
    /// The response.
    pub response: HttpResponse,
    conn: Option<Box<dyn Send>>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("response", &self.response)
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Answer {
    /// Closes the connection (idempotent).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// The response, its connection closed.
    #[must_use]
    pub fn into_response(self) -> HttpResponse {
        self.response
    }
}

/// The answer to a [`submit`]ted request, produced by the control thread.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<Answer, HttpError>>,
}

fn thread_gone() -> HttpError {
    HttpError::Io(io::Error::other("the REST control thread is gone"))
}

impl Pending {
    /// The answer if it is complete (never blocks): for the busy-poll loop.
    pub fn try_take(&mut self) -> Option<Result<Answer, HttpError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(thread_gone())),
        }
    }
}

impl Future for Pending {
    type Output = Result<Answer, HttpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(thread_gone())))
    }
}

/// One request for the control thread.
struct Call {
    url: String,
    timeout: Duration,
    max_body: usize,
    reply: oneshot::Sender<Result<Answer, HttpError>>,
}

/// Queues `GET url` on the control thread; `timeout` bounds the whole
/// exchange (resolve, connect, TLS, request, response). Dropping the
/// [`Pending`] abandons the request (its connection is closed).
pub fn submit(url: String, timeout: Duration, max_body: usize) -> Pending {
    let (reply, rx) = oneshot::channel();
    let call = Call {
        url,
        timeout,
        max_body,
        reply,
    };
    match control() {
        Some(tx) => {
            if let Err(mpsc::error::SendError(call)) = tx.send(call) {
                let _ = call.reply.send(Err(thread_gone()));
            }
        }
        None => {
            let _ = call.reply.send(Err(thread_gone()));
        }
    }
    Pending { rx }
}

/// `GET url` with a body limit of [`MAX_BODY`], on the control thread; the
/// connection is closed before this returns.
///
/// # Errors
/// Any [`HttpError`]; a non-2xx status is [`HttpError::Status`].
pub async fn get(url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
    get_with_limit(url, timeout, MAX_BODY).await
}

/// [`get`] with an explicit body limit.
///
/// # Errors
/// As [`get`]; a body longer than `max_body` is [`HttpError::TooLarge`].
pub async fn get_with_limit(
    url: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<HttpResponse, HttpError> {
    submit(url.to_owned(), timeout, max_body)
        .await
        .map(Answer::into_response)
}

/// The control thread's queue (`None`: the thread could not be started).
fn control() -> Option<&'static mpsc::UnboundedSender<Call>> {
    static TX: OnceLock<Option<mpsc::UnboundedSender<Call>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        std::thread::Builder::new()
            .name("wiresignal-rest".into())
            .spawn(move || rt.block_on(serve(rx)))
            .ok()?;
        Some(tx)
    })
    .as_ref()
}

/// The control thread: every request runs as its own task.
async fn serve(mut rx: mpsc::UnboundedReceiver<Call>) {
    while let Some(call) = rx.recv().await {
        tokio::spawn(run_call(call));
    }
}

async fn run_call(mut call: Call) {
    let result = tokio::select! {
        // The receiver gave up (its connection was lost): abandon the request.
        () = call.reply.closed() => return,
        r = tokio::time::timeout(call.timeout, fetch(&call.url, call.max_body)) => {
            r.unwrap_or(Err(HttpError::Timeout(call.timeout)))
        }
    };
    let _ = call.reply.send(result);
}

/// A plain or TLS connection.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

async fn fetch(url: &str, max_body: usize) -> Result<Answer, HttpError> {
    let t = Target::parse(url, "http", "https").map_err(HttpError::InvalidUrl)?;
    let tcp = connect_tcp(&t.host, t.port)
        .await
        .map_err(HttpError::Connect)?;
    let io: Box<dyn Io> = if t.tls {
        let config = tls_client_config().map_err(HttpError::Tls)?;
        let name = ServerName::try_from(t.host.clone())
            .map_err(|e| HttpError::Tls(format!("server name {:?}: {e}", t.host)))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    exchange(io, &t, max_body).await
}

/// One request and its response on `io`; the connection is handed back
/// open with a 2xx answer and closed before any error returns.
async fn exchange<S: Io + 'static>(
    io: S,
    t: &Target,
    max_body: usize,
) -> Result<Answer, HttpError> {
    let malformed = |e: hyper::Error| HttpError::Malformed(e.to_string());
    // Title-case names, as every venue's examples send them.
    let (mut send, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(malformed)?;
    let request = Request::get(t.path.as_str())
        .header(HOST, t.host_header.as_str())
        .header(UA, USER_AGENT)
        .header(ACCEPT, "*/*")
        .header(ACCEPT_ENCODING, "identity")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| HttpError::InvalidUrl(e.to_string()))?;
    let response = async move {
        let resp = send.send_request(request).await.map_err(malformed)?;
        let status = resp.status().as_u16();
        let rate = rate_headers(resp.headers());
        // A declared length over the limit fails before any of it is read.
        if resp.body().size_hint().lower() > max_body as u64 {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        let body = Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| match e.downcast::<LengthLimitError>() {
                Ok(_) => HttpError::TooLarge { limit: max_body },
                Err(e) => HttpError::Malformed(e.to_string()),
            })?
            .to_bytes();
        Ok::<_, HttpError>((status, rate, Vec::from(body)))
    };
    // `Connection: close`: the connection ends after this one exchange and
    // gives its socket back instead of shutting it down.
    let (parts, response) = tokio::join!(conn.without_shutdown(), response);
    let (status, rate, body) = response?;
    if !(200..300).contains(&status) {
        return Err(status_error(status, &body, rate));
    }
    Ok(Answer {
        response: HttpResponse { status, body, rate },
        conn: parts.ok().map(|p| Box::new(p.io) as Box<dyn Send>),
    })
}

#[cold]
fn status_error(status: u16, body: &[u8], rate: RateHeaders) -> HttpError {
    let snippet = &body[..body.len().min(STATUS_BODY_SNIPPET)];
    HttpError::Status {
        status,
        body: String::from_utf8_lossy(snippet).into_owned(),
        retry_after: rate.retry_after,
    }
}

/// Resolve and connect with `TCP_NODELAY`. `host` is bare (no IPv6 brackets);
/// IP literals are not sent to the resolver.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The process-wide rustls client configuration (ring provider, webpki roots),
/// shared by HTTPS snapshots and `wss://` feeds.
///
/// # Errors
/// Only if the ring provider rejects the default protocol versions.
pub fn tls_client_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// A parsed `scheme://host[:port][/path][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub tls: bool,
    /// Bare host: IPv6 literals without brackets (what connect and SNI want).
    pub host: String,
    pub port: u16,
    /// `Host` header value: brackets kept, port only if not the scheme default.
    pub host_header: String,
    /// Request target: path and query, at least `/`; fragment removed.
    pub path: String,
}

impl Target {
    /// Parse `url` whose scheme must be `plain` (port 80) or `secure` (port 443).
    pub fn parse(url: &str, plain: &str, secure: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?}: missing scheme"))?;
        let tls = if scheme.eq_ignore_ascii_case(plain) {
            false
        } else if scheme.eq_ignore_ascii_case(secure) {
            true
        } else {
            return Err(format!("{url:?}: scheme must be {plain} or {secure}"));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(format!("{url:?}: user info is not supported"));
        }
        let (host, host_literal, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inner, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{url:?}: bad authority"))?,
                ),
            };
            (inner, &authority[..inner.len() + 2], port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, h, Some(p)),
                None => (authority, authority, None),
            }
        };
        if host.is_empty() || (host.contains(':') && !authority.starts_with('[')) {
            return Err(format!("{url:?}: bad host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match port {
            None | Some("") => default_port,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        };
        let host_header = if port == default_port {
            host_literal.to_owned()
        } else {
            format!("{host_literal}:{port}")
        };
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            host_header,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_urls() {
        let t = Target::parse(
            "https://api.binance.com/api/v3/depth?symbol=X",
            "http",
            "https",
        )
        .unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("api.binance.com", 443));
        assert_eq!(t.host_header, "api.binance.com");
        assert_eq!(t.path, "/api/v3/depth?symbol=X");

        let t = Target::parse("http://127.0.0.1:9001", "http", "https").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9001, "/")
        );
        assert_eq!(t.host_header, "127.0.0.1:9001");

        let t = Target::parse("ws://[::1]:8080?x=1#frag", "ws", "wss").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert_eq!(t.host_header, "[::1]:8080");
        assert_eq!(t.path, "/?x=1");

        let t = Target::parse("HTTP://[::1]/p", "http", "https").unwrap();
        assert_eq!((t.host_header.as_str(), t.port), ("[::1]", 80));

        for bad in [
            "ftp://x/",
            "http//x",
            "http://",
            "http://:80/",
            "http://[::1/",
            "http://[::1]x/",
            "http://::1/",
            "http://h:99999/",
            "http://u@h/",
        ] {
            assert!(Target::parse(bad, "http", "https").is_err(), "{bad}");
        }
    }

    async fn run(response: &[u8], max: usize) -> Result<HttpResponse, HttpError> {
        let (client, mut server) = tokio::io::duplex(64);
        let response = response.to_vec();
        let srv = async move {
            // The whole request head first (the pipe holds 64 bytes).
            let (mut req, mut buf) = (Vec::new(), [0u8; 64]);
            while !req.ends_with(b"\r\n\r\n") {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            // Byte by byte: exercises every partial-read path.
            for b in response {
                if server.write_all(&[b]).await.is_err() {
                    break;
                }
            }
        };
        let t = Target::parse("http://test/", "http", "https").unwrap();
        let ((), r) = tokio::join!(srv, exchange(client, &t, max));
        r.map(Answer::into_response)
    }

    #[tokio::test]
    async fn decodes_bodies() {
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\nwire\r\n6;ext=1\r\nsignal\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(run(chunked, 100).await.unwrap().body, b"wiresignal");

        let eof = b"HTTP/1.1 200 OK\r\n\r\nuntil eof";
        assert_eq!(run(eof, 100).await.unwrap().body, b"until eof");

        let cont = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(run(cont, 100).await.unwrap().status, 204);

        let limited = b"HTTP/1.1 200 OK\r\nRetry-After: 7\r\nx-mbx-used-weight-1m: 1234\r\n\
                        Content-Length: 2\r\n\r\n{}";
        let r = run(limited, 100).await.unwrap();
        assert_eq!(r.rate.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(r.rate.used_weight, Some(1234));
    }

    #[tokio::test]
    async fn rejects_bad_responses() {
        let r = run(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 3\r\n\r\nnah",
            100,
        )
        .await;
        assert!(
            matches!(r, Err(HttpError::Status { status: 429, ref body, retry_after: Some(d) })
                if body == "nah" && d == Duration::from_secs(3)),
            "{r:?}"
        );
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100).await;
        assert!(
            matches!(r, Err(HttpError::TooLarge { limit: 100 })),
            "{r:?}"
        );
        let r = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n",
            100,
        )
        .await;
        assert!(
            matches!(
                r,
                Err(HttpError::TooLarge { .. }) | Err(HttpError::Malformed(_))
            ),
            "{r:?}"
        );
        let r = run(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 5).await;
        assert!(matches!(r, Err(HttpError::TooLarge { .. })), "{r:?}");
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-",
        ] {
            let r = run(bad, 100).await;
            assert!(
                matches!(r, Err(HttpError::Malformed(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
