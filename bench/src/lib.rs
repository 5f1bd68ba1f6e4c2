//! Market generator, exchange simulator and load tools.
