//! A minimal bot loop: feed trades and quotes into a [`SignalSet`] and act
//! when the mid z-score leaves ±2.
//!
//! Run: `cargo run -p signals --example bot`.

use signals::{
    default_set, OutputId, Quote, Scale, Side, SignalSet, SignalSetConfig, Trade, Validity,
};

fn main() {
    let scale = Scale {
        price_decimals: 2,
        qty_decimals: 5,
    };
    let mut set =
        SignalSet::new(&SignalSetConfig::new(scale, default_set())).expect("default set is valid");
    let z = set.output_id("zscore_mid_100").expect("configured");
    let vwap = set.output_id("vwap_60s").expect("configured");

    // Synthetic market: a random walk with a jump at t = 150 s.
    let mut seed: u64 = 7;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut mid2: i64 = 2 * 9_700_000; // 2·97 000.00 in ticks
    let mut position = 0i64;
    for i in 0..3_000i64 {
        let ts = i * 100_000_000; // 10 events per second
        mid2 += (rnd() % 5) as i64 - 2;
        if i == 1_500 {
            mid2 += 400;
        }
        let bid = mid2 / 2;
        let q = Quote {
            ts_ns: ts,
            bid_px: bid,
            bid_qty: 50_000,
            ask_px: bid + 1,
            ask_qty: 70_000,
        };

        // Rows arrive through the callback; a bot acts on the ones it wants.
        let mut signal = None;
        let validity = set.on_quote(&q, &mut |id: OutputId, v| {
            if id == z {
                signal = Some(v);
            }
        });
        if validity != Validity::Valid {
            continue; // crossed/empty quote: not a sample
        }
        if let Some(zv) = signal {
            if zv > 2.0 && position <= 0 {
                position += 1;
                println!(
                    "t={:>6.1}s z={zv:>6.2} -> BUY  (vwap {:?})",
                    ts as f64 / 1e9,
                    set.last(vwap)
                );
            } else if zv < -2.0 && position >= 0 {
                position -= 1;
                println!(
                    "t={:>6.1}s z={zv:>6.2} -> SELL (vwap {:?})",
                    ts as f64 / 1e9,
                    set.last(vwap)
                );
            }
        }

        if i % 3 == 0 {
            let side = if rnd() % 2 == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let t = Trade {
                ts_ns: ts,
                px: bid + i64::from(side == Side::Buy),
                qty: 1_000 + (rnd() % 50_000) as i64,
                side,
            };
            set.on_trade(&t, &mut |_, _| {});
        }
    }
    println!("final position {position}, last z {:?}", set.last(z));
}
