//! Reproduces every vector of `shared/vectors/expected.json` (SIGNALS.md §12)
//! within `|got − want| ≤ max(1e-12, 1e-9·|want|)`.

mod common;

use common::{close, fixed, shared_dir};
use serde_json::Value;
use signals::{
    OutputId, ParamValue, Quote, QuoteSource, Scale, Side, SignalSet, SignalSetConfig, SignalSpec,
    SliceDepth, Trade, Validity,
};

fn load() -> Option<Value> {
    let dir = shared_dir()?;
    let text = std::fs::read_to_string(dir.join("vectors/expected.json")).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

struct Bar {
    open: i64,
    close: i64,
    volume: i64,
}

fn bars(pd: u32) -> Vec<Bar> {
    let dir = shared_dir().unwrap();
    let text = std::fs::read_to_string(dir.join("vectors/talib_close.csv")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("i,") || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0].parse::<usize>().unwrap(), out.len());
        out.push(Bar {
            open: fixed(f[1], pd),
            close: fixed(f[2], pd),
            volume: f[3].parse().unwrap(),
        });
    }
    out
}

fn params(v: &Value) -> Vec<(&str, ParamValue<'_>)> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let p = if let Some(i) = v.as_i64() {
                ParamValue::Int(i)
            } else if let Some(f) = v.as_f64() {
                ParamValue::Float(f)
            } else {
                ParamValue::Str(v.as_str().unwrap())
            };
            (k.as_str(), p)
        })
        .collect()
}

fn compare(name: &str, got: &[Option<f64>], first: usize, want: &[Value]) {
    assert_eq!(got.len(), first + want.len(), "{name}: length");
    for (i, g) in got.iter().enumerate() {
        let w = if i < first {
            None
        } else {
            want[i - first].as_f64()
        };
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) => assert!(close(*g, w), "{name}[{i}]: got {g:?}, want {w:?}"),
            _ => panic!("{name}[{i}]: got {g:?}, want {w:?}"),
        }
    }
}

