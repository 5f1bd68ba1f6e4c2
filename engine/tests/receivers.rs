//! Several receivers feeding one signal thread: the processor holds one
//! depth/snapshot message in progress, so a message whose levels reach it in
//! pieces (pushed event by event with several signal threads, or split by a
//! full ring or the 1024-slot drain) must be finished before another
//! receiver's events run.

mod common;

use std::collections::BTreeMap;

use common::{read_lines, temp_dir};
use engine::app::Output;
use engine::config::Config;
use feeds::event::{BookSide, DepthHeader, Event, InstrumentInfo, Level, SnapshotHeader, Symbol};
use feeds::InstrumentId;
use serde_json::Value;

/// Diffs per instrument after its snapshot; each also rewrites `PAD` levels
/// per side deep in the book, so its levels take many ring slots.
const DIFFS: i64 = 400;
const PAD: i64 = 30;

/// The snapshot of instrument `id`: bid `base - 1`, ask `base + 1` and the
/// deep levels.
fn snapshot(id: u32) -> Vec<Event> {
    let mid = base(id);
    let mut levels = vec![bid(mid - 1, 1), ask(mid + 1, 1)];
    levels.extend(deep(mid, 1));
    let mut ev = vec![Event::Snapshot(SnapshotHeader {
        inst: InstrumentId(id),
        last_update_id: 1,
        recv_ns: 1,
        levels: u32::try_from(levels.len()).unwrap(),
        checksum: None,
        max_depth: 0,
        wire: feeds::instruments::NO_WIRE,
        from_rest: false,
    })];
    ev.extend(levels.into_iter().map(Event::Level));
    ev
}

/// `PAD` levels per side far from the top, all of size `qty`.
fn deep(mid: i64, qty: i64) -> impl Iterator<Item = Level> {
    (0..PAD).flat_map(move |j| [bid(mid - 10_000 - j, qty), ask(mid + 10_000 + j, qty)])
}

fn bid(px: i64, qty: i64) -> Level {
    Level {
        side: BookSide::Bid,
        px,
        qty,
    }
}

fn ask(px: i64, qty: i64) -> Level {
    Level {
        side: BookSide::Ask,
        px,
        qty,
    }
}

/// Diff `k` (from 1) of instrument `id`: the top moves up one tick, so the
/// mid becomes exactly `base(id) + k`.
fn diff(id: u32, k: i64) -> Vec<Event> {
    let mid = base(id) + k;
    let mut levels = vec![
        bid(mid - 1, 1),
        bid(mid - 2, 0),
        ask(mid, 0),
        ask(mid + 1, 1),
    ];
    levels.extend(deep(base(id), k + 1));
    let id_u = u64::try_from(k + 1).unwrap();
    let mut ev = vec![Event::Depth(DepthHeader {
        inst: InstrumentId(id),
        first_id: id_u,
        last_id: id_u,
        prev_last_id: id_u - 1,
        ts_ns: 1,
        recv_ns: 1,
        levels: u32::try_from(levels.len()).unwrap(),
        checksum: None,
    })];
    ev.extend(levels.into_iter().map(Event::Level));
    ev
}

fn base(id: u32) -> i64 {
    1_000_000 * (i64::from(id) + 1)
}

