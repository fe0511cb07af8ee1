//! JWT connection and subscription tokens (HMAC: HS256, HS384, HS512).
//!
//! The accepted algorithms are pinned by the configured key: a token with any other `alg`
//! (including `none`) is invalid. `exp` and `nbf` are checked without leeway; `aud`/`iss` only
//! when configured. A connection token must not carry `channel`.

use jsonwebtoken::{decode, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use pushwire_core::auth::{ConnectCredentials, SubscribeCredentials, TokenError, TokenVerifier};
use pushwire_core::config::TokenConfig;
use pushwire_protocol::RawJson;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Verifies tokens signed with the configured HMAC secret.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    expire_at: Option<i64>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    client: Option<String>,
}

fn raw(v: Option<Box<RawValue>>) -> RawJson {
    v.map(|r| RawJson::from_bytes(String::from(Box::<str>::from(r))))
        .unwrap_or_default()
}

impl Claims {
    /// `expire_at` wins over `exp`; `expire_at: 0` never expires.
    fn expiry(&self) -> Option<i64> {
        match self.expire_at {
            Some(0) => None,
            Some(v) => Some(v),
            None => self.exp,
        }
    }
}

impl JwtVerifier {
    /// A verifier for the configured keys; `None` when no key is configured.
    pub fn from_config(config: &TokenConfig) -> Option<Self> {
        if config.hmac_secret_key.is_empty() {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.audience]);
        }
        if !config.issuer.is_empty() {
            validation.set_issuer(&[&config.issuer]);
        }
        Some(JwtVerifier {
            key: DecodingKey::from_secret(config.hmac_secret_key.as_bytes()),
            validation,
        })
    }

    fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                other => TokenError::Invalid(format!("{other:?}")),
            })
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify_connect(&self, token: &str) -> Result<ConnectCredentials, TokenError> {
        let claims = self.claims(token)?;
        if claims.channel.is_some() {
            return Err(TokenError::Invalid(
                "connection token must not have a channel claim".into(),
            ));
        }
        Ok(ConnectCredentials {
            expire_at: claims.expiry(),
            user: claims.sub,
            info: raw(claims.info),
            channels: claims.channels,
        })
    }

    fn verify_subscribe(&self, token: &str) -> Result<SubscribeCredentials, TokenError> {
        let claims = self.claims(token)?;
        let Some(channel) = claims.channel.clone() else {
            return Err(TokenError::Invalid(
                "subscription token needs a channel claim".into(),
            ));
        };
        Ok(SubscribeCredentials {
            expire_at: claims.expiry(),
            user: claims.sub,
            channel,
            client: claims.client,
            info: raw(claims.info),
            data: raw(claims.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_config(&TokenConfig {
            hmac_secret_key: "secret".into(),
            ..Default::default()
        })
        .unwrap()
    }

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

    #[test]
    fn valid_connect_token() {
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"42","exp":now()+60,"info":{"name":"Alex"}}),
            "secret",
        );
        let c = verifier().verify_connect(&t).unwrap();
        assert_eq!(c.user, "42");
        assert_eq!(c.info.as_bytes(), br#"{"name":"Alex"}"#);
        assert!(c.expire_at.is_some());
    }

    #[test]
    fn expired_wrong_key_and_channel_claim() {
        let v = verifier();
        let t = token(
            Algorithm::HS512,
            serde_json::json!({"sub":"1","exp":now()-5}),
            "secret",
        );
        assert_eq!(v.verify_connect(&t).unwrap_err(), TokenError::Expired);
        let t = token(Algorithm::HS256, serde_json::json!({"sub":"1"}), "other");
        assert!(matches!(v.verify_connect(&t), Err(TokenError::Invalid(_))));
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"1","channel":"x"}),
            "secret",
        );
        assert!(matches!(v.verify_connect(&t), Err(TokenError::Invalid(_))));
        assert!(matches!(
            v.verify_connect("garbage"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn alg_none_rejected() {
        // {"alg":"none"} . {"sub":"1"} . (no signature)
        let t = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
        assert!(matches!(
            verifier().verify_connect(t),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn subscription_token() {
        let t = token(
            Algorithm::HS256,
            serde_json::json!({"sub":"1","channel":"$secret","info":{"role":"x"}}),
            "secret",
        );
        let c = verifier().verify_subscribe(&t).unwrap();
        assert_eq!(c.channel, "$secret");
        assert_eq!(c.info.as_bytes(), br#"{"role":"x"}"#);
    }
}
