//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// `../shared` next to the repository (override: `WIRESIGNAL_SHARED`).
/// `None` (test skipped) when absent, unless `CI=true`, where it is a failure.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WIRESIGNAL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        });
    if dir.join("data").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data folder missing at {} (CI=true)", dir.display());
    }
    eprintln!("skipping: shared data folder missing at {}", dir.display());
    None
}

/// All lines of a (possibly gzip) text file.
pub fn read_lines(path: &std::path::Path) -> Vec<String> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let text: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    BufReader::new(text).lines().map(|l| l.unwrap()).collect()
}

/// A fresh temporary directory for one test, removed when the test passes
/// (kept for inspection when it panics). Tests write hundreds of megabytes
/// of signal rows; a suite run must not leave them behind.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// See [`TempDir`].
pub fn temp_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("wiresignal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// The engine's decimal string equals the wire's (`61800.20` vs
/// `61800.20000000`; trailing zeros are cut only after a decimal point).
pub fn same_decimal(engine: &serde_json::Value, wire: Option<&str>) -> bool {
    let norm = |s: &str| {
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        };
        s.to_owned()
    };
    engine.as_str().map(norm) == wire.map(norm)
}

/// A `stats.instruments` entry has this reference book: top (as wire
/// decimals) and depth on each side. `ctx` names the book in failures.
pub fn assert_book(
    got: &serde_json::Value,
    best_bid: Option<&str>,
    best_ask: Option<&str>,
    levels: (usize, usize),
    ctx: &str,
) {
    assert!(
        same_decimal(&got["best_bid"], best_bid),
        "{ctx} bid {got} vs {best_bid:?}"
    );
    assert!(
        same_decimal(&got["best_ask"], best_ask),
        "{ctx} ask {got} vs {best_ask:?}"
    );
    assert_eq!(got["bid_levels"].as_u64(), Some(levels.0 as u64), "{ctx}");
    assert_eq!(got["ask_levels"].as_u64(), Some(levels.1 as u64), "{ctx}");
}

/// Tolerance of SIGNALS.md section 8.
pub fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= f64::max(1e-12, 1e-9 * want.abs())
}

