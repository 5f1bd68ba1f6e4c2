//! Batch evaluation of a signal set over a polars [`DataFrame`] of events
//! (cargo feature `polars`).
//!
//! # How it works (and why the results are identical)
//!
//! [`compute`] / [`run`] do **not** re-implement the signals as polars
//! expressions. They drive the streaming [`SignalSet`] over the frame's
//! columns, one row at a time, in row order, and collect the emitted rows
//! into a new frame. The batch path therefore gives, by construction, the
//! same rows with bit-identical `f64` values as feeding the same events to
//! [`SignalSet::on_trade`] / [`SignalSet::on_quote`] /
//! [`SignalSet::on_depth`] — including warm-up, invalid quotes, series-time
//! clamping and row order (SIGNALS.md §1.3). The cost is one pass over the
//! columns plus the streaming update, i.e. millions of events per second;
//! polars only does the columnar I/O.
//!
//! # Input: one row per event, one instrument per frame
//!
//! Rows are processed in frame order (that is the event order, §2.1). All
//! integers are fixed-point in the instrument's [`Scale`](crate::Scale):
//! prices in ticks, sizes in lots, times in ns since the Unix epoch. Integer
//! columns may have any integer dtype the polars build knows (they are cast,
//! strictly, to `i64`); columns not needed by any row may be absent, and
//! cells not needed by a row's kind are ignored (may be null).
//!
//! | column | dtype | used by | meaning |
//! | --- | --- | --- | --- |
//! | `ts_ns` | int | all | exchange timestamp of the event (bookTicker: receive time), never null |
//! | `kind` | str | all | `"trade"`, `"quote"` or `"depth"`, never null |
//! | `px` | int | trade | price, ticks |
//! | `qty` | int | trade | quantity, lots |
//! | `side` | int | trade | aggressor side: `1` buy, `-1` sell (any other value is an error) |
//! | `bid_px`, `bid_qty`, `ask_px`, `ask_qty` | int | quote, depth | top of book; for quotes a null cell means `0` (absent side) |
//! | `bid_sizes`, `ask_sizes` | list[int] | depth | sizes of the book's levels, **best level first**, one element per level |
//!
//! * **trade** rows are accepted trades (SIGNALS.md §2.3: duplicates already
//!   dropped by the caller). A trade with `px ≤ 0` or `qty ≤ 0` is not a
//!   sample and emits nothing, as in [`SignalSet::on_trade`].
//! * **quote** rows are bookTicker L1 events (§2.4; stale `u` already dropped
//!   by the caller). Invalid quotes (crossed, empty side) emit nothing. With
//!   `quote_source = depth` quote rows are ignored, as in the streaming API.
//! * **depth** rows are *applied live* depth diffs (§2.5): the book after the
//!   diff. The best bid is `(bid_px, bid_sizes[0])`, the best ask
//!   `(ask_px, ask_sizes[0])`; an empty (or null) list is an empty side.
//!   `bid_qty` / `ask_qty` may be null on depth rows; if present they must
//!   equal the first list element. The lists must hold at least the best
//!   `levels` levels of every `imbalance_depth` signal (or the whole side if
//!   it has fewer levels): `imbalance_depth` sums the first
//!   `min(levels, len)` elements. Elements must not be null. Depth rows
//!   drive the L2 signals and, with `quote_source = depth`, the L1 signals.
//!
//! Several instruments: split the frame per symbol (e.g. with
//! `partition_by`) and call [`compute`] on each part; every instrument has
//! its own [`SignalSet`].
//!
//! # Output: one row per emitted signal value
//!
//! | column | dtype | meaning |
//! | --- | --- | --- |
//! | `row` | u64 | 0-based index of the triggering event row in the input frame |
//! | `ts_ns` | i64 | `ts_ns` of that event (the raw value, §1.2) |
//! | `signal` | str | output id, e.g. `"mid"`, `"bb_20_2.upper"` ([`SignalSet::output_names`]) |
//! | `value` | f64 | the value, finite |
//!
//! Rows are in the order the streaming set emits them: event order, then
//! `[[signals]]` order within an event.
//!
//! # Example
//!
//! ```
//! use polars::prelude::*;
//! use signals::{batch, default_set, Scale, SignalSetConfig};
//!
//! let events = df!(
//!     "ts_ns"   => [0i64, 1_000, 2_000],
//!     "kind"    => ["quote", "trade", "quote"],
//!     "px"      => [None, Some(10_001i64), None],
//!     "qty"     => [None, Some(500i64), None],
//!     "side"    => [None, Some(1i32), None],
//!     "bid_px"  => [Some(10_000i64), None, Some(10_001)],
//!     "bid_qty" => [Some(1_000i64), None, Some(700)],
//!     "ask_px"  => [Some(10_002i64), None, Some(10_003)],
//!     "ask_qty" => [Some(2_000i64), None, Some(900)],
//! )
//! .unwrap();
//! let cfg = SignalSetConfig::new(Scale { price_decimals: 2, qty_decimals: 3 }, default_set());
//! let out = batch::compute(&events, &cfg).unwrap();
//! assert_eq!(out.get_column_names(), ["row", "ts_ns", "signal", "value"]);
//! let first = out.column("signal").unwrap().str().unwrap().get(0);
//! assert_eq!(first, Some("mid"));
//! assert_eq!(out.column("value").unwrap().f64().unwrap().get(0), Some(100.01));
//! ```

