//! Capture files: one `<recv_unix_ns> <frame>` record per line, plain or gzip.
//!
//! Format (see `shared/data/MANIFEST.md` and SIGNALS.md 2.1): UTF-8 text, one
//! record per line, a decimal receive timestamp in nanoseconds since the Unix
//! epoch, one space, the venue frame exactly as received. Leading lines
//! starting with `#` carry `key=value` metadata tokens ([`CaptureHeader`]).
//! The reader also takes Tardis.dev raw data files: each line an ISO 8601
//! UTC local timestamp (`2024-08-08T23:54:13.9370000Z`), one space, the
//! venue's message; they carry no header, so the venue and symbols come
//! from the caller (`engine replay --venue --symbols`).
//!
//! [`CaptureReader`] streams records through one reused line buffer (no
//! whole-file load, no allocation per record once the buffer has grown to the
//! longest line). [`CaptureWriter`] writes gzip files with size/age rotation.
//!
//! ```
//! use feeds::capture::{CaptureReader, CaptureWriter, Rotation};
//! let dir = std::env::temp_dir().join(format!("capture-doc-{}", std::process::id()));
//! let mut w = CaptureWriter::create(&dir, "doc", &[("venue", "binance-spot")], Rotation::NEVER)?;
//! w.write(1_723_161_253_937_085_768, br#"{"e":"trade"}"#)?;
//! let files = w.finish()?;
//! let mut r = CaptureReader::open(&files[0])?;
//! assert_eq!(r.header().venue.as_deref(), Some("binance-spot"));
//! let rec = r.next_record().unwrap().unwrap();
//! assert_eq!((rec.recv_ns, &*rec.frame), (1_723_161_253_937_085_768, &br#"{"e":"trade"}"#[..]));
//! assert!(r.next_record().is_none());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// First two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Decompressed-side / plain read buffer (large and reused, like tungstenite's).
const LINE_BUF: usize = 128 * 1024;
/// Compressed-side read buffer.
const RAW_BUF: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Header, stats, errors
// ---------------------------------------------------------------------------

/// Metadata from the leading `#` lines of a capture.
///
/// Every header line is split into whitespace-separated `key=value` tokens.
/// A token without `=` continues the value of the previous token (joined by a
/// single space), so `# note=free text` keeps its spaces; the `note` key
/// always takes the rest of its line verbatim. Tokens before the first
/// `key=value` of a line are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureHeader {
    /// The first `venue=` value, if any.
    pub venue: Option<String>,
    /// All `symbols=` values, split on `,` (empty items dropped), in file order.
    pub symbols: Vec<String>,
    /// Every `key=value` token of every header line, in file order.
    pub fields: Vec<(String, String)>,
}

impl CaptureHeader {
    /// The first value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn parse_line(&mut self, text: &str) {
        let mut rest = text;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                return;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let token = &rest[..end];
            match token.split_once('=') {
                Some(("note", _)) => {
                    let value = rest["note=".len()..].trim_end();
                    self.push("note", value);
                    return;
                }
                Some((key, value)) if !key.is_empty() => self.push(key, value),
                _ => {
                    if let Some((_, v)) = self.fields.last_mut() {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(token);
                    }
                }
            }
            rest = &rest[end..];
        }
    }

    fn push(&mut self, key: &str, value: &str) {
        self.fields.push((key.to_owned(), value.to_owned()));
    }

    fn finalize(&mut self) {
        self.venue = self.get("venue").map(str::to_owned);
        self.symbols = self
            .fields
            .iter()
            .filter(|(k, _)| k == "symbols")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
}