/// Runs one spec over the TA-Lib bars and returns, per bar, the value of
/// output `output` emitted at that bar (if any).
fn run_series(spec: SignalSpec, output: &str, bars: &[Bar], scale: Scale) -> Vec<Option<f64>> {
    let l1 = matches!(spec.kind.trigger(), signals::spec::Trigger::L1);
    let mut set = SignalSet::new(&SignalSetConfig::new(scale, vec![spec])).unwrap();
    let id = set.output_id(output).unwrap();
    let s = 1_000_000_000;
    bars.iter()
        .enumerate()
        .map(|(i, b)| {
            let mut got = None;
            let mut out = |o: OutputId, v: f64| {
                if o == id {
                    assert!(got.is_none(), "two rows for one output");
                    got = Some(v);
                }
            };
            let ts = i as i64 * s;
            if l1 {
                // The close as the mid series: M2 = 2·close.
                let q = Quote {
                    ts_ns: ts,
                    bid_px: b.close - 1,
                    bid_qty: 1,
                    ask_px: b.close + 1,
                    ask_qty: 1,
                };
                assert_eq!(set.on_quote(&q, &mut out), Validity::Valid);
            } else {
                let side = if b.close >= b.open {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let t = Trade {
                    ts_ns: ts,
                    px: b.close,
                    qty: b.volume,
                    side,
                };
                set.on_trade(&t, &mut out);
            }
            got
        })
        .collect()
}

/// TA-Lib's classic EMA (seeded with the SMA of the first `n` values),
/// the reference `ref_ema_10_talib` (not the engine's convention).
fn talib_ema(x: &[f64], n: usize) -> Vec<Option<f64>> {
    let k = 2.0 / (n as f64 + 1.0);
    let mut out = vec![None; x.len()];
    let mut y = x[..n].iter().sum::<f64>() / n as f64;
    out[n - 1] = Some(y);
    for i in n..x.len() {
        y = (x[i] - y) * k + y;
        out[i] = Some(y);
    }
    out
}

/// Plain SMA on exact integers (`ref_sma_30`).
fn sma(x: &[i64], n: usize, scale: f64) -> Vec<Option<f64>> {
    (0..x.len())
        .map(|i| {
            (i + 1 >= n).then(|| x[i + 1 - n..=i].iter().sum::<i64>() as f64 / (n as f64 * scale))
        })
        .collect()
}

fn all_series(v: &Value) -> Vec<(String, Vec<Option<f64>>)> {
    let ts = &v["talib_series"];
    let pd = ts["price_decimals"].as_u64().unwrap() as u8;
    let qd = ts["qty_decimals"].as_u64().unwrap() as u8;
    let scale = Scale {
        price_decimals: pd,
        qty_decimals: qd,
    };
    let bars = bars(u32::from(pd));
    assert_eq!(bars.len() as u64, ts["bars"].as_u64().unwrap());
    let sp = scale.price_scale() as f64;
    let closes_f: Vec<f64> = bars.iter().map(|b| b.close as f64 / sp).collect();
    let closes_i: Vec<i64> = bars.iter().map(|b| b.close).collect();
    let mut out = Vec::new();
    for (name, vec) in ts["vectors"].as_object().unwrap() {
        let kind = vec["kind"].as_str().unwrap();
        let got = match kind {
            "reference" if name.starts_with("ref_sma") => {
                sma(&closes_i, vec["params"]["n"].as_u64().unwrap() as usize, sp)
            }
            "reference" if name.starts_with("ref_ema") => {
                talib_ema(&closes_f, vec["params"]["span"].as_u64().unwrap() as usize)
            }
            "reference" => panic!("unknown reference vector {name}"),
            _ => {
                let id = name.split('.').next().unwrap();
                let spec = SignalSpec::parse(id, kind, &params(&vec["params"])).unwrap();
                run_series(spec, name, &bars, scale)
            }
        };
        out.push((name.clone(), got));
    }
    out
}

#[test]
fn talib_series() {
    let Some(v) = load() else { return };
    let series = all_series(&v);
    let vectors = v["talib_series"]["vectors"].as_object().unwrap();
    assert_eq!(series.len(), vectors.len());
    for (name, got) in &series {
        let vec = &vectors[name];
        let first = vec["first_index"].as_u64().unwrap() as usize;
        compare(name, got, first, vec["values"].as_array().unwrap());
    }
    println!("checked {} series vectors", series.len());
}

#[test]
fn talib_spot_checks() {
    let Some(v) = load() else { return };
    let series = all_series(&v);
    let checks = v["talib_spot_checks"].as_object().unwrap();
    assert!(!checks.is_empty());
    for (key, c) in checks {
        // "<series>[<index>]" optionally followed by a note.
        let (name, rest) = key.split_once('[').unwrap();
        let idx: usize = rest.split_once(']').unwrap().0.parse().unwrap();
        let got = series.iter().find(|(n, _)| n == name).unwrap().1[idx]
            .unwrap_or_else(|| panic!("{key}: not emitted"));
        let ours = c["ours"].as_f64().unwrap();
        assert!(close(got, ours), "{key}: got {got}, want {ours}");
        if let Some(published) = c["ta_lib_published"].as_f64() {
            assert!(
                close(got, published),
                "{key}: got {got}, TA-Lib {published}"
            );
        }
    }
}

#[test]
fn ema_count_1_to_10() {
    let Some(v) = load() else { return };
    let c = &v["ema_count_1_to_10"];
    let span = c["span"].as_i64().unwrap();
    let spec = SignalSpec::parse("e", "ema", &[("span", ParamValue::Int(span))]).unwrap();
    let scale = Scale {
        price_decimals: 0,
        qty_decimals: 0,
    };
    let mut set = SignalSet::new(&SignalSetConfig::new(scale, vec![spec])).unwrap();
    let mut rows = Vec::new();
    for (i, x) in c["input"].as_array().unwrap().iter().enumerate() {
        let t = Trade {
            ts_ns: i as i64,
            px: x.as_i64().unwrap(),
            qty: 1,
            side: Side::Buy,
        };
        set.on_trade(&t, &mut |_, v| rows.push(v));
    }
    assert_eq!(rows.len(), 1);
    let want = c["value_at_10th"].as_f64().unwrap();
    assert!(close(rows[0], want), "got {}, want {want}", rows[0]);
}

#[test]
fn l1_sequence() {
    let Some(v) = load() else { return };
    let l = &v["l1_sequence"];
    let pd = l["price_decimals"].as_u64().unwrap() as u32;
    let qd = l["qty_decimals"].as_u64().unwrap() as u32;
    let scale = Scale {
        price_decimals: pd as u8,
        qty_decimals: qd as u8,
    };
    let p = &l["params"];
    let mk = |id: &str, kind: &str, ps: &Value| SignalSpec::parse(id, kind, &params(ps)).unwrap();
    let mut zp = params(&p["zscore_3_mid"]);
    zp.push(("source", ParamValue::Str("mid")));
    let mut ep = params(&p["ema_time_2s_mid"]);
    ep.push(("source", ParamValue::Str("mid")));
    let specs = vec![
        mk("mid", "mid", &Value::Null),
        mk("spread_bps", "spread_bps", &Value::Null),
        mk("microprice", "microprice", &Value::Null),
        mk("imbalance_l1", "imbalance_l1", &Value::Null),
        mk("ofi_3s", "ofi", &p["ofi_3s"]),
        mk("rv_3s", "rv", &p["rv_3s"]),
        mk("ema_time_2s_mid", "ema_time", &Value::Null),
        mk("zscore_3_mid", "zscore", &Value::Null),
    ];
    // Apply the vector's own params for the two source kinds.
    let mut specs = specs;
    specs[6] = SignalSpec::parse("ema_time_2s_mid", "ema_time", &ep).unwrap();
    specs[7] = SignalSpec::parse("zscore_3_mid", "zscore", &zp).unwrap();
    let mut set = SignalSet::new(&SignalSetConfig::new(scale, specs)).unwrap();
    let names = set.output_names().to_vec();
    let mut got: Vec<Vec<Option<f64>>> = vec![Vec::new(); names.len()];
    let mut contributions = Vec::new();
    let mut prev: Option<Quote> = None;
    for q in l["quotes"].as_array().unwrap() {
        let quote = Quote {
            ts_ns: q["t_ns"].as_i64().unwrap(),
            bid_px: fixed(q["bid"].as_str().unwrap(), pd),
            bid_qty: fixed(q["bid_qty"].as_str().unwrap(), qd),
            ask_px: fixed(q["ask"].as_str().unwrap(), pd),
            ask_qty: fixed(q["ask_qty"].as_str().unwrap(), qd),
        };
        let mut row = vec![None; names.len()];
        let validity = set.on_quote(&quote, &mut |id, v| row[usize::from(id.0)] = Some(v));
        assert_eq!(
            validity == Validity::Valid,
            q["valid"].as_bool().unwrap(),
            "{q}"
        );
        if validity != Validity::Valid {
            assert!(
                row.iter().all(Option::is_none),
                "invalid quote emitted rows"
            );
            continue;
        }
        for (g, r) in got.iter_mut().zip(row) {
            g.push(r);
        }
        contributions.push(prev.map_or(0, |p| signals::flow::Ofi::contribution(&p, &quote)));
        prev = Some(quote);
    }
    for (i, name) in names.iter().enumerate() {
        compare(name, &got[i], 0, l[name.as_str()].as_array().unwrap());
    }
    let want_e: Vec<i128> = l["ofi_contribution_lots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| i128::from(e.as_i64().unwrap()))
        .collect();
    assert_eq!(contributions, want_e);
}

#[test]
fn depth_example() {
    let Some(v) = load() else { return };
    let d = &v["depth_example"];
    let pd = d["price_decimals"].as_u64().unwrap() as u32;
    let qd = d["qty_decimals"].as_u64().unwrap() as u32;
    let levels = |k: &str| -> Vec<(i64, i64)> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    fixed(l[0].as_str().unwrap(), pd),
                    fixed(l[1].as_str().unwrap(), qd),
                )
            })
            .collect()
    };
    let (bids, asks) = (levels("bids_best_first"), levels("asks_best_first"));
    let book = SliceDepth {
        bids: &bids,
        asks: &asks,
    };
    let mut cfg = SignalSetConfig::new(
        Scale {
            price_decimals: pd as u8,
            qty_decimals: qd as u8,
        },
        vec![
            SignalSpec::parse(
                "imbalance_l5",
                "imbalance_depth",
                &[("levels", ParamValue::Int(5))],
            )
            .unwrap(),
            SignalSpec::parse("imbalance_l1", "imbalance_l1", &[]).unwrap(),
        ],
    );
    cfg.quote_source = QuoteSource::Depth;
    let mut set = SignalSet::new(&cfg).unwrap();
    let mut rows = Vec::new();
    assert_eq!(
        set.on_depth(0, &book, &mut |id, v| rows.push((id.0, v))),
        Validity::Valid
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, 0);
    assert!(close(rows[0].1, d["imbalance_l5"].as_f64().unwrap()));
    assert!(close(
        rows[1].1,
        d["imbalance_l1_from_depth_top"].as_f64().unwrap()
    ));
}
