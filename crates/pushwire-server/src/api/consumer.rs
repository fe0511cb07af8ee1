//! The server API as the consumers call it: [`ConsumerApi`] implements
//! [`pushwire_consumers::ApiDispatch`] on top of [`super::dispatch`], so an `api_command`
//! message is decoded, validated and refused exactly as `POST /api/<method>` would be.

use std::sync::Arc;

use pushwire_consumers::dispatch::BoxFuture;
use pushwire_consumers::{ApiDispatch, ApiFailure, Dispatched};
use pushwire_core::Node;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::dispatch::{call_counted, Tally};
use super::error::ApiError;
use super::method::Method;

/// The node's server API for consumers. Calls count in the `api_requests` metric like HTTP
/// calls.
#[derive(Debug)]
pub struct ConsumerApi {
    node: Arc<Node>,
}

impl ConsumerApi {
    /// The API of `node`, ready to hand to [`pushwire_consumers::start`].
    pub fn shared(node: Arc<Node>) -> Arc<dyn ApiDispatch> {
        Arc::new(ConsumerApi { node })
    }
}

impl ApiDispatch for ConsumerApi {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> BoxFuture<'a, Result<Dispatched, ApiFailure>> {
        Box::pin(async move {
            let method = Method::from_name(method)
                .filter(|m| *m != Method::Batch)
                .ok_or_else(|| failure(ApiError::MethodNotFound))?;
            let tally = Tally::default();
            let result = call_counted(&self.node, method, params, &tally)
                .await
                .map_err(failure)?;
            let errors = if method == Method::Broadcast {
                broadcast_errors(&result)
            } else {
                Vec::new()
            };
            let (publications, suppressed) = tally.get();
            Ok(Dispatched {
                publications,
                suppressed,
                errors,
            })
        })
    }
}

fn failure(e: ApiError) -> ApiFailure {
    ApiFailure {
        code: e.code(),
        message: e.message().into(),
    }
}

#[derive(Deserialize)]
struct BroadcastReply {
    responses: Vec<Response>,
}

#[derive(Deserialize)]
struct Response {
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: u32,
    message: String,
}

/// The per-channel errors inside a `broadcast` result.
fn broadcast_errors(result: &RawValue) -> Vec<ApiFailure> {
    serde_json::from_str::<BroadcastReply>(result.get())
        .map(|r| {
            r.responses
                .into_iter()
                .filter_map(|r| r.error)
                .map(|e| ApiFailure {
                    code: e.code,
                    message: e.message,
                })
                .collect()
        })
        .unwrap_or_default()
}