/// Counters of a [`CaptureReader`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Records returned as `Ok`.
    pub records: u64,
    /// Records returned as `Err` (including a final truncation).
    pub bad_records: u64,
    /// Empty or whitespace-only lines (anywhere, header section included).
    pub blank_lines: u64,
    /// `#` lines after the header (the header lines themselves are not counted).
    pub comment_lines: u64,
    /// The input ended with a gzip/io error; nothing was read after it.
    pub truncated: bool,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRecord {
    /// The text before the first space is not a decimal `i64`, or the line has no space.
    NoTimestamp,
    /// The frame is not valid UTF-8.
    NotUtf8,
    /// A gzip or io error (truncated or corrupt input). Terminal: the reader
    /// returns `None` afterwards.
    Truncated(String),
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTimestamp => f.write_str("no timestamp"),
            Self::NotUtf8 => f.write_str("frame is not valid UTF-8"),
            Self::Truncated(msg) => write!(f, "truncated input: {msg}"),
        }
    }
}

/// A bad line of a capture: 1-based line number (header lines included) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line number in the decompressed text.
    pub line: u64,
    /// What is wrong with it.
    pub kind: BadRecord,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for RecordError {}

/// One record. Borrows the reader's line buffer until the next call.
#[derive(Debug)]
pub struct Record<'a> {
    /// 1-based line number.
    pub line: u64,
    /// Receive time, ns since the Unix epoch.
    pub recv_ns: i64,
    /// The frame: bytes after the first space, without the line terminator
    /// (`\n` or `\r\n`). Valid UTF-8; mutable so it can be parsed in place.
    pub frame: &'a mut [u8],
}

impl Record<'_> {
    /// The frame as text.
    #[must_use]
    pub fn frame_str(&self) -> &str {
        // Checked by the reader before the record was handed out.
        std::str::from_utf8(self.frame).unwrap_or("")
    }
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

type Source = Box<dyn Read + Send>;

enum Pending {
    None,
    /// `line` holds the first non-header line, not yet classified.
    Line,
    /// An io error met while reading the header, reported by the next call.
    Error(String),
}

/// Streaming capture reader (plain or gzip, detected by the magic bytes).
pub struct CaptureReader {
    src: Source,
    /// Read buffer: lines are handed out in place (no copy per line);
    /// grows only for a line longer than it.
    buf: Vec<u8>,
    /// `buf[..filled]` holds data read from `src`.
    filled: usize,
    /// The current line (terminator included) is `buf[line.0..line.1]`.
    line: (usize, usize),
    /// Every byte of the current line before its `\n` was seen to be
    /// ASCII by the line search (`false`: not known).
    line_ascii: bool,
    /// `src` reported its end.
    eof: bool,
    line_no: u64,
    header: CaptureHeader,
    stats: CaptureStats,
    pending: Pending,
    done: bool,
    gzip: bool,
    /// The record loaded by [`CaptureReader::advance`]: (recv_ns, frame range).
    current: (i64, usize, usize),
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("gzip", &self.gzip)
            .field("line", &self.line_no)
            .field("header", &self.header)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What a line is, by byte ranges into the line buffer.
enum Line {
    Blank,
    Comment,
    Record {
        recv_ns: i64,
        start: usize,
        end: usize,
    },
    Bad(BadRecord),
}

impl CaptureReader {
    /// Opens a capture file. Only failing to open the file is an error here;
    /// read errors while reading the header are reported by the first
    /// [`next_record`](Self::next_record) as [`BadRecord::Truncated`].
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::from_reader(File::open(path)?)
    }

    /// Wraps any byte source (gzip detected by the first two bytes `1f 8b`).
    /// Errors only if reading those two bytes fails.
    pub fn from_reader<R: Read + Send + 'static>(mut r: R) -> io::Result<Self> {
        let mut magic = [0u8; 2];
        let mut n = 0;
        while n < magic.len() {
            match r.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let gzip = magic[..n] == GZIP_MAGIC;
        let chained = Cursor::new(magic[..n].to_vec()).chain(r);
        let src: Source = if gzip {
            let raw = BufReader::with_capacity(RAW_BUF, chained);
            Box::new(MultiGzDecoder::new(raw))
        } else {
            Box::new(chained)
        };
        let mut me = Self {
            src,
            buf: vec![0; LINE_BUF],
            filled: 0,
            line: (0, 0),
            line_ascii: false,
            eof: false,
            line_no: 0,
            header: CaptureHeader::default(),
            stats: CaptureStats::default(),
            pending: Pending::None,
            done: false,
            gzip,
            current: (0, 0, 0),
        };
        me.read_header();
        Ok(me)
    }