use polars::prelude::*;

use crate::{DepthView, OutputId, Quote, Side, SignalSet, SignalSetConfig, Trade};

/// Runs a fresh [`SignalSet`] built from `config` over `events`; see the
/// [module docs](self) for the input and output columns.
///
/// # Errors
/// An invalid configuration, a missing or mistyped column a row needs, a
/// null in a required cell, an unknown `kind`, a `side` other than ±1, or a
/// depth row whose `bid_qty`/`ask_qty` disagrees with its size list.
pub fn compute(events: &DataFrame, config: &SignalSetConfig) -> PolarsResult<DataFrame> {
    let mut set =
        SignalSet::new(config).map_err(|e| polars_err!(ComputeError: "signal set: {}", e))?;
    run(&mut set, events)
}

/// Feeds `events` to an existing `set` (state carries over between calls,
/// so a long capture can be processed frame by frame) and returns the rows
/// it emitted; `row` indexes into this `events` frame.
///
/// # Errors
/// As [`compute`] (except configuration errors). On error, the rows before
/// the offending one have already been fed to `set`.
pub fn run(set: &mut SignalSet, events: &DataFrame) -> PolarsResult<DataFrame> {
    let n = events.height();
    let ts = IntCol::load(events, "ts_ns")?;
    let kind = match find(events, "kind") {
        Some(c) => c.cast(&DataType::String)?.rechunk(),
        None => polars_bail!(ColumnNotFound: "kind"),
    };
    let kind = kind.str()?;
    let px = IntCol::load(events, "px")?;
    let qty = IntCol::load(events, "qty")?;
    let side = IntCol::load(events, "side")?;
    let bid_px = IntCol::load(events, "bid_px")?;
    let bid_qty = IntCol::load(events, "bid_qty")?;
    let ask_px = IntCol::load(events, "ask_px")?;
    let ask_qty = IntCol::load(events, "ask_qty")?;
    let bid_sizes = ListCol::load(events, "bid_sizes")?;
    let ask_sizes = ListCol::load(events, "ask_sizes")?;
    let mut bid_iter = bid_sizes.iter(n);
    let mut ask_iter = ask_sizes.iter(n);

    let mut rows: Vec<u64> = Vec::new();
    let mut row_ts: Vec<i64> = Vec::new();
    let mut ids: Vec<OutputId> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let (mut bids, mut asks) = (Vec::new(), Vec::new());

    for i in 0..n {
        // Advance the list iterators on every row so they stay aligned.
        let bid_list = bid_iter.as_mut().and_then(Iterator::next).flatten();
        let ask_list = ask_iter.as_mut().and_then(Iterator::next).flatten();
        let t = ts.required(i, "all")?;
        let before = ids.len();
        let mut emit = |id: OutputId, v: f64| {
            ids.push(id);
            values.push(v);
        };
        match kind.get(i) {
            Some("trade") => {
                let side = match side.required(i, "trade")? {
                    1 => Side::Buy,
                    -1 => Side::Sell,
                    s => polars_bail!(ComputeError: "row {}: side must be 1 or -1, got {}", i, s),
                };
                let trade = Trade {
                    ts_ns: t,
                    px: px.required(i, "trade")?,
                    qty: qty.required(i, "trade")?,
                    side,
                };
                set.on_trade(&trade, &mut emit);
            }
            Some("quote") => {
                let q = Quote {
                    ts_ns: t,
                    bid_px: bid_px.or_zero(i, "quote")?,
                    bid_qty: bid_qty.or_zero(i, "quote")?,
                    ask_px: ask_px.or_zero(i, "quote")?,
                    ask_qty: ask_qty.or_zero(i, "quote")?,
                };
                set.on_quote(&q, &mut emit);
            }
            Some("depth") => {
                if bid_sizes.ca.is_none() || ask_sizes.ca.is_none() {
                    polars_bail!(
                        ColumnNotFound: "depth rows need `bid_sizes` and `ask_sizes` (row {})", i
                    );
                }
                fill_sizes(&mut bids, bid_list.as_ref(), i, "bid_sizes")?;
                fill_sizes(&mut asks, ask_list.as_ref(), i, "ask_sizes")?;
                let book = RowDepth {
                    bid: top(&bid_px, &bid_qty, &bids, i)?,
                    ask: top(&ask_px, &ask_qty, &asks, i)?,
                    bids: &bids,
                    asks: &asks,
                };
                set.on_depth(t, &book, &mut emit);
            }
            Some(other) => polars_bail!(
                ComputeError: "row {}: kind must be trade, quote or depth, got {:?}", i, other
            ),
            None => polars_bail!(ComputeError: "row {}: kind is null", i),
        }
        let emitted = ids.len() - before;
        rows.extend(std::iter::repeat_n(i as u64, emitted));
        row_ts.extend(std::iter::repeat_n(t, emitted));
    }

    let names = set.output_names();
    let signal = StringChunked::from_iter_values(
        "signal".into(),
        ids.iter().map(|id| names[usize::from(id.0)].as_str()),
    );
    DataFrame::new(vec![
        Column::new("row".into(), rows),
        Column::new("ts_ns".into(), row_ts),
        signal.into_column(),
        Column::new("value".into(), values),
    ])
}

