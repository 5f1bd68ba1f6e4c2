//! The WebSocket under the feed loop: the only part of a connection that
//! differs between an uncompressed and a compressed feed.
//!
//! [`FeedSocket`] is what the session loop of [`super::feed`] needs from a
//! socket: connect (TCP, TLS, handshake), a [`Stream`] of tungstenite
//! [`Message`]s and a [`Sink`] of them. Two implementations:
//!
//! * [`Plain`]: tokio-tungstenite, as always (no extension offered). The loop
//!   is generic over the socket, so with compression off it compiles to the
//!   same code as before: the only addition is [`Metered`] counting the bytes
//!   read from the TCP socket (one add per `read`, not per frame).
//! * [`Deflate`] (feature `deflate`): offers `permessage-deflate;
//!   client_max_window_bits` (RFC 7692) in the handshake and runs yawc, which
//!   inflates compressed messages. tungstenite 0.30 has no extension support
//!   (a frame with RSV1 is a protocol error), hence the second library. A
//!   server that declines the offer is run uncompressed on the same socket
//!   type ([`FeedSocket::compression`] says which).
//!
//! Both deliver text and binary payloads as `Message::Binary` / `Message::Text`
//! into the one session loop and its one parser: the loop treats them alike.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::feed::{ws_config, FeedOptions};
use super::http::{self, Target};
use crate::pipeline::stats::Counter;

/// Whether a feed offers permessage-deflate (`[[feeds]] compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// No extension offered: tokio-tungstenite (`"none"`, the default).
    #[default]
    None,
    /// Offer permessage-deflate; run uncompressed if the server declines
    /// (`"deflate"`, feature `deflate`).
    Deflate,
}

/// An error of either socket.
#[derive(Debug)]
pub enum SocketError {
    /// From tokio-tungstenite.
    Ws(tungstenite::Error),
    /// From yawc (a bad compressed message is one of these).
    #[cfg(feature = "deflate")]
    Deflate(yawc::WebSocketError),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ws(e) => e.fmt(f),
            #[cfg(feature = "deflate")]
            Self::Deflate(e) => write!(f, "{e}"),
        }
    }
}

/// What the session loop needs from a WebSocket (see the module docs).
pub(super) trait FeedSocket:
    Stream<Item = Result<Message, SocketError>> + Sink<Message, Error = SocketError> + Unpin + Sized
{
    /// TCP connect (`TCP_NODELAY`), TLS for `wss://`, the handshake; the
    /// bytes read from the TCP socket go to `opts.wire_bytes`.
    fn connect(opts: &FeedOptions) -> impl Future<Output = Result<Self, String>>;

    /// `None`: no compression was offered; `Some(agreed)`: permessage-deflate
    /// was offered and the server agreed (`true`) or declined (`false`).
    fn compression(&self) -> Option<bool> {
        None
    }
}

/// A TCP stream counting the bytes read from it (the wire bytes of a feed:
/// WebSocket framing, compressed payloads and TLS records included).
pub(super) struct Metered<S> {
    inner: S,
    read: Option<Arc<Counter>>,
}

impl<S> Metered<S> {
    pub(super) fn new(inner: S, read: Option<Arc<Counter>>) -> Self {
        Self { inner, read }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(c) = &self.read {
            // Single writer: every connection of a feed runs on its receiver thread.
            c.add((buf.filled().len() - before) as u64);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// TCP connect to the host of `ws_url`, metered.
async fn metered_tcp(opts: &FeedOptions, target: &Target) -> Result<Metered<TcpStream>, String> {
    let tcp = http::connect_tcp(&target.host, target.port)
        .await
        .map_err(|e| format!("connect {}: {e}", target.host_header))?;
    Ok(Metered::new(tcp, opts.wire_bytes.clone()))
}

/// The uncompressed socket: tokio-tungstenite.
pub(super) struct Plain(WebSocketStream<MaybeTlsStream<Metered<TcpStream>>>);

impl FeedSocket for Plain {
    /// Does its own TCP connect so that IPv6 literals (`ws://[::1]:port`)
    /// work and `TCP_NODELAY` is set.
    async fn connect(opts: &FeedOptions) -> Result<Self, String> {
        let target = Target::parse(&opts.ws_url, "ws", "wss")?;
        let tcp = metered_tcp(opts, &target).await?;
        let connector = if target.tls {
            Connector::Rustls(http::tls_client_config()?)
        } else {
            Connector::Plain
        };
        let (ws, _response) = tokio_tungstenite::client_async_tls_with_config(
            opts.ws_url.as_str(),
            tcp,
            Some(ws_config()),
            Some(connector),
        )
        .await
        .map_err(|e| format!("websocket handshake with {}: {e}", target.host_header))?;
        Ok(Self(ws))
    }
}

impl Stream for Plain {
    type Item = Result<Message, SocketError>;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|m| m.map(|r| r.map_err(SocketError::Ws)))
    }
}

impl Sink<Message> for Plain {
    type Error = SocketError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_ready(cx)
            .map_err(SocketError::Ws)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.0)
            .start_send(item)
            .map_err(SocketError::Ws)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_flush(cx)
            .map_err(SocketError::Ws)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_close(cx)
            .map_err(SocketError::Ws)
    }
}

