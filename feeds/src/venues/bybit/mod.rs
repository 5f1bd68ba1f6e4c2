//! Bybit v5 public WebSocket (`wss://stream.bybit.com/v5/public/{spot,
//! linear,inverse}`): one protocol family, one parser, three venues (three
//! registry lines). What differs between them is data in a [`Market`]: the
//! category (URL path, REST `category=`), the request limits and the shape
//! of the heartbeat reply.
//!
//! Topics: `orderbook.{1,50,200,500,1000}.<SYMBOL>` (a `snapshot`, then
//! `delta`s; levels `[price, size]`, size `"0"` deletes), `publicTrade.<SYMBOL>`
//! and `tickers.<SYMBOL>`. The engine subscribes `orderbook.50` and
//! `publicTrade` ([`DEPTH`]).
//!
//! **Books.** A `snapshot` resets the book (also while synced: Bybit resends
//! one when its side had a problem, and `u == 1` marks a restarted service
//! whose snapshot overwrites the book); it is truncated to the subscribed
//! depth. A `delta`'s `u` must be the previous `u` + 1: it is passed as
//! `last_id = u`, `prev_last_id = u - 1` under [`SyncRule::Linked`], so any
//! other step is a gap and that instrument alone is resubscribed
//! ([`Recovery::Resubscribe`]: unsubscribe + subscribe of its orderbook
//! topic; Bybit answers with a fresh snapshot). `seq` (the cross sequence) is
//! not needed for continuity. Quote rows use `cts` (matching-engine time) as
//! their exchange time, `ts` where `cts` is absent. `orderbook.1` is
//! snapshot-only (Bybit pushes the full top level, repeating `u` when nothing
//! changed): every push replaces the book and is followed by an empty
//! unsequenced update, so book signals see every push (a stream snapshot
//! alone emits no rows).
//!
//! **Trades.** `publicTrade` entries `T` (ms), `p`, `v`, `S` (taker side)
//! and `i`: a decimal id on spot (parsed, so the engine's monotonic trade-id
//! dedupe applies), a UUID on linear and inverse. A UUID has no order, and
//! the engine drops a trade whose id is not above the previous one, so a
//! hash of it would drop about half the trades: non-numeric ids map to 0
//! ("not numbered", as Kraken v1), and those trades are not deduplicated.
//!
//! **Tickers** are parsed as quotes (`bid1Price`, `bid1Size`, `ask1Price`,
//! `ask1Size`) for instruments configured with `quote_source = "bookTicker"`;
//! L1 signals come from the book's top by default. Linear and inverse
//! tickers are a snapshot then deltas that omit unchanged fields: the last
//! value of each of the four is kept per instrument and a quote is emitted
//! once all four are known. Spot tickers carry no bid/ask: ignored.
//!
//! **Heartbeat.** `{"op":"ping"}` every 20 s. The reply is a control frame:
//! spot answers `{"success":true,"ret_msg":"pong",..,"op":"ping"}`, linear
//! and inverse `{"op":"pong","args":["<ms>"],..}`. Subscribe requests carry
//! a `req_id` (the [`crate::venue::Subscribe::id`]); an ack with
//! `"success":false` is [`FrameKind::Rejected`] with that id.
//!
//! **Limits** (Bybit v5 "Connect" page): at most 10 `args` per subscribe
//! request on spot (none documented for linear and inverse: 100 are sent
//! per request there), and the `args` of one public connection may not
//! exceed 21 000 characters: connections carry at most 500 topics and
//! 20 000 characters of them. Bybit documents no client message rate for
//! public streams; requests are paced at 5 per second.

mod parse;
#[cfg(feature = "sim")]
mod server;
mod subscription;

use crate::book::{BookPolicy, BookStart, Integrity, SyncRule};
use crate::event::{Event, InstrumentId};
use crate::instruments::Instruments;
use crate::venue::{
    ConnectionPlan, FrameKind, Heartbeat, ParseError, Protocol, Recovery, VenueAdapter, VenueDef,
};

/// Book depth subscribed (`orderbook.50`: 20 ms pushes on every category).
pub const DEPTH: u32 = 50;

/// What distinguishes one Bybit market (category) from another.
#[derive(Debug)]
pub struct Market {
    /// Venue name as in configuration.
    pub name: &'static str,
    /// The v5 category: URL path `/v5/public/<category>`, REST `category=`.
    pub category: &'static str,
    /// Topics per subscribe request.
    pub args_per_request: usize,
    /// Heartbeat replies are `{"op":"pong","args":[..]}` (linear, inverse)
    /// rather than `{"ret_msg":"pong","op":"ping"}` (spot).
    pub op_pong: bool,
    /// REST depth limit (`/v5/market/orderbook`: spot 200, futures 500).
    pub rest_limit: u32,
}

/// Bybit spot.
pub static SPOT_MARKET: Market = Market {
    name: "bybit-spot",
    category: "spot",
    args_per_request: 10,
    op_pong: false,
    rest_limit: 200,
};

/// Bybit USDT/USDC perpetuals and futures.
pub static LINEAR_MARKET: Market = Market {
    name: "bybit-linear",
    category: "linear",
    args_per_request: 100,
    op_pong: true,
    rest_limit: 500,
};

