//! Which `alg` values a key set accepts.
//!
//! The accepted list is computed once from the configured keys (and the optional
//! `algorithms` pin); the token's header only selects within it. `none`, PS* and anything
//! unknown never make the list.

use jsonwebtoken::Algorithm;
use pushwire_core::config::{ConfigError, TokenConfig};

/// Kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// HS256/384/512: the shared secret.
    Hmac,
    /// RS256/384/512: an RSA public key.
    Rsa,
    /// ES256/384: an ECDSA public key.
    Ec,
    /// EdDSA (Ed25519): only from a JWKS.
    Ed,
}

/// The family of `alg`; `None` for algorithms pushwire does not accept (PS*).
pub(crate) fn family(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Some(Family::Hmac),
        RS256 | RS384 | RS512 => Some(Family::Rsa),
        ES256 | ES384 => Some(Family::Ec),
        EdDSA => Some(Family::Ed),
        PS256 | PS384 | PS512 => None,
    }
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];

/// The algorithms `config` accepts: those of its keys, narrowed by `algorithms` when set.
/// A pinned algorithm without a key for it is a configuration error naming the key.
pub(crate) fn accepted(config: &TokenConfig, prefix: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let jwks = !config.jwks_public_endpoint.is_empty();
    let mut available: Vec<Algorithm> = Vec::new();
    if !config.hmac_secret_key.is_empty() {
        available.extend_from_slice(HMAC);
    }
    if !config.rsa_public_key.trim().is_empty() || jwks {
        available.extend_from_slice(RSA);
    }
    if !config.ecdsa_public_key.trim().is_empty() || jwks {
        available.extend_from_slice(EC);
    }
    if jwks {
        available.push(Algorithm::EdDSA);
    }
    if config.algorithms.is_empty() {
        return Ok(available);
    }
    let mut pinned = Vec::new();
    for (i, name) in config.algorithms.iter().enumerate() {
        let key = format!("{prefix}.algorithms[{i}]");
        let alg: Algorithm = name
            .parse()
            .map_err(|_| ConfigError::new(&key, format!("unknown algorithm {name:?}")))?;
        if !available.contains(&alg) {
            return Err(ConfigError::new(
                key,
                format!("{name} needs a key of its kind to be configured"),
            ));
        }
        if !pinned.contains(&alg) {
            pinned.push(alg);
        }
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decide_and_pin_narrows() {
        let c = TokenConfig {
            hmac_secret_key: "s".into(),
            ..Default::default()
        };
        assert_eq!(accepted(&c, "t").unwrap(), HMAC);
        let c = TokenConfig {
            rsa_public_key: "PEM".into(),
            algorithms: vec!["RS256".into()],
            ..Default::default()
        };
        assert_eq!(accepted(&c, "t").unwrap(), vec![Algorithm::RS256]);
        let c = TokenConfig {
            rsa_public_key: "PEM".into(),
            algorithms: vec!["HS256".into()],
            ..Default::default()
        };
        assert_eq!(accepted(&c, "t").unwrap_err().key, "t.algorithms[0]");
        assert_eq!(family(Algorithm::PS256), None);
    }
}
