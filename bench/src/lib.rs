//! Market generator, exchange simulator and load tools.
//!
//! * [`generator`]: a seeded synthetic Binance spot feed (trades, bookTicker,
//!   diff depth, REST snapshots) and a capture writer.
//! * [`source`]: the [`source::FrameSource`] trait feeding the simulator, with
//!   implementations for capture files and the generator.
//! * [`sim`]: a local Binance-protocol exchange simulator (WebSocket streams
//!   and `GET /api/v3/depth` on one TCP port) with deterministic snapshot
//!   handling and fault injection.

pub mod fixed8;
pub mod generator;
pub mod sim;
pub mod source;
