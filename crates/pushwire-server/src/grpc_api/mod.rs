//! The gRPC server API (`grpc_api.*`): Centrifugo's `centrifugal.centrifugo.api.CentrifugoApi`
//! service (`proto/api.proto`) on its own listener, answering through the HTTP API's one
//! dispatch path, so both APIs act on the same state with the same rules.
//!
//! Layout:
//! - [`wire`]: the proto messages (prost derive), with their JSON shape.
//! - [`call`]: proto request → JSON params → [`crate::api::dispatch::dispatch`] → proto response.
//! - this module: the routes, the key check and the method table.
//!
//! Served by the pushwire listener ([`crate::listener`], HTTP/2 by prior knowledge or ALPN,
//! with `grpc_api.tls`): each call is a POST to `/centrifugal.centrifugo.api.CentrifugoApi/<Method>`
//! handled by tonic's unary codec. Every call needs the metadata `authorization: apikey <key>`
//! (compared in constant time, as Centrifugo does) unless `grpc_api.insecure`; otherwise the
//! status is `UNAUTHENTICATED`. A method's errors come in the response's `error` field (or as
//! statuses with `grpc_api.error_mode = "transport"` or the metadata
//! `x-centrifugo-error-mode: transport`); a method pushwire does not have is `UNIMPLEMENTED`;
//! a request over `grpc_api.max_receive_message_size` is refused by the codec.

pub mod call;
pub mod wire;

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use pushwire_core::Node;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::api::method::Method;
use crate::api::request::Refused;
use crate::config::{ApiErrorMode, GrpcApiConfig};
use call::{respond, respond_batch, Call, Respond};
use wire::Prepare;

/// The gRPC service name.
pub const SERVICE: &str = "centrifugal.centrifugo.api.CentrifugoApi";

/// Metadata asking for errors as statuses for one call.
const ERROR_MODE_METADATA: &str = "x-centrifugo-error-mode";

/// What every call needs.
struct GrpcApi {
    node: Arc<Node>,
    /// `apikey <key>`; `None` with `grpc_api.insecure`.
    expected: Option<Vec<u8>>,
    transport_errors: bool,
    max_receive_message_size: usize,
}

/// The routes of the gRPC API listener.
pub fn router(node: Arc<Node>, config: &GrpcApiConfig) -> Router {
    let api = GrpcApi {
        node,
        expected: (!config.insecure).then(|| format!("apikey {}", config.key).into_bytes()),
        transport_errors: config.error_mode == ApiErrorMode::Transport,
        max_receive_message_size: config.receive_limit(),
    };
    Router::new()
        .route(&format!("/{SERVICE}/{{method}}"), post(handle))
        .fallback(|| async { status_response(Status::unimplemented("unknown service")) })
        .with_state(Arc::new(api))
}

fn status_response(status: Status) -> Response {
    status.into_http::<axum::body::Body>().into_response()
}

/// Whether the call carries the key (always with `insecure`).
fn authorized(api: &GrpcApi, request: &Request) -> bool {
    let Some(expected) = &api.expected else {
        return true;
    };
    request
        .headers()
        .get("authorization")
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected)))
}

