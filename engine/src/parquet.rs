//! `engine replay --parquet <file>`: the signal stream as a Parquet file
//! (cargo feature `parquet`, see docs/polars.md).
//!
//! Off the hot path: [`ParquetSink`] is a [`RowCollector`] run by the sink
//! thread next to the JSONL writer. It appends each row to plain column
//! vectors and hands a polars `DataFrame` of [`ROW_GROUP`] rows at a time to
//! polars' batched Parquet writer, so memory stays bounded on long replays.
//! The signal threads never see it.
//!
//! Columns (one row per JSONL line, same order, SIGNALS.md section 10):
//! `ts_ns: i64`, `recv_ns: i64`, `venue: str`, `symbol: str`,
//! `signal: str`, `value: f64`.

use std::io;
use std::path::Path;

use crate::pipeline::sink::RowCollector;

/// The error `--parquet` gives in a build without the `parquet` feature.
pub const NOT_BUILT: &str = "built without the parquet feature; rebuild with --features parquet";

/// The collector for `--parquet <path>` (`None`: no flag, no collector).
///
/// # Errors
/// The file cannot be created, or the binary was built without the
/// `parquet` feature ([`NOT_BUILT`]).
pub fn open_collector(path: Option<&Path>) -> io::Result<Option<Box<dyn RowCollector>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    #[cfg(feature = "parquet")]
    {
        Ok(Some(Box::new(ParquetSink::create(path)?)))
    }
    #[cfg(not(feature = "parquet"))]
    {
        let _ = path;
        Err(io::Error::new(io::ErrorKind::Unsupported, NOT_BUILT))
    }
}

#[cfg(feature = "parquet")]
pub use imp::{ParquetSink, ROW_GROUP};

#[cfg(feature = "parquet")]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};

    use polars::prelude::*;

    use crate::pipeline::processor::SinkMsg;
    use crate::pipeline::sink::{InstrumentNames, RowCollector};
    use feeds::event::InstrumentId;

    /// Rows buffered before they are written as one Parquet row group.
    pub const ROW_GROUP: usize = 1 << 19;

    /// Columnar collector writing Parquet; see the [module docs](super).
    pub struct ParquetSink {
        path: PathBuf,
        writer: Option<BatchedWriter<File>>,
        /// Per instrument id: (venue, symbol).
        names: InstrumentNames,
        ts: Vec<i64>,
        recv: Vec<i64>,
        inst: Vec<u32>,
        signal: Vec<u16>,
        value: Vec<f64>,
        /// Rows written or buffered.
        pub rows: u64,
    }

    fn schema() -> Schema {
        Schema::from_iter([
            Field::new("ts_ns".into(), DataType::Int64),
            Field::new("recv_ns".into(), DataType::Int64),
            Field::new("venue".into(), DataType::String),
            Field::new("symbol".into(), DataType::String),
            Field::new("signal".into(), DataType::String),
            Field::new("value".into(), DataType::Float64),
        ])
    }

    impl ParquetSink {
        /// Creates (truncates) `path` and writes the Parquet header.
        ///
        /// # Errors
        /// The file cannot be created.
        pub fn create(path: &Path) -> io::Result<Self> {
            let file = File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            // No BufWriter: polars writes whole column chunks, and a BufWriter
            // could only flush on drop, hiding the error.
            let writer = ParquetWriter::new(file)
                .batched(&schema())
                .map_err(|e| pl_err(path, &e))?;
            Ok(Self {
                path: path.to_path_buf(),
                writer: Some(writer),
                names: InstrumentNames::default(),
                ts: Vec::with_capacity(ROW_GROUP),
                recv: Vec::with_capacity(ROW_GROUP),
                inst: Vec::with_capacity(ROW_GROUP),
                signal: Vec::with_capacity(ROW_GROUP),
                value: Vec::with_capacity(ROW_GROUP),
                rows: 0,
            })
        }

        /// Writes the buffered rows as one row group.
        fn flush_group(&mut self, outputs: &[String]) -> io::Result<()> {
            if self.ts.is_empty() {
                return Ok(());
            }
            let names = &self.names;
            let name = |i: &u32| names.get(InstrumentId(*i)).unwrap_or(("", ""));
            let venue = StringChunked::from_iter_values(
                "venue".into(),
                self.inst.iter().map(|i| name(i).0),
            );
            let symbol = StringChunked::from_iter_values(
                "symbol".into(),
                self.inst.iter().map(|i| name(i).1),
            );
            let signal = StringChunked::from_iter_values(
                "signal".into(),
                self.signal
                    .iter()
                    .map(|o| outputs.get(usize::from(*o)).map_or("", String::as_str)),
            );
            let df = DataFrame::new(vec![
                Column::new("ts_ns".into(), std::mem::take(&mut self.ts)),
                Column::new("recv_ns".into(), std::mem::take(&mut self.recv)),
                venue.into_column(),
                symbol.into_column(),
                signal.into_column(),
                Column::new("value".into(), std::mem::take(&mut self.value)),
            ])
            .map_err(|e| pl_err(&self.path, &e))?;
            self.inst.clear();
            self.signal.clear();
            if let Some(w) = self.writer.as_mut() {
                w.write_batch(&df).map_err(|e| pl_err(&self.path, &e))?;
            }
            Ok(())
        }
    }

    impl RowCollector for ParquetSink {
        fn write(&mut self, msg: &SinkMsg, outputs: &[String]) -> io::Result<()> {
            match *msg {
                SinkMsg::Instrument(info) => self.names.add(&info),
                SinkMsg::Row {
                    ts_ns,
                    recv_ns,
                    inst,
                    out,
                    value,
                    ..
                } => {
                    // Same filter as the JSONL writer: only rows it would write.
                    let known = self.names.get(inst).is_some();
                    if !known || usize::from(out.0) >= outputs.len() || !value.is_finite() {
                        return Ok(());
                    }
                    self.ts.push(ts_ns);
                    self.recv.push(recv_ns);
                    self.inst.push(inst.index() as u32);
                    self.signal.push(out.0);
                    self.value.push(value);
                    self.rows += 1;
                    if self.ts.len() >= ROW_GROUP {
                        self.flush_group(outputs)?;
                    }
                }
            }
            Ok(())
        }

        fn finish(&mut self, outputs: &[String]) -> io::Result<()> {
            self.flush_group(outputs)?;
            if let Some(w) = self.writer.take() {
                w.finish().map_err(|e| pl_err(&self.path, &e))?;
            }
            Ok(())
        }
    }

    #[cold]
    fn pl_err(path: &Path, e: &PolarsError) -> io::Error {
        io::Error::other(format!("{}: parquet: {e}", path.display()))
    }
}

#[cfg(all(test, not(feature = "parquet")))]
mod tests {
    use super::*;

    #[test]
    fn flag_without_feature_is_a_clear_error() {
        assert!(open_collector(None).unwrap().is_none());
        let e = open_collector(Some(Path::new("x.parquet"))).err().unwrap();
        assert_eq!(e.to_string(), NOT_BUILT);
        assert!(!Path::new("x.parquet").exists());
    }
}
