//! The signal thread: per-instrument normalization rules (SIGNALS.md section
//! 2: duplicate trades, stale quotes, depth sync), the order book, the
//! bookTicker cross-check, and the signal set. Deterministic: its output
//! depends only on the order of the events it is given.

use std::sync::Arc;

use feeds::book::{BookPolicy, BookStart, DepthSync, DiffOutcome, Integrity, SnapshotOutcome};
use feeds::event::{
    DepthHeader, Event, InstrumentId, InstrumentInfo, Level, QuoteEvent, SnapshotHeader,
    TradeEvent, TradeKind,
};
use signals::{
    OutputId, Quote, QuoteSource, SignalSet, SignalSetConfig, SignalSpec, Trade, Validity,
};

use super::clock::mono_ns;
use super::stats::{InstrumentStats, Registry, Stage, StageSamples};

/// Output name of the book-status rows: `0` when an instrument's book goes
/// out of sync (a gap, a failed checksum or cross-check, a lost
/// connection), `1` when it is back in sync. Only around outages: a book's
/// first sync emits nothing.
pub const BOOK_STATUS: &str = "book_status";
/// Output name of the row that follows each `book_status` 1: the seconds
/// the book was out of sync (receive clock).
pub const BOOK_GAP: &str = "book_gap_s";

/// A signal output row sent to the sink.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SinkMsg {
    /// An instrument's names, before any of its rows.
    Instrument(InstrumentInfo),
    /// One signal value.
    Row {
        /// Raw exchange timestamp of the triggering event.
        ts_ns: i64,
        /// Receive timestamp of the triggering event.
        recv_ns: i64,
        /// Instrument.
        inst: InstrumentId,
        /// Output id (index into the output names).
        out: OutputId,
        /// The value.
        value: f64,
        /// Monotonic receive time of the frame, for the sink latency stage.
        t_frame: u64,
    },
}

/// Per-instrument settings the processor needs.
#[derive(Clone, Debug)]
pub struct InstrumentRules {
    /// Trade stream in use.
    pub trade_source: TradeKind,
    /// L1 source.
    pub quote_source: QuoteSource,
}

/// Asks the feed that owns an instrument for a fresh depth snapshot.
pub trait ResyncHook: Send {
    /// The instrument's book is out of sync.
    fn request(&mut self, info: &InstrumentInfo);

    /// The instrument's stream-started book never got a snapshot from the
    /// stream (OKX since 2026): fetch one over REST to bridge its updates.
    fn bootstrap(&mut self, info: &InstrumentInfo) {
        self.request(info);
    }
}

/// No live feed (replay): the next snapshot in the capture resyncs.
pub struct NoResync;

impl ResyncHook for NoResync {
    fn request(&mut self, _info: &InstrumentInfo) {}
}

/// Everything needed to build per-instrument state on first sight.
pub struct ProcessorConfig {
    /// Signals, in output order.
    pub signals: Vec<SignalSpec>,
    /// Rules by symbol (configured instruments); others use the default.
    pub rules: Box<dyn Fn(&InstrumentInfo) -> InstrumentRules + Send>,
    /// Time-window capacity of the signal library.
    pub window_capacity: usize,
    /// Levels pre-allocated per book side.
    pub book_capacity: usize,
    /// Instruments pre-allocated.
    pub max_instruments: usize,
    /// Emit [`BOOK_STATUS`] / [`BOOK_GAP`] rows around outages (`[output]
    /// status_rows`; default on in live runs, off in replays, whose stream
    /// stays exactly SIGNALS.md's).
    pub status_rows: bool,
}

