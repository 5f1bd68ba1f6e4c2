//! Fixed-point L2 order book and the depth-stream synchronisation of
//! SIGNALS.md 2.5.
//!
//! * [`OrderBook`]: price level → size, `i64` ticks → `i64` lots. Each side is
//!   a list of sorted chunks of at most 64 levels (best level last) over
//!   pre-allocated arenas: best level and top-L depth read the last chunks,
//!   and an update at any depth moves at most one chunk.
//! * [`DepthSync`]: the buffer / snapshot / continuity state machine around
//!   one book, with the venue's [`SyncRule`] (Binance spot `U`/`u`, Binance
//!   futures `pu`); [`BookPolicy`] is what a venue chooses.
//!
//! ```
//! use feeds::book::{DepthSync, DiffOutcome, SnapshotOutcome};
//! use feeds::event::{BookSide, DepthHeader, InstrumentId, Level, SnapshotHeader};
//! let lv = |side, px, qty| Level { side, px, qty };
//! let diff = |first_id, last_id| DepthHeader {
//!     inst: InstrumentId(0), first_id, last_id, prev_last_id: 0, ts_ns: 0, recv_ns: 0,
//!     levels: 1, checksum: None,
//! };
//! let mut sync = DepthSync::new(1024, 4096);
//! assert_eq!(sync.on_diff(&diff(8, 12), &[lv(BookSide::Bid, 99, 5)]), DiffOutcome::Buffered);
//! let snap = SnapshotHeader {
//!     inst: InstrumentId(0), last_update_id: 10, recv_ns: 0, levels: 2, checksum: None,
//!     max_depth: 0, wire: feeds::instruments::NO_WIRE, from_rest: false,
//! };
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

/// Levels per chunk of a [`Ladder`]: an insert or delete shifts at most this
/// many prices and sizes (1 KiB), wherever the level is in the book.
const CHUNK: usize = 64;

/// One chunk of a ladder: `len` levels at `base..base + len` of the arenas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    /// Offset of the chunk's slots in the arenas (a multiple of [`CHUNK`]).
    base: u32,
    /// Levels in use, `1..=CHUNK` while the chunk is listed.
    len: u32,
    /// Price of its last (best) level: the key of the chunk search.
    last: i64,
}

/// One side of the book: unique prices, no zero sizes, in storage order
/// worse first, best last (bids ascending, asks descending).
///
/// The levels live in a list of sorted chunks of at most [`CHUNK`] levels
/// whose slots are carved out of two pre-allocated arenas (prices, sizes). A
/// set finds its chunk by binary search on the chunks' last prices, then its
/// slot inside the chunk, so a deep insert or delete moves at most one chunk
/// (a single sorted `Vec` moved every level above it: Binance diffs touch
/// levels hundreds deep, and that memmove was the largest cost of the
/// pipeline). A full chunk splits in two, a chunk emptied below a quarter
/// merges with a neighbour. Chunks are recycled through a free list, so after
/// the arenas have grown to the book's depth nothing is allocated.
#[derive(Clone, Default)]
struct Ladder<const BID: bool> {
    /// Chunks in storage order.
    chunks: Vec<Chunk>,
    px: Vec<i64>,
    qty: Vec<i64>,
    /// Bases of unused chunks.
    free: Vec<u32>,
    len: usize,
    /// The chunk the last set below the top chunk landed in: the levels of
    /// one diff come sorted, so the next one is usually in it too (a hint,
    /// checked before use; any value is safe).
    hint: usize,
}

