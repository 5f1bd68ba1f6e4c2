//! Property tests: every windowed / recursive signal equals a naive
//! from-scratch recomputation of its SIGNALS.md definition over random event
//! sequences with equal timestamps, time going backwards, sparse windows,
//! one-sided / crossed / zero-size quotes and non-positive trade sizes.

mod common;

use common::close;
use proptest::prelude::*;
use signals::averages::EmaTime;
use signals::flow::{Ofi, TradeImbalance, Vwap};
use signals::microstructure::KyleLambda;
use signals::oscillators::Rsi;
use signals::volatility::{Bollinger, Rv, Zscore};
use signals::{Quote, Scale, Side, Trade};

/// Time grid of the generated timestamps, ns.
const GRID: i64 = 250;

/// Window lengths on the same grid.
fn window() -> impl Strategy<Value = i64> {
    (1i64..80).prop_map(|k| k * GRID)
}

const SCALE: Scale = Scale {
    price_decimals: 2,
    qty_decimals: 3,
};

fn same(got: Option<f64>, want: Option<f64>) -> Result<(), TestCaseError> {
    match (got, want) {
        (None, None) => Ok(()),
        (Some(g), Some(w)) if close(g, w) => Ok(()),
        _ => Err(TestCaseError::fail(format!("got {got:?}, want {want:?}"))),
    }
}

/// Raw timestamps on a coarse grid (so that `τ_n − τ_m = W` happens often):
/// mostly forward, often equal, sometimes backwards, sometimes a long gap
/// that empties the window.
fn times(len: usize) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(
        prop_oneof![3 => Just(0i64), 5 => 1i64..6, 1 => -8i64..0, 1 => 12i64..48],
        len,
    )
    .prop_map(|d| {
        let mut t = 1_000_000;
        d.into_iter()
            .map(|x| {
                t += x * GRID;
                t
            })
            .collect()
    })
}

/// Series time τ = running max of the raw times.
fn series_time(ts: &[i64]) -> Vec<i64> {
    let mut m = i64::MIN;
    ts.iter()
        .map(|&t| {
            m = m.max(t);
            m
        })
        .collect()
}

fn quotes() -> impl Strategy<Value = Vec<Quote>> {
    (1usize..160).prop_flat_map(|n| {
        (
            times(n),
            prop::collection::vec((9_990i64..10_010, -2i64..5, 0i64..40, 0i64..40), n),
        )
            .prop_map(|(ts, qs)| {
                ts.into_iter()
                    .zip(qs)
                    .map(|(t, (b, spread, qb, qa))| Quote {
                        ts_ns: t,
                        bid_px: if qb == 39 { 0 } else { b },
                        bid_qty: qb,
                        ask_px: b + spread,
                        ask_qty: qa,
                    })
                    .collect()
            })
    })
}

fn trades() -> impl Strategy<Value = Vec<Trade>> {
    (1usize..160).prop_flat_map(|n| {
        (
            times(n),
            prop::collection::vec((9_000i64..11_000, -3i64..1_000, any::<bool>()), n),
        )
            .prop_map(|(ts, xs)| {
                ts.into_iter()
                    .zip(xs)
                    .map(|(t, (px, qty, buy))| Trade {
                        ts_ns: t,
                        px,
                        qty,
                        side: if buy { Side::Buy } else { Side::Sell },
                    })
                    .collect()
            })
    })
}

fn values() -> impl Strategy<Value = (Vec<i64>, Vec<i64>)> {
    (1usize..200).prop_flat_map(|n| {
        (
            times(n),
            prop::collection::vec(
                prop_oneof![1 => Just(1_000_000i64), 4 => 999_900i64..1_000_100],
                n,
            ),
        )
    })
}

