//! `rpc`.

use serde::Deserialize;

use super::error::ApiError;
use super::reply::ApiResult;
use super::request::nullable;

/// `rpc` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    #[serde(deserialize_with = "nullable")]
    method: String,
}

/// Server-side RPC extensions: none exist, so every method is unknown (104); an empty method
/// is a bad request (107).
pub fn rpc(req: &RpcRequest) -> ApiResult {
    if req.method.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Err(ApiError::MethodNotFound)
}
