//! One connect attempt: get a token, open the endpoints in order until one opens (fallback),
//! send the connect command, wait for the connect reply.
//!
//! The attempt owns everything it needs, so the connection task can keep handling
//! operations (and `close()`) while it runs.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use pushwire_protocol::{ConnectResult, Protocol, RawJson, Reply};
use reqwest::Url;

use super::{Driver, End};
use crate::codec::{self, Body, ConnectReq, SubscribeReq};
use crate::config::TokenFn;
use crate::error::{codes, disconnect_code_reconnects, ClientError, ServerError};
use crate::transport::{Incoming, OpenParams, Transport, TransportKind};

/// What an attempt needs (owned).
pub(super) struct Params {
    endpoints: Vec<(TransportKind, Url)>,
    emulation: Option<Url>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    start: usize,
    protocol: Protocol,
    http: reqwest::Client,
    timeout: Duration,
    token_fn: Option<TokenFn>,
    token: Option<String>,
    fetch_token: bool,
    request: ConnectReq,
}

/// An open, connected transport.
pub(super) struct Opened {
    pub transport: Transport,
    pub result: ConnectResult,
    /// Index of the endpoint that worked.
    pub index: usize,
    /// Replies that arrived together with the connect reply.
    pub extra: Vec<Reply>,
}

/// What an attempt produced.
pub(super) struct Outcome {
    /// A token fetched from the callback (cache it).
    pub token: Option<String>,
    /// Errors to report (endpoints that failed before one worked, or all of them).
    pub errors: Vec<ClientError>,
    pub result: Result<Opened, End>,
}