/// Two receivers, two instruments (ids 0 and 2) on the same one of two
/// signal threads, each receiver pushing its snapshots while the other does:
/// the `mid` rows of each instrument are exactly its own diffs' mids, one per
/// diff, in order. A level of one receiver's diff applied under the other's
/// header shows up as a foreign or missing mid (it did before the fix: the
/// signal thread read a receiver's half-pushed diff, then the other ring).
#[test]
fn a_half_pushed_message_is_never_mixed_with_another_receivers() {
    for placement in ["threads", "adaptive"] {
        let dir = temp_dir(&format!("receivers-{placement}"));
        let out = dir.join("rows.jsonl");
        let toml = format!(
            "[engine]\nsignal_threads = 2\nsignal_placement = \"{placement}\"\n\
             ring_capacity = 64\n"
        );
        let mut cfg = Config::from_toml_str(&toml, "test").unwrap();
        cfg.engine.pin_cores = Some(false);
        let mut pipeline =
            engine::app::start_pipeline_with(&cfg, 2, Output::File(out.clone()), None, None, false)
                .unwrap();
        let (venue, _) = feeds::venue::venue_by_name("kraken").unwrap();
        let txs: Vec<_> = pipeline.txs.drain(..).collect();
        std::thread::scope(|s| {
            for (tx, id) in txs.into_iter().zip([0u32, 2]) {
                s.spawn(move || {
                    let mut tx = tx;
                    let info = InstrumentInfo {
                        inst: InstrumentId(id),
                        venue,
                        symbol: Symbol::new(&format!("S{id}")).unwrap(),
                        scale: signals::Scale {
                            price_decimals: 0,
                            qty_decimals: 0,
                        },
                        wire: feeds::instruments::NO_WIRE,
                    };
                    tx.send_frame(&[Event::Instrument(info)], 1, 1);
                    tx.send_frame(&snapshot(id), 1, 1);
                    for k in 1..=DIFFS {
                        tx.send_frame(&diff(id, k), 1, 1);
                    }
                });
            }
        });
        pipeline.finish().unwrap();
        let mut mids: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for l in read_lines(&out) {
            let r: Value = serde_json::from_str(&l).unwrap();
            if r["signal"] == "mid" {
                let v = r["value"].as_f64().unwrap();
                mids.entry(r["symbol"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(v);
            }
        }
        for id in [0u32, 2] {
            #[allow(clippy::cast_precision_loss)]
            let want: Vec<f64> = (1..=DIFFS).map(|k| (base(id) + k) as f64).collect();
            let got = mids.get(&format!("S{id}")).cloned().unwrap_or_default();
            assert_eq!(got, want, "{placement}: S{id}");
        }
    }
}

/// Adaptive, one receiver and a slow processor (`debug_signal_delay_ns`):
/// frames sent one per wake-up each run on the receiver (nothing reaches the
/// ring), but within one receive batch the receiver stops running frames
/// itself once it has spent `EventTx::HERE_BUDGET_NS`, and the rest of the
/// batch goes through the ring. Either way each diff's mid comes out once,
/// in order.
#[test]
fn an_adaptive_receiver_falling_behind_hands_its_batch_to_the_ring() {
    let dir = temp_dir("receivers-budget");
    let out = dir.join("rows.jsonl");
    // 2 µs per event: a diff (65 events) takes ~130 µs, above the budget.
    let toml = "[engine]\nsignal_threads = 1\nsignal_placement = \"adaptive\"\n\
                ring_capacity = 8192\ndebug_signal_delay_ns = 2000\n";
    let mut cfg = Config::from_toml_str(toml, "test").unwrap();
    cfg.engine.pin_cores = Some(false);
    let mut pipeline =
        engine::app::start_pipeline_with(&cfg, 1, Output::File(out.clone()), None, None, false)
            .unwrap();
    let registry = pipeline.registry.clone();
    let high_water = || -> i64 {
        registry
            .rings()
            .iter()
            .map(|(_, r)| r.high_water.get())
            .max()
            .unwrap_or(0)
    };
    let mut tx = pipeline.txs.remove(0);
    let (venue, _) = feeds::venue::venue_by_name("kraken").unwrap();
    let info = InstrumentInfo {
        inst: InstrumentId(0),
        venue,
        symbol: Symbol::new("S0").unwrap(),
        scale: signals::Scale {
            price_decimals: 0,
            qty_decimals: 0,
        },
        wire: feeds::instruments::NO_WIRE,
    };
    tx.send_frame(&[Event::Instrument(info)], 1, 1);
    tx.send_frame(&snapshot(0), 1, 1);
    const HALF: i64 = DIFFS / 8;
    for k in 1..=HALF {
        tx.send_frame(&diff(0, k), 1, 1);
    }
    assert_eq!(high_water(), 0, "lone frames all ran on the receiver");
    tx.begin_batch();
    for k in HALF + 1..=2 * HALF {
        tx.send_frame(&diff(0, k), 1, 1);
    }
    tx.end_batch();
    drop(tx);
    pipeline.finish().unwrap();
    assert!(
        high_water() > 0,
        "the batch beyond the budget went through the ring"
    );
    let mids: Vec<f64> = read_lines(&out)
        .iter()
        .filter_map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (r["signal"] == "mid").then(|| r["value"].as_f64().unwrap())
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let want: Vec<f64> = (1..=2 * HALF).map(|k| (base(0) + k) as f64).collect();
    assert_eq!(mids, want);
}