impl<const BID: bool> Ladder<BID> {
    fn with_capacity(n: usize) -> Self {
        let mut l = Self::default();
        // Splits leave chunks at least half full, so this holds `n` levels.
        l.grow(n.div_ceil(CHUNK / 2).max(2));
        l
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

    /// Adds `chunks` free chunks to the arenas.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, chunks: usize) {
        let old = self.px.len();
        let new = old + chunks * CHUNK;
        if old == 0 {
            // A zeroed allocation: the allocator hands out fresh pages that
            // only count in RSS once a level is written to them, so a book
            // reserved deep but filled shallow costs what it holds
            // (`resize` would write every slot up front).
            self.px = vec![0; new];
            self.qty = vec![0; new];
        } else {
            self.px.resize(new, 0);
            self.qty.resize(new, 0);
        }
        let total = new / CHUNK;
        // Room for every chunk in both lists: pushes never reallocate.
        self.free.reserve(total.saturating_sub(self.free.len()));
        self.chunks.reserve(total.saturating_sub(self.chunks.len()));
        self.free
            .extend((old..new).step_by(CHUNK).rev().map(|b| b as u32));
    }

    #[inline]
    fn alloc_chunk(&mut self) -> u32 {
        if self.free.is_empty() {
            let chunks = (self.px.len() / CHUNK).max(2);
            self.grow(chunks);
        }
        self.free.pop().unwrap_or(0)
    }

    #[inline]
    fn set(&mut self, px: i64, qty: i64) {
        let Some(&top) = self.chunks.last() else {
            if qty > 0 {
                self.push_chunk(px, qty);
            }
            return;
        };
        // Fast path: the top of the book, where most updates land.
        match Self::cmp(top.last, px) {
            std::cmp::Ordering::Equal => {
                let ci = self.chunks.len() - 1;
                let i = top.len as usize - 1;
                if qty > 0 {
                    self.qty[top.base as usize + i] = qty;
                } else {
                    self.remove_at(ci, i);
                }
                return;
            }
            std::cmp::Ordering::Less => {
                if qty > 0 {
                    if (top.len as usize) < CHUNK {
                        let ci = self.chunks.len() - 1;
                        self.insert_at(ci, top.len as usize, px, qty);
                    } else {
                        self.push_chunk(px, qty);
                    }
                }
                return;
            }
            std::cmp::Ordering::Greater => {}
        }
        // The first chunk whose best level is not worse than `px`; one
        // exists since the top chunk's is better.
        let ci = self.chunk_for(px);
        self.hint = ci;
        let c = self.chunks[ci];
        let base = c.base as usize;
        match self.px[base..base + c.len as usize].binary_search_by(|&p| Self::cmp(p, px)) {
            Ok(i) if qty > 0 => self.qty[base + i] = qty,
            Ok(i) => self.remove_at(ci, i),
            Err(i) if qty > 0 => self.insert_at(ci, i, px, qty),
            Err(_) => {}
        }
    }

    /// The first chunk whose best level is not worse than `px`: the hint's
    /// if that is the one, else a binary search.
    #[inline]
    fn chunk_for(&self, px: i64) -> usize {
        let h = self.hint;
        let not_worse = |c: &Chunk| !Self::cmp(c.last, px).is_lt();
        if self.chunks.get(h).is_some_and(not_worse)
            && (h == 0 || self.chunks.get(h - 1).is_some_and(|c| !not_worse(c)))
        {
            return h;
        }
        self.chunks.partition_point(|c| !not_worse(c))
    }

    /// Appends a chunk holding one new best level.
    fn push_chunk(&mut self, px: i64, qty: i64) {
        let base = self.alloc_chunk();
        self.px[base as usize] = px;
        self.qty[base as usize] = qty;
        self.chunks.push(Chunk {
            base,
            len: 1,
            last: px,
        });
        self.len += 1;
    }

