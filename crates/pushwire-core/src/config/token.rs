//! `client.token.*` and `client.subscription_token.*`: how JWTs are verified.
//!
//! The key material decides which algorithm families are accepted (HMAC → HS*, RSA → RS*,
//! ECDSA → ES*, JWKS → whatever its keys are); `algorithms` narrows that further. The token's
//! own `alg` header never widens it. PEM and URL syntax are checked by the server when it
//! builds its verifier; the checks here need no crypto.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Algorithm names accepted in `algorithms`.
pub const TOKEN_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA",
];

/// `client.token.*`: the keys connection tokens (and, unless `client.subscription_token` is
/// enabled, subscription tokens) are verified with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// HMAC secret: enables HS256, HS384 and HS512.
    pub hmac_secret_key: String,
    /// Previous HMAC secret, tried after `hmac_secret_key` during a rotation.
    pub hmac_previous_secret_key: String,
    /// Unix seconds after which `hmac_previous_secret_key` is no longer accepted (required
    /// with it).
    pub hmac_previous_secret_key_valid_until: i64,
    /// RSA public key, PEM inline: enables RS256, RS384 and RS512.
    pub rsa_public_key: String,
    /// ECDSA public key (P-256 or P-384), PEM inline: enables ES256 and ES384.
    pub ecdsa_public_key: String,
    /// JWKS URL (`http://` or `https://`); keys are chosen by the token's `kid`. Only this URL
    /// is ever fetched: nothing from the token goes into it.
    pub jwks_public_endpoint: String,
    /// Optional pin: only these `alg` values are accepted (each needs a configured key).
    /// Empty accepts every algorithm of the configured keys.
    pub algorithms: Vec<String>,
    /// Expected `aud` claim; empty means not checked.
    pub audience: String,
    /// Expected `iss` claim; empty means not checked.
    pub issuer: String,
    /// Bound on one JWKS fetch (connect, read and body).
    #[serde(with = "humantime_serde")]
    pub jwks_fetch_timeout: Duration,
    /// Largest JWKS response body accepted, in bytes.
    pub jwks_max_response_size: usize,
    /// Fetched keys are re-fetched after this; stale keys keep working while the endpoint is
    /// down.
    #[serde(with = "humantime_serde")]
    pub jwks_cache_ttl: Duration,
    /// Minimum delay between two fetches, so tokens with unknown `kid`s cannot make the server
    /// hammer the endpoint.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_min_interval: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            hmac_secret_key: String::new(),
            hmac_previous_secret_key: String::new(),
            hmac_previous_secret_key_valid_until: 0,
            rsa_public_key: String::new(),
            ecdsa_public_key: String::new(),
            jwks_public_endpoint: String::new(),
            algorithms: Vec::new(),
            audience: String::new(),
            issuer: String::new(),
            jwks_fetch_timeout: Duration::from_secs(5),
            jwks_max_response_size: 1024 * 1024,
            jwks_cache_ttl: Duration::from_secs(3600),
            jwks_refresh_min_interval: Duration::from_secs(10),
        }
    }
}

impl TokenConfig {
    /// Whether any key is configured (otherwise tokens are refused).
    pub fn has_keys(&self) -> bool {
        !self.hmac_secret_key.is_empty()
            || !self.rsa_public_key.trim().is_empty()
            || !self.ecdsa_public_key.trim().is_empty()
            || !self.jwks_public_endpoint.is_empty()
    }

    /// Checks values that need no crypto; `prefix` is `client.token` or
    /// `client.subscription_token`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        for (i, alg) in self.algorithms.iter().enumerate() {
            if !TOKEN_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError::new(
                    format!("{prefix}.algorithms[{i}]"),
                    format!("unknown algorithm {alg:?} (one of {TOKEN_ALGORITHMS:?})"),
                ));
            }
        }
        if !self.algorithms.is_empty() && !self.has_keys() {
            return Err(ConfigError::new(
                format!("{prefix}.algorithms"),
                "needs a key (hmac_secret_key, rsa_public_key, ecdsa_public_key or jwks_public_endpoint)",
            ));
        }
        if !self.hmac_previous_secret_key.is_empty() {
            if self.hmac_secret_key.is_empty() {
                return Err(ConfigError::new(
                    format!("{prefix}.hmac_previous_secret_key"),
                    "needs hmac_secret_key (the current secret)",
                ));
            }
            if self.hmac_previous_secret_key_valid_until <= 0 {
                return Err(ConfigError::new(
                    format!("{prefix}.hmac_previous_secret_key_valid_until"),
                    "required with hmac_previous_secret_key (Unix seconds)",
                ));
            }
        }
        let url = &self.jwks_public_endpoint;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::new(
                format!("{prefix}.jwks_public_endpoint"),
                "must be an http:// or https:// URL",
            ));
        }
        if self.jwks_fetch_timeout.is_zero() {
            return Err(ConfigError::new(
                format!("{prefix}.jwks_fetch_timeout"),
                "must be > 0",
            ));
        }
        if self.jwks_max_response_size < 128 {
            return Err(ConfigError::new(
                format!("{prefix}.jwks_max_response_size"),
                "must be at least 128 bytes",
            ));
        }
        Ok(())
    }
}