/// Naive time-window aggregate: for sample n, the samples m ≤ n with
/// τ_m ∈ (τ_n − W, τ_n]; `None` before warm-up (τ_n − τ_1 < W).
fn naive_window<T: Copy, R>(
    tau: &[i64],
    xs: &[T],
    w: i64,
    n: usize,
    f: impl Fn(&[T]) -> R,
) -> Option<R> {
    if tau[n] - tau[0] < w {
        return None;
    }
    let lo = (0..=n).find(|&m| tau[m] > tau[n] - w).unwrap();
    Some(f(&xs[lo..=n]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ofi_matches_naive(qs in quotes(), w in window()) {
        let mut s = Ofi::new(w, SCALE, 1 << 12);
        let valid: Vec<Quote> = qs.iter().copied().filter(Quote::is_valid).collect();
        let tau = series_time(&valid.iter().map(|q| q.ts_ns).collect::<Vec<_>>());
        let e: Vec<i128> = (0..valid.len())
            .map(|i| if i == 0 { 0 } else { Ofi::contribution(&valid[i - 1], &valid[i]) })
            .collect();
        let mut n = 0;
        for q in &qs {
            let got = s.update(q);
            if !q.is_valid() {
                prop_assert!(got.is_none());
                continue;
            }
            let want = naive_window(&tau, &e, w, n, |xs| xs.iter().sum::<i128>() as f64 / 1_000.0);
            same(got, want)?;
            n += 1;
        }
    }

    #[test]
    fn rv_matches_naive(qs in quotes(), w in window()) {
        let mut s = Rv::new(w, 1 << 12);
        let valid: Vec<Quote> = qs.iter().copied().filter(Quote::is_valid).collect();
        let tau = series_time(&valid.iter().map(|q| q.ts_ns).collect::<Vec<_>>());
        let rho2: Vec<f64> = (0..valid.len())
            .map(|i| {
                if i == 0 {
                    return 0.0;
                }
                let (p, c) = (valid[i - 1].m2(), valid[i].m2());
                let r = ((c - p) as f64 / p as f64).ln_1p();
                r * r
            })
            .collect();
        for (n, q) in qs.iter().filter(|q| q.is_valid()).enumerate() {
            let got = s.update(q.ts_ns, q.m2());
            let want = naive_window(&tau, &rho2, w, n, |xs| 1e4 * xs.iter().sum::<f64>().sqrt());
            same(got, want)?;
        }
    }

    #[test]
    fn trade_imbalance_and_vwap_match_naive(ts in trades(), w in window()) {
        let mut ti = TradeImbalance::new(w, 1 << 12);
        let mut vw = Vwap::new(w, SCALE, 1 << 12);
        let acc: Vec<Trade> = ts.iter().copied().filter(|t| t.qty > 0 && t.px > 0).collect();
        let tau = series_time(&acc.iter().map(|t| t.ts_ns).collect::<Vec<_>>());
        let mut n = 0;
        for t in &ts {
            let (g1, g2) = (ti.update(t), vw.update(t));
            if t.qty <= 0 {
                prop_assert!(g1.is_none() && g2.is_none());
                continue;
            }
            let w1 = naive_window(&tau, &acc, w, n, |xs| {
                let s: i128 = xs.iter().map(|t| i128::from(t.side.sign() * t.qty)).sum();
                let v: i128 = xs.iter().map(|t| i128::from(t.qty)).sum();
                s as f64 / v as f64
            });
            let w2 = naive_window(&tau, &acc, w, n, |xs| {
                let pq: i128 = xs.iter().map(|t| i128::from(t.px) * i128::from(t.qty)).sum();
                let v: i128 = xs.iter().map(|t| i128::from(t.qty)).sum();
                pq as f64 / v as f64 / 100.0
            });
            same(g1, w1)?;
            same(g2, w2)?;
            n += 1;
        }
    }

    #[test]
    fn kyle_lambda_matches_naive(ts in trades(), nwin in 1usize..40) {
        let mut k = KyleLambda::new(nwin, SCALE);
        let acc: Vec<Trade> = ts.iter().copied().filter(|t| t.qty > 0).collect();
        let mut i = 0;
        for t in &ts {
            let got = k.update(t);
            if t.qty <= 0 {
                prop_assert!(got.is_none());
                continue;
            }
            // Pairs k = 1..=i (0-based trade index i ≥ 1).
            let want = (i >= nwin).then(|| {
                let pairs: Vec<(i128, i128)> = (i + 1 - nwin..=i)
                    .map(|j| (i128::from(acc[j].side.sign() * acc[j].qty), i128::from(acc[j].px - acc[j - 1].px)))
                    .collect();
                let n = nwin as i128;
                let sx: i128 = pairs.iter().map(|p| p.0).sum();
                let sy: i128 = pairs.iter().map(|p| p.1).sum();
                let sxx: i128 = pairs.iter().map(|p| p.0 * p.0).sum();
                let sxy: i128 = pairs.iter().map(|p| p.0 * p.1).sum();
                let den = n * sxx - sx * sx;
                (den != 0).then(|| (n * sxy - sx * sy) as f64 / den as f64 * (1_000.0 / 100.0))
            }).flatten();
            same(got, want)?;
            i += 1;
        }
    }

    #[test]
    fn zscore_and_bollinger_match_naive((_, xs) in values(), n in 2usize..30, kk in 0.5f64..3.0) {
        let mut z = Zscore::new(n);
        let mut b = Bollinger::new(n, kk, 200.0);
        for i in 0..xs.len() {
            let gz = z.update(xs[i]);
            let gb = b.update(xs[i]);
            if i + 1 < n {
                prop_assert!(gz.is_none() && gb.is_none());
                continue;
            }
            // Two-pass floating reference on the real values.
            let win: Vec<f64> = xs[i + 1 - n..=i].iter().map(|&x| x as f64).collect();
            let mean = win.iter().sum::<f64>() / n as f64;
            let var = win.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
            let sd = var.sqrt();
            let wz = if win.iter().all(|&x| x == win[0]) { 0.0 } else { (win[n - 1] - mean) / sd };
            prop_assert!((gz.unwrap() - wz).abs() <= 1e-9 * wz.abs().max(1.0), "{gz:?} vs {wz}");
            let bands = gb.unwrap();
            let (m, s) = (mean / 200.0, sd / 200.0);
            same(Some(bands.middle), Some(m))?;
            same(Some(bands.upper), Some(m + kk * s))?;
            same(Some(bands.lower), Some(m - kk * s))?;
        }
    }

    #[test]
    fn rsi_matches_naive((_, xs) in values(), n in 1u32..20) {
        let mut r = Rsi::new(n);
        for i in 0..xs.len() {
            let got = r.update(xs[i]);
            let nn = n as usize;
            let want = (i >= nn).then(|| {
                let d: Vec<i64> = (1..=i).map(|j| xs[j] - xs[j - 1]).collect();
                let g = |x: i64| x.max(0) as f64;
                let l = |x: i64| (-x).max(0) as f64;
                let mut ag = d[..nn].iter().map(|&x| x.max(0)).sum::<i64>() as f64 / n as f64;
                let mut al = d[..nn].iter().map(|&x| (-x).max(0)).sum::<i64>() as f64 / n as f64;
                for &x in &d[nn..] {
                    ag = (ag * (n as f64 - 1.0) + g(x)) / n as f64;
                    al = (al * (n as f64 - 1.0) + l(x)) / n as f64;
                }
                if ag + al == 0.0 { 50.0 } else { 100.0 * ag / (ag + al) }
            });
            same(got, want)?;
        }
    }

    #[test]
    fn ema_time_matches_naive((ts, xs) in values(), tau in window()) {
        let mut e = EmaTime::new(tau, 200.0);
        let t = series_time(&ts);
        for i in 0..xs.len() {
            let got = e.update(ts[i], xs[i]);
            let want = (t[i] - t[0] >= tau).then(|| {
                let mut y = xs[0] as f64 / 200.0;
                for k in 1..=i {
                    let a = -(-((t[k] - t[k - 1]) as f64) / tau as f64).exp_m1();
                    y += a * (xs[k - 1] as f64 / 200.0 - y);
                }
                y
            });
            same(got, want)?;
        }
    }
}

#[test]
fn rv_rebuild_keeps_long_runs_accurate() {
    // Long run through several rebuilds with a dense window.
    let mut s = Rv::new(5_000, 1 << 14);
    let mut m2 = Vec::new();
    let mut x: i64 = 2_000_000;
    let mut state: u64 = 42;
    for i in 0..20_000i64 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        x += ((state >> 33) % 7) as i64 - 3;
        m2.push(x);
        let got = s.update(i, x).unwrap_or(f64::NAN);
        if i >= 5_000 {
            let lo = (i - 4_999) as usize;
            let sum: f64 = (lo..=i as usize)
                .map(|j| {
                    let r = ((m2[j] - m2[j - 1]) as f64 / m2[j - 1] as f64).ln_1p();
                    r * r
                })
                .sum();
            let want = 1e4 * sum.sqrt();
            assert!(close(got, want), "i={i}: {got} vs {want}");
        }
    }
}
