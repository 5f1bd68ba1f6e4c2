//! Venue adapters, the capture format and fixed-point order books.
//!
//! Everything here is sans-IO: parsers take `&mut [u8]` frames and produce
//! [`event::Event`]s, books take events. Sockets live in the `engine` crate.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod book;
mod bytes;
pub mod capture;
pub mod checksum;
pub mod event;
pub mod fixed;
pub mod instruments;
mod plain_json;
#[cfg(feature = "sim")]
pub mod sim;
mod tape;
pub mod time;
pub mod venue;
pub mod venues;

pub use event::{Event, InstrumentId};
