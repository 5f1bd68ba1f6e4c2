//! One sink's ring and thread: the producer side runs on the sink thread
//! (sequence numbers, records, conflation under back-pressure), the consumer
//! side on the sink's own thread (a [`Worker`] delivering batches).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use feeds::event::InstrumentInfo;
use records::{Record, FLAG_STATUS};

use crate::pipeline::processor::{SinkMsg, BOOK_GAP, BOOK_STATUS};
use crate::pipeline::sink::RowCollector;
use crate::pipeline::stats::Counter;

/// Items a sink's worker gets in one call at most.
const BATCH: usize = 1024;
/// Longest park of an idle sink thread (it is woken when rows come).
const IDLE_PARK: Duration = Duration::from_millis(100);
/// How long the end of a run waits for a slow sink to take its held rows.
const FINISH_WAIT: Duration = Duration::from_secs(2);
/// Instruments a sink's conflation table can grow to.
const MAX_INSTRUMENTS: usize = 1 << 16;

/// What a sink thread gets, in order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item {
    /// An instrument's names, before any of its rows.
    Instrument(InstrumentInfo),
    /// One row.
    Row(Record),
}

/// A sink's counters (stats JSON `sinks`, `/metrics` `wiresignal_sink_*`).
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Rows the sink delivered (its thread).
    pub rows: Counter,
    /// Rows replaced by a later value of the same (instrument, signal)
    /// while the ring was full (the sink thread).
    pub conflated: Counter,
    /// Rows the sink could not deliver (its thread: NATS down, write failed).
    pub dropped: Counter,
    /// Delivery errors (its thread).
    pub errors: Counter,
}

/// The kind-specific half of a sink, on its own thread. Not `Send`: a
/// worker built on its thread ([`FanOut::spawn`]) may hold thread-bound
/// handles (iceoryx2's ports).
pub trait Worker {
    /// Delivers `batch` (in order), counting into `c`.
    fn deliver(&mut self, batch: &[Item], c: &SinkCounters);
    /// Nothing came for a moment (flush, housekeeping).
    fn idle(&mut self, _c: &SinkCounters) {}
    /// The run is over: deliver what is buffered.
    fn finish(&mut self, _c: &SinkCounters) {}
}

/// Makes a sink's worker on the sink's own thread ([`FanOut::spawn`]).
pub type MakeWorker = Box<dyn FnOnce() -> io::Result<Box<dyn Worker>> + Send>;

struct Shared {
    counters: Arc<SinkCounters>,
    /// The sink thread is parked (or about to): wake it after a push.
    sleeping: AtomicBool,
}

/// The producer side of one sink, a [`RowCollector`] of the sink thread.
pub struct FanOut {
    tx: Option<rtrb::Producer<Item>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    outputs: usize,
    /// Output ids of the book-status rows.
    status: [u16; 2],
    /// By instrument: venue id and the last sequence number.
    venue: Vec<u16>,
    seq: Vec<u64>,
    /// Held back while the ring is full: announcements and status rows in
    /// order (never dropped), and the latest row per (instrument, output).
    urgent: VecDeque<Item>,
    latest: Vec<Option<Record>>,
    dirty: VecDeque<u32>,
}

