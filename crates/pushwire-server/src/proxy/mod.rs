//! Proxies to the application backend over HTTP (Centrifugo's JSON format) or gRPC
//! (Centrifugo's `CentrifugoProxy` service), so a backend written for Centrifugo works
//! unchanged (docs/proxies.md).
//!
//! Files: [`client`] (one proxy: its protection — slot cap, deadline, breaker
//! ([`pushwire_core::breaker`]), metrics —
//! around the call), [`http`] (the POST with its bounded body), [`wire`] (the request and
//! response JSON), [`grpc`] and
//! [`grpc_wire`] (the gRPC client and messages; `grpc_calls.rs` maps each event),
//! [`metrics`] (figures and the once-per-interval failure log),
//! [`render`] (`/metrics` families), [`tls`] (TLS to backends: `http.tls`, `grpc.tls`).

pub mod client;
pub mod grpc;
mod grpc_calls;
pub mod grpc_wire;
pub mod http;
pub mod metrics;
pub mod render;
pub mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use pushwire_core::config::{is_default_name, NodeConfig, ProxyKind};
use pushwire_core::proxy::{
    Answer, CallContext, ConnectAnswer, ConnectCall, ProxyBackend, ProxyError, ProxyResult,
    PublishAnswer, RefreshAnswer, SubRefreshAnswer, SubscribeAnswer, SubscribeCall,
};
use pushwire_protocol::RawJson;
use serde::de::DeserializeOwned;

pub use client::{BuildError, ProxyClient};

use wire::{Request, Response};

/// Every proxy the configuration uses, by name: a kind's default definition under the kind's
/// name (`connect`, `subscribe`, …), a named one (`proxies[]`) under its own name.
#[derive(Debug, Default)]
pub struct Proxies {
    by_name: BTreeMap<String, Arc<ProxyClient>>,
}

fn label(kind: ProxyKind, name: &str) -> String {
    if is_default_name(name) {
        kind.as_str().to_owned()
    } else {
        name.to_owned()
    }
}

impl Proxies {
    /// The proxies `config` switches on; `None` when it uses none. `config` must be valid.
    pub fn from_config(config: &NodeConfig) -> Result<Option<Arc<Proxies>>, BuildError> {
        let mut by_name = BTreeMap::new();
        for u in config.proxy_uses() {
            let name = label(u.kind, &u.name);
            if by_name.contains_key(&name) {
                continue;
            }
            let Some(def) = config.proxy_config(u.kind, &u.name) else {
                continue;
            };
            by_name.insert(name.clone(), Arc::new(ProxyClient::new(name, def.clone())?));
        }
        Ok((!by_name.is_empty()).then(|| Arc::new(Proxies { by_name })))
    }

    /// Every proxy, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ProxyClient>> {
        self.by_name.values()
    }

    fn get(&self, kind: ProxyKind, name: &str) -> Result<&ProxyClient, ProxyError> {
        self.by_name
            .get(&label(kind, name))
            .map(|p| &**p)
            .ok_or_else(|| {
                ProxyError::Invalid(format!("no proxy {:?} configured", label(kind, name)))
            })
    }

    /// Calls `proxy` and maps its answer's result with `f` (given `None` when the backend
    /// sent no result).
    async fn ask<R: DeserializeOwned, T>(
        proxy: &ProxyClient,
        ctx: &CallContext<'_>,
        body: &Request<'_>,
        f: impl FnOnce(Option<R>) -> Result<T, ProxyError>,
    ) -> ProxyResult<T> {
        let resp: Response<R> = proxy.call(ctx, body).await?;
        Ok(match resp.answer() {
            Answer::Ok(r) => Answer::Ok(f(r).inspect_err(|e| {
                proxy.metrics().log_failure(proxy.name(), e);
            })?),
            Answer::Error(e) => Answer::Error(e),
            Answer::Disconnect(d) => Answer::Disconnect(d),
        })
    }

    fn request<'a>(proxy: &ProxyClient, ctx: &CallContext<'a>, meta: bool) -> Request<'a> {
        let c = proxy.config();
        Request::new(ctx, c.binary_encoding, meta && c.include_connection_meta)
    }
}

