//! The server API as consumers see it: one method call, parsed, validated and answered by the
//! very code behind `/api/<method>` (the server implements [`ApiDispatch`]; this crate never
//! parses API payloads itself, so the two paths can not drift apart).

use std::future::Future;
use std::pin::Pin;

use serde_json::value::RawValue;

/// A boxed, sendable future (the trait is object-safe without `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs server API methods for consumers.
///
/// Contract: `call` behaves exactly as `POST /api/<method>` with `params` as body (absent =
/// `{}`): same decoding (`null` = absent, unknown fields ignored), same validation, same error
/// codes. A method the consumer path does not offer (`batch`) answers 104. Publications that
/// the engine suppressed by their idempotency key are reported in [`Dispatched::suppressed`],
/// and every per-channel error of a `broadcast` in [`Dispatched::errors`].
pub trait ApiDispatch: Send + Sync + 'static {
    /// Runs `method` with `params`.
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> BoxFuture<'a, Result<Dispatched, ApiFailure>>;
}

/// A method call that succeeded (as a whole: a `broadcast` may still carry per-channel
/// errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Publications made (new ones and suppressed ones).
    pub publications: u32,
    /// Publications suppressed as duplicates by their idempotency key.
    pub suppressed: u32,
    /// Per-channel failures inside a successful call (`broadcast`).
    pub errors: Vec<ApiFailure>,
}

/// An API error: the code and message the HTTP API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiFailure {
    /// The API error code (100 internal, 102 unknown channel, 104 method not found, 107 bad
    /// request, 108 not available, 111 too many requests, ...).
    pub code: u32,
    /// The API error message.
    pub message: String,
}

impl ApiFailure {
    /// Whether trying again later can succeed: 100 (internal: engine down, timeout) and 111
    /// (too many requests). Every other code means the command itself is wrong.
    pub fn temporary(&self) -> bool {
        matches!(self.code, 100 | 111)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_and_rate_limit_are_temporary() {
        let f = |code| ApiFailure {
            code,
            message: String::new(),
        };
        assert!(f(100).temporary());
        assert!(f(111).temporary());
        for code in [101, 102, 103, 104, 107, 108, 112, 113] {
            assert!(!f(code).temporary(), "{code}");
        }
    }
}
