//! Market generator, exchange simulator and load tools.
//!
//! * [`generator`]: a seeded synthetic Binance spot feed (trades, bookTicker,
//!   diff depth, REST snapshots) and a capture writer.
//! * [`source`]: the [`source::FrameSource`] trait feeding the simulator, with
//!   implementations for capture files and the generator.
//! * [`sim`]: a local Binance-protocol exchange simulator (WebSocket streams
//!   and `GET /api/v3/depth` on one TCP port) with deterministic snapshot
//!   handling and fault injection.
//! * [`http`]: the HTTP/1.1 front door (hyper) both servers share: WebSocket
//!   upgrades handed back as raw sockets, plain requests answered by a handler.
//! * [`ws`]: the server side of an accepted WebSocket (tungstenite, or yawc
//!   with permessage-deflate under feature `deflate`).
//! * [`load`]: a paced load server (fixed rate, ramp, spike, soak) with
//!   send stamps in the frames, baseline clients and the benchmark suite.

pub mod fixed8;
pub mod generator;
pub mod http;
pub mod load;
pub mod sim;
pub mod source;
pub mod ws;
