//! Binance spot, USD-M futures and COIN-M futures: one protocol family, one
//! parser, three venues (three registry lines). What differs between them is
//! data in a [`Market`]: the venue name, the REST depth route, the depth
//! continuity rule (spot `U`/`u`, futures `pu`) and the connection limits.
//!
//! Streams: `trade`, `aggTrade`, `bookTicker`, `depthUpdate` (any update
//! speed: `@depth`, `@depth@0ms`/`@100ms`/`@250ms`/`@500ms`/`@1000ms`), raw
//! or combined-stream wrapped, and REST depth snapshots. Futures
//! `bookTicker` frames carry `T`/`E`, so quote rows use the exchange time
//! (spot's carry none: the receive time). COIN-M quantities are contracts
//! (`BTCUSD_PERP`: 1 contract = 100 USD): trade and book signals see
//! contracts, so `vwap` is contract-weighted and `kyle_lambda` is per
//! contract. Futures trades of every execution type (`X`) are used.
//!
//! # Parsing strategy
//!
//! Frames are read into a reused simd-json tape: compact combined-stream
//! frames (every trade, bookTicker and depthUpdate Binance sends) by a
//! builder that follows their shape (`combined.rs`), other plain JSON by the
//! crate's scalar pass (`plain_json.rs`), anything else by simd-json in place
//! ([`simd_json::fill_tape`] with reused [`simd_json::Buffers`]); all three
//! build the same tape. One pass over the object collects the raw value of
//! each known key (`messages.rs`), then the kind is classified per SIGNALS.md
//! 2.2 and the fields are converted straight into events (`parse.rs`). After
//! warm-up nothing is allocated per frame. (The timings below are from before
//! the two fast paths; the instruction counts are in
//! `bench/results/2026-12-02-instructions.md`.)
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

mod combined;
mod messages;
mod parse;
#[cfg(feature = "sim")]
mod server;
mod subscription;

use crate::book::{BookPolicy, BookStart, Integrity, SyncRule};
use crate::event::{Event, Symbol};
use crate::instruments::Instruments;
use crate::venue::{
    ConnectionPlan, FrameKind, Heartbeat, ParseError, Protocol, Recovery, VenueAdapter, VenueDef,
};

pub use subscription::DEPTH_STREAM;

/// What distinguishes one Binance market from another.
#[derive(Debug)]
pub struct Market {
    /// Venue name as in configuration and capture headers.
    pub name: &'static str,
    /// REST depth snapshot route (`/api/v3/depth`).
    pub depth_path: &'static str,
    /// Depth continuity rule.
    pub sequence: SyncRule,
    /// Endpoints split by stream kind, if the market routes them apart.
    pub split: Option<Split>,
    /// Connection rules.
    pub protocol: Protocol,
    /// Weight of a depth snapshot: `(up to this limit, weight)`, ascending.
    pub snapshot_weights: &'static [(u32, u32)],
}

/// A market whose WebSocket streams are served on separate routes.
#[derive(Clone, Copy, Debug)]
pub struct Split {
    /// Route of the book streams (diff depth, bookTicker).
    pub book_route: &'static str,
    /// Its label.
    pub book_label: &'static str,
    /// Route of the trade streams.
    pub trade_route: &'static str,
    /// Its label.
    pub trade_label: &'static str,
}

/// Binance's rules (spot: 5 client messages/s and 6000 REST weight per
/// minute; futures: 10 and 2400), 1024 streams per connection, 300
/// connection attempts per 5 minutes, 24 h lifetime. The server pings (spot
/// every 20 s, futures every 3 minutes) and the WebSocket layer pongs; the
/// client also pings every 20 s so a dead link is noticed.
const fn protocol(messages_per_s: u32, rest_weight_per_min: u32) -> Protocol {
    Protocol {
        heartbeat: Heartbeat::WsPing {
            every: std::time::Duration::from_secs(20),
        },
        recovery: Recovery::RestSnapshot,
        max_streams_per_connection: 1024,
        max_client_messages_per_s: messages_per_s,
        connection_lifetime: std::time::Duration::from_secs(24 * 3600),
        max_connects: 300,
        connect_window: std::time::Duration::from_secs(300),
        rest_weight_per_min,
    }
}

/// Binance spot.
pub static SPOT_MARKET: Market = Market {
    name: "binance-spot",
    depth_path: "/api/v3/depth",
    sequence: SyncRule::Spot,
    split: None,
    protocol: protocol(5, 6000),
    snapshot_weights: &[(100, 5), (500, 25), (1000, 50), (5000, 250)],
};

