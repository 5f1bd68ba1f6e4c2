//! `/metrics` and `/health` over real loopback HTTP: the exchange simulator
//! serves the built-in generator, `engine::live::run` consumes it with the
//! metrics listener on 127.0.0.1:0, and a scraper thread reads both
//! endpoints with plain HTTP/1.1 GETs. Plus unit tests of the exposition
//! text and the health judgement on a hand-filled registry.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bench::generator::{GenConfig, Generator};
use bench::sim::{Faults, SimConfig, SimHandle, Simulator, Speed as SimSpeed};
use bench::source::GeneratorSource;
use engine::app::Output;
use engine::config::Config;
use engine::live::{self, StopWhen};
use engine::metrics::{health, render, MetricsOptions, Mode};
use engine::pipeline::clock::mono_ns;
use engine::pipeline::stats::{Registry, Stage};
use feeds::event::{InstrumentId, InstrumentInfo, Scale, Symbol};
use serde_json::Value;

// ------------------------------------------------------------------ helpers

/// A plain HTTP/1.1 GET; returns (status code, headers, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: metrics-test\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, head.to_owned(), body.to_owned())
}

/// Parses and checks exposition text: every sample belongs to a family
/// announced once by `# HELP` then `# TYPE`, families are contiguous, values
/// are numbers. Returns series (`name{labels}`) → value.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut seen_families = HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut pending_help: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(seen_families.insert(name.clone()), "family {name} twice");
            pending_help = Some(name);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_owned();
            let kind = it.next().unwrap().to_owned();
            assert_eq!(
                pending_help.take().as_deref(),
                Some(name.as_str()),
                "HELP before TYPE"
            );
            assert!(
                ["counter", "gauge", "summary"].contains(&kind.as_str()),
                "{line}"
            );
            current = Some((name, kind));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let name = series.split('{').next().unwrap();
        let (fam, kind) = current.as_ref().expect("sample before any TYPE");
        let ok = name == fam
            || (kind == "summary"
                && (name == format!("{fam}_sum") || name == format!("{fam}_count")));
        assert!(ok, "sample {name} outside its family (current {fam})");
        if kind == "counter" {
            assert!(fam.ends_with("_total"), "counter {fam} without _total");
        }
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        assert!(
            out.insert(series.to_owned(), v).is_none(),
            "duplicate {series}"
        );
    }
    out
}

fn sum_of(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| *v)
        .sum()
}

fn start_sim(symbols: usize, faults: Faults) -> SimHandle {
    let mut g = GenConfig::new(11, symbols);
    g.duration = Duration::from_secs(120);
    let mut sc = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = SimSpeed::Factor(1.0);
    sc.faults = faults;
    sc.fault_connections = Some(1);
    Simulator::start(sc, Box::new(GeneratorSource::new(Generator::new(g)))).unwrap()
}

fn config(sim: &SimHandle, symbols: &[&str], stale_after_ms: u64) -> Config {
    let addr = sim.local_addr();
    let list = symbols
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Config::from_toml_str(
        &format!(
            "[engine]\npin_cores = false\n\
             [metrics]\naddr = \"127.0.0.1:0\"\nstale_after_ms = {stale_after_ms}\nmemory_budget_mb = 4096\n\
             [[feeds]]\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [{list}]\n"
        ),
        "metrics-test",
    )
    .unwrap()
}

/// Runs the engine against `sim` until `scraper` (given the metrics address)
/// returns; the run ends by itself after 90 s at the latest.
fn run_with_scraper(cfg: &Config, scraper: impl FnOnce(SocketAddr) + Send + 'static) -> Value {
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let finished = Arc::new(AtomicBool::new(false));
    let outcome: Arc<Mutex<Option<std::thread::Result<()>>>> = Arc::default();
    let scraper_thread = {
        let finished = finished.clone();
        let outcome = outcome.clone();
        std::thread::spawn(move || {
            let r = match addr_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(addr) => {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scraper(addr)))
                }
                Err(_) => Err(Box::new("the metrics address was never published") as _),
            };
            *outcome.lock().unwrap() = Some(r);
            finished.store(true, Ordering::Relaxed);
        })
    };
    let stop = AtomicBool::new(false);
    let mut sent = false;
    let report = live::run(
        cfg,
        Output::None,
        StopWhen {
            duration: Some(Duration::from_secs(90)),
            stop: &stop,
            done: Some(Box::new(|_| finished.load(Ordering::Relaxed))),
            tick: Some(Box::new(move |p| {
                if !sent {
                    if let Some(a) = p.registry.metrics_addr() {
                        sent = addr_tx.send(a).is_ok();
                    }
                }
            })),
        },
    )
    .unwrap();
    scraper_thread.join().unwrap();
    match outcome.lock().unwrap().take() {
        Some(Ok(())) => {}
        Some(Err(e)) => std::panic::resume_unwind(e),
        None => panic!("the scraper did not finish within the run's 90 s"),
    }
    report.stats
}

