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
        let venue = feeds::venue::VENUES
            .get(info.venue as usize)
            .map_or("unknown", |v| v.name);
        self.names[idx] = Some((venue, info.symbol.as_str().to_owned()));
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

/// Serializes rows into a writer.
pub struct JsonlWriter<W: Write> {
    w: W,
    outputs: Arc<[String]>,
    names: InstrumentNames,
    line: Vec<u8>,
    /// Rows written.
    pub rows: u64,
}

impl<W: Write> JsonlWriter<W> {
    /// New writer for the given output names.
    pub fn new(w: W, outputs: Arc<[String]>) -> Self {
        Self {
            w,
            outputs,
            names: InstrumentNames::default(),
            line: Vec::with_capacity(256),
            rows: 0,
        }
    }

    /// Handles one message.
    pub fn write(&mut self, msg: &SinkMsg) -> io::Result<()> {
        match *msg {
            SinkMsg::Instrument(info) => {
                self.names.add(&info);
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
                let Some((venue, symbol)) = self.names.get(inst) else {
                    return Ok(());
                };
                let Some(signal) = self.outputs.get(out.0 as usize) else {
                    return Ok(());
                };
                if !value.is_finite() {
                    return Ok(());
                }
                let mut ib = itoa::Buffer::new();
                let mut rb = ryu::Buffer::new();
                let l = &mut self.line;
                l.clear();
                l.extend_from_slice(b"{\"ts_ns\":");
                l.extend_from_slice(ib.format(ts_ns).as_bytes());
                l.extend_from_slice(b",\"recv_ns\":");
                l.extend_from_slice(ib.format(recv_ns).as_bytes());
                l.extend_from_slice(b",\"venue\":\"");
                l.extend_from_slice(venue.as_bytes());
                l.extend_from_slice(b"\",\"symbol\":\"");
                json_escape_into(l, symbol);
                l.extend_from_slice(b"\",\"signal\":\"");
                json_escape_into(l, signal);
                l.extend_from_slice(b"\",\"value\":");
                l.extend_from_slice(rb.format_finite(value).as_bytes());
                l.extend_from_slice(b"}\n");
                self.rows += 1;
                self.w.write_all(l)
            }
        }
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// A second, columnar consumer of the row stream (e.g. the Parquet writer of
/// `engine replay --parquet`). The sink thread feeds it every message after
/// the JSONL writer, so it runs off the hot path; `outputs` are the output
/// names (index = output id).
pub trait RowCollector: Send {
    /// Handles one message.
    fn write(&mut self, msg: &SinkMsg, outputs: &[String]) -> io::Result<()>;
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
    shared: Arc<SinkShared>,
    registry: Arc<Registry>,
    samples: StageSamples,
    /// `(t_frame, now)` of the last row stamped in this drain round.
    stamp: Option<(u64, u64)>,
    last_publish: u64,
    /// Instrument id → index into `view.instruments` (`u32::MAX`: unknown).
    slot_of: Vec<u32>,
}

impl SinkState {
    /// New state.
    pub fn new(outputs: &[String], shared: Arc<SinkShared>, registry: Arc<Registry>) -> Self {
        Self {
            view: LiveView {
                outputs: outputs.to_vec(),
                instruments: Vec::new(),
            },
            shared,
            registry,
            samples: StageSamples::new(Stage::FrameToSink),
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
                    self.samples
                        .record(now.saturating_sub(t_frame), &self.registry);
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

    /// Publishes the view and histogram at most every 100 ms (or when forced).
    pub fn maybe_publish(&mut self, force: bool) {
        self.stamp = None;
        let now = mono_ns();
        if !force && now.saturating_sub(self.last_publish) < 100_000_000 {
            return;
        }
        self.last_publish = now;
        self.registry.record_samples(&mut self.samples);
        if let Ok(mut v) = self.shared.view.lock() {
            v.clone_from(&self.view);
        }
    }
}
