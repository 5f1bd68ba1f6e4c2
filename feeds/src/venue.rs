//! The venue boundary: one [`VenueAdapter`] per feed connection, a registry
//! of venues ([`VENUES`]), and helpers shared by venue parsers.
//!
//! Adding a venue is a new folder under `venues/` plus one line in
//! [`VENUES`]; nothing else dispatches on the venue.

use std::fmt;

use crate::book::BookPolicy;
use crate::event::Event;
use crate::fixed::FixedError;
use crate::instruments::Instruments;
use crate::venues;

/// What a frame was, after parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A trade of the selected trade source.
    Trade,
    /// A best bid/offer update.
    Quote,
    /// A diff-depth update.
    Depth,
    /// A full depth snapshot.
    Snapshot,
    /// Subscription ack, pong, heartbeat: expected, carries no data.
    Control,
    /// The venue refused the request with this id (a subscription): the
    /// engine names the request's streams in its error.
    Rejected(u64),
    /// The venue announced that it will close this connection soon
    /// (Binance `serverShutdown`): no events; the engine replaces the
    /// connection make before break.
    Closing,
    /// Known but unused: other trade source, unconfigured symbol, partial depth,
    /// kline, ticker, an unattributable snapshot... No events.
    Ignored,
    /// Not recognised (counted by the engine). No events.
    Unknown,
}

/// Why a frame could not be parsed. Nothing is appended to the output when a
/// parser returns one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Not valid JSON (byte offset of the error as reported by simd-json).
    Json {
        /// Byte offset.
        offset: usize,
    },
    /// A field required by the frame's kind is absent.
    MissingField(&'static str),
    /// A field has the wrong JSON type (e.g. a number where a string is expected).
    WrongType(&'static str),
    /// A decimal or integer field is malformed or out of range.
    BadNumber {
        /// Field name.
        field: &'static str,
        /// Cause.
        err: FixedError,
    },
    /// A decimal carries more precision than the instrument's configured scale
    /// (a configuration error, SIGNALS.md 1.1).
    Precision {
        /// Field name.
        field: &'static str,
    },
    /// A depth message with more levels than an event header can count.
    TooManyLevels,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { offset } => write!(f, "invalid JSON (at byte {offset})"),
            Self::MissingField(k) => write!(f, "missing field `{k}`"),
            Self::WrongType(k) => write!(f, "field `{k}` has the wrong type"),
            Self::BadNumber { field, err } => write!(f, "field `{field}`: {err}"),
            Self::Precision { field } => {
                write!(f, "field `{field}` has more decimals than configured")
            }
            Self::TooManyLevels => f.write_str("too many depth levels"),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// Invalid JSON.
    #[cold]
    #[inline(never)]
    #[must_use]
    pub fn json(e: &simd_json::Error) -> Self {
        Self::Json { offset: e.index() }
    }

    /// Missing field.
    #[cold]
    #[inline(never)]
    #[must_use]
    pub fn missing(field: &'static str) -> Self {
        Self::MissingField(field)
    }

    /// Wrong JSON type.
    #[cold]
    #[inline(never)]
    #[must_use]
    pub fn wrong_type(field: &'static str) -> Self {
        Self::WrongType(field)
    }

    /// A fixed-point conversion failed.
    #[cold]
    #[inline(never)]
    #[must_use]
    pub fn fixed(field: &'static str, err: FixedError) -> Self {
        match err {
            FixedError::Precision => Self::Precision { field },
            err => Self::BadNumber { field, err },
        }
    }

    /// Too many levels.
    #[cold]
    #[inline(never)]
    #[must_use]
    pub fn too_many_levels() -> Self {
        Self::TooManyLevels
    }
}

/// A venue's sans-IO protocol: stream names, subscription messages and the
/// frame parser. One instance per connection, used on its receiver thread.
pub trait VenueAdapter: Send {
    /// Venue name as in configuration and capture headers (`binance-spot`).
    fn name(&self) -> &'static str;

    /// Parses one WebSocket text frame (or an inline REST snapshot of a
    /// capture) in place. Appends the frame's events to `out`: first the
    /// announcement of any instrument seen for the first time, then the
    /// events (a depth or snapshot header followed by its levels). On `Err`
    /// nothing is appended.
    ///
    /// # Errors
    /// Malformed JSON, a missing or mistyped required field, a bad number or
    /// more decimals than the instrument's scale.
    fn parse(
        &mut self,
        recv_ns: i64,
        frame: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError>;

    /// Parses a REST depth snapshot fetched live for `symbol`.
    ///
    /// # Errors
    /// As [`VenueAdapter::parse`]; a body that is not a snapshot (an error
    /// reply) is [`ParseError::MissingField`].
    fn parse_snapshot(
        &mut self,
        symbol: &str,
        recv_ns: i64,
        body: &mut [u8],
        out: &mut Vec<Event>,
    ) -> Result<FrameKind, ParseError>;

    /// The `symbols=` header of a capture being replayed, used to attribute
    /// snapshots that name no symbol.
    fn set_capture_symbols(&mut self, symbols: &[String]);

    /// The connections a feed of `symbols` opens at `ws_base` (the
    /// configured `ws_url`): URLs, subscribe requests, and which symbols'
    /// books each one carries. Within the venue's stream limit per
    /// connection and its endpoint split by stream kind.
    fn connections(&self, ws_base: &str, symbols: &[String]) -> Vec<ConnectionPlan>;

    /// Path and query of the REST depth snapshot of `symbol`
    /// ([`Recovery::RestSnapshot`]).
    fn snapshot_path(&self, symbol: &str, limit: u32) -> String;

    /// Messages that restart the book of `symbol` on the connection of
    /// `plan` (unsubscribe, then subscribe; [`Recovery::Resubscribe`]).
    fn resubscribe(&self, plan: &ConnectionPlan, symbol: &str) -> Vec<String>;

    /// The request weight of one depth snapshot of `limit` levels against
    /// [`Protocol::rest_weight_per_min`]. Default 1.
    fn snapshot_weight(&self, _limit: u32) -> u32 {
        1
    }
}

/// One subscribe request sent after connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Request id (the venue echoes it in its ack or [`FrameKind::Rejected`]).
    pub id: u64,
    /// The message text.
    pub message: String,
    /// The streams it asks for (named in errors).
    pub streams: Vec<String>,
}

/// One WebSocket connection of a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Short name for logs and stats (`public`, `market`; `""` for a venue's only endpoint).
    pub label: &'static str,
    /// Full URL (streams in the query where the venue takes them there).
    pub url: String,
    /// Requests to send after the handshake, in order, paced at the
    /// venue's message limit ([`Protocol::max_client_messages_per_s`]).
    pub subscribe: Vec<Subscribe>,
    /// Symbols whose depth books this connection carries: their books
    /// start (and recover) through it, and reset when it drops.
    pub depth_symbols: Vec<String>,
    /// The text heartbeat of this connection where it differs from the
    /// venue's [`Heartbeat::Text`] (an API version's own ping).
    pub ping_text: Option<&'static str>,
}