impl FanOut {
    /// Starts the sink thread `name` running `worker` behind a ring of
    /// `capacity` slots.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        name: &str,
        capacity: usize,
        outputs: &[String],
        worker: Box<dyn Worker + Send>,
    ) -> io::Result<Self> {
        Self::spawn(name, capacity, outputs, Box::new(move || Ok(worker)))
    }

    /// Like [`FanOut::start`], but the worker is made by `make` on the sink's
    /// own thread (and stays there); waits for it, so a worker that cannot
    /// be made is this call's error.
    ///
    /// # Errors
    /// When the thread cannot be spawned or `make` fails.
    pub fn spawn(
        name: &str,
        capacity: usize,
        outputs: &[String],
        make: MakeWorker,
    ) -> io::Result<Self> {
        let (tx, mut rx) = rtrb::RingBuffer::new(capacity);
        let (made_tx, made_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
        let shared = Arc::new(Shared {
            counters: Arc::default(),
            sleeping: AtomicBool::new(false),
        });
        let id = |n: &str| {
            outputs
                .iter()
                .position(|o| o == n)
                .map_or(u16::MAX, |i| i as u16)
        };
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                let mut worker = match make() {
                    Ok(w) => {
                        let _ = made_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = made_tx.send(Err(e));
                        return;
                    }
                };
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    batch.clear();
                    while batch.len() < BATCH {
                        match rx.pop() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        worker.deliver(&batch, &s.counters);
                        continue;
                    }
                    if rx.is_abandoned() {
                        break;
                    }
                    worker.idle(&s.counters);
                    s.sleeping.store(true, Ordering::SeqCst);
                    if rx.is_empty() && !rx.is_abandoned() {
                        std::thread::park_timeout(IDLE_PARK);
                    }
                    s.sleeping.store(false, Ordering::SeqCst);
                }
                worker.finish(&s.counters);
            })?;
        made_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other(format!("sink {name}: its thread died"))))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            shared,
            outputs: outputs.len().max(1),
            status: [id(BOOK_STATUS), id(BOOK_GAP)],
            venue: Vec::new(),
            seq: Vec::new(),
            urgent: VecDeque::new(),
            latest: Vec::new(),
            dirty: VecDeque::new(),
        })
    }

    /// The sink's counters.
    #[must_use]
    pub fn counters(&self) -> Arc<SinkCounters> {
        self.shared.counters.clone()
    }

    fn held(&self) -> bool {
        !self.urgent.is_empty() || !self.dirty.is_empty()
    }

    /// Passes on what was held back, as far as the ring has room.
    fn drain(&mut self) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        while let Some(&item) = self.urgent.front() {
            if tx.push(item).is_err() {
                return;
            }
            self.urgent.pop_front();
        }
        while let Some(&key) = self.dirty.front() {
            let Some(r) = self.latest[key as usize] else {
                self.dirty.pop_front();
                continue;
            };
            if tx.push(Item::Row(r)).is_err() {
                return;
            }
            self.latest[key as usize] = None;
            self.dirty.pop_front();
        }
    }

    fn push(&mut self, item: Item) {
        if self.held() {
            self.drain();
        }
        let item = match (self.held(), self.tx.as_mut()) {
            (false, Some(tx)) => match tx.push(item) {
                Ok(()) => {
                    self.wake();
                    return;
                }
                Err(rtrb::PushError::Full(item)) => item,
            },
            _ => item,
        };
        self.hold(item);
        self.wake();
    }

    /// The ring is full: keep `item` (conflated, unless it must not be).
    #[cold]
    fn hold(&mut self, item: Item) {
        let r = match item {
            Item::Row(r) if !r.is_status() => r,
            _ => {
                self.urgent.push_back(item);
                return;
            }
        };
        let inst = r.instrument as usize;
        if inst >= MAX_INSTRUMENTS {
            self.shared.counters.conflated.inc();
            return;
        }
        let key = inst * self.outputs + usize::from(r.signal);
        if key >= self.latest.len() {
            self.latest.resize((inst + 1) * self.outputs, None);
        }
        match &mut self.latest[key] {
            Some(old) => {
                *old = r;
                self.shared.counters.conflated.inc();
            }
            slot @ None => {
                *slot = Some(r);
                self.dirty.push_back(key as u32);
            }
        }
    }

    fn wake(&self) {
        if self.shared.sleeping.load(Ordering::SeqCst) {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }
}

impl RowCollector for FanOut {
    fn write(&mut self, msg: &SinkMsg, _outputs: &[String]) -> io::Result<()> {
        match *msg {
            SinkMsg::Instrument(info) => {
                let i = info.inst.index();
                if i >= self.venue.len() {
                    self.venue.resize(i + 1, 0);
                    self.seq.resize(i + 1, 0);
                }
                self.venue[i] = info.venue;
                self.push(Item::Instrument(info));
            }
            SinkMsg::Row {
                ts_ns,
                recv_ns,
                inst,
                out,
                value,
                ..
            } => {
                // What JSON Lines cannot carry is no row anywhere.
                let i = inst.index();
                if !value.is_finite() || i >= self.seq.len() {
                    return Ok(());
                }
                self.seq[i] += 1;
                let flags = if self.status.contains(&out.0) {
                    FLAG_STATUS
                } else {
                    0
                };
                self.push(Item::Row(Record {
                    venue: self.venue[i],
                    instrument: inst.0,
                    signal: out.0,
                    flags,
                    ts_ns,
                    recv_ns,
                    seq: self.seq[i],
                    value,
                }));
            }
        }
        Ok(())
    }

    fn idle(&mut self) {
        if self.held() {
            self.drain();
            self.wake();
        }
    }