    /// Inserts a level at slot `i` of chunk `ci` (splitting a full chunk).
    fn insert_at(&mut self, mut ci: usize, mut i: usize, px: i64, qty: i64) {
        if self.chunks[ci].len as usize == CHUNK {
            let half = CHUNK / 2;
            let upper = self.alloc_chunk();
            let c = self.chunks[ci];
            let (from, to) = (c.base as usize + half, upper as usize);
            self.px.copy_within(from..from + half, to);
            self.qty.copy_within(from..from + half, to);
            self.chunks[ci].len = half as u32;
            self.chunks[ci].last = self.px[from - 1];
            self.chunks.insert(
                ci + 1,
                Chunk {
                    base: upper,
                    len: half as u32,
                    last: c.last,
                },
            );
            if i > half {
                ci += 1;
                i -= half;
            }
        }
        let c = &mut self.chunks[ci];
        let (base, len) = (c.base as usize, c.len as usize);
        self.px.copy_within(base + i..base + len, base + i + 1);
        self.qty.copy_within(base + i..base + len, base + i + 1);
        self.px[base + i] = px;
        self.qty[base + i] = qty;
        c.len += 1;
        if i == len {
            c.last = px;
        }
        self.len += 1;
    }

    /// Removes slot `i` of chunk `ci` (freeing or merging a small chunk).
    fn remove_at(&mut self, ci: usize, i: usize) {
        let c = &mut self.chunks[ci];
        let (base, len) = (c.base as usize, c.len as usize - 1);
        self.px.copy_within(base + i + 1..base + len + 1, base + i);
        self.qty.copy_within(base + i + 1..base + len + 1, base + i);
        c.len = len as u32;
        self.len -= 1;
        if len == 0 {
            self.free.push(c.base);
            self.chunks.remove(ci);
            return;
        }
        if i == len {
            c.last = self.px[base + len - 1];
        }
        if len <= CHUNK / 4 {
            let fits = |o: &Chunk| o.len as usize + len <= CHUNK * 3 / 4;
            if ci > 0 && fits(&self.chunks[ci - 1]) {
                self.merge(ci - 1);
            } else if ci + 1 < self.chunks.len() && fits(&self.chunks[ci + 1]) {
                self.merge(ci);
            }
        }
    }

    /// Moves the levels of chunk `ci + 1` to the end of chunk `ci`.
    #[cold]
    fn merge(&mut self, ci: usize) {
        let b = self.chunks.remove(ci + 1);
        let a = &mut self.chunks[ci];
        let (from, to) = (b.base as usize, (a.base + a.len) as usize);
        let n = b.len as usize;
        self.px.copy_within(from..from + n, to);
        self.qty.copy_within(from..from + n, to);
        a.len += b.len;
        a.last = b.last;
        self.free.push(b.base);
    }

    fn clear(&mut self) {
        self.free.extend(self.chunks.iter().map(|c| c.base));
        self.chunks.clear();
        self.len = 0;
    }

    /// Keeps the best `keep` levels (drops the worst, which come first).
    fn truncate(&mut self, keep: usize) {
        let mut drop = self.len.saturating_sub(keep);
        while drop > 0 {
            let c = self.chunks[0];
            let len = c.len as usize;
            if len <= drop {
                self.free.push(c.base);
                self.chunks.remove(0);
                self.len -= len;
                drop -= len;
            } else {
                let base = c.base as usize;
                self.px.copy_within(base + drop..base + len, base);
                self.qty.copy_within(base + drop..base + len, base);
                self.chunks[0].len -= drop as u32;
                self.len -= drop;
                drop = 0;
            }
        }
    }

    #[inline]
    fn best(&self) -> Option<(i64, i64)> {
        self.chunks
            .last()
            .map(|c| (c.last, self.qty[(c.base + c.len) as usize - 1]))
    }

    #[inline]
    fn depth(&self, n: usize) -> i64 {
        let mut left = n;
        let mut sum = 0;
        for c in self.chunks.iter().rev() {
            let (base, len) = (c.base as usize, c.len as usize);
            if left <= len {
                return sum + self.qty[base + len - left..base + len].iter().sum::<i64>();
            }
            sum += self.qty[base..base + len].iter().sum::<i64>();
            left -= len;
        }
        sum
    }

