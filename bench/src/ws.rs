//! The server side of an accepted WebSocket, as the simulator uses it: a
//! sink of tungstenite [`Message`]s and a stream of the client's messages,
//! over tokio-tungstenite, or (feature `deflate`, when the 101 agreed on it)
//! yawc compressing every data frame with permessage-deflate (RFC 7692;
//! tungstenite 0.30 has no extensions).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::{Sink, Stream};
use hyper::body::Bytes;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The client's messages (control messages of the simulator's protocol; cold).
pub type WsRead = Pin<Box<dyn Stream<Item = Result<Message, tungstenite::Error>> + Send>>;

/// Where the simulator writes a connection's frames.
pub enum WsSink {
    /// tokio-tungstenite.
    Plain(SplitSink<WebSocketStream<TcpStream>, Message>),
    /// yawc with permessage-deflate.
    #[cfg(feature = "deflate")]
    Deflate(SplitSink<deflate::DeflateWs, Message>),
}

/// Takes over an upgraded connection (`read_buf`: what the client sent
/// after its request head). `deflate`: the 101 agreed on permessage-deflate
/// (only offered with the `deflate` feature, see `http::Door::deflate`).
/// `None`: yawc refused the agreed extension (the connection is dropped).
pub async fn accept(io: TcpStream, read_buf: Bytes, deflate: bool) -> Option<(WsSink, WsRead)> {
    #[cfg(feature = "deflate")]
    if deflate {
        let (sink, read) = deflate::DeflateWs::new(io, read_buf)?.split();
        return Some((WsSink::Deflate(sink), Box::pin(read)));
    }
    let _ = deflate;
    let ws = WebSocketStream::from_partially_read(io, read_buf.to_vec(), Role::Server, None).await;
    let (sink, read) = ws.split();
    Some((WsSink::Plain(sink), Box::pin(read)))
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            WsSink::Plain($s) => $e,
            #[cfg(feature = "deflate")]
            WsSink::Deflate($s) => $e,
        }
    };
}

impl Sink<Message> for WsSink {
    type Error = tungstenite::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        each!(self, s => Pin::new(s).poll_ready(cx))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        each!(self, s => Pin::new(s).start_send(item))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        each!(self, s => Pin::new(s).poll_close(cx))
    }
}

#[cfg(feature = "deflate")]
mod deflate {
    use std::io;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use futures_util::{Sink, Stream};
    use hyper::body::Bytes;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::{self, Message};
    use yawc::{Frame, OpCode, WebSocketError};

    /// A socket whose first bytes are those hyper read past the request
    /// head. Hand-written because yawc's `from_stream` takes no such
    /// leftover (tungstenite's `from_partially_read` does).
    pub struct Prefixed {
        prefix: Bytes,
        io: TcpStream,
    }

    impl AsyncRead for Prefixed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.prefix.is_empty() {
                return Pin::new(&mut self.io).poll_read(cx, buf);
            }
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Prefixed {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, data)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// The server's yawc socket as a stream and sink of tungstenite messages.
    pub struct DeflateWs(yawc::WebSocket<Prefixed>);

    impl DeflateWs {
        /// zlib's default level (6), context takeover, 15-bit windows: what
        /// the 101 agreed (`permessage-deflate` without parameters).
        /// `None` only if yawc refused the extension (it does when the
        /// options enable no compression, which these do).
        pub fn new(io: TcpStream, prefix: Bytes) -> Option<Self> {
            let options = yawc::Options::default()
                .with_compression_level(yawc::CompressionLevel::default())
                .with_limits(1 << 20, 2 << 20);
            yawc::WebSocket::from_stream_with_extensions(
                Prefixed { prefix, io },
                yawc::Role::Server,
                Some("permessage-deflate"),
                options,
            )
            .ok()
            .map(Self)
        }
    }

    fn error(e: WebSocketError) -> tungstenite::Error {
        tungstenite::Error::Io(io::Error::other(e))
    }

    impl Stream for DeflateWs {
        type Item = Result<Message, tungstenite::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(match ready!(self.0.poll_next_frame(cx)) {
                Ok(f) => Some(Ok(match f.opcode() {
                    OpCode::Text => match String::from_utf8(f.into_payload().to_vec()) {
                        Ok(t) => Message::text(t),
                        Err(_) => {
                            return Poll::Ready(Some(Err(tungstenite::Error::Utf8(
                                "client text frame".to_owned(),
                            ))))
                        }
                    },
                    OpCode::Ping => Message::Ping(f.into_payload()),
                    OpCode::Pong => Message::Pong(f.into_payload()),
                    OpCode::Close => Message::Close(None),
                    _ => Message::Binary(f.into_payload()),
                })),
                Err(WebSocketError::ConnectionClosed) => None,
                Err(e) => Some(Err(error(e))),
            })
        }
    }

    impl Sink<Message> for DeflateWs {
        type Error = tungstenite::Error;

        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.0).poll_ready(cx).map_err(error)
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            let frame = match item {
                Message::Text(t) => Frame::text(Bytes::from(t)),
                Message::Binary(b) => Frame::binary(b),
                Message::Ping(b) => Frame::ping(b),
                Message::Pong(b) => Frame::pong(b),
                Message::Close(Some(CloseFrame { code, reason })) => {
                    Frame::close(u16::from(code).into(), reason.as_bytes())
                }
                Message::Close(None) => Frame::close(u16::from(CloseCode::Normal).into(), b""),
                Message::Frame(_) => return Ok(()),
            };
            Pin::new(&mut self.0).start_send(frame).map_err(error)
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.0).poll_flush(cx).map_err(error)
        }

        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.0).poll_close(cx).map_err(error)
        }
    }
}
