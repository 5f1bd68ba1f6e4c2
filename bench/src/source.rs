//! Record sources for the simulator: capture files and the generator.
//!
//! Capture reading goes through the small [`CaptureRecords`] trait, which the
//! workspace's one capture reader ([`feeds::capture::CaptureReader`])
//! implements.

use std::io;
use std::path::{Path, PathBuf};

use crate::generator::Generator;

/// One record: local receive time and the frame text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRecord {
    /// Receive time, Unix ns.
    pub recv_ns: i64,
    /// Frame payload (WebSocket text or REST snapshot body), verbatim.
    pub frame: String,
}

/// A time-ordered stream of records the simulator plays back.
pub trait FrameSource {
    /// Overwrites `rec` with the next record (reusing its buffer). `Ok(false)`
    /// at the end of the source.
    fn next_record(&mut self, rec: &mut SourceRecord) -> io::Result<bool>;

    /// Symbol that symbol-less REST snapshot bodies at the current position
    /// belong to (a capture whose `symbols=` header names exactly one).
    fn snapshot_symbol(&self) -> Option<&str> {
        None
    }

    /// Sources with a live book (the generator) render depth snapshots of
    /// their current state; captures return `None` and the simulator serves
    /// the recorded snapshot or its own book instead.
    fn synthesize_snapshot(&mut self, _symbol: &str, _limit: usize) -> Option<String> {
        None
    }

    /// True when [`FrameSource::synthesize_snapshot`] answers for every
    /// symbol it knows (so `None` means an unknown symbol).
    fn has_live_book(&self) -> bool {
        false
    }

    /// The venue whose protocol the source speaks (`venue=` header of a
    /// capture); `None`: unknown.
    fn venue(&mut self) -> Option<String> {
        None
    }
}

/// Reads records of one capture file.
pub trait CaptureRecords {
    /// `venue=` header value.
    fn venue(&self) -> Option<&str>;
    /// `symbols=` header value, split on commas.
    fn symbols(&self) -> &[String];
    /// Next record into `rec`; `Ok(false)` at end of file.
    fn next_into(&mut self, rec: &mut SourceRecord) -> io::Result<bool>;
}

/// Plays one or more capture files in order as one stream (consecutive
/// pieces of a rotated recording).
pub struct CaptureSource {
    paths: Vec<PathBuf>,
    next: usize,
    current: Option<Box<dyn CaptureRecords + Send>>,
    snapshot_symbol: Option<String>,
    open: fn(&Path) -> io::Result<Box<dyn CaptureRecords + Send>>,
}

/// The workspace's capture reader: bad lines (no timestamp, not UTF-8) are
/// skipped; truncated or corrupt input is an error.
impl CaptureRecords for feeds::capture::CaptureReader {
    /// The registry name: a family token (`venue=bybit`) names its entry
    /// through the capture's `url=`.
    fn venue(&self) -> Option<&str> {
        let h = self.header();
        let v = h.venue.as_deref()?;
        Some(feeds::venue::venue_for_capture(v, h.get("url")).map_or(v, |(_, d)| d.name))
    }

    fn symbols(&self) -> &[String] {
        &self.header().symbols
    }

    fn next_into(&mut self, rec: &mut SourceRecord) -> io::Result<bool> {
        loop {
            match self.next_record() {
                None => return Ok(false),
                Some(Ok(r)) => {
                    rec.recv_ns = r.recv_ns;
                    rec.frame.clear();
                    rec.frame.push_str(r.frame_str());
                    return Ok(true);
                }
                Some(Err(e)) => {
                    if let feeds::capture::BadRecord::Truncated(_) = e.kind {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                    }
                }
            }
        }
    }
}

/// Opens `p` with [`feeds::capture::CaptureReader`].
pub fn open_feeds_reader(p: &Path) -> io::Result<Box<dyn CaptureRecords + Send>> {
    Ok(Box::new(feeds::capture::CaptureReader::open(p)?))
}

