//! iceoryx2 sink latency (issue "Signals to bots", same host): the engine's
//! own sink worker (`IoxSink::deliver`, loan → write → send) publishing to
//! a subscriber in **another process** that busy-polls, against an
//! in-process SPSC hop (rtrb, what feeds every sink thread) measured in the
//! same run the same way. Latency = `CLOCK_MONOTONIC` at send (in the
//! record's `ts_ns`) → at receive, so it is comparable across processes.
//!
//! ```text
//! cargo run --release -p engine --example iox_latency -- [rate msg/s] [seconds]
//! ```
//!
//! Phases: paced at `rate` (default 100000/s) for `seconds` (default 3) →
//! p50/p99/p99.9/max; then unpaced (as fast as the publisher can) for one
//! second → the rate the subscriber received and how many it lost (safe
//! overflow: the publisher never waits). Publisher and subscriber are
//! pinned to different cores when there are two. Writes Markdown to stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::sinks::iceoryx2::{subscribe, subscriber_node, IoxSink};
use engine::sinks::{IoxSpec, Item, SinkCounters, Worker};
use hdrhistogram::Histogram;
use records::Record;

/// Flags of the benchmark's records: which phase.
const PACED: u16 = 0;
const FLOOD: u16 = 1;
const END: u16 = 2;

fn mono_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Cores online (not the affinity mask, which pinning narrows).
fn cores() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1)
}

/// Pins the calling thread to `core` when there are two cores or more.
fn pin(core: usize) {
    let n = cores();
    if n > 1 {
        core_affinity::set_for_current(core_affinity::CoreId { id: core % n });
    }
}

fn record(seq: u64, flags: u16) -> Record {
    Record {
        venue: 0,
        instrument: 0,
        signal: 0,
        flags,
        ts_ns: mono_ns(),
        recv_ns: 0,
        seq,
        value: 0.0,
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// What the receiving side measured.
#[derive(Debug, Default)]
struct Measured {
    lat: Vec<u64>, // p50, p99, p99.9, max (ns)
    paced: u64,
    flood_got: u64,
    flood_lost: u64,
    flood_ns: u64,
}

impl Measured {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            self.lat[0],
            self.lat[1],
            self.lat[2],
            self.lat[3],
            self.paced,
            self.flood_got,
            self.flood_lost,
            self.flood_ns
        )
    }

    fn parse(l: &str) -> Option<Self> {
        let v: Vec<u64> = l
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        (v.len() == 8).then(|| Self {
            lat: v[..4].to_vec(),
            paced: v[4],
            flood_got: v[5],
            flood_lost: v[6],
            flood_ns: v[7],
        })
    }
}

/// The receiving loop of both hops: `next` polls once.
fn receive(mut next: impl FnMut() -> Option<Record>) -> Measured {
    let mut h = histogram();
    let mut m = Measured::default();
    let (mut first, mut last_seq, mut t_first, mut t_last) = (true, 0u64, 0i64, 0i64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(r) = next() else {
            std::hint::spin_loop();
            continue;
        };
        let now = mono_ns();
        match r.flags {
            PACED => {
                let _ = h.record((now - r.ts_ns).max(1) as u64);
                m.paced += 1;
            }
            FLOOD => {
                if first {
                    (first, t_first) = (false, now);
                } else if r.seq > last_seq + 1 {
                    m.flood_lost += r.seq - last_seq - 1;
                }
                last_seq = r.seq;
                t_last = now;
                m.flood_got += 1;
            }
            _ => break,
        }
    }
    m.lat = [0.5, 0.99, 0.999]
        .iter()
        .map(|&q| h.value_at_quantile(q))
        .chain([h.max()])
        .collect();
    m.flood_ns = (t_last - t_first).max(0) as u64;
    m
}

/// The sending loop of both hops: paced, then flooding (for one second:
/// returns how many it sent), then the end mark.
fn send(rate: f64, seconds: f64, mut push: impl FnMut(Record)) -> u64 {
    let n = (rate * seconds) as u64;
    let period = 1e9 / rate;
    let t0 = mono_ns();
    for i in 0..n {
        let due = t0 + (i as f64 * period) as i64;
        while mono_ns() < due {
            std::hint::spin_loop();
        }
        push(record(i + 1, PACED));
    }
    let t1 = Instant::now();
    let mut i = 0;
    while t1.elapsed() < Duration::from_secs(1) {
        i += 1;
        push(record(i, FLOOD));
    }
    std::thread::sleep(Duration::from_millis(50));
    push(record(0, END));
    i
}

