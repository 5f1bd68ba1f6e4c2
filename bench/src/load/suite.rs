//! The benchmark suite: baselines in-process, the engine as a subprocess
//! (`engine run` against the load server, `engine replay`), with `/proc`
//! sampling for CPU and memory. `bench` cannot depend on `engine`, so the
//! engine is driven through its binary and its `--stats` JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use super::client::{self, Mode};
use super::{procfs, LoadConfig, LoadServer};

/// Latency summary in ns.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Lat {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Lat {
    /// From a histogram.
    #[must_use]
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// From an engine stats `latency_ns` entry.
    #[must_use]
    pub fn of_json(v: &Value) -> Self {
        let g = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            count: g("count"),
            p50: g("p50"),
            p90: g("p90"),
            p95: g("p95"),
            p99: g("p99"),
            p999: g("p999"),
            max: g("max"),
        }
    }
}

/// One measured scenario.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    /// Scenario name (`a@10k`, `engine-epoll@100k`, ...).
    pub name: String,
    /// `baseline-a`, `baseline-b`, `engine-epoll`, `engine-busy_poll`, `replay`.
    pub kind: String,
    /// Offered (peak) rate, msg/s; `None` = max.
    pub offered: Option<f64>,
    /// Frames the load server wrote (or capture messages for replay).
    pub frames_sent: u64,
    /// Frames the consumer processed.
    pub frames_received: u64,
    /// Consumer throughput over the send window, msg/s.
    pub rate: f64,
    /// Stamp → received/parsed (baselines) or → signals computed (engine).
    pub latency: Lat,
    /// Engine only: frame received → signals computed (in-process).
    pub frame_to_signal: Lat,
    /// Load server lateness vs its schedule.
    pub sender_lag: Lat,
    /// CPU of the consumer over the send window, % of one core.
    pub cpu_pct: f64,
    /// Messages per CPU-second of the consumer.
    pub msgs_per_cpu_s: f64,
    /// Context switches of the consumer (every thread) per message over the
    /// send window: its wake-ups.
    pub switches_per_msg: f64,
    /// Peak RSS of the consumer process, bytes (engine runs).
    pub max_rss: u64,
    /// (seconds since start, RSS bytes), once a second (engine runs).
    pub rss_series: Vec<(f64, u64)>,
    /// Engine per-second wire→signal series: (unix s, count, p50, p99, p999, max).
    pub latency_series: Vec<(i64, u64, u64, u64, u64, u64)>,
    /// Engine ring-full waits.
    pub ring_full_waits: u64,
    /// Engine parse errors + book gaps (should be 0).
    pub errors: u64,
    /// Engine pipeline stages from its stats (`parse`, `ring_hop`, ...).
    pub stages: Vec<(String, Lat)>,
    /// Why the scenario did not run, if it did not.
    pub skipped: Option<String>,
}

/// Suite settings.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// The `engine` binary.
    pub engine: PathBuf,
    /// Captures for `engine replay`.
    pub captures: Vec<PathBuf>,
    /// Scratch directory (configs, stats, logs).
    pub work: PathBuf,
    /// Seconds per fixed-rate point.
    pub point_s: f64,
    /// Soak length, seconds.
    pub soak_s: f64,
    /// Offered rates for the latency curve.
    pub rates: Vec<f64>,
}

/// Runs a baseline client against a fresh load server.
///
/// # Errors
/// When the server cannot start or the client cannot connect.
pub fn baseline(name: &str, mode: Mode, cfg: LoadConfig) -> std::io::Result<RunResult> {
    let offered = cfg.profile.nominal_rate();
    let timeout = cfg.profile.duration() + cfg.start_delay + Duration::from_secs(5);
    let server = LoadServer::start(cfg)?;
    let url = format!("{}/stream?streams=all", server.ws_base());
    let c = std::thread::spawn(move || client::run(&url, mode, timeout))
        .join()
        .map_err(|_| std::io::Error::other("client panicked"))??;
    let s = server.finish();
    let window = s.send_window.as_secs_f64().max(1e-9);
    Ok(RunResult {
        name: name.to_owned(),
        kind: match mode {
            Mode::Recv => "baseline-a",
            Mode::Parse => "baseline-b",
        }
        .to_owned(),
        offered,
        frames_sent: s.frames,
        frames_received: c.frames,
        rate: c.frames as f64 / c.window.as_secs_f64().max(window),
        latency: Lat::of(&c.latency),
        sender_lag: Lat::of(&s.sender_lag),
        cpu_pct: 100.0 * c.cpu.as_secs_f64() / c.window.as_secs_f64().max(1e-9),
        msgs_per_cpu_s: c.frames as f64 / c.cpu.as_secs_f64().max(1e-9),
        switches_per_msg: c.switches as f64 / (c.frames.max(1) as f64),
        errors: c.parse_errors,
        ..RunResult::default()
    })
}

