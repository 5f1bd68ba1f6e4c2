//! Venue folders: each holds its subscription builder, its message types and
//! its normalizer, and is registered by one line in [`crate::venue::VENUES`].
//! A protocol family serving several venues (Binance spot, USD-M, COIN-M)
//! is one folder with one registry line per venue.

pub mod binance;
pub mod bybit;
pub mod coinbase;
pub mod kraken;
pub mod okx;
