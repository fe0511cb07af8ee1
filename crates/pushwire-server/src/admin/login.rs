//! `POST /admin/api/login` (`{"password":…}` → session cookie and `{"token":…}`) and
//! `POST /admin/api/logout`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::Sessions;
use super::AdminState;
use crate::limits::client_ip::ClientIp;

#[derive(Debug, Deserialize)]
struct LoginRequest {
    password: String,
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Checks the password: 200 with the token (and the cookie), 401 on a wrong password, 429
/// once the address used up its failed attempts for the minute, 400 for a malformed body.
pub async fn login(
    State(admin): State<AdminState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Bytes,
) -> Response {
    let peer = ip;
    if let Err(wait) = admin.limiter.check(ip) {
        let mut r = json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "too many failed logins, try again later"}),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let Ok(req) = serde_json::from_slice::<LoginRequest>(&body) else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "expected {\"password\": \"...\"}"}),
        );
    };
    let cfg = &admin.app.config.admin;
    let ok = cfg.insecure
        || (!cfg.password.is_empty()
            && bool::from(req.password.as_bytes().ct_eq(cfg.password.as_bytes())));
    if !ok {
        admin.limiter.failed(ip);
        tracing::warn!(peer = %peer, "admin login failed: wrong password");
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "wrong password"}),
        );
    }
    admin.limiter.succeeded(ip);
    let Some(token) = admin.sessions.issue() else {
        tracing::error!("cannot sign an admin session token");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    tracing::info!(peer = %peer, "admin login");
    let mut r = json(StatusCode::OK, &serde_json::json!({"token": token}));
    if let Ok(v) = HeaderValue::from_str(&admin.sessions.cookie(&token)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Removes the session cookie (tokens stay valid until they expire).
pub async fn logout() -> Response {
    let mut r = json(StatusCode::OK, &serde_json::json!({}));
    if let Ok(v) = HeaderValue::from_str(&Sessions::expired_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
