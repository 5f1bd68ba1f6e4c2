//! Shared captures of every registry venue, for the conformance tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use feeds::capture::CaptureReader;
use feeds::event::Scale;
use feeds::instruments::Instruments;
use feeds::venue::{venue_for_capture, VenueAdapter, VENUES};

/// One capture: its venue's registry index, `symbols=` header and records.
pub struct VenueCapture {
    pub path: PathBuf,
    pub venue: u16,
    pub symbols: Vec<String>,
    pub records: Vec<(i64, Vec<u8>)>,
}

/// Every `shared/data/*/*.txt.gz` whose header names a registered venue.
pub fn venue_captures(shared: &Path) -> Vec<VenueCapture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(shared.join("data"))
        .unwrap()
        .filter_map(|d| std::fs::read_dir(d.ok()?.path()).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".txt.gz"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let mut r = CaptureReader::open(&path).unwrap();
        let h = r.header();
        let Some((venue, _)) = h
            .venue
            .as_deref()
            .and_then(|v| venue_for_capture(v, h.get("url")))
        else {
            continue;
        };
        let symbols = h.symbols.clone();
        let mut records = Vec::new();
        while let Some(rec) = r.next_record() {
            let rec = rec.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            records.push((rec.recv_ns, rec.frame.to_vec()));
        }
        out.push(VenueCapture {
            path,
            venue,
            symbols,
            records,
        });
    }
    derive_missing(&mut out);
    out
}

/// Venues with no shared capture get one derived from another venue's:
/// Coinbase Advanced Trade from the Exchange feed's (the same books and
/// trades in Advanced Trade's shapes), Bybit inverse from linear's frames
/// (the same v5 contract shapes).
fn derive_missing(caps: &mut Vec<VenueCapture>) {
    let index = |name: &str| VENUES.iter().position(|v| v.name == name).map(|i| i as u16);
    if let (Some(inverse), Some(linear)) = (index("bybit-inverse"), index("bybit-linear")) {
        if !caps.iter().any(|c| c.venue == inverse) {
            let derived: Vec<VenueCapture> = caps
                .iter()
                .filter(|c| c.venue == linear)
                .map(|c| VenueCapture {
                    path: c.path.with_extension("inverse"),
                    venue: inverse,
                    symbols: c.symbols.clone(),
                    records: c.records.clone(),
                })
                .collect();
            caps.extend(derived);
        }
    }
    let (Some(at), Some(ex)) = (index("coinbase"), index("coinbase-exchange")) else {
        return;
    };
    if caps.iter().any(|c| c.venue == at) {
        return;
    }
    let derived: Vec<VenueCapture> = caps
        .iter()
        .filter(|c| c.venue == ex)
        .map(|c| {
            let header = format!("# symbols={}", c.symbols.join(","));
            let lines: Vec<String> = std::iter::once(header)
                .chain(
                    c.records
                        .iter()
                        .map(|(t, f)| format!("{t} {}", String::from_utf8_lossy(f))),
                )
                .collect();
            let text = super::coinbase_at::exchange_to_advanced(&lines, 0);
            let records = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (t, f) = l.split_once(' ')?;
                    Some((t.parse().ok()?, f.as_bytes().to_vec()))
                })
                .collect();
            VenueCapture {
                path: c.path.with_extension("advanced-trade"),
                venue: at,
                symbols: c.symbols.clone(),
                records,
            }
        })
        .collect();
    caps.extend(derived);
}

/// A fresh adapter of registry entry `venue`, accepting every symbol.
pub fn adapter(venue: u16) -> Box<dyn VenueAdapter> {
    let ids = Arc::new(AtomicU32::new(0));
    (VENUES[usize::from(venue)].new)(
        venue,
        Instruments::new(venue, vec![], Scale::default(), ids),
    )
}
