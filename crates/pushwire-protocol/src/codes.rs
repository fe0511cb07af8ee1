//! Stable client-visible codes.
//!
//! Ranges (identical to Centrifugo):
//! - `100..=113` error codes carried in `Reply.error`;
//! - `2000..=2999` unsubscribe codes; `< 2500` is terminal, `>= 2500` makes the SDK resubscribe;
//! - `3000..=3499` (and `4000..=4499`) disconnect codes after which SDKs reconnect;
//! - `3500..=3999` (and `4500..=4999`) terminal disconnect codes.

use serde::{Deserialize, Serialize};

/// An error returned in `Reply.error`. The numeric value is the wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// 100: server-side failure; temporary.
    Internal = 100,
    /// 101: request unauthorized.
    Unauthorized = 101,
    /// 102: namespace not configured.
    UnknownChannel = 102,
    /// 103: no permission for the operation.
    PermissionDenied = 103,
    /// 104: unknown RPC or API method.
    MethodNotFound = 104,
    /// 105: second subscribe to the same channel on one connection.
    AlreadySubscribed = 105,
    /// 106: a per-connection limit was reached.
    LimitExceeded = 106,
    /// 107: malformed or invalid parameters.
    BadRequest = 107,
    /// 108: feature disabled (history, presence, RPC, ...).
    NotAvailable = 108,
    /// 109: token expired; SDKs fetch a new one and retry.
    TokenExpired = 109,
    /// 110: connection or subscription expired.
    Expired = 110,
    /// 111: rate limited; temporary.
    TooManyRequests = 111,
    /// 112: the requested stream position can not be recovered.
    UnrecoverablePosition = 112,
}

impl ErrorCode {
    /// The numeric wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The message sent with the code; never empty.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal server error",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownChannel => "unknown channel",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::AlreadySubscribed => "already subscribed",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::NotAvailable => "not available",
            ErrorCode::TokenExpired => "token expired",
            ErrorCode::Expired => "expired",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::UnrecoverablePosition => "unrecoverable position",
        }
    }

    /// Whether retrying makes sense (SDKs retry temporary errors).
    pub fn temporary(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::TooManyRequests)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for ErrorCode {}

/// A disconnect: a code and a reason shorter than 123 bytes (the WebSocket close-frame limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnect {
    /// Disconnect code (see the module docs for ranges).
    pub code: u32,
    /// Human-readable reason; never empty.
    pub reason: std::borrow::Cow<'static, str>,
}

