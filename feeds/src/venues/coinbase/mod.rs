//! Coinbase: the Advanced Trade market-data feed (`coinbase`,
//! `wss://advanced-trade-ws.coinbase.com`, see `advanced.rs`) and the
//! Exchange feed (`coinbase-exchange`, `wss://ws-feed.exchange.coinbase.com`,
//! see `exchange.rs`). One adapter type reads either protocol; the two
//! registry entries differ in their [`Api`].
//!
//! Books start from the snapshot the venue sends on subscribe and carry
//! absolute sizes (`"0"` removes a level); there is no book checksum and no
//! per-book sequence, so loss is found from the venue's other numbers:
//!
//! * **Advanced Trade** numbers every message on a connection
//!   (`sequence_num`, from 0). A skipped number means messages were lost for
//!   every product on the connection: every book the adapter carries gets an
//!   [`Event::Gap`] (counted per instrument) and is resubscribed. A frame
//!   that fails to parse is treated as lost (its number is not consumed).
//! * **Exchange** trade ids are consecutive per product. A `match` that skips
//!   ids, or two `heartbeat`s in a row whose `last_trade_id` announces trades
//!   that never arrived, means the connection lost that product's messages:
//!   its book gets an [`Event::Gap`]. An `l2update` that fails to parse does
//!   the same at the next frame (the book missed it).
//!
//! Trades: `side` is the **maker** order's side on both feeds (`"sell"`: the
//! taker bought), so the aggressor is the opposite. Exchange `last_match`
//! (the product's latest trade, sent on subscribe) is a trade like `match`;
//! a trade id at or below the last one seen is a duplicate (after a
//! resubscribe or reconnect) and is dropped. Advanced Trade trade ids are
//! decimal strings (an id that is not a number counts as not numbered, 0).
//! Timestamps are RFC 3339 with up to nanosecond digits. L1 quotes come from
//! the book's top by default; `ticker` frames are parsed as quotes (when
//! they carry sizes) for instruments configured with
//! `quote_source = "bookTicker"`.

mod advanced;
mod exchange;
#[cfg(feature = "sim")]
mod server;
mod subscription;

use crate::book::{BookPolicy, BookStart, Integrity, SyncRule};
use crate::event::{Event, InstrumentId};
use crate::instruments::Instruments;
use crate::venue::{
    ConnectionPlan, FrameKind, Heartbeat, ParseError, Protocol, Recovery, VenueAdapter, VenueDef,
};

/// The environment variable holding an Advanced Trade JWT, added to every
/// subscribe request when set (never read from configuration files, never logged).
pub const JWT_ENV: &str = "WIRESIGNAL_COINBASE_JWT";

const BOOK: BookPolicy = BookPolicy {
    start: BookStart::StreamSnapshot,
    sequence: SyncRule::Unsequenced,
    integrity: Integrity::None,
};

/// Registry entry: Coinbase Advanced Trade.
pub const ADVANCED: VenueDef = VenueDef {
    name: "coinbase",
    capture_venue: "coinbase",
    capture_url: "advanced-trade",
    book: BOOK,
    // Not bridged (no sequence); served by the simulator for tools.
    rest_depth_path: "/api/v3/brokerage/market/product_book",
    protocol: Protocol {
        heartbeat: Heartbeat::WsPing {
            every: std::time::Duration::from_secs(20),
        },
        recovery: Recovery::Resubscribe,
        max_streams_per_connection: 1000,
        // Unauthenticated clients: 8 messages per second per IP.
        max_client_messages_per_s: 8,
        connection_lifetime: std::time::Duration::ZERO,
        // Connection attempts per IP (8 per second documented; a minute's
        // worth kept far lower); public REST 10 requests per second.
        max_connects: 60,
        connect_window: std::time::Duration::from_secs(60),
        rest_weight_per_min: 600,
    },
    quote_source: signals::QuoteSource::Depth,
    new: |_, i| Box::new(Coinbase::new(Api::AdvancedTrade, i)),
    #[cfg(feature = "sim")]
    server: &server::ADVANCED_SERVER,
};

