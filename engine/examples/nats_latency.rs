//! NATS sink latency over loopback (issue "Signals to bots"): rows through
//! the engine's own sink path (`sinks::open` with a `kind = "nats"` spec:
//! the fan-out ring, the sink thread rendering the JSON row or encoding the
//! record, async-nats publishing and flushing per batch) to a real
//! nats-server on a free 127.0.0.1 port, and an async-nats subscriber in the
//! same process. Baseline in the same run: a raw async-nats publisher (the
//! same payload and header per message, the client's own write batching,
//! one flush at the end) to the same subscriber. Latency = the row's `recv_ns`, stamped
//! with `CLOCK_REALTIME` as the row is handed over → the same clock when the
//! subscriber has the message. Unpaced, the latency is the queue's (the
//! subscriber falls behind); the rate is the figure that counts there.
//!
//! ```text
//! cargo run --release -p engine --example nats_latency -- [seconds per phase] [rates]
//! ```
//!
//! Phases per (path, format): paced at each rate (default `10000,100000`)
//! for `seconds` (default 1), then unpaced for `seconds`. The nats-server is
//! `$NATS_SERVER` or what `scripts/nats-server.sh` finds; it is stopped at
//! the end. Writes Markdown to stdout.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, Subject};
use bench::load::outputs::{json_int, lat_cells, loadavg, ratio, NatsServer};
use bench::load::suite::Lat;
use bench::load::{histogram, unix_ns};
use bytes::Bytes;
use engine::pipeline::processor::SinkMsg;
use engine::sinks::{self, Format, NatsSpec, SinkKind, SinkSpec};
use feeds::event::{InstrumentId, InstrumentInfo, Scale, Symbol};
use futures_util::StreamExt;
use records::Record;
use signals::OutputId;

const SUBJECT: &str = "wiresignal.binance-spot.BTCUSDT.mid";

/// One phase: paced at `rate`, or unpaced (`None`), for `seconds`.
#[derive(Clone, Copy)]
struct Phase {
    rate: Option<f64>,
    seconds: f64,
}

/// Hands out sequence numbers at their due time (paced) or at once until
/// the phase is over (unpaced). Waiting yields the core when there is time.
struct Pacer {
    phase: Phase,
    t0: Instant,
    i: u64,
}

impl Pacer {
    fn new(phase: Phase) -> Self {
        Self {
            phase,
            t0: Instant::now(),
            i: 0,
        }
    }

