//! Smoke test of the load server + baseline (a) over loopback: ~1 s at 10k
//! msg/s. The full suite runs from `scripts/bench.sh`, never in `cargo test`.

use std::time::Duration;

use bench::load::client::Mode;
use bench::load::suite::baseline;
use bench::load::{LoadConfig, Profile};

#[test]
fn baseline_a_receives_stamped_frames_at_10k() {
    let mut cfg = LoadConfig::new(Profile::Fixed {
        rate: 10_000.0,
        duration: Duration::from_secs(1),
    });
    cfg.start_delay = Duration::from_millis(50);
    let r = baseline("smoke", Mode::Recv, cfg).unwrap();
    assert!(r.frames_sent > 5_000, "sent {}", r.frames_sent);
    assert_eq!(r.frames_received, r.frames_sent);
    assert!(r.latency.count > 5_000, "{:?}", r.latency);
    assert!(
        r.latency.p50 > 0 && r.latency.max < 5_000_000_000,
        "{:?}",
        r.latency
    );
}

#[test]
fn baseline_b_parses_every_frame() {
    let mut cfg = LoadConfig::new(Profile::Max {
        duration: Duration::from_millis(300),
    });
    cfg.start_delay = Duration::from_millis(50);
    let r = baseline("smoke-b", Mode::Parse, cfg).unwrap();
    assert!(r.frames_received > 1_000);
    assert_eq!(r.errors, 0);
}