fn find<'a>(df: &'a DataFrame, name: &str) -> Option<&'a Column> {
    df.get_columns().iter().find(|c| c.name().as_str() == name)
}

/// An optional integer column, strictly cast to `i64`.
struct IntCol {
    name: &'static str,
    ca: Option<Int64Chunked>,
}

impl IntCol {
    fn load(df: &DataFrame, name: &'static str) -> PolarsResult<Self> {
        let ca = match find(df, name) {
            Some(c) => {
                let c = c.strict_cast(&DataType::Int64).map_err(
                    |e| polars_err!(SchemaMismatch: "column `{}` must be integer: {}", name, e),
                )?;
                Some(c.rechunk().i64()?.clone())
            }
            None => None,
        };
        Ok(Self { name, ca })
    }

    fn cell(&self, i: usize, what: &str) -> PolarsResult<Option<i64>> {
        match &self.ca {
            Some(ca) => Ok(ca.get(i)),
            None => {
                polars_bail!(
                    ColumnNotFound: "{} rows need column `{}` (row {})", what, self.name, i
                )
            }
        }
    }

    fn required(&self, i: usize, what: &str) -> PolarsResult<i64> {
        match self.cell(i, what)? {
            Some(v) => Ok(v),
            None => polars_bail!(ComputeError: "row {}: `{}` is null", i, self.name),
        }
    }

    fn or_zero(&self, i: usize, what: &str) -> PolarsResult<i64> {
        Ok(self.cell(i, what)?.unwrap_or(0))
    }
}

/// An optional `list[int]` column, cast to `list[i64]`.
struct ListCol {
    ca: Option<ListChunked>,
}

impl ListCol {
    fn load(df: &DataFrame, name: &'static str) -> PolarsResult<Self> {
        let ca = match find(df, name) {
            Some(c) => {
                let c = c
                    .strict_cast(&DataType::List(Box::new(DataType::Int64)))
                    .map_err(|e| {
                        polars_err!(SchemaMismatch: "column `{}` must be list[int]: {}", name, e)
                    })?;
                Some(c.rechunk().list()?.clone())
            }
            None => None,
        };
        Ok(Self { ca })
    }

    /// Row iterator (`None` without the column or for an empty frame).
    fn iter(&self, n: usize) -> Option<impl Iterator<Item = Option<polars::prelude::Series>> + '_> {
        let ca = self.ca.as_ref().filter(|_| n > 0)?;
        // `amortized_iter` reuses one Series container for every row; we
        // clone only the (cheap, `Arc`-backed) inner array on depth rows.
        Some(ca.amortized_iter().map(|s| s.map(|s| s.as_ref().clone())))
    }
}

fn fill_sizes(
    buf: &mut Vec<i64>,
    list: Option<&Series>,
    row: usize,
    name: &str,
) -> PolarsResult<()> {
    buf.clear();
    if let Some(s) = list {
        let ca = s.i64()?;
        if ca.null_count() > 0 {
            polars_bail!(ComputeError: "row {}: `{}` contains a null level", row, name);
        }
        buf.extend(ca.into_no_null_iter());
    }
    Ok(())
}

