//! The sink thread: turns signal rows into JSON Lines (SIGNALS.md section 10)
//! and keeps the latest value of every output for the live view.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use feeds::event::{InstrumentId, InstrumentInfo};

use super::clock::mono_ns;
use super::processor::SinkMsg;
use super::stats::{Registry, Stage, StageSamples};

/// Latest values per instrument, for the live terminal view.
#[derive(Clone, Debug, Default)]
pub struct LiveView {
    /// Output names (index = output id).
    pub outputs: Vec<String>,
    /// Per instrument: info and the latest value of each output.
    pub instruments: Vec<(InstrumentInfo, Vec<Option<f64>>)>,
}

/// Registry name of an instrument's venue (`"unknown"` for an index outside
/// the registry).
fn venue_name(info: &InstrumentInfo) -> &'static str {
    feeds::venue::VENUES
        .get(info.venue as usize)
        .map_or("unknown", |v| v.name)
}

/// `(venue, symbol)` of every announced instrument, by id.
#[derive(Debug, Default)]
pub struct InstrumentNames {
    names: Vec<Option<(&'static str, String)>>,
}

impl InstrumentNames {
    /// Records an instrument announcement.
    pub fn add(&mut self, info: &InstrumentInfo) {
        let idx = info.inst.index();
        if idx >= self.names.len() {
            self.names.resize(idx + 1, None);
        }
        self.names[idx] = Some((venue_name(info), info.symbol.as_str().to_owned()));
    }

    /// `(venue, symbol)` of `inst`, if announced.
    #[must_use]
    pub fn get(&self, inst: InstrumentId) -> Option<(&'static str, &str)> {
        self.names
            .get(inst.index())
            .and_then(|n| n.as_ref())
            .map(|(v, s)| (*v, s.as_str()))
    }
}

/// Rows buffered before they go to the underlying writer in one `write_all`
/// (the writer is its own buffer: rows are rendered straight into it).
const BUF_CAP: usize = 1 << 20;

/// Longest `{"ts_ns":…,"recv_ns":…` (two 20-byte `i64`s): the block a head
/// is rendered in and copied as.
const HEAD_MAX: usize = 64;

/// The block a row's middle is copied as when it fits (names of common
/// length: `binance-spot`, `BTCUSDT`, `trade_imbalance_10s` make 82 bytes).
const MIDDLE_BLOCK: usize = 128;

/// The parts of one `(instrument, output)` pair's rows that do not change
/// from row to row.
struct RowSlot {
    /// `,"venue":"…","symbol":"…","signal":"…","value":`, escaped once when
    /// the instrument is announced, zero-padded to at least
    /// [`MIDDLE_BLOCK`] bytes.
    middle: Box<[u8]>,
    /// Length of the middle without its padding.
    middle_len: usize,
    /// Bits of the last value written for the pair (a NaN, never written,
    /// until the first) and its text: signals such as `mid` repeat
    /// their value on most rows, and the text of an `f64` is a function of
    /// its bits.
    last_bits: u64,
    last_len: u8,
    last_text: [u8; fmt::F64_MAX_LEN],
}

impl RowSlot {
    fn new(venue: &str, symbol: &str, signal: &str) -> Self {
        let mut m = Vec::with_capacity(48 + venue.len() + symbol.len() + signal.len());
        m.extend_from_slice(b",\"venue\":\"");
        json_escape_into(&mut m, venue);
        m.extend_from_slice(b"\",\"symbol\":\"");
        json_escape_into(&mut m, symbol);
        m.extend_from_slice(b"\",\"signal\":\"");
        json_escape_into(&mut m, signal);
        m.extend_from_slice(b"\",\"value\":");
        let middle_len = m.len();
        m.resize(middle_len.max(MIDDLE_BLOCK), 0);
        Self {
            middle: m.into_boxed_slice(),
            middle_len,
            last_bits: f64::NAN.to_bits(),
            last_len: 0,
            last_text: [0; fmt::F64_MAX_LEN],
        }
    }

