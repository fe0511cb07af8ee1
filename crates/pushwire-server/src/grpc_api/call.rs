//! One gRPC API call through the HTTP API's dispatch path: the proto request becomes the
//! method's JSON params, [`crate::api::dispatch::dispatch`] runs it, and its outcome becomes
//! the proto response (`error` or `result`, or a gRPC status in transport error mode).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use pushwire_core::Node;
use pushwire_protocol::ErrorCode;
use serde::Serialize;
use tonic::{Code, Status};

use super::wire::{self, Prepare};
use crate::api::dispatch::dispatch;
use crate::api::error::ApiError;
use crate::api::method::Method;
use crate::api::reply::ApiResult;

/// Turns a method's outcome into its response message, or a status.
pub type Respond<Resp> = fn(ApiResult, bool) -> Result<Resp, Status>;

/// A unary call of `method`: decodes `Req`, answers `Resp`.
#[derive(Debug)]
pub struct Call<Req, Resp> {
    /// The node the call acts on.
    pub node: Arc<Node>,
    /// The API method.
    pub method: Method,
    /// Errors as gRPC statuses instead of the `error` field.
    pub transport_errors: bool,
    /// Outcome to response.
    pub respond: Respond<Resp>,
    /// The request type.
    pub request: PhantomData<fn(Req)>,
}

type CallFuture<Resp> =
    Pin<Box<dyn Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static>>;

impl<Req, Resp> tonic::server::UnaryService<Req> for Call<Req, Resp>
where
    Req: Prepare + Serialize + Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = CallFuture<Resp>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let node = self.node.clone();
        let (method, transport, respond) = (self.method, self.transport_errors, self.respond);
        Box::pin(async move {
            let outcome = run(&node, method, request.into_inner()).await;
            respond(outcome, transport).map(tonic::Response::new)
        })
    }
}

/// Runs `method` with the request as its params. A `bytes` field that must hold JSON and
/// does not is a bad request (107).
pub async fn run<Req: Prepare + Serialize>(node: &Node, method: Method, mut req: Req) -> ApiResult {
    req.prepare();
    let params = serde_json::value::to_raw_value(&req).map_err(|e| {
        tracing::debug!(error = %e, "gRPC API request has a payload that is not JSON");
        ApiError::BadRequest
    })?;
    dispatch(node, method, Some(&params)).await
}

/// The response of a method with `error` and `result` fields.
pub fn respond<R: wire::Response>(outcome: ApiResult, transport: bool) -> Result<R, Status> {
    let error = match outcome {
        Ok(raw) => match serde_json::from_str::<R::Result>(raw.get()) {
            Ok(result) => return Ok(R::new(None, Some(result))),
            Err(e) => {
                tracing::error!(error = %e, "cannot convert an API result to its gRPC message");
                ApiError::Node(ErrorCode::Internal)
            }
        },
        Err(e) => e,
    };
    if transport {
        return Err(status(error));
    }
    Ok(R::new(
        Some(wire::Error {
            code: error.code(),
            message: error.message().to_owned(),
        }),
        None,
    ))
}

/// The response of `batch` (no `error` field: a failure of the batch itself is a status; each
/// command's error is in its reply).
pub fn respond_batch(outcome: ApiResult, _transport: bool) -> Result<wire::BatchResponse, Status> {
    let raw = outcome.map_err(status)?;
    serde_json::from_str(raw.get()).map_err(|e| {
        tracing::error!(error = %e, "cannot convert a batch result to its gRPC message");
        status(ApiError::Node(ErrorCode::Internal))
    })
}

/// Transport error mode: the status of an API error (Centrifugo's mapping).
pub fn status(e: ApiError) -> Status {
    let code = match e.code() {
        102 | 104 => Code::NotFound,
        107 | 108 => Code::InvalidArgument,
        112 => Code::OutOfRange,
        113 => Code::AlreadyExists,
        _ => Code::Internal,
    };
    Status::new(code, e.message())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn raw(text: &str) -> ApiResult {
        Ok(RawValue::from_string(text.to_owned()).expect("json"))
    }

    #[test]
    fn results_and_errors() {
        let r: wire::HistoryResponse = respond(
            raw(r#"{"publications":[{"data":{"a":1},"offset":3,"time":5,"info":{"user":"u","client":"c","conn_info":[1]}}],"epoch":"e","offset":3}"#),
            false,
        )
        .expect("response");
        let result = r.result.expect("result");
        assert_eq!(result.publications[0].data, br#"{"a":1}"#);
        assert_eq!(
            result.publications[0]
                .info
                .as_ref()
                .map(|i| i.conn_info.clone()),
            Some(b"[1]".to_vec())
        );
        assert_eq!((result.epoch.as_str(), result.offset), ("e", 3));
        let r: wire::PublishResponse = respond(Err(ApiError::NotAvailable), false).expect("body");
        assert_eq!(
            r.error.map(|e| (e.code, e.message)),
            Some((108, "not available".to_owned()))
        );
        let s = respond::<wire::PublishResponse>(Err(ApiError::NotAvailable), true)
            .expect_err("status");
        assert_eq!(s.code(), Code::InvalidArgument);
        let r: wire::BroadcastResponse = respond(
            raw(r#"{"responses":[{"result":{}},{"error":{"code":102,"message":"unknown channel"}}]}"#),
            false,
        )
        .expect("broadcast");
        let responses = r.result.expect("result").responses;
        assert!(responses[0].result.is_some());
        assert_eq!(responses[1].error.as_ref().map(|e| e.code), Some(102));
    }

    #[test]
    fn payload_bytes_become_base64() {
        let mut req = wire::PublishRequest {
            channel: "c".into(),
            data: b"\x00not json".to_vec(),
            ..Default::default()
        };
        req.prepare();
        let json = serde_json::to_value(&req).expect("json");
        assert_eq!(json["b64data"], "AG5vdCBqc29u");
        assert!(json.get("data").is_none());
        let bad = wire::RpcRequest {
            method: "m".into(),
            params: b"{oops".to_vec(),
        };
        assert!(serde_json::to_value(&bad).is_err());
    }
}
