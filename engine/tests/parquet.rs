//! `engine replay --parquet` (feature `parquet`): the golden capture replayed
//! to JSONL and Parquet in one run; the Parquet rows must equal the JSONL
//! rows (same order, exact integers and strings, bit-identical values).
#![cfg(feature = "parquet")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::{read_lines, shared_dir, temp_dir};
use engine::app::{self, Output};
use engine::config::{Config, Speed};
use polars::prelude::*;

/// `"key":<number>` of a JSONL line, parsed by `str::parse` (correctly
/// rounded, unlike a generic JSON float parser).
fn num<T: std::str::FromStr>(line: &str, key: &str) -> T {
    let pat = format!("\"{key}\":");
    let start = line.find(&pat).unwrap_or_else(|| panic!("{key} in {line}")) + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end]
        .parse()
        .ok()
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

fn text(line: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[key].as_str().unwrap().to_owned()
}

/// The golden capture replayed to JSONL and Parquet: through `--parquet`
/// (`as_sink = false`) or a `[[sinks]] kind = "parquet"` entry.
fn replay(shared: &Path, dir: &Path, as_sink: bool) -> (PathBuf, PathBuf) {
    let mut cfg = Config::load(&shared.join("vectors/default_config.toml")).unwrap();
    cfg.engine.pin_cores = Some(false);
    let (jsonl, pq) = (dir.join("signals.jsonl"), dir.join("signals.parquet"));
    let collector = if as_sink {
        cfg.sinks.push(engine::sinks::SinkSpec {
            name: "pq".into(),
            ring_capacity: 16,
            kind: engine::sinks::SinkKind::Parquet { path: pq.clone() },
        });
        None
    } else {
        let c = engine::parquet::open_collector(Some(&pq)).unwrap();
        assert!(c.is_some());
        c
    };
    app::replay_with(
        &cfg,
        &[shared.join("vectors/capture_small.txt.gz")],
        &engine::replay::ReplayDefaults {
            venue: cfg.engine.venue.clone(),
            symbols: Vec::new(),
        },
        Speed::Max,
        Output::File(jsonl.clone()),
        collector,
        &AtomicBool::new(false),
    )
    .unwrap();
    (jsonl, pq)
}

#[test]
fn parquet_rows_equal_jsonl_rows() {
    rows_equal(false);
}

/// A `kind = "parquet"` sink is as complete as `--parquet`, even behind a
/// ring far smaller than the run (it is written by the sink thread, never
/// conflated).
#[test]
fn a_parquet_sink_writes_every_jsonl_row() {
    rows_equal(true);
}

fn rows_equal(as_sink: bool) {
    let Some(shared) = shared_dir() else { return };
    let dir = temp_dir(if as_sink { "parquet-sink" } else { "parquet" });
    let (jsonl, pq) = replay(&shared, &dir, as_sink);

    let lines = read_lines(&jsonl);
    assert!(lines.len() > 10_000, "only {} JSONL rows", lines.len());
    let df = ParquetReader::new(std::fs::File::open(&pq).unwrap())
        .finish()
        .unwrap();
    let want_schema = [
        ("ts_ns", DataType::Int64),
        ("recv_ns", DataType::Int64),
        ("venue", DataType::String),
        ("symbol", DataType::String),
        ("signal", DataType::String),
        ("value", DataType::Float64),
    ];
    let got_schema: Vec<(String, DataType)> = df
        .get_columns()
        .iter()
        .map(|c| (c.name().to_string(), c.dtype().clone()))
        .collect();
    assert_eq!(
        got_schema,
        want_schema
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(df.height(), lines.len(), "row count");

    let ts = df.column("ts_ns").unwrap().i64().unwrap();
    let recv = df.column("recv_ns").unwrap().i64().unwrap();
    let venue = df.column("venue").unwrap().str().unwrap();
    let symbol = df.column("symbol").unwrap().str().unwrap();
    let signal = df.column("signal").unwrap().str().unwrap();
    let value = df.column("value").unwrap().f64().unwrap();
    for (i, line) in lines.iter().enumerate() {
        let got = (
            ts.get(i).unwrap(),
            recv.get(i).unwrap(),
            venue.get(i).unwrap(),
            symbol.get(i).unwrap(),
            signal.get(i).unwrap(),
            value.get(i).unwrap(),
        );
        let v: f64 = num(line, "value");
        assert!(
            got.0 == num::<i64>(line, "ts_ns")
                && got.1 == num::<i64>(line, "recv_ns")
                && got.2 == text(line, "venue")
                && got.3 == text(line, "symbol")
                && got.4 == text(line, "signal")
                && got.5.to_bits() == v.to_bits(),
            "row {i}: parquet {got:?} != jsonl {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parquet_collector_reports_bad_path() {
    let err = engine::parquet::open_collector(Some(Path::new("/nonexistent-dir/x.parquet")))
        .err()
        .expect("creating a file in a missing directory fails");
    assert!(
        err.to_string().contains("/nonexistent-dir/x.parquet"),
        "{err}"
    );
}
