//! How one shard's Redis is reached: [`RedisConn`] for commands, [`ClientSource`] for (re)opening
//! its PUB/SUB connection. Either a fixed address or the master a set of sentinels names.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisFuture, Value};

use crate::sentinel::{MasterResolver, SentinelConn};

/// The command connection of one shard: reconnects by itself (to the same address, or to the
/// current master under Sentinel). Cheap to clone.
#[derive(Clone)]
pub(crate) enum RedisConn {
    /// A fixed address (`engine.redis.address`).
    Direct(ConnectionManager),
    /// The master of `engine.redis.sentinel_master_name`.
    Sentinel(SentinelConn),
    /// A Redis Cluster (`engine.redis.cluster_address`): each command goes to the master of
    /// its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Direct(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Direct(c) => c.get_db(),
            RedisConn::Sentinel(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
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
    pub fn switched(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            ClientSource::Fixed(_) => None,
            ClientSource::Sentinel(r) => Some(r.switched()),
        }
    }

    /// A client for the Redis to connect to now.
    pub async fn client(&self) -> Result<redis::Client, RedisError> {
        match self {
            ClientSource::Fixed(c) => Ok((**c).clone()),
            ClientSource::Sentinel(r) => r.client().await,
        }
    }
}
