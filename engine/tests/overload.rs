//! Issue 13 acceptance: a live run over loopback with a deliberately slowed
//! signal stage (`debug_signal_delay_ns`) and small rings. With `overload =
//! "merge"` the receiver keeps reading: diffs merge and quotes conflate in
//! the overflow stage, yet no trade is dropped and no book is corrupted
//! (the final books equal a replay's, no gap or failed check is counted).

mod common;

use common::{run_feed, spot_slice, start_sim, temp_dir};
use engine::config::Speed;
use serde_json::Value;

/// Small rings and a slow signal thread: the ring is full most of the run.
const SLOW: &str = "ring_capacity = 256\nsignal_threads = 1\ndebug_signal_delay_ns = 20000\n";
/// Threads mode: every frame goes through the ring.
const THREADS: &str = "signal_placement = \"threads\"\n";

/// The stats of a live run over the simulator serving the first `lines`
/// of the spot capture (engine settings `engine`), and of its replay.
fn live_and_replay(name: &str, lines: usize, engine: &str) -> Option<(Value, Value)> {
    let dir = temp_dir(name);
    let slice = spot_slice(&dir, lines)?;
    let sim = start_sim(&slice, bench::sim::Faults::default());
    let live = run_feed(
        &sim,
        &dir.join("live.jsonl"),
        engine,
        "",
        "binance-spot",
        "BTCUSDT",
        true,
    );
    sim.shutdown().unwrap();
    let replay = common::replay_toml("", &slice, &dir.join("replay.jsonl"), Speed::Max);
    Some((live, replay))
}

#[test]
fn slowed_signal_stage_merges_and_conflates_but_drops_no_trade_and_corrupts_no_book() {
    let Some((live, replay)) = live_and_replay("overload-slow", 6000, &format!("{SLOW}{THREADS}"))
    else {
        return;
    };

    let o = &live["overload"];
    let inst = "binance-spot:BTCUSDT";
    eprintln!(
        "overload {o}; ring_full_waits {}; live book_updates {} trades {}; replay book_updates {} trades {}",
        live["ring_full_waits"],
        live["instruments"][inst]["book_updates"],
        live["instruments"][inst]["trades"],
        replay["instruments"][inst]["book_updates"],
        replay["instruments"][inst]["trades"],
    );
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    // The path was exercised: the ring was full and the stage did its work.
    assert!(
        n(&live["ring_full_waits"]) + n(&o["staged_events"]) > 0,
        "{o}"
    );
    assert!(n(&o["diffs_merged"]) > 0, "{o}");
    assert!(n(&o["quotes_conflated"]) > 0, "{o}");
    assert!(
        n(&o["stage_high_water"]) <= 256,
        "the stage never grows past its capacity: {o}"
    );
    no_trade_dropped_no_book_corrupted(&live, &replay, 1000);
    let (l, r) = (&live["instruments"][inst], &replay["instruments"][inst]);
    // Merged diffs are fewer book updates than the capture's diffs.
    assert!(n(&l["book_updates"]) < n(&r["book_updates"]), "{l} {r}");
}

/// What a slowed signal stage must never do, live against its replay: drop a
/// trade (the capture has more than `min_trades`), corrupt a book (a gap,
/// resync or failed check, or a final book other than the replay's), grow a
/// ring, or fail a parse.
fn no_trade_dropped_no_book_corrupted(live: &Value, replay: &Value, min_trades: u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    for (name, r) in live["rings"].as_object().unwrap() {
        assert!(n(&r["high_water"]) <= n(&r["capacity"]), "{name}: {r}");
    }
    let inst = "binance-spot:BTCUSDT";
    let (l, r) = (&live["instruments"][inst], &replay["instruments"][inst]);
    // No trade dropped: every trade of the capture reached the signals.
    assert!(n(&r["trades"]) > min_trades, "{r}");
    assert_eq!(l["trades"], r["trades"], "trades");
    // No book corrupted: no gap, resync or failed check, and the final book
    // is the replay's.
    for k in ["gaps", "resyncs", "checksum_failed", "crosscheck_failed"] {
        assert_eq!(n(&l[k]), 0, "{k}: {l}");
    }
    for k in ["best_bid", "best_ask", "bid_levels", "ask_levels", "synced"] {
        assert_eq!(l[k], r[k], "{k}: live {l} replay {r}");
    }
    assert_eq!(live["parse_errors"], 0);
}

/// `signal_placement = "adaptive"` under the same slow signal stage (slow
/// wherever the processor runs): no trade is dropped and the final book is
/// the replay's. A receiver runs frames itself for at most
/// `EventTx::HERE_BUDGET_NS` per wake-up; beyond that, a receiver falling
/// behind hands the batch's later frames to the signal thread, so the
/// back-pressure lands in the overflow stage (merged diffs, conflated
/// quotes) as in threads mode, not in the socket.
#[test]
fn adaptive_under_a_slowed_signal_stage_drops_no_trade_and_corrupts_no_book() {
    let adaptive = format!("{SLOW}signal_placement = \"adaptive\"\n");
    let Some((live, replay)) = live_and_replay("overload-adaptive", 3000, &adaptive) else {
        return;
    };
    let o = &live["overload"];
    eprintln!("overload {o}; ring_full_waits {}", live["ring_full_waits"]);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    assert!(n(&o["diffs_merged"]) > 0, "{o}");
    assert!(n(&o["quotes_conflated"]) > 0, "{o}");
    assert!(n(&o["stage_high_water"]) <= 256, "{o}");
    no_trade_dropped_no_book_corrupted(&live, &replay, 500);
}

/// `overload = "block"` keeps today's behaviour: nothing is staged, every
/// diff is applied one by one (the same book updates as the replay).
#[test]
fn block_policy_stages_nothing() {
    let block = format!("{SLOW}{THREADS}overload = \"block\"\n");
    let Some((live, replay)) = live_and_replay("overload-block", 1500, &block) else {
        return;
    };
    assert_eq!(live["overload"]["staged_events"], 0, "{}", live["overload"]);
    let inst = "binance-spot:BTCUSDT";
    for k in ["trades", "book_updates", "best_bid", "best_ask"] {
        assert_eq!(
            live["instruments"][inst][k], replay["instruments"][inst][k],
            "{k}"
        );
    }
}
