//! The binary on bad input: clear counted errors or a clean non-zero exit,
//! never a panic.

mod common;

use std::io::Write;
use std::process::Command;

use common::{read_lines, shared_dir, temp_dir};
use serde_json::Value;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

fn stats_of(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn bad_config_exits_non_zero_naming_the_key() {
    let dir = temp_dir("badcfg");
    let cases = [
        (
            "[[instruments]]\nsymbol = \"BTCUSDT\"\nqty_decimals = 40\n",
            "instruments[0].qty_decimals",
        ),
        (
            "[[signals]]\nid = \"x\"\nkind = \"ema\"\nparams = { span = -3 }\n",
            "signals[0]",
        ),
        (
            "[[signals]]\nid = \"Bad-Id\"\nkind = \"mid\"\n",
            "signals[0]",
        ),
        ("[engine]\nring_capacity = 0\n", "engine.ring_capacity"),
        ("this is = = not toml", "cfg"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let p = dir.join(format!("cfg{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = engine()
            .args(["replay", "nonexistent.txt", "--config"])
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(!err.contains("panicked"), "case {i}: {err}");
    }
}

#[test]
fn unknown_command_and_missing_file_fail_cleanly() {
    let out = engine().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = engine()
        .args(["replay", "/definitely/not/here.txt.gz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not/here"), "{err}");
    let out = engine()
        .args(["replay", "x", "--speed", "fast"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn malformed_and_unknown_frames_are_counted() {
    let dir = temp_dir("badframes");
    let cap = dir.join("bad.txt");
    let lines = [
        "# venue=binance-spot symbols=BTCUSDT",
        "1700000000000000000 {\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"100.00\",\"B\":\"1.0\",\"a\":\"100.01\",\"A\":\"2.0\"}",
        "1700000000000000001 {\"e\":\"trade\",\"E\":1,\"s\":\"BTCUSDT\",\"t\":1,\"p\":\"100.0\"",
        "1700000000000000002 not json at all",
        "nonsense-without-timestamp",
        "1700000000000000003 {\"e\":\"mysteryEvent\",\"s\":\"BTCUSDT\"}",
        "1700000000000000004 {\"e\":\"trade\",\"E\":1,\"s\":\"BTCUSDT\",\"t\":2,\"p\":\"abc\",\"q\":\"1\",\"T\":1,\"m\":true}",
        "1700000000000000005 {\"foo\":1}",
        "1700000000000000006 {\"u\":2,\"s\":\"BTCUSDT\",\"b\":\"100.00\",\"B\":\"1.0\",\"a\":\"100.01\",\"A\":\"3.0\"}",
    ];
    std::fs::write(&cap, lines.join("\n") + "\n").unwrap();
    let stats = dir.join("stats.json");
    let out_file = dir.join("out.jsonl");
    let out = engine()
        .args(["replay"])
        .arg(&cap)
        .arg("--stats")
        .arg(&stats)
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let s = stats_of(&stats);
    assert_eq!(s["messages"], 2, "{s}");
    assert_eq!(s["parse_errors"], 3, "{s}");
    assert_eq!(s["unknown_messages"], 2, "{s}");
    assert_eq!(s["bad_records"], 1, "{s}");
    // Both valid quotes produce the four L1 signals.
    let rows = read_lines(&out_file);
    assert_eq!(
        rows.iter()
            .filter(|l| l.contains("\"signal\":\"mid\""))
            .count(),
        2
    );
}

#[test]
fn truncated_gzip_is_reported_and_the_replay_goes_on() {
    let Some(shared) = shared_dir() else { return };
    let src = std::fs::read(shared.join("vectors/capture_small.txt.gz")).unwrap();
    let dir = temp_dir("truncated");
    let cap = dir.join("cut.txt.gz");
    std::fs::File::create(&cap)
        .unwrap()
        .write_all(&src[..src.len() / 2])
        .unwrap();
    let stats = dir.join("stats.json");
    let out = engine()
        .args(["replay"])
        .arg(&cap)
        .arg("--stats")
        .arg(&stats)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("line"),
        "the truncation is reported with its line: {err}"
    );
    let s = stats_of(&stats);
    assert_eq!(s["bad_records"], 1, "{s}");
    assert!(s["messages"].as_u64().unwrap() > 100, "{s}");
}
