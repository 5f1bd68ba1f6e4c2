//! NATS subjects: `wiresignal.<venue>.<symbol>.<signal>`.
//!
//! A token never contains what NATS reads as structure: `.` (the token
//! separator), `*` and `>` (wildcards), whitespace, or control characters
//! are each mapped to `_`, so `bb_20_2.upper` is published under
//! `wiresignal.binance-spot.BTCUSDT.bb_20_2_upper`. Everything else stays
//! as it is (`BTC-USD`, Kraken's `BTC/USD`, letter case).

/// First token of every subject the engine publishes.
pub const SUBJECT_PREFIX: &str = "wiresignal";

/// `s` as one NATS subject token (see the module docs).
#[must_use]
pub fn subject_token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "_".to_owned()
    } else {
        t
    }
}

/// The subject of an engine's retained [`Catalog`](crate::Catalog):
/// `wiresignal._catalog.<engine>`.
#[must_use]
pub fn catalog_subject(engine: &str) -> String {
    format!("{SUBJECT_PREFIX}._catalog.{}", subject_token(engine))
}

/// The subject of a row: `wiresignal.<venue>.<symbol>.<signal>`.
///
/// ```
/// assert_eq!(
///     records::subject("binance-spot", "BTCUSDT", "bb_20_2.upper"),
///     "wiresignal.binance-spot.BTCUSDT.bb_20_2_upper"
/// );
/// ```
#[must_use]
pub fn subject(venue: &str, symbol: &str, signal: &str) -> String {
    format!(
        "{SUBJECT_PREFIX}.{}.{}.{}",
        subject_token(venue),
        subject_token(symbol),
        subject_token(signal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_wildcards_are_mapped() {
        assert_eq!(subject_token("BTC/USD"), "BTC/USD");
        assert_eq!(subject_token("a.b*c>d e\tf"), "a_b_c_d_e_f");
        assert_eq!(subject_token(""), "_");
        assert_eq!(
            subject("kraken", "XBT.USD", "ema_10"),
            "wiresignal.kraken.XBT_USD.ema_10"
        );
    }
}
