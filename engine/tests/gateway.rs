//! The WebSocket gateway (`GET /ws` on the metrics listener) and the live
//! page (`GET /`, read in headless Chromium), over real loopback sockets.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{free_port, read_lines, spot_slice, temp_dir};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Replays `input` paced at `speed` with the listener on `port`.
fn replay(input: &Path, out: &Path, port: u16, speed: engine::config::Speed) -> Value {
    let toml = format!("[metrics]\naddr = \"127.0.0.1:{port}\"\n");
    common::replay_toml(&toml, input, out, speed)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `/ws` (retrying until the listener is up) and subscribes.
async fn subscribe(port: u16, filter: Value) -> Ws {
    subscribe_with(port, filter, None).await
}

/// [`subscribe`] with a small receive buffer (a client that stops reading
/// is felt by the server at once).
async fn subscribe_with(port: u16, filter: Value, rcvbuf: Option<u32>) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let t0 = Instant::now();
    let mut ws = loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(n) = rcvbuf {
            socket.set_recv_buffer_size(n).unwrap();
        }
        let connected = match socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
        {
            Ok(tcp) => tokio_tungstenite::client_async(
                url.as_str(),
                tokio_tungstenite::MaybeTlsStream::Plain(tcp),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match connected {
            Ok((ws, _)) => break ws,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "no gateway at {url}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let req = serde_json::json!({ "subscribe": filter }).to_string();
    ws.send(Message::text(req)).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
    assert_eq!(ack["subscribed"], filter, "{ack}");
    ws
}

/// Rows until the server goes away (the run ended) or `limit`.
async fn read_rows(ws: &mut Ws, limit: Duration) -> Vec<Value> {
    let mut rows = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => rows.push(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(_)) | None) => break,
        }
    }
    rows
}

fn key(r: &Value) -> (String, String, i64, i64, String) {
    (
        r["symbol"].as_str().unwrap_or("").to_owned(),
        r["signal"].as_str().unwrap_or("").to_owned(),
        r["ts_ns"].as_i64().unwrap_or(0),
        r["recv_ns"].as_i64().unwrap_or(0),
        r["value"].to_string(),
    )
}

#[test]
fn a_filtered_client_gets_exactly_the_matching_rows() {
    let dir = temp_dir("gateway-filter");
    let Some(input) = spot_slice(&dir, 3000) else {
        return;
    };
    let port = free_port();
    let out = dir.join("rows.jsonl");
    let signals = ["mid", "microprice"];
    let filter =
        serde_json::json!({"venue": "binance-spot", "symbol": "BTCUSDT", "signals": signals});
    let got = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut ws = subscribe(port, filter).await;
                read_rows(&mut ws, Duration::from_secs(30)).await
            })
        });
        // About five seconds of the capture's own pacing.
        replay(&input, &out, port, engine::config::Speed::Factor(5.0));
        client.join().unwrap()
    });
    let want: Vec<Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| signals.contains(&r["signal"].as_str().unwrap()))
        .collect();
    assert!(want.len() > 500, "{}", want.len());
    assert!(got
        .iter()
        .all(|r| signals.contains(&r["signal"].as_str().unwrap())));
    // The client subscribed while the replay ran: it first got the latest
    // row of each pair already seen (at most one per signal), then every
    // live row, exactly.
    let k = (0..=signals.len().min(got.len()))
        .find(|&k| {
            let live = &got[k..];
            live.len() <= want.len()
                && live
                    .iter()
                    .map(key)
                    .eq(want[want.len() - live.len()..].iter().map(key))
        })
        .unwrap_or_else(|| {
            panic!(
                "got {} rows, not a suffix of the {} matching",
                got.len(),
                want.len()
            )
        });
    assert!(
        got.len() - k > want.len() / 2,
        "{} of {}",
        got.len() - k,
        want.len()
    );
    // Sequence numbers only grow (filtered: not gapless).
    assert!(got[k..]
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
}

