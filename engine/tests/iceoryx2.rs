//! The iceoryx2 sink with a subscriber in another process: this test binary
//! run again with `WIRESIGNAL_IOX_SUB` set, where `iox_subscriber_process`
//! subscribes, says it is ready (a file), collects records until told to
//! stop (another file) and writes them out. Service names are unique per
//! test and process; every node removes its services when it goes.
#![cfg(feature = "iceoryx2")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read_lines, spot_slice, temp_dir};
use engine::sinks::iceoryx2::{subscribe, subscriber_node, IoxSink};
use engine::sinks::{IoxSpec, Item, SinkCounters, Worker};
use iceoryx2::port::update_connections::UpdateConnections;
use records::{Catalog, Record};

const ENV: &str = "WIRESIGNAL_IOX_SUB";

/// A unique service name for one test of this process.
fn service(test: &str) -> String {
    format!("wiresignal-test/{}/{test}", std::process::id())
}

fn spec(buffer: usize) -> IoxSpec {
    IoxSpec {
        service: None,
        buffer,
        history: 0,
        max_subscribers: 2,
    }
}

/// The child side: `WIRESIGNAL_IOX_SUB=<mode>|<service>|<buffer>|<dir>`
/// (`mode`: `read` keeps reading; `stall` reads nothing until told to stop).
#[test]
fn iox_subscriber_process() {
    let Ok(args) = std::env::var(ENV) else {
        return;
    };
    let parts: Vec<&str> = args.split('|').collect();
    let [mode, service, buffer, dir] = parts[..] else {
        panic!("{ENV}={args}");
    };
    let dir = Path::new(dir);
    let node = subscriber_node("wiresignal-test-subscriber").unwrap();
    let spec = spec(buffer.parse().unwrap());
    let (rows, catalogs) = subscribe(&node, service, &spec).unwrap();
    std::fs::write(dir.join("ready"), b"").unwrap();

    let (mut got, mut catalog) = (Vec::<u8>::new(), Vec::<u8>::new());
    let stop = dir.join("stop");
    let t0 = Instant::now();
    let mut stopping = false;
    while t0.elapsed() < Duration::from_secs(60) {
        while let Some(s) = catalogs.receive().unwrap() {
            catalog = s.payload().to_vec();
        }
        if mode == "stall" && !stop.exists() {
            // Stalled on rows (a bot busy elsewhere), but connected: a
            // subscriber maps a publisher's memory when it updates its
            // connections (as `receive` does); what it holds then outlives
            // the publisher.
            rows.update_connections().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut n = 0;
        while let Some(s) = rows.receive().unwrap() {
            got.extend_from_slice(s.payload());
            n += 1;
        }
        if stopping && n == 0 {
            break;
        }
        // One more pass after the stop file: whatever was sent before it.
        stopping = stop.exists();
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    std::fs::write(dir.join("catalog.json"), &catalog).unwrap();
    std::fs::write(dir.join("rows.bin"), &got).unwrap();
    std::fs::write(dir.join("done"), b"").unwrap();
}

/// The subscriber process (killed on drop if it is still running).
struct Sub {
    child: Child,
    dir: PathBuf,
}

impl Sub {
    fn start(mode: &str, service: &str, buffer: usize, dir: &Path) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "iox_subscriber_process", "--nocapture"])
            .env(
                ENV,
                format!("{mode}|{service}|{buffer}|{}", dir.to_string_lossy()),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let sub = Self {
            child,
            dir: dir.to_path_buf(),
        };
        let t0 = Instant::now();
        while !dir.join("ready").exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the subscriber process did not get ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sub
    }

    /// Tells it to stop; what it got: records in arrival order and the
    /// latest catalog.
    fn stop(mut self) -> (Vec<Record>, Catalog) {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the subscriber did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "subscriber: {status}");
        let raw = std::fs::read(self.dir.join("rows.bin")).unwrap();
        let records = raw
            .chunks_exact(records::SIZE)
            .map(|b| Record::decode(b).unwrap())
            .collect();
        let catalog = Catalog::from_json(&std::fs::read(self.dir.join("catalog.json")).unwrap())
            .expect("a catalog");
        (records, catalog)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replay(toml: &str, input: &Path, out: &Path) -> serde_json::Value {
    common::replay_toml(toml, input, out, engine::config::Speed::Max)
}

/// The sink's ring holds a whole replay: on a loaded machine the sink
/// thread may fall behind a `--speed max` replay, and its conflation (tested
/// in `sinks::fanout`) would blur what these tests look at.
fn sink_toml(service: &str, buffer: usize) -> String {
    format!(
        "[output]\nengine = \"iox-test\"\n[[sinks]]\nkind = \"iceoryx2\"\nservice = \"{service}\"\n\
         buffer = {buffer}\nmax_subscribers = 2\nring_capacity = 262144\n"
    )
}

/// The value text of a JSON Lines row, parsed (serde_json's float parse is
/// not always the shortest round trip).
fn value_of(line: &str) -> f64 {
    let text = line
        .rsplit_once("\"value\":")
        .unwrap()
        .1
        .trim_end_matches('}');
    text.parse().unwrap()
}

#[test]
fn a_subscriber_process_receives_exactly_the_rows_of_the_file() {
    let dir = temp_dir("iox-exact");
    let Some(input) = spot_slice(&dir, 4000) else {
        return;
    };
    let service = service("exact");
    let sub = Sub::start("read", &service, 65_536, &dir);
    let out = dir.join("rows.jsonl");
    let stats = replay(&sink_toml(&service, 65_536), &input, &out);
    let (got, catalog) = sub.stop();
    let lines = read_lines(&out);
    assert!(lines.len() > 1000, "{}", lines.len());
    assert_eq!(got.len(), lines.len(), "every row, once");
    assert_eq!(catalog.engine, "iox-test");
    let mut last: BTreeMap<(u16, u32), u64> = BTreeMap::new();
    for (r, line) in got.iter().zip(&lines) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r.ts_ns, row["ts_ns"].as_i64().unwrap(), "{line}");
        assert_eq!(r.recv_ns, row["recv_ns"].as_i64().unwrap(), "{line}");
        assert_eq!(r.value, value_of(line), "{line}");
        assert_eq!(
            catalog.names(r.instrument, r.signal),
            Some((
                row["venue"].as_str().unwrap(),
                row["symbol"].as_str().unwrap(),
                row["signal"].as_str().unwrap()
            )),
            "{line}"
        );
        let seq = last.entry((r.venue, r.instrument)).or_insert(0);
        assert_eq!(r.seq, *seq + 1, "gapless per (venue, symbol): {line}");
        *seq += 1;
    }
    let s = &stats["sinks"]["iox0"];
    assert_eq!(s["rows"], lines.len(), "{s}");
    assert_eq!(
        (
            s["dropped"].as_u64(),
            s["conflated"].as_u64(),
            s["errors"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );
}

#[test]
fn a_stalled_subscriber_loses_its_oldest_rows_and_never_slows_the_engine() {
    let dir = temp_dir("iox-stall");
    let Some(input) = spot_slice(&dir, 20_000) else {
        return;
    };
    let service = service("stall");
    let buffer = 256;
    let sub = Sub::start("stall", &service, buffer, &dir);
    let out = dir.join("rows.jsonl");
    let t0 = Instant::now();
    let stats = replay(&sink_toml(&service, buffer), &input, &out);
    let elapsed = t0.elapsed();
    let (got, _) = sub.stop();
    let lines = read_lines(&out);
    assert!(lines.len() > 10 * buffer, "{}", lines.len());
    assert!(
        elapsed < Duration::from_secs(30),
        "the replay did not wait for the subscriber: {elapsed:?}"
    );
    // The engine published every row: none conflated, dropped or failed.
    let s = &stats["sinks"]["iox0"];
    assert_eq!(s["rows"], lines.len(), "{s}");
    assert_eq!(
        (
            s["dropped"].as_u64(),
            s["conflated"].as_u64(),
            s["errors"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );
    // The stalled subscriber kept only its buffer's worth, the newest ones;
    // the sequence numbers show how much it lost.
    assert!(!got.is_empty() && got.len() <= buffer, "{}", got.len());
    let last = got.last().unwrap();
    let last_line = lines.last().unwrap();
    assert_eq!(last.value, value_of(last_line), "{last_line}");
    let mut seen: BTreeMap<(u16, u32), u64> = BTreeMap::new();
    let mut holes = 0;
    for r in &got {
        let prev = seen.entry((r.venue, r.instrument)).or_insert(0);
        assert!(r.seq > *prev, "per instrument the order holds");
        holes += r.seq - *prev - 1;
        *prev = r.seq;
    }
    let delivered = got.len() as u64;
    assert!(holes > 0);
    assert_eq!(
        holes + delivered,
        lines.len() as u64,
        "every hole is a lost row"
    );
}

/// In one process: a subscriber that connects late gets the latest catalog
/// at once (history), with the instruments announced before it came.
#[test]
fn a_late_subscriber_gets_the_latest_catalog() {
    let service = service("late");
    let spec = IoxSpec {
        service: Some(service.clone()),
        ..spec(64)
    };
    let outputs: Arc<[String]> = vec!["mid".to_owned(), "spread".to_owned()].into();
    let mut sink = IoxSink::create(&spec, &outputs, "late-test").unwrap();
    assert_eq!(sink.service(), service);
    let c = SinkCounters::default();
    let info = feeds::event::InstrumentInfo {
        inst: feeds::event::InstrumentId(3),
        venue: 0,
        symbol: feeds::event::Symbol::new("BTCUSDT").unwrap(),
        scale: feeds::event::Scale::default(),
        wire: feeds::event::Scale::default(),
    };
    let row = Record {
        venue: 0,
        instrument: 3,
        signal: 1,
        flags: 0,
        ts_ns: 1,
        recv_ns: 2,
        seq: 1,
        value: 0.5,
    };
    sink.deliver(&[Item::Instrument(info), Item::Row(row)], &c);
    assert_eq!(c.rows.get(), 1, "published with no subscriber");

    let node = subscriber_node("wiresignal-test-late").unwrap();
    let (rows, catalogs) = subscribe(&node, &service, &spec).unwrap();
    sink.idle(&c);
    let catalog = catalogs
        .receive()
        .unwrap()
        .map(|s| Catalog::from_json(s.payload()).unwrap())
        .expect("the catalog's history");
    assert_eq!(
        catalog.names(3, 1),
        Some(("binance-spot", "BTCUSDT", "spread"))
    );
    assert!(
        rows.receive().unwrap().is_none(),
        "no row history by default"
    );
    sink.deliver(&[Item::Row(Record { seq: 2, ..row })], &c);
    let got = rows.receive().unwrap().expect("a row");
    assert_eq!(Record::decode(got.payload()), Ok(Record { seq: 2, ..row }));
    assert_eq!((c.dropped.get(), c.errors.get()), (0, 0));
}

/// Instrument ids are one engine's: a second engine on the same service is
/// an error at start, not a mix of two id spaces.
#[test]
fn a_second_engine_on_the_same_service_fails_to_start() {
    let spec = IoxSpec {
        service: Some(service("twice")),
        ..spec(64)
    };
    let first = IoxSink::create(&spec, &[], "a").unwrap();
    let Err(e) = IoxSink::create(&spec, &[], "b") else {
        panic!("two publishers on one service");
    };
    assert!(e.to_string().contains("another engine"), "{e}");
    drop(first);
    // Once the first is gone, the service is free again.
    assert!(IoxSink::create(&spec, &[], "b").is_ok());
}
