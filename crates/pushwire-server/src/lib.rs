//! The `pushwire` server: configuration, listener, transports, server API, auth and
//! lifecycle around a [`pushwire_core::Node`].
//!
//! Layout:
//! - [`config`]: the layered, validated configuration.
//! - [`engine`]: builds the node on the configured engine (memory, embedded or Redis).
//! - [`state`]: the state every handler shares; [`app`]: the router, start and graceful
//!   shutdown.
//! - [`listener`]: the TCP listener: HTTP/1.1 and HTTP/2, TLS ([`tls`]), connection limits
//!   and timeouts; [`limits`]: per-IP connect rate.
//! - [`transport`]: WebSocket (and the other transports), origin checks.
//! - [`api`]: the Centrifugo-shaped server API; [`grpc_api`]: the same API over gRPC;
//!   [`http_status`]: the one table of error code → HTTP status.
//! - [`auth`]: JWT verification.
//! - [`lifecycle`]: lifecycle event sinks (webhook, Redis stream) with spools and retries.
//! - [`proxy`]: connect, refresh, subscribe, publish, sub_refresh, rpc and send proxies to
//!   the application backend over HTTP.
//! - [`observe`]: health and metrics; [`admin`]: the admin web page.
//! - [`cli`]: the command line and its client subcommands (`gentoken`, `sub`, `pub`).

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod grpc_api;
pub mod http_status;
pub mod lifecycle;
pub mod limits;
pub mod listener;
pub mod nats_broker;
pub mod observe;
pub mod proxy;
pub mod state;
pub mod tls;
pub mod transport;

pub use app::RunningServer;
pub use config::ServerConfig;
pub use state::AppState;
