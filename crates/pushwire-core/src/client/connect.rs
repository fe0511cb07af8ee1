//! `connect` and `refresh`.

use std::sync::Arc;

use pushwire_protocol::{
    ConnectRequest, ConnectResult, Disconnect, ErrorCode, RefreshRequest, RefreshResult, Reply,
};

use super::{Client, CommandResult, Status};
use crate::auth::{unix_now, unix_now_ms, ConnectCredentials, TokenError};
use crate::metrics::Metrics;

impl Client {
    fn credentials(&self, req: &ConnectRequest) -> Result<ConnectCredentials, super::CommandError> {
        let cfg = &self.node.config().client;
        if !req.token.is_empty() {
            let Some(verifier) = self.node.verifier() else {
                return Err(Disconnect::INVALID_TOKEN.into());
            };
            return match verifier.verify_connect(&req.token) {
                Ok(c) => Ok(c),
                Err(TokenError::Expired) => Err(ErrorCode::TokenExpired.into()),
                Err(TokenError::Invalid(why)) => {
                    tracing::debug!(client = %self.id, why, "invalid connection token");
                    Err(Disconnect::INVALID_TOKEN.into())
                }
            };
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
        let creds = self.credentials(&req)?;
        let now = unix_now();
        if creds.expire_at.is_some_and(|e| e <= now) {
            return Err(ErrorCode::Expired.into());
        }
        let this = self.clone();
        {
            let mut st = self.state.lock();
            st.user = creds.user.clone();
            st.conn_info = creds.info.clone();
            st.expire_at = creds.expire_at;
        }
        let limit = self.node.config().client.user_connection_limit;
        if !self.node.registry().add(this, &creds.user, limit) {
            return Err(Disconnect::CONNECTION_LIMIT.into());
        }
        Metrics::add(&self.node.metrics().connections_active, 1);
        let cfg = &self.node.config().client;
        let ttl = creds
            .expire_at
            .map(|e| (e - now).clamp(0, u32::MAX as i64) as u32);
        let result = ConnectResult {
            client: self.id.to_string(),
            version: crate::node::VERSION.into(),
            expires: ttl.is_some(),
            ttl: ttl.unwrap_or(0),
            ping: self.ping_secs(),
            pong: self.pong_flag(),
            session: self.session.to_string(),
            node: if self.transport.emulated {
                self.node.id().to_owned()
            } else {
                String::new()
            },
            time: if cfg.connect_include_server_time {
                unix_now_ms()
            } else {
                0
            },
            ..Default::default()
        };
        {
            let mut st = self.state.lock();
            st.status = Status::Connected;
            self.arm_timers(&mut st);
        }
        let reply = if self.transport.unidirectional {
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
        Ok(reply)
    }

    pub(super) async fn handle_refresh(&self, id: u32, req: RefreshRequest) -> CommandResult {
        let Some(verifier) = self.node.verifier() else {
            return Err(Disconnect::BAD_REQUEST.into());
        };
        let creds = match verifier.verify_connect(&req.token) {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(Disconnect::EXPIRED.into()),
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
            st.conn_info = creds.info;
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
