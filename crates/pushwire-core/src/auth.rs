//! Credentials: what a verified token says. Verification itself (JWT, keys, algorithms) lives
//! in the server; the core only sees [`TokenVerifier`].

use pushwire_protocol::RawJson;

use crate::cause::ErrorCause;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// `exp` is in the past: connect answers 109, refresh closes with 3005.
    #[error("token expired")]
    Expired,
    /// Bad signature, algorithm, claims or format: connect closes with 3500, subscribe
    /// answers 103.
    #[error("invalid token: {0}")]
    Invalid(InvalidToken),
    /// The keys could not be obtained (JWKS endpoint down or slow): connect and subscribe
    /// answer 100 (internal, the SDK retries); refresh and sub_refresh answer 100 too and the
    /// connection stays.
    #[error("token keys unavailable: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// An invalid token, for the reason `why`.
    pub fn invalid(why: impl Into<String>) -> TokenError {
        TokenError::Invalid(InvalidToken {
            why: why.into(),
            cause: None,
        })
    }

    /// An invalid token, for the reason `why`, found by the library error `cause` (JWT
    /// decoding, claims parsing).
    pub fn invalid_caused(
        why: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> TokenError {
        TokenError::Invalid(InvalidToken {
            why: why.into(),
            cause: Some(std::sync::Arc::new(cause)),
        })
    }
}

/// Why a token is invalid, and the library error that found it, if any.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{why}{}", crate::cause::suffix(.cause))]
pub struct InvalidToken {
    /// The reason, in the verifier's words.
    pub why: String,
    /// The JWT or JSON library's error behind it.
    #[source]
    pub cause: Option<ErrorCause>,
}

impl PartialEq for InvalidToken {
    /// Equal when they read the same (causes compare by message).
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for InvalidToken {}

/// Per-subscription overrides of namespace options, from the `override` claim of a subscription
/// token or of a connection token's `subs` entry (docs/protocol.md: connection token claims). `None` keeps the namespace
/// value. Only the server (a signed token) can set them, so they bypass the client permission
/// checks, as the namespace options themselves do.
///
/// Deserializes from the wire shape of tokens and the server API: each option is
/// `{"value": bool}` (so `false` differs from unset); unknown options are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "OverrideWire")]
pub struct ChannelOverride {
    /// `presence`: keep presence for this subscription.
    pub presence: Option<bool>,
    /// `join_leave`: publish join/leave for this subscription.
    pub join_leave: Option<bool>,
    /// `force_push_join_leave`: push join/leave to this subscriber.
    pub force_push_join_leave: Option<bool>,
    /// `force_recovery`: recovery on (needs history in the namespace).
    pub force_recovery: Option<bool>,
    /// `force_positioning`: positioning on (needs history in the namespace).
    pub force_positioning: Option<bool>,
}

/// The wire shape of [`ChannelOverride`].
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct OverrideWire {
    presence: Option<BoolValue>,
    join_leave: Option<BoolValue>,
    force_push_join_leave: Option<BoolValue>,
    force_recovery: Option<BoolValue>,
    force_positioning: Option<BoolValue>,
}

/// `{"value": bool}`.
#[derive(serde::Deserialize)]
struct BoolValue {
    value: bool,
}

impl From<OverrideWire> for ChannelOverride {
    fn from(o: OverrideWire) -> Self {
        let v = |b: Option<BoolValue>| b.map(|b| b.value);
        ChannelOverride {
            presence: v(o.presence),
            join_leave: v(o.join_leave),
            force_push_join_leave: v(o.force_push_join_leave),
            force_recovery: v(o.force_recovery),
            force_positioning: v(o.force_positioning),
        }
    }
}

impl ChannelOverride {
    /// Applies the overrides that are set to `options`.
    pub fn apply(&self, options: &mut crate::config::ChannelOptions) {
        let set = |field: &mut bool, value: Option<bool>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut options.presence, self.presence);
        set(&mut options.join_leave, self.join_leave);
        set(
            &mut options.force_push_join_leave,
            self.force_push_join_leave,
        );
        set(&mut options.force_recovery, self.force_recovery);
        set(&mut options.force_positioning, self.force_positioning);
    }
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
    /// Data for the connect result (connect proxy only).
    pub data: RawJson,
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
    /// Namespace option overrides (`override`).
    pub overrides: ChannelOverride,
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
    /// Namespace option overrides (`override` claim).
    pub overrides: ChannelOverride,
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
