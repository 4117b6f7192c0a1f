//! loyalty-scorer: scores retail purchase streams for loyalty programs.
//!
//! [`config`] comes first: the daemon's settings, layered (defaults, file,
//! environment, command line) and validated once before anything runs.
//!
//! The data path, in order:
//!
//! 1. [`decode`]: message bytes -> [`event::Event`] (zero-copy, simd-json) or a
//!    [`decode::DecodeError`] carrying the contract's reason code.
//! 2. [`state`]: the member's state, loaded from a [`state::StateStore`].
//! 3. [`rules`]: the program model and the engine that applies it to one event
//!    and one member's state; pure and synchronous, no I/O.
//! 4. [`output`]: the reward event, encoded as JSON; dead letters.
//! 5. [`pipeline`]: drives 1-4 over a stream of messages and hands the results to
//!    a [`pipeline::Sink`] (a file for `score`, a report for `simulate`);
//!    [`batch`] does the same a batch at a time against a shared store, one
//!    round trip to load and one to write.
//! 6. [`kafka`] and [`daemon`]: the `run` daemon consumes batches from Kafka,
//!    scores them with [`batch`], produces rewards and dead letters, and
//!    stores offsets only for finished events.
//!
//! [`simulate`] aggregates the outcomes of a run into the cost report;
//! [`generate`] makes realistic event streams for `demo` and load tests.
//!
//! Around the data path: [`telemetry`] names every metric and sets up the
//! recorder and logs; [`admin`] serves `/metrics` and the health endpoints;
//! [`shutdown`] turns signals into an orderly stop.

pub mod admin;
pub mod batch;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod event;
pub mod generate;
pub mod kafka;
pub mod outcome;
pub mod output;
pub mod pipeline;
pub mod rules;
pub mod shutdown;
pub mod simulate;
pub mod state;
pub mod telemetry;