/// Registry entry: the Coinbase Exchange feed.
pub const EXCHANGE: VenueDef = VenueDef {
    name: "coinbase-exchange",
    capture_venue: "coinbase",
    capture_url: "ws-feed",
    book: BOOK,
    rest_depth_path: "/products",
    protocol: Protocol {
        heartbeat: Heartbeat::WsPing {
            every: std::time::Duration::from_secs(20),
        },
        recovery: Recovery::Resubscribe,
        max_streams_per_connection: 1000,
        max_client_messages_per_s: 8,
        connection_lifetime: std::time::Duration::ZERO,
        // Connection attempts per IP (8 per second documented; a minute's
        // worth kept far lower); public REST 10 requests per second.
        max_connects: 60,
        connect_window: std::time::Duration::from_secs(60),
        rest_weight_per_min: 600,
    },
    quote_source: signals::QuoteSource::Depth,
    new: |_, i| Box::new(Coinbase::new(Api::Exchange, i)),
    #[cfg(feature = "sim")]
    server: &server::EXCHANGE_SERVER,
};

/// Which Coinbase protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Advanced Trade (`channel` + `events`, `sequence_num`).
    AdvancedTrade,
    /// The Exchange feed (`type`-tagged messages).
    Exchange,
}

/// What the adapter knows of one product's trades (Exchange loss detection).
#[derive(Clone, Copy, Debug, Default)]
struct TradeWatch {
    /// Last trade id seen (0: none yet: the matches channel is not known to run).
    last: u64,
    /// `last_trade_id` of the previous heartbeat when it was ahead of `last`.
    announced: u64,
}

/// The Coinbase adapter of one connection.
pub struct Coinbase {
    api: Api,
    instruments: Instruments,
    /// `None` only while a frame is being parsed.
    parser: Option<crate::tape::TapeParser>,
    /// Advanced Trade: the `sequence_num` expected next (`None`: no message yet).
    next_seq: Option<u64>,
    /// `sequence_num` of the frame being parsed.
    frame_seq: Option<u64>,
    /// Instruments whose books this connection carries, and by instrument
    /// index whether it is one of them.
    books: Vec<InstrumentId>,
    carried: Vec<bool>,
    /// Per instrument index (Exchange).
    trades: Vec<TradeWatch>,
    /// Instruments found to have lost data, announced with the next frame
    /// that parses.
    lost: Vec<InstrumentId>,
    /// The product of the frame being parsed, once resolved (Exchange).
    current: Option<InstrumentId>,
}

impl std::fmt::Debug for Coinbase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coinbase")
            .field("api", &self.api)
            .field("instruments", &self.instruments)
            .finish_non_exhaustive()
    }
}

impl Coinbase {
    /// An adapter of `api` resolving products through `instruments`.
    #[must_use]
    pub fn new(api: Api, instruments: Instruments) -> Self {
        Self {
            api,
            instruments,
            // Full-depth snapshots run to megabytes; the buffers grow to the
            // largest frame seen and are reused.
            parser: Some(crate::tape::TapeParser::new(1 << 20)),
            next_seq: None,
            frame_seq: None,
            books: Vec::with_capacity(64),
            carried: Vec::new(),
            trades: Vec::new(),
            lost: Vec::with_capacity(64),
            current: None,
        }
    }

    /// Notes that `inst`'s book rides on this connection.
    #[inline]
    fn carries(&mut self, inst: InstrumentId) {
        if !self.carried.get(inst.index()).copied().unwrap_or(false) {
            self.note_book(inst);
        }
    }

    #[cold]
    #[inline(never)]
    fn note_book(&mut self, inst: InstrumentId) {
        if inst.index() >= self.carried.len() {
            self.carried.resize(inst.index() + 1, false);
        }
        self.carried[inst.index()] = true;
        self.books.push(inst);
    }

