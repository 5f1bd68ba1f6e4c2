//! Kraken v1 subscriptions: one connection, `book` (depth 1000) and `trade`
//! for the pairs, in requests of at most 50 pairs.

use std::fmt::Write as _;

use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Book depth subscribed (10, 25, 100, 500 or 1000).
pub const BOOK_DEPTH: u32 = 1000;
/// Pairs per subscribe request.
const PAIRS_PER_REQUEST: usize = 50;

fn request(event: &str, name: &str, depth: Option<u32>, pairs: &[String], reqid: u64) -> String {
    let mut m = format!(r#"{{"event":"{event}","reqid":{reqid},"pair":["#);
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push('"');
        m.extend(p.chars().filter(|c| *c != '"' && *c != '\\'));
        m.push('"');
    }
    let _ = write!(m, r#"],"subscription":{{"name":"{name}""#);
    if let Some(d) = depth {
        let _ = write!(m, r#","depth":{d}"#);
    }
    m.push_str("}}");
    m
}

pub(super) fn connections(
    instruments: &Instruments,
    base: &str,
    symbols: &[String],
) -> Vec<ConnectionPlan> {
    let pairs: Vec<String> = symbols
        .iter()
        .filter(|s| instruments.spec_for(s).is_some())
        .map(|s| s.to_ascii_uppercase())
        .collect();
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut subscribe = Vec::new();
    let mut id = 0u64;
    for chunk in pairs.chunks(PAIRS_PER_REQUEST) {
        for (name, depth) in [("book", Some(BOOK_DEPTH)), ("trade", None)] {
            id += 1;
            subscribe.push(Subscribe {
                id,
                message: request("subscribe", name, depth, chunk, id),
                streams: chunk.iter().map(|p| format!("{name}:{p}")).collect(),
            });
        }
    }
    vec![ConnectionPlan {
        label: "",
        url: base.trim_end_matches('/').to_owned(),
        subscribe,
        depth_symbols: pairs,
    }]
}

/// Unsubscribe then subscribe the book of one pair (its recovery).
pub(super) fn resubscribe(symbol: &str) -> Vec<String> {
    let pair = [symbol.to_ascii_uppercase()];
    vec![
        request("unsubscribe", "book", Some(BOOK_DEPTH), &pair, 0),
        request("subscribe", "book", Some(BOOK_DEPTH), &pair, 0),
    ]
}