    /// Metadata of the leading `#` lines.
    #[must_use]
    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Whether the input is gzip-compressed.
    #[must_use]
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The next record, a bad line (reading may go on, except after
    /// [`BadRecord::Truncated`]), or `None` at the end. Blank lines and `#`
    /// lines are skipped and counted in [`stats`](Self::stats).
    #[allow(clippy::should_implement_trait)] // lending: a record borrows the reader
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, RecordError>> {
        Some(match self.advance()? {
            Ok(_) => Ok(self.current()),
            Err(e) => Err(e),
        })
    }

    /// Loads the next record without borrowing the reader and returns its
    /// receive time ([`current`](Self::current) then gives it), so several
    /// readers can hold their next record at once (a merge by receive
    /// time). Errors and the end as [`next_record`](Self::next_record).
    pub fn advance(&mut self) -> Option<Result<i64, RecordError>> {
        let (recv_ns, start, end) = loop {
            match std::mem::replace(&mut self.pending, Pending::None) {
                Pending::Line => {}
                Pending::Error(msg) => return Some(Err(self.truncated(msg))),
                Pending::None => {
                    if self.done {
                        return None;
                    }
                    match self.read_line() {
                        Ok(true) => {}
                        Ok(false) => {
                            self.done = true;
                            return None;
                        }
                        Err(e) => return Some(Err(self.truncated(e.to_string()))),
                    }
                }
            }
            let (at, end) = self.line;
            match classify(&self.buf[at..end], self.line_ascii) {
                Line::Blank => self.stats.blank_lines += 1,
                Line::Comment => self.stats.comment_lines += 1,
                Line::Bad(kind) => {
                    self.stats.bad_records += 1;
                    return Some(Err(RecordError {
                        line: self.line_no,
                        kind,
                    }));
                }
                Line::Record {
                    recv_ns,
                    start,
                    end,
                } => break (recv_ns, at + start, at + end),
            }
        };
        self.stats.records += 1;
        self.current = (recv_ns, start, end);
        Some(Ok(recv_ns))
    }

    /// The record loaded by the last successful [`advance`](Self::advance)
    /// (an empty frame before any).
    pub fn current(&mut self) -> Record<'_> {
        let (recv_ns, start, end) = self.current;
        Record {
            line: self.line_no,
            recv_ns,
            frame: &mut self.buf[start..end],
        }
    }

    /// Reads the leading `#` lines (blank lines among them are skipped).
    fn read_header(&mut self) {
        loop {
            match self.read_line() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.pending = Pending::Error(e.to_string());
                    break;
                }
            }
            let body = strip_eol(&self.buf[self.line.0..self.line.1]);
            if body.first() == Some(&b'#') {
                let text = String::from_utf8_lossy(&body[1..]);
                self.header.parse_line(&text);
            } else if is_blank(body) {
                self.stats.blank_lines += 1;
            } else {
                self.pending = Pending::Line;
                break;
            }
        }
        self.header.finalize();
    }

    /// Makes the next line (with its terminator; the last one may have
    /// none) the current one, `self.line`; `false` at EOF.
    fn read_line(&mut self) -> io::Result<bool> {
        let mut at = self.line.1;
        let mut scanned = at;
        loop {
            if let (Some(k), ascii) =
                crate::bytes::find_ascii(&self.buf[scanned..self.filled], b'\n')
            {
                // Known ASCII only if this search covered the whole line.
                self.line_ascii = ascii && scanned == at;
                self.line = (at, scanned + k + 1);
                self.line_no += 1;
                return Ok(true);
            }
            scanned = self.filled;
            if self.eof {
                if at == self.filled {
                    self.line = (at, at);
                    return Ok(false);
                }
                self.line_ascii = false;
                self.line = (at, self.filled);
                self.line_no += 1;
                return Ok(true);
            }
            // Keep the partial line, make room behind it, read on.
            if at > 0 {
                self.buf.copy_within(at..self.filled, 0);
                self.filled -= at;
                scanned -= at;
                self.line = (0, 0);
                at = 0;
            }
            if self.filled == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.src.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The partial line is dropped; reading stops here.
                    self.line = (self.filled, self.filled);
                    return Err(e);
                }
            }
        }
    }

    #[cold]
    fn truncated(&mut self, msg: String) -> RecordError {
        self.done = true;
        self.stats.truncated = true;
        self.stats.bad_records += 1;
        RecordError {
            line: self.line_no + 1,
            kind: BadRecord::Truncated(msg),
        }
    }
}