/// Bybit inverse perpetuals and futures.
pub static INVERSE_MARKET: Market = Market {
    name: "bybit-inverse",
    category: "inverse",
    args_per_request: 100,
    op_pong: true,
    rest_limit: 500,
};

/// Topics per connection (the 21 000-character `args` limit holds about
/// 600 topics of typical symbol lengths; characters are checked too).
pub const MAX_TOPICS: usize = 500;

const PROTOCOL: Protocol = Protocol {
    heartbeat: Heartbeat::Text {
        message: r#"{"op":"ping"}"#,
        every: std::time::Duration::from_secs(20),
    },
    recovery: Recovery::Resubscribe,
    max_streams_per_connection: MAX_TOPICS,
    max_client_messages_per_s: 5,
    connection_lifetime: std::time::Duration::ZERO,
    // 500 connections per 5 minutes per IP; public REST 600 per 5 s (a
    // tenth kept).
    max_connects: 500,
    connect_window: std::time::Duration::from_secs(300),
    rest_weight_per_min: 600,
};

/// Registry entry of a Bybit market.
const fn def(
    m: &'static Market,
    capture_url: &'static str,
    new: fn(u16, Instruments) -> Box<dyn VenueAdapter>,
    #[cfg(feature = "sim")] server: &'static dyn crate::sim::VenueServer,
) -> VenueDef {
    VenueDef {
        name: m.name,
        capture_venue: "bybit",
        capture_url,
        book: BookPolicy {
            start: BookStart::StreamSnapshot,
            sequence: SyncRule::Linked,
            integrity: Integrity::None,
        },
        rest_depth_path: "/v5/market/orderbook",
        protocol: PROTOCOL,
        quote_source: signals::QuoteSource::Depth,
        new,
        #[cfg(feature = "sim")]
        server,
    }
}

/// A registry entry for a market: its adapter and (feature `sim`) its server.
macro_rules! entry {
    ($market:ident, $url:literal, $server:ident) => {
        def(
            &$market,
            $url,
            |_, i| Box::new(Bybit::new(&$market, i)),
            #[cfg(feature = "sim")]
            &server::$server,
        )
    };
}

/// Registry entry: Bybit spot.
pub const SPOT: VenueDef = entry!(SPOT_MARKET, "/v5/public/spot", SPOT_SERVER);
/// Registry entry: Bybit linear (USDT/USDC) contracts.
pub const LINEAR: VenueDef = entry!(LINEAR_MARKET, "/v5/public/linear", LINEAR_SERVER);
/// Registry entry: Bybit inverse contracts.
pub const INVERSE: VenueDef = entry!(INVERSE_MARKET, "/v5/public/inverse", INVERSE_SERVER);

/// The last known ticker fields of one instrument (bid px, bid qty, ask px,
/// ask qty), fixed point.
#[derive(Clone, Copy, Debug, Default)]
struct TickerState {
    inst: InstrumentId,
    fields: [Option<i64>; 4],
}

/// The adapter of one Bybit connection.
pub struct Bybit {
    market: &'static Market,
    instruments: Instruments,
    /// `None` only while a frame is being parsed.
    parser: Option<crate::tape::TapeParser>,
    /// Ticker fields per instrument (linear deltas omit unchanged ones).
    tickers: Vec<TickerState>,
}

impl std::fmt::Debug for Bybit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bybit")
            .field("market", &self.market.name)
            .field("instruments", &self.instruments)
            .finish_non_exhaustive()
    }
}

impl Bybit {
    /// An adapter of `market` resolving symbols through `instruments`.
    #[must_use]
    pub fn new(market: &'static Market, instruments: Instruments) -> Self {
        Self {
            market,
            instruments,
            parser: Some(crate::tape::TapeParser::new(128 * 1024)),
            tickers: Vec::with_capacity(64),
        }
    }
}

impl VenueAdapter for Bybit {
    fn name(&self) -> &'static str {
        self.market.name
    }

    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let start = out.len();
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, frame, |nodes| {
            self.dispatch(nodes, recv_ns, out)
        });
        self.parser = parser;
        crate::tape::keep_data(res, start, out, &mut self.instruments)
    }

    fn parse_snapshot(
        &mut self,
        symbol: &str,
        recv_ns: i64,
        body: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // `GET /v5/market/orderbook`: bridged to the stream by `u`.
        let start = out.len();
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, body, |nodes| {
            self.rest_orderbook(nodes, symbol, recv_ns, out)
        });
        self.parser = parser;
        crate::tape::keep_data(res, start, out, &mut self.instruments)
    }

    fn set_capture_symbols(&mut self, _symbols: &[String]) {}

    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan> {
        subscription::connections(self.market, &self.instruments, ws_base, symbols)
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        format!(
            "/v5/market/orderbook?category={}&symbol={}&limit={}",
            self.market.category,
            symbol.to_ascii_uppercase(),
            limit.clamp(1, self.market.rest_limit)
        )
    }

    fn resubscribe(&self, _plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
        subscription::resubscribe(symbol)
    }
}
