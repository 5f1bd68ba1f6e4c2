//! A bot on the engine's host: subscribes to an engine's records over
//! iceoryx2 shared memory, names them through the engine's catalog, keeps
//! the latest value of every signal per instrument, notices lost rows
//! (sequence holes), and once a second prints a decision per instrument.
//!
//! ```text
//! cargo run --release -p engine --example iox_bot -- [service] [symbol|*] [signal,…|*] [seconds]
//! ```
//!
//! `service` defaults to `wiresignal/demo` (the engine's `wiresignal/<engine>`,
//! `config/demo-iox.toml`); `symbol` keeps one instrument (default `*`, all);
//! the signal list keeps only those signals (default `*`). The bot may start
//! before the engine: it then creates the services with the default settings.

mod bot;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use engine::sinks::iceoryx2::subscribe;
use engine::sinks::IoxSpec;
use iceoryx2::prelude::*;
use records::{Catalog, Record};

use bot::Book;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let service = args.next().unwrap_or_else(|| "wiresignal/demo".into());
    let symbol = args.next().filter(|s| s != "*");
    let signals: Option<Vec<String>> = args
        .next()
        .filter(|s| s != "*")
        .map(|s| s.split(',').map(str::to_owned).collect());
    let seconds: Option<u64> = args.next().and_then(|s| s.parse().ok());
    // Ctrl-C ends `node.wait` below, and the node cleans up after itself.
    let node = NodeBuilder::new()
        .name(&NodeName::new("iox_bot")?)
        .create::<ipc::Service>()?;
    let (rows, catalogs) = subscribe(&node, &service, &IoxSpec::default())?;
    eprintln!("iox_bot: service {service}, symbol {symbol:?}, signals {signals:?}");

    let mut books: BTreeMap<(String, String), Book> = BTreeMap::new();
    let mut catalog: Option<Catalog> = None;
    let (mut unnamed, mut bad) = (0u64, 0u64);
    let started = Instant::now();
    let mut tick = Instant::now() + Duration::from_secs(1);
    // A latency-critical bot busy-polls; this one naps 1 ms when idle.
    while node.wait(Duration::from_millis(1)).is_ok() {
        while let Some(s) = catalogs.receive()? {
            if let Ok(c) = Catalog::from_json(s.payload()) {
                catalog = Some(c);
            }
        }
        // Rows wait in the subscriber's buffer until the catalog names them
        // (a new subscriber gets it with the engine's next batch).
        let named = catalog.is_some() || started.elapsed() > Duration::from_secs(2);
        while let Some(s) = if named { rows.receive()? } else { None } {
            let Ok(r) = Record::decode(s.payload()) else {
                bad += 1;
                continue;
            };
            let mut names = catalog
                .as_ref()
                .and_then(|c| c.names(r.instrument, r.signal));
            if names.is_none() {
                // A new instrument: its catalog was published before its rows.
                if let Some(s) = catalogs.receive()? {
                    catalog = Catalog::from_json(s.payload()).ok().or(catalog);
                }
                names = catalog
                    .as_ref()
                    .and_then(|c| c.names(r.instrument, r.signal));
            }
            let Some((venue, sym, signal)) = names else {
                unnamed += 1;
                continue;
            };
            if symbol.as_deref().is_some_and(|want| want != sym) {
                continue;
            }
            let book = books.entry((venue.to_owned(), sym.to_owned())).or_default();
            book.sequence(r.seq);
            if signals
                .as_ref()
                .is_some_and(|keep| !keep.iter().any(|k| k == signal))
            {
                continue;
            }
            book.set(signal, r.value);
        }
        if Instant::now() >= tick {
            tick += Duration::from_secs(1);
            for ((venue, symbol), b) in &books {
                println!("{}", b.line(venue, symbol));
            }
            if unnamed + bad > 0 {
                println!("({unnamed} records not in the catalog, {bad} not records)");
            }
            if seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
                break;
            }
        }
    }
    Ok(())
}