#[inline]
fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[inline]
fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// What `line` is (`ascii`: its bytes are known to be ASCII, so its frame
/// is valid UTF-8 without a check).
#[inline]
fn classify(line: &[u8], ascii: bool) -> Line {
    let body = strip_eol(line);
    match body.first() {
        Some(b'#') => return Line::Comment,
        Some(c) if !c.is_ascii_whitespace() => {}
        _ if is_blank(body) => return Line::Blank,
        _ => {}
    }
    let Some(sp) = crate::bytes::find(body, b' ') else {
        return Line::Bad(BadRecord::NoTimestamp);
    };
    // Integer ns, or (Tardis.dev raw files) an ISO 8601 UTC time.
    let stamp = &body[..sp];
    let recv_ns = if stamp.get(4) == Some(&b'-') {
        crate::time::parse_rfc3339_ns(stamp)
    } else {
        parse_i64(stamp)
    };
    let Some(recv_ns) = recv_ns else {
        return Line::Bad(BadRecord::NoTimestamp);
    };
    let frame = &body[sp + 1..];
    // SIMD validation (simdutf8, already in the tree through simd-json): the
    // std check was ~1 instruction per byte of every frame.
    if !ascii && simdutf8::basic::from_utf8(frame).is_err() {
        return Line::Bad(BadRecord::NotUtf8);
    }
    Line::Record {
        recv_ns,
        start: sp + 1,
        end: body.len(),
    }
}