#[cfg(feature = "deflate")]
pub(super) use deflate::Deflate;

#[cfg(feature = "deflate")]
mod deflate {
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use futures_util::{Sink, Stream};
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper::header::{
        CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
        SEC_WEBSOCKET_VERSION, UPGRADE,
    };
    use hyper::{Request, StatusCode};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::ServerName;
    use tokio_tungstenite::tungstenite::handshake::client::generate_key;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;
    use yawc::{Frame, OpCode, WebSocketError};

    use super::{metered_tcp, FeedSocket, SocketError};
    use crate::net::feed::{FeedOptions, READ_BUFFER};
    use crate::net::http::{self, Io, Target};

    /// What the client offers: RFC 7692 permessage-deflate, and that it can
    /// take any `client_max_window_bits` (it never compresses, see
    /// [`options`], so a smaller window costs it nothing).
    pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

    /// Largest message (wire and inflated), as tungstenite's default: full
    /// depth snapshots sent on subscribe (Coinbase level2) are several MB.
    const MAX_MESSAGE: usize = 64 << 20;

    /// yawc's settings: inflate what the server compressed, never compress
    /// what we send (subscribe requests are small and rare; a threshold of
    /// `usize::MAX` sends every message as plain text, which RFC 7692 allows),
    /// no UTF-8 check (the parser validates what it reads), the read buffer
    /// of the tungstenite socket.
    fn options() -> yawc::Options {
        yawc::Options::default()
            .with_compression_level(yawc::CompressionLevel::fast())
            .with_compression_threshold(usize::MAX)
            .with_limits(MAX_MESSAGE, MAX_MESSAGE)
            .with_read_buffer_capacity(READ_BUFFER)
    }

    /// The socket that offers permessage-deflate: yawc over the upgraded connection.
    pub struct Deflate {
        ws: yawc::WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
        agreed: bool,
    }

    impl FeedSocket for Deflate {
        /// The handshake is done here with hyper (yawc's own client does
        /// not tell whether the server agreed to compress, which the
        /// `compressed` gauge reports); yawc then takes the upgraded socket
        /// with the extension the server agreed to.
        async fn connect(opts: &FeedOptions) -> Result<Self, String> {
            let t = Target::parse(&opts.ws_url, "ws", "wss")?;
            let tcp = metered_tcp(opts, &t).await?;
            let io: Box<dyn Io> = if t.tls {
                let config = http::tls_client_config()?;
                let name = ServerName::try_from(t.host.clone())
                    .map_err(|e| format!("server name {:?}: {e}", t.host))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls with {}: {e}", t.host_header))?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let fail = |e: &dyn std::fmt::Display| {
                format!("websocket handshake with {}: {e}", t.host_header)
            };
            let (upgraded, agreed) = upgrade(io, &t).await.map_err(|e| fail(&e))?;
            let ws = yawc::WebSocket::from_stream_with_extensions(
                TokioIo::new(upgraded),
                yawc::Role::Client,
                agreed.as_deref(),
                options(),
            )
            .map_err(|e| fail(&e))?;
            Ok(Self {
                ws,
                agreed: agreed.is_some(),
            })
        }

