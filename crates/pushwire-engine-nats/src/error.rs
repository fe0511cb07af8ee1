//! Errors of the NATS broker.

/// Why the broker could not start. The message names `broker.nats.url`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// NATS refused or did not answer the connection within `broker.nats.dial_timeout`.
    #[error("cannot reach NATS at broker.nats.url {url}: {source}")]
    Connect {
        /// The configured URL.
        url: String,
        /// What failed.
        source: async_nats::ConnectError,
    },
}
