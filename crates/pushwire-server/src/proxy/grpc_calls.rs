//! Each proxy event over gRPC: the request built from the call, the answer read back into the
//! core's types, with the same meaning as over HTTP.

use pushwire_core::auth::{ChannelOverride, ConnectCredentials, TokenSubscription};
use pushwire_core::proxy::{
    Answer, CallContext, ConnectCall, ProxyResult, PublishAnswer, RefreshAnswer, SubRefreshAnswer,
    SubscribeAnswer, SubscribeCall,
};
use pushwire_protocol::{Disconnect, RawJson};

use super::grpc::GrpcClient;
use super::grpc_wire as w;
use super::ProxyClient;

/// The fields every request starts with.
struct Base {
    client: String,
    transport: String,
    protocol: String,
    encoding: String,
}

fn base(p: &ProxyClient, ctx: &CallContext<'_>) -> Base {
    Base {
        client: ctx.client.to_owned(),
        transport: ctx.transport.to_owned(),
        protocol: ctx.protocol.to_owned(),
        encoding: if p.config().binary_encoding {
            "binary"
        } else {
            "json"
        }
        .to_owned(),
    }
}

fn meta(p: &ProxyClient, ctx: &CallContext<'_>) -> Vec<u8> {
    if p.config().include_connection_meta {
        ctx.meta.as_bytes().to_vec()
    } else {
        Vec::new()
    }
}

fn raw(bytes: Vec<u8>) -> RawJson {
    RawJson::from_bytes(bytes)
}

fn expiry(expire_at: i64) -> Option<i64> {
    (expire_at > 0).then_some(expire_at)
}

fn overrides(o: Option<w::SubscribeOptionOverride>) -> ChannelOverride {
    let Some(o) = o else {
        return ChannelOverride::default();
    };
    let v = |b: Option<w::BoolValue>| b.map(|b| b.value);
    ChannelOverride {
        presence: v(o.presence),
        join_leave: v(o.join_leave),
        force_push_join_leave: v(o.force_push_join_leave),
        force_recovery: v(o.force_recovery),
        force_positioning: v(o.force_positioning),
    }
}

/// The backend's decision: disconnect first, then error, then the result.
fn decide<R>(
    result: Option<R>,
    error: Option<w::Error>,
    disconnect: Option<w::Disconnect>,
) -> Answer<Option<R>> {
    if let Some(d) = disconnect {
        let reason = if d.reason.is_empty() {
            "disconnect".to_owned()
        } else {
            d.reason
        };
        return Answer::Disconnect(Disconnect {
            code: d.code,
            reason: reason.into(),
        });
    }
    if let Some(e) = error {
        let message = if e.message.is_empty() {
            "error".to_owned()
        } else {
            e.message
        };
        return Answer::Error(pushwire_protocol::Error {
            code: e.code,
            message,
            temporary: e.temporary,
        });
    }
    Answer::Ok(result)
}

fn map<R, T>(a: Answer<Option<R>>, f: impl FnOnce(Option<R>) -> T) -> Answer<T> {
    match a {
        Answer::Ok(r) => Answer::Ok(f(r)),
        Answer::Error(e) => Answer::Error(e),
        Answer::Disconnect(d) => Answer::Disconnect(d),
    }
}

/// `Connect`.
pub(super) async fn connect(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
    req: &ConnectCall,
) -> ProxyResult<ConnectCredentials> {
    let b = base(p, &ctx);
    let msg = w::ConnectRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        data: req.data.as_bytes().to_vec(),
        name: req.name.clone(),
        version: req.version.clone(),
        channels: req.channels.clone(),
    };
    let r: w::ConnectResponse = p.guarded(g.unary(&ctx, w::path::CONNECT, msg)).await?;
    let a = decide(r.result, r.error, r.disconnect);
    let Answer::Ok(r) = a else {
        return Ok(map(a, |_| ConnectCredentials::default()));
    };
    let r = r.ok_or_else(|| {
        pushwire_core::proxy::ProxyError::Invalid("connect answer without result".into())
    })?;
    let mut names: Vec<_> = r.subs.into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut subs: Vec<TokenSubscription> = names
        .into_iter()
        .map(|(channel, o)| TokenSubscription {
            channel,
            info: raw(o.info),
            data: raw(o.data),
            overrides: overrides(o.r#override),
        })
        .collect();
    let mut channels = r.channels;
    if !subs.is_empty() {
        for ch in channels.drain(..) {
            if !subs.iter().any(|s| s.channel == ch) {
                subs.push(TokenSubscription {
                    channel: ch,
                    ..Default::default()
                });
            }
        }
    }
    Ok(Answer::Ok(ConnectCredentials {
        user: r.user,
        expire_at: expiry(r.expire_at),
        info: raw(r.info),
        channels,
        subs,
        meta: raw(r.meta),
        data: raw(r.data),
    }))
}