struct InstrumentState {
    info: InstrumentInfo,
    rules: InstrumentRules,
    /// The venue's book policy (registry entry of `info.venue`).
    policy: BookPolicy,
    sync: DepthSync,
    signals: SignalSet,
    stats: Arc<InstrumentStats>,
    last_trade_id: Option<u64>,
    last_quote_u: Option<u64>,
    /// Accepted bookTickers ahead of the book, for the cross-check.
    tickers: PendingTickers,
    /// The book lost sync (gap, mismatch, reset) and has not synced since.
    needs_resync: bool,
    /// A snapshot came on the stream at least once (stream-started books).
    saw_stream_snapshot: bool,
    /// A REST bootstrap was asked for and has not synced the book yet.
    bootstrap_requested: bool,
    /// The book is in sync for its consumers (false until its first sync).
    in_sync: bool,
    /// Receive time at which the book went out of sync (after a first sync).
    lost_at: Option<i64>,
    /// Exchange and receive time of this instrument's last event (the time
    /// of status rows that an event without a time of its own triggers).
    last_seen: (i64, i64),
}

enum Pending {
    None,
    Depth(DepthHeader),
    Snapshot(SnapshotHeader),
}

/// The per-thread processor: owns the state of its instruments.
/// Where a processor sends its rows.
pub trait Emit {
    /// Sends one message.
    fn emit(&mut self, m: SinkMsg);
}

impl<F: FnMut(SinkMsg)> Emit for F {
    #[inline]
    fn emit(&mut self, m: SinkMsg) {
        self(m);
    }
}

/// A processor's ring to the sink thread, or nothing when no one consumes
/// rows (no `--out`, no collector, no `[[sinks]]`, no live view): the rows
/// are then counted (`rows`) but never materialised.
pub struct SinkTx(Option<super::ring::RingTx<SinkMsg>>);

impl SinkTx {
    /// Rows go to the sink through `ring`.
    #[must_use]
    pub fn ring(ring: super::ring::RingTx<SinkMsg>) -> Self {
        Self(Some(ring))
    }

    /// Rows are counted and dropped.
    #[must_use]
    pub fn discard() -> Self {
        Self(None)
    }

    /// The sink thread's waiter (`None`: rows are discarded).
    #[must_use]
    pub fn waiter(&self) -> Option<Arc<super::ring::Waiter>> {
        self.0.as_ref().map(super::ring::RingTx::waiter)
    }

    /// Wakes the sink thread if it sleeps.
    #[inline]
    pub fn notify(&self) {
        if let Some(r) = &self.0 {
            r.notify();
        }
    }
}

impl Emit for SinkTx {
    // Always inlined, so that without a sink a row is only counted: as a
    // call (the ring push made it too big to inline) every row was built
    // and passed through memory to a function that then dropped it, ~35
    // instructions a row and ~150 a message in a replay without output.
    #[inline(always)]
    fn emit(&mut self, m: SinkMsg) {
        if let Some(r) = &mut self.0 {
            r.push_quiet(m);
        }
    }
}

pub struct Processor<O: Emit> {
    cfg: ProcessorConfig,
    states: Vec<Option<Box<InstrumentState>>>,
    pending: Pending,
    remaining: u32,
    levels: Vec<Level>,
    registry: Arc<Registry>,
    resync: Box<dyn ResyncHook>,
    out: O,
    /// Ring hop, book and signals, frame to signal.
    samples: [StageSamples; 3],
    wire: super::wire::WireRecorder,
    last_publish: u64,
    /// Rendering buffer of exchange checksums.
    scratch: feeds::checksum::ChecksumScratch,
    /// Output ids of [`BOOK_STATUS`] and [`BOOK_GAP`].
    status_ids: (OutputId, OutputId),
}

impl<O: Emit> Processor<O> {
    /// New processor sending rows to `out`.
    pub fn new(
        cfg: ProcessorConfig,
        registry: Arc<Registry>,
        resync: Box<dyn ResyncHook>,
        out: O,
    ) -> Self {
        let mut states = Vec::with_capacity(cfg.max_instruments);
        states.resize_with(cfg.max_instruments, || None);
        let levels = Vec::with_capacity(cfg.book_capacity * 2);
        let n = Self::output_names(&cfg.signals).len().saturating_sub(2);
        let id = |i: usize| OutputId(u16::try_from(i).unwrap_or(u16::MAX));
        // Without status rows, ids no sink knows: nothing is written.
        let status_ids = if cfg.status_rows {
            (id(n), id(n + 1))
        } else {
            (OutputId(u16::MAX), OutputId(u16::MAX))
        };
        let samples = [
            registry.stage_samples(Stage::RingHop),
            registry.stage_samples(Stage::Signal),
            registry.stage_samples(Stage::FrameToSignal),
        ];
        Self {
            status_ids,
            cfg,
            states,
            pending: Pending::None,
            remaining: 0,
            levels,
            registry,
            resync,
            out,
            samples,
            wire: super::wire::WireRecorder::new(),
            last_publish: 0,
            scratch: feeds::checksum::ChecksumScratch::new(),
        }
    }

