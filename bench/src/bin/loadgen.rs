//! `loadgen`: paced Binance-protocol load server, baseline clients and the
//! benchmark suite (see `bench::load`). Used by `scripts/bench.sh`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::load::client::Mode;
use bench::load::suite::{self, EngineRun, RunResult, SuiteConfig};
use bench::load::{outputs, report, LoadConfig, LoadServer, Profile};

const USAGE: &str = "\
usage:
  loadgen serve --profile <p> [--listen 127.0.0.1:9100] [--symbols N] [--levels L]
  loadgen baseline --mode recv|parse --profile <p> [--symbols N] [--levels L]
  loadgen client --url <ws://...> [--mode recv|parse] [--timeout-s 30]
  loadgen suite --engine <path> --out <dir> [--name <date>] [--capture <file>]...
                [--point-s 6] [--soak-s 120] [--rates 10k,100k,1m]
                [--only a@10k,engine-epoll@10k,...]  (scenario name prefixes)
  loadgen outputs --engine <path> [--capture <file>]... [--nats-server <path>]
                [--gw-clients 100] [--gw-rate 1000] [--gw-s 4] [--sink-runs 5]
profiles: fixed:<rate>:<s>  soak:<rate>:<s>  max:<s>  ramp:<from>:<to>:<s>
          spike:<base>:<factor>:<at s>:<len s>:<s>   (rates accept k/m suffixes)";

struct Args(Vec<(String, String)>);

impl Args {
    fn parse(v: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut it = v.peekable();
        while let Some(a) = it.next() {
            let k = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?}"))?;
            let val = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
            out.push((k.to_owned(), val));
        }
        Ok(Self(out))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn num<T: std::str::FromStr>(&self, k: &str, d: T) -> Result<T, String> {
        self.get(k).map_or(Ok(d), |v| {
            v.parse().map_err(|_| format!("--{k}: invalid {v:?}"))
        })
    }
}

fn load_cfg(a: &Args) -> Result<LoadConfig, String> {
    let mut c = LoadConfig::new(Profile::parse(a.get("profile").ok_or("--profile needed")?)?);
    c.symbols = a.num("symbols", 3)?;
    c.levels = a.num("levels", 300)?;
    Ok(c)
}

fn cmd_serve(a: &Args) -> Result<(), String> {
    let mut c = load_cfg(a)?;
    c.listen = a
        .get("listen")
        .unwrap_or("127.0.0.1:9100")
        .parse()
        .map_err(|_| "--listen: expected ip:port")?;
    c.close_at_end = false;
    let total = c.profile.duration();
    let h = LoadServer::start(c).map_err(|e| e.to_string())?;
    eprintln!(
        "load server on {} (ws://{0}/stream?streams=..); waiting for a client",
        h.local_addr()
    );
    while h.ended_ns().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = h.finish();
    eprintln!(
        "sent {} frames in {:.2} s (profile {:.1} s); sender lag p99 {} ns; {} snapshots",
        r.frames,
        r.send_window.as_secs_f64(),
        total.as_secs_f64(),
        r.sender_lag.value_at_quantile(0.99),
        r.snapshots
    );
    Ok(())
}

/// `--mode recv|parse` (default recv): baseline a or b.
fn mode(a: &Args) -> Result<Mode, String> {
    match a.get("mode").unwrap_or("recv") {
        "recv" => Ok(Mode::Recv),
        "parse" => Ok(Mode::Parse),
        m => Err(format!("--mode: recv or parse, got {m:?}")),
    }
}

