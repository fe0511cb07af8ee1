//! Consumer errors.

/// Why a consumer operation failed. The message is stable; the source logs it and backs off.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The broker could not be reached or the connection broke.
    #[error("broker connection: {0}")]
    Connection(String),
    /// The broker refused an operation (declare, subscribe, ack, ...).
    #[error("broker operation: {0}")]
    Broker(String),
    /// Bad consumer configuration.
    #[error("consumer config {key}: {message}")]
    Config {
        /// The key at fault, e.g. `consumers[0].rabbitmq.queue`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The source type is not compiled into this build.
    #[error("consumer type {0} is not enabled in this build (cargo feature)")]
    NotCompiled(&'static str),
}

impl ConsumerError {
    /// A configuration error at `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConsumerError::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}
