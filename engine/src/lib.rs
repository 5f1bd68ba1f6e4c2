//! The wiresignal engine runtime: configuration, the threaded pipeline,
//! replay, the live feed runner, the recorder and the demo.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod app;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod live;
pub mod metrics;
pub mod net;
pub mod parquet;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod report;
pub mod shutdown;
pub mod sinks;