fn rtrb_hop(rate: f64, seconds: f64) -> (Measured, u64) {
    // The same ring size as a sink's (DEFAULT_RING); the producer spins
    // when it is full, so nothing is lost.
    let (mut tx, mut rx) = rtrb::RingBuffer::<Record>::new(engine::sinks::DEFAULT_RING);
    let consumer = std::thread::spawn(move || {
        pin(1);
        receive(|| rx.pop().ok())
    });
    pin(0);
    let sent = send(rate, seconds, |mut r| loop {
        match tx.push(r) {
            Ok(()) => break,
            Err(rtrb::PushError::Full(back)) => r = back,
        }
    });
    (consumer.join().expect("rtrb consumer"), sent)
}

fn iox_hop(rate: f64, seconds: f64) -> Result<(Measured, u64, u64), Box<dyn std::error::Error>> {
    let service = format!("wiresignal-bench/{}", std::process::id());
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--subscriber", &service])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("subscriber: {line:?}").into());
    }
    pin(0);
    let spec = IoxSpec {
        service: Some(service),
        ..IoxSpec::default()
    };
    let mut sink = IoxSink::create(&spec, &[], "bench")?;
    let c = SinkCounters::default();
    // The subscriber is connected once the publisher has seen it.
    sink.idle(&c);
    let sent = send(rate, seconds, |r| sink.deliver(&[Item::Row(r)], &c));
    line.clear();
    out.read_line(&mut line)?;
    let _ = child.wait();
    let m = Measured::parse(&line).ok_or_else(|| format!("subscriber said {line:?}"))?;
    Ok((m, sent, c.dropped.get()))
}

/// ns per record of `IoxSink::deliver` on batches as the sink thread gets
/// them (1024), nobody subscribed: the sink's own cost.
fn publish_cost() -> Result<f64, Box<dyn std::error::Error>> {
    let spec = IoxSpec {
        service: Some(format!("wiresignal-bench/{}/cost", std::process::id())),
        ..IoxSpec::default()
    };
    let mut sink = IoxSink::create(&spec, &[], "bench")?;
    let c = SinkCounters::default();
    let batch: Vec<Item> = (0..1024).map(|i| Item::Row(record(i, PACED))).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..200 {
            sink.deliver(&batch, &c);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / (200.0 * 1024.0));
    }
    Ok(best)
}

fn subscriber(service: &str) -> Result<(), Box<dyn std::error::Error>> {
    pin(1);
    let node = subscriber_node("wiresignal-bench-subscriber")?;
    let (sub, _catalog) = subscribe(&node, service, &IoxSpec::default())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let failed = AtomicBool::new(false);
    let m = receive(|| match sub.receive() {
        Ok(Some(s)) => Record::decode(s.payload()).ok(),
        Ok(None) => None,
        Err(_) => {
            failed.store(true, Ordering::Relaxed);
            None
        }
    });
    if failed.load(Ordering::Relaxed) {
        eprintln!("iox_latency subscriber: receive errors");
    }
    writeln!(stdout, "{}", m.line())?;
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--subscriber") {
        return subscriber(args.get(1).ok_or("--subscriber SERVICE")?);
    }
    let rate: f64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000.0);
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let (rt, rt_sent) = rtrb_hop(rate, seconds);
    let (iox, iox_sent, dropped) = iox_hop(rate, seconds)?;
    println!(
        "{rate:.0} msg/s paced for {seconds} s, then 1 s unpaced; {} cores, load average {} before",
        cores(),
        load.join(" ")
    );
    println!();
    println!("| hop | p50 µs | p99 µs | p99.9 µs | max µs | paced received | unpaced sent msg/s | unpaced received msg/s | unpaced lost |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, m, sent) in [
        ("rtrb SPSC, thread → thread (baseline)", &rt, rt_sent),
        ("iceoryx2 sink → subscriber process", &iox, iox_sent),
    ] {
        let rate = if m.flood_ns > 0 {
            m.flood_got as f64 * 1e9 / m.flood_ns as f64
        } else {
            0.0
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {sent} | {:.0} | {} |",
            us(m.lat[0]),
            us(m.lat[1]),
            us(m.lat[2]),
            us(m.lat[3]),
            m.paced,
            rate,
            m.flood_lost
        );
    }
    let per_record = publish_cost()?;
    let ratio = |i: usize| iox.lat[i] as f64 / rt.lat[i].max(1) as f64;
    println!();
    println!(
        "iceoryx2 / rtrb: p50 {:.1}x, p99 {:.1}x, p99.9 {:.1}x; sink dropped {dropped}; goal p99 < 10 µs: {}",
        ratio(0),
        ratio(1),
        ratio(2),
        if iox.lat[1] < 10_000 { "met" } else { "NOT met" }
    );
    println!(
        "sink publish cost, batches of 1024 records, no subscriber: {per_record:.0} ns per record (best of 5)"
    );
    Ok(())
}
