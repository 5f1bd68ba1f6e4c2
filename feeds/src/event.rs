//! Normalized events: small `Copy` values that cross the SPSC rings.
//!
//! A depth diff or snapshot with `n` levels becomes one header event followed
//! by exactly `n` [`Event::Level`] events, so every event stays small and no
//! message needs a heap allocation.

pub use signals::{Scale, Side};

/// Interned instrument id, unique across all feeds of one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// The id as an index into per-instrument arrays.
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Book side of a price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookSide {
    /// Bid (buy) side.
    Bid,
    /// Ask (sell) side.
    Ask,
}

/// An inline, fixed-capacity symbol (venue symbols are short ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Symbol {
    len: u8,
    bytes: [u8; Symbol::CAP],
}

impl Symbol {
    /// Maximum symbol length in bytes.
    pub const CAP: usize = 31;

    /// Builds a symbol, upper-casing ASCII letters. `None` if longer than [`Symbol::CAP`].
    #[must_use]
    pub fn new(s: &str) -> Option<Self> {
        let src = s.as_bytes();
        if src.len() > Self::CAP {
            return None;
        }
        let mut bytes = [0u8; Self::CAP];
        for (d, s) in bytes.iter_mut().zip(src) {
            *d = s.to_ascii_uppercase();
        }
        Some(Self {
            len: src.len() as u8,
            bytes,
        })
    }

    /// The symbol text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Built only from a `&str` with ASCII upper-casing, so always UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The symbol's bytes (upper-cased, UTF-8).
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which trade stream a trade came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TradeKind {
    /// Individual trade (`trade`, id `t`).
    Trade,
    /// Aggregate trade (`aggTrade`, id `a`).
    AggTrade,
}

/// A trade print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeEvent {
    /// Instrument.
    pub inst: InstrumentId,
    /// Trade id (`t` or `a`).
    pub id: u64,
    /// Exchange time, ns (`T`).
    pub ts_ns: i64,
    /// Local receive time, ns.
    pub recv_ns: i64,
    /// Price, ticks (may be <= 0 on bad input; the processor drops it).
    pub px: i64,
    /// Quantity, lots.
    pub qty: i64,
    /// Aggressor side.
    pub side: Side,
    /// Source stream.
    pub kind: TradeKind,
}

/// A best bid/offer update (`bookTicker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteEvent {
    /// Instrument.
    pub inst: InstrumentId,
    /// Order-book update id (`u`).
    pub update_id: u64,
    /// Exchange time if the frame has one, else receive time, ns.
    pub ts_ns: i64,
    /// Local receive time, ns.
    pub recv_ns: i64,
    /// Best bid price, ticks.
    pub bid_px: i64,
    /// Best bid size, lots.
    pub bid_qty: i64,
    /// Best ask price, ticks.
    pub ask_px: i64,
    /// Best ask size, lots.
    pub ask_qty: i64,
}

/// Header of a diff-depth update; followed by `levels` [`Event::Level`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthHeader {
    /// Instrument.
    pub inst: InstrumentId,
    /// First update id in the event (`U`).
    pub first_id: u64,
    /// Final update id in the event (`u`).
    pub last_id: u64,
    /// Previous final update id (`pu`, futures only; 0 when absent).
    pub prev_last_id: u64,
    /// Exchange time, ns (`E`).
    pub ts_ns: i64,
    /// Local receive time, ns.
    pub recv_ns: i64,
    /// Number of level events that follow.
    pub levels: u32,
    /// The venue's checksum of the book after this update, if it sent one
    /// (a signed 32-bit value kept as its bit pattern).
    pub checksum: Option<u32>,
}

/// Header of a full depth snapshot; followed by `levels` [`Event::Level`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Instrument.
    pub inst: InstrumentId,
    /// `lastUpdateId` of the snapshot (the venue's sequence number of it).
    pub last_update_id: u64,
    /// Local receive time, ns.
    pub recv_ns: i64,
    /// Number of level events that follow.
    pub levels: u32,
    /// The venue's checksum of the snapshot's book, if it sent one.
    pub checksum: Option<u32>,
    /// Levels per side the venue maintains for this subscription (the book
    /// is truncated to it after every update); 0 = unlimited.
    pub max_depth: u32,
    /// Decimals of the snapshot's strings (the precision checksums are
    /// rendered at until the next snapshot); all 0 where not learned.
    pub wire: Scale,
    /// Fetched over REST (bridged by sequence numbers), not sent on the stream.
    pub from_rest: bool,
}

/// One price level of a depth diff or snapshot (size 0 deletes the level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Side.
    pub side: BookSide,
    /// Price, ticks.
    pub px: i64,
    /// Size, lots.
    pub qty: i64,
}

/// An instrument seen for the first time; announced before any of its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentInfo {
    /// Interned id.
    pub inst: InstrumentId,
    /// Venue index in the venue registry.
    pub venue: u16,
    /// Upper-case venue symbol.
    pub symbol: Symbol,
    /// Fixed-point scales of its events.
    pub scale: Scale,
    /// Decimals the venue sends (learned from the frame that announced it;
    /// 0 where it carried no number): the wire precision that checksums are
    /// rendered at.
    pub wire: Scale,
}

/// A normalized market-data event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// New instrument announcement.
    Instrument(InstrumentInfo),
    /// Trade.
    Trade(TradeEvent),
    /// Best bid/offer.
    Quote(QuoteEvent),
    /// Diff-depth header.
    Depth(DepthHeader),
    /// Snapshot header.
    Snapshot(SnapshotHeader),
    /// A level of the preceding depth or snapshot header.
    Level(Level),
    /// The feed of this instrument lost continuity (reconnect): the book must resync.
    Reset(InstrumentId),
    /// The venue's own numbering revealed lost data for this instrument (a
    /// connection-wide message counter skipped, trades went missing): its
    /// book is out of sync and recovers as after a sequence gap (counted
    /// as a gap, recovery requested).
    Gap(InstrumentId),
}
