//! [`RedisOccupancy`]: which nodes hold subscribers of each channel, in Redis, so
//! `channel_occupied` / `channel_vacated` are cluster-wide and a dead node's channels are
//! vacated by a survivor (see the scripts `lua/occupy.lua`, `vacate.lua`, `heartbeat.lua`,
//! `sweep.lua`).

use crate::conn::RedisConn;
use async_trait::async_trait;
use pushwire_core::engine::{ChannelOccupancy, EngineError};

use crate::error::backend;
use crate::keys::Keys;
use crate::scripts;

/// Channel occupancy shared by every node on one Redis (and one prefix).
#[derive(Clone)]
pub struct RedisOccupancy {
    conn: RedisConn,
    keys: Keys,
}

impl std::fmt::Debug for RedisOccupancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOccupancy").finish_non_exhaustive()
    }
}

impl RedisOccupancy {
    pub(crate) fn new(conn: RedisConn, keys: Keys) -> RedisOccupancy {
        RedisOccupancy { conn, keys }
    }
}

#[async_trait]
impl ChannelOccupancy for RedisOccupancy {
    async fn occupy(&self, channel: &str, node: &str) -> Result<bool, EngineError> {
        let became: i64 = scripts::OCCUPY
            .key(self.keys.occupancy(channel))
            .key(self.keys.node_channels(node))
            .arg(node)
            .arg(channel)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(became == 1)
    }

    async fn vacate(&self, channel: &str, node: &str) -> Result<bool, EngineError> {
        let became: i64 = scripts::VACATE
            .key(self.keys.occupancy(channel))
            .key(self.keys.node_channels(node))
            .arg(node)
            .arg(channel)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(became == 1)
    }

    async fn heartbeat(&self, node: &str) -> Result<(), EngineError> {
        let _: i64 = scripts::HEARTBEAT
            .key(self.keys.node_heartbeats())
            .arg(node)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn sweep(&self, ttl_ms: u64) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        scripts::SWEEP
            .key(self.keys.node_heartbeats())
            .arg(ttl_ms)
            .arg(self.keys.occupancy_base())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }
}
