//! Order-flow signals over time windows (SIGNALS.md §4 `ofi`, §5).

pub mod ofi;
pub mod trade_imbalance;
pub mod vwap;

pub use ofi::Ofi;
pub use trade_imbalance::TradeImbalance;
pub use vwap::Vwap;
