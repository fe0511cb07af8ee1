//! `connect` and `refresh`.

use std::sync::Arc;

use pushwire_protocol::{
    ConnectRequest, ConnectResult, Disconnect, ErrorCode, RawJson, RefreshRequest, RefreshResult,
    Reply,
};

use super::subscribe::{Origin, Prepared};
use super::{Client, CommandResult, Status};
use crate::auth::{unix_now, unix_now_ms, ConnectCredentials, TokenError};
use crate::lifecycle::Record;
use crate::metrics::Metrics;
use crate::proxy::ConnectCall;

impl Client {
    async fn credentials(
        &self,
        req: &ConnectRequest,
    ) -> Result<ConnectCredentials, super::CommandError> {
        let cfg = &self.node.config().client;
        self.keep_emulated_headers(req);
        if !req.token.is_empty() {
            let Some(verifier) = self.node.verifier() else {
                return Err(Disconnect::INVALID_TOKEN.into());
            };
            return match verifier.verify_connect(&req.token).await {
                Ok(c) => Ok(c),
                Err(TokenError::Expired) => Err(ErrorCode::TokenExpired.into()),
                Err(TokenError::Unavailable(why)) => {
                    tracing::warn!(client = %self.id, why, "token keys unavailable");
                    Err(ErrorCode::Internal.into())
                }
                Err(TokenError::Invalid(why)) => {
                    tracing::debug!(client = %self.id, why = %why, "invalid connection token");
                    Err(Disconnect::INVALID_TOKEN.into())
                }
            };
        }
        if cfg.proxy.connect.enabled
            && let Some(proxy) = self.node.proxy()
        {
            // No token: the application backend decides (session cookie, header, ...).
            let call = ConnectCall {
                data: req.data.clone(),
                name: req.name.clone(),
                version: req.version.clone(),
                channels: req.subs.keys().cloned().collect(),
            };
            let caller = self.caller();
            let r = proxy.connect(self.call_context(&caller), &call).await;
            return self.proxy_answer("connect", r);
        }
        if cfg.allow_anonymous_connect_without_token || cfg.insecure {
            return Ok(ConnectCredentials::default());
        }
        Err(Disconnect::BAD_REQUEST.into())
    }