/// How a connection is kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// WebSocket Ping frames every `every`; the venue's own pings are
    /// answered by the WebSocket layer.
    WsPing {
        /// Period.
        every: std::time::Duration,
    },
    /// An application text message every `every` (Kraken
    /// `{"event":"ping"}`); the venue's reply is a control frame.
    Text {
        /// The message.
        message: &'static str,
        /// Period.
        every: std::time::Duration,
    },
}

/// How one instrument whose book lost sync is recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Fetch a REST depth snapshot (`snapshot_path`) and bridge the
    /// buffered diffs to it.
    RestSnapshot,
    /// Unsubscribe and subscribe the instrument's book again on its
    /// connection (`resubscribe`): the venue sends a fresh snapshot.
    Resubscribe,
}

/// A venue's connection rules, venue-neutral data the connection state
/// machine follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Keep-alive.
    pub heartbeat: Heartbeat,
    /// Per-instrument recovery.
    pub recovery: Recovery,
    /// Streams one connection may carry.
    pub max_streams_per_connection: usize,
    /// Messages per second a client may send on one connection (requests
    /// beyond are paced, never sent faster).
    pub max_client_messages_per_s: u32,
    /// The venue closes every connection after this long (zero: never).
    pub connection_lifetime: std::time::Duration,
    /// Connection attempts the venue allows per `connect_window` (per IP):
    /// the engine's attempts for the venue, across all its connections,
    /// stay under this.
    pub max_connects: u32,
    /// The window of `max_connects`.
    pub connect_window: std::time::Duration,
    /// REST request weight the venue allows per minute (per IP); the engine
    /// spends at most half of it (snapshot weights: [`VenueAdapter::snapshot_weight`]).
    pub rest_weight_per_min: u32,
}

/// A registry entry: what the engine needs to know of a venue without
/// knowing which venue it is.
pub struct VenueDef {
    /// Venue name (`binance-spot`), as in configuration and output rows.
    pub name: &'static str,
    /// The `venue=` token of this venue's capture headers.
    pub capture_venue: &'static str,
    /// Where several entries share a `capture_venue`: a substring of the
    /// capture's `url=` that selects this one (`""`: any).
    pub capture_url: &'static str,
    /// How the venue's books start, chain and are verified.
    pub book: BookPolicy,
    /// REST route of depth snapshots (the simulator serves it too).
    pub rest_depth_path: &'static str,
    /// Connection rules.
    pub protocol: Protocol,
    /// Where L1 quotes come from unless an instrument is configured
    /// otherwise (`bookTicker`-style BBO messages, or the book's top).
    pub quote_source: signals::QuoteSource,
    /// Builds an adapter; the first argument is this entry's index in [`VENUES`].
    pub new: fn(venue_index: u16, instruments: Instruments) -> Box<dyn VenueAdapter>,
    /// How the venue's server behaves, for the simulator (feature `sim`).
    #[cfg(feature = "sim")]
    pub server: &'static dyn crate::sim::VenueServer,
}

