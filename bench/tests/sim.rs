//! Simulator over loopback with a real tokio-tungstenite client, serving the
//! shared Binance spot capture.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bench::generator::{GenConfig, Generator};
use bench::sim::{Faults, SimConfig, SimHandle, Simulator, Speed};
use bench::source::{read_all, CaptureSource, GeneratorSource, SourceRecord};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

const STREAMS: &str = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade";
const LIMIT: Duration = Duration::from_secs(90);

fn capture() -> Option<PathBuf> {
    let shared = std::env::var_os("WIRESIGNAL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        });
    let p = shared.join("data/binance-spot/btcusdt_20240808.txt.gz");
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared capture missing: {}", p.display());
    }
    eprintln!("skipping: {} not found", p.display());
    None
}

fn is_snapshot(r: &SourceRecord) -> bool {
    r.frame.starts_with("{\"lastUpdateId\"")
}

struct Fixture {
    records: Vec<SourceRecord>,
    ws_frames: Vec<String>,
    snapshot_body: String,
    /// Number of WebSocket frames before the snapshot record.
    before_snapshot: usize,
}

fn fixture() -> Option<Fixture> {
    let path = capture()?;
    let (_, symbols, records) = read_all(&path).unwrap();
    assert_eq!(symbols, ["BTCUSDT"]);
    let pos = records.iter().position(is_snapshot).unwrap();
    let ws_frames = records
        .iter()
        .filter(|r| !is_snapshot(r))
        .map(|r| r.frame.clone())
        .collect();
    Some(Fixture {
        snapshot_body: records[pos].frame.clone(),
        ws_frames,
        before_snapshot: pos,
        records,
    })
}

fn start(cfg_edit: impl FnOnce(&mut SimConfig)) -> Option<(SimHandle, Fixture)> {
    let fx = fixture()?;
    let mut cfg = SimConfig::new("127.0.0.1:0".parse().unwrap());
    cfg_edit(&mut cfg);
    let src = CaptureSource::open(&capture().unwrap()).unwrap();
    Some((Simulator::start(cfg, Box::new(src)).unwrap(), fx))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    ws
}

/// Next text frame; `None` on close/error/EOF.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Minimal HTTP/1.1 GET; returns (status, body, still-open stream).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "EOF before response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_string();
            let status: u16 = head[9..12].parse().unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            while buf.len() < h + 4 + len {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[h + 4..h + 4 + len].to_vec()).unwrap();
            return (status, body, s);
        }
    }
}