    /// Levels in storage order (worse first).
    fn iter(&self) -> LadderIter<'_> {
        LadderIter {
            chunks: &self.chunks,
            px: &self.px,
            qty: &self.qty,
            front: (0, 0),
            back: (
                self.chunks.len().saturating_sub(1),
                self.chunks.last().map_or(0, |c| c.len as usize),
            ),
            remaining: self.len,
        }
    }

    fn check(&self) -> Result<(), &'static str> {
        let mut n = 0usize;
        for c in &self.chunks {
            if c.len == 0 || c.len as usize > CHUNK || c.base as usize % CHUNK != 0 {
                return Err("bad chunk");
            }
            if self.px[(c.base + c.len) as usize - 1] != c.last {
                return Err("stale chunk key");
            }
            n += c.len as usize;
        }
        if n != self.len || self.chunks.len() + self.free.len() != self.px.len() / CHUNK {
            return Err("chunk accounting");
        }
        if self.iter().any(|(_, q)| q <= 0) {
            return Err("non-positive size");
        }
        let mut prev: Option<i64> = None;
        for (p, _) in self.iter() {
            if prev.is_some_and(|q| !Self::cmp(q, p).is_lt()) {
                return Err("prices not strictly ordered");
            }
            prev = Some(p);
        }
        Ok(())
    }
}

/// The levels of a [`Ladder`] in storage order (worse first).
#[derive(Clone, Debug)]
struct LadderIter<'a> {
    chunks: &'a [Chunk],
    px: &'a [i64],
    qty: &'a [i64],
    /// Next front item: (chunk, slot).
    front: (usize, usize),
    /// One past the next back item: (chunk, slot).
    back: (usize, usize),
    remaining: usize,
}

impl Iterator for LadderIter<'_> {
    type Item = (i64, i64);

    #[inline]
    fn next(&mut self) -> Option<(i64, i64)> {
        if self.remaining == 0 {
            return None;
        }
        let (mut ci, mut i) = self.front;
        while i == self.chunks[ci].len as usize {
            ci += 1;
            i = 0;
        }
        let at = self.chunks[ci].base as usize + i;
        self.front = (ci, i + 1);
        self.remaining -= 1;
        Some((self.px[at], self.qty[at]))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for LadderIter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<(i64, i64)> {
        if self.remaining == 0 {
            return None;
        }
        let (mut ci, mut i) = self.back;
        while i == 0 {
            ci -= 1;
            i = self.chunks[ci].len as usize;
        }
        i -= 1;
        let at = self.chunks[ci].base as usize + i;
        self.back = (ci, i);
        self.remaining -= 1;
        Some((self.px[at], self.qty[at]))
    }
}

impl ExactSizeIterator for LadderIter<'_> {}

/// Price-level (L2) book in fixed point.
///
/// Invariants: on each side prices are unique and strictly ordered and every
/// size is `> 0`. Capacity given at construction is pre-allocated per side
/// (chunks for that many levels at half occupancy); a side that outgrows it
/// grows its arenas (levels are never dropped).
#[derive(Clone, Default)]
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
        self.bids.clear();
        self.asks.clear();
    }

    /// Keeps the best `levels` levels of each side.
    #[inline]
    pub fn truncate(&mut self, levels: usize) {
        if self.bids.len > levels {
            self.bids.truncate(levels);
        }
        if self.asks.len > levels {
            self.asks.truncate(levels);
        }
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
        self.bids.len
    }

    /// Number of ask levels.
    #[inline]
    #[must_use]
    pub fn ask_levels(&self) -> usize {
        self.asks.len
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
        self.bids.len == 0 && self.asks.len == 0
    }

    /// Bid levels `(px, qty)`, best (highest price) first.
    pub fn bids(&self) -> impl ExactSizeIterator<Item = (i64, i64)> + DoubleEndedIterator + '_ {
        self.bids.iter().rev()
    }

    /// Ask levels `(px, qty)`, best (lowest price) first.
    pub fn asks(&self) -> impl ExactSizeIterator<Item = (i64, i64)> + DoubleEndedIterator + '_ {
        self.asks.iter().rev()
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

/// Equal when both sides hold the same levels (however they are chunked).
impl PartialEq for OrderBook {
    fn eq(&self, other: &Self) -> bool {
        self.bids().eq(other.bids()) && self.asks().eq(other.asks())
    }
}