    /// Appends the shortest round-trip text of the finite `v`.
    #[inline]
    fn push_value(&mut self, out: &mut Vec<u8>, v: f64) {
        let bits = v.to_bits();
        if bits != self.last_bits {
            self.last_len = fmt::write_f64(&mut self.last_text, v) as u8;
            self.last_bits = bits;
        }
        fmt::append_block(out, &self.last_text, usize::from(self.last_len));
    }

    /// Appends the middle.
    #[inline]
    fn push_middle(&self, out: &mut Vec<u8>) {
        match self.middle.first_chunk::<MIDDLE_BLOCK>() {
            Some(m) if self.middle_len <= MIDDLE_BLOCK => {
                fmt::append_block(out, m, self.middle_len);
            }
            _ => out.extend_from_slice(&self.middle[..self.middle_len]),
        }
    }
}

/// Serializes rows into a writer, as JSON Lines (SIGNALS.md section 10).
///
/// Per row it appends three pre-rendered pieces and one number to its own
/// buffer: the frame's `{"ts_ns":…,"recv_ns":…` (rendered once per frame:
/// the rows of one frame arrive back to back and share both timestamps), the
/// pair's constant middle ([`RowSlot`]), and the value (its shortest
/// round-trip text, as ryu writes it; or the pair's last text when the value
/// did not change). The buffer goes to `w` in
/// [`BUF_CAP`] chunks and on [`flush`](Self::flush); pass an unbuffered
/// writer.
pub struct JsonlWriter<W: Write> {
    w: W,
    outputs: Arc<[String]>,
    /// By instrument id, then output id; empty for an id not announced.
    slots: Vec<Box<[RowSlot]>>,
    /// `{"ts_ns":…,"recv_ns":…` of the last row.
    head: Head,
    buf: Vec<u8>,
    cap: usize,
    /// Rows written.
    pub rows: u64,
}

impl<W: Write> JsonlWriter<W> {
    /// New writer for the given output names.
    pub fn new(w: W, outputs: Arc<[String]>) -> Self {
        Self::with_capacity(w, outputs, BUF_CAP)
    }

    /// New writer that passes its rows on once `cap` bytes are buffered.
    pub fn with_capacity(w: W, outputs: Arc<[String]>, cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            w,
            outputs,
            slots: Vec::new(),
            head: Head::default(),
            // Room for the row that crosses `cap`, so it does not reallocate.
            buf: Vec::with_capacity(cap + 512),
            cap,
            rows: 0,
        }
    }

    /// A renderer of single rows ([`render_row`](Self::render_row)) that
    /// never writes anywhere: the JSON payload of the network sinks.
    #[must_use]
    pub fn renderer(outputs: Arc<[String]>) -> JsonlWriter<io::Sink> {
        JsonlWriter {
            w: io::sink(),
            outputs,
            slots: Vec::new(),
            head: Head::default(),
            buf: Vec::with_capacity(512),
            cap: usize::MAX,
            rows: 0,
        }
    }

    /// Renders `msg` alone: its JSON Lines row without the `\n` (empty for
    /// an announcement, a non-finite value or an unknown pair).
    pub fn render_row(&mut self, msg: &SinkMsg) -> &[u8] {
        self.buf.clear();
        // With `cap` unreachable nothing is passed on, so this cannot fail.
        let _ = self.write(msg);
        let n = self.buf.len().saturating_sub(1);
        &self.buf[..n]
    }

