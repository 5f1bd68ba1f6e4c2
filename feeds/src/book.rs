//! Fixed-point L2 order book and the depth-stream synchronisation of
//! SIGNALS.md 2.5.
//!
//! * [`OrderBook`]: price level → size, `i64` ticks → `i64` lots. Each side is
//!   a sorted `Vec<(px, qty)>` with the **best level at the end**, so the
//!   frequent updates near the top move few elements.
//! * [`DepthSync`]: the Binance spot buffer / snapshot / `U`-`u` continuity
//!   state machine around one book.
//!
//! ```
//! use feeds::book::{DepthSync, DiffOutcome, SnapshotOutcome};
//! use feeds::event::{BookSide, DepthHeader, InstrumentId, Level, SnapshotHeader};
//! let lv = |side, px, qty| Level { side, px, qty };
//! let diff = |first_id, last_id| DepthHeader {
//!     inst: InstrumentId(0), first_id, last_id, prev_last_id: 0, ts_ns: 0, recv_ns: 0, levels: 1,
//! };
//! let mut sync = DepthSync::new(1024, 4096);
//! assert_eq!(sync.on_diff(&diff(8, 12), &[lv(BookSide::Bid, 99, 5)]), DiffOutcome::Buffered);
//! let snap = SnapshotHeader { inst: InstrumentId(0), last_update_id: 10, recv_ns: 0, levels: 2 };
//! let out = sync.on_snapshot(&snap, &[lv(BookSide::Bid, 100, 1), lv(BookSide::Ask, 101, 2)]);
//! assert_eq!(out, SnapshotOutcome::Synced { replayed: 1 });
//! assert_eq!(sync.book_id(), 12);
//! assert_eq!(sync.on_diff(&diff(13, 13), &[lv(BookSide::Ask, 101, 0)]), DiffOutcome::Applied);
//! assert_eq!(sync.book().best_ask(), None);
//! assert_eq!(sync.on_diff(&diff(15, 16), &[]), DiffOutcome::Gap);
//! assert!(!sync.is_synced());
//! ```

use signals::event::DepthView;

use crate::event::{BookSide, DepthHeader, Level, SnapshotHeader};

// ---------------------------------------------------------------------------
// OrderBook
// ---------------------------------------------------------------------------

/// One side of the book: unique prices, no zero sizes, sorted so that the
/// best level is last (bids ascending, asks descending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ladder<const BID: bool> {
    levels: Vec<(i64, i64)>,
}

impl<const BID: bool> Ladder<BID> {
    fn with_capacity(n: usize) -> Self {
        Self {
            levels: Vec::with_capacity(n),
        }
    }

    /// Orders an existing level price `p` against `px` in storage order
    /// (worse first, best last).
    #[inline]
    fn cmp(p: i64, px: i64) -> std::cmp::Ordering {
        if BID {
            p.cmp(&px)
        } else {
            px.cmp(&p)
        }
    }

    #[inline]
    fn set(&mut self, px: i64, qty: i64) {
        // Fast path: the top of the book, where most updates land.
        if let Some(&(best, _)) = self.levels.last() {
            if best == px {
                let last = self.levels.len() - 1;
                if qty > 0 {
                    self.levels[last].1 = qty;
                } else {
                    self.levels.pop();
                }
                return;
            }
            if Self::cmp(best, px).is_lt() {
                if qty > 0 {
                    self.levels.push((px, qty));
                }
                return;
            }
        }
        match self.levels.binary_search_by(|&(p, _)| Self::cmp(p, px)) {
            Ok(i) if qty > 0 => self.levels[i].1 = qty,
            Ok(i) => {
                self.levels.remove(i);
            }
            Err(i) if qty > 0 => self.levels.insert(i, (px, qty)),
            Err(_) => {}
        }
    }

    #[inline]
    fn best(&self) -> Option<(i64, i64)> {
        self.levels.last().copied()
    }

    #[inline]
    fn depth(&self, n: usize) -> i64 {
        self.levels.iter().rev().take(n).map(|&(_, q)| q).sum()
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.levels.iter().any(|&(_, q)| q <= 0) {
            return Err("non-positive size");
        }
        if self
            .levels
            .windows(2)
            .any(|w| !Self::cmp(w[0].0, w[1].0).is_lt())
        {
            return Err("prices not strictly ordered");
        }
        Ok(())
    }
}

