//! Bybit v5 subscriptions: `orderbook.50.<SYMBOL>` and `publicTrade.<SYMBOL>`
//! per instrument on `/v5/public/<category>`, in requests of at most the
//! market's `args_per_request` topics, each with a `req_id`; a connection
//! carries at most [`super::MAX_TOPICS`] topics and [`ARGS_CHARS`]
//! characters of them (Bybit's limit is 21 000), an instrument's topics
//! always on one connection.

use super::{Market, DEPTH, MAX_TOPICS};
use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Characters of `args` per connection (quotes and commas included), below
/// Bybit's 21 000.
pub(super) const ARGS_CHARS: usize = 20_000;

/// The orderbook topic of `symbol` at the subscribed depth.
pub(super) fn book_topic(symbol: &str) -> String {
    format!("orderbook.{DEPTH}.{symbol}")
}

/// A request `{"req_id":"<id>","op":"<op>","args":[..]}` (ids of resubscribe
/// requests are not numbers: a failed one names no planned request).
fn request(req_id: &str, op: &str, topics: &[String]) -> String {
    let mut m = format!(r#"{{"req_id":"{req_id}","op":"{op}","args":["#);
    for (i, t) in topics.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push('"');
        m.push_str(t);
        m.push('"');
    }
    m.push_str("]}");
    m
}

/// The connection URL: `ws_base` as configured when it names a path, else
/// with the market's `/v5/public/<category>` appended.
fn url(market: &Market, base: &str) -> String {
    let base = base.trim_end_matches('/');
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    if after_scheme.contains('/') {
        base.to_owned()
    } else {
        format!("{base}/v5/public/{}", market.category)
    }
}

pub(super) fn connections(
    market: &Market,
    instruments: &Instruments,
    base: &str,
    symbols: &[String],
) -> Vec<ConnectionPlan> {
    // Symbols are upper case; quotes and backslashes can never be part of one.
    let insts: Vec<String> = symbols
        .iter()
        .filter(|s| instruments.spec_for(s).is_some())
        .map(|s| {
            s.chars()
                .filter(|c| *c != '"' && *c != '\\')
                .collect::<String>()
                .to_ascii_uppercase()
        })
        .collect();
    let url = url(market, base);
    let mut plans = Vec::new();
    let (mut topics, mut depth, mut chars) = (Vec::new(), Vec::new(), 0usize);
    let mut flush = |topics: &mut Vec<String>, depth: &mut Vec<String>| {
        if topics.is_empty() {
            return;
        }
        let subscribe = topics
            .chunks(market.args_per_request.max(1))
            .zip(1u64..)
            .map(|(chunk, id)| Subscribe {
                id,
                message: request(&id.to_string(), "subscribe", chunk),
                streams: chunk.to_vec(),
            })
            .collect();
        plans.push(ConnectionPlan {
            label: "",
            url: url.clone(),
            subscribe,
            depth_symbols: std::mem::take(depth),
            ping_text: None,
        });
        topics.clear();
    };
    for sym in insts {
        let pair = [book_topic(&sym), format!("publicTrade.{sym}")];
        let cost: usize = pair.iter().map(|t| t.len() + 3).sum();
        if !topics.is_empty()
            && (topics.len() + pair.len() > MAX_TOPICS || chars + cost > ARGS_CHARS)
        {
            flush(&mut topics, &mut depth);
            chars = 0;
        }
        topics.extend(pair);
        chars += cost;
        depth.push(sym);
    }
    flush(&mut topics, &mut depth);
    plans
}

/// Unsubscribe then subscribe the orderbook topic of one instrument.
pub(super) fn resubscribe(symbol: &str) -> Vec<String> {
    let topic = [book_topic(&symbol.to_ascii_uppercase())];
    vec![
        request("resync", "unsubscribe", &topic),
        request("resync", "subscribe", &topic),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Scale;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    fn all() -> Instruments {
        Instruments::new(0, vec![], Scale::default(), Arc::new(AtomicU32::new(0)))
    }

    #[test]
    fn requests_respect_the_spot_arg_limit_and_urls_get_the_category() {
        let syms: Vec<String> = (0..12).map(|i| format!("sym{i}usdt")).collect();
        let plans = connections(
            &super::super::SPOT_MARKET,
            &all(),
            "wss://stream.bybit.com",
            &syms,
        );
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!(p.url, "wss://stream.bybit.com/v5/public/spot");
        assert_eq!(p.subscribe.len(), 3, "24 topics in requests of 10");
        assert!(p.subscribe.iter().all(|s| s.streams.len() <= 10));
        assert_eq!(p.subscribe[0].id, 1);
        assert!(p.subscribe[0]
            .message
            .starts_with(r#"{"req_id":"1","op":"subscribe","args":["orderbook.50.SYM0USDT","publicTrade.SYM0USDT""#));
        assert_eq!(p.depth_symbols.len(), 12);
        let linear = connections(
            &super::super::LINEAR_MARKET,
            &all(),
            "ws://127.0.0.1:9/v5/public/linear/",
            &syms,
        );
        assert_eq!(linear[0].url, "ws://127.0.0.1:9/v5/public/linear");
        assert_eq!(linear[0].subscribe.len(), 1);
    }

    #[test]
    fn connections_split_at_the_topic_limit() {
        let syms: Vec<String> = (0..600).map(|i| format!("S{i}USDT")).collect();
        let plans = connections(&super::super::LINEAR_MARKET, &all(), "wss://x", &syms);
        assert_eq!(plans.len(), 3);
        assert!(plans
            .iter()
            .all(|p| p.subscribe.iter().map(|s| s.streams.len()).sum::<usize>() <= MAX_TOPICS));
        assert_eq!(
            plans.iter().map(|p| p.depth_symbols.len()).sum::<usize>(),
            600
        );
        assert_eq!(
            resubscribe("btcusdt"),
            [
                r#"{"req_id":"resync","op":"unsubscribe","args":["orderbook.50.BTCUSDT"]}"#,
                r#"{"req_id":"resync","op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#
            ]
        );
    }
}
