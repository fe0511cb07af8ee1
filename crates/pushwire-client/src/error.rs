//! Errors: one enum for everything the client reports, with the server's codes kept intact.
//!
//! Code ranges (the same as Centrifugo and its SDKs):
//! - `0..=99`: client-local codes (never on the wire), see [`codes`];
//! - `100..=1999`: errors in a command reply ([`ClientError::Server`]); `400..=1999` are
//!   application codes;
//! - `3000..=3499`, `4000..=4499`: disconnects after which the client reconnects;
//! - `3500..=3999`, `4500..=4999`: terminal disconnects ([`ClientError::Disconnected`]).

/// Client-local codes carried by state events; they never travel on the wire.
pub mod codes {
    /// Connecting: [`crate::Client::connect`] was called.
    pub const CONNECT_CALLED: u32 = 0;
    /// Connecting: the transport closed (network error, stream ended, close code < 3000).
    pub const TRANSPORT_CLOSED: u32 = 1;
    /// Connecting: no server ping within `ping interval + max_server_ping_delay`.
    pub const NO_PING: u32 = 2;
    /// Connecting: a subscribe got no reply in time.
    pub const SUBSCRIBE_TIMEOUT: u32 = 3;
    /// Disconnected: [`crate::Client::disconnect`] was called.
    pub const DISCONNECT_CALLED: u32 = 0;
    /// Disconnected: the connect was refused with a non-retryable error reply.
    pub const UNAUTHORIZED: u32 = 1;
    /// Disconnected: the server sent something the client could not decode.
    pub const BAD_PROTOCOL: u32 = 2;
    /// Disconnected: the server closed with 1009 (message too big).
    pub const MESSAGE_SIZE_LIMIT: u32 = 3;
    /// Unsubscribed: [`crate::Subscription::unsubscribe`] was called.
    pub const UNSUBSCRIBE_CALLED: u32 = 0;
    /// Unsubscribed: the client was closed.
    pub const CLIENT_CLOSED: u32 = 2;
}

/// Whether a disconnect code means "reconnect" (3000-3499, 4000-4499, >= 5000, and every
/// transport-level code below 3000 except 1009) or "stop" (3500-3999, 4500-4999).
pub fn disconnect_code_reconnects(code: u32) -> bool {
    !matches!(code, 3500..=3999 | 4500..=4999 | 1009)
}

/// An error reply from the server: `code` is the wire code (100-113, or an application code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ServerError {
    /// Wire code.
    pub code: u32,
    /// Message; never empty for pushwire and Centrifugo.
    pub message: String,
    /// Whether retrying makes sense.
    pub temporary: bool,
}

impl ServerError {
    /// Whether the SDK rules retry this error: `code < 100`, `temporary`, or 109 (token
    /// expired: retried after fetching a new token).
    pub fn retryable(&self) -> bool {
        self.code < 100 || self.temporary || self.code == 109
    }
}

impl From<pushwire_protocol::Error> for ServerError {
    fn from(e: pushwire_protocol::Error) -> Self {
        ServerError {
            code: e.code,
            message: e.message,
            temporary: e.temporary,
        }
    }
}

/// Boxed error returned by a token callback.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong, as a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The configuration is invalid (`key` names the setting).
    #[error("invalid configuration `{key}`: {message}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An endpoint URL is malformed or has an unsupported scheme.
    #[error("invalid url `{url}`: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The transport could not be opened or broke (refused, handshake status, I/O).
    #[error("{transport} transport: {message}")]
    Transport {
        /// `websocket`, `http_stream` or `sse`.
        transport: &'static str,
        /// What happened.
        message: String,
    },
    /// The server answered a command with an error.
    #[error("server error: {0}")]
    Server(#[from] ServerError),
    /// The server closed the connection with a terminal code (3500-3999, 4500-4999), or the
    /// connect was refused for good. The client is now `Disconnected`.
    #[error("disconnected: {reason} ({code})")]
    Disconnected {
        /// Disconnect code.
        code: u32,
        /// Reason.
        reason: String,
    },
    /// The token callback failed.
    #[error("token callback: {0}")]
    Token(String),
    /// Publication or request data is not valid for the connection's protocol (JSON needs one
    /// valid JSON value).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The server sent bytes that do not decode as replies.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timeout")]
    Timeout,
    /// The connection was lost before the answer arrived.
    #[error("connection lost before the reply")]
    ConnectionLost,
    /// The call needs a connection but the client is disconnected.
    #[error("not connected")]
    NotConnected,
    /// The client was closed.
    #[error("client closed")]
    Closed,
    /// The channel already has a subscription on this client.
    #[error("already subscribed to `{0}`")]
    DuplicateSubscription(String),
}

impl ClientError {
    /// The server code carried by the error, when there is one (error reply or disconnect).
    pub fn code(&self) -> Option<u32> {
        match self {
            ClientError::Server(e) => Some(e.code),
            ClientError::Disconnected { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn transport(transport: &'static str, e: impl std::fmt::Display) -> Self {
        ClientError::Transport {
            transport,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_ranges() {
        for c in [1000, 1006, 3001, 3012, 3499, 4000, 4499, 5000] {
            assert!(disconnect_code_reconnects(c), "{c}");
        }
        for c in [1009, 3500, 3501, 3999, 4500, 4999] {
            assert!(!disconnect_code_reconnects(c), "{c}");
        }
    }

    #[test]
    fn retryable_errors() {
        let e = |code, temporary| ServerError {
            code,
            message: "m".into(),
            temporary,
        };
        assert!(e(100, true).retryable());
        assert!(e(109, false).retryable());
        assert!(e(50, false).retryable());
        assert!(!e(103, false).retryable());
        assert_eq!(ClientError::Server(e(103, false)).code(), Some(103));
    }
}
