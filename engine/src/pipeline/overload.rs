//! Prioritisation under back-pressure (`[engine] overload = "merge"`): a
//! bounded, pre-allocated stage on the producer side of a ring that takes
//! the events a full ring cannot, so a live receiver keeps reading its
//! socket while the signal stage is slow.
//!
//! Policy, per ring (order is kept per ring):
//!
//! * **Never dropped, never reordered**: trades, instrument announcements,
//!   snapshots, resets and gaps (and so the `book_status` rows they cause)
//!   are staged verbatim, in arrival order.
//! * **Book updates of an instrument merge into one diff** while they are
//!   contiguous under the venue's [`SyncRule`] (Spot `B.U == A.u + 1`,
//!   Futures and Linked `B.pu == A.u`, Unsequenced any). The merged diff has
//!   A's `first_id` / `prev_last_id`, B's `last_id`, times and checksum, and
//!   the union of the levels, the later size winning per (side, price). It is
//!   exact because levels are absolute sizes: applying the union equals
//!   applying A then B, and when A is stale against the book and B straddles
//!   it, every update between A and the book is inside B, so re-applying A's
//!   other levels changes nothing. The venue's checksum of B describes the
//!   book after the merge. Books truncated to a depth (a snapshot with
//!   `max_depth > 0`, and stream-started books until their first
//!   untruncated snapshot) are never merged: truncating between diffs can
//!   differ from truncating once. A snapshot, reset, gap or announcement of
//!   the instrument, or a diff that does not continue the open merge,
//!   closes it (later diffs start a new one behind). The merged diff is
//!   delivered at the position of its first diff.
//! * **Best bid/offer quotes conflate**: one pending quote per instrument,
//!   a newer one overwrites it (`quotes_conflated`), delivered at the first
//!   one's position.
//! * **Never grows**: the stage holds at most `capacity` items, merged diffs
//!   at most `level_cap` levels in a fixed number of slots, all allocated up
//!   front. When an event does not fit, the stage is flushed into the ring
//!   with today's blocking push (`stage_full_blocks`): nothing is dropped.
//!
//! The stage drains into the ring, oldest first, before every new event and
//! whenever the receiver is idle ([`Stage::drain`]); new events go behind
//! staged ones. At shutdown it is flushed (blocking).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use feeds::book::{BookStart, SyncRule};
use feeds::event::{BookSide, DepthHeader, Event, InstrumentId, Level, QuoteEvent};

use super::ring::{RingTx, Slot};

/// What a receiver does when a ring is full (`[engine] overload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overload {
    /// Stage, merge book updates, conflate quotes (`"merge"`, the default of
    /// live runs): the socket keeps being read.
    #[default]
    Merge,
    /// Wait for the signal thread (`"block"`; replays always block, so their
    /// output stays exactly the capture's).
    Block,
}

/// Counters of the overflow stages of all receivers.
#[derive(Debug, Default)]
pub struct OverloadCounters {
    /// Events that went through a stage instead of straight into a ring.
    pub staged_events: AtomicU64,
    /// Diffs merged into an earlier pending diff of their instrument.
    pub diffs_merged: AtomicU64,
    /// Quotes that overwrote a pending quote of their instrument.
    pub quotes_conflated: AtomicU64,
    /// Times a full stage was flushed with a blocking push.
    pub stage_full_blocks: AtomicU64,
    /// Most items a stage held at once.
    pub stage_high_water: AtomicU64,
}

impl OverloadCounters {
    #[inline]
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

const NONE: u16 = u16::MAX;
/// Instrument ids above this are staged verbatim (no per-instrument state).
const MAX_TRACKED: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
enum Item {
    /// An event as it arrived, with its frame time.
    Ev(Event, u64),
    /// The merged diff in merge slot `n`.
    Merged(u16),
    /// The pending quote in quote slot `n`.
    Quote(u16),
}

struct MergeSlot {
    hdr: DepthHeader,
    t_frame: u64,
    /// Sorted by (side, price), unique.
    levels: Vec<Level>,
}

#[derive(Clone, Copy)]
struct QuoteSlot {
    q: QuoteEvent,
    t_frame: u64,
}

#[derive(Clone, Copy, Debug)]
struct Inst {
    rule: Option<SyncRule>,
    truncated: bool,
    /// Open merge slot (still extendable), or `NONE`.
    merge: u16,
    /// Pending quote slot, or `NONE`.
    quote: u16,
}

impl Default for Inst {
    fn default() -> Self {
        Self {
            rule: None,
            truncated: true,
            merge: NONE,
            quote: NONE,
        }
    }
}

/// Where the levels of the message being received go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    Idle,
    /// Into the ring (it had room for the whole message).
    Direct(u32),
    /// Into the stage, verbatim.
    Verbatim(u32),
    /// Into merge slot `.0`.
    Merging(u16, u32),
}

