//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Conformance tolerance of SIGNALS.md §8.
pub fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= f64::max(1e-12, 1e-9 * want.abs())
}

/// The shared directory, or `None` (after printing a skip notice) when it is
/// missing and `CI` is not `true`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("WIRESIGNAL_SHARED").map_or_else(
        || {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../shared")
        },
        PathBuf::from,
    );
    if dir.join("vectors/expected.json").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "shared vectors not found at {} (set WIRESIGNAL_SHARED)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: shared vectors not found at {} (set WIRESIGNAL_SHARED)",
        dir.display()
    );
    None
}

/// Exact decimal → fixed-point (`decimals` digits after the point).
pub fn fixed(s: &str, decimals: u32) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() as u32 <= decimals, "too many decimals in {s}");
    let mut v: i64 = if int.is_empty() {
        0
    } else {
        int.parse().unwrap()
    };
    for i in 0..decimals as usize {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        v = v * 10 + d;
    }
    if neg {
        -v
    } else {
        v
    }
}
