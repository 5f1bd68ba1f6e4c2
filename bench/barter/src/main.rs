//! barter-data side of the side-by-side throughput comparison (issue 13
//! "Performance"): reads a Binance spot capture (`<recv_unix_ns> <frame>`
//! per line, plain or gzip, `#` header lines; see `feeds/src/capture.rs`)
//! and drives barter-data 0.13's *own* Binance spot code over every frame.
//!
//! Per message, barter does (all of it barter-data / barter-integration
//! public API, nothing re-implemented):
//!
//! * the frame becomes a `WsMessage::Text` (one owned copy of the payload,
//!   as tungstenite hands barter an owned message per frame) and goes
//!   through barter's real `ExchangeStream<WebSocketSerdeParser, _, _>`:
//!   `serde_json::from_str` into barter's Binance type, then the kind's
//!   transformer, then the output `VecDeque`;
//! * `btcusdt@trade` → `BinanceTrade` → `StatelessTransformer` →
//!   `MarketEvent<_, PublicTrade>` (barter's `PublicTrades` stream);
//! * `btcusdt@bookTicker` → `BinanceOrderBookL1` → `StatelessTransformer`
//!   → `MarketEvent<_, OrderBookL1>` (barter's `OrderBooksL1` stream);
//! * `btcusdt@depth@100ms` → `BinanceSpotOrderBookL2Update` →
//!   `BinanceSpotOrderBooksL2Transformer` (its `BinanceSpotOrderBookL2Sequencer`:
//!   drop `u <= lastUpdateId`, first update bridges `lastUpdateId + 1`, then
//!   `U == previous u + 1`) → `OrderBookEvent::Update`, applied to the
//!   `OrderBook` behind barter's `OrderBookMapSingle` exactly as
//!   `OrderBookL2Manager::run` does (`find`, `write()`, `update`).
//!
//! The REST snapshot line of the capture is deserialized into barter's
//! `BinanceOrderBookL2Snapshot` (what `BinanceSpotOrderBooksL2SnapshotFetcher`
//! gets from `reqwest .json()`, i.e. `serde_json::from_slice`), turned into
//! the initial `MarketEvent<_, OrderBookEvent::Snapshot>` with barter's own
//! `From`, handed to `ExchangeTransformer::init`, and placed first in the L2
//! stream's output buffer, as `MarketStream::init` does. Depth frames that
//! arrive before the snapshot line are held back and fed after it (live,
//! they would wait in the socket while barter's snapshot request is in
//! flight); the sequencer drops the stale ones.
//!
//! What barter does live and this harness leaves out (each in barter's
//! favour): the WebSocket read and frame decode, the tokio tasks and the
//! unbounded mpsc channel between each `ExchangeStream` and its consumer,
//! the `ReconnectingStream` wrapper, and one connection per subscription kind
//! (here one thread polls three streams with a no-op waker, with no wake-ups).
//! What the engine does on the same frames and barter does not: the 17
//! signals of `shared/SIGNALS.md`, the bookTicker cross-check against the
//! book, latency stamps, stats, and (with `--out`) JSONL rows.
//!
//! Combined-stream frames (`{"stream":"<name>","data":{...}}`, how the
//! capture's collector subscribed) are unwrapped to their `data` object,
//! which is exactly the frame barter's raw `/ws` connection receives; the
//! stream name picks the kind, as barter's one-connection-per-kind does.
//!
//! Prints `key=value` lines: counts, then the final L2 book's best bid and
//! ask (normalized decimals) and level counts, for comparison with
//! `engine replay --stats`.

