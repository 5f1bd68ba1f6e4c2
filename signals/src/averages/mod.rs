//! Moving averages on a source series (SIGNALS.md §6).

pub mod ema;
pub mod ema_time;

pub use ema::Ema;
pub use ema_time::EmaTime;