fn cmd_baseline(a: &Args) -> Result<(), String> {
    let mode = mode(a)?;
    let r = suite::baseline("baseline", mode, load_cfg(a)?).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Baseline a or b in a process of its own, against a `loadgen serve` (or
/// any Binance-protocol server): the consumer does not share the load
/// server's address space, as no real consumer does.
fn cmd_client(a: &Args) -> Result<(), String> {
    let mode = mode(a)?;
    let url = a.get("url").ok_or("--url needed")?;
    let timeout = Duration::from_secs(a.num("timeout-s", 30)?);
    let c = bench::load::client::run(url, mode, timeout).map_err(|e| e.to_string())?;
    let frames = c.frames.max(1) as f64;
    println!(
        "frames {} rate {:.0}/s cpu {:.2} us/msg switches/msg {:.2} p50 {} p99 {} ns",
        c.frames,
        c.rate(),
        c.cpu.as_secs_f64() * 1e6 / frames,
        c.switches as f64 / frames,
        c.latency.value_at_quantile(0.5),
        c.latency.value_at_quantile(0.99),
    );
    Ok(())
}

fn rate_label(r: f64) -> String {
    if r >= 1e6 {
        format!("{}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{}k", r / 1e3)
    } else {
        format!("{r}")
    }
}

fn cmd_suite(a: &Args) -> Result<(), String> {
    let out = PathBuf::from(a.get("out").ok_or("--out <dir> needed")?);
    let name = a.get("name").unwrap_or("results").to_owned();
    let work = std::env::temp_dir().join(format!("wiresignal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let rates = a
        .get("rates")
        .unwrap_or("10k,100k,1m")
        .split(',')
        .map(|r| {
            Profile::parse(&format!("fixed:{r}:1")).and_then(|p| p.nominal_rate().ok_or_default())
        })
        .collect::<Result<Vec<f64>, String>>()?;
    let cfg = SuiteConfig {
        engine: PathBuf::from(a.get("engine").ok_or("--engine <path> needed")?),
        captures: a.all("capture").into_iter().map(PathBuf::from).collect(),
        work: work.clone(),
        point_s: a.num("point-s", 6.0)?,
        soak_s: a.num("soak-s", 120.0)?,
        rates,
    };
    // `--only`: run just the scenarios whose names start with one of these
    // (e.g. the CPU-at-10k pair `a@10k,engine-epoll@10k`).
    let only: Vec<String> = a
        .get("only")
        .map(|o| o.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let load_before = outputs::loadavg();
    let started = std::time::Instant::now();
    let mut rs: Vec<RunResult> = Vec::new();
    let push = |r: std::io::Result<RunResult>, rs: &mut Vec<RunResult>| match r {
        Ok(r) => {
            eprintln!(
                "{:<24} rate {:>10.0}/s  p50 {:>9} p99 {:>9} max {:>10} ns  cpu {:>5.1}%  {}",
                r.name,
                r.rate,
                r.latency.p50,
                r.latency.p99,
                r.latency.max,
                r.cpu_pct,
                r.skipped.as_deref().unwrap_or("")
            );
            rs.push(r);
        }
        Err(e) => eprintln!("scenario failed: {e}"),
    };
    let p = cfg.point_s;
    let fixed = |rate: f64, s: f64| Profile::Fixed {
        rate,
        duration: Duration::from_secs_f64(s),
    };
    let engine = |name: String, mode: &str, load: LoadConfig| EngineRun {
        name,
        receiver_mode: mode.to_owned(),
        load,
    };
    // Throughput: baselines and the engine at max, then replays.
    let max = Profile::Max {
        duration: Duration::from_secs_f64(p.min(5.0)),
    };
    if want("a@max") {
        push(
            suite::baseline("a@max", Mode::Recv, LoadConfig::new(max.clone())),
            &mut rs,
        );
    }
    if want("b@max") {
        push(
            suite::baseline("b@max", Mode::Parse, LoadConfig::new(max.clone())),
            &mut rs,
        );
    }
    if want("engine-epoll@max") {
        push(
            suite::engine_loopback(
                &cfg,
                &engine("engine-epoll@max".into(), "epoll", LoadConfig::new(max)),
            ),
            &mut rs,
        );
    }
    for c in &cfg.captures {
        let stem = c.file_name().map_or("capture".into(), |f| {
            f.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or("capture")
                .to_owned()
        });
        let one = std::slice::from_ref(c);
        // Max speed, then paced (no ring queueing: the in-process
        // frame→signal latency); then both on one thread
        // (`signal_placement = "inline"`).
        for (name, speed) in [
            (format!("replay-{stem}"), "max"),
            (format!("replay-{stem}-x100"), "100"),
            (format!("replay+inline-{stem}"), "max"),
            (format!("replay+inline-{stem}-x100"), "100"),
        ] {
            if want(&name) {
                push(suite::engine_replay(&cfg, &name, one, speed), &mut rs);
            }
        }
    }
    let gen = work.join("generated.txt.gz");
    let made = want("replay-generated-600s")
        && std::process::Command::new(&cfg.engine)
            .args(["generate", "--seed", "7", "--duration", "600", "--out"])
            .arg(&gen)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if made {
        push(
            suite::engine_replay(&cfg, "replay-generated-600s", &[gen], "max"),
            &mut rs,
        );
    }
    // Latency vs offered rate.
    let mut busy_skip: Option<String> = None;
    for &rate in &cfg.rates {
        let l = rate_label(rate);
        if want(&format!("a@{l}")) {
            push(
                suite::baseline(
                    &format!("a@{l}"),
                    Mode::Recv,
                    LoadConfig::new(fixed(rate, p)),
                ),
                &mut rs,
            );
        }
        let modes: &[&str] = if rate > 200_000.0 {
            &["epoll"]
        } else {
            &["epoll", "epoll+inline", "epoll+threads", "busy_poll+inline"]
        };
        for mode in modes {
            let name = format!("engine-{mode}@{l}");
            if want(&name) {
                push(
                    suite::engine_loopback(
                        &cfg,
                        &engine(name, mode, LoadConfig::new(fixed(rate, p))),
                    ),
                    &mut rs,
                );
            }
        }
        if rate > 200_000.0 || !want(&format!("engine-busy_poll@{l}")) {
            continue;
        }
        if let Some(why) = &busy_skip {
            rs.push(RunResult {
                name: format!("engine-busy_poll@{l}"),
                kind: "engine-busy_poll".into(),
                offered: Some(rate),
                skipped: Some(why.clone()),
                ..RunResult::default()
            });
            continue;
        }
        let r = suite::engine_loopback(
            &cfg,
            &engine(
                format!("engine-busy_poll@{l}"),
                "busy_poll",
                LoadConfig::new(fixed(rate, p)),
            ),
        );
        if let Ok(r) = &r {
            if r.latency.count == 0 {
                busy_skip = r
                    .skipped
                    .clone()
                    .map(|w| format!("busy_poll unavailable: {w}"));
            }
        }
        push(r, &mut rs);
    }
    // Spike: 10k with 10× for 3 s.
    let spike = Profile::Spike {
        base: 10_000.0,
        factor: 10.0,
        at: Duration::from_secs(4),
        len: Duration::from_secs(3),
        duration: Duration::from_secs(12),
    };
    if want("spike-10k-x10") {
        push(
            suite::engine_loopback(
                &cfg,
                &engine("spike-10k-x10".into(), "epoll", LoadConfig::new(spike)),
            ),
            &mut rs,
        );
    }
    // Soak.
    let soak = format!("soak-10k-{}s", cfg.soak_s);
    if want(&soak) {
        push(
            suite::engine_loopback(
                &cfg,
                &engine(soak, "epoll", LoadConfig::new(fixed(10_000.0, cfg.soak_s))),
            ),
            &mut rs,
        );
    }
    // Memory: 100 instruments × 1000 levels per side.
    let mut mem = LoadConfig::new(fixed(10_000.0, 10.0));
    mem.symbols = 100;
    mem.levels = 1000;
    mem.start_delay = Duration::from_secs(3);
    if want("mem-100x1000") {
        push(
            suite::engine_loopback(&cfg, &engine("mem-100x1000".into(), "epoll", mem)),
            &mut rs,
        );
    }

    let env = format!(
        "Run {name}: {} CPUs, load average before {} / after {}, suite wall time {:.0} s, \
         engine `{}`, release build. Loopback; load server, baseline client and engine share the cores.",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_before,
        outputs::loadavg(),
        started.elapsed().as_secs_f64(),
        cfg.engine.display()
    );
    let md = report::markdown(&rs, &format!("wiresignal benchmark {name}"), &env);
    let lat_svg = out.join(format!("{name}-latency-vs-rate.svg"));
    report::plot_latency_vs_rate(&rs, &lat_svg)?;
    let mut md = md;
    md.push_str(&format!(
        "\n![latency vs rate]({name}-latency-vs-rate.svg)\n"
    ));
    if let Some(soak) = rs
        .iter()
        .find(|r| r.name.starts_with("soak") && r.skipped.is_none())
    {
        let p = out.join(format!("{name}-soak.svg"));
        report::plot_over_time(soak, &p)?;
        md.push_str(&format!(
            "\n![soak latency and RSS over time]({name}-soak.svg)\n"
        ));
    }
    if let Some(sp) = rs
        .iter()
        .find(|r| r.name.starts_with("spike") && r.skipped.is_none())
    {
        let p = out.join(format!("{name}-spike.svg"));
        report::plot_over_time(sp, &p)?;
        md.push_str(&format!("\n![spike latency over time]({name}-spike.svg)\n"));
    }
    std::fs::write(out.join(format!("{name}.md")), md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&rs).map_err(|e| e.to_string())?;
    std::fs::write(out.join(format!("{name}.json")), json).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("wrote {}", out.join(format!("{name}.md")).display());
    Ok(())
}

trait OkOrDefault {
    fn ok_or_default(self) -> Result<f64, String>;
}

impl OkOrDefault for Option<f64> {
    fn ok_or_default(self) -> Result<f64, String> {
        self.ok_or_else(|| "rate needed".to_owned())
    }
}

/// The output benchmarks (gateway fan-out, engine throughput with 0, 1 and
/// 3 sinks) as Markdown on stdout.
fn cmd_outputs(a: &Args) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("wiresignal-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let cfg = SuiteConfig {
        engine: PathBuf::from(a.get("engine").ok_or("--engine <path> needed")?),
        captures: a.all("capture").into_iter().map(PathBuf::from).collect(),
        work: work.clone(),
        point_s: 0.0,
        soak_s: 0.0,
        rates: Vec::new(),
    };
    let gw = outputs::GatewayBench {
        rate: a.num("gw-rate", 1000.0)?,
        seconds: a.num("gw-s", 4.0)?,
        clients: a.num("gw-clients", 100)?,
    };
    let sink_runs: usize = a.num("sink-runs", 5)?;
    let res = (|| -> std::io::Result<()> {
        println!("\n## Gateway fan-out (loadgen outputs)\n");
        println!("{}", outputs::gateway_section(&cfg, &gw)?);
        if cfg.captures.is_empty() {
            println!("\n## Engine throughput with 0, 1 and 3 sinks\n\nskipped: no --capture\n");
            return Ok(());
        }
        let nats = match a.get("nats-server") {
            Some(bin) => match outputs::NatsServer::start(std::path::Path::new(bin)) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("loadgen outputs: {e}; the 3-sink run uses jsonl x3");
                    None
                }
            },
            None => None,
        };
        let url = nats.as_ref().map(outputs::NatsServer::url);
        println!("\n## Engine throughput with 0, 1 and 3 sinks (loadgen outputs)\n");
        println!(
            "{}",
            outputs::sinks_section(&cfg, &cfg.captures, url.as_deref(), sink_runs)?
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    res.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next();
    let res = Args::parse(argv).and_then(|a| match cmd.as_deref() {
        Some("serve") => cmd_serve(&a),
        Some("baseline") => cmd_baseline(&a),
        Some("client") => cmd_client(&a),
        Some("suite") => cmd_suite(&a),
        Some("outputs") => cmd_outputs(&a),
        _ => Err(USAGE.to_owned()),
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