    /// The row sink.
    pub fn emitter(&mut self) -> &mut O {
        &mut self.out
    }

    /// Output names of the configured signal set (index = [`OutputId`]),
    /// then [`BOOK_STATUS`] and [`BOOK_GAP`].
    pub fn output_names(signals: &[SignalSpec]) -> Vec<String> {
        let mut names = SignalSet::new(&SignalSetConfig::new(
            signals::Scale::default(),
            signals.to_vec(),
        ))
        .map(|s| s.output_names().to_vec())
        .unwrap_or_default();
        names.extend([BOOK_STATUS.to_owned(), BOOK_GAP.to_owned()]);
        names
    }

    /// Processes the events of one frame pushed at `t_push` on the calling
    /// thread, as a drain would (no ring: `signal_placement` inline or
    /// adaptive); one clock read per message, not two per slot. Nothing
    /// waits between push and pop here: the first slot counts as popped at
    /// `t_push` (no clock read for it). Returns when the last was done.
    #[inline]
    pub fn on_frame(&mut self, events: &[Event], t_frame: u64, t_push: u64) -> u64 {
        let mut done = t_push;
        let mut i = 0;
        while let Some(ev) = events.get(i) {
            let n = self.queue_levels(&events[i..], done, |e| level_of(e).map(|l| (l, t_push)));
            if n > 0 {
                i += n;
                continue;
            }
            let slot = super::ring::Slot {
                ev: *ev,
                t_frame,
                t_push,
            };
            done = self.on_slot_after(&slot, done);
            i += 1;
        }
        done
    }

    /// Processes slots popped in one drain, in order, the first right after
    /// a slot that finished at `prev_done` (0 for none); returns when the
    /// last finished. The same as [`on_slot_after`](Self::on_slot_after) on
    /// each in turn.
    pub fn on_slots(&mut self, slots: &[super::ring::Slot], mut prev_done: u64) -> u64 {
        let mut i = 0;
        while let Some(slot) = slots.get(i) {
            let n = self.queue_levels(&slots[i..], prev_done, |s| {
                level_of(&s.ev).map(|l| (l, s.t_push))
            });
            if n > 0 {
                i += n;
                continue;
            }
            prev_done = self.on_slot_after(slot, prev_done);
            i += 1;
        }
        prev_done
    }

    /// Queues the leading items of `items` that are levels of the message
    /// in progress before its last and were pushed by `done` (`level`: an
    /// item's level and push time); returns how many. Each of them, as a
    /// slot, would only be queued, with no clock read and no sample (see
    /// [`on_slot_at`](Self::on_slot_at)); one loop takes them instead of a
    /// slot each (~40 instructions a level). The message's last level goes
    /// through its slot and completes it.
    #[inline(always)]
    fn queue_levels<T>(
        &mut self,
        items: &[T],
        done: u64,
        level: impl Fn(&T) -> Option<(Level, u64)>,
    ) -> usize {
        if self.remaining <= 1 || done == 0 {
            return 0;
        }
        let before = self.levels.len();
        for item in items.iter().take(self.remaining as usize - 1) {
            match level(item) {
                Some((l, t_push)) if t_push <= done => self.levels.push(l),
                _ => break,
            }
        }
        let n = self.levels.len() - before;
        self.remaining -= n as u32;
        n
    }

