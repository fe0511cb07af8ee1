//! `publish`, `history`, `presence`, `presence_stats` and `sub_refresh` from clients.

use pushwire_protocol::{
    ChannelRequest, Disconnect, ErrorCode, HistoryRequest, PresenceResult, PresenceStatsResult,
    PublishRequest, RefreshResult, Reply, SubRefreshRequest,
};

use super::subscribe::allowed;
use super::{Client, CommandResult};
use crate::auth::{unix_now, TokenError};
use crate::node::PublishParams;

impl Client {
    fn subscribed(&self, channel: &str) -> Option<super::SubState> {
        self.state
            .lock()
            .subs
            .get(channel)
            .filter(|s| !s.subscribing)
            .cloned()
    }

    pub(super) async fn handle_publish(&self, id: u32, req: PublishRequest) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let channel = self.node.namespaces().resolve(&req.channel)?;
        let ns = &channel.namespace.options;
        let sub = self.subscribed(&req.channel);
        let anonymous = self.state.lock().user.is_empty();
        let proxied = ns.publish_proxy_enabled && self.node.proxy().is_some();
        let ok = self.node.config().client.insecure
            || proxied
            || allowed(
                ns.allow_publish_for_client,
                ns.allow_publish_for_subscriber,
                ns.allow_publish_for_anonymous,
                sub.is_some(),
                anonymous,
            );
        if !ok {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let info = self.client_info(sub.map(|s| s.chan_info()).unwrap_or_default());
        let mut params = PublishParams {
            data: req.data,
            info: Some(info),
            ..Default::default()
        };
        if let Some(proxy) = self.node.proxy().filter(|_| proxied) {
            // The backend validates, rewrites or refuses the publication.
            let caller = self.caller();
            let r = proxy
                .publish(
                    &ns.publish_proxy_name,
                    self.call_context(&caller),
                    &req.channel,
                    &params.data,
                )
                .await;
            let a = self.proxy_answer("publish", r)?;
            if let Some(data) = a.data {
                params.data = data;
            }
            params.skip_history = a.skip_history;
            params.tags = a.tags;
            params.idempotency_key = a.idempotency_key;
            params.version = a.version;
            params.version_epoch = a.version_epoch;
        }
        self.node.publish(&req.channel, params).await?;
        Ok(Reply {
            id,
            publish: Some(Default::default()),
            ..Default::default()
        })
    }

    pub(super) async fn handle_history(&self, id: u32, req: HistoryRequest) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let channel = self.node.namespaces().resolve(&req.channel)?;
        let ns = &channel.namespace.options;
        if !ns.history_enabled() {
            return Err(ErrorCode::NotAvailable.into());
        }
        let anonymous = self.state.lock().user.is_empty();
        let ok = self.node.config().client.insecure
            || allowed(
                ns.allow_history_for_client,
                ns.allow_history_for_subscriber,
                ns.allow_history_for_anonymous,
                self.subscribed(&req.channel).is_some(),
                anonymous,
            );
        if !ok {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let result = self
            .node
            .history(&req.channel, req.limit, req.since, req.reverse)
            .await?;
        Ok(Reply {
            id,
            history: Some(result),
            ..Default::default()
        })
    }

    pub(super) async fn handle_presence(
        &self,
        id: u32,
        req: ChannelRequest,
        stats: bool,
    ) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let channel = self.node.namespaces().resolve(&req.channel)?;
        let ns = &channel.namespace.options;
        if !ns.presence {
            return Err(ErrorCode::NotAvailable.into());
        }
        let anonymous = self.state.lock().user.is_empty();
        let ok = self.node.config().client.insecure
            || allowed(
                ns.allow_presence_for_client,
                ns.allow_presence_for_subscriber,
                ns.allow_presence_for_anonymous,
                self.subscribed(&req.channel).is_some(),
                anonymous,
            );
        if !ok {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let mut reply = Reply {
            id,
            ..Default::default()
        };
        if stats {
            let s = self.node.presence_stats_of(&req.channel).await?;
            reply.presence_stats = Some(PresenceStatsResult {
                num_clients: s.num_clients,
                num_users: s.num_users,
            });
        } else {
            let presence = self.node.presence_of(&req.channel).await?;
            reply.presence = Some(PresenceResult { presence });
        }
        Ok(reply)
    }

    pub(super) async fn handle_sub_refresh(
        &self,
        id: u32,
        req: SubRefreshRequest,
    ) -> CommandResult {
        if req.channel.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        if self.subscribed(&req.channel).is_none() {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let verifier = self.node.verifier().ok_or(ErrorCode::PermissionDenied)?;
        let creds = match verifier.verify_subscribe(&req.token).await {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(Disconnect::SUBSCRIPTION_EXPIRED.into()),
            Err(TokenError::Unavailable(_)) => return Err(ErrorCode::Internal.into()),
            Err(TokenError::Invalid(_)) => return Err(Disconnect::INVALID_TOKEN.into()),
        };
        let now = unix_now();
        let mut st = self.state.lock();
        if creds.channel != req.channel
            || creds.user != st.user
            || creds.client.as_deref().is_some_and(|c| c != &*self.id)
        {
            return Err(Disconnect::INVALID_TOKEN.into());
        }
        if creds.expire_at.is_some_and(|e| e <= now) {
            return Err(Disconnect::SUBSCRIPTION_EXPIRED.into());
        }
        if let Some(s) = st.subs.get_mut(req.channel.as_str()) {
            s.expire_at = creds.expire_at;
        }
        self.arm_sub_expiry(&mut st);
        let ttl = creds.expire_at.map(|e| (e - now).max(0) as u32);
        Ok(Reply {
            id,
            sub_refresh: Some(RefreshResult {
                expires: ttl.is_some(),
                ttl: ttl.unwrap_or(0),
            }),
            ..Default::default()
        })
    }
}