/// Decimal `i64` with an optional leading `-`; `None` on anything else or overflow.
#[inline]
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    // Up to 18 digits cannot overflow (a 19-digit ns timestamp: 18 plain
    // steps, the first 16 of them in two SWAR steps, then one checked).
    let plain = digits.len().min(18);
    let mut v: i64 = 0;
    let mut swar = 0;
    if let Some((a, b)) = digits
        .first_chunk::<8>()
        .zip(digits.get(8..).and_then(<[u8]>::first_chunk::<8>))
    {
        // < 10^16: fits.
        v = (crate::fixed::digits8(a)? * 100_000_000 + crate::fixed::digits8(b)?) as i64;
        swar = 16;
    }
    for &c in &digits[swar..plain] {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    if neg {
        v = -v;
    }
    for &c in &digits[plain..] {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// When a [`CaptureWriter`] starts a new file. Both limits may be set; the
/// first one reached rotates. A file always holds at least one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a record that would take the file's uncompressed size
    /// (header included) beyond this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate before a record whose `recv_ns` is at least this many ns after
    /// the first record of the current file.
    pub max_age_ns: Option<i64>,
}

impl Rotation {
    /// Never rotate.
    pub const NEVER: Self = Self {
        max_bytes: None,
        max_age_ns: None,
    };
}

struct OpenFile {
    enc: GzEncoder<BufWriter<File>>,
    bytes: u64,
    first_recv_ns: i64,
    records: u64,
}

impl OpenFile {
    fn finish(self) -> io::Result<()> {
        let mut w = self.enc.finish()?;
        w.flush()
    }
}

/// Writes gzip capture files `<prefix>-<UTC yyyymmddThhmmss>-<seq>.txt.gz`
/// in one directory, rotating per [`Rotation`].
///
/// * A file is created lazily by the first record it will hold; its name
///   carries the UTC time (second) of that record's `recv_ns` and a 4-digit
///   sequence number (0, 1, ...; bumped further if the name already exists).
///   A writer that never writes creates no file.
/// * Every file starts with the header, one `# key=value` line per pair.
/// * Compression level 1 (fast): the writer sits next to the feed thread.
/// * Dropping the writer without [`finish`](Self::finish) still completes the
///   gzip trailer (best effort, errors ignored).
pub struct CaptureWriter {
    dir: PathBuf,
    prefix: String,
    header: Vec<u8>,
    rotation: Rotation,
    cur: Option<OpenFile>,
    files: Vec<PathBuf>,
    seq: u32,
}

impl fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("rotation", &self.rotation)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

#[cold]
fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

impl CaptureWriter {
    /// Prepares a writer into `dir` (created if missing). Header keys must be
    /// non-empty without whitespace or `=`; values must not contain line
    /// breaks; the prefix must be non-empty without path separators.
    pub fn create(
        dir: &Path,
        prefix: &str,
        header: &[(&str, &str)],
        rotation: Rotation,
    ) -> io::Result<Self> {
        if prefix.is_empty() || prefix.contains(['/', '\\']) {
            return Err(invalid("capture prefix must be a non-empty file-name part"));
        }
        let mut text = Vec::new();
        for (k, v) in header {
            if k.is_empty() || k.contains(|c: char| c == '=' || c.is_whitespace()) {
                return Err(invalid(
                    "capture header key must be non-empty, without '=' or whitespace",
                ));
            }
            if v.contains(['\n', '\r']) {
                return Err(invalid(
                    "capture header value must not contain a line break",
                ));
            }
            writeln!(text, "# {k}={v}")?;
        }
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            header: text,
            rotation,
            cur: None,
            files: Vec::new(),
            seq: 0,
        })
    }

    /// Appends `"<recv_ns> <frame>\n"`. Frames containing `\n`, ending in
    /// `\r` or not valid UTF-8 are rejected (`InvalidInput`): the reader would
    /// not give them back unchanged.
    pub fn write(&mut self, recv_ns: i64, frame: &[u8]) -> io::Result<()> {
        if frame.contains(&b'\n') {
            return Err(invalid("capture frame contains a newline"));
        }
        if frame.last() == Some(&b'\r') {
            return Err(invalid("capture frame ends with a carriage return"));
        }
        if std::str::from_utf8(frame).is_err() {
            return Err(invalid("capture frame is not valid UTF-8"));
        }
        let mut ts = [0u8; 20];
        let ts = fmt_i64(recv_ns, &mut ts);
        let len = (ts.len() + 1 + frame.len() + 1) as u64;
        let mut cur = match self.cur.take() {
            Some(cur) if !self.should_rotate(&cur, recv_ns, len) => cur,
            Some(cur) => {
                cur.finish()?;
                self.open_next(recv_ns)?
            }
            None => self.open_next(recv_ns)?,
        };
        let res = (|| {
            cur.enc.write_all(ts)?;
            cur.enc.write_all(b" ")?;
            cur.enc.write_all(frame)?;
            cur.enc.write_all(b"\n")
        })();
        if res.is_ok() {
            cur.bytes += len;
            cur.records += 1;
        }
        self.cur = Some(cur);
        res
    }

    /// Flushes compressed data to the current file (a gzip sync flush): a
    /// concurrent reader sees every record written so far, followed by a
    /// truncated-gzip error until the file is finished.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.cur {
            Some(cur) => cur.enc.flush(),
            None => Ok(()),
        }
    }

    /// Completes the current file and returns every file written, in order.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        if let Some(cur) = self.cur.take() {
            cur.finish()?;
        }
        Ok(std::mem::take(&mut self.files))
    }

    /// Files created so far, in order (the last one may still be open).
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn should_rotate(&self, cur: &OpenFile, recv_ns: i64, len: u64) -> bool {
        if cur.records == 0 {
            return false;
        }
        let by_size = self
            .rotation
            .max_bytes
            .is_some_and(|max| cur.bytes.saturating_add(len) > max);
        let by_age = self
            .rotation
            .max_age_ns
            .is_some_and(|max| recv_ns.saturating_sub(cur.first_recv_ns) >= max);
        by_size || by_age
    }

    fn open_next(&mut self, recv_ns: i64) -> io::Result<OpenFile> {
        let stamp = utc_stamp(recv_ns);
        let (path, file) = loop {
            let path = self
                .dir
                .join(format!("{}-{stamp}-{:04}.txt.gz", self.prefix, self.seq));
            self.seq += 1;
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        };
        self.files.push(path);
        let mut enc = GzEncoder::new(BufWriter::with_capacity(RAW_BUF, file), Compression::fast());
        enc.write_all(&self.header)?;
        Ok(OpenFile {
            enc,
            bytes: self.header.len() as u64,
            first_recv_ns: recv_ns,
            records: 0,
        })
    }
}