impl CaptureSource {
    /// Source over `paths`, opened lazily in order with the workspace's
    /// [`feeds::capture::CaptureReader`].
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self::with_reader(paths, open_feeds_reader)
    }

    /// Source over `paths` with a custom reader constructor.
    pub fn with_reader(
        paths: Vec<PathBuf>,
        open: fn(&Path) -> io::Result<Box<dyn CaptureRecords + Send>>,
    ) -> Self {
        CaptureSource {
            paths,
            next: 0,
            current: None,
            snapshot_symbol: None,
            open,
        }
    }

    /// Single-file source; opens the file now so a bad path fails early.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut s = Self::new(vec![path.to_path_buf()]);
        s.advance_file()?;
        Ok(s)
    }

    fn advance_file(&mut self) -> io::Result<bool> {
        let Some(p) = self.paths.get(self.next) else {
            self.current = None;
            return Ok(false);
        };
        self.next += 1;
        let r = (self.open)(p)?;
        self.snapshot_symbol = match r.symbols() {
            [one] => Some(one.to_ascii_uppercase()),
            _ => None,
        };
        self.current = Some(r);
        Ok(true)
    }
}

impl FrameSource for CaptureSource {
    fn next_record(&mut self, rec: &mut SourceRecord) -> io::Result<bool> {
        loop {
            if let Some(r) = self.current.as_mut() {
                if r.next_into(rec)? {
                    return Ok(true);
                }
            }
            if !self.advance_file()? {
                return Ok(false);
            }
        }
    }

    fn snapshot_symbol(&self) -> Option<&str> {
        self.snapshot_symbol.as_deref()
    }

    fn venue(&mut self) -> Option<String> {
        if let Some(r) = &self.current {
            return r.venue().map(str::to_owned);
        }
        let first = self.paths.get(self.next.saturating_sub(1))?;
        (self.open)(first).ok()?.venue().map(str::to_owned)
    }
}

/// The generator as a simulator source; depth requests are answered from the
/// generator's live book.
pub struct GeneratorSource {
    generator: Generator,
}

impl GeneratorSource {
    /// Wraps `generator`.
    pub fn new(generator: Generator) -> Self {
        GeneratorSource { generator }
    }
}

impl FrameSource for GeneratorSource {
    fn next_record(&mut self, rec: &mut SourceRecord) -> io::Result<bool> {
        Ok(match self.generator.next() {
            Some(r) => {
                rec.recv_ns = r.recv_ns;
                rec.frame = r.frame;
                true
            }
            None => false,
        })
    }

    fn synthesize_snapshot(&mut self, symbol: &str, limit: usize) -> Option<String> {
        self.generator.snapshot(symbol, limit)
    }

    fn has_live_book(&self) -> bool {
        true
    }

    fn venue(&mut self) -> Option<String> {
        Some(self.generator.venue().to_owned())
    }
}

/// In-memory records (tests, tools).
pub struct VecSource {
    records: std::vec::IntoIter<SourceRecord>,
    snapshot_symbol: Option<String>,
}

impl VecSource {
    /// Source over `records`; `snapshot_symbol` attributes symbol-less
    /// snapshot bodies.
    pub fn new(records: Vec<SourceRecord>, snapshot_symbol: Option<String>) -> Self {
        VecSource {
            records: records.into_iter(),
            snapshot_symbol,
        }
    }
}

impl FrameSource for VecSource {
    fn next_record(&mut self, rec: &mut SourceRecord) -> io::Result<bool> {
        Ok(match self.records.next() {
            Some(r) => {
                *rec = r;
                true
            }
            None => false,
        })
    }

    fn snapshot_symbol(&self) -> Option<&str> {
        self.snapshot_symbol.as_deref()
    }
}

/// Reads every record of a capture (tests and tools).
pub fn read_all(path: &Path) -> io::Result<(Option<String>, Vec<String>, Vec<SourceRecord>)> {
    let mut r = feeds::capture::CaptureReader::open(path)?;
    let mut out = Vec::new();
    let mut rec = SourceRecord::default();
    while r.next_into(&mut rec)? {
        out.push(std::mem::take(&mut rec));
    }
    Ok((r.venue().map(str::to_string), r.symbols().to_vec(), out))
}
