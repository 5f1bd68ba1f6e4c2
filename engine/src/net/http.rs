//! Minimal async HTTP/1.1 `GET` client for REST snapshots.
//!
//! One request per connection (`Connection: close`), plain `http://` or `https://`
//! (rustls with the `ring` provider and the webpki root set). The response is parsed
//! with `httparse`; `Content-Length`, `chunked` and read-to-EOF bodies are supported.
//! As soon as the complete body is in memory the connection is dropped, before the
//! caller sees the response: a simulator may wait for that close before it continues.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Default cap on a response body.
pub const MAX_BODY: usize = 16 << 20;
/// Cap on the status line plus headers.
pub(crate) const MAX_HEAD: usize = 64 << 10;
/// Headers parsed per response; more is an error.
pub(crate) const MAX_HEADERS: usize = 64;
/// Bytes of a non-2xx body kept in [`HttpError::Status`].
const STATUS_BODY_SNIPPET: usize = 512;
/// Read granularity for headers, chunked and EOF bodies.
const READ_CHUNK: usize = 16 << 10;
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
pub(crate) fn rate_headers(headers: &[httparse::Header<'_>]) -> RateHeaders {
    let num = |v: &[u8]| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok();
    let mut r = RateHeaders::default();
    for h in headers {
        if h.name.eq_ignore_ascii_case("retry-after") {
            r.retry_after = num(h.value).map(|s| Duration::from_secs(u64::from(s)));
        } else if h.name.eq_ignore_ascii_case("x-mbx-used-weight-1m") {
            r.used_weight = num(h.value);
        }
    }
    r
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
    /// The response violates HTTP/1.1 framing.
    Malformed(&'static str),
    /// The body (or the head) exceeds the configured limit.
    TooLarge { limit: usize },
    /// Reading or writing the established connection failed.
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

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// `GET url` with a body limit of [`MAX_BODY`]; `timeout` bounds the whole exchange
/// (resolve, connect, TLS, request, response).
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
    let exchange = async { send_get(url, max_body).await?.response().await };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout)),
    }
}

/// First half of a [`get`]: resolve, connect, TLS handshake and write the request.
/// The caller bounds it in time; [`SentRequest::response`] reads the answer.
///
/// Splitting lets the feed loop push the request out eagerly while it defers reading
/// the response behind already-readable WebSocket frames.
///
/// # Errors
/// [`HttpError::InvalidUrl`], [`HttpError::Connect`], [`HttpError::Tls`] or
/// [`HttpError::Io`].
pub async fn send_get(url: &str, max_body: usize) -> Result<SentRequest, HttpError> {
    let t = Target::parse(url, "http", "https").map_err(HttpError::InvalidUrl)?;
    let tcp = connect_tcp(&t.host, t.port)
        .await
        .map_err(HttpError::Connect)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        t.path, t.host_header
    );
    let stream = if t.tls {
        let config = tls_client_config().map_err(HttpError::Tls)?;
        let name = ServerName::try_from(t.host.clone())
            .map_err(|e| HttpError::Tls(format!("server name {:?}: {e}", t.host)))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    Ok(SentRequest {
        conn: send_request(stream, request.as_bytes()).await?,
        max_body,
    })
}

/// A `GET` whose request is on the wire; see [`send_get`].
pub struct SentRequest {
    conn: Conn<Stream>,
    max_body: usize,
}

impl fmt::Debug for SentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentRequest")
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl SentRequest {
    /// Read the response; the connection is closed as soon as the body is complete,
    /// before this returns.
    ///
    /// # Errors
    /// As [`get`], except [`HttpError::Timeout`]: the caller bounds it in time.
    pub async fn response(self) -> Result<HttpResponse, HttpError> {
        read_response(self.conn, self.max_body).await
    }
}

/// Plain or TLS connection of one request.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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