    fn finish(&mut self, _outputs: &[String]) -> io::Result<()> {
        let deadline = Instant::now() + FINISH_WAIT;
        while self.held() && Instant::now() < deadline {
            self.drain();
            self.wake();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Whatever a dead sink never took is lost: count it (its thread
        // has ended, so this is the counter's only writer now).
        let lost = self.urgent.len() + self.dirty.len();
        self.shared.counters.dropped.add(lost as u64);
        Ok(())
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use feeds::event::{InstrumentId, Scale, Symbol};
    use signals::OutputId;

    use super::*;

    /// Records what it gets; slow at first (a stalled consumer).
    struct Slow {
        got: Arc<Mutex<Vec<Item>>>,
        stall: Duration,
    }

    impl Worker for Slow {
        fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
            std::thread::sleep(self.stall);
            self.got.lock().unwrap().extend_from_slice(batch);
            c.rows
                .add(batch.iter().filter(|i| matches!(i, Item::Row(_))).count() as u64);
        }
    }

    fn info(id: u32) -> InstrumentInfo {
        InstrumentInfo {
            inst: InstrumentId(id),
            venue: 0,
            symbol: Symbol::new(&format!("S{id}")).unwrap(),
            scale: Scale::default(),
            wire: Scale::default(),
        }
    }

    fn row(inst: u32, out: u16, value: f64) -> SinkMsg {
        SinkMsg::Row {
            ts_ns: 1,
            recv_ns: 2,
            inst: InstrumentId(inst),
            out: OutputId(out),
            value,
            t_frame: 0,
        }
    }

    #[test]
    fn a_stalled_sink_conflates_values_and_keeps_every_status_row() {
        let outputs: Vec<String> = ["mid", "spread", BOOK_STATUS, BOOK_GAP]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let got = Arc::new(Mutex::new(Vec::new()));
        let worker = Slow {
            got: got.clone(),
            stall: Duration::from_millis(20),
        };
        let mut fan = FanOut::start("test", 16, &outputs, Box::new(worker)).unwrap();
        let counters = fan.counters();
        for i in 0..3 {
            fan.write(&SinkMsg::Instrument(info(i)), &outputs).unwrap();
        }
        let (mut rows, mut per_inst) = (0u64, [0u64; 3]);
        let mut last = std::collections::HashMap::new();
        for n in 0..5_000u32 {
            let inst = n % 3;
            let out = (n % 2) as u16;
            fan.write(&row(inst, out, f64::from(n)), &outputs).unwrap();
            last.insert((inst, out), f64::from(n));
            rows += 1;
            per_inst[inst as usize] += 1;
            if n % 500 == 0 {
                fan.write(&row(inst, 2, 0.0), &outputs).unwrap();
                fan.write(&row(inst, 2, 1.0), &outputs).unwrap();
                fan.write(&row(inst, 3, 0.5), &outputs).unwrap();
                rows += 3;
                per_inst[inst as usize] += 3;
            }
            // Not a row: never counted, never sent.
            fan.write(&row(inst, 0, f64::NAN), &outputs).unwrap();
        }
        fan.finish(&outputs).unwrap();
        let got = got.lock().unwrap();
        let records: Vec<Record> = got
            .iter()
            .filter_map(|i| match i {
                Item::Row(r) => Some(*r),
                Item::Instrument(_) => None,
            })
            .collect();
        let (c, d) = (counters.conflated.get(), counters.dropped.get());
        assert!(c > 1000, "the stalled sink conflated: {c}");
        assert_eq!(d, 0);
        assert_eq!(records.len() as u64 + c, rows, "delivered or counted");
        // Every announcement and every status row arrived, flagged.
        assert_eq!(
            got.iter()
                .filter(|i| matches!(i, Item::Instrument(_)))
                .count(),
            3
        );
        let status: Vec<&Record> = records.iter().filter(|r| r.signal >= 2).collect();
        assert_eq!(status.len(), 30);
        assert!(status.iter().all(|r| r.is_status()));
        assert!(records
            .iter()
            .filter(|r| r.signal < 2)
            .all(|r| !r.is_status()));
        // The latest value of every (instrument, signal) arrived.
        for (&(inst, out), &want) in &last {
            let seen = records
                .iter()
                .rev()
                .find(|r| r.instrument == inst && r.signal == out)
                .map(|r| r.value);
            assert_eq!(seen, Some(want), "{inst}/{out}");
        }
        // Sequence numbers per instrument only grow; holes are the conflated.
        for inst in 0..3 {
            let seqs: Vec<u64> = records
                .iter()
                .filter(|r| r.instrument == inst)
                .map(|r| r.seq)
                .collect();
            assert_eq!(seqs.first(), Some(&1));
            let max = seqs.iter().max().copied().unwrap_or(0);
            assert_eq!(max, per_inst[inst as usize], "{inst}");
        }
    }
}
