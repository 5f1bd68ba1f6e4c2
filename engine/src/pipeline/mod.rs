//! The runtime pipeline: clocks, rings, receivers' ingest, signal threads,
//! sink, counters.

pub mod clock;
pub mod ingest;
pub mod overload;
pub mod processor;
pub mod ring;
pub mod runtime;
pub mod sink;
pub mod stats;
pub mod wire;