#[test]
fn a_slow_client_is_conflated_to_the_latest_values() {
    let dir = temp_dir("gateway-slow");
    let Some(input) = spot_slice(&dir, 12000) else {
        return;
    };
    let port = free_port();
    let out = dir.join("rows.jsonl");
    let (stats, got) = std::thread::scope(|s| {
        let client = s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut ws = subscribe_with(port, serde_json::json!({}), Some(4096)).await;
                // Reads nothing for a while, then everything to the end.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                read_rows(&mut ws, Duration::from_secs(30)).await
            })
        });
        // About five seconds of the capture's own pacing.
        let stats = replay(&input, &out, port, engine::config::Speed::Factor(25.0));
        (stats, client.join().unwrap())
    });
    let lines = read_lines(&out);
    let conflated = stats["gateway"]["conflated"].as_u64().unwrap();
    assert!(conflated > 0, "{}", stats["gateway"]);
    assert!(got.len() < lines.len(), "{} of {}", got.len(), lines.len());
    // What it got last per (symbol, signal) is the run's last value.
    let mut last_want: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in &lines {
        let r: Value = serde_json::from_str(l).unwrap();
        let (sym, sig, _, _, v) = key(&r);
        last_want.insert((sym, sig), v);
    }
    let mut last_got: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &got {
        let (sym, sig, _, _, v) = key(r);
        last_got.insert((sym, sig), v);
    }
    assert_eq!(last_got, last_want);
}

/// The page at `/`, loaded in headless Chromium against a running replay,
/// shows the latest values: each one read off the page is a value the run
/// emitted for that signal.
#[test]
fn the_live_page_shows_values_in_chromium() {
    let dir = temp_dir("gateway-page");
    // About 70 s of the capture at the pace below: the replay runs until the
    // browser is done (it stops it), however slowly the browser starts.
    let Some(input) = spot_slice(&dir, 20000) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/chromium.sh");
    let chromium = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run scripts/chromium.sh");
    assert!(
        chromium.status.success(),
        "scripts/chromium.sh found no chromium"
    );
    let chromium = String::from_utf8_lossy(&chromium.stdout).trim().to_owned();
    let port = free_port();
    let out = dir.join("rows.jsonl");
    let profile = dir.join("chromium-profile");
    let stop = AtomicBool::new(false);
    let dom = std::thread::scope(|s| {
        let browser = s.spawn(|| {
            // The replay ends when the browser is done, also if this panics.
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(&stop);
            // Wait for the listener, then let the page run for a while.
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let t0 = Instant::now();
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
                assert!(t0.elapsed() < Duration::from_secs(10), "no listener");
                std::thread::sleep(Duration::from_millis(20));
            }
            // Bounded: a browser that hangs is killed.
            let o = Command::new("timeout")
                .arg("90")
                .arg(&chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--virtual-time-budget=3000",
                    "--dump-dom",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("http://127.0.0.1:{port}/"))
                .output()
                .expect("run chromium");
            String::from_utf8_lossy(&o.stdout).into_owned()
        });
        let toml = format!("[metrics]\naddr = \"127.0.0.1:{port}\"\n");
        common::replay_toml_until(
            &toml,
            &input,
            &out,
            engine::config::Speed::Factor(2.5),
            &stop,
        );
        browser.join().unwrap()
    });
    let mut emitted: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in read_lines(&out) {
        let r: Value = serde_json::from_str(&l).unwrap();
        let k = format!(
            "{}/{}/{}",
            r["venue"].as_str().unwrap(),
            r["symbol"].as_str().unwrap(),
            r["signal"].as_str().unwrap()
        );
        emitted
            .entry(k)
            .or_default()
            .push(r["value"].as_f64().unwrap());
    }
    // Cells: <td class="v" data-key="venue/symbol/signal" data-seq="n">value</td>
    let mut shown = 0;
    for cell in dom.split("data-key=\"").skip(1) {
        let (k, rest) = cell.split_once('"').unwrap();
        if k.matches('/').count() != 2 {
            continue;
        }
        let text = rest.split_once('>').unwrap().1.split_once('<').unwrap().0;
        let v: f64 = text.parse().unwrap_or_else(|_| panic!("{k}: {text:?}"));
        let seen = emitted
            .get(k)
            .unwrap_or_else(|| panic!("the page shows {k}, never emitted"));
        assert!(
            seen.iter()
                .any(|e| (e - v).abs() <= 1e-9 * e.abs().max(1.0)),
            "{k}: {v}"
        );
        shown += 1;
    }
    assert!(shown >= 5, "values read off the page: {shown}\n{dom}");
    assert!(
        dom.contains("binance-spot BTCUSDT"),
        "the instrument's card"
    );
}
