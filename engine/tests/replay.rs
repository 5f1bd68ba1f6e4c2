//! Replay of real and golden captures through the whole pipeline.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::{close, read_lines, shared_dir, spot_captures, temp_dir};
use engine::app::{self, Output};
use engine::config::{Config, Speed};
use serde_json::Value;

fn no_stop() -> AtomicBool {
    AtomicBool::new(false)
}

fn test_config(toml: &str) -> Config {
    let mut cfg = Config::from_toml_str(toml, "test").unwrap();
    cfg.engine.pin_cores = Some(false);
    cfg
}

fn replay_to(cfg: &Config, paths: &[PathBuf], speed: Speed, out: &Path) -> Value {
    let report = app::replay(
        cfg,
        paths,
        speed,
        Output::File(out.to_path_buf()),
        &no_stop(),
    )
    .unwrap();
    report.stats
}

/// Independent reconstruction of a Binance spot depth book from raw JSON
/// (serde_json, BTreeMap, decimal strings), following Binance's documented
/// procedure. Returns (best bid, best ask, gaps) per symbol.
fn reference_books(paths: &[PathBuf]) -> BTreeMap<String, (Option<String>, Option<String>, u64)> {
    #[derive(Default)]
    struct Book {
        bids: BTreeMap<u128, String>,
        asks: BTreeMap<u128, String>,
        id: u64,
        synced: bool,
        buffer: Vec<Value>,
        gaps: u64,
    }
    fn key(p: &str) -> u128 {
        let (i, f) = p.split_once('.').unwrap_or((p, ""));
        let mut f = f.to_string();
        while f.len() < 12 {
            f.push('0');
        }
        i.parse::<u128>().unwrap() * 10u128.pow(12) + f[..12].parse::<u128>().unwrap()
    }
    fn is_zero(q: &str) -> bool {
        q.chars().all(|c| c == '0' || c == '.')
    }
    fn apply(b: &mut Book, d: &Value) -> bool {
        let (first, last) = (d["U"].as_u64().unwrap(), d["u"].as_u64().unwrap());
        if last <= b.id {
            return true;
        }
        if first > b.id + 1 {
            return false;
        }
        for (side, map) in [("b", &mut b.bids), ("a", &mut b.asks)] {
            for lv in d[side].as_array().unwrap() {
                let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                if is_zero(q) {
                    map.remove(&key(p));
                } else {
                    map.insert(key(p), p.to_string());
                }
            }
        }
        b.id = last;
        true
    }
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    let mut header_symbol = None;
    for path in paths {
        for line in read_lines(path) {
            if let Some(h) = line.strip_prefix('#') {
                for tok in h.split_whitespace() {
                    if let Some(s) = tok.strip_prefix("symbols=") {
                        if !s.contains(',') {
                            header_symbol = Some(s.to_uppercase());
                        }
                    }
                }
                continue;
            }
            let Some((_, frame)) = line.split_once(' ') else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(frame) else {
                continue;
            };
            let data = if v.get("stream").is_some() {
                v["data"].clone()
            } else {
                v
            };
            if data["e"] == "depthUpdate" {
                let b = books
                    .entry(data["s"].as_str().unwrap().to_uppercase())
                    .or_default();
                if !b.synced {
                    b.buffer.push(data);
                } else if !apply(b, &data) {
                    b.gaps += 1;
                    b.synced = false;
                    b.bids.clear();
                    b.asks.clear();
                    b.buffer = vec![data];
                }
            } else if data.get("lastUpdateId").is_some() && data.get("e").is_none() {
                let sym = header_symbol.clone().unwrap();
                let b = books.entry(sym).or_default();
                if b.synced {
                    continue;
                }
                b.bids.clear();
                b.asks.clear();
                for (side, map) in [("bids", &mut b.bids), ("asks", &mut b.asks)] {
                    for lv in data[side].as_array().unwrap() {
                        let (p, q) = (lv[0].as_str().unwrap(), lv[1].as_str().unwrap());
                        if !is_zero(q) {
                            map.insert(key(p), p.to_string());
                        }
                    }
                }
                b.id = data["lastUpdateId"].as_u64().unwrap();
                b.synced = true;
                let buffered = std::mem::take(&mut b.buffer);
                for (i, d) in buffered.iter().enumerate() {
                    if !apply(b, d) {
                        b.gaps += 1;
                        b.synced = false;
                        b.bids.clear();
                        b.asks.clear();
                        b.buffer = buffered[i..].to_vec();
                        break;
                    }
                }
            }
        }
    }
    books
        .into_iter()
        .map(|(s, b)| {
            (
                s,
                (
                    b.bids.values().next_back().cloned(),
                    b.asks.values().next().cloned(),
                    b.gaps,
                ),
            )
        })
        .collect()
}

