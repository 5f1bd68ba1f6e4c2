//! Book signals (SIGNALS.md §4): evaluated on valid L1 samples or L2 events.
//!
//! The L1 signals are stateless functions of one valid [`crate::Quote`];
//! their structs only remember the last value. `update` returns `None` for an
//! invalid quote (not a sample, §2.4).

pub mod depth_imbalance;
pub mod imbalance;
pub mod microprice;
pub mod mid;
pub mod spread;

pub use depth_imbalance::DepthImbalance;
pub use imbalance::ImbalanceL1;
pub use microprice::Microprice;
pub use mid::Mid;
pub use spread::SpreadBps;
