//! OKX v5 public WebSocket (`wss://ws.okx.com:8443/ws/v5/public`): order
//! books (`books` 400 levels, `books5`, `books50-l2-tbt`, `books-l2-tbt`;
//! snapshot then updates, levels `[px, sz, "0", numOrders]`), `bbo-tbt`,
//! `trades` and `tickers`, for every instrument type (spot, swaps, dated
//! futures, options such as `BTC-USD-210924-42000-P`).
//!
//! Books start from the snapshot sent on subscribe; updates chain through
//! `seqId`/`prevSeqId` where present (`SyncRule::Linked`). The CRC32 checksum
//! (compared as a signed 32-bit value) interleaves the top 25 bids and asks
//! as `px:sz` over the strings as sent (OKX sends the shortest decimal
//! text), verified on the snapshot and after every update; `checksum: 0`
//! (deprecated in 2026) counts as absent, never as a failure. The text
//! `ping` every 20 s is answered with the text `pong`. Trade ids are decimal
//! strings; timestamps are ms strings. L1 quotes come from the book's top
//! by default (`tickers` and `bbo-tbt` are parsed as quotes for instruments
//! configured with `quote_source = "bookTicker"`).

mod parse;
#[cfg(feature = "sim")]
mod server;
mod subscription;

use crate::book::{
    BookPolicy, BookStart, ChecksumLayout, ChecksumNumber, Crc32Spec, Integrity, SyncRule,
};
use crate::event::Event;
use crate::instruments::Instruments;
use crate::venue::{
    ConnectionPlan, FrameKind, Heartbeat, ParseError, Protocol, Recovery, VenueAdapter, VenueDef,
};

/// Registry entry: OKX v5.
pub const OKX: VenueDef = VenueDef {
    name: "okx",
    capture_venue: "okx",
    capture_url: "",
    book: BookPolicy {
        start: BookStart::StreamSnapshot,
        sequence: SyncRule::Linked,
        integrity: Integrity::Crc32(Crc32Spec {
            levels: 25,
            layout: ChecksumLayout::Interleaved,
            number: ChecksumNumber::Shortest,
            zero_is_absent: true,
        }),
    },
    rest_depth_path: "/api/v5/market/books",
    protocol: Protocol {
        heartbeat: Heartbeat::Text {
            message: "ping",
            every: std::time::Duration::from_secs(20),
        },
        recovery: Recovery::Resubscribe,
        max_streams_per_connection: 1000,
        max_client_messages_per_s: 3,
        connection_lifetime: std::time::Duration::ZERO,
        // 3 connection requests per second; books REST 40 per 2 s.
        max_connects: 3,
        connect_window: std::time::Duration::from_secs(1),
        rest_weight_per_min: 1200,
    },
    quote_source: signals::QuoteSource::Depth,
    new: |_, i| Box::new(Okx::new(i)),
    #[cfg(feature = "sim")]
    server: &server::OKX_SERVER,
};

/// The OKX v5 adapter of one connection.
pub struct Okx {
    instruments: Instruments,
    /// `None` only while a frame is being parsed.
    parser: Option<crate::tape::TapeParser>,
}

impl std::fmt::Debug for Okx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Okx")
            .field("instruments", &self.instruments)
            .finish_non_exhaustive()
    }
}

impl Okx {
    /// An adapter resolving instruments through `instruments`.
    #[must_use]
    pub fn new(instruments: Instruments) -> Self {
        Self {
            instruments,
            parser: Some(crate::tape::TapeParser::new(128 * 1024)),
        }
    }
}

impl VenueAdapter for Okx {
    fn name(&self) -> &'static str {
        OKX.name
    }

    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // The heartbeat reply is the bare text `pong`, not JSON.
        if frame.trim_ascii() == b"pong" {
            return Ok(FrameKind::Control);
        }
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
        // `GET /api/v5/market/books`: the REST bootstrap of a book whose
        // stream sends no snapshot (since 2026), bridged by `seqId`.
        let start = out.len();
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, body, |nodes| {
            self.rest_books(nodes, symbol, recv_ns, out)
        });
        self.parser = parser;
        crate::tape::keep_data(res, start, out, &mut self.instruments)
    }

    fn set_capture_symbols(&mut self, _symbols: &[String]) {}

    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan> {
        subscription::connections(&self.instruments, ws_base, symbols)
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        format!(
            "{}?instId={symbol}&sz={}",
            OKX.rest_depth_path,
            limit.min(400)
        )
    }

    fn resubscribe(&self, _plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
        subscription::resubscribe(symbol)
    }
}