/// Sizes of a [`Stage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageLimits {
    /// Items held (events, pending quotes, pending merged diffs).
    pub capacity: usize,
    /// Levels of one merged diff (below the ring capacity, so it always fits).
    pub level_cap: usize,
    /// Merged diffs and quotes pending at once.
    pub slots: usize,
}

impl StageLimits {
    /// Limits for a ring of `ring_capacity` slots and a stage of `capacity` items.
    #[must_use]
    pub fn for_ring(ring_capacity: usize, capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            level_cap: ring_capacity.saturating_sub(1).clamp(1, 4096),
            slots: 64,
        }
    }
}

/// The overflow stage of one ring (see the module docs).
pub struct Stage {
    fifo: VecDeque<Item>,
    limits: StageLimits,
    merges: Vec<MergeSlot>,
    free_merges: Vec<u16>,
    quotes: Vec<QuoteSlot>,
    free_quotes: Vec<u16>,
    insts: Vec<Inst>,
    cursor: Cursor,
    counters: Arc<OverloadCounters>,
    high_water: usize,
}

/// The ring side a [`Stage`] pushes into (a [`RingTx`]; a plain vector in tests).
pub trait Sink {
    /// Free slots now.
    fn free(&self) -> usize;
    /// Pushes, blocking while full (never blocks after `free()` said there is room).
    fn push(&mut self, s: Slot);
    /// The consumer is gone: nothing will ever be taken.
    fn abandoned(&self) -> bool;
    /// Wakes the consumer.
    fn wake(&self);
}

impl Sink for RingTx<Slot> {
    #[inline]
    fn free(&self) -> usize {
        RingTx::free(self)
    }
    #[inline]
    fn push(&mut self, s: Slot) {
        self.push_quiet(s);
    }
    fn abandoned(&self) -> bool {
        self.is_abandoned()
    }
    fn wake(&self) {
        self.notify();
    }
}

#[inline]
fn key(l: &Level) -> (u8, i64) {
    (
        match l.side {
            BookSide::Bid => 0,
            BookSide::Ask => 1,
        },
        l.px,
    )
}

/// Whether diff `b` continues diff `a` exactly under `rule` (see the module docs).
#[must_use]
pub fn contiguous(rule: SyncRule, a: &DepthHeader, b: &DepthHeader) -> bool {
    match rule {
        SyncRule::Spot => a.last_id.checked_add(1) == Some(b.first_id),
        SyncRule::Futures => a.last_id != 0 && b.prev_last_id == a.last_id,
        SyncRule::Linked => {
            let unnumbered = |h: &DepthHeader| h.last_id == 0 && h.prev_last_id == 0;
            if unnumbered(a) || unnumbered(b) {
                unnumbered(a) && unnumbered(b)
            } else {
                b.prev_last_id == a.last_id
            }
        }
        SyncRule::Unsequenced => true,
    }
}

impl Stage {
    /// An empty stage, all memory allocated.
    #[must_use]
    pub fn new(limits: StageLimits, counters: Arc<OverloadCounters>) -> Self {
        let slots = limits.slots.min(usize::from(NONE));
        Self {
            fifo: VecDeque::with_capacity(limits.capacity),
            limits,
            merges: (0..slots)
                .map(|_| MergeSlot {
                    hdr: DepthHeader {
                        inst: InstrumentId(0),
                        first_id: 0,
                        last_id: 0,
                        prev_last_id: 0,
                        ts_ns: 0,
                        recv_ns: 0,
                        levels: 0,
                        checksum: None,
                    },
                    t_frame: 0,
                    levels: Vec::with_capacity(limits.level_cap),
                })
                .collect(),
            free_merges: (0..slots as u16).rev().collect(),
            quotes: Vec::with_capacity(slots),
            free_quotes: (0..slots as u16).rev().collect(),
            insts: Vec::new(),
            cursor: Cursor::Idle,
            counters,
            high_water: 0,
        }
    }