/// Engine settings of a loopback run.
#[derive(Clone, Debug)]
pub struct EngineRun {
    /// Scenario name.
    pub name: String,
    /// `epoll` or `busy_poll`, optionally `+inline`, `+adaptive` or
    /// `+threads` (`signal_placement`; none: the default, adaptive).
    pub receiver_mode: String,
    /// Load server settings (profile, instruments, levels).
    pub load: LoadConfig,
}

pub(crate) fn engine_toml(run: &EngineRun, addr: &str, symbols: &[String]) -> String {
    // `<receiver_mode>[+<placement>]`: e.g. `+inline` runs books and
    // signals on the receiver thread (`signal_placement = "inline"`).
    let (receiver, placement) = match run.receiver_mode.split_once('+') {
        Some((r, p)) => (r, Some(p)),
        None => (run.receiver_mode.as_str(), None),
    };
    let mut mode = if receiver == "epoll" {
        String::new()
    } else {
        format!("receiver_mode = \"{receiver}\"\n")
    };
    if let Some(p) = placement {
        mode.push_str(&format!("signal_placement = \"{p}\"\n"));
    }
    let syms: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[engine]\nvenue = \"binance-spot\"\n{mode}\n\
         [[feeds]]\nvenue = \"binance-spot\"\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\n\
         symbols = [{}]\nsnapshot_limit = {}\n",
        syms.join(", "),
        run.load.levels.min(5000),
    )
}

/// Waits for `pid` and returns (success, CPU user+sys).
pub(crate) fn wait_rusage(pid: u32) -> (bool, Duration) {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        tv(ru.ru_utime) + tv(ru.ru_stime),
    )
}

/// Non-blocking check whether `pid` has exited (without reaping it).
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|p| s[p + 2..].chars().next())
                .map(|c| c != 'Z')
        })
        .unwrap_or(false)
}

