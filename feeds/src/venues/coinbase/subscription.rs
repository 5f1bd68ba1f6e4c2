//! Coinbase subscriptions: one connection per feed.
//!
//! * Advanced Trade: one request per channel (`heartbeats` first, which
//!   keeps quiet channels open, then `level2`, `market_trades`, `ticker`),
//!   each `{"type":"subscribe","product_ids":[..],"channel":..}` with the
//!   JWT of [`super::JWT_ENV`] when set.
//! * Exchange: one request `{"type":"subscribe","product_ids":[..],
//!   "channels":["level2_batch","matches","ticker","heartbeat"]}` (the
//!   venue closes a connection that has not subscribed within 5 s; the
//!   first request leaves right after the handshake).
//!
//! A lost book is restarted by unsubscribing and subscribing its book
//! channel for that product alone: the venue answers with a new snapshot.

use super::Api;
use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Advanced Trade channels subscribed for the products, in order.
const ADVANCED_CHANNELS: [&str; 3] = ["level2", "market_trades", "ticker"];
/// Exchange channels subscribed (`level2` itself needs authentication).
const EXCHANGE_CHANNELS: [&str; 4] = ["level2_batch", "matches", "ticker", "heartbeat"];
/// The Exchange book channel.
const EXCHANGE_BOOK: &str = "level2_batch";

/// Text safe inside a JSON string (quotes and backslashes dropped: product
/// ids and JWTs never contain them).
fn clean(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|c| *c != '"' && *c != '\\')
}

/// A JSON string list.
fn list(items: &[&str]) -> String {
    let mut m = String::new();
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push('"');
        m.extend(clean(p));
        m.push('"');
    }
    m
}

fn advanced(op: &str, channel: &str, products: &[&str], jwt: Option<&str>) -> String {
    let mut m = format!(r#"{{"type":"{op}","#);
    if !products.is_empty() {
        m.push_str(&format!(r#""product_ids":[{}],"#, list(products)));
    }
    m.push_str(&format!(r#""channel":"{channel}""#));
    if let Some(j) = jwt {
        m.push_str(r#","jwt":""#);
        m.extend(clean(j));
        m.push('"');
    }
    m.push('}');
    m
}

fn exchange(op: &str, channels: &[&str], products: &[&str]) -> String {
    format!(
        r#"{{"type":"{op}","product_ids":[{}],"channels":[{}]}}"#,
        list(products),
        list(channels)
    )
}

pub(super) fn connections(
    api: Api,
    instruments: &Instruments,
    base: &str,
    symbols: &[String],
    jwt: Option<&str>,
) -> Vec<ConnectionPlan> {
    let products: Vec<String> = symbols
        .iter()
        .filter(|s| instruments.spec_for(s).is_some())
        .map(|s| s.to_ascii_uppercase())
        .collect();
    if products.is_empty() {
        return Vec::new();
    }
    let refs: Vec<&str> = products.iter().map(String::as_str).collect();
    let streams = |channels: &[&str]| -> Vec<String> {
        channels
            .iter()
            .flat_map(|c| refs.iter().map(move |p| format!("{c}:{p}")))
            .collect()
    };
    let subscribe = match api {
        Api::AdvancedTrade => std::iter::once(Subscribe {
            id: 1,
            message: advanced("subscribe", "heartbeats", &[], jwt),
            streams: vec!["heartbeats".to_owned()],
        })
        .chain(
            ADVANCED_CHANNELS
                .iter()
                .zip(2u64..)
                .map(|(c, id)| Subscribe {
                    id,
                    message: advanced("subscribe", c, &refs, jwt),
                    streams: streams(&[c]),
                }),
        )
        .collect(),
        Api::Exchange => vec![Subscribe {
            id: 1,
            message: exchange("subscribe", &EXCHANGE_CHANNELS, &refs),
            streams: streams(&EXCHANGE_CHANNELS),
        }],
    };
    vec![ConnectionPlan {
        label: "",
        url: base.trim_end_matches('/').to_owned(),
        subscribe,
        depth_symbols: products,
        ping_text: None,
    }]
}

/// Unsubscribe then subscribe the book channel of one product.
pub(super) fn resubscribe(api: Api, symbol: &str, jwt: Option<&str>) -> Vec<String> {
    let p = [symbol];
    match api {
        Api::AdvancedTrade => vec![
            advanced("unsubscribe", "level2", &p, jwt),
            advanced("subscribe", "level2", &p, jwt),
        ],
        Api::Exchange => vec![
            exchange("unsubscribe", &[EXCHANGE_BOOK], &p),
            exchange("subscribe", &[EXCHANGE_BOOK], &p),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    fn instruments() -> Instruments {
        Instruments::new(
            0,
            Vec::new(),
            crate::event::Scale::default(),
            Arc::new(AtomicU32::new(0)),
        )
    }

    #[test]
    fn advanced_trade_subscribes_per_channel_with_the_jwt() {
        let syms = ["btc-usd".to_owned(), "ETH-USD".to_owned()];
        let plans = connections(
            Api::AdvancedTrade,
            &instruments(),
            "wss://x/",
            &syms,
            Some("a.b.c"),
        );
        assert_eq!(plans.len(), 1);
        let msgs: Vec<&str> = plans[0]
            .subscribe
            .iter()
            .map(|s| s.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            [
                r#"{"type":"subscribe","channel":"heartbeats","jwt":"a.b.c"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"level2","jwt":"a.b.c"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades","jwt":"a.b.c"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"ticker","jwt":"a.b.c"}"#,
            ]
        );
        assert_eq!(plans[0].url, "wss://x");
        assert_eq!(plans[0].depth_symbols, ["BTC-USD", "ETH-USD"]);
        assert_eq!(
            resubscribe(Api::AdvancedTrade, "BTC-USD", None),
            [
                r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}"#,
            ]
        );
    }

    #[test]
    fn exchange_subscribes_once() {
        let plans = connections(
            Api::Exchange,
            &instruments(),
            "wss://x",
            &["BTC-USD".to_owned()],
            None,
        );
        assert_eq!(
            plans[0].subscribe[0].message,
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch","matches","ticker","heartbeat"]}"#
        );
        assert_eq!(plans[0].subscribe[0].streams.len(), 4);
        assert_eq!(
            resubscribe(Api::Exchange, "BTC-USD", None)[0],
            r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2_batch"]}"#
        );
    }
}