    /// Processes a slot popped right after the previous slot of the same
    /// drain finished at `prev_done` (the value this returned for it; 0 for
    /// none); returns when this one finished (monotonic ns).
    ///
    /// A slot already queued when the previous one was done was popped then
    /// (a pop is a few ns), so a drain reads the clock once per slot instead
    /// of twice; a slot pushed after that reads the clock for its pop time.
    #[inline]
    pub fn on_slot_after(&mut self, slot: &super::ring::Slot, prev_done: u64) -> u64 {
        let t_pop = if prev_done != 0 && prev_done >= slot.t_push {
            prev_done
        } else {
            mono_ns()
        };
        self.on_slot_at(slot, t_pop)
    }

    /// Processes a slot popped at `t_pop`; returns when it was done.
    #[inline(always)]
    fn on_slot_at(&mut self, slot: &super::ring::Slot, t_pop: u64) -> u64 {
        // Exchange time of an event whose signals this slot completes.
        let ts = match slot.ev {
            Event::Trade(t) => t.ts_ns,
            Event::Quote(q) => q.ts_ns,
            Event::Depth(h) if h.levels == 0 => h.ts_ns,
            Event::Level(_) if self.remaining == 1 => match self.pending {
                Pending::Depth(h) => h.ts_ns,
                _ => 0,
            },
            _ => 0,
        };
        self.on_event(&slot.ev, slot.t_frame);
        if self.mid_message() {
            // A depth message's header or one of its levels before the last:
            // queued, nothing computed and nothing to sample, so no clock
            // read. The next slot of the drain counts as popped now too, so
            // the message's book-and-signals sample spans all its slots.
            return t_pop;
        }
        let t_done = mono_ns();
        if ts != 0 {
            self.wire.record(ts, t_done);
        }
        // One sample per normalized message, taken at the slot that completes
        // it (a depth diff's book is applied and its signals run at its last
        // level; the slots before only queue levels).
        let [ring, sig, e2e] = &mut self.samples;
        ring.record(t_pop.saturating_sub(slot.t_push));
        sig.record(t_done.saturating_sub(t_pop));
        e2e.record(t_done.saturating_sub(slot.t_frame));
        if t_done.saturating_sub(self.last_publish) > 200_000_000 {
            self.last_publish = t_done;
            self.publish();
        }
        t_done
    }

    /// A depth or snapshot message's levels are still to come: the next
    /// events must be the rest of it, from the same source (the processor
    /// holds one message in progress).
    #[inline]
    #[must_use]
    pub fn mid_message(&self) -> bool {
        self.remaining > 0
    }

    /// Publishes the buffered exchange-to-signal samples.
    pub fn publish(&mut self) {
        self.wire.publish();
    }

    /// Processes one event (`t_frame`: monotonic time of its frame).
    pub fn on_event(&mut self, ev: &Event, t_frame: u64) {
        match *ev {
            Event::Instrument(info) => self.add_instrument(info),
            Event::Trade(t) => self.on_trade(&t, t_frame),
            Event::Quote(q) => self.on_quote(&q, t_frame),
            Event::Depth(h) => {
                self.levels.clear();
                self.pending = Pending::Depth(h);
                self.remaining = h.levels;
                if h.levels == 0 {
                    self.finish_pending(t_frame);
                }
            }
            Event::Snapshot(h) => {
                self.levels.clear();
                self.pending = Pending::Snapshot(h);
                self.remaining = h.levels;
                if h.levels == 0 {
                    self.finish_pending(t_frame);
                }
            }
            Event::Level(l) => {
                if self.remaining > 0 {
                    self.levels.push(l);
                    self.remaining -= 1;
                    if self.remaining == 0 {
                        self.finish_pending(t_frame);
                    }
                }
            }
            Event::Reset(inst) => {
                if let Some(st) = lookup(&mut self.states, inst) {
                    let (ts, recv) = st.last_seen;
                    st.stats.resets.inc();
                    st.sync.reset();
                    st.needs_resync = true;
                    st.tickers.clear();
                    book_lost(&mut self.out, st, self.status_ids, (ts, recv, t_frame));
                    publish_book(st);
                }
            }
            Event::Gap(inst) => {
                if let Some(st) = lookup(&mut self.states, inst) {
                    let (ts, recv) = st.last_seen;
                    st.stats.gaps.inc();
                    st.sync.reset();
                    st.tickers.clear();
                    Self::desync(st, self.resync.as_mut());
                    book_lost(&mut self.out, st, self.status_ids, (ts, recv, t_frame));
                    publish_book(st);
                }
            }
        }
    }