    /// Handles one message.
    // Not inlined into the sink loop: inlined, it made the loop's own
    // bookkeeping cost ~80 more instructions per message when no JSONL is
    // written (callgrind, spot capture).
    #[inline(never)]
    pub fn write(&mut self, msg: &SinkMsg) -> io::Result<()> {
        match *msg {
            SinkMsg::Instrument(info) => {
                self.announce(&info);
                Ok(())
            }
            SinkMsg::Row {
                ts_ns,
                recv_ns,
                inst,
                out,
                value,
                ..
            } => {
                if !value.is_finite() {
                    return Ok(());
                }
                let Some(slot) = self
                    .slots
                    .get_mut(inst.index())
                    .and_then(|s| s.get_mut(out.0 as usize))
                else {
                    return Ok(());
                };
                self.head.set(ts_ns, recv_ns);
                let b = &mut self.buf;
                fmt::append_block(b, &self.head.text, self.head.len);
                slot.push_middle(b);
                slot.push_value(b, value);
                b.extend_from_slice(b"}\n");
                self.rows += 1;
                if b.len() >= self.cap {
                    self.write_buf()?;
                }
                Ok(())
            }
        }
    }

    /// Renders the constant parts of `info`'s rows (again, if re-announced).
    fn announce(&mut self, info: &InstrumentInfo) {
        let idx = info.inst.index();
        if idx >= self.slots.len() {
            self.slots.resize_with(idx + 1, Box::default);
        }
        let (venue, symbol) = (venue_name(info), info.symbol.as_str());
        self.slots[idx] = self
            .outputs
            .iter()
            .map(|signal| RowSlot::new(venue, symbol, signal))
            .collect();
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes the buffered rows and flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buf()?;
        self.w.flush()
    }
}

impl<W: Write> Drop for JsonlWriter<W> {
    /// Like `BufWriter`: rows not yet written go out best-effort (errors are
    /// ignored; call [`flush`](Self::flush) to see them).
    fn drop(&mut self) {
        let _ = self.write_buf();
    }
}

/// `10^8`: a 19-digit timestamp is 11 leading digits, then 8.
const E8: u64 = 100_000_000;

/// The `{"ts_ns":<ts_ns>,"recv_ns":<recv_ns>` of a frame's rows, rendered
/// once per frame (its rows arrive back to back and share both times).
struct Head {
    /// `(ts_ns, recv_ns)` that `text` was rendered for.
    key: Option<(i64, i64)>,
    /// The text (`len` bytes, then junk).
    text: [u8; HEAD_MAX],
    len: usize,
    /// `ts_ns / 10^8` and `recv_ns / 10^8` in `text` while both times have
    /// 19 digits (every ns time since 2001) and `text` has the fixed
    /// layout: from frame to frame their first 11 digits rarely change,
    /// so those stay and only the last 8 are rendered (itoa and four
    /// `memcpy` calls were ~265 instructions a frame).
    leading: Option<(u64, u64)>,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            key: None,
            text: [0; HEAD_MAX],
            len: 0,
            leading: None,
        }
    }
}

impl Head {
    /// Renders the head of a row at `(ts_ns, recv_ns)`.
    #[inline]
    fn set(&mut self, ts_ns: i64, recv_ns: i64) {
        if self.key == Some((ts_ns, recv_ns)) {
            return;
        }
        self.key = Some((ts_ns, recv_ns));
        let nineteen = |v: i64| u64::try_from(v).ok().filter(|&v| v >= E8 * E8 * 100);
        let (Some(t), Some(r)) = (nineteen(ts_ns), nineteen(recv_ns)) else {
            self.leading = None;
            self.render_any(ts_ns, recv_ns);
            return;
        };
        let lead = (t / E8, r / E8);
        let text = &mut self.text;
        match self.leading {
            Some(was) if was == lead => {}
            Some(was) if was.0 == lead.0 => eleven_digits(&mut text[28 + 11..50], lead.1),
            Some(was) if was.1 == lead.1 => eleven_digits(&mut text[9..20], lead.0),
            _ => {
                text[..9].copy_from_slice(b"{\"ts_ns\":");
                eleven_digits(&mut text[9..20], lead.0);
                text[28..39].copy_from_slice(b",\"recv_ns\":");
                eleven_digits(&mut text[39..50], lead.1);
            }
        }
        text[20..28].copy_from_slice(&eight_digits((t % E8) as u32));
        text[50..58].copy_from_slice(&eight_digits((r % E8) as u32));
        self.len = 58;
        self.leading = Some(lead);
    }