    fn next(&mut self) -> Option<u64> {
        match self.phase.rate {
            Some(rate) => {
                if self.i as f64 >= rate * self.phase.seconds {
                    return None;
                }
                let due = self.t0 + Duration::from_secs_f64(self.i as f64 / rate);
                loop {
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    if due - now > Duration::from_micros(50) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
            None if self.t0.elapsed().as_secs_f64() >= self.phase.seconds => return None,
            None => {}
        }
        self.i += 1;
        Some(self.i)
    }
}

/// What the subscriber saw.
#[derive(Default)]
struct Seen {
    got: u64,
    lat: Lat,
    /// Messages per second between the first and the last.
    rate: f64,
    /// Sequence numbers skipped.
    holes: u64,
}

/// A subscriber to `wiresignal.binance-spot.>` on its own thread; it stops
/// once it has `expected` messages, or after a second without any once
/// `expected` is set, or after 60 s.
struct Subscriber {
    expected: Arc<AtomicU64>,
    thread: JoinHandle<io::Result<Seen>>,
}

impl Subscriber {
    fn start(url: &str, format: Format) -> io::Result<Self> {
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let (exp, url) = (expected.clone(), url.to_owned());
        let thread = std::thread::spawn(move || -> io::Result<Seen> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let ready = async {
                    let client = async_nats::ConnectOptions::new()
                        .subscription_capacity(1 << 20)
                        .connect(url.as_str())
                        .await
                        .map_err(io::Error::other)?;
                    let sub = client
                        .subscribe("wiresignal.binance-spot.>")
                        .await
                        .map_err(io::Error::other)?;
                    client.flush().await.map_err(io::Error::other)?;
                    Ok::<_, io::Error>((client, sub))
                }
                .await;
                let (_client, mut sub) = match ready {
                    Ok(x) => {
                        let _ = ready_tx.send(Ok(()));
                        x
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::other(e.to_string())));
                        return Err(e);
                    }
                };
                let mut h = histogram();
                let (mut got, mut holes, mut last_seq) = (0u64, 0u64, 0u64);
                let (mut first, mut last) = (0i64, 0i64);
                let mut idle_since = Instant::now();
                let deadline = Instant::now() + Duration::from_secs(60);
                while got < exp.load(Ordering::Acquire) && Instant::now() < deadline {
                    let m = match tokio::time::timeout(Duration::from_millis(100), sub.next()).await
                    {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(_) => {
                            if exp.load(Ordering::Acquire) != u64::MAX
                                && idle_since.elapsed() > Duration::from_secs(1)
                            {
                                break;
                            }
                            continue;
                        }
                    };
                    let now = unix_ns();
                    idle_since = Instant::now();
                    let stamp = match format {
                        Format::Binary => Record::decode(&m.payload).ok().map(|r| r.recv_ns),
                        Format::Json => json_int(&m.payload, "recv_ns"),
                    };
                    if let Some(s) = stamp {
                        let _ = h.record((now - s).max(1) as u64);
                    }
                    let seq = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(sinks::NATS_SEQ_HEADER))
                        .and_then(|v| v.as_str().parse::<u64>().ok());
                    if let Some(seq) = seq {
                        holes += seq.saturating_sub(last_seq + 1);
                        last_seq = seq;
                    }
                    if got == 0 {
                        first = now;
                    }
                    last = now;
                    got += 1;
                }
                Ok(Seen {
                    got,
                    lat: Lat::of(&h),
                    rate: if last > first {
                        got.saturating_sub(1) as f64 * 1e9 / (last - first) as f64
                    } else {
                        0.0
                    },
                    holes,
                })
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| io::Error::other("subscriber not ready in 10 s"))??;
        Ok(Self { expected, thread })
    }

    fn finish(self, expected: u64) -> io::Result<Seen> {
        self.expected.store(expected, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| io::Error::other("subscriber panicked"))?
    }
}

/// One measured phase.
struct Measured {
    path: &'static str,
    format: Format,
    phase: Phase,
    sent: u64,
    /// Rows the sink replaced (conflated) or could not publish (dropped).
    lost_in_sink: u64,
    seen: Seen,
}

fn outputs() -> Arc<[String]> {
    vec!["mid".to_owned()].into()
}

fn btcusdt() -> io::Result<InstrumentInfo> {
    let (venue, _) =
        feeds::venue::venue_by_name("binance-spot").ok_or(io::Error::other("no binance-spot"))?;
    Ok(InstrumentInfo {
        inst: InstrumentId(0),
        venue,
        symbol: Symbol::new("BTCUSDT").ok_or(io::Error::other("symbol"))?,
        scale: Scale::default(),
        wire: Scale::default(),
    })
}

/// Rows through the engine's NATS sink (`sinks::open`).
fn sink_phase(url: &str, format: Format, phase: Phase) -> io::Result<Measured> {
    let sub = Subscriber::start(url, format)?;
    let spec = SinkSpec {
        name: "nats".into(),
        ring_capacity: sinks::DEFAULT_RING,
        kind: SinkKind::Nats(NatsSpec {
            url: url.to_owned(),
            format,
            stream: None,
            max_age: Duration::from_secs(3600),
        }),
    };
    let outputs = outputs();
    let (mut collectors, counters) = sinks::open(&[spec], &outputs, "bench")?;
    let (Some(mut fan), Some((_, c))) = (collectors.pop(), counters.into_iter().next()) else {
        return Err(io::Error::other("no sink opened"));
    };
    fan.write(&SinkMsg::Instrument(btcusdt()?), &outputs)?;
    let mut pacer = Pacer::new(phase);
    let mut sent = 0;
    while let Some(seq) = pacer.next() {
        let stamp = unix_ns();
        fan.write(
            &SinkMsg::Row {
                ts_ns: stamp,
                recv_ns: stamp,
                inst: InstrumentId(0),
                out: OutputId(0),
                value: seq as f64,
                t_frame: 0,
            },
            &outputs,
        )?;
        sent = seq;
    }
    fan.finish(&outputs)?;
    let seen = sub.finish(c.rows.get())?;
    Ok(Measured {
        path: "engine NATS sink",
        format,
        phase,
        sent,
        lost_in_sink: c.conflated.get() + c.dropped.get(),
        seen,
    })
}