        fn compression(&self) -> Option<bool> {
            Some(self.agreed)
        }
    }

    /// The HTTP/1.1 upgrade (RFC 6455 4.1) offering [`OFFER`]: the upgraded
    /// connection and the extension the server agreed to (`None`: it
    /// declined). An extension other than permessage-deflate fails, as the
    /// RFC requires of a client that did not offer it.
    async fn upgrade(
        io: Box<dyn Io>,
        t: &Target,
    ) -> Result<(hyper::upgrade::Upgraded, Option<String>), String> {
        let key = generate_key();
        let request = Request::get(t.path.as_str())
            .header(HOST, t.host_header.as_str())
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header(SEC_WEBSOCKET_KEY, key.as_str())
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_EXTENSIONS, OFFER)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        let response = async {
            let mut resp = send
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(format!("HTTP status {}", resp.status()));
            }
            let h = resp.headers();
            let accept = h.get(SEC_WEBSOCKET_ACCEPT).map(|v| v.as_bytes());
            if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
                return Err("bad Sec-WebSocket-Accept".to_owned());
            }
            let agreed = match h.get(SEC_WEBSOCKET_EXTENSIONS) {
                None => None,
                Some(v) => match v.to_str() {
                    Ok(s) if s.trim_start().starts_with("permessage-deflate") => Some(s.to_owned()),
                    _ => return Err(format!("extension not offered: {v:?}")),
                },
            };
            let upgraded = hyper::upgrade::on(&mut resp)
                .await
                .map_err(|e| e.to_string())?;
            Ok((upgraded, agreed))
        };
        // The connection task hands the socket over once the 101 is read;
        // driven here, on this task (no spawn on the receiver's runtime).
        let mut conn = std::pin::pin!(conn.with_upgrades());
        let mut response = std::pin::pin!(response);
        let mut conn_done = false;
        loop {
            tokio::select! {
                r = &mut response => return r,
                r = &mut conn, if !conn_done => {
                    conn_done = true;
                    r.map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// A yawc frame as the session loop's message: payloads are handed over
    /// without a copy (`Bytes`); text frames are delivered as binary (the
    /// loop treats both alike, and no second UTF-8 check is made).
    #[inline]
    fn message(frame: Frame) -> Message {
        match frame.opcode() {
            OpCode::Ping => Message::Ping(frame.into_payload()),
            OpCode::Pong => Message::Pong(frame.into_payload()),
            OpCode::Close => {
                let code = frame.close_code().map(u16::from);
                let reason = frame.close_reason().ok().flatten().unwrap_or("").to_owned();
                Message::Close(code.map(|c| CloseFrame {
                    code: CloseCode::from(c),
                    reason: reason.into(),
                }))
            }
            // Text, Binary (continuations arrive assembled).
            _ => Message::Binary(frame.into_payload()),
        }
    }

    impl Stream for Deflate {
        type Item = Result<Message, SocketError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(match ready!(self.ws.poll_next_frame(cx)) {
                Ok(frame) => Some(Ok(message(frame))),
                // After a close frame (already delivered): the end.
                Err(WebSocketError::ConnectionClosed) => None,
                Err(e) => Some(Err(SocketError::Deflate(e))),
            })
        }
    }

    impl Sink<Message> for Deflate {
        type Error = SocketError;

        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.ws)
                .poll_ready(cx)
                .map_err(SocketError::Deflate)
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            let frame = match item {
                Message::Text(t) => Frame::text(Bytes::from(t)),
                Message::Binary(b) => Frame::binary(b),
                Message::Ping(b) => Frame::ping(b),
                Message::Pong(b) => Frame::pong(b),
                Message::Close(c) => match c {
                    Some(c) => Frame::close(u16::from(c.code).into(), c.reason.as_bytes()),
                    None => Frame::close(yawc::close::CloseCode::Normal, b""),
                },
                Message::Frame(_) => return Ok(()),
            };
            Pin::new(&mut self.ws)
                .start_send(frame)
                .map_err(SocketError::Deflate)
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.ws)
                .poll_flush(cx)
                .map_err(SocketError::Deflate)
        }

        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.ws)
                .poll_close(cx)
                .map_err(SocketError::Deflate)
        }
    }
}
