//! `kind = "jsonl"`: JSON Lines into a file, on the sink's own thread.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use feeds::event::InstrumentId;
use signals::OutputId;

use super::fanout::{Item, SinkCounters, Worker};
use crate::pipeline::processor::SinkMsg;
use crate::pipeline::sink::JsonlWriter;

/// The worker of a JSON Lines file sink.
pub struct JsonlSink {
    w: JsonlWriter<File>,
    failed: bool,
}

impl JsonlSink {
    /// Creates (truncates) `path`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &Path, outputs: Arc<[String]>) -> io::Result<Self> {
        let f = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self {
            w: JsonlWriter::new(f, outputs),
            failed: false,
        })
    }
}

/// The sink message of an item (what the JSON Lines writer renders).
pub fn sink_msg(item: &Item) -> SinkMsg {
    match *item {
        Item::Instrument(info) => SinkMsg::Instrument(info),
        Item::Row(r) => SinkMsg::Row {
            ts_ns: r.ts_ns,
            recv_ns: r.recv_ns,
            inst: InstrumentId(r.instrument),
            out: OutputId(r.signal),
            value: r.value,
            t_frame: 0,
        },
    }
}

impl Worker for JsonlSink {
    fn deliver(&mut self, batch: &[Item], c: &SinkCounters) {
        for item in batch {
            let row = matches!(item, Item::Row(_));
            if self.failed {
                if row {
                    c.dropped.inc();
                }
                continue;
            }
            match self.w.write(&sink_msg(item)) {
                Ok(()) if row => c.rows.inc(),
                Ok(()) => {}
                Err(e) => {
                    eprintln!("error: jsonl sink: {e}; its rows are dropped from now on");
                    c.errors.inc();
                    self.failed = true;
                }
            }
        }
    }

    fn idle(&mut self, c: &SinkCounters) {
        if !self.failed && self.w.flush().is_err() {
            c.errors.inc();
            self.failed = true;
        }
    }

    fn finish(&mut self, c: &SinkCounters) {
        self.idle(c);
    }
}