    fn add_instrument(&mut self, info: InstrumentInfo) {
        let idx = info.inst.index();
        if idx >= self.states.len() {
            self.states.resize_with(idx + 1, || None);
        }
        if self.states[idx].is_some() {
            return;
        }
        let rules = (self.cfg.rules)(&info);
        let mut sc = SignalSetConfig::new(info.scale, self.cfg.signals.clone());
        sc.quote_source = rules.quote_source;
        sc.window_capacity = self.cfg.window_capacity;
        // The spec list was validated at config load; nothing to run otherwise.
        let Ok(signals) = SignalSet::new(&sc) else {
            return;
        };
        let policy =
            feeds::venue::venue_at(info.venue).map_or_else(BookPolicy::default, |v| v.book);
        let stats = self.registry.add_instrument(info);
        self.out.emit(SinkMsg::Instrument(info));
        self.states[idx] = Some(Box::new(InstrumentState {
            info,
            rules,
            policy,
            sync: DepthSync::with_policy(
                policy,
                self.cfg.book_capacity,
                self.cfg.book_capacity * 8,
            ),
            signals,
            stats,
            last_trade_id: None,
            last_quote_u: None,
            tickers: PendingTickers::default(),
            needs_resync: false,
            saw_stream_snapshot: false,
            bootstrap_requested: false,
            in_sync: false,
            lost_at: None,
            last_seen: (0, 0),
        }));
    }

    #[inline]
    fn on_trade(&mut self, t: &TradeEvent, t_frame: u64) {
        let Some(st) = seen(&mut self.states, t.inst, Some(t_frame)) else {
            return;
        };
        st.last_seen = (t.ts_ns, t.recv_ns);
        if t.kind != st.rules.trade_source {
            return;
        }
        // Id 0: the venue numbers no trades (Kraken v1); nothing to dedupe by.
        if t.id != 0 {
            if st.last_trade_id.is_some_and(|last| t.id <= last) {
                st.stats.dup_trades.inc();
                return;
            }
            st.last_trade_id = Some(t.id);
        }
        if t.px <= 0 || t.qty <= 0 {
            st.stats.bad_trades.inc();
            return;
        }
        st.stats.trades.inc();
        let trade = Trade {
            ts_ns: t.ts_ns,
            px: t.px,
            qty: t.qty,
            side: t.side,
        };
        let mut emit = row_emitter(
            &mut self.out,
            &st.stats.rows,
            t.inst,
            t.ts_ns,
            t.recv_ns,
            t_frame,
        );
        st.signals.on_trade(&trade, &mut emit);
    }

    fn on_quote(&mut self, q: &QuoteEvent, t_frame: u64) {
        let Some(st) = seen(&mut self.states, q.inst, Some(t_frame)) else {
            return;
        };
        st.last_seen = (q.ts_ns, q.recv_ns);
        // Update id 0: the venue numbers no quotes; nothing is stale by id.
        if q.update_id != 0 {
            if st.last_quote_u.is_some_and(|last| q.update_id <= last) {
                st.stats.stale_quotes.inc();
                return;
            }
            st.last_quote_u = Some(q.update_id);
        }
        if st.policy.integrity == Integrity::TopOfBookCrossCheck {
            if st.sync.is_synced() && st.sync.book_id() == q.update_id {
                if !cross_check(st, q) {
                    st.sync.reset();
                    st.tickers.clear();
                    Self::desync(st, self.resync.as_mut());
                    let at = (q.ts_ns, q.recv_ns, t_frame);
                    book_lost(&mut self.out, st, self.status_ids, at);
                    publish_book(st);
                }
            } else if !st.sync.is_synced() || q.update_id > st.sync.book_id() {
                // The diff that ends at this id has not arrived yet.
                st.tickers.push(*q);
            }
        }
        if st.rules.quote_source != QuoteSource::BookTicker {
            return;
        }
        let quote = Quote {
            ts_ns: q.ts_ns,
            bid_px: q.bid_px,
            bid_qty: q.bid_qty,
            ask_px: q.ask_px,
            ask_qty: q.ask_qty,
        };
        let mut emit = row_emitter(
            &mut self.out,
            &st.stats.rows,
            q.inst,
            q.ts_ns,
            q.recv_ns,
            t_frame,
        );
        match st.signals.on_quote(&quote, &mut emit) {
            Validity::Valid => {}
            Validity::Crossed => st.stats.quotes_crossed.inc(),
            Validity::EmptySide => st.stats.quotes_empty_side.inc(),
        }
    }