/// Binance spot captures in the shared data folder.
pub fn spot_captures(shared: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join("data/binance-spot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    v.sort();
    v
}

/// Replays `paths` with no configuration (each capture names its venue),
/// writing rows to `out`; returns the stats.
pub fn replay_no_config(paths: &[PathBuf], out: &std::path::Path) -> serde_json::Value {
    replay_cfg(engine::config::Config::default(), paths, out)
}

/// [`replay_no_config`] with `cfg` (cores never pinned).
pub fn replay_cfg(
    mut cfg: engine::config::Config,
    paths: &[PathBuf],
    out: &std::path::Path,
) -> serde_json::Value {
    cfg.engine.pin_cores = Some(false);
    engine::app::replay_with(
        &cfg,
        paths,
        &engine::replay::ReplayDefaults::default(),
        engine::config::Speed::Max,
        engine::app::Output::File(out.to_path_buf()),
        None,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
    .stats
}

/// The shared captures of `venue` (`shared/data/<venue>/*.txt.gz`), sorted.
pub fn venue_captures(shared: &std::path::Path, venue: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join("data").join(venue))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    v.sort();
    v
}

/// The shared v1 capture rewritten as WebSocket v2 frames (objects, prices
/// and sizes as JSON numbers with the same text, the same checksums).
pub fn kraken_v1_to_v2(cap: &std::path::Path) -> String {
    let mut out = String::from("# venue=kraken url=wss://ws.kraken.com/v2\n");
    let level = |lv: &serde_json::Value| {
        format!(
            r#"{{"price":{},"qty":{}}}"#,
            lv[0].as_str().unwrap(),
            lv[1].as_str().unwrap()
        )
    };
    for line in read_lines(cap) {
        if line.starts_with('#') {
            continue;
        }
        let (t, frame) = line.split_once(' ').unwrap();
        let v: serde_json::Value = serde_json::from_str(frame).unwrap();
        let Some(a) = v.as_array() else {
            // Events: a v2 heartbeat stands in for each.
            out.push_str(&format!("{t} {{\"channel\":\"heartbeat\"}}\n"));
            continue;
        };
        let pair = a[a.len() - 1].as_str().unwrap();
        let (mut bids, mut asks, mut checksum, mut snapshot) = (vec![], vec![], None, false);
        for obj in &a[1..a.len() - 2] {
            for (k, levels) in obj.as_object().unwrap() {
                match k.as_str() {
                    "c" => checksum = Some(levels.as_str().unwrap().to_owned()),
                    k => {
                        snapshot |= k.len() == 2;
                        let side = if k.starts_with('a') {
                            &mut asks
                        } else {
                            &mut bids
                        };
                        side.extend(levels.as_array().unwrap().iter().map(level));
                    }
                }
            }
        }
        let kind = if snapshot { "snapshot" } else { "update" };
        let c = checksum
            .map(|c| format!(r#","checksum":{c}"#))
            .unwrap_or_default();
        out.push_str(&format!(
            r#"{t} {{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair}","bids":[{}],"asks":[{}]{c}}}]}}"#,
            bids.join(","),
            asks.join(",")
        ));
        out.push('\n');
    }
    out
}

#[path = "../../../feeds/tests/common/coinbase_at.rs"]
mod coinbase_at;

/// The Coinbase Exchange capture `cap` in Advanced Trade's shapes (see
/// `feeds/tests/common/coinbase_at.rs`).
pub fn coinbase_exchange_to_advanced(cap: &std::path::Path, hole_after: u64) -> String {
    coinbase_at::exchange_to_advanced(&read_lines(cap), hole_after)
}

/// The simulator serving `capture` at max speed, `faults` on its first
/// connection; its protocol is the capture's venue.
pub fn start_sim(capture: &std::path::Path, faults: bench::sim::Faults) -> bench::sim::SimHandle {
    let mut sc = bench::sim::SimConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    sc.speed = bench::sim::Speed::Max;
    sc.faults = faults;
    sc.fault_connections = Some(1);
    bench::sim::Simulator::start(
        sc,
        Box::new(bench::source::CaptureSource::new(vec![
            capture.to_path_buf()
        ])),
    )
    .unwrap()
}

/// A live run against `sim` until it is exhausted and idle and every book
/// that lost sync recovered (`all_synced`: every book is in sync).
pub fn run_feed(
    sim: &bench::sim::SimHandle,
    out: &std::path::Path,
    engine_extra: &str,
    feed_extra: &str,
    venue: &str,
    symbol: &str,
    all_synced: bool,
) -> serde_json::Value {
    let addr = sim.local_addr();
    let toml = format!(
        "[engine]\npin_cores = false\n{engine_extra}\n[[feeds]]\nvenue = \"{venue}\"\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [\"{symbol}\"]\n{feed_extra}\n"
    );
    let cfg = engine::config::Config::from_toml_str(&toml, "e2e").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let report = engine::live::run(
        &cfg,
        engine::app::Output::File(out.to_path_buf()),
        engine::live::StopWhen {
            duration: Some(std::time::Duration::from_secs(120)),
            stop: &stop,
            done: Some(Box::new(move |p| {
                let now = engine::pipeline::clock::mono_ns() as i64;
                let idle = p
                    .registry
                    .feeds()
                    .iter()
                    .all(|(_, f)| now - f.last_frame_mono.get() > 300_000_000);
                // Every book that lost sync (gap, failed check) has recovered.
                let recovered = p.registry.instruments().iter().all(|(_, s)| {
                    s.synced.get() == 1
                        || (!all_synced
                            && s.gaps.get() == 0
                            && s.checksum_failed.get() == 0
                            && s.crosscheck_failed.get() == 0)
                });
                (sim.is_exhausted() && idle && recovered) || std::time::Instant::now() > deadline
            })),
            tick: None,
        },
    )
    .unwrap();
    assert!(
        sim.is_exhausted(),
        "simulator did not finish: {}",
        report.stats
    );
    report.stats
}

/// The JSON rows of an output file.
pub fn rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A port nothing listens on now (bound, then released), on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The first `lines` lines of the first spot capture, as a plain file in `dir`.
pub fn spot_slice(dir: &std::path::Path, lines: usize) -> Option<PathBuf> {
    use std::io::Write;
    let shared = shared_dir()?;
    let cap = spot_captures(&shared).into_iter().next()?;
    let path = dir.join("slice.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    for l in read_lines(&cap).into_iter().take(lines) {
        writeln!(f, "{l}").unwrap();
    }
    Some(path)
}

/// Replays `input` under the config `toml` (cores never pinned) at `speed`,
/// writing rows to `out`; returns the stats.
pub fn replay_toml(
    toml: &str,
    input: &std::path::Path,
    out: &std::path::Path,
    speed: engine::config::Speed,
) -> serde_json::Value {
    replay_toml_until(
        toml,
        input,
        out,
        speed,
        &std::sync::atomic::AtomicBool::new(false),
    )
}

/// [`replay_toml`] that ends early once `stop` is set.
pub fn replay_toml_until(
    toml: &str,
    input: &std::path::Path,
    out: &std::path::Path,
    speed: engine::config::Speed,
    stop: &std::sync::atomic::AtomicBool,
) -> serde_json::Value {
    let mut cfg = engine::config::Config::from_toml_str(toml, "test").unwrap();
    cfg.engine.pin_cores = Some(false);
    engine::app::replay_with(
        &cfg,
        &[input.to_path_buf()],
        &engine::replay::ReplayDefaults::default(),
        speed,
        engine::app::Output::File(out.to_path_buf()),
        None,
        stop,
    )
    .unwrap()
    .stats
}
