//! The light layer of pushwire's test support, with no server dependency: engine, consumer
//! and client tests use it without linking the server, and the heavier
//! `pushwire-test-support` builds on it.
//!
//! - [`eventually`] / [`poll_until`]: wait for a condition, the one implementation of it.
//! - [`unique`]: names that do not collide between tests running in parallel.
//! - [`hs256_token`]: a signed HS256 token.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

mod token;
mod unique;
mod wait;

pub use token::hs256_token;
pub use unique::unique;
pub use wait::{eventually, poll_until, POLL_EVERY};
