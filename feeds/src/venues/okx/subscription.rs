//! OKX v5 subscriptions: one connection, `books` and `trades` for the
//! instruments, at most 50 channel arguments per request.

use crate::instruments::Instruments;
use crate::venue::{ConnectionPlan, Subscribe};

/// Arguments per subscribe request.
const ARGS_PER_REQUEST: usize = 50;

fn request(op: &str, args: &[(&str, &str)]) -> String {
    let mut m = format!(r#"{{"op":"{op}","args":["#);
    for (i, (channel, inst)) in args.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        let inst: String = inst.chars().filter(|c| *c != '"' && *c != '\\').collect();
        m.push_str(&format!(r#"{{"channel":"{channel}","instId":"{inst}"}}"#));
    }
    m.push_str("]}");
    m
}

pub(super) fn connections(
    instruments: &Instruments,
    base: &str,
    symbols: &[String],
) -> Vec<ConnectionPlan> {
    let insts: Vec<String> = symbols
        .iter()
        .filter(|s| instruments.spec_for(s).is_some())
        .map(|s| s.to_ascii_uppercase())
        .collect();
    if insts.is_empty() {
        return Vec::new();
    }
    let args: Vec<(&str, &str)> = insts
        .iter()
        .flat_map(|i| [("books", i.as_str()), ("trades", i.as_str())])
        .collect();
    let subscribe = args
        .chunks(ARGS_PER_REQUEST)
        .zip(1u64..)
        .map(|(chunk, id)| Subscribe {
            id,
            message: request("subscribe", chunk),
            streams: chunk.iter().map(|(c, i)| format!("{c}:{i}")).collect(),
        })
        .collect();
    vec![ConnectionPlan {
        label: "",
        url: base.trim_end_matches('/').to_owned(),
        subscribe,
        depth_symbols: insts,
        ping_text: None,
    }]
}

/// Unsubscribe then subscribe the `books` channel of one instrument.
pub(super) fn resubscribe(symbol: &str) -> Vec<String> {
    let arg = [("books", symbol)];
    vec![request("unsubscribe", &arg), request("subscribe", &arg)]
}
