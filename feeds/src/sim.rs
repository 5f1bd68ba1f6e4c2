//! The server side of a venue, for the exchange simulator (feature `sim`):
//! how the venue's server routes, answers and renders, as sans-IO data and
//! functions. Each venue implements [`VenueServer`] in its own folder next to
//! its client-side adapter; the simulator in `bench` keeps playback, clock
//! and fault injection venue-neutral and asks the venue's server for the
//! rest. The simulator's books are this crate's [`crate::book::DepthSync`]
//! fed by the venue's own adapter ([`SimBooks`]), not a second book.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::book::{DepthSync, DiffOutcome};
use crate::event::{Event, InstrumentId, Level, Scale, Symbol};
use crate::instruments::Instruments;
use crate::venue::{VenueAdapter, VenueDef};

/// Kinds of stream a simulated venue routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Individual trades.
    Trade,
    /// Aggregated trades.
    AggTrade,
    /// Best bid/offer.
    Quote,
    /// Diff depth.
    Depth,
}

/// The routing key of a stream: kind and lower-case symbol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Kind.
    pub kind: StreamKind,
    /// Lower-case venue symbol.
    pub symbol: String,
}

/// Where a source frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// A stream frame for the subscribers of `key`; `payload` is the byte
    /// range of the bare message (inside a combined-stream wrapper, if the
    /// source had one), `wrapper_stream` the wrapper's stream name.
    Stream {
        /// Routing key.
        key: StreamKey,
        /// Bare message bytes.
        payload: Range<usize>,
        /// Stream name of the source's wrapper.
        wrapper_stream: Option<String>,
    },
    /// A REST depth snapshot body (served to depth requests, not streamed);
    /// `symbol` when the frame names one.
    Snapshot {
        /// Upper-case symbol named by the frame.
        symbol: Option<String>,
        /// Body bytes.
        payload: Range<usize>,
    },
    /// Acks, unsupported streams, invalid JSON: not sent.
    Other,
}

/// A WebSocket request path, as the venue's server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsRoute {
    /// Frames go out wrapped with their stream name (combined streams).
    pub combined: bool,
    /// Streams subscribed by the URL itself.
    pub streams: Vec<String>,
}

/// A REST request the simulator answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestRequest {
    /// A depth snapshot of `symbol` (upper case), at most `limit` levels per side.
    Depth {
        /// Symbol.
        symbol: String,
        /// Levels per side.
        limit: usize,
    },
    /// An answer right away: HTTP status line and body.
    Reply(&'static str, String),
}

/// A market operation of the generator, in fixed point with `scale`; the
/// venue renders it as its frame.
#[derive(Clone, Copy, Debug)]
pub enum MarketOp<'a> {
    /// A trade.
    Trade {
        /// Upper-case symbol.
        symbol: &'a str,
        /// Trade id.
        id: u64,
        /// Price and quantity.
        px: i64,
        /// Quantity.
        qty: i64,
        /// The buyer was the maker (a sell aggressor).
        buyer_maker: bool,
        /// Trade time, ms.
        trade_ms: i64,
        /// Event time, ms.
        event_ms: i64,
    },
    /// Best bid/offer after book update `update_id`.
    Quote {
        /// Upper-case symbol.
        symbol: &'a str,
        /// Event time, ms.
        event_ms: i64,
        /// Book update id.
        update_id: u64,
        /// Best bid price.
        bid_px: i64,
        /// Best bid size.
        bid_qty: i64,
        /// Best ask price.
        ask_px: i64,
        /// Best ask size.
        ask_qty: i64,
    },
    /// A diff of the book: update ids `first_id..=last_id` (`prev_last_id`:
    /// the previous diff's last id), changed levels best first (size 0 deletes).
    Depth {
        /// Upper-case symbol.
        symbol: &'a str,
        /// First update id.
        first_id: u64,
        /// Last update id.
        last_id: u64,
        /// Last id of the previous diff.
        prev_last_id: u64,
        /// Event time, ms.
        event_ms: i64,
        /// Update interval of the stream, ms.
        interval_ms: u64,
        /// Changed bids, best first.
        bids: &'a [(i64, i64)],
        /// Changed asks, best first.
        asks: &'a [(i64, i64)],
    },
    /// A depth snapshot, best levels first: the venue's REST body when
    /// `rest`, else the frame it sends on the stream (where those differ).
    Snapshot {
        /// Upper-case symbol; named in the body when `name_symbol`.
        symbol: &'a str,
        /// Render the REST answer.
        rest: bool,
        /// Name the symbol in the body.
        name_symbol: bool,
        /// Last update id covered.
        last_update_id: u64,
        /// Bids, best first.
        bids: &'a [(i64, i64)],
        /// Asks, best first.
        asks: &'a [(i64, i64)],
    },
}

