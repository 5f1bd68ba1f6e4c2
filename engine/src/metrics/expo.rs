//! Prometheus text exposition format 0.0.4: a small writer that keeps every
//! family's samples together under its `# HELP` / `# TYPE` lines and escapes
//! label values and help text as the format requires.
//!
//! ```
//! use engine::metrics::expo::{Exposition, Kind};
//! let mut e = Exposition::new();
//! e.family("wiresignal_feed_messages_total", Kind::Counter, "Frames parsed into events.");
//! e.sample_u64("wiresignal_feed_messages_total", &[("feed", "binance-spot#0")], 42);
//! let text = e.finish();
//! let lines: Vec<&str> = text.lines().collect();
//! assert_eq!(
//!     lines,
//!     [
//!         "# HELP wiresignal_feed_messages_total Frames parsed into events.",
//!         "# TYPE wiresignal_feed_messages_total counter",
//!         "wiresignal_feed_messages_total{feed=\"binance-spot#0\"} 42",
//!     ]
//! );
//! ```

use std::fmt::Write as _;

/// `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric family type (`# TYPE` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter (`_total` names).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Quantiles plus `_sum` and `_count`.
    Summary,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// Builds one exposition text.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Empty text.
    #[must_use]
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Starts a family: `# HELP` and `# TYPE`. Write all its samples next.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample with an integer value.
    pub fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.series(name, labels);
        let mut b = itoa::Buffer::new();
        self.out.push_str(b.format(v));
        self.out.push('\n');
    }

    /// One sample with a signed integer value.
    pub fn sample_i64(&mut self, name: &str, labels: &[(&str, &str)], v: i64) {
        self.series(name, labels);
        let mut b = itoa::Buffer::new();
        self.out.push_str(b.format(v));
        self.out.push('\n');
    }

    /// One sample with a float value (`NaN`, `+Inf`, `-Inf` spelled as the
    /// format wants).
    pub fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.series(name, labels);
        push_f64(&mut self.out, v);
        self.out.push('\n');
    }

    fn series(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
    }

    /// The text.
    #[must_use]
    pub fn finish(self) -> String {
        self.out
    }
}

fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let mut b = ryu::Buffer::new();
        out.push_str(b.format_finite(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels_and_help() {
        let mut e = Exposition::new();
        e.family("m", Kind::Gauge, "a \\ b\nc");
        e.sample_f64("m", &[("a", "x\"y\\z\nw"), ("b", "")], 0.25);
        e.sample_f64("m", &[], f64::NAN);
        e.sample_f64("m", &[], f64::INFINITY);
        e.sample_i64("m", &[], -3);
        assert_eq!(
            e.finish(),
            "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 0.25\nm NaN\nm +Inf\nm -3\n"
        );
    }
}
