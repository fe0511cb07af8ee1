//! The client's side of the proxies: `rpc`, `send`, and the server-side refresh of
//! connections and subscriptions by the backend (`client.proxy.refresh`,
//! `sub_refresh_proxy_enabled`), and the subscribe proxy's question. Connect and publish ask
//! the backend from their own files through [`Client::proxy_answer`].

use std::sync::Arc;
use std::time::Duration;

use pushwire_protocol::{
    Disconnect, ErrorCode, Protocol, RawJson, Reply, RpcRequest, RpcResult, SendRequest,
    SubscribeRequest,
};

use super::{Client, CommandError, CommandResult, SubState};
use crate::auth::unix_now;
use crate::config::{ChannelOptions, ProxyKind};
use crate::proxy::{Answer, CallContext, HeaderPairs, ProxyResult, SubscribeAnswer, SubscribeCall};

/// How long a failed refresh or sub_refresh call extends the connection or subscription
/// (Centrifugo's choice: the backend gets another chance a minute later).
const RETRY_EXTENSION_SECS: i64 = 60;

/// What a proxy request says about the connection, copied out of the state lock.
pub(super) struct Caller {
    user: String,
    meta: RawJson,
    emulated: Option<Arc<HeaderPairs>>,
}

impl Client {
    /// The user and meta of this connection, for a proxy request.
    pub(super) fn caller(&self) -> Caller {
        let st = self.state.lock();
        Caller {
            user: st.user.clone(),
            meta: st
                .extra
                .as_ref()
                .map(|e| e.meta.clone())
                .unwrap_or_default(),
            emulated: st.extra.as_ref().and_then(|e| e.emulated.clone()),
        }
    }

    /// The fields every proxy request carries.
    pub(super) fn call_context<'a>(&'a self, caller: &'a Caller) -> CallContext<'a> {
        CallContext {
            client: &self.id,
            transport: self.transport.name(),
            protocol: match self.transport.protocol {
                Protocol::Json => "json",
                Protocol::Protobuf => "protobuf",
            },
            user: &caller.user,
            meta: &caller.meta,
            headers: &self.headers,
            emulated: caller.emulated.as_deref().unwrap_or_default(),
        }
    }

    /// Keeps the connect command's `headers` that some proxy forwards (`emulated_headers`).
    pub(super) fn keep_emulated_headers(&self, req: &pushwire_protocol::ConnectRequest) {
        let wanted = self.node.emulated_headers();
        if wanted.is_empty() || req.headers.is_empty() {
            return;
        }
        let kept: Arc<HeaderPairs> = req
            .headers
            .iter()
            .filter(|(k, _)| wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (Box::from(k.to_ascii_lowercase()), Box::from(v.as_str())))
            .collect();
        self.state.lock().extra().emulated = Some(kept);
    }

    /// Maps a proxy outcome to the command's: the backend's error or disconnect as it chose,
    /// a failed call as 100 (internal, temporary).
    pub(super) fn proxy_answer<T>(&self, what: &str, r: ProxyResult<T>) -> Result<T, CommandError> {
        match r {
            Ok(Answer::Ok(v)) => Ok(v),
            Ok(Answer::Error(e)) => Err(CommandError::Custom(e)),
            Ok(Answer::Disconnect(d)) => Err(d.into()),
            Err(e) => {
                tracing::debug!(client = %self.id, proxy = what, error = %e, "proxy call failed");
                Err(ErrorCode::Internal.into())
            }
        }
    }

    /// Asks the subscribe proxy when the namespace has it on: `None` when it is off (the
    /// usual permission checks apply), else the backend's grant or refusal.
    pub(super) async fn proxy_subscribe(
        &self,
        req: &SubscribeRequest,
        ns: &ChannelOptions,
    ) -> Result<Option<SubscribeAnswer>, CommandError> {
        let Some(proxy) = self.node.proxy().filter(|_| ns.subscribe_proxy_enabled) else {
            return Ok(None);
        };
        let call = SubscribeCall {
            channel: req.channel.clone(),
            token: req.token.clone(),
            data: req.data.clone(),
        };
        let caller = self.caller();
        let r = proxy
            .subscribe(&ns.subscribe_proxy_name, self.call_context(&caller), &call)
            .await;
        self.proxy_answer("subscribe", r).map(Some)
    }

    /// Timeout of the proxy `name` of `kind` (for re-checking after a refresh call).
    fn proxy_timeout(&self, kind: ProxyKind, name: &str) -> Duration {
        self.node
            .config()
            .proxy_config(kind, name)
            .map(|p| p.timeout)
            .unwrap_or(Duration::from_secs(1))
    }

    /// Whether expiring connections are refreshed by the backend (no client-side refresh).
    pub(super) fn refresh_proxied(&self) -> bool {
        self.node.config().client.proxy.refresh.enabled && self.node.proxy().is_some()
    }