    /// [`set`](Self::set) for any times.
    #[cold]
    fn render_any(&mut self, ts_ns: i64, recv_ns: i64) {
        let mut ib = itoa::Buffer::new();
        let mut at = 0;
        let mut put = |piece: &[u8]| {
            self.text[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        };
        put(b"{\"ts_ns\":");
        put(ib.format(ts_ns).as_bytes());
        put(b",\"recv_ns\":");
        put(ib.format(recv_ns).as_bytes());
        self.len = at;
    }
}

/// The 11 digits of `x` (`10^10 <= x < 10^11`, the leading digits of a
/// 19-digit time) into `out`.
#[inline]
fn eleven_digits(out: &mut [u8], x: u64) {
    out[..3].copy_from_slice(&eight_digits((x / E8) as u32)[5..]);
    out[3..11].copy_from_slice(&eight_digits((x % E8) as u32));
}

/// The eight decimal digits of `x < 10^8` (leading zeros included), in
/// SWAR steps on one `u64`: split in two halves of four digits (32-bit
/// lanes), each in two pairs (16-bit lanes), each pair in two digits
/// (bytes); a division by 100 or 10 of a lane is a multiply-shift that is
/// exact in its range (`n * 5243 >> 19` for `n < 10^4`, `n * 103 >> 10` for
/// `n < 100`) and does not reach into the next lane.
#[inline]
fn eight_digits(x: u32) -> [u8; 8] {
    debug_assert!(x < 100_000_000);
    let x = u64::from(x);
    let v = (x / 10_000) | ((x % 10_000) << 32);
    let hundreds = ((v * 5243) >> 19) & 0x0000_007F_0000_007F;
    let v = hundreds | ((v - hundreds * 100) << 16);
    let tens = ((v * 103) >> 10) & 0x000F_000F_000F_000F;
    let v = tens | ((v - tens * 10) << 8);
    (v | 0x3030_3030_3030_3030).to_le_bytes()
}

/// Number formatting straight into an output buffer; the sink's only
/// `unsafe`.
mod fmt {
    /// Longest text of an `f64` (`-2.2250738585072014e-308` is 24 bytes;
    /// `ryu::Buffer` and `zmij::Buffer` are this size).
    pub(super) const F64_MAX_LEN: usize = 24;

    /// Writes the shortest round-trip text of the finite `v` (what
    /// `ryu::Buffer::format_finite` returns, byte for byte) at the start of
    /// `out`; returns its length.
    ///
    /// The digits come from `zmij` (what serde_json now formats with):
    /// ~120 fewer instructions a value than ryu's (~240), the largest single
    /// cost of a JSONL row. Its text differs from ryu's only in a positive
    /// exponent's sign (`1e+16` where ryu writes `1e16`; tested on random
    /// bits), which only numbers of magnitude 1e16 and above take: for
    /// those the `+` is dropped, so the output stays what it was.
    #[inline]
    pub(super) fn write_f64(out: &mut [u8; F64_MAX_LEN], v: f64) -> usize {
        debug_assert!(v.is_finite());
        let mut b = zmij::Buffer::new();
        let s = b.format_finite(v).as_bytes();
        debug_assert!(s.len() <= F64_MAX_LEN);
        let n = s.len().min(F64_MAX_LEN);
        out[..n].copy_from_slice(&s[..n]);
        if v.abs() < 1e15 {
            return n;
        }
        match out[..n].iter().position(|&c| c == b'+') {
            Some(plus) => {
                out.copy_within(plus + 1..n, plus);
                n - 1
            }
            None => n,
        }
    }