impl fmt::Debug for VenueDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VenueDef")
            .field("name", &self.name)
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

/// Every supported venue, one line each.
pub static VENUES: &[VenueDef] = &[
    venues::binance::SPOT,
    venues::binance::USDM,
    venues::binance::COINM,
    venues::kraken::KRAKEN,
    venues::okx::OKX,
    venues::coinbase::ADVANCED,
    venues::coinbase::EXCHANGE,
    venues::bybit::SPOT,
    venues::bybit::LINEAR,
    venues::bybit::INVERSE,
];

/// Looks a venue up by name; returns its index and definition.
#[must_use]
pub fn venue_by_name(name: &str) -> Option<(u16, &'static VenueDef)> {
    VENUES
        .iter()
        .enumerate()
        .find(|(_, v)| v.name == name)
        .and_then(|(i, v)| Some((u16::try_from(i).ok()?, v)))
}

/// The registry entry at `index` (an [`crate::event::InstrumentInfo::venue`]).
#[must_use]
pub fn venue_at(index: u16) -> Option<&'static VenueDef> {
    VENUES.get(usize::from(index))
}

/// The venue of a capture from its header's `venue=` and `url=` tokens:
/// the one entry whose capture venue token is `venue` and whose
/// `capture_url` the URL contains (`venue=bybit` + a `/v5/public/linear`
/// URL, `venue=coinbase` + `ws-feed`), else a registry name.
#[must_use]
pub fn venue_for_capture(venue: &str, url: Option<&str>) -> Option<(u16, &'static VenueDef)> {
    let url = url.unwrap_or("");
    let mut hits = VENUES.iter().enumerate().filter(|(_, v)| {
        v.capture_venue == venue && (v.capture_url.is_empty() || url.contains(v.capture_url))
    });
    match (hits.next(), hits.next()) {
        (Some((i, v)), None) => Some((u16::try_from(i).ok()?, v)),
        _ => venue_by_name(venue),
    }
}

/// Exchange timestamp to ns with unit detection (SIGNALS.md 1.2):
/// `v < 10^14` → ms, `v < 10^17` → µs, otherwise ns. Saturates.
#[inline]
#[must_use]
pub const fn exchange_ts_ns(v: i64) -> i64 {
    if v < 100_000_000_000_000 {
        v.saturating_mul(1_000_000)
    } else if v < 100_000_000_000_000_000 {
        v.saturating_mul(1_000)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_detection() {
        assert_eq!(exchange_ts_ns(1_723_161_255_342), 1_723_161_255_342_000_000);
        assert_eq!(
            exchange_ts_ns(1_723_161_255_342_123),
            1_723_161_255_342_123_000
        );
        assert_eq!(
            exchange_ts_ns(1_723_161_255_342_123_456),
            1_723_161_255_342_123_456
        );
        assert_eq!(exchange_ts_ns(99_999_999_999_999), i64::MAX); // saturates past 2262
        assert_eq!(exchange_ts_ns(100_000_000_000_000), 100_000_000_000_000_000);
    }

    #[test]
    fn registry() {
        let (i, d) = venue_by_name("binance-spot").unwrap();
        assert_eq!((i, d.name), (0, "binance-spot"));
        assert!(venue_by_name("nope").is_none());
        for (i, v) in VENUES.iter().enumerate() {
            assert_eq!(venue_at(i as u16).map(|d| d.name), Some(v.name));
            assert_eq!(
                VENUES.iter().filter(|o| o.name == v.name).count(),
                1,
                "{} registered twice",
                v.name
            );
            assert!(v.rest_depth_path.starts_with('/'), "{}", v.name);
        }
        let (_, d) = venue_for_capture("binance-usdm", Some("wss://fstream.binance.com")).unwrap();
        assert_eq!(d.name, "binance-usdm");
        assert!(venue_for_capture("mars", None).is_none());
        let ws_feed = Some("wss://ws-feed.pro.coinbase.com");
        assert_eq!(
            venue_for_capture("coinbase", ws_feed).unwrap().1.name,
            "coinbase-exchange"
        );
        let at = Some("wss://advanced-trade-ws.coinbase.com");
        assert_eq!(
            venue_for_capture("coinbase", at).unwrap().1.name,
            "coinbase"
        );
        assert_eq!(
            venue_for_capture("coinbase", None).unwrap().1.name,
            "coinbase"
        );
        let url = Some("wss://stream.bybit.com/v5/public/linear");
        assert_eq!(
            venue_for_capture("bybit", url).unwrap().1.name,
            "bybit-linear"
        );
        assert!(venue_for_capture("bybit", None).is_none(), "ambiguous");
    }
}
