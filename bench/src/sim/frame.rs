//! Sans-IO classification of source frames and the simulator's depth book.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fixed8::parse_fixed8;

/// Stream kinds the simulator can route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `<sym>@trade`
    Trade,
    /// `<sym>@aggTrade`
    AggTrade,
    /// `<sym>@bookTicker`
    BookTicker,
    /// `<sym>@depth`, `<sym>@depth@100ms`, `<sym>@depth@1000ms`
    Depth,
}

/// A parsed subscription stream name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamKey {
    /// Lower-case symbol.
    pub symbol: String,
    /// Routed kind; `None` for streams the simulator never produces.
    pub kind: Option<Kind>,
}

/// Parses a stream name such as `btcusdt@depth@100ms`.
pub fn parse_stream(name: &str) -> StreamKey {
    let (sym, rest) = name.split_once('@').unwrap_or((name, ""));
    let kind = match rest.to_ascii_lowercase().as_str() {
        "trade" => Some(Kind::Trade),
        "aggtrade" => Some(Kind::AggTrade),
        "bookticker" => Some(Kind::BookTicker),
        "depth" | "depth@100ms" | "depth@1000ms" => Some(Kind::Depth),
        _ => None,
    };
    StreamKey {
        symbol: sym.to_ascii_lowercase(),
        kind,
    }
}

/// Price levels of a diff or snapshot: (price key, price text, qty text).
pub type Levels = Vec<(i64, String, String)>;

/// What a source record is.
#[derive(Debug)]
pub enum Class {
    /// A stream frame routed to `<symbol>@<kind>` subscribers.
    Stream {
        /// Routed kind.
        kind: Kind,
        /// Lower-case symbol.
        symbol: String,
        /// Depth diffs: `(U, u, bids, asks)`.
        depth: Option<(u64, u64, Levels, Levels)>,
    },
    /// A REST depth snapshot body (`lastUpdateId`, `bids`, `asks`).
    Snapshot {
        /// Upper-case symbol when the frame names one (`symbol`/`s` field or
        /// wrapper stream); else the source's single symbol applies.
        symbol: Option<String>,
        /// `lastUpdateId`.
        last_update_id: u64,
        /// Bids best first.
        bids: Levels,
        /// Asks best first.
        asks: Levels,
    },
    /// Anything else (acks, unsupported streams, invalid JSON): not sent.
    Other,
}

/// A classified frame: the byte range of the payload (`data` of a wrapper,
/// or the whole frame) and the wrapper's stream name, if any.
#[derive(Debug)]
pub struct Classified {
    /// Payload byte range inside the frame text.
    pub payload: Range<usize>,
    /// Stream name of a combined-stream wrapper.
    pub wrapper_stream: Option<String>,
    /// Classification.
    pub class: Class,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    e: Option<Cow<'a, str>>,
    #[serde(borrow)]
    s: Option<Cow<'a, str>>,
    #[serde(borrow)]
    symbol: Option<Cow<'a, str>>,
    #[serde(rename = "U")]
    first_id: Option<u64>,
    u: Option<u64>,
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<u64>,
    #[serde(borrow)]
    b: Option<&'a RawValue>,
    #[serde(borrow, rename = "B")]
    bq: Option<&'a RawValue>,
    #[serde(borrow)]
    a: Option<&'a RawValue>,
    #[serde(borrow, rename = "A")]
    aq: Option<&'a RawValue>,
    #[serde(borrow)]
    bids: Option<&'a RawValue>,
    #[serde(borrow)]
    asks: Option<&'a RawValue>,
}

fn levels(raw: Option<&RawValue>) -> Option<Levels> {
    let v: Vec<(Cow<'_, str>, Cow<'_, str>)> = serde_json::from_str(raw?.get()).ok()?;
    v.into_iter()
        .map(|(p, q)| Some((parse_fixed8(&p)?, p.into_owned(), q.into_owned())))
        .collect()
}