impl Driver {
    pub(super) fn connect_params(&self) -> Params {
        let subs: HashMap<String, SubscribeReq> = self
            .server_subs
            .iter()
            .filter(|(_, s)| s.recoverable)
            .map(|(ch, s)| {
                (
                    ch.clone(),
                    SubscribeReq {
                        channel: String::new(),
                        recover: true,
                        offset: s.offset,
                        epoch: s.epoch.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        Params {
            endpoints: self.validated.endpoints.clone(),
            emulation: self.validated.emulation.clone(),
            tls: self.validated.tls.clone(),
            start: self.preferred,
            protocol: self.cfg.protocol,
            http: self.http.clone(),
            timeout: self.cfg.timeout,
            token_fn: self.cfg.token_fn.clone(),
            token: self.token.clone(),
            fetch_token: self.refresh_token || self.token.is_none(),
            request: ConnectReq {
                token: String::new(),
                data: self.cfg.data.clone().map(RawJson).unwrap_or_default(),
                subs,
                name: self.cfg.name.clone(),
                version: self.cfg.version.clone(),
            },
        }
    }
}

fn retry(code: u32, reason: &str) -> End {
    End::Reconnect {
        code,
        reason: reason.into(),
    }
}

/// Runs one attempt.
pub(super) async fn attempt(mut p: Params) -> Outcome {
    let mut out = Outcome {
        token: None,
        errors: Vec::new(),
        result: Err(retry(codes::TRANSPORT_CLOSED, "transport closed")),
    };
    let mut token = p.token.clone().unwrap_or_default();
    if let (Some(f), true) = (&p.token_fn, p.fetch_token) {
        match tokio::time::timeout(p.timeout, f()).await {
            Err(_) => {
                out.errors.push(ClientError::Token("timed out".into()));
                return out;
            }
            Ok(Err(e)) => {
                out.errors.push(ClientError::Token(e.to_string()));
                return out;
            }
            Ok(Ok(t)) if t.is_empty() => {
                out.result = Err(End::Terminal {
                    code: codes::UNAUTHORIZED,
                    reason: "unauthorized".into(),
                    error: ClientError::Token("the callback returned an empty token".into()),
                });
                return out;
            }
            Ok(Ok(t)) => {
                token = t.clone();
                out.token = Some(t);
            }
        }
    }
    p.request.token = token;
    let frame = match codec::encode(p.protocol, 1, &Body::Connect(p.request.clone())) {
        Ok(f) => f,
        Err(e) => {
            out.result = Err(End::Terminal {
                code: codes::BAD_PROTOCOL,
                reason: "bad connect data".into(),
                error: e,
            });
            return out;
        }
    };
    let n = p.endpoints.len();
    for i in 0..n {
        let index = (p.start + i) % n;
        let (kind, url) = &p.endpoints[index];
        let opened = Transport::open(OpenParams {
            kind: *kind,
            url,
            emulation: p.emulation.as_ref(),
            protocol: p.protocol,
            connect_frame: frame.clone(),
            http: &p.http,
            tls: p.tls.as_ref(),
            timeout: p.timeout,
        })
        .await;
        let transport = match opened {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(transport = %kind, error = %e, "transport failed to open");
                out.errors.push(e);
                continue;
            }
        };
        out.result = await_connect_reply(
            transport,
            index,
            p.timeout,
            p.token_fn.is_some(),
            &mut out.errors,
        )
        .await;
        return out;
    }
    out
}

/// The connect reply and the replies that came after it in the same frame.
type ConnectReplies = (Reply, Vec<Reply>);

/// Waits for the reply to command 1 and classifies failures the way the SDKs do.
async fn await_connect_reply(
    mut transport: Transport,
    index: usize,
    timeout: Duration,
    has_token_fn: bool,
    errors: &mut Vec<ClientError>,
) -> Result<Opened, End> {
    let kind = transport.kind().name();
    let wait = async {
        loop {
            match transport.next().await? {
                Incoming::Closed { code, reason } => return Ok(Err((code, reason))),
                Incoming::Replies(replies) => {
                    let mut it = replies.into_iter();
                    while let Some(r) = it.next() {
                        if r.id == 1 {
                            return Ok(Ok((r, it.collect::<Vec<_>>())));
                        }
                        if let Some(d) = r.push.as_ref().and_then(|p| p.disconnect.as_ref()) {
                            return Ok(Err((d.code, d.reason.to_string())));
                        }
                    }
                }
            }
        }
    };
    let got: Result<Result<ConnectReplies, (u32, String)>, ClientError> =
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(ClientError::transport(kind, "no connect reply in time")),
            Ok(r) => r,
        };
    match got {
        Err(e) => {
            errors.push(e);
            Err(retry(codes::TRANSPORT_CLOSED, "transport closed"))
        }
        Ok(Err((code, reason))) => {
            if disconnect_code_reconnects(code) {
                errors.push(ClientError::transport(
                    kind,
                    format!("closed before the connect reply: {reason} ({code})"),
                ));
                Err(if code >= 3000 {
                    End::Reconnect { code, reason }
                } else {
                    retry(codes::TRANSPORT_CLOSED, "transport closed")
                })
            } else {
                Err(End::Terminal {
                    code,
                    reason: reason.clone(),
                    error: ClientError::Disconnected { code, reason },
                })
            }
        }
        Ok(Ok((reply, extra))) => {
            if let Some(e) = reply.error {
                let e = ServerError::from(e);
                if e.code == 109 && has_token_fn {
                    errors.push(ClientError::Server(e));
                    return Err(retry(109, "token expired"));
                }
                if e.retryable() && e.code != 109 {
                    errors.push(ClientError::Server(e.clone()));
                    return Err(retry(e.code, &e.message));
                }
                return Err(End::Terminal {
                    code: e.code,
                    reason: e.message.clone(),
                    error: ClientError::Server(e),
                });
            }
            match reply.connect {
                Some(result) => Ok(Opened {
                    transport,
                    result,
                    index,
                    extra,
                }),
                None => Err(End::Terminal {
                    code: codes::BAD_PROTOCOL,
                    reason: "bad protocol".into(),
                    error: ClientError::Protocol("reply 1 carries no connect result".into()),
                }),
            }
        }
    }
}

/// A frame of already-encoded commands.
pub(super) fn frame(protocol: Protocol, parts: &[Bytes]) -> Bytes {
    codec::join(protocol, parts)
}
