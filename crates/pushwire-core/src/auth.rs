//! Credentials: what a verified token says. Verification itself (JWT, keys, algorithms) lives
//! in the server; the core only sees [`TokenVerifier`].

use pushwire_protocol::RawJson;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// `exp` is in the past: connect answers 109, refresh closes with 3005.
    #[error("token expired")]
    Expired,
    /// Bad signature, algorithm, claims or format: connect closes with 3500, subscribe
    /// answers 103.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The keys could not be obtained (JWKS endpoint down or slow): connect and subscribe
    /// answer 100 (internal, the SDK retries); refresh and sub_refresh answer 100 too and the
    /// connection stays.
    #[error("token keys unavailable: {0}")]
    Unavailable(String),
}

/// A verified connection token.
#[derive(Debug, Clone, Default)]
pub struct ConnectCredentials {
    /// User id (`sub`); empty is anonymous.
    pub user: String,
    /// Connection expiry, Unix seconds; `None` never expires.
    pub expire_at: Option<i64>,
    /// Connection info (`info` claim) shown in presence and publications.
    pub info: RawJson,
    /// Server-side subscriptions (`channels` claim).
    pub channels: Vec<String>,
    /// Server-side subscriptions with per-channel info and data (`subs` claim); when not empty
    /// they replace `channels`.
    pub subs: Vec<TokenSubscription>,
    /// Server-only metadata (`meta` claim); never sent to clients.
    pub meta: RawJson,
}

/// One entry of a connection token's `subs` claim.
#[derive(Debug, Clone, Default)]
pub struct TokenSubscription {
    /// Channel to subscribe on connect.
    pub channel: String,
    /// Channel info (`info`, or decoded `b64info`).
    pub info: RawJson,
    /// Data for the subscribe result (`data`, or decoded `b64data`).
    pub data: RawJson,
}

/// A verified subscription token.
#[derive(Debug, Clone, Default)]
pub struct SubscribeCredentials {
    /// User id (`sub`); must equal the connection's.
    pub user: String,
    /// Channel the token is for.
    pub channel: String,
    /// Client id the token is bound to, if any.
    pub client: Option<String>,
    /// Subscription expiry, Unix seconds; `None` never expires.
    pub expire_at: Option<i64>,
    /// Channel info (`info` claim).
    pub info: RawJson,
    /// Data returned in the subscribe result (`data` claim).
    pub data: RawJson,
}

/// Verifies connection and subscription tokens. Async because keys may have to be fetched
/// (JWKS); implementations bound every fetch with a timeout.
#[async_trait::async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies a connection token.
    async fn verify_connect(&self, token: &str) -> Result<ConnectCredentials, TokenError>;
    /// Verifies a subscription token.
    async fn verify_subscribe(&self, token: &str) -> Result<SubscribeCredentials, TokenError>;
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current Unix time in milliseconds.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