    pub(super) async fn handle_connect(
        self: &Arc<Client>,
        id: u32,
        req: ConnectRequest,
    ) -> CommandResult {
        if self.node.shutdown_token().is_cancelled() {
            return Err(Disconnect::SHUTDOWN.into());
        }
        let creds = self.credentials(&req).await?;
        let now = unix_now();
        if creds.expire_at.is_some_and(|e| e <= now) {
            return Err(ErrorCode::Expired.into());
        }
        let this = self.clone();
        {
            let mut st = self.state.lock();
            st.user = creds.user.clone();
            st.set_conn_info(creds.info.clone());
            if !creds.meta.is_empty() {
                st.extra().meta = creds.meta.clone();
            }
            st.expire_at = creds.expire_at;
        }
        let limit = self.node.config().client.user_connection_limit;
        if limit > 0 && !creds.user.is_empty() {
            // Counted across every node of the engine; a failed engine refuses the connect
            // with a temporary error (the SDK retries) rather than skipping the limit.
            match self
                .node
                .user_connections()
                .try_add(&creds.user, &self.id, limit)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(Disconnect::CONNECTION_LIMIT.into()),
                Err(e) => {
                    tracing::warn!(client = %self.id, error = %e, "user connection count failed");
                    return Err(ErrorCode::Internal.into());
                }
            }
        }
        self.node.registry().add(this, &creds.user, 0);
        Metrics::add(&self.node.metrics().connections_active, 1);
        tracing::debug!(client = %self.id, user = %creds.user, transport = self.transport.name(), "connected");
        {
            let mut st = self.state.lock();
            st.status = Status::Connected;
            self.arm_timers(&mut st);
        }
        let prepared = match self.server_side_subscriptions(&creds, &req).await {
            Ok(p) => p,
            Err(e) => {
                // The connection is not usable: release what was taken.
                self.release_all().await;
                self.node.registry().remove(self.key, &creds.user);
                self.release_user_connection(&creds.user).await;
                self.node
                    .metrics()
                    .connections_active
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let mut st = self.state.lock();
                st.status = Status::Connecting;
                st.timers = super::timers::Timers::new(
                    tokio::time::Instant::now() + self.node.config().client.stale_close_delay,
                );
                drop(st);
                return Err(e);
            }
        };
        self.node.lifecycle().record(Record::Connect {
            client: self.id.to_string(),
            user: creds.user.clone(),
        });
        let cfg = &self.node.config().client;
        // With a refresh proxy the server refreshes: the client is not told about expiry.
        let ttl = creds
            .expire_at
            .filter(|_| !self.refresh_proxied())
            .map(|e| (e - now).clamp(0, u32::MAX as i64) as u32);
        let result = ConnectResult {
            client: self.id.to_string(),
            version: crate::node::VERSION.into(),
            expires: ttl.is_some(),
            ttl: ttl.unwrap_or(0),
            data: creds.data.clone(),
            ping: self.ping_secs(),
            pong: self.pong_flag(),
            session: self.session().to_owned(),
            node: if self.transport.emulated() {
                self.node.id().to_owned()
            } else {
                String::new()
            },
            time: if cfg.connect_include_server_time {
                unix_now_ms()
            } else {
                0
            },
            subs: prepared
                .iter()
                .map(|p| (p.channel.to_string(), p.result.clone()))
                .collect(),
        };
        let reply = if self.transport.unidirectional() {
            Reply::push(pushwire_protocol::Push {
                connect: Some(result),
                ..Default::default()
            })
        } else {
            Reply {
                id,
                connect: Some(result),
                ..Default::default()
            }
        };
        self.send_reply(&reply);
        for p in prepared {
            self.subscribe_finish(p).await;
        }
        // Already queued, ahead of the server-side subscriptions' publications.
        Ok(Reply::default())
    }

    /// Subscribes the channels of the token's `channels` claim (an unknown namespace fails the
    /// connect) and those the client asks for in `connect.subs` that it may subscribe to
    /// (others are skipped), recovering from the hints in `connect.subs`.
    async fn server_side_subscriptions(
        self: &Arc<Self>,
        creds: &ConnectCredentials,
        req: &ConnectRequest,
    ) -> Result<Vec<Prepared>, super::CommandError> {
        let mut prepared = Vec::new();
        let hint = |ch: &str| {
            let mut r = req.subs.get(ch).cloned().unwrap_or_default();
            r.channel = ch.to_owned();
            r
        };
        let granted: Vec<(&String, Origin)> = if creds.subs.is_empty() {
            let origin = || Origin::Granted {
                info: Default::default(),
                data: Default::default(),
                overrides: Default::default(),
            };
            creds.channels.iter().map(|ch| (ch, origin())).collect()
        } else {
            let origin = |s: &crate::auth::TokenSubscription| Origin::Granted {
                info: s.info.clone(),
                data: s.data.clone(),
                overrides: s.overrides,
            };
            creds.subs.iter().map(|s| (&s.channel, origin(s))).collect()
        };
        let taken: Vec<String> = granted.iter().map(|(c, _)| (*c).clone()).collect();
        for (ch, origin) in granted {
            prepared.push(self.subscribe_begin(&hint(ch), origin).await?);
        }
        let mut requested: Vec<&String> = req.subs.keys().filter(|c| !taken.contains(c)).collect();
        requested.sort();
        // Asking for more than the limit closes with 3505 (never a silent cut).
        if prepared.len() + requested.len() > self.node.config().client.channel_limit {
            return Err(Disconnect::CHANNEL_LIMIT.into());
        }
        for ch in requested {
            if let Ok(p) = self.subscribe_begin(&hint(ch), Origin::Requested).await {
                prepared.push(p);
            }
        }
        Ok(prepared)
    }

    /// Connects a unidirectional client from its bare ConnectRequest. Connect errors become
    /// disconnects: 109/110 → 3005, 111 → 3013, 103 → 3507, others → 3004.
    pub async fn connect_unidirectional(
        self: &Arc<Self>,
        req: ConnectRequest,
    ) -> Result<(), Disconnect> {
        match self.handle_connect(0, req).await {
            Ok(_) => Ok(()),
            Err(super::CommandError::Disconnect(d)) => Err(d),
            Err(super::CommandError::Custom(e)) => Err(if e.code == 103 {
                Disconnect::PERMISSION_DENIED
            } else {
                Disconnect::INTERNAL
            }),
            Err(super::CommandError::Reply(code)) => Err(match code {
                ErrorCode::TokenExpired | ErrorCode::Expired => Disconnect::EXPIRED,
                ErrorCode::TooManyRequests => Disconnect::TOO_MANY_REQUESTS,
                ErrorCode::PermissionDenied => Disconnect::PERMISSION_DENIED,
                _ => Disconnect::INTERNAL,
            }),
        }
    }

    /// Extends or ends the connection on the server's initiative (API `refresh`): `expired`
    /// closes it with 3005; otherwise the new expiry (`None` = never) and info apply and the
    /// client gets a Refresh push.
    pub fn server_refresh(&self, expired: bool, expire_at: Option<i64>, info: Option<RawJson>) {
        if expired {
            self.disconnect(Disconnect::EXPIRED);
            return;
        }
        let mut st = self.state.lock();
        st.expire_at = expire_at.filter(|e| *e > 0);
        if let Some(info) = info {
            st.set_conn_info(info);
        }
        self.arm_expiry(&mut st);
        let ttl = st.expire_at.map(|e| (e - unix_now()).max(0) as u32);
        drop(st);
        self.send_reply(&Reply::push(pushwire_protocol::Push {
            refresh: Some(RefreshResult {
                expires: ttl.is_some(),
                ttl: ttl.unwrap_or(0),
            }),
            ..Default::default()
        }));
    }

    pub(super) async fn handle_refresh(&self, id: u32, req: RefreshRequest) -> CommandResult {
        let Some(verifier) = self.node.verifier() else {
            return Err(Disconnect::BAD_REQUEST.into());
        };
        let creds = match verifier.verify_connect(&req.token).await {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(Disconnect::EXPIRED.into()),
            Err(TokenError::Unavailable(_)) => return Err(ErrorCode::Internal.into()),
            Err(TokenError::Invalid(_)) => return Err(Disconnect::INVALID_TOKEN.into()),
        };
        let now = unix_now();
        let mut st = self.state.lock();
        if creds.user != st.user {
            return Err(Disconnect::INVALID_TOKEN.into());
        }
        if creds.expire_at.is_some_and(|e| e <= now) {
            return Err(Disconnect::EXPIRED.into());
        }
        st.expire_at = creds.expire_at;
        if !creds.info.is_empty() {
            st.set_conn_info(creds.info);
        }
        self.arm_expiry(&mut st);
        let ttl = st.expire_at.map(|e| (e - now).max(0) as u32);
        Ok(Reply {
            id,
            refresh: Some(RefreshResult {
                expires: ttl.is_some(),
                ttl: ttl.unwrap_or(0),
            }),
            ..Default::default()
        })
    }
}