use std::collections::VecDeque;
use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use barter_data::books::map::{OrderBookMap, OrderBookMapSingle};
use barter_data::books::OrderBook;
use barter_data::error::DataError;
use barter_data::event::MarketEvent;
use barter_data::exchange::binance::book::l1::BinanceOrderBookL1;
use barter_data::exchange::binance::book::l2::BinanceOrderBookL2Snapshot;
use barter_data::exchange::binance::channel::BinanceChannel;
use barter_data::exchange::binance::spot::l2::BinanceSpotOrderBooksL2Transformer;
use barter_data::exchange::binance::spot::BinanceSpot;
use barter_data::exchange::binance::trade::BinanceTrade;
use barter_data::exchange::subscription::ExchangeSub;
use barter_data::subscription::book::{OrderBookEvent, OrderBooksL1, OrderBooksL2};
use barter_data::subscription::trade::PublicTrades;
use barter_data::subscription::Map;
use barter_data::transformer::stateless::StatelessTransformer;
use barter_data::transformer::ExchangeTransformer;
use barter_data::Identifier;
use barter_instrument::exchange::ExchangeId;
use barter_integration::error::SocketError;
use barter_integration::protocol::websocket::{WebSocketSerdeParser, WsError, WsMessage};
use barter_integration::protocol::StreamParser;
use barter_integration::stream::ExchangeStream;
use barter_integration::Transformer;
use flate2::bufread::MultiGzDecoder;
use futures::{Stream, StreamExt};
use parking_lot::RwLock;
use rust_decimal::Decimal;
use serde::Deserialize;

/// Instrument key: an index, the cheapest key barter's transformers accept
/// (the engine interns instruments the same way).
type Key = usize;
const KEY: Key = 0;

type TradeStream = ExchangeStream<
    WebSocketSerdeParser,
    Feed,
    StatelessTransformer<BinanceSpot, Key, PublicTrades, BinanceTrade>,
>;
type L1Stream = ExchangeStream<
    WebSocketSerdeParser,
    Feed,
    StatelessTransformer<BinanceSpot, Key, OrderBooksL1, BinanceOrderBookL1>,
>;
type L2Stream = ExchangeStream<WebSocketSerdeParser, Feed, BinanceSpotOrderBooksL2Transformer<Key>>;

/// The inner "socket" of an `ExchangeStream`: holds at most one message and
/// is `Pending` when empty, so polling the `ExchangeStream` after each push
/// drains exactly that frame's outputs.
#[derive(Default)]
struct Feed {
    next: Option<Result<WsMessage, WsError>>,
}

impl Stream for Feed {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.next.take() {
            Some(message) => Poll::Ready(Some(message)),
            None => Poll::Pending,
        }
    }
}

/// Hands `message` to `stream` and passes every output to `on_output`.
fn push<T>(
    stream: &mut ExchangeStream<WebSocketSerdeParser, Feed, T>,
    message: WsMessage,
    mut on_output: impl FnMut(Result<T::Output, T::Error>),
) where
    T: Transformer + Unpin,
    T::Error: From<SocketError>,
    T::Output: Unpin,
    T::Error: Unpin,
    WebSocketSerdeParser: StreamParser<T::Input, Message = WsMessage, Error = WsError>,
{
    stream.stream.next = Some(Ok(message));
    drain(stream, &mut on_output);
}

fn drain<T>(
    stream: &mut ExchangeStream<WebSocketSerdeParser, Feed, T>,
    on_output: &mut impl FnMut(Result<T::Output, T::Error>),
) where
    T: Transformer + Unpin,
    T::Error: From<SocketError>,
    T::Output: Unpin,
    T::Error: Unpin,
    WebSocketSerdeParser: StreamParser<T::Input, Message = WsMessage, Error = WsError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(output)) = stream.poll_next_unpin(&mut cx) {
        on_output(output);
    }
}

#[derive(Default, Debug)]
struct Counts {
    /// Every record (frame line) of the capture, as the engine counts them.
    messages: u64,
    trades: u64,
    l1: u64,
    l2_frames: u64,
    /// L2 updates the sequencer passed and the book applied.
    l2_applied: u64,
    snapshots: u64,
    /// `InvalidSequence` from barter's sequencer (terminal in barter: the
    /// stream would reconnect and fetch a new snapshot, which a capture
    /// cannot give, so L2 stops there, like an unsynced engine book).
    gaps: u64,
    /// Depth frames after a gap (not applied).
    l2_after_gap: u64,
    /// Frames barter failed to deserialize or identify.
    errors: u64,
    /// Frames of another stream or symbol.
    unknown: u64,
    /// Lines that are not `<ns> <frame>` or not UTF-8.
    bad_records: u64,
    /// Checksum-ish sums so the outputs are used (not optimized away).
    trade_amount: f64,
    last_l1: Option<(Decimal, Decimal)>,
}

