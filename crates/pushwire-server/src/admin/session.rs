//! Admin sessions: HS256 tokens signed with `admin.secret`, presented as the
//! `pushwire_admin` cookie or as `Authorization: Bearer <token>`, and the layer that requires
//! one.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::config::admin::AdminConfig;

/// Name of the session cookie.
pub const COOKIE: &str = "pushwire_admin";
/// Subject of admin tokens.
const SUBJECT: &str = "pushwire-admin";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// Issues and checks session tokens.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    insecure: bool,
}

impl Sessions {
    /// Keys from `admin.secret`; when it is empty (only an `insecure` configuration allows
    /// that) from `fallback`, a random per-process value such as the node id.
    pub fn new(cfg: &AdminConfig, fallback: &str) -> Sessions {
        let secret = if cfg.secret.is_empty() {
            fallback.to_owned()
        } else {
            cfg.secret.clone()
        };
        Sessions {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl: cfg.session_ttl,
            insecure: cfg.insecure,
        }
    }

    /// A new session token valid for `admin.session_ttl`.
    pub fn issue(&self) -> Option<String> {
        let now = pushwire_core::auth::unix_now().max(0) as u64;
        let claims = Claims {
            sub: SUBJECT.into(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).ok()
    }

    /// Whether `token` is a valid, unexpired session token of this node.
    pub fn verify(&self, token: &str) -> bool {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.sub = Some(SUBJECT.into());
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).is_ok()
    }

    /// Whether the request is allowed: `admin.insecure`, or a valid token in the cookie or
    /// the `Authorization: Bearer` header.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        self.insecure || presented(headers).is_some_and(|t| self.verify(t))
    }

    /// `Set-Cookie` value carrying `token`.
    pub fn cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE}={token}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict",
            self.ttl.as_secs()
        )
    }

    /// `Set-Cookie` value that removes the session cookie.
    pub fn expired_cookie() -> String {
        format!("{COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict")
    }
}

/// The token a request presents: `Authorization: Bearer <t>` first, then the cookie.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if bearer.is_some() {
        return bearer;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// Layer: 401 (empty body) without a valid session.
pub async fn require(State(admin): State<AdminState>, request: Request, next: Next) -> Response {
    if admin.sessions.allows(request.headers()) {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(secret: &str) -> Sessions {
        Sessions::new(
            &AdminConfig {
                enabled: true,
                password: "pw".into(),
                secret: secret.into(),
                ..Default::default()
            },
            "unused",
        )
    }

    #[test]
    fn tokens_verify_only_with_their_secret() {
        let a = sessions("0123456789abcdef");
        let b = sessions("fedcba9876543210");
        let t = a.issue().expect("token");
        assert!(a.verify(&t));
        assert!(!b.verify(&t));
        assert!(!a.verify("garbage"));
        assert!(!a.verify(""));
    }

    #[test]
    fn bearer_then_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(
            header::COOKIE,
            "a=1; pushwire_admin=tok; b=2".parse().expect("v"),
        );
        assert_eq!(presented(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, "Bearer other".parse().expect("v"));
        assert_eq!(presented(&h), Some("other"));
    }

    #[test]
    fn cookie_flags() {
        let c = sessions("0123456789abcdef").cookie("t");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/admin")
        );
    }
}