/// Price-level (L2) book in fixed point.
///
/// Invariants: on each side prices are unique and strictly ordered and every
/// size is `> 0`. Capacity given at construction is pre-allocated per side;
/// a side that outgrows it reallocates (levels are never dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderBook {
    bids: Ladder<true>,
    asks: Ladder<false>,
}

impl OrderBook {
    /// An empty book with room for `levels_per_side` levels on each side.
    #[must_use]
    pub fn with_capacity(levels_per_side: usize) -> Self {
        Self {
            bids: Ladder::with_capacity(levels_per_side),
            asks: Ladder::with_capacity(levels_per_side),
        }
    }

    /// Sets the size of a level; `qty <= 0` deletes it (deleting an absent
    /// level is a no-op).
    #[inline]
    pub fn set(&mut self, side: BookSide, px: i64, qty: i64) {
        match side {
            BookSide::Bid => self.bids.set(px, qty),
            BookSide::Ask => self.asks.set(px, qty),
        }
    }

    /// [`set`](Self::set) from a [`Level`].
    #[inline]
    pub fn apply(&mut self, level: &Level) {
        self.set(level.side, level.px, level.qty);
    }

    /// Removes every level (capacity is kept).
    pub fn clear(&mut self) {
        self.bids.levels.clear();
        self.asks.levels.clear();
    }

    /// Best (highest) bid `(px, qty)`.
    #[inline]
    #[must_use]
    pub fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids.best()
    }

    /// Best (lowest) ask `(px, qty)`.
    #[inline]
    #[must_use]
    pub fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks.best()
    }

    /// Number of bid levels.
    #[inline]
    #[must_use]
    pub fn bid_levels(&self) -> usize {
        self.bids.levels.len()
    }

    /// Number of ask levels.
    #[inline]
    #[must_use]
    pub fn ask_levels(&self) -> usize {
        self.asks.levels.len()
    }

    /// Number of levels on `side`.
    #[inline]
    #[must_use]
    pub fn levels(&self, side: BookSide) -> usize {
        match side {
            BookSide::Bid => self.bid_levels(),
            BookSide::Ask => self.ask_levels(),
        }
    }

    /// Both sides empty.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bids.levels.is_empty() && self.asks.levels.is_empty()
    }

    /// Bid levels `(px, qty)`, best (highest price) first.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = (i64, i64)> + DoubleEndedIterator + '_ {
        self.bids.levels.iter().rev().copied()
    }

    /// Ask levels `(px, qty)`, best (lowest price) first.
    pub fn asks(&self) -> impl ExactSizeIterator<Item = (i64, i64)> + DoubleEndedIterator + '_ {
        self.asks.levels.iter().rev().copied()
    }

    /// Both sides non-empty and best bid `>=` best ask (crossed or locked,
    /// as SIGNALS.md 2.4 treats them alike).
    #[inline]
    #[must_use]
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some((b, _)), Some((a, _))) => b >= a,
            _ => false,
        }
    }

    /// Checks the invariants (sorted, unique prices, sizes `> 0`). For tests
    /// and debug assertions; `O(levels)`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.bids.check()?;
        self.asks.check()
    }
}

impl DepthView for OrderBook {
    #[inline]
    fn best_bid(&self) -> Option<(i64, i64)> {
        OrderBook::best_bid(self)
    }

    #[inline]
    fn best_ask(&self) -> Option<(i64, i64)> {
        OrderBook::best_ask(self)
    }

    #[inline]
    fn bid_depth(&self, levels: usize) -> i64 {
        self.bids.depth(levels)
    }

    #[inline]
    fn ask_depth(&self, levels: usize) -> i64 {
        self.asks.depth(levels)
    }
}

// ---------------------------------------------------------------------------
// DepthSync
// ---------------------------------------------------------------------------

/// Continuity rule of a venue's diff-depth stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncRule {
    /// Binance spot (SIGNALS.md 2.5): with `book_id` the last applied id,
    /// `u <= book_id` is stale, `U > book_id + 1` is a gap, anything else
    /// applies.
    ///
    /// *Extension point:* Binance USD-M / COIN-M futures chain diffs with
    /// `pu` (`DepthHeader::prev_last_id`): the first diff after the snapshot
    /// must satisfy `U <= lastUpdateId <= u`, every later one `pu == previous u`.
    /// That is a new variant here plus one arm in the private `apply` step (it
    /// needs a "first diff applied" flag); buffering and replay are shared.
    #[default]
    Spot,
}

