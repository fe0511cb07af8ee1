//! [`JetStreamPublisher`]: publishes payloads to one subject and waits for JetStream's
//! acknowledgement of each (used by the lifecycle event sink).

use std::time::Duration;

use async_nats::jetstream;

/// A JetStream publisher to one subject; connects on first use and again after a failure.
#[derive(Debug)]
pub struct JetStreamPublisher {
    url: String,
    subject: String,
    timeout: Duration,
    js: Option<jetstream::Context>,
}

impl JetStreamPublisher {
    /// A publisher to `subject` (which a stream must capture) at `url`; every step bounded
    /// by `timeout`.
    pub fn new(url: &str, subject: &str, timeout: Duration) -> JetStreamPublisher {
        JetStreamPublisher {
            url: url.to_owned(),
            subject: subject.to_owned(),
            timeout,
            js: None,
        }
    }

    /// Publishes every payload in order, each acknowledged (stored) before the next. The
    /// first failure stops the batch and drops the connection (the caller retries the batch).
    pub async fn send_all(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        let result = self.send(payloads).await;
        if result.is_err() {
            self.js = None;
        }
        result
    }

    async fn send(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        if self.js.is_none() {
            let connect = async_nats::ConnectOptions::new()
                .name("pushwire lifecycle")
                .connection_timeout(self.timeout)
                .request_timeout(Some(self.timeout))
                .connect(self.url.as_str());
            let client = tokio::time::timeout(self.timeout, connect)
                .await
                .map_err(|_| format!("nats: connect to {} timed out", self.url))?
                .map_err(|e| format!("nats: connect to {}: {e}", self.url))?;
            let mut js = jetstream::new(client);
            js.set_timeout(self.timeout);
            self.js = Some(js);
        }
        let Some(js) = &self.js else {
            return Ok(());
        };
        for p in payloads {
            let ack = js
                .publish(self.subject.clone(), p.clone().into())
                .await
                .map_err(|e| format!("nats: publish: {e}"))?;
            tokio::time::timeout(self.timeout, ack)
                .await
                .map_err(|_| "nats: no acknowledgement in time".to_owned())?
                .map_err(|e| format!("nats: not stored: {e}"))?;
        }
        Ok(())
    }
}
