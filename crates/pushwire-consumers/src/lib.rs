//! pushwire consumers: the push-pull model. Producers write events to a message queue; each
//! configured consumer takes them from the queue, applies them to the node (publications into
//! channel history, or any server API command) and acknowledges only afterwards.
//!
//! Layout:
//! - [`config`]: the `consumers` section, mapping modes, validation.
//! - [`message`]: what a source hands over.
//! - [`processor`]: message → node operations → [`Outcome`] (done / poison / retry), and
//!   back-pressure ([`Processor::ready`]).
//! - [`dispatch`]: [`ApiDispatch`], the server API as `api_command` mode calls it (implemented
//!   by the server: the one parser of API commands).
//! - [`payload`]: Avro / Protobuf bodies decoded to JSON first.
//! - [`template`]: route-mode channel templates; `debezium` mode: Debezium envelopes turned
//!   into the CDC change event, then routed.
//! - [`backoff`], [`metrics`], [`error`]: shared by sources.
//! - [`start`]: spawns the configured consumers ([`start()`], [`Consumers`]).
//! - one module per source, each `run(name, settings, processor, shutdown)` behind a cargo
//!   feature: [`rabbitmq`], [`redis_stream`], [`postgresql_outbox`], [`postgresql_cdc`],
//!   [`mysql_cdc`], [`mqtt`] (Kafka and NATS JetStream in their own modules).

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

mod api_command;
pub mod backoff;
pub mod config;
mod debezium;
pub mod dispatch;
pub mod error;
pub mod hash;
pub mod kafka;
pub mod message;
pub mod metrics;
pub mod mqtt;
pub mod mysql_cdc;
pub mod nats_jetstream;
pub mod outcome;
pub mod payload;
pub mod postgresql_cdc;
pub mod postgresql_outbox;
pub mod processor;
pub mod rabbitmq;
pub mod redis_stream;
mod route;
pub mod start;
pub mod template;

pub use backoff::Backoff;
pub use config::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
pub use dispatch::{ApiDispatch, ApiFailure, Dispatched};
pub use error::ConsumerError;
pub use message::Message;
pub use metrics::{ConsumerMetrics, MetricsRegistry};
pub use processor::{Outcome, Processor};
pub use start::{start, Consumers};
