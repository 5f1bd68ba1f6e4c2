//! Network layer of the engine.
//!
//! - [`http`]: REST `GET`s on hyper (plain and TLS), run by one control thread per process.
//! - [`backoff`]: exponential reconnect backoff with jitter.
//! - [`budget`]: per-venue request budgets (connection attempts, REST weight) and venue pauses.
//! - [`feed`]: the per-connection WebSocket feed loop run by the pinned receiver thread.
//! - [`busy`]: the same loop busy-polling a non-blocking socket (`receiver_mode = "busy_poll"`).
//! - [`conn`]: the connection state machine both loops follow (no socket in it).
//! - [`socket`]: the WebSocket under the epoll loop: tokio-tungstenite, or yawc with
//!   permessage-deflate (`[[feeds]] compression = "deflate"`, feature `deflate`).
//!
//! Everything here is I/O glue: frames and snapshot bodies are handed to a
//! [`feed::FeedHandler`] as `&mut [u8]`, and parsing stays in sans-IO code elsewhere.

pub mod backoff;
pub mod budget;
pub mod busy;
pub mod conn;
pub mod feed;
pub mod http;
pub mod socket;

pub use backoff::Backoff;
pub use feed::{run_feed, run_feeds, FeedHandler, FeedOptions, FeedStats, SnapshotRequests};
pub use http::{get, HttpError, HttpResponse};
pub use socket::Compression;
