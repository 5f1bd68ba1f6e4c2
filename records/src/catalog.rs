//! The id → name tables of one engine's records.

use serde::{Deserialize, Serialize};

/// What a publishing engine's ids mean: sent to every new subscriber and
/// published (retained) whenever an instrument is added.
///
/// ```
/// use records::{Catalog, CatalogInstrument};
///
/// let c = Catalog {
///     version: records::VERSION,
///     engine: "shard-a".into(),
///     venues: vec!["binance-spot".into()],
///     signals: vec!["mid".into(), "book_status".into()],
///     instruments: vec![CatalogInstrument { id: 0, venue: 0, symbol: "BTCUSDT".into() }],
/// };
/// let back = Catalog::from_json(&c.to_json()).unwrap();
/// assert_eq!(back.names(0, 1), Some(("binance-spot", "BTCUSDT", "book_status")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// [`crate::VERSION`] of the records these tables describe.
    pub version: u8,
    /// The publishing engine (`[output] engine`, or host and process id).
    pub engine: String,
    /// Venue names by venue id.
    pub venues: Vec<String>,
    /// Signal (output) names by signal id.
    pub signals: Vec<String>,
    /// Instruments announced so far (any order; ids are the engine's).
    pub instruments: Vec<CatalogInstrument>,
}

/// One instrument of a [`Catalog`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogInstrument {
    /// Instrument id ([`crate::Record::instrument`]).
    pub id: u32,
    /// Venue id.
    pub venue: u16,
    /// The venue's symbol.
    pub symbol: String,
}

impl Catalog {
    /// The catalog as JSON.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a catalog message.
    ///
    /// # Errors
    /// When `b` is not a catalog's JSON.
    pub fn from_json(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }

    /// Adds or replaces an instrument.
    pub fn add(&mut self, id: u32, venue: u16, symbol: &str) {
        match self.instruments.iter_mut().find(|i| i.id == id) {
            Some(i) => {
                i.venue = venue;
                symbol.clone_into(&mut i.symbol);
            }
            None => self.instruments.push(CatalogInstrument {
                id,
                venue,
                symbol: symbol.to_owned(),
            }),
        }
    }

    /// `(venue, symbol, signal)` names of a record's ids.
    #[must_use]
    pub fn names(&self, instrument: u32, signal: u16) -> Option<(&str, &str, &str)> {
        let i = self.instruments.iter().find(|i| i.id == instrument)?;
        let venue = self.venues.get(usize::from(i.venue))?;
        let signal = self.signals.get(usize::from(signal))?;
        Some((venue, &i.symbol, signal))
    }
}