enum L2State {
    /// Before the snapshot line: depth frames wait here.
    Buffering(Vec<WsMessage>),
    Live(Box<L2Stream>),
    /// After a sequence gap.
    Stopped,
}

struct Harness {
    symbol: String,
    /// Keep only this many snapshot levels per side (`--snapshot-limit`).
    snapshot_limit: Option<usize>,
    trades: TradeStream,
    l1: L1Stream,
    l2: L2State,
    books: OrderBookMapSingle<Key>,
    counts: Counts,
}

/// Combined-stream wrapper, for frames not in the collector's compact shape.
#[derive(Deserialize)]
struct Combined<'a> {
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// `(stream, data)` of a combined-stream frame. The collector writes them
/// compact (`{"stream":"x","data":{...}}`), so the fast path slices the two
/// parts out without parsing `data` twice (barter itself parses only
/// `data`, which is what its raw `/ws` connection receives); anything else
/// goes through serde (`RawValue`).
fn split_combined(frame: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    const HEAD: &str = "{\"stream\":\"";
    const DATA: &str = "\",\"data\":";
    if let Some(rest) = frame.strip_prefix(HEAD) {
        if let Some(end) = rest.find('"') {
            let (stream, tail) = rest.split_at(end);
            if let Some(data) = tail.strip_prefix(DATA).and_then(|d| d.strip_suffix('}')) {
                if !stream.contains('\\') {
                    return Some((stream.into(), data));
                }
            }
        }
    }
    let combined: Combined<'_> = serde_json::from_str(frame).ok()?;
    Some((combined.stream, combined.data.get()))
}

impl Harness {
    fn new(symbol: String, snapshot_limit: Option<usize>) -> Result<Self, DataError> {
        let trade_map: Map<Key> = std::iter::once((
            ExchangeSub::from((BinanceChannel::TRADES, symbol.as_str())).id(),
            KEY,
        ))
        .collect();
        let l1_map: Map<Key> = std::iter::once((
            ExchangeSub::from((BinanceChannel::ORDER_BOOK_L1, symbol.as_str())).id(),
            KEY,
        ))
        .collect();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let trades = futures::executor::block_on(<StatelessTransformer<
            BinanceSpot,
            Key,
            PublicTrades,
            BinanceTrade,
        > as ExchangeTransformer<
            BinanceSpot,
            Key,
            PublicTrades,
        >>::init(trade_map, &[], tx.clone()))?;
        let l1 =
            futures::executor::block_on(<StatelessTransformer<
                BinanceSpot,
                Key,
                OrderBooksL1,
                BinanceOrderBookL1,
            > as ExchangeTransformer<BinanceSpot, Key, OrderBooksL1>>::init(
                l1_map, &[], tx
            ))?;
        Ok(Self {
            symbol,
            snapshot_limit,
            trades: ExchangeStream::new(Feed::default(), trades, VecDeque::new()),
            l1: ExchangeStream::new(Feed::default(), l1, VecDeque::new()),
            l2: L2State::Buffering(Vec::new()),
            books: OrderBookMapSingle::new(KEY, Arc::new(RwLock::new(OrderBook::default()))),
            counts: Counts::default(),
        })
    }

