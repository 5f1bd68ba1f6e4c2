//! Oscillators on a source series (SIGNALS.md §6).

pub mod rsi;

pub use rsi::Rsi;
