//! Loopback tests of `engine::net`: an in-test WebSocket server and a plain HTTP
//! server run on their own thread (like the simulator, a separate actor), only on
//! 127.0.0.1 / `[::1]`, and every test is bounded by timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::net::http::get_with_limit;
use engine::net::{
    get, run_feed, FeedHandler, FeedOptions, FeedStats, HttpError, SnapshotRequests,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const TEST_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- servers

/// Bind `n` listeners on `ip`, run `serve(listeners)` on a fresh thread with its own
/// current-thread runtime, bounded by `TEST_LIMIT`.
fn server<T, F, Fut>(ip: &str, n: usize, serve: F) -> Option<(Vec<SocketAddr>, JoinHandle<T>)>
where
    T: Send + 'static,
    F: FnOnce(Vec<TcpListener>) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let mut std_listeners = Vec::new();
    for _ in 0..n {
        let l = std::net::TcpListener::bind((ip, 0)).ok()?;
        l.set_nonblocking(true).unwrap();
        std_listeners.push(l);
    }
    let addrs = std_listeners
        .iter()
        .map(|l| l.local_addr().unwrap())
        .collect();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listeners = std_listeners
                .into_iter()
                .map(|l| TcpListener::from_std(l).unwrap())
                .collect();
            tokio::time::timeout(TEST_LIMIT, serve(listeners))
                .await
                .expect("server timed out")
        })
    });
    Some((addrs, handle))
}

/// Accept a WebSocket client. `TCP_NODELAY` matters for the ordering test: with
/// Nagle, a second small frame waits for the (delayed) ACK of the first, so it can
/// reach the client after an HTTP response written later on another socket.
async fn accept_ws(l: &TcpListener) -> WebSocketStream<TcpStream> {
    let (s, _) = l.accept().await.unwrap();
    s.set_nodelay(true).unwrap();
    tokio_tungstenite::accept_async(s).await.unwrap()
}

/// Read the first client message (the subscription) as text.
async fn read_subscribe(ws: &mut WebSocketStream<TcpStream>) -> String {
    match ws.next().await {
        Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected subscribe, got {other:?}"),
    }
}

/// Keep reading (which also answers client pings) until the client goes away.
async fn drain_ws(mut ws: WebSocketStream<TcpStream>) -> usize {
    let mut pings = 0;
    while let Some(Ok(m)) = ws.next().await {
        if m.is_ping() {
            pings += 1;
        }
    }
    pings
}

