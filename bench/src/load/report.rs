//! Markdown report and SVG plots of a suite run.

/// Seconds after which the default windows (≤ 60 s) are full.
const WARM_S: f64 = 65.0;

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::suite::{Lat, RunResult};

/// A per-second series point: (unix s, count, p50, p99, p99.9, max).
type Point = (i64, u64, u64, u64, u64, u64);

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn offered(r: &RunResult) -> String {
    r.offered.map_or_else(|| "max".to_owned(), rate)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "n/a".to_owned()
    }
}

/// Pass/miss verdict of `value` against `target` (`lower` = lower is better).
fn verdict(value: f64, target: f64, lower: bool) -> String {
    let ok = if lower {
        value <= target
    } else {
        value >= target
    };
    if ok {
        "met".to_owned()
    } else if lower {
        format!(
            "**missed** by {:.2}× ({:.1} over)",
            value / target,
            value - target
        )
    } else {
        format!("**missed**: {:.0}% of target", 100.0 * value / target)
    }
}

fn find<'a>(rs: &'a [RunResult], name: &str) -> Option<&'a RunResult> {
    rs.iter().find(|r| r.name == name && r.skipped.is_none())
}

fn lat_row(s: &mut String, r: &RunResult, base: Option<&Lat>) {
    let l = &r.latency;
    let over = base.map_or_else(
        || "—".to_owned(),
        |b| {
            format!(
                "+{} / +{} ({} / {})",
                us(l.p50.saturating_sub(b.p50)),
                us(l.p99.saturating_sub(b.p99)),
                ratio(l.p50 as f64, b.p50 as f64),
                ratio(l.p99 as f64, b.p99 as f64)
            )
        },
    );
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r.name,
        offered(r),
        rate(r.rate),
        us(l.p50),
        us(l.p90),
        us(l.p95),
        us(l.p99),
        us(l.p999),
        us(l.max),
        over,
        us(r.sender_lag.p99),
        r.ring_full_waits
    );
}