    fn record(&mut self, line: &[u8]) {
        let Some((_recv_ns, frame)) = split_record(line) else {
            self.counts.bad_records += 1;
            return;
        };
        self.counts.messages += 1;
        let Ok(frame) = std::str::from_utf8(frame) else {
            self.counts.bad_records += 1;
            return;
        };
        if frame.starts_with("{\"lastUpdateId\"") {
            self.snapshot(frame);
            return;
        }
        let Some((stream, data)) = split_combined(frame) else {
            self.counts.unknown += 1;
            return;
        };
        let Some((symbol, channel)) = stream.split_once('@') else {
            self.counts.unknown += 1;
            return;
        };
        if !symbol.eq_ignore_ascii_case(&self.symbol) {
            self.counts.unknown += 1;
            return;
        }
        let message = WsMessage::text(data.to_owned());
        let counts = &mut self.counts;
        if channel == "trade" {
            push(&mut self.trades, message, |out| match out {
                Ok(event) => {
                    counts.trades += 1;
                    counts.trade_amount += event.kind.amount;
                }
                Err(_) => counts.errors += 1,
            });
        } else if channel == "bookTicker" {
            push(&mut self.l1, message, |out| match out {
                Ok(event) => {
                    counts.l1 += 1;
                    if let (Some(b), Some(a)) = (event.kind.best_bid, event.kind.best_ask) {
                        counts.last_l1 = Some((b.price, a.price));
                    }
                }
                Err(_) => counts.errors += 1,
            });
        } else if channel.starts_with("depth") {
            counts.l2_frames += 1;
            self.depth(message);
        } else {
            counts.unknown += 1;
        }
    }

    fn depth(&mut self, message: WsMessage) {
        match &mut self.l2 {
            L2State::Buffering(held) => held.push(message),
            L2State::Live(stream) => {
                let mut stop = false;
                let books = &self.books;
                let counts = &mut self.counts;
                push(stream, message, |out| {
                    apply(books, counts, out, &mut stop);
                });
                if stop {
                    self.l2 = L2State::Stopped;
                }
            }
            L2State::Stopped => self.counts.l2_after_gap += 1,
        }
    }

    fn snapshot(&mut self, frame: &str) {
        let mut snapshot = match serde_json::from_str::<BinanceOrderBookL2Snapshot>(frame) {
            Ok(s) => s,
            Err(_) => {
                self.counts.errors += 1;
                return;
            }
        };
        if let Some(limit) = self.snapshot_limit {
            // Binance sends both sides best first.
            snapshot.bids.truncate(limit);
            snapshot.asks.truncate(limit);
        }
        let L2State::Buffering(held) = std::mem::replace(&mut self.l2, L2State::Stopped) else {
            // A second snapshot: barter only takes one at stream start.
            self.counts.unknown += 1;
            return;
        };
        let event = MarketEvent::from((ExchangeId::BinanceSpot, KEY, snapshot));
        let l2_map: Map<Key> = std::iter::once((
            ExchangeSub::from((BinanceChannel::ORDER_BOOK_L2, self.symbol.as_str())).id(),
            KEY,
        ))
        .collect();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let initial = [event];
        let transformer = match futures::executor::block_on(
            <BinanceSpotOrderBooksL2Transformer<Key> as ExchangeTransformer<
                BinanceSpot,
                Key,
                OrderBooksL2,
            >>::init(l2_map, &initial, tx),
        ) {
            Ok(t) => t,
            Err(_) => {
                self.counts.errors += 1;
                return;
            }
        };
        let [event] = initial;
        self.counts.snapshots += 1;
        let mut stream = Box::new(ExchangeStream::new(
            Feed::default(),
            transformer,
            VecDeque::from([Ok(event)]),
        ));
        let mut stop = false;
        let books = &self.books;
        let counts = &mut self.counts;
        // The snapshot event first, then the held-back depth frames.
        drain(&mut stream, &mut |out| apply(books, counts, out, &mut stop));
        for message in held {
            if stop {
                counts.l2_after_gap += 1;
                continue;
            }
            push(&mut stream, message, |out| {
                apply(books, counts, out, &mut stop);
            });
        }
        self.l2 = if stop {
            L2State::Stopped
        } else {
            L2State::Live(stream)
        };
    }