    /// Appends `block[..len]` to `out` by copying all `N` bytes of `block`
    /// into its spare capacity: a fixed-size copy the compiler inlines as a
    /// few vector moves, where `extend_from_slice` of a length known only
    /// at run time calls `memcpy` (three calls a row; measured: ~310
    /// instructions per message of the JSONL replay, spot capture).
    /// The bytes past `len` are left in the spare capacity, uncounted.
    #[inline(always)]
    pub(super) fn append_block<const N: usize>(out: &mut Vec<u8>, block: &[u8; N], len: usize) {
        let len = len.min(N);
        out.reserve(N);
        let at = out.len();
        // SAFETY: `reserve` made room for `N` bytes after `at`; the copy
        // writes exactly those from `block` (`N` readable bytes, not part
        // of `out`: it is borrowed apart from the `&mut Vec`), so the first
        // `len <= N` of them are initialized when the length grows by `len`.
        unsafe {
            std::ptr::copy_nonoverlapping(block.as_ptr(), out.as_mut_ptr().add(at), N);
            out.set_len(at + len);
        }
    }
}

/// A second, columnar consumer of the row stream (e.g. the Parquet writer of
/// `engine replay --parquet`). The sink thread feeds it every message after
/// the JSONL writer, so it runs off the hot path; `outputs` are the output
/// names (index = output id).
pub trait RowCollector: Send {
    /// Handles one message.
    fn write(&mut self, msg: &SinkMsg, outputs: &[String]) -> io::Result<()>;
    /// The sink thread found nothing to do (a moment to flush or hand on
    /// what was held back). Default: nothing.
    fn idle(&mut self) {}
    /// Completes the output after the last message.
    fn finish(&mut self, outputs: &[String]) -> io::Result<()>;
}

fn json_escape_into(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            }
            _ => out.push(b),
        }
    }
}

/// State the sink shares with the live view.
pub struct SinkShared {
    /// Latest values.
    pub view: Mutex<LiveView>,
}

/// Sink-side bookkeeping for the live view and the sink latency stage.
pub struct SinkState {
    view: LiveView,
    /// Where the view is published; `None`: no one reads it, so none is kept.
    shared: Option<Arc<SinkShared>>,
    samples: StageSamples,
    /// `(t_frame, now)` of the last row stamped in this drain round.
    stamp: Option<(u64, u64)>,
    last_publish: u64,
    /// Instrument id → index into `view.instruments` (`u32::MAX`: unknown).
    slot_of: Vec<u32>,
}

impl SinkState {
    /// New state (keeping a live view only when it is `shared`).
    pub fn new(outputs: &[String], shared: Option<Arc<SinkShared>>, registry: &Registry) -> Self {
        Self {
            view: LiveView {
                outputs: outputs.to_vec(),
                instruments: Vec::new(),
            },
            shared,
            samples: registry.stage_samples(Stage::FrameToSink),
            stamp: None,
            last_publish: 0,
            slot_of: Vec::new(),
        }
    }

    /// Records a message after it was written.
    ///
    /// The rows of one frame (one per signal output) arrive back to back:
    /// they share one clock read per drain round ([`maybe_publish`], called
    /// after every round, starts a new one), a few hundred ns apart at most.
    ///
    /// [`maybe_publish`]: Self::maybe_publish
    pub fn observe(&mut self, msg: &SinkMsg) {
        match *msg {
            SinkMsg::Instrument(_) if self.shared.is_none() => {}
            SinkMsg::Instrument(info) => {
                let n = self.view.outputs.len();
                let idx = info.inst.index();
                if idx >= self.slot_of.len() {
                    self.slot_of.resize(idx + 1, u32::MAX);
                }
                self.slot_of[idx] = self.view.instruments.len() as u32;
                self.view.instruments.push((info, vec![None; n]));
            }
            SinkMsg::Row {
                inst,
                out,
                value,
                t_frame,
                ..
            } => {
                // One sample per frame: its first row to reach the sink.
                if self.stamp.is_none_or(|(f, _)| f != t_frame) {
                    let now = mono_ns();
                    self.stamp = Some((t_frame, now));
                    self.samples.record(now.saturating_sub(t_frame));
                }
                let slot = self.slot_of.get(inst.index()).copied().unwrap_or(u32::MAX);
                if let Some((_, vals)) = self.view.instruments.get_mut(slot as usize) {
                    if let Some(v) = vals.get_mut(out.0 as usize) {
                        *v = Some(value);
                    }
                }
            }
        }
    }

