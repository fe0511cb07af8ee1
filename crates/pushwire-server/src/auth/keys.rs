//! A key set: the keys one kind of token (connection or subscription) is verified with, the
//! algorithms they accept and the `aud`/`iss` expected.
//!
//! Verification order: the header is parsed; its `alg` must be in the accepted list (so
//! `none`, PS* and any algorithm without a configured key are refused before any key is
//! touched); the key is chosen by the algorithm's family — never by what the token says the
//! key is — and, for RSA/ECDSA/EdDSA tokens with a `kid` when a JWKS is configured, by `kid`;
//! then signature, `aud` and `iss` are checked by the decoder, and `exp` and `nbf` as RFC 7519
//! NumericDates (fractional too; a malformed one refused) with no leeway.

use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use pushwire_core::auth::{unix_now, TokenError};
use pushwire_core::config::{ConfigError, TokenConfig};
use serde::de::DeserializeOwned;

use super::algorithms::{accepted, family, Family};
use super::jwks::Jwks;

/// Keys and checks for one kind of token.
pub(crate) struct KeySet {
    hmac: Option<DecodingKey>,
    /// The previous HMAC secret and the Unix second it stops being accepted.
    hmac_previous: Option<(DecodingKey, i64)>,
    rsa: Option<DecodingKey>,
    ecdsa: Option<DecodingKey>,
    jwks: Option<Jwks>,
    accepted: Vec<Algorithm>,
    audience: String,
    issuer: String,
}

impl KeySet {
    /// Builds the set from `config`; `None` when no key is configured. A PEM that does not
    /// parse is an error naming `<prefix>.<key>`.
    pub(crate) fn from_config(
        config: &TokenConfig,
        prefix: &str,
    ) -> Result<Option<Arc<KeySet>>, ConfigError> {
        if !config.has_keys() {
            return Ok(None);
        }
        let pem =
            |name: &str,
             text: &str,
             parse: fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>| {
                if text.trim().is_empty() {
                    return Ok(None);
                }
                parse(text.trim().as_bytes()).map(Some).map_err(|e| {
                    ConfigError::new(
                        format!("{prefix}.{name}"),
                        format!("not a usable PEM public key: {e}"),
                    )
                })
            };
        let rsa = pem(
            "rsa_public_key",
            &config.rsa_public_key,
            DecodingKey::from_rsa_pem,
        )?;
        let ecdsa = pem(
            "ecdsa_public_key",
            &config.ecdsa_public_key,
            DecodingKey::from_ec_pem,
        )?;
        let jwks = if config.jwks_public_endpoint.is_empty() {
            None
        } else {
            Some(
                Jwks::new(config)
                    .map_err(|e| ConfigError::new(format!("{prefix}.jwks_public_endpoint"), e))?,
            )
        };
        Ok(Some(Arc::new(KeySet {
            hmac: (!config.hmac_secret_key.is_empty())
                .then(|| DecodingKey::from_secret(config.hmac_secret_key.as_bytes())),
            hmac_previous: (!config.hmac_previous_secret_key.is_empty()).then(|| {
                (
                    DecodingKey::from_secret(config.hmac_previous_secret_key.as_bytes()),
                    config.hmac_previous_secret_key_valid_until,
                )
            }),
            rsa,
            ecdsa,
            jwks,
            accepted: accepted(config, prefix)?,
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
        })))
    }

    /// Verifies `token` and returns its claims.
    pub(crate) async fn decode<C: DeserializeOwned>(&self, token: &str) -> Result<C, TokenError> {
        let header = decode_header(token)
            .map_err(|e| TokenError::invalid_caused(format!("{:?}", e.kind()), e))?;
        let alg = header.alg;
        if !self.accepted.contains(&alg) {
            return Err(TokenError::invalid(format!(
                "algorithm {alg:?} not accepted"
            )));
        }
        let fam = family(alg).ok_or_else(|| TokenError::invalid(format!("{alg:?}")))?;
        let from_jwks = match (&self.jwks, &header.kid) {
            (Some(jwks), Some(kid)) if fam != Family::Hmac => {
                let k = jwks.key(kid).await?;
                if !k.accepts(alg) {
                    return Err(TokenError::invalid(format!(
                        "JWKS key {kid:?} does not sign {alg:?}"
                    )));
                }
                Some(k)
            }
            _ => None,
        };
        let key = match (&from_jwks, fam) {
            (Some(k), _) => Some(&k.key),
            (None, Family::Hmac) => self.hmac.as_ref(),
            (None, Family::Rsa) => self.rsa.as_ref(),
            (None, Family::Ec) => self.ecdsa.as_ref(),
            (None, Family::Ed) => None,
        }
        .ok_or_else(|| {
            TokenError::invalid(format!("no key for {alg:?} (a kid is needed for JWKS)"))
        })?;
        let validation = self.validation(alg);
        let mut result = decode::<serde_json::Value>(token, key, &validation);
        if let (Err(e), Family::Hmac, Some((previous, until))) = (&result, fam, &self.hmac_previous)
            && *e.kind() == ErrorKind::InvalidSignature
            && unix_now() < *until
        {
            result = decode::<serde_json::Value>(token, previous, &validation);
        }
        let claims: serde_json::Value = result.map(|d| d.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            other => TokenError::invalid_caused(format!("{other:?}"), e.clone()),
        })?;
        super::numeric_date::check(&claims, unix_now())?;
        serde_json::from_value(claims).map_err(|e| TokenError::invalid_caused("claims", e))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = 0;
        // exp and nbf: numeric_date::check (the decoder refuses fractional dates and ignores
        // an nbf of the wrong type).
        v.validate_exp = false;
        v.validate_nbf = false;
        // The decoder checks `aud`/`iss` only when present: a configured one is required.
        let mut required = Vec::new();
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&[&self.audience]);
            required.push("aud");
        }
        if !self.issuer.is_empty() {
            v.set_issuer(&[&self.issuer]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}
