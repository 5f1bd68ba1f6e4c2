//! Binance spot: `trade`, `aggTrade`, `bookTicker`, `depthUpdate` streams
//! (raw or combined-stream wrapped) and REST depth snapshots.
//!
//! # Parsing strategy
//!
//! Frames are parsed in place with simd-json into a reused tape
//! ([`simd_json::fill_tape`] with reused [`simd_json::Buffers`]); one pass over
//! the object collects the raw value of each known key (`messages.rs`), then the
//! kind is classified per SIGNALS.md 2.2 and the fields are converted straight
//! into events (`parse.rs`). After warm-up nothing is allocated per frame.
//!
//! Measured on real frames of `binance-spot/btcusdt_20240808.txt.gz`
//! (`cargo bench -p feeds --bench parse`: 256 frames per kind, criterion
//! median, ns per frame including the copy into the parse buffer, on 2 cores
//! shared with other builds, so expect ±15 %). All three produce identical
//! events (checked by the bench before timing); DOM and serde variants live
//! in `benches/parse.rs`.
//!
//! | frame | tape (chosen) | borrowed `Value` DOM | serde derive, borrowed `&str` |
//! | --- | ---: | ---: | ---: |
//! | trade | 501 | 701 | 900 |
//! | bookTicker | 726 | 1 407 | 891 |
//! | depthUpdate (100 ms) | 4 111 | 13 280 | 6 404 |
//! | REST snapshot, 1000+1000 levels | 247 µs | 703 µs | 348 µs |
//! | whole capture, 41 249 frames | 845 | | |
//!
//! The DOM allocates its objects and arrays for every frame; serde needs one
//! struct per kind chosen before decoding (Binance reuses keys with different
//! types across kinds: `a` is an id, a price or the asks), so it pays a
//! second pass over the tape (a peek struct, then the kind's struct) and its
//! level arrays allocate. The tape variant reads each key once and converts
//! straight into events.

mod messages;
mod parse;
mod subscription;

use simd_json::{Buffers, Tape};

use crate::event::{Event, Symbol};
use crate::instruments::Instruments;
use crate::venue::{FrameKind, ParseError, VenueAdapter};

pub use subscription::DEPTH_STREAM;

/// Venue name.
pub const NAME: &str = "binance-spot";

/// Which symbols have sent `depthUpdate` frames so far (snapshot attribution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepthSeen {
    None,
    One(Symbol),
    Many,
}

/// The Binance spot adapter of one connection.
pub struct BinanceSpot {
    instruments: Instruments,
    buffers: Buffers,
    /// Empty between frames; keeps its allocation.
    tape: Tape<'static>,
    /// The capture's `symbols=` header when it names exactly one symbol.
    capture_symbol: Option<Symbol>,
    depth_seen: DepthSeen,
}

impl std::fmt::Debug for BinanceSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceSpot")
            .field("instruments", &self.instruments)
            .field("capture_symbol", &self.capture_symbol)
            .finish_non_exhaustive()
    }
}

impl BinanceSpot {
    /// An adapter resolving symbols through `instruments`.
    #[must_use]
    pub fn new(instruments: Instruments) -> Self {
        Self {
            instruments,
            // Large enough for a 1000-level REST snapshot without regrowth.
            buffers: Buffers::new(128 * 1024),
            tape: Tape(Vec::with_capacity(16 * 1024)),
            capture_symbol: None,
            depth_seen: DepthSeen::None,
        }
    }

    /// The instrument registry.
    #[must_use]
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }
}

/// [`crate::venue::VenueDef::new`] of this venue.
#[must_use]
pub fn new_adapter(_venue_index: u16, instruments: Instruments) -> Box<dyn VenueAdapter> {
    Box::new(BinanceSpot::new(instruments))
}

impl VenueAdapter for BinanceSpot {
    fn name(&self) -> &'static str {
        NAME
    }

    #[inline]
    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        self.parse_impl(parse::Mode::Frame, recv_ns, frame, out)
    }

    fn parse_snapshot(
        &mut self,
        symbol: &str,
        recv_ns: i64,
        body: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        self.parse_impl(parse::Mode::RestSnapshot(symbol), recv_ns, body, out)
    }

    fn set_capture_symbols(&mut self, symbols: &[String]) {
        let mut it = symbols
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty());
        self.capture_symbol = match (it.next(), it.next()) {
            (Some(one), None) => Symbol::new(one),
            _ => None,
        };
    }

    fn streams(&self, symbols: &[String]) -> Vec<String> {
        subscription::streams(&self.instruments, symbols)
    }

    fn ws_url(&self, base: &str, streams: &[String]) -> String {
        subscription::ws_url(base, streams)
    }

    fn subscribe_message(&self, streams: &[String], id: u64) -> String {
        subscription::subscribe_message(streams, id)
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        subscription::snapshot_path(symbol, limit)
    }
}
