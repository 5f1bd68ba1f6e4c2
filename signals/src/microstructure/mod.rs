//! Market-microstructure estimators (SIGNALS.md §5).

pub mod kyle_lambda;

pub use kyle_lambda::KyleLambda;
