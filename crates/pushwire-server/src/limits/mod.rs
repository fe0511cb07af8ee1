//! Limits enforced in front of the transports (the listener enforces the TCP-level ones, see
//! [`crate::listener`]).
//!
//! - [`connect_rate`]: connection attempts per second per IP (`http_server.connect_rate_per_ip`),
//!   HTTP 429 beyond it.

pub mod connect_rate;
