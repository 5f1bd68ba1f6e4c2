//! Venue folders.
