//! Volatility and dispersion signals (SIGNALS.md §4 `rv`, §6 `zscore`,
//! `bollinger`).

pub mod bollinger;
pub mod rv;
pub mod zscore;

pub use bollinger::{Bands, Bollinger};
pub use rv::Rv;
pub use zscore::Zscore;