    fn finish(&self) {
        let c = &self.counts;
        println!("symbol={}", self.symbol);
        println!("messages={}", c.messages);
        println!("trades={}", c.trades);
        println!("book_tickers={}", c.l1);
        println!("depth_frames={}", c.l2_frames);
        println!("depth_applied={}", c.l2_applied);
        println!("snapshots={}", c.snapshots);
        println!("gaps={}", c.gaps);
        println!("depth_after_gap={}", c.l2_after_gap);
        println!("errors={}", c.errors);
        println!("unknown={}", c.unknown);
        println!("bad_records={}", c.bad_records);
        println!("trade_volume={}", c.trade_amount);
        if let Some((b, a)) = c.last_l1 {
            println!("last_book_ticker={}/{}", b.normalize(), a.normalize());
        }
        if let Some(book) = self.books.find(&KEY) {
            let book = book.read();
            let fmt = |l: Option<&barter_data::books::Level>| {
                l.map_or_else(|| "none".to_owned(), |l| l.price.normalize().to_string())
            };
            println!("best_bid={}", fmt(book.bids().best()));
            println!("best_ask={}", fmt(book.asks().best()));
            println!("bid_levels={}", book.bids().levels().len());
            println!("ask_levels={}", book.asks().levels().len());
        }
    }
}

/// One output of the L2 stream, as `OrderBookL2Manager::run` handles it.
fn apply(
    books: &OrderBookMapSingle<Key>,
    counts: &mut Counts,
    out: Result<MarketEvent<Key, OrderBookEvent>, DataError>,
    stop: &mut bool,
) {
    match out {
        Ok(event) => {
            let Some(book) = books.find(&event.instrument) else {
                counts.errors += 1;
                return;
            };
            if matches!(event.kind, OrderBookEvent::Update(_)) {
                counts.l2_applied += 1;
            }
            book.write().update(&event.kind);
        }
        Err(error) if error.is_terminal() => {
            counts.gaps += 1;
            *stop = true;
        }
        Err(_) => counts.errors += 1,
    }
}

/// `<decimal ns> <frame>` → `(ns, frame)`; trailing `\r\n` stripped.
fn split_record(line: &[u8]) -> Option<(u64, &[u8])> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let space = line.iter().position(|&b| b == b' ')?;
    let (ns, frame) = (&line[..space], &line[space + 1..]);
    let ns = std::str::from_utf8(ns).ok()?.parse().ok()?;
    Some((ns, frame))
}

fn open(path: &str) -> std::io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let gz = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            128 * 1024,
            MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(file)
    })
}

/// The `symbols=` values of the header lines.
fn header_symbols(line: &str, out: &mut Vec<String>) {
    for token in line.trim_start_matches('#').split_whitespace() {
        if let Some(list) = token.strip_prefix("symbols=") {
            out.extend(
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_ascii_uppercase),
            );
        }
    }
}

fn run(path: &str, snapshot_limit: Option<usize>) -> Result<(), Box<dyn Error>> {
    let mut reader = open(path)?;
    let mut line = Vec::with_capacity(128 * 1024);
    let mut symbols = Vec::new();
    let mut harness: Option<Harness> = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if harness.is_none() && line.first() == Some(&b'#') {
            header_symbols(&String::from_utf8_lossy(&line), &mut symbols);
            continue;
        }
        let h = match &mut harness {
            Some(h) => h,
            None => {
                let [symbol] = symbols.as_slice() else {
                    return Err(format!(
                        "{path}: the harness takes captures of exactly one symbol \
                         (header symbols={symbols:?})"
                    )
                    .into());
                };
                harness.insert(Harness::new(symbol.clone(), snapshot_limit)?)
            }
        };
        h.record(&line);
    }
    match &harness {
        Some(h) => h.finish(),
        // Header only (the callgrind baseline): same start-up, no records.
        None => println!("messages=0"),
    }
    Ok(())
}