    /// Publishes the view at most every 100 ms (or when forced).
    pub fn maybe_publish(&mut self, force: bool) {
        self.stamp = None;
        if self.shared.is_none() {
            return;
        }
        let now = mono_ns();
        if !force && now.saturating_sub(self.last_publish) < 100_000_000 {
            return;
        }
        self.last_publish = now;
        if let Some(Ok(mut v)) = self.shared.as_ref().map(|s| s.view.lock()) {
            v.clone_from(&self.view);
        }
    }
}

#[cfg(test)]
mod tests {
    use feeds::event::{Scale, Symbol};
    use proptest::prelude::*;
    use signals::OutputId;

    use super::*;

    fn info(id: u32, venue: u16, symbol: &str) -> InstrumentInfo {
        InstrumentInfo {
            inst: InstrumentId(id),
            venue,
            symbol: Symbol::new(symbol).expect("short symbol"),
            scale: Scale::default(),
            wire: Scale::default(),
        }
    }

    fn row(ts_ns: i64, recv_ns: i64, inst: u32, out: u16, value: f64) -> SinkMsg {
        SinkMsg::Row {
            ts_ns,
            recv_ns,
            inst: InstrumentId(inst),
            out: OutputId(out),
            value,
            t_frame: 0,
        }
    }

    /// The row formatting before pre-rendered prefixes (every field rendered
    /// per row), kept as the reference for byte identity.
    fn reference(msgs: &[SinkMsg], outputs: &[String]) -> Vec<u8> {
        let mut names = InstrumentNames::default();
        let mut o = Vec::new();
        for m in msgs {
            match *m {
                SinkMsg::Instrument(info) => names.add(&info),
                SinkMsg::Row {
                    ts_ns,
                    recv_ns,
                    inst,
                    out,
                    value,
                    ..
                } => {
                    let (Some((venue, symbol)), Some(signal)) =
                        (names.get(inst), outputs.get(out.0 as usize))
                    else {
                        continue;
                    };
                    if !value.is_finite() {
                        continue;
                    }
                    o.extend_from_slice(b"{\"ts_ns\":");
                    o.extend_from_slice(itoa::Buffer::new().format(ts_ns).as_bytes());
                    o.extend_from_slice(b",\"recv_ns\":");
                    o.extend_from_slice(itoa::Buffer::new().format(recv_ns).as_bytes());
                    o.extend_from_slice(b",\"venue\":\"");
                    o.extend_from_slice(venue.as_bytes());
                    o.extend_from_slice(b"\",\"symbol\":\"");
                    json_escape_into(&mut o, symbol);
                    o.extend_from_slice(b"\",\"signal\":\"");
                    json_escape_into(&mut o, signal);
                    o.extend_from_slice(b"\",\"value\":");
                    o.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
                    o.extend_from_slice(b"}\n");
                }
            }
        }
        o
    }

    fn written(msgs: &[SinkMsg], outputs: &[String], cap: usize) -> (Vec<u8>, u64) {
        let mut w = JsonlWriter::with_capacity(Vec::new(), outputs.into(), cap);
        for m in msgs {
            w.write(m).expect("Vec never fails");
        }
        w.flush().expect("Vec never fails");
        let rows = w.rows;
        (std::mem::take(&mut w.w), rows)
    }

    fn outputs() -> Vec<String> {
        let mut o = ["mid", "bb_20_2.upper", "we\"ird\\name\u{1}", "ünïcode"]
            .map(String::from)
            .to_vec();
        // A middle longer than `MIDDLE_BLOCK`.
        o.push("long_".repeat(30));
        o
    }

