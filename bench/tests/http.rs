//! The HTTP front door (`bench::http`, hyper) over loopback with a small
//! test door: leases released exactly once (client close or deadline),
//! hangs, 404/400 for WebSocket requests, the 101 hand-over with bytes the
//! client sent right after its head, and hyper's own 400/431.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bench::http::{accept_loop, Answer, Door, Lease, Reply};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const LIMIT: Duration = Duration::from_secs(30);

/// Counts drops of the value it is attached to.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

struct TestDoor {
    released: Arc<AtomicUsize>,
    /// `/slow-lease` answers begun.
    created: Arc<AtomicUsize>,
    lease: Duration,
}

impl Door for TestDoor {
    type Route = String;

    fn ws_route(&self, path: &str, _query: &str) -> Option<String> {
        path.starts_with("/echo").then(|| path.to_owned())
    }

    /// Echoes text frames, prefixed with the route.
    async fn websocket(&self, route: String, io: TcpStream, read_buf: Bytes, _deflate: bool) {
        let mut ws =
            WebSocketStream::from_partially_read(io, read_buf.to_vec(), Role::Server, None).await;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                if ws
                    .send(Message::text(format!("{route}:{}", t.as_str())))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }

    async fn request(&self, method: &Method, path: &str, query: &str) -> Answer {
        match path {
            "/lease" => Reply::new(StatusCode::OK, format!("{method} {query}"))
                .lease(Lease::new(
                    Counted(Arc::clone(&self.released)),
                    Instant::now() + self.lease,
                ))
                .into(),
            "/slow-lease" => {
                // Made first, answered later (as the simulator's actor does).
                let held = Counted(Arc::clone(&self.released));
                self.created.fetch_add(1, Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Reply::new(StatusCode::OK, "")
                    .lease(Lease::new(held, Instant::now() + self.lease))
                    .into()
            }
            "/hang" => Answer::Close(Duration::from_millis(200)),
            "/teapot" => Reply::status_line("418 I'm a teapot", "{}")
                .header(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("7"),
                )
                .into(),
            _ => Reply::new(StatusCode::NOT_FOUND, "").into(),
        }
    }
}

struct Server {
    addr: SocketAddr,
    released: Arc<AtomicUsize>,
    created: Arc<AtomicUsize>,
    _stop: watch::Sender<bool>,
}

async fn server(lease: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let released = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicUsize::new(0));
    let door = Arc::new(TestDoor {
        released: Arc::clone(&released),
        created: Arc::clone(&created),
        lease,
    });
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(listener, door, stopped));
    Server {
        addr,
        released,
        created,
        _stop: stop,
    }
}

/// Sends `raw`, reads until the head and `Content-Length` body are in;
/// returns (head, body, stream).
async fn exchange(addr: SocketAddr, raw: &[u8]) -> (String, String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "EOF before the response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..h]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < h + 4 + len {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8(buf[h + 4..h + 4 + len].to_vec()).unwrap();
        assert_eq!(buf.len(), h + 4 + len, "nothing after the body");
        return (head, body, s);
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

async fn wait_for(n: &AtomicUsize, want: usize) {
    while n.load(Ordering::Acquire) < want {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn lease_released_once_when_the_client_closes() {
    let srv = server(Duration::from_secs(600)).await;
    timeout(LIMIT, async {
        let (head, body, mut s) = exchange(srv.addr, &get("/lease?a=1")).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            head.contains("Content-Type: application/json;charset=UTF-8"),
            "{head}"
        );
        assert_eq!(body, "GET a=1");
        // The server half-closes after the answer; the lease stays alive
        // while the client keeps its side open.
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).await.unwrap(), 0, "server half-closes");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(srv.released.load(Ordering::Acquire), 0, "held while open");
        drop(s);
        wait_for(&srv.released, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(srv.released.load(Ordering::Acquire), 1, "released once");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn lease_released_once_at_its_deadline() {
    let srv = server(Duration::from_millis(300)).await;
    timeout(LIMIT, async {
        let (_, _, s) = exchange(srv.addr, &get("/lease")).await;
        // The client never closes: the deadline releases it.
        wait_for(&srv.released, 1).await;
        drop(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(srv.released.load(Ordering::Acquire), 1, "released once");
        // A client gone while its answer (and lease) is being made: hyper
        // drops the pending answer, the lease with it, once.
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&get("/slow-lease")).await.unwrap();
        wait_for(&srv.created, 1).await;
        drop(s);
        wait_for(&srv.released, 2).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(srv.released.load(Ordering::Acquire), 2);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn close_answer_sends_nothing() {
    let srv = server(Duration::from_secs(1)).await;
    timeout(LIMIT, async {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&get("/hang")).await.unwrap();
        let mut got = Vec::new();
        // EOF (or a reset) without a single byte of answer.
        let _ = s.read_to_end(&mut got).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn status_lines_headers_and_not_found() {
    let srv = server(Duration::from_secs(1)).await;
    timeout(LIMIT, async {
        let (head, body, _) = exchange(srv.addr, &get("/teapot")).await;
        assert!(head.starts_with("HTTP/1.1 418 "), "{head}");
        assert!(head.contains("\r\nRetry-After: 7"), "{head}");
        assert_eq!(body, "{}");
        let (head, _, _) = exchange(srv.addr, &get("/nothing")).await;
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
        // A WebSocket upgrade to a route the door does not know.
        let err = tokio_tungstenite::connect_async(format!("ws://{}/nope", srv.addr))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 404),
            e => panic!("{e}"),
        }
        // An upgrade without a key.
        let (head, _, _) = exchange(
            srv.addr,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        // hyper's own answers to a broken and to an oversized head.
        let (head, _, _) = exchange(srv.addr, b"NOT HTTP AT ALL\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        // Exactly the limit, still no end of head (nothing left unread, so
        // the close is a clean FIN, not a reset that could eat the answer).
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.resize(bench::http::MAX_HEAD, b'a');
        let (head, _, _) = exchange(srv.addr, &big).await;
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    })
    .await
    .expect("timed out");
}

/// A masked client text frame (payload < 126 bytes).
fn client_text(payload: &str) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn websocket_gets_the_socket_and_early_bytes() {
    let srv = server(Duration::from_secs(1)).await;
    timeout(LIMIT, async {
        // A real client first.
        let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/echo/a", srv.addr))
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("/echo/a:hi"));
        // Then a client that sends its first frames in the same write as
        // the head: hyper has read them, the door must get them.
        let mut raw = b"GET /echo/b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
        raw.extend(client_text("one"));
        raw.extend(client_text("two"));
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&raw).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let h = loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break h + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..h]).to_string();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        // RFC 6455's example key (names are case-insensitive; hyper
        // title-cases them).
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        let mut ws =
            WebSocketStream::from_partially_read(s, buf[h..].to_vec(), Role::Client, None).await;
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("/echo/b:one"));
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("/echo/b:two"));
    })
    .await
    .expect("timed out");
}
