//! `engine`: thin command line over the `engine` library.

#[cfg(feature = "sim")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use engine::app::{self, Output};
use engine::config::{Config, Speed};
#[cfg(feature = "sim")]
use engine::demo::DemoSource;
use engine::live::StopWhen;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's runtime option setter (exported by the linked mimalloc).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in the bundled mimalloc v3 (`mimalloc.h`).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// Lets reserved-but-untouched memory stay out of the resident set: the
/// engine reserves its windows, books and rings up front (no allocation per
/// message), and with eager arena commit every reservation became resident
/// (100 instruments: ~970 MB RSS instead of ~80 MB).
/// Runs before `main` (and before the Rust runtime's first allocation, which
/// would reserve the first arena with the default setting).
extern "C" fn tune_allocator() {
    // SAFETY: plain option store in mimalloc; valid to call at any time.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

const USAGE: &str = "\
usage:
  engine                                  run the demo (generator → simulator → WebSocket → engine)
  engine demo [--capture <file>...] [--config <file>] [--duration <s>] [--speed max|1|<N>] [--metrics-addr <ip:port>]
  engine replay <capture>... [--speed max|1|<N>] [--out <signals.jsonl|->] [--stats <stats.json>] [--config <file>]
                [--venue <name>] [--symbols A,B]   (for captures without a header, e.g. Tardis raw files)
                [--parquet <signals.parquet>]   (needs a build with --features parquet)
                [--metrics-addr <ip:port>]      (/metrics and /health, see docs/observability.md)
  engine sim [<capture>...] --listen <ip:port> [--speed max|1|<N>] [--drop-after <frames>] [--skip-depth <n>]...
             [--stall-after <frames> --stall-ms <ms>] [--corrupt-checksum <n>]...
                                        (no capture: serve the built-in generator)
             [--venue <name>]   (protocol spoken; default: the capture's venue= header, else binance-spot)
             [--min-subscribed <n>]   (play only while n connections are subscribed; USD-M clients open 2)
             [--min-streams <n>]   (play only once the clients hold n streams; Coinbase Advanced Trade
                                    subscribes channel by channel: 1 + 3 × products)
             [--compression deflate|none]   (deflate: agree on permessage-deflate when a client offers it)
  engine run --config <file> [--out <file|->] [--stats <file>] [--duration <s>] [--metrics-addr <ip:port>]
  engine record --config <file> --out <dir> [--duration <s>]
  engine generate --out <capture.txt.gz> [--seed <n>] [--duration <s>] [--symbols A,B]";

/// Parsed command line: positional arguments and `--key value` options.
struct Args {
    positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut positional = Vec::new();
        let mut options = Vec::new();
        let mut it = args.peekable();
        while let Some(a) = it.next() {
            if let Some(key) = a.strip_prefix("--") {
                let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
                options.push((key.to_owned(), value));
            } else {
                positional.push(a);
            }
        }
        Ok(Self {
            positional,
            options,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[cfg(feature = "sim")]
    fn all(&self, key: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self
            .options
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }

    fn parse_opt<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| format!("--{key}: invalid value {v:?}"))
            })
            .transpose()
    }
}