    #[inline]
    fn watch(&mut self, inst: InstrumentId) -> &mut TradeWatch {
        let i = inst.index();
        if i >= self.trades.len() {
            self.trades.resize(i + 1, TradeWatch::default());
        }
        &mut self.trades[i]
    }

    /// After a frame parsed: the connection-wide sequence check (Advanced
    /// Trade), then [`Event::Gap`]s for every instrument found to have lost
    /// data, inserted ahead of the frame's own events (a snapshot in this
    /// frame then restarts the book it resets).
    #[inline]
    fn after_frame(&mut self, start: usize, out: &mut Vec<Event>) {
        if let Some(seq) = self.frame_seq.take() {
            match self.next_seq {
                // A new connection numbers from 0 again.
                _ if seq == 0 => self.next_seq = Some(1),
                // Skipped numbers: messages were lost.
                Some(n) if seq > n => {
                    self.lost.clear();
                    self.lost.extend_from_slice(&self.books);
                    self.next_seq = seq.checked_add(1);
                }
                // An old or repeated number: nothing lost.
                Some(n) if seq < n => {}
                _ => self.next_seq = seq.checked_add(1),
            }
        }
        if !self.lost.is_empty() {
            self.insert_gaps(start, out);
        }
    }

    #[cold]
    #[inline(never)]
    fn insert_gaps(&mut self, start: usize, out: &mut Vec<Event>) {
        self.lost.sort_unstable_by_key(|i| i.0);
        self.lost.dedup();
        let gaps: Vec<Event> = self.lost.drain(..).map(Event::Gap).collect();
        out.splice(start..start, gaps);
    }
}

impl VenueAdapter for Coinbase {
    fn name(&self) -> &'static str {
        match self.api {
            Api::AdvancedTrade => ADVANCED.name,
            Api::Exchange => EXCHANGE.name,
        }
    }

    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        let start = out.len();
        self.frame_seq = None;
        self.current = None;
        let mut parser = self.parser.take();
        let res = crate::tape::TapeParser::parse(&mut parser, frame, |nodes| match self.api {
            Api::AdvancedTrade => self.advanced(nodes, recv_ns, out),
            Api::Exchange => self.exchange(nodes, recv_ns, out),
        });
        self.parser = parser;
        let res = crate::tape::keep_data(res, start, out, &mut self.instruments);
        match res {
            Ok(_) => self.after_frame(start, out),
            Err(_) => {
                // Nothing of the frame is applied: a book update in it is lost.
                if let Some(inst) = self.current.take() {
                    self.lost.push(inst);
                }
            }
        }
        res
    }

    fn parse_snapshot(
        &mut self,
        _symbol: &str,
        _recv_ns: i64,
        _body: &mut [u8],
        _out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError> {
        // Books start from the stream's snapshot; a REST book cannot be
        // bridged (no sequence).
        Ok(FrameKind::Ignored)
    }

    fn set_capture_symbols(&mut self, _symbols: &[String]) {}

    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan> {
        let jwt = std::env::var(JWT_ENV).ok().filter(|j| !j.is_empty());
        subscription::connections(
            self.api,
            &self.instruments,
            ws_base,
            symbols,
            jwt.as_deref(),
        )
    }

    fn snapshot_path(&self, symbol: &str, limit: u32) -> String {
        match self.api {
            Api::AdvancedTrade => format!(
                "{}?product_id={symbol}&limit={limit}",
                ADVANCED.rest_depth_path
            ),
            Api::Exchange => format!("{}/{symbol}/book?level=2", EXCHANGE.rest_depth_path),
        }
    }

    fn resubscribe(&self, _plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
        let jwt = std::env::var(JWT_ENV).ok().filter(|j| !j.is_empty());
        subscription::resubscribe(self.api, symbol, jwt.as_deref())
    }
}