/// Read one request head from `s`.
async fn read_request(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Wait until the client closes its side (EOF or reset); `true` if it did.
async fn wait_client_close(s: &mut TcpStream) -> bool {
    let mut sink = [0u8; 256];
    let fut = async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .is_ok()
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve snapshot GETs one at a time: body is `snap:<path>`. Ends after `n` requests;
/// `served` gets a message once the client closed each connection.
async fn snapshot_server(
    l: TcpListener,
    n: usize,
    served: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> Vec<String> {
    let mut paths = Vec::new();
    for _ in 0..n {
        let (mut s, _) = l.accept().await.unwrap();
        let head = read_request(&mut s).await;
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        s.write_all(&ok_response(&format!("snap:{path}")))
            .await
            .unwrap();
        assert!(
            wait_client_close(&mut s).await,
            "client kept the HTTP connection open"
        );
        paths.push(path);
        if let Some(tx) = &served {
            let _ = tx.send(());
        }
    }
    paths
}

// ---------------------------------------------------------------- handler

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Connected,
    Disconnected(String),
    Frame(String),
    Snapshot(String, String),
    SnapshotError(String, String),
    ConnectError,
}

type StopFn = Box<dyn FnMut(&[Ev]) -> bool>;

struct Recorder {
    evs: Vec<Ev>,
    at: Vec<Instant>,
    last_recv_ns: i64,
    stop: StopFn,
    /// Receive batches: frames of the open one, sizes of the closed ones,
    /// frames delivered outside any batch.
    batch: Option<usize>,
    batches: Vec<usize>,
    unbatched: usize,
}

impl Recorder {
    fn new(stop: impl FnMut(&[Ev]) -> bool + 'static) -> Self {
        Self {
            evs: Vec::new(),
            at: Vec::new(),
            last_recv_ns: 0,
            stop: Box::new(stop),
            batch: None,
            batches: Vec::new(),
            unbatched: 0,
        }
    }
    fn push(&mut self, e: Ev) {
        self.evs.push(e);
        self.at.push(Instant::now());
    }
    fn frames(&self) -> Vec<&str> {
        self.evs
            .iter()
            .filter_map(|e| match e {
                Ev::Frame(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
    fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.evs.iter().filter(|e| pred(e)).count()
    }
    fn check_recv_ns(&mut self, recv_ns: i64) {
        assert!(
            recv_ns > 1_600_000_000_000_000_000,
            "recv_ns not CLOCK_REALTIME ns: {recv_ns}"
        );
        assert!(
            recv_ns + 1_000_000_000 >= self.last_recv_ns,
            "recv_ns went far back"
        );
        self.last_recv_ns = recv_ns;
    }
}

impl FeedHandler for Recorder {
    fn on_connected(&mut self) {
        self.push(Ev::Connected);
    }
    fn on_disconnected(&mut self, reason: &str) {
        self.push(Ev::Disconnected(reason.to_owned()));
    }
    fn on_frame(&mut self, recv_ns: i64, frame: &mut [u8]) {
        self.check_recv_ns(recv_ns);
        match self.batch.as_mut() {
            Some(n) => *n += 1,
            None => self.unbatched += 1,
        }
        self.push(Ev::Frame(String::from_utf8_lossy(frame).into_owned()));
    }
    fn begin_batch(&mut self) {
        assert!(self.batch.is_none(), "batch begun twice");
        self.batch = Some(0);
    }
    fn end_batch(&mut self) {
        let n = self.batch.take().expect("batch ended without a begin");
        self.batches.push(n);
    }
    fn on_snapshot(&mut self, symbol: &str, recv_ns: i64, body: &mut [u8]) {
        self.check_recv_ns(recv_ns);
        self.push(Ev::Snapshot(
            symbol.to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ));
    }
    fn on_snapshot_error(&mut self, symbol: &str, err: &str) {
        self.push(Ev::SnapshotError(symbol.to_owned(), err.to_owned()));
    }
    fn on_connect_error(&mut self, _err: &str) {
        self.push(Ev::ConnectError);
    }
    fn should_stop(&mut self) -> bool {
        (self.stop)(&self.evs)
    }
}

fn options(ws: SocketAddr, http: Option<SocketAddr>, symbols: &[&str]) -> FeedOptions {
    FeedOptions {
        ws_url: format!("ws://{ws}/stream?streams=btcusdt@depth@100ms"),
        subscribe: vec![r#"{"method":"SUBSCRIBE","id":1}"#.to_owned()],
        send_interval: Duration::from_millis(250),
        // Nothing listens on port 9 of loopback when no HTTP server is given.
        rest_base: http.map_or_else(
            || "http://127.0.0.1:9".to_owned(),
            |a| format!("http://{a}"),
        ),
        snapshot_symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
        snapshot_path: Arc::new(|s| format!("/api/v3/depth?symbol={s}")),
        backoff: (Duration::from_millis(30), Duration::from_millis(200), 0.0),
        connect_timeout: Duration::from_secs(2),
        ping_interval: Duration::ZERO,
        ping_text: None,
        resubscribe: std::collections::HashMap::new(),
        idle_timeout: Duration::from_secs(10),
        http_timeout: Duration::from_secs(2),
        max_reconnects: Some(5),
        ..FeedOptions::new("ws://127.0.0.1:9", "http://127.0.0.1:9")
    }
}

async fn run(
    opts: FeedOptions,
    requests: Arc<SnapshotRequests>,
    handler: &mut Recorder,
    shutdown: watch::Receiver<bool>,
) -> FeedStats {
    tokio::time::timeout(TEST_LIMIT, run_feed(opts, requests, handler, shutdown))
        .await
        .unwrap_or_else(|_| panic!("feed did not stop; events: {:?}", handler.evs))
}

fn frame_seen(evs: &[Ev], f: &str) -> bool {
    evs.iter().any(|e| matches!(e, Ev::Frame(x) if x == f))
}

// ---------------------------------------------------------------- feed tests

#[tokio::test]
async fn frames_arrive_in_order_after_subscribe() {
    let (addrs, srv) = server("127.0.0.1", 1, |ls| async move {
        let mut ws = accept_ws(&ls[0]).await;
        let sub = read_subscribe(&mut ws).await;
        for i in 0..200 {
            ws.feed(Message::text(format!("m{i}"))).await.unwrap();
        }
        ws.send(Message::binary(b"bin-last".to_vec()))
            .await
            .unwrap();
        drain_ws(ws).await;
        sub
    })
    .unwrap();
    let (_tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|evs| frame_seen(evs, "bin-last"));
    let stats = run(options(addrs[0], None, &[]), Arc::default(), &mut h, rx).await;

    let expected: Vec<String> = (0..200)
        .map(|i| format!("m{i}"))
        .chain(["bin-last".to_owned()])
        .collect();
    assert_eq!(h.frames(), expected);
    assert_eq!(h.evs.first(), Some(&Ev::Connected));
    assert_eq!(h.evs.last(), Some(&Ev::Disconnected("shutdown".to_owned())));
    assert_eq!(
        (stats.connects, stats.reconnects, stats.frames),
        (1, 0, 201)
    );
    // The 201 frames were written at once: they are read in batches of up
    // to 64, the first frame of each on its own (delivered, downstream woken
    // at once), the rest inside the handler's batch (one wake-up at its
    // end); the last batch was closed.
    assert_eq!(h.batch, None, "a batch was left open");
    assert_eq!(h.unbatched + h.batches.iter().sum::<usize>(), 201);
    assert!(
        h.batches.len() >= 4 && h.unbatched < 50,
        "batches {:?}, {} frames alone",
        h.batches,
        h.unbatched
    );
    assert!(h.batches.iter().all(|&n| n <= 63), "{:?}", h.batches);
    assert_eq!(
        stats.bytes,
        expected.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(srv.join().unwrap(), r#"{"method":"SUBSCRIBE","id":1}"#);
}

#[tokio::test]
async fn reconnects_with_backoff_resubscribes_and_refetches_snapshots() {
    let (addrs, srv) = server("127.0.0.1", 2, |mut ls| async move {
        let http = ls.pop().unwrap();
        let wsl = ls.pop().unwrap();
        let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        let snaps = tokio::spawn(snapshot_server(http, 4, Some(served_tx)));
        let mut subs = Vec::new();
        // First connection: one frame, both snapshots, then drop it without a close
        // handshake.
        let mut ws = accept_ws(&wsl).await;
        subs.push(read_subscribe(&mut ws).await);
        ws.send(Message::text("a1")).await.unwrap();
        served.recv().await.unwrap();
        served.recv().await.unwrap();
        drop(ws);
        // Second connection: stays up.
        let mut ws = accept_ws(&wsl).await;
        subs.push(read_subscribe(&mut ws).await);
        ws.send(Message::text("b1")).await.unwrap();
        drain_ws(ws).await;
        (subs, snaps.await.unwrap())
    })
    .unwrap();
    let (_tx, rx) = watch::channel(false);
    let snapshots_after_b1 = |evs: &[Ev]| {
        frame_seen(evs, "b1") && evs.iter().filter(|e| matches!(e, Ev::Snapshot(..))).count() == 4
    };
    let mut h = Recorder::new(snapshots_after_b1);
    let opts = options(addrs[0], Some(addrs[1]), &["BTCUSDT", "ETHUSDT"]);
    let stats = run(opts, Arc::default(), &mut h, rx).await;

    let (subs, paths) = srv.join().unwrap();
    assert_eq!(subs.len(), 2, "subscribed on both connections");
    let want = [
        "/api/v3/depth?symbol=BTCUSDT",
        "/api/v3/depth?symbol=ETHUSDT",
    ];
    assert_eq!(
        paths,
        [want, want].concat(),
        "snapshots in order, after each connect"
    );
    let snaps: Vec<_> = h
        .evs
        .iter()
        .filter_map(|e| match e {
            Ev::Snapshot(s, body) => Some(format!("{s}={body}")),
            _ => None,
        })
        .collect();
    assert_eq!(snaps[0], "BTCUSDT=snap:/api/v3/depth?symbol=BTCUSDT");
    assert_eq!(snaps[1], "ETHUSDT=snap:/api/v3/depth?symbol=ETHUSDT");
    assert_eq!(snaps[2..], snaps[..2]);

    // Connected, …, Disconnected(reason), Connected, …: exactly one of each in between.
    let pos = |p: &dyn Fn(&Ev) -> bool| h.evs.iter().position(p).unwrap();
    let first_disc = pos(&|e| matches!(e, Ev::Disconnected(_)));
    let second_conn = h.evs.iter().rposition(|e| *e == Ev::Connected).unwrap();
    assert!(first_disc < second_conn);
    assert_eq!(h.count(|e| *e == Ev::Connected), 2);
    assert_eq!(
        h.count(|e| matches!(e, Ev::Disconnected(_))),
        2,
        "lost + shutdown"
    );
    // The first connection received a frame, so the backoff was reset: 30 ms.
    let waited = h.at[second_conn] - h.at[first_disc];
    assert!(
        waited >= Duration::from_millis(30),
        "reconnected after only {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "reconnect took {waited:?}");
    assert_eq!(
        (stats.connects, stats.reconnects, stats.snapshots),
        (2, 1, 4)
    );
    assert_eq!(h.frames(), ["a1", "b1"]);
}

#[tokio::test]
async fn snapshot_is_delivered_between_frames_in_wire_order() {
    // F1..F3 on the WebSocket; only then the HTTP response; F4 only after the client
    // has closed the HTTP connection.
    let (addrs, srv) = server("127.0.0.1", 2, |mut ls| async move {
        let http = ls.pop().unwrap();
        let wsl = ls.pop().unwrap();
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<bool>();
        let http_task = tokio::spawn(async move {
            let (mut s, _) = http.accept().await.unwrap();
            read_request(&mut s).await;
            sent_rx.await.unwrap();
            s.write_all(&ok_response(r#"{"lastUpdateId":7}"#))
                .await
                .unwrap();
            closed_tx.send(wait_client_close(&mut s).await).unwrap();
        });
        let mut ws = accept_ws(&wsl).await;
        read_subscribe(&mut ws).await;
        for f in ["F1", "F2", "F3"] {
            ws.send(Message::text(f)).await.unwrap();
        }
        sent_tx.send(()).unwrap();
        let closed = closed_rx.await.unwrap();
        ws.send(Message::text("F4")).await.unwrap();
        drain_ws(ws).await;
        http_task.await.unwrap();
        closed
    })
    .unwrap();
    let (_tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|evs| frame_seen(evs, "F4"));
    let stats = run(
        options(addrs[0], Some(addrs[1]), &["BTCUSDT"]),
        Arc::default(),
        &mut h,
        rx,
    )
    .await;
    assert!(srv.join().unwrap(), "client closed the HTTP connection");
    let body = r#"{"lastUpdateId":7}"#.to_owned();
    assert_eq!(
        h.evs,
        [
            Ev::Connected,
            Ev::Frame("F1".into()),
            Ev::Frame("F2".into()),
            Ev::Frame("F3".into()),
            Ev::Snapshot("BTCUSDT".into(), body),
            Ev::Frame("F4".into()),
            Ev::Disconnected("shutdown".into()),
        ]
    );
    assert_eq!((stats.snapshots, stats.snapshot_errors), (1, 0));
}

/// REST runs on the process's control thread, not on the receiver: a
/// snapshot GET reaches the venue while the receiver thread is stuck in a
/// handler callback.
#[tokio::test]
async fn snapshot_requests_leave_while_the_receiver_is_busy() {
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server_seen = Arc::clone(&seen);
    let (addrs, srv) = server("127.0.0.1", 2, |mut ls| async move {
        let http = ls.pop().unwrap();
        let wsl = ls.pop().unwrap();
        let mut ws = accept_ws(&wsl).await;
        read_subscribe(&mut ws).await;
        ws.send(Message::text("block")).await.unwrap();
        let (mut s, _) = http.accept().await.unwrap();
        read_request(&mut s).await;
        server_seen.store(true, std::sync::atomic::Ordering::Release);
        s.write_all(&ok_response("{}")).await.unwrap();
        wait_client_close(&mut s).await;
        drain_ws(ws).await;
    })
    .unwrap();
    let (_tx, rx) = watch::channel(false);
    let mut blocked: Option<bool> = None;
    let mut h = Recorder::new(move |evs| {
        if blocked.is_none() && frame_seen(evs, "block") {
            // Block the receiver thread (bounded) until the GET arrived.
            let t0 = Instant::now();
            while !seen.load(std::sync::atomic::Ordering::Acquire)
                && t0.elapsed() < Duration::from_secs(3)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            blocked = Some(seen.load(std::sync::atomic::Ordering::Acquire));
            assert_eq!(blocked, Some(true), "the GET waited for the receiver");
        }
        evs.iter().any(|e| matches!(e, Ev::Snapshot(..)))
    });
    let stats = run(
        options(addrs[0], Some(addrs[1]), &["BTCUSDT"]),
        Arc::default(),
        &mut h,
        rx,
    )
    .await;
    srv.join().unwrap();
    assert_eq!((stats.frames, stats.snapshots), (1, 1), "{:?}", h.evs);
}

#[tokio::test]
async fn snapshot_requests_from_another_thread_and_errors() {
    let (addrs, srv) = server("127.0.0.1", 2, |mut ls| async move {
        let http = ls.pop().unwrap();
        let wsl = ls.pop().unwrap();
        let http_task = tokio::spawn(async move {
            let (mut s, _) = http.accept().await.unwrap();
            let head = read_request(&mut s).await;
            s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 20\r\n\r\n{\"msg\":\"bad symbol\"}",
            )
            .await
            .unwrap();
            wait_client_close(&mut s).await;
            let (mut s, _) = http.accept().await.unwrap();
            let head2 = read_request(&mut s).await;
            s.write_all(&ok_response("ok")).await.unwrap();
            wait_client_close(&mut s).await;
            (head, head2)
        });
        let mut ws = accept_ws(&wsl).await;
        read_subscribe(&mut ws).await;
        ws.send(Message::text("hello")).await.unwrap();
        drain_ws(ws).await;
        http_task.await.unwrap()
    })
    .unwrap();
    let requests = Arc::new(SnapshotRequests::new());
    let from_signal_thread = Arc::clone(&requests);
    let mut h = Recorder::new(|evs| evs.iter().any(|e| matches!(e, Ev::Snapshot(..))));
    let mut opts = options(addrs[0], Some(addrs[1]), &[]);
    opts.subscribe = vec!["sub".into()];
    let (_tx, rx) = watch::channel(false);
    let requester = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        from_signal_thread.request("NOPE");
        std::thread::sleep(Duration::from_millis(100));
        from_signal_thread.request("SOLUSDT");
    });
    let stats = run(opts, requests, &mut h, rx).await;
    requester.join().unwrap();
    let (head, head2) = srv.join().unwrap();
    assert!(
        head.starts_with("GET /api/v3/depth?symbol=NOPE HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head2.starts_with("GET /api/v3/depth?symbol=SOLUSDT HTTP/1.1\r\n"),
        "{head2}"
    );
    let errors: Vec<_> = h
        .evs
        .iter()
        .filter(|e| matches!(e, Ev::SnapshotError(..)))
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", h.evs);
    let Ev::SnapshotError(sym, err) = errors[0] else {
        unreachable!()
    };
    assert_eq!(sym, "NOPE");
    assert!(err.contains("400") && err.contains("bad symbol"), "{err}");
    assert!(h.evs.contains(&Ev::Snapshot("SOLUSDT".into(), "ok".into())));
    assert_eq!((stats.snapshots, stats.snapshot_errors), (1, 1));
}

#[tokio::test]
async fn server_ping_is_answered_and_client_pings_get_pongs() {
    let (addrs, srv) = server("127.0.0.1", 1, |ls| async move {
        let mut ws = accept_ws(&ls[0]).await;
        read_subscribe(&mut ws).await;
        ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
        // The client must answer at once, on its own: its first client Ping is only
        // due after 300 ms, so the Pong cannot ride on another write's flush.
        let t0 = Instant::now();
        let pong = match ws.next().await {
            Some(Ok(Message::Pong(p))) => p.to_vec(),
            other => panic!("expected pong, got {other:?}"),
        };
        assert!(
            t0.elapsed() < Duration::from_millis(250),
            "pong took {:?}",
            t0.elapsed()
        );
        ws.send(Message::text(format!(
            "pong:{}",
            String::from_utf8_lossy(&pong)
        )))
        .await
        .unwrap();
        drain_ws(ws).await
    })
    .unwrap();
    let mut opts = options(addrs[0], None, &[]);
    opts.ping_interval = Duration::from_millis(300);
    let (tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|_| false);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(750)).await;
        tx.send(true).unwrap();
    };
    let (stats, ()) = tokio::join!(run(opts, Arc::default(), &mut h, rx), stop);
    let client_pings_seen_by_server = srv.join().unwrap();
    assert_eq!(h.frames(), ["pong:hi"]);
    assert!(stats.pings_sent >= 2, "{stats:?}");
    assert!(
        stats.pongs >= 1 && stats.pongs <= stats.pings_sent,
        "{stats:?}"
    );
    assert!(client_pings_seen_by_server >= 2);
    assert_eq!(h.evs.last(), Some(&Ev::Disconnected("shutdown".into())));
}

#[tokio::test]
async fn idle_connection_is_dropped_and_max_reconnects_ends_the_feed() {
    let (addrs, srv) = server("127.0.0.1", 1, |ls| async move {
        let mut held = Vec::new();
        for i in 0..2 {
            let mut ws = accept_ws(&ls[0]).await;
            read_subscribe(&mut ws).await;
            ws.send(Message::text(format!("only{i}"))).await.unwrap();
            held.push(ws); // silent, but open
        }
        for ws in held {
            drain_ws(ws).await;
        }
    })
    .unwrap();
    let mut opts = options(addrs[0], None, &[]);
    opts.idle_timeout = Duration::from_millis(150);
    opts.max_reconnects = Some(1);
    let (_tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|_| false);
    let t0 = Instant::now();
    let stats = run(opts, Arc::default(), &mut h, rx).await;
    srv.join().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(h.frames(), ["only0", "only1"]);
    let idle = h.count(|e| matches!(e, Ev::Disconnected(r) if r.starts_with("idle")));
    assert_eq!(idle, 2, "{:?}", h.evs);
    assert_eq!((stats.connects, stats.reconnects), (2, 1));
}

#[tokio::test]
async fn failed_connects_retry_with_backoff_then_give_up() {
    // Bind then drop a listener: its port now refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = options(port, None, &[]);
    opts.max_reconnects = Some(3);
    opts.backoff = (Duration::from_millis(20), Duration::from_millis(40), 0.5);
    let (_tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|_| false);
    let t0 = Instant::now();
    let stats = run(opts, Arc::default(), &mut h, rx).await;
    assert_eq!(h.evs, vec![Ev::ConnectError; 4]);
    assert_eq!((stats.connects, stats.reconnects), (0, 3));
    // Delays ∈ [10,20] + [20,40]·½.. : at least 10+20+20 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn shutdown_interrupts_backoff_and_sessions() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = options(port, None, &[]);
    opts.backoff = (Duration::from_secs(30), Duration::from_secs(30), 0.0);
    opts.max_reconnects = None;
    let (tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|_| false);
    let t0 = Instant::now();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).unwrap();
    };
    let (stats, ()) = tokio::join!(run(opts, Arc::default(), &mut h, rx), stop);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(stats.connects, 0);
    assert_eq!(h.evs, [Ev::ConnectError]);
}

#[tokio::test]
async fn ipv6_loopback_feed_and_snapshot() {
    let Some((addrs, srv)) = server("::1", 2, |mut ls| async move {
        let http = ls.pop().unwrap();
        let wsl = ls.pop().unwrap();
        let snaps = tokio::spawn(snapshot_server(http, 1, None));
        let mut ws = accept_ws(&wsl).await;
        read_subscribe(&mut ws).await;
        ws.send(Message::text("v6")).await.unwrap();
        drain_ws(ws).await;
        snaps.await.unwrap()
    }) else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let (_tx, rx) = watch::channel(false);
    let mut h = Recorder::new(|evs| {
        frame_seen(evs, "v6") && evs.iter().any(|e| matches!(e, Ev::Snapshot(..)))
    });
    let opts = options(addrs[0], Some(addrs[1]), &["BTCUSDT"]);
    assert!(opts.ws_url.starts_with("ws://[::1]:"), "{}", opts.ws_url);
    let stats = run(opts, Arc::default(), &mut h, rx).await;
    assert_eq!(srv.join().unwrap(), ["/api/v3/depth?symbol=BTCUSDT"]);
    assert_eq!((stats.frames, stats.snapshots), (1, 1));
}

// ---------------------------------------------------------------- HTTP tests

/// One-shot HTTP server writing `parts` with small pauses; returns the request head
/// and whether the client closed the connection afterwards.
fn http_once(ip: &str, parts: Vec<Vec<u8>>) -> Option<(String, JoinHandle<(String, bool)>)> {
    let (addrs, h) = server(ip, 1, |ls| async move {
        let (mut s, _) = ls[0].accept().await.unwrap();
        let head = read_request(&mut s).await;
        for p in parts {
            // The client may legitimately hang up early (e.g. body too large).
            if s.write_all(&p).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (head, wait_client_close(&mut s).await)
    })?;
    let base = match addrs[0] {
        SocketAddr::V4(a) => format!("http://{a}"),
        SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
    };
    Some((base, h))
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn http_get_content_length_sends_expected_headers() {
    let (base, srv) = http_once(
        "127.0.0.1",
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(),
            b"ngth: 5\r\n\r\nhel".to_vec(),
            b"lo".to_vec(),
        ],
    )
    .unwrap();
    let r = get(&format!("{base}/api/v3/depth?symbol=BTCUSDT&limit=5"), T)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let (head, closed) = srv.join().unwrap();
    assert!(closed);
    assert!(
        head.starts_with("GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\n"),
        "{head}"
    );
    let host = base.trim_start_matches("http://");
    assert!(head.contains(&format!("\r\nHost: {host}\r\n")), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(head.contains("\r\nUser-Agent: wiresignal/"), "{head}");
}

#[tokio::test]
async fn http_get_chunked() {
    let parts = vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        b"5\r\n{\"a\":".to_vec(),
        b"\r\n".to_vec(),
        b"2\r\n1}\r\n0\r".to_vec(),
        b"\n\r\n".to_vec(),
    ];
    let (base, srv) = http_once("127.0.0.1", parts).unwrap();
    let r = get(&format!("{base}/x"), T).await.unwrap();
    assert_eq!(r.body, br#"{"a":1}"#);
    assert!(
        srv.join().unwrap().1,
        "connection closed by client after last chunk"
    );
}

#[tokio::test]
async fn http_get_until_eof() {
    let (addrs, srv) = server("127.0.0.1", 1, |ls| async move {
        let (mut s, _) = ls[0].accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\nstreamed to eof")
            .await
            .unwrap();
    })
    .unwrap();
    let r = get(&format!("http://{}/", addrs[0]), T).await.unwrap();
    assert_eq!(r.body, b"streamed to eof");
    srv.join().unwrap();
}

#[tokio::test]
async fn http_get_404_is_a_status_error() {
    let (base, srv) = http_once(
        "127.0.0.1",
        vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno symbol".to_vec()],
    )
    .unwrap();
    let err = get(&format!("{base}/missing"), T).await.unwrap_err();
    assert!(
        matches!(&err, HttpError::Status { status: 404, body, .. } if body == "no symbol"),
        "{err}"
    );
    assert_eq!(err.to_string(), "http status 404: no symbol");
    srv.join().unwrap();
}

#[tokio::test]
async fn http_get_times_out_on_a_silent_server() {
    let (addrs, srv) = server("127.0.0.1", 1, |ls| async move {
        let (mut s, _) = ls[0].accept().await.unwrap();
        read_request(&mut s).await;
        wait_client_close(&mut s).await // never answers; ends when the client gives up
    })
    .unwrap();
    let t0 = Instant::now();
    let err = get(
        &format!("http://{}/slow", addrs[0]),
        Duration::from_millis(200),
    )
    .await;
    assert!(matches!(err, Err(HttpError::Timeout(_))), "{err:?}");
    assert!(t0.elapsed() >= Duration::from_millis(200) && t0.elapsed() < Duration::from_secs(3));
    assert!(srv.join().unwrap(), "timed-out connection was closed");
}

#[tokio::test]
async fn http_get_errors_connect_too_large_and_bad_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = get(&format!("http://{port}/"), T).await.unwrap_err();
    assert!(matches!(err, HttpError::Connect(_)), "{err}");

    let big = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n{}",
        "x".repeat(2000)
    );
    let (base, srv) = http_once("127.0.0.1", vec![big.into_bytes()]).unwrap();
    let err = get_with_limit(&format!("{base}/"), T, 1000)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::TooLarge { limit: 1000 }), "{err}");
    srv.join().unwrap();

    for bad in ["ftp://127.0.0.1/", "http://", "127.0.0.1:80/x"] {
        let err = get(bad, T).await.unwrap_err();
        assert!(matches!(err, HttpError::InvalidUrl(_)), "{bad}: {err}");
    }
}

#[tokio::test]
async fn http_get_ipv6_literal() {
    let Some((base, srv)) = http_once(
        "::1",
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6".to_vec()],
    ) else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    assert!(base.starts_with("http://[::1]:"));
    let r = get(&format!("{base}/six"), T).await.unwrap();
    assert_eq!(r.body, b"v6");
    let (head, closed) = srv.join().unwrap();
    assert!(closed);
    assert!(head.contains(&format!(
        "\r\nHost: {}\r\n",
        base.trim_start_matches("http://")
    )));
}

/// The venue closes the connection (maintenance, the 24 h limit): the
/// close handshake is answered, so the venue records a clean close, not a
/// dropped connection (1006).
#[tokio::test]
async fn a_venue_close_is_answered() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let (addrs, srv) = server("127.0.0.1", 1, |mut ls| async move {
        let wsl = ls.pop().unwrap();
        let mut ws = accept_ws(&wsl).await;
        read_subscribe(&mut ws).await;
        ws.send(Message::text("hello")).await.unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "server shutdown".into(),
        })))
        .await
        .unwrap();
        // The client's reply, before the stream ends.
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(reply))) => return reply.map(|f| f.code),
                Some(Ok(_)) => {}
                other => panic!("no close reply: {other:?}"),
            }
        }
    })
    .unwrap();
    let mut h = Recorder::new(|evs| evs.iter().any(|e| matches!(e, Ev::Disconnected(_))));
    let mut opts = options(addrs[0], None, &[]);
    opts.max_reconnects = Some(0);
    let (_tx, rx) = watch::channel(false);
    run(opts, Arc::new(SnapshotRequests::new()), &mut h, rx).await;
    let reply = srv.join().unwrap();
    assert_eq!(reply, Some(CloseCode::Away), "the close frame is echoed");
    assert!(
        h.evs
            .iter()
            .any(|e| matches!(e, Ev::Disconnected(r) if r.contains("server shutdown"))),
        "{:?}",
        h.evs
    );
}
