//! Receiver side: frame → venue parser → normalized events → rings.

use std::sync::Arc;

use feeds::event::{InstrumentId, Symbol};
use feeds::venue::{FrameKind, VenueAdapter};
use feeds::Event;

use super::clock::mono_ns;
use super::ring::EventTx;
use super::stats::{FeedStats, Registry, Stage, StageSamples};

/// How many individual parse errors are printed before only counting.
const LOGGED_ERRORS: u64 = 10;

/// Parses frames of one feed and pushes their events to the signal threads.
///
/// A replay of captures of several venues holds one adapter per venue and
/// [`select`](Ingest::select)s the one of each record's capture.
pub struct Ingest {
    adapters: Vec<Box<dyn VenueAdapter>>,
    /// Index of the adapter frames go to.
    active: usize,
    events: Vec<Event>,
    tx: EventTx,
    /// Counters of this feed.
    pub stats: Arc<FeedStats>,
    samples: StageSamples,
    known: Vec<(InstrumentId, Symbol)>,
}

impl Ingest {
    /// New ingest for `adapter`, registered in `registry` under `name`.
    pub fn new(
        adapter: Box<dyn VenueAdapter>,
        tx: EventTx,
        registry: &Registry,
        name: &str,
    ) -> Self {
        Self::with_adapters(vec![adapter], tx, registry, name)
    }

    /// New ingest over several adapters (the first is selected).
    pub fn with_adapters(
        adapters: Vec<Box<dyn VenueAdapter>>,
        tx: EventTx,
        registry: &Registry,
        name: &str,
    ) -> Self {
        let stats = registry.add_feed(name);
        Self {
            adapters,
            active: 0,
            events: Vec::with_capacity(8192),
            tx,
            stats,
            samples: registry.stage_samples(Stage::Parse),
            known: Vec::new(),
        }
    }

    /// The selected venue adapter.
    pub fn adapter_mut(&mut self) -> &mut dyn VenueAdapter {
        self.adapters[self.active].as_mut()
    }

    /// Sends the following frames to adapter `i` (of
    /// [`with_adapters`](Self::with_adapters)); returns it. Out of range
    /// keeps the current one.
    pub fn select(&mut self, i: usize) -> &mut dyn VenueAdapter {
        if i < self.adapters.len() {
            self.active = i;
        }
        self.adapter_mut()
    }

    /// One WebSocket frame (or capture record). `where_` names it in error
    /// logs. Returns what the frame was (`None`: it failed to parse).
    #[inline]
    pub fn on_frame(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        t_frame: u64,
        where_: &dyn Fn() -> String,
    ) -> Option<FrameKind> {
        self.stats.bytes.add(frame.len() as u64);
        self.events.clear();
        let res = self.adapters[self.active].parse(recv_ns, frame, &mut self.events);
        let kind = res.as_ref().ok().copied();
        self.after_parse(res, t_frame, where_);
        kind
    }

    /// A REST depth snapshot for `symbol`; whether it was a book.
    pub fn on_snapshot(
        &mut self,
        symbol: &str,
        recv_ns: i64,
        body: &mut [u8],
        t_frame: u64,
    ) -> bool {
        self.stats.bytes.add(body.len() as u64);
        self.stats.snapshots.inc();
        self.events.clear();
        let res =
            self.adapters[self.active].parse_snapshot(symbol, recv_ns, body, &mut self.events);
        let book = matches!(res, Ok(FrameKind::Snapshot));
        self.after_parse(res, t_frame, &|| format!("snapshot {symbol}"));
        book
    }

    #[inline]
    fn after_parse(
        &mut self,
        res: Result<FrameKind, feeds::venue::ParseError>,
        t_frame: u64,
        where_: &dyn Fn() -> String,
    ) {
        self.stats.last_frame_mono.set(t_frame as i64);
        match res {
            Ok(kind) => {
                match kind {
                    FrameKind::Unknown => self.stats.unknown_messages.inc(),
                    FrameKind::Control | FrameKind::Closing => self.stats.control_messages.inc(),
                    FrameKind::Rejected(_) => self.stats.rejected_requests.inc(),
                    FrameKind::Ignored => self.stats.ignored_messages.inc(),
                    _ => self.stats.messages.inc(),
                }
                if !self.events.is_empty() {
                    for ev in &self.events {
                        if let Event::Instrument(i) = ev {
                            self.known.push((i.inst, i.symbol));
                        }
                    }
                    let t_parsed = mono_ns();
                    self.samples.record(t_parsed.saturating_sub(t_frame));
                    self.tx.send_frame(&self.events, t_frame, t_parsed);
                }
            }
            Err(e) => {
                self.stats.parse_errors.inc();
                if self.stats.parse_errors.get() <= LOGGED_ERRORS {
                    eprintln!("parse error ({}): {e}", where_());
                } else if self.stats.parse_errors.get() == LOGGED_ERRORS + 1 {
                    eprintln!("further parse errors are only counted");
                }
            }
        }
    }

    /// The feed lost continuity: every instrument's book must resync.
    pub fn reset_all(&mut self) {
        self.reset_where(|_| true);
    }

    /// A connection carrying the books of `symbols` lost continuity: those
    /// instruments' books must resync.
    pub fn reset_symbols(&mut self, symbols: &[String]) {
        self.reset_where(|s| symbols.iter().any(|x| x.eq_ignore_ascii_case(s.as_str())));
    }

    fn reset_where(&mut self, pick: impl Fn(&Symbol) -> bool) {
        self.events.clear();
        self.events.extend(
            self.known
                .iter()
                .filter(|(_, s)| pick(s))
                .map(|&(i, _)| Event::Reset(i)),
        );
        if !self.events.is_empty() {
            let now = mono_ns();
            self.tx.send_frame(&self.events, now, now);
        }
    }

    /// The frames of one receive wake-up follow (see [`EventTx::begin_batch`]).
    #[inline]
    pub fn begin_batch(&mut self) {
        self.tx.begin_batch();
    }

    /// The receive batch is over: downstream threads are woken once.
    #[inline]
    pub fn end_batch(&mut self) {
        self.tx.end_batch();
    }

    /// Moves staged events on to the rings where there is room; whether
    /// some are still staged (see [`EventTx::drain_staged`]).
    #[inline]
    pub fn drain_staged(&mut self) -> bool {
        self.tx.drain_staged()
    }
}