/// Renders the markdown report.
#[must_use]
pub fn markdown(rs: &[RunResult], title: &str, env: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n\n{env}\n");
    let _ = writeln!(
        s,
        "Latency = wall clock when the consumer is done with a frame − the frame's \
         scheduled send time, which the load server writes into the Binance `E`/`T` \
         fields (ns). Baseline a: tokio-tungstenite read loop only; baseline b: a + \
         simd-json tape parse; engine: `exchange_to_signal` stage (signals computed). \
         Stamps are intended send times, so sender stalls and back-pressure count \
         against every delayed frame (coordinated-omission free); *sender lag p99* is \
         how late the load server itself was. All µs.\n"
    );

    // Throughput.
    let b_max = find(rs, "b@max").map_or(0.0, |r| r.rate);
    let _ = writeln!(s, "## Throughput\n");
    let _ = writeln!(
        s,
        "| scenario | msg/s | msg per CPU-s | ratio to baseline b (max) | CPU % | notes |\n|---|---:|---:|---:|---:|---|"
    );
    for r in rs.iter().filter(|r| {
        r.offered.is_none() && (r.kind.starts_with("baseline") || r.kind.starts_with("engine"))
            || r.kind == "replay"
    }) {
        if let Some(why) = &r.skipped {
            let _ = writeln!(s, "| {} | — | — | — | — | skipped: {why} |", r.name);
            continue;
        }
        let note = if r.kind == "replay" {
            format!(
                "{} msgs; frame→signal p50 {} p99 {} µs",
                r.frames_received,
                us(r.frame_to_signal.p50),
                us(r.frame_to_signal.p99)
            )
        } else {
            format!("{} frames", r.frames_received)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {note} |",
            r.name,
            rate(r.rate),
            rate(r.msgs_per_cpu_s),
            ratio(r.rate, b_max),
            r.cpu_pct
        );
    }

    // In-process stages.
    let _ = writeln!(
        s,
        "\n## In-process pipeline stages (engine stats, µs: p50 / p99 / p99.9)\n\n\
         `x100` replays run at 100× the capture's pace so the ring does not queue; \
         `max` replays flood the ring, so their frame→signal includes queueing.\n"
    );
    let names = [
        "parse",
        "ring_hop",
        "book_and_signals",
        "frame_to_signal",
        "frame_to_sink",
    ];
    let _ = writeln!(
        s,
        "| scenario | {} |\n|---|{}",
        names.join(" | "),
        "---:|".repeat(names.len())
    );
    for r in rs
        .iter()
        .filter(|r| r.skipped.is_none() && !r.stages.is_empty())
    {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                r.stages.iter().find(|(k, _)| k == n).map_or_else(
                    || "—".to_owned(),
                    |(_, l)| format!("{} / {} / {}", us(l.p50), us(l.p99), us(l.p999)),
                )
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", r.name, cells.join(" | "));
    }

    // Latency vs offered rate.
    let _ = writeln!(s, "\n## Loopback latency vs offered rate\n");
    let _ = writeln!(
        s,
        "| scenario | offered | achieved msg/s | p50 | p90 | p95 | p99 | p99.9 | max | over baseline a p50 / p99 | sender lag p99 | ring-full waits |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    );
    for r in rs.iter().filter(|r| {
        r.offered.is_some()
            && !r.name.starts_with("spike")
            && !r.name.starts_with("soak")
            && !r.name.starts_with("mem")
    }) {
        if let Some(why) = &r.skipped {
            let _ = writeln!(
                s,
                "| {} | {} | skipped: {why} |||||||||| ",
                r.name,
                offered(r)
            );
            continue;
        }
        let base = rs
            .iter()
            .find(|b| b.kind == "baseline-a" && b.offered == r.offered && b.skipped.is_none())
            .map(|b| &b.latency);
        lat_row(&mut s, r, if r.kind == "baseline-a" { None } else { base });
    }

    // CPU at fixed rates, beside the same rate's baseline a.
    let _ = writeln!(
        s,
        "\n## CPU at fixed offered rates\n\nThe consumer's CPU over the send window \
         (all its threads) and its context switches (wake-ups) per message; ratio: \
         CPU over baseline a's at the same rate in this run.\n\n\
         | scenario | offered | msg/s | CPU % of a core | msg per CPU-s | CPU over baseline a | context switches per msg |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for r in rs
        .iter()
        .filter(|r| r.offered.is_some() && r.skipped.is_none() && r.cpu_pct > 0.0)
    {
        let base = rs
            .iter()
            .find(|b| b.kind == "baseline-a" && b.offered == r.offered && b.skipped.is_none())
            .filter(|b| b.cpu_pct > 0.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {} | {} | {:.2} |",
            r.name,
            offered(r),
            rate(r.rate),
            r.cpu_pct,
            rate(r.msgs_per_cpu_s),
            base.map_or("—".to_owned(), |b| format!(
                "{:.2}×",
                r.cpu_pct / b.cpu_pct
            )),
            r.switches_per_msg
        );
    }

    // Spike, soak, memory.
    let _ = writeln!(s, "\n## Spike, soak, memory\n");
    let _ = writeln!(
        s,
        "| scenario | offered | achieved msg/s | p50 | p90 | p95 | p99 | p99.9 | max | over baseline a p50 / p99 | sender lag p99 | ring-full waits |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    );
    let a10 = rs
        .iter()
        .find(|b| b.kind == "baseline-a" && b.offered == Some(10_000.0) && b.skipped.is_none());
    for r in rs.iter().filter(|r| {
        r.name.starts_with("spike") || r.name.starts_with("soak") || r.name.starts_with("mem")
    }) {
        if let Some(why) = &r.skipped {
            let _ = writeln!(
                s,
                "| {} | {} | skipped: {why} |||||||||| ",
                r.name,
                offered(r)
            );
            continue;
        }
        lat_row(&mut s, r, a10.map(|b| &b.latency));
    }
    for r in rs
        .iter()
        .filter(|r| r.name.starts_with("soak") || r.name.starts_with("mem"))
    {
        if r.skipped.is_some() {
            continue;
        }
        let first = r
            .rss_series
            .iter()
            .find(|(t, _)| *t >= 5.0)
            .or(r.rss_series.first());
        let last = r.rss_series.last();
        // The default set's longest window is 60 s: until it is full, window
        // rings legitimately grow. Flatness is judged after that.
        let warm = r.rss_series.iter().find(|(t, _)| *t >= WARM_S);
        let flat = match (warm, last) {
            (Some(w), Some(l)) if l.0 > w.0 + 10.0 => format!(
                " After warm-up ({WARM_S:.0} s, windows full) {:.1} MB → end {:.1} MB: {:+.1} MB over {:.0} s.",
                w.1 as f64 / 1e6,
                l.1 as f64 / 1e6,
                (l.1 as f64 - w.1 as f64) / 1e6,
                l.0 - w.0
            ),
            _ => format!(" (Run longer than {WARM_S:.0} s + 10 s to judge flatness after the 60 s windows fill.)"),
        };
        let _ = writeln!(
            s,
            "\n{}: RSS after 5 s {:.1} MB, at end {:.1} MB, peak (VmHWM via getrusage) {:.1} MB; \
             engine CPU {:.1} % of a core; errors (parse + gaps) {}.{flat}",
            r.name,
            first.map_or(0.0, |x| x.1 as f64 / 1e6),
            last.map_or(0.0, |x| x.1 as f64 / 1e6),
            r.max_rss as f64 / 1e6,
            r.cpu_pct,
            r.errors
        );
    }

    // Targets.
    let _ = writeln!(
        s,
        "\n## Targets\n\n| target | measured | verdict |\n|---|---:|---|"
    );
    let mut t = |name: &str, measured: Option<f64>, unit: &str, target: f64, lower: bool| {
        let (m, v) = match measured {
            Some(m) => (format!("{m:.2} {unit}"), verdict(m, target, lower)),
            None => ("—".to_owned(), "not measured (scenario skipped)".to_owned()),
        };
        let _ = writeln!(s, "| {name} | {m} | {v} |");
    };
    let replay = rs
        .iter()
        .filter(|r| r.kind == "replay" && r.skipped.is_none())
        .map(|r| r.msgs_per_cpu_s)
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    t(
        "replay ≥ 1 M msg/s/core (msg per CPU-second, best capture)",
        replay.map(|v| v / 1e6),
        "M",
        1.0,
        false,
    );
    let ep = |n: &str| find(rs, n).map(|r| r.latency.p99 as f64 / 1000.0);
    t(
        "loopback p99 ≤ 100 µs, epoll @10k",
        ep("engine-epoll@10k"),
        "µs",
        100.0,
        true,
    );
    t(
        "loopback p99 ≤ 100 µs, epoll @100k",
        ep("engine-epoll@100k"),
        "µs",
        100.0,
        true,
    );
    t(
        "loopback p99 ≤ 50 µs, busy-poll @10k",
        ep("engine-busy_poll@10k"),
        "µs",
        50.0,
        true,
    );
    t(
        "loopback p99 ≤ 50 µs, busy-poll @100k",
        ep("engine-busy_poll@100k"),
        "µs",
        50.0,
        true,
    );
    for (label, name, bound) in [
        (
            "loopback p99 ≤ 100 µs, epoll + inline signals @10k",
            "engine-epoll+inline@10k",
            100.0,
        ),
        (
            "loopback p99 ≤ 100 µs, epoll + inline signals @100k",
            "engine-epoll+inline@100k",
            100.0,
        ),
        (
            "loopback p99 ≤ 50 µs, busy-poll + inline signals @10k",
            "engine-busy_poll+inline@10k",
            50.0,
        ),
        (
            "loopback p99 ≤ 50 µs, busy-poll + inline signals @100k",
            "engine-busy_poll+inline@100k",
            50.0,
        ),
    ] {
        t(label, ep(name), "µs", bound, true);
    }
    let bp50 = |n: &str| find(rs, n).map(|r| r.latency.p50 as f64 / 1000.0);
    for (label, name) in [
        (
            "loopback p50 ≤ 15 µs, busy-poll + inline signals @10k",
            "engine-busy_poll+inline@10k",
        ),
        (
            "loopback p50 ≤ 15 µs, busy-poll + inline signals @100k",
            "engine-busy_poll+inline@100k",
        ),
    ] {
        t(label, bp50(name), "µs", 15.0, true);
    }
    t(
        "loopback p50 ≤ 15 µs, busy-poll @10k",
        bp50("engine-busy_poll@10k"),
        "µs",
        15.0,
        true,
    );
    t(
        "loopback p50 ≤ 15 µs, busy-poll @100k",
        bp50("engine-busy_poll@100k"),
        "µs",
        15.0,
        true,
    );
    let paced =
        |r: &&RunResult| r.kind == "replay" && r.name.ends_with("-x100") && r.skipped.is_none();
    // Prefer the run-to-completion (inline) replay: no thread wake-up in the path.
    let rp = rs
        .iter()
        .filter(paced)
        .find(|r| r.name.contains("+inline"))
        .or_else(|| rs.iter().find(paced));
    t(
        "in-process frame→signal p50 ≤ 1 µs (paced replay x100)",
        rp.map(|r| r.frame_to_signal.p50 as f64 / 1000.0),
        "µs",
        1.0,
        true,
    );
    t(
        "in-process frame→signal p99 ≤ 5 µs (paced replay x100)",
        rp.map(|r| r.frame_to_signal.p99 as f64 / 1000.0),
        "µs",
        5.0,
        true,
    );
    t(
        "RSS ≤ 64 MB with 100 instruments × 1000 levels",
        find(rs, "mem-100x1000").map(|r| r.max_rss as f64 / 1e6),
        "MB",
        64.0,
        true,
    );
    let cpu = match (find(rs, "engine-epoll@10k"), a10) {
        (Some(e), Some(a)) if a.cpu_pct > 0.0 => Some(e.cpu_pct / a.cpu_pct),
        _ => None,
    };
    t(
        "CPU @10k within 1.25× of baseline a (engine-epoll@10k / a@10k)",
        cpu,
        "×",
        1.25,
        true,
    );
    for placement in ["inline", "threads"] {
        let name = format!("engine-epoll+{placement}@10k");
        let ratio = match (find(rs, &name), a10) {
            (Some(e), Some(a)) if a.cpu_pct > 0.0 => Some(e.cpu_pct / a.cpu_pct),
            _ => None,
        };
        t(
            &format!("CPU @10k within 1.25× of baseline a ({name} / a@10k)"),
            ratio,
            "×",
            1.25,
            true,
        );
    }
    s
}

fn log_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    (lo.max(1e-3) * 0.8)..(hi.max(lo * 1.1) * 1.25)
}

/// Latency percentiles vs offered rate (log-log), one line per consumer.
///
/// # Errors
/// On a drawing or file error.
pub fn plot_latency_vs_rate(rs: &[RunResult], path: &Path) -> Result<(), String> {
    let kinds = [
        "baseline-a",
        "baseline-b",
        "engine-epoll",
        "engine-busy_poll",
        "engine-epoll+inline",
        "engine-epoll+threads",
        "engine-busy_poll+inline",
    ];
    let pts = |k: &str, q: fn(&Lat) -> u64| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = rs
            .iter()
            .filter(|r| {
                r.kind == k
                    && r.skipped.is_none()
                    && !r.name.starts_with("spike")
                    && !r.name.starts_with("soak")
                    && !r.name.starts_with("mem")
            })
            .filter_map(|r| Some((r.offered?, q(&r.latency) as f64 / 1000.0)))
            .filter(|p| p.1 > 0.0)
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let all: Vec<(f64, f64)> = kinds
        .iter()
        .flat_map(|k| [pts(k, |l| l.p50), pts(k, |l| l.p999)].concat())
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let (xmin, xmax) = all
        .iter()
        .fold((f64::MAX, 0f64), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (ymin, ymax) = all
        .iter()
        .fold((f64::MAX, 0f64), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Loopback latency vs offered rate (stamp → done)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            log_range(xmin, xmax).log_scale(),
            log_range(ymin, ymax).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("offered msg/s")
        .y_desc("latency µs")
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, GREEN, RED, MAGENTA];
    for (k, c) in kinds.iter().zip(colors) {
        for (q, name, f) in [
            (0usize, "p50", (|l: &Lat| l.p50) as fn(&Lat) -> u64),
            (1, "p99", |l: &Lat| l.p99),
            (2, "p99.9", |l: &Lat| l.p999),
        ] {
            let p = pts(k, f);
            if p.is_empty() {
                continue;
            }
            let style = ShapeStyle::from(&c).stroke_width(3 - q as u32);
            chart
                .draw_series(LineSeries::new(p.clone(), style))
                .map_err(|e| e.to_string())?
                .label(format!("{k} {name}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(p.into_iter().map(|xy| Circle::new(xy, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Per-second latency (p50/p99/max) and RSS over a run.
///
/// # Errors
/// On a drawing or file error.
pub fn plot_over_time(r: &RunResult, path: &Path) -> Result<(), String> {
    let Some(t0) = r.latency_series.first().map(|p| p.0) else {
        return Ok(());
    };
    let series = |f: fn(&Point) -> u64| -> Vec<(f64, f64)> {
        r.latency_series
            .iter()
            .map(|p| ((p.0 - t0) as f64, (f(p) as f64 / 1000.0).max(0.1)))
            .collect()
    };
    let maxs = series(|p| p.5);
    let xmax = maxs.last().map_or(1.0, |p| p.0).max(1.0);
    let ymax = maxs.iter().map(|p| p.1).fold(1.0, f64::max);
    let ymin = series(|p| p.2).iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(440);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{}: wire→signal latency per second", r.name),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, log_range(ymin, ymax).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("s")
        .y_desc("µs")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, c, f) in [
        ("p50", BLUE, (|p: &Point| p.2) as fn(&_) -> u64),
        ("p99", RED, |p| p.3),
        ("max", BLACK, |p| p.5),
    ] {
        chart
            .draw_series(LineSeries::new(series(f), &c))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    let rss: Vec<(f64, f64)> = r
        .rss_series
        .iter()
        .map(|(t, b)| (*t, *b as f64 / 1e6))
        .collect();
    if !rss.is_empty() {
        let rmax = rss.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
        let txmax = rss.last().map_or(1.0, |p| p.0).max(1.0);
        let mut c2 = ChartBuilder::on(&bottom)
            .caption(
                "engine RSS (VmRSS, sampled every second)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..txmax, 0.0..rmax)
            .map_err(|e| e.to_string())?;
        c2.configure_mesh()
            .x_desc("s since engine start")
            .y_desc("MB")
            .draw()
            .map_err(|e| e.to_string())?;
        c2.draw_series(LineSeries::new(rss, &GREEN))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