    fn finish_pending(&mut self, t_frame: u64) {
        let pending = std::mem::replace(&mut self.pending, Pending::None);
        match pending {
            Pending::None => {}
            Pending::Depth(h) => self.on_diff(&h, t_frame),
            Pending::Snapshot(h) => self.on_snapshot(&h, t_frame),
        }
    }

    /// Book out of sync (gap or failed cross-check): clear and ask for a snapshot.
    fn desync(st: &mut InstrumentState, hook: &mut dyn ResyncHook) {
        st.needs_resync = true;
        st.stats.synced.set(0);
        hook.request(&st.info);
    }

    fn on_snapshot(&mut self, h: &SnapshotHeader, t_frame: u64) {
        let Some(st) = seen(&mut self.states, h.inst, None) else {
            return;
        };
        let outcome = st.sync.on_snapshot(h, &self.levels);
        if matches!(
            outcome,
            SnapshotOutcome::Synced { .. } | SnapshotOutcome::Replaced
        ) {
            st.saw_stream_snapshot |= !h.from_rest;
            st.bootstrap_requested = false;
        }
        match outcome {
            SnapshotOutcome::Synced { .. } | SnapshotOutcome::Replaced => {
                // A snapshot carries no exchange time: the last one seen, else its receive time.
                let ts = if st.last_seen.0 == 0 {
                    h.recv_ns
                } else {
                    st.last_seen.0
                };
                st.last_seen = (ts, h.recv_ns);
                let at = (st.last_seen.0, h.recv_ns, t_frame);
                if !verify_checksum(st, h.checksum, &mut self.scratch) {
                    st.sync.reset();
                    Self::desync(st, self.resync.as_mut());
                    book_lost(&mut self.out, st, self.status_ids, at);
                } else {
                    if st.needs_resync {
                        st.stats.resyncs.inc();
                        st.needs_resync = false;
                    }
                    book_back(&mut self.out, st, self.status_ids, at);
                }
            }
            SnapshotOutcome::Ignored => {}
            SnapshotOutcome::GapInBuffer => {
                st.stats.gaps.inc();
                st.bootstrap_requested = false;
                Self::desync(st, self.resync.as_mut());
            }
        }
        publish_book(st);
    }

    fn on_diff(&mut self, h: &DepthHeader, t_frame: u64) {
        let Some(st) = seen(&mut self.states, h.inst, Some(t_frame)) else {
            return;
        };
        st.last_seen = (h.ts_ns, h.recv_ns);
        match st.sync.on_diff(h, &self.levels) {
            DiffOutcome::Buffered => {
                // A stream-started book whose stream sends updates but never a
                // snapshot (OKX since 2026): bootstrap it from REST, once.
                if st.policy.start == BookStart::StreamSnapshot
                    && !st.saw_stream_snapshot
                    && !st.bootstrap_requested
                {
                    st.bootstrap_requested = true;
                    self.resync.bootstrap(&st.info);
                }
            }
            DiffOutcome::NotSynced => {}
            DiffOutcome::Stale => st.stats.stale_diffs.inc(),
            DiffOutcome::Gap => {
                st.stats.gaps.inc();
                Self::desync(st, self.resync.as_mut());
                let at = (h.ts_ns, h.recv_ns, t_frame);
                book_lost(&mut self.out, st, self.status_ids, at);
                publish_book(st);
            }
            DiffOutcome::Applied => {
                st.stats.book_updates.inc();
                publish_book(st);
                let intact = match st.policy.integrity {
                    Integrity::TopOfBookCrossCheck => match st.tickers.take(h.last_id) {
                        Some(q) => cross_check(st, &q),
                        None => true,
                    },
                    Integrity::Crc32(_) => verify_checksum(st, h.checksum, &mut self.scratch),
                    Integrity::None => true,
                };
                if !intact {
                    st.tickers.clear();
                    // The book disagrees with the venue's own view of it:
                    // treat it like a gap and emit nothing from it.
                    st.sync.reset();
                    Self::desync(st, self.resync.as_mut());
                    let at = (h.ts_ns, h.recv_ns, t_frame);
                    book_lost(&mut self.out, st, self.status_ids, at);
                    publish_book(st);
                    return;
                }
                let mut emit = row_emitter(
                    &mut self.out,
                    &st.stats.rows,
                    h.inst,
                    h.ts_ns,
                    h.recv_ns,
                    t_frame,
                );
                match st.signals.on_depth(h.ts_ns, st.sync.book(), &mut emit) {
                    Validity::Valid => {}
                    Validity::Crossed => st.stats.crossed.inc(),
                    Validity::EmptySide => st.stats.empty_side.inc(),
                }
            }
        }
    }
}

