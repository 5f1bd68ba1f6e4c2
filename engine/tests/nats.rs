//! The NATS sink against a real nats-server (installed by
//! `scripts/nats-server.sh`, started on a free loopback port, stopped at the
//! end of each test).
#![cfg(feature = "nats")]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, read_lines, shared_dir, spot_slice, temp_dir};
use futures_util::StreamExt;

/// A nats-server child process on 127.0.0.1 (killed on drop).
struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

fn nats_binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nats-server.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/nats-server.sh");
    assert!(
        out.status.success(),
        "scripts/nats-server.sh found no nats-server"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl NatsServer {
    fn start(port: u16, store: &Path) -> Self {
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let s = Self {
            child,
            port,
            store: store.to_path_buf(),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        *self = Self::start(self.port, &self.store.clone());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message as the subscriber saw it.
#[derive(Clone, Debug)]
struct Got {
    subject: String,
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// Subscribes to `wiresignal.>` on its own thread; the messages so far.
struct Subscriber {
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    fn start(url: &str) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (g, s, url) = (got.clone(), stop.clone(), url.to_owned());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = async_nats::ConnectOptions::new()
                    .subscription_capacity(1 << 20)
                    .retry_on_initial_connect()
                    .connect(url)
                    .await
                    .unwrap();
                let mut sub = client.subscribe("wiresignal.>").await.unwrap();
                client.flush().await.unwrap();
                ready_tx.send(()).unwrap();
                while !s.load(std::sync::atomic::Ordering::Acquire) {
                    let Ok(Some(m)) =
                        tokio::time::timeout(Duration::from_millis(50), sub.next()).await
                    else {
                        continue;
                    };
                    let seq = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Wiresignal-Seq"))
                        .and_then(|v| v.as_str().parse().ok());
                    g.lock().unwrap().push(Got {
                        subject: m.subject.to_string(),
                        seq,
                        payload: m.payload.to_vec(),
                    });
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber ready");
        Self {
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (bounded) until `n` row messages came, then stops.
    fn rows_when(mut self, n: usize, within: Duration) -> Vec<Got> {
        let t0 = Instant::now();
        while self.rows().len() < n && t0.elapsed() < within {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Nothing more may come: a few more ms to see extra messages.
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.rows()
    }

    fn rows(&self) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| !g.subject.starts_with("wiresignal._catalog."))
            .cloned()
            .collect()
    }

    fn catalog(&self) -> Option<records::Catalog> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|g| g.subject.starts_with("wiresignal._catalog."))
            .and_then(|g| records::Catalog::from_json(&g.payload).ok())
    }
}

fn replay(toml: &str, input: &Path, out: &Path, speed: engine::config::Speed) -> serde_json::Value {
    common::replay_toml(toml, input, out, speed)
}

fn subject_of(row: &serde_json::Value) -> String {
    records::subject(
        row["venue"].as_str().unwrap(),
        row["symbol"].as_str().unwrap(),
        row["signal"].as_str().unwrap(),
    )
}

/// Sequence numbers per (venue, symbol) are 1, 2, 3, … in arrival order.
fn assert_gapless(got: &[Got]) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for g in got {
        let key: Vec<&str> = g.subject.split('.').take(3).collect();
        let e = last.entry(key.join(".")).or_insert(0);
        assert_eq!(g.seq, Some(*e + 1), "{}", g.subject);
        *e += 1;
    }
}

#[test]
fn a_replay_publishes_exactly_the_rows_of_its_file() {
    let dir = temp_dir("nats-json");
    let Some(input) = spot_slice(&dir, 3000) else {
        return;
    };
    let nats = NatsServer::start(free_port(), &dir.join("js"));
    let sub = Subscriber::start(&nats.url());
    let toml = format!(
        "[output]\nengine = \"test-a\"\n[[sinks]]\nkind = \"nats\"\nurl = \"{}\"\n",
        nats.url()
    );
    let out = dir.join("rows.jsonl");
    let stats = replay(&toml, &input, &out, engine::config::Speed::Max);
    let lines = read_lines(&out);
    assert!(lines.len() > 1000, "{}", lines.len());
    let got = sub.rows_when(lines.len(), Duration::from_secs(30));
    assert_eq!(got.len(), lines.len(), "every row, once");
    for (g, line) in got.iter().zip(&lines) {
        assert_eq!(String::from_utf8_lossy(&g.payload), *line);
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(g.subject, subject_of(&row));
    }
    assert_gapless(&got);
    let s = &stats["sinks"]["nats0"];
    assert_eq!(s["rows"], lines.len(), "{s}");
    assert_eq!(
        (s["dropped"].as_u64(), s["conflated"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn binary_records_carry_the_rows_and_the_catalog_names_them() {
    let dir = temp_dir("nats-binary");
    let Some(input) = spot_slice(&dir, 2000) else {
        return;
    };
    let nats = NatsServer::start(free_port(), &dir.join("js"));
    let sub = Subscriber::start(&nats.url());
    let toml = format!(
        "[output]\nengine = \"test.b\"\n[[sinks]]\nkind = \"nats\"\nname = \"bin\"\nformat = \"binary\"\nurl = \"{}\"\nstream = \"WIRESIGNAL_TEST\"\n",
        nats.url()
    );
    let out = dir.join("rows.jsonl");
    replay(&toml, &input, &out, engine::config::Speed::Max);
    let lines = read_lines(&out);
    // The catalog comes at least once more within its period.
    std::thread::sleep(Duration::from_millis(200));
    let catalog = sub.catalog();
    let got = sub.rows_when(lines.len(), Duration::from_secs(30));
    assert_eq!(got.len(), lines.len());
    let catalog = catalog.expect("a catalog on wiresignal._catalog.test_b");
    assert_eq!(catalog.engine, "test.b");
    for (g, line) in got.iter().zip(&lines) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let r = records::Record::decode(&g.payload).unwrap();
        assert_eq!(Some(r.seq), g.seq);
        assert_eq!(r.ts_ns, row["ts_ns"].as_i64().unwrap());
        assert_eq!(r.recv_ns, row["recv_ns"].as_i64().unwrap());
        // The file's text, exactly (serde_json's own float parse is not).
        let text = line
            .rsplit_once("\"value\":")
            .unwrap()
            .1
            .trim_end_matches('}');
        assert_eq!(r.value, text.parse::<f64>().unwrap(), "{line}");
        let (venue, symbol, signal) = catalog.names(r.instrument, r.signal).unwrap();
        assert_eq!(
            (venue, symbol, signal),
            (
                row["venue"].as_str().unwrap(),
                row["symbol"].as_str().unwrap(),
                row["signal"].as_str().unwrap()
            )
        );
        assert_eq!(g.subject, subject_of(&row));
    }
    assert_gapless(&got);
}

/// NATS goes away mid-run and comes back: the replay never waits for it,
/// the rows meanwhile are counted as dropped, and delivery resumes.
#[test]
fn a_nats_restart_mid_run_is_counted_and_delivery_resumes() {
    let dir = temp_dir("nats-restart");
    let Some(input) = spot_slice(&dir, 6000) else {
        return;
    };
    let mut nats = NatsServer::start(free_port(), &dir.join("js"));
    let toml = format!("[[sinks]]\nkind = \"nats\"\nurl = \"{}\"\n", nats.url());
    let out = dir.join("rows.jsonl");
    let stats = std::thread::scope(|s| {
        let run = s.spawn(|| {
            // About four seconds of the capture's own pacing.
            replay(&toml, &input, &out, engine::config::Speed::Factor(12.0))
        });
        std::thread::sleep(Duration::from_millis(1200));
        nats.stop();
        std::thread::sleep(Duration::from_millis(800));
        nats.restart();
        let sub = Subscriber::start(&nats.url());
        (run.join().unwrap(), sub)
    });
    let (stats, sub) = stats;
    let after = sub.rows_when(1, Duration::from_secs(5));
    assert!(
        !after.is_empty(),
        "the sink reconnected and delivered again"
    );
    let lines = read_lines(&out);
    let s = &stats["sinks"]["nats0"];
    let (rows, dropped) = (s["rows"].as_u64().unwrap(), s["dropped"].as_u64().unwrap());
    assert!(dropped > 0, "rows while NATS was down are counted: {s}");
    assert!(rows > 0, "{s}");
    assert_eq!(
        rows + dropped + s["conflated"].as_u64().unwrap(),
        lines.len() as u64,
        "every row is delivered or counted: {s}"
    );
    assert!(
        stats["elapsed_s"].as_f64().unwrap() < 15.0,
        "the replay did not wait for NATS: {stats}"
    );
}

/// The first capture of `venue` and its header's symbols.
fn venue_capture(venue: &str) -> Option<(PathBuf, Vec<String>)> {
    let shared = shared_dir()?;
    let cap = common::venue_captures(&shared, venue).into_iter().next()?;
    let symbols = read_lines(&cap)
        .iter()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("symbols="))
                .map(|s| s.split(',').map(str::to_owned).collect())
        })
        .unwrap_or_default();
    Some((cap, symbols))
}

/// Scale-out: two engine processes, each owning one venue of a two-venue
/// setup over its own simulator, publish into one NATS server; a
/// subscriber sees the union: every row of each engine's own file, in that
/// engine's order, with gapless sequence numbers, and each engine's books
/// end where a replay of its capture ends. (The simulators play at full
/// speed, faster than one NATS connection takes rows: the sinks get rings
/// big enough to hold a whole run, so nothing is conflated.)
#[test]
fn two_sharded_engine_processes_publish_one_stream() {
    let dir = temp_dir("nats-shards");
    let (Some((spot, spot_syms)), Some((cb, cb_syms))) =
        (venue_capture("binance-spot"), venue_capture("coinbase"))
    else {
        return;
    };
    let nats = NatsServer::start(free_port(), &dir.join("js"));
    let sub = Subscriber::start(&nats.url());
    let shards = [
        ("shard-a", "binance-spot", &spot, &spot_syms),
        ("shard-b", "coinbase-exchange", &cb, &cb_syms),
    ];
    let mut sims = Vec::new();
    let mut children = Vec::new();
    for (name, venue, cap, symbols) in shards {
        let sim = common::start_sim(cap, Default::default());
        let addr = sim.local_addr();
        let list = symbols
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            "[engine]\npin_cores = false\n[output]\nengine = \"{name}\"\n\
             [[sinks]]\nkind = \"nats\"\nurl = \"{}\"\nring_capacity = 524288\n\
             [[feeds]]\nvenue = \"{venue}\"\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [{list}]\n",
            nats.url()
        );
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_engine"))
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(dir.join(format!("{name}.jsonl")))
            .arg("--stats")
            .arg(dir.join(format!("{name}.stats.json")))
            .args(["--duration", "8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an engine");
        sims.push(sim);
        children.push(child);
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "an engine failed");
    }
    for s in sims {
        s.shutdown().unwrap();
    }
    let files: Vec<Vec<String>> = shards
        .iter()
        .map(|(name, ..)| read_lines(&dir.join(format!("{name}.jsonl"))))
        .collect();
    let total: usize = files.iter().map(Vec::len).sum();
    let got = sub.rows_when(total, Duration::from_secs(30));
    let sink_stats: Vec<String> = shards
        .iter()
        .map(|(name, ..)| {
            let s =
                std::fs::read_to_string(dir.join(format!("{name}.stats.json"))).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
            format!("{name}: {}", v["sinks"])
        })
        .collect();
    assert_eq!(
        got.len(),
        total,
        "the union of both engines' rows; {sink_stats:?}"
    );
    for ((name, venue, cap, _), lines) in shards.iter().zip(&files) {
        assert!(lines.len() > 1000, "{name}: {} rows", lines.len());
        let mine: Vec<&Got> = got
            .iter()
            .filter(|g| g.subject.starts_with(&format!("wiresignal.{venue}.")))
            .collect();
        assert_eq!(mine.len(), lines.len(), "{name}");
        for (g, line) in mine.iter().zip(lines) {
            assert_eq!(String::from_utf8_lossy(&g.payload), *line, "{name}");
        }
        let owned: Vec<Got> = mine.into_iter().cloned().collect();
        assert_gapless(&owned);
        // The engine's books end where a replay of its capture ends.
        let live: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.stats.json"))).unwrap(),
        )
        .unwrap();
        let replay_stats = replay(
            "",
            cap,
            &dir.join(format!("{name}.replay.jsonl")),
            engine::config::Speed::Max,
        );
        for (k, want) in replay_stats["instruments"].as_object().unwrap() {
            for f in ["best_bid", "best_ask", "trades"] {
                assert_eq!(live["instruments"][k][f], want[f], "{name} {k}.{f}");
            }
        }
    }
}