/// `Refresh`; no result is expired.
pub(super) async fn refresh(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
) -> ProxyResult<RefreshAnswer> {
    let b = base(p, &ctx);
    let msg = w::RefreshRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        user: ctx.user.to_owned(),
        meta: meta(p, &ctx),
    };
    let r: w::RefreshResponse = p.guarded(g.unary(&ctx, w::path::REFRESH, msg)).await?;
    Ok(map(decide(r.result, r.error, r.disconnect), |r| match r {
        None => RefreshAnswer {
            expired: true,
            ..Default::default()
        },
        Some(r) => RefreshAnswer {
            expired: r.expired,
            expire_at: expiry(r.expire_at),
            info: (!r.info.is_empty()).then(|| raw(r.info)),
            meta: (!r.meta.is_empty()).then(|| raw(r.meta)),
        },
    }))
}

/// `Subscribe`.
pub(super) async fn subscribe(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
    req: &SubscribeCall,
) -> ProxyResult<SubscribeAnswer> {
    let b = base(p, &ctx);
    let msg = w::SubscribeRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        user: ctx.user.to_owned(),
        channel: req.channel.clone(),
        token: req.token.clone(),
        meta: meta(p, &ctx),
        data: req.data.as_bytes().to_vec(),
    };
    let r: w::SubscribeResponse = p.guarded(g.unary(&ctx, w::path::SUBSCRIBE, msg)).await?;
    Ok(map(decide(r.result, r.error, r.disconnect), |r| {
        r.map(|r| SubscribeAnswer {
            expire_at: expiry(r.expire_at),
            info: raw(r.info),
            data: raw(r.data),
            overrides: overrides(r.r#override),
        })
        .unwrap_or_default()
    }))
}

/// `Publish`.
pub(super) async fn publish(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
    channel: &str,
    data: &RawJson,
) -> ProxyResult<PublishAnswer> {
    let b = base(p, &ctx);
    let msg = w::PublishRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        user: ctx.user.to_owned(),
        channel: channel.to_owned(),
        data: data.as_bytes().to_vec(),
        meta: meta(p, &ctx),
    };
    let r: w::PublishResponse = p.guarded(g.unary(&ctx, w::path::PUBLISH, msg)).await?;
    Ok(map(decide(r.result, r.error, r.disconnect), |r| {
        r.map(|r| PublishAnswer {
            data: (!r.data.is_empty()).then(|| raw(r.data)),
            skip_history: r.skip_history,
            tags: r.tags.into_iter().collect(),
            idempotency_key: (!r.idempotency_key.is_empty()).then_some(r.idempotency_key),
            version: r.version,
            version_epoch: r.version_epoch,
        })
        .unwrap_or_default()
    }))
}

/// `SubRefresh`; no result is expired.
pub(super) async fn sub_refresh(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
    channel: &str,
) -> ProxyResult<SubRefreshAnswer> {
    let b = base(p, &ctx);
    let msg = w::SubRefreshRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        user: ctx.user.to_owned(),
        channel: channel.to_owned(),
        meta: meta(p, &ctx),
    };
    let r: w::SubRefreshResponse = p.guarded(g.unary(&ctx, w::path::SUB_REFRESH, msg)).await?;
    Ok(map(decide(r.result, r.error, r.disconnect), |r| match r {
        None => SubRefreshAnswer {
            expired: true,
            ..Default::default()
        },
        Some(r) => SubRefreshAnswer {
            expired: r.expired,
            expire_at: expiry(r.expire_at),
            info: (!r.info.is_empty()).then(|| raw(r.info)),
        },
    }))
}

/// `RPC`.
pub(super) async fn rpc(
    p: &ProxyClient,
    g: &GrpcClient,
    ctx: CallContext<'_>,
    method: &str,
    data: &RawJson,
) -> ProxyResult<RawJson> {
    let b = base(p, &ctx);
    let msg = w::RpcRequest {
        client: b.client,
        transport: b.transport,
        protocol: b.protocol,
        encoding: b.encoding,
        user: ctx.user.to_owned(),
        method: method.to_owned(),
        data: data.as_bytes().to_vec(),
        meta: meta(p, &ctx),
    };
    let r: w::RpcResponse = p.guarded(g.unary(&ctx, w::path::RPC, msg)).await?;
    Ok(map(decide(r.result, r.error, r.disconnect), |r| {
        r.map(|r| raw(r.data)).unwrap_or_default()
    }))
}