    #[test]
    fn digit_blocks_are_itoa() {
        let mut ib = itoa::Buffer::new();
        for x in (0..100_000_000u32)
            .step_by(997)
            .chain(0..20_000)
            .chain([99_999_999])
        {
            assert_eq!(super::eight_digits(x), *format!("{x:08}").as_bytes(), "{x}");
        }
        // Heads of successive frames, with either, both or neither of the
        // leading 11 digits changing, and times of other lengths between.
        let ends = [
            0,
            -1,
            999_999_999_999_999_999,
            1_000_000_000_000_000_000,
            1_723_161_254_087_891_268,
            i64::MAX,
            i64::MIN,
        ];
        let times: Vec<i64> = ends
            .into_iter()
            .chain((0..3_000i64).map(|k| 1_000_000_000_000_000_000 + k * 2_700_000_000_000_000))
            .chain((0..3_000i64).map(|k| 1_723_161_254_000_000_000 + k * k * 7_777))
            .collect();
        let mut head = super::Head::default();
        for w in times.windows(3) {
            for (t, r) in [(w[0], w[1]), (w[0], w[2]), (w[2], w[1]), (w[2], w[2])] {
                head.set(t, r);
                let want = format!("{{\"ts_ns\":{},\"recv_ns\":{}", ib.format(t), r);
                assert_eq!(&head.text[..head.len], want.as_bytes(), "{t} {r}");
            }
        }
    }

