//! Stream names, URLs and REST paths of the Binance markets.

use std::fmt::Write as _;

use crate::event::TradeKind;
use crate::instruments::Instruments;

/// Diff-depth stream subscribed (every market offers the 100 ms speed).
pub const DEPTH_STREAM: &str = "depth@100ms";

/// Stream names for `symbols`: the configured trade source, `bookTicker` and
/// the 100 ms diff-depth stream per symbol. Symbols the registry does not
/// accept are left out.
pub(super) fn streams(instruments: &Instruments, symbols: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(symbols.len() * 3);
    for sym in symbols {
        let Some(spec) = instruments.spec_for(sym) else {
            continue;
        };
        let lower = sym.to_ascii_lowercase();
        let trade = match spec.trade_source {
            TradeKind::Trade => "trade",
            TradeKind::AggTrade => "aggTrade",
        };
        out.push(format!("{lower}@{trade}"));
        out.push(format!("{lower}@bookTicker"));
        out.push(format!("{lower}@{DEPTH_STREAM}"));
    }
    out
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

/// `/api/v3/depth?symbol=BTCUSDT&limit=1000` (the market's route).
pub(super) fn snapshot_path(route: &str, symbol: &str, limit: u32) -> String {
    format!(
        "{route}?symbol={}&limit={limit}",
        symbol.to_ascii_uppercase()
    )
}
