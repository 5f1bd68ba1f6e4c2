//! What the example bots share (`nats_bot`, `iox_bot`): the latest values of
//! one instrument's signals, the rows lost on the way, and a toy decision.

use std::collections::BTreeMap;

/// Latest values of one instrument.
#[derive(Default)]
pub struct Book {
    values: BTreeMap<String, f64>,
    last_seq: u64,
    lost: u64,
    in_sync: Option<bool>,
}

impl Book {
    /// A row's sequence number: per instrument, over all its signals, so a
    /// hole is rows lost (to a conflating sink or a slow reader).
    pub fn sequence(&mut self, seq: u64) {
        if self.last_seq > 0 && seq > self.last_seq + 1 {
            self.lost += seq - self.last_seq - 1;
        }
        self.last_seq = self.last_seq.max(seq);
    }

    /// A row's value (`book_status` also says whether the book is in sync).
    pub fn set(&mut self, signal: &str, value: f64) {
        if signal == "book_status" {
            self.in_sync = Some(value == 1.0);
        }
        self.values.insert(signal.to_owned(), value);
    }

    /// The status line printed every second.
    pub fn line(&self, venue: &str, symbol: &str) -> String {
        let mid = self
            .values
            .get("mid")
            .map_or("-".to_owned(), |m| format!("{m:.2}"));
        format!(
            "{venue} {symbol}: mid {mid}, {} signals, {} rows lost: {}",
            self.values.len(),
            self.lost,
            self.decision()
        )
    }

    fn decision(&self) -> &'static str {
        let v = |k: &str| self.values.get(k).copied();
        if self.in_sync == Some(false) {
            return "WAIT (book resyncing)";
        }
        // Trades confirm the book when there were any in the window.
        let flow = v("trade_imbalance_10s").unwrap_or(0.0);
        match v("imbalance_l1") {
            Some(i) if i > 0.3 && flow >= 0.0 => "BUY  (bid-heavy book)",
            Some(i) if i < -0.3 && flow <= 0.0 => "SELL (ask-heavy book)",
            Some(_) => "HOLD",
            None => "WAIT (no signals yet)",
        }
    }
}
