//! Telemetry: the metric catalogue ([`metric`]), the Prometheus recorder
//! ([`prometheus`]) and tracing setup ([`logs`]).
//!
//! Owns every metric name; other modules emit through the constants here
//! with the `metrics` macros and never spell a name themselves. Nothing here
//! serves HTTP: [`crate::admin`] renders the recorder's handle. On the hot
//! path, count per batch, not per event.

pub mod logs;
pub mod metric;
pub mod prometheus;

pub use logs::{LogFormat, init_tracing};
pub use prometheus::{build_recorder, install_recorder, upkeep};