/// The same payloads published with async-nats directly (the baseline).
fn raw_phase(url: &str, format: Format, phase: Phase) -> io::Result<Measured> {
    let sub = Subscriber::start(url, format)?;
    // As the sink: one runtime worker drives the connection.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sent = rt.block_on(async {
        let client = async_nats::connect(url).await.map_err(io::Error::other)?;
        let subject = Subject::from(SUBJECT);
        let mut pacer = Pacer::new(phase);
        let mut sent = 0u64;
        while let Some(seq) = pacer.next() {
            let stamp = unix_ns();
            let value = seq as f64;
            let payload = match format {
                Format::Json => Bytes::from(format!(
                    r#"{{"ts_ns":{stamp},"recv_ns":{stamp},"venue":"binance-spot","symbol":"BTCUSDT","signal":"mid","value":{}}}"#,
                    ryu::Buffer::new().format(value)
                )),
                Format::Binary => Bytes::copy_from_slice(
                    &Record {
                        venue: 0,
                        instrument: 0,
                        signal: 0,
                        flags: 0,
                        ts_ns: stamp,
                        recv_ns: stamp,
                        seq,
                        value,
                    }
                    .encode(),
                ),
            };
            let mut headers = HeaderMap::new();
            headers.insert(sinks::NATS_SEQ_HEADER, itoa::Buffer::new().format(seq));
            client
                .publish_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(io::Error::other)?;
            sent = seq;
        }
        client.flush().await.map_err(io::Error::other)?;
        Ok::<_, io::Error>(sent)
    })?;
    let seen = sub.finish(sent)?;
    Ok(Measured {
        path: "raw async-nats (baseline)",
        format,
        phase,
        sent,
        lost_in_sink: 0,
        seen,
    })
}

fn fmt_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Binary => "binary",
    }
}

fn offered(p: Phase) -> String {
    p.rate
        .map_or_else(|| "unpaced".to_owned(), |r| format!("{r:.0}/s"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let rates: Vec<f64> = args
        .get(1)
        .map_or("10000,100000", String::as_str)
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let before = loadavg();
    let server = NatsServer::start(&NatsServer::binary()?)?;
    let url = server.url();
    let phases: Vec<Phase> = rates
        .iter()
        .map(|&r| Phase {
            rate: Some(r),
            seconds,
        })
        .chain([Phase {
            rate: None,
            seconds,
        }])
        .collect();
    let mut all = Vec::new();
    for format in [Format::Json, Format::Binary] {
        for &phase in &phases {
            all.push(raw_phase(&url, format, phase)?);
            all.push(sink_phase(&url, format, phase)?);
        }
    }
    drop(server);
    println!(
        "nats-server on 127.0.0.1, subscriber in the same process; {seconds} s per phase; load average {before} before, {} after",
        loadavg()
    );
    println!();
    println!("| path | format | offered | sent | received | conflated+dropped in sink | seq holes | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | received msg/s |");
    println!(
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for m in &all {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            m.path,
            fmt_name(m.format),
            offered(m.phase),
            m.sent,
            m.seen.got,
            m.lost_in_sink,
            m.seen.holes,
            lat_cells(&m.seen.lat),
            m.seen.rate
        );
    }
    println!();
    for pair in all.chunks(2) {
        let [raw, sink] = pair else { continue };
        let r = |f: fn(&Lat) -> u64| ratio(f(&sink.seen.lat) as f64, f(&raw.seen.lat) as f64);
        if sink.phase.rate.is_none() {
            println!(
                "- {} unpaced: received msg/s sink / raw {} (latency there is the subscriber's queue)",
                fmt_name(sink.format),
                ratio(sink.seen.rate, raw.seen.rate)
            );
            continue;
        }
        println!(
            "- {} {}: sink / raw p50 {}, p99 {}, p99.9 {}; received msg/s {}",
            fmt_name(sink.format),
            offered(sink.phase),
            r(|l| l.p50),
            r(|l| l.p99),
            r(|l| l.p999),
            ratio(sink.seen.rate, raw.seen.rate)
        );
    }
    Ok(())
}
