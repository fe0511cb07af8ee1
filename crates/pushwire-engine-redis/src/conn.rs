//! How one shard's Redis is reached: [`RedisConn`] for commands (behind the shard's circuit
//! breaker), [`ClientSource`] for (re)opening its PUB/SUB connection. Either a fixed address,
//! the master a set of sentinels names, or a Redis Cluster.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisFuture, Value};

use crate::circuit::Circuit;
use crate::sentinel::{MasterResolver, SentinelConn};

/// The command connection of one shard: reconnects by itself (to the same address, or to the
/// current master under Sentinel), and every command goes through the shard's [`Circuit`]
/// (refused at once while it is open). Cheap to clone; clones share the circuit.
#[derive(Clone)]
pub(crate) struct RedisConn {
    link: Link,
    circuit: Arc<Circuit>,
}

/// How a shard's commands reach Redis.
#[derive(Clone)]
pub(crate) enum Link {
    /// A fixed address (`engine.redis.address`).
    Direct(ConnectionManager),
    /// The master of `engine.redis.sentinel_master_name`.
    Sentinel(SentinelConn),
    /// A Redis Cluster (`engine.redis.cluster_address`): each command goes to the master of
    /// its key's slot.
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Commands over `link`, guarded by `circuit`.
    pub(crate) fn new(link: Link, circuit: Arc<Circuit>) -> RedisConn {
        RedisConn { link, circuit }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let call = match &mut self.link {
            Link::Direct(c) => c.req_packed_command(cmd),
            Link::Sentinel(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        };
        let circuit = &self.circuit;
        Box::pin(circuit.run(call))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let call = match &mut self.link {
            Link::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        let circuit = &self.circuit;
        Box::pin(circuit.run(call))
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Direct(c) => c.get_db(),
            Link::Sentinel(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the PUB/SUB controller opens its connection after a loss.
#[derive(Clone)]
pub(crate) enum ClientSource {
    /// Always the same address.
    Fixed(Box<redis::Client>),
    /// The master the sentinels name at that moment.
    Sentinel(Arc<MasterResolver>),
}

impl ClientSource {
    /// Notified when the Redis to connect to changes (a Sentinel master switch); `None` for
    /// a fixed address.
    pub(crate) fn switched(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            ClientSource::Fixed(_) => None,
            ClientSource::Sentinel(r) => Some(r.switched()),
        }
    }

    /// A client for the Redis to connect to now.
    pub(crate) async fn client(&self) -> Result<redis::Client, RedisError> {
        match self {
            ClientSource::Fixed(c) => Ok((**c).clone()),
            ClientSource::Sentinel(r) => r.client().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RedisMetrics;
    use pushwire_core::config::CircuitBreakerConfig;
    use std::time::Duration;

    /// Error replies of a real Redis (script error, NOSCRIPT, WRONGTYPE) go through the
    /// circuit many times over its threshold without opening it: Redis answered. (The
    /// connection hands them up as `Value::ServerError` answers, turned into errors above
    /// the circuit; `circuit::tests` covers error kinds that reach it as `Err`.)
    #[tokio::test]
    async fn error_replies_of_a_real_redis_do_not_open_the_circuit() {
        let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
        let manager = ConnectionManager::new(client)
            .await
            .expect("the engine's unit tests need a Redis at 127.0.0.1:6379");
        let metrics = std::sync::Arc::new(RedisMetrics::default());
        let circuit = Circuit::new(
            &CircuitBreakerConfig {
                failures: 2,
                open_for: Duration::from_secs(60),
            },
            "redis://127.0.0.1:6379",
            metrics.clone(),
        );
        let mut conn = RedisConn::new(Link::Direct(manager), circuit.clone());
        let key = format!("pwtest.circuit.{}", uuid::Uuid::new_v4());
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("a string")
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .expect("SET");
        for round in 0..3 {
            let script: Result<Value, _> = redis::cmd("EVAL")
                .arg("return redis.error_reply('boom')")
                .arg(0)
                .query_async(&mut conn)
                .await;
            let noscript: Result<Value, _> = redis::cmd("EVALSHA")
                .arg("0123456789012345678901234567890123456789")
                .arg(0)
                .query_async(&mut conn)
                .await;
            let wrongtype: Result<Value, _> = redis::cmd("LPUSH")
                .arg(&key)
                .arg("x")
                .query_async(&mut conn)
                .await;
            for (what, r) in [
                ("script error", script),
                ("NOSCRIPT", noscript),
                ("WRONGTYPE", wrongtype),
            ] {
                let e = r.expect_err(what);
                assert!(
                    crate::circuit::refusal(&e).is_none(),
                    "round {round}: {what} was refused: {e}"
                );
                assert!(!e.is_io_error(), "{what} is a reply: {e}");
            }
        }
        assert!(
            !circuit.is_open(),
            "9 error replies, threshold 2: still closed"
        );
        assert_eq!(RedisMetrics::get(&metrics.circuit_open), 0);
        assert_eq!(RedisMetrics::get(&metrics.circuit_refused), 0);
        let _: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}
