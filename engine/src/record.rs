//! `engine record`: raw frames of the configured feeds into capture files
//! (gzip, `<recv_ns> <frame>` lines, rotated by size or time). REST depth
//! snapshots are stored inline at the time their response arrived, exactly
//! like the shared captures, so a recording replays with `engine replay`.
//! A feed with several symbols stores each snapshot body inside a
//! combined-stream wrapper `{"stream":"<symbol>@depthSnapshot","data":...}`
//! so that replay can attribute it; single-symbol files keep the bare body
//! and name the symbol in the `symbols=` header.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feeds::capture::{CaptureWriter, Rotation};

use crate::app::make_adapter;
use crate::config::Config;
use crate::net::feed::{run_feeds, FeedHandler, SnapshotRequests};

struct Recorder {
    writer: CaptureWriter,
    /// Several symbols share this file: wrap snapshot bodies so replay can
    /// attribute them (a Binance REST body names no symbol).
    wrap_snapshots: bool,
    scratch: Vec<u8>,
    frames: u64,
    errors: u64,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn write(&mut self, recv_ns: i64, frame: &[u8]) {
        let res = if frame.contains(&b'\n') {
            // Frames are one line in the capture format; JSON allows the
            // whitespace to go.
            let flat: Vec<u8> = frame
                .iter()
                .copied()
                .filter(|&b| b != b'\n' && b != b'\r')
                .collect();
            self.writer.write(recv_ns, &flat)
        } else {
            self.writer.write(recv_ns, frame)
        };
        match res {
            Ok(()) => self.frames += 1,
            Err(e) => {
                self.errors += 1;
                if self.errors <= 10 {
                    eprintln!("record: write failed: {e}");
                }
            }
        }
    }
}

/// One connection of a recorded feed: every connection of the feed writes
/// into the same file, in receive order.
struct RecordConn(Rc<RefCell<Recorder>>);

impl FeedHandler for RecordConn {
    fn on_connected(&mut self) {}
    fn on_disconnected(&mut self, reason: &str) {
        eprintln!("record: disconnected: {reason}");
        let _ = self.0.borrow_mut().writer.flush();
    }
    fn on_frame(&mut self, recv_ns: i64, frame: &mut [u8]) {
        self.0.borrow_mut().write(recv_ns, frame);
    }
    fn on_snapshot(&mut self, symbol: &str, recv_ns: i64, body: &mut [u8]) {
        self.0.borrow_mut().snapshot(symbol, recv_ns, body);
    }
    fn on_snapshot_error(&mut self, symbol: &str, err: &str) {
        eprintln!("record: snapshot {symbol} failed: {err}");
    }
    fn should_stop(&mut self) -> bool {
        self.0.borrow().stop.load(Ordering::Relaxed)
    }
}

impl Recorder {
    fn snapshot(&mut self, symbol: &str, recv_ns: i64, body: &[u8]) {
        if !self.wrap_snapshots {
            self.write(recv_ns, body);
            return;
        }
        // `{"stream":"<symbol>@depthSnapshot","data":<body verbatim>}`: the
        // combined-stream wrapper attributes it (SIGNALS.md 2.2) and the body
        // itself is not re-serialised.
        let mut framed = std::mem::take(&mut self.scratch);
        framed.clear();
        framed.extend_from_slice(b"{\"stream\":\"");
        framed.extend(symbol.bytes().map(|b| b.to_ascii_lowercase()));
        framed.extend_from_slice(b"@depthSnapshot\",\"data\":");
        framed.extend_from_slice(body);
        framed.push(b'}');
        self.write(recv_ns, &framed);
        self.scratch = framed;
    }
}

/// Records every configured feed into `out_dir` until `stop` or `duration`.
/// Returns the files written.
pub fn record(
    cfg: &Config,
    out_dir: &Path,
    duration: Option<Duration>,
    stop: &AtomicBool,
) -> std::io::Result<Vec<PathBuf>> {
    if cfg.feeds.is_empty() {
        return Err(std::io::Error::other("no [[feeds]] in the configuration"));
    }
    std::fs::create_dir_all(out_dir)?;
    let rotation = Rotation {
        max_bytes: cfg.record.max_bytes,
        max_age_ns: cfg
            .record
            .max_age_s
            .map(|s| (s as i64).saturating_mul(1_000_000_000)),
    };
    let started = Instant::now();
    let flag = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let ids = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut threads = Vec::new();
    let mut budgets = crate::live::Budgets::default();
    for (i, feed) in cfg.feeds.iter().enumerate() {
        let adapter = make_adapter(cfg, &feed.venue, &ids, Some(&feed.symbols))?;
        let conns = crate::live::feed_connections(feed, adapter.as_ref(), &mut budgets)?;
        let urls: Vec<&str> = conns.iter().map(|(_, o)| o.ws_url.as_str()).collect();
        let url = urls.join(" ");
        let symbols = feed.symbols.join(",");
        let prefix = format!("{}-{}", feed.venue, feed.symbols.join("_").to_lowercase());
        let rest = format!(
            "{}{}",
            feed.rest_url,
            adapter.snapshot_path(&feed.symbols[0], feed.snapshot_limit)
        );
        let header = [
            ("venue", feed.venue.as_str()),
            ("symbols", symbols.as_str()),
            ("source", "wiresignal-record"),
            ("url", url.as_str()),
            ("rest_snapshot", rest.as_str()),
        ];
        let writer = CaptureWriter::create(out_dir, &prefix, &header, rotation)?;
        let wrap_snapshots = feed.symbols.len() > 1;
        let stop = flag.clone();
        let shutdown = shutdown_rx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("record-{i}"))
                .spawn(move || -> std::io::Result<Vec<PathBuf>> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let rec = Rc::new(RefCell::new(Recorder {
                        writer,
                        wrap_snapshots,
                        scratch: Vec::new(),
                        frames: 0,
                        errors: 0,
                        stop,
                    }));
                    let runs = conns
                        .into_iter()
                        .map(|(_, o)| {
                            (
                                o,
                                Arc::new(SnapshotRequests::new()),
                                RecordConn(rec.clone()),
                            )
                        })
                        .collect();
                    rt.block_on(run_feeds(runs, shutdown));
                    let Ok(rec) = Rc::try_unwrap(rec).map(RefCell::into_inner) else {
                        return Err(std::io::Error::other("record: feed still running"));
                    };
                    eprintln!(
                        "record: feed {i}: {} frames, {} write errors",
                        rec.frames, rec.errors
                    );
                    rec.writer.finish()
                })?,
        );
    }
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(20));
    }
    flag.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let mut files = Vec::new();
    for t in threads {
        match t.join() {
            Ok(r) => files.extend(r?),
            Err(_) => return Err(std::io::Error::other("record thread panicked")),
        }
    }
    Ok(files)
}