#[test]
fn golden_capture_reproduces_expected_output() {
    let Some(shared) = shared_dir() else { return };
    let v = shared.join("vectors");
    let cfg = Config::load(&v.join("default_config.toml")).unwrap();
    let mut cfg = cfg;
    cfg.engine.pin_cores = Some(false);
    let dir = temp_dir("golden");
    let out = dir.join("out.jsonl");
    let stats = replay_to(&cfg, &[v.join("capture_small.txt.gz")], Speed::Max, &out);
    let got: Vec<Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<Value> = read_lines(&v.join("capture_small.expected.jsonl.gz"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut mismatches = Vec::new();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let same_keys = ["ts_ns", "recv_ns", "venue", "symbol", "signal"]
            .iter()
            .all(|k| g[k] == w[k]);
        let (gv, wv) = (g["value"].as_f64().unwrap(), w["value"].as_f64().unwrap());
        if !same_keys || !close(gv, wv) {
            mismatches.push(format!("row {i}: got {g} want {w}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert_eq!(got.len(), want.len(), "row count");
    assert!(
        stats["parse_errors"].as_u64().unwrap() >= 1,
        "the golden capture has malformed lines"
    );
    let inst = &stats["instruments"]["binance-spot:BTCUSDT"];
    assert!(inst["gaps"].as_u64().unwrap() >= 1, "{inst}");
}

#[test]
fn spot_captures_replay_cleanly_and_match_reference_books() {
    let Some(shared) = shared_dir() else { return };
    let captures = spot_captures(&shared);
    assert!(!captures.is_empty());
    for cap in &captures {
        let cfg = test_config("");
        let dir = temp_dir("spot");
        let stats = replay_to(
            &cfg,
            std::slice::from_ref(cap),
            Speed::Max,
            &dir.join("o.jsonl"),
        );
        assert_eq!(stats["parse_errors"], 0, "{}", cap.display());
        assert_eq!(stats["unknown_messages"], 0, "{}", cap.display());
        let reference = reference_books(std::slice::from_ref(cap));
        for (sym, (bid, ask, gaps)) in reference {
            let got = &stats["instruments"][format!("binance-spot:{sym}")];
            assert_eq!(
                got["best_bid"].as_str().map(str::to_owned),
                bid,
                "{sym} bid {}",
                cap.display()
            );
            assert_eq!(
                got["best_ask"].as_str().map(str::to_owned),
                ask,
                "{sym} ask {}",
                cap.display()
            );
            assert_eq!(got["gaps"].as_u64(), Some(gaps), "{sym} gaps");
            assert_eq!(got["crosscheck_failed"], 0, "{sym}");
            assert!(
                got["crosscheck_ok"].as_u64().unwrap() > 0,
                "{sym}: no bookTicker cross-check"
            );
        }
    }
}

#[test]
fn replay_is_deterministic_across_runs_and_speeds() {
    let Some(shared) = shared_dir() else { return };
    let cap = shared.join("vectors/capture_small.txt.gz");
    let cfg = Config::load(&shared.join("vectors/default_config.toml")).unwrap();
    let mut cfg = cfg;
    cfg.engine.pin_cores = Some(false);
    let dir = temp_dir("determinism");
    replay_to(
        &cfg,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("a.jsonl"),
    );
    replay_to(
        &cfg,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("b.jsonl"),
    );
    replay_to(
        &cfg,
        std::slice::from_ref(&cap),
        Speed::Factor(10.0),
        &dir.join("c.jsonl"),
    );
    let a = std::fs::read(dir.join("a.jsonl")).unwrap();
    assert!(!a.is_empty());
    assert_eq!(
        a,
        std::fs::read(dir.join("b.jsonl")).unwrap(),
        "two runs differ"
    );
    assert_eq!(
        a,
        std::fs::read(dir.join("c.jsonl")).unwrap(),
        "speed max vs 10 differ"
    );
}

#[test]
fn inline_placement_replays_byte_identical_to_signal_threads() {
    let Some(shared) = shared_dir() else { return };
    let cap = shared.join("vectors/capture_small.txt.gz");
    let dir = temp_dir("inline");
    let threads = test_config("[engine]\nsignal_placement = \"threads\"\n");
    let inline = test_config("[engine]\nsignal_placement = \"inline\"\n");
    let stats = replay_to(
        &threads,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("t.jsonl"),
    );
    replay_to(
        &inline,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("i.jsonl"),
    );
    let t = std::fs::read(dir.join("t.jsonl")).unwrap();
    assert!(!t.is_empty());
    assert_eq!(t, std::fs::read(dir.join("i.jsonl")).unwrap());
    assert_eq!(stats["rings"].as_object().map(|r| r.len()), Some(1));
    // The signal thread under SCHED_BATCH: the same stream.
    let batch =
        test_config("[engine]\nsignal_placement = \"threads\"\nsignal_thread_sched = \"batch\"\n");
    replay_to(
        &batch,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("tb.jsonl"),
    );
    assert_eq!(
        t,
        std::fs::read(dir.join("tb.jsonl")).unwrap(),
        "threads, batch"
    );
    // Adaptive (the default), which a replay runs inline: its frames come
    // one at a time, so the reader would run every one itself; no signal
    // thread, no ring.
    let adaptive = test_config("[engine]\nsignal_placement = \"adaptive\"\n");
    for round in 0..2 {
        let out = dir.join(format!("a{round}.jsonl"));
        let stats = replay_to(&adaptive, std::slice::from_ref(&cap), Speed::Max, &out);
        assert_eq!(t, std::fs::read(&out).unwrap(), "adaptive round {round}");
        assert_eq!(stats["rings"], serde_json::json!({}), "no ring in a replay");
    }
    let paced = dir.join("ap.jsonl");
    replay_to(
        &adaptive,
        std::slice::from_ref(&cap),
        Speed::Factor(1000.0),
        &paced,
    );
    assert_eq!(t, std::fs::read(&paced).unwrap(), "adaptive, paced");
    // Adaptive as such (a slowed signal stage keeps it adaptive in a
    // replay): the reader runs frames itself while the signal thread is
    // idle, the rest queue through the ring; byte-identical either way.
    let slowed =
        test_config("[engine]\nsignal_placement = \"adaptive\"\ndebug_signal_delay_ns = 200\n");
    let out = dir.join("as.jsonl");
    let stats = replay_to(&slowed, std::slice::from_ref(&cap), Speed::Max, &out);
    assert_eq!(t, std::fs::read(&out).unwrap(), "adaptive, slowed");
    assert_eq!(stats["rings"].as_object().map(|r| r.len()), Some(1));
}

/// Adaptive over several signal threads: a receiver runs a frame itself on
/// the processor of the thread its instrument routes to, when that thread is
/// idle and that ring drained. Ten Kraken instruments over three threads:
/// each instrument's rows are exactly threads mode's (one thread), at full
/// speed and paced (a replay runs adaptive inline), and with slowed signal
/// threads (then adaptive runs as such: both paths interleave, in every
/// order the scheduler makes).
#[test]
fn adaptive_over_several_signal_threads_keeps_each_instruments_rows() {
    let Some(shared) = shared_dir() else { return };
    let cap = common::venue_captures(&shared, "kraken")
        .into_iter()
        .next()
        .unwrap();
    let dir = temp_dir("adaptive-n");
    let per_instrument = |path: &Path| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in read_lines(path) {
            let r: Value = serde_json::from_str(&l).unwrap();
            let k = r["symbol"].as_str().unwrap().to_owned();
            m.entry(k).or_default().push(l);
        }
        m
    };
    let one = dir.join("one.jsonl");
    let stats_one = replay_to(
        &test_config("[engine]\nsignal_placement = \"threads\"\n"),
        std::slice::from_ref(&cap),
        Speed::Max,
        &one,
    );
    let want = per_instrument(&one);
    assert_eq!(want.len(), 10, "{:?}", want.keys());
    let adaptive = "[engine]\nsignal_placement = \"adaptive\"\nsignal_threads = 3\n";
    // Slowed signal threads (a sleep in each drain round, under the lock,
    // while the rings fill): frames queue, so both paths interleave; a
    // receiver that ran frames ahead of its ring would reorder.
    let slowed = format!("{adaptive}debug_signal_delay_ns = 3000\n");
    for (round, (toml, speed)) in [
        (adaptive, Speed::Max),
        (adaptive, Speed::Max),
        (adaptive, Speed::Factor(1000.0)),
        (&slowed, Speed::Max),
        (&slowed, Speed::Max),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(format!("a{round}.jsonl"));
        let stats = replay_to(&test_config(toml), std::slice::from_ref(&cap), speed, &out);
        assert_eq!(per_instrument(&out), want, "round {round}");
        // Slowed: three signal threads, a ring each; else run inline.
        let rings = stats["rings"].as_object().map_or(0, |r| r.len());
        let slowed = toml.contains("debug_signal_delay_ns");
        assert_eq!(rings, if slowed { 3 } else { 0 }, "round {round}");
        // The same books: every instrument's counters (checksums included).
        assert_eq!(
            stats["instruments"], stats_one["instruments"],
            "round {round}"
        );
    }
}

/// A `[[sinks]]` JSON Lines file (its own thread and ring) holds exactly
/// the rows of `--out`, and the stats count them.
#[test]
fn a_jsonl_sink_writes_the_same_rows_as_out() {
    let Some(shared) = shared_dir() else { return };
    let cap = shared.join("vectors/capture_small.txt.gz");
    let dir = temp_dir("jsonl-sink");
    let copy = dir.join("copy.jsonl");
    let cfg = test_config(&format!(
        "[[sinks]]\nkind = \"jsonl\"\npath = {:?}\n",
        copy.display().to_string()
    ));
    let stats = replay_to(
        &cfg,
        std::slice::from_ref(&cap),
        Speed::Max,
        &dir.join("out.jsonl"),
    );
    let out = std::fs::read(dir.join("out.jsonl")).unwrap();
    assert!(!out.is_empty());
    assert_eq!(std::fs::read(&copy).unwrap(), out);
    let lines = out.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        stats["sinks"]["jsonl0"]["rows"], lines,
        "{}",
        stats["sinks"]
    );
    assert_eq!(stats["sinks"]["jsonl0"]["conflated"], 0);
}

#[test]
fn split_capture_replays_as_one_stream() {
    let Some(shared) = shared_dir() else { return };
    let cap = &spot_captures(&shared)[0];
    let lines = read_lines(cap);
    let dir = temp_dir("split");
    let cut = lines.len() / 2;
    let header: Vec<&String> = lines.iter().take_while(|l| l.starts_with('#')).collect();
    let mut a = String::new();
    let mut b = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i < cut {
            a.push_str(l);
            a.push('\n');
        } else if !l.starts_with('#') {
            b.push_str(l);
            b.push('\n');
        }
    }
    let b = header.iter().map(|h| format!("{h}\n")).collect::<String>() + &b;
    std::fs::write(dir.join("a.txt"), a).unwrap();
    std::fs::write(dir.join("b.txt"), b).unwrap();
    let cfg = test_config("");
    replay_to(
        &cfg,
        std::slice::from_ref(cap),
        Speed::Max,
        &dir.join("whole.jsonl"),
    );
    replay_to(
        &cfg,
        &[dir.join("a.txt"), dir.join("b.txt")],
        Speed::Max,
        &dir.join("parts.jsonl"),
    );
    let whole = std::fs::read(dir.join("whole.jsonl")).unwrap();
    assert!(!whole.is_empty());
    assert_eq!(whole, std::fs::read(dir.join("parts.jsonl")).unwrap());
}

#[test]
fn spot_replay_emits_every_default_signal_in_the_output_format() {
    let Some(shared) = shared_dir() else { return };
    let cap = &spot_captures(&shared)[0];
    let dir = temp_dir("format");
    let out = dir.join("o.jsonl");
    replay_to(
        &test_config(""),
        std::slice::from_ref(cap),
        Speed::Max,
        &out,
    );
    let names = engine::pipeline::processor::Processor::<fn(engine::pipeline::processor::SinkMsg)>::output_names(
        &signals::default_set(),
    );
    // The 17 signal ids, then the status rows' names (live runs only).
    assert_eq!(names.len(), 19);
    assert_eq!(names[17..], ["book_status", "book_gap_s"]);
    let names = &names[..17];
    let mut seen = std::collections::BTreeSet::new();
    let mut last_recv = i64::MIN;
    for line in read_lines(&out) {
        let v: serde_json::Map<String, Value> = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{line}");
        for k in ["ts_ns", "recv_ns", "venue", "symbol", "signal", "value"] {
            assert!(v.contains_key(k), "{line}");
        }
        assert!(v["ts_ns"].is_i64() && v["recv_ns"].is_i64(), "{line}");
        assert!(v["value"].as_f64().is_some_and(f64::is_finite), "{line}");
        assert_eq!(v["venue"], "binance-spot");
        let recv = v["recv_ns"].as_i64().unwrap();
        assert!(recv >= last_recv, "rows out of event order: {line}");
        last_recv = recv;
        seen.insert(v["signal"].as_str().unwrap().to_owned());
    }
    let want: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(seen, want);
}

/// A signal thread's drain takes a depth message's levels before its last in
/// one loop (`Processor::on_slots`); one slot at a time (`on_slot_after`)
/// is the reference. The spot capture's first 4,000 frames as ring slots,
/// in drains of 1 to 700 slots each split at a varying point into the two
/// halves of a wrapped ring chunk (so messages straddle drains and
/// halves), every other frame pushed "later" than any clock (so its slots
/// take the clock-reading path): the same rows (every book signal and
/// book-status row among them) and the same number of latency samples per
/// stage.
#[test]
fn a_drains_runs_of_levels_process_as_its_slots_one_at_a_time() {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    use engine::pipeline::processor::{NoResync, Processor, SinkMsg};
    use engine::pipeline::ring::Slot;
    use engine::pipeline::stats::{Registry, Stage};

    let Some(shared) = shared_dir() else { return };
    let mut cfg = Config::default();
    cfg.engine.pin_cores = Some(false);
    let ids = Arc::new(AtomicU32::new(0));
    let mut adapter = app::make_adapter(&cfg, &cfg.engine.venue, &ids, None).unwrap();
    let mut r = feeds::capture::CaptureReader::open(
        &shared.join("data/binance-spot/btcusdt_20240808.txt.gz"),
    )
    .unwrap();
    adapter.set_capture_symbols(&r.header().symbols.clone());
    let (mut slots, mut events, mut depth_levels) = (Vec::new(), Vec::new(), 0usize);
    let mut frame = Vec::new();
    for i in 0..4_000u64 {
        let Some(Ok(rec)) = r.next_record() else {
            break;
        };
        frame.clear();
        frame.extend_from_slice(rec.frame);
        events.clear();
        let _ = adapter.parse(rec.recv_ns, &mut frame, &mut events);
        let t_push = if i % 2 == 0 { 1 } else { u64::MAX / 2 };
        for ev in &events {
            depth_levels += usize::from(matches!(ev, feeds::Event::Level(_)));
            slots.push(Slot {
                ev: *ev,
                t_frame: i,
                t_push,
            });
        }
    }
    assert!(depth_levels > 10_000, "{depth_levels} levels");

    let run = |batched: bool| {
        let registry = Registry::new();
        let mut rows: Vec<SinkMsg> = Vec::new();
        let mut proc = Processor::new(
            app::processor_factory(&cfg, true)(),
            registry.clone(),
            Box::new(NoResync),
            |m: SinkMsg| rows.push(m),
        );
        let (mut at, mut k) = (0, 0usize);
        while at < slots.len() {
            k += 1;
            let end = (at + 1 + (k * 37) % 700).min(slots.len());
            let drain = &slots[at..end];
            if batched {
                let (a, b) = drain.split_at((k * 13) % (drain.len() + 1));
                let done = proc.on_slots(a, 0);
                proc.on_slots(b, done);
            } else {
                let mut done = 0;
                for slot in drain {
                    done = proc.on_slot_after(slot, done);
                }
            }
            at = end;
        }
        let samples = [Stage::RingHop, Stage::Signal, Stage::FrameToSignal]
            .map(|s| registry.summary(s).count);
        drop(proc);
        (rows, samples)
    };
    let (one_at_a_time, samples) = run(false);
    let (batched, batched_samples) = run(true);
    assert!(one_at_a_time.len() > 10_000, "{} rows", one_at_a_time.len());
    assert_eq!(batched.len(), one_at_a_time.len(), "row count");
    assert!(batched == one_at_a_time, "rows differ");
    assert!(samples[1] > 3_000, "{samples:?}");
    assert_eq!(
        batched_samples, samples,
        "samples per stage (ring, signal, frame → signal)"
    );
}
