//! Capture replay: records straight into the pipeline, no socket.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use feeds::capture::CaptureReader;

use crate::config::Speed;
use crate::pipeline::clock::mono_ns;
use crate::pipeline::ingest::Ingest;

/// Longest receive-time gap reproduced when pacing (1 hour).
const MAX_PACED_GAP_NS: i64 = 3_600_000_000_000;

/// Replays `paths` in order as one continuous stream.
///
/// Bad records are counted (and the first few printed with file and line);
/// the replay goes on. A file that cannot be opened is an error.
pub fn replay_files(
    paths: &[PathBuf],
    speed: Speed,
    ingest: &mut Ingest,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let start = Instant::now();
    // Paced time: the capture's receive-time gaps, each clamped to [0, 1 h]
    // so a bogus timestamp (0, a clock jump) or a day boundary between
    // rotated pieces cannot stall the replay.
    let mut prev_recv: Option<i64> = None;
    let mut paced_ns: u64 = 0;
    let mut bad_logged = 0u32;
    for path in paths {
        let mut reader = CaptureReader::open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let symbols = reader.header().symbols.clone();
        ingest.adapter_mut().set_capture_symbols(&symbols);
        while let Some(rec) = reader.next_record() {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    ingest.stats.bad_records.inc();
                    if bad_logged < 10 {
                        bad_logged += 1;
                        eprintln!("bad record: {}: {e}", path.display());
                    }
                    continue;
                }
            };
            if let Speed::Factor(f) = speed {
                let gap = prev_recv.map_or(0, |p| rec.recv_ns.saturating_sub(p));
                prev_recv = Some(rec.recv_ns);
                if (0..=MAX_PACED_GAP_NS).contains(&gap) {
                    paced_ns += gap as u64;
                }
                let due = Duration::from_nanos((paced_ns as f64 / f) as u64);
                let now = start.elapsed();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let line = rec.line;
            let t_frame = mono_ns();
            ingest.on_frame(rec.recv_ns, rec.frame, t_frame, &|| {
                format!("{}:{line}", path.display())
            });
        }
    }
    Ok(())
}
