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