/// Formats `v` in decimal into `buf`, returning the used tail.
fn fmt_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut a = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (a % 10) as u8;
        a /= 10;
        if a == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// `yyyymmddThhmmss` (UTC) of a ns timestamp.
fn utc_stamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(1_723_161_253_937_085_768), "20240808T235413");
        assert_eq!(utc_stamp(951_782_400_000_000_000), "20000229T000000");
        assert_eq!(utc_stamp(-1), "19691231T235959");
    }

    #[test]
    fn i64_prefixes() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"1.5"), None);
        assert_eq!(
            parse_i64(b"1723161253937085768"),
            Some(1_723_161_253_937_085_768)
        );
        assert_eq!(parse_i64(b"-0000000000000001"), Some(-1));
        assert_eq!(parse_i64(b"123456789012345"), Some(123_456_789_012_345));
        assert_eq!(parse_i64(b"1234567890123456"), Some(1_234_567_890_123_456));
        for bad in [
            &b"12345678x0123456789"[..],
            b"1234567890123456/89",
            b"1234567:",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        // Against std on every length and a non-digit at every position.
        let text = "9223372036854775807";
        for n in 1..=text.len() {
            let t = &text[..n];
            assert_eq!(parse_i64(t.as_bytes()), t.parse().ok(), "{t}");
            for at in 0..n {
                for c in [b'/', b':', b' ', 0x80] {
                    let mut b = t.as_bytes().to_vec();
                    b[at] = c;
                    assert_eq!(parse_i64(&b), None, "{b:?}");
                }
            }
        }
        for v in [0, 7, -7, i64::MAX, i64::MIN, 1_723_161_253_937_085_768] {
            let mut b = [0u8; 20];
            assert_eq!(fmt_i64(v, &mut b), v.to_string().as_bytes());
        }
    }

    #[test]
    fn header_tokens() {
        let mut h = CaptureHeader::default();
        h.parse_line(" venue=binance-spot source=a@b:c licence=MIT");
        h.parse_line(" symbols=BTCUSDT,ETHUSDT");
        h.parse_line(" note=free text (a=b, c) here ");
        h.parse_line(" url=wss://x continued words");
        h.finalize();
        assert_eq!(h.venue.as_deref(), Some("binance-spot"));
        assert_eq!(h.symbols, ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(h.get("note"), Some("free text (a=b, c) here"));
        assert_eq!(h.get("url"), Some("wss://x continued words"));
        assert_eq!(h.get("licence"), Some("MIT"));
        assert_eq!(h.fields.len(), 6);
    }
}