/// What [`DepthSync::on_diff`] did with a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Unsynced: stored for replay at the next snapshot.
    Buffered,
    /// Already covered by the book (`u <= book_id`): dropped.
    Stale,
    /// Sequence gap: book cleared, unsynced, buffer = this diff.
    Gap,
    /// Applied to the book (a live L2 event).
    Applied,
}

/// What [`DepthSync::on_snapshot`] did with a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Book loaded and the buffer replayed; `replayed` diffs were applied
    /// (stale buffered diffs are dropped and not counted).
    Synced {
        /// Buffered diffs applied during the replay.
        replayed: u32,
    },
    /// Already synced: snapshot ignored.
    Ignored,
    /// The replay hit a gap: book cleared, unsynced again, the buffer is the
    /// offending diff followed by the rest of the buffered diffs.
    GapInBuffer,
}

/// A buffered diff: its header and where its levels sit in the flat level buffer.
#[derive(Clone, Copy, Debug)]
struct Buffered {
    hdr: DepthHeader,
    /// Number of levels (the slice given to `on_diff`, not `hdr.levels`).
    len: u32,
}

/// Synchronises one instrument's book from diff-depth updates and REST
/// snapshots (SIGNALS.md 2.5).
///
/// While unsynced, diffs are kept in a flat, reused buffer (headers + one
/// level vector): no allocation per diff once the buffers have grown.
///
/// **Buffer bound.** The buffer holds at most `buffer_capacity_levels` units,
/// a diff costing `max(1, number of levels)`. A diff that does not fit evicts
/// the **oldest** buffered diffs until it does (a diff larger than the whole
/// capacity is itself dropped); every evicted or dropped diff increments
/// [`buffer_overflows`](DepthSync::buffer_overflows). Dropping the oldest is
/// safe: they are the ones a later snapshot is most likely to make stale, and
/// if a needed diff was dropped the replay reports
/// [`SnapshotOutcome::GapInBuffer`] instead of building a wrong book.
#[derive(Debug, Clone)]
pub struct DepthSync {
    rule: SyncRule,
    book: OrderBook,
    book_id: u64,
    synced: bool,
    buf: Vec<Buffered>,
    buf_levels: Vec<Level>,
    /// Units in use (sum of `max(1, len)` over `buf`).
    buf_units: usize,
    buf_cap: usize,
    overflows: u64,
}

impl DepthSync {
    /// Unsynced, empty, [`SyncRule::Spot`]; `level_capacity` levels per book
    /// side and `buffer_capacity_levels` buffered levels pre-allocated.
    #[must_use]
    pub fn new(level_capacity: usize, buffer_capacity_levels: usize) -> Self {
        Self::with_rule(SyncRule::Spot, level_capacity, buffer_capacity_levels)
    }

    /// As [`new`](Self::new) with an explicit continuity rule.
    #[must_use]
    pub fn with_rule(rule: SyncRule, level_capacity: usize, buffer_capacity_levels: usize) -> Self {
        Self {
            rule,
            book: OrderBook::with_capacity(level_capacity),
            book_id: 0,
            synced: false,
            buf: Vec::with_capacity(buffer_capacity_levels.min(1024)),
            buf_levels: Vec::with_capacity(buffer_capacity_levels),
            buf_units: 0,
            buf_cap: buffer_capacity_levels,
            overflows: 0,
        }
    }

    /// Handles a diff (`levels` are its bid and ask levels; `hdr.levels` is
    /// not consulted).
    pub fn on_diff(&mut self, hdr: &DepthHeader, levels: &[Level]) -> DiffOutcome {
        if !self.synced {
            self.buffer(hdr, levels);
            return DiffOutcome::Buffered;
        }
        match apply(self.rule, &mut self.book, &mut self.book_id, hdr, levels) {
            Step::Stale => DiffOutcome::Stale,
            Step::Applied => DiffOutcome::Applied,
            Step::Gap => {
                self.book.clear();
                self.synced = false;
                self.clear_buffer();
                self.buffer(hdr, levels);
                DiffOutcome::Gap
            }
        }
    }

