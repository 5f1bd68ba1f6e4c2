//! CI perf smoke (about a second): the in-process hot path over a real
//! capture — venue parse, normalization, book, the default signal set, JSONL
//! formatting — must
//!
//! 1. allocate nothing per message after warm-up (counting global allocator,
//!    counted on this thread only, over the last 80% of the frames), and
//! 2. cost at most [`MAX_RATIO`]× a bare simd-json tape parse of the same
//!    frames (median of 5 interleaved repetitions each), a ratio, so the
//!    check does not depend on the machine's speed.
//!
//! A deliberate `Vec::with_capacity(1)` or a 1 µs sleep per frame in the
//! processor fails it. Its own test binary: the global allocator is replaced.

mod common;

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::app::{make_adapter, processor_factory};
use engine::config::Config;
use engine::pipeline::processor::{Emit, NoResync, Processor, SinkMsg};
use engine::pipeline::sink::JsonlWriter;
use engine::pipeline::stats::Registry;
use feeds::capture::CaptureReader;
use feeds::Event;
use simd_json::{Buffers, Tape};

/// Hot path time / bare tape parse time. Measured in the test profile on 2
/// shared, loaded cores (41k frames): 5.0–6.7×, typically ~5.5× (tape parse
/// ~1.0–2.1 M msg/s, hot path ~170–330 k msg/s). A 1 µs sleep per event made
/// it 115×; a per-event `Vec::with_capacity(1)` is caught by the count.
const MAX_RATIO: f64 = 15.0;
/// Allowed allocations per message after warm-up (zero in practice).
const MAX_ALLOCS_PER_MSG: f64 = 0.001;
const REPS: usize = 5;

/// Counts only on the measuring thread (libtest's own threads may allocate).
#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// The capture in memory: one byte buffer, `(recv_ns, start, end)` per frame.
struct Capture {
    symbols: Vec<String>,
    data: Vec<u8>,
    frames: Vec<(i64, usize, usize)>,
}

fn load(path: &Path) -> Capture {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let symbols = r.header().symbols.clone();
    let (mut data, mut frames) = (Vec::new(), Vec::new());
    while let Some(rec) = r.next_record() {
        let Ok(rec) = rec else { continue };
        let start = data.len();
        data.extend_from_slice(rec.frame);
        frames.push((rec.recv_ns, start, data.len()));
    }
    Capture {
        symbols,
        data,
        frames,
    }
}

/// Counts the JSONL bytes, keeps none.
struct ByteCount(u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The processor's row sink: the sink thread's JSONL formatting, inline.
struct Out(JsonlWriter<ByteCount>);

impl Emit for Out {
    #[inline]
    fn emit(&mut self, m: SinkMsg) {
        let _ = self.0.write(&m);
    }
}

struct HotRun {
    elapsed: Duration,
    rows: u64,
    events: u64,
    parse_errors: u64,
    /// Allocations while counting, and the frames counted.
    allocs: u64,
    counted: usize,
}

/// One pass of the hot path with fresh state; allocations are counted from
/// frame `count_from` on.
fn hot_pass(cap: &Capture, count_from: usize) -> HotRun {
    let mut cfg = Config::default();
    cfg.engine.pin_cores = Some(false);
    let ids = Arc::new(AtomicU32::new(0));
    let mut adapter = make_adapter(&cfg, &cfg.engine.venue, &ids, None).unwrap();
    adapter.set_capture_symbols(&cap.symbols);
    let outputs: Arc<[String]> = Processor::<Out>::output_names(&cfg.signals).into();
    let mut proc = Processor::new(
        processor_factory(&cfg, false)(),
        Registry::new(),
        Box::new(NoResync),
        Out(JsonlWriter::new(ByteCount(0), outputs)),
    );
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut events: Vec<Event> = Vec::with_capacity(8192);
    let (mut n_events, mut parse_errors) = (0u64, 0u64);

    let t0 = Instant::now();
    for (i, &(recv_ns, s, e)) in cap.frames.iter().enumerate() {
        if i == count_from {
            alloc_count::start_here();
        }
        buf.clear();
        buf.extend_from_slice(&cap.data[s..e]);
        events.clear();
        if adapter.parse(recv_ns, &mut buf, &mut events).is_err() {
            parse_errors += 1;
        }
        for ev in &events {
            proc.on_event(ev, i as u64);
        }
        n_events += events.len() as u64;
    }
    let elapsed = t0.elapsed();
    let allocs = alloc_count::stop_here();
    HotRun {
        elapsed,
        rows: proc.emitter().0.rows,
        events: n_events,
        parse_errors,
        allocs: allocs.unwrap_or(0),
        counted: cap.frames.len().saturating_sub(count_from),
    }
}

/// The floor: copy each frame into a reused buffer and build its simd-json
/// tape with reused buffers (what the adapter does before reading fields).
fn baseline_pass(cap: &Capture) -> (Duration, u64) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut buffers = Buffers::new(128 * 1024);
    let mut kept: Tape<'static> = Tape(Vec::with_capacity(16 * 1024));
    let mut nodes = 0u64;
    let t0 = Instant::now();
    for &(_, s, e) in &cap.frames {
        buf.clear();
        buf.extend_from_slice(&cap.data[s..e]);
        let mut tape: Tape<'_> = std::mem::replace(&mut kept, Tape(Vec::new())).reset();
        if simd_json::fill_tape(&mut buf, &mut buffers, &mut tape).is_ok() {
            nodes += tape.0.len() as u64;
        }
        kept = tape.reset();
    }
    (t0.elapsed(), std::hint::black_box(nodes))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn hot_path_allocates_nothing_and_stays_within_a_ratio_of_the_parse() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let cap = load(&shared.join("data/binance-spot/btcusdt_20240808.txt.gz"));
    let n = cap.frames.len();
    assert!(n > 10_000, "capture too small: {n} frames");

    // The counter works on this thread.
    let probe = alloc_count::on_this_thread(|| std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(probe.1, 1, "counting allocator");

    // 1. Allocations: warm up on the first 20% of the frames, count the rest.
    let first = hot_pass(&cap, n / 5);
    let per_msg = first.allocs as f64 / first.counted as f64;
    println!(
        "perf_smoke: {n} frames, {} events, {} rows, {} parse errors",
        first.events, first.rows, first.parse_errors
    );
    println!(
        "perf_smoke: allocations after warm-up: {} over {} frames = {per_msg:.6}/msg (limit {MAX_ALLOCS_PER_MSG})",
        first.allocs, first.counted
    );
    assert!(first.rows > 0 && first.events > first.rows / 100);

    // 2. Throughput ratio, interleaved repetitions.
    let (mut base, mut hot) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        base.push(baseline_pass(&cap).0);
        let run = hot_pass(&cap, usize::MAX);
        assert_eq!(run.rows, first.rows, "deterministic");
        hot.push(run.elapsed);
    }
    let (b, h) = (median(base), median(hot));
    let ratio = h.as_secs_f64() / b.as_secs_f64();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "perf_smoke: tape parse {:.0} msg/s ({b:?}), hot path {:.0} msg/s ({h:?}), ratio {ratio:.2} (limit {MAX_RATIO})",
        rate(b),
        rate(h)
    );

    assert!(
        per_msg <= MAX_ALLOCS_PER_MSG,
        "{} allocations over {} frames after warm-up ({per_msg:.4}/msg): something allocates per message",
        first.allocs,
        first.counted
    );
    assert!(
        ratio <= MAX_RATIO,
        "hot path is {ratio:.2}x the bare parse (limit {MAX_RATIO}): a per-message slowdown (sleep, syscall, lock, allocation) crept in"
    );
}