#[async_trait::async_trait]
impl ProxyBackend for Proxies {
    async fn connect(&self, ctx: CallContext<'_>, req: &ConnectCall) -> ProxyResult<ConnectAnswer> {
        let p = self.get(ProxyKind::Connect, "")?;
        if let Some(g) = p.grpc() {
            return grpc_calls::connect(p, g, ctx, req).await;
        }
        let mut body = Self::request(p, &ctx, false).with_data(&req.data);
        body.name = &req.name;
        body.version = &req.version;
        body.channels = &req.channels;
        Self::ask(p, &ctx, &body, |r: Option<wire::ConnectResult>| {
            r.ok_or_else(|| ProxyError::Invalid("connect answer without result".into()))?
                .into_credentials()
        })
        .await
    }

    async fn refresh(&self, ctx: CallContext<'_>) -> ProxyResult<RefreshAnswer> {
        let p = self.get(ProxyKind::Refresh, "")?;
        if let Some(g) = p.grpc() {
            return grpc_calls::refresh(p, g, ctx).await;
        }
        let mut body = Self::request(p, &ctx, true);
        body.user = ctx.user;
        // No result means expired, as in Centrifugo.
        Self::ask(p, &ctx, &body, |r: Option<wire::RefreshResult>| match r {
            Some(r) => r.into_answer(),
            None => Ok(RefreshAnswer {
                expired: true,
                ..Default::default()
            }),
        })
        .await
    }

    async fn subscribe(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        req: &SubscribeCall,
    ) -> ProxyResult<SubscribeAnswer> {
        let p = self.get(ProxyKind::Subscribe, name)?;
        if let Some(g) = p.grpc() {
            return grpc_calls::subscribe(p, g, ctx, req).await;
        }
        let mut body = Self::request(p, &ctx, true).with_data(&req.data);
        body.user = ctx.user;
        body.channel = &req.channel;
        body.token = &req.token;
        Self::ask(p, &ctx, &body, |r: Option<wire::SubscribeResult>| {
            r.map(|r| r.into_answer()).unwrap_or(Ok(Default::default()))
        })
        .await
    }

    async fn publish(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        channel: &str,
        data: &RawJson,
    ) -> ProxyResult<PublishAnswer> {
        let p = self.get(ProxyKind::Publish, name)?;
        if let Some(g) = p.grpc() {
            return grpc_calls::publish(p, g, ctx, channel, data).await;
        }
        let mut body = Self::request(p, &ctx, true).with_data(data);
        body.user = ctx.user;
        body.channel = channel;
        Self::ask(p, &ctx, &body, |r: Option<wire::PublishResult>| {
            r.map(|r| r.into_answer()).unwrap_or(Ok(Default::default()))
        })
        .await
    }

    async fn sub_refresh(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        channel: &str,
    ) -> ProxyResult<SubRefreshAnswer> {
        let p = self.get(ProxyKind::SubRefresh, name)?;
        if let Some(g) = p.grpc() {
            return grpc_calls::sub_refresh(p, g, ctx, channel).await;
        }
        let mut body = Self::request(p, &ctx, true);
        body.user = ctx.user;
        body.channel = channel;
        Self::ask(
            p,
            &ctx,
            &body,
            |r: Option<wire::SubRefreshResult>| match r {
                Some(r) => r.into_answer(),
                None => Ok(SubRefreshAnswer {
                    expired: true,
                    ..Default::default()
                }),
            },
        )
        .await
    }

    async fn rpc(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        method: &str,
        data: &RawJson,
    ) -> ProxyResult<RawJson> {
        let p = self.get(ProxyKind::Rpc, name)?;
        if let Some(g) = p.grpc() {
            return grpc_calls::rpc(p, g, ctx, method, data).await;
        }
        let mut body = Self::request(p, &ctx, true).with_data(data);
        body.user = ctx.user;
        body.method = method;
        Self::ask(p, &ctx, &body, |r: Option<wire::RpcResult>| {
            r.map(|r| r.into_data()).unwrap_or(Ok(RawJson::default()))
        })
        .await
    }

    async fn send(&self, ctx: CallContext<'_>, data: &RawJson) -> Result<(), ProxyError> {
        let p = self.get(ProxyKind::Send, "")?;
        let mut body = Self::request(p, &ctx, true).with_data(data);
        body.user = ctx.user;
        let _: serde::de::IgnoredAny = p.call(&ctx, &body).await?;
        Ok(())
    }
}
