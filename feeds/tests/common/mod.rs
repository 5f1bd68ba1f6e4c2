//! Helpers shared by the feeds integration tests.
#![allow(dead_code)]

pub mod coinbase_at;
pub mod venues;

use std::path::PathBuf;

/// `shared/` dir: env `WIRESIGNAL_SHARED`, else `$CARGO_MANIFEST_DIR/../../shared`.
/// Missing: panic under `CI=true`, else print a skip and return `None`.
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
    if dir.join("data").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared data not found at {} (set WIRESIGNAL_SHARED)",
        dir.display()
    );
    eprintln!("skipping: shared data not found at {}", dir.display());
    None
}
