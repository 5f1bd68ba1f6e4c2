//! Replays the shared Binance spot capture through `CaptureReader` + `DepthSync`:
//! the book syncs once, never gaps, matches every bookTicker whose `u` is the
//! `u` of an applied diff (MANIFEST.md: 564 cross-checks, 0 failed; the ticker
//! usually arrives before the 100 ms diff that contains its update), and neither the
//! reader nor the book allocates per record / diff after warm-up (counting allocator).

mod common;

use common::shared_dir;
use std::collections::HashMap;

use feeds::book::{DepthSync, DiffOutcome, SnapshotOutcome};
use feeds::capture::CaptureReader;
use feeds::event::{BookSide, DepthHeader, InstrumentId, Level, SnapshotHeader};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

/// Counts allocations of the threads that opt in (tests run on parallel threads).
#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// Best level `(px, qty)`.
type Top = (i64, i64);

fn fixed(v: &BorrowedValue<'_>) -> i64 {
    feeds::fixed::parse(v.as_str().unwrap().as_bytes(), 8).unwrap()
}

fn push_levels(out: &mut Vec<Level>, side: BookSide, v: Option<&BorrowedValue<'_>>) {
    for l in v.and_then(|v| v.as_array()).into_iter().flatten() {
        let l = l.as_array().unwrap();
        out.push(Level {
            side,
            px: fixed(&l[0]),
            qty: fixed(&l[1]),
        });
    }
}

#[test]
fn binance_spot_capture_syncs_and_cross_checks() {
    let Some(shared) = shared_dir() else { return };
    let mut r =
        CaptureReader::open(&shared.join("data/binance-spot/btcusdt_20240808.txt.gz")).unwrap();
    let mut sync = DepthSync::new(4096, 1 << 16);
    let mut levels: Vec<Level> = Vec::with_capacity(8192);
    let (mut applied, mut stale, mut buffered, mut checks) = (0u64, 0u64, 0u64, 0u64);
    let mut sync_allocs = 0u64;
    let mut reader_allocs = 0u64;
    let mut records = 0u64;
    // bookTickers not yet covered by an applied diff: u -> (bid, ask).
    let mut tickers: HashMap<u64, (Top, Top)> = HashMap::new();
    let mut frame: Vec<u8> = Vec::with_capacity(1 << 17);
    loop {
        // Reader allocations after the first 1000 records (the copy into the
        // pre-sized `frame` does not allocate).
        let (item, n) = alloc_count::on_this_thread(|| {
            r.next_record().map(|x| {
                x.map(|rec| {
                    frame.clear();
                    frame.extend_from_slice(rec.frame);
                    rec.recv_ns
                })
            })
        });
        if records > 1000 {
            reader_allocs += n;
        }
        let Some(item) = item else { break };
        let recv_ns = item.unwrap();
        records += 1;
        let v = simd_json::to_borrowed_value(&mut frame).unwrap();
        let data = v.get("data").unwrap_or(&v);
        levels.clear();
        if data.get_str("e") == Some("depthUpdate") {
            push_levels(&mut levels, BookSide::Bid, data.get("b"));
            push_levels(&mut levels, BookSide::Ask, data.get("a"));
            let hdr = DepthHeader {
                inst: InstrumentId(0),
                first_id: data.get_u64("U").unwrap(),
                last_id: data.get_u64("u").unwrap(),
                prev_last_id: 0,
                ts_ns: data.get_i64("E").unwrap() * 1_000_000,
                recv_ns,
                levels: levels.len() as u32,
                checksum: None,
            };
            let (out, n) = alloc_count::on_this_thread(|| sync.on_diff(&hdr, &levels));
            match out {
                DiffOutcome::Applied => {
                    applied += 1;
                    sync_allocs += n;
                    if let Some((bid, ask)) = tickers.remove(&hdr.last_id) {
                        assert_eq!(
                            sync.book().best_bid(),
                            Some(bid),
                            "bookTicker u={}",
                            hdr.last_id
                        );
                        assert_eq!(
                            sync.book().best_ask(),
                            Some(ask),
                            "bookTicker u={}",
                            hdr.last_id
                        );
                        checks += 1;
                    }
                    tickers.retain(|&u, _| u > hdr.last_id);
                }
                DiffOutcome::Stale => stale += 1,
                DiffOutcome::Buffered => buffered += 1,
                DiffOutcome::Gap => panic!("gap at update {}", hdr.first_id),
                DiffOutcome::NotSynced => panic!("a REST-started book buffers"),
            }
            sync.book().check_invariants().unwrap();
        } else if let Some(id) = data.get_u64("lastUpdateId") {
            push_levels(&mut levels, BookSide::Bid, data.get("bids"));
            push_levels(&mut levels, BookSide::Ask, data.get("asks"));
            let hdr = SnapshotHeader {
                inst: InstrumentId(0),
                last_update_id: id,
                recv_ns,
                levels: levels.len() as u32,
                checksum: None,
                max_depth: 0,
                wire: feeds::instruments::NO_WIRE,
                from_rest: true,
            };
            let out = sync.on_snapshot(&hdr, &levels);
            assert!(matches!(out, SnapshotOutcome::Synced { .. }), "{out:?}");
            eprintln!("snapshot {id}: {out:?}, {buffered} diffs were buffered");
        } else if data.contains_key("B") && data.contains_key("A") && data.contains_key("u") {
            let u = data.get_u64("u").unwrap();
            let bid = (fixed(data.get("b").unwrap()), fixed(data.get("B").unwrap()));
            let ask = (fixed(data.get("a").unwrap()), fixed(data.get("A").unwrap()));
            if sync.is_synced() && u == sync.book_id() {
                assert_eq!(sync.book().best_bid(), Some(bid), "bookTicker u={u}");
                assert_eq!(sync.book().best_ask(), Some(ask), "bookTicker u={u}");
                checks += 1;
            } else if !sync.is_synced() || u > sync.book_id() {
                tickers.insert(u, (bid, ask));
            }
        }
    }
    eprintln!(
        "applied {applied}, stale {stale}, buffered {buffered}, cross-checks {checks}, \
         reader allocs after warm-up {reader_allocs}"
    );
    assert!(sync.is_synced());
    assert_eq!(r.stats().bad_records, 0);
    assert_eq!(
        applied + stale + buffered,
        3451,
        "MANIFEST: depth@100ms 3451"
    );
    assert!(applied > 3000);
    assert_eq!(checks, 564, "MANIFEST: bookTicker cross-checks 564/0");
    assert_eq!(sync.buffer_overflows(), 0);
    assert_eq!(
        sync_allocs, 0,
        "DepthSync allocated while applying live diffs"
    );
    assert_eq!(
        reader_allocs, 0,
        "reader allocated after warm-up ({records} records)"
    );
}