/// `@depth<digits>` partial-depth streams carry snapshots that are not REST
/// snapshots.
fn is_partial_depth(stream: &str) -> bool {
    stream
        .split_once("@depth")
        .is_some_and(|(_, rest)| rest.as_bytes().first().is_some_and(u8::is_ascii_digit))
}

/// Classifies a source frame. Never panics; unknown input is [`Class::Other`].
pub fn classify(frame: &str) -> Classified {
    let mut out = Classified {
        payload: 0..frame.len(),
        wrapper_stream: None,
        class: Class::Other,
    };
    let Ok(probe) = serde_json::from_str::<Probe<'_>>(frame) else {
        return out;
    };
    let payload_text = match (probe.stream, probe.data) {
        (Some(stream), Some(data)) => {
            let text = data.get();
            let start = text.as_ptr() as usize - frame.as_ptr() as usize;
            out.payload = start..start + text.len();
            out.wrapper_stream = Some(stream.into_owned());
            text
        }
        _ => frame,
    };
    let Ok(p) = serde_json::from_str::<Payload<'_>>(payload_text) else {
        return out;
    };
    let wrapper_symbol = out
        .wrapper_stream
        .as_deref()
        .map(|s| s.split('@').next().unwrap_or(s).to_ascii_uppercase());
    let sym = p.s.as_deref().map(str::to_ascii_lowercase);
    out.class = match (p.e.as_deref(), sym) {
        (Some("trade"), Some(symbol)) => Class::Stream {
            kind: Kind::Trade,
            symbol,
            depth: None,
        },
        (Some("aggTrade"), Some(symbol)) => Class::Stream {
            kind: Kind::AggTrade,
            symbol,
            depth: None,
        },
        (Some("bookTicker"), Some(symbol)) => Class::Stream {
            kind: Kind::BookTicker,
            symbol,
            depth: None,
        },
        (Some("depthUpdate"), Some(symbol)) => match (p.first_id, p.u, levels(p.b), levels(p.a)) {
            (Some(first), Some(last), Some(b), Some(a)) => Class::Stream {
                kind: Kind::Depth,
                symbol,
                depth: Some((first, last, b, a)),
            },
            _ => Class::Other,
        },
        (None, Some(symbol))
            if p.u.is_some()
                && p.b.is_some()
                && p.bq.is_some()
                && p.a.is_some()
                && p.aq.is_some() =>
        {
            Class::Stream {
                kind: Kind::BookTicker,
                symbol,
                depth: None,
            }
        }
        (None, _)
            if p.last_update_id.is_some()
                && !out.wrapper_stream.as_deref().is_some_and(is_partial_depth) =>
        {
            match (p.last_update_id, levels(p.bids), levels(p.asks)) {
                (Some(id), Some(bids), Some(asks)) => Class::Snapshot {
                    symbol: p
                        .symbol
                        .as_deref()
                        .or(p.s.as_deref())
                        .map(str::to_ascii_uppercase)
                        .or(wrapper_symbol),
                    last_update_id: id,
                    bids,
                    asks,
                },
                _ => Class::Other,
            }
        }
        _ => Class::Other,
    };
    out
}

/// The simulator's own depth book of one symbol, built from the source's
/// snapshot record and the diffs played since (Binance's U/u procedure).
#[derive(Debug, Default)]
pub struct SimBook {
    synced: bool,
    id: u64,
    bids: BTreeMap<i64, (String, String)>,
    asks: BTreeMap<i64, (String, String)>,
    buffer: Vec<(u64, Levels, Levels)>,
}

impl SimBook {
    /// Whether the source's snapshot has been played.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Last applied update id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Loads a snapshot and replays buffered diffs newer than it.
    pub fn snapshot(&mut self, last_update_id: u64, bids: Levels, asks: Levels) {
        self.bids.clear();
        self.asks.clear();
        for (k, p, q) in bids {
            if parse_fixed8(&q).is_some_and(|v| v > 0) {
                self.bids.insert(k, (p, q));
            }
        }
        for (k, p, q) in asks {
            if parse_fixed8(&q).is_some_and(|v| v > 0) {
                self.asks.insert(k, (p, q));
            }
        }
        self.id = last_update_id;
        self.synced = true;
        for (u, b, a) in std::mem::take(&mut self.buffer) {
            self.apply(u, b, a);
        }
    }