/// The state of `inst`, if it was announced.
#[inline]
fn lookup(
    states: &mut [Option<Box<InstrumentState>>],
    inst: InstrumentId,
) -> Option<&mut InstrumentState> {
    states.get_mut(inst.index()).and_then(|s| s.as_deref_mut())
}

/// [`lookup`], counting one market-data event (stamped at `t_frame` when it
/// should refresh the instrument's staleness).
#[inline]
fn seen(
    states: &mut [Option<Box<InstrumentState>>],
    inst: InstrumentId,
    t_frame: Option<u64>,
) -> Option<&mut InstrumentState> {
    let st = lookup(states, inst)?;
    st.stats.events.inc();
    if let Some(t) = t_frame {
        st.stats.last_event_mono.set(t as i64);
    }
    Some(st)
}

/// The level an event carries, if it is one.
#[inline(always)]
fn level_of(ev: &Event) -> Option<Level> {
    match ev {
        Event::Level(l) => Some(*l),
        _ => None,
    }
}

/// The callback a signal set emits into: counts the row and sends it to the
/// sink tagged with the triggering event's identity.
#[inline]
fn row_emitter<'a, O: Emit>(
    out: &'a mut O,
    rows: &'a super::stats::Counter,
    inst: InstrumentId,
    ts_ns: i64,
    recv_ns: i64,
    t_frame: u64,
) -> impl FnMut(OutputId, f64) + 'a {
    move |id, value| {
        rows.inc();
        out.emit(SinkMsg::Row {
            ts_ns,
            recv_ns,
            inst,
            out: id,
            value,
            t_frame,
        });
    }
}

/// The book went out of sync: one [`BOOK_STATUS`] 0 row per outage (none
/// before its first sync). `at`: exchange time, receive time, frame time.
#[cold]
#[inline(never)]
fn book_lost<O: Emit>(
    out: &mut O,
    st: &mut InstrumentState,
    (status, _): (OutputId, OutputId),
    (ts_ns, recv_ns, t_frame): (i64, i64, u64),
) {
    if !st.in_sync {
        return;
    }
    st.in_sync = false;
    st.lost_at = Some(recv_ns);
    if status.0 != u16::MAX {
        row_emitter(out, &st.stats.rows, st.info.inst, ts_ns, recv_ns, t_frame)(status, 0.0);
    }
}

/// The book is in sync again after an outage: a [`BOOK_STATUS`] 1 row and
/// a [`BOOK_GAP`] row with the seconds it was out. Time windows continue
/// across the hole (SIGNALS.md): the rows flag the values after it. A
/// first sync emits nothing.
#[inline]
fn book_back<O: Emit>(
    out: &mut O,
    st: &mut InstrumentState,
    ids: (OutputId, OutputId),
    at: (i64, i64, u64),
) {
    if st.in_sync {
        return;
    }
    st.in_sync = true;
    if st.lost_at.is_some() {
        back_after_outage(out, st, ids, at);
    }
}

