//! Test support for pushwire: everything a `tests/` file needs to start, so each test stays
//! short.
//!
//! - [`TestServer`]: a real server on `127.0.0.1:0` with a test configuration.
//! - [`WsClient`]: a raw protocol client over real WebSocket (JSON).
//! - [`token`]: HS256 tokens signed with [`SECRET`]; [`eventually`], [`poll_until`] and
//!   [`unique`] come from the light layer, `pushwire-testkit` (no server dependency).
//! - [`sdk`]: runs the real SDK scripts under `sdk-tests/` against a server.
//! - [`tls_redis::TlsRedis`]: a redis-server serving TLS only, with a test certificate;
//!   [`tls_topology`]: TLS-only Sentinel and Cluster deployments.
//! - [`haproxy::HaProxy`]: a real HAProxy balancing every request over a set of nodes.
//! - [`sdk_live::LiveScript`]: an SDK script run in the background, read line by line.
//! - [`stoppable::StoppableProcess`]: a dependency in its own process that a test can hang
//!   (SIGSTOP) and resume (SIGCONT).

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod cert;
pub mod consume;
pub mod haproxy;
pub mod metrics;
pub mod node_process;
pub mod sdk;
pub mod sdk_live;
mod server;
pub mod stoppable;
pub mod tls_redis;
pub mod tls_topology;
mod ws;

pub use server::{add_delta_namespace, test_config, TestServer, API_KEY, SECRET};
pub use ws::WsClient;

pub use pushwire_testkit::{eventually, poll_until, unique};

/// Signs `claims` with HS256 and [`SECRET`].
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers (dozens of tests) pass `json!` literals; a `&` at every call site buys nothing"
)]
pub fn token(claims: serde_json::Value) -> String {
    pushwire_testkit::hs256_token(SECRET, &claims)
}

/// Current Unix time in seconds.
pub fn now() -> i64 {
    pushwire_core::auth::unix_now()
}
