//! Limits enforced in front of the transports (the listener enforces the TCP-level ones, see
//! [`crate::listener`]).
//!
//! - [`connect_rate`]: connection attempts per second per IP (`http_server.connect_rate_per_ip`),
//!   HTTP 429 beyond it.
//! - [`admission`]: node-wide admission of new connections: `node.memory_budget` and
//!   `http_server.connect_rate_per_node`, HTTP 503 with `Retry-After` beyond them.
//! - [`client_ip`]: which address those limits count, behind trusted reverse proxies
//!   (`http_server.trusted_proxies`).

pub mod admission;
pub mod client_ip;
pub mod connect_rate;