/// Best level of one side of a depth row: `(px, sizes[0])`, checked
/// against the `*_qty` cell when that is present.
fn top(px: &IntCol, qty: &IntCol, sizes: &[i64], row: usize) -> PolarsResult<Option<(i64, i64)>> {
    let Some(&size) = sizes.first() else {
        return Ok(None);
    };
    let p = px.required(row, "depth")?;
    if let Some(q) = qty.ca.as_ref().and_then(|ca| ca.get(row)) {
        if q != size {
            polars_bail!(
                ComputeError: "row {}: `{}` = {} but the first level size is {}",
                row, qty.name, q, size
            );
        }
    }
    Ok(Some((p, size)))
}

/// The book of one depth row.
struct RowDepth<'a> {
    bid: Option<(i64, i64)>,
    ask: Option<(i64, i64)>,
    bids: &'a [i64],
    asks: &'a [i64],
}

impl DepthView for RowDepth<'_> {
    fn best_bid(&self) -> Option<(i64, i64)> {
        self.bid
    }
    fn best_ask(&self) -> Option<(i64, i64)> {
        self.ask
    }
    fn bid_depth(&self, levels: usize) -> i64 {
        self.bids.iter().take(levels).sum()
    }
    fn ask_depth(&self, levels: usize) -> i64 {
        self.asks.iter().take(levels).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_set, Scale, SliceDepth};

    fn sizes(v: &[i64]) -> Series {
        Series::new("".into(), v)
    }

    fn scale() -> Scale {
        Scale {
            price_decimals: 2,
            qty_decimals: 3,
        }
    }

    #[test]
    fn depth_rows_match_streaming() {
        let bids = [(10_000, 1_000), (9_999, 2_000), (9_998, 500)];
        let asks = [(10_001, 700), (10_002, 100)];
        let events = df!(
            "ts_ns" => [5i64, 6],
            "kind" => ["depth", "depth"],
            "bid_px" => [Some(10_000i64), None],
            "bid_qty" => [None, None::<i64>],
            "ask_px" => [Some(10_001i64), Some(10_001)],
            "ask_qty" => [Some(700i64), None],
            "bid_sizes" => [sizes(&[1_000, 2_000, 500]), sizes(&[])],
            "ask_sizes" => [sizes(&[700, 100]), sizes(&[700])],
        )
        .unwrap();
        let cfg = SignalSetConfig::new(scale(), default_set());
        let out = compute(&events, &cfg).unwrap();

        let mut set = SignalSet::new(&cfg).unwrap();
        let mut want = Vec::new();
        let book = SliceDepth {
            bids: &bids,
            asks: &asks,
        };
        set.on_depth(5, &book, &mut |id, v| want.push((id, v)));
        // Second row: empty bid side -> nothing.
        assert_eq!(want.len(), 1);
        assert_eq!(out.height(), 1);
        let v = out.column("value").unwrap().f64().unwrap().get(0).unwrap();
        assert_eq!(v.to_bits(), want[0].1.to_bits());
        assert_eq!(
            out.column("signal").unwrap().str().unwrap().get(0),
            Some("imbalance_l5")
        );
    }

    #[test]
    fn errors_are_reported() {
        let cfg = SignalSetConfig::new(scale(), default_set());
        let bad_kind = df!("ts_ns" => [1i64], "kind" => ["bar"]).unwrap();
        assert!(compute(&bad_kind, &cfg).is_err());
        let no_px =
            df!("ts_ns" => [1i64], "kind" => ["trade"], "qty" => [1i64], "side" => [1i32]).unwrap();
        let e = compute(&no_px, &cfg).unwrap_err().to_string();
        assert!(e.contains("px"), "{e}");
        let bad_side = df!(
            "ts_ns" => [1i64], "kind" => ["trade"], "px" => [1i64], "qty" => [1i64],
            "side" => [0i32]
        )
        .unwrap();
        assert!(compute(&bad_side, &cfg).is_err());
        let mismatch = df!(
            "ts_ns" => [1i64], "kind" => ["depth"], "bid_px" => [1i64], "bid_qty" => [3i64],
            "ask_px" => [2i64], "ask_qty" => [1i64],
            "bid_sizes" => [sizes(&[2])],
            "ask_sizes" => [sizes(&[1])],
        )
        .unwrap();
        assert!(compute(&mismatch, &cfg).is_err());
        // Empty frame: empty output with the documented schema.
        let empty = df!("ts_ns" => Vec::<i64>::new(), "kind" => Vec::<&str>::new()).unwrap();
        let out = compute(&empty, &cfg).unwrap();
        assert_eq!(out.height(), 0);
        assert_eq!(out.get_column_names(), ["row", "ts_ns", "signal", "value"]);
    }
}
