//! Normalized input events the signal library consumes.
//!
//! Prices are `i64` ticks (`price * 10^price_decimals`), quantities `i64` lots
//! (`qty * 10^qty_decimals`), timestamps `i64` nanoseconds since the Unix epoch.

/// Aggressor side of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum Side {
    /// Buyer was the taker (`s = +1`).
    Buy = 1,
    /// Seller was the taker (`s = -1`).
    Sell = -1,
}

impl Side {
    /// `+1` for buy, `-1` for sell.
    #[inline]
    #[must_use]
    pub const fn sign(self) -> i64 {
        self as i64
    }
}

/// Fixed-point scales of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Price tick is `10^-price_decimals` (0..=12).
    pub price_decimals: u8,
    /// Quantity lot is `10^-qty_decimals` (0..=12).
    pub qty_decimals: u8,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            price_decimals: 8,
            qty_decimals: 8,
        }
    }
}

impl Scale {
    /// `10^price_decimals` as `i64`.
    #[inline]
    #[must_use]
    pub const fn price_scale(self) -> i64 {
        10i64.pow(self.price_decimals as u32)
    }

    /// `10^qty_decimals` as `i64`.
    #[inline]
    #[must_use]
    pub const fn qty_scale(self) -> i64 {
        10i64.pow(self.qty_decimals as u32)
    }
}

/// An accepted trade (duplicates and non-positive price/size already removed
/// by the venue normalizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Exchange timestamp, ns.
    pub ts_ns: i64,
    /// Price, ticks.
    pub px: i64,
    /// Quantity, lots (> 0).
    pub qty: i64,
    /// Aggressor side.
    pub side: Side,
}

/// A top-of-book (L1) quote. May be invalid (crossed, empty side); the
/// signal set checks validity itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Quote {
    /// Exchange timestamp (or receive time when the venue sends none), ns.
    pub ts_ns: i64,
    /// Best bid price, ticks (0 = absent).
    pub bid_px: i64,
    /// Best bid size, lots (0 = absent).
    pub bid_qty: i64,
    /// Best ask price, ticks (0 = absent).
    pub ask_px: i64,
    /// Best ask size, lots (0 = absent).
    pub ask_qty: i64,
}

/// Read access to an L2 book, best levels first. Implemented by the engine's
/// order book and by anything a bot keeps.
pub trait DepthView {
    /// Best bid `(price, size)`, if any.
    fn best_bid(&self) -> Option<(i64, i64)>;
    /// Best ask `(price, size)`, if any.
    fn best_ask(&self) -> Option<(i64, i64)>;
    /// Sum of the sizes of the best `min(levels, #bid levels)` bid levels.
    fn bid_depth(&self, levels: usize) -> i64;
    /// Sum of the sizes of the best `min(levels, #ask levels)` ask levels.
    fn ask_depth(&self, levels: usize) -> i64;
}

impl Quote {
    /// L1 validity (SIGNALS.md §2.4): all four fields `> 0` and `bid < ask`.
    /// A zero/negative price or size is [`Validity::EmptySide`] (checked
    /// first), otherwise `bid >= ask` is [`Validity::Crossed`].
    #[inline]
    #[must_use]
    pub const fn validity(&self) -> Validity {
        if self.bid_px <= 0 || self.ask_px <= 0 || self.bid_qty <= 0 || self.ask_qty <= 0 {
            Validity::EmptySide
        } else if self.bid_px >= self.ask_px {
            Validity::Crossed
        } else {
            Validity::Valid
        }
    }

    /// `true` iff [`Quote::validity`] is [`Validity::Valid`].
    #[inline]
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        matches!(self.validity(), Validity::Valid)
    }

    /// `M2 = bid + ask` (twice the mid), ticks.
    #[inline]
    #[must_use]
    pub fn m2(&self) -> i64 {
        crate::num::add64(self.bid_px, self.ask_px)
    }

    /// The top of `book` as a quote stamped `ts_ns` (absent side → zeros).
    #[inline]
    #[must_use]
    pub fn from_depth(ts_ns: i64, book: &(impl DepthView + ?Sized)) -> Self {
        let (bid_px, bid_qty) = book.best_bid().unwrap_or((0, 0));
        let (ask_px, ask_qty) = book.best_ask().unwrap_or((0, 0));
        Self {
            ts_ns,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
        }
    }
}

/// Validity of an L1 event (SIGNALS.md §2.4). Only [`Validity::Valid`]
/// events are samples; the others emit nothing and should raise the
/// instrument's `crossed` / `empty_side` flag upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// All prices and sizes positive and `bid < ask`.
    Valid,
    /// `bid >= ask` (crossed or locked).
    Crossed,
    /// A zero/absent price or size, or an empty book side.
    EmptySide,
}

/// A simple [`DepthView`] over best-first level slices, handy for tests and
/// bots that keep their own book as sorted vectors.
#[derive(Clone, Copy, Debug)]
pub struct SliceDepth<'a> {
    /// Bid levels `(price, size)`, best (highest) first.
    pub bids: &'a [(i64, i64)],
    /// Ask levels `(price, size)`, best (lowest) first.
    pub asks: &'a [(i64, i64)],
}

impl DepthView for SliceDepth<'_> {
    fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids.first().copied()
    }
    fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks.first().copied()
    }
    fn bid_depth(&self, levels: usize) -> i64 {
        self.bids.iter().take(levels).map(|l| l.1).sum()
    }
    fn ask_depth(&self, levels: usize) -> i64 {
        self.asks.iter().take(levels).map(|l| l.1).sum()
    }
}