fn health_json(addr: SocketAddr) -> (u16, Value) {
    let (code, head, body) = get(addr, "/health");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    (code, serde_json::from_str(&body).expect("health JSON"))
}

/// Polls `/health` every 50 ms until `want(code, json)` or `timeout`.
fn wait_health(
    addr: SocketAddr,
    timeout: Duration,
    what: &str,
    want: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, h) = health_json(addr);
        if want(code, &h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last /health ({code}): {h:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ live tests

#[test]
fn scrapes_move_and_health_is_ok_while_streaming() {
    let sim = start_sim(2, Faults::default());
    let cfg = config(&sim, &["BTCUSDT", "ETHUSDT"], 5000);
    let stats = run_with_scraper(&cfg, |addr| {
        let h = wait_health(addr, Duration::from_secs(30), "health ok", |c, _| c == 200);
        assert_eq!(h["status"], "ok");
        assert_eq!(h["mode"], "live");
        assert_eq!(h["feeds"][0]["state"], "connected");
        assert_eq!(h["feeds"][0]["connected"], true);
        assert_eq!(h["instruments"].as_array().unwrap().len(), 2);
        for i in h["instruments"].as_array().unwrap() {
            assert_eq!(i["in_sync"], true, "{h:#}");
            assert_eq!(i["stale"], false, "{h:#}");
            assert!(i["last_update_age_s"].as_f64().unwrap() < 5.0);
        }
        assert_eq!(h["memory"]["budget_bytes"], 4096u64 << 20);

        let (code, head, first) = get(addr, "/metrics");
        assert_eq!(code, 200);
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        std::thread::sleep(Duration::from_millis(700));
        let (_, _, second) = get(addr, "/metrics");
        let (a, b) = (parse_exposition(&first), parse_exposition(&second));
        let msgs = |m| sum_of(m, "wiresignal_feed_messages_total");
        assert!(
            msgs(&b) > msgs(&a),
            "messages moved: {} -> {}",
            msgs(&a),
            msgs(&b)
        );
        assert!(
            sum_of(&b, "wiresignal_feed_bytes_total") > sum_of(&a, "wiresignal_feed_bytes_total")
        );
        assert_eq!(b["wiresignal_feed_connected{feed=\"binance-spot#0\"}"], 1.0);
        assert_eq!(
            b["wiresignal_feed_connects_total{feed=\"binance-spot#0\"}"],
            1.0
        );
        assert_eq!(
            b["wiresignal_feed_parse_errors_total{feed=\"binance-spot#0\"}"],
            0.0
        );
        // Labelled recovery metrics: no reconnect yet, every snapshot a book.
        assert_eq!(
            b["wiresignal_feed_reconnects_total{feed=\"binance-spot#0\",reason=\"watchdog\"}"],
            0.0
        );
        assert!(
            b["wiresignal_recovery_requests_total{feed=\"binance-spot#0\",result=\"ok\"}"] >= 1.0
        );
        assert_eq!(
            b["wiresignal_recovery_requests_total{feed=\"binance-spot#0\",result=\"failed\"}"],
            0.0
        );
        // Binance spot: 50 per 1000-level snapshot, one per symbol.
        assert!(b["wiresignal_rest_weight_used{feed=\"binance-spot#0\"}"] >= 50.0);
        assert_eq!(b["wiresignal_health_ok"], 1.0);
        for sym in ["BTCUSDT", "ETHUSDT"] {
            let l = format!("{{venue=\"binance-spot\",symbol=\"{sym}\"}}");
            assert!(
                b[&format!("wiresignal_instrument_events_total{l}")] > 0.0,
                "{sym}"
            );
            assert_eq!(b[&format!("wiresignal_instrument_in_sync{l}")], 1.0);
            assert_eq!(b[&format!("wiresignal_instrument_stale{l}")], 0.0);
            assert!(b.contains_key(&format!("wiresignal_instrument_staleness_seconds{l}")));
            assert!(b.contains_key(&format!("wiresignal_instrument_gaps_total{l}")));
            assert!(b.contains_key(&format!("wiresignal_instrument_crosscheck_ok_total{l}")));
        }
        for stage in ["parse", "ring_hop", "book_and_signals", "frame_to_signal"] {
            let c = format!("wiresignal_stage_latency_seconds_count{{stage=\"{stage}\"}}");
            assert!(b[&c] > 0.0, "{c}");
            for q in ["0.5", "0.9", "0.95", "0.99", "0.999", "1"] {
                let s = format!(
                    "wiresignal_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{q}\"}}"
                );
                let v = b[&s];
                assert!(v > 0.0 && v < 10.0, "{s} = {v}");
            }
        }
        let ring = "wiresignal_ring_capacity{ring=\"receiver0->signal0\"}";
        assert_eq!(b[ring], 65536.0);
        assert!(b.contains_key("wiresignal_ring_occupancy{ring=\"receiver0->signal0\"}"));
        assert!(b.contains_key("wiresignal_ring_full_waits_total"));
        // The gateway rides this listener: the sink is woken per batch of rows.
        assert!(b["wiresignal_sink_wakeups_total"] > 0.0);
        assert!(b["wiresignal_process_resident_memory_bytes"] > 0.0);
        assert_eq!(
            b["wiresignal_memory_budget_bytes"],
            f64::from(4096u32) * 1048576.0
        );
        assert_eq!(b["wiresignal_memory_over_budget"], 0.0);

        let (code, _, _) = get(addr, "/nope");
        assert_eq!(code, 404);
    });
    assert!(stats["messages"].as_u64().unwrap() > 0);
    sim.shutdown().unwrap();
}

#[test]
fn a_stalled_feed_turns_health_degraded_and_back() {
    let faults = Faults {
        stall: Some((600, Duration::from_secs(3))),
        ..Faults::default()
    };
    let sim = start_sim(1, faults);
    let cfg = config(&sim, &["BTCUSDT"], 500);
    run_with_scraper(&cfg, |addr| {
        let t0 = Instant::now();
        wait_health(
            addr,
            Duration::from_secs(30),
            "health ok before the stall",
            |c, _| c == 200,
        );
        let t_ok = t0.elapsed();
        let h = wait_health(addr, Duration::from_secs(30), "the stall", |c, _| c == 503);
        eprintln!(
            "stall test: healthy after {t_ok:?}, degraded after {:?}",
            t0.elapsed()
        );
        assert_eq!(h["status"], "degraded");
        let i = &h["instruments"][0];
        assert_eq!(i["symbol"], "BTCUSDT");
        assert_eq!(i["stale"], true, "{h:#}");
        assert_eq!(i["healthy"], false);
        assert!(i["last_update_age_s"].as_f64().unwrap() > 0.5);
        // The socket stays open during a stall: the feed is still connected.
        assert_eq!(h["feeds"][0]["state"], "connected");
        assert!(
            h["problems"][0].as_str().unwrap().contains("stale"),
            "{h:#}"
        );
        let (_, _, text) = get(addr, "/metrics");
        let m = parse_exposition(&text);
        let l = "{venue=\"binance-spot\",symbol=\"BTCUSDT\"}";
        assert_eq!(m[&format!("wiresignal_instrument_stale{l}")], 1.0);
        assert!(m[&format!("wiresignal_instrument_staleness_seconds{l}")] > 0.5);
        assert_eq!(m["wiresignal_health_ok"], 0.0);

        let h = wait_health(
            addr,
            Duration::from_secs(30),
            "recovery after the stall",
            |c, _| c == 200,
        );
        assert_eq!(h["status"], "ok");
        assert_eq!(h["instruments"][0]["stale"], false);
    });
    sim.shutdown().unwrap();
}

// ------------------------------------------------------------------ unit tests

fn info(id: u32, symbol: &str) -> InstrumentInfo {
    InstrumentInfo {
        inst: InstrumentId(id),
        venue: 0,
        symbol: Symbol::new(symbol).unwrap(),
        scale: Scale::default(),
        wire: Scale::default(),
    }
}

fn opts(mode: Mode) -> MetricsOptions {
    MetricsOptions {
        mode,
        stale_after: Duration::from_millis(500),
        memory_budget_bytes: Some(1 << 20),
        expected: vec![("binance-spot".into(), "SOLUSDT".into())],
    }
}

#[test]
fn exposition_of_a_filled_registry() {
    let r = Registry::new();
    let f = r.add_feed("binance-spot#0");
    f.messages.add(10);
    f.bytes.add(1234);
    f.connects.inc();
    f.connected.set(1);
    let now = mono_ns().max(2_000_000_000);
    f.last_frame_mono.set(now as i64 - 100_000_000);
    let s = r.add_instrument(info(0, "BTCUSDT"));
    s.events.add(7);
    s.gaps.inc();
    s.lost_ns.add(1_500_000_000);
    s.synced.set(1);
    s.last_event_mono.set(now as i64 - 250_000_000);
    let ring = r.add_ring("receiver0->signal0".into(), 1024);
    ring.observe(3);
    ring.observe(1);
    let mut parse = r.stage_samples(Stage::Parse);
    for v in 1..=1000u64 {
        parse.record(v * 1000);
    }

    let health = health::evaluate(&r, &opts(Mode::Live), now, 2 << 20);
    let text = render::render(&r, &health);
    let m = parse_exposition(&text);
    assert!(
        text.contains(
            "# HELP wiresignal_feed_messages_total Frames parsed into events.\n\
         # TYPE wiresignal_feed_messages_total counter\n\
         wiresignal_feed_messages_total{feed=\"binance-spot#0\"} 10\n"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE wiresignal_stage_latency_seconds summary\n"));
    assert_eq!(
        m["wiresignal_feed_bytes_total{feed=\"binance-spot#0\"}"],
        1234.0
    );
    assert!(
        (m["wiresignal_feed_last_message_age_seconds{feed=\"binance-spot#0\"}"] - 0.1).abs() < 1e-9
    );
    let l = "{venue=\"binance-spot\",symbol=\"BTCUSDT\"}";
    assert_eq!(m[&format!("wiresignal_instrument_events_total{l}")], 7.0);
    assert_eq!(m[&format!("wiresignal_instrument_gaps_total{l}")], 1.0);
    assert_eq!(
        m[&format!("wiresignal_instrument_lost_seconds_total{l}")],
        1.5
    );
    assert!((m[&format!("wiresignal_instrument_staleness_seconds{l}")] - 0.25).abs() < 1e-9);
    assert_eq!(m[&format!("wiresignal_instrument_stale{l}")], 0.0);
    // Configured but never seen: listed, stale, no staleness sample.
    let sol = "{venue=\"binance-spot\",symbol=\"SOLUSDT\"}";
    assert_eq!(m[&format!("wiresignal_instrument_stale{sol}")], 1.0);
    assert!(!m.contains_key(&format!("wiresignal_instrument_staleness_seconds{sol}")));
    assert_eq!(
        m["wiresignal_ring_occupancy{ring=\"receiver0->signal0\"}"],
        1.0
    );
    assert_eq!(
        m["wiresignal_ring_occupancy_high_water{ring=\"receiver0->signal0\"}"],
        3.0
    );
    assert_eq!(
        m["wiresignal_ring_capacity{ring=\"receiver0->signal0\"}"],
        1024.0
    );
    let q = |q: &str| {
        m[&format!("wiresignal_stage_latency_seconds{{stage=\"parse\",quantile=\"{q}\"}}")]
    };
    assert!((q("0.5") - 500e-6).abs() < 1e-6, "{}", q("0.5"));
    assert!((q("0.99") - 990e-6).abs() < 2e-6, "{}", q("0.99"));
    assert!((q("0.999") - 999e-6).abs() < 2e-6);
    assert!((q("0.95") - 950e-6).abs() < 2e-6, "{}", q("0.95"));
    assert!((q("1") - 1000e-6).abs() < 2e-6, "max: {}", q("1"));
    assert_eq!(
        m["wiresignal_stage_latency_seconds_count{stage=\"parse\"}"],
        1000.0
    );
    assert!((m["wiresignal_stage_latency_seconds_sum{stage=\"parse\"}"] - 0.5005).abs() < 1e-3);
    // Empty stages: quantiles are NaN, count 0.
    assert!(m["wiresignal_stage_latency_seconds{stage=\"ring_hop\",quantile=\"0.5\"}"].is_nan());
    assert_eq!(
        m["wiresignal_stage_latency_seconds_count{stage=\"ring_hop\"}"],
        0.0
    );
    assert_eq!(
        m["wiresignal_process_resident_memory_bytes"],
        f64::from(2u32 << 20)
    );
    assert_eq!(m["wiresignal_memory_budget_bytes"], 1048576.0);
    assert_eq!(m["wiresignal_memory_over_budget"], 1.0);
    assert_eq!(m["wiresignal_stale_threshold_seconds"], 0.5);
    assert_eq!(m["wiresignal_health_ok"], 0.0, "SOLUSDT never arrived");
}

#[test]
fn health_judgement() {
    let r = Registry::new();
    let f = r.add_feed("binance-spot#0");
    let s = r.add_instrument(info(0, "BTCUSDT"));
    let now = mono_ns().max(10_000_000_000);
    let mut o = opts(Mode::Live);
    o.expected.clear();

    let h = health::evaluate(&r, &o, now, 0);
    assert!(!h.ok);
    assert_eq!(h.feeds[0].state, health::FeedState::Connecting);
    assert!(h.instruments[0].stale, "no update yet is stale");

    f.connects.inc();
    f.connected.set(1);
    s.synced.set(1);
    s.last_event_mono.set(now as i64 - 100_000_000);
    let h = health::evaluate(&r, &o, now, 0);
    assert!(h.ok, "{:?}", h.problems);
    assert_eq!(h.to_json()["status"], "ok");

    // Older than stale_after_ms = 500.
    s.last_event_mono.set(now as i64 - 600_000_000);
    let h = health::evaluate(&r, &o, now, 0);
    assert!(!h.ok);
    assert_eq!(h.to_json()["status"], "degraded");
    assert!(
        h.problems[0].contains("BTCUSDT") && h.problems[0].contains("stale"),
        "{:?}",
        h.problems
    );

    s.last_event_mono.set(now as i64 - 100_000_000);
    s.synced.set(0);
    let h = health::evaluate(&r, &o, now, 0);
    assert!(h.problems[0].contains("not in sync"), "{:?}", h.problems);

    s.synced.set(1);
    f.disconnects.inc();
    f.connected.set(0);
    let h = health::evaluate(&r, &o, now, 0);
    assert_eq!(h.feeds[0].state, health::FeedState::Reconnecting);
    assert_eq!(h.to_json()["feeds"][0]["state"], "reconnecting");
    assert!(!h.ok);

    // Replay: no connection to judge.
    o.mode = Mode::Replay;
    let h = health::evaluate(&r, &o, now, 0);
    assert_eq!(h.feeds[0].state, health::FeedState::Replay);
    assert!(h.ok, "{:?}", h.problems);
}

#[test]
fn metrics_config_keys_are_validated() {
    let c = Config::from_toml_str("", "t").unwrap();
    assert_eq!(c.metrics.addr, None);
    assert_eq!(c.metrics.stale_after, Duration::from_secs(5));
    assert_eq!(c.metrics.memory_budget_bytes, None);
    let c = Config::from_toml_str(
        "[metrics]\naddr = \"127.0.0.1:9100\"\nstale_after_ms = 250\nmemory_budget_mb = 512\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.metrics.addr, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(c.metrics.stale_after, Duration::from_millis(250));
    assert_eq!(c.metrics.memory_budget_bytes, Some(512 << 20));
    for (toml, path) in [
        ("[metrics]\naddr = \"localhost\"\n", "metrics.addr"),
        ("[metrics]\nstale_after_ms = 0\n", "metrics.stale_after_ms"),
        (
            "[metrics]\nmemory_budget_mb = -1\n",
            "metrics.memory_budget_mb",
        ),
    ] {
        assert_eq!(
            Config::from_toml_str(toml, "t").unwrap_err().path,
            path,
            "{toml}"
        );
    }
    let e = Config::from_toml_str("[metrics]\nport = 1\n", "t").unwrap_err();
    assert!(e.message.contains("port"), "{e}");
}

#[test]
fn replay_cli_serves_metrics_on_metrics_addr() {
    // `engine replay --metrics-addr 127.0.0.1:0` at real-time speed; the bound
    // address is read from the binary's stderr, then both endpoints are
    // scraped while the replay runs.
    use std::io::BufRead;
    let dir =
        std::env::temp_dir().join(format!("wiresignal-metrics-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("gen.txt.gz");
    let mut g = GenConfig::new(3, 1);
    g.duration = Duration::from_secs(4);
    g.inline_snapshot_after_diffs = Some(5);
    bench::generator::write_capture(&cap, &g).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "replay",
            cap.to_str().unwrap(),
            "--speed",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.trim().strip_prefix("metrics on http://") {
            addr = rest
                .split('/')
                .next()
                .and_then(|a| a.parse::<SocketAddr>().ok());
            break;
        }
        line.clear();
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let addr = addr.expect("the metrics address on stderr");
    let h = wait_health(addr, Duration::from_secs(10), "replay health ok", |c, _| {
        c == 200
    });
    assert_eq!(h["mode"], "replay");
    assert_eq!(h["feeds"][0]["state"], "replay");
    let (_, _, text) = get(addr, "/metrics");
    let m = parse_exposition(&text);
    assert!(sum_of(&m, "wiresignal_feed_messages_total") > 0.0);
    let build = format!(
        "wiresignal_build_info{{version=\"{}\",mode=\"replay\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m[&build], 1.0);
    let status = child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "{rest}");
    let _ = std::fs::remove_dir_all(&dir);
}