impl Eq for OrderBook {}

impl std::fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Side<I>(I);
        impl<I: Iterator<Item = (i64, i64)> + Clone> std::fmt::Debug for Side<I> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list().entries(self.0.clone()).finish()
            }
        }
        f.debug_struct("OrderBook")
            .field("bids", &Side(self.bids.iter().rev()))
            .field("asks", &Side(self.asks.iter().rev()))
            .finish()
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
pub enum SyncRule {
    /// Binance spot (SIGNALS.md 2.5): with `book_id` the last applied id,
    /// `u <= book_id` is stale, `U > book_id + 1` is a gap, anything else
    /// applies.
    #[default]
    Spot,
    /// Binance USD-M / COIN-M futures: diffs chain through `pu`
    /// ([`DepthHeader::prev_last_id`]). After a snapshot with
    /// `lastUpdateId = L`, a diff with `u < L` is stale; the first applied
    /// diff has `U <= L <= u` (or `pu == L`: it starts exactly at the
    /// snapshot, as a snapshot taken between two diffs does); every later
    /// diff has `pu ==` the previous `u` (`u <=` the previous `u`: a
    /// duplicate, stale), anything else is a gap.
    Futures,
    /// Linked sequence numbers (OKX `seqId`/`prevSeqId` as `last_id` /
    /// `prev_last_id`): each update's `prev_last_id` equals the book's id
    /// (steps need not be 1; `last_id == prev_last_id` is a keepalive that
    /// changes nothing). Bridging a REST snapshot with id `L`: updates with
    /// `last_id <= L` are stale, the first applied has
    /// `prev_last_id <= L < last_id`. Anything else — a broken chain, or a
    /// sequence going backwards (the venue reset it) — is a gap. Updates
    /// that carry no sequence numbers (both 0: OKX before `seqId`) apply.
    Linked,
    /// No sequence: every update applies (Kraken v1); integrity comes from
    /// the venue's checksum.
    Unsequenced,
}

/// How a book starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BookStart {
    /// From a REST snapshot: diffs received before it are buffered and the
    /// ones it does not cover are bridged onto it (Binance).
    #[default]
    RestSnapshot,
    /// From a snapshot the venue sends on the stream after subscribing (Kraken,
    /// OKX): diffs before it are dropped (the snapshot already holds them), and
    /// a snapshot that arrives while synced replaces the book.
    StreamSnapshot,
}

/// How the levels of a checksum are laid out (CRC32 over text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumLayout {
    /// The best `n` asks (ascending), then the best `n` bids (descending),
    /// each level as price then size, concatenated (Kraken).
    AsksThenBids,
    /// Bid 1, ask 1, bid 2, ask 2, ... up to `n` each (the longer side's
    /// leftovers follow), each level as `price:size`, all joined by `:` (OKX).
    Interleaved,
}

/// How one number of a checksum is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumNumber {
    /// At the instrument's wire precision with the `.` removed and leading
    /// zeros stripped (`"0.05120"` → `5120`; Kraken).
    WireDigits,
    /// The shortest decimal text (no trailing zeros, no `.` for an integer:
    /// `30316`, `5.16`), as OKX sends it.
    Shortest,
}

/// An exchange checksum: CRC32 over the top of the book rendered as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32Spec {
    /// Levels per side included.
    pub levels: usize,
    /// Layout.
    pub layout: ChecksumLayout,
    /// Number format.
    pub number: ChecksumNumber,
    /// A checksum of 0 means "not sent" (OKX since 2026): counted as absent.
    pub zero_is_absent: bool,
}

