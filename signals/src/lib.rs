//! Embeddable market-data signal library.
#![deny(missing_docs)]

pub mod event;
pub use event::{DepthView, Quote, Scale, Side, Trade};