/// Binance USD-M futures. Since 2026 `fstream.binance.com` routes streams
/// by kind: depth and bookTicker on `/public`, trades on `/market`.
pub static USDM_MARKET: Market = Market {
    name: "binance-usdm",
    depth_path: "/fapi/v1/depth",
    sequence: SyncRule::Futures,
    split: Some(Split {
        book_route: "/public",
        book_label: "public",
        trade_route: "/market",
        trade_label: "market",
    }),
    protocol: protocol(10, 2400),
    snapshot_weights: FUTURES_WEIGHTS,
};

/// Binance COIN-M futures.
pub static COINM_MARKET: Market = Market {
    name: "binance-coinm",
    depth_path: "/dapi/v1/depth",
    sequence: SyncRule::Futures,
    split: None,
    protocol: protocol(10, 2400),
    snapshot_weights: FUTURES_WEIGHTS,
};

/// Futures depth weights (`/fapi/v1/depth`, `/dapi/v1/depth`).
const FUTURES_WEIGHTS: &[(u32, u32)] = &[(50, 2), (100, 5), (500, 10), (1000, 20)];

/// Registry entry of a Binance market.
const fn def(
    m: &'static Market,
    new: fn(u16, Instruments) -> Box<dyn VenueAdapter>,
    #[cfg(feature = "sim")] server: &'static dyn crate::sim::VenueServer,
) -> VenueDef {
    VenueDef {
        name: m.name,
        capture_venue: m.name,
        capture_url: "",
        book: BookPolicy {
            start: BookStart::RestSnapshot,
            sequence: m.sequence,
            integrity: Integrity::TopOfBookCrossCheck,
        },
        rest_depth_path: m.depth_path,
        protocol: m.protocol,
        quote_source: signals::QuoteSource::BookTicker,
        new,
        #[cfg(feature = "sim")]
        server,
    }
}

/// A registry entry for a market: its adapter and (feature `sim`) its server.
macro_rules! entry {
    ($market:ident, $server:ident) => {
        def(
            &$market,
            |_, i| Box::new(Binance::new(&$market, i)),
            #[cfg(feature = "sim")]
            &server::$server,
        )
    };
}

/// Registry entry: Binance spot.
pub const SPOT: VenueDef = entry!(SPOT_MARKET, SPOT_SERVER);
/// Registry entry: Binance USD-M futures.
pub const USDM: VenueDef = entry!(USDM_MARKET, USDM_SERVER);
/// Registry entry: Binance COIN-M futures.
pub const COINM: VenueDef = entry!(COINM_MARKET, COINM_SERVER);

/// Which symbols have sent `depthUpdate` frames so far (snapshot attribution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepthSeen {
    None,
    One(Symbol),
    Many,
}

/// The adapter of one Binance connection.
pub struct Binance {
    market: &'static Market,
    instruments: Instruments,
    /// `None` only while a frame is being parsed.
    parser: Option<crate::tape::TapeParser>,
    /// The capture's `symbols=` header when it names exactly one symbol.
    capture_symbol: Option<Symbol>,
    depth_seen: DepthSeen,
}

impl std::fmt::Debug for Binance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binance")
            .field("market", &self.market.name)
            .field("instruments", &self.instruments)
            .field("capture_symbol", &self.capture_symbol)
            .finish_non_exhaustive()
    }
}

impl Binance {
    /// An adapter of `market` resolving symbols through `instruments`.
    #[must_use]
    pub fn new(market: &'static Market, instruments: Instruments) -> Self {
        Self {
            market,
            instruments,
            // Large enough for a 1000-level REST snapshot without regrowth.
            parser: Some(crate::tape::TapeParser::new(128 * 1024)),
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

impl VenueAdapter for Binance {
    fn name(&self) -> &'static str {
        self.market.name
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

    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan> {
        subscription::connections(self.market, &self.instruments, ws_base, symbols)
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        subscription::snapshot_path(self.market.depth_path, symbol, limit)
    }

    fn resubscribe(&self, _plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
        subscription::resubscribe(symbol)
    }

    fn snapshot_weight(&self, limit: u32) -> u32 {
        let w = self.market.snapshot_weights;
        w.iter()
            .find(|(upto, _)| limit <= *upto)
            .or(w.last())
            .map_or(1, |&(_, weight)| weight)
    }
}