fn stages(stats: &Value) -> Vec<(String, Lat)> {
    stats["latency_ns"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Lat::of_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

pub(crate) fn last_lines(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A spawned `engine run --config <name>.toml --stats <name>.stats.json
/// --duration <total>` in the suite's work directory, stderr to `<name>.log`.
pub(crate) struct EngineChild {
    pub child: std::process::Child,
    pub stats_path: PathBuf,
    pub log_path: PathBuf,
}

/// Writes `toml` as scenario `name`'s config and starts `engine run` on it.
pub(crate) fn spawn_engine_run(
    suite: &SuiteConfig,
    name: &str,
    toml: &str,
    total: Duration,
) -> std::io::Result<EngineChild> {
    let cfg_path = suite.work.join(format!("{name}.toml"));
    let stats_path = suite.work.join(format!("{name}.stats.json"));
    let log_path = suite.work.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&stats_path);
    std::fs::write(&cfg_path, toml)?;
    let child = Command::new(&suite.engine)
        .arg("run")
        .arg("--config")
        .arg(&cfg_path)
        .arg("--stats")
        .arg(&stats_path)
        .arg("--duration")
        .arg(format!("{:.3}", total.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    Ok(EngineChild {
        child,
        stats_path,
        log_path,
    })
}

/// `engine run` against a load server, sampling the process from `/proc`.
///
/// # Errors
/// When the server cannot start or the engine cannot be spawned.
pub fn engine_loopback(suite: &SuiteConfig, run: &EngineRun) -> std::io::Result<RunResult> {
    let mut load = run.load.clone();
    load.close_at_end = false;
    let offered = load.profile.nominal_rate();
    let symbols = load.symbol_names();
    let total = load.start_delay + load.profile.duration() + Duration::from_millis(1500);
    let server = LoadServer::start(load)?;
    let EngineChild {
        child,
        stats_path,
        log_path,
    } = spawn_engine_run(
        suite,
        &run.name,
        &engine_toml(run, &server.local_addr().to_string(), &symbols),
        total,
    )?;
    let pid = child.id();
    let t0 = Instant::now();
    let (mut cpu_start, mut cpu_end) = (None, None);
    let (mut sw_start, mut sw_end) = (None, None);
    let (mut win_start, mut win_end) = (None, None);
    let mut rss_series = Vec::new();
    let mut next_rss = Duration::ZERO;
    while running(pid) {
        if cpu_start.is_none() && server.started_ns().is_some() {
            cpu_start = procfs::cpu_time(pid);
            sw_start = procfs::context_switches(pid);
            win_start = Some(Instant::now());
        }
        if cpu_end.is_none() && server.ended_ns().is_some() {
            cpu_end = procfs::cpu_time(pid);
            sw_end = procfs::context_switches(pid);
            win_end = Some(Instant::now());
        }
        if t0.elapsed() >= next_rss {
            if let Some(r) = procfs::status_bytes(pid, "VmRSS") {
                rss_series.push((t0.elapsed().as_secs_f64(), r));
            }
            next_rss += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, _) = wait_rusage(pid);
    drop(child);
    let s = server.finish();
    let mut r = RunResult {
        name: run.name.clone(),
        kind: format!("engine-{}", run.receiver_mode),
        offered,
        frames_sent: s.frames,
        sender_lag: Lat::of(&s.sender_lag),
        rss_series,
        ..RunResult::default()
    };
    let Some(stats) = read_json(&stats_path).filter(|_| ok) else {
        r.skipped = Some(format!("engine failed: {}", last_lines(&log_path)));
        return Ok(r);
    };
    let lat = &stats["latency_ns"];
    r.latency = Lat::of_json(&lat["exchange_to_signal"]);
    r.frame_to_signal = Lat::of_json(&lat["frame_to_signal"]);
    r.stages = stages(&stats);
    r.latency_series =
        serde_json::from_value(lat["exchange_to_signal"]["series"].clone()).unwrap_or_default();
    r.frames_received = stats["messages"].as_u64().unwrap_or(0);
    r.ring_full_waits = stats["ring_full_waits"].as_u64().unwrap_or(0);
    r.max_rss = stats["max_rss_bytes"].as_u64().unwrap_or(0);
    let gaps: u64 = stats["instruments"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v["gaps"].as_u64()).sum())
        .unwrap_or(0);
    r.errors = stats["parse_errors"].as_u64().unwrap_or(0) + gaps;
    let window = match (win_start, win_end) {
        (Some(a), Some(b)) => b - a,
        _ => s.send_window,
    }
    .as_secs_f64()
    .max(1e-9);
    r.rate = s.frames.min(r.frames_received) as f64 / s.send_window.as_secs_f64().max(1e-9);
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        let cpu = b.saturating_sub(a).as_secs_f64();
        r.cpu_pct = 100.0 * cpu / window;
        r.msgs_per_cpu_s = s.frames as f64 / cpu.max(1e-9);
    }
    if let (Some(a), Some(b)) = (sw_start, sw_end) {
        r.switches_per_msg = b.saturating_sub(a) as f64 / (s.frames.max(1) as f64);
    }
    if r.latency.count == 0 {
        r.skipped = Some(format!(
            "no exchange_to_signal samples (engine without pipeline::wire?): {}",
            last_lines(&log_path)
        ));
    }
    Ok(r)
}

/// `engine replay <captures> --speed <speed>` (`max` or a factor).
///
/// # Errors
/// When the engine cannot be spawned.
pub fn engine_replay(
    suite: &SuiteConfig,
    name: &str,
    captures: &[PathBuf],
    speed: &str,
) -> std::io::Result<RunResult> {
    // `+inline` in the name: books and signals on the reader thread.
    let config = name
        .contains("+inline")
        .then_some("[engine]\nsignal_placement = \"inline\"\n");
    engine_replay_with(suite, name, captures, speed, config)
}

/// [`engine_replay`] under the configuration `config` (TOML text), if any.
///
/// # Errors
/// When the engine cannot be spawned or the config cannot be written.
pub fn engine_replay_with(
    suite: &SuiteConfig,
    name: &str,
    captures: &[PathBuf],
    speed: &str,
    config: Option<&str>,
) -> std::io::Result<RunResult> {
    let stats_path = suite.work.join(format!("{name}.stats.json"));
    let log_path = suite.work.join(format!("{name}.log"));
    let mut cmd = Command::new(&suite.engine);
    cmd.arg("replay").args(captures);
    if let Some(toml) = config {
        let cfg_path = suite.work.join(format!("{name}.toml"));
        std::fs::write(&cfg_path, toml)?;
        cmd.arg("--config").arg(cfg_path);
    }
    let child = cmd
        .args(["--speed", speed, "--stats"])
        .arg(&stats_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    let (ok, cpu) = wait_rusage(child.id());
    drop(child);
    let mut r = RunResult {
        name: name.to_owned(),
        kind: "replay".to_owned(),
        ..RunResult::default()
    };
    let Some(stats) = read_json(&stats_path).filter(|_| ok) else {
        r.skipped = Some(format!("replay failed: {}", last_lines(&log_path)));
        return Ok(r);
    };
    let msgs = stats["messages"].as_u64().unwrap_or(0);
    r.frames_sent = msgs;
    r.frames_received = msgs;
    r.rate = stats["messages_per_s"].as_f64().unwrap_or(0.0);
    r.frame_to_signal = Lat::of_json(&stats["latency_ns"]["frame_to_signal"]);
    r.stages = stages(&stats);
    r.max_rss = stats["max_rss_bytes"].as_u64().unwrap_or(0);
    r.cpu_pct = 100.0 * cpu.as_secs_f64() / stats["elapsed_s"].as_f64().unwrap_or(1.0).max(1e-9);
    r.msgs_per_cpu_s = msgs as f64 / cpu.as_secs_f64().max(1e-9);
    r.errors = stats["parse_errors"].as_u64().unwrap_or(0);
    Ok(r)
}
