//! The `pushwire` server: configuration, listener, transports, server API, auth and
//! lifecycle around a [`pushwire_core::Node`].
//!
//! Layout:
//! - [`config`]: the layered, validated configuration.
//! - [`app`]: shared state, the router, start and graceful shutdown.
//! - [`listener`]: the connection-limited TCP listener.
//! - [`transport`]: WebSocket (and the other transports), origin checks.
//! - [`api`]: the Centrifugo-shaped server API.
//! - [`auth`]: JWT verification.
//! - [`observe`]: health and metrics.
//! - [`cli`]: the command line.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod listener;
pub mod observe;
pub mod transport;

pub use app::{AppState, RunningServer};
pub use config::ServerConfig;
