//! A bot on another machine: subscribes to an engine's signals over NATS,
//! keeps the latest value of every signal per instrument, notices lost rows
//! (sequence holes), and once a second prints a decision per instrument.
//!
//! ```text
//! cargo run --release -p engine --example nats_bot -- [nats://127.0.0.1:4222] [subject] [seconds]
//! ```
//!
//! `subject` defaults to `wiresignal.>` (everything; e.g.
//! `wiresignal.binance-spot.BTCUSDT.*` for one instrument). Both payload
//! formats are understood: JSON rows, and binary records named by the
//! engines' catalogs (`wiresignal._catalog.<engine>`).

mod bot;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use records::{Catalog, Record};

use bot::Book;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let filter = args.next().unwrap_or_else(|| "wiresignal.>".into());
    let seconds: Option<u64> = args.next().and_then(|s| s.parse().ok());
    let client = async_nats::connect(url.as_str()).await?;
    let mut rows = client.subscribe(filter.clone()).await?;
    let mut catalogs = client.subscribe("wiresignal._catalog.*").await?;
    eprintln!("nats_bot: {url}, subject {filter}");

    let mut books: BTreeMap<(String, String), Book> = BTreeMap::new();
    let mut names: BTreeMap<String, Catalog> = BTreeMap::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(m) = catalogs.next() => {
                if let Ok(c) = Catalog::from_json(&m.payload) {
                    names.insert(c.engine.clone(), c);
                }
            }
            Some(m) = rows.next() => {
                if m.subject.starts_with("wiresignal._catalog.") {
                    continue;
                }
                let seq = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Wiresignal-Seq"))
                    .and_then(|v| v.as_str().parse::<u64>().ok());
                // Names from the subject: wiresignal.<venue>.<symbol>.<signal>.
                let mut parts = m.subject.splitn(4, '.').skip(1);
                let (Some(venue), Some(symbol)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let value = match serde_json::from_slice::<serde_json::Value>(&m.payload) {
                    Ok(row) => row["value"].as_f64().zip(row["signal"].as_str().map(str::to_owned)),
                    // Not JSON: a binary record, named by its engine's catalog.
                    Err(_) => Record::decode(&m.payload).ok().and_then(|r| {
                        names.values().find_map(|c| c.names(r.instrument, r.signal))
                            .map(|(_, _, s)| (r.value, s.to_owned()))
                    }),
                };
                let Some((value, signal)) = value else { continue };
                let book = books.entry((venue.to_owned(), symbol.to_owned())).or_default();
                if let Some(seq) = seq {
                    book.sequence(seq);
                }
                book.set(&signal, value);
            }
            _ = tick.tick() => {
                for ((venue, symbol), b) in &books {
                    println!("{}", b.line(venue, symbol));
                }
                if seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
                    return Ok(());
                }
            }
        }
    }
}