fn load_config(args: &Args) -> Result<Config, String> {
    match args.get("config") {
        Some(p) => Config::load(&PathBuf::from(p)).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// `--metrics-addr <ip:port>` overrides `[metrics] addr`.
fn metrics_addr(args: &Args, cfg: &mut Config) -> Result<(), String> {
    if let Some(a) = args.get("metrics-addr") {
        cfg.metrics.addr = Some(
            engine::config::MetricsConfig::parse_addr("--metrics-addr", a)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

fn speed(args: &Args, default: Speed) -> Result<Speed, String> {
    args.get("speed").map_or(Ok(default), |s| {
        Speed::parse(s).map_err(|e| format!("--speed: {e}"))
    })
}

fn cmd_replay(args: &Args) -> Result<(), String> {
    args.check_known(&[
        "speed",
        "out",
        "stats",
        "config",
        "parquet",
        "metrics-addr",
        "venue",
        "symbols",
    ])?;
    if args.positional.is_empty() {
        return Err("replay needs at least one capture file".into());
    }
    let mut cfg = load_config(args)?;
    metrics_addr(args, &mut cfg)?;
    let speed = speed(args, cfg.replay_speed)?;
    let out = args
        .get("out")
        .or(cfg.output.signals.as_deref())
        .map_or(Output::None, Output::from_arg);
    let paths: Vec<PathBuf> = args.positional.iter().map(PathBuf::from).collect();
    let parquet = engine::parquet::open_collector(args.get("parquet").map(std::path::Path::new))
        .map_err(|e| format!("--parquet: {e}"))?;
    let defaults = engine::replay::ReplayDefaults {
        venue: args.get("venue").unwrap_or(&cfg.engine.venue).to_owned(),
        symbols: args
            .get("symbols")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_ascii_uppercase)
                    .collect()
            })
            .unwrap_or_default(),
    };
    if feeds::venue::venue_by_name(&defaults.venue).is_none() {
        return Err(format!("--venue: unknown venue {:?}", defaults.venue));
    }
    let report = app::replay_with(
        &cfg,
        &paths,
        &defaults,
        speed,
        out,
        parquet,
        engine::shutdown::flag(),
    )
    .map_err(|e| e.to_string())?;
    finish_report(args.get("stats").or(cfg.output.stats.as_deref()), &report)
}

fn duration(args: &Args) -> Result<Option<Duration>, String> {
    match args.parse_opt::<f64>("duration")? {
        Some(d) if d.is_finite() && d > 0.0 => Ok(Some(Duration::from_secs_f64(d))),
        Some(d) => Err(format!("--duration: must be positive, got {d}")),
        None => Ok(None),
    }
}

#[cfg(feature = "sim")]
fn cmd_demo(args: &Args) -> Result<(), String> {
    args.check_known(&[
        "capture",
        "config",
        "duration",
        "speed",
        "out",
        "stats",
        "metrics-addr",
    ])?;
    let mut cfg = match args.get("config") {
        Some(_) => load_config(args)?,
        None => Config::from_toml_str(
            include_str!("../../config/default.toml"),
            "config/default.toml",
        )
        .map_err(|e| e.to_string())?,
    };
    if let Some(d) = duration(args)? {
        cfg.demo.duration_s = d.as_secs_f64();
    }
    cfg.demo.speed = speed(args, cfg.demo.speed)?;
    metrics_addr(args, &mut cfg)?;
    let captures = args.all("capture");
    let source = if captures.is_empty() {
        DemoSource::Generator
    } else {
        DemoSource::Captures(captures.iter().map(PathBuf::from).collect())
    };
    let out = args.get("out").map_or(Output::None, Output::from_arg);
    let report = engine::demo::run(&cfg, source, out, engine::shutdown::flag())
        .map_err(|e| e.to_string())?;
    finish_report(args.get("stats"), &report)
}

fn cmd_run(args: &Args) -> Result<(), String> {
    args.check_known(&["config", "out", "stats", "duration", "metrics-addr"])?;
    if args.get("config").is_none() {
        return Err("run needs --config <file>".into());
    }
    let mut cfg = load_config(args)?;
    metrics_addr(args, &mut cfg)?;
    let out = args
        .get("out")
        .or(cfg.output.signals.as_deref())
        .map_or(Output::None, Output::from_arg);
    let report = engine::live::run(
        &cfg,
        out,
        StopWhen {
            duration: duration(args)?,
            stop: engine::shutdown::flag(),
            done: None,
            tick: None,
        },
    )
    .map_err(|e| e.to_string())?;
    finish_report(args.get("stats").or(cfg.output.stats.as_deref()), &report)
}

fn cmd_record(args: &Args) -> Result<(), String> {
    args.check_known(&["config", "out", "duration"])?;
    let (Some(_), Some(out)) = (args.get("config"), args.get("out")) else {
        return Err("record needs --config <file> --out <dir>".into());
    };
    let cfg = load_config(args)?;
    let files = engine::record::record(
        &cfg,
        &PathBuf::from(out),
        duration(args)?,
        engine::shutdown::flag(),
    )
    .map_err(|e| e.to_string())?;
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(feature = "sim")]
fn cmd_sim(args: &Args) -> Result<(), String> {
    args.check_known(&[
        "listen",
        "speed",
        "drop-after",
        "skip-depth",
        "corrupt-checksum",
        "stall-after",
        "stall-ms",
        "generate-seconds",
        "seed",
        "venue",
        "min-subscribed",
        "min-streams",
        "compression",
    ])?;
    let venue = args.get("venue").map(str::to_owned);
    if let Some(v) = &venue {
        if feeds::venue::venue_by_name(v).is_none() {
            return Err(format!("--venue: unknown venue {v:?}"));
        }
    }
    let listen: SocketAddr = args
        .get("listen")
        .ok_or("sim needs --listen <ip:port>")?
        .parse()
        .map_err(|_| "--listen: expected ip:port, e.g. 127.0.0.1:9001".to_owned())?;
    let source: Box<dyn bench::source::FrameSource + Send> = if args.positional.is_empty() {
        let secs = args.parse_opt::<f64>("generate-seconds")?.unwrap_or(300.0);
        let mut g =
            bench::generator::GenConfig::new(args.parse_opt::<u64>("seed")?.unwrap_or(7), 3);
        g.duration = Duration::from_secs_f64(secs);
        if let Some(v) = &venue {
            g.venue.clone_from(v);
        }
        Box::new(bench::source::GeneratorSource::new(
            bench::generator::Generator::new(g),
        ))
    } else {
        Box::new(bench::source::CaptureSource::new(
            args.positional.iter().map(PathBuf::from).collect(),
        ))
    };
    let mut sc = bench::sim::SimConfig::new(listen);
    sc.venue = venue;
    sc.speed = match speed(args, Speed::Factor(1.0))? {
        Speed::Max => bench::sim::Speed::Max,
        Speed::Factor(f) => bench::sim::Speed::Factor(f),
    };
    sc.min_subscribed = args.parse_opt("min-subscribed")?.unwrap_or(1);
    sc.min_streams = args.parse_opt("min-streams")?.unwrap_or(0);
    sc.deflate = match args.get("compression") {
        None | Some("none") => false,
        Some("deflate") if cfg!(feature = "deflate") => true,
        Some("deflate") => {
            return Err("--compression deflate: built without the `deflate` feature".into())
        }
        Some(v) => {
            return Err(format!(
                "--compression: expected deflate or none, got {v:?}"
            ))
        }
    };
    sc.faults.drop_after_frames = args.parse_opt("drop-after")?;
    for v in args.all("skip-depth") {
        sc.faults.skip_depth_at.push(
            v.parse()
                .map_err(|_| format!("--skip-depth: invalid {v:?}"))?,
        );
    }
    for v in args.all("corrupt-checksum") {
        sc.faults.corrupt_checksum_at.push(
            v.parse()
                .map_err(|_| format!("--corrupt-checksum: invalid {v:?}"))?,
        );
    }
    if let Some(after) = args.parse_opt::<u64>("stall-after")? {
        let ms = args.parse_opt::<u64>("stall-ms")?.unwrap_or(1000);
        sc.faults.stall = Some((after, Duration::from_millis(ms)));
    }
    let sim = bench::sim::Simulator::start(sc, source)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!(
        "simulator listening on {} (ws://{0}/stream?streams=..., http://{0}/api/v3/depth?symbol=..); Ctrl-C to stop",
        sim.local_addr()
    );
    let mut reported = false;
    while !engine::shutdown::requested() {
        std::thread::sleep(Duration::from_millis(100));
        if sim.is_exhausted() && !reported {
            eprintln!(
                "source exhausted after {} frames; still serving snapshots until Ctrl-C",
                sim.frames_sent()
            );
            reported = true;
        }
    }
    sim.shutdown().map_err(|e| e.to_string())
}

#[cfg(feature = "sim")]
fn cmd_generate(args: &Args) -> Result<(), String> {
    args.check_known(&["out", "seed", "duration", "symbols"])?;
    let out = args.get("out").ok_or("generate needs --out <file>")?;
    let mut g = bench::generator::GenConfig::new(args.parse_opt::<u64>("seed")?.unwrap_or(7), 3);
    if let Some(d) = duration(args)? {
        g.duration = d;
    }
    if let Some(list) = args.get("symbols") {
        g.symbols = list
            .split(',')
            .enumerate()
            .map(|(i, s)| bench::generator::SymbolSpec {
                name: s.to_ascii_uppercase(),
                ..bench::generator::SymbolSpec::preset(i)
            })
            .collect();
    }
    let n = bench::generator::write_capture(&PathBuf::from(out), &g)
        .map_err(|e| format!("{out}: {e}"))?;
    eprintln!("wrote {n} records to {out}");
    Ok(())
}

/// Lean build (`--no-default-features`): the simulator, the generator and
/// the demo are not in this binary.
#[cfg(not(feature = "sim"))]
fn without_sim(cmd: &str) -> Result<(), String> {
    Err(format!(
        "`engine {cmd}` needs the simulator and generator: this binary was built without the \
         default `sim` feature (cargo build --release --features sim)"
    ))
}

#[cfg(not(feature = "sim"))]
fn cmd_demo(_: &Args) -> Result<(), String> {
    without_sim("demo")
}

#[cfg(not(feature = "sim"))]
fn cmd_sim(_: &Args) -> Result<(), String> {
    without_sim("sim")
}

#[cfg(not(feature = "sim"))]
fn cmd_generate(_: &Args) -> Result<(), String> {
    without_sim("generate")
}

fn finish_report(stats: Option<&str>, report: &app::RunReport) -> Result<(), String> {
    if let Some(p) = stats {
        app::write_stats(&PathBuf::from(p), &report.stats).map_err(|e| e.to_string())?;
    }
    eprintln!(
        "messages {} | parse errors {} | unknown {} | rows {} | {:.3} s | {:.0} msg/s | max RSS {:.1} MB",
        report.stats["messages"],
        report.stats["parse_errors"],
        report.stats["unknown_messages"],
        report.stats["signal_rows"],
        report.stats["elapsed_s"].as_f64().unwrap_or(0.0),
        report.stats["messages_per_s"].as_f64().unwrap_or(0.0),
        report.stats["max_rss_bytes"].as_f64().unwrap_or(0.0) / 1e6,
    );
    eprint!("{}", report.latency_table);
    Ok(())
}

fn real_main() -> Result<(), String> {
    engine::shutdown::install();
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next();
    let args = Args::parse(argv)?;
    match cmd.as_deref() {
        Some("replay") => cmd_replay(&args),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("demo") => cmd_demo(&args),
        Some("sim") => cmd_sim(&args),
        Some("run") => cmd_run(&args),
        Some("record") => cmd_record(&args),
        Some("generate") => cmd_generate(&args),
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
        None => cmd_demo(&args),
    }
}

fn main() {
    let code = match real_main() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    };
    exit_now(code)
}

/// Ends the process once `real_main` is done, skipping the exit-time
/// teardown of the C runtime: with mimalloc that is a forced collection of
/// every heap and a purge (`madvise`) of all its arenas, ~0.5 ms of CPU of
/// the ~4 ms a replay of an empty capture costs (min of 40 runs, 4.13 →
/// 3.50 ms), for memory the kernel is about to take back anyway.
///
/// Nothing is lost: every thread has been joined, every file and socket was
/// flushed and closed by its owner's drop inside `real_main`, Rust runs no
/// destructors of statics anyway, and no dependency registers an `atexit`
/// handler; stdout (buffered by Rust) is flushed here. (mimalloc's
/// `MIMALLOC_SHOW_STATS` / `MIMALLOC_VERBOSE` exit report is skipped too.)
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process; no Rust state is used afterwards.
    unsafe { libc::_exit(code) }
}