async fn handle(
    State(api): State<Arc<GrpcApi>>,
    Path(method): Path<String>,
    request: Request,
) -> Response {
    if !authorized(&api, &request) {
        api.node.metrics().api_refused(Refused::UNAUTHORIZED.0);
        return status_response(Status::unauthenticated("unauthenticated"));
    }
    let transport = api.transport_errors
        || request
            .headers()
            .get(ERROR_MODE_METADATA)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"transport"));
    use wire as w;
    match method.as_str() {
        "Publish" => {
            unary::<w::PublishRequest, w::PublishResponse>(
                &api,
                Method::Publish,
                respond,
                transport,
                request,
            )
            .await
        }
        "Broadcast" => {
            unary::<w::BroadcastRequest, w::BroadcastResponse>(
                &api,
                Method::Broadcast,
                respond,
                transport,
                request,
            )
            .await
        }
        "Subscribe" => {
            unary::<w::SubscribeRequest, w::SubscribeResponse>(
                &api,
                Method::Subscribe,
                respond,
                transport,
                request,
            )
            .await
        }
        "Unsubscribe" => {
            unary::<w::UnsubscribeRequest, w::UnsubscribeResponse>(
                &api,
                Method::Unsubscribe,
                respond,
                transport,
                request,
            )
            .await
        }
        "Disconnect" => {
            unary::<w::DisconnectRequest, w::DisconnectResponse>(
                &api,
                Method::Disconnect,
                respond,
                transport,
                request,
            )
            .await
        }
        "Presence" => {
            unary::<w::ChannelRequest, w::PresenceResponse>(
                &api,
                Method::Presence,
                respond,
                transport,
                request,
            )
            .await
        }
        "PresenceStats" => {
            unary::<w::ChannelRequest, w::PresenceStatsResponse>(
                &api,
                Method::PresenceStats,
                respond,
                transport,
                request,
            )
            .await
        }
        "History" => {
            unary::<w::HistoryRequest, w::HistoryResponse>(
                &api,
                Method::History,
                respond,
                transport,
                request,
            )
            .await
        }
        "HistoryRemove" => {
            unary::<w::ChannelRequest, w::HistoryRemoveResponse>(
                &api,
                Method::HistoryRemove,
                respond,
                transport,
                request,
            )
            .await
        }
        "Info" => {
            unary::<w::InfoRequest, w::InfoResponse>(
                &api,
                Method::Info,
                respond,
                transport,
                request,
            )
            .await
        }
        "RPC" => {
            unary::<w::RpcRequest, w::RpcResponse>(&api, Method::Rpc, respond, transport, request)
                .await
        }
        "Refresh" => {
            unary::<w::RefreshRequest, w::RefreshResponse>(
                &api,
                Method::Refresh,
                respond,
                transport,
                request,
            )
            .await
        }
        "Channels" => {
            unary::<w::ChannelsRequest, w::ChannelsResponse>(
                &api,
                Method::Channels,
                respond,
                transport,
                request,
            )
            .await
        }
        "Batch" => {
            unary::<w::BatchRequest, w::BatchResponse>(
                &api,
                Method::Batch,
                respond_batch,
                transport,
                request,
            )
            .await
        }
        _ => status_response(Status::unimplemented(format!(
            "method {method} is not served by pushwire"
        ))),
    }
}

/// Decodes `Req` (within the size limit), runs the call, encodes `Resp`.
async fn unary<Req, Resp>(
    api: &GrpcApi,
    method: Method,
    respond: Respond<Resp>,
    transport_errors: bool,
    request: Request,
) -> Response
where
    Req: prost::Message + Default + Prepare + Serialize + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    let call = Call::<Req, Resp> {
        node: api.node.clone(),
        method,
        transport_errors,
        respond,
        request: PhantomData,
    };
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default())
        .max_decoding_message_size(api.max_receive_message_size);
    grpc.unary(call, request)
        .await
        .map(axum::body::Body::new)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(insecure: bool) -> GrpcApi {
        let config = GrpcApiConfig {
            key: "k1".into(),
            insecure,
            ..Default::default()
        };
        let node = Node::new_memory(Default::default(), "test", None);
        GrpcApi {
            node,
            expected: (!config.insecure).then(|| format!("apikey {}", config.key).into_bytes()),
            transport_errors: false,
            max_receive_message_size: config.receive_limit(),
        }
    }

    fn request(authorization: Option<&str>) -> Request {
        let mut r = Request::new(axum::body::Body::empty());
        if let Some(v) = authorization {
            r.headers_mut()
                .insert("authorization", v.parse().expect("value"));
        }
        r
    }

    #[tokio::test]
    async fn the_key_must_match_exactly_unless_insecure() {
        let secure = api(false);
        assert!(authorized(&secure, &request(Some("apikey k1"))));
        for wrong in ["apikey k2", "ApiKey k1", "apikey  k1", "k1", "Bearer k1"] {
            assert!(!authorized(&secure, &request(Some(wrong))), "{wrong}");
        }
        assert!(!authorized(&secure, &request(None)));
        assert!(authorized(&api(true), &request(None)));
    }
}
