//! Stream names, connections and REST paths of the Binance markets.

use std::fmt::Write as _;

use super::Market;
use crate::event::TradeKind;
use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Diff-depth stream subscribed (every market offers the 100 ms speed).
pub const DEPTH_STREAM: &str = "depth@100ms";

/// Streams put in the URL of a connection (`/stream?streams=a/b`); a
/// connection with more subscribes with `SUBSCRIBE` requests instead, so
/// its URL stays short.
const URL_STREAMS: usize = 100;
/// Streams per `SUBSCRIBE` request.
const STREAMS_PER_REQUEST: usize = 200;

/// One symbol's streams: (trade stream, bookTicker, diff depth).
fn symbol_streams(instruments: &Instruments, symbol: &str) -> Option<[String; 3]> {
    let spec = instruments.spec_for(symbol)?;
    let lower = symbol.to_ascii_lowercase();
    let trade = match spec.trade_source {
        TradeKind::Trade => "trade",
        TradeKind::AggTrade => "aggTrade",
    };
    Some([
        format!("{lower}@{trade}"),
        format!("{lower}@bookTicker"),
        format!("{lower}@{DEPTH_STREAM}"),
    ])
}

/// The connections of a feed: per endpoint of the market (USD-M routes
/// depth and bookTicker to `/public`, trades to `/market`; the others have
/// one), chunks of at most `max_streams_per_connection` streams, each
/// symbol's book streams kept on one connection.
pub(super) fn connections(
    market: &Market,
    instruments: &Instruments,
    base: &str,
    symbols: &[String],
) -> Vec<ConnectionPlan> {
    let per_symbol: Vec<(String, [String; 3])> = symbols
        .iter()
        .filter_map(|s| Some((s.to_ascii_uppercase(), symbol_streams(instruments, s)?)))
        .collect();
    // (label, route, streams of one symbol on it, whether it carries the book)
    let endpoints: Vec<(&'static str, &'static str, &[usize], bool)> = match market.split {
        Some(split) => vec![
            (split.book_label, split.book_route, &[1, 2], true),
            (split.trade_label, split.trade_route, &[0], false),
        ],
        None => vec![("", "", &[0, 1, 2], true)],
    };
    let max = market.protocol.max_streams_per_connection.max(3);
    let mut out = Vec::new();
    for (label, route, picks, book) in endpoints {
        let mut streams: Vec<String> = Vec::new();
        let mut depth_symbols: Vec<String> = Vec::new();
        let mut flush = |streams: &mut Vec<String>, depth_symbols: &mut Vec<String>| {
            if !streams.is_empty() {
                out.push(plan(
                    label,
                    base,
                    route,
                    streams,
                    std::mem::take(depth_symbols),
                ));
                streams.clear();
            }
        };
        for (sym, s) in &per_symbol {
            if streams.len() + picks.len() > max {
                flush(&mut streams, &mut depth_symbols);
            }
            streams.extend(picks.iter().map(|&i| s[i].clone()));
            if book {
                depth_symbols.push(sym.clone());
            }
        }
        flush(&mut streams, &mut depth_symbols);
    }
    out
}

fn plan(
    label: &'static str,
    base: &str,
    route: &str,
    streams: &[String],
    depth_symbols: Vec<String>,
) -> ConnectionPlan {
    let base = format!("{}{route}", base.trim_end_matches('/'));
    if streams.len() <= URL_STREAMS {
        return ConnectionPlan {
            label,
            url: ws_url(&base, streams),
            subscribe: Vec::new(),
            depth_symbols,
            ping_text: None,
        };
    }
    let subscribe = streams
        .chunks(STREAMS_PER_REQUEST)
        .zip(1u64..)
        .map(|(chunk, id)| Subscribe {
            id,
            message: subscribe_message(chunk, id),
            streams: chunk.to_vec(),
        })
        .collect();
    ConnectionPlan {
        label,
        url: format!("{base}/stream"),
        subscribe,
        depth_symbols,
        ping_text: None,
    }
}

/// Combined-stream URL: `base/stream?streams=a/b/c`.
pub(super) fn ws_url(base: &str, streams: &[String]) -> String {
    let mut url =
        String::with_capacity(base.len() + 16 + streams.iter().map(|s| s.len() + 1).sum::<usize>());
    url.push_str(base.trim_end_matches('/'));
    url.push_str("/stream?streams=");
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.push_str(s);
    }
    url
}

/// `{"method":"SUBSCRIBE","params":["a","b"],"id":N}`.
pub(super) fn subscribe_message(streams: &[String], id: u64) -> String {
    let mut m = String::from(r#"{"method":"SUBSCRIBE","params":["#);
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push('"');
        // Stream names are `[a-z0-9@!_]`; escape defensively anyway.
        for c in s.chars() {
            if c == '"' || c == '\\' {
                m.push('\\');
            }
            m.push(c);
        }
        m.push('"');
    }
    let _ = write!(m, r#"],"id":{id}}}"#);
    m
}

/// `UNSUBSCRIBE` then `SUBSCRIBE` of the symbol's diff-depth stream.
pub(super) fn resubscribe(symbol: &str) -> Vec<String> {
    let stream = [format!("{}@{DEPTH_STREAM}", symbol.to_ascii_lowercase())];
    vec![
        subscribe_message(&stream, 0).replacen("SUBSCRIBE", "UNSUBSCRIBE", 1),
        subscribe_message(&stream, 0),
    ]
}

/// `/api/v3/depth?symbol=BTCUSDT&limit=1000` (the market's route).
pub(super) fn snapshot_path(route: &str, symbol: &str, limit: u32) -> String {
    format!(
        "{route}?symbol={}&limit={limit}",
        symbol.to_ascii_uppercase()
    )
}
