//! Kraken subscriptions: one connection, `book` (depth 1000) and `trade`
//! for the pairs, in requests of at most 50 pairs. WebSocket v1 at a base
//! URL without `/v2`, v2 (`{"method":"subscribe","params":..}`,
//! `{"method":"ping"}`) at one ending in `/v2`.

use std::fmt::Write as _;

use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Book depth subscribed (10, 25, 100, 500 or 1000).
pub const BOOK_DEPTH: u32 = 1000;
/// Pairs per subscribe request.
const PAIRS_PER_REQUEST: usize = 50;

/// Whether a connection URL speaks WebSocket v2.
pub(super) fn is_v2(url: &str) -> bool {
    url.trim_end_matches('/').ends_with("/v2")
}

fn pair_list(pairs: &[String]) -> String {
    let mut m = String::new();
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push('"');
        m.extend(p.chars().filter(|c| *c != '"' && *c != '\\'));
        m.push('"');
    }
    m
}

fn request(
    v2: bool,
    subscribe: bool,
    name: &str,
    depth: Option<u32>,
    pairs: &[String],
    reqid: u64,
) -> String {
    let list = pair_list(pairs);
    if v2 {
        let method = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let mut m =
            format!(r#"{{"method":"{method}","params":{{"channel":"{name}","symbol":[{list}]"#);
        if let Some(d) = depth {
            let _ = write!(m, r#","depth":{d}"#);
        }
        let _ = write!(m, r#"}},"req_id":{reqid}}}"#);
        return m;
    }
    let event = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    let mut m = format!(
        r#"{{"event":"{event}","reqid":{reqid},"pair":[{list}],"subscription":{{"name":"{name}""#
    );
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
    let v2 = is_v2(base);
    let mut subscribe = Vec::new();
    let mut id = 0u64;
    for chunk in pairs.chunks(PAIRS_PER_REQUEST) {
        for (name, depth) in [("book", Some(BOOK_DEPTH)), ("trade", None)] {
            id += 1;
            subscribe.push(Subscribe {
                id,
                message: request(v2, true, name, depth, chunk, id),
                streams: chunk.iter().map(|p| format!("{name}:{p}")).collect(),
            });
        }
    }
    vec![ConnectionPlan {
        label: if v2 { "v2" } else { "" },
        url: base.trim_end_matches('/').to_owned(),
        subscribe,
        depth_symbols: pairs,
        ping_text: v2.then_some(r#"{"method":"ping"}"#),
    }]
}

/// Unsubscribe then subscribe the book of one pair (its recovery).
pub(super) fn resubscribe(plan: &ConnectionPlan, symbol: &str) -> Vec<String> {
    let v2 = is_v2(&plan.url);
    let pair = [symbol.to_ascii_uppercase()];
    vec![
        request(v2, false, "book", Some(BOOK_DEPTH), &pair, 0),
        request(v2, true, "book", Some(BOOK_DEPTH), &pair, 0),
    ]
}
