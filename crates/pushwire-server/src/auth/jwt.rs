//! [`JwtVerifier`]: the [`TokenVerifier`] of the server — connection tokens against the
//! `client.token` key set, subscription tokens against `client.subscription_token` (or the
//! same set when that is not enabled).

use std::sync::Arc;

use pushwire_core::auth::{ConnectCredentials, SubscribeCredentials, TokenError, TokenVerifier};
use pushwire_core::config::{ClientConfig, ConfigError};

use super::claims::{ConnectClaims, SubscribeClaims};
use super::keys::KeySet;

/// Verifies connection and subscription JWTs with the configured keys.
pub struct JwtVerifier {
    connect: Option<Arc<KeySet>>,
    subscribe: Option<Arc<KeySet>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for the keys of `client.token` and `client.subscription_token`; `None` when
    /// neither has a key. A key that does not parse is an error naming its config key.
    pub fn from_config(client: &ClientConfig) -> Result<Option<Self>, ConfigError> {
        let connect = KeySet::from_config(&client.token, "client.token")?;
        let subscribe = if client.subscription_token.enabled {
            KeySet::from_config(
                &client.subscription_token.effective(&client.token),
                "client.subscription_token",
            )?
        } else {
            connect.clone()
        };
        if connect.is_none() && subscribe.is_none() {
            return Ok(None);
        }
        Ok(Some(JwtVerifier { connect, subscribe }))
    }
}

fn no_keys(kind: &str) -> TokenError {
    TokenError::invalid(format!("no keys configured for {kind} tokens"))
}

#[async_trait::async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify_connect(&self, token: &str) -> Result<ConnectCredentials, TokenError> {
        let keys = self.connect.as_ref().ok_or_else(|| no_keys("connection"))?;
        keys.decode::<ConnectClaims>(token)
            .await?
            .into_credentials()
    }

    async fn verify_subscribe(&self, token: &str) -> Result<SubscribeCredentials, TokenError> {
        let keys = self
            .subscribe
            .as_ref()
            .ok_or_else(|| no_keys("subscription"))?;
        keys.decode::<SubscribeClaims>(token)
            .await?
            .into_credentials()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use pushwire_core::config::{SubscriptionTokenConfig, TokenConfig};

    fn verifier(secret: &str) -> JwtVerifier {
        let client = ClientConfig {
            token: TokenConfig {
                hmac_secret_key: secret.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        JwtVerifier::from_config(&client).unwrap().unwrap()
    }

    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
    )]
    fn token(alg: Algorithm, claims: serde_json::Value, key: &str) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        pushwire_core::auth::unix_now()
    }

    #[tokio::test]
    async fn valid_connect_token() {
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"42","exp":now()+60,"info":{"name":"Alex"}}),
            "secret",
        );
        let c = verifier("secret").verify_connect(&t).await.unwrap();
        assert_eq!(c.user, "42");
        assert_eq!(c.info.as_bytes(), br#"{"name":"Alex"}"#);
        assert!(c.expire_at.is_some());
    }

    /// RFC 7519 NumericDates may be fractional; a malformed `nbf` is refused, not ignored.
    #[tokio::test]
    async fn fractional_dates_and_malformed_nbf() {
        let v = verifier("secret");
        let exp = now() as f64 + 60.5;
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"1","exp":exp,"nbf":now() as f64 - 0.5}),
            "secret",
        );
        let c = v.verify_connect(&t).await.unwrap();
        assert_eq!(c.expire_at, Some(exp.floor() as i64));
        let tomorrow = now() + 86_400;
        for nbf in [
            serde_json::json!(tomorrow.to_string()),
            serde_json::json!(true),
            serde_json::json!(tomorrow),
        ] {
            let t = token(
                Algorithm::HS256,
                serde_json::json!({"sub":"1","nbf":nbf}),
                "secret",
            );
            assert!(
                matches!(v.verify_connect(&t).await, Err(TokenError::Invalid(_))),
                "nbf {nbf} refused"
            );
        }
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"1","exp":-5}),
            "secret",
        );
        assert_eq!(v.verify_connect(&t).await.unwrap_err(), TokenError::Expired);
    }

    #[tokio::test]
    async fn expired_wrong_key_channel_claim_and_none() {
        let v = verifier("secret");
        let t = token(
            Algorithm::HS512,
            serde_json::json!({"sub":"1","exp":now()-5}),
            "secret",
        );
        assert_eq!(v.verify_connect(&t).await.unwrap_err(), TokenError::Expired);
        let t = token(Algorithm::HS256, serde_json::json!({"sub":"1"}), "other");
        assert!(matches!(
            v.verify_connect(&t).await,
            Err(TokenError::Invalid(_))
        ));
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"1","channel":"x"}),
            "secret",
        );
        assert!(matches!(
            v.verify_connect(&t).await,
            Err(TokenError::Invalid(_))
        ));
        // {"alg":"none"} . {"sub":"1"} . (no signature)
        let t = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
        assert!(matches!(
            v.verify_connect(t).await,
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            v.verify_connect("garbage").await,
            Err(TokenError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn subscription_keys_separate_when_enabled() {
        let client = ClientConfig {
            token: TokenConfig {
                hmac_secret_key: "conn".into(),
                ..Default::default()
            },
            subscription_token: SubscriptionTokenConfig {
                enabled: true,
                hmac_secret_key: "subs".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let v = JwtVerifier::from_config(&client).unwrap().unwrap();
        let claims = serde_json::json!({"sub":"1","channel":"$c"});
        let with_conn = token(Algorithm::HS256, claims.clone(), "conn");
        let with_subs = token(Algorithm::HS256, claims, "subs");
        assert!(v.verify_subscribe(&with_conn).await.is_err());
        assert_eq!(v.verify_subscribe(&with_subs).await.unwrap().channel, "$c");
        let c = token(Algorithm::HS256, serde_json::json!({"sub":"1"}), "subs");
        assert!(v.verify_connect(&c).await.is_err());
    }

    #[test]
    fn bad_pem_names_key() {
        let client = ClientConfig {
            token: TokenConfig {
                rsa_public_key: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = JwtVerifier::from_config(&client).unwrap_err();
        assert_eq!(e.key, "client.token.rsa_public_key");
    }
}