async fn send_request<S>(stream: S, request: &[u8]) -> Result<Conn<S>, HttpError>
where
    S: AsyncWrite + Unpin,
{
    let mut conn = Conn {
        s: stream,
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
    };
    conn.s.write_all(request).await?;
    conn.s.flush().await?;
    Ok(conn)
}

/// Read one response, drop the connection, then return.
async fn read_response<S>(mut conn: Conn<S>, max_body: usize) -> Result<HttpResponse, HttpError>
where
    S: AsyncRead + Unpin,
{
    let head = conn.read_head().await?;
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => conn.read_length(n, max_body).await?,
        Framing::Chunked => conn.read_chunked(max_body).await?,
        Framing::Eof => conn.read_to_eof(max_body).await?,
    };
    // The body is complete: close now, before anyone looks at the response.
    drop(conn);
    if (200..300).contains(&head.status) {
        Ok(HttpResponse {
            status: head.status,
            body,
            rate: head.rate,
        })
    } else {
        Err(status_error(head.status, &body, head.rate))
    }
}

#[cold]
pub(crate) fn status_error(status: u16, body: &[u8], rate: RateHeaders) -> HttpError {
    let snippet = &body[..body.len().min(STATUS_BODY_SNIPPET)];
    HttpError::Status {
        status,
        body: String::from_utf8_lossy(snippet).into_owned(),
        retry_after: rate.retry_after,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(usize),
    Chunked,
    Eof,
}

struct Head {
    status: u16,
    framing: Framing,
    rate: RateHeaders,
}

/// A stream plus its read buffer; `buf[pos..]` is received but not yet consumed.
struct Conn<S> {
    s: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: AsyncRead + Unpin> Conn<S> {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Read more bytes into the buffer (no zero-filling); `Ok(0)` is EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        self.s.read_buf(&mut self.buf).await
    }

    async fn read_head(&mut self) -> Result<Head, HttpError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(self.pending()) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = resp.code.unwrap_or(0);
                    let framing = framing(status, resp.headers)?;
                    let rate = rate_headers(resp.headers);
                    self.pos += used;
                    // Skip interim responses (100 Continue, 103 Early Hints).
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    return Ok(Head {
                        status,
                        framing,
                        rate,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.pending().len() > MAX_HEAD {
                        return Err(HttpError::TooLarge { limit: MAX_HEAD });
                    }
                    if self.fill().await? == 0 {
                        return Err(HttpError::Malformed(
                            "connection closed before end of headers",
                        ));
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(HttpError::Malformed("too many headers"));
                }
                Err(_) => return Err(HttpError::Malformed("invalid status line or header")),
            }
        }
    }

    async fn read_length(&mut self, len: usize, max_body: usize) -> Result<Vec<u8>, HttpError> {
        if len > max_body {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        let mut body = Vec::with_capacity(len);
        let take = self.pending().len().min(len);
        body.extend_from_slice(&self.buf[self.pos..self.pos + take]);
        self.pos += take;
        while body.len() < len {
            // Read straight into the body, never past its end.
            let want = (len - body.len()) as u64;
            if (&mut self.s).take(want).read_buf(&mut body).await? == 0 {
                return Err(HttpError::Malformed("connection closed before end of body"));
            }
        }
        Ok(body)
    }

    async fn read_to_eof(&mut self, max_body: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = self.pending().to_vec();
        self.pos = self.buf.len();
        loop {
            if body.len() > max_body {
                return Err(HttpError::TooLarge { limit: max_body });
            }
            body.reserve(READ_CHUNK);
            if self.s.read_buf(&mut body).await? == 0 {
                return Ok(body);
            }
        }
    }

    async fn read_chunked(&mut self, max_body: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(self.pending()) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.pos += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.pending().len() > MAX_HEAD {
                            return Err(HttpError::Malformed("chunk size line too long"));
                        }
                        self.fill_or_eof("connection closed inside chunked body")
                            .await?;
                    }
                    Err(_) => return Err(HttpError::Malformed("invalid chunk size")),
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(body);
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= max_body.saturating_sub(body.len()))
                .ok_or(HttpError::TooLarge { limit: max_body })?;
            let mut left = size;
            while left > 0 {
                if self.pending().is_empty() {
                    self.fill_or_eof("connection closed inside chunk").await?;
                }
                let take = self.pending().len().min(left);
                body.extend_from_slice(&self.buf[self.pos..self.pos + take]);
                self.pos += take;
                left -= take;
            }
            while self.pending().len() < 2 {
                self.fill_or_eof("connection closed after chunk data")
                    .await?;
            }
            if &self.pending()[..2] != b"\r\n" {
                return Err(HttpError::Malformed("chunk data not followed by CRLF"));
            }
            self.pos += 2;
        }
    }

    /// After the last chunk: skip trailer lines up to and including the empty line.
    async fn skip_trailers(&mut self) -> Result<(), HttpError> {
        loop {
            if let Some(eol) = self.pending().windows(2).position(|w| w == b"\r\n") {
                self.pos += eol + 2;
                if eol == 0 {
                    return Ok(());
                }
                continue;
            }
            if self.pending().len() > MAX_HEAD {
                return Err(HttpError::TooLarge { limit: MAX_HEAD });
            }
            self.fill_or_eof("connection closed inside chunked trailer")
                .await?;
        }
    }

    async fn fill_or_eof(&mut self, why: &'static str) -> Result<(), HttpError> {
        if self.fill().await? == 0 {
            Err(HttpError::Malformed(why))
        } else {
            Ok(())
        }
    }
}