    pub(super) async fn handle_rpc(&self, id: u32, req: RpcRequest) -> CommandResult {
        let Some(proxy) = self.node.proxy() else {
            return Err(ErrorCode::NotAvailable.into());
        };
        let options = self
            .node
            .config()
            .rpc
            .options(&req.method)
            .ok_or(ErrorCode::MethodNotFound)?;
        if !options.proxy_enabled {
            return Err(ErrorCode::NotAvailable.into());
        }
        let caller = self.caller();
        let r = proxy
            .rpc(
                &options.proxy_name,
                self.call_context(&caller),
                &req.method,
                &req.data,
            )
            .await;
        let data = self.proxy_answer("rpc", r)?;
        Ok(Reply {
            id,
            rpc: Some(RpcResult { data }),
            ..Default::default()
        })
    }

    /// `send`: delivered to `client.proxy.send` when it is on (the answer is ignored, a failure
    /// only logged); without it the connection closes with 3508 as before.
    pub(super) async fn handle_send(&self, req: SendRequest) -> CommandResult {
        let proxy = match self.node.proxy() {
            Some(p) if self.node.config().client.proxy.send.enabled => p,
            _ => return Err(Disconnect::NOT_AVAILABLE.into()),
        };
        let caller = self.caller();
        if let Err(e) = proxy.send(self.call_context(&caller), &req.data).await {
            tracing::debug!(client = %self.id, error = %e, "send proxy call failed");
        }
        Ok(Reply::default())
    }

    /// Asks the refresh proxy about the expired connection and applies the answer: expired →
    /// 3005, a new expiry and info, or (failure) one more minute.
    pub(super) async fn proxy_refresh(self: Arc<Self>) {
        let Some(proxy) = self.node.proxy().cloned() else {
            return;
        };
        let caller = self.caller();
        let r = proxy.refresh(self.call_context(&caller)).await;
        let answer = match r {
            Ok(Answer::Ok(a)) => a,
            Ok(Answer::Disconnect(d)) => return self.disconnect(d),
            Ok(Answer::Error(_)) | Err(_) => {
                if let Err(e) = &r {
                    tracing::debug!(client = %self.id, error = %e, "refresh proxy call failed");
                }
                let mut st = self.state.lock();
                st.expire_at = Some(unix_now() + RETRY_EXTENSION_SECS);
                self.arm_expiry(&mut st);
                return;
            }
        };
        if answer.expired {
            return self.disconnect(Disconnect::EXPIRED);
        }
        let mut st = self.state.lock();
        st.expire_at = answer.expire_at.filter(|e| *e > 0);
        if let Some(info) = answer.info {
            st.set_conn_info(info);
        }
        if let Some(meta) = answer.meta {
            st.extra().meta = meta;
        }
        self.arm_expiry(&mut st);
    }

    /// When to look at an expired connection again while its refresh call runs.
    pub(super) fn refresh_recheck(&self) -> Duration {
        self.proxy_timeout(ProxyKind::Refresh, "") + Duration::from_secs(1)
    }

    /// Starts the sub_refresh calls of subscriptions that expired (their expiry is pushed
    /// past the call's timeout meanwhile), one task per subscription.
    pub(super) fn proxy_sub_refresh(self: &Arc<Self>, channels: Vec<Arc<str>>) {
        for channel in channels {
            let this = self.clone();
            self.node
                .spawn(async move { this.sub_refresh_one(channel).await });
        }
    }

    /// The sub_refresh proxy name of `channel`'s namespace.
    fn sub_refresh_proxy_name(&self, channel: &str) -> Option<String> {
        let info = self.node.namespaces().resolve(channel).ok()?;
        let ns = &info.namespace.options;
        ns.sub_refresh_proxy_enabled
            .then(|| ns.sub_refresh_proxy_name.clone())
    }

    /// When to look at an expired subscription again while its sub_refresh call runs.
    pub(super) fn sub_refresh_recheck(&self, channel: &str) -> i64 {
        let name = self.sub_refresh_proxy_name(channel).unwrap_or_default();
        self.proxy_timeout(ProxyKind::SubRefresh, &name).as_secs() as i64 + 1
    }

    async fn sub_refresh_one(self: Arc<Self>, channel: Arc<str>) {
        let (Some(proxy), Some(name)) = (
            self.node.proxy().cloned(),
            self.sub_refresh_proxy_name(&channel),
        ) else {
            return;
        };
        let caller = self.caller();
        let r = proxy
            .sub_refresh(&name, self.call_context(&caller), &channel)
            .await;
        let expire_at = match r {
            Ok(Answer::Ok(a)) if a.expired => None,
            Ok(Answer::Ok(a)) => {
                let mut st = self.state.lock();
                if let Some(s) = st.subs.get_mut(&channel) {
                    s.expire_at = a.expire_at.filter(|e| *e > 0);
                    if let Some(info) = a.info {
                        s.chan_info = SubState::boxed_info(info);
                    }
                }
                self.arm_sub_expiry(&mut st);
                return;
            }
            Ok(Answer::Disconnect(d)) => return self.disconnect(d),
            Ok(Answer::Error(_)) | Err(_) => Some(unix_now() + RETRY_EXTENSION_SECS),
        };
        match expire_at {
            Some(exp) => {
                let mut st = self.state.lock();
                if let Some(s) = st.subs.get_mut(&channel) {
                    s.expire_at = Some(exp);
                }
                self.arm_sub_expiry(&mut st);
            }
            None => {
                self.server_unsubscribe(&channel, pushwire_protocol::Unsubscribe::EXPIRED)
                    .await;
            }
        }
    }
}