#[cold]
#[inline(never)]
fn back_after_outage<O: Emit>(
    out: &mut O,
    st: &mut InstrumentState,
    (status, gap): (OutputId, OutputId),
    (ts_ns, recv_ns, t_frame): (i64, i64, u64),
) {
    let lost = st
        .lost_at
        .take()
        .map_or(0, |t| recv_ns.saturating_sub(t).max(0));
    st.stats.lost_ns.add(lost.unsigned_abs());
    if status.0 != u16::MAX {
        let mut emit = row_emitter(out, &st.stats.rows, st.info.inst, ts_ns, recv_ns, t_frame);
        emit(status, 1.0);
        emit(gap, lost as f64 / 1e9);
    }
}

/// Best bid/offer messages whose update id the book has not reached yet:
/// a Binance `bookTicker` usually arrives before the diff that ends at its
/// `u`, and several may arrive before that diff. A fixed ring (no
/// allocation); the oldest is evicted when full.
#[derive(Default)]
struct PendingTickers {
    slots: [Option<QuoteEvent>; PendingTickers::CAP],
    next: usize,
}

impl PendingTickers {
    const CAP: usize = 16;

    fn push(&mut self, q: QuoteEvent) {
        self.slots[self.next] = Some(q);
        self.next = (self.next + 1) % Self::CAP;
    }

    /// The ticker whose id is `book_id` (the diff just applied), dropping
    /// every ticker at or below it.
    #[inline]
    fn take(&mut self, book_id: u64) -> Option<QuoteEvent> {
        let mut hit = None;
        for s in &mut self.slots {
            if let Some(q) = s {
                if q.update_id <= book_id {
                    if q.update_id == book_id {
                        hit = Some(*q);
                    }
                    *s = None;
                }
            }
        }
        hit
    }

    fn clear(&mut self) {
        self.slots = [None; Self::CAP];
    }
}

/// Recomputes the venue's checksum of the synced book and compares it with
/// the one it sent (`Integrity::Crc32`); counts the result. `true` when the
/// book is intact (also when nothing was sent, or the venue sent its
/// "absent" value).
#[inline]
fn verify_checksum(
    st: &InstrumentState,
    sent: Option<u32>,
    scratch: &mut feeds::checksum::ChecksumScratch,
) -> bool {
    let (Integrity::Crc32(spec), Some(sent)) = (st.policy.integrity, sent) else {
        return true;
    };
    if spec.zero_is_absent && sent == 0 {
        st.stats.checksum_absent.inc();
        return true;
    }
    // The precision of the book's last snapshot, else of the announcement.
    let wire = match st.sync.wire() {
        w if w == feeds::instruments::NO_WIRE => st.info.wire,
        w => w,
    };
    let ours = feeds::checksum::crc32(st.sync.book(), &spec, st.info.scale, wire, scratch);
    if ours == sent {
        st.stats.checksum_ok.inc();
        true
    } else {
        st.stats.checksum_failed.inc();
        false
    }
}

/// Compares a bookTicker with the synced book's top (price and size); counts
/// the result.
fn cross_check(st: &mut InstrumentState, q: &QuoteEvent) -> bool {
    // A zero price or size in the ticker means that side is empty.
    let side = |px: i64, qty: i64| (px > 0 && qty > 0).then_some((px, qty));
    let book = st.sync.book();
    let ok = book.best_bid() == side(q.bid_px, q.bid_qty)
        && book.best_ask() == side(q.ask_px, q.ask_qty);
    if ok {
        st.stats.crosscheck_ok.inc();
    } else {
        st.stats.crosscheck_failed.inc();
    }
    ok
}

fn publish_book(st: &InstrumentState) {
    let book = st.sync.book();
    let s = &st.stats;
    s.best_bid.set(book.best_bid().map_or(0, |(p, _)| p));
    s.best_ask.set(book.best_ask().map_or(0, |(p, _)| p));
    s.bid_levels.set(book.bid_levels() as i64);
    s.ask_levels.set(book.ask_levels() as i64);
    s.synced.set(i64::from(st.sync.is_synced()));
}
