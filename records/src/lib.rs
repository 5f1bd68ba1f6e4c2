//! The records a running wiresignal engine publishes, for the bots that
//! consume them.
//!
//! - [`Record`]: one signal value (or book-status change) as a fixed-size,
//!   little-endian, versioned 48-byte record ([`Record::encode`],
//!   [`Record::decode`]): what the binary sinks (shared memory, NATS
//!   `format = "binary"`) carry.
//! - [`Catalog`] (feature `catalog`, default): the id → name tables (venues,
//!   instruments, signals) a record's ids refer to, published by the engine
//!   on subscribe and as a retained catalog message, as JSON.
//! - [`subject`]: the NATS subject of a `(venue, symbol, signal)`.
//!
//! No async runtime, no engine: a bot depends on this crate alone.
//!
//! ```
//! use records::{Record, FLAG_STATUS};
//!
//! let r = Record {
//!     venue: 0,
//!     instrument: 7,
//!     signal: 3,
//!     flags: 0,
//!     ts_ns: 1_700_000_000_000_000_000,
//!     recv_ns: 1_700_000_000_000_500_000,
//!     seq: 42,
//!     value: 97_000.5,
//! };
//! let bytes = r.encode();
//! assert_eq!(bytes.len(), records::SIZE);
//! assert_eq!(Record::decode(&bytes), Ok(r));
//! assert_eq!(r.flags & FLAG_STATUS, 0);
//! ```

#![deny(missing_docs)]

#[cfg(feature = "catalog")]
mod catalog;
mod subject;

#[cfg(feature = "catalog")]
pub use catalog::{Catalog, CatalogInstrument};
pub use subject::{catalog_subject, subject, subject_token, SUBJECT_PREFIX};

/// Size of an encoded [`Record`] in bytes.
pub const SIZE: usize = 48;
/// Format version in byte 0 of every record.
pub const VERSION: u8 = 1;
/// Magic in byte 1: tells a record from stray bytes.
pub const MAGIC: u8 = 0x57; // 'W'

/// [`Record::flags`]: a book-status row (`book_status` 0/1, `book_gap_s`):
/// sinks never drop or conflate these.
pub const FLAG_STATUS: u16 = 1 << 0;

/// One output row of the engine.
///
/// Layout (little-endian, 48 bytes, every field naturally aligned):
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 1 | version ([`VERSION`]) |
/// | 1 | 1 | magic ([`MAGIC`]) |
/// | 2 | 2 | `venue` |
/// | 4 | 4 | `instrument` |
/// | 8 | 2 | `signal` |
/// | 10 | 2 | `flags` |
/// | 12 | 4 | reserved, zero |
/// | 16 | 8 | `ts_ns` |
/// | 24 | 8 | `recv_ns` |
/// | 32 | 8 | `seq` |
/// | 40 | 8 | `value` (IEEE 754 binary64) |
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// Venue id (index into [`Catalog::venues`]).
    pub venue: u16,
    /// Instrument id of the publishing engine ([`Catalog::instruments`]).
    pub instrument: u32,
    /// Signal (output) id (index into [`Catalog::signals`]).
    pub signal: u16,
    /// [`FLAG_STATUS`], other bits zero.
    pub flags: u16,
    /// Raw exchange timestamp of the triggering event, ns.
    pub ts_ns: i64,
    /// Receive timestamp of the triggering event, ns (`CLOCK_REALTIME`).
    pub recv_ns: i64,
    /// Per-(venue, symbol) sequence number of the row, from 1, gapless on
    /// every sink that delivered everything: a hole is a lost row.
    pub seq: u64,
    /// The value.
    pub value: f64,
}

