//! The WebSocket opening handshake (RFC 6455 section 4.2) on hyper's upgrade: checks the
//! request, picks the subprotocol, negotiates permessage-deflate (RFC 7692) when the server
//! allows it and the client offered it, and answers 101. Done here rather than by axum's
//! `WebSocketUpgrade` because tungstenite knows no extensions: the connection is driven by
//! tungstenite's `WebSocketContext` (`super::ws_socket`) over a
//! [`pushwire_deflate::DeflateStream`].

use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;

/// An upgrade request that passed the checks.
#[derive(Debug)]
pub struct Upgrade {
    /// Resolves to the raw connection once the 101 answer is sent.
    pub on_upgrade: OnUpgrade,
    /// The subprotocol chosen (one of the server's, offered by the client).
    pub protocol: Option<&'static str>,
    /// permessage-deflate was negotiated.
    pub deflate: bool,
    accept: String,
}

impl Upgrade {
    /// Checks a WebSocket upgrade request. `protocols`: the server's subprotocols, in order of
    /// preference; `deflate`: whether the server allows permessage-deflate. The error is the
    /// response to send: 405 for a method other than GET, 400 for missing or wrong upgrade
    /// headers, 426 when the connection cannot be upgraded (HTTP/2 without an upgrade).
    pub fn check(
        method: &Method,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
        protocols: &[&'static str],
        deflate: bool,
    ) -> Result<Upgrade, Response> {
        if method != Method::GET {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                "WebSocket upgrade needs GET",
            )
                .into_response());
        }
        let has_token = |name: HeaderName, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        if !has_token(CONNECTION, "upgrade") {
            return Err(bad("Connection header did not include 'upgrade'"));
        }
        if !has_token(UPGRADE, "websocket") {
            return Err(bad("`Upgrade` header did not include 'websocket'"));
        }
        if headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(bad("`Sec-WebSocket-Version` header did not include '13'"));
        }
        let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
            return Err(bad("`Sec-WebSocket-Key` header missing"));
        };
        let Some(on_upgrade) = on_upgrade else {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket connection not upgradable",
            )
                .into_response());
        };
        let offered: Vec<&str> = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let protocol = protocols.iter().copied().find(|p| offered.contains(p));
        let deflate = deflate
            && pushwire_deflate::negotiate::accepts(
                headers
                    .get_all(SEC_WEBSOCKET_EXTENSIONS)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
        Ok(Upgrade {
            on_upgrade,
            protocol,
            deflate,
            accept: tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
        })
    }

    /// The 101 answer.
    pub fn response(&self) -> Response {
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = self.protocol {
            h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        if self.deflate {
            h.insert(
                SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_static(pushwire_deflate::negotiate::RESPONSE),
            );
        }
        r
    }
}

fn bad(why: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}