/// Body framing per RFC 9112 §6.3 (for a response to `GET`).
pub(crate) fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut length = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Chunked must be the final coding; a later header line overrides.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(HttpError::Malformed("invalid content-length"))?;
            if length.is_some_and(|prev| prev != n) {
                return Err(HttpError::Malformed("conflicting content-length headers"));
            }
            length = Some(n);
        }
    }
    Ok(match (transfer_encoding, chunked, length) {
        (true, true, _) => Framing::Chunked,
        (false, _, Some(n)) => Framing::Length(n),
        (true, false, _) | (false, _, None) => Framing::Eof,
    })
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
            let mut req = [0u8; 1024];
            let _ = server.read(&mut req).await;
            // Byte by byte: exercises every partial-read path.
            for b in response {
                if server.write_all(&[b]).await.is_err() {
                    break;
                }
            }
        };
        let exchange = async {
            let conn = send_request(client, b"GET / HTTP/1.1\r\n\r\n").await?;
            read_response(conn, max).await
        };
        let ((), r) = tokio::join!(srv, exchange);
        r
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
    }

    #[tokio::test]
    async fn rejects_bad_responses() {
        let r = run(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah",
            100,
        )
        .await;
        assert!(matches!(r, Err(HttpError::Status { status: 404, ref body, .. }) if body == "nah"));
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100).await;
        assert!(matches!(r, Err(HttpError::TooLarge { limit: 100 })));
        let r = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n",
            100,
        )
        .await;
        assert!(matches!(r, Err(HttpError::TooLarge { .. })));
        let r = run(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 5).await;
        assert!(matches!(r, Err(HttpError::TooLarge { .. })));
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 100).await;
        assert!(matches!(r, Err(HttpError::Malformed(_))));
        let r = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            100,
        )
        .await;
        assert!(matches!(r, Err(HttpError::Malformed(_))));
        let r = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            100,
        )
        .await;
        assert!(matches!(r, Err(HttpError::Malformed(_))));
        let r = run(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            100,
        );
        assert!(matches!(r.await, Err(HttpError::Malformed(_))));
        let r = run(b"garbage\r\n\r\n", 100).await;
        assert!(matches!(r, Err(HttpError::Malformed(_))));
        let r = run(b"HTTP/1.1 200 OK\r\nContent-", 100).await;
        assert!(matches!(r, Err(HttpError::Malformed(_))));
    }
}