/// Why bytes are not a [`Record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`SIZE`] bytes.
    Short(usize),
    /// Byte 1 is not [`MAGIC`].
    Magic(u8),
    /// A version this crate does not read.
    Version(u8),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short(n) => write!(f, "record needs {SIZE} bytes, got {n}"),
            Self::Magic(b) => write!(f, "not a record (magic {b:#04x})"),
            Self::Version(v) => write!(f, "record version {v} is not supported"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Record {
    /// The record's bytes.
    #[inline]
    #[must_use]
    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        self.encode_into(&mut b);
        b
    }

    /// Writes the record into `out` (e.g. a loaned shared-memory sample).
    #[inline]
    pub fn encode_into(&self, out: &mut [u8; SIZE]) {
        out[0] = VERSION;
        out[1] = MAGIC;
        out[2..4].copy_from_slice(&self.venue.to_le_bytes());
        out[4..8].copy_from_slice(&self.instrument.to_le_bytes());
        out[8..10].copy_from_slice(&self.signal.to_le_bytes());
        out[10..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..16].copy_from_slice(&[0; 4]);
        out[16..24].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[24..32].copy_from_slice(&self.recv_ns.to_le_bytes());
        out[32..40].copy_from_slice(&self.seq.to_le_bytes());
        out[40..48].copy_from_slice(&self.value.to_le_bytes());
    }

    /// Reads a record from the first [`SIZE`] bytes of `b`.
    ///
    /// # Errors
    /// [`DecodeError`] when `b` is short, not a record, or of another version.
    #[inline]
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let Some(b) = b.first_chunk::<SIZE>() else {
            return Err(DecodeError::Short(b.len()));
        };
        if b[1] != MAGIC {
            return Err(DecodeError::Magic(b[1]));
        }
        if b[0] != VERSION {
            return Err(DecodeError::Version(b[0]));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            w
        };
        Ok(Self {
            venue: u16_at(2),
            instrument: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            signal: u16_at(8),
            flags: u16_at(10),
            ts_ns: i64::from_le_bytes(u64_at(16)),
            recv_ns: i64::from_le_bytes(u64_at(24)),
            seq: u64::from_le_bytes(u64_at(32)),
            value: f64::from_le_bytes(u64_at(40)),
        })
    }

    /// Whether this is a book-status row ([`FLAG_STATUS`]).
    #[must_use]
    pub fn is_status(&self) -> bool {
        self.flags & FLAG_STATUS != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_fixed() {
        let r = Record {
            venue: 0x0102,
            instrument: 0x0304_0506,
            signal: 0x0708,
            flags: FLAG_STATUS,
            ts_ns: 1,
            recv_ns: -2,
            seq: 3,
            value: 1.5,
        };
        let b = r.encode();
        assert_eq!(&b[..12], &[1, 0x57, 2, 1, 6, 5, 4, 3, 8, 7, 1, 0]);
        assert_eq!(&b[12..16], &[0; 4]);
        assert_eq!(&b[16..24], &1i64.to_le_bytes());
        assert_eq!(&b[24..32], &(-2i64).to_le_bytes());
        assert_eq!(&b[32..40], &3u64.to_le_bytes());
        assert_eq!(&b[40..], &1.5f64.to_le_bytes());
        assert!(Record::decode(&b).is_ok_and(|d| d.is_status()));
    }

    #[test]
    fn bad_bytes_are_errors() {
        let mut b = Record::decode(&[0; 4]);
        assert_eq!(b, Err(DecodeError::Short(4)));
        let mut x = [0u8; SIZE];
        b = Record::decode(&x);
        assert_eq!(b, Err(DecodeError::Magic(0)));
        x[1] = MAGIC;
        x[0] = 9;
        assert_eq!(Record::decode(&x), Err(DecodeError::Version(9)));
    }

    proptest! {
        #[test]
        fn round_trips(venue: u16, instrument: u32, signal: u16, flags: u16,
                       ts_ns: i64, recv_ns: i64, seq: u64, bits: u64) {
            let r = Record { venue, instrument, signal, flags, ts_ns, recv_ns, seq,
                             value: f64::from_bits(bits) };
            let d = Record::decode(&r.encode()).unwrap();
            prop_assert_eq!(d.value.to_bits(), bits);
            prop_assert_eq!(Record { value: 0.0, ..d }, Record { value: 0.0, ..r });
        }
    }
}
