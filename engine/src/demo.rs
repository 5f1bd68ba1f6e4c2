//! `engine demo` (and `engine` with no arguments): the repo's own market
//! generator (or a capture) served by the local exchange simulator over a
//! loopback WebSocket, consumed by the engine exactly like a live venue, with
//! a live terminal view and a closing latency table.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bench::generator::{GenConfig, Generator, SymbolSpec};
use bench::sim::{SimConfig, Simulator};
use bench::source::{CaptureSource, FrameSource, GeneratorSource};

use crate::app::{Output, RunReport};
use crate::config::{Config, FeedConfig, Speed};
use crate::live::{self, StopWhen};
use crate::pipeline::runtime::Pipeline;
use crate::pipeline::stats::Stage;

/// What the demo serves.
pub enum DemoSource {
    /// The built-in generator (`[demo]` in the config).
    Generator,
    /// Recorded captures, replayed in order.
    Captures(Vec<PathBuf>),
}

fn sim_speed(s: Speed) -> bench::sim::Speed {
    match s {
        Speed::Max => bench::sim::Speed::Max,
        Speed::Factor(f) => bench::sim::Speed::Factor(f),
    }
}

/// Runs the demo; returns the final report.
pub fn run(
    cfg: &Config,
    source: DemoSource,
    output: Output,
    stop: &AtomicBool,
) -> std::io::Result<RunReport> {
    let (src, symbols): (Box<dyn FrameSource + Send>, Vec<String>) = match source {
        DemoSource::Generator => {
            let mut g = GenConfig::new(cfg.demo.seed, cfg.demo.symbols.len().max(1));
            g.symbols = cfg
                .demo
                .symbols
                .iter()
                .enumerate()
                .map(|(i, name)| SymbolSpec {
                    name: name.to_ascii_uppercase(),
                    ..SymbolSpec::preset(i)
                })
                .collect();
            g.duration = Duration::from_secs_f64(cfg.demo.duration_s + 5.0);
            let names = g.symbols.iter().map(|s| s.name.clone()).collect();
            (Box::new(GeneratorSource::new(Generator::new(g))), names)
        }
        DemoSource::Captures(paths) => {
            let mut symbols = Vec::new();
            for p in &paths {
                let r = feeds::capture::CaptureReader::open(p)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                for s in &r.header().symbols {
                    if !symbols.contains(s) {
                        symbols.push(s.to_ascii_uppercase());
                    }
                }
            }
            if symbols.is_empty() {
                return Err(std::io::Error::other(
                    "the capture header names no symbols= to subscribe",
                ));
            }
            (Box::new(CaptureSource::new(paths)), symbols)
        }
    };
    let mut sim_cfg = SimConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    sim_cfg.speed = sim_speed(cfg.demo.speed);
    let sim = Simulator::start(sim_cfg, src)?;
    let addr = sim.local_addr();
    eprintln!("exchange simulator on {addr}; engine connecting over ws://{addr} ...");

    let mut run_cfg = cfg.clone();
    run_cfg.feeds = vec![FeedConfig {
        venue: "binance-spot".into(),
        ws_url: format!("ws://{addr}"),
        rest_url: format!("http://{addr}"),
        symbols,
        snapshot_limit: 1000,
        data_timeout: crate::config::DEFAULT_DATA_TIMEOUT,
        rollover_after: None,
        compression: crate::net::Compression::None,
    }];
    let tty = std::io::stdout().is_terminal();
    let mut view = LiveRender::new(tty);
    let started = Instant::now();
    let duration = Duration::from_secs_f64(cfg.demo.duration_s);
    let report = live::run(
        &run_cfg,
        output,
        StopWhen {
            duration: Some(duration),
            stop,
            done: Some(Box::new(|p: &Pipeline| {
                sim.is_exhausted() && idle_for(p, Duration::from_millis(500))
            })),
            tick: Some(Box::new(move |p: &Pipeline| view.maybe_render(p, started))),
        },
    )?;
    let _ = sim.shutdown();
    Ok(report)
}

fn idle_for(p: &Pipeline, d: Duration) -> bool {
    let now = crate::pipeline::clock::mono_ns() as i64;
    p.registry
        .feeds()
        .iter()
        .all(|(_, f)| now - f.last_frame_mono.get() > d.as_nanos() as i64)
}

struct LiveRender {
    tty: bool,
    last: Option<Instant>,
    last_events: Vec<u64>,
}

impl LiveRender {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            last: None,
            last_events: Vec::new(),
        }
    }

    fn maybe_render(&mut self, p: &Pipeline, started: Instant) {
        let period = if self.tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let now = Instant::now();
        let dt = match self.last {
            Some(t) if now - t < period => return,
            Some(t) => (now - t).as_secs_f64(),
            None => period.as_secs_f64(),
        };
        self.last = Some(now);
        let text = self.render(p, started, dt);
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\x1b[H\x1b[2J{text}");
        } else {
            let _ = write!(out, "{text}");
        }
        let _ = out.flush();
    }

    fn render(&mut self, p: &Pipeline, started: Instant, dt: f64) -> String {
        let view = p.view.view.lock().map(|v| v.clone()).unwrap_or_default();
        let pos = |name: &str| view.outputs.iter().position(|o| o == name);
        let cols = [
            pos("mid"),
            pos("spread_bps"),
            pos("microprice"),
            pos("imbalance_l1"),
        ];
        let mut s = format!(
            "wiresignal demo — {:.0} s — simulator → ws → engine (Ctrl-C to stop)\n\n{:<10} {:>14} {:>11} {:>14} {:>10} {:>9} {:>7}\n",
            started.elapsed().as_secs_f64(),
            "symbol", "mid", "spread bps", "microprice", "imbalance", "msg/s", "synced"
        );
        let instruments = p.registry.instruments();
        self.last_events.resize(instruments.len(), 0);
        for (k, (info, stats)) in instruments.iter().enumerate() {
            let vals = view
                .instruments
                .iter()
                .find(|(i, _)| i.inst == info.inst)
                .map(|(_, v)| v.clone());
            let get = |c: Option<usize>| {
                c.and_then(|c| vals.as_ref().and_then(|v| v.get(c).copied().flatten()))
            };
            let ev = stats.events.get();
            let rate = (ev - self.last_events[k]) as f64 / dt;
            self.last_events[k] = ev;
            let f =
                |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |x| format!("{x:.prec$}"));
            s.push_str(&format!(
                "{:<10} {:>14} {:>11} {:>14} {:>10} {:>9.0} {:>7}\n",
                info.symbol.as_str(),
                f(get(cols[0]), 4),
                f(get(cols[1]), 3),
                f(get(cols[2]), 4),
                f(get(cols[3]), 3),
                rate,
                if stats.synced.get() == 1 { "yes" } else { "no" },
            ));
        }
        let h = p.registry.summary(Stage::FrameToSignal);
        let sink = p.registry.summary(Stage::FrameToSink);
        s.push_str(&format!(
            "\nframe→signal  p50 {:>7.2} µs   p99 {:>7.2} µs   ({} events)\nframe→sink    p50 {:>7.2} µs   p99 {:>7.2} µs\n",
            h.p50() as f64 / 1e3,
            h.p99() as f64 / 1e3,
            h.count,
            sink.p50() as f64 / 1e3,
            sink.p99() as f64 / 1e3,
        ));
        s
    }
}
