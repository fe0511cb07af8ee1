//! What the Redis engine tests share: the Redis on 127.0.0.1:6379 (a missing one fails the
//! test, naming how to start it), a fresh key prefix per test, and the engine settings on it.

use std::time::Duration;

use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;

/// The shared Redis (scripts/services.sh starts it).
pub(crate) const REDIS: &str = "redis://127.0.0.1:6379";

/// A connection to the shared Redis; panics naming how to start it when it is missing.
pub(crate) async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).expect("redis url");
    match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!(
            "the Redis engine tests need a real Redis at {REDIS} (scripts/services.sh, or \
             redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' \
             --appendonly no): {e}"
        ),
    }
}

/// A key prefix no other test uses.
pub(crate) fn unique_prefix() -> String {
    pushwire_test_support::unique("pwtest.")
}

/// The Redis engine at [`REDIS`] under `prefix`, with fast PUB/SUB reconnects.
pub(crate) fn on_redis(c: &mut ServerConfig, prefix: &str) {
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.address = REDIS.into();
    c.engine.redis.prefix = prefix.into();
    c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
    c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
}