const USAGE: &str = "usage: barter-harness [--snapshot-limit N] <capture.txt[.gz]>\n  \
    --snapshot-limit N: keep the best N levels per side of the capture's snapshot \
    (barter's own BinanceSpotOrderBooksL2SnapshotFetcher asks for limit=100)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (limit, path) = match args.as_slice() {
        [path] => (None, path),
        [flag, n, path] if flag == "--snapshot-limit" => match n.parse::<usize>() {
            Ok(n) => (Some(n), path),
            Err(_) => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(path, limit) {
        eprintln!("barter-harness: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_fast_path_and_fallback_agree() {
        let compact = r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}"#;
        let spaced = r#"{ "stream": "btcusdt@trade", "data": {"e":"trade","s":"BTCUSDT"} }"#;
        let (s1, d1) = split_combined(compact).expect("compact");
        let (s2, d2) = split_combined(spaced).expect("spaced");
        assert_eq!(
            (&*s1, d1),
            ("btcusdt@trade", r#"{"e":"trade","s":"BTCUSDT"}"#)
        );
        assert_eq!((&*s2, d2), (&*s1, d1));
        assert!(split_combined("{\"lastUpdateId\":1}").is_none());
        assert!(split_combined("not json").is_none());
    }

    #[test]
    fn records_split_and_reject() {
        assert_eq!(split_record(b"12 {}\r\n"), Some((12, &b"{}"[..])));
        assert_eq!(split_record(b"x {}\n"), None);
        assert_eq!(split_record(b"12\n"), None);
    }

    /// A hand-sized sequence on barter's real types: snapshot, a stale
    /// diff held from before it, the bridging diff, a follow-on diff, a
    /// trade and a bookTicker; then a gap stops L2.
    #[test]
    fn drives_barter_transformers_and_book() {
        let mut h = Harness::new("BTCUSDT".into(), None).expect("init");
        let lines = [
            r#"1 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"b":[["99.0","1.0"]],"a":[]}}"#,
            r#"2 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":2,"s":"BTCUSDT","U":10,"u":12,"b":[["100.5","2.0"]],"a":[["101.0","0.00000000"]]}}"#,
            r#"3 {"lastUpdateId":10,"bids":[["100.0","1.0"],["99.0","3.0"]],"asks":[["101.0","1.0"],["102.0","1.0"]]}"#,
            r#"4 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":3,"s":"BTCUSDT","U":13,"u":13,"b":[["100.5","0"]],"a":[]}}"#,
            r#"5 {"stream":"btcusdt@trade","data":{"e":"trade","E":4,"s":"BTCUSDT","t":1,"p":"100.0","q":"0.5","T":4,"m":true,"M":true}}"#,
            r#"6 {"stream":"btcusdt@bookTicker","data":{"u":14,"s":"BTCUSDT","b":"100.0","B":"1.0","a":"102.0","A":"1.0"}}"#,
            r#"7 {"stream":"ethusdt@trade","data":{}}"#,
            "garbage",
            r#"8 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":20,"u":21,"b":[["1.0","1.0"]],"a":[]}}"#,
            r#"9 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":6,"s":"BTCUSDT","U":22,"u":22,"b":[],"a":[]}}"#,
        ];
        for l in lines {
            h.record(l.as_bytes());
        }
        let c = &h.counts;
        assert_eq!((c.messages, c.bad_records, c.unknown), (9, 1, 1));
        assert_eq!((c.trades, c.l1, c.snapshots), (1, 1, 1));
        assert_eq!(
            (c.l2_frames, c.l2_applied, c.gaps, c.l2_after_gap),
            (5, 2, 1, 1)
        );
        let book = h.books.find(&KEY).expect("book");
        let book = book.read();
        let best =
            |l: Option<&barter_data::books::Level>| l.map(|l| l.price.normalize().to_string());
        // 100.5 added by the bridge diff then removed; 101.0 removed.
        assert_eq!(best(book.bids().best()).as_deref(), Some("100"));
        assert_eq!(best(book.asks().best()).as_deref(), Some("102"));
        assert_eq!(
            (book.bids().levels().len(), book.asks().levels().len()),
            (2, 1)
        );
    }

    #[test]
    fn snapshot_limit_keeps_the_best_levels() {
        let mut h = Harness::new("BTCUSDT".into(), Some(1)).expect("init");
        h.record(br#"1 {"lastUpdateId":10,"bids":[["100.0","1.0"],["99.0","3.0"]],"asks":[["101.0","1.0"],["102.0","1.0"]]}"#);
        let book = h.books.find(&KEY).expect("book");
        let book = book.read();
        assert_eq!(
            (book.bids().levels().len(), book.asks().levels().len()),
            (1, 1)
        );
        assert_eq!(
            book.asks()
                .best()
                .map(|l| l.price.normalize().to_string())
                .as_deref(),
            Some("101")
        );
    }
}
