//! Capture replay: records straight into the pipeline, no socket.
//!
//! Every capture names its venue in its header (`venue=`, with `url=` where
//! that alone is ambiguous); header-less files (Tardis.dev raw data) take
//! the caller's venue and symbols. The inputs are merged by receive time,
//! ties broken by argument order, so captures of several venues replay
//! together and consecutive pieces of one recording (non-overlapping times)
//! chain into one stream. A file is opened when the merge reaches its first
//! record and closed at its end, so a long list of daily pieces holds one
//! reader at a time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use feeds::capture::CaptureReader;
use feeds::venue::{venue_by_name, venue_for_capture};

use crate::config::Speed;
use crate::pipeline::clock::mono_ns;
use crate::pipeline::ingest::Ingest;

/// Longest receive-time gap reproduced when pacing (1 hour).
const MAX_PACED_GAP_NS: i64 = 3_600_000_000_000;

/// One capture file of a replay, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayInput {
    /// The file.
    pub path: PathBuf,
    /// Registry index of its venue.
    pub venue: u16,
    /// Its symbols (`symbols=` header, else the caller's), for snapshot attribution.
    pub symbols: Vec<String>,
    /// Receive time of its first record (`None`: no record).
    first_recv: Option<i64>,
}

/// Where a header-less capture's venue and symbols come from.
#[derive(Clone, Debug, Default)]
pub struct ReplayDefaults {
    /// Venue of files whose header names none.
    pub venue: String,
    /// Symbols of files whose header names none.
    pub symbols: Vec<String>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

/// Opens every capture once: its venue (header, else `defaults`) and first
/// receive time. A file that cannot be opened, or names a venue that is not
/// in the registry, is an error.
pub fn resolve_inputs(
    paths: &[PathBuf],
    defaults: &ReplayDefaults,
) -> std::io::Result<Vec<ReplayInput>> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let mut reader = CaptureReader::open(path).map_err(|e| io_err(path, e))?;
        let h = reader.header();
        let venue = match h.venue.as_deref() {
            Some(v) => venue_for_capture(v, h.get("url"))
                .ok_or_else(|| io_err(path, format!("unknown venue {v:?} in the header")))?,
            None => venue_by_name(&defaults.venue)
                .ok_or_else(|| io_err(path, format!("unknown venue {:?}", defaults.venue)))?,
        }
        .0;
        let symbols = if h.symbols.is_empty() {
            defaults.symbols.clone()
        } else {
            h.symbols.clone()
        };
        let first_recv = std::iter::from_fn(|| reader.advance()).find_map(Result::ok);
        out.push(ReplayInput {
            path: path.clone(),
            venue,
            symbols,
            first_recv,
        });
    }
    Ok(out)
}

/// A file being read: its argument index, reader and next record's time.
struct Active {
    idx: usize,
    reader: CaptureReader,
    head: i64,
}

/// Advances `a` to its next good record (bad ones counted, the first few
/// printed); `false` at its end.
#[inline]
fn next_good(
    a: &mut Active,
    inputs: &[ReplayInput],
    ingest: &mut Ingest,
    logged: &mut u32,
) -> bool {
    loop {
        match a.reader.advance() {
            None => return false,
            Some(Ok(t)) => {
                a.head = t;
                return true;
            }
            Some(Err(e)) => bad_record(&inputs[a.idx].path, &e, ingest, logged),
        }
    }
}

#[cold]
fn bad_record(path: &Path, e: &feeds::capture::RecordError, ingest: &mut Ingest, logged: &mut u32) {
    ingest.stats.bad_records.inc();
    if *logged < 10 {
        *logged += 1;
        eprintln!("bad record: {}: {e}", path.display());
    }
}

/// Replays `inputs` merged by receive time (ties by argument order) into
/// `ingest`, whose adapter `adapter_of(input)` parses each file's records.
///
/// Bad records are counted (and the first few printed with file and line);
/// the replay goes on.
pub fn replay_inputs(
    inputs: &[ReplayInput],
    adapter_of: &dyn Fn(&ReplayInput) -> usize,
    speed: Speed,
    ingest: &mut Ingest,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let start = Instant::now();
    // Paced time: the merged stream's receive-time gaps, each clamped to
    // [0, 1 h] so a bogus timestamp (0, a clock jump) or a day boundary
    // between rotated pieces cannot stall the replay.
    let mut prev_recv: Option<i64> = None;
    let mut paced_ns: u64 = 0;
    let mut bad_logged = 0u32;
    let mut pending: Vec<(i64, usize)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, inp)| inp.first_recv.map(|t| (t, i)))
        .collect();
    pending.sort_unstable();
    let mut pending: VecDeque<(i64, usize)> = pending.into();
    let mut active: Vec<Active> = Vec::new();
    let mut selected: Option<usize> = None;

    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // The active file with the earliest next record, after opening
        // every pending file that starts before it.
        let mut best = active
            .iter()
            .enumerate()
            .min_by_key(|(_, a)| (a.head, a.idx))
            .map(|(i, a)| (i, (a.head, a.idx)));
        while let Some(&key) = pending.front() {
            if best.is_some_and(|(_, b)| b <= key) {
                break;
            }
            pending.pop_front();
            let inp = &inputs[key.1];
            let reader = CaptureReader::open(&inp.path).map_err(|e| io_err(&inp.path, e))?;
            let mut a = Active {
                idx: key.1,
                reader,
                head: 0,
            };
            if next_good(&mut a, inputs, ingest, &mut bad_logged) {
                active.push(a);
                let i = active.len() - 1;
                let k = (active[i].head, active[i].idx);
                if best.is_none_or(|(_, b)| k < b) {
                    best = Some((i, k));
                }
            }
        }
        let Some((bi, _)) = best else {
            return Ok(());
        };
        let a = &mut active[bi];
        let inp = &inputs[a.idx];
        if selected != Some(a.idx) {
            selected = Some(a.idx);
            ingest
                .select(adapter_of(inp))
                .set_capture_symbols(&inp.symbols);
        }
        let rec = a.reader.current();
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
        let path = &inp.path;
        ingest.on_frame(rec.recv_ns, rec.frame, t_frame, &|| {
            format!("{}:{line}", path.display())
        });
        if !next_good(a, inputs, ingest, &mut bad_logged) {
            active.swap_remove(bi);
        }
    }
}
