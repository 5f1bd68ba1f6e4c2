//! Kraken spot, WebSocket v1 (`wss://ws.kraken.com`) and v2
//! (`wss://ws.kraken.com/v2`, see `v2.rs`): one adapter reads both (v1 data
//! frames are arrays, v2 frames objects with a `channel`). v1: `book-N` (snapshot
//! `as`/`bs`, updates `a`/`b` with the CRC32 `c` in the frame's last
//! object), `trade` and `spread`, plus the `heartbeat`, `systemStatus`,
//! `subscriptionStatus` and `pong` events.
//!
//! Data frames are arrays `[channelID, {..}, ({..},) "book-N", "PAIR"]`. A
//! book starts from the snapshot sent on subscribe and is truncated to the
//! subscribed depth `N` after every update; there are no sequence numbers,
//! so the checksum (verified after every update by default) is the integrity
//! check: the top 10 asks ascending then the top 10 bids descending, each
//! price then volume at the pair's wire precision with the `.` removed and
//! leading zeros stripped. Trades carry no id; timestamps are decimal
//! seconds (`"1618678123.481570"`), parsed exactly to ns. L1 quotes come from
//! the book's top by default (`spread` frames are parsed as quotes for an
//! instrument configured with `quote_source = "bookTicker"`).

mod parse;
#[cfg(feature = "sim")]
mod server;
mod subscription;
mod v2;

use crate::book::{
    BookPolicy, BookStart, ChecksumLayout, ChecksumNumber, Crc32Spec, Integrity, SyncRule,
};
use crate::event::Event;
use crate::instruments::Instruments;
use crate::venue::{
    ConnectionPlan, FrameKind, Heartbeat, ParseError, Protocol, Recovery, VenueAdapter, VenueDef,
};

/// Registry entry: Kraken spot, WebSocket v1.
pub const KRAKEN: VenueDef = VenueDef {
    name: "kraken",
    capture_venue: "kraken",
    capture_url: "",
    book: BookPolicy {
        start: BookStart::StreamSnapshot,
        sequence: SyncRule::Unsequenced,
        integrity: Integrity::Crc32(Crc32Spec {
            levels: 10,
            layout: ChecksumLayout::AsksThenBids,
            number: ChecksumNumber::WireDigits,
            zero_is_absent: false,
        }),
    },
    // Kraken's REST depth cannot be bridged to the WebSocket book (no
    // sequence numbers); the route is served by the simulator for tools.
    rest_depth_path: "/0/public/Depth",
    protocol: Protocol {
        heartbeat: Heartbeat::Text {
            message: r#"{"event":"ping"}"#,
            every: std::time::Duration::from_secs(20),
        },
        recovery: Recovery::Resubscribe,
        max_streams_per_connection: 1000,
        max_client_messages_per_s: 5,
        connection_lifetime: std::time::Duration::ZERO,
        // About 150 connection attempts per 10 minutes; public REST about 1/s.
        max_connects: 150,
        connect_window: std::time::Duration::from_secs(600),
        rest_weight_per_min: 60,
    },
    quote_source: signals::QuoteSource::Depth,
    new: |_, i| Box::new(Kraken::new(i)),
    #[cfg(feature = "sim")]
    server: &server::KRAKEN_SERVER,
};

/// The Kraken v1 adapter of one connection.
pub struct Kraken {
    instruments: Instruments,
    /// `None` only while a frame is being parsed.
    parser: Option<crate::tape::TapeParser>,
    /// Number texts of v2 frames (prices and sizes are JSON numbers).
    numbers: crate::tape::NumberTexts,
}

impl std::fmt::Debug for Kraken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kraken")
            .field("instruments", &self.instruments)
            .finish_non_exhaustive()
    }
}

impl Kraken {
    /// An adapter resolving pairs through `instruments`.
    #[must_use]
    pub fn new(instruments: Instruments) -> Self {
        Self {
            instruments,
            // A 1000-level snapshot of both sides.
            parser: Some(crate::tape::TapeParser::new(256 * 1024)),
            numbers: crate::tape::NumberTexts::default(),
        }
    }
}

impl VenueAdapter for Kraken {
    fn name(&self) -> &'static str {
        KRAKEN.name
    }

    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let start = out.len();
        // v2 frames are objects whose prices are JSON numbers: keep their text.
        if frame.trim_ascii_start().first() == Some(&b'{') {
            self.numbers.scan(frame);
        }
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, frame, |nodes| {
            self.dispatch(nodes, recv_ns, out)
        });
        self.parser = parser;
        crate::tape::keep_data(res, start, out, &mut self.instruments)
    }

    fn parse_snapshot(
        &mut self,
        _symbol: &str,
        _recv_ns: i64,
        _body: &mut [u8],
        _out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // Books start from the stream's snapshot; a REST body is never bridged.
        Ok(FrameKind::Ignored)
    }

    fn set_capture_symbols(&mut self, _symbols: &[String]) {}

    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan> {
        subscription::connections(&self.instruments, ws_base, symbols)
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        format!(
            "{}?pair={}&count={limit}",
            KRAKEN.rest_depth_path,
            symbol.replace('/', "")
        )
    }

    fn resubscribe(&self, plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
        subscription::resubscribe(plan, symbol)
    }
}
