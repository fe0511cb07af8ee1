//! Keys from a JWKS endpoint, cached.
//!
//! - Only the configured URL is fetched; nothing from a token is put into it, and redirects
//!   are not followed.
//! - Entries are keyed by (issuer, kid): the issuer is the one configured for the key set that
//!   owns the cache, so the connection and subscription key sets never share keys even when
//!   their `kid`s collide.
//! - An unknown `kid` triggers a fetch, at most one per `jwks_refresh_min_interval`; a set
//!   older than `jwks_cache_ttl` is re-fetched the same way. One fetch runs at a time.
//! - A fetch is bounded by `jwks_fetch_timeout` and `jwks_max_response_size`. When it fails
//!   the keys already held keep working (sessions refresh as before); a token whose key is not
//!   held gets [`TokenError::Unavailable`] (error 100) while the endpoint is failing, and
//!   [`TokenError::Invalid`] once the endpoint answered without that `kid`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::Mutex;
use pushwire_core::auth::TokenError;
use pushwire_core::config::TokenConfig;
use tokio::time::Instant;

use super::algorithms::{family, Family};

/// One verification key from the set.
pub(crate) struct JwkKey {
    pub(crate) key: DecodingKey,
    family: Family,
    /// The JWK's `alg`, when it names one: then only that algorithm is accepted.
    alg: Option<Algorithm>,
    curve: Option<EllipticCurve>,
}

impl JwkKey {
    /// Whether a token signed with `alg` may be verified with this key.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        if let Some(own) = self.alg {
            return own == alg;
        }
        if family(alg) != Some(self.family) {
            return false;
        }
        match (&self.curve, alg) {
            (Some(EllipticCurve::P256), Algorithm::ES256) => true,
            (Some(EllipticCurve::P384), Algorithm::ES384) => true,
            (Some(_), _) => false,
            (None, _) => true,
        }
    }
}

#[derive(Default)]
struct State {
    keys: HashMap<(String, String), Arc<JwkKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    last_error: Option<String>,
}

/// A JWKS endpoint and the keys last fetched from it.
pub(crate) struct Jwks {
    url: String,
    issuer: String,
    http: reqwest::Client,
    timeout: Duration,
    max_size: usize,
    ttl: Duration,
    min_interval: Duration,
    state: Mutex<State>,
    fetch: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// A cache for `config.jwks_public_endpoint`; nothing is fetched until a token needs it.
    pub(crate) fn new(config: &TokenConfig) -> Result<Jwks, String> {
        let http = reqwest::Client::builder()
            .timeout(config.jwks_fetch_timeout)
            .connect_timeout(config.jwks_fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pushwire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Jwks {
            url: config.jwks_public_endpoint.clone(),
            issuer: config.issuer.clone(),
            http,
            timeout: config.jwks_fetch_timeout,
            max_size: config.jwks_max_response_size,
            ttl: config.jwks_cache_ttl,
            min_interval: config.jwks_refresh_min_interval,
            state: Mutex::new(State::default()),
            fetch: tokio::sync::Mutex::new(()),
        })
    }

    fn lookup(&self, kid: &str) -> (Option<Arc<JwkKey>>, bool) {
        let st = self.state.lock();
        let fresh = st.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
        let key = st.keys.get(&(self.issuer.clone(), kid.to_owned())).cloned();
        (key, fresh)
    }

    fn missing(&self, kid: &str) -> TokenError {
        match &self.state.lock().last_error {
            Some(e) => TokenError::Unavailable(format!("JWKS {}: {e}", self.url)),
            None => TokenError::invalid(format!("no JWKS key with kid {kid:?}")),
        }
    }

    /// The key for `kid`, fetching the set when `kid` is unknown or the set is stale (within
    /// the rate limit).
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<JwkKey>, TokenError> {
        let (cached, fresh) = self.lookup(kid);
        if let (Some(k), true) = (&cached, fresh) {
            return Ok(k.clone());
        }
        let _guard = match (&cached, self.fetch.try_lock()) {
            (_, Ok(g)) => g,
            // A fetch is running: a stale key serves meanwhile, an unknown kid waits for it.
            (Some(k), Err(_)) => return Ok(k.clone()),
            (None, Err(_)) => self.fetch.lock().await,
        };
        let (cached, fresh) = self.lookup(kid);
        if let (Some(k), true) = (&cached, fresh) {
            return Ok(k.clone());
        }
        let may_fetch = self
            .state
            .lock()
            .attempted_at
            .is_none_or(|t| t.elapsed() >= self.min_interval);
        if may_fetch {
            self.refresh().await;
        }
        self.lookup(kid).0.ok_or_else(|| self.missing(kid))
    }

    async fn refresh(&self) {
        let result = match tokio::time::timeout(self.timeout, self.download()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        let mut st = self.state.lock();
        st.attempted_at = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                st.keys = keys
                    .into_iter()
                    .map(|(kid, k)| ((self.issuer.clone(), kid), Arc::new(k)))
                    .collect();
                st.fetched_at = st.attempted_at;
                st.last_error = None;
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping cached keys");
                st.last_error = Some(e);
            }
        }
    }

    async fn download(&self) -> Result<Vec<(String, JwkKey)>, String> {
        let mut resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let too_big = || format!("response larger than {} bytes", self.max_size);
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_size as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading body: {e}"))?
        {
            if body.len() + chunk.len() > self.max_size {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        parse_set(&body)
    }
}

/// The usable signature keys of a JWKS document; keys without `kid`, encryption keys,
/// symmetric keys and unsupported curves are skipped.
pub(crate) fn parse_set(body: &[u8]) -> Result<Vec<(String, JwkKey)>, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Some(k) = usable(&jwk) {
            out.push(k);
        }
    }
    Ok(out)
}

fn usable(jwk: &Jwk) -> Option<(String, JwkKey)> {
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return None,
    }
    let (fam, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Family::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => (Family::Ec, Some(p.curve.clone())),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Family::Ed, None)
        }
        _ => return None,
    };
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(a) => {
            let alg: Algorithm = a.to_string().parse().ok()?;
            if family(alg) != Some(fam) {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((
        kid,
        JwkKey {
            key,
            family: fam,
            alg,
            curve,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unusable_keys() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "wrongalg", "alg": "ES256", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "x"},
        ]});
        let keys = parse_set(body.to_string().as_bytes()).unwrap();
        let kids: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kids, vec!["rsa"]);
        let k = &keys[0].1;
        assert!(k.accepts(Algorithm::RS256));
        assert!(!k.accepts(Algorithm::RS512));
        assert!(!k.accepts(Algorithm::HS256));
        assert!(parse_set(b"[]").is_err());
    }
}