/// `client.subscription_token.*`: when `enabled`, subscription tokens get their own keys (same
/// fields as `client.token`); otherwise they are verified with `client.token`, as in
/// Centrifugo.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionTokenConfig {
    /// Use the keys below for subscription tokens instead of `client.token`.
    pub enabled: bool,
    /// See [`TokenConfig::hmac_secret_key`].
    pub hmac_secret_key: String,
    /// See [`TokenConfig::hmac_previous_secret_key`].
    pub hmac_previous_secret_key: String,
    /// See [`TokenConfig::hmac_previous_secret_key_valid_until`].
    pub hmac_previous_secret_key_valid_until: i64,
    /// See [`TokenConfig::rsa_public_key`].
    pub rsa_public_key: String,
    /// See [`TokenConfig::ecdsa_public_key`].
    pub ecdsa_public_key: String,
    /// See [`TokenConfig::jwks_public_endpoint`].
    pub jwks_public_endpoint: String,
    /// See [`TokenConfig::algorithms`].
    pub algorithms: Vec<String>,
    /// See [`TokenConfig::audience`].
    pub audience: String,
    /// See [`TokenConfig::issuer`].
    pub issuer: String,
    /// See [`TokenConfig::jwks_fetch_timeout`]; unset takes `client.token`'s.
    #[serde(with = "humantime_serde")]
    pub jwks_fetch_timeout: Option<Duration>,
    /// See [`TokenConfig::jwks_max_response_size`]; unset takes `client.token`'s.
    pub jwks_max_response_size: Option<usize>,
    /// See [`TokenConfig::jwks_cache_ttl`]; unset takes `client.token`'s.
    #[serde(with = "humantime_serde")]
    pub jwks_cache_ttl: Option<Duration>,
    /// See [`TokenConfig::jwks_refresh_min_interval`]; unset takes `client.token`'s.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_min_interval: Option<Duration>,
}

impl SubscriptionTokenConfig {
    /// The keys subscription tokens are verified with: these when enabled, else `connection`.
    pub fn effective(&self, connection: &TokenConfig) -> TokenConfig {
        if !self.enabled {
            return connection.clone();
        }
        TokenConfig {
            hmac_secret_key: self.hmac_secret_key.clone(),
            hmac_previous_secret_key: self.hmac_previous_secret_key.clone(),
            hmac_previous_secret_key_valid_until: self.hmac_previous_secret_key_valid_until,
            rsa_public_key: self.rsa_public_key.clone(),
            ecdsa_public_key: self.ecdsa_public_key.clone(),
            jwks_public_endpoint: self.jwks_public_endpoint.clone(),
            algorithms: self.algorithms.clone(),
            audience: self.audience.clone(),
            issuer: self.issuer.clone(),
            jwks_fetch_timeout: self
                .jwks_fetch_timeout
                .unwrap_or(connection.jwks_fetch_timeout),
            jwks_max_response_size: self
                .jwks_max_response_size
                .unwrap_or(connection.jwks_max_response_size),
            jwks_cache_ttl: self.jwks_cache_ttl.unwrap_or(connection.jwks_cache_ttl),
            jwks_refresh_min_interval: self
                .jwks_refresh_min_interval
                .unwrap_or(connection.jwks_refresh_min_interval),
        }
    }

    /// Checks the subscription key set when enabled.
    pub fn validate(&self, connection: &TokenConfig) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let eff = self.effective(connection);
        if !eff.has_keys() {
            return Err(ConfigError::new(
                "client.subscription_token.enabled",
                "needs a key (hmac_secret_key, rsa_public_key, ecdsa_public_key or jwks_public_endpoint)",
            ));
        }
        eff.validate("client.subscription_token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_valid_and_bad_values_named() {
        assert!(TokenConfig::default().validate("client.token").is_ok());
        let c = TokenConfig {
            hmac_secret_key: "s".into(),
            algorithms: vec!["HS256".into(), "none".into()],
            ..Default::default()
        };
        assert_eq!(
            c.validate("client.token").unwrap_err().key,
            "client.token.algorithms[1]"
        );
        let c = TokenConfig {
            jwks_public_endpoint: "file:///etc/passwd".into(),
            ..Default::default()
        };
        assert_eq!(
            c.validate("client.token").unwrap_err().key,
            "client.token.jwks_public_endpoint"
        );
    }

    #[test]
    fn subscription_keys_default_to_connection_keys() {
        let conn = TokenConfig {
            hmac_secret_key: "conn".into(),
            ..Default::default()
        };
        let sub = SubscriptionTokenConfig::default();
        assert_eq!(sub.effective(&conn).hmac_secret_key, "conn");
        let sub = SubscriptionTokenConfig {
            enabled: true,
            hmac_secret_key: "sub".into(),
            ..Default::default()
        };
        assert_eq!(sub.effective(&conn).hmac_secret_key, "sub");
        let empty = SubscriptionTokenConfig {
            enabled: true,
            ..Default::default()
        };
        assert_eq!(
            empty.validate(&conn).unwrap_err().key,
            "client.subscription_token.enabled"
        );
    }
}