/// The overflow stage (`overload = "merge"`) allocates nothing per message
/// either, while its ring is full most of the time: the capture's events go
/// through a real 256-slot ring whose consumer (on this thread) takes only a
/// few slots per frame, so diffs merge and quotes conflate throughout.
#[test]
fn overflow_stage_allocates_nothing_while_the_ring_is_full() {
    use engine::pipeline::overload::{Stage, StageLimits};
    use engine::pipeline::ring::{ring, EventTx, Slot, Waiter};
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let cap = load(&shared.join("data/binance-spot/btcusdt_20240808.txt.gz"));
    let n = cap.frames.len();
    let mut cfg = Config::default();
    cfg.engine.pin_cores = Some(false);
    let ids = Arc::new(AtomicU32::new(0));
    let mut adapter = make_adapter(&cfg, &cfg.engine.venue, &ids, None).unwrap();
    adapter.set_capture_symbols(&cap.symbols);
    let registry = Registry::new();
    let (tx, mut rx) = ring::<Slot>(256, Arc::new(Waiter::default()), Arc::default());
    let stage = Stage::new(
        StageLimits::for_ring(256, 1 << 16),
        registry.overload.clone(),
    );
    let mut tx = EventTx::with_stages(vec![tx], vec![stage]);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut events: Vec<Event> = Vec::with_capacity(8192);
    let (mut trades_in, mut trades_out) = (0u64, 0u64);
    for (i, &(recv_ns, s, e)) in cap.frames.iter().enumerate() {
        if i == n / 5 {
            alloc_count::start_here();
        }
        buf.clear();
        buf.extend_from_slice(&cap.data[s..e]);
        events.clear();
        let _ = adapter.parse(recv_ns, &mut buf, &mut events);
        trades_in += events
            .iter()
            .filter(|e| matches!(e, Event::Trade(_)))
            .count() as u64;
        tx.send_frame(&events, i as u64, i as u64);
        // A slow consumer: two slots per frame, catching up every 50
        // frames (on this thread, so the stage must never be full: a full
        // stage would wait for this very thread).
        let take = if i % 50 == 0 { usize::MAX } else { 2 };
        for _ in 0..take {
            match rx.rx.pop() {
                Ok(slot) => trades_out += u64::from(matches!(slot.ev, Event::Trade(_))),
                Err(_) => break,
            }
        }
        tx.drain_staged();
    }
    let allocs = alloc_count::stop_here().unwrap_or(0);
    let o = &registry.overload;
    let merged = o.diffs_merged.load(Ordering::Relaxed);
    let conflated = o.quotes_conflated.load(Ordering::Relaxed);
    println!(
        "overflow stage: {allocs} allocations after warm-up over {} frames; {merged} diffs merged, {conflated} quotes conflated",
        n - n / 5
    );
    assert!(merged > 0 && conflated > 0, "the stage was not exercised");
    assert_eq!(o.stage_full_blocks.load(Ordering::Relaxed), 0);
    assert_eq!(allocs, 0, "the overflow stage allocates per message");
    // Nothing was dropped: every trade comes out once the consumer catches up.
    let consumer = std::thread::spawn(move || {
        let mut out = 0u64;
        loop {
            match rx.rx.pop() {
                Ok(slot) => out += u64::from(matches!(slot.ev, Event::Trade(_))),
                Err(_) if rx.rx.is_abandoned() => return out,
                Err(_) => std::thread::yield_now(),
            }
        }
    });
    drop(tx);
    trades_out += consumer.join().unwrap();
    assert_eq!(trades_out, trades_in);
}