    /// Applies (or buffers, before the snapshot) one diff. Diffs with
    /// `u <= id` are stale and ignored. Gaps are not checked: the source is
    /// the truth, whatever it contains.
    pub fn diff(&mut self, _first: u64, last: u64, bids: Levels, asks: Levels) {
        if !self.synced {
            self.buffer.push((last, bids, asks));
            return;
        }
        self.apply(last, bids, asks);
    }

    fn apply(&mut self, u: u64, bids: Levels, asks: Levels) {
        if u <= self.id {
            return;
        }
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for (k, p, q) in levels {
                if parse_fixed8(&q).is_some_and(|v| v > 0) {
                    side.insert(k, (p, q));
                } else {
                    side.remove(&k);
                }
            }
        }
        self.id = u;
    }

    /// REST body `{"lastUpdateId":id,"bids":[..],"asks":[..]}`, best first.
    pub fn render(&self, limit: usize) -> String {
        let mut out = String::with_capacity(64 + limit.min(self.bids.len() + self.asks.len()) * 36);
        out.push_str("{\"lastUpdateId\":");
        out.push_str(itoa::Buffer::new().format(self.id));
        out.push_str(",\"bids\":[");
        let level = |out: &mut String, n: usize, (p, q): &(String, String)| {
            if n > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            out.push_str(p);
            out.push_str("\",\"");
            out.push_str(q);
            out.push_str("\"]");
        };
        for (n, l) in self.bids.values().rev().take(limit).enumerate() {
            level(&mut out, n, l);
        }
        out.push_str("],\"asks\":[");
        for (n, l) in self.asks.values().take(limit).enumerate() {
            level(&mut out, n, l);
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_wrapped_and_raw() {
        let f = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00000000","q":"1.00000000","T":1,"m":true,"M":true}}"#;
        let c = classify(f);
        assert_eq!(c.wrapper_stream.as_deref(), Some("btcusdt@trade"));
        assert!(f[c.payload.clone()].starts_with(r#"{"e":"trade""#));
        assert!(matches!(
            c.class,
            Class::Stream {
                kind: Kind::Trade,
                ..
            }
        ));
        let bt = r#"{"u":5,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.1","A":"3.0"}"#;
        let c = classify(bt);
        assert_eq!(c.payload, 0..bt.len());
        assert!(matches!(
            c.class,
            Class::Stream {
                kind: Kind::BookTicker,
                ..
            }
        ));
        let snap = r#"{"lastUpdateId":9,"bids":[["1.0","2.0"]],"asks":[["1.1","0.5"]]}"#;
        match classify(snap).class {
            Class::Snapshot {
                symbol: None,
                last_update_id: 9,
                bids,
                asks,
            } => {
                assert_eq!(bids.len(), 1);
                assert_eq!(asks[0].1, "1.1");
            }
            other => panic!("{other:?}"),
        }
        let partial =
            r#"{"stream":"btcusdt@depth5","data":{"lastUpdateId":9,"bids":[],"asks":[]}}"#;
        assert!(matches!(classify(partial).class, Class::Other));
        assert!(matches!(classify("not json").class, Class::Other));
        assert!(matches!(
            classify(r#"{"result":null,"id":1}"#).class,
            Class::Other
        ));
    }

    #[test]
    fn stream_names() {
        assert_eq!(parse_stream("btcusdt@depth@100ms").kind, Some(Kind::Depth));
        assert_eq!(parse_stream("BTCUSDT@bookTicker").symbol, "btcusdt");
        assert_eq!(parse_stream("btcusdt@aggTrade").kind, Some(Kind::AggTrade));
        assert_eq!(parse_stream("btcusdt@depth5").kind, None);
        assert_eq!(parse_stream("btcusdt@kline_1m").kind, None);
    }
}