macro_rules! disconnects {
    ($($(#[$doc:meta])* $name:ident = $code:expr, $reason:expr;)*) => {
        impl Disconnect {
            $($(#[$doc])* pub const $name: Disconnect = Disconnect { code: $code, reason: std::borrow::Cow::Borrowed($reason) };)*
        }
    };
}

disconnects! {
    /// 3000: closed without advice (never sent on WebSocket: the socket is just closed).
    CONNECTION_CLOSED = 3000, "connection closed";
    /// 3001: the node is shutting down; reconnect.
    SHUTDOWN = 3001, "shutdown";
    /// 3004: internal server error; reconnect.
    INTERNAL = 3004, "internal server error";
    /// 3005: connection expired; the SDK refreshes its token and reconnects.
    EXPIRED = 3005, "connection expired";
    /// 3006: subscription expired; reconnect.
    SUBSCRIPTION_EXPIRED = 3006, "subscription expired";
    /// 3008: the client reads slower than the server writes; its queue overflowed.
    SLOW = 3008, "slow";
    /// 3009: a write to the transport failed.
    WRITE_ERROR = 3009, "write error";
    /// 3010: a gap or an epoch change in a positioned stream; reconnect and recover.
    INSUFFICIENT_STATE = 3010, "insufficient state";
    /// 3011: forced reconnect.
    FORCE_RECONNECT = 3011, "force reconnect";
    /// 3012: no pong answered a ping within `client.pong_timeout`.
    NO_PONG = 3012, "no pong";
    /// 3013: rate limit exceeded; reconnect later.
    TOO_MANY_REQUESTS = 3013, "too many requests";
    /// 3014: state invalidated; the SDK drops its token and positions.
    STATE_INVALIDATED = 3014, "state invalidated";
    /// 3500: the connection token is invalid; terminal.
    INVALID_TOKEN = 3500, "invalid token";
    /// 3501: protocol violation; terminal.
    BAD_REQUEST = 3501, "bad request";
    /// 3502: no connect command in time; terminal.
    STALE = 3502, "stale";
    /// 3503: disconnected by the server API; terminal.
    FORCE_DISCONNECT = 3503, "force disconnect";
    /// 3504: user connection limit; terminal.
    CONNECTION_LIMIT = 3504, "connection limit";
    /// 3505: channel limit; terminal.
    CHANNEL_LIMIT = 3505, "channel limit";
    /// 3506: the payload can not be sent in the connection's protocol; terminal.
    INAPPROPRIATE_PROTOCOL = 3506, "inappropriate protocol";
    /// 3507: permission denied; terminal.
    PERMISSION_DENIED = 3507, "permission denied";
    /// 3508: the feature is not available; terminal.
    NOT_AVAILABLE = 3508, "not available";
    /// 3509: too many errors; terminal.
    TOO_MANY_ERRORS = 3509, "too many errors";
}

impl Disconnect {
    /// Whether SDKs reconnect after this code.
    pub fn reconnect(&self) -> bool {
        !matches!(self.code, 3500..=3999 | 4500..=4999)
    }
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

/// A server-initiated unsubscribe: code and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Unsubscribe code: `< 2500` terminal, `>= 2500` resubscribe.
    pub code: u32,
    /// Human-readable reason; never empty.
    pub reason: std::borrow::Cow<'static, str>,
}

impl Unsubscribe {
    /// 2000: unsubscribed by the server API; the SDK does not resubscribe.
    pub const SERVER: Unsubscribe = Unsubscribe {
        code: 2000,
        reason: std::borrow::Cow::Borrowed("server unsubscribe"),
    };
    /// 2500: the connection missed publications; the SDK resubscribes with recovery.
    pub const INSUFFICIENT_STATE: Unsubscribe = Unsubscribe {
        code: 2500,
        reason: std::borrow::Cow::Borrowed("insufficient state"),
    };
    /// 2501: the subscription expired; the SDK resubscribes with a new token.
    pub const EXPIRED: Unsubscribe = Unsubscribe {
        code: 2501,
        reason: std::borrow::Cow::Borrowed("subscription expired"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_reference() {
        let all = [
            (ErrorCode::Internal, 100, true),
            (ErrorCode::Unauthorized, 101, false),
            (ErrorCode::UnknownChannel, 102, false),
            (ErrorCode::PermissionDenied, 103, false),
            (ErrorCode::MethodNotFound, 104, false),
            (ErrorCode::AlreadySubscribed, 105, false),
            (ErrorCode::LimitExceeded, 106, false),
            (ErrorCode::BadRequest, 107, false),
            (ErrorCode::NotAvailable, 108, false),
            (ErrorCode::TokenExpired, 109, false),
            (ErrorCode::Expired, 110, false),
            (ErrorCode::TooManyRequests, 111, true),
            (ErrorCode::UnrecoverablePosition, 112, false),
        ];
        for (e, code, temp) in all {
            assert_eq!(e.code(), code);
            assert_eq!(e.temporary(), temp);
            assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn disconnect_ranges() {
        assert!(Disconnect::SLOW.reconnect());
        assert!(Disconnect::NO_PONG.reconnect());
        assert!(!Disconnect::BAD_REQUEST.reconnect());
        assert!(!Disconnect::INVALID_TOKEN.reconnect());
        assert!(Disconnect::SHUTDOWN.reason.len() < 123);
    }
}
