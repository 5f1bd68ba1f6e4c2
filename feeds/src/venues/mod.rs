//! Venue folders: each holds its subscription builder, its message types and
//! its normalizer, and is registered by one line in [`crate::venue::VENUES`].

pub mod binance_spot;