/// How a venue's server behaves, for the simulator.
pub trait VenueServer: Sync {
    /// Reads a WebSocket request path (`None`: not a stream endpoint, 404).
    fn ws_route(&self, path: &str, query: &str) -> Option<WsRoute>;

    /// The routing key of a stream name (`None`: a stream the simulator
    /// never produces; subscribing to it is accepted and silent).
    fn stream_key(&self, name: &str) -> Option<StreamKey>;

    /// Answers a client text message (subscribe, unsubscribe, list, ping),
    /// updating `subscriptions` and pushing the venue's replies (in order).
    fn on_client_text(
        &self,
        subscriptions: &mut Vec<String>,
        text: &str,
        replies: &mut Vec<String>,
    );

    /// Where a source frame goes.
    fn route(&self, frame: &str) -> Routed;

    /// Appends the frame a subscriber of `stream` gets for `payload` on a
    /// combined-stream connection. Default: the payload as is (venues whose
    /// frames name their channel themselves).
    fn wrap(&self, _stream: &str, payload: &str, out: &mut String) {
        out.push_str(payload);
    }

    /// Reads an HTTP `GET` (`None`: not a route of this venue, 404).
    /// Default: no REST routes.
    fn rest(&self, _path: &str, _query: &str) -> Option<RestRequest> {
        None
    }

    /// Reply to a depth request for a symbol the source never mentions.
    fn unknown_symbol(&self) -> (&'static str, String);

    /// Reply to a depth request the simulator cannot answer (no snapshot).
    fn no_snapshot(&self) -> (&'static str, String);

    /// Appends `op` as the venue's frame (`wrap`: in its combined-stream
    /// wrapper), prices and sizes rendered with `scale`.
    fn render(&self, op: &MarketOp<'_>, scale: Scale, wrap: bool, out: &mut String);

    /// The venue sends a book snapshot on the stream when a client
    /// subscribes (Kraken, OKX): the simulator renders one from its book.
    fn snapshot_on_subscribe(&self) -> bool {
        false
    }

    /// Levels per side of the snapshot sent on subscribe (venues whose
    /// stream books are full depth send every level).
    fn snapshot_levels(&self) -> usize {
        1000
    }

    /// Venues that number every message on a connection (Coinbase Advanced
    /// Trade `sequence_num`): `frame` numbered `seq`. `None` (the default):
    /// frames go as they are. The simulator numbers each connection's
    /// messages from 0, and a frame it skips (a fault) consumes a number.
    fn stamp(&self, _frame: &str, _seq: u64) -> Option<String> {
        None
    }

    /// The venue's notice that it will close a connection soon (Binance
    /// `serverShutdown`); `None`: it sends none.
    fn closing_notice(&self) -> Option<String> {
        None
    }

    /// `frame` with its book checksum altered (a fault); `None`: it carries none.
    fn corrupt_checksum(&self, _frame: &str) -> Option<String> {
        None
    }

    /// `frame` with the levels of its first book side in reverse order (a
    /// fault: harmless unless one update carries a price twice); `None`:
    /// not a book frame of this venue.
    fn reorder_levels(&self, _frame: &str) -> Option<String> {
        None
    }

    /// A restart of the venue's book service (a fault): the frame the venue
    /// sends for `snapshot` (the simulator's book rendered as a stream
    /// snapshot) after restarting, and the amount by which the update ids
    /// of that book's later frames on the connection drop ([`renumber`]).
    /// `None`: the venue has no restart signal (Bybit: a `u = 1` snapshot).
    ///
    /// [`renumber`]: VenueServer::renumber
    fn restart(&self, _snapshot: &str) -> Option<(String, u64)> {
        None
    }

    /// `frame` (a book frame) with its update ids lowered by `shift`, after
    /// a [`restart`](VenueServer::restart); `None`: sent unchanged.
    fn renumber(&self, _frame: &str, _shift: u64) -> Option<String> {
        None
    }
}

/// The simulator's books: the venue's own adapter parses every played
/// frame and each instrument's [`DepthSync`] follows the venue's book
/// policy, exactly as the engine's do.
pub struct SimBooks {
    venue: &'static VenueDef,
    adapter: Box<dyn VenueAdapter>,
    events: Vec<Event>,
    frame: Vec<u8>,
    /// Symbol, scale, wire precision and book of each instrument.
    books: HashMap<InstrumentId, (Symbol, Scale, Scale, DepthSync)>,
    levels: Vec<Level>,
}

impl std::fmt::Debug for SimBooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBooks")
            .field("venue", &self.venue.name)
            .field("books", &self.books.len())
            .finish_non_exhaustive()
    }
}

impl SimBooks {
    /// Books of venue `index` of the registry.
    #[must_use]
    pub fn new(index: u16, venue: &'static VenueDef) -> Self {
        let ids = Arc::new(AtomicU32::new(0));
        let instruments = Instruments::new(index, Vec::new(), Scale::default(), ids);
        Self {
            venue,
            adapter: (venue.new)(index, instruments),
            events: Vec::with_capacity(4096),
            frame: Vec::with_capacity(1 << 16),
            books: HashMap::new(),
            levels: Vec::new(),
        }
    }

