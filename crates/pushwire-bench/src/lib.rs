//! `pushwire bench`: a load generator for a pushwire (Centrifugo protocol v2) server.
//!
//! It opens many WebSocket subscribers on one channel, publishes timestamped, numbered
//! publications through the server HTTP API at a fixed rate, and reports connect errors,
//! delivery loss and duplicates, publish-to-receive latency percentiles and, optionally, the
//! server's resident memory per connection.
//!
//! Layout:
//! - [`args`][]: [`BenchArgs`], the command-line options.
//! - `run`: [`run`], one bench run.
//! - `subscriber`: one WebSocket connection task.
//! - `publisher`: the HTTP API publisher.
//! - `wire`: the client side of the JSON protocol.
//! - `pace`: fixed-rate scheduling of connects and publishes.
//! - `seq`, `stats`: duplicate detection and sharded latency/delivery statistics.
//! - `memory`, `limits`: `/proc` readers (server VmRSS, own open-file limit).
//! - [`report`][]: [`BenchReport`].

pub mod args;
mod limits;
mod memory;
mod pace;
mod publisher;
pub mod report;
mod run;
mod seq;
mod stats;
mod subscriber;
mod wire;

pub use args::BenchArgs;
pub use report::BenchReport;
pub use run::run;
