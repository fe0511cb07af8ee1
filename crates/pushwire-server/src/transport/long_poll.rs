//! Long-polling and polling: pushwire's own offset-based HTTP endpoints, for clients with no
//! SDK and networks where nothing else gets through.
//!
//! `GET /connection/long_poll?channel=C&offset=N&epoch=E&timeout=25` (or `POST` with the same
//! fields as a JSON object). The token, if any, comes in `Authorization: Bearer <jwt>` or a
//! `token` field; permissions are those of a subscribe. The channel must keep history.
//!
//! - Publications after `{offset, epoch}` exist: answered at once.
//! - None yet: the request is held up to `timeout` seconds (capped by
//!   `long_poll.max_timeout`) and answered with what arrived, or with none.
//! - `epoch` is not the stream's, or the gap exceeds history: `reload: true` with the
//!   current position; the client reloads its state and continues from there.
//! - First request (no offset/epoch): the current position, to ask from next.
//!
//! Answer: `{"channel","publications":[{data,offset,tags?,info?}],"offset","epoch","reload"}`.
//! The answer always carries the position to ask from next. Errors:
//! `{"error":{"code","message"}}` with 400 (107), 401 (101/109, bad or expired token),
//! 403 (103), 404 (102), 429 (111, more than `long_poll.max_concurrent_per_client` requests
//! at once for one token or address), 503 (shutting down).
//! `/connection/poll` is the same with `timeout` forced to 0: plain polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use parking_lot::Mutex;
use pushwire_core::{Client, TransportKind};
use pushwire_protocol::{
    ConnectRequest, Disconnect, ErrorCode, Protocol, Publication, SubscribeRequest,
};
use serde::{Deserialize, Serialize};

use super::{admit, cors};
use crate::http_status::{http_status, Surface};
use crate::limits::client_ip::ClientIp;
use crate::state::AppState;

/// A poll request (query or JSON body).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PollRequest {
    /// Channel to read.
    pub channel: String,
    /// Last offset seen.
    pub offset: u64,
    /// Epoch of that offset.
    pub epoch: String,
    /// Seconds to hold the request when nothing is new.
    pub timeout: Option<u64>,
    /// Connection token (alternative to the Authorization header).
    pub token: String,
}

/// A poll answer.
#[derive(Debug, Default, Serialize)]
pub struct PollResponse {
    /// Channel.
    pub channel: String,
    /// New publications, in offset order.
    pub publications: Vec<Publication>,
    /// Position to ask from next.
    pub offset: u64,
    /// Epoch of that position.
    pub epoch: String,
    /// The client's position can not be continued: reload state, then poll from here.
    pub reload: bool,
}

/// Concurrent long-polls per client key (token or peer address).
#[derive(Debug, Default)]
pub struct PollLimiter {
    active: Mutex<HashMap<String, usize>>,
}

struct Permit {
    limiter: Arc<PollLimiter>,
    key: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut active = self.limiter.active.lock();
        if let Some(n) = active.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.key);
            }
        }
    }
}

impl PollLimiter {
    fn acquire(self: &Arc<Self>, key: String, max: usize) -> Option<Permit> {
        let mut active = self.active.lock();
        let n = active.entry(key.clone()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Permit {
            limiter: self.clone(),
            key,
        })
    }
}

fn error(status: StatusCode, code: ErrorCode) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code.code(), "message": code.message()}})),
    )
        .into_response()
}

/// `GET|POST /connection/long_poll`.
pub async fn long_poll(
    state: State<AppState>,
    client: Extension<ClientIp>,
    method: Method,
    query: Query<PollRequest>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(state, client, method, query, h, body, false).await
}

/// `GET|POST /connection/poll`: answers at once.
pub async fn poll(
    state: State<AppState>,
    client: Extension<ClientIp>,
    method: Method,
    query: Query<PollRequest>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(state, client, method, query, h, body, true).await
}

async fn handle(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    method: Method,
    Query(query): Query<PollRequest>,
    h: HeaderMap,
    body: axum::body::Bytes,
    immediate: bool,
) -> Response {
    if let Err(r) = admit::origin(&state, &h) {
        return r;
    }
    let mut req = query;
    if method == Method::POST && !body.is_empty() {
        match serde_json::from_slice::<PollRequest>(&body) {
            Ok(r) => req = r,
            Err(_) => {
                return cors::decorate(&h, error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest))
            }
        }
    }
    if let Some(bearer) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        req.token = bearer.trim().to_owned();
    }
    let cfg = &state.config.long_poll;
    let key = if req.token.is_empty() {
        format!("ip:{ip}")
    } else {
        format!("token:{}", req.token)
    };
    let Some(_permit) = state.polls.acquire(key, cfg.max_concurrent_per_client) else {
        return cors::decorate(
            &h,
            error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests),
        );
    };
    let timeout = if immediate {
        Duration::ZERO
    } else {
        req.timeout
            .map(Duration::from_secs)
            .unwrap_or(cfg.default_timeout)
            .min(cfg.max_timeout)
    };
    let response = match run(&state, req, timeout, &h).await {
        Ok(r) => Json(r).into_response(),
        Err(code) => error(http_status(code.code(), Surface::LongPoll), code),
    };
    cors::decorate(&h, response)
}

async fn run(
    state: &AppState,
    req: PollRequest,
    timeout: Duration,
    headers: &axum::http::HeaderMap,
) -> Result<PollResponse, ErrorCode> {
    if req.channel.is_empty() {
        return Err(ErrorCode::BadRequest);
    }
    let client = admit::client(state, headers, TransportKind::LongPoll, Protocol::Json)
        .map_err(|_| ErrorCode::Internal)?;
    let result = serve(&client, req, timeout, state).await;
    client.disconnect(Disconnect::CONNECTION_CLOSED);
    client.cleanup().await;
    result
}

async fn serve(
    client: &Arc<Client>,
    req: PollRequest,
    timeout: Duration,
    state: &AppState,
) -> Result<PollResponse, ErrorCode> {
    let connect = ConnectRequest {
        token: req.token.clone(),
        ..Default::default()
    };
    client.connect_unidirectional(connect).await.map_err(|d| {
        if d.code == Disconnect::EXPIRED.code {
            ErrorCode::TokenExpired
        } else {
            ErrorCode::Unauthorized
        }
    })?;
    client.outbox().try_drain(); // the connect push
    let resuming = !req.epoch.is_empty();
    let sub = client
        .subscribe_and_position(SubscribeRequest {
            channel: req.channel.clone(),
            recover: resuming,
            offset: req.offset,
            epoch: req.epoch.clone(),
            recoverable: true,
            ..Default::default()
        })
        .await?;
    if !sub.recoverable {
        return Err(ErrorCode::NotAvailable);
    }
    let mut resp = PollResponse {
        channel: req.channel.clone(),
        epoch: sub.epoch.clone(),
        offset: sub.offset,
        ..Default::default()
    };
    if resuming && !sub.recovered {
        resp.reload = true;
        return Ok(resp);
    }
    resp.publications = sub.publications;
    if !resp.publications.is_empty() || timeout.is_zero() || !resuming {
        finish(&mut resp);
        return Ok(resp);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let shutdown = state.node.shutdown_token().clone();
    loop {
        tokio::select! {
            polled = client.next_publications(&req.channel) => {
                resp.publications.extend(polled.publications);
                if polled.closed || !resp.publications.is_empty() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.cancelled() => break,
        }
    }
    finish(&mut resp);
    Ok(resp)
}

fn finish(resp: &mut PollResponse) {
    if let Some(last) = resp.publications.last() {
        resp.offset = resp.offset.max(last.offset);
    }
}
