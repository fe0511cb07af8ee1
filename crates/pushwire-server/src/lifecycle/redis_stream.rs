//! The Redis stream sink: each event is one `XADD <stream> MAXLEN ~ <max_len> * e <json>`,
//! a batch is one pipeline.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Delivery;

/// Appends events to one Redis stream.
#[derive(Clone)]
pub struct RedisStream {
    client: redis::Client,
    conn: Option<ConnectionManager>,
    stream: String,
    max_len: u64,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStream")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisStream {
    /// A sink to `stream` at `address` (validated); connects lazily, so an unreachable Redis
    /// at start only delays delivery. One delivery (connecting included) takes at most
    /// `timeout`, and is not cut shorter.
    pub fn new(address: &str, stream: &str, max_len: u64, timeout: Duration) -> RedisStream {
        RedisStream {
            client: redis::Client::open(address).expect("validated Redis URL"),
            conn: None,
            stream: stream.to_owned(),
            max_len,
            timeout,
        }
    }

    /// Appends one batch of JSON events in order; retried as a whole when it fails.
    pub async fn deliver(&mut self, events: &[Vec<u8>]) -> Delivery {
        match tokio::time::timeout(self.timeout, self.append(events)).await {
            Ok(Ok(())) => Delivery::Acknowledged,
            Ok(Err(e)) => {
                self.conn = None;
                Delivery::Failed(format!("redis: {e}"))
            }
            Err(_) => {
                self.conn = None;
                Delivery::Failed("redis: timed out".into())
            }
        }
    }

    async fn append(&mut self, events: &[Vec<u8>]) -> Result<(), redis::RedisError> {
        if self.conn.is_none() {
            // The connection's own limits are the sink's `timeout`, not the client library's
            // defaults (500 ms per response, 1 s per connect), which would fail a delivery
            // the configuration still allows; `deliver` bounds the whole attempt.
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(self.timeout))
                .set_connection_timeout(Some(self.timeout));
            self.conn =
                Some(ConnectionManager::new_with_config(self.client.clone(), config).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for e in events {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("e")
                .arg(e.as_slice())
                .ignore();
        }
        pipe.query_async::<()>(conn).await
    }
}