    /// Handles a snapshot: loads it (size-0 levels skipped) and replays the
    /// buffer, unless already synced.
    pub fn on_snapshot(&mut self, hdr: &SnapshotHeader, levels: &[Level]) -> SnapshotOutcome {
        if self.synced {
            return SnapshotOutcome::Ignored;
        }
        self.book.clear();
        for lv in levels.iter().filter(|lv| lv.qty != 0) {
            self.book.apply(lv);
        }
        self.book_id = hdr.last_update_id;
        self.synced = true;

        let mut replayed = 0u32;
        let mut start = 0usize;
        for (i, b) in self.buf.iter().enumerate() {
            let end = start + b.len as usize;
            let lv = &self.buf_levels[start..end];
            match apply(self.rule, &mut self.book, &mut self.book_id, &b.hdr, lv) {
                Step::Stale => {}
                Step::Applied => replayed += 1,
                Step::Gap => {
                    self.book.clear();
                    self.synced = false;
                    let cost: usize = self.buf[..i].iter().map(Buffered::cost).sum();
                    self.buf.drain(..i);
                    self.buf_levels.drain(..start);
                    self.buf_units -= cost;
                    return SnapshotOutcome::GapInBuffer;
                }
            }
            start = end;
        }
        self.clear_buffer();
        SnapshotOutcome::Synced { replayed }
    }

    /// Feed reconnected: book and buffer cleared, unsynced, `book_id` 0.
    /// The overflow counter is kept.
    pub fn reset(&mut self) {
        self.book.clear();
        self.book_id = 0;
        self.synced = false;
        self.clear_buffer();
    }

    /// Whether the book is synced (live diffs apply).
    #[inline]
    #[must_use]
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The book (empty while unsynced).
    #[inline]
    #[must_use]
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// Last applied update id (`lastUpdateId` of the snapshot, then `u` of
    /// each applied diff). Meaningful only while synced.
    #[inline]
    #[must_use]
    pub fn book_id(&self) -> u64 {
        self.book_id
    }

    /// Diffs evicted from or refused by the full buffer, since construction.
    #[inline]
    #[must_use]
    pub fn buffer_overflows(&self) -> u64 {
        self.overflows
    }

    /// Number of buffered diffs.
    #[inline]
    #[must_use]
    pub fn buffered_diffs(&self) -> usize {
        self.buf.len()
    }

    /// Buffered diffs in order: header and levels.
    pub fn buffered(&self) -> impl Iterator<Item = (&DepthHeader, &[Level])> + '_ {
        let mut start = 0usize;
        self.buf.iter().map(move |b| {
            let end = start + b.len as usize;
            let lv = &self.buf_levels[start..end];
            start = end;
            (&b.hdr, lv)
        })
    }

    /// The continuity rule.
    #[must_use]
    pub fn rule(&self) -> SyncRule {
        self.rule
    }

    fn clear_buffer(&mut self) {
        self.buf.clear();
        self.buf_levels.clear();
        self.buf_units = 0;
    }

    fn buffer(&mut self, hdr: &DepthHeader, levels: &[Level]) {
        let cost = levels.len().max(1);
        if cost > self.buf_cap {
            self.overflow_refuse();
            return;
        }
        if self.buf_units + cost > self.buf_cap {
            self.evict_for(cost);
        }
        self.buf.push(Buffered {
            hdr: *hdr,
            len: u32::try_from(levels.len()).unwrap_or(u32::MAX),
        });
        self.buf_levels.extend_from_slice(levels);
        self.buf_units += cost;
    }

    #[cold]
    fn overflow_refuse(&mut self) {
        self.overflows += 1;
    }

    /// Evicts the oldest diffs until `cost` more units fit.
    #[cold]
    fn evict_for(&mut self, cost: usize) {
        let mut n = 0usize;
        let mut lv = 0usize;
        while self.buf_units + cost > self.buf_cap {
            let b = self.buf[n];
            self.buf_units -= b.cost();
            lv += b.len as usize;
            n += 1;
        }
        self.buf.drain(..n);
        self.buf_levels.drain(..lv);
        self.overflows += n as u64;
    }
}

impl Buffered {
    #[inline]
    fn cost(&self) -> usize {
        (self.len as usize).max(1)
    }
}

enum Step {
    Stale,
    Gap,
    Applied,
}

/// The update procedure of SIGNALS.md 2.5 (shared by live diffs and replay).
#[inline]
fn apply(
    rule: SyncRule,
    book: &mut OrderBook,
    book_id: &mut u64,
    hdr: &DepthHeader,
    levels: &[Level],
) -> Step {
    match rule {
        SyncRule::Spot => {
            if hdr.last_id <= *book_id {
                return Step::Stale;
            }
            if hdr.first_id > book_id.saturating_add(1) {
                return Step::Gap;
            }
        }
    }
    for lv in levels {
        book.apply(lv);
    }
    *book_id = hdr.last_id;
    Step::Applied
}