    #[test]
    fn rows_are_the_reference_bytes_and_skip_what_cannot_be_written() {
        let outs = outputs();
        let msgs = [
            row(1, 2, 0, 0, 1.0), // before the announcement: dropped
            SinkMsg::Instrument(info(0, 0, "BTCUSDT")),
            SinkMsg::Instrument(info(2, u16::MAX, "a\"b\\c")),
            row(
                1_723_161_254_087_891_268,
                1_723_161_254_087_891_269,
                0,
                0,
                61837.635,
            ),
            row(
                1_723_161_254_087_891_268,
                1_723_161_254_087_891_269,
                0,
                1,
                61837.635,
            ),
            row(
                1_723_161_254_087_891_268,
                1_723_161_254_087_891_269,
                0,
                0,
                61837.635,
            ),
            row(-5, 7, 0, 2, -0.0),
            row(-5, 7, 0, 2, 0.0),
            row(-5, 7, 0, 3, f64::NAN),
            row(-5, 7, 0, 3, f64::INFINITY),
            row(-5, 7, 0, 4, 2.5), // a middle longer than `MIDDLE_BLOCK`
            row(-5, 7, 0, 5, 1.0), // no such output
            row(-5, 7, 1, 0, 1.0), // not announced
            row(-5, 8, 2, 2, 1e300),
            row(-5, 8, 2, 3, 5e-324),
            SinkMsg::Instrument(info(0, 1, "ETHUSDT")), // re-announced
            row(-5, 8, 0, 0, 61837.635),
        ];
        let (got, rows) = written(&msgs, &outs, BUF_CAP);
        let want = reference(&msgs, &outs);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(rows, 9);
        let text = String::from_utf8(got).expect("UTF-8");
        let first = text.lines().next().expect("a row");
        let v: serde_json::Value = serde_json::from_str(first).expect("JSON");
        assert_eq!(v["venue"], "binance-spot");
        assert_eq!(v["value"], 61837.635);
        assert!(text.contains(r#""symbol":"A\"B\\C","signal":"we\"ird\\name\u0001","#));
        assert!(text.contains(r#""venue":"unknown""#));
        assert!(text.lines().last().is_some_and(|l| l.contains("ETHUSDT")));
    }

    #[test]
    fn dropping_the_writer_writes_the_buffered_rows() {
        let mut sink = Vec::new();
        {
            let mut w = JsonlWriter::new(&mut sink, vec!["mid".to_owned()].into());
            w.write(&SinkMsg::Instrument(info(0, 0, "BTCUSDT")))
                .unwrap();
            w.write(&row(1, 2, 0, 0, 3.5)).unwrap();
        }
        assert_eq!(
            sink,
            b"{\"ts_ns\":1,\"recv_ns\":2,\"venue\":\"binance-spot\",\"symbol\":\"BTCUSDT\",\"signal\":\"mid\",\"value\":3.5}\n"
        );
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            // Repeats, to hit the last-value text.
            prop::sample::select(vec![0.0, -0.0, 1.0, 61837.635, 0.1]),
            any::<f64>(),
        ]
    }

    fn msg() -> impl Strategy<Value = SinkMsg> {
        prop_oneof![
            1 => (0u32..3, 0u16..3, "[A-Za-z0-9\"\\\\\u{1}\u{1f}-]{0,8}")
                .prop_map(|(i, v, s)| SinkMsg::Instrument(info(i, v, &s))),
            12 => (0i64..3, 0i64..3, 0u32..4, 0u16..6, value())
                .prop_map(|(t, r, i, o, v)| row(t * 1_000_000_007, r + i64::MIN / 2, i, o, v)),
        ]
    }

    /// Every power of ten an `f64` reaches, its neighbours, and the
    /// magnitudes where the text switches between plain and exponent, of
    /// both signs: zmij's text with the `+` dropped is ryu's.
    #[test]
    fn push_f64_is_ryu_format_finite_at_every_power_of_ten() {
        let mut values = vec![
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            1e15,
            1e16,
            1e17,
            1e-5,
        ];
        for e in -323..=308 {
            let p: f64 = format!("1e{e}").parse().unwrap();
            values.extend([p, p.next_down(), p.next_up(), 9.999_999_999_999_999 * p]);
        }
        for v in values.into_iter().flat_map(|v| [v, -v]) {
            if !v.is_finite() {
                continue;
            }
            let mut out = [b'x'; fmt::F64_MAX_LEN];
            let n = fmt::write_f64(&mut out, v);
            let mut rb = ryu::Buffer::new();
            assert_eq!(&out[..n], rb.format_finite(v).as_bytes(), "{v:e}");
        }
    }

    proptest! {
        #[test]
        fn any_message_sequence_is_written_as_the_reference(
            msgs in prop::collection::vec(msg(), 0..200),
            cap in prop::sample::select(vec![1usize, 97, 4096]),
        ) {
            let outs = outputs();
            let (got, rows) = written(&msgs, &outs, cap);
            prop_assert_eq!(&got, &reference(&msgs, &outs));
            prop_assert_eq!(rows as usize, got.iter().filter(|&&b| b == b'\n').count());
        }

        /// Random mantissas at exponents around the magnitudes where both
        /// switch to an exponent (every power of ten is checked below).
        #[test]
        fn push_f64_is_ryu_format_finite_near_the_exponent_switch(
            mantissa in 1.0f64..10.0,
            exp in -30i32..30,
            neg in any::<bool>(),
        ) {
            for v in [mantissa * 10f64.powi(exp), 10f64.powi(exp), f64::MAX, f64::MIN_POSITIVE, 5e-324] {
                let v = if neg { -v } else { v };
                let mut out = [b'x'; fmt::F64_MAX_LEN];
                let n = fmt::write_f64(&mut out, v);
                let mut rb = ryu::Buffer::new();
                prop_assert_eq!(&out[..n], rb.format_finite(v).as_bytes());
            }
        }

        #[test]
        fn push_f64_is_ryu_format_finite(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let mut out = [b'x'; fmt::F64_MAX_LEN];
            let n = fmt::write_f64(&mut out, v);
            let mut rb = ryu::Buffer::new();
            prop_assert_eq!(&out[..n], rb.format_finite(v).as_bytes());
            let back: f64 = std::str::from_utf8(&out[..n]).unwrap().parse().unwrap();
            prop_assert_eq!(back.to_bits(), bits);
        }
    }
}
