//! Errors of the server API and how they travel: a stable code and message in the body, or an
//! HTTP status in transport error mode.
//!
//! Codes (docs/protocol.md: API error codes): 100 internal, 102 unknown channel, 104 method not found, 107 bad
//! request, 108 not available, 112 unrecoverable position, 113 conflict. Other codes the node
//! returns (100-112, see [`ErrorCode`]) pass through unchanged.

use axum::http::StatusCode;
use pushwire_protocol::ErrorCode;
use serde::Serialize;

/// Why an API method failed. [`ApiError::code`] and [`ApiError::message`] are the one mapping
/// to wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 107: the params object does not decode into the method's request (wrong types). The
    /// per-method route answers it with HTTP 400, like Centrifugo; batch and legacy commands
    /// get error 107.
    #[error("bad request")]
    InvalidParams,
    /// 107: a required field is missing or a value is out of range.
    #[error("bad request")]
    BadRequest,
    /// 104: no such method.
    #[error("method not found")]
    MethodNotFound,
    /// 108: the feature is off (history, presence) or not implemented yet.
    #[error("not available")]
    NotAvailable,
    /// An error from the node (unknown channel 102, unrecoverable position 112, ...).
    #[error("{0}")]
    Node(ErrorCode),
}

impl ApiError {
    /// The numeric code sent in `error.code`.
    pub fn code(self) -> u32 {
        match self {
            ApiError::InvalidParams | ApiError::BadRequest => ErrorCode::BadRequest.code(),
            ApiError::MethodNotFound => ErrorCode::MethodNotFound.code(),
            ApiError::NotAvailable => ErrorCode::NotAvailable.code(),
            ApiError::Node(code) => code.code(),
        }
    }

    /// The message sent in `error.message`; never empty.
    pub fn message(self) -> &'static str {
        match self {
            ApiError::InvalidParams | ApiError::BadRequest => ErrorCode::BadRequest.message(),
            ApiError::MethodNotFound => ErrorCode::MethodNotFound.message(),
            ApiError::NotAvailable => ErrorCode::NotAvailable.message(),
            ApiError::Node(code) => code.message(),
        }
    }

    /// The wire form: `{"code":N,"message":"..."}`.
    pub fn body(self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.message(),
        }
    }

    /// The HTTP status in transport error mode (docs/protocol.md: API auth and error mode).
    pub fn http_status(self) -> StatusCode {
        crate::http_status::http_status(self.code(), crate::http_status::Surface::ApiTransportMode)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::BadRequest => ApiError::BadRequest,
            ErrorCode::MethodNotFound => ApiError::MethodNotFound,
            ErrorCode::NotAvailable => ApiError::NotAvailable,
            other => ApiError::Node(other),
        }
    }
}

/// The JSON error object of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Error code.
    pub code: u32,
    /// Error message; never empty.
    pub message: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        assert_eq!(ApiError::InvalidParams.code(), 107);
        assert_eq!(ApiError::BadRequest.message(), "bad request");
        assert_eq!(ApiError::MethodNotFound.code(), 104);
        assert_eq!(ApiError::NotAvailable.code(), 108);
        let unknown = ApiError::from(ErrorCode::UnknownChannel);
        assert_eq!(unknown.code(), 102);
        assert_eq!(unknown.message(), "unknown channel");
        assert_eq!(ApiError::from(ErrorCode::BadRequest), ApiError::BadRequest);
        assert_eq!(
            serde_json::to_string(&ApiError::NotAvailable.body()).ok(),
            Some(r#"{"code":108,"message":"not available"}"#.to_owned())
        );
    }
}
