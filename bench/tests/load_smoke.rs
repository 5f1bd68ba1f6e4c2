//! Smoke test of the load server + baseline (a) over loopback: ~1 s at 10k
//! msg/s. The full suite runs from `scripts/bench.sh`, never in `cargo test`.

use std::time::Duration;

use bench::load::client::Mode;
use bench::load::suite::baseline;
use bench::load::{LoadConfig, Profile};

#[test]
fn baseline_a_receives_stamped_frames_at_10k() {
    let mut cfg = LoadConfig::new(Profile::Fixed {
        rate: 10_000.0,
        duration: Duration::from_secs(1),
    });
    cfg.start_delay = Duration::from_millis(50);
    let r = baseline("smoke", Mode::Recv, cfg).unwrap();
    assert!(r.frames_sent > 5_000, "sent {}", r.frames_sent);
    assert_eq!(r.frames_received, r.frames_sent);
    assert!(r.latency.count > 5_000, "{:?}", r.latency);
    assert!(
        r.latency.p50 > 0 && r.latency.max < 5_000_000_000,
        "{:?}",
        r.latency
    );
}

#[test]
fn baseline_b_parses_every_frame() {
    let mut cfg = LoadConfig::new(Profile::Max {
        duration: Duration::from_millis(300),
    });
    cfg.start_delay = Duration::from_millis(50);
    let r = baseline("smoke-b", Mode::Parse, cfg).unwrap();
    assert!(r.frames_received > 1_000);
    assert_eq!(r.errors, 0);
}

/// The load server's HTTP (hyper, `bench::http`): a depth snapshot from the
/// generator's book that the first newer diff continues (Binance sync rule),
/// 404 elsewhere, and the WebSocket upgrade handing the socket to the
/// synchronous sender thread.
#[test]
fn depth_snapshot_and_stream_over_hyper() {
    use std::io::{Read, Write};
    use tokio_tungstenite::tungstenite::{self, Message};

    fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut raw = String::new();
        // Connection: close, the server half-closes: read to EOF.
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), body.to_owned())
    }

    let mut cfg = LoadConfig::new(Profile::Fixed {
        rate: 2_000.0,
        duration: Duration::from_secs(2),
    });
    cfg.start_delay = Duration::from_millis(50);
    let server = bench::load::LoadServer::start(cfg).unwrap();
    let addr = server.local_addr();
    let (head, body) = get(addr, "/api/v3/depth?symbol=BTCUSDT&limit=20");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: application/json\r\n"),
        "{head}"
    );
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = snap["lastUpdateId"].as_u64().unwrap();
    assert_eq!(snap["bids"].as_array().unwrap().len(), 20);
    let (head, _) = get(addr, "/api/v3/nothing");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");

    let url = format!(
        "{}/stream?streams=btcusdt@depth@100ms/btcusdt@trade",
        server.ws_base()
    );
    let (mut ws, _) = tungstenite::connect(url).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let mut frames = 0;
    let synced = loop {
        let Message::Text(t) = ws.read().unwrap() else {
            continue;
        };
        frames += 1;
        assert!(bench::load::read_stamp(t.as_bytes()) > 0, "{t}");
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        let d = &v["data"];
        if d["e"] == "depthUpdate" && d["u"].as_u64().unwrap() > id {
            break d["U"].as_u64().unwrap() <= id + 1;
        }
        assert!(frames < 100_000, "no diff after the snapshot");
    };
    assert!(synced, "the first newer diff straddles lastUpdateId + 1");
    drop(ws);
    let report = server.finish();
    assert_eq!(report.snapshots, 1);
    assert_eq!(report.connections, 1);
    assert!(report.frames >= frames);
}

/// Baseline (a) in a process of its own (`loadgen client`), as the engine
/// is: it receives every frame the load server sends and reports its CPU.
#[test]
fn baseline_a_in_its_own_process_receives_every_frame() {
    let mut cfg = LoadConfig::new(Profile::Fixed {
        rate: 5_000.0,
        duration: Duration::from_millis(600),
    });
    cfg.start_delay = Duration::from_millis(300);
    let server = bench::load::LoadServer::start(cfg).unwrap();
    let url = format!("{}/stream?streams=all", server.ws_base());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["client", "--url", &url, "--timeout-s", "20"])
        .output()
        .unwrap();
    let sent = server.finish().frames;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        let mut words = text.split_whitespace();
        words
            .find(|w| *w == name)
            .and_then(|_| words.next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(sent > 1_000, "sent {sent}");
    assert_eq!(field("frames"), sent as f64, "{text}");
    assert!(field("cpu") > 0.0, "{text}");
}