    /// The source's `symbols=` header (attributes symbol-less snapshots).
    pub fn set_capture_symbols(&mut self, symbols: &[String]) {
        self.adapter.set_capture_symbols(symbols);
    }

    /// Applies a played source frame (diffs, snapshots; the rest is ignored);
    /// returns the symbol of a snapshot it held.
    pub fn play(&mut self, recv_ns: i64, frame: &str) -> Option<Symbol> {
        self.frame.clear();
        self.frame.extend_from_slice(frame.as_bytes());
        self.events.clear();
        if self
            .adapter
            .parse(recv_ns, &mut self.frame, &mut self.events)
            .is_err()
        {
            return None;
        }
        let mut snapshot = None;
        let mut i = 0;
        while i < self.events.len() {
            match self.events[i] {
                Event::Instrument(info) => {
                    let policy = self.venue.book;
                    self.books.entry(info.inst).or_insert_with(|| {
                        let sync = DepthSync::with_policy(policy, 1024, 1 << 16);
                        (info.symbol, info.scale, info.wire, sync)
                    });
                    i += 1;
                }
                Event::Depth(h) => {
                    let n = h.levels as usize;
                    self.levels.clear();
                    self.levels
                        .extend(self.events[i + 1..].iter().take(n).filter_map(level));
                    if let Some((_, _, _, sync)) = self.books.get_mut(&h.inst) {
                        // The source is the truth: a gap in it restarts the
                        // book from this diff (served again after the next snapshot).
                        if sync.on_diff(&h, &self.levels) == DiffOutcome::Gap {
                            sync.reset();
                        }
                    }
                    i += 1 + n;
                }
                Event::Snapshot(h) => {
                    let n = h.levels as usize;
                    self.levels.clear();
                    self.levels
                        .extend(self.events[i + 1..].iter().take(n).filter_map(level));
                    if let Some((sym, _, _, sync)) = self.books.get_mut(&h.inst) {
                        snapshot = Some(*sym);
                        // A later snapshot of the source replaces the book;
                        // the first one bridges the diffs buffered before it.
                        if sync.is_synced() {
                            sync.reset();
                        }
                        sync.on_snapshot(&h, &self.levels);
                    }
                    i += 1 + n;
                }
                _ => i += 1,
            }
        }
        snapshot
    }

    fn find(&self, symbol: &str) -> Option<&(Symbol, Scale, Scale, DepthSync)> {
        self.books
            .values()
            .find(|(s, _, _, _)| s.as_str().eq_ignore_ascii_case(symbol))
    }

    /// A snapshot body of the synced book of `symbol` (at most `limit`
    /// levels per side), rendered by the venue's server.
    #[must_use]
    pub fn snapshot(
        &self,
        server: &dyn VenueServer,
        symbol: &str,
        limit: usize,
        rest: bool,
    ) -> Option<String> {
        let (sym, scale, wire, sync) = self.find(symbol)?;
        if !sync.is_synced() {
            return None;
        }
        // At the venue's wire precision where it is known (checksums are
        // computed from the strings), else at the book's scale.
        let wire = match sync.wire() {
            w if w == crate::instruments::NO_WIRE => *wire,
            w => w,
        };
        let known = wire.price_decimals > 0 || wire.qty_decimals > 0;
        let out_scale = if known { wire } else { *scale };
        let down = |v: i64, from: u8, to: u8| {
            if from > to {
                v / 10i64.pow(u32::from(from - to))
            } else {
                v
            }
        };
        let conv = |(p, q): (i64, i64)| {
            (
                down(p, scale.price_decimals, out_scale.price_decimals),
                down(q, scale.qty_decimals, out_scale.qty_decimals),
            )
        };
        let bids: Vec<(i64, i64)> = sync.book().bids().take(limit).map(conv).collect();
        let asks: Vec<(i64, i64)> = sync.book().asks().take(limit).map(conv).collect();
        let mut out = String::with_capacity(64 + (bids.len() + asks.len()) * 40);
        let op = MarketOp::Snapshot {
            symbol: sym.as_str(),
            rest,
            name_symbol: false,
            last_update_id: sync.book_id(),
            bids: &bids,
            asks: &asks,
        };
        server.render(&op, out_scale, false, &mut out);
        Some(out)
    }
}

fn level(e: &Event) -> Option<Level> {
    match e {
        Event::Level(l) => Some(*l),
        _ => None,
    }
}