#[tokio::test]
async fn replays_capture_exactly() {
    let Some((sim, fx)) = start(|_| {}) else {
        return;
    };
    timeout(LIMIT, async {
        let mut ws = connect(sim.local_addr(), &format!("/stream?streams={STREAMS}")).await;
        for (i, want) in fx.ws_frames.iter().enumerate() {
            let got = next_text(&mut ws)
                .await
                .unwrap_or_else(|| panic!("closed at {i}"));
            assert_eq!(&got, want, "frame {i}");
        }
        assert!(sim.wait_exhausted(Duration::from_secs(5)));
        assert_eq!(sim.frames_sent(), fx.ws_frames.len() as u64);
        assert_eq!(sim.records_played(), fx.records.len() as u64);
        // Idle at the end: nothing more, connection still open.
        assert!(timeout(Duration::from_millis(200), next_text(&mut ws))
            .await
            .is_err());
        assert_eq!(sim.connections(), 1);
        // Ping -> pong.
        ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
        let pong = timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(pong, Message::Pong(b"hi".to_vec().into()));
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn raw_stream_and_subscribe() {
    let Some((sim, fx)) = start(|_| {}) else {
        return;
    };
    timeout(LIMIT, async {
        let mut ws = connect(sim.local_addr(), "/ws").await;
        ws.send(Message::text(
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}"#,
        ))
        .await
        .unwrap();
        assert_eq!(
            next_text(&mut ws).await.unwrap(),
            r#"{"result":null,"id":7}"#
        );
        let trades: Vec<&String> = fx
            .ws_frames
            .iter()
            .filter(|f| f.contains("@trade"))
            .collect();
        for want in trades.iter().take(500) {
            let got = next_text(&mut ws).await.unwrap();
            let data = want
                .strip_prefix(r#"{"stream":"btcusdt@trade","data":"#)
                .unwrap();
            assert_eq!(got, data[..data.len() - 1]);
        }
        let (status, _, _) = http_get(sim.local_addr(), "/api/v3/nothing").await;
        assert_eq!(status, 404);
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn held_snapshot_is_recorded_body() {
    // Real-time pacing: the snapshot record is ~270 ms into the capture, so
    // the request below is held until playback reaches it.
    let Some((sim, fx)) = start(|c| c.speed = Speed::Factor(1.0)) else {
        return;
    };
    timeout(LIMIT, async {
        let addr = sim.local_addr();
        let mut ws = connect(addr, &format!("/stream?streams={STREAMS}")).await;
        let first = next_text(&mut ws).await.unwrap();
        assert_eq!(first, fx.ws_frames[0]);
        let (status, body, mut http) =
            http_get(addr, "/api/v3/depth?symbol=BTCUSDT&limit=1000").await;
        assert_eq!(status, 200);
        assert_eq!(body, fx.snapshot_body);
        // Playback is paused while the HTTP connection stays open: exactly
        // the frames before the snapshot record were sent.
        assert_eq!(sim.frames_sent(), fx.before_snapshot as u64);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sim.frames_sent(), fx.before_snapshot as u64);
        let mut b = [0u8; 16];
        assert_eq!(http.read(&mut b).await.unwrap(), 0, "server half-closes");
        drop(http);
        for want in &fx.ws_frames[1..fx.before_snapshot + 5] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

type Side = BTreeMap<String, String>;

fn key(p: &str) -> String {
    // Fixed-width sortable key for 8-decimal prices.
    let (i, f) = p.split_once('.').unwrap();
    format!("{i:0>12}.{f}")
}

fn apply(side: &mut Side, levels: &Value) {
    for l in levels.as_array().unwrap() {
        let (p, q) = (l[0].as_str().unwrap(), l[1].as_str().unwrap());
        if q.trim_matches(['0', '.']).is_empty() {
            side.remove(&key(p));
        } else {
            side.insert(key(p), format!("{p}|{q}"));
        }
    }
}

#[tokio::test]
async fn later_snapshot_is_synthesized_from_diffs() {
    let Some((sim, fx)) = start(|_| {}) else {
        return;
    };
    timeout(LIMIT, async {
        let addr = sim.local_addr();
        let mut ws = connect(addr, &format!("/stream?streams={STREAMS}")).await;
        for want in &fx.ws_frames[..5000] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
        let (status, body, http) = http_get(addr, "/api/v3/depth?symbol=BTCUSDT&limit=5000").await;
        drop(http);
        assert_eq!(status, 200);
        let snap: Value = serde_json::from_str(&body).unwrap();
        let id = snap["lastUpdateId"].as_u64().unwrap();
        // Rebuild the book from the recorded snapshot and the capture's diffs.
        let rec: Value = serde_json::from_str(&fx.snapshot_body).unwrap();
        let (mut bids, mut asks) = (Side::new(), Side::new());
        apply(&mut bids, &rec["bids"]);
        apply(&mut asks, &rec["asks"]);
        let mut book_id = rec["lastUpdateId"].as_u64().unwrap();
        let mut diffs_before = 0usize;
        for f in &fx.ws_frames {
            let v: Value = serde_json::from_str(f).unwrap();
            let d = &v["data"];
            if d["e"] != "depthUpdate" {
                continue;
            }
            let u = d["u"].as_u64().unwrap();
            if u > id {
                break;
            }
            diffs_before += 1;
            if u <= book_id {
                continue;
            }
            apply(&mut bids, &d["b"]);
            apply(&mut asks, &d["a"]);
            book_id = u;
        }
        assert_eq!(book_id, id, "snapshot id is the u of a played diff");
        assert!(diffs_before > 100);
        let render = |side: &Value| -> Vec<String> {
            side.as_array()
                .unwrap()
                .iter()
                .map(|l| format!("{}|{}", l[0].as_str().unwrap(), l[1].as_str().unwrap()))
                .collect()
        };
        let want_bids: Vec<String> = bids.values().rev().take(5000).cloned().collect();
        let want_asks: Vec<String> = asks.values().take(5000).cloned().collect();
        assert_eq!(render(&snap["bids"]), want_bids);
        assert_eq!(render(&snap["asks"]), want_asks);
        // The stream carries on: the next diff after the snapshot continues it.
        let mut seen = 5000;
        loop {
            let f = next_text(&mut ws).await.unwrap();
            assert_eq!(f, fx.ws_frames[seen]);
            seen += 1;
            let v: Value = serde_json::from_str(&f).unwrap();
            if v["data"]["e"] == "depthUpdate" && v["data"]["u"].as_u64().unwrap() > id {
                assert_eq!(v["data"]["U"].as_u64().unwrap(), id + 1);
                break;
            }
        }
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn drop_fault_reconnect_continues() {
    let Some((sim, fx)) = start(|c| {
        c.faults = Faults {
            drop_after_frames: Some(1000),
            ..Faults::default()
        }
    }) else {
        return;
    };
    timeout(LIMIT, async {
        let mut got = Vec::new();
        for conn in 0..3 {
            let mut ws = connect(sim.local_addr(), &format!("/stream?streams={STREAMS}")).await;
            let mut n = 0;
            while let Some(f) = next_text(&mut ws).await {
                got.push(f);
                n += 1;
            }
            assert_eq!(n, 1000, "connection {conn} dropped after 1000 frames");
        }
        assert_eq!(got[..], fx.ws_frames[..3000]);
        assert_eq!(sim.connections_accepted(), 3);
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn skip_fault_makes_depth_gap() {
    let Some((sim, _fx)) = start(|c| {
        c.faults = Faults {
            skip_depth_at: vec![5],
            ..Faults::default()
        }
    }) else {
        return;
    };
    timeout(LIMIT, async {
        let mut ws = connect(sim.local_addr(), "/ws/btcusdt@depth@100ms").await;
        let mut prev_u = None;
        let mut gaps = Vec::new();
        for i in 0..20 {
            let v: Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
            assert_eq!(v["e"], "depthUpdate");
            let (first, last) = (v["U"].as_u64().unwrap(), v["u"].as_u64().unwrap());
            if let Some(p) = prev_u {
                if first != p + 1 {
                    gaps.push(i);
                }
            }
            prev_u = Some(last);
        }
        assert_eq!(gaps, [4], "the 5th diff is missing");
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn stall_fault_pauses_stream() {
    let stall = Duration::from_millis(1500);
    let Some((sim, fx)) = start(|c| {
        c.faults = Faults {
            stall: Some((100, stall)),
            ..Faults::default()
        }
    }) else {
        return;
    };
    timeout(LIMIT, async {
        let mut ws = connect(sim.local_addr(), &format!("/stream?streams={STREAMS}")).await;
        for want in &fx.ws_frames[..100] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
        let t = Instant::now();
        assert_eq!(next_text(&mut ws).await.unwrap(), fx.ws_frames[100]);
        assert!(
            t.elapsed() >= stall - Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(sim.connections(), 1);
        for want in &fx.ws_frames[101..1000] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

#[tokio::test]
async fn generator_source_serves_live_snapshots() {
    let mut gc = GenConfig::new(9, 2);
    gc.duration = Duration::from_secs(30);
    let cfg = SimConfig::new("127.0.0.1:0".parse().unwrap());
    let sim = Simulator::start(cfg, Box::new(GeneratorSource::new(Generator::new(gc)))).unwrap();
    timeout(LIMIT, async {
        let addr = sim.local_addr();
        let mut ws = connect(
            addr,
            "/stream?streams=ethusdt@depth@100ms/ethusdt@bookTicker",
        )
        .await;
        let mut last_u = 0;
        for _ in 0..200 {
            let v: Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
            assert_eq!(v["data"]["s"], "ETHUSDT");
            if v["data"]["e"] == "depthUpdate" {
                last_u = v["data"]["u"].as_u64().unwrap();
            }
        }
        let (status, body, http) = http_get(addr, "/api/v3/depth?symbol=ETHUSDT&limit=50").await;
        drop(http);
        assert_eq!(status, 200);
        let snap: Value = serde_json::from_str(&body).unwrap();
        assert!(snap["lastUpdateId"].as_u64().unwrap() >= last_u);
        assert_eq!(snap["bids"].as_array().unwrap().len(), 50);
        // Sync rule: the first diff newer than the snapshot straddles it.
        let id = snap["lastUpdateId"].as_u64().unwrap();
        loop {
            let v: Value = serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
            let d = &v["data"];
            if d["e"] == "depthUpdate" && d["u"].as_u64().unwrap() > id {
                assert!(d["U"].as_u64().unwrap() <= id + 1);
                break;
            }
        }
        let (status, _, _) = http_get(addr, "/api/v3/depth?symbol=NOPE").await;
        assert_eq!(status, 400);
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

/// `min_subscribed = 2`: one subscribed client gets nothing (playback holds at
/// the first record); once a second subscribes, both get the stream from its
/// first frame.
#[tokio::test]
async fn playback_waits_for_min_subscribed_clients() {
    let Some((sim, fx)) = start(|c| c.min_subscribed = 2) else {
        return;
    };
    timeout(LIMIT, async {
        let path = format!("/stream?streams={STREAMS}");
        let mut a = connect(sim.local_addr(), &path).await;
        assert!(
            timeout(Duration::from_millis(300), next_text(&mut a))
                .await
                .is_err(),
            "no frame while only one client is subscribed"
        );
        assert_eq!(sim.records_played(), 0);
        let mut b = connect(sim.local_addr(), &path).await;
        for ws in [&mut a, &mut b] {
            for (i, want) in fx.ws_frames.iter().take(50).enumerate() {
                let got = next_text(ws)
                    .await
                    .unwrap_or_else(|| panic!("closed at {i}"));
                assert_eq!(&got, want, "frame {i}");
            }
        }
    })
    .await
    .unwrap();
    sim.shutdown().unwrap();
}

/// The pause of a served depth answer ends at `http_eof_timeout` when the
/// client keeps its connection open (it ends at the client's close in
/// `held_snapshot_is_recorded_body`).
#[tokio::test]
async fn depth_pause_ends_at_eof_timeout() {
    let Some((sim, fx)) = start(|c| {
        c.speed = Speed::Factor(1.0);
        c.http_eof_timeout = Duration::from_millis(400);
    }) else {
        return;
    };
    timeout(LIMIT, async {
        let addr = sim.local_addr();
        let mut ws = connect(addr, &format!("/stream?streams={STREAMS}")).await;
        assert_eq!(next_text(&mut ws).await.unwrap(), fx.ws_frames[0]);
        let (status, body, http) = http_get(addr, "/api/v3/depth?symbol=BTCUSDT&limit=1000").await;
        assert_eq!(status, 200);
        assert_eq!(body, fx.snapshot_body);
        assert_eq!(sim.frames_sent(), fx.before_snapshot as u64, "paused");
        assert_eq!(sim.depth_served(), 1);
        // The HTTP connection stays open; playback resumes anyway.
        for want in &fx.ws_frames[1..fx.before_snapshot + 50] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
        assert!(sim.frames_sent() >= fx.before_snapshot as u64 + 49);
        drop(http);
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}

/// Faulted depth answers: a 429 with `Retry-After`, a hang (no answer, the
/// connection closed after the hang), then a real snapshot; WebSocket
/// requests to unknown routes get 404.
#[tokio::test]
async fn rest_faults_status_then_hang_then_snapshot() {
    use bench::sim::RestFault;
    let Some((sim, fx)) = start(|c| {
        c.faults.rest_failures = vec![
            RestFault::Status {
                status: 429,
                retry_after_s: Some(3),
            },
            RestFault::Hang(Duration::from_millis(300)),
        ];
    }) else {
        return;
    };
    timeout(LIMIT, async {
        let addr = sim.local_addr();
        let path = "/api/v3/depth?symbol=BTCUSDT&limit=1000";
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 3\r\n"), "{text}");
        assert!(
            text.ends_with(r#"{"code":-1003,"msg":"fault 429"}"#),
            "{text}"
        );
        // The hang: nothing at all, then the server closes.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
        assert_eq!(sim.depth_served(), 0, "faults are not depth answers");
        // Neither fault paused playback; the third request gets the
        // recorded snapshot once playback reaches it.
        let mut ws = connect(addr, &format!("/stream?streams={STREAMS}")).await;
        let (status, body, http) = http_get(addr, path).await;
        drop(http);
        assert_eq!(status, 200);
        assert_eq!(body, fx.snapshot_body);
        assert_eq!(sim.depth_requests().len(), 3);
        for want in &fx.ws_frames[..fx.before_snapshot + 5] {
            assert_eq!(&next_text(&mut ws).await.unwrap(), want);
        }
        let err = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v3/nothing"))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 404),
            e => panic!("{e}"),
        }
    })
    .await
    .expect("timed out");
    sim.shutdown().unwrap();
}