/// How a venue's book is checked against the venue's own view of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Integrity {
    /// Nothing to compare against.
    #[default]
    None,
    /// A best bid/offer message carrying the book's update id (Binance
    /// `bookTicker.u`) must equal the book's top (price and size) whenever
    /// that id is the last applied diff's `u`; a mismatch is a resync.
    /// Counted as `crosscheck_ok` / `crosscheck_failed`.
    TopOfBookCrossCheck,
    /// The venue's CRC32 of its book, sent with updates (and snapshots), is
    /// recomputed from the book after each of them; a mismatch is a resync.
    /// Counted as `checksum_ok` / `checksum_failed` / `checksum_absent`.
    Crc32(Crc32Spec),
}

/// How a venue's books are started, sequenced and verified: chosen per
/// venue in its registry entry ([`crate::venue::VenueDef::book`]) and copied
/// into each instrument's state, so the hot path dispatches on a plain enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BookPolicy {
    /// How the book starts.
    pub start: BookStart,
    /// Continuity rule of the diff stream.
    pub sequence: SyncRule,
    /// Integrity check.
    pub integrity: Integrity,
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
    /// Unsynced on a venue whose book restarts from a stream snapshot: dropped.
    NotSynced,
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
    /// Already synced: snapshot ignored (a REST-started book).
    Ignored,
    /// Synced on a stream-started book: the book was replaced by it.
    Replaced,
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
    start: BookStart,
    /// Levels per side kept after every update (0: all), from the snapshot.
    max_depth: usize,
    /// Decimals of the last snapshot's strings (all 0: not learned).
    wire: crate::event::Scale,
    book: OrderBook,
    book_id: u64,
    synced: bool,
    /// A diff has been applied since the last snapshot ([`SyncRule::Futures`]).
    chained: bool,
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
        let policy = BookPolicy {
            sequence: rule,
            ..BookPolicy::default()
        };
        Self::with_policy(policy, level_capacity, buffer_capacity_levels)
    }

    /// As [`new`](Self::new) with a venue's book policy (its start and
    /// continuity rule; the integrity check is the caller's).
    #[must_use]
    pub fn with_policy(
        policy: BookPolicy,
        level_capacity: usize,
        buffer_capacity_levels: usize,
    ) -> Self {
        // A stream-started book buffers only where its updates can be
        // bridged to a REST snapshot by sequence numbers.
        let buffered = match (policy.start, policy.sequence) {
            (BookStart::RestSnapshot, _) | (BookStart::StreamSnapshot, SyncRule::Linked) => {
                buffer_capacity_levels
            }
            (BookStart::StreamSnapshot, _) => 0,
        };
        Self {
            rule: policy.sequence,
            start: policy.start,
            max_depth: 0,
            wire: crate::instruments::NO_WIRE,
            book: OrderBook::with_capacity(level_capacity),
            book_id: 0,
            synced: false,
            chained: false,
            buf: Vec::with_capacity(buffered.min(1024)),
            buf_levels: Vec::with_capacity(buffered),
            buf_units: 0,
            buf_cap: buffered,
            overflows: 0,
        }
    }

    /// Handles a diff (`levels` are its bid and ask levels; `hdr.levels` is
    /// not consulted).
    pub fn on_diff(&mut self, hdr: &DepthHeader, levels: &[Level]) -> DiffOutcome {
        if !self.synced {
            if !self.bridges(hdr) {
                return DiffOutcome::NotSynced;
            }
            self.buffer(hdr, levels);
            return DiffOutcome::Buffered;
        }
        match apply(
            self.rule,
            &mut self.book,
            &mut self.book_id,
            &mut self.chained,
            hdr,
            levels,
        ) {
            Step::Stale => DiffOutcome::Stale,
            Step::Applied => {
                if self.max_depth > 0 {
                    self.book.truncate(self.max_depth);
                }
                DiffOutcome::Applied
            }
            Step::Gap => {
                self.book.clear();
                self.synced = false;
                self.clear_buffer();
                if self.bridges(hdr) {
                    self.buffer(hdr, levels);
                }
                DiffOutcome::Gap
            }
        }
    }

    /// Handles a snapshot: loads it (size-0 levels skipped) and replays the
    /// buffer, unless already synced.
    pub fn on_snapshot(&mut self, hdr: &SnapshotHeader, levels: &[Level]) -> SnapshotOutcome {
        let replacing = self.synced;
        // Only a stream snapshot replaces a synced book (a REST one may be older).
        if replacing && (self.start == BookStart::RestSnapshot || hdr.from_rest) {
            return SnapshotOutcome::Ignored;
        }
        self.book.clear();
        for lv in levels.iter().filter(|lv| lv.qty != 0) {
            self.book.apply(lv);
        }
        self.max_depth = hdr.max_depth as usize;
        if hdr.wire != crate::instruments::NO_WIRE {
            self.wire = hdr.wire;
        }
        if self.max_depth > 0 {
            self.book.truncate(self.max_depth);
        }
        self.book_id = hdr.last_update_id;
        self.synced = true;
        self.chained = false;
        if replacing {
            return SnapshotOutcome::Replaced;
        }
        if self.start == BookStart::StreamSnapshot && !hdr.from_rest {
            // On the stream, what came before the snapshot is older than it
            // (and from another book service after a restart: Bybit `u = 1`).
            self.clear_buffer();
            return SnapshotOutcome::Synced { replayed: 0 };
        }

        let mut replayed = 0u32;
        let mut start = 0usize;
        for (i, b) in self.buf.iter().enumerate() {
            let end = start + b.len as usize;
            let lv = &self.buf_levels[start..end];
            let (book, id, chained) = (&mut self.book, &mut self.book_id, &mut self.chained);
            match apply(self.rule, book, id, chained, &b.hdr, lv) {
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

    /// Whether an unsynced diff is kept for bridging to a later snapshot: on
    /// a REST-started book always; on a stream-started one when it carries
    /// sequence numbers (`Linked`); otherwise the next stream snapshot holds it.
    #[inline]
    fn bridges(&self, hdr: &DepthHeader) -> bool {
        match self.start {
            BookStart::RestSnapshot => true,
            BookStart::StreamSnapshot => {
                self.rule == SyncRule::Linked && (hdr.last_id != 0 || hdr.prev_last_id != 0)
            }
        }
    }

    /// Feed reconnected: book and buffer cleared, unsynced, `book_id` 0.
    /// The overflow counter is kept.
    pub fn reset(&mut self) {
        self.book.clear();
        self.book_id = 0;
        self.synced = false;
        self.chained = false;
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

    /// Decimals of the last snapshot's strings (`NO_WIRE` where not learned).
    #[inline]
    #[must_use]
    pub fn wire(&self) -> crate::event::Scale {
        self.wire
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

/// The update procedure of SIGNALS.md 2.5 (shared by live diffs and replay),
/// with the venue's continuity rule.
#[inline]
fn apply(
    rule: SyncRule,
    book: &mut OrderBook,
    book_id: &mut u64,
    chained: &mut bool,
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
        // Updates without sequence numbers (older OKX data) apply; the
        // checksum is then the integrity check.
        SyncRule::Linked if hdr.last_id == 0 && hdr.prev_last_id == 0 => {}
        SyncRule::Linked => {
            let (seq, prev) = (hdr.last_id, hdr.prev_last_id);
            if *chained {
                if prev != *book_id {
                    return Step::Gap;
                }
            } else {
                if seq <= *book_id {
                    return Step::Stale;
                }
                if prev > *book_id {
                    return Step::Gap;
                }
                *chained = true;
            }
        }
        SyncRule::Unsequenced => {}
        SyncRule::Futures => {
            if *chained {
                if hdr.last_id <= *book_id {
                    return Step::Stale;
                }
                if hdr.prev_last_id != *book_id {
                    return Step::Gap;
                }
            } else {
                if hdr.last_id < *book_id {
                    return Step::Stale;
                }
                if hdr.first_id > *book_id && hdr.prev_last_id != *book_id {
                    return Step::Gap;
                }
                *chained = true;
            }
        }
    }
    for lv in levels {
        book.apply(lv);
    }
    *book_id = hdr.last_id;
    Step::Applied
}