    /// Nothing is staged.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// Items held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// Learns what an event tells about its instrument (its venue's rule,
    /// whether its book is truncated). Called for every event of a frame.
    #[inline]
    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::Instrument(info) => {
                if let Some(i) = self.inst_mut(info.inst) {
                    if let Some(v) = feeds::venue::venue_at(info.venue) {
                        i.rule = Some(v.book.sequence);
                        i.truncated = v.book.start == BookStart::StreamSnapshot;
                    }
                }
            }
            Event::Snapshot(s) => {
                if let Some(i) = self.inst_mut(s.inst) {
                    i.truncated = s.max_depth > 0;
                }
            }
            _ => {}
        }
    }

    /// Registers `inst` with `rule` (tests and callers without announcements).
    pub fn set_rule(&mut self, inst: InstrumentId, rule: SyncRule, truncated: bool) {
        if let Some(i) = self.inst_mut(inst) {
            i.rule = Some(rule);
            i.truncated = truncated;
        }
    }

    #[cold]
    fn grow(&mut self, idx: usize) {
        self.insts.resize(idx + 1, Inst::default());
    }

    #[inline]
    fn inst_mut(&mut self, inst: InstrumentId) -> Option<&mut Inst> {
        let idx = inst.index();
        if idx >= MAX_TRACKED {
            return None;
        }
        if idx >= self.insts.len() {
            self.grow(idx);
        }
        self.insts.get_mut(idx)
    }

    /// Takes one event of a frame: straight into `ring` when nothing is
    /// staged and its whole message fits, else into the stage.
    #[inline]
    pub fn offer(&mut self, ring: &mut impl Sink, ev: &Event, t_frame: u64, t_push: u64) {
        match self.cursor {
            Cursor::Idle => {}
            Cursor::Direct(n) => {
                ring.push(Slot {
                    ev: *ev,
                    t_frame,
                    t_push,
                });
                self.cursor = if n > 1 {
                    Cursor::Direct(n - 1)
                } else {
                    Cursor::Idle
                };
                return;
            }
            Cursor::Verbatim(n) => {
                self.fifo.push_back(Item::Ev(*ev, t_frame));
                self.cursor = if n > 1 {
                    Cursor::Verbatim(n - 1)
                } else {
                    Cursor::Idle
                };
                return;
            }
            Cursor::Merging(s, n) => {
                if let Event::Level(l) = ev {
                    self.merge_level(s, *l);
                    self.cursor = if n > 1 {
                        Cursor::Merging(s, n - 1)
                    } else {
                        Cursor::Idle
                    };
                    return;
                }
                // A header came before all announced levels: the merge ends here.
                self.cursor = Cursor::Idle;
            }
        }
        let levels = match ev {
            Event::Depth(h) => h.levels,
            Event::Snapshot(s) => s.levels,
            _ => 0,
        };
        if !self.fifo.is_empty() {
            self.drain(ring, t_push);
        }
        if self.fifo.is_empty() && ring.free() > levels as usize {
            self.direct(ring, ev, t_frame, t_push, levels);
            return;
        }
        self.stage(ring, ev, t_frame, t_push, levels);
    }

    #[inline]
    fn direct(&mut self, ring: &mut impl Sink, ev: &Event, t_frame: u64, t_push: u64, n: u32) {
        ring.push(Slot {
            ev: *ev,
            t_frame,
            t_push,
        });
        if n > 0 {
            self.cursor = Cursor::Direct(n);
        }
    }

    fn stage(&mut self, ring: &mut impl Sink, ev: &Event, t_frame: u64, t_push: u64, levels: u32) {
        let c = self.counters.clone();
        match *ev {
            Event::Quote(q) => {
                if let Some(i) = self.inst_mut(q.inst).copied() {
                    if i.quote != NONE {
                        self.quotes[usize::from(i.quote)] = QuoteSlot { q, t_frame };
                        OverloadCounters::add(&c.quotes_conflated, 1);
                        OverloadCounters::add(&c.staged_events, 1);
                        return;
                    }
                    if self.fifo.len() < self.limits.capacity {
                        if let Some(s) = self.free_quotes.pop() {
                            let slot = QuoteSlot { q, t_frame };
                            match self.quotes.get_mut(usize::from(s)) {
                                Some(x) => *x = slot,
                                None => self.quotes.push(slot),
                            }
                            self.push_item(Item::Quote(s));
                            if let Some(i) = self.inst_mut(q.inst) {
                                i.quote = s;
                            }
                            OverloadCounters::add(&c.staged_events, 1);
                            return;
                        }
                    }
                }
            }
            Event::Depth(h) => {
                if self.stage_diff(&h, t_frame) {
                    OverloadCounters::add(&c.staged_events, 1 + u64::from(h.levels));
                    return;
                }
            }
            Event::Snapshot(_) | Event::Reset(_) | Event::Gap(_) | Event::Instrument(_) => {
                let inst = match *ev {
                    Event::Snapshot(s) => s.inst,
                    Event::Reset(i) | Event::Gap(i) => i,
                    Event::Instrument(info) => info.inst,
                    _ => InstrumentId(u32::MAX),
                };
                // A barrier: later diffs and quotes of it stay behind it.
                if let Some(i) = self.inst_mut(inst) {
                    i.merge = NONE;
                    i.quote = NONE;
                }
            }
            Event::Trade(_) | Event::Level(_) => {}
        }
        // Verbatim: the event and its levels.
        let need = 1 + levels as usize;
        if self.fifo.len() + need > self.limits.capacity {
            self.flush(ring, true);
            if need > self.limits.capacity || ring.free() > levels as usize {
                // Bigger than the stage, or the ring has room now: the
                // stage is empty, so straight into the ring keeps the order.
                self.direct(ring, ev, t_frame, t_push, levels);
                return;
            }
        }
        self.push_item(Item::Ev(*ev, t_frame));
        if levels > 0 {
            self.cursor = Cursor::Verbatim(levels);
        }
        OverloadCounters::add(&c.staged_events, need as u64);
    }

    /// Merges a diff into its instrument's open merge, or opens one; `false`:
    /// it must be staged verbatim.
    fn stage_diff(&mut self, h: &DepthHeader, t_frame: u64) -> bool {
        let cap = self.limits.level_cap;
        let n = h.levels as usize;
        let Some(i) = self.inst_mut(h.inst).copied() else {
            return false;
        };
        let Some(rule) = i.rule.filter(|_| !i.truncated) else {
            return false;
        };
        if i.merge != NONE {
            let m = &mut self.merges[usize::from(i.merge)];
            if contiguous(rule, &m.hdr, h) && m.levels.len() + n <= cap {
                m.hdr.last_id = h.last_id;
                m.hdr.ts_ns = h.ts_ns;
                m.hdr.recv_ns = h.recv_ns;
                m.hdr.checksum = h.checksum;
                if n > 0 {
                    self.cursor = Cursor::Merging(i.merge, h.levels);
                }
                OverloadCounters::add(&self.counters.diffs_merged, 1);
                return true;
            }
            // Not a continuation: close it, this diff starts behind it.
            if let Some(x) = self.inst_mut(h.inst) {
                x.merge = NONE;
            }
        }
        if n > cap || self.fifo.len() >= self.limits.capacity {
            return false;
        }
        let Some(s) = self.free_merges.pop() else {
            return false;
        };
        let m = &mut self.merges[usize::from(s)];
        m.hdr = *h;
        m.t_frame = t_frame;
        m.levels.clear();
        self.push_item(Item::Merged(s));
        if let Some(x) = self.inst_mut(h.inst) {
            x.merge = s;
        }
        if n > 0 {
            self.cursor = Cursor::Merging(s, h.levels);
        }
        true
    }

    #[inline]
    fn merge_level(&mut self, s: u16, l: Level) {
        let m = &mut self.merges[usize::from(s)];
        let k = key(&l);
        match m.levels.binary_search_by(|x| key(x).cmp(&k)) {
            Ok(j) => m.levels[j].qty = l.qty,
            // Room was checked when the diff was taken (`level_cap`).
            Err(j) if m.levels.len() < m.levels.capacity() => m.levels.insert(j, l),
            Err(_) => {}
        }
    }

    #[inline]
    fn push_item(&mut self, it: Item) {
        self.fifo.push_back(it);
        if self.fifo.len() > self.high_water {
            self.high_water = self.fifo.len();
            self.counters
                .stage_high_water
                .fetch_max(self.high_water as u64, Ordering::Relaxed);
        }
    }

    /// Moves staged items into `ring`, oldest first, while they fit (a
    /// merged diff only as a whole). Only between messages. Returns whether
    /// the stage is empty.
    pub fn drain(&mut self, ring: &mut impl Sink, t_push: u64) -> bool {
        if self.cursor != Cursor::Idle {
            return self.fifo.is_empty();
        }
        while let Some(&it) = self.fifo.front() {
            match it {
                Item::Ev(ev, t_frame) => {
                    if ring.free() == 0 {
                        break;
                    }
                    ring.push(Slot {
                        ev,
                        t_frame,
                        t_push,
                    });
                }
                Item::Quote(s) => {
                    if ring.free() == 0 {
                        break;
                    }
                    let q = self.quotes[usize::from(s)];
                    ring.push(Slot {
                        ev: Event::Quote(q.q),
                        t_frame: q.t_frame,
                        t_push,
                    });
                    self.free_quotes.push(s);
                    if let Some(i) = self.inst_mut(q.q.inst) {
                        if i.quote == s {
                            i.quote = NONE;
                        }
                    }
                }
                Item::Merged(s) => {
                    let m = &mut self.merges[usize::from(s)];
                    if ring.free() <= m.levels.len() {
                        break;
                    }
                    let mut hdr = m.hdr;
                    hdr.levels = u32::try_from(m.levels.len()).unwrap_or(u32::MAX);
                    let t_frame = m.t_frame;
                    ring.push(Slot {
                        ev: Event::Depth(hdr),
                        t_frame,
                        t_push,
                    });
                    for l in &m.levels {
                        ring.push(Slot {
                            ev: Event::Level(*l),
                            t_frame,
                            t_push,
                        });
                    }
                    m.levels.clear();
                    self.free_merges.push(s);
                    if let Some(i) = self.inst_mut(hdr.inst) {
                        if i.merge == s {
                            i.merge = NONE;
                        }
                    }
                }
            }
            self.fifo.pop_front();
        }
        self.fifo.is_empty()
    }

    /// Pushes everything staged into `ring`, waiting for room (`full`: a
    /// full stage, counted; else shutdown).
    pub fn flush(&mut self, ring: &mut impl Sink, full: bool) {
        if self.fifo.is_empty() {
            return;
        }
        if full {
            OverloadCounters::add(&self.counters.stage_full_blocks, 1);
        }
        let cursor = std::mem::replace(&mut self.cursor, Cursor::Idle);
        loop {
            if self.drain(ring, super::clock::mono_ns()) {
                break;
            }
            ring.wake();
            if ring.abandoned() {
                break;
            }
            std::thread::yield_now();
        }
        self.cursor = cursor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feeds::book::{DepthSync, DiffOutcome, OrderBook, SnapshotOutcome};
    use feeds::event::{SnapshotHeader, TradeEvent, TradeKind};
    use signals::Side;

    /// A ring stand-in: `room` free slots, everything pushed kept in order.
    struct Vecs {
        got: Vec<Event>,
        room: usize,
    }

    impl Vecs {
        /// A ring with room for `room` more events.
        fn with_room(room: usize) -> Self {
            Self {
                got: Vec::new(),
                room,
            }
        }
    }

    impl Sink for Vecs {
        fn free(&self) -> usize {
            self.room
        }
        fn push(&mut self, s: Slot) {
            assert!(self.room > 0, "pushed into a full ring");
            self.room -= 1;
            self.got.push(s.ev);
        }
        fn abandoned(&self) -> bool {
            false
        }
        fn wake(&self) {}
    }

    const I: InstrumentId = InstrumentId(1);

    fn stage(cap: usize) -> Stage {
        let mut s = Stage::new(
            StageLimits {
                capacity: cap,
                level_cap: 64,
                slots: 4,
            },
            Arc::default(),
        );
        s.set_rule(I, SyncRule::Spot, false);
        s
    }

    fn diff(first: u64, last: u64, pu: u64, levels: &[(BookSide, i64, i64)]) -> Vec<Event> {
        let mut v = vec![Event::Depth(DepthHeader {
            inst: I,
            first_id: first,
            last_id: last,
            prev_last_id: pu,
            ts_ns: last as i64,
            recv_ns: last as i64,
            levels: levels.len() as u32,
            checksum: Some(last as u32),
        })];
        v.extend(
            levels
                .iter()
                .map(|&(side, px, qty)| Event::Level(Level { side, px, qty })),
        );
        v
    }

    fn trade(id: u64) -> Event {
        Event::Trade(TradeEvent {
            inst: I,
            id,
            ts_ns: 0,
            recv_ns: 0,
            px: 100,
            qty: 1,
            side: Side::Buy,
            kind: TradeKind::Trade,
        })
    }

    fn quote(u: u64) -> Event {
        Event::Quote(QuoteEvent {
            inst: I,
            update_id: u,
            ts_ns: 0,
            recv_ns: 0,
            bid_px: 99,
            bid_qty: 1,
            ask_px: 101,
            ask_qty: u as i64,
        })
    }

    fn feed(s: &mut Stage, ring: &mut Vecs, evs: &[Event]) {
        for e in evs {
            s.offer(ring, e, 0, 0);
        }
    }

    fn drain_all(s: &mut Stage, ring: &mut Vecs) {
        ring.room = usize::MAX;
        assert!(s.drain(ring, 0));
    }

    use BookSide::{Ask, Bid};

    #[test]
    fn contiguous_spot_diffs_merge_later_size_wins_and_trades_keep_order() {
        let mut s = stage(64);
        let mut r = Vecs::with_room(0);
        feed(
            &mut s,
            &mut r,
            &diff(1, 2, 0, &[(Bid, 99, 5), (Ask, 101, 1)]),
        );
        feed(&mut s, &mut r, &[trade(7)]);
        feed(
            &mut s,
            &mut r,
            &diff(3, 4, 0, &[(Bid, 99, 0), (Bid, 98, 2)]),
        );
        feed(&mut s, &mut r, &[trade(8)]);
        assert_eq!(s.counters.diffs_merged.load(Ordering::Relaxed), 1);
        drain_all(&mut s, &mut r);
        let Event::Depth(h) = r.got[0] else {
            panic!("{:?}", r.got)
        };
        assert_eq!(
            (h.first_id, h.last_id, h.levels, h.checksum),
            (1, 4, 3, Some(4))
        );
        let lv: Vec<_> = r.got[1..4]
            .iter()
            .map(|e| match e {
                Event::Level(l) => (l.side, l.px, l.qty),
                _ => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(lv, vec![(Bid, 98, 2), (Bid, 99, 0), (Ask, 101, 1)]);
        assert_eq!(r.got[4..], [trade(7), trade(8)]);
    }

    #[test]
    fn non_contiguous_diffs_are_not_merged() {
        // (rule, first diff, second diff, merges): the non-contiguous pairs
        // stay two diffs, the contiguous ones merge into one.
        for (rule, a, b, merges) in [
            (SyncRule::Spot, (1, 2, 0), (4, 5, 0), 0),
            (SyncRule::Futures, (1, 2, 0), (3, 5, 1), 0),
            (SyncRule::Linked, (0, 2, 1), (0, 5, 3), 0),
            (SyncRule::Futures, (1, 2, 0), (7, 9, 2), 1),
            (SyncRule::Linked, (0, 2, 1), (0, 5, 2), 1),
            (SyncRule::Unsequenced, (0, 0, 0), (0, 0, 0), 1),
        ] {
            let mut s = stage(64);
            s.set_rule(I, rule, false);
            let mut r = Vecs::with_room(0);
            feed(&mut s, &mut r, &diff(a.0, a.1, a.2, &[(Bid, 1, 1)]));
            feed(&mut s, &mut r, &diff(b.0, b.1, b.2, &[(Bid, 2, 1)]));
            assert_eq!(
                s.counters.diffs_merged.load(Ordering::Relaxed),
                merges,
                "{rule:?}"
            );
            if merges == 0 {
                drain_all(&mut s, &mut r);
                assert_eq!(r.got.len(), 4, "{rule:?}");
            }
        }
    }

    #[test]
    fn truncated_books_are_staged_verbatim() {
        let mut s = stage(64);
        s.set_rule(I, SyncRule::Unsequenced, true);
        let mut r = Vecs::with_room(0);
        feed(&mut s, &mut r, &diff(0, 0, 0, &[(Bid, 1, 1)]));
        feed(&mut s, &mut r, &diff(0, 0, 0, &[(Bid, 1, 2)]));
        assert_eq!(s.counters.diffs_merged.load(Ordering::Relaxed), 0);
        drain_all(&mut s, &mut r);
        assert_eq!(r.got.len(), 4);
        // A snapshot with a depth limit marks the book truncated.
        let mut s = stage(64);
        s.observe(&Event::Snapshot(snap(10, 5)));
        feed(&mut s, &mut r, &diff(11, 11, 0, &[(Bid, 1, 1)]));
        feed(&mut s, &mut r, &diff(12, 12, 0, &[(Bid, 1, 2)]));
        assert_eq!(s.counters.diffs_merged.load(Ordering::Relaxed), 0);
    }

    fn snap(id: u64, max_depth: u32) -> SnapshotHeader {
        SnapshotHeader {
            inst: I,
            last_update_id: id,
            recv_ns: 0,
            levels: 0,
            checksum: None,
            max_depth,
            wire: feeds::instruments::NO_WIRE,
            from_rest: false,
        }
    }

    #[test]
    fn snapshot_and_reset_are_barriers_and_keep_their_place() {
        let mut s = stage(64);
        let mut r = Vecs::with_room(0);
        feed(&mut s, &mut r, &diff(1, 2, 0, &[(Bid, 1, 1)]));
        feed(&mut s, &mut r, &[Event::Reset(I)]);
        feed(&mut s, &mut r, &diff(3, 4, 0, &[(Bid, 2, 1)]));
        feed(&mut s, &mut r, &[Event::Snapshot(snap(4, 0))]);
        feed(&mut s, &mut r, &diff(5, 6, 0, &[(Bid, 3, 1)]));
        feed(&mut s, &mut r, &diff(7, 8, 0, &[(Bid, 4, 1)]));
        assert_eq!(s.counters.diffs_merged.load(Ordering::Relaxed), 1);
        drain_all(&mut s, &mut r);
        let kinds: Vec<_> = r
            .got
            .iter()
            .map(|e| match e {
                Event::Depth(h) => format!("D{}-{}", h.first_id, h.last_id),
                Event::Level(l) => format!("L{}", l.px),
                Event::Reset(_) => "R".into(),
                Event::Snapshot(_) => "S".into(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            ["D1-2", "L1", "R", "D3-4", "L2", "S", "D5-8", "L3", "L4"]
        );
    }

    #[test]
    fn quotes_conflate_to_the_latest_at_the_first_position() {
        let mut s = stage(64);
        let mut r = Vecs::with_room(0);
        feed(
            &mut s,
            &mut r,
            &[quote(1), trade(1), quote(2), trade(2), quote(3)],
        );
        assert_eq!(s.counters.quotes_conflated.load(Ordering::Relaxed), 2);
        drain_all(&mut s, &mut r);
        assert_eq!(r.got, [quote(3), trade(1), trade(2)]);
        // After delivery a new quote is pending again.
        r.room = 0;
        feed(&mut s, &mut r, &[quote(4)]);
        drain_all(&mut s, &mut r);
        assert_eq!(r.got[3..], [quote(4)]);
    }

    #[test]
    fn direct_while_the_ring_has_room_and_fifo_order_behind_staged() {
        let mut s = stage(64);
        let mut r = Vecs::with_room(2);
        feed(&mut s, &mut r, &[trade(1), trade(2)]);
        assert!(s.is_empty());
        feed(&mut s, &mut r, &[trade(3), trade(4)]);
        assert_eq!(s.len(), 2);
        r.room = 1;
        // The staged trade 3 goes first, 4 and 5 stay staged.
        feed(&mut s, &mut r, &[trade(5)]);
        assert_eq!(r.got, [trade(1), trade(2), trade(3)]);
        drain_all(&mut s, &mut r);
        assert_eq!(r.got[3..], [trade(4), trade(5)]);
    }

    #[test]
    fn a_full_stage_blocks_instead_of_dropping_or_growing() {
        // A ring that frees one slot per wake-up (a slow consumer).
        struct Slow(Vec<Event>, std::cell::Cell<usize>);
        impl Sink for Slow {
            fn free(&self) -> usize {
                self.1.get()
            }
            fn push(&mut self, s: Slot) {
                assert!(self.1.get() > 0);
                self.1.set(self.1.get() - 1);
                self.0.push(s.ev);
            }
            fn abandoned(&self) -> bool {
                false
            }
            fn wake(&self) {
                self.1.set(self.1.get() + 1);
            }
        }
        let mut s = stage(4);
        let mut r = Slow(Vec::new(), std::cell::Cell::new(0));
        let trades: Vec<_> = (1..=20).map(trade).collect();
        for t in &trades {
            s.offer(&mut r, t, 0, 0);
            assert!(s.len() <= 4);
        }
        assert!(s.counters.stage_full_blocks.load(Ordering::Relaxed) > 0);
        r.1.set(usize::MAX);
        assert!(s.drain(&mut r, 0));
        assert_eq!(r.0, trades);
    }

    /// Random diff streams applied one by one and through the stage (a ring
    /// with random room) give the same book and the same outcomes.
    #[test]
    fn merged_stream_builds_the_same_book_as_the_original() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut merged = 0;
        for rule in [SyncRule::Spot, SyncRule::Futures, SyncRule::Linked] {
            for case in 0..300 {
                // Single updates numbered from 100 (each sets one level),
                // aggregated into contiguous diffs the way a venue does: a
                // diff over ids U..=u carries the last size per level.
                let base = [(Bid, 95, 3), (Ask, 104, 3), (Bid, 91, 1)];
                let mut updates: Vec<(BookSide, i64, i64)> = Vec::new();
                let mut diffs: Vec<Vec<Event>> = Vec::new();
                let mut id = 100u64;
                let mut prev = 99u64;
                for _ in 0..(5 + next(40)) {
                    let first = id;
                    let last = id + next(3);
                    let mut lv: Vec<(BookSide, i64, i64)> = Vec::new();
                    for _ in first..=last {
                        let side = if next(2) == 0 { Bid } else { Ask };
                        let px = if side == Bid {
                            90 + next(10)
                        } else {
                            101 + next(10)
                        };
                        let u = (side, px as i64, next(4) as i64);
                        updates.push(u);
                        match lv.iter_mut().find(|x| (x.0, x.1) == (u.0, u.1)) {
                            Some(x) => x.2 = u.2,
                            None => lv.push(u),
                        }
                    }
                    let (f, pu) = match rule {
                        SyncRule::Linked => (0, prev),
                        _ => (first, prev),
                    };
                    diffs.push(diff(f, last, pu, &lv));
                    prev = last;
                    id = last + 1;
                }
                // The snapshot is the book after update `snap_id`: it lands
                // anywhere in the run (stale prefix, straddling diff).
                let snap_id = 99 + next(id - 99);
                let mut at_snap = OrderBook::with_capacity(256);
                for &(side, px, qty) in base.iter().chain(&updates[..(snap_id - 99) as usize]) {
                    at_snap.set(side, px, qty);
                }
                let mut snap_levels: Vec<Level> = Vec::new();
                snap_levels.extend(at_snap.bids().map(|(px, qty)| Level { side: Bid, px, qty }));
                snap_levels.extend(at_snap.asks().map(|(px, qty)| Level { side: Ask, px, qty }));
                let run = |events: &[Event]| -> (DepthSync, Vec<DiffOutcome>) {
                    let mut sync = DepthSync::with_rule(rule, 256, 4096);
                    let mut h = snap(snap_id, 0);
                    h.from_rest = true;
                    let out = sync.on_snapshot(&h, &snap_levels);
                    assert!(matches!(out, SnapshotOutcome::Synced { .. }));
                    let mut outcomes = Vec::new();
                    let mut i = 0;
                    while i < events.len() {
                        let Event::Depth(h) = events[i] else {
                            panic!("{:?}", events[i])
                        };
                        let n = h.levels as usize;
                        let lv: Vec<Level> = events[i + 1..=i + n]
                            .iter()
                            .map(|e| match e {
                                Event::Level(l) => *l,
                                _ => panic!(),
                            })
                            .collect();
                        outcomes.push(sync.on_diff(&h, &lv));
                        i += 1 + n;
                    }
                    (sync, outcomes)
                };
                let original: Vec<Event> = diffs.iter().flatten().copied().collect();
                let mut s = stage(1 << 12);
                s.set_rule(I, rule, false);
                let mut r = Vecs::with_room(0);
                for d in &diffs {
                    r.room = next(8) as usize;
                    feed(&mut s, &mut r, d);
                }
                drain_all(&mut s, &mut r);
                let (a, oa) = run(&original);
                let (b, ob) = run(&r.got);
                let ctx = format!("{rule:?} case {case} snap {snap_id}");
                assert_eq!(a.is_synced(), b.is_synced(), "{ctx}");
                assert_eq!(a.book_id(), b.book_id(), "{ctx}");
                let book = |s: &DepthSync| {
                    (
                        s.book().bids().collect::<Vec<_>>(),
                        s.book().asks().collect::<Vec<_>>(),
                    )
                };
                assert_eq!(book(&a), book(&b), "{ctx}");
                // ... and it is the book after every update.
                let mut all = OrderBook::with_capacity(256);
                for &(side, px, qty) in base.iter().chain(&updates) {
                    all.set(side, px, qty);
                }
                assert!(b.is_synced(), "{ctx}");
                assert_eq!(
                    book(&b),
                    (all.bids().collect(), all.asks().collect()),
                    "{ctx}"
                );
                merged += s.counters.diffs_merged.load(Ordering::Relaxed);
                let gaps = |o: &[DiffOutcome]| o.iter().filter(|o| **o == DiffOutcome::Gap).count();
                assert_eq!(gaps(&oa), gaps(&ob), "{ctx}");
            }
        }
        assert!(merged > 1000, "the stage merged only {merged} diffs");
    }
}
