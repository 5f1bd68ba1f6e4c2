//! The binary as an operator runs it: simulator and engine as separate
//! processes on loopback, Ctrl-C, and the recorder.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{read_lines, temp_dir};
use serde_json::Value;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

/// Starts `engine sim` on a free port serving the built-in generator and
/// returns the child and its address.
fn start_sim(extra: &[&str]) -> (Child, String) {
    let mut child = engine()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "1",
            "--generate-seconds",
            "120",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

fn sigint(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn feed_config(dir: &std::path::Path, addr: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("feed.toml");
    std::fs::write(
        &p,
        format!(
            "[engine]\npin_cores = false\n[[feeds]]\nws_url = \"ws://{addr}\"\nrest_url = \"http://{addr}\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\"]\n{extra}"
        ),
    )
    .unwrap();
    p
}

#[test]
fn ctrl_c_stops_run_cleanly_and_flushes_everything() {
    let dir = temp_dir("ctrlc");
    let (mut sim, addr) = start_sim(&[]);
    let cfg = feed_config(&dir, &addr, "");
    let out = dir.join("signals.jsonl");
    let stats = dir.join("stats.json");
    let mut run = engine()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .arg(&stats)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    sigint(&run);
    let status = wait_with_timeout(&mut run, Duration::from_secs(10));
    sigint(&sim);
    let _ = wait_with_timeout(&mut sim, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let lines = read_lines(&out);
    assert!(!lines.is_empty());
    // Every line is complete JSON (flushed, not cut), and the count matches.
    for l in &lines {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert_eq!(s["signal_rows"].as_u64().unwrap(), lines.len() as u64);
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let i = &s["instruments"][format!("binance-spot:{sym}")];
        assert_eq!(i["synced"], true, "{sym}: {i}");
        assert!(i["crosscheck_ok"].as_u64().unwrap() > 0, "{sym}: {i}");
        assert_eq!(i["crosscheck_failed"], 0, "{sym}: {i}");
        assert_eq!(i["gaps"], 0, "{sym}: {i}");
    }
}

#[test]
fn record_writes_captures_that_replay() {
    let dir = temp_dir("record");
    let (mut sim, addr) = start_sim(&[]);
    let cfg = feed_config(&dir, &addr, "[record]\nmax_bytes = 200000\n");
    let rec_dir = dir.join("captures");
    let status = engine()
        .args(["record", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&rec_dir)
        .args(["--duration", "3"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    sigint(&sim);
    let _ = wait_with_timeout(&mut sim, Duration::from_secs(10));
    assert!(status.success());
    let mut files: Vec<_> = std::fs::read_dir(&rec_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "size rotation produced {files:?}");
    let stats = dir.join("stats.json");
    let out = engine()
        .arg("replay")
        .args(&files)
        .arg("--stats")
        .arg(&stats)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["parse_errors"], 0, "{s}");
    assert_eq!(s["bad_records"], 0, "{s}");
    assert!(s["messages"].as_u64().unwrap() > 100, "{s}");
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let i = &s["instruments"][format!("binance-spot:{sym}")];
        assert_eq!(i["synced"], true, "the recorded snapshot syncs {sym}: {i}");
        assert_eq!(i["gaps"], 0, "{sym}: {i}");
        assert_eq!(i["crosscheck_failed"], 0, "{sym}: {i}");
    }
}
